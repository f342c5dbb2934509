"""R = 1 jobs: claims and range leases, one-step results, ranged and relayed (signed) results, expiry."""

from __future__ import annotations

import pytest
from eth_account import Account
from market_helpers import E18, Env, reverts

from oracle.protocol import results_batch, task_id

D = b"\xd1" * 32


@pytest.fixture
def job(env: Env) -> int:
    """A 10-task R=1 job (reward 1 token, app price 0.1) and two enrolled workers."""
    app = env.app(price=E18 // 10)
    env.fund(env.requester, 100 * E18)
    for w in env.workers[:2]:
        env.enroll(w)
    return env.post(app, numTasks=10, maxRunSeconds=100)


def test_claim_locks_stake_and_submit_pays_the_worker(env: Env, job: int) -> None:
    w = env.workers[0]
    tid = task_id(job, 3)
    receipt = env.tx(env.market.functions.claim(tid), w)
    ev = env.events(receipt, "TasksClaimed")[0]
    assert (ev["startTaskId"], ev["worker"], ev["count"]) == (tid, w.address, 1)
    assert ev["expiry"] == env.now() + 100 + 300
    assert env.worker(w)["locked"] == E18 and env.market.functions.isTaken(tid).call()
    receipt = env.tx(env.market.functions.submit(tid, D, "bafyRESULT", b""), w)
    assert env.events(receipt, "ResultSubmitted") == [
        {"taskId": tid, "worker": w.address, "resultDigest": D, "resultCID": "bafyRESULT"}]
    info = env.worker(w)
    assert (info["locked"], info["reputation"]) == (0, 1)
    assert env.balance(w) == E18  # the reward; the stake stays staked
    assert env.lease(tid)["worker"] == "0x" + "00" * 20
    assert env.job(job)["finished"] == 1


def test_fee_goes_to_the_treasury(env: Env, job: int) -> None:
    p = env.params()
    p["feeBps"] = 1000
    env.tx(env.market.functions.setParams(tuple(p.values())), env.owner)
    app = env.app()
    j = env.post(app, numTasks=1)
    w = env.workers[0]
    treasury_before = env.balance(env.owner)
    env.tx(env.market.functions.claim(task_id(j, 0)), w)
    env.tx(env.market.functions.submit(task_id(j, 0), D, "c", b""), w)
    assert env.balance(w) == E18 - E18 // 10
    assert env.balance(env.owner) - treasury_before == E18 // 10


@pytest.mark.reliability(kind="attack", name="claim without registering, capabilities or stake",
                         how="an outsider, an under-equipped worker and a worker without free stake try to claim: "
                             "each refused with its error")
def test_claim_checks_the_worker(env: Env, job: int) -> None:
    claim = env.market.functions.claim
    tid = task_id(job, 0)
    o = env.outsider
    reverts(env, claim(tid), o, "MarketplaceNotWorker", {"account": o.address})
    env.enroll(o, stake=0, cores=1, memory=256)
    reverts(env, claim(tid), o, "MarketplaceCapabilityMismatch", {"worker": o.address, "jobId": job})
    env.tx(env.market.functions.registerWorker(8, 16_000, 0, 1), o)
    reverts(env, claim(tid), o, "MarketplaceInsufficientStake", {"worker": o.address, "available": 0, "required": E18})
    env.fund(o, E18)
    env.tx(env.market.functions.stake(E18), o)
    env.tx(claim(tid), o)
    reverts(env, claim(task_id(job, 1)), o, "MarketplaceInsufficientStake",
            {"worker": o.address, "available": 0, "required": E18})


@pytest.mark.reliability(kind="attack", name="claim without the architecture, GPUs or reputation",
                         how="jobs needing arm64, a GPU or reputation 5 refuse an amd64, GPU-less, reputation-0 "
                             "worker")
def test_claim_checks_architecture_gpus_and_reputation(env: Env, job: int) -> None:
    app = env.app()
    w = env.workers[0]
    arm = env.post(app, archMask=2)
    reverts(env, env.market.functions.claim(task_id(arm, 0)), w, "MarketplaceCapabilityMismatch",
            {"worker": w.address, "jobId": arm})
    gpu = env.post(app, gpus=1)
    reverts(env, env.market.functions.claim(task_id(gpu, 0)), w, "MarketplaceCapabilityMismatch",
            {"worker": w.address, "jobId": gpu})
    picky = env.post(app, minReputation=5)
    reverts(env, env.market.functions.claim(task_id(picky, 0)), w, "MarketplaceReputationTooLow",
            {"worker": w.address, "reputation": 0, "required": 5})
    anyarch = env.post(app, archMask=3)
    env.tx(env.market.functions.claim(task_id(anyarch, 0)), w)


def test_claim_checks_the_task(env: Env, job: int) -> None:
    w, v = env.workers[:2]
    claim = env.market.functions.claim
    env.tx(claim(task_id(job, 0)), w)
    reverts(env, claim(task_id(job, 0)), v, "MarketplaceTaskTaken", {"taskId": task_id(job, 0)})
    reverts(env, claim(task_id(job, 10)), v, "MarketplaceTaskOutOfRange", {"jobId": job, "index": 10, "numTasks": 10})
    reverts(env, claim(task_id(99, 0)), v, "MarketplaceUnknownJob", {"jobId": 99})
    app = env.app()
    short = env.post(app, deadline=env.now() + 200, maxRunSeconds=100)
    reverts(env, claim(task_id(short, 0)), v, "MarketplaceClaimPastDeadline")
    env.warp(1000)
    reverts(env, claim(task_id(short, 0)), v, "MarketplaceDeadlinePassed")


def test_claim_range_and_submit_in_order(env: Env, job: int) -> None:
    w = env.workers[0]
    start = task_id(job, 2)
    env.tx(env.market.functions.claimRange(start, 5), w)
    assert env.worker(w)["locked"] == 5 * E18
    lease = env.lease(start)
    assert (lease["count"], lease["done"]) == (5, 0)
    sr = env.market.functions.submitRange
    reverts(env, sr(start, start + 1, [D], ["c"], []), w, "MarketplaceResultsOutOfOrder",
            {"startTaskId": start, "expectedFirst": start, "first": start + 1})
    reverts(env, sr(start, start, [D], ["c", "d"], []), w, "MarketplaceLengthMismatch", {"expected": 1, "actual": 2})
    reverts(env, sr(start, start, [D], ["c"], [b"", b""]), w, "MarketplaceLengthMismatch", {"expected": 1, "actual": 2})
    reverts(env, sr(start, start, [D] * 6, ["c"] * 6, []), w, "MarketplaceTooManyResults",
            {"startTaskId": start, "remaining": 5, "given": 6})
    reverts(env, sr(start, start, [], [], []), w, "MarketplaceTooManyResults",
            {"startTaskId": start, "remaining": 5, "given": 0})
    reverts(env, sr(start, start, [D], ["c"], [b"x" * 1025]), w, "MarketplaceCallbackDataTooLarge",
            {"length": 1025, "max": 1024})
    receipt = env.tx(sr(start, start, [D, D], ["a", "b"], []), w)
    assert [e["taskId"] for e in env.events(receipt, "ResultSubmitted")] == [start, start + 1]
    assert env.lease(start)["done"] == 2
    env.tx(sr(start, start + 2, [D] * 3, ["c"] * 3, []), w)
    assert env.lease(start)["count"] == 0  # deleted when done
    assert env.worker(w)["locked"] == 0 and env.balance(w) == 5 * E18


def test_claim_range_rules(env: Env, job: int) -> None:
    w = env.workers[0]
    cr = env.market.functions.claimRange
    reverts(env, cr(task_id(job, 0), 0), w, "MarketplaceInvalidRange", {"count": 0, "max": 1024})
    reverts(env, cr(task_id(job, 0), 1025), w, "MarketplaceInvalidRange", {"count": 1025, "max": 1024})
    reverts(env, cr(task_id(job, 8), 3), w, "MarketplaceTaskOutOfRange", {"jobId": job, "index": 10, "numTasks": 10})
    env.tx(env.market.functions.claim(task_id(job, 5)), env.workers[1])
    reverts(env, cr(task_id(job, 3), 4), w, "MarketplaceTaskTaken", {"taskId": task_id(job, 5)})
    app = env.app()
    r3 = env.post(app, replication=3)
    reverts(env, cr(task_id(r3, 0), 1), w, "MarketplaceWrongReplication", {"jobId": r3, "replication": 3})


@pytest.mark.reliability(kind="attack", name="submit on someone else's lease or after it expired",
                         how="results for an unknown lease, by a non-holder, too large callback data, after expiry: "
                             "refused")
def test_submit_rules(env: Env, job: int) -> None:
    w, v = env.workers[:2]
    tid = task_id(job, 0)
    submit = env.market.functions.submit
    reverts(env, submit(tid, D, "c", b""), w, "MarketplaceUnknownLease", {"startTaskId": tid})
    env.tx(env.market.functions.claim(tid), w)
    reverts(env, submit(tid, D, "c", b""), v, "MarketplaceNotLeaseHolder", {"startTaskId": tid, "caller": v.address})
    reverts(env, submit(tid, D, "c", b"x" * 1025), w, "MarketplaceCallbackDataTooLarge", {"length": 1025, "max": 1024})
    start = task_id(job, 4)
    env.tx(env.market.functions.claimRange(start, 2), w)
    reverts(env, submit(start, D, "c", b""), w, "MarketplaceTooManyResults",
            {"startTaskId": start, "remaining": 2, "given": 1})
    expiry = env.lease(tid)["expiry"]
    env.warp(500)
    reverts(env, submit(tid, D, "c", b""), w, "MarketplaceLeaseExpired", {"startTaskId": tid, "expiry": expiry})


@pytest.mark.reliability(kind="attack", name="claim a range of tasks and abandon it",
                         how="a lease of 3 with 1 result expires: the 2 undone tasks reopen, the worker is slashed "
                             "2 tokens to the treasury")
def test_expired_lease_reopens_tasks_and_slashes(env: Env, job: int) -> None:
    w, v = env.workers[:2]
    start = task_id(job, 0)
    env.tx(env.market.functions.claimRange(start, 3), w)
    env.tx(env.market.functions.submitRange(start, start, [D], ["a"], []), w)
    reverts(env, env.market.functions.reopenLease(start), v, "MarketplaceLeaseNotExpired",
            {"startTaskId": start, "expiry": env.lease(start)["expiry"]})
    reverts(env, env.market.functions.reopenLease(start + 5), v, "MarketplaceUnknownLease", {"startTaskId": start + 5})
    env.warp(10_000)
    treasury = env.balance(env.owner)
    receipt = env.tx(env.market.functions.reopenLease(start), v)
    assert env.events(receipt, "LeaseExpired") == [{"startTaskId": start, "worker": w.address, "undone": 2}]
    slash = env.events(receipt, "WorkerSlashed")[0]
    assert (slash["worker"], slash["amount"]) == (w.address, 2 * E18)
    assert env.balance(env.owner) - treasury == 2 * E18
    info = env.worker(w)
    assert (info["stake"], info["locked"], info["slashes"]) == (8 * E18, 0, 1)
    assert not env.market.functions.isTaken(start + 1).call()
    assert env.market.functions.isTaken(start).call()
    env.tx(env.market.functions.claim(start + 1), v)  # reopened


@pytest.mark.reliability(kind="attack", name="replay a relayed results batch on the same lease",
                         how="a signed batch already landed is relayed again: refused "
                             "(MarketplaceResultsOutOfOrder)")
def test_relayed_signed_results(env: Env, job: int) -> None:
    w, v = env.workers[:2]
    s1, s2 = task_id(job, 0), task_id(job, 5)
    env.tx(env.market.functions.claimRange(s1, 5), w)
    env.tx(env.market.functions.claimRange(s2, 5), v)
    b1 = results_batch(w, env.domain, s1, s1, [D] * 5, ["w"] * 5)
    b2 = results_batch(v, env.domain, s2, s2, [D] * 3, ["v"] * 3, [b"", b"x", b""])
    receipt = env.tx(env.market.functions.relayResults([b1, b2]), env.outsider)
    assert len(env.events(receipt, "ResultSubmitted")) == 8
    assert env.balance(w) == 5 * E18 and env.balance(v) == 3 * E18
    assert env.lease(s2)["done"] == 3
    replay = env.market.functions.relayResults([b2])
    reverts(env, replay, env.outsider, "MarketplaceResultsOutOfOrder",
            {"startTaskId": s2, "expectedFirst": s2 + 3, "first": s2})


@pytest.mark.reliability(kind="attack", name="relay results signed by someone else, or tampered",
                         how="a batch signed by a stranger, with a swapped CID, or with a malformed signature: "
                             "refused")
def test_relayed_results_need_the_lease_holders_signature(env: Env, job: int) -> None:
    w = env.workers[0]
    s1 = task_id(job, 0)
    env.tx(env.market.functions.claimRange(s1, 2), w)
    forger = Account.create()
    forged = results_batch(forger, env.domain, s1, s1, [D], ["x"])
    reverts(env, env.market.functions.relayResults([forged]), env.outsider, "MarketplaceInvalidSignature",
            {"signer": forger.address, "expected": w.address})
    good = list(results_batch(w, env.domain, s1, s1, [D], ["x"]))
    good[3] = ["tampered"]
    reverts(env, env.market.functions.relayResults([tuple(good)]), env.outsider, "MarketplaceInvalidSignature")
    good[5] = b"\x00" * 10
    reverts(env, env.market.functions.relayResults([tuple(good)]), env.outsider, "MarketplaceInvalidSignature",
            {"signer": "0x" + "00" * 20, "expected": "0x" + "00" * 20})


def test_last_result_closes_the_job_and_pays_the_app_owner(env: Env, job: int) -> None:
    w = env.workers[0]
    start = task_id(job, 0)
    env.tx(env.market.functions.claimRange(start, 10), w)
    receipt = env.tx(env.market.functions.submitRange(start, start, [D] * 10, ["c"] * 10, []), w)
    assert env.events(receipt, "JobClosed") == [{"jobId": job, "refund": 0, "appPaid": E18, "datasetPaid": 0}]
    assert env.balance(env.app_owner) == E18
    assert env.job(job)["flags"] & 1 == 1
    reverts(env, env.market.functions.claim(start), w, "MarketplaceJobClosed", {"jobId": job})
