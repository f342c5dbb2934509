"""The indexer's HTTP API app: builds the FastAPI app, its shared state, the read-only middleware and metrics, and
includes one router per resource (``_routes_*``); the response models and converters live in ``_api``.

Read-only: every route is a GET, and a middleware answers 405 to any other method before routing, but one: POST
``/audit/jobs/{id}/runs`` starts a job's audit in the background (it reads public data and changes nothing in the
mirror).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import Engine

from . import (
    _db,
    _routes_audit,
    _routes_facts,
    _routes_jobs,
    _routes_ops,
    _routes_registry,
    _routes_stats,
    _routes_workers,
)
from ._api import ApiState
from ._queries import _AUDIT_START, _DbCollector

Middleware = Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]


def _read_only(registry: CollectorRegistry) -> Middleware:
    """The middleware that refuses writes (but starting an audit run) and counts and times every request."""
    requests_total = Counter("tasknet_indexer_http_requests", "HTTP requests", ["route", "code"], registry=registry)
    latency = Histogram("tasknet_indexer_http_seconds", "HTTP latency", ["route"], registry=registry,
                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))

    async def read_only(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
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

    return read_only


def create_app(engine: Engine, *, chain_head: Callable[[], int] | None = None, max_lag: int = 10,
               verifier: Any | None = None, title: str = "Tasknet indexer") -> FastAPI:
    """The read-only API over the mirror in ``engine``.

    ``chain_head`` (e.g. ``lambda: w3.eth.block_number``) makes ``/ready`` compare with the live head instead of
    the last head the ingester saw; ``verifier`` (an :class:`indexer.Verifier`) enables ``/audit/...``.
    """
    _db.init_db(engine)
    registry = CollectorRegistry()
    state = ApiState(engine, chain_head, max_lag, verifier, registry)
    registry.register(_DbCollector(state))
    app = FastAPI(title=title, version=str(_db.SCHEMA_VERSION),
                  description="Read-only mirror of the Tasknet marketplace: jobs, tasks, workers, apps, datasets, "
                              "stats and independent audits of task outcomes.")
    app.state.tasknet = state
    app.middleware("http")(_read_only(registry))
    app.include_router(_routes_ops.router)
    app.mount("/static", StaticFiles(directory=str(_routes_ops.STATIC)), name="static")
    for routes in (_routes_registry, _routes_workers, _routes_jobs, _routes_facts, _routes_stats, _routes_audit):
        app.include_router(routes.router)
    return app
