"""Faults injected into the worker process itself: ``kill -9`` at every step of a task, for R = 1 and R = 2.

Each test runs real ``tasknet worker run`` processes against a private anvil (so it may move the chain's clock),
the session's kubo and Docker engine. The crash points are the daemon's own fault hooks (``--fault crash-after-…``
calls ``os._exit(137)`` right after the step is journaled, exactly what ``kill -9`` at that instant does) and a
real SIGKILL sent while the task's container runs. The end state is always read from the chain: every task has
exactly one final event, and stakes are what an honest worker must keep.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from oracle.protocol import task_id
from tests.integration.test_worker import task_containers
from tests.market_helpers import ETHER, fund, post_job, register_app
from tests.reliability.fault_helpers import (
    STAKE,
    PrivateChain,
    WorkerProc,
    assert_settled_once,
    assert_stake_intact,
    journal_step,
    journal_steps,
    result_digest_matches,
    tails,
    wait_for,
    worker_settings,
    workers_stopped,
)
from worker import sandbox_owner
from worker._journal import Step

CRASHED = 137  # os._exit(137) at the fault point: what a shell reports for a process killed by SIGKILL


def _market_ready(chain: PrivateChain, ipfs, digest: str, workers: int) -> tuple[int, list]:
    """Register the echo app, fund the requester (dev account 1) and ``workers`` fresh worker accounts."""
    a = chain.accounts
    app_id = register_app(chain.w3, chain.market, a[2], digest)
    fund(chain.w3, chain.market, a[1], 50 * ETHER)
    ws = [chain.new_worker() for _ in range(workers)]
    for w in ws:
        fund(chain.w3, chain.market, w, 10 * ETHER)
    return app_id, ws


def _proc(chain: PrivateChain, ipfs, tmp: Path, acct, name: str, **kw) -> WorkerProc:
    return WorkerProc(worker_settings(chain, ipfs.api_url, acct, tmp / name / "state", **kw), tmp / name)


def _claims_by(market, worker: str, tid: int) -> int:
    """Claims of task ``tid`` by ``worker`` on chain (TasksClaimed for R = 1; ReplicaClaimed, or a lane whose chunk
    holds the task, LaneClaimed, for R > 1)."""
    r1 = market.contract.events.TasksClaimed().get_logs(from_block=0, argument_filters={"startTaskId": tid})
    r2 = market.contract.events.ReplicaClaimed().get_logs(from_block=0, argument_filters={"taskId": tid})
    lanes = [e for e in market.contract.events.LaneClaimed().get_logs(from_block=0)
             if e["args"]["startTaskId"] <= tid < e["args"]["startTaskId"] + e["args"]["count"]]
    return sum(1 for e in [*r1, *r2, *lanes] if e["args"]["worker"] == worker)


def _mark(point: str, r: int, how: str):
    return pytest.mark.reliability(kind="fault", name=f"kill -9 after {point.removeprefix('crash-after-')} (R={r})",
                                   how=how)


KILL_CASES = [
    pytest.param("crash-after-claim", 1, Step.CLAIMED, False, id="claim-R1", marks=_mark(
        "crash-after-claim", 1, "worker process exits 137 right after its claim is mined and journaled; restarted "
        "with the same state folder; checks one final event, no second claim, stake intact")),
    pytest.param("crash-after-run", 1, Step.RAN, False, id="run-R1", marks=_mark(
        "crash-after-run", 1, "worker exits 137 after the container ran (result not yet packed); restarted; checks "
        "the task is redone and submitted once, stake intact")),
    pytest.param("crash-after-upload", 1, Step.UPLOADED, False, id="upload-R1", marks=_mark(
        "crash-after-upload", 1, "worker exits 137 after the result is on IPFS, before submit; restarted; checks "
        "the journaled CID is the one submitted, its archive matches the digest, stake intact")),
    pytest.param("crash-after-upload", 2, Step.UPLOADED, False, id="upload-R2", marks=_mark(
        "crash-after-upload", 2, "worker A exits 137 after upload, before its commit; worker B runs the other "
        "replica; A restarted commits and reveals; checks TaskFinalized once with 2 winners, both stakes intact")),
    pytest.param("crash-after-commit", 2, Step.COMMITTED, False, id="commit-R2", marks=_mark(
        "crash-after-commit", 2, "worker A exits 137 after its commitment is mined; B commits; A restarted reveals "
        "within the window; checks TaskFinalized once, 2 winners, A not slashed")),
    pytest.param("crash-after-reveal", 2, Step.REVEALED, False, id="reveal-R2", marks=_mark(
        "crash-after-reveal", 2, "worker A exits 137 after its reveal is mined; B reveals and the task finalizes; "
        "A restarted records the outcome; checks TaskFinalized once, 2 winners, both stakes intact")),
    # the same crash points through lanes (batching.lanes: commitLane, revealLane for a chunk of the one task)
    pytest.param("crash-after-upload", 2, Step.UPLOADED, True, id="upload-R2-lanes", marks=_mark(
        "crash-after-upload", 2, "through lanes: worker A exits 137 after upload, before its commitLane; B leases "
        "the other lane; A restarted commits and reveals its lane; the chunk settles once, 2 winners, stakes intact")),
    pytest.param("crash-after-commit", 2, Step.COMMITTED, True, id="commit-R2-lanes", marks=_mark(
        "crash-after-commit", 2, "through lanes: A exits 137 after its commitLane is mined; B commits; A restarted "
        "finds its root on chain and reveals its lane; the chunk settles once, 2 winners, A not slashed")),
    pytest.param("crash-after-reveal", 2, Step.REVEALED, True, id="reveal-R2-lanes", marks=_mark(
        "crash-after-reveal", 2, "through lanes: A exits 137 after its revealLane is mined; B reveals and the chunk "
        "settles; A restarted records the outcome (won); 2 winners, both stakes intact")),
]


@pytest.mark.parametrize(("fault", "replication", "step", "lanes"), KILL_CASES)
def test_kill9_at_each_step_resumes_and_keeps_the_stake(fault_chain: PrivateChain, ipfs, docker_client,
                                                        fault_echo_digest, tmp_path, record_property,
                                                        fault: str, replication: int, step: Step, lanes: bool) -> None:
    chain, market = fault_chain, fault_chain.market
    app_id, ws = _market_ready(chain, ipfs, fault_echo_digest, workers=replication)
    job = post_job(chain.w3, market, chain.accounts[1], ipfs, app_id, tasks=1, replication=replication)
    a = _proc(chain, ipfs, tmp_path, ws[0], "A", batching={"lanes": lanes})
    b = _proc(chain, ipfs, tmp_path, ws[1], "B", batching={"lanes": lanes}) if replication > 1 else None
    procs = [p for p in (a, b) if p is not None]
    with workers_stopped(*procs):
        a.start(fault)
        if b is not None and fault == "crash-after-reveal":
            b.start()  # A can only reveal once B committed too
        rc = a.wait_exit(180)
        assert rc == CRASHED, f"worker A exited {rc}, not at the fault point:\n{a.tail()}"
        assert a.events("fault_injected"), a.tail()
        crashed_at = journal_step(a, job, 0)
        assert crashed_at == step, f"journal says {crashed_at!r} after crashing at {fault}"
        j = a.journal()
        before = j.get(job, 0)
        j.close()
        if b is not None and not b.alive():
            b.start()
        a.start()  # the same state folder: the restarted daemon resumes from its journal
        wait_for(lambda: market.job_record(job).settled == 1, 180, "the task to settle", on_timeout=tails(*procs))
        wait_for(lambda: all(journal_step(p, job, 0) == Step.DONE for p in procs), 60,
                 "every worker to record the outcome", on_timeout=tails(*procs))
    evidence = [f"A exited {rc} at {fault} with journal step {crashed_at.name}", assert_settled_once(market, job, 1)]
    history = journal_steps(a, job, 0)
    tid = task_id(job, 0)
    assert _claims_by(market, ws[0].address, tid) == 1, "A claimed twice"  # resumed, not re-claimed
    if lanes:  # the lanes' way, not the per-task one
        assert not market.contract.events.ReplicaClaimed().get_logs(from_block=0, argument_filters={"taskId": tid})
        assert len(market.contract.events.LaneRevealed().get_logs(from_block=0)) == 2
    if replication == 1:
        sub = market.contract.events.ResultSubmitted().get_logs(from_block=0, argument_filters={"taskId": tid})
        assert [e["args"]["worker"] for e in sub] == [ws[0].address]
        cid, digest = sub[0]["args"]["resultCID"], sub[0]["args"]["resultDigest"]
        if step >= Step.UPLOADED:  # nothing redone: the result uploaded before the crash is the one submitted
            assert (cid, "0x" + bytes(digest).hex()) == (before.data["cid"], before.data["digest"])
        assert result_digest_matches(ipfs, cid, digest, tmp_path)
    else:
        fin = market.contract.events.TaskFinalized().get_logs(from_block=0, argument_filters={"taskId": tid})
        assert fin[0]["args"]["winners"] == 2, fin
        assert journal_step(b, job, 0) == Step.DONE
        mine = [e["args"] for e in market.contract.events.ResultRevealed().get_logs(
            from_block=0, argument_filters={"taskId": tid}) if e["args"]["worker"] == ws[0].address]
        assert len(mine) == 1, mine
        if step >= Step.UPLOADED:  # A revealed the result it had uploaded (and committed to) before the crash
            assert (mine[0]["resultCID"], "0x" + bytes(mine[0]["resultDigest"]).hex()) == \
                (before.data["cid"], before.data["digest"])
        assert result_digest_matches(ipfs, mine[0]["resultCID"], mine[0]["resultDigest"], tmp_path)
    for w in ws:
        evidence.append(assert_stake_intact(market, w.address))
        assert market.worker_record(w.address).reputation == 1
    evidence.append(f"A's journal history {[s.name for s in history]}")
    record_property("reliability", "; ".join(evidence))


@pytest.mark.reliability(
    kind="fault", name="SIGKILL while the task's container runs",
    how="real SIGKILL to the worker process while its app container runs (sleep 3); the container is orphaned; the "
        "restarted worker removes it, re-runs the task and submits once; stake intact, no container left")
def test_sigkill_during_the_container_run_cleans_up_and_resumes(fault_chain: PrivateChain, ipfs, docker_client,
                                                                fault_echo_digest, tmp_path, record_property) -> None:
    chain, market = fault_chain, fault_chain.market
    app_id, ws = _market_ready(chain, ipfs, fault_echo_digest, workers=1)
    data_cid = ipfs.add_bytes(b"slow input\n")
    job = post_job(chain.w3, market, chain.accounts[1], ipfs, app_id, tasks=1, doc={"tasks": [
        {"args": ["sleep", "3"], "inputs": [{"uri": f"ipfs://{data_cid}", "path": "data.txt"}]}]})
    a = _proc(chain, ipfs, tmp_path, ws[0], "A")
    owner = sandbox_owner(ws[0].address, tmp_path / "A" / "state")
    selector = {"label": f"tasknet.sandbox={owner}"}

    def app_running() -> bool:
        return bool(task_containers(docker_client, owner))

    try:
        with workers_stopped(a):
            a.start()
            wait_for(app_running, 120, "the task's container to run", interval=0.05, on_timeout=tails(a))
            a.kill9()
            orphans = docker_client.containers.list(all=True, filters=selector)
            assert orphans, "the SIGKILL should have left the task's containers behind"
            assert journal_step(a, job, 0) in (Step.CLAIMED, Step.INPUTS_READY)
            a.start()
            wait_for(lambda: market.job_record(job).settled == 1, 180, "the resumed task to settle", on_timeout=tails(a))
            wait_for(lambda: journal_step(a, job, 0) == Step.DONE, 60, "the journal to say DONE")
        left = [c.name for c in docker_client.containers.list(all=True, filters=selector)
                if c.labels.get("tasknet.role") in ("app", "reused")]
        assert not left, f"task containers left behind: {left}"
        evidence = [f"{len(orphans)} orphaned container(s) after SIGKILL, none left at the end",
                    assert_settled_once(market, job, 1), assert_stake_intact(market, ws[0].address)]
        assert _claims_by(market, ws[0].address, task_id(job, 0)) == 1
        sub = market.contract.events.ResultSubmitted().get_logs(from_block=0)
        assert result_digest_matches(ipfs, sub[0]["args"]["resultCID"], sub[0]["args"]["resultDigest"], tmp_path)
        record_property("reliability", "; ".join(evidence))
    finally:
        for c in docker_client.containers.list(all=True, filters=selector):
            c.remove(force=True)
        for v in docker_client.volumes.list(filters=selector):
            v.remove(force=True)


@pytest.mark.parametrize(("replication", "lanes"), [
    pytest.param(1, False, id="R1-reopenLease", marks=pytest.mark.reliability(
        kind="fault", name="crashed worker never returns (R=1)",
        how="worker A exits 137 after its claim and is not restarted; the chain clock is moved past the lease "
            "expiry; worker B reopens the lease (A slashed one replica stake), claims and submits; checks one "
            "ResultSubmitted by B, A the only one slashed")),
    pytest.param(2, False, id="R2-reopenExpired", marks=pytest.mark.reliability(
        kind="fault", name="crashed worker never returns (R=2)",
        how="worker A exits 137 after claiming a replica and stays down; B runs and commits the other replica; the "
            "clock passes A's claim expiry; worker C calls reopenExpired (A slashed), claims the freed slot; the "
            "task finalizes once with B and C as winners; only A lost stake")),
    pytest.param(2, True, id="R2-lanes-reopenLanes", marks=pytest.mark.reliability(
        kind="fault", name="crashed worker never returns (R=2, lanes)",
        how="the same through lanes (batching.lanes): A exits 137 after claiming a lane and stays down; B leases the "
            "other lane and commits; the clock passes A's lane expiry; worker C calls reopenLanes (A slashed), "
            "leases the freed lane; the chunk settles once with B and C as winners; only A lost stake")),
])
def test_crashed_worker_that_never_returns_is_replaced_and_alone_slashed(fault_chain: PrivateChain, ipfs,
                                                                        docker_client, fault_echo_digest, tmp_path,
                                                                        record_property, replication: int,
                                                                        lanes: bool) -> None:
    chain, market = fault_chain, fault_chain.market
    app_id, ws = _market_ready(chain, ipfs, fault_echo_digest, workers=3)
    job = post_job(chain.w3, market, chain.accounts[1], ipfs, app_id, tasks=1, replication=replication, max_run=30)
    a, b, c = (_proc(chain, ipfs, tmp_path, w, name, batching={"lanes": lanes}) for w, name in zip(ws, "ABC", strict=True))
    replica_stake = int(market.market_params().replica_stake)
    grace = int(market.market_params().claim_grace)
    with workers_stopped(a, b, c):
        assert a.start("crash-after-claim").wait_exit(180) == CRASHED, a.tail()
        assert market.worker_record(ws[0].address).locked == replica_stake
        finisher = b
        if replication == 2:  # B takes the other replica and commits; then it waits for a peer that is dead
            b.start()
            wait_for(lambda: journal_step(b, job, 0) == Step.COMMITTED, 120, "B to commit", on_timeout=tails(b))
            finisher = c
        chain.warp(30 + grace + 5)  # past A's claim expiry (max run + claim grace)
        finisher.start()
        wait_for(lambda: market.job_record(job).settled == 1, 180, "the task to settle without A",
                 on_timeout=tails(a, b, c))
    evidence = [assert_settled_once(market, job, 1)]
    tid = task_id(job, 0)
    if replication == 1:
        sub = market.contract.events.ResultSubmitted().get_logs(from_block=0, argument_filters={"taskId": tid})
        assert [e["args"]["worker"] for e in sub] == [ws[1].address]
        assert len(market.contract.events.LeaseExpired().get_logs(from_block=0)) == 1
        honest = [ws[1]]
        evidence.append("B reopened A's expired lease and submitted")
    else:
        fin = market.contract.events.TaskFinalized().get_logs(from_block=0, argument_filters={"taskId": tid})
        assert fin[0]["args"]["winners"] == 2
        # A's replica, or its lane (the daemons lease lanes: PROTOCOL.md, "Lanes"), expired and was reopened
        expired = [*market.contract.events.ClaimExpired().get_logs(from_block=0),
                   *market.contract.events.LaneExpired().get_logs(from_block=0)]
        assert [e["args"]["worker"] for e in expired] == [ws[0].address]
        honest = [ws[1], ws[2]]
        evidence.append(f"C called {'reopenLanes' if expired[0]['event'] == 'LaneExpired' else 'reopenExpired'} "
                        "on A's claim, took the slot; B and C won")
    slashed = market.contract.events.WorkerSlashed().get_logs(from_block=0)
    assert [e["args"]["worker"] for e in slashed] == [ws[0].address], slashed
    info = market.worker_record(ws[0].address)
    assert (info.stake, info.locked, info.slashes) == (STAKE - replica_stake, 0, 1), info
    evidence.append(f"A alone slashed: stake {STAKE // ETHER} -> {info.stake / ETHER:g}, slashes 1")
    for w in honest:
        evidence.append(assert_stake_intact(market, w.address))
    record_property("reliability", "; ".join(evidence))

