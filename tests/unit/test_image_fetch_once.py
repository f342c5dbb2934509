"""worker._pipeline.Pipeline._ensure_image with a fake fetch (isolates the locking: the tasks of a lease start
together, and two threads fetching one image from IPFS wrote and deleted the same archive file, so one task failed
with "not a readable 'docker save' archive"; the real fetch and load are tested on Docker and kubo in
tests/integration/test_client_worker.py)."""

from __future__ import annotations

import threading
import time
from typing import Any

from worker._pipeline import Pipeline


def _pipeline(fetch: Any) -> Pipeline:
    p = Pipeline.__new__(Pipeline)  # only the image bookkeeping: no chain, IPFS or Docker
    p._images_ok = set()
    p._image_locks = {}
    p._image_locks_guard = threading.Lock()
    p._pull_or_verify = fetch  # type: ignore[method-assign]
    return p


class App:
    def __init__(self, digest: str) -> None:
        self.image_digest = digest


def test_one_fetch_per_image_while_tasks_start_together() -> None:
    calls: list[str] = []
    inside = [0, 0]  # fetches of image "a" running now, and the most at once
    guard = threading.Lock()

    def fetch(app: App) -> None:
        with guard:
            calls.append(app.image_digest)
            if app.image_digest == "sha256:a":
                inside[0] += 1
                inside[1] = max(inside[1], inside[0])
        time.sleep(0.05)
        with guard:
            if app.image_digest == "sha256:a":
                inside[0] -= 1

    p = _pipeline(fetch)
    start = threading.Barrier(8)

    def task(digest: str) -> None:
        start.wait()
        p._ensure_image(App(digest))  # type: ignore[arg-type]

    threads = [threading.Thread(target=task, args=("sha256:a" if i < 6 else "sha256:b",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(calls) == ["sha256:a", "sha256:b"]  # each image fetched once, the others found it done
    assert inside[1] == 1
    assert p._images_ok == {"sha256:a", "sha256:b"}


def test_a_failed_fetch_is_tried_again_by_the_next_task() -> None:
    attempts: list[int] = []

    def fetch(app: App) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("registry down")

    p = _pipeline(fetch)
    try:
        p._ensure_image(App("sha256:c"))  # type: ignore[arg-type]
    except RuntimeError:
        pass
    p._ensure_image(App("sha256:c"))  # type: ignore[arg-type]
    assert len(attempts) == 2 and p._images_ok == {"sha256:c"}
