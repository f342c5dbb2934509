"""Operations routes: the dashboard, ``/health``, ``/ready`` and Prometheus ``/metrics``."""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import FileResponse
from prometheus_client import generate_latest
from sqlalchemy import select

from . import _db
from ._api import ApiState, Health, Ready, get_state

router = APIRouter()
State = Annotated[ApiState, Depends(get_state)]
STATIC = resources.files("indexer") / "static"


@router.get("/", include_in_schema=False)
def dashboard() -> FileResponse:
    return FileResponse(str(STATIC / "index.html"), media_type="text/html")


@router.get("/health", response_model=Health, tags=["ops"])
def health(state: State) -> Health:
    with state.conn() as conn:
        conn.execute(select(1))
    return Health(status="ok")


@router.get("/ready", response_model=Ready, tags=["ops"], responses={503: {"model": Ready}})
def ready(response: Response, state: State) -> Ready:
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


@router.get("/metrics", tags=["ops"], response_class=Response)
def metrics(state: State) -> Response:
    return Response(generate_latest(state.registry), media_type="text/plain; version=0.0.4")
