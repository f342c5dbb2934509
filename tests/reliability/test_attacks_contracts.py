"""Reliability suite, attack half, on chain: adversarial workers, requesters and tokens against the real contracts
on the session anvil. Each test is one attack: it passes only when the attack is rejected or slashed as
contracts/PROTOCOL.md says (or, for ``kind="limit"``, when the protocol behaves exactly as documented in
RELIABILITY.md's "What a colluding majority can do"). Evidence is recorded with ``record_property("reliability", …)``
and ends up in RELIABILITY.md (``scripts/reliability``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from oracle import send
from oracle._artifacts import load_artifact
from oracle._chain import deploy
from oracle.exceptions import TransactionReverted
from oracle.protocol import (
    Eip712Domain,
    commitment,
    results_batch,
    sign_commit,
    sign_reveal,
    task_id,
)
from tests.contracts.market_helpers import E18, Env

ROOT = Path(__file__).resolve().parents[2]
GOOD = b"\x60" * 32
BAD = b"\xba" * 32
OTHER = b"\x33" * 32
SALT = b"\x5a" * 32
DAY = 86_400
BLOCK_GAS = 30_000_000
U96 = 2**96 - 1
U80 = 2**80 - 1
U32 = 2**32 - 1

attack = pytest.mark.reliability


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


GUARD = selector("ReentrancyGuardReentrantCall()")
NOT_OWNER = selector("OwnableUnauthorizedAccount(address)")


# --- helpers --------------------------------------------------------------------------------------------------
def rejected(env: Env, fn: Any, sender: LocalAccount, name: str | None = None) -> TransactionReverted:
    """Send ``fn``; it must revert (with custom error ``name`` when given). Returns the decoded revert."""
    with pytest.raises(TransactionReverted) as err:
        send(env.w3, fn, sender, extra_abis=[env.registry.abi, env.token.abi, load_artifact("AccountLogic")["abi"]])
    if name is not None:
        assert err.value.error_name == name, str(err.value)
    return err.value


def solvent(env: Env, extra: list[str] = ()) -> int:  # type: ignore[assignment]
    """The marketplace holds exactly balances + stakes + escrow (PROTOCOL.md's money invariant); returns it."""
    people = {a.address for a in [env.owner, env.requester, env.app_owner, env.dataset_owner, *env.workers,
                                  env.outsider]} | set(extra)
    held = int(env.token.functions.balanceOf(env.market.address).call())
    owed = sum(env.balance(a) for a in people)
    for a in people:
        w = env.market.functions.getWorker(a).call()
        owed += w[0] + w[5]  # stake + unstaking
    owed += env.escrow_total()
    assert held == owed, f"marketplace holds {held} but owes {owed}"
    return held


def replicated_job(env: Env, *, replication: int = 3, tasks: int = 1, workers: int = 5, **kw: Any) -> int:
    app = env.app()
    env.fund(env.requester, 100 * E18)
    for w in env.workers[:workers]:
        env.enroll(w)
    return env.post(app, numTasks=tasks, replication=replication, maxRunSeconds=kw.pop("maxRunSeconds", 3600), **kw)


def commit(env: Env, tid: int, w: LocalAccount, digest: bytes, salt: bytes = SALT) -> Any:
    return env.tx(env.market.functions.commit(tid, commitment(tid, digest, salt, w.address)), w)


def reveal(env: Env, tid: int, w: LocalAccount, digest: bytes, salt: bytes = SALT) -> Any:
    return env.tx(env.market.functions.reveal(tid, digest, salt, "bafyR", b""), w)


def slashed(env: Env, receipt: Any) -> dict[str, int]:
    return {e["worker"]: e["amount"] for e in env.events(receipt, "WorkerSlashed")}


# =============================================================================================================
# Adversarial workers
# =============================================================================================================
@attack(kind="attack", name="copy another worker's commitment",
        how="R=3: a lazy replica commits the exact bytes another replica committed (seen in the mempool), then "
            "reveals that worker's digest and salt once they are public; the commitment binds the worker "
            "address, so the reveal must fail and the copier be slashed at finalization")
def test_copied_commitment_cannot_be_revealed_and_is_slashed(env: Env, record_property: Any) -> None:
    job = replicated_job(env)
    tid = task_id(job, 0)
    honest, other, copier = env.workers[:3]
    for w in (honest, other, copier):
        env.tx(env.market.functions.claim(tid), w)
    stolen = commitment(tid, GOOD, SALT, honest.address)
    env.tx(env.market.functions.commit(tid, stolen), honest)
    env.tx(env.market.functions.commit(tid, stolen), copier)  # byte-for-byte copy
    commit(env, tid, other, GOOD)
    reveal(env, tid, honest, GOOD)  # digest and salt are now public
    err = rejected(env, env.market.functions.reveal(tid, GOOD, SALT, "bafyR", b""), copier,
                   "MarketplaceCommitmentMismatch")
    reveal(env, tid, other, GOOD)
    env.warp(env.params()["revealWindow"] + 1)
    treasury = env.balance(env.owner)
    receipt = env.tx(env.market.functions.finalize(tid), env.outsider)
    fin = env.events(receipt, "TaskFinalized")[0]
    assert (fin["resultDigest"], fin["winners"]) == (GOOD, 2)
    assert slashed(env, receipt) == {copier.address: E18}
    assert env.balance(copier) == 0 and env.worker(copier)["stake"] == 9 * E18
    assert env.balance(env.owner) - treasury == E18
    solvent(env)
    record_property("reliability", f"copier's reveal: {err.error_name}; finalize slashed the copier 1 token; "
                                   f"2 honest replicas shared {3 * E18 // 2 / E18:g} tokens each")


@attack(kind="attack", name="reveal with a wrong salt or a wrong digest",
        how="R=3: a replica tries to reveal its committed digest with another salt, then another digest with "
            "its salt; both must revert (commitment mismatch) and the replica is slashed when the window ends")
def test_reveal_with_wrong_salt_or_digest_is_rejected_then_slashed(env: Env, record_property: Any) -> None:
    job = replicated_job(env)
    tid = task_id(job, 0)
    ws = env.workers[:3]
    for w in ws:
        env.tx(env.market.functions.claim(tid), w)
    for w in ws:
        commit(env, tid, w, GOOD)
    liar = ws[2]
    errors = [rejected(env, env.market.functions.reveal(tid, GOOD, b"\x01" * 32, "c", b""), liar,
                       "MarketplaceCommitmentMismatch").error_name,
              rejected(env, env.market.functions.reveal(tid, BAD, SALT, "c", b""), liar,
                       "MarketplaceCommitmentMismatch").error_name]
    reveal(env, tid, ws[0], GOOD)
    reveal(env, tid, ws[1], GOOD)
    env.warp(env.params()["revealWindow"] + 1)
    receipt = env.tx(env.market.functions.finalize(tid), env.outsider)
    assert slashed(env, receipt) == {liar.address: E18}
    assert env.worker(liar)["reputation"] == 0 and env.worker(liar)["slashes"] == 1
    solvent(env)
    record_property("reliability", f"wrong salt: {errors[0]}; wrong digest: {errors[1]}; the silent replica was "
                                   "slashed 1 token at finalize")


@attack(kind="attack", name="claim two replicas of one task (multicall, extra round)",
        how="a worker batches two claims of one task in one multicall, and claims again in the extra round of a "
            "task without majority; both must revert (one replica per worker per task)")
def test_one_worker_cannot_hold_two_replicas(env: Env, record_property: Any) -> None:
    job = replicated_job(env)
    tid = task_id(job, 0)
    m = env.market
    w = env.workers[0]
    err = rejected(env, m.functions.multicall([m.encode_abi("claim", [tid])] * 2), w, "MarketplaceAlreadyClaimed")
    assert env.task(tid)["occupied"] == 0  # the whole batch was undone
    ws = env.workers[:3]
    for x in ws:
        env.tx(m.functions.claim(tid), x)
    for x, d in zip(ws, [GOOD, BAD, OTHER], strict=True):
        commit(env, tid, x, d)
    for x, d in zip(ws, [GOOD, BAD, OTHER], strict=True):
        receipt = reveal(env, tid, x, d)
    assert env.events(receipt, "ReplicasAdded")[0]["target"] == 5
    again = rejected(env, m.functions.claim(tid), w, "MarketplaceAlreadyClaimed")
    record_property("reliability", f"double claim in one multicall: {err.error_name}; claim in the extra round "
                                   f"by a replica already in: {again.error_name}")


@attack(kind="attack", name="colluding minority (2 of 5 agree on a wrong result)",
        how="R=5: two colluders commit and reveal the same wrong digest, three honest replicas the right one; "
            "the strict majority must win, both colluders lose stake and half their reputation, sums exact")
def test_colluding_minority_is_outvoted_and_slashed(env: Env, record_property: Any) -> None:
    job = replicated_job(env, replication=5)
    tid = task_id(job, 0)
    ws = env.workers[:5]
    digests = [GOOD, BAD, GOOD, BAD, GOOD]
    for w in ws:
        env.tx(env.market.functions.claim(tid), w)
    for w, d in zip(ws, digests, strict=True):
        commit(env, tid, w, d)
    treasury = env.balance(env.owner)
    for w, d in zip(ws, digests, strict=True):
        receipt = reveal(env, tid, w, d)
    fin = env.events(receipt, "TaskFinalized")[0]
    assert (fin["resultDigest"], fin["winners"], fin["rewardEach"]) == (GOOD, 3, 5 * E18 // 3)
    assert slashed(env, receipt) == {ws[1].address: E18, ws[3].address: E18}
    for w in (ws[1], ws[3]):
        assert env.balance(w) == 0 and env.worker(w)["stake"] == 9 * E18
    dust = 5 * E18 - 3 * (5 * E18 // 3)
    assert env.balance(env.owner) - treasury == 2 * E18 + dust
    assert sum(env.balance(w) for w in ws) == 5 * E18 - dust
    solvent(env)
    record_property("reliability", f"majority digest won 3-2; colluders slashed 1 token each; winners got "
                                   f"{fin['rewardEach']} wei each, division dust {dust} wei to the treasury")


@attack(kind="limit", name="colluding majority (2 of 3) wins",
        how="R=3: two colluding replicas reveal the same wrong digest, one honest replica the right one; "
            "documented outcome: the wrong digest is final, the colluders are paid and the honest worker is slashed")
def test_colluding_majority_wins_and_the_honest_replica_is_slashed(env: Env, record_property: Any) -> None:
    job = replicated_job(env)
    tid = task_id(job, 0)
    honest, c1, c2 = env.workers[:3]
    for w in (honest, c1, c2):
        env.tx(env.market.functions.claim(tid), w)
    for w, d in ((honest, GOOD), (c1, BAD), (c2, BAD)):
        commit(env, tid, w, d)
    for w, d in ((honest, GOOD), (c1, BAD), (c2, BAD)):
        receipt = reveal(env, tid, w, d)
    fin = env.events(receipt, "TaskFinalized")[0]
    assert (fin["resultDigest"], fin["winners"]) == (BAD, 2)
    assert slashed(env, receipt) == {honest.address: E18}
    assert env.balance(c1) == env.balance(c2) == 3 * E18 // 2 and env.balance(honest) == 0
    solvent(env)
    record_property("reliability", "the colluders' wrong digest became final; each colluder earned 1.5 tokens, the "
                                   "honest replica was slashed 1 token (reputation halved)")


@attack(kind="limit", name="copying a digest revealed in an earlier round",
        how="R=3 without majority (3 different digests) gets 2 extra replicas; the new workers read the round-1 "
            "ResultRevealed events and commit one of those digests without running anything; documented "
            "outcome: they decide the vote and are paid (commit-reveal hides digests only within a round)")
def test_extra_round_replicas_can_copy_a_revealed_digest(env: Env, record_property: Any) -> None:
    job = replicated_job(env)
    tid = task_id(job, 0)
    ws = env.workers[:5]
    for w in ws[:3]:
        env.tx(env.market.functions.claim(tid), w)
    for w, d in zip(ws[:3], [GOOD, BAD, OTHER], strict=True):
        commit(env, tid, w, d)
    for w, d in zip(ws[:3], [GOOD, BAD, OTHER], strict=True):
        receipt = reveal(env, tid, w, d)
    assert env.events(receipt, "ReplicasAdded")[0]["target"] == 5
    public = [e["args"]["resultDigest"] for e in env.market.events.ResultRevealed().get_logs(from_block=0)
              if e["args"]["taskId"] == tid]
    assert sorted(public) == sorted([GOOD, BAD, OTHER])
    copied = public[1]  # any of them: here the second one, BAD
    for w in ws[3:]:
        env.tx(env.market.functions.claim(tid), w)
        commit(env, tid, w, copied)
    for w in ws[3:]:
        receipt = reveal(env, tid, w, copied)
    fin = env.events(receipt, "TaskFinalized")[0]
    assert (fin["resultDigest"], fin["winners"]) == (copied, 3)
    assert all(env.balance(w) == fin["rewardEach"] for w in ws[3:])
    solvent(env)
    record_property("reliability", "two replicas that never ran the task copied a round-1 digest and made it "
                                   f"final 3-2, earning {fin['rewardEach'] / E18:g} tokens each")


@pytest.mark.parametrize("when", ["claimed early, commits late", "claims after the first reveal"])
@attack(kind="attack", name="copy a reveal by committing after the commit window",
        how="R=3: two replicas commit; the commit window ends and one reveals (digest and salt now public); the "
            "third replica then commits that digest with its own salt and reveals it; the late commit must be "
            "refused, or the copier must not be paid")
def test_commit_after_a_reveal_cannot_copy_it(env: Env, record_property: Any, when: str) -> None:
    job = replicated_job(env)
    tid = task_id(job, 0)
    a, b, copier = env.workers[:3]
    env.tx(env.market.functions.claim(tid), a)
    env.tx(env.market.functions.claim(tid), b)
    if when.startswith("claimed early"):
        env.tx(env.market.functions.claim(tid), copier)
    commit(env, tid, a, GOOD)
    commit(env, tid, b, GOOD)
    env.warp(env.task(tid)["commitDeadline"] - env.now() + 1)  # the round's window: max(commitWindow, maxRun)
    reveal(env, tid, a, GOOD)
    seen = env.market.events.ResultRevealed().get_logs(from_block=0)[-1]["args"]["resultDigest"]
    try:
        if when.startswith("claims after"):
            env.tx(env.market.functions.claim(tid), copier)
        commit(env, tid, copier, seen, salt=b"\x77" * 32)
    except TransactionReverted as exc:
        record_property("reliability", f"late commit refused: {exc.error_name}")
        return
    try:
        reveal(env, tid, copier, seen, salt=b"\x77" * 32)
    except TransactionReverted:
        pass
    reveal(env, tid, b, GOOD)
    if env.task(tid)["status"] == 1:
        env.warp(env.params()["revealWindow"] + 1)
        env.tx(env.market.functions.finalize(tid), env.outsider)
    assert env.balance(copier) == 0, "the copier was paid for a digest it copied from a published reveal"


@pytest.mark.parametrize("where", ["another task", "another chain id", "another contract"])
@pytest.mark.parametrize("kind", ["commit", "reveal", "results"])
@attack(kind="attack", name="replay a signed commit/reveal/results elsewhere",
        how="a relayer re-submits a worker's EIP-712 signature on another task it also holds, signed for another "
            "chain id, or on a second marketplace where it holds the same task id; the recovered signer must "
            "differ (refused), while the genuine message is then accepted")
def test_a_signed_message_cannot_be_replayed_elsewhere(env: Env, request: pytest.FixtureRequest,
                                                       record_property: Any, kind: str, where: str) -> None:
    markets = [env]
    if where == "another contract":
        markets.append(request.getfixturevalue("second_market"))
    w = env.workers[0]
    jobs = []
    for e in markets:  # the same job (id 1) on each marketplace
        app = e.app()
        e.fund(e.requester, 20 * E18)
        for x in e.workers[:3]:
            e.enroll(x)
        job = e.post(app, numTasks=4, replication=1 if kind == "results" else 3, maxRunSeconds=100)
        jobs.append(job)
        t0, t1, t2 = task_id(job, 0), task_id(job, 1), task_id(job, 2)
        if kind == "results":
            e.tx(e.market.functions.claimRange(t0, 2), w)
            e.tx(e.market.functions.claimRange(t2, 2), w)
        else:
            for t in (t0, t1):
                for x in e.workers[:3]:
                    e.tx(e.market.functions.claim(t), x)
            if kind == "reveal":
                for t in (t0, t1):
                    for x in e.workers[:3]:
                        commit(e, t, x, GOOD)
    assert len(set(jobs)) == 1 and len({e.market.address for e in markets}) == len(markets)
    domain = env.domain
    sign_domain = Eip712Domain(chain_id=1, verifying_contract=env.market.address) \
        if where == "another chain id" else domain
    target = markets[-1]
    c = commitment(t0, GOOD, SALT, w.address)
    if kind == "commit":
        sig = sign_commit(w, sign_domain, t0, c)
        genuine = (t0, c, sign_commit(w, domain, t0, c))
        replay = (t1, c, sig) if where == "another task" else (t0, c, sig)
        fn, expected, field = "relayCommits", "MarketplaceNotClaimant", "worker"
    elif kind == "reveal":
        sig = sign_reveal(w, sign_domain, t0, GOOD, SALT, "bafyR")
        genuine = (t0, GOOD, SALT, "bafyR", b"", sign_reveal(w, domain, t0, GOOD, SALT, "bafyR"))
        replay = (t1 if where == "another task" else t0, GOOD, SALT, "bafyR", b"", sig)
        fn, expected, field = "relayReveals", "MarketplaceNotClaimant", "worker"
    else:
        b = results_batch(w, sign_domain, t0, t0, [GOOD, GOOD], ["a", "b"])
        genuine = results_batch(w, domain, t0, t0, [GOOD, GOOD], ["a", "b"])
        replay = (t2, t2, *b[2:]) if where == "another task" else b
        fn, expected, field = "relayResults", "MarketplaceInvalidSignature", "signer"
    err = rejected(target, getattr(target.market.functions, fn)([replay]), env.outsider, expected)
    assert err.error_args[field].lower() != w.address.lower()  # recovered to somebody else
    receipt = env.tx(getattr(env.market.functions, fn)([genuine]), env.outsider)
    assert receipt["status"] == 1
    record_property("reliability", f"{kind} replayed on {where}: {err.error_name} (recovered "
                                   f"{err.error_args[field][:10]}…, not the worker); the genuine message landed")


# =============================================================================================================
# Adversarial requesters, apps and tokens
# =============================================================================================================
@attack(kind="attack", name="job whose escrow would overflow",
        how="post the largest job the types allow (2^32-1 tasks x R=16 x reward 2^96-1, owner price 2^80-1) on a "
            "marketplace whose token has no supply cap: without funds it must revert with the exact amount "
            "(no wrap-around); with them the escrow is exact and closeJob refunds every wei")
def test_escrow_at_the_type_limits_is_exact_and_refundable(hostile: Env, record_property: Any) -> None:
    env = hostile
    p = env.params()
    p["maxReplicas"] = 16
    env.tx(env.market.functions.setParams(tuple(p.values())), env.owner)
    app = env.app(price=U80)
    needed = (16 * U96 + U80) * U32
    assert needed < 2**256
    params = env.job_params(app, numTasks=U32, replication=16, reward=U96, deadline=env.now() + 1000,
                            maxRunSeconds=1)
    err = rejected(env, env.market.functions.postJob(params), env.requester, "MarketplaceInsufficientBalance")
    assert err.error_args["needed"] == needed and env.market.functions.jobCount().call() == 0
    env.fund(env.requester, needed)
    receipt = env.tx(env.market.functions.postJob(params), env.requester)
    assert env.events(receipt, "JobPosted")[0]["escrow"] == needed
    assert env.market.functions.jobEscrow(1).call() == needed and env.balance(env.requester) == 0
    assert solvent(env) == needed
    env.warp(1001)
    receipt = env.tx(env.market.functions.closeJob(1), env.outsider)
    assert env.events(receipt, "JobClosed")[0]["refund"] == needed
    assert env.balance(env.requester) == needed and env.market.functions.jobEscrow(1).call() == 0
    solvent(env)
    record_property("reliability", f"unfunded: {err.error_name}(needed={needed:.3e}, exact); funded: escrow "
                                   f"{needed:.3e} wei locked and refunded to the wei by closeJob "
                                   f"({receipt['gasUsed']:,} gas)")


@attack(kind="attack", name="cancel after claim",
        how="the requester cancels a task a worker holds (R=1 lease, R=3 replica, and a lease past its expiry "
            "but not yet reopened): each must revert without refund; once the lease is reopened the cancel "
            "refunds exactly one task's escrow")
def test_cancel_after_claim_is_refused(env: Env, record_property: Any) -> None:
    app = env.app()
    env.fund(env.requester, 100 * E18)
    w, v = env.workers[:2]
    env.enroll(w)
    env.enroll(v)
    r1 = env.post(app, numTasks=3, maxRunSeconds=100)
    r3 = env.post(app, numTasks=1, replication=3, maxRunSeconds=100)
    env.tx(env.market.functions.claim(task_id(r1, 1)), w)
    env.tx(env.market.functions.claim(task_id(r3, 0)), v)
    before = env.balance(env.requester)
    errors = [rejected(env, env.market.functions.cancelTasks(r1, 0, 3), env.requester, "MarketplaceTaskTaken"),
              rejected(env, env.market.functions.cancelTasks(r3, 0, 1), env.requester, "MarketplaceTaskTaken")]
    env.warp(401)  # w's lease expired, nobody reopened it yet
    errors.append(rejected(env, env.market.functions.cancelTasks(r1, 1, 1), env.requester, "MarketplaceTaskTaken"))
    assert env.balance(env.requester) == before and env.job(r1)["settled"] == 0
    env.tx(env.market.functions.reopenLease(task_id(r1, 1)), env.outsider)
    receipt = env.tx(env.market.functions.cancelTasks(r1, 1, 1), env.requester)
    assert env.events(receipt, "TasksCancelled")[0]["refund"] == E18
    assert env.balance(env.requester) == before + E18
    rejected(env, env.market.functions.claim(task_id(r1, 1)), w, "MarketplaceTaskTaken")
    solvent(env)
    record_property("reliability", "cancel of a leased task, of a claimed replica, and of an expired lease not yet "
                                   f"reopened: {', '.join(e.error_name for e in errors)}; after reopenLease the "
                                   "cancel refunded exactly 1 token and the task cannot be claimed again")


@attack(kind="attack", name="claim by a banned worker",
        how="the owner bans a worker (or it is banned after maxSlashes): its claims revert with "
            "MarketplaceWorkerBanned while it can still unstake its own stake")
def test_a_banned_worker_cannot_claim(env: Env, record_property: Any) -> None:
    app = env.app()
    env.fund(env.requester, 10 * E18)
    w = env.workers[0]
    env.enroll(w)
    job = env.post(app, numTasks=2)
    env.tx(env.market.functions.setWorkerBanned(w.address, True), env.owner)
    err = rejected(env, env.market.functions.claim(task_id(job, 0)), w, "MarketplaceWorkerBanned")
    rejected(env, env.market.functions.claimRange(task_id(job, 0), 2), w, "MarketplaceWorkerBanned")
    env.tx(env.market.functions.requestUnstake(10 * E18), w)
    assert env.worker(w)["unstaking"] == 10 * E18
    record_property("reliability", f"claim and claimRange by a banned worker: {err.error_name}; its stake stays "
                                   "its own (unstake allowed)")


@attack(kind="attack", name="token refuses transfers to one account",
        how="a token with a deny list blocks payouts to one worker: that worker's withdraw reverts, but task "
            "finalization (pull payments: credits only) and every other account's withdraw go through")
def test_a_token_blocking_one_account_affects_nobody_else(hostile: Env, record_property: Any) -> None:
    env = hostile
    job = replicated_job(env, replication=1, tasks=2, workers=2)
    w, v = env.workers[:2]
    send(env.w3, env.token.functions.setBlocked(w.address, True), env.owner)
    for x, i in ((w, 0), (v, 1)):
        env.tx(env.market.functions.claim(task_id(job, i)), x)
        env.tx(env.market.functions.submit(task_id(job, i), GOOD, "c", b""), x)
    assert env.balance(w) == env.balance(v) == E18
    err = rejected(env, env.market.functions.withdraw(E18), w, "HostileTokenBlocked")
    env.tx(env.market.functions.withdraw(E18), v)
    env.tx(env.market.functions.withdraw(E18), env.requester)
    assert env.balance(w) == E18 and env.token.functions.balanceOf(v.address).call() == E18
    solvent(env)
    record_property("reliability", f"blocked worker's withdraw: {err.error_name}, its credit kept; the job "
                                   "settled and the other worker and the requester withdrew normally")


# =============================================================================================================
# Contract safety: reentrancy through every external call
# =============================================================================================================
REENTRY_TARGETS = ["withdraw", "deposit", "stake", "postJob", "claim", "multicall(withdraw)"]


def _reentry_call(env: Env, name: str) -> bytes:
    m = env.market
    if name == "postJob":
        data = m.encode_abi("postJob", [env.job_params(1)])
    elif name == "multicall(withdraw)":
        data = m.encode_abi("multicall", [[m.encode_abi("withdraw", [1])]])
    elif name == "claim":
        data = m.encode_abi("claim", [task_id(1, 0)])
    else:
        data = m.encode_abi(name, [1])
    return bytes.fromhex(data.removeprefix("0x"))


@pytest.mark.parametrize("entry", ["deposit", "depositWithPermit", "withdraw"])
@attack(kind="attack", name="re-enter the marketplace from the token",
        how="the payment token calls back withdraw, deposit, stake, postJob, claim and multicall from inside "
            "transferFrom / permit / transfer; each re-entry must hit the reentrancy guard and the outer "
            "deposit or withdraw must move exactly its amount once")
def test_token_callbacks_cannot_reenter(hostile: Env, record_property: Any, entry: str) -> None:
    env = hostile
    tok = env.token
    r = env.requester
    env.app()
    env.fund(r, 100 * E18)
    send(env.w3, tok.functions.faucet(r.address, 100 * E18), r)
    send(env.w3, tok.functions.approve(env.market.address, 100 * E18), r)
    env.post(1)  # job 1, so that claim re-entries have a target
    outcomes = []
    for i, name in enumerate(REENTRY_TARGETS):
        send(env.w3, tok.functions.setHook(env.market.address, _reentry_call(env, name)), env.owner)
        before_market, before_wallet = env.balance(r), int(tok.functions.balanceOf(r.address).call())
        attempts = int(tok.functions.attempts().call())
        if entry == "deposit":
            env.tx(env.market.functions.deposit(E18), r)
        elif entry == "depositWithPermit":
            env.tx(env.market.functions.depositWithPermit(E18, env.now() + 60, 27, b"\1" * 32, b"\2" * 32), r)
        else:
            env.tx(env.market.functions.withdraw(E18), r)
        sign = 1 if entry != "withdraw" else -1
        assert env.balance(r) - before_market == sign * E18
        assert int(tok.functions.balanceOf(r.address).call()) - before_wallet == -sign * E18
        assert int(tok.functions.attempts().call()) > attempts and int(tok.functions.successes().call()) == 0
        assert bytes(tok.functions.lastError().call()) == GUARD, name
        outcomes.append(name)
        solvent(env)
    record_property("reliability", f"{entry}: re-entries into {', '.join(outcomes)} all reverted with "
                                   "ReentrancyGuardReentrantCall; the outer call moved its amount exactly once")


GUARDED = ["deposit", "depositWithPermit", "withdraw", "stake", "requestUnstake", "withdrawUnstaked", "postJob",
           "cancelTasks", "closeJob", "claim", "claimRange", "submit", "submitRange", "reopenLease", "commit",
           "reveal", "finalize", "reopenExpired", "releaseReplicas", "relayCommits", "relayReveals",
           "relayResults", "multicall", "claimSome", "abandon", "reportFailure", "postCredibilityJob",
           "startSpotCheck", "claimFreeRange", "commitRange", "revealRange", "claimLane", "commitLane", "revealLane",
           "splitLanes", "reopenLanes", "releaseLanes", "dissolveLanes", "checkLease"]
OWNER_ONLY = ["setParams", "setTreasury", "setWorkerBanned", "transferOwnership", "renounceOwnership"]
SELF_ONLY = ["registerWorker", "setPlatformClass"]  # not guarded: write only the caller's own worker record


RESULT_PATHS = ["submit", "submitRange", "relayResults", "reveal", "finalize", "relayReveals"]
FAILURE_PATHS = ["reveal (no consensus)", "reportFailure (at the cap)", "cancelTasks", "closeJob"]


@pytest.mark.parametrize("path", RESULT_PATHS + FAILURE_PATHS)
@attack(kind="attack", name="job callback re-enters every state-changing function",
        how="a callback contract, on each delivery path (results: submit, submitRange, relayResults, reveal, "
            "finalize, relayReveals; outcomes without a result: a failed task, a cancelled range, a closed job), "
            "calls back all 45 state-changing functions of the marketplace; every money/task function must hit the "
            "guard, owner functions the Ownable check, and the delivering transaction must complete with exact "
            "balances")
def test_callback_cannot_reenter_any_function(env: Env, record_property: Any, path: str) -> None:
    probe = deploy(env.w3, "ReentrancyProbe", env.market.address, sender=env.owner)
    names = probe.functions.names().call()
    nonview = {i["name"] for i in env.market.abi
               if i["type"] == "function" and i["stateMutability"] not in ("view", "pure")}
    assert set(names) == nonview == set(GUARDED + OWNER_ONLY + SELF_ONLY)  # a new function must be probed too
    m = env.market
    p = env.params()
    p["callbackGas"] = 2_000_000  # room for the probe's 32 attempts (the default 200,000 is too little for it)
    env.tx(m.functions.setParams(tuple(p.values())), env.owner)
    app = env.app()
    env.fund(env.requester, 100 * E18)
    for w in env.workers[:3]:
        env.enroll(w)
    w = env.workers[0]
    if path in FAILURE_PATHS:
        receipt, hook = _deliver_failure_to(env, probe, app, path)
        assert probe.functions.lastHook().call() == hook
        expected_balance = 0
    elif path in ("submit", "submitRange", "relayResults"):
        job = env.post(app, numTasks=2, callback=probe.address)
        start = task_id(job, 0)
        if path == "submit":
            env.tx(m.functions.claim(start), w)
            receipt = env.tx(m.functions.submit(start, GOOD, "c", b""), w)
        else:
            env.tx(m.functions.claimRange(start, 2), w)
            if path == "submitRange":
                receipt = env.tx(m.functions.submitRange(start, start, [GOOD, GOOD], ["a", "b"], []), w)
            else:
                batch = results_batch(w, env.domain, start, start, [GOOD, GOOD], ["a", "b"])
                receipt = env.tx(m.functions.relayResults([batch]), env.outsider)
        expected_balance = (1 if path == "submit" else 2) * E18
    else:
        job = env.post(app, replication=3, callback=probe.address, maxRunSeconds=100)
        tid = task_id(job, 0)
        ws = env.workers[:3]
        for x in ws:
            env.tx(m.functions.claim(tid), x)
        for x in ws:
            commit(env, tid, x, GOOD)
        if path == "reveal":
            for x in ws:
                receipt = reveal(env, tid, x, GOOD)
            expected_balance = E18
        elif path == "finalize":
            reveal(env, tid, ws[0], GOOD)
            reveal(env, tid, ws[1], GOOD)
            env.warp(env.params()["revealWindow"] + 1)
            receipt = env.tx(m.functions.finalize(tid), env.outsider)
            expected_balance = 3 * E18 // 2
        else:
            sigs = [(tid, GOOD, SALT, "bafyR", b"", sign_reveal(x, env.domain, tid, GOOD, SALT, "bafyR")) for x in ws]
            receipt = env.tx(m.functions.relayReveals(sigs), env.outsider)
            expected_balance = E18
    delivered = env.events(receipt, "CallbackDelivered") + env.events(receipt, "TasksEndedDelivered")
    assert delivered and all(d["success"] for d in delivered), delivered
    results = dict(zip(names, (bytes(r) for r in probe.functions.results().call()), strict=True))
    assert {n for n, r in results.items() if r == GUARD} == set(GUARDED), results
    assert {n for n, r in results.items() if r == NOT_OWNER} == set(OWNER_ONLY), results
    assert results["registerWorker"] == results["setPlatformClass"] == b"\0" * 4
    assert env.balance(w) == expected_balance
    assert env.worker(w)["reputation"] >= 1 or path in FAILURE_PATHS
    assert m.functions.owner().call() == env.owner.address and m.functions.treasury().call() == env.owner.address
    probe_worker = env.market.functions.getWorker(probe.address).call()
    assert probe_worker[4] == 1 and probe_worker[0] == 0 and env.balance(probe.address) == 0  # registered, no more
    solvent(env, [probe.address])
    record_property("reliability", f"via {path}: {len(GUARDED)} functions -> ReentrancyGuardReentrantCall, "
                                   f"{len(OWNER_ONLY)} owner functions -> OwnableUnauthorizedAccount, registerWorker "
                                   f"and setPlatformClass only registered the probe itself; the delivering transaction used "
                                   f"{receipt['gasUsed']:,} gas (callbackGas raised to 2,000,000 for the probe)")


def _deliver_failure_to(env: Env, probe: Any, app: int, path: str) -> tuple[Any, str]:
    """Post a job calling back ``probe`` and end it without a result along ``path``; returns (receipt, hook)."""
    m = env.market
    p = env.params()
    if path.startswith("reveal"):
        p["maxReplicas"] = 3
        env.tx(m.functions.setParams(tuple(p.values())), env.owner)
        tid = task_id(env.post(app, replication=3, callback=probe.address, maxRunSeconds=100), 0)
        ws = env.workers[:3]
        for x in ws:
            env.tx(m.functions.claim(tid), x)
        for x, d in zip(ws, [GOOD, BAD, OTHER], strict=True):
            commit(env, tid, x, d)
        for x, d in zip(ws, [GOOD, BAD, OTHER], strict=True):
            receipt = reveal(env, tid, x, d)
        assert env.events(receipt, "TaskFailed")
        return receipt, "onTaskFailed"
    if path.startswith("reportFailure"):
        p["maxReplicas"] = 2
        env.tx(m.functions.setParams(tuple(p.values())), env.owner)
        tid = task_id(env.post(app, callback=probe.address, maxRunSeconds=100), 0)
        for x, d in zip(env.workers[:2], [BAD, OTHER], strict=True):
            env.tx(m.functions.claim(tid), x)
            receipt = env.tx(m.functions.reportFailure(tid, d, "bafyfail"), x)
        assert env.events(receipt, "TaskFailed")
        return receipt, "onTaskFailed"
    job = env.post(app, numTasks=3, callback=probe.address, maxRunSeconds=100, deadline=env.now() + 1000)
    if path == "cancelTasks":
        return env.tx(m.functions.cancelTasks(job, 0, 2), env.requester), "onTasksEnded"
    env.warp(1001)
    return env.tx(m.functions.closeJob(job), env.outsider), "onTasksEnded"


@attack(kind="attack", name="external calls are only token, registry and callbacks",
        how="static check of the marketplace sources: every external call site is the fixed token (SafeERC20), "
            "the fixed registry (view calls + checkJob) or the gas-capped callback; each entry point that "
            "makes one is nonReentrant")
def test_external_call_sites_are_known_and_guarded(record_property: Any) -> None:
    sources = {p.name: p.read_text() for p in [ROOT / "contracts/Marketplace.sol", ROOT / "contracts/MarketplaceBase.sol",
                                                ROOT / "contracts/MarketplaceExtension.sol",
                                                *(ROOT / "contracts/libraries").glob("*.sol")]}
    calls = []
    for name, text in sources.items():
        for m in re.finditer(r"(_token\.\w+|_s\.registry\.\w+|s\.registry\.\w+|\bI[A-Z]\w*\((?:[^()]|\([^()]*\))*\)"
                             r"\.\w+|\bcall\(|\.call\{|\.call\(|delegatecall|staticcall)", text):
            calls.append(f"{name}:{m.group(1)}")
    known = {"Marketplace.sol:_token.safeTransfer", "Marketplace.sol:_token.balanceOf",
             "Marketplace.sol:_token.safeTransferFrom", "Marketplace.sol:IERC20Permit(address(_token)).permit",
             "MarketStorage.sol:s.registry.checkJob", "MarketStorage.sol:s.registry.owners",
             "MarketStorage.sol:call(",
             # the fallback runs the marketplace's own extension (immutable, deployed by its constructor)
             "Marketplace.sol:delegatecall"}
    assert set(calls) == known, sorted(set(calls) - known)
    # every public entry point that reaches one of these is nonReentrant (the guard tests above prove it works)
    market = sources["Marketplace.sol"] + sources["MarketplaceExtension.sol"]
    for fn in ("deposit", "depositWithPermit", "withdraw", "postJob", "postCredibilityJob", "submit", "submitRange",
               "relayResults", "startSpotCheck",
               "reveal", "finalize", "relayCommits", "relayReveals", "cancelTasks", "closeJob"):
        header = re.search(rf"function {fn}\([^{{]*\{{", market)
        assert header and "nonReentrant" in header.group(0), fn
    registry = (ROOT / "contracts/MarketplaceRegistry.sol").read_text()
    assert not re.search(r"\.call|\.transfer\(|delegatecall|I[A-Z]\w+\(", registry.split("contract ", 1)[1])
    record_property("reliability", "call sites: " + ", ".join(sorted(set(calls))) + "; registry makes no calls")


# =============================================================================================================
# Contract safety: uint edges and rounding
# =============================================================================================================
@attack(kind="attack", name="uint96 stake and unstake edges",
        how="stake exactly 2^96-1 (fits), then 1 more (must revert with SafeCast's error, nothing moves); "
            "a pending unstake that would pass 2^96-1 must revert and leave everything as it was")
def test_stake_at_the_uint96_limit(hostile: Env, record_property: Any) -> None:
    env = hostile
    w = env.workers[0]
    env.enroll(w, stake=0)
    env.fund(w, 2 * U96 + 1)
    env.tx(env.market.functions.stake(U96), w)
    over = rejected(env, env.market.functions.stake(1), w, "SafeCastOverflowedUintDowncast")
    assert env.worker(w)["stake"] == U96 and env.balance(w) == U96 + 1
    env.tx(env.market.functions.requestUnstake(U96), w)
    env.tx(env.market.functions.stake(U96), w)
    before = (env.worker(w), env.balance(w))
    pending = rejected(env, env.market.functions.requestUnstake(1), w)
    assert (env.worker(w), env.balance(w)) == before
    env.warp(DAY + 1)
    env.tx(env.market.functions.withdrawUnstaked(), w)
    env.tx(env.market.functions.requestUnstake(1), w)
    assert env.worker(w)["unstaking"] == 1 and env.balance(w) == U96 + 1
    solvent(env)
    record_property("reliability", f"stake past 2^96-1: {over.error_name}; unstake pending past 2^96-1: "
                                   f"{pending.error_name}{pending.error_args or ''} (reverts, nothing changes; "
                                   "withdrawUnstaked first, then it works)")


@attack(kind="attack", name="reward rounding at uint96 max with a fee",
        how="R=3 job, reward 2^96-1 per replica, 10% fee, owner price 2^80-1, 2 winners and 1 loser: every "
            "wei of the pool, the fee, the division dust and the slashed stake must be accounted exactly")
def test_rewards_at_uint96_max_are_exact(hostile: Env, record_property: Any) -> None:
    env = hostile
    p = env.params()
    p["feeBps"] = 1000
    env.tx(env.market.functions.setParams(tuple(p.values())), env.owner)
    app = env.app(price=U80)
    env.fund(env.requester, 3 * U96 + U80)
    ws = env.workers[:3]
    for w in ws:
        env.enroll(w)
    job = env.post(app, replication=3, reward=U96)
    tid = task_id(job, 0)
    for w in ws:
        env.tx(env.market.functions.claim(tid), w)
    for w, d in zip(ws, [GOOD, BAD, GOOD], strict=True):
        commit(env, tid, w, d)
    treasury = env.balance(env.owner)
    for w, d in zip(ws, [GOOD, BAD, GOOD], strict=True):
        receipt = reveal(env, tid, w, d)
    pool = 3 * U96
    fee = pool * 1000 // 10_000
    share = (pool - fee) // 2
    assert env.events(receipt, "TaskFinalized")[0]["rewardEach"] == share
    assert env.balance(ws[0]) == env.balance(ws[2]) == share and env.balance(ws[1]) == 0
    assert env.balance(env.owner) - treasury == pool - 2 * share + E18
    assert env.balance(env.app_owner) == U80 and env.balance(env.requester) == 0
    assert env.market.functions.jobEscrow(job).call() == 0
    solvent(env)
    record_property("reliability", f"pool {pool} wei: winners {share} each, treasury {pool - 2 * share} "
                                   f"(fee {fee} + dust {pool - fee - 2 * share}) + 1 token slashed; app owner "
                                   f"{U80}; sums exact")


@attack(kind="attack", name="reward rounding with tiny amounts",
        how="R=3, reward 1 wei per replica, 2 winners: the 3-wei pool splits 1/1 and the 1-wei dust goes to the "
            "treasury (nothing created or lost); R=1 with a 10% fee on 9 wei: worker 9, treasury 0 (fee floors)")
def test_rounding_dust_goes_to_the_treasury(env: Env, record_property: Any) -> None:
    job = replicated_job(env, reward=1)
    tid = task_id(job, 0)
    ws = env.workers[:3]
    for w in ws:
        env.tx(env.market.functions.claim(tid), w)
    for w, d in zip(ws, [GOOD, GOOD, BAD], strict=True):
        commit(env, tid, w, d)
    treasury = env.balance(env.owner)
    for w, d in zip(ws, [GOOD, GOOD, BAD], strict=True):
        receipt = reveal(env, tid, w, d)
    assert env.events(receipt, "TaskFinalized")[0]["rewardEach"] == 1
    assert env.balance(ws[0]) == env.balance(ws[1]) == 1
    assert env.balance(env.owner) - treasury == 1 + E18
    p = env.params()
    p["feeBps"] = 1000
    env.tx(env.market.functions.setParams(tuple(p.values())), env.owner)
    j = env.post(env.app(), reward=9)
    env.tx(env.market.functions.claim(task_id(j, 0)), ws[0])
    treasury = env.balance(env.owner)
    env.tx(env.market.functions.submit(task_id(j, 0), GOOD, "c", b""), ws[0])
    assert env.balance(ws[0]) == 1 + 9 and env.balance(env.owner) == treasury
    solvent(env)
    record_property("reliability", "3-wei pool: 1 + 1 to the winners, 1 wei dust to the treasury; 10% of 9 wei "
                                   "floors to 0: the worker gets all 9")


# =============================================================================================================
# Contract safety: gas of the largest batches, bounded loops
# =============================================================================================================
def _gas(receipt: Any) -> int:
    return int(receipt["gasUsed"])


@attack(kind="attack", name="largest allowed batch and bag fit in a block",
        how="on a bag of 2^32-1 tasks: postJob, claimRange(1024) at the last index, submitRange of 1024 results, "
            "relayResults of one signed 1024-result batch, cancelTasks of 65,536 tasks, closeJob; each must stay "
            "under half the 30M block gas limit (gas recorded)")
def test_largest_batches_fit_in_a_block(env: Env, record_property: Any) -> None:
    assert env.w3.eth.get_block("latest")["gasLimit"] == BLOCK_GAS
    app = env.app()
    env.fund(env.requester, 10 * E18)
    w = env.workers[0]
    env.enroll(w, stake=2048 * E18)
    m = env.market
    gas: dict[str, int] = {}
    receipt = env.tx(m.functions.postJob(env.job_params(app, numTasks=U32, reward=1, maxRunSeconds=10,
                                                        deadline=env.now() + 2 * DAY)), env.requester)
    job = int(m.functions.jobCount().call())
    gas["postJob(2^32-1 tasks)"] = _gas(receipt)
    last = task_id(job, U32 - 1024)
    gas["claimRange(1024) at the last index"] = _gas(env.tx(m.functions.claimRange(last, 1024), w))
    cids = [f"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbz{i:04d}" for i in range(1024)]
    digests = [keccak(i.to_bytes(4, "big")) for i in range(1024)]
    gas["submitRange(1024 results)"] = _gas(env.tx(m.functions.submitRange(last, last, digests, cids, []), w))
    second = task_id(job, 1024 * 70)
    env.tx(m.functions.claimRange(second, 1024), w)
    batch = results_batch(w, env.domain, second, second, digests, cids)
    gas["relayResults(1 batch of 1024)"] = _gas(env.tx(m.functions.relayResults([batch]), env.outsider))
    gas["cancelTasks(65,536 tasks)"] = _gas(env.tx(m.functions.cancelTasks(job, 0, 65_536), env.requester))
    env.warp(2 * DAY + 1)
    gas["closeJob(2^32-1 tasks)"] = _gas(env.tx(m.functions.closeJob(job), env.outsider))
    assert env.balance(w) == 2048 and env.worker(w)["locked"] == 0
    solvent(env)
    for what, g in gas.items():
        assert g < BLOCK_GAS // 2, f"{what}: {g:,} gas"
    per_word = gas["cancelTasks(65,536 tasks)"] / (65_536 / 256)
    record_property("reliability", "; ".join(f"{k} {v:,}" for k, v in gas.items()) + " gas (block limit "
                    f"30,000,000). cancelTasks is the one loop sized by its caller: about "
                    f"{int(BLOCK_GAS / per_word) * 256:,} tasks fit in one transaction, so a requester cancels a "
                    "bigger bag in chunks (closeJob refunds any size in O(1))")


@attack(kind="attack", name="callbacks on a ranged submission stay within a block",
        how="an R=1 job whose callback burns its whole 200,000-gas allowance: a 100-result submitRange must "
            "still fit in a block (all 100 callbacks recorded as failed, all results paid); the gas per result "
            "bounds how many results one transaction can carry")
def test_many_gas_burning_callbacks_fit_in_a_block(env: Env, record_property: Any) -> None:
    cb = deploy(env.w3, "GasBurningCallback", sender=env.owner)
    app = env.app()
    env.fund(env.requester, 200 * E18)
    w = env.workers[0]
    env.enroll(w, stake=200 * E18)
    job = env.post(app, numTasks=100, callback=cb.address, maxRunSeconds=10)
    start = task_id(job, 0)
    env.tx(env.market.functions.claimRange(start, 100), w)
    receipt = send(env.w3, env.market.functions.submitRange(start, start, [GOOD] * 100, ["c"] * 100, []), w,
                   gas=BLOCK_GAS - 1_000_000)
    delivered = env.events(receipt, "CallbackDelivered")
    assert len(delivered) == 100 and not any(d["success"] for d in delivered)
    assert env.balance(w) == 100 * E18 and env.job(job)["finished"] == 100
    used = _gas(receipt)
    assert used < BLOCK_GAS
    per = used // 100
    record_property("reliability", f"100 results with gas-burning callbacks: {used:,} gas ({per:,} per result): "
                                   f"at most {BLOCK_GAS // per} results per transaction at callbackGas 200,000")


@attack(kind="attack", name="failure notices for a huge bag cost one callback",
        how="a bag of 2^32-1 tasks whose callback burns its whole 200,000-gas allowance: cancelTasks of 65,536 "
            "tasks and closeJob of the rest each make exactly one capped onTasksEnded call (one notice per range, "
            "not per task), recorded as failed; gas recorded")
def test_range_notices_cost_one_callback_whatever_the_range(env: Env, record_property: Any) -> None:
    cb = deploy(env.w3, "GasBurningCallback", sender=env.owner)
    app = env.app()
    env.fund(env.requester, 10 * E18)
    m = env.market
    env.tx(m.functions.postJob(env.job_params(app, numTasks=U32, reward=1, maxRunSeconds=10, callback=cb.address,
                                              deadline=env.now() + DAY)), env.requester)
    job = int(m.functions.jobCount().call())
    cancel = env.tx(m.functions.cancelTasks(job, 0, 65_536), env.requester)
    env.warp(DAY + 1)
    close = env.tx(m.functions.closeJob(job), env.outsider)
    notices = [env.events(r, "TasksEndedDelivered") for r in (cancel, close)]
    assert [[(n["firstIndex"], n["count"], n["reason"], n["success"]) for n in ns] for ns in notices] == [
        [(0, 65_536, 2, False)], [(0, U32, 3, False)]]
    assert env.balance(env.requester) == 10 * E18
    assert _gas(close) < 200_000 + 150_000
    solvent(env)
    record_property("reliability", f"cancelTasks(65,536) {_gas(cancel):,} gas, closeJob(2^32-1 tasks) "
                                   f"{_gas(close):,} gas, each with one gas-burning onTasksEnded (200,000 gas cap)")


@attack(kind="attack", name="finalization at the replica cap (16) fits in a block",
        how="maxReplicas=16, R=16: 7 distinct wrong digests revealed first, then 9 agreeing ones; the last reveal "
            "runs the O(n^2) vote over 16 digests, pays 9 winners and slashes 7: gas recorded, well under the limit")
def test_worst_case_finalization_at_the_replica_cap(env: Env, record_property: Any) -> None:
    p = env.params()
    p["maxReplicas"] = 16
    env.tx(env.market.functions.setParams(tuple(p.values())), env.owner)
    app = env.app()
    env.fund(env.requester, 100 * E18)
    job = env.post(app, replication=16, maxRunSeconds=100)
    tid = task_id(job, 0)
    funder = env.owner
    ws = [Account.create() for _ in range(16)]
    for w in ws:
        env.w3.provider.make_request("anvil_setBalance", [w.address, hex(10**18)])  # type: ignore[arg-type]
    bulk = env.token.functions
    send(env.w3, bulk.faucet(funder.address, 16 * 2 * E18), funder)
    for w in ws:
        send(env.w3, bulk.transfer(w.address, 2 * E18), funder)
        env.enroll(w, stake=0)
        env.tx(env.token.functions.approve(env.market.address, 2 * E18), w)
        env.tx(env.market.functions.multicall([env.market.encode_abi("deposit", [2 * E18]),
                                               env.market.encode_abi("stake", [2 * E18])]), w)
        env.tx(env.market.functions.claim(tid), w)
    digests = [keccak(bytes([i])) for i in range(7)] + [GOOD] * 9
    for w, d in zip(ws, digests, strict=True):
        commit(env, tid, w, d)
    for w, d in zip(ws, digests, strict=True):
        receipt = reveal(env, tid, w, d)
    fin = env.events(receipt, "TaskFinalized")[0]
    assert (fin["resultDigest"], fin["winners"]) == (GOOD, 9)
    assert len(env.events(receipt, "WorkerSlashed")) == 7
    solvent(env, [w.address for w in ws])
    assert _gas(receipt) < BLOCK_GAS // 10
    record_property("reliability", f"last reveal at R=16 (vote, 9 payouts, 7 slashes): {_gas(receipt):,} gas")


LOOP_BOUNDS = {
    # (file, function, loop condition) -> why it is bounded
    ("Marketplace.sol", "_submitRange", "i < cbs.length"): "= n <= lease count <= MAX_RANGE (1024), checked first",
    ("Marketplace.sol", "_submitRange", "i < n"): "n <= lease count <= MAX_RANGE (1024)",
    ("MarketplaceExtension.sol", "relayCommits", "i < commits.length"): "caller's calldata (the relayer pays, "
                                                                         "chunkable)",
    ("MarketplaceExtension.sol", "relayReveals", "i < reveals.length"): "caller's calldata (the relayer pays, "
                                                                         "chunkable)",
    ("Marketplace.sol", "relayResults", "i < batches.length"): "caller's calldata (the relayer pays, chunkable)",
    ("MarketplaceBase.sol", "_hashResults", "i < cids.length"): "caller's calldata (one batch)",
    ("MarketplaceBase.sol", "_hashResults", "i < cbs.length"): "caller's calldata (one batch)",
    ("MarketplaceRegistry.sol", "setAppRequesters", "i < requesters.length"): "owner's calldata",
    ("MarketplaceRegistry.sol", "setDatasetRequesters", "i < requesters.length"): "owner's calldata",
    ("MarketplaceRegistry.sol", "setDatasetApps", "i < appIds.length"): "owner's calldata",
    ("Consensus.sol", "strictMajority", "i < n"): "n revealed digests <= target <= maxReplicas <= 16",
    ("Consensus.sol", "strictMajority", "j < n"): "n <= 16",
    ("Consensus.sol", "popcount", "mask != 0"): "one pass per set bit of a uint16 mask (<= 16)",
    ("MarketStorage.sol", "heldReplica", "i < t.target"): "target <= maxReplicas <= 16",
    ("RangeBitmap.sol", "trySetRange", "i < end"): "one step per 256-bit word of the range: claims <= 1024 "
                                                    "tasks; cancelTasks' count is the requester's (chunkable)",
    ("RangeBitmap.sol", "clearRange", "i < end"): "one step per word; reopenLease clears <= 1024 tasks",
    ("RangeBitmap.sol", "freeRun", "i < end"): "one step per word: claimFreeRange looks at <= 1024 tasks",
    ("RangeBitmap.sol", "_lowestBit", "x & 1 == 0"): "<= 255 shifts of a non-zero word",
    ("ReplicaLogic.sol", "reopenExpired", "i < t.target"): "target <= 16",
    ("ReplicaLogic.sol", "revealRange", "i < n"): "n = the lease's count <= MAX_RANGE (1024); the arrays are checked "
                                                 "to be n long first",
    ("ReplicaLogic.sol", "releaseReplicas", "i < t.target"): "target <= 16",
    ("ReplicaLogic.sol", "_claim", "i < t.target"): "target <= 16",
    ("Marketplace.sol", "claimSome", "i < taskIds.length && claimed < max"): "the caller's own calldata",
    ("ReplicaLogic.sol", "_finalize", "i < target"): "target <= 16",
    ("ReplicaLogic.sol", "_settle", "i < target"): "target <= 16",
    ("ReplicaLogic.sol", "_dropSilent", "i < t.target"): "target <= 16",
    ("ReplicaLogic.sol", "_fail", "i < t.target"): "target <= 16",
    ("ReplicaLogic.sol", "_bestGroup", "i < t.target"): "target <= 16",
    ("ReplicaLogic.sol", "_bestGroup", "i < n"): "n revealed <= target <= 16",
    ("ReplicaLogic.sol", "_bestGroup", "j < i"): "i < n <= 16 (O(n^2) <= 256 steps)",
    ("ReplicaLogic.sol", "_bestGroup", "j < n"): "n <= 16",
    ("LaneLogic.sol", "claim", "i < t.target"): "lanes = R <= 16",
    ("LaneLogic.sol", "_held", "i < t.target"): "lanes = R <= 16",
    ("LaneLogic.sol", "_unanimous", "i < t.target"): "lanes = R <= 16",
    ("MarketStorage.sol", "groupPpb", "i < target"): "target <= 16 (a task's replicas; a check chunk's 2 lanes)",
    ("LaneLogic.sol", "reopen", "i < t.target"): "lanes = R <= 16",
    ("LaneLogic.sol", "release", "i < t.target"): "lanes = R <= 16",
    ("LaneLogic.sol", "dissolve", "i < t.target"): "lanes = R <= 16 (twice: the join window, then the unlocks)",
    ("LaneLogic.sol", "_settle", "i < votes"): "votes = R <= 16",
    ("LaneLogic.sol", "_settle", "i < count"): "count = the chunk's tasks <= MAX_LANE (32)",
    ("LaneLogic.sol", "reveal", "i < count"): "count = the chunk's tasks <= MAX_LANE (32): the key includes it",
    ("LaneLogic.sol", "rootOf", "i < n"): "n = the chunk's tasks <= 32 (the caller's calldata)",
    ("LaneLogic.sol", "split", "i < target"): "lanes = R <= 16 (twice: the lists, then each task's replicas)",
    ("LaneLogic.sol", "split", "j < count"): "count <= MAX_LANE (32): 32 per-task rounds of <= 16 replicas",
}


@attack(kind="attack", name="no loop over an unbounded list",
        how="static check of every for/while loop in the production contracts, the Dapp client base "
            "(TasknetClient) and the example Dapps against a reviewed table of bounds (a new loop fails the test "
            "until it is reviewed), no dynamic array in storage, and the constants the bounds rely on read from "
            "the deployed contract")
def test_every_loop_is_bounded(env: Env, record_property: Any) -> None:
    files = [ROOT / "contracts/Marketplace.sol", ROOT / "contracts/MarketplaceBase.sol",
             ROOT / "contracts/MarketplaceExtension.sol", ROOT / "contracts/MarketplaceRegistry.sol",
             *sorted((ROOT / "contracts/libraries").glob("*.sol")),
             # what Dapps build on and copy: the client base and the examples (no loop in them today)
             *sorted((ROOT / "contracts/client").glob("*.sol")), *sorted((ROOT / "contracts/examples").glob("*.sol"))]
    found: dict[tuple[str, str, str], int] = {}
    for path in files:
        text = path.read_text()
        for m in re.finditer(r"\b(for|while)\s*\(", text):
            func = re.findall(r"function\s+(\w+)", text[:m.start()])[-1]
            head = text[m.end():text.index("{", m.end())]
            cond = head.split(";")[1].strip() if m.group(1) == "for" else head.rsplit(")", 1)[0].strip()
            key = (path.name, func, cond)
            found[key] = found.get(key, 0) + 1
        state = re.findall(r"^ {4}(?![ /*])(?!function|event|error|modifier|using|constructor|struct)"
                           r"[^\n]*;\s*$", text, re.MULTILINE)
        assert not [s for s in state if "[]" in s], f"{path.name} keeps a dynamic array in storage"
    storage = (ROOT / "contracts/libraries/MarketStorage.sol").read_text()
    state_struct = storage.split("struct State {", 1)[1].split("}", 1)[0]
    assert "[]" not in state_struct
    assert set(found) == set(LOOP_BOUNDS), {"unreviewed": sorted(set(found) - set(LOOP_BOUNDS)),
                                            "gone": sorted(set(LOOP_BOUNDS) - set(found))}
    assert env.market.functions.MAX_RANGE().call() == 1024
    assert env.market.functions.MAX_CALLBACK_DATA().call() == 1024
    p = env.params()
    p["maxReplicas"] = 17
    rejected(env, env.market.functions.setParams(tuple(p.values())), env.owner, "MarketplaceParamOutOfBounds")
    record_property("reliability", f"{sum(found.values())} loops, all reviewed: " + "; ".join(
        f"{f}:{fn} ({LOOP_BOUNDS[(f, fn, c)]})" for f, fn, c in sorted(found)
        if "calldata" not in LOOP_BOUNDS[(f, fn, c)]) + "; the rest iterate over the caller's own calldata")

