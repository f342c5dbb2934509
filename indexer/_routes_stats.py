"""Stats routes: the marketplace's figures now, and settled tasks per time bucket."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import and_, case, func, or_, select

from . import _db
from ._api import ONLINE_WINDOW, ApiState, SeriesPoint, Stats, get_state
from ._queries import counters

router = APIRouter(tags=["stats"])
State = Annotated[ApiState, Depends(get_state)]


@router.get("/api/stats", response_model=Stats)
def stats(state: State) -> Stats:
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


@router.get("/api/stats/series", response_model=list[SeriesPoint])
def series(state: State, minutes: int = Query(30, ge=1, le=24 * 60), bucket: int = Query(60, ge=10, le=3600)
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
