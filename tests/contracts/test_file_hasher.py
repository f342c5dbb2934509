"""contracts/examples/FileHasher.sol, the example Dapp: a user pays to have a file hashed, the contract posts the
task from its own balance, stores the digest, refunds the price when the task ends without a result; the operator
keeps only what no refund may need."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from market_helpers import E18, Env
from test_tasknet_client_sol import reverts, tx
from web3.contract import Contract

from oracle._chain import deploy

D = b"\xd1" * 32
PENDING, DONE, REFUNDABLE, REFUNDED = 1, 2, 3, 4
REWARD, APP_PRICE = E18, E18 // 10
ESCROW = REWARD + APP_PRICE


@pytest.fixture
def app(env: Env) -> int:
    for w in env.workers[:2]:
        env.enroll(w)
    return env.app(price=APP_PRICE)


def hasher(env: Env, app: int, price: int, ttl: int = 3600) -> Contract:
    settings = (app, 1, REWARD, 100, ttl)  # appId, replication, reward, maxRunSeconds, ttl
    c = deploy(env.w3, "FileHasher", env.market.address, settings, price, sender=env.owner)
    for who in (env.requester, env.outsider, env.owner):
        env.tx(env.token.functions.faucet(who.address, 100 * E18), who)
        env.tx(env.token.functions.approve(c.address, 100 * E18), who)
    return c


def request(env: Env, c: Contract, user: LocalAccount, cid: str = "bafyinputs") -> tuple[int, int]:
    receipt = tx(env, c.functions.request(cid), user)
    ev = env.events(receipt, "HashRequested", c)[0]
    return ev["requestId"], ev["taskId"]


def finish(env: Env, tid: int, digest: bytes = D) -> Any:
    w = env.workers[0]
    env.tx(env.market.functions.claim(tid), w)
    return env.tx(env.market.functions.submit(tid, digest, "bafyresult", b""), w)


def state(c: Contract, rid: int) -> dict[str, Any]:
    r = c.functions.getRequest(rid).call()
    return dict(zip(["user", "status", "jobId", "paid", "escrow", "digest"], r, strict=True))


def solvent(env: Env, c: Contract) -> None:
    """Every refund the hasher may owe is payable from its marketplace balance."""
    assert env.balance(c.address) >= c.functions.reserved().call()


def wallet(env: Env, who: LocalAccount) -> int:
    return int(env.token.functions.balanceOf(who.address).call())


def test_a_paid_request_is_hashed_and_its_margin_becomes_earnings(env: Env, app: int) -> None:
    c = hasher(env, app, price=2 * E18)
    assert c.functions.quote().call() == ESCROW
    rid, tid = request(env, c, env.requester)
    assert wallet(env, env.requester) == 98 * E18 and env.balance(c.address) == 2 * E18 - ESCROW
    assert state(c, rid)["status"] == PENDING and c.functions.spendable().call() == 0  # margin reserved meanwhile
    receipt = finish(env, tid)
    assert env.events(receipt, "HashComputed", c) == [{"requestId": rid, "taskId": tid, "resultDigest": D}]
    assert state(c, rid)["status"] == DONE and state(c, rid)["digest"] == D
    assert c.functions.spendable().call() == 2 * E18 - ESCROW
    reverts(env, c.functions.withdrawEarnings(env.owner.address, E18), env.owner, "FileHasherInsufficientEarnings",
            {"available": 2 * E18 - ESCROW, "amount": E18})
    tx(env, c.functions.withdrawEarnings(env.owner.address, 2 * E18 - ESCROW), env.owner)
    reverts(env, c.functions.claimRefund(rid), env.requester, "FileHasherNotRefundable",
            {"requestId": rid, "status": DONE})


@pytest.mark.parametrize("how", ["cancelled", "failed", "expired"])
def test_a_request_without_a_result_refunds_its_price_once(env: Env, app: int, how: str) -> None:
    c = hasher(env, app, price=2 * E18, ttl=1000)
    rid, tid = request(env, c, env.requester)
    if how == "cancelled":
        receipt = tx(env, c.functions.cancel(rid), env.requester)
    elif how == "failed":
        p = env.params()
        p["maxReplicas"] = 2
        env.tx(env.market.functions.setParams(tuple(p.values())), env.owner)
        for i, w in enumerate(env.workers[:2]):
            env.tx(env.market.functions.claim(tid), w)
            receipt = env.tx(env.market.functions.reportFailure(tid, bytes([i + 1]) * 32, "bafyfail"), w)
    else:
        reverts(env, c.functions.claimRefund(rid), env.requester, "MarketplaceDeadlineNotReached",
                {"jobId": tid >> 32, "deadline": env.job(tid >> 32)["deadline"]})
        env.warp(1001)
        receipt = tx(env, c.functions.claimRefund(rid), env.requester)  # closes the job, then refunds
    reason = {"cancelled": 2, "failed": 1, "expired": 3}[how]
    assert env.events(receipt, "HashFailed", c) == [{"requestId": rid, "reason": reason}]
    solvent(env, c)
    if how != "expired":
        reverts(env, c.functions.claimRefund(rid), env.outsider, "FileHasherNotRequester",
                {"requestId": rid, "caller": env.outsider.address, "user": env.requester.address})
        receipt = tx(env, c.functions.claimRefund(rid), env.requester)
    assert env.events(receipt, "RefundClaimed", c) == [{"requestId": rid, "user": env.requester.address,
                                                        "amount": 2 * E18}]
    assert wallet(env, env.requester) == 100 * E18 and state(c, rid)["status"] == REFUNDED
    assert env.balance(c.address) == 0 and c.functions.reserved().call() == 0
    reverts(env, c.functions.claimRefund(rid), env.requester, "FileHasherNotRefundable",
            {"requestId": rid, "status": REFUNDED})


def test_a_request_the_balance_cannot_pay_and_a_deprecated_app_name_their_values(env: Env, app: int) -> None:
    c = hasher(env, app, price=E18 // 2)  # below the escrow, and nobody sponsored it
    reverts(env, c.functions.request("bafyinputs"), env.requester, "TasknetClientInsufficientBalance",
            {"available": E18 // 2, "needed": ESCROW})
    reverts(env, c.functions.request(""), env.requester, "FileHasherEmptyInputs", {})
    env.tx(env.registry.functions.deprecateApp(app), env.app_owner)
    reverts(env, c.functions.request("bafyinputs"), env.requester, "TasknetClientAppDeprecated", {"appId": app})


@pytest.mark.reliability(kind="attack", name="a sponsored request spending another user's refund",
                         how="FileHasher priced below the escrow: a user's refund waits to be claimed while a new "
                             "request would need that money for its escrow (the raw balance could pay it); the "
                             "request is refused with TasknetClientInsufficientBalance and the refund stays payable")
def test_refunds_owed_are_never_spent_on_new_requests(env: Env, app: int) -> None:
    c = hasher(env, app, price=E18)  # each request is sponsored by APP_PRICE from the float
    tx(env, c.functions.fund(APP_PRICE), env.owner)
    rid, _ = request(env, c, env.requester)  # uses the whole float
    tx(env, c.functions.cancel(rid), env.requester)  # the escrow is back: 1 token owed to the requester
    solvent(env, c)
    assert c.functions.reserved().call() == E18 and env.balance(c.address) == ESCROW
    rid2, tid2 = request(env, c, env.outsider)  # the float is back too: this one may use it
    solvent(env, c)
    # a third request would need the requester's refund for its escrow (the raw balance, 2 tokens, could pay it)
    assert env.balance(c.address) + E18 >= ESCROW
    reverts(env, c.functions.request("bafyinputs"), env.owner, "TasknetClientInsufficientBalance",
            {"available": E18, "needed": ESCROW})
    finish(env, tid2)
    tx(env, c.functions.claimRefund(rid), env.requester)
    assert wallet(env, env.requester) == 100 * E18 and state(c, rid2)["status"] == DONE
    assert env.balance(c.address) == 0 and c.functions.reserved().call() == 0
    solvent(env, c)


def test_only_the_marketplace_may_call_its_hooks(env: Env, app: int) -> None:
    c = hasher(env, app, price=2 * E18)
    rid, tid = request(env, c, env.requester)
    reverts(env, c.functions.onTaskResult(tid, D, b""), env.outsider, "TasknetClientNotMarketplace",
            {"caller": env.outsider.address, "marketplace": env.market.address})
    assert state(c, rid)["status"] == PENDING
