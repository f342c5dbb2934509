"""Check lanes (credibility mode; PROTOCOL.md, "Check lanes"): a spot check picks a whole committed credible lease
(the hash of its commit block, as for a task) and ``checkLease`` turns it into a chunk of two lanes: the lease's
commitment is lane 0's, and a check lane is open to any other worker. Equal lists that are credible together settle
every task of the lease at once; different lists split the chunk into per-task rounds, which credibility mode
settles (a dispute wants more replicas; the liar is slashed and its credibility reset). Real contracts on anvil."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from market_helpers import E18, Env, reverts
from test_credibility import BAD, CONF, GOOD, SALT, F, claim_commit, make_veteran, reveal
from test_credible_ranges import reveal_range, root_of
from test_lanes import root_of as lane_root_of

from oracle.protocol import task_id

ZERO_ADDRESS = "0x" + "00" * 20


@pytest.fixture
def vet(env: Env, enrolled_app: int) -> LocalAccount:
    """A worker with 10 verified results: credibility 0.99 at a 10 % assumed faulty share."""
    make_veteran(env, enrolled_app, env.workers[0], env.workers[1], 10)
    return env.workers[0]


def lease_committed(env: Env, app: int, vet: LocalAccount, digests: list[bytes], spot_bps: int = 10_000,
                    cap: int = 4) -> tuple[int, int]:
    """A credibility job whose tasks ``vet`` leases whole and commits ``digests`` for: (job, first task id)."""
    job = env.post_credible(app, CONF, F, spot_bps=spot_bps, numTasks=len(digests), replication=cap,
                            maxRunSeconds=100)
    start = task_id(job, 0)
    env.tx(env.market.functions.claimRange(start, len(digests)), vet)
    env.tx(env.market.functions.commitRange(start, root_of(start, digests, vet.address)), vet)
    return job, start


def check_lease(env: Env, start: int, holder: LocalAccount, digests: list[bytes]) -> object:
    """``checkLease`` of ``holder``'s lease ``start`` committed to ``digests``, with the root and commit block its
    ``RangeCommitted`` gives."""
    return env.market.functions.checkLease(start, root_of(start, digests, holder.address), env.commit_block(start))


def lane_reveal(env: Env, start: int, w: LocalAccount, digests: list[bytes]) -> object:
    n = len(digests)
    return env.tx(env.market.functions.revealLane(start, digests, [SALT] * n, [f"bafy{i}" for i in range(n)]), w)


def test_a_picked_lease_becomes_a_check_chunk_and_equal_lists_settle_it_at_once(env: Env, enrolled_app: int,
                                                                                 vet: LocalAccount) -> None:
    digests = [GOOD] * 4
    job, start = lease_committed(env, enrolled_app, vet, digests)
    m = env.market.functions
    # picked (spot checks 100 %): the holder may not reveal it as a lease, open or sealed
    fn, _ = reveal_range(env, start, vet, digests)
    reverts(env, fn, vet, "MarketplaceSpotCheckDue", {"taskId": start})
    fn, _ = reveal_range(env, start, vet, digests, sealed={0, 1, 2, 3})
    reverts(env, fn, vet, "MarketplaceSpotCheckDue", {"taskId": start})
    reverts(env, check_lease(env, start + 1, vet, digests), env.outsider, "MarketplaceUnknownLease",
            {"startTaskId": start + 1})
    # the lease's commitment is its root and its commit block: another root or block is refused
    root, block = root_of(start, digests, vet.address), env.commit_block(start)
    reverts(env, m.checkLease(start, root, block + 1), env.outsider, "MarketplaceCommitmentMismatch",
            {"taskId": start, "worker": vet.address})
    reverts(env, check_lease(env, start, vet, [BAD] * 4), env.outsider, "MarketplaceCommitmentMismatch",
            {"taskId": start, "worker": vet.address})
    receipt = env.tx(check_lease(env, start, vet, digests), env.outsider)  # anyone may open the check
    [checked] = env.events(receipt, "LeaseChecked")
    assert (checked["startTaskId"], checked["worker"], checked["count"]) == (start, vet.address, 4)
    [lane0] = env.events(receipt, "LaneClaimed")
    assert (lane0["worker"], lane0["lane"], lane0["count"]) == (vet.address, 0, 4)
    [committed] = env.events(receipt, "LaneCommitted")
    assert committed["root"] == root_of(start, digests, vet.address)  # the lease's commitment, as lane 0's root
    assert env.lease(start)["worker"] == ZERO_ADDRESS and env.view("getRangeCommit", start) == b"\0" * 32
    reverts(env, check_lease(env, start, vet, digests), env.outsider, "MarketplaceUnknownLease",
            {"startTaskId": start})
    key = int(m.laneKey(start, 4).call())
    t = env.task(key)
    assert (t["status"], t["target"], t["occupied"], t["committed"], t["revealed"]) == (1, 2, 1, 1, 0)
    assert env.worker(vet)["locked"] == 4 * E18  # the lease's stake, now its lane's
    # a check chunk is never dissolved back into the pool
    reverts(env, m.dissolveLanes(start, 4), env.outsider, "MarketplaceLanesUnsupported", {"jobId": job})
    # the check: a fresh worker's lane; the holder cannot reveal before it committed (it cannot be copied)
    checker = env.workers[2]
    reverts(env, m.claimLane(start, 4), vet, "MarketplaceAlreadyClaimed", {"taskId": start, "worker": vet.address})
    env.tx(m.claimLane(start, 4), checker)
    reverts(env, m.revealLane(start, digests, [SALT] * 4, ["c"] * 4), vet, "MarketplaceRevealNotOpen")
    env.tx(m.commitLane(start, 4, lane_root_of(start, digests, checker.address)), checker)
    before = {w.address: (env.balance(w), env.worker(w)) for w in (vet, checker)}
    requester_before = env.balance(env.requester)
    lane_reveal(env, start, vet, digests)
    receipt = lane_reveal(env, start, checker, digests)
    finals = env.events(receipt, "TaskFinalized")
    assert [(f["taskId"], f["resultDigest"], f["winners"]) for f in finals] == [(start + i, GOOD, 2) for i in range(4)]
    for w in (vet, checker):
        bal, rec = before[w.address]
        now = env.worker(w)
        assert env.balance(w) - bal == 4 * E18  # one replica's reward per task (no fee on the devnet)
        assert now["verified"] == rec["verified"] + 4 and now["locked"] == 0
    assert env.balance(env.requester) - requester_before == 4 * 2 * E18  # the cap's 2 unused replicas per task
    assert env.job(job)["finished"] == 4 and env.escrow_total() == 0


@pytest.mark.reliability(kind="attack", name="a trusted worker lies inside a credible lease and a check lane "
                                              "catches it",
                         how="credibility mode, a veteran leases 3 tasks and commits a wrong digest for one in the "
                             "range root; the lease is picked (spot checks 100 %) and becomes a check chunk; an "
                             "honest fresh worker's check lane reveals a different list, the chunk splits, the two "
                             "agreeing tasks settle, the disputed one wants more replicas until the honest result "
                             "wins; the liar is slashed and its credibility reset")
def test_a_liar_in_a_lease_is_caught_by_its_check_lane(env: Env, enrolled_app: int, vet: LocalAccount) -> None:
    lie = [GOOD, BAD, GOOD]
    truth = [GOOD] * 3
    job, start = lease_committed(env, enrolled_app, vet, lie, cap=6)
    m = env.market.functions
    env.tx(check_lease(env, start, vet, lie), env.outsider)
    checker = env.workers[2]
    env.tx(m.claimLane(start, 3), checker)
    env.tx(m.commitLane(start, 3, lane_root_of(start, truth, checker.address)), checker)
    lane_reveal(env, start, vet, lie)
    receipt = lane_reveal(env, start, checker, truth)
    assert env.events(receipt, "TaskFinalized") == []  # the lists differ: nothing settles
    receipt = env.tx(m.splitLanes(start, 3, [lie, truth]), env.outsider)
    finals = {f["taskId"]: f for f in env.events(receipt, "TaskFinalized")}
    assert sorted(finals) == [start, start + 2] and {f["resultDigest"] for f in finals.values()} == {GOOD}
    wanted = env.events(receipt, "ReplicaWanted")
    assert [(w["taskId"], w["target"]) for w in wanted] == [(start + 1, 3)]
    for w in (env.workers[1], *env.workers[3:5]):  # a dispute: every replica weighs as a new worker's
        claim_commit(env, start + 1, w, GOOD)
        receipt = reveal(env, start + 1, w, GOOD)
    [fin] = env.events(receipt, "TaskFinalized")
    assert fin["resultDigest"] == GOOD
    assert [s["worker"] for s in env.events(receipt, "WorkerSlashed")] == [vet.address]
    assert env.worker(vet)["verified"] == 0 and env.worker(vet)["locked"] == 0
    assert env.job(job)["finished"] == 3 and env.escrow_total() == 0


def test_a_lease_not_picked_reveals_as_a_lease_and_cannot_be_checked(env: Env, enrolled_app: int,
                                                                     vet: LocalAccount) -> None:
    job, start = lease_committed(env, enrolled_app, vet, [GOOD] * 3, spot_bps=0)
    reverts(env, check_lease(env, start, vet, [GOOD] * 3), env.outsider, "MarketplaceNoSpotCheck", {"taskId": start})
    fixed = env.post(enrolled_app, numTasks=1, replication=2, maxRunSeconds=100)
    reverts(env, env.market.functions.checkLease(task_id(fixed, 0), b"\0" * 32, 0), env.outsider,
            "MarketplaceWrongReplication", {"jobId": fixed, "replication": 2})
    # no chunk of a credibility-mode job starts but from a picked lease
    reverts(env, env.market.functions.claimLane(start, 3), env.workers[2], "MarketplaceLanesUnsupported", {"jobId": job})
    fn, _ = reveal_range(env, start, vet, [GOOD] * 3)
    assert len(env.events(env.tx(fn, vet), "ResultSubmitted")) == 3
    assert env.job(job)["finished"] == 3
