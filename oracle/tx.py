"""Sending transactions for one account from many threads: a nonce manager, gas estimation, bounded retries
on transport errors only, replacement of stuck transactions, and decoded custom errors on reverts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import requests
from eth_account.signers.local import LocalAccount
from eth_account.types import TransactionDictType
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import Nonce, TxParams, TxReceipt, Wei

from ._artifacts import AbiList
from ._chain import _reverted, _signable, latest_head
from ._log import get_logger
from .exceptions import ChainError, RpcUnavailable, TransactionReverted

log = get_logger("oracle.tx")

TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)
#: the fields that set a transaction's price (EIP-1559 or legacy)
FEE_FIELDS = ("maxFeePerGas", "maxPriorityFeePerGas", "gasPrice")


class TxSender:
    """Signs and sends ``sender``'s transactions; safe to share between threads.

    - nonces come from a local counter (synced from the node's pending count at start and after a
      'nonce too low'), so concurrent tasks never collide;
    - the call is simulated first: a revert raises :class:`TransactionReverted` with the decoded custom
      error, and is never retried;
    - transport errors are retried ``retries`` times with ``backoff * 2**i`` (re-broadcasting the same
      signed transaction is idempotent);
    - a transaction not mined after ``stuck_after`` seconds is replaced (same nonce, fees +25%);
    - fees are set as web3 would (tip + 2 x base fee, or the legacy gas price) but read from the node at most
      once per ``fee_ttl`` seconds, which saves two requests per transaction to a busy sender.
    """

    def __init__(self, w3: Web3, sender: LocalAccount, *, extra_abis: Iterable[AbiList] = (),
                 retries: int = 5, backoff: float = 0.2, stuck_after: float = 60.0, timeout: float = 300.0,
                 fee_ttl: float = 2.0) -> None:
        self.w3 = w3
        self.sender = sender
        self.extra_abis = list(extra_abis)
        self.retries = retries
        self.backoff = backoff
        self.stuck_after = stuck_after
        self.timeout = timeout
        self.fee_ttl = fee_ttl
        self._fees: tuple[float, dict[str, int]] | None = None
        self._lock = threading.Lock()
        self._nonce: int | None = None
        self._chain_id: int | None = None
        self.gas_used_total = 0
        #: the chain's block gas limit, read with the fees: no gas floor may ask for more (geth dev: ~11 M)
        self.block_gas_limit = 30_000_000

    @property
    def address(self) -> str:
        return str(self.sender.address)

    def _rpc(self, fn: Any, *args: Any) -> Any:
        for attempt in range(self.retries + 1):
            try:
                return fn(*args)
            except TRANSPORT_ERRORS as exc:
                if attempt == self.retries:
                    raise RpcUnavailable(f"the JSON-RPC endpoint failed {self.retries + 1} times ({exc}); "
                                         "check that the node is up, then retry") from exc
                time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def _next_nonce(self) -> int:
        if self._nonce is None:
            self._nonce = self._rpc(self.w3.eth.get_transaction_count, self.sender.address, "pending")
        n = int(self._nonce)
        self._nonce = n + 1
        return n

    def fees(self) -> dict[str, int]:
        """The fee fields of the next transaction: ``maxPriorityFeePerGas`` and ``maxFeePerGas`` = tip + 2 x the
        latest base fee (what web3 fills in), or ``gasPrice`` on a chain without base fee; cached ``fee_ttl`` s."""
        cached = self._fees
        if cached is not None and time.monotonic() - cached[0] < self.fee_ttl:
            return dict(cached[1])
        head = self._rpc(latest_head, self.w3)
        self.block_gas_limit = head.gas_limit or self.block_gas_limit
        base = head.base_fee
        if base is None:
            fees = {"gasPrice": int(self._rpc(lambda: self.w3.eth.gas_price))}
        else:
            tip = int(self._rpc(lambda: self.w3.eth.max_priority_fee))
            fees = {"maxPriorityFeePerGas": tip, "maxFeePerGas": tip + 2 * int(base)}
        self._fees = (time.monotonic(), fees)
        return dict(fees)

    def transact(self, fn: ContractFunction, *, value: int = 0, gas: int | None = None, min_gas: int = 0,
                 pending: bool = False) -> TxReceipt:
        """Simulate, sign, send and wait for ``fn``; return the receipt.

        ``min_gas`` is a floor on the gas limit for a call whose cost the simulation may not see: a last reveal
        that finalizes the task and calls its callback when another replica's reveal lands first in the same
        block (unused gas is not paid). With ``pending`` the simulation runs on the node's pending state, which
        includes the transactions others sent but that are not mined yet: a claim another worker already sent
        is then refused before anything is spent, instead of reverting on chain.
        """
        abis = [fn.contract_abi, *self.extra_abis]
        what = f"{fn.fn_name} from {self.sender.address}"
        # encoded once: each of web3's estimate_gas, build_transaction and call would search and validate the
        # contract's whole ABI again (about 10 ms of CPU each in the worker, yappi)
        call: TxParams = {"from": self.sender.address, "to": fn.address, "value": Wei(value),
                          "data": fn._encode_transaction_data()}
        params = call.copy()
        if gas is None:
            try:
                estimate = self._rpc(self.w3.eth.estimate_gas, call, "pending" if pending else None)
            except (ContractLogicError, Web3RPCError) as exc:
                raise _reverted(exc, abis, what) from exc
            gas = int(estimate * 1.25) + 20_000
        if self._chain_id is None:
            self._chain_id = self._rpc(lambda: self.w3.eth.chain_id)
        params["chainId"] = self._chain_id
        params = _with_fees(params, self.fees())
        if min_gas > gas:  # a floor never asks for more than most of a block (the node would refuse the tx)
            gas = max(gas, min(min_gas, self.block_gas_limit * 9 // 10))
        for attempt in range(2):
            receipt = self._send_tx(_signable({**params, "gas": gas, "nonce": Nonce(0)}), abis, what)
            if receipt["status"] == 1:
                return receipt
            # Reverted on chain although the simulation passed: the state changed in between. Out of gas
            # (another transaction made this one take a costlier path, e.g. a last reveal that finalizes)
            # is retried once with twice the gas; any other revert is decoded by replaying the call.
            if attempt == 0 and int(receipt["gasUsed"]) >= int(gas * 0.97):
                log.warning("tx_out_of_gas_retry", what=what, gas=gas)
                gas = gas * 2
                continue
            tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
            try:
                self.w3.eth.call(call, block_identifier=receipt["blockNumber"])
            except (ContractLogicError, Web3RPCError) as exc:
                err = _reverted(exc, abis, what, tx_hash=tx_hash)
                log.warning("tx_reverted", what=what, tx=tx_hash, gas_used=int(receipt["gasUsed"]), gas=gas,
                            reason=err.error_name or str(err)[:300])
                raise err from exc
            break
        log.warning("tx_reverted", what=what, tx=tx_hash, gas_used=int(receipt["gasUsed"]), gas=gas, reason=None)
        raise TransactionReverted(f"{what} reverted on chain (tx {tx_hash}, {receipt['gasUsed']} of {gas} gas used)",
                                  tx_hash=tx_hash)

    def _send_tx(self, tx: TransactionDictType, abis: list[AbiList], what: str) -> TxReceipt:
        with self._lock:
            tx = dict(tx, nonce=self._next_nonce())
            try:
                tx_hash = self._broadcast(tx, abis, what)
            except BaseException:
                self._nonce = None  # resync: the nonce may or may not have been used
                raise
        receipt = self._wait(tx, tx_hash, abis, what)
        self.gas_used_total += int(receipt["gasUsed"])
        return receipt

    def _broadcast(self, tx: TransactionDictType, abis: list[AbiList], what: str) -> str:
        signed = self.sender.sign_transaction(tx)
        fees_refreshed = False
        for attempt in range(self.retries + 1):
            try:
                return "0x" + bytes(self.w3.eth.send_raw_transaction(signed.raw_transaction)).hex()
            except TRANSPORT_ERRORS as exc:
                if attempt == self.retries:
                    raise RpcUnavailable(f"cannot send {what}: the JSON-RPC endpoint failed ({exc})") from exc
                time.sleep(self.backoff * 2**attempt)
            except (ContractLogicError, Web3RPCError) as exc:
                msg = str(exc).lower()
                if "already known" in msg or "already imported" in msg:
                    return "0x" + bytes(signed.hash).hex()
                if ("base fee" in msg or "underpriced" in msg) and not fees_refreshed:
                    # the base fee rose past the cached cap since the fees were read: read them again, once
                    fees_refreshed, self._fees = True, None
                    tx = {k: v for k, v in tx.items() if k not in FEE_FIELDS} | self.fees()
                    signed = self.sender.sign_transaction(tx)
                    continue
                if "nonce too low" in msg:
                    self._nonce = None
                    tx = dict(tx, nonce=self._next_nonce())
                    signed = self.sender.sign_transaction(tx)
                    continue
                raise _reverted(exc, abis, what) from exc
        raise AssertionError("unreachable")

    def _wait(self, tx: TransactionDictType, tx_hash: str, abis: list[AbiList], what: str) -> TxReceipt:
        deadline = time.monotonic() + self.timeout
        replace_at = time.monotonic() + self.stuck_after
        hashes = [tx_hash]
        poll = 0.005
        gap_check = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            for h in hashes:
                try:
                    return self._rpc(self.w3.eth.get_transaction_receipt, h)  # type: ignore[no-any-return]
                except TransactionNotFound:
                    pass
            if time.monotonic() > gap_check:
                gap_check = time.monotonic() + 2.0
                known = self._rpc(self.w3.eth.get_transaction_count, self.sender.address, "pending")
                if known < _nonce(tx):
                    # A lower nonce of ours vanished (a reorg dropped its block, or the node restarted without it):
                    # this one can never be mined. Take the first free nonce again and re-sign.
                    with self._lock:
                        self._nonce = None
                        tx = dict(tx, nonce=self._next_nonce())
                        log.warning("tx_nonce_gap", what=what, nonce=tx["nonce"], chain_pending=known)
                        hashes.append(self._broadcast(tx, abis, what))
                    replace_at = time.monotonic() + self.stuck_after
            if time.monotonic() > replace_at:
                tx = self._bump_fees(tx)
                log.warning("tx_replaced", what=what, nonce=tx["nonce"], old=hashes[-1])
                with self._lock:
                    hashes.append(self._broadcast(tx, abis, what))
                replace_at = time.monotonic() + self.stuck_after
            time.sleep(poll)
            poll = min(poll * 2, 0.5)
        raise ChainError(f"{what} (nonce {_nonce(tx)}) not mined after {self.timeout:.0f} s; is the chain "
                         "producing blocks? The transaction may still be mined later")

    @staticmethod
    def _bump_fees(tx: TransactionDictType) -> TransactionDictType:
        out = dict(tx)
        for key in FEE_FIELDS:
            value = out.get(key)
            if isinstance(value, int):
                out[key] = int(value * 1.25) + 1
        return out


def _with_fees(params: TxParams, fees: Mapping[str, int]) -> TxParams:
    """``params`` with the fee fields of :meth:`TxSender.fees`."""
    out = params.copy()
    if "gasPrice" in fees:
        out["gasPrice"] = Wei(fees["gasPrice"])
    if "maxFeePerGas" in fees:
        out["maxFeePerGas"] = Wei(fees["maxFeePerGas"])
    if "maxPriorityFeePerGas" in fees:
        out["maxPriorityFeePerGas"] = Wei(fees["maxPriorityFeePerGas"])
    return out


def _nonce(tx: TransactionDictType) -> int:
    nonce = tx["nonce"]
    if not isinstance(nonce, int):
        raise TypeError(f"transaction nonce {nonce!r} is not an int")
    return nonce
