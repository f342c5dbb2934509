"""The read-only HTTP API over a mirror of real traffic: lists, filters, pagination, task detail with history,
stats, /health, /ready, /metrics, through TestClient and a real uvicorn; non-GET is refused; the OpenAPI
document drives a property-based fuzz of every route."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_indexer_helpers import E18, Traffic, current, dump, traffic

from indexer import Indexer, Verifier, _db, create_app, make_engine
from oracle.protocol import task_id
from tasknet._devnet import free_port


@pytest.fixture
def mirrored(w3, accounts, deployment, tmp_path: Path) -> tuple[Traffic, Indexer, dict[str, int]]:
    t = traffic(w3, accounts, deployment)
    ids = t.scenario()
    ix = Indexer(make_engine(str(tmp_path / "api.db")), w3, t.market.address)
    ix.sync()
    return t, ix, ids


@pytest.fixture
def client(mirrored) -> TestClient:
    t, ix, _ = mirrored
    return TestClient(create_app(ix.engine, chain_head=lambda: int(t.w3.eth.block_number)))


def test_lists_filter_and_paginate(client: TestClient, mirrored) -> None:
    t, _, ids = mirrored
    page = client.get("/api/tasks", params={"limit": 2, "offset": 0, "order": "id"}).json()
    assert page["total"] == 5 and len(page["items"]) == 2 and page["items"][0]["task_id"] == task_id(ids["single"], 0)
    rest = client.get("/api/tasks", params={"limit": 2, "offset": 4, "order": "id"}).json()
    assert [x["task_id"] for x in rest["items"]] == [task_id(ids["triple"], 1)]
    running = client.get("/api/tasks", params={"status": "running"}).json()["items"]
    assert [x["task_id"] for x in running] == [task_id(ids["triple"], 1)]
    by_job = client.get("/api/tasks", params={"job_id": ids["single"]}).json()
    assert by_job["total"] == 3
    busy = client.get("/api/workers", params={"status": "busy"}).json()["items"]
    assert [w["address"] for w in busy] == [t.workers[3].address]
    assert client.get("/api/workers", params={"status": "online"}).json()["total"] == 4
    closed = client.get("/api/jobs", params={"status": "closed"}).json()["items"]
    assert [j["job_id"] for j in closed] == [ids["cancelled"]]
    app = client.get(f"/api/apps/{ids['app']}").json()
    assert app["jobs"] == 3 and app["price"] == str(E18 // 10)
    assert client.get("/api/datasets").json()["items"][0]["dataset_id"] == ids["dataset"]
    assert client.get("/api/slashes").json()["items"][0]["worker"] == t.workers[1].address
    assert client.get("/api/payments", params={"kind": "reward"}).json()["total"] == 5
    assert client.get("/api/events", params={"name": "JobPosted"}).json()["total"] == 3
    assert client.get("/api/tasks/1").status_code == 404
    assert client.get("/api/workers/0x0000000000000000000000000000000000000001").status_code == 404


def test_address_filters_match_any_letter_case_and_totals_match_the_rows(client: TestClient, mirrored) -> None:
    t, _, _ = mirrored
    worker = t.workers[1].address
    for spelling in (worker, worker.lower(), "0X" + worker[2:].upper()):
        page = client.get("/api/tasks", params={"worker": spelling}).json()
        assert page["total"] == 2 and {x["worker"] for x in page["items"]} == {worker}, spelling
        assert client.get(f"/api/workers/{spelling}").json()["worker"]["address"] == worker
    requester = t.requester.address.lower()
    assert client.get("/api/jobs", params={"requester": requester}).json()["total"] == 3
    assert client.get("/api/payments", params={"account": requester, "kind": "escrow"}).json()["total"] == 3
    assert client.get("/api/tasks", params={"worker": "not-an-address"}).json() == {
        "items": [], "total": 0, "limit": 50, "offset": 0}
    # totals served from the counters equal the rows a full listing returns
    for path, params in (("/api/tasks", {}), ("/api/tasks", {"status": "finalized"}), ("/api/events", {}),
                         ("/api/events", {"name": "ResultSubmitted"}), ("/api/payments", {"kind": "reward"}),
                         ("/api/jobs", {"status": "open"}), ("/api/workers", {}), ("/api/apps", {})):
        page = client.get(path, params={**params, "limit": 500}).json()
        assert page["total"] == len(page["items"]), (path, params)
    beyond = client.get("/api/tasks", params={"offset": 10}).json()
    assert beyond["total"] == 5 and beyond["items"] == []
    assert client.get("/api/jobs", params={"status": "closed"}).json()["total"] == 1


def test_task_detail_has_full_history_versions_and_gas(client: TestClient, mirrored) -> None:
    t, _, ids = mirrored
    tid = task_id(ids["triple"], 0)
    d = client.get(f"/api/tasks/{tid}").json()
    names = [e["name"] for e in d["history"]]
    assert names[:3] == ["ReplicaClaimed"] * 3 and names.count("ResultCommitted") == 3
    assert names.count("ResultRevealed") == 3 and "WorkerSlashed" in names and names[-1] == "TaskFinalized"
    assert [v["status"] for v in d["versions"]][-1] == "finalized" and d["versions"][0]["status"] == "running"
    assert len(d["replicas"]) == 3 and d["job"]["job_id"] == ids["triple"]
    # each transaction of a replicated task touches only that task: it carries its whole gas
    gas = sum(t.w3.eth.get_transaction_receipt(x["hash"])["gasUsed"] for x in d["transactions"])
    assert d["task"]["gas_used"] == gas and len(d["transactions"]) == 9


def test_stats_match_the_chain(client: TestClient, mirrored) -> None:
    t, ix, ids = mirrored
    s = client.get("/api/stats").json()
    assert (s["tasks"], s["tasks_finished"], s["tasks_failed"], s["tasks_running"]) == (5, 4, 0, 1)
    assert s["success_rate"] == 1.0 and s["failure_rate"] == 0.0
    escrow = sum(t.market.functions.jobEscrow(ids[k]).call() for k in ("single", "triple", "cancelled"))
    assert s["value_escrowed"] == str(escrow) and escrow > 0
    finished = [r["gas_used"] for r in current(ix.engine, _db.tasks) if r["status"] == "finalized"]
    assert s["gas_per_task"] == pytest.approx(sum(finished) / len(finished))
    assert s["tasks_per_minute"] == pytest.approx(0.4)  # 4 tasks settled within the last 10 minutes
    assert (s["workers"], s["active_workers"], s["busy_workers"]) == (4, 4, 1)
    series = client.get("/api/stats/series", params={"minutes": 5}).json()
    assert sum(p["finished"] for p in series) == 4


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_every_non_get_request_is_refused_and_changes_nothing(client: TestClient, mirrored, method: str) -> None:
    _, ix, ids = mirrored
    before = dump(ix.engine)
    for path in ("/api/jobs", f"/api/jobs/{ids['single']}", "/api/tasks", "/api/workers", "/", "/metrics",
                 "/audit/tasks/1", "/static/app.js", "/nowhere"):
        r = client.request(method, path, json={"closed": True})
        assert r.status_code == 405, (method, path)
        assert r.headers["allow"] == "GET, HEAD"
    assert dump(ix.engine) == before


def test_real_uvicorn_serves_health_ready_metrics_and_openapi(mirrored) -> None:
    t, ix, _ = mirrored
    app = create_app(ix.engine, chain_head=lambda: int(t.w3.eth.block_number), max_lag=5)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert httpx.get(f"{base}/health").json() == {"status": "ok"}
        ready = httpx.get(f"{base}/ready").json()
        assert ready["ready"] and ready["lag_blocks"] == 0
        metrics = httpx.get(f"{base}/metrics").text
        assert 'tasknet_tasks{status="finalized"} 4.0' in metrics
        assert "tasknet_indexer_lag_blocks 0.0" in metrics
        assert "tasknet_indexer_http_requests_total" in metrics
        spec = httpx.get(f"{base}/openapi.json").json()
        assert {"/api/tasks/{task_id}", "/api/stats", "/audit/tasks/{task_id}", "/ready"} <= set(spec["paths"])
        # every route reads, but starting a job's audit in the background (it changes nothing in the mirror)
        assert all(set(ops) == {"get"} for path, ops in spec["paths"].items() if path != "/audit/jobs/{job_id}/runs")
        assert set(spec["paths"]["/audit/jobs/{job_id}/runs"]) == {"get", "post"}
        html = httpx.get(f"{base}/").text
        assert "Tasknet" in html and "/static/app.js" in html

        t.w3.provider.make_request("anvil_mine", [6])  # the ingester is stopped: it falls behind
        lagging = httpx.get(f"{base}/ready")
        assert lagging.status_code == 503 and lagging.json()["lag_blocks"] == 6
        ix.sync()
        assert httpx.get(f"{base}/ready").status_code == 200
    finally:
        server.should_exit = True
        thread.join(10)


# -- fuzzing every route from the OpenAPI document ------------------------------------------------
def _value(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "anyOf" in schema:
        return st.one_of([_value(s) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum", -(2**70)), max_value=schema.get("maximum", 2**70))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    # printable, and without the characters that would change the URL's structure in a path segment
    return st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters="/?#%\\",
                                                  exclude_categories=("Cc",)),
                   max_size=50)


def _requests(spec: dict[str, Any]) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    options = []
    for path, ops in spec["paths"].items():
        parameters = ops["get"].get("parameters", [])
        path_params = {p["name"]: _value(p["schema"]) for p in parameters if p["in"] == "path"}
        query = {p["name"]: _value(p["schema"]) for p in parameters if p["in"] == "query"}
        options.append(st.tuples(st.just(path), st.fixed_dictionaries(path_params),
                                 st.fixed_dictionaries({}, optional=query)))
    return st.one_of(options).map(lambda x: (x[0].format(**{k: v for k, v in x[1].items()}), x[2]))


def test_fuzzing_every_route_from_the_openapi_document_never_errors(mirrored) -> None:
    t, ix, _ = mirrored
    client = TestClient(create_app(ix.engine, chain_head=lambda: int(t.w3.eth.block_number),
                                   verifier=Verifier(t.w3, t.market.address, None)))
    spec = client.get("/openapi.json").json()
    assert len(spec["paths"]) >= 15

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_requests(spec))
    def probe(request: tuple[str, dict[str, Any]]) -> None:
        path, query = request
        r = client.get(path, params={k: v for k, v in query.items() if v is not None})
        assert r.status_code < 500, (path, query, r.text)
        assert r.status_code in (200, 404, 422), (path, query, r.status_code)
        if path != "/metrics":
            r.json()

    probe()
