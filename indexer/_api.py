"""The indexer's HTTP API (FastAPI): lists, details, stats, audits, health, Prometheus metrics, the dashboard.

This module holds what the routes share: the response models and the state (:class:`ApiState`, handed to each
route by the :func:`get_state` dependency); the queries and row converters are in ``_queries``. The app is
built in ``_app.create_app``; the routes live in one router per resource, ``_routes_*``.

Read-only: every route is a GET, and a middleware answers 405 to any other method before routing, but one: POST
``/audit/jobs/{id}/runs`` starts a job's audit in the background (it reads public data and changes nothing in the
mirror); ``/audit/runs/{run}`` reports its progress and ``/audit/runs/{run}/findings`` pages its task reports.
Amounts are uint256 and travel as decimal strings; ids that fit 53 bits travel as numbers.

Cost per request stays flat as the mirror grows: totals and stats come from the ``counters`` and ``series``
rows the ingester maintains (a count runs only for filter combinations no counter covers, over an index),
lists read partial indexes over the current versions in their order, and address filters compare the
checksummed form, which is how every address is stored, so they use the indexes too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import HTTPException, Path, Query, Request
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine

from . import _db
from ._audit_runs import AuditRuns

T = TypeVar("T")

#: Seconds since a worker's last on-chain action during which it counts as online.
ONLINE_WINDOW = 600
ARCH_NAMES = ["amd64", "arm64", "riscv64", "386", "arm"]
MAX_ID = 2**63 - 1
IdPath = Annotated[int, Path(ge=0, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=0, le=MAX_ID)]


# -- response models ------------------------------------------------------------------------------
class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class AppOut(BaseModel):
    app_id: int
    owner: str
    image_ref: str
    image_digest: str
    metadata_uri: str
    price: str
    is_public: bool
    deterministic_file: str
    deprecated: bool
    earned: str
    jobs: int
    registered_at: int


class DatasetOut(BaseModel):
    dataset_id: int
    owner: str
    cid: str
    checksum: str
    price: str
    any_requester: bool
    any_app: bool
    deprecated: bool
    earned: str
    jobs: int
    registered_at: int


class WorkerOut(BaseModel):
    address: str
    status: Literal["busy", "idle", "offline", "banned"]
    cores: int
    memory_mb: int
    gpus: int
    arch: list[str]
    platform_class: str | None = Field(description="declared platform class (homogeneous redundancy), or null")
    stake: str
    locked: str
    unstaking: str
    reputation: int
    slashes: int
    banned: bool
    earned: str
    slashed: str
    tasks_done: int
    tasks_failed: int
    active_claims: int
    verified: int = Field(description="results another worker's matching replica confirmed since the last slash "
                                      "(the credibility of credibility mode: 1 - f / max(verified, 1))")
    registered_at: int
    last_activity: int


class WorkerCredibility(BaseModel):
    fault_bps: int = Field(description="the assumed faulty share f it is computed under (basis points)")
    job_id: int | None = Field(description="the credibility-mode job whose f was asked for, if any")
    credibility_ppb: int = Field(description="1 - f / max(verified, 1), parts per billion (credibilityOf)")


class JobOut(BaseModel):
    job_id: int
    status: Literal["open", "closed"]
    requester: str
    app_id: int
    dataset_id: int
    num_tasks: int
    replication: int
    reward: str
    deadline: int
    max_run_seconds: int
    cores: int
    memory_mb: int
    gpus: int
    arch_mask: int
    min_reputation: int
    callback: str
    inputs_cid: str
    encrypted: bool
    escrow: str
    escrow_held: str
    fee_bps: int
    claimed: int
    settled: int
    finished: int
    failed: int
    cancelled: int
    refund: str
    app_paid: str
    dataset_paid: str
    mode: Literal["fixed", "credibility"] = Field(description="credibility: replicas until a group of matching "
                                                            "results reaches the confidence, `replication` the cap")
    confidence_ppb: int | None = Field(description="(credibility mode) target confidence, parts per billion")
    fault_bps: int | None = Field(description="(credibility mode) assumed share of faulty workers f, basis points")
    spot_check_bps: int | None = Field(description="(credibility mode) share of spot checks, basis points")
    posted_at: int
    closed_at: int | None


class TaskOut(BaseModel):
    task_id: int
    job_id: int
    idx: int
    status: str
    target: int
    claims: int
    occupied: int
    committed: int
    revealed: int
    worker: str | None
    result_digest: str | None
    result_cid: str | None
    winners: int
    reward_each: str
    refund: str
    callback_ok: bool | None
    wanted: list[str] = Field(description="(credibility mode) why the task wanted each replica past the first, "
                                          "in order: not-credible, spot-check or dispute")
    platform_class: str | None = Field(description="(homogeneous redundancy) the class the first replica bound the "
                                        "task to, or null")
    gas_used: int
    txs: int
    claimed_at: int
    finished_at: int | None
    updated_block: int


class ReplicaOut(BaseModel):
    task_id: int
    seq: int
    slot: int
    worker: str
    status: str
    expiry: int
    commitment: str | None
    result_digest: str | None
    result_cid: str | None
    reward: str
    slashed: str
    claimed_at: int
    updated_at: int


class EventOut(BaseModel):
    block_number: int
    log_index: int
    tx_hash: str
    name: str
    args: dict[str, Any]
    task_id: int | None
    job_id: int | None
    timestamp: int


class TxOut(BaseModel):
    hash: str
    block_number: int
    sender: str
    to: str | None
    gas_used: int
    n_tasks: int


class PaymentOut(BaseModel):
    block_number: int
    log_index: int
    kind: str
    account: str | None
    amount: str
    job_id: int | None
    task_id: int | None
    timestamp: int


class SlashOut(BaseModel):
    block_number: int
    worker: str
    task_id: int
    amount: str
    reputation: int
    timestamp: int


class WantedOut(BaseModel):
    block_number: int
    tx_hash: str
    reason: str = Field(description="not-credible, spot-check or dispute")
    target: int = Field(description="the replica count the task wanted")
    credibility_ppb: int = Field(description="the credibility that fell short (not-credible, dispute: the best "
                                             "group's; spot-check: the lone worker's), parts per billion")


class TaskDetail(BaseModel):
    task: TaskOut
    job: JobOut | None
    wanted: list[WantedOut] = Field(description="(credibility mode) each extra replica the task wanted, oldest "
                                                "first (ReplicaWanted)")
    replicas: list[ReplicaOut]
    history: list[EventOut] = Field(description="every event about the task, oldest first")
    versions: list[TaskOut] = Field(description="every state the task went through, oldest first")
    transactions: list[TxOut]


class WorkerDetail(BaseModel):
    worker: WorkerOut
    credibility: WorkerCredibility
    contributions: list[ReplicaOut]
    slashes: list[SlashOut]


class Stats(BaseModel):
    chain_time: int
    indexed_block: int
    chain_head: int
    events_total: int
    jobs: int
    jobs_open: int
    tasks: int
    tasks_running: int
    tasks_finished: int
    tasks_failed: int
    success_rate: float | None
    failure_rate: float | None
    tasks_per_minute: float = Field(description="tasks settled per minute over the last 10 minutes of chain time")
    gas_per_task: float | None = Field(description="mean gas of the transactions of a finished task, shared "
                                                   "among the tasks each transaction touched")
    workers: int
    active_workers: int
    busy_workers: int
    value_escrowed: str
    apps: int
    datasets: int


class SeriesPoint(BaseModel):
    t: int
    finished: int
    failed: int
    gas_per_task: float | None


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    ready: bool
    indexed_block: int
    chain_head: int
    lag_blocks: int
    max_lag: int
    updated_at: int


class ApiState:
    """What the routes share, kept on ``app.state.tasknet`` and handed to them by :func:`get_state`."""

    def __init__(self, engine: Engine, head: Callable[[], int] | None, max_lag: int, verifier: Any | None,
                 registry: CollectorRegistry) -> None:
        self.engine = engine
        self.head = head
        self.max_lag = max_lag
        self.verifier = verifier
        self.registry = registry
        self._runs: AuditRuns | None = None

    def audit_verifier(self) -> Any:
        """The verifier, or a 503 that says how to enable audits."""
        if self.verifier is None:
            raise HTTPException(503, "audits need the chain and IPFS: start the indexer with --rpc-url and "
                                     "--ipfs-api")
        return self.verifier

    def runs(self) -> AuditRuns:
        """The background audit runs (created at the first use, so a missing verifier answers 503)."""
        if self._runs is None:
            self._runs = AuditRuns(self.audit_verifier())
        return self._runs

    def chain_head(self, cur: _db.CursorRow | None) -> int:
        if self.head is not None:
            try:
                return int(self.head())
            except Exception:  # noqa: BLE001, S110 - the node is down: fall back to the last head the ingester saw
                pass
        return int(cur["chain_head"]) if cur else 0

    @contextmanager
    def conn(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def now(self, conn: Connection) -> int:
        cur = _db.load_cursor(conn)
        return int(cur["head_timestamp"]) if cur and cur["head_timestamp"] else int(time.time())


def get_state(request: Request) -> ApiState:
    """The FastAPI dependency that gives a route the app's shared state."""
    state: ApiState = request.app.state.tasknet
    return state


#: The paging query parameters every list shares.
LIMIT = Query(50, ge=1, le=500)
OFFSET = Query(0, ge=0, le=10**9)
