"""Lanes run by real worker daemons (``batching.lanes``; anvil, kubo, Docker): R > 1 jobs go through chunks whose
lanes each commit one root and reveal one list. Honest lanes settle whole chunks at once (no per-task claim,
commit or reveal at all); a lying lane makes its chunks split into per-task rounds where the liar alone is
slashed, for each task it lied on, and every task still ends with the honest result; a worker killed mid-lane
finishes it after its restart."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from oracle.market import Market
from oracle.protocol import split_task_id, task_id
from oracle.tx import TxSender
from tests.integration.test_worker import fund_worker, running, settings, wait_for, worker_process
from tests.integration.test_worker_results_batching import slow_bag
from tests.market_helpers import ETHER, fund, post_job, register_app
from worker._daemon import Worker
from worker._journal import Journal, Step

LANES = {"lanes": True, "lane_tasks": 3}


def events(market: Market, name: str, job_id: int, key: str = "taskId") -> list[dict]:
    return [dict(e["args"]) for e in getattr(market.contract.events, name)().get_logs(from_block=0)
            if split_task_id(int(e["args"][key]))[0] == job_id]


def test_honest_lanes_settle_whole_chunks(anvil, w3, accounts, market, ipfs, docker_client, echo_digest,
                                          tmp_path) -> None:
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 20 * ETHER)
    pair = accounts[4:6]
    for a in pair:
        fund_worker(w3, market, a)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=6, replication=2)
    workers = [Worker(settings(anvil, ipfs, market, a, tmp_path / f"w{i}", batching=LANES),
                      docker_client=docker_client) for i, a in enumerate(pair)]
    with running(*workers):
        wait_for(lambda: market.job_record(job_id).settled == 6, timeout=240, what="the job settled")
        wait_for(lambda: all(r.step is Step.DONE for w in workers for r in w.journal.all()), timeout=60,
                 what="the daemons saw their tasks end")
    claimed = events(market, "LaneClaimed", job_id, "startTaskId")
    assert claimed and all(c["count"] <= 3 for c in claimed)
    by_chunk = Counter(c["startTaskId"] for c in claimed)
    assert set(by_chunk.values()) == {2}, by_chunk  # every chunk got both lanes, from two workers
    assert not events(market, "ReplicaClaimed", job_id) and not events(market, "ResultCommitted", job_id)
    finals = events(market, "TaskFinalized", job_id)
    assert len(finals) == 6 and {f["winners"] for f in finals} == {2}
    assert not events(market, "LanesSplit", job_id, "startTaskId")
    for a, w in zip(pair, workers, strict=True):
        info = market.worker_record(a.address)
        assert (info.locked, info.slashes, info.reputation) == (0, 0, 6)
        recs = w.journal.all()
        assert len(recs) == 6 and all(r.step is Step.DONE and r.data["outcome"] == "won" for r in recs)
        assert all(r.data["earned"] > 0 for r in recs)
    assert market.job_record(job_id).finished == 6


def test_a_lying_lane_splits_its_chunks_and_is_slashed_per_task(anvil, w3, accounts, market, ipfs, docker_client,
                                                                echo_digest, tmp_path) -> None:
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 20 * ETHER)
    honest, liar = accounts[4:6], accounts[6]
    for a in (*honest, liar):
        fund_worker(w3, market, a)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=3, replication=3)
    workers = [Worker(settings(anvil, ipfs, market, a, tmp_path / f"w{i}", batching=LANES,
                               fault="wrong-result" if a is liar else "none"), docker_client=docker_client)
               for i, a in enumerate((*honest, liar))]
    with running(*workers):
        wait_for(lambda: market.job_record(job_id).settled == 3, timeout=240, what="the job settled")
        # after the split each honest task is a replica its daemon follows to its end
        wait_for(lambda: all(r.step is Step.DONE for w in workers[:2] for r in w.journal.all()), timeout=60,
                 what="the honest daemons saw their tasks end")
    assert events(market, "LanesSplit", job_id, "startTaskId")
    finals = events(market, "TaskFinalized", job_id)
    assert len(finals) == 3 and {f["winners"] for f in finals} == {2}
    slashes = [s for s in market.contract.events.WorkerSlashed().get_logs(from_block=0)]
    assert {s["args"]["worker"] for s in slashes} == {liar.address}
    stake = market.job_record(job_id).replica_stake
    # one slash per task it lied on, never the whole chunk's stake at once
    assert sorted((s["args"]["taskId"], s["args"]["amount"]) for s in slashes) == [
        (f["taskId"], stake) for f in sorted(finals, key=lambda f: f["taskId"])]
    assert market.worker_record(liar.address).slashes == 3
    for a, w in zip(honest, workers[:2], strict=True):
        info = market.worker_record(a.address)
        assert (info.locked, info.slashes) == (0, 0)
        assert all(r.step is Step.DONE and r.data["outcome"] == "won" for r in w.journal.all())


def test_a_split_at_r2_asks_a_third_worker_per_task(anvil, w3, accounts, market, ipfs, docker_client, echo_digest,
                                                    tmp_path) -> None:
    """R = 2, one honest lane against one lying lane: the split leaves every task 1 against 1, so each asks for
    two more replicas. Two workers that join only then must claim those per task (a lane job's tasks are otherwise
    claimed through lanes only): the job settles, the liar is slashed once per task."""
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 20 * ETHER)
    first, liar, late = accounts[4], accounts[5], accounts[6:8]
    for a in (first, liar, *late):
        fund_worker(w3, market, a)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=2, replication=2)
    pair = [Worker(settings(anvil, ipfs, market, a, tmp_path / f"w{i}", batching=LANES,
                            fault="wrong-result" if a is liar else "none"), docker_client=docker_client)
            for i, a in enumerate((first, liar))]
    more = [Worker(settings(anvil, ipfs, market, a, tmp_path / f"late{i}", batching=LANES), docker_client=docker_client)
            for i, a in enumerate(late)]
    with running(*pair):  # two workers: every chunk's two lanes are theirs, so every chunk splits 1 against 1
        wait_for(lambda: sum(e["count"] for e in events(market, "LanesSplit", job_id, "startTaskId")) == 2,
                 timeout=180, what="both tasks split")
        assert market.job_record(job_id).settled == 0
        with running(*more):
            wait_for(lambda: market.job_record(job_id).settled == 2, timeout=180, what="the job settled")
    claims = events(market, "ReplicaClaimed", job_id)
    assert {c["worker"] for c in claims} == {a.address for a in late} and len(claims) == 4
    finals = events(market, "TaskFinalized", job_id)
    assert len(finals) == 2 and {f["winners"] for f in finals} == {3}
    slashes = market.contract.events.WorkerSlashed().get_logs(from_block=0)
    assert sorted(s["args"]["worker"] for s in slashes) == [liar.address] * 2
    for a in (first, *late):
        info = market.worker_record(a.address)
        assert (info.locked, info.slashes) == (0, 0)


def test_a_worker_killed_mid_lane_finishes_it_after_restart(anvil, w3, accounts, market, ipfs, docker_client,
                                                            echo_digest, tmp_path) -> None:
    """kill -9 while the first task of a lane is uploaded and the second runs: restarted, the worker runs the
    second again (not the first), commits and reveals the lane, and the chunk settles; nobody is slashed."""
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 20 * ETHER)
    steady, killed = accounts[4], accounts[7]
    for a in (steady, killed):
        fund_worker(w3, market, a)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=2, replication=2, max_run=300,
                      doc=slow_bag(ipfs, 2, 3))
    batching = {**LANES, "lane_tasks": 2, "claim_ahead_s": 1e6}
    other = Worker(settings(anvil, ipfs, market, steady, tmp_path / "steady", batching=batching),
                   docker_client=docker_client)
    cfg = settings(anvil, ipfs, market, killed, tmp_path / "w", batching=batching)
    path = tmp_path / "w" / "journal.db"

    def first_uploaded() -> bool:
        if not path.exists():
            return False
        recs = {r.task_index: r for r in Journal(path).unfinished()}
        return 0 in recs and recs[0].step is Step.UPLOADED and 1 in recs

    with running(other):
        proc = worker_process(cfg, tmp_path / "cfg.json")
        try:
            wait_for(first_uploaded, what="the lane's first result uploaded")
            proc.kill()
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert market.job_record(job_id).settled == 0
        restarted = worker_process(cfg, tmp_path / "cfg.json")
        try:
            wait_for(lambda: market.job_record(job_id).settled == 2, timeout=120, what="the chunk settled")
        finally:
            restarted.terminate()
            restarted.wait(60)
    journal = Journal(path)
    assert [s for s, _ in journal.history(job_id, 0)].count(Step.RAN) == 1  # uploaded before the kill: not run again
    assert {f["winners"] for f in events(market, "TaskFinalized", job_id)} == {2}
    for a in (steady, killed):
        info = market.worker_record(a.address)
        assert (info.slashes, info.locked) == (0, 0)


def test_a_lane_whose_peer_never_commits_reveals_and_splits_on_an_idle_chain(
        anvil, w3, accounts, market, ipfs, docker_client, echo_digest, tmp_path) -> None:
    """A peer leases the other lane of a one-task chunk and goes silent; nothing else is sent, so no block is mined
    and the last block's time stands still while the chain's clock runs on. The daemon still reveals its lane once
    the commit window passed and splits the chunk once the reveal window passed (both simulated on the pending
    block): the silent peer alone is slashed, and the task asks for more replicas."""
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 20 * ETHER)
    silent, live = accounts[6], accounts[4]
    for a in (silent, live):
        fund_worker(w3, market, a)
    market_of_silent = TxSender(w3, silent, extra_abis=market.error_abis)
    market_of_silent.transact(market.contract.functions.registerWorker(2, 1024, 0, 1))
    market_of_silent.transact(market.contract.functions.stake(2 * ETHER))
    params = market.market_params()  # the shortest windows the contract allows: 60 s each
    owner = TxSender(w3, accounts[0], extra_abis=market.error_abis)
    owner.transact(market.contract.functions.setParams(
        (params.min_stake, params.claim_grace, 60, 60, params.unstake_delay, params.callback_gas,
         params.replica_stake, params.fee_bps, params.max_replicas, params.max_slashes, params.abandon_bps)))
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1, replication=2, max_run=30)
    start = task_id(job_id, 0)
    market_of_silent.transact(market.contract.functions.claimLane(start, 1))
    worker = Worker(settings(anvil, ipfs, market, live, tmp_path / "w", batching=LANES), docker_client=docker_client)
    c = market.contract
    with running(worker):
        wait_for(lambda: c.events.LanesSplit().get_logs(from_block=0), timeout=240,
                 what="the live lane revealed and the chunk split (commit and reveal windows: 60 s each)")
        wait_for(lambda: worker.journal.get(job_id, 0).step is Step.REVEALED
                 and worker.journal.get(job_id, 0).data.get("replica") == 1, timeout=30,
                 what="the daemon following its task as a replica")
    assert [e["args"]["worker"] for e in c.events.LaneRevealed().get_logs(from_block=0)] == [live.address]
    assert [(e["args"]["worker"], e["args"]["taskId"]) for e in c.events.WorkerSlashed().get_logs(from_block=0)] \
        == [(silent.address, start)]
    assert [e["args"]["target"] for e in c.events.ReplicasAdded().get_logs(from_block=0)] == [4]
    assert market.worker_record(live.address).slashes == 0


def _lone_lane_job(w3, market: Market, accounts, ipfs, echo_digest: str, *, tasks: int) -> tuple[int, Any, Any]:
    """An R = 2 job of ``tasks`` echo tasks (long runs: a lane outlives a jump past the claim grace) and two funded
    workers: (job id, the one that will lease a lane alone, the per-task one)."""
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 20 * ETHER)
    laner, plain = accounts[4], accounts[5]
    for a in (laner, plain):
        fund_worker(w3, market, a)
    return post_job(w3, market, accounts[1], ipfs, app_id, tasks=tasks, replication=2, max_run=600), laner, plain


def _all_uploaded(worker: Worker) -> bool:
    recs = worker.journal.all()
    return bool(recs) and all(r.step >= Step.UPLOADED for r in recs)


def _past_claim_grace(w3, market: Market) -> None:
    """The claim grace passes with no other lane: the chain's clock jumps past it."""
    w3.provider.make_request("evm_increaseTime", [market.market_params().claim_grace + 5])
    w3.provider.make_request("evm_mine", [])


@pytest.mark.reliability(kind="fault", name="a lane worker alone among per-task workers",
                         how="a daemon leasing lanes starts a chunk of an R = 2 job whose other worker does not lease "
                             "lanes; past the claim grace it dissolves the chunk and claims its tasks per task in one "
                             "multicall: nothing slashed, each result computed once, the job settled")
def test_a_lone_lane_among_per_task_workers_dissolves_and_its_results_go_on_per_task(
        anvil, w3, accounts, market, ipfs, docker_client, echo_digest, tmp_path) -> None:
    """A lane worker starts a chunk of an R = 2 job; its peer does not lease lanes, so no other lane comes. Once the
    claim grace of the chunk passed, the lane worker dissolves it and claims its tasks per task in the same
    transaction (nothing slashed), and goes on with the results it already computed as per-task replicas: each task
    ran once there, and the job settles with both workers paid."""
    job_id, laner, plain = _lone_lane_job(w3, market, accounts, ipfs, echo_digest, tasks=3)
    lane_worker = Worker(settings(anvil, ipfs, market, laner, tmp_path / "lane", batching=LANES),
                         docker_client=docker_client)
    per_task = Worker(settings(anvil, ipfs, market, plain, tmp_path / "plain", batching={"lanes": False}),
                      docker_client=docker_client)
    c = market.contract
    with running(lane_worker):
        wait_for(lambda: _all_uploaded(lane_worker), timeout=120, what="the lone lane's results uploaded")
        claimed = [e["args"] for e in c.events.LaneClaimed().get_logs(from_block=0)]
        assert len(claimed) == 1  # one chunk: it waits alone for its other lane, so the worker starts no other
        chunk = range(split_task_id(claimed[0]["startTaskId"])[1], split_task_id(claimed[0]["startTaskId"])[1]
                      + claimed[0]["count"])
        _past_claim_grace(w3, market)
        with running(per_task):
            wait_for(lambda: market.job_record(job_id).settled == 3, timeout=180, what="the job settled")
            wait_for(lambda: all(r.step is Step.DONE for w in (lane_worker, per_task) for r in w.journal.all()),
                     timeout=60, what="both journals done")
    assert [e["args"]["count"] for e in c.events.LanesDissolved().get_logs(from_block=0)] == [len(chunk)]
    assert not c.events.WorkerSlashed().get_logs(from_block=0)
    assert not c.events.LaneRevealed().get_logs(from_block=0)  # the chunk never ran as lanes
    assert {f["winners"] for f in events(market, "TaskFinalized", job_id)} == {2}
    for i in chunk:  # computed once, before the dissolve, and committed per task
        assert [s for s, _ in lane_worker.journal.history(job_id, i)].count(Step.RAN) == 1
        assert lane_worker.journal.get(job_id, i).data["outcome"] == "won"
    for a in (laner, plain):
        info = market.worker_record(a.address)
        assert (info.slashes, info.locked) == (0, 0)


@pytest.mark.reliability(kind="fault", name="a lane worker killed between its dissolve and its journal",
                         how="the dissolve and per-task claims of a lone lane land, the journal still holds the lane; "
                             "the restarted daemon finds its replicas on chain and commits its results as theirs: "
                             "nothing slashed, nothing run twice")
def test_a_dissolve_that_landed_before_a_crash_is_taken_up_after_the_restart(
        anvil, w3, accounts, market, ipfs, docker_client, echo_digest, tmp_path) -> None:
    """The daemon's dissolve and per-task claims land, then it dies before journaling them: its journal still
    holds the lane. After the restart it finds the chunk gone and its own replicas on chain, and commits its results
    as those replicas (not given up: they would expire and be slashed)."""
    job_id, laner, plain = _lone_lane_job(w3, market, accounts, ipfs, echo_digest, tasks=2)
    state = tmp_path / "lane"
    first = Worker(settings(anvil, ipfs, market, laner, state, batching=LANES), docker_client=docker_client)
    with running(first):
        wait_for(lambda: _all_uploaded(first), timeout=120, what="the lone lane's results uploaded")
    c = market.contract
    a = c.events.LaneClaimed().get_logs(from_block=0)[0]["args"]
    start, count = int(a["startTaskId"]), int(a["count"])
    _past_claim_grace(w3, market)
    # what the daemon sends, landed, with no journal entry after it (the crash)
    TxSender(w3, laner, extra_abis=market.error_abis).transact(c.functions.multicall([
        c.encode_abi("dissolveLanes", [start, count]),
        c.encode_abi("claimSome", [[start + i for i in range(count)], count])]))
    restarted = Worker(settings(anvil, ipfs, market, laner, state, batching=LANES), docker_client=docker_client)
    per_task = Worker(settings(anvil, ipfs, market, plain, tmp_path / "plain", batching={"lanes": False}),
                      docker_client=docker_client)
    with running(restarted, per_task):
        wait_for(lambda: market.job_record(job_id).settled == 2, timeout=180, what="the job settled")
    assert not c.events.WorkerSlashed().get_logs(from_block=0)
    for i in range(split_task_id(start)[1], split_task_id(start)[1] + count):
        assert [s for s, _ in restarted.journal.history(job_id, i)].count(Step.RAN) == 1
    for who in (laner, plain):
        assert market.worker_record(who.address).locked == 0
