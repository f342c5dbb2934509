"""Lanes (contracts/libraries/LaneLogic.sol, PROTOCOL.md "Lanes"): a chunk of a fixed-R job's tasks leased R times,
one root committed and one list revealed per lane; equal lists settle the chunk at once, anything else splits it
into per-task rounds settled by strict majority. Real contracts on anvil; every rule's revert checked."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from market_helpers import E18, Env, reverts
from web3 import Web3

from oracle.protocol import commitment, task_id
from worker._lanes import settle_allowance

SALT = b"\x5a" * 32


def digest(i: int, lie: bool = False) -> bytes:
    return Web3.keccak(text=f"result-{i}{'-lie' if lie else ''}")


def root_of(start: int, digests: list[bytes], worker: str) -> bytes:
    return Web3.keccak(b"".join(commitment(start + i, d, SALT, worker) for i, d in enumerate(digests)))


class Chunk:
    """One chunk of a job: its lanes' workers claim, commit and reveal through the marketplace."""

    def __init__(self, env: Env, job: int, first: int, count: int) -> None:
        self.env, self.start, self.count = env, task_id(job, first), count
        self.key = int(env.market.functions.laneKey(self.start, count).call())

    def claim(self, w: LocalAccount) -> Any:
        return self.env.tx(self.env.market.functions.claimLane(self.start, self.count), w)

    def commit(self, w: LocalAccount, digests: list[bytes]) -> Any:
        return self.env.tx(self.env.market.functions.commitLane(self.start, self.count,
                                                                root_of(self.start, digests, w.address)), w)

    def reveal(self, w: LocalAccount, digests: list[bytes]) -> Any:
        n = len(digests)
        return self.env.tx(self.env.market.functions.revealLane(self.start, digests, [SALT] * n,
                                                                [f"bafy{i}" for i in range(n)]), w)

    def split(self, lists: list[list[bytes]], sender: LocalAccount) -> Any:
        return self.env.tx(self.env.market.functions.splitLanes(self.start, self.count, lists), sender)

    def round(self) -> dict[str, Any]:
        return self.env.task(self.key)

    def run(self, lanes: dict[LocalAccount, list[bytes]]) -> Any:
        """Every lane claims and commits, then reveals in order; the last reveal's receipt."""
        for w in lanes:
            self.claim(w)
        for w, ds in lanes.items():
            self.commit(w, ds)
        receipt = None
        for w, ds in lanes.items():
            receipt = self.reveal(w, ds)
        return receipt


def honest(count: int) -> list[bytes]:
    return [digest(i) for i in range(count)]


def test_equal_lists_settle_the_whole_chunk_in_the_last_reveal(env: Env) -> None:
    job = env.replicated_job(2, num_tasks=10)
    a, b = env.workers[:2]
    before = {w.address: (env.balance(w), env.worker(w)) for w in (a, b)}
    stake = env.job(job)["replicaStake"]
    chunk = Chunk(env, job, 0, 10)
    claimed = env.events(chunk.claim(a), "LaneClaimed")[0]
    assert (claimed["worker"], claimed["lane"], claimed["count"]) == (a.address, 0, 10)
    assert env.worker(a)["locked"] == 10 * stake
    chunk.claim(b)
    chunk.commit(a, honest(10))
    chunk.commit(b, honest(10))
    env.events(chunk.reveal(a, honest(10)), "LaneRevealed")
    assert env.job(job)["settled"] == 0
    receipt = chunk.reveal(b, honest(10))
    finals = env.events(receipt, "TaskFinalized")
    assert [f["taskId"] for f in finals] == [task_id(job, i) for i in range(10)]
    assert [f["resultDigest"] for f in finals] == honest(10)
    reward = env.job(job)["reward"]
    fee = env.job(job)["feeBps"]
    share = (2 * reward - 2 * reward * fee // 10_000) // 2
    assert {f["winners"] for f in finals} == {2} and {f["rewardEach"] for f in finals} == {share}
    assert len(env.events(receipt, "ResultRevealed")) == 10
    assert env.job(job)["settled"] == env.job(job)["finished"] == 10
    assert env.events(receipt, "JobClosed")  # the last tasks of the job: it closes
    assert chunk.round()["status"] == 2  # Finalized
    for w in (a, b):
        bal, rec = before[w.address]
        now = env.worker(w)
        assert now["locked"] == rec["locked"] == 0
        assert now["reputation"] == rec["reputation"] + 10 and now["verified"] == rec["verified"] + 10
        assert env.balance(w) == bal + 10 * share


def test_lane_rules_revert_with_their_values(env: Env) -> None:
    job = env.replicated_job(2, num_tasks=6)
    a, b, c = env.workers[:3]
    start = task_id(job, 0)
    m = env.market.functions
    reverts(env, m.claimLane(start, 0), a, "MarketplaceInvalidRange", {"count": 0, "max": 32})
    reverts(env, m.claimLane(start, 33), a, "MarketplaceInvalidRange", {"count": 33, "max": 32})
    reverts(env, m.claimLane(task_id(job, 4), 3), a, "MarketplaceTaskOutOfRange",
            {"jobId": job, "index": 6, "numTasks": 6})
    env.tx(m.claim(task_id(job, 2)), c)  # a per-task replica holds task 2
    reverts(env, m.claimLane(start, 3), a, "MarketplaceTaskTaken", {"taskId": task_id(job, 2)})
    chunk = Chunk(env, job, 3, 3)
    chunk.claim(a)
    reverts(env, m.claim(task_id(job, 4)), b, "MarketplaceTaskTaken", {"taskId": task_id(job, 4)})
    # a lane joins only the chunk it names: another length at the same start finds its tasks taken
    reverts(env, m.claimLane(task_id(job, 3), 2), b, "MarketplaceTaskTaken", {"taskId": task_id(job, 3)})
    reverts(env, m.claimLane(task_id(job, 3), 3), a, "MarketplaceAlreadyClaimed",
            {"taskId": task_id(job, 3), "worker": a.address})
    chunk.claim(b)
    reverts(env, m.claimLane(task_id(job, 3), 3), c, "MarketplaceNoFreeReplica", {"taskId": task_id(job, 3)})
    reverts(env, m.commitLane(task_id(job, 3), 3, b"\x01" * 32), c, "MarketplaceNotClaimant",
            {"taskId": task_id(job, 3), "worker": c.address})
    reverts(env, m.commitLane(task_id(job, 3), 3, b"\0" * 32), a, "MarketplaceCommitmentMismatch")
    chunk.commit(a, honest(3))
    reverts(env, m.commitLane(task_id(job, 3), 3, b"\x01" * 32), a, "MarketplaceAlreadyCommitted")
    reverts(env, m.revealLane(task_id(job, 3), honest(3), [SALT] * 3, ["x"] * 3), a, "MarketplaceRevealNotOpen")
    reverts(env, m.revealLane(task_id(job, 3), honest(3), [SALT] * 3, ["x"] * 3), b, "MarketplaceNotCommitted")
    chunk.commit(b, honest(3))
    # a list that is not the committed one, and ragged arrays, are refused
    reverts(env, m.revealLane(task_id(job, 3), [digest(0, True), *honest(3)[1:]], [SALT] * 3, ["x"] * 3), a,
            "MarketplaceCommitmentMismatch", {"taskId": task_id(job, 3), "worker": a.address})
    reverts(env, m.revealLane(task_id(job, 3), honest(3), [SALT] * 2, ["x"] * 3), a, "MarketplaceLengthMismatch")
    # the split waits for every lane's reveal or the end of the window
    reverts(env, m.splitLanes(task_id(job, 3), 3, []), c, "MarketplaceNotFinalizable")
    chunk.reveal(a, honest(3))
    reverts(env, m.revealLane(task_id(job, 3), honest(3), [SALT] * 3, ["x"] * 3), a, "MarketplaceAlreadyRevealed")


def test_jobs_lanes_do_not_serve_revert(env: Env) -> None:
    app = env.app()
    env.fund(env.requester, 100 * E18)
    env.enroll(env.workers[0])
    r1 = env.post(app, numTasks=4)
    cred = env.post_credible(app, 990_000_000, 1000, numTasks=4, replication=3)
    for job in (r1, cred):
        reverts(env, env.market.functions.claimLane(task_id(job, 0), 2), env.workers[0],
                "MarketplaceLanesUnsupported", {"jobId": job})


def test_a_lane_that_lies_on_one_task_is_slashed_for_that_task_alone(env: Env) -> None:
    job = env.replicated_job(3, num_tasks=4)
    a, b, liar = env.workers[:3]
    stake = env.job(job)["replicaStake"]
    liar_before = env.worker(liar)
    lies = honest(4)
    lies[1] = digest(1, lie=True)
    chunk = Chunk(env, job, 0, 4)
    receipt = chunk.run({a: honest(4), b: honest(4), liar: lies})
    assert not env.events(receipt, "TaskFinalized")  # the lists differ: nothing final yet
    assert chunk.round()["status"] == 1 and chunk.round()["revealed"] == 0b111
    reverts(env, env.market.functions.splitLanes(chunk.start, 4, [honest(4), honest(4), honest(4)]),
            env.outsider, "MarketplaceLaneListMismatch", {"startTaskId": chunk.start, "worker": liar.address})
    reverts(env, env.market.functions.splitLanes(chunk.start, 4, [honest(4), honest(4)]), env.outsider,
            "MarketplaceLengthMismatch")
    receipt = chunk.split([honest(4), honest(4), lies], env.outsider)
    assert env.events(receipt, "LanesSplit")[0]["count"] == 4
    finals = env.events(receipt, "TaskFinalized")
    assert [(f["taskId"], f["winners"]) for f in finals] == [
        (task_id(job, 0), 3), (task_id(job, 1), 2), (task_id(job, 2), 3), (task_id(job, 3), 3)]
    slashes = env.events(receipt, "WorkerSlashed")
    assert [(s["worker"], s["taskId"], s["amount"]) for s in slashes] == [(liar.address, task_id(job, 1), stake)]
    now = env.worker(liar)
    assert now["stake"] == liar_before["stake"] - stake and now["locked"] == 0
    assert env.worker(a)["locked"] == env.worker(b)["locked"] == 0
    assert env.task(task_id(job, 1))["status"] == 2 and chunk.round()["status"] == 2
    assert env.job(job)["settled"] == 4


def test_two_lanes_that_disagree_split_into_rounds_that_ask_for_more_replicas(env: Env) -> None:
    job = env.replicated_job(2, num_tasks=3)
    a, b, c, d = env.workers[:4]
    other = honest(3)
    other[2] = digest(2, lie=True)
    chunk = Chunk(env, job, 0, 3)
    chunk.run({a: honest(3), b: other})
    receipt = chunk.split([honest(3), other], env.outsider)
    assert [f["taskId"] for f in env.events(receipt, "TaskFinalized")] == [task_id(job, 0), task_id(job, 1)]
    added = env.events(receipt, "ReplicasAdded")
    assert [(e["taskId"], e["target"]) for e in added] == [(task_id(job, 2), 4)]
    assert not env.events(receipt, "WorkerSlashed")  # nobody is outvoted yet: 1 against 1
    assert env.worker(a)["locked"] == env.worker(b)["locked"] == env.job(job)["replicaStake"]
    # task 2 goes on as any task in an extra round: two new replicas claim it per task and decide it
    tid = task_id(job, 2)
    for w in (c, d):
        env.tx(env.market.functions.claim(tid), w)
        env.tx(env.market.functions.commit(tid, commitment(tid, digest(2), SALT, w.address)), w)
    for w in (c, d):
        receipt = env.tx(env.market.functions.reveal(tid, digest(2), SALT, "bafy", b""), w)
    final = env.events(receipt, "TaskFinalized")[0]
    assert (final["resultDigest"], final["winners"]) == (digest(2), 3)
    assert [s["worker"] for s in env.events(receipt, "WorkerSlashed")] == [b.address]
    assert env.job(job)["settled"] == 3


def test_a_silent_lane_is_slashed_per_task_once_the_reveal_window_passes(env: Env) -> None:
    job = env.replicated_job(3, num_tasks=2)
    a, b, silent = env.workers[:3]
    stake = env.job(job)["replicaStake"]
    chunk = Chunk(env, job, 0, 2)
    for w in (a, b, silent):
        chunk.claim(w)
        chunk.commit(w, honest(2))
    chunk.reveal(a, honest(2))
    chunk.reveal(b, honest(2))
    reverts(env, env.market.functions.splitLanes(chunk.start, 2, [honest(2)] * 2), env.outsider,
            "MarketplaceNotFinalizable")
    env.warp(int(env.params()["revealWindow"]) + 1)
    receipt = chunk.split([honest(2)] * 2, env.outsider)
    assert [(f["winners"]) for f in env.events(receipt, "TaskFinalized")] == [2, 2]
    assert [(s["worker"], s["amount"]) for s in env.events(receipt, "WorkerSlashed")] == [(silent.address, stake)] * 2
    assert env.worker(silent)["locked"] == 0


def test_an_expired_lane_is_slashed_whole_and_freed_for_another_worker(env: Env) -> None:
    job = env.replicated_job(2, num_tasks=4)
    a, late, c = env.workers[:3]
    stake = env.job(job)["replicaStake"]
    chunk = Chunk(env, job, 0, 4)
    chunk.claim(a)
    chunk.claim(late)
    reverts(env, env.market.functions.reopenLanes(chunk.start, 4), env.outsider, "MarketplaceNothingExpired")
    chunk.commit(a, honest(4))
    # the commit window is a whole run of the chunk; a claim expires after its own run and grace
    env.warp(4 * 100 + int(env.params()["claimGrace"]) + 1)
    reverts(env, env.market.functions.commitLane(chunk.start, 4, root_of(chunk.start, honest(4), late.address)),
            late, "MarketplaceClaimExpired")
    before = env.worker(late)["stake"]
    receipt = env.tx(env.market.functions.reopenLanes(chunk.start, 4), env.outsider)
    assert env.events(receipt, "LaneExpired")[0]["worker"] == late.address
    assert [(s["worker"], s["amount"]) for s in env.events(receipt, "WorkerSlashed")] == [(late.address, 4 * stake)]
    assert env.worker(late)["stake"] == before - 4 * stake and env.worker(late)["locked"] == 0
    assert chunk.round()["occupied"] == 0b01


def test_a_chunk_without_all_its_lanes_after_the_claim_grace_is_dissolved_and_its_tasks_are_free(env: Env) -> None:
    job = env.replicated_job(2, num_tasks=6)
    a, b, c = env.workers[:3]
    stake = env.job(job)["replicaStake"]
    grace = int(env.params()["claimGrace"])
    m = env.market.functions
    chunk = Chunk(env, job, 1, 4)
    claimed = env.events(chunk.claim(a), "LaneClaimed")[0]
    join_until = int(claimed["expiry"]) - 4 * 100  # the claim, plus the grace (maxRunSeconds is 100)
    assert join_until == env.now() + grace
    chunk.commit(a, honest(4))  # a commit alone does not close the chunk to joiners
    reverts(env, m.dissolveLanes(chunk.start, 4), c, "MarketplaceLanesJoinOpen",
            {"startTaskId": chunk.start, "joinUntil": join_until})
    env.warp(grace + 1)
    stake_before = env.worker(a)["stake"]
    receipt = env.tx(m.dissolveLanes(chunk.start, 4), c)  # anyone may
    assert [(e["startTaskId"], e["count"]) for e in env.events(receipt, "LanesDissolved")] == [(chunk.start, 4)]
    assert not env.events(receipt, "WorkerSlashed")
    assert env.worker(a)["locked"] == 0 and env.worker(a)["stake"] == stake_before  # unlocked, nothing taken
    assert chunk.round()["status"] == 0 and chunk.round()["occupied"] == 0  # the chunk is gone
    reverts(env, m.dissolveLanes(chunk.start, 4), c, "MarketplaceTaskNotActive")
    # its tasks are free: per-task replicas claim them, and a new chunk may take the same range again
    env.tx(m.claim(task_id(job, 2)), b)
    assert env.worker(b)["locked"] == stake
    reverts(env, m.claimLane(chunk.start, 4), a, "MarketplaceTaskTaken", {"taskId": task_id(job, 2)})
    again = Chunk(env, job, 3, 2)
    settled = env.events(again.run({a: honest(2), c: honest(2)}), "TaskFinalized")
    assert [e["taskId"] for e in settled] == [task_id(job, 3), task_id(job, 4)]


def test_a_chunk_with_all_its_lanes_or_a_reveal_is_not_dissolved(env: Env) -> None:
    job = env.replicated_job(2, num_tasks=6)
    a, b, c = env.workers[:3]
    grace = int(env.params()["claimGrace"])
    m = env.market.functions
    full = Chunk(env, job, 0, 3)
    full.claim(a)
    full.claim(b)
    env.warp(grace + 1)
    reverts(env, m.dissolveLanes(full.start, 3), c, "MarketplaceLanesNotDissolvable",
            {"startTaskId": full.start, "lanes": 2, "target": 2, "revealed": 0})
    # a lone lane that committed and revealed once the commit window passed: its results are public, so the
    # chunk ends by a split (its tasks ask for more replicas), never by going back to the free pool
    lone = Chunk(env, job, 3, 3)
    lone.claim(c)
    lone.commit(c, honest(3))
    env.warp(int(lone.round()["commitDeadline"]) - env.now() + 1)
    lone.reveal(c, honest(3))
    reverts(env, m.dissolveLanes(lone.start, 3), a, "MarketplaceLanesNotDissolvable",
            {"startTaskId": lone.start, "lanes": 1, "target": 2, "revealed": 1})


def test_a_chunk_whose_lanes_all_expired_is_dissolved_at_once(env: Env) -> None:
    job = env.replicated_job(2, num_tasks=4)
    a, c = env.workers[0], env.workers[2]
    chunk = Chunk(env, job, 0, 4)
    chunk.claim(a)
    env.warp(4 * 100 + int(env.params()["claimGrace"]) + 1)
    env.tx(env.market.functions.reopenLanes(chunk.start, 4), c)  # a slashed, its lane freed: the chunk is empty
    env.tx(env.market.functions.dissolveLanes(chunk.start, 4), c)
    env.tx(env.market.functions.claim(task_id(job, 0)), c)


def test_lanes_of_a_closed_job_are_released(env: Env) -> None:
    app = env.app()
    env.fund(env.requester, 100 * E18)
    for w in env.workers[:2]:
        env.enroll(w)
    job = env.post(app, numTasks=3, replication=2, maxRunSeconds=100, deadline=env.now() + 2000)
    a, b = env.workers[:2]
    stake = env.job(job)["replicaStake"]
    chunk = Chunk(env, job, 0, 3)
    chunk.claim(a)
    chunk.claim(b)
    chunk.commit(a, honest(3))
    reverts(env, env.market.functions.releaseLanes(chunk.start, 3), env.outsider, "MarketplaceDeadlineNotReached")
    env.warp(2001)
    requester_before = env.balance(env.requester)
    env.tx(env.market.functions.closeJob(job), env.outsider)
    assert env.balance(env.requester) > requester_before  # the chunk's unsettled tasks are refunded
    b_stake = env.worker(b)["stake"]
    receipt = env.tx(env.market.functions.releaseLanes(chunk.start, 3), env.outsider)
    assert [(e["worker"], e["slashed"]) for e in env.events(receipt, "LaneReleased")] == [
        (a.address, False), (b.address, True)]
    assert env.worker(a)["locked"] == 0 and env.worker(b)["locked"] == 0
    assert env.worker(b)["stake"] == b_stake - 3 * stake
    assert chunk.round()["status"] == 3  # Failed
    reverts(env, env.market.functions.releaseLanes(chunk.start, 3), env.outsider, "MarketplaceTaskNotActive")


@pytest.mark.parametrize("replication", [2, 3])
def test_lanes_cost_less_gas_per_task_than_per_task_rounds(env: Env, replication: int) -> None:
    """Not a limit: the gas of each path is printed for the record; the assertion is only that lanes are cheaper."""
    job = env.replicated_job(replication, num_tasks=20)
    lanes = env.workers[:replication]
    chunk = Chunk(env, job, 0, 10)
    gas = 0
    for w in lanes:
        gas += chunk.claim(w)["gasUsed"]
    for w in lanes:
        gas += chunk.commit(w, honest(10))["gasUsed"]
    for w in lanes:
        gas += chunk.reveal(w, honest(10))["gasUsed"]
    assert env.job(job)["settled"] == 10
    per_task = 0
    tid = task_id(job, 10)
    for w in lanes:
        per_task += env.tx(env.market.functions.claim(tid), w)["gasUsed"]
    for w in lanes:
        per_task += env.tx(env.market.functions.commit(tid, commitment(tid, digest(0), SALT, w.address)), w)["gasUsed"]
    for w in lanes:
        per_task += env.tx(env.market.functions.reveal(tid, digest(0), SALT, "bafy", b""), w)["gasUsed"]
    print(f"R={replication}: lanes of 10 {gas // 10} gas per task, per-task rounds {per_task}")
    assert gas // 10 < per_task


@pytest.mark.parametrize("replication,count", [(2, 1), (2, 10), (3, 10), (2, 32), (3, 32)])
def test_the_daemons_reveal_gas_floor_covers_a_reveal_that_settles(env: Env, replication: int, count: int) -> None:
    """A daemon's lane reveal is simulated before the other lanes' reveals land; when one lands first in the same
    block, ours settles the chunk (and closes the job). Its gas floor (``worker._lanes.settle_allowance``) must cover
    that costlier path, or the reveal runs out of gas on chain."""
    job = env.replicated_job(replication, num_tasks=count)
    stake = env.job(job)["replicaStake"]
    lanes = {w: honest(count) for w in env.workers[:replication]}
    for w in lanes:  # a lane locks a stake per task
        env.fund(w, count * stake)
        env.tx(env.market.functions.stake(count * stake), w)
    receipt = Chunk(env, job, 0, count).run(lanes)
    assert env.events(receipt, "JobClosed")  # the costliest path: settles every task and closes the job
    assert receipt["gasUsed"] <= settle_allowance(count, replication), (receipt["gasUsed"], count, replication)
