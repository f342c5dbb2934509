"""The indexer's HTTP API (FastAPI): lists, details, stats, audits, health, Prometheus metrics, the dashboard.

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
from importlib import resources
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, Table, and_, case, false, func, or_, select
from web3 import Web3

from oracle import credibility

from . import _db
from ._audit_runs import AuditRunOut, AuditRuns

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

    def __init__(self, state: _State) -> None:
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


class _State:
    def __init__(self, engine: Engine, head: Callable[[], int] | None, max_lag: int) -> None:
        self.engine = engine
        self.head = head
        self.max_lag = max_lag

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


def create_app(engine: Engine, *, chain_head: Callable[[], int] | None = None, max_lag: int = 10,
               verifier: Any | None = None, title: str = "Tasknet indexer") -> FastAPI:
    """The read-only API over the mirror in ``engine``.

    ``chain_head`` (e.g. ``lambda: w3.eth.block_number``) makes ``/ready`` compare with the live head instead of
    the last head the ingester saw; ``verifier`` (an :class:`indexer.Verifier`) enables ``/audit/...``.
    """
    _db.init_db(engine)
    state = _State(engine, chain_head, max_lag)
    app = FastAPI(title=title, version=str(_db.SCHEMA_VERSION),
                  description="Read-only mirror of the Tasknet marketplace: jobs, tasks, workers, apps, datasets, "
                              "stats and independent audits of task outcomes.")
    registry = CollectorRegistry()
    registry.register(_DbCollector(state))
    requests_total = Counter("tasknet_indexer_http_requests", "HTTP requests", ["route", "code"], registry=registry)
    latency = Histogram("tasknet_indexer_http_seconds", "HTTP latency", ["route"], registry=registry,
                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))

    @app.middleware("http")
    async def read_only(request: Request, call_next: Callable[[Request], Any]) -> Response:
        if request.method not in ("GET", "HEAD") and not (
                request.method == "POST" and _AUDIT_START.fullmatch(request.url.path)):
            return JSONResponse({"detail": f"the indexer is read-only: {request.method} is not allowed"},
                                status_code=405, headers={"Allow": "GET, HEAD"})
        t0 = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "other")
        requests_total.labels(path, str(response.status_code)).inc()
        latency.labels(path).observe(time.perf_counter() - t0)
        return response

    static = resources.files("indexer") / "static"

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(str(static / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    # -- health ---------------------------------------------------------------------------------
    @app.get("/health", response_model=Health, tags=["ops"])
    def health() -> Health:
        with state.conn() as conn:
            conn.execute(select(1))
        return Health(status="ok")

    @app.get("/ready", response_model=Ready, tags=["ops"], responses={503: {"model": Ready}})
    def ready(response: Response) -> Ready:
        with state.conn() as conn:
            cur = _db.load_cursor(conn)
        indexed = (cur["next_block"] - 1) if cur else -1
        head = state.chain_head(cur)
        lag = max(0, head - indexed)
        ok = cur is not None and lag <= state.max_lag
        if not ok:
            response.status_code = 503
        return Ready(ready=ok, indexed_block=indexed, chain_head=head, lag_blocks=lag, max_lag=state.max_lag,
                     updated_at=cur["updated_at"] if cur else 0)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    # -- registry ---------------------------------------------------------------------------------
    Limit = Query(50, ge=1, le=500)
    Offset = Query(0, ge=0, le=10**9)

    @app.get("/api/apps", response_model=Page[AppOut], tags=["registry"])
    def list_apps(owner: str | None = None, deprecated: bool | None = None, limit: int = Limit,
                  offset: int = Offset) -> Page[AppOut]:
        q = _cur(_db.apps)
        if owner:
            q = q.where(_address_is(_db.apps.c.owner, owner))
        if deprecated is not None:
            q = q.where(_db.apps.c.deprecated.is_(deprecated))
        with state.conn() as conn:
            total = _count(conn, "apps") if not owner and deprecated is None else None
            return _page(conn, q.order_by(_db.apps.c.app_id), limit, offset, app_out, total)

    @app.get("/api/apps/{app_id}", response_model=AppOut, tags=["registry"], responses={404: {}})
    def get_app(app_id: IdPath) -> AppOut:
        with state.conn() as conn:
            r = conn.execute(_cur(_db.apps).where(_db.apps.c.app_id == app_id)).mappings().first()
        if r is None:
            raise HTTPException(404, f"no app {app_id} in the mirror")
        return app_out(r)

    @app.get("/api/datasets", response_model=Page[DatasetOut], tags=["registry"])
    def list_datasets(owner: str | None = None, limit: int = Limit, offset: int = Offset) -> Page[DatasetOut]:
        q = _cur(_db.datasets)
        if owner:
            q = q.where(_address_is(_db.datasets.c.owner, owner))
        with state.conn() as conn:
            total = None if owner else _count(conn, "datasets")
            return _page(conn, q.order_by(_db.datasets.c.dataset_id), limit, offset, dataset_out, total)

    @app.get("/api/datasets/{dataset_id}", response_model=DatasetOut, tags=["registry"], responses={404: {}})
    def get_dataset(dataset_id: IdPath) -> DatasetOut:
        with state.conn() as conn:
            r = conn.execute(_cur(_db.datasets).where(_db.datasets.c.dataset_id == dataset_id)).mappings().first()
        if r is None:
            raise HTTPException(404, f"no dataset {dataset_id} in the mirror")
        return dataset_out(r)

    # -- workers ----------------------------------------------------------------------------------
    @app.get("/api/workers", response_model=Page[WorkerOut], tags=["workers"])
    def list_workers(status: Literal["busy", "idle", "offline", "banned", "online"] | None = None,
                     order: Literal["reputation", "earned", "recent", "address"] = "reputation",
                     limit: int = Limit, offset: int = Offset) -> Page[WorkerOut]:
        w = _db.workers
        with state.conn() as conn:
            now = state.now(conn)
            q = _cur(w)
            recent = w.c.last_activity >= now - ONLINE_WINDOW
            if status == "banned":
                q = q.where(w.c.banned.is_(True))
            elif status == "busy":
                q = q.where(w.c.banned.is_(False), w.c.active_claims > 0)
            elif status == "idle":
                q = q.where(w.c.banned.is_(False), w.c.active_claims == 0, recent)
            elif status == "offline":
                q = q.where(w.c.banned.is_(False), w.c.active_claims == 0, ~recent)
            elif status == "online":
                q = q.where(w.c.banned.is_(False), or_(w.c.active_claims > 0, recent))
            q = q.order_by({"reputation": w.c.reputation.desc(), "earned": w.c.earned.desc(),
                            "recent": w.c.last_activity.desc(), "address": w.c.address}[order], w.c.address)
            total = None if status else _count(conn, "workers")
            return _page(conn, q, limit, offset, lambda r: worker_out(r, now), total)

    @app.get("/api/workers/{address}", response_model=WorkerDetail, tags=["workers"], responses={404: {}, 422: {}})
    def get_worker(address: str, job_id: IdQuery = None,
                   fault_bps: int | None = Query(None, ge=100, le=5000)) -> WorkerDetail:
        """A worker, its credibility (under the f of credibility-mode job ``job_id``, or ``fault_bps``, or 10 %),
        its newest contributions and slashes."""
        with state.conn() as conn:
            now = state.now(conn)
            r = conn.execute(_cur(_db.workers).where(_address_is(_db.workers.c.address, address))
                             ).mappings().first()
            if r is None:
                raise HTTPException(404, f"no worker {address} in the mirror")
            f = fault_bps or DEFAULT_FAULT_BPS
            if job_id is not None:
                f = _job_fault(conn, job_id)
            reps = conn.execute(_cur(_db.replicas).where(_db.replicas.c.worker == r["address"])
                                .order_by(_db.replicas.c.block_number.desc()).limit(100)).mappings().all()
            sl = conn.execute(select(_db.slashes).where(_db.slashes.c.worker == r["address"])
                              .order_by(_db.slashes.c.block_number.desc()).limit(100)).mappings().all()
        cred = WorkerCredibility(fault_bps=f, job_id=job_id,
                                 credibility_ppb=credibility.of_worker(r["verified"], f))
        return WorkerDetail(worker=worker_out(r, now), credibility=cred, contributions=[replica_out(x) for x in reps],
                            slashes=[slash_out(x) for x in sl])

    # -- jobs and tasks -----------------------------------------------------------------------------
    @app.get("/api/jobs", response_model=Page[JobOut], tags=["jobs"])
    def list_jobs(requester: str | None = None, app_id: IdQuery = None,
                  status: Literal["open", "closed"] | None = None,
                  mode: Literal["fixed", "credibility"] | None = None, limit: int = Limit,
                  offset: int = Offset) -> Page[JobOut]:
        j = _db.jobs
        q = _cur(j)
        if mode is not None:
            q = q.where(j.c.confidence_ppb.is_(None) if mode == "fixed" else j.c.confidence_ppb.is_not(None))
        if requester:
            q = q.where(_address_is(j.c.requester, requester))
        if app_id is not None:
            q = q.where(j.c.app_id == app_id)
        if status is not None:
            q = q.where(j.c.closed.is_(status == "closed"))
        with state.conn() as conn:
            total = None
            if not requester and app_id is None and mode is None:
                n = counters(conn, "jobs", "jobs:open")
                total = {None: n["jobs"], "open": n["jobs:open"], "closed": n["jobs"] - n["jobs:open"]}[status]
            return _page(conn, q.order_by(j.c.job_id.desc()), limit, offset, job_out, total)

    @app.get("/api/jobs/{job_id}", response_model=JobOut, tags=["jobs"], responses={404: {}})
    def get_job(job_id: IdPath) -> JobOut:
        with state.conn() as conn:
            r = conn.execute(_cur(_db.jobs).where(_db.jobs.c.job_id == job_id)).mappings().first()
        if r is None:
            raise HTTPException(404, f"no job {job_id} in the mirror")
        return job_out(r)

    @app.get("/api/tasks", response_model=Page[TaskOut], tags=["jobs"])
    def list_tasks(job_id: IdQuery = None, status: Literal["running", "revealing", "finalized", "failed",
                                                               "open"] | None = None,
                   worker: str | None = None, order: Literal["recent", "id"] = "recent", limit: int = Limit,
                   offset: int = Offset) -> Page[TaskOut]:
        t = _db.tasks
        q = _cur(t)
        if job_id is not None:
            q = q.where(t.c.job_id == job_id)
        if status is not None:
            q = q.where(t.c.status == status)
        if worker:
            q = q.where(_address_is(t.c.worker, worker))
        q = q.order_by(t.c.block_number.desc(), t.c.task_id.desc()) if order == "recent" else q.order_by(t.c.task_id)
        with state.conn() as conn:
            total = None
            if job_id is None and not worker:
                total = _count(conn, "tasks" if status is None else f"tasks:{status}")
            return _page(conn, q, limit, offset, task_out, total)

    @app.get("/api/tasks/{task_id}", response_model=TaskDetail, tags=["jobs"], responses={404: {}})
    def get_task(task_id: IdPath) -> TaskDetail:
        t = _db.tasks
        with state.conn() as conn:
            versions = conn.execute(select(t).where(t.c.task_id == task_id).order_by(t.c.block_number)
                                    ).mappings().all()
            if not versions:
                raise HTTPException(404, f"no task {task_id} in the mirror (tasks appear at their first claim)")
            current = next(v for v in versions if v["is_current"])
            job = conn.execute(_cur(_db.jobs).where(_db.jobs.c.job_id == current["job_id"])).mappings().first()
            reps = conn.execute(_cur(_db.replicas).where(_db.replicas.c.task_id == task_id)
                                .order_by(_db.replicas.c.seq)).mappings().all()
            e = _db.events
            lease_start = current["lease_start"]
            ids = [task_id] + ([lease_start] if lease_start is not None and lease_start != task_id else [])
            history = conn.execute(select(e).where(e.c.task_id.in_(ids)).order_by(e.c.block_number, e.c.log_index)
                                   ).mappings().all()
            hashes = sorted({h["tx_hash"] for h in history})
            txs = conn.execute(select(_db.txs).where(_db.txs.c.hash.in_(hashes)).order_by(_db.txs.c.block_number)
                               ).mappings().all() if hashes else []
        return TaskDetail(task=task_out(current), job=job_out(job) if job else None,
                          wanted=[wanted_out(h) for h in history if h["name"] == "ReplicaWanted"],
                          replicas=[replica_out(r) for r in reps], history=[event_out(h) for h in history],
                          versions=[task_out(v) for v in versions],
                          transactions=[TxOut(**dict(x)) for x in txs])

    # -- facts ------------------------------------------------------------------------------------
    @app.get("/api/events", response_model=Page[EventOut], tags=["facts"])
    def list_events(name: str | None = None, task_id: IdQuery = None, job_id: IdQuery = None,
                    worker: str | None = None, limit: int = Limit, offset: int = Offset) -> Page[EventOut]:
        e = _db.events
        q = select(e)
        if name:
            q = q.where(e.c.name == name)
        if task_id is not None:
            q = q.where(e.c.task_id == task_id)
        if job_id is not None:
            q = q.where(e.c.job_id == job_id)
        if worker:
            q = q.where(_address_is(e.c.worker, worker))
        with state.conn() as conn:
            total = None
            if task_id is None and job_id is None and not worker:
                total = _count(conn, f"events:{name}" if name else "events")
            return _page(conn, q.order_by(e.c.block_number.desc(), e.c.log_index.desc()), limit, offset, event_out,
                         total)

    @app.get("/api/payments", response_model=Page[PaymentOut], tags=["facts"])
    def list_payments(account: str | None = None, kind: str | None = None, job_id: IdQuery = None,
                      limit: int = Limit, offset: int = Offset) -> Page[PaymentOut]:
        p = _db.payments
        q = select(p)
        if account:
            q = q.where(_address_is(p.c.account, account))
        if kind:
            q = q.where(p.c.kind == kind)
        if job_id is not None:
            q = q.where(p.c.job_id == job_id)
        with state.conn() as conn:
            total = _count(conn, f"payments:{kind}" if kind else "payments") if not account and job_id is None \
                else None
            return _page(conn, q.order_by(p.c.block_number.desc(), p.c.log_index.desc(), p.c.seq), limit, offset,
                         payment_out, total)

    @app.get("/api/slashes", response_model=Page[SlashOut], tags=["facts"])
    def list_slashes(worker: str | None = None, limit: int = Limit, offset: int = Offset) -> Page[SlashOut]:
        s = _db.slashes
        q = select(s)
        if worker:
            q = q.where(_address_is(s.c.worker, worker))
        with state.conn() as conn:
            total = None if worker else _count(conn, "slashes")
            return _page(conn, q.order_by(s.c.block_number.desc(), s.c.log_index.desc()), limit, offset, slash_out,
                         total)

    # -- stats ------------------------------------------------------------------------------------
    @app.get("/api/stats", response_model=Stats, tags=["stats"])
    def stats() -> Stats:
        w, sr = _db.workers, _db.series
        with state.conn() as conn:
            cur = _db.load_cursor(conn)
            now = state.now(conn)
            n = counters(conn, "events", "jobs", "jobs:open", "escrow:open", "gas:finalized", "apps", "datasets")
            by_status = {k[len("tasks:"):]: v for k, v in counters(conn, prefix="tasks:").items()}
            settled_recent = conn.execute(select(func.coalesce(func.sum(sr.c.settled), 0)).where(
                _db.current_of(sr), sr.c.t >= now - 600)).scalar_one()
            recent = w.c.last_activity >= now - ONLINE_WINDOW
            n_workers, active, busy = conn.execute(select(
                func.count(), func.sum(case((and_(w.c.banned.is_(False), or_(w.c.active_claims > 0, recent)), 1),
                                            else_=0)),
                func.sum(case((and_(w.c.banned.is_(False), w.c.active_claims > 0), 1), else_=0)))
                .where(_db.current_of(w))).one()
        finished, failed = by_status.get("finalized", 0), by_status.get("failed", 0)
        done = finished + failed
        return Stats(
            chain_time=now, indexed_block=(cur["next_block"] - 1) if cur else 0,
            chain_head=cur["chain_head"] if cur else 0, events_total=n["events"],
            jobs=n["jobs"], jobs_open=n["jobs:open"], tasks=sum(by_status.values()),
            tasks_running=by_status.get("running", 0) + by_status.get("revealing", 0),
            tasks_finished=finished, tasks_failed=failed,
            success_rate=finished / done if done else None, failure_rate=failed / done if done else None,
            tasks_per_minute=int(settled_recent) / 10.0,
            gas_per_task=n["gas:finalized"] / finished if finished else None,
            workers=n_workers, active_workers=active or 0, busy_workers=busy or 0,
            value_escrowed=str(n["escrow:open"]), apps=n["apps"], datasets=n["datasets"])

    @app.get("/api/stats/series", response_model=list[SeriesPoint], tags=["stats"])
    def series(minutes: int = Query(30, ge=1, le=24 * 60), bucket: int = Query(60, ge=10, le=3600)
               ) -> list[SeriesPoint]:
        """Tasks settled per time bucket (chain time) and their mean gas, oldest first."""
        sr = _db.series
        with state.conn() as conn:
            now = state.now(conn)
            start = (now - minutes * 60) // bucket * bucket
            slot = ((sr.c.t - start) // bucket).label("slot")
            rows = conn.execute(select(slot, func.sum(sr.c.finalized), func.sum(sr.c.failed), func.sum(sr.c.gas))
                                .where(_db.current_of(sr), sr.c.t >= start).group_by(slot)).all()
        by_slot = {int(r[0]): (int(r[1] or 0), int(r[2] or 0), int(r[3] or 0)) for r in rows}
        out = []
        for i in range((now - start) // bucket + 1):
            finished, failed, gas = by_slot.get(i, (0, 0, 0))
            out.append(SeriesPoint(t=start + i * bucket, finished=finished, failed=failed,
                                   gas_per_task=gas / finished if finished else None))
        return out

    # -- audits -----------------------------------------------------------------------------------
    def _verifier() -> Any:
        if verifier is None:
            raise HTTPException(503, "audits need the chain and IPFS: start the indexer with --rpc-url and "
                                     "--ipfs-api")
        return verifier

    @app.get("/audit/tasks/{task_id}", tags=["audit"], responses={503: {}})
    def audit_task(task_id: IdPath) -> dict[str, Any]:
        """Re-derive a task's outcome from public data (events, calldata, signatures, IPFS content)."""
        report: dict[str, Any] = _verifier().task(task_id).model_dump()
        return _js(report)  # type: ignore[no-any-return]

    @app.get("/audit/jobs/{job_id}", tags=["audit"], responses={503: {}})
    def audit_job(job_id: IdPath) -> dict[str, Any]:
        """Audit every claimed task of a job, answering when done (for a large job, start a run instead:
        ``POST /audit/jobs/{job_id}/runs``)."""
        return _js(_verifier().job(job_id).model_dump())  # type: ignore[no-any-return]

    runs: list[AuditRuns] = []

    def _runs() -> AuditRuns:
        if not runs:
            runs.append(AuditRuns(_verifier()))
        return runs[0]

    @app.post("/audit/jobs/{job_id}/runs", tags=["audit"], status_code=202, response_model=AuditRunOut,
              responses={503: {}})
    def start_audit(job_id: IdPath, response: Response) -> AuditRunOut:
        """Start auditing a job in the background (or return the run of this job still under way: 200)."""
        run, started = _runs().start(job_id)
        if not started:
            response.status_code = 200
        response.headers["Location"] = f"/audit/runs/{run.run_id}"
        return run.out()

    @app.get("/audit/jobs/{job_id}/runs", tags=["audit"], response_model=list[AuditRunOut], responses={503: {}})
    def job_audits(job_id: IdPath) -> list[AuditRunOut]:
        """The runs of this job's audit that the API remembers, newest first."""
        return [r.out() for r in _runs().of_job(job_id)]

    @app.get("/audit/runs/{run_id}", tags=["audit"], response_model=AuditRunOut, responses={404: {}, 503: {}})
    def audit_run(run_id: IdPath) -> AuditRunOut:
        """A run's progress (``done`` of ``total`` tasks) and, once ``done``, its verdict and counts."""
        run = _runs().get(run_id)
        if run is None:
            raise HTTPException(404, f"no audit run {run_id} (runs are kept in memory: the API may have restarted)")
        return run.out()

    @app.get("/audit/runs/{run_id}/findings", tags=["audit"], response_model=Page[dict[str, Any]],
             responses={404: {}, 503: {}})
    def audit_findings(run_id: IdPath, failed: bool = False, limit: int = Limit, offset: int = Offset
                       ) -> Page[dict[str, Any]]:
        """The task reports audited so far, in task order (``failed=true``: only those with a failed check)."""
        run = _runs().get(run_id)
        if run is None:
            raise HTTPException(404, f"no audit run {run_id} (runs are kept in memory: the API may have restarted)")
        total, items = run.findings(failed_only=failed, limit=limit, offset=offset)
        return Page[dict[str, Any]](items=[_js(r.model_dump()) for r in items], total=total, limit=limit,
                                    offset=offset)

    return app
