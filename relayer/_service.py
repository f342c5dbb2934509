"""A relayer: takes worker-signed results, commits and reveals (EIP-712) over HTTP and lands many of them in one
transaction (``relayResults``, ``relayCommits``, ``relayReveals``), paying the gas itself.

Each message is checked when it arrives by simulating it alone (``eth_call`` from the relayer's address): a bad
signature, a lease that is not the signer's, a reveal whose phase is not open... is refused at once with the
contract's error name (HTTP 422), so one bad message never sinks a batch. Accepted messages wait at most
``interval`` seconds (or until ``max_batch`` are queued) and go out together; if the batch reverts anyway (the
chain moved in between), each message is simulated again, the failing ones are marked ``rejected`` with the
reason, and the rest are re-sent. Queued messages live in memory: a worker that does not see its message land
before its own deadline sends it itself (see ``relay_url`` in the worker settings), so a relayer that dies loses
nothing but gas savings.

``create_app(relayer)`` (in ``_app``) is the FastAPI app; ``tasknet relayer run`` serves it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError

from oracle import get_logger
from oracle import (
    reverted_error as _reverted,  # the decoder the transaction sender uses: errors read the same
)
from oracle.exceptions import TasknetError, TransactionReverted
from oracle.market import Market
from oracle.tx import TxSender

from ._messages import FUNCTIONS, MessageStatus, SignedMessage
from ._settings import RelayerSettings
from .exceptions import RelayRejected

log = get_logger("relayer")


class Relayer:
    """Queues signed messages and lands them in batches; thread-safe."""

    def __init__(self, w3: Web3, market: Market, account: LocalAccount, *, interval: float = 1.0,
                 max_batch: int = 50) -> None:
        self.w3, self.market, self.account = w3, market, account
        self.sender = TxSender(w3, account, extra_abis=market.error_abis)
        self.interval, self.max_batch = interval, max_batch
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._queue: dict[str, list[tuple[int, tuple[Any, ...]]]] = {k: [] for k in FUNCTIONS}
        self.statuses: dict[int, MessageStatus] = {}
        self.stats = {"accepted": 0, "rejected": 0, "sent": 0, "transactions": 0, "gas": 0}
        self._stop = threading.Event()
        self._wake = threading.Event()

    @classmethod
    def from_settings(cls, w3: Web3, market: Market, account: LocalAccount, settings: RelayerSettings) -> Relayer:
        return cls(w3, market, account, interval=settings.interval, max_batch=settings.max_batch)

    # -- intake --------------------------------------------------------------------------------------
    def _fn(self, kind: str, items: list[tuple[Any, ...]]) -> Any:
        return getattr(self.market.contract.functions, FUNCTIONS[kind])(items)

    def _simulate(self, kind: str, item: tuple[Any, ...]) -> TransactionReverted | None:
        fn = self._fn(kind, [item])
        try:
            fn.call({"from": self.account.address})
        except (ContractLogicError, Web3RPCError) as exc:
            return _reverted(exc, [fn.contract_abi, *self.market.error_abis], f"{FUNCTIONS[kind]}")
        return None

    def submit(self, kind: str, message: SignedMessage) -> MessageStatus:
        """Check ``message`` alone against the chain and queue it; raise :class:`RelayRejected` if it would revert."""
        item = message.as_tuple()
        err = self._simulate(kind, item)
        if err is not None:
            self.stats["rejected"] += 1
            raise RelayRejected(str(err), err.error_name)
        with self._lock:
            status = MessageStatus(id=next(self._ids), kind=kind, status="queued")
            self.statuses[status.id] = status
            self._queue[kind].append((status.id, item))
            self.stats["accepted"] += 1
            full = len(self._queue[kind]) >= self.max_batch
        if full:
            self._wake.set()
        return status

    # -- landing -------------------------------------------------------------------------------------
    def flush(self) -> int:
        """Send every queued message (one transaction per kind and batch); return how many landed."""
        landed = 0
        with self._flush_lock:
            for kind in FUNCTIONS:
                while True:
                    with self._lock:
                        batch = self._queue[kind][: self.max_batch]
                        del self._queue[kind][: len(batch)]
                    if not batch:
                        break
                    landed += self._send(kind, batch)
        return landed

    def _send(self, kind: str, batch: list[tuple[int, tuple[Any, ...]]]) -> int:
        for _ in range(3):
            if not batch:
                return 0
            try:
                receipt = self.sender.transact(self._fn(kind, [item for _, item in batch]))
            except TransactionReverted:
                kept = []
                for mid, item in batch:  # the chain moved: drop what no longer goes through, keep the rest
                    err = self._simulate(kind, item)
                    if err is None:
                        kept.append((mid, item))
                    else:
                        self._set(mid, status="rejected", error=err.error_name, reason=str(err))
                        self.stats["rejected"] += 1
                batch = kept
                continue
            except TasknetError as exc:  # the RPC node is away: keep the messages for the next round
                log.warning("relay_send_failed", kind=kind, messages=len(batch), error=str(exc))
                with self._lock:
                    self._queue[kind][:0] = batch
                return 0
            tx = "0x" + bytes(receipt["transactionHash"]).hex()
            for mid, _ in batch:
                self._set(mid, status="sent", tx=tx)
            self.stats["sent"] += len(batch)
            self.stats["transactions"] += 1
            self.stats["gas"] += int(receipt["gasUsed"])
            log.info("relayed", kind=kind, messages=len(batch), tx=tx, gas=int(receipt["gasUsed"]))
            return len(batch)
        for mid, _ in batch:
            self._set(mid, status="rejected", error="RetriesExhausted", reason="the batch kept reverting")
        return 0

    def _set(self, mid: int, **changes: Any) -> None:
        with self._lock:
            self.statuses[mid] = self.statuses[mid].model_copy(update=changes)

    def queued(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._queue.values())

    # -- background loop -----------------------------------------------------------------------------
    def run_forever(self, should_stop: Callable[[], bool] | None = None) -> None:
        """Flush every ``interval`` seconds (or as soon as a batch is full) until :meth:`stop`."""
        while not self._stop.is_set() and not (should_stop and should_stop()):
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - the loop must survive; the messages stay queued
                log.error("relay_loop_error", error=str(exc))
                time.sleep(self.interval)
        self.flush()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="relayer", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

