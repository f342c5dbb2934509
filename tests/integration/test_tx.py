"""oracle.tx.TxSender on a real anvil: concurrent nonces, decoded reverts, stuck-transaction replacement."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from web3 import Web3

from oracle import connect, deploy
from oracle.exceptions import RpcUnavailable, TransactionReverted
from oracle.tx import TxSender
from tasknet import _devnet
from tasknet._devnet import free_port


def test_concurrent_sends_from_many_threads_all_land_with_distinct_nonces(w3, accounts, deployment) -> None:
    token = deployment["TestToken"]
    sender = TxSender(w3, accounts[0])
    receipts, errors = [], []

    def work(k: int) -> None:
        try:
            for i in range(5):
                receipts.append(sender.transact(token.functions.faucet(accounts[6].address, 1 + k * 10 + i)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(receipts) == 20 and all(r["status"] == 1 for r in receipts)
    nonces = {w3.eth.get_transaction(r["transactionHash"])["nonce"] for r in receipts}
    assert len(nonces) == 20
    assert sender.gas_used_total == sum(r["gasUsed"] for r in receipts)


def test_revert_is_decoded_and_does_not_burn_a_nonce(w3, accounts, deployment) -> None:
    token = deployment["TestToken"]
    sender = TxSender(w3, accounts[1])
    before = w3.eth.get_transaction_count(accounts[1].address)
    with pytest.raises(TransactionReverted) as err:
        sender.transact(token.functions.faucet(accounts[1].address, 10**30))
    assert err.value.error_name == "TestTokenFaucetTooLarge"
    sender.transact(token.functions.faucet(accounts[1].address, 5))
    assert w3.eth.get_transaction_count(accounts[1].address) == before + 1


def test_stuck_transaction_is_replaced_with_higher_fees(w3, accounts, deployment) -> None:
    token = deployment["TestToken"]
    sender = TxSender(w3, accounts[2], stuck_after=0.3, timeout=20)
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        timer = threading.Timer(1.0, lambda: w3.provider.make_request("anvil_mine", [1]))
        timer.start()
        with capture_logs() as logs:
            receipt = sender.transact(token.functions.faucet(accounts[2].address, 9))
        timer.join()
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    assert receipt["status"] == 1
    mined = w3.eth.get_transaction(receipt["transactionHash"])
    replaced = [e for e in logs if e["event"] == "tx_replaced"]
    assert replaced and replaced[0]["old"] != "0x" + bytes(receipt["transactionHash"]).hex()
    assert mined["nonce"] == replaced[0]["nonce"]
    assert token.functions.balanceOf(accounts[2].address).call() == 9  # exactly once, not twice


def test_dead_rpc_is_reported_after_bounded_retries(accounts, deployment) -> None:
    dead = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{free_port()}", request_kwargs={"timeout": 1}))
    token = dead.eth.contract(address=deployment["TestToken"].address, abi=deployment["TestToken"].abi)
    sender = TxSender(dead, accounts[0], retries=2, backoff=0.01)
    with pytest.raises(RpcUnavailable, match="failed 3 times"):
        sender.transact(token.functions.faucet(accounts[0].address, 1))


def test_out_of_gas_on_chain_is_retried_once_with_twice_the_gas(w3, accounts, deployment) -> None:
    """A transaction whose simulation passed but ran out of gas on chain (the state changed in between, or the
    limit was too tight) is sent again with double the gas; the second one lands."""
    token = deployment["TestToken"]
    sender = TxSender(w3, accounts[3])
    with capture_logs() as logs:
        receipt = sender.transact(token.functions.faucet(accounts[3].address, 77), gas=40_000)
    assert receipt["status"] == 1 and receipt["gasUsed"] > 40_000
    assert [e["event"] for e in logs].count("tx_out_of_gas_retry") == 1
    assert token.functions.balanceOf(accounts[3].address).call() == 77


def test_a_transaction_reverted_on_chain_is_logged_at_warning_with_its_gas(w3, accounts, deployment) -> None:
    """A transaction sent without a simulation (a given gas limit: a time-gated call) that reverts on chain is
    logged once at warning level, with the gas it burnt and the decoded reason (the worker's log shows every gas
    loss), and raised."""
    token = deployment["TestToken"]
    sender = TxSender(w3, accounts[4])
    with capture_logs() as logs, pytest.raises(TransactionReverted) as err:
        sender.transact(token.functions.faucet(accounts[4].address, 10**30), gas=200_000)
    reverted = [e for e in logs if e["event"] == "tx_reverted"]
    assert len(reverted) == 1 and reverted[0]["log_level"] == "warning"
    receipt = w3.eth.get_transaction_receipt(reverted[0]["tx"])
    assert receipt["status"] == 0 and reverted[0]["gas_used"] == receipt["gasUsed"] > 21_000
    assert reverted[0]["reason"] == err.value.error_name == "TestTokenFaucetTooLarge"


@pytest.fixture
def private_chain(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start anvils of this test's own (the base fee is changed: never on the session chain, whose snapshots do
    not restore it); returns a function (extra anvil arguments) -> Web3."""
    infos = []

    def start(*extra: str) -> Any:
        info, url = _devnet.start_anvil(tmp_path / f"anvil-{len(infos)}", free_port(), extra_args=extra)
        infos.append(info)
        return connect(url)

    try:
        yield start
    finally:
        for info in infos:
            _devnet.stop(info)


def test_fees_follow_the_base_fee_and_are_read_once_per_ttl(private_chain, accounts) -> None:
    w3 = private_chain()
    token = deploy(w3, "TestToken", sender=accounts[0])
    tip = int(w3.eth.max_priority_fee)
    sender = TxSender(w3, accounts[3], fee_ttl=3600)
    first = sender.transact(token.functions.faucet(accounts[3].address, 1))
    second = sender.transact(token.functions.faucet(accounts[3].address, 2))
    fee = [w3.eth.get_transaction(r["transactionHash"])["maxFeePerGas"] for r in (first, second)]
    assert fee[0] == fee[1]  # within the TTL: the fees are not read again
    # the base fee jumps past the cached cap: the node refuses the transaction, the sender reads the fees again
    w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(fee[0] * 3)])
    w3.provider.make_request("anvil_mine", [1])
    base = int(w3.eth.get_block("latest")["baseFeePerGas"])
    assert base > fee[0]
    third = sender.transact(token.functions.faucet(accounts[3].address, 3))
    tx = w3.eth.get_transaction(third["transactionHash"])
    assert third["status"] == 1
    assert (tx["maxPriorityFeePerGas"], tx["maxFeePerGas"]) == (tip, tip + 2 * base)  # what web3 itself fills in


def test_a_chain_without_base_fee_gets_the_legacy_gas_price(private_chain, accounts) -> None:
    legacy = private_chain("--hardfork", "berlin")
    assert "baseFeePerGas" not in legacy.eth.get_block("latest")
    assert TxSender(legacy, accounts[0]).fees() == {"gasPrice": int(legacy.eth.gas_price)}
