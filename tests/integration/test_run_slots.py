"""A worker with no ``max_concurrent`` runs as many tasks at once as the cores it lends hold (worker/_gate.py), on a
real anvil, kubo and Docker engine: lending 2 cores it runs two 1-core tasks at once and never three, and a
2-core job's tasks one at a time. What runs is read from the engine and this host: the worker's task containers,
and its reused ones whose launcher runs an app. An idle worker makes its reused containers ready for the app it
expects before a job comes."""

from __future__ import annotations

import os
import threading
import time

import pytest

from oracle.market import Market
from tests.integration.test_worker import running, settings, task_containers, wait_for
from tests.integration.test_worker_results_batching import slow_bag
from tests.market_helpers import ETHER, fund, post_job, register_app
from worker._daemon import Worker
from worker._sandbox import sandbox_owner


class AppWatch:
    """The most task containers of one worker seen running at once, per job phase (read every 0.1 s)."""

    def __init__(self, docker_client, owner: str) -> None:
        self.client, self.owner = docker_client, owner
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.most = max(self.most, len(task_containers(self.client, self.owner)))
            time.sleep(0.1)

    def __enter__(self) -> AppWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _two_core_worker(anvil, w3, accounts, market: Market, ipfs, docker_client, echo_digest, tmp_path
                     ) -> tuple[int, Worker, str]:
    """The echo app registered, a funded requester, and a worker (not started) lending 2 cores with no
    max_concurrent: (app id, worker, its sandbox's owner label)."""
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund(w3, market, accounts[4], 10 * ETHER)
    state = tmp_path / "w"
    worker = Worker(settings(anvil, ipfs, market, accounts[4], state, policy={"max_concurrent": None, "cores": 2}),
                    docker_client=docker_client)
    return app_id, worker, sandbox_owner(accounts[4].address, state)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="lends 2 cores: needs a machine with 2")
def test_the_default_runs_as_many_tasks_as_the_cores_lent_hold(anvil, w3, accounts, market: Market, ipfs,
                                                                docker_client, echo_digest, tmp_path) -> None:
    app_id, worker, owner = _two_core_worker(anvil, w3, accounts, market, ipfs, docker_client, echo_digest, tmp_path)
    with running(worker):
        with AppWatch(docker_client, owner) as one_core:
            job = post_job(w3, market, accounts[1], ipfs, app_id, tasks=4, doc=slow_bag(ipfs, 4, 3))
            wait_for(lambda: market.job_record(job).finished == 4, timeout=120, what="4 one-core tasks finished")
        with AppWatch(docker_client, owner) as two_cores:
            job2 = post_job(w3, market, accounts[1], ipfs, app_id, tasks=3, cores=2, doc=slow_bag(ipfs, 3, 3))
            wait_for(lambda: market.job_record(job2).finished == 3, timeout=120, what="3 two-core tasks finished")
    assert one_core.most == 2, f"one-core tasks at once: {one_core.most} (2 cores lent)"
    assert two_cores.most == 1, f"two-core tasks at once: {two_cores.most} (2 cores lent)"
    info = market.worker_record(accounts[4].address)
    assert info.locked == 0 and info.reputation == 7


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="lends 2 cores: needs a machine with 2")
def test_an_idle_worker_readies_containers_for_the_last_registered_app(anvil, w3, accounts, market: Market, ipfs,
                                                                        docker_client, echo_digest, tmp_path) -> None:
    """Before any job, a worker makes a reused container ready in each run slot for the last app registered that
    its policy allows (worker/_daemon.py, _warm_app); a job of that app then runs all its tasks in them."""
    app_id, worker, owner = _two_core_worker(anvil, w3, accounts, market, ipfs, docker_client, echo_digest, tmp_path)
    selector = {"label": [f"tasknet.sandbox={owner}", "tasknet.role=reused", f"tasknet.reuse=app-{app_id}"]}

    def ready() -> set[str]:
        return {c.id for c in docker_client.containers.list(filters=selector)}
    with running(worker):
        wait_for(lambda: len(ready()) == 2, timeout=60, what="a container ready for the app in each of 2 run slots")
        before = ready()
        job = post_job(w3, market, accounts[1], ipfs, app_id, tasks=4, doc=slow_bag(ipfs, 4, 1))
        wait_for(lambda: market.job_record(job).finished == 4, timeout=120, what="4 tasks finished")
        assert ready() == before  # the tasks ran in the containers made before the job
    assert worker.sandbox.runs == {"reused": 4, "fresh": 0}
