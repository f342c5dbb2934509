"""The indexer's HTTP API (FastAPI): lists, details, stats, audits, health, Prometheus metrics, the dashboard.

This module holds what the routes share: the response models, the row converters, the paging and address
helpers and the state (:class:`ApiState`, handed to each route by the :func:`get_state` dependency). The app is
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

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import HTTPException, Path, Query, Request
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, Table, false, func, select
from web3 import Web3

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


# -- helpers --------------------------------------------------------------------------------------
def _s(v: int | None) -> str:
    return str(v or 0)


def _arch(mask: int) -> list[str]:
    return [n for i, n in enumerate(ARCH_NAMES) if mask & (1 << i)] or ["any"]


def _page(conn: Connection, query: Any, limit: int, offset: int, convert: Callable[[Any], T],
          total: int | None = None) -> Page[T]:
    """One page of ``query``; ``total`` when a counter knows it, else counted (over an index)."""
    if total is None:
        total = conn.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    rows = conn.execute(query.limit(limit).offset(offset)).mappings().all() if offset < total else []
    return Page[T](items=[convert(r) for r in rows], total=total, limit=limit, offset=offset)


def _cur(table: Table) -> Any:
    return select(table).where(_db.current_of(table))


_ADDRESS = re.compile(r"0[xX][0-9a-fA-F]{40}")
#: the one route taking a POST: starting a job's audit (nothing in the mirror changes)
_AUDIT_START = re.compile(r"/audit/jobs/[0-9]+/runs")


def _address_is(column: Any, value: str) -> Any:
    """``column`` equals the address ``value`` in any letter case. Addresses are stored checksummed, so this is
    an indexed equality (a value that is no address matches nothing)."""
    if not _ADDRESS.fullmatch(value):
        return false()
    return column == Web3.to_checksum_address("0x" + value[2:].lower())


def counters(conn: Connection, *names: str, prefix: str | None = None) -> dict[str, int]:
    """Current values of the named ``counters`` rows (missing ones are 0), or of every row under ``prefix``."""
    c = _db.counters
    q = select(c.c.name, c.c.value).where(_db.current_of(c))
    if prefix is not None:
        q = q.where(c.c.name.startswith(prefix, autoescape=True))
    else:
        q = q.where(c.c.name.in_(names))
    found = {name: int(value) for name, value in conn.execute(q)}
    return {**dict.fromkeys(names, 0), **found}


def _count(conn: Connection, name: str) -> int:
    return counters(conn, name)[name]


def app_out(r: Any) -> AppOut:
    return AppOut(**{**dict(r), "price": _s(r["price"]), "earned": _s(r["earned"])})


def dataset_out(r: Any) -> DatasetOut:
    return DatasetOut(**{**dict(r), "price": _s(r["price"]), "earned": _s(r["earned"])})


def worker_status(r: Any, now: int) -> Literal["busy", "idle", "offline", "banned"]:
    if r["banned"]:
        return "banned"
    if r["active_claims"] > 0:
        return "busy"
    return "idle" if now - r["last_activity"] <= ONLINE_WINDOW else "offline"


def worker_out(r: Any, now: int) -> WorkerOut:
    d = dict(r)
    for k in ("stake", "locked", "unstaking", "earned", "slashed"):
        d[k] = _s(d[k])
    return WorkerOut(**d, status=worker_status(r, now), arch=_arch(r["arch_mask"]))


def job_out(r: Any) -> JobOut:
    d = dict(r)
    for k in ("reward", "escrow", "escrow_held", "refund", "app_paid", "dataset_paid"):
        d[k] = _s(d[k])
    return JobOut(**d, status="closed" if r["closed"] else "open", encrypted=bool(r["encryption_key"]),
                  mode="fixed" if r["confidence_ppb"] is None else "credibility")


def task_out(r: Any) -> TaskOut:
    return TaskOut(**{**dict(r), "reward_each": _s(r["reward_each"]), "refund": _s(r["refund"]),
                      "wanted": r["wanted"].split(",") if r["wanted"] else [], "updated_block": r["block_number"]})


def wanted_out(r: Any) -> WantedOut:
    """A ReplicaWanted row of ``events``."""
    a = json.loads(r["args"])
    reason = int(a["reason"])
    return WantedOut(block_number=r["block_number"], tx_hash=r["tx_hash"], target=int(a["target"]),
                     reason=_db.wanted_reason(reason), credibility_ppb=int(a["credibilityPpb"]))


#: the f a worker's credibility is shown under when no job or f is asked for (the CLI's default assumption)
DEFAULT_FAULT_BPS = 1000


def replica_out(r: Any) -> ReplicaOut:
    return ReplicaOut(**{**dict(r), "reward": _s(r["reward"]), "slashed": _s(r["slashed"])})


def _job_fault(conn: Connection, job_id: int) -> int:
    """The assumed faulty share of credibility-mode job ``job_id``; 404 for an unknown job, 422 for a fixed-R one."""
    j = _db.jobs
    row = conn.execute(select(j.c.fault_bps).where(j.c.job_id == job_id, _db.current_of(j))).first()
    if row is None:
        raise HTTPException(404, f"no job {job_id} in the mirror")
    if row[0] is None:
        raise HTTPException(422, f"job {job_id} has a fixed replication, not credibility mode: it assumes no f")
    return int(row[0])


def _js(v: Any) -> Any:
    """JSON-safe for JavaScript: integers beyond 2**53 become strings."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and abs(v) > 2**53:
        return str(v)
    if isinstance(v, list):
        return [_js(x) for x in v]
    if isinstance(v, dict):
        return {k: _js(x) for k, x in v.items()}
    return v


def event_out(r: Any) -> EventOut:
    return EventOut(**{**dict(r), "args": _js(json.loads(r["args"]))})


def payment_out(r: Any) -> PaymentOut:
    return PaymentOut(**{**dict(r), "amount": _s(r["amount"])})


def slash_out(r: Any) -> SlashOut:
    return SlashOut(**{**dict(r), "amount": _s(r["amount"])})


class _DbCollector(Collector):
    """Gauges read from the database at scrape time."""

    def __init__(self, state: ApiState) -> None:
        self.state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.state.engine.connect() as conn:
            cur = _db.load_cursor(conn)
            indexed = (cur["next_block"] - 1) if cur else 0
            head = self.state.chain_head(cur)
            yield GaugeMetricFamily("tasknet_indexer_indexed_block", "last block mirrored", value=indexed)
            yield GaugeMetricFamily("tasknet_indexer_chain_head", "chain head seen", value=head)
            yield GaugeMetricFamily("tasknet_indexer_lag_blocks", "blocks behind the head",
                                    value=max(0, head - indexed))
            yield GaugeMetricFamily("tasknet_indexer_events", "events mirrored",
                                    value=cur["events_total"] if cur else 0)
            tasks = GaugeMetricFamily("tasknet_tasks", "tasks by status", labels=["status"])
            for name, value in sorted(counters(conn, prefix="tasks:").items()):
                tasks.add_metric([name[len("tasks:"):]], value)
            yield tasks
            n = counters(conn, "jobs", "jobs:open", "escrow:open")
            jobs = GaugeMetricFamily("tasknet_jobs", "jobs by status", labels=["status"])
            jobs.add_metric(["open"], n["jobs:open"])
            jobs.add_metric(["closed"], n["jobs"] - n["jobs:open"])
            yield jobs
            yield GaugeMetricFamily("tasknet_value_escrowed_tokens", "tokens held for open jobs (in whole tokens)",
                                    value=n["escrow:open"] / 1e18)


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

    def chain_head(self, cur: dict[str, Any] | None) -> int:
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
