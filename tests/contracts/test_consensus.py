"""R > 1 jobs: replica claims, commit-reveal, strict-majority finalization, extra replicas, failure, expiry."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from market_helpers import E18, Env, reverts

from oracle.protocol import commitment, sign_commit, sign_reveal, task_id

GOOD = b"\x60" * 32
BAD = b"\xba" * 32
SALT = b"\x5a" * 32


@pytest.fixture
def job(env: Env) -> int:
    """Two tasks, R = 3; five enrolled workers."""
    return env.replicated_job(3)


def claim_commit(env: Env, tid: int, workers: list[LocalAccount], digests: list[bytes]) -> None:
    for w in workers:
        env.tx(env.market.functions.claim(tid), w)
    for w, d in zip(workers, digests, strict=True):
        env.tx(env.market.functions.commit(tid, commitment(tid, d, SALT, w.address)), w)


def reveal(env: Env, tid: int, w: LocalAccount, d: bytes, cid: str = "bafyR", data: bytes = b"") -> object:
    return env.tx(env.market.functions.reveal(tid, d, SALT, cid, data), w)


def test_three_agreeing_replicas_share_the_reward(env: Env, job: int) -> None:
    tid = task_id(job, 0)
    ws = env.workers[:3]
    receipt = env.tx(env.market.functions.claim(tid), ws[0])
    assert env.events(receipt, "ReplicaClaimed")[0]["replica"] == 0
    for w in ws[1:]:
        env.tx(env.market.functions.claim(tid), w)
    assert env.task(tid)["occupied"] == 0b111
    for w in ws:
        receipt = env.tx(env.market.functions.commit(tid, commitment(tid, GOOD, SALT, w.address)), w)
        assert env.events(receipt, "ResultCommitted")[0]["worker"] == w.address
    reveal(env, tid, ws[0], GOOD)
    reveal(env, tid, ws[1], GOOD)
    receipt = reveal(env, tid, ws[2], GOOD)  # the last reveal finalizes
    assert env.events(receipt, "TaskFinalized") == [
        {"taskId": tid, "resultDigest": GOOD, "winners": 3, "rewardEach": E18}]
    for w in ws:
        assert env.balance(w) == E18
        assert env.worker(w)["locked"] == 0 and env.worker(w)["reputation"] == 1
    assert env.task(tid)["status"] == 2
    assert env.job(job)["finished"] == 1


@pytest.mark.reliability(kind="attack", name="a lone replica reveals a wrong result",
                         how="R=3, one replica reveals another digest: the majority wins and shares the pool, the "
                             "liar is slashed")
def test_minority_replica_is_slashed_and_winners_share_its_reward(env: Env, job: int) -> None:
    tid = task_id(job, 0)
    ws = env.workers[:3]
    claim_commit(env, tid, ws, [GOOD, BAD, GOOD])
    for w, d in zip(ws, [GOOD, BAD, GOOD], strict=True):
        receipt = reveal(env, tid, w, d)
    fin = env.events(receipt, "TaskFinalized")[0]
    assert (fin["winners"], fin["rewardEach"]) == (2, 3 * E18 // 2)
    slashed = env.events(receipt, "WorkerSlashed")
    assert [(s["worker"], s["amount"]) for s in slashed] == [(ws[1].address, E18)]
    assert env.worker(ws[1])["stake"] == 9 * E18 and env.worker(ws[1])["slashes"] == 1
    assert env.balance(ws[0]) == 3 * E18 // 2


def test_no_majority_adds_replicas_then_a_majority_emerges(env: Env, job: int) -> None:
    tid = task_id(job, 0)
    ws = env.workers
    claim_commit(env, tid, ws[:3], [GOOD, BAD, b"\x33" * 32])
    reveal(env, tid, ws[0], GOOD)
    reveal(env, tid, ws[1], BAD)
    receipt = reveal(env, tid, ws[2], b"\x33" * 32)
    assert env.events(receipt, "ReplicasAdded") == [{"taskId": tid, "target": 5}]
    assert env.task(tid)["target"] == 5
    reverts(env, env.market.functions.claim(tid), ws[0], "MarketplaceAlreadyClaimed",
            {"taskId": tid, "worker": ws[0].address})
    claim_commit(env, tid, ws[3:5], [GOOD, GOOD])
    reveal(env, tid, ws[3], GOOD)
    receipt = reveal(env, tid, ws[4], GOOD)
    fin = env.events(receipt, "TaskFinalized")[0]
    assert (fin["winners"], fin["resultDigest"]) == (3, GOOD)
    assert {s["worker"] for s in env.events(receipt, "WorkerSlashed")} == {ws[1].address, ws[2].address}


def test_no_majority_at_the_cap_fails_and_refunds(env: Env, job: int) -> None:
    p = env.params()
    p["maxReplicas"] = 3
    env.tx(env.market.functions.setParams(tuple(p.values())), env.owner)
    tid = task_id(job, 0)
    ws = env.workers[:3]
    before = env.balance(env.requester)
    claim_commit(env, tid, ws, [GOOD, BAD, b"\x33" * 32])
    reveal(env, tid, ws[0], GOOD)
    reveal(env, tid, ws[1], BAD)
    receipt = reveal(env, tid, ws[2], b"\x33" * 32)
    per_task = 3 * E18 + E18 // 10
    assert env.events(receipt, "TaskFailed") == [{"taskId": tid, "refund": per_task}]
    assert env.balance(env.requester) - before == per_task
    for w in ws:  # disagreeing but revealed replicas get their stake back
        assert env.worker(w)["locked"] == 0 and env.worker(w)["stake"] == 10 * E18
    assert env.task(tid)["status"] == 3


@pytest.mark.reliability(kind="attack", name="reveal after the reveal deadline",
                         how="a replica reveals once the reveal window closed: refused (MarketplaceRevealClosed) "
                             "and slashed at finalize")
def test_finalize_after_reveal_window_slashes_the_silent(env: Env, job: int) -> None:
    tid = task_id(job, 0)
    ws = env.workers[:3]
    claim_commit(env, tid, ws, [GOOD, GOOD, GOOD])
    reveal(env, tid, ws[0], GOOD)
    reveal(env, tid, ws[1], GOOD)
    deadline = env.task(tid)["revealDeadline"]
    reverts(env, env.market.functions.finalize(tid), env.outsider, "MarketplaceNotFinalizable",
            {"taskId": tid, "revealDeadline": deadline})
    env.warp(700)
    reverts(env, env.market.functions.reveal(tid, GOOD, SALT, "c", b""), ws[2], "MarketplaceRevealClosed",
            {"taskId": tid, "closedAt": deadline})
    receipt = env.tx(env.market.functions.finalize(tid), env.outsider)
    assert env.events(receipt, "TaskFinalized")[0]["winners"] == 2
    assert env.events(receipt, "WorkerSlashed")[0]["worker"] == ws[2].address
    reverts(env, env.market.functions.finalize(tid), env.outsider, "MarketplaceTaskNotActive", {"taskId": tid})


@pytest.mark.reliability(kind="attack", name="reveal early, before the others commit",
                         how="a replica reveals while others may still commit: refused until all committed or the "
                             "commit window passed")
def test_reveal_opens_after_all_commits_or_the_commit_window(env: Env, job: int) -> None:
    tid = task_id(job, 0)
    ws = env.workers[:3]
    for w in ws:
        env.tx(env.market.functions.claim(tid), w)
    env.tx(env.market.functions.commit(tid, commitment(tid, GOOD, SALT, ws[0].address)), ws[0])
    cd = env.task(tid)["commitDeadline"]
    reverts(env, env.market.functions.reveal(tid, GOOD, SALT, "c", b""), ws[0], "MarketplaceRevealNotOpen",
            {"taskId": tid, "opensAt": cd + 1})
    reverts(env, env.market.functions.reveal(tid, GOOD, SALT, "c", b""), ws[1], "MarketplaceNotCommitted",
            {"taskId": tid, "worker": ws[1].address})
    env.warp(601)
    reveal(env, tid, ws[0], GOOD)
    reverts(env, env.market.functions.reveal(tid, GOOD, SALT, "c", b""), ws[0], "MarketplaceAlreadyRevealed",
            {"taskId": tid, "worker": ws[0].address})


@pytest.mark.reliability(kind="attack", name="commit for a replica one does not hold, twice, or reveal another digest",
                         how="commit without a claim, commit on someone else's replica, commit twice, reveal a "
                             "digest that does not match")
def test_commit_and_reveal_rules(env: Env, job: int) -> None:
    tid = task_id(job, 0)
    w, v = env.workers[:2]
    c = commitment(tid, GOOD, SALT, w.address)
    reverts(env, env.market.functions.commit(tid, c), w, "MarketplaceTaskNotActive", {"taskId": tid})
    env.tx(env.market.functions.claim(tid), w)
    reverts(env, env.market.functions.commit(tid, c), v, "MarketplaceNotClaimant", {"taskId": tid, "worker": v.address})
    env.tx(env.market.functions.claim(tid), v)
    env.tx(env.market.functions.commit(tid, c), w)
    reverts(env, env.market.functions.commit(tid, c), w, "MarketplaceAlreadyCommitted",
            {"taskId": tid, "worker": w.address})
    env.tx(env.market.functions.commit(tid, commitment(tid, GOOD, SALT, v.address)), v)
    env.warp(601)
    reverts(env, env.market.functions.reveal(tid, BAD, SALT, "c", b""), w, "MarketplaceCommitmentMismatch",
            {"taskId": tid, "worker": w.address})
    reverts(env, env.market.functions.reveal(tid, GOOD, SALT, "c", b"x" * 1025), w,
            "MarketplaceCallbackDataTooLarge", {"length": 1025, "max": 1024})


@pytest.mark.reliability(kind="attack", name="claim two replicas of one task, a full or a cancelled task",
                         how="the same worker claims again, a 4th worker claims a full R=3 task, a claim on a "
                             "cancelled or out-of-range task")
def test_claim_rules_for_replicas(env: Env, job: int) -> None:
    tid = task_id(job, 1)
    ws = env.workers
    for w in ws[:3]:
        env.tx(env.market.functions.claim(tid), w)
    reverts(env, env.market.functions.claim(tid), ws[3], "MarketplaceNoFreeReplica", {"taskId": tid})
    reverts(env, env.market.functions.claim(tid), ws[0], "MarketplaceAlreadyClaimed",
            {"taskId": tid, "worker": ws[0].address})
    reverts(env, env.market.functions.claim(task_id(job, 2)), ws[3], "MarketplaceTaskOutOfRange",
            {"jobId": job, "index": 2, "numTasks": 2})
    env.tx(env.market.functions.cancelTasks(job, 0, 1), env.requester)
    reverts(env, env.market.functions.claim(task_id(job, 0)), ws[3], "MarketplaceTaskTaken",
            {"taskId": task_id(job, 0)})


@pytest.mark.reliability(kind="attack", name="hold a replica hostage (claim, never commit)",
                         how="a claim expires without a commit: anyone reopens it, the holder is slashed, the slot "
                             "is claimable again")
def test_expired_claims_are_reopened_by_anyone(env: Env, job: int) -> None:
    tid = task_id(job, 0)
    w, v, x = env.workers[:3]
    env.tx(env.market.functions.claim(tid), w)
    env.tx(env.market.functions.claim(tid), v)
    env.tx(env.market.functions.commit(tid, commitment(tid, GOOD, SALT, v.address)), v)
    reverts(env, env.market.functions.reopenExpired(tid), x, "MarketplaceNothingExpired", {"taskId": tid})
    expiry = env.replica(tid, 0)["expiry"]
    env.warp(401)
    reverts(env, env.market.functions.commit(tid, commitment(tid, GOOD, SALT, w.address)), w,
            "MarketplaceClaimExpired", {"taskId": tid, "worker": w.address, "expiry": expiry})
    receipt = env.tx(env.market.functions.reopenExpired(tid), x)
    assert env.events(receipt, "ClaimExpired") == [{"taskId": tid, "worker": w.address}]
    assert env.worker(w)["stake"] == 9 * E18 and env.worker(w)["locked"] == 0
    assert env.task(tid)["occupied"] == 0b10
    receipt = env.tx(env.market.functions.claim(tid), x)
    assert env.events(receipt, "ReplicaClaimed")[0]["replica"] == 0
    reverts(env, env.market.functions.reopenExpired(task_id(job, 1)), x, "MarketplaceTaskNotActive",
            {"taskId": task_id(job, 1)})


def test_release_replicas_after_the_job_closed(env: Env, job: int) -> None:
    app = env.app()
    j = env.post(app, replication=3, deadline=env.now() + 2000, maxRunSeconds=100)
    tid = task_id(j, 0)
    w, v = env.workers[:2]
    env.tx(env.market.functions.claim(tid), w)
    env.tx(env.market.functions.claim(tid), v)
    env.tx(env.market.functions.commit(tid, commitment(tid, GOOD, SALT, v.address)), v)
    reverts(env, env.market.functions.releaseReplicas(tid), env.outsider, "MarketplaceDeadlineNotReached")
    env.warp(2001)
    reverts(env, env.market.functions.finalize(tid), env.outsider, "MarketplaceDeadlinePassed")
    env.tx(env.market.functions.closeJob(j), env.outsider)
    receipt = env.tx(env.market.functions.releaseReplicas(tid), env.outsider)
    assert env.events(receipt, "ReplicaReleased") == [
        {"taskId": tid, "worker": w.address, "slashed": True}, {"taskId": tid, "worker": v.address, "slashed": False}]
    assert env.worker(v)["locked"] == 0 and env.worker(v)["stake"] == 10 * E18
    assert env.events(receipt, "TaskReleased") == [{"taskId": tid, "replicas": 2}]
    assert env.worker(w)["stake"] == 9 * E18
    reverts(env, env.market.functions.releaseReplicas(tid), env.outsider, "MarketplaceTaskNotActive", {"taskId": tid})


def test_release_a_task_whose_every_claim_expired_is_still_evented(env: Env, job: int) -> None:
    app = env.app()
    j = env.post(app, replication=2, deadline=env.now() + 2000, maxRunSeconds=100)
    tid = task_id(j, 0)
    w = env.workers[0]
    env.tx(env.market.functions.claim(tid), w)
    env.warp(2001)
    env.tx(env.market.functions.reopenExpired(tid), env.outsider)
    assert env.task(tid)["occupied"] == 0 and env.task(tid)["status"] == 1
    env.tx(env.market.functions.closeJob(j), env.outsider)
    receipt = env.tx(env.market.functions.releaseReplicas(tid), env.outsider)
    assert env.events(receipt, "ReplicaReleased") == []
    assert env.events(receipt, "TaskReleased") == [{"taskId": tid, "replicas": 0}]
    assert env.task(tid)["status"] == 3


def test_relayed_signed_commits_and_reveals(env: Env, job: int) -> None:
    ws = env.workers[:3]
    tids = [task_id(job, 0), task_id(job, 1)]
    for t in tids:
        for w in ws:
            env.tx(env.market.functions.claim(t), w)
    commits = [(t, commitment(t, GOOD, SALT, w.address), sign_commit(w, env.domain, t, commitment(t, GOOD, SALT,
                w.address))) for t in tids for w in ws]
    env.tx(env.market.functions.relayCommits(commits), env.outsider)
    reveals = [(t, GOOD, SALT, "bafyR", b"", sign_reveal(w, env.domain, t, GOOD, SALT, "bafyR")) for t in tids
               for w in ws]
    receipt = env.tx(env.market.functions.relayReveals(reveals), env.outsider)
    assert len(env.events(receipt, "TaskFinalized")) == 2
    assert env.balance(ws[0]) == 2 * E18
    reverts(env, env.market.functions.relayReveals(reveals[:1]), env.outsider, "MarketplaceJobClosed", {"jobId": job})


@pytest.mark.reliability(kind="attack", name="relay a forged or tampered signed commit/reveal",
                         how="a commit signed by a stranger, a malformed signature, a reveal whose CID the relayer "
                             "swapped: all refused")
def test_relayed_commit_by_a_stranger_is_refused(env: Env, job: int) -> None:
    tid = task_id(job, 0)
    env.tx(env.market.functions.claim(tid), env.workers[0])
    c = commitment(tid, GOOD, SALT, env.workers[0].address)
    forged = (tid, c, sign_commit(env.outsider, env.domain, tid, c))
    reverts(env, env.market.functions.relayCommits([forged]), env.workers[1], "MarketplaceNotClaimant",
            {"taskId": tid, "worker": env.outsider.address})
    reverts(env, env.market.functions.relayCommits([(tid, c, b"\x01" * 65)]), env.workers[1],
            "MarketplaceInvalidSignature")
    w = env.workers[0]
    env.tx(env.market.functions.commit(tid, c), w)
    env.warp(601)
    sig = sign_reveal(w, env.domain, tid, GOOD, SALT, "bafyR")
    tampered = (tid, GOOD, SALT, "bafyEVIL", b"", sig)  # a relayer swapping the CID changes the signer
    with pytest.raises(Exception) as err:
        env.tx(env.market.functions.relayReveals([tampered]), env.workers[1])
    assert "MarketplaceNotClaimant" in str(err.value)
    env.tx(env.market.functions.relayReveals([(tid, GOOD, SALT, "bafyR", b"", sig)]), env.workers[1])


@pytest.mark.reliability(kind="attack", name="a worker that keeps abandoning its claims",
                         how="three abandoned claims: slashed each time, reputation halved, banned at maxSlashes")
def test_repeated_slashing_bans_the_worker(env: Env, job: int) -> None:
    app = env.app()
    w = env.workers[0]
    for _ in range(3):
        j = env.post(app, numTasks=1, maxRunSeconds=100)
        env.tx(env.market.functions.claim(task_id(j, 0)), w)
        env.warp(401)
        receipt = env.tx(env.market.functions.reopenLease(task_id(j, 0)), env.outsider)
    assert env.events(receipt, "WorkerBanned") == [{"worker": w.address, "banned": True}]
    assert env.worker(w)["flags"] & 2 == 2 and env.worker(w)["slashes"] == 3
    assert env.worker(w)["reputation"] == 0


def test_a_worker_batches_its_own_calls_with_multicall(env: Env, job: int) -> None:
    ws = env.workers[:3]
    tids = [task_id(job, 0), task_id(job, 1)]
    m = env.market
    for w in ws:
        env.tx(m.functions.multicall([m.encode_abi("claim", [t]) for t in tids]), w)
    for w in ws:
        env.tx(m.functions.multicall([m.encode_abi("commit", [t, commitment(t, GOOD, SALT, w.address)])
                                      for t in tids]), w)
    for w in ws:
        receipt = env.tx(m.functions.multicall([m.encode_abi("reveal", [t, GOOD, SALT, "c", b""]) for t in tids]), w)
    assert len(env.events(receipt, "TaskFinalized")) == 2
    assert env.events(receipt, "JobClosed")[0]["appPaid"] == 2 * (E18 // 10)
    reverts(env, m.functions.multicall([m.encode_abi("claim", [tids[0]])]), ws[0], "MarketplaceJobClosed",
            {"jobId": job})
