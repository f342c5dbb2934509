"""Worker routes: the list (by status, in an order) and one worker with its credibility and history."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy import or_, select

from oracle import credibility

from . import _db
from ._api import (
    LIMIT,
    OFFSET,
    ONLINE_WINDOW,
    ApiState,
    IdQuery,
    Page,
    WorkerCredibility,
    WorkerDetail,
    WorkerOut,
    get_state,
)
from ._queries import (
    DEFAULT_FAULT_BPS,
    _address_is,
    _count,
    _cur,
    _job_fault,
    _page,
    replica_out,
    slash_out,
    worker_out,
)

router = APIRouter(tags=["workers"])
State = Annotated[ApiState, Depends(get_state)]


@router.get("/api/workers", response_model=Page[WorkerOut])
def list_workers(state: State, status: Literal["busy", "idle", "offline", "banned", "online"] | None = None,
                 order: Literal["reputation", "earned", "recent", "address"] = "reputation",
                 limit: int = LIMIT, offset: int = OFFSET) -> Page[WorkerOut]:
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


@router.get("/api/workers/{address}", response_model=WorkerDetail, responses={404: {}, 422: {}})
def get_worker(address: str, state: State, job_id: IdQuery = None,
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
