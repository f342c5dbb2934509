"""R = 1 tasks claimed several to a lease and ahead of the free slots (worker/_leases.py), on a real anvil, kubo and
Docker engine (``claim_ahead_s`` large: these slow tasks are claimed ahead all the same): a bag goes in fewer claims than tasks and its results in task order; SIGTERM gives back the tasks
claimed ahead (no slash) after submitting what finished; a kill -9 mid-lease loses nothing; a task whose input
cannot be fetched gives its lease back (a fee, no slash) and another worker finishes the bag."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from oracle.ipfs import IpfsClient
from oracle.market import Market
from oracle.protocol import task_id
from tasknet import _kubo
from tests.integration.test_worker import (
    fund_worker,
    running,
    settings,
    stop_and_read,
    wait_for,
    worker_process,
)
from tests.integration.test_worker_results_batching import results_per_tx, slow_bag
from tests.market_helpers import ETHER, fund, post_job, register_app
from worker import Worker
from worker._journal import Journal, Step


def leases_of(market: Market, job_id: int, worker: str) -> list[int]:
    """The counts of the leases ``worker`` took on ``job_id``, in order."""
    return [int(e["args"]["count"]) for e in market.contract.events.TasksClaimed().get_logs(from_block=0)
            if int(e["args"]["startTaskId"]) >> 32 == job_id and e["args"]["worker"] == worker]


def test_a_bag_goes_in_leases_of_several_tasks(anvil, w3, accounts, market, ipfs, docker_client, echo_digest,
                                               tmp_path) -> None:
    """Twelve tasks, one worker running two at a time and claiming four ahead: fewer claims than tasks (several
    tasks per lease), results in task order with several per transaction, every task paid, nothing left locked."""
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund(w3, market, accounts[4], 10 * ETHER)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=12)
    worker = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "w", policy={"max_concurrent": 2},
                             batching={"claim_ahead": 4, "lease_tasks": 16, "claim_ahead_s": 1e6}), docker_client=docker_client)
    with running(worker):
        wait_for(lambda: market.job_record(job_id).finished == 12, timeout=150, what="12 finished tasks")
    leases = leases_of(market, job_id, accounts[4].address)
    assert sum(leases) == 12 and len(leases) < 12 and max(leases) > 1, leases
    per_tx = results_per_tx(market, job_id)
    assert sorted(t for ts in per_tx.values() for t in ts) == [task_id(job_id, i) for i in range(12)]
    assert len(per_tx) < 12 and all(ts == sorted(ts) for ts in per_tx.values()), per_tx
    assert all(r.step is Step.DONE and r.data["outcome"] == "paid" for r in worker.journal.all())
    info = market.worker_record(accounts[4].address)
    assert (info.locked, info.reputation, info.slashes) == (0, 12, 0)


def test_sigterm_submits_what_finished_and_gives_back_the_tasks_claimed_ahead(
        anvil, w3, accounts, market, ipfs, docker_client, echo_digest, tmp_path) -> None:
    """One task runs at a time, two more of its lease wait for a slot; on SIGTERM the running one finishes and
    its result goes on chain, then the two that never started are given back in the same transaction: the worker
    is not slashed, locks nothing, and the two tasks are free for others."""
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund(w3, market, accounts[7], 10 * ETHER)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=6, max_run=300, doc=slow_bag(ipfs, 6, 3))
    cfg = settings(anvil, ipfs, market, accounts[7], tmp_path / "w", policy={"max_concurrent": 1},
                   batching={"claim_ahead": 4, "claim_ahead_s": 1e6, "hold_s": 600.0, "hold_claim_fraction": 0.5}, drain_timeout=60)
    path = tmp_path / "w" / "journal.db"
    proc = worker_process(cfg, tmp_path / "cfg.json")
    logs = stop_and_read(proc, lambda: path.exists() and len(Journal(path).unfinished()) == 3,
                         what="a lease of three tasks claimed")
    assert leases_of(market, job_id, accounts[7].address) == [3]
    first = leases_start(market, job_id)  # the worker's offset into the bag
    assert market.job_record(job_id).finished == 1, logs[-3000:]
    given_back = [e["args"] for e in market.contract.events.ClaimAbandoned().get_logs(from_block=0)]
    assert [(a["taskId"], a["tasks"]) for a in given_back] == [(task_id(job_id, first), 2)]
    assert [len(ts) for ts in results_per_tx(market, job_id).values()] == [1]
    journal = Journal(path)
    steps = [journal.get(job_id, first + i).step for i in range(3)]  # type: ignore[union-attr]
    assert steps == [Step.DONE, Step.ABANDONED, Step.ABANDONED]
    info = market.worker_record(accounts[7].address)
    assert (info.locked, info.slashes) == (0, 0)
    assert not market.is_taken(task_id(job_id, first + 1)) and not market.is_taken(task_id(job_id, first + 2))


def test_a_worker_killed_mid_lease_finishes_the_lease_after_restart(anvil, w3, accounts, market, ipfs,
                                                                   docker_client, echo_digest, tmp_path) -> None:
    """kill -9 while the first task of a lease is held and the second runs: restarted, the worker runs the
    second again (not the first), submits both in task order, finishes the bag, and nobody is slashed."""
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund(w3, market, accounts[6], 10 * ETHER)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=4, max_run=300, doc=slow_bag(ipfs, 4, 3))
    cfg = settings(anvil, ipfs, market, accounts[6], tmp_path / "w", policy={"max_concurrent": 1},
                   batching={"claim_ahead": 4, "claim_ahead_s": 1e6, "hold_s": 600.0, "hold_claim_fraction": 0.5})
    path = tmp_path / "w" / "journal.db"

    def holding() -> bool:
        if not path.exists() or not leases_of(market, job_id, accounts[6].address):
            return False
        first = leases_start(market, job_id)
        recs = {r.task_index: r for r in Journal(path).unfinished()}
        return first in recs and recs[first].step is Step.UPLOADED and first + 1 in recs

    proc = worker_process(cfg, tmp_path / "cfg.json")
    try:
        wait_for(holding, what="the lease's first result held")
        proc.kill()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert market.job_record(job_id).finished == 0
    restarted = worker_process(cfg, tmp_path / "cfg.json")
    try:
        wait_for(lambda: market.job_record(job_id).finished == 4, what="the bag finished after the restart")
    finally:
        restarted.terminate()
        restarted.wait(60)
    journal = Journal(path)
    first = leases_start(market, job_id)
    assert leases_of(market, job_id, accounts[6].address)[0] >= 2
    assert [s for s, _ in journal.history(job_id, first)].count(Step.RAN) == 1  # held through the kill, not run again
    assert all(journal.get(job_id, i).data["outcome"] == "paid" for i in range(4))
    info = market.worker_record(accounts[6].address)
    assert (info.slashes, info.locked, info.stake) == (0, 0, 5 * ETHER)


@pytest.mark.reliability(kind="fault", name="a worker whose IPFS node cannot reach the input of a lease",
                         how="a worker on its own kubo, connected to nobody, claims several tasks in one lease whose "
                             "input only the network's node holds: it gives the whole lease back (a fee, no slash) "
                             "without running the others, and a connected worker finishes the bag")
def test_an_isolated_worker_gives_back_its_whole_lease(anvil: Any, w3: Any, accounts: Any, market: Any,
                                                       ipfs: IpfsClient, docker_client: Any, echo_digest: str,
                                                       tmp_path: Path) -> None:
    lonely = _kubo.start(tmp_path / "lonely-ipfs", tmp_path / "lonely.log")  # no peers: an isolated node
    try:
        app_id = register_app(w3, market, accounts[2], echo_digest)
        fund(w3, market, accounts[1], 10 * ETHER)
        for a in (accounts[4], accounts[5]):
            fund_worker(w3, market, a)
        job = post_job(w3, market, accounts[1], ipfs, app_id, tasks=4, data=b"only on the network's node\n")
        isolated = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "iso", input_stall_s=3,
                                   policy={"max_concurrent": 1}, batching={"claim_ahead": 4, "claim_ahead_s": 1e6})
                          .model_copy(update={"ipfs_api": lonely.api}), docker_client=docker_client)
        given_back = market.contract.events.ClaimAbandoned()
        with running(isolated):
            wait_for(lambda: given_back.get_logs(from_block=0), what="the isolated worker to give its lease back")
            connected = Worker(settings(anvil, ipfs, market, accounts[5], tmp_path / "net"), docker_client=docker_client)
            with running(connected):
                wait_for(lambda: market.job_record(job).finished == 4, what="the connected worker to finish the bag")
        back = [e["args"] for e in given_back.get_logs(from_block=0)]
        lease = leases_of(market, job, accounts[4].address)
        assert len(lease) == 1 and lease[0] >= 2, lease
        assert [(a["taskId"], a["tasks"]) for a in back] == [(task_id(job, leases_start(market, job)), lease[0])]
        iso = market.worker_record(accounts[4].address)
        assert (iso.slashes, iso.locked) == (0, 0) and iso.stake < 5 * ETHER  # the give-back fee
        recs = [r for r in isolated.journal.all() if r.job_id == job]
        assert len(recs) == lease[0] and all(r.step is Step.ABANDONED for r in recs)
        ran = [r for r in recs if "InputUnavailable" in str(r.data.get("reason"))]
        assert len(ran) == 1, [r.data.get("reason") for r in recs]  # the others never started
    finally:
        lonely.stop()


def leases_start(market: Market, job_id: int) -> int:
    """The index of the first lease taken on ``job_id``."""
    first = next(e for e in market.contract.events.TasksClaimed().get_logs(from_block=0)
                 if int(e["args"]["startTaskId"]) >> 32 == job_id)
    return int(first["args"]["startTaskId"]) & 0xFFFFFFFF
