"""Job and task routes: lists with their filters, a job, and a task with its replicas, history and transactions."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy import select

from . import _db
from ._api import (
    LIMIT,
    OFFSET,
    ApiState,
    IdPath,
    IdQuery,
    JobOut,
    Page,
    TaskDetail,
    TaskOut,
    TxOut,
    get_state,
)
from ._queries import (
    _address_is,
    _count,
    _cur,
    _page,
    counters,
    event_out,
    job_out,
    replica_out,
    task_out,
    wanted_out,
)

router = APIRouter(tags=["jobs"])
State = Annotated[ApiState, Depends(get_state)]


@router.get("/api/jobs", response_model=Page[JobOut])
def list_jobs(state: State, requester: str | None = None, app_id: IdQuery = None,
              status: Literal["open", "closed"] | None = None,
              mode: Literal["fixed", "credibility"] | None = None, limit: int = LIMIT,
              offset: int = OFFSET) -> Page[JobOut]:
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


@router.get("/api/jobs/{job_id}", response_model=JobOut, responses={404: {}})
def get_job(job_id: IdPath, state: State) -> JobOut:
    with state.conn() as conn:
        r = conn.execute(_cur(_db.jobs).where(_db.jobs.c.job_id == job_id)).mappings().first()
    if r is None:
        raise HTTPException(404, f"no job {job_id} in the mirror")
    return job_out(r)


@router.get("/api/tasks", response_model=Page[TaskOut])
def list_tasks(state: State, job_id: IdQuery = None, status: Literal["running", "revealing", "finalized", "failed",
                                                                     "open"] | None = None,
               worker: str | None = None, order: Literal["recent", "id"] = "recent", limit: int = LIMIT,
               offset: int = OFFSET) -> Page[TaskOut]:
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


@router.get("/api/tasks/{task_id}", response_model=TaskDetail, responses={404: {}})
def get_task(task_id: IdPath, state: State) -> TaskDetail:
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
