"""Credibility mode (adaptive replication): a task starts with one replica and gets one more at a time until a
group of matching results is credible enough (Sarmenta's credibility from each worker's verified count), random
spot checks of trusted workers, disputes weighed by count, the cap, and the escrow of unused replicas."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from market_helpers import E18, Env, reverts

from oracle.protocol import commitment, task_id

GOOD = b"\x60" * 32
BAD = b"\xba" * 32
SALT = b"\x5a" * 32
F = 1000  # assumed faulty share: 10 %; a new worker's credibility is 0.9 (odds 9)
CONF = 990_000_000  # 0.99
NOT_CREDIBLE, SPOT_CHECK, DISPUTE = 0, 1, 2


@pytest.fixture
def app(enrolled_app: int) -> int:
    return enrolled_app


def claim_commit(env: Env, tid: int, w: LocalAccount, digest: bytes) -> Any:
    env.tx(env.market.functions.claim(tid), w)
    return env.tx(env.market.functions.commit(tid, commitment(tid, digest, SALT, w.address)), w)


def reveal(env: Env, tid: int, w: LocalAccount, digest: bytes) -> Any:
    return env.tx(env.market.functions.reveal(tid, digest, SALT, "bafyR", b""), w)


def due(env: Env, tid: int) -> bool:
    """spotCheckDue as the next block will see it (the commit block's own hash is readable from the next one)."""
    return bool(env.market.functions.spotCheckDue(tid).call(block_identifier="pending"))


def make_veteran(env: Env, app: int, vet: LocalAccount, partner: LocalAccount, k: int) -> None:
    """``k`` R=2 tasks on which ``vet`` and ``partner`` agree: both end with ``k`` verified results."""
    job = env.post(app, numTasks=k, replication=2, maxRunSeconds=100)
    for i in range(k):
        tid = task_id(job, i)
        for w in (vet, partner):
            claim_commit(env, tid, w, GOOD)
        for w in (vet, partner):
            reveal(env, tid, w, GOOD)


def test_a_new_workers_result_is_replicated_until_the_group_is_credible(env: Env, app: int) -> None:
    job = env.post_credible(app, CONF, F, numTasks=1, replication=6, maxRunSeconds=100)
    tid = task_id(job, 0)
    assert env.task(tid)["target"] == 0
    wanted = []
    for n, w in enumerate(env.workers[:3]):
        receipt = claim_commit(env, tid, w, GOOD)
        wanted += env.events(receipt, "ReplicaWanted")
        assert env.task(tid)["target"] == min(n + 2, 3)
    # 1 worker: 9/10; 2 agreeing: 81/82 = 0.988 < 0.99; 3 agreeing: 729/730 = 0.9986: no 4th replica
    assert [(e["reason"], e["target"], e["credibilityPpb"]) for e in wanted] == [
        (NOT_CREDIBLE, 2, 900_000_000), (NOT_CREDIBLE, 3, 81 * 10**9 // 82)]
    before = env.balance(env.requester)
    for w in env.workers[:2]:
        reveal(env, tid, w, GOOD)
    receipt = reveal(env, tid, env.workers[2], GOOD)
    fin = env.events(receipt, "TaskFinalized")[0]
    assert (fin["winners"], fin["rewardEach"]) == (3, E18)  # pool: the 3 replicas used, no fee on the devnet
    assert env.balance(env.requester) - before == 3 * E18  # the cap was 6: 3 unused replicas come back
    for w in env.workers[:3]:
        assert env.worker(w)["verified"] == 1 and env.balance(w) == E18 and env.worker(w)["locked"] == 0
    assert env.escrow_total() == 0


def test_a_trusted_worker_finalizes_alone_and_the_unused_escrow_returns(env: Env, app: int) -> None:
    vet, partner = env.workers[0], env.workers[1]
    make_veteran(env, app, vet, partner, 10)  # odds 10/0.1 - 1 = 99: credibility 0.99
    assert env.view("credibilityOf", vet.address, F) == 990_000_000
    job = env.post_credible(app, CONF, F, numTasks=1, replication=4, maxRunSeconds=100)
    tid = task_id(job, 0)
    receipt = claim_commit(env, tid, vet, GOOD)
    assert env.events(receipt, "ReplicaWanted") == [] and env.task(tid)["target"] == 1
    assert due(env, tid) is False
    before = env.balance(env.requester)
    receipt = reveal(env, tid, vet, GOOD)
    assert env.events(receipt, "TaskFinalized")[0]["winners"] == 1
    assert env.balance(env.requester) - before == 3 * E18
    assert env.worker(vet)["verified"] == 10  # a result nobody checked is not a verified one


@pytest.mark.reliability(kind="attack", name="a trusted worker lies and is caught by a spot check",
                         how="credibility mode, a worker with 10 verified results reveals a wrong digest on a task "
                             "picked for a spot check: the dispute weighs every replica as new, four honest "
                             "replicas win, the liar is slashed and its credibility resets")
def test_a_trusted_liar_is_caught_by_a_spot_check(env: Env, app: int) -> None:
    vet, honest = env.workers[0], env.workers[1:5]
    make_veteran(env, app, vet, honest[0], 10)
    job = env.post_credible(app, CONF, F, spot_bps=10_000, numTasks=1, replication=6, maxRunSeconds=100)
    tid = task_id(job, 0)
    claim_commit(env, tid, vet, BAD)
    assert due(env, tid) is True
    reverts(env, env.market.functions.reveal(tid, BAD, SALT, "bafyR", b""), vet, "MarketplaceSpotCheckDue",
            {"taskId": tid})
    receipt = env.tx(env.market.functions.startSpotCheck(tid), env.outsider)
    assert [(e["reason"], e["target"]) for e in env.events(receipt, "ReplicaWanted")] == [(SPOT_CHECK, 2)]
    reverts(env, env.market.functions.startSpotCheck(tid), env.outsider, "MarketplaceNoSpotCheck", {"taskId": tid})
    # the liar cannot reveal before the checker committed: the checker cannot copy its digest
    reverts(env, env.market.functions.reveal(tid, BAD, SALT, "bafyR", b""), vet, "MarketplaceRevealNotOpen")
    claim_commit(env, tid, honest[0], GOOD)
    reveal(env, tid, vet, BAD)
    receipt = reveal(env, tid, honest[0], GOOD)
    assert [(e["reason"], e["target"]) for e in env.events(receipt, "ReplicaWanted")] == [(DISPUTE, 3)]
    # 9^m / (1 + 9^m + 9) >= 0.99 needs m = 4 matching new-weight replicas against the one liar
    for n, w in enumerate(honest[1:]):
        claim_commit(env, tid, w, GOOD)
        receipt = reveal(env, tid, w, GOOD)
        if n < 2:
            assert env.events(receipt, "ReplicaWanted")[0]["reason"] == DISPUTE
    fin = env.events(receipt, "TaskFinalized")[0]
    assert (fin["resultDigest"], fin["winners"]) == (GOOD, 4)
    assert [s["worker"] for s in env.events(receipt, "WorkerSlashed")] == [vet.address]
    assert env.worker(vet)["verified"] == 0 and env.worker(vet)["slashes"] == 1
    assert env.view("credibilityOf", vet.address, F) == 900_000_000


def test_an_honest_trusted_worker_passes_its_spot_check(env: Env, app: int) -> None:
    vet, checker = env.workers[0], env.workers[2]
    make_veteran(env, app, vet, env.workers[1], 10)
    job = env.post_credible(app, CONF, F, spot_bps=10_000, numTasks=1, replication=4, maxRunSeconds=100)
    tid = task_id(job, 0)
    claim_commit(env, tid, vet, GOOD)
    env.tx(env.market.functions.startSpotCheck(tid), vet)
    claim_commit(env, tid, checker, GOOD)
    reveal(env, tid, vet, GOOD)
    receipt = reveal(env, tid, checker, GOOD)
    assert env.events(receipt, "TaskFinalized")[0]["winners"] == 2
    assert env.worker(vet)["verified"] == 11 and env.worker(checker)["verified"] == 1


def more_workers(env: Env, n: int) -> list[LocalAccount]:
    """``n`` new worker identities (gas from anvil, stake from the faucet), as a Sybil attacker makes them."""
    out = []
    for _ in range(n):
        acct: LocalAccount = Account.create()
        env.w3.provider.make_request("anvil_setBalance", [acct.address, hex(10**20)])  # type: ignore[arg-type]
        env.enroll(acct)
        out.append(acct)
    return out


@pytest.mark.reliability(kind="attack", name="a Sybil swarm of new workers in credibility mode",
                         how="two new identities agree on a wrong digest: they are not credible enough to finalize "
                             "it, the honest replicas that join dispute it, and the swarm is slashed and unpaid")
def test_a_swarm_of_new_workers_gains_nothing(env: Env, app: int) -> None:
    swarm, honest = env.workers[:2], env.workers[2:5] + more_workers(env, 2)
    job = env.post_credible(app, CONF, F, numTasks=1, replication=8, maxRunSeconds=100)
    tid = task_id(job, 0)
    for w in swarm:
        claim_commit(env, tid, w, BAD)
    assert env.task(tid)["target"] == 3  # two new workers agreeing are not enough (0.988)
    claim_commit(env, tid, honest[0], GOOD)  # 3 agreeing would be: reveals open
    for w in swarm:
        reveal(env, tid, w, BAD)
    receipt = reveal(env, tid, honest[0], GOOD)
    assert [(e["reason"], e["target"]) for e in env.events(receipt, "ReplicaWanted")] == [(DISPUTE, 4)]
    for w in honest[1:]:
        claim_commit(env, tid, w, GOOD)
        receipt = reveal(env, tid, w, GOOD)
    # 9^5 / (1 + 9^5 + 9^2) = 0.9986: five new honest replicas outweigh the two
    fin = env.events(receipt, "TaskFinalized")
    assert fin and (fin[0]["resultDigest"], fin[0]["winners"]) == (GOOD, 5)
    assert sorted(e["worker"] for e in env.events(receipt, "WorkerSlashed")) == sorted(w.address for w in swarm)
    for w in swarm:
        assert env.worker(w)["verified"] == 0 and env.balance(w) == 0 and env.worker(w)["stake"] == 9 * E18


def test_past_the_cap_a_task_that_is_never_credible_fails_and_is_refunded(env: Env, app: int) -> None:
    job = env.post_credible(app, CONF, F, numTasks=1, replication=2, maxRunSeconds=100)
    tid = task_id(job, 0)
    for w in env.workers[:2]:
        claim_commit(env, tid, w, GOOD)
    assert env.task(tid)["target"] == 2  # at the cap: reveals open although 0.988 < 0.99
    before = env.balance(env.requester)
    reveal(env, tid, env.workers[0], GOOD)
    receipt = reveal(env, tid, env.workers[1], GOOD)
    assert env.events(receipt, "TaskFailed")[0]["refund"] == 2 * E18
    assert env.balance(env.requester) - before == 2 * E18
    for w in env.workers[:2]:  # honest but not credible enough: stake back, not slashed, not paid
        assert env.worker(w)["locked"] == 0 and env.worker(w)["slashes"] == 0


@pytest.mark.parametrize("conf,fault,spot,cap,bad", [
    (0, F, 0, 4, "confidence 0"), (10**9, F, 0, 4, "confidence 1"), (CONF, 99, 0, 4, "f below 1 %"),
    (CONF, 5001, 0, 4, "f above 50 %"), (CONF, F, 10_001, 4, "spot checks above 100 %"), (CONF, F, 0, 1, "cap 1")])
def test_bad_credibility_settings_are_refused_with_their_values(env: Env, app: int, conf: int, fault: int, spot: int,
                                                               cap: int, bad: str) -> None:
    fn = env.market.functions.postCredibilityJob(env.job_params(app, replication=cap), (conf, fault, spot))
    reverts(env, fn, env.requester, "MarketplaceInvalidCredibility",
            {"confidencePpb": conf, "faultBps": fault, "spotCheckBps": spot, "cap": cap})


def test_a_fixed_r_job_counts_verified_results_but_a_lone_result_does_not(env: Env, app: int) -> None:
    job = env.post(app, numTasks=1, replication=3, maxRunSeconds=100)
    tid = task_id(job, 0)
    for w, d in zip(env.workers[:3], [GOOD, GOOD, BAD], strict=True):
        claim_commit(env, tid, w, d)
    for w, d in zip(env.workers[:3], [GOOD, GOOD, BAD], strict=True):
        reveal(env, tid, w, d)
    assert [env.worker(w)["verified"] for w in env.workers[:3]] == [1, 1, 0]
    single = env.post(app, numTasks=1, replication=1, maxRunSeconds=100)
    env.tx(env.market.functions.claim(task_id(single, 0)), env.workers[3])
    env.tx(env.market.functions.submit(task_id(single, 0), GOOD, "bafyR", b""), env.workers[3])
    assert env.worker(env.workers[3])["verified"] == 0


def test_the_python_arithmetic_matches_the_contracts(env: Env, app: int) -> None:
    """oracle.credibility (job explain, the verifier, the simulation) computes what the contract computes."""
    from oracle import credibility as cr
    vet = env.workers[0]
    make_veteran(env, app, vet, env.workers[1], 3)
    for fault in (100, 1000, 3333, 5000):
        assert env.view("credibilityOf", vet.address, fault) == cr.of_worker(3, fault)
        assert env.view("credibilityOf", env.workers[4].address, fault) == cr.of_worker(0, fault)
    job = env.post_credible(app, CONF, 3000, numTasks=1, replication=8, maxRunSeconds=100)
    tid = task_id(job, 0)
    seen: list[int] = []
    for w, d in ((vet, GOOD), (env.workers[1], GOOD), (env.workers[2], BAD)):
        receipt = claim_commit(env, tid, w, d)
        seen.append(env.worker(w)["verified"])
        wanted = env.events(receipt, "ReplicaWanted")
        ppb = cr.all_agree_ppb(seen, 3000)
        assert (wanted[0]["credibilityPpb"] if wanted else None) == (ppb if ppb < CONF else None)
    assert env.task(tid)["target"] == 3  # 9 * 9 * 7/3 = 189: 0.9947
    for w in (vet, env.workers[1]):
        reveal(env, tid, w, GOOD)
    receipt = reveal(env, tid, env.workers[2], BAD)
    verdict = cr.best_group([(GOOD, 3), (GOOD, 3), (BAD, 0)], 3000)
    wanted = env.events(receipt, "ReplicaWanted")[0]
    assert (wanted["reason"], wanted["credibilityPpb"]) == (DISPUTE, verdict.credibility_ppb) and verdict.dispute


def test_the_documented_limit_colluders_who_are_a_tasks_whole_group_finalize_it(env: Env, app: int) -> None:
    """PROTOCOL.md, honest limits: credibility assumes independent faults. Two colluding workers with a record
    who happen to be a task's whole group finalize a wrong result; no spot check applies to a group of two. This
    test pins the limit down so that a change of it is a decision, not an accident."""
    a, b = env.workers[0], env.workers[1]
    make_veteran(env, app, a, b, 5)  # 5 verified each: odds 49 apiece, 2,401 together (0.9996)
    job = env.post_credible(app, CONF, F, spot_bps=10_000, numTasks=1, replication=6, maxRunSeconds=100)
    tid = task_id(job, 0)
    claim_commit(env, tid, a, BAD)
    assert env.task(tid)["target"] == 2  # 0.98 alone: a second replica before any reveal
    claim_commit(env, tid, b, BAD)
    reveal(env, tid, a, BAD)
    receipt = reveal(env, tid, b, BAD)
    assert env.events(receipt, "TaskFinalized")[0]["resultDigest"] == BAD
