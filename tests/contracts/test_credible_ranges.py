"""Credibility mode, credible leases: a worker whose credibility alone reaches a job's confidence leases a range of
its tasks, commits their results in one root (``commitRange``) and reveals them from the next block on
(``revealRange``): open entries are final at once; sealed ones (spot-checked, or the worker no longer credible
alone) become replicated tasks that want a second replica, exactly as a single-task spot check does."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from market_helpers import E18, Env, reverts
from test_credibility import (
    BAD,
    CONF,
    GOOD,
    NOT_CREDIBLE,
    SALT,
    SPOT_CHECK,
    F,
    claim_commit,
    make_veteran,
    reveal,
)

from oracle._chain import deploy
from oracle.protocol import commitment, range_seal, task_id

ZERO = b"\x00" * 32


@pytest.fixture
def vet(env: Env, enrolled_app: int) -> LocalAccount:
    """A worker with 10 verified results: credibility 0.99 at a 10 % assumed faulty share."""
    make_veteran(env, enrolled_app, env.workers[0], env.workers[1], 10)
    return env.workers[0]


def root_of(start: int, digests: list[bytes], worker: str) -> bytes:
    return keccak(b"".join(commitment(start + i, d, SALT, worker) for i, d in enumerate(digests)))


def reveal_range(env: Env, start: int, w: LocalAccount, digests: list[bytes], sealed: set[int] = frozenset()
                 ) -> tuple[Any, list[Any]]:
    """``revealRange`` with the entries in ``sealed`` given as their commitment only; returns (fn, the args)."""
    ds = [commitment(start + i, d, SALT, w.address) if i in sealed else d for i, d in enumerate(digests)]
    salts = [ZERO if i in sealed else SALT for i in range(len(digests))]
    cids = ["" if i in sealed else f"bafy{i}" for i in range(len(digests))]
    return env.market.functions.revealRange(start, env.commit_block(start), ds, salts, cids, []), [ds, salts, cids]


def test_a_new_worker_may_not_lease_a_credibility_job(env: Env, enrolled_app: int) -> None:
    job = env.post_credible(enrolled_app, CONF, F, numTasks=4, replication=4, maxRunSeconds=100)
    fresh = env.workers[3]
    reverts(env, env.market.functions.claimRange(task_id(job, 0), 2), fresh, "MarketplaceNotCredibleAlone",
            {"worker": fresh.address, "credibilityPpb": 900_000_000, "confidencePpb": CONF})
    reverts(env, env.market.functions.claimFreeRange(task_id(job, 0), 2), fresh, "MarketplaceNotCredibleAlone")
    fixed = env.post(enrolled_app, numTasks=2, replication=2, maxRunSeconds=100)
    reverts(env, env.market.functions.claimRange(task_id(fixed, 0), 2), fresh, "MarketplaceWrongReplication",
            {"jobId": fixed, "replication": 2})


def test_a_credible_lease_commits_once_and_its_open_results_are_final(env: Env, enrolled_app: int, vet: LocalAccount) -> None:
    job = env.post_credible(enrolled_app, CONF, F, numTasks=4, replication=4, maxRunSeconds=100)
    start = task_id(job, 0)
    env.tx(env.market.functions.claimFreeRange(start, 4), vet)
    assert env.lease(start)["count"] == 4
    # a plain result or failure report would skip the commitment: refused
    reverts(env, env.market.functions.submitRange(start, start, [GOOD] * 4, ["c"] * 4, []), vet,
            "MarketplaceWrongReplication", {"jobId": job, "replication": 4})
    reverts(env, env.market.functions.reportFailure(start, GOOD, "c"), vet, "MarketplaceWrongReplication")
    fn, _ = reveal_range(env, start, vet, [GOOD] * 4)
    reverts(env, fn, vet, "MarketplaceNotCommitted", {"taskId": start, "worker": vet.address})
    root = root_of(start, [GOOD] * 4, vet.address)
    receipt = env.tx(env.market.functions.commitRange(start, root), vet)
    [ev] = env.events(receipt, "RangeCommitted")
    assert (ev["startTaskId"], ev["worker"], ev["root"], ev["count"]) == (start, vet.address, root, 4)
    assert env.view("getRangeCommit", start) == range_seal(root, receipt["blockNumber"])
    reverts(env, env.market.functions.commitRange(start, root), vet, "MarketplaceAlreadyCommitted")
    # a wrong digest does not match the root; nor does the right list given with another commit block
    fn, _ = reveal_range(env, start, vet, [GOOD, GOOD, BAD, GOOD])
    reverts(env, fn, vet, "MarketplaceCommitmentMismatch", {"taskId": start, "worker": vet.address})
    _, args = reveal_range(env, start, vet, [GOOD] * 4)
    reverts(env, env.market.functions.revealRange(start, receipt["blockNumber"] - 1, *args, []), vet,
            "MarketplaceCommitmentMismatch", {"taskId": start, "worker": vet.address})
    requester_before, vet_before = env.balance(env.requester), env.balance(vet)
    fn, _ = reveal_range(env, start, vet, [GOOD] * 4)
    receipt = env.tx(fn, vet)
    assert [(e["taskId"], e["resultDigest"], e["resultCID"]) for e in env.events(receipt, "ResultSubmitted")] == [
        (start + i, GOOD, f"bafy{i}") for i in range(4)]
    assert env.balance(vet) - vet_before == 4 * E18  # one replica's reward each, no fee on the devnet
    assert env.balance(env.requester) - requester_before == 4 * 3 * E18  # the cap's 3 unused replicas per task
    assert env.worker(vet)["locked"] == 0 and env.worker(vet)["verified"] == 10  # alone: nothing verified
    assert env.lease(start)["worker"] == "0x" + "00" * 20 and env.view("getRangeCommit", start) == ZERO
    assert env.job(job)["finished"] == 4 and env.escrow_total() == 0


@pytest.mark.reliability(kind="attack", name="a trusted worker lies inside a credible lease and a spot check "
                                              "catches it",
                         how="credibility mode, a job with a callback, a veteran leases 2 tasks and commits a wrong digest for one in the "
                             "range root; every task is picked (spot checks 100 %): revealing it open is refused, "
                             "sealed it wants a check replica, the honest checker's result wins the dispute and the "
                             "liar is slashed")
def test_a_spot_checked_task_of_a_lease_must_stay_sealed_and_a_liar_is_caught(env: Env, enrolled_app: int,
                                                                               vet: LocalAccount) -> None:
    # a job with a callback: its leases are checked task by task (a lease without one is checked whole, as a
    # second lane: tests/contracts/test_check_lanes.py)
    consumer = deploy(env.w3, "ExampleConsumer", env.market.address, sender=env.owner)
    job = env.post_credible(enrolled_app, CONF, F, spot_bps=10_000, numTasks=2, replication=6, maxRunSeconds=100,
                            callback=consumer.address)
    start = task_id(job, 0)
    env.tx(env.market.functions.claimRange(start, 2), vet)
    digests = [GOOD, BAD]
    env.tx(env.market.functions.commitRange(start, root_of(start, digests, vet.address)), vet)
    fn, _ = reveal_range(env, start, vet, digests, sealed={0})
    reverts(env, fn, vet, "MarketplaceSpotCheckDue", {"taskId": start + 1})
    fn, _ = reveal_range(env, start, vet, digests, sealed={0, 1})
    receipt = env.tx(fn, vet)
    assert env.events(receipt, "ResultSubmitted") == []
    assert [(e["taskId"], e["reason"], e["target"]) for e in env.events(receipt, "ReplicaWanted")] == [
        (start, SPOT_CHECK, 2), (start + 1, SPOT_CHECK, 2)]
    assert [(e["taskId"], e["worker"], e["replica"]) for e in env.events(receipt, "ReplicaClaimed")] == [
        (start, vet.address, 0), (start + 1, vet.address, 0)]
    t = env.task(start + 1)
    assert (t["target"], t["occupied"], t["committed"], t["revealed"]) == (2, 1, 1, 0)
    assert env.worker(vet)["locked"] == 2 * E18  # still staked on both replicas
    # the liar cannot reveal before the checker committed: the checker cannot copy its digest
    reverts(env, env.market.functions.reveal(start + 1, BAD, SALT, "bafyR", b""), vet, "MarketplaceRevealNotOpen")
    checkers = env.workers[1:6]
    for tid in (start, start + 1):
        claim_commit(env, tid, checkers[0], GOOD)
        reveal(env, tid, vet, digests[tid - start])
    receipt = reveal(env, start, checkers[0], GOOD)
    fin = env.events(receipt, "TaskFinalized")[0]
    assert (fin["resultDigest"], fin["winners"]) == (GOOD, 2)
    reveal(env, start + 1, checkers[0], GOOD)  # a dispute: every replica weighs as new, more replicas wanted
    for w in checkers[1:4]:
        claim_commit(env, start + 1, w, GOOD)
        receipt = reveal(env, start + 1, w, GOOD)
    fin = env.events(receipt, "TaskFinalized")[0]
    assert (fin["resultDigest"], fin["winners"]) == (GOOD, 4)
    assert [s["worker"] for s in env.events(receipt, "WorkerSlashed")] == [vet.address]
    assert env.worker(vet)["verified"] == 0 and env.worker(vet)["locked"] == 0
    assert env.escrow_total() == 0


def test_a_worker_slashed_before_its_reveal_must_seal_everything(env: Env, enrolled_app: int, vet: LocalAccount) -> None:
    job = env.post_credible(enrolled_app, CONF, F, numTasks=2, replication=4, maxRunSeconds=100)
    start = task_id(job, 0)
    env.tx(env.market.functions.claimRange(start, 2), vet)
    env.tx(env.market.functions.commitRange(start, root_of(start, [GOOD, GOOD], vet.address)), vet)
    # meanwhile the veteran loses an R = 2 dispute elsewhere: slashed, its credibility resets
    other = env.post(enrolled_app, numTasks=1, replication=3, maxRunSeconds=100)
    tid = task_id(other, 0)
    claim_commit(env, tid, vet, BAD)
    for w in env.workers[1:3]:
        claim_commit(env, tid, w, GOOD)
    reveal(env, tid, vet, BAD)
    for w in env.workers[1:3]:
        reveal(env, tid, w, GOOD)
    assert env.worker(vet)["verified"] == 0 and env.worker(vet)["slashes"] == 1
    fn, _ = reveal_range(env, start, vet, [GOOD, GOOD], sealed={0})
    reverts(env, fn, vet, "MarketplaceNotCredibleAlone", {"worker": vet.address, "credibilityPpb": 900_000_000,
                                                     "confidencePpb": CONF})
    fn, _ = reveal_range(env, start, vet, [GOOD, GOOD], sealed={0, 1})
    receipt = env.tx(fn, vet)
    assert [(e["reason"], e["target"]) for e in env.events(receipt, "ReplicaWanted")] == [(NOT_CREDIBLE, 2)] * 2
    assert env.task(start)["status"] == 1 and env.view("getReplica", start, 0)["worker"] == vet.address


def test_an_expired_committed_lease_is_reopened_and_its_commit_forgotten(env: Env, enrolled_app: int, vet: LocalAccount) -> None:
    job = env.post_credible(enrolled_app, CONF, F, numTasks=2, replication=4, maxRunSeconds=100)
    start = task_id(job, 0)
    env.tx(env.market.functions.claimRange(start, 2), vet)
    env.tx(env.market.functions.commitRange(start, root_of(start, [GOOD, GOOD], vet.address)), vet)
    env.warp(10_000)
    receipt = env.tx(env.market.functions.reopenLease(start), env.outsider)
    assert env.events(receipt, "LeaseExpired")[0]["undone"] == 2
    assert env.view("getRangeCommit", start) == ZERO and env.worker(vet)["locked"] == 0
    # the veteran was slashed: it is no longer credible alone; a fresh veteran leases the same start again
    assert env.worker(vet)["slashes"] == 1
    make_veteran(env, enrolled_app, env.workers[2], env.workers[3], 10)
    env.tx(env.market.functions.claimRange(start, 2), env.workers[2])
    env.tx(env.market.functions.commitRange(start, root_of(start, [GOOD, GOOD], env.workers[2].address)),
           env.workers[2])


def test_abandoning_a_committed_lease_reopens_its_tasks(env: Env, enrolled_app: int, vet: LocalAccount) -> None:
    job = env.post_credible(enrolled_app, CONF, F, numTasks=2, replication=4, maxRunSeconds=100)
    start = task_id(job, 0)
    env.tx(env.market.functions.claimRange(start, 2), vet)
    env.tx(env.market.functions.commitRange(start, root_of(start, [GOOD, GOOD], vet.address)), vet)
    receipt = env.tx(env.market.functions.abandon(start), vet)
    assert env.events(receipt, "ClaimAbandoned")[0]["tasks"] == 2
    assert env.view("getRangeCommit", start) == ZERO and env.worker(vet)["locked"] == 0
    assert env.view("isTaken", start) is False
    # a sealed reveal of a new worker's lease is impossible: it may not lease at all; the task is claimable per task
    claim_commit(env, start, env.workers[3], GOOD)
    assert env.task(start)["target"] == 2  # a new worker alone is not credible: one more replica wanted
