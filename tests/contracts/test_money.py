"""Deposits (approve + deposit, permit), withdrawals, and misbehaving tokens."""

from __future__ import annotations

import pytest
from eth_account.messages import encode_typed_data
from market_helpers import E18, Env, reverts

from oracle import send
from oracle._chain import deploy
from oracle._deploy import LINKED_LIBRARIES, deploy_linked
from oracle.exceptions import TransactionReverted


def test_deposit_credits_balance_and_emits(env: Env) -> None:
    r = env.requester
    env.tx(env.token.functions.faucet(r.address, 5 * E18), r)
    env.tx(env.token.functions.approve(env.market.address, 5 * E18), r)
    receipt = env.tx(env.market.functions.deposit(3 * E18), r)
    assert env.balance(r) == 3 * E18
    assert env.events(receipt, "Deposited") == [{"account": r.address, "amount": 3 * E18}]
    assert env.token.functions.balanceOf(env.market.address).call() == 3 * E18


def test_deposit_fails_on_zero_amount(env: Env) -> None:
    reverts(env, env.market.functions.deposit(0), env.requester, "MarketplaceZeroAmount", {})


def test_deposit_fails_without_allowance(env: Env) -> None:
    r = env.requester
    env.tx(env.token.functions.faucet(r.address, E18), r)
    reverts(env, env.market.functions.deposit(E18), r, "ERC20InsufficientAllowance",
            {"spender": env.market.address, "allowance": 0, "needed": E18})


def _permit(env: Env, amount: int, deadline: int) -> tuple[int, bytes, bytes]:
    r = env.requester
    nonce = env.token.functions.nonces(r.address).call()
    msg = encode_typed_data(full_message={
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
            "Permit": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                       {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                       {"name": "deadline", "type": "uint256"}],
        },
        "primaryType": "Permit",
        "domain": {"name": "Tasknet Test Token", "version": "1", "chainId": env.w3.eth.chain_id,
                   "verifyingContract": env.token.address},
        "message": {"owner": r.address, "spender": env.market.address, "value": amount, "nonce": nonce,
                    "deadline": deadline},
    })
    sig = r.sign_message(msg)
    return sig.v, sig.r.to_bytes(32, "big"), sig.s.to_bytes(32, "big")


def test_deposit_with_permit_is_one_transaction(env: Env) -> None:
    r = env.requester
    env.tx(env.token.functions.faucet(r.address, 2 * E18), r)
    v, rr, ss = _permit(env, 2 * E18, env.now() + 3600)
    receipt = env.tx(env.market.functions.depositWithPermit(2 * E18, env.now() + 3600, v, rr, ss), r)
    assert env.balance(r) == 2 * E18
    assert env.events(receipt, "Deposited")[0]["amount"] == 2 * E18


@pytest.mark.reliability(kind="attack", name="front-run the requester's permit",
                         how="someone submits the permit first: depositWithPermit still deposits")
def test_deposit_with_a_front_run_permit_still_deposits(env: Env) -> None:
    """Someone submits the permit first: the deposit ignores the failing permit and uses the allowance."""
    r = env.requester
    env.tx(env.token.functions.faucet(r.address, E18), r)
    deadline = env.now() + 3600
    v, rr, ss = _permit(env, E18, deadline)
    env.tx(env.token.functions.permit(r.address, env.market.address, E18, deadline, v, rr, ss), env.outsider)
    env.tx(env.market.functions.depositWithPermit(E18, deadline, v, rr, ss), r)
    assert env.balance(r) == E18


def test_deposit_with_a_bad_permit_and_no_allowance_fails(env: Env) -> None:
    r = env.requester
    env.tx(env.token.functions.faucet(r.address, E18), r)
    reverts(env, env.market.functions.depositWithPermit(E18, env.now() + 3600, 27, b"\1" * 32, b"\2" * 32), r,
            "ERC20InsufficientAllowance")


def test_withdraw_pays_out_and_emits(env: Env) -> None:
    r = env.requester
    env.fund(r, 4 * E18)
    receipt = env.tx(env.market.functions.withdraw(E18), r)
    assert env.balance(r) == 3 * E18
    assert env.token.functions.balanceOf(r.address).call() == E18
    assert env.events(receipt, "Withdrawn") == [{"account": r.address, "amount": E18}]


@pytest.mark.reliability(kind="attack", name="withdraw more than one's balance",
                         how="withdraw 0 or balance + 1: refused")
def test_withdraw_fails_on_zero_or_more_than_balance(env: Env) -> None:
    r = env.requester
    env.fund(r, E18)
    reverts(env, env.market.functions.withdraw(0), r, "MarketplaceZeroAmount", {})
    reverts(env, env.market.functions.withdraw(E18 + 1), r, "MarketplaceInsufficientBalance",
            {"account": r.address, "balance": E18, "needed": E18 + 1})


@pytest.fixture
def bad(env: Env):  # type: ignore[no-untyped-def]
    """A marketplace whose token misbehaves (returns false, or takes a 1% fee)."""
    token = deploy(env.w3, "MisbehavingToken", sender=env.owner)
    registry = deploy(env.w3, "MarketplaceRegistry", sender=env.owner)
    libs = {LINKED_LIBRARIES[n]: deploy(env.w3, n, sender=env.owner).address for n in LINKED_LIBRARIES}
    market = deploy_linked(env.w3, "Marketplace", libs, token.address, registry.address, env.owner.address,
                           sender=env.owner)
    r = env.requester
    send(env.w3, token.functions.mint(r.address, 100 * E18), r)
    send(env.w3, token.functions.approve(market.address, 100 * E18), r)
    return token, market


@pytest.mark.reliability(kind="attack", name="token returns false instead of reverting",
                         how="a token whose transfers return false: deposit reverts (SafeERC20FailedOperation), "
                             "nothing credited")
def test_token_returning_false_is_caught_by_safe_erc20(env: Env, bad) -> None:  # type: ignore[no-untyped-def]
    token, market = bad
    send(env.w3, token.functions.setMode(1), env.owner)
    with pytest.raises(TransactionReverted) as err:
        send(env.w3, market.functions.deposit(E18), env.requester)
    assert err.value.error_name == "SafeERC20FailedOperation"
    assert err.value.error_args == {"token": token.address.lower()}


@pytest.mark.reliability(kind="attack", name="fee-on-transfer token",
                         how="a token skimming 1% per transfer: the deposit credits what arrived, never more")
def test_fee_on_transfer_token_credits_what_arrived(env: Env, bad) -> None:  # type: ignore[no-untyped-def]
    token, market = bad
    send(env.w3, token.functions.setMode(2), env.owner)
    send(env.w3, market.functions.deposit(10 * E18), env.requester)
    assert market.functions.balanceOf(env.requester.address).call() == 10 * E18 - 10 * E18 // 100
    assert token.functions.balanceOf(market.address).call() == 10 * E18 - 10 * E18 // 100


def test_constructor_rejects_zero_addresses(env: Env) -> None:
    libs = {LINKED_LIBRARIES[n]: deploy(env.w3, n, sender=env.owner).address for n in LINKED_LIBRARIES}
    with pytest.raises(TransactionReverted) as err:
        deploy_linked(env.w3, "Marketplace", libs, env.token.address, "0x" + "00" * 20, env.owner.address,
                      sender=env.owner)
    assert err.value.error_name == "MarketplaceZeroAddress"
