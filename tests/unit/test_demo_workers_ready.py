"""The demo posts its job only once every worker follows the chain (tasknet/_demo.py ``Demo._await_workers``).

Isolated here: the waiting, on real child processes that stand in for worker daemons (no chain, IPFS or Docker):
one that writes the daemon's ``worker_started`` JSON line, one that exits before it, one that never gets there.
The real daemons' line is covered end to end by tests/e2e/test_demo.py."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from oracle.exceptions import TasknetError
from tasknet._demo import Demo, DemoOptions, WorkerView

CHILDREN: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    yield
    for proc in CHILDREN:
        proc.kill()
        proc.wait(10)
    CHILDREN.clear()


class ChildWorker(WorkerView):
    """A child process whose stdout lines are read as a worker daemon's JSON log lines."""

    def __init__(self, role: str, script: str, tmp: Path) -> None:
        super().__init__(role, "honest", tmp / role, tmp / f"{role}.log")
        self.proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        CHILDREN.append(self.proc)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.on_line(line)

    def exited(self) -> int | None:
        return self.proc.poll()


STARTED = 'import json, time; time.sleep(0.3); print(json.dumps({"event": "worker_started"}), flush=True); time.sleep(5)'


def _demo(tmp: Path, workers: list[WorkerView]) -> Demo:
    demo = Demo(DemoOptions(out_dir=tmp), None, Console(quiet=True))
    demo.workers = workers
    return demo


def test_the_job_waits_for_every_worker_to_follow_the_chain(tmp_path: Path) -> None:
    workers: list[WorkerView] = [ChildWorker(f"worker-{i}", STARTED, tmp_path) for i in (1, 2)]
    demo = _demo(tmp_path, workers)
    demo._await_workers(timeout=30)
    assert all(w.ready_event.is_set() and w.last == "ready" for w in workers)
    assert demo.workers_ready_s >= 0.3


def test_a_worker_that_dies_before_it_is_ready_is_named_with_its_status_and_log(tmp_path: Path) -> None:
    dead = ChildWorker("worker-2", "import sys; sys.exit(3)", tmp_path)
    demo = _demo(tmp_path, [ChildWorker("worker-1", STARTED, tmp_path), dead])
    with pytest.raises(TasknetError, match=r"worker-2 exited with status 3 before it was ready; see its log .*worker-2\.log"):
        demo._await_workers(timeout=30)


def test_a_worker_that_never_gets_ready_times_out_with_what_to_check(tmp_path: Path) -> None:
    slow = ChildWorker("worker-1", "import time; time.sleep(30)", tmp_path)
    with pytest.raises(TasknetError, match=r"worker-1 was not ready after 1 s .*Docker engine or the chain"):
        _demo(tmp_path, [slow])._await_workers(timeout=1)
