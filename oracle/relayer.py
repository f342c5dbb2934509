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

``create_app(relayer)`` is the FastAPI app; ``tasknet relayer run`` serves it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from eth_account.signers.local import LocalAccount
from pydantic import BaseModel, Field, field_validator
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError

from ._chain import _reverted
from ._log import get_logger
from .exceptions import TasknetError, TransactionReverted
from .market import Market
from .tx import TxSender

log = get_logger("relayer")

Kind = Literal["results", "commits", "reveals"]


def _hex_bytes(value: str, size: int | None = None) -> bytes:
    raw = bytes.fromhex(value.removeprefix("0x"))
    if size is not None and len(raw) != size:
        raise ValueError(f"expected {size} bytes of hex, got {len(raw)}")
    return raw


class SignedResults(BaseModel):
    """Results for the next tasks of an R = 1 lease, signed by its holder (EIP-712 ``Results``)."""

    start_task_id: int = Field(ge=0)
    first_task_id: int = Field(ge=0)
    result_digests: list[str] = Field(min_length=1, max_length=256)
    result_cids: list[str] = Field(min_length=1, max_length=256)
    callback_data: list[str] = Field(default_factory=list)
    signature: str

    @field_validator("result_digests")
    @classmethod
    def _digests(cls, v: list[str]) -> list[str]:
        for d in v:
            _hex_bytes(d, 32)
        return v

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.start_task_id, self.first_task_id, [_hex_bytes(d, 32) for d in self.result_digests],
                self.result_cids, [_hex_bytes(c) for c in self.callback_data], _hex_bytes(self.signature, 65))


class SignedCommit(BaseModel):
    """A commitment signed by the replica's worker (EIP-712 ``Commit``)."""

    task_id: int = Field(ge=0)
    commitment: str
    signature: str

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.task_id, _hex_bytes(self.commitment, 32), _hex_bytes(self.signature, 65))


class SignedReveal(BaseModel):
    """A reveal signed by the replica's worker (EIP-712 ``Reveal``)."""

    task_id: int = Field(ge=0)
    result_digest: str
    salt: str
    result_cid: str
    callback_data: str = "0x"
    signature: str

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.task_id, _hex_bytes(self.result_digest, 32), _hex_bytes(self.salt, 32), self.result_cid,
                _hex_bytes(self.callback_data), _hex_bytes(self.signature, 65))


MODELS: dict[str, type[BaseModel]] = {"results": SignedResults, "commits": SignedCommit, "reveals": SignedReveal}
FUNCTIONS = {"results": "relayResults", "commits": "relayCommits", "reveals": "relayReveals"}


class MessageStatus(BaseModel):
    id: int
    kind: str
    status: Literal["queued", "sent", "rejected"]
    tx: str | None = None
    error: str | None = None
    reason: str | None = None


class RelayRejected(TasknetError):
    """The message would revert on chain (``error_name`` says why); it was not queued."""

    def __init__(self, message: str, error_name: str | None) -> None:
        super().__init__(message)
        self.error_name = error_name


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

    def submit(self, kind: str, message: BaseModel) -> MessageStatus:
        """Check ``message`` alone against the chain and queue it; raise :class:`RelayRejected` if it would revert."""
        item = message.as_tuple()  # type: ignore[attr-defined]
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


def create_app(relayer: Relayer) -> Any:
    """The relayer's HTTP API: ``POST /v1/{results,commits,reveals}``, ``GET /v1/messages/{id}``, ``/health``."""
    from fastapi import FastAPI, HTTPException

    app = FastAPI(title="Tasknet relayer", version="1",
                  description="Lands worker-signed results, commits and reveals in batched transactions.")

    def _intake(kind: str, message: BaseModel) -> MessageStatus:
        try:
            return relayer.submit(kind, message)
        except RelayRejected as exc:
            raise HTTPException(422, detail={"error": exc.error_name, "message": str(exc)}) from exc
        except TasknetError as exc:
            raise HTTPException(503, detail={"error": type(exc).__name__, "message": str(exc)}) from exc

    @app.post("/v1/results", status_code=202, response_model=MessageStatus)
    def post_results(message: SignedResults) -> MessageStatus:
        return _intake("results", message)

    @app.post("/v1/commits", status_code=202, response_model=MessageStatus)
    def post_commit(message: SignedCommit) -> MessageStatus:
        return _intake("commits", message)

    @app.post("/v1/reveals", status_code=202, response_model=MessageStatus)
    def post_reveal(message: SignedReveal) -> MessageStatus:
        return _intake("reveals", message)

    @app.get("/v1/messages/{mid}", response_model=MessageStatus)
    def message_status(mid: int) -> MessageStatus:
        status = relayer.statuses.get(mid)
        if status is None:
            raise HTTPException(404, detail=f"no message {mid} (ids restart when the relayer restarts)")
        return status

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "relayer": relayer.account.address, "queued": relayer.queued(), **relayer.stats}

    return app
