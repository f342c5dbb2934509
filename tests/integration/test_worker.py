"""The worker daemon against a real anvil, kubo and Docker engine: claims, runs, publishes, gets paid."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from oracle.market import Market
from oracle.protocol import task_id
from tests.market_helpers import ETHER, build_echo_app, fund, post_job, register_app
from worker._daemon import Worker
from worker._journal import Journal, Step
from worker._settings import WorkerSettings


@pytest.fixture(scope="module")
def echo_digest(docker_client, tmp_path_factory) -> str:
    return build_echo_app(docker_client, tmp_path_factory.mktemp("app"))


@pytest.fixture
def market(w3, deployment) -> Market:
    return Market(w3, deployment["Marketplace"].address)


def settings(anvil, ipfs, market: Market, account, state: Path, **kw) -> WorkerSettings:
    return WorkerSettings(rpc_url=anvil.rpc_url, ipfs_api=ipfs.api_url, marketplace=market.address,
                          private_key="0x" + account.key.hex().removeprefix("0x"), state_dir=state,
                          stake=5 * ETHER, poll_interval=0.1, claim_backoff_max=0.05, **kw)


@contextlib.contextmanager
def running(*workers: Worker) -> Iterator[None]:
    loop = asyncio.new_event_loop()
    stops = []

    async def main() -> None:
        nonlocal stops
        stops = [asyncio.Event() for _ in workers]
        await asyncio.gather(*(w.async_run(s) for w, s in zip(workers, stops, strict=True)))

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        yield
    finally:
        for s in stops:
            loop.call_soon_threadsafe(s.set)
        thread.join(60)
        loop.close()


def wait_for(cond, timeout: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def fund_worker(w3, market, account) -> None:
    fund(w3, market, account, 10 * ETHER)


def test_worker_completes_a_five_task_job_and_is_paid(anvil, w3, accounts, market, ipfs, docker_client,
                                                      echo_digest, tmp_path) -> None:
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[4])
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=5)
    worker = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "w1"), docker_client=docker_client)
    with running(worker):
        wait_for(lambda: market.job(job_id)["finished"] == 5, what="5 finished tasks")
    # deposited 10, staked 5 of it, earned 5 x 0.1
    assert market.balance(accounts[4].address) == 10 * ETHER - 5 * ETHER + 5 * ETHER // 10
    subs = market.contract.events.ResultSubmitted().get_logs(from_block=0)
    cids = {e["args"]["taskId"]: e["args"]["resultCID"] for e in subs}
    assert set(cids) == {task_id(job_id, i) for i in range(5)}
    # the published archive holds the app's real output
    from oracle.archive import unpack_result
    archive = tmp_path / "r.tar"
    archive.write_bytes(ipfs.cat(cids[task_id(job_id, 3)]))
    unpack_result(archive, tmp_path / "r")
    assert (tmp_path / "r" / "output" / "result.txt").read_text() == "hello\nargs: task 3\n"
    assert worker.market.worker(accounts[4].address)["locked"] == 0
    assert all(r.step is Step.DONE for r in Journal(tmp_path / "w1" / "journal.db").all())


def test_two_workers_share_a_replicated_job_and_agree(anvil, w3, accounts, market, ipfs, docker_client,
                                                     echo_digest, tmp_path) -> None:
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 20 * ETHER)
    for a in (accounts[4], accounts[5]):
        fund_worker(w3, market, a)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=10, replication=2)
    w1 = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "w1"), docker_client=docker_client)
    w2 = Worker(settings(anvil, ipfs, market, accounts[5], tmp_path / "w2"), docker_client=docker_client)
    with running(w1, w2):
        wait_for(lambda: market.job(job_id)["finished"] == 10, timeout=150, what="10 finalized tasks")
    finals = market.contract.events.TaskFinalized().get_logs(from_block=0)
    assert len(finals) == 10 and all(e["args"]["winners"] == 2 for e in finals)
    for a in (accounts[4], accounts[5]):
        info = market.worker(a.address)
        assert info["locked"] == 0 and info["slashes"] == 0 and info["reputation"] == 10
        # deposited 10, staked 5, earned 10 tasks x reward 0.1 (a task pays 2 x 0.1, shared by 2 winners)
        assert market.balance(a.address) == 5 * ETHER + 10 * ETHER // 10
