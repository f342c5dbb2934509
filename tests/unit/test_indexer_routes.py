"""The indexer's HTTP API as a contract: every route (method, path, tag, operation id, query parameters) that the
OpenAPI document listed before the routes moved into one router per resource is still listed, and the routes
reach the app's own state through the ``get_state`` dependency (two apps over two mirrors stay apart).

No daemon: the mirror is an empty SQLite file, which is all these routes need to answer.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer import create_app, make_engine

#: (method, path) -> (tag, route function name, parameters in order): the API's published surface.
ROUTES: dict[tuple[str, str], tuple[str, str, tuple[str, ...]]] = {
    ("GET", "/health"): ("ops", "health", ()),
    ("GET", "/ready"): ("ops", "ready", ()),
    ("GET", "/metrics"): ("ops", "metrics", ()),
    ("GET", "/api/apps"): ("registry", "list_apps", ("owner", "deprecated", "limit", "offset")),
    ("GET", "/api/apps/{app_id}"): ("registry", "get_app", ("app_id",)),
    ("GET", "/api/datasets"): ("registry", "list_datasets", ("owner", "limit", "offset")),
    ("GET", "/api/datasets/{dataset_id}"): ("registry", "get_dataset", ("dataset_id",)),
    ("GET", "/api/workers"): ("workers", "list_workers", ("status", "order", "limit", "offset")),
    ("GET", "/api/workers/{address}"): ("workers", "get_worker", ("address", "job_id", "fault_bps")),
    ("GET", "/api/jobs"): ("jobs", "list_jobs", ("requester", "app_id", "status", "mode", "limit", "offset")),
    ("GET", "/api/jobs/{job_id}"): ("jobs", "get_job", ("job_id",)),
    ("GET", "/api/tasks"): ("jobs", "list_tasks", ("job_id", "status", "worker", "order", "limit", "offset")),
    ("GET", "/api/tasks/{task_id}"): ("jobs", "get_task", ("task_id",)),
    ("GET", "/api/events"): ("facts", "list_events", ("name", "task_id", "job_id", "worker", "limit", "offset")),
    ("GET", "/api/payments"): ("facts", "list_payments", ("account", "kind", "job_id", "limit", "offset")),
    ("GET", "/api/slashes"): ("facts", "list_slashes", ("worker", "limit", "offset")),
    ("GET", "/api/stats"): ("stats", "stats", ()),
    ("GET", "/api/stats/series"): ("stats", "series", ("minutes", "bucket")),
    ("GET", "/audit/tasks/{task_id}"): ("audit", "audit_task", ("task_id",)),
    ("GET", "/audit/jobs/{job_id}"): ("audit", "audit_job", ("job_id",)),
    ("POST", "/audit/jobs/{job_id}/runs"): ("audit", "start_audit", ("job_id",)),
    ("GET", "/audit/jobs/{job_id}/runs"): ("audit", "job_audits", ("job_id",)),
    ("GET", "/audit/runs/{run_id}"): ("audit", "audit_run", ("run_id",)),
    ("GET", "/audit/runs/{run_id}/findings"): ("audit", "audit_findings", ("run_id", "failed", "limit", "offset")),
}


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return TestClient(create_app(make_engine(str(tmp_path / "mirror.db"))))


def test_openapi_lists_every_route_it_listed_before(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    listed = {(method.upper(), path): op for path, ops in paths.items() for method, op in ops.items()}
    missing = sorted(set(ROUTES) - set(listed))
    assert not missing, f"routes gone from the OpenAPI document: {missing}"
    for (method, path), (tag, name, params) in ROUTES.items():
        op = listed[(method, path)]
        assert op["tags"] == [tag], (method, path)
        assert op["operationId"] == re.sub(r"\W", "_", name + path) + "_" + method.lower(), (method, path)
        assert tuple(p["name"] for p in op.get("parameters", [])) == params, (method, path)
    assert client.post("/audit/jobs/1/runs").status_code == 503  # the one write the read-only middleware lets in


def test_routes_read_their_own_apps_state(tmp_path: Path) -> None:
    """No route closes over an app: each finds its mirror (and verifier, and metrics) through the request."""
    a = TestClient(create_app(make_engine(str(tmp_path / "a.db"))))
    b = TestClient(create_app(make_engine(str(tmp_path / "b.db")), max_lag=7))
    assert a.get("/health").json() == {"status": "ok"}
    assert a.get("/ready").json()["max_lag"] == 10 and b.get("/ready").json()["max_lag"] == 7
    assert 'route="/health"' in a.get("/metrics").text
    assert 'route="/health"' not in b.get("/metrics").text
    assert a.get("/audit/tasks/1").json()["detail"].startswith("audits need the chain and IPFS")
    assert a.delete("/api/apps").status_code == 405
    assert a.get("/api/apps/3").json() == {"detail": "no app 3 in the mirror"}
    assert a.get("/").headers["content-type"].startswith("text/html")
