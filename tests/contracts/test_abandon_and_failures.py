"""Giving a claim back early (abandon) and R = 1 failures that need a second worker's confirmation
(reportFailure): what an honest worker's environment costs it is a small fee, never a slash."""

from __future__ import annotations

import pytest
from market_helpers import E18, Env, reverts

from oracle.protocol import task_id

F1 = b"\xf1" * 32
F2 = b"\xf2" * 32
OK = b"\x0a" * 32


def _job(env: Env, replication: int = 1, tasks: int = 4, **kw: object) -> int:
    app = env.app(price=E18 // 10)
    env.fund(env.requester, 100 * E18)
    for w in env.workers[:4]:
        env.enroll(w)
    return env.post(app, numTasks=tasks, replication=replication, maxRunSeconds=100, **kw)


@pytest.mark.reliability(kind="attack", name="a requester farming honest workers' give-backs",
                         how="a worker abandons a lease (its input unreachable): the fee goes to the treasury, the "
                             "requester gains nothing, the worker loses no reputation and no slash is counted")
def test_abandoning_a_lease_reopens_its_rest_for_a_fee_to_the_treasury(env: Env) -> None:
    job = _job(env)
    a, b = env.workers[:2]
    start = task_id(job, 0)
    env.tx(env.market.functions.claimRange(start, 3), a)
    env.tx(env.market.functions.submitRange(start, start, [OK], ["bafyok"], []), a)  # task 0 done
    treasury, requester = env.balance(env.owner), env.balance(env.requester)
    receipt = env.tx(env.market.functions.abandon(start), a)
    fee = 2 * E18 * 1000 // 10_000  # 10 % of the two tasks' locked stake
    assert env.events(receipt, "ClaimAbandoned") == [{"taskId": start, "worker": a.address, "tasks": 2, "fee": fee}]
    info = env.worker(a)
    assert (info["locked"], info["stake"], info["slashes"], info["reputation"]) == (0, 10 * E18 - fee, 0, 1)
    assert env.balance(env.owner) == treasury + fee and env.balance(env.requester) == requester  # never the requester
    assert not env.market.functions.isTaken(task_id(job, 1)).call()
    env.tx(env.market.functions.claim(task_id(job, 1)), b)  # open again at once
    reverts(env, env.market.functions.abandon(start), a, "MarketplaceUnknownLease", {"startTaskId": start})


@pytest.mark.reliability(kind="attack", name="abandoning a replica after committing, to dodge the vote",
                         how="a replica that committed tries to give its claim back before the reveals: refused")
def test_abandoning_a_replica_frees_its_slot_but_not_after_commit(env: Env) -> None:
    job = _job(env, replication=2, tasks=1)
    a, b, c = env.workers[:3]
    tid = task_id(job, 0)
    env.tx(env.market.functions.claim(tid), a)
    env.tx(env.market.functions.claim(tid), b)
    env.tx(env.market.functions.commit(tid, b"\x01" * 32), b)
    reverts(env, env.market.functions.abandon(tid), b, "MarketplaceCannotAbandonCommitted",
            {"taskId": tid, "worker": b.address})
    receipt = env.tx(env.market.functions.abandon(tid), a)
    assert env.events(receipt, "ClaimAbandoned")[0]["fee"] == E18 // 10
    assert env.worker(a)["locked"] == 0
    env.tx(env.market.functions.claim(tid), c)  # a's slot is free for another worker
    reverts(env, env.market.functions.abandon(tid), env.workers[3], "MarketplaceNotClaimant",
            {"taskId": tid, "worker": env.workers[3].address})


@pytest.mark.reliability(kind="attack", name="a worker confirming its own failure report",
                         how="a lazy R = 1 worker reports a failure, claims the reopened task again and reports the "
                             "same digest: refused (MarketplaceSelfConfirmation); only another worker confirms it")
def test_a_failure_is_final_only_when_a_second_worker_confirms_it(env: Env) -> None:
    job = _job(env, tasks=2)
    a, b = env.workers[:2]
    tid = task_id(job, 0)
    env.tx(env.market.functions.claim(tid), a)
    receipt = env.tx(env.market.functions.reportFailure(tid, F1, "bafyfail-a"), a)
    assert env.events(receipt, "FailureReported") == [
        {"taskId": tid, "worker": a.address, "resultDigest": F1, "resultCID": "bafyfail-a", "reports": 1}]
    assert env.worker(a)["locked"] == 0 and env.balance(a) == 0 and env.job(job)["settled"] == 0
    assert not env.market.functions.isTaken(tid).call()  # open for a second worker
    # the reporter cannot confirm its own failure
    env.tx(env.market.functions.claim(tid), a)
    reverts(env, env.market.functions.reportFailure(tid, F1, "x"), a, "MarketplaceSelfConfirmation",
            {"taskId": tid, "worker": a.address})
    env.tx(env.market.functions.abandon(tid), a)
    env.tx(env.market.functions.claim(tid), b)
    receipt = env.tx(env.market.functions.reportFailure(tid, F1, "bafyfail-b"), b)
    assert env.events(receipt, "FailureConfirmed") == [
        {"taskId": tid, "resultDigest": F1, "firstWorker": a.address, "confirmer": b.address, "rewardEach": E18 // 2}]
    assert env.balance(b) == E18 // 2 and env.worker(b)["reputation"] == 1 and env.worker(a)["reputation"] == 1
    assert (env.job(job)["settled"], env.job(job)["finished"]) == (1, 1)
    assert env.view("getFailure", tid)["worker"] == "0x" + "00" * 20


def test_different_failures_replace_each_other_until_the_cap_then_the_task_is_refunded(env: Env) -> None:
    p = env.params()
    p["maxReplicas"] = 3
    env.tx(env.market.functions.setParams(tuple(p.values())), env.owner)
    job = _job(env, tasks=2)
    tid = task_id(job, 1)
    before = env.balance(env.requester)
    for k, (w, digest) in enumerate(((env.workers[0], F1), (env.workers[1], F2), (env.workers[2], F1)), start=1):
        env.tx(env.market.functions.claim(tid), w)
        receipt = env.tx(env.market.functions.reportFailure(tid, digest, f"bafy{k}"), w)
        assert env.events(receipt, "FailureReported")[0]["reports"] == k
    # the third report: F1 again, but the pending one was F2 (from workers[1]): no match, and the cap is reached
    assert env.events(receipt, "TaskFailed") == [{"taskId": tid, "refund": E18 + E18 // 10}]
    assert env.balance(env.requester) == before + E18 + E18 // 10
    assert env.market.functions.isTaken(tid).call()  # nobody claims it again


def test_a_success_after_a_pending_failure_settles_normally_and_a_deadline_refunds_a_pending_one(env: Env) -> None:
    job = _job(env, tasks=2)
    a, b = env.workers[:2]
    t0, t1 = task_id(job, 0), task_id(job, 1)
    env.tx(env.market.functions.claim(t0), a)
    env.tx(env.market.functions.reportFailure(t0, F1, "bafyfail"), a)
    env.tx(env.market.functions.claim(t0), b)
    receipt = env.tx(env.market.functions.submit(t0, OK, "bafyok", b""), b)
    assert env.events(receipt, "ResultSubmitted")[0]["worker"] == b.address and env.balance(b) == E18
    env.tx(env.market.functions.claim(t1), a)
    env.tx(env.market.functions.reportFailure(t1, F1, "bafyfail"), a)
    env.warp(env.job(job)["deadline"] - env.now() + 1)
    receipt = env.tx(env.market.functions.closeJob(job), env.outsider)
    assert env.events(receipt, "JobClosed")[0]["refund"] == E18 + E18 // 10  # the pending task's escrow


def test_abandon_and_report_go_in_one_multicall(env: Env) -> None:
    job = _job(env, tasks=3)
    a = env.workers[0]
    m = env.market
    env.tx(m.functions.claimSome([task_id(job, i) for i in range(3)], 3), a)
    calls = [m.encode_abi("reportFailure", [task_id(job, 0), F1, "bafyf"]), m.encode_abi("abandon", [task_id(job, 1)]),
             m.encode_abi("submit", [task_id(job, 2), OK, "bafyok", b""])]
    receipt = env.tx(m.functions.multicall(calls), a)
    assert [len(env.events(receipt, n)) for n in ("FailureReported", "ClaimAbandoned", "ResultSubmitted")] == [1, 1, 1]
    assert env.worker(a)["locked"] == 0


def test_a_failed_first_task_of_a_live_lease_cannot_be_leased_over_it(env: Env) -> None:
    """A lease's first task reported failed reopens while its id still keys the live lease: a new lease there
    would overwrite the old one, so it is refused (claim) or skipped (claimSome) until that lease ends."""
    job = _job(env, tasks=3)
    a, b = env.workers[:2]
    start = task_id(job, 0)
    env.tx(env.market.functions.claimRange(start, 3), a)
    env.tx(env.market.functions.reportFailure(start, F1, "bafyf"), a)
    assert not env.market.functions.isTaken(start).call()
    reverts(env, env.market.functions.claim(start), b, "MarketplaceTaskTaken", {"taskId": start})
    assert env.market.functions.claimSome([start], 1).call({"from": b.address}) == 0
    env.tx(env.market.functions.submitRange(start, start + 1, [OK, OK], ["c1", "c2"], []), a)  # the lease ends
    env.tx(env.market.functions.claim(start), b)  # now the failed task can be confirmed or redone
    assert env.lease(start)["worker"] == b.address
