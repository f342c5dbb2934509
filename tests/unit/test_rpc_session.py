"""oracle._chain.rpc_session: the environment's proxy settings for an RPC URL are read once, when the session is
made, and still honoured (requests' own per-request reading of them is off). Two real HTTP servers on loopback
stand for a proxy and the endpoint; no chain is involved."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest

from oracle._chain import rpc_session

pytestmark = pytest.mark.unit


def _server(name: str) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": name, "path": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def servers() -> Iterator[tuple[str, str]]:
    proxy, endpoint = _server("proxy"), _server("endpoint")
    try:
        yield f"http://127.0.0.1:{proxy.server_port}", f"http://127.0.0.1:{endpoint.server_port}"
    finally:
        proxy.shutdown()
        endpoint.shutdown()


def _answer(url: str) -> dict[str, str]:
    session = rpc_session(url)
    assert session.trust_env is False
    reply: dict[str, str] = session.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
                                         timeout=5).json()
    return reply


def test_a_proxy_set_in_the_environment_carries_the_calls(servers: tuple[str, str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, endpoint = servers
    for var in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    reply = _answer(endpoint)
    assert reply["result"] == "proxy" and reply["path"].startswith(endpoint)  # the proxy got the absolute URL


def test_no_proxy_for_the_endpoint_goes_direct(servers: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, endpoint = servers
    for var in ("no_proxy", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert _answer(endpoint)["result"] == "endpoint"


def test_the_environment_is_read_when_the_session_is_made_not_per_call(servers: tuple[str, str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, endpoint = servers
    for var in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    session = rpc_session(endpoint)
    monkeypatch.setenv("HTTP_PROXY", proxy)  # too late for this session
    assert session.post(endpoint, json={}, timeout=5).json()["result"] == "endpoint"
