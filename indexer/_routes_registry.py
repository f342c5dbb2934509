"""Registry routes: apps and datasets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException

from . import _db
from ._api import LIMIT, OFFSET, ApiState, AppOut, DatasetOut, IdPath, Page, get_state
from ._queries import _address_is, _count, _cur, _page, app_out, dataset_out

router = APIRouter(tags=["registry"])
State = Annotated[ApiState, Depends(get_state)]


@router.get("/api/apps", response_model=Page[AppOut])
def list_apps(state: State, owner: str | None = None, deprecated: bool | None = None, limit: int = LIMIT,
              offset: int = OFFSET) -> Page[AppOut]:
    q = _cur(_db.apps)
    if owner:
        q = q.where(_address_is(_db.apps.c.owner, owner))
    if deprecated is not None:
        q = q.where(_db.apps.c.deprecated.is_(deprecated))
    with state.conn() as conn:
        total = _count(conn, "apps") if not owner and deprecated is None else None
        return _page(conn, q.order_by(_db.apps.c.app_id), limit, offset, app_out, total)


@router.get("/api/apps/{app_id}", response_model=AppOut, responses={404: {}})
def get_app(app_id: IdPath, state: State) -> AppOut:
    with state.conn() as conn:
        r = conn.execute(_cur(_db.apps).where(_db.apps.c.app_id == app_id)).mappings().first()
    if r is None:
        raise HTTPException(404, f"no app {app_id} in the mirror")
    return app_out(r)


@router.get("/api/datasets", response_model=Page[DatasetOut])
def list_datasets(state: State, owner: str | None = None, limit: int = LIMIT, offset: int = OFFSET
                  ) -> Page[DatasetOut]:
    q = _cur(_db.datasets)
    if owner:
        q = q.where(_address_is(_db.datasets.c.owner, owner))
    with state.conn() as conn:
        total = None if owner else _count(conn, "datasets")
        return _page(conn, q.order_by(_db.datasets.c.dataset_id), limit, offset, dataset_out, total)


@router.get("/api/datasets/{dataset_id}", response_model=DatasetOut, responses={404: {}})
def get_dataset(dataset_id: IdPath, state: State) -> DatasetOut:
    with state.conn() as conn:
        r = conn.execute(_cur(_db.datasets).where(_db.datasets.c.dataset_id == dataset_id)).mappings().first()
    if r is None:
        raise HTTPException(404, f"no dataset {dataset_id} in the mirror")
    return dataset_out(r)
