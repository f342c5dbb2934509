"""Fact routes: the raw events, payments and slashes, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import select

from . import _db
from ._api import LIMIT, OFFSET, ApiState, EventOut, IdQuery, Page, PaymentOut, SlashOut, get_state
from ._queries import _address_is, _count, _page, event_out, payment_out, slash_out

router = APIRouter(tags=["facts"])
State = Annotated[ApiState, Depends(get_state)]


@router.get("/api/events", response_model=Page[EventOut])
def list_events(state: State, name: str | None = None, task_id: IdQuery = None, job_id: IdQuery = None,
                worker: str | None = None, limit: int = LIMIT, offset: int = OFFSET) -> Page[EventOut]:
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


@router.get("/api/payments", response_model=Page[PaymentOut])
def list_payments(state: State, account: str | None = None, kind: str | None = None, job_id: IdQuery = None,
                  limit: int = LIMIT, offset: int = OFFSET) -> Page[PaymentOut]:
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


@router.get("/api/slashes", response_model=Page[SlashOut])
def list_slashes(state: State, worker: str | None = None, limit: int = LIMIT, offset: int = OFFSET
                 ) -> Page[SlashOut]:
    s = _db.slashes
    q = select(s)
    if worker:
        q = q.where(_address_is(s.c.worker, worker))
    with state.conn() as conn:
        total = None if worker else _count(conn, "slashes")
        return _page(conn, q.order_by(s.c.block_number.desc(), s.c.log_index.desc()), limit, offset, slash_out,
                     total)
