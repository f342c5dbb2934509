"""The read side of the API: the queries the routes share (paging, current versions, address filters, the
``counters`` rows), the converters of rows to response models, and the Prometheus collector that reads the
database at scrape time."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar

from fastapi import HTTPException
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import JsonValue
from sqlalchemy import Connection, Table, false, func, select
from web3 import Web3

from . import _db
from ._api import (
    ARCH_NAMES,
    ONLINE_WINDOW,
    ApiState,
    AppOut,
    DatasetOut,
    EventOut,
    JobOut,
    Page,
    PaymentOut,
    ReplicaOut,
    SlashOut,
    TaskOut,
    WantedOut,
    WorkerOut,
)

T = TypeVar("T")


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


def _js(v: JsonValue) -> JsonValue:
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
