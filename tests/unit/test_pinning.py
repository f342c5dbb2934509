"""The Pinning Service API client (oracle.pinning) and the requester's use of it, offline.

``FakeService`` is an in-process Pinning Service API behind an ``httpx.MockTransport``: it isolates the client's
side of the protocol (the request it sends, the Bearer token, the status polling, retries and refusals) from any
real service. It moves every request from ``queued`` through ``pinning`` to ``pinned`` (or ``failed`` for the CIDs
it is told to fail), one state per ``GET``. ``FakeKubo`` answers the three kubo RPC calls the pinner makes
(``id``, ``pin/add``, ``swarm/connect``; the last one can be made to fail, as a real dial can). The real service
(IPFS Cluster's pinsvc API) is exercised in tests/network/test_net_pinning.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from oracle.client import ResultPinner
from oracle.exceptions import PinningError, PinningRefused, PinningUnavailable
from oracle.ipfs import IpfsClient
from oracle.network import NetworkProfile, PinningService, save_profile
from oracle.pinning import PinningClient, request_pin
from oracle.settings import resolve

TOKEN = "secret-token"
NODE_ADDRS = ["/ip4/10.77.0.2/tcp/4001/p2p/12D3KooWClient"]
DELEGATE = "/ip4/10.77.0.9/tcp/4001/p2p/12D3KooWService"


class FakeService:
    """A Pinning Service API in memory (see the module docstring)."""

    def __init__(self, *, fail_cids: set[str] = frozenset(), answers: list[int] | None = None) -> None:
        self.pins: dict[str, dict[str, Any]] = {}
        self.requests: list[httpx.Request] = []
        self.fail_cids = fail_cids
        self.answers = list(answers or [])  # forced HTTP statuses for the next requests, then normal service

    def _status(self, rid: str) -> dict[str, Any]:
        p = self.pins[rid]
        return {"requestid": rid, "status": p["status"], "created": "2026-12-04T05:00:00Z", "pin": p["pin"],
                "delegates": [DELEGATE], "info": {}}

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.answers:
            code = self.answers.pop(0)
            return httpx.Response(code, json={"error": {"reason": "FORCED", "details": f"forced {code}"}})
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401, json={"error": {"reason": "UNAUTHORIZED",
                                                       "details": "Access token is missing or invalid"}})
        path = request.url.path
        if request.method == "POST" and path == "/api/v1/pins":
            body = json.loads(request.content)
            rid = f"req-{len(self.pins) + 1}"
            self.pins[rid] = {"pin": body, "status": "queued"}
            return httpx.Response(202, json=self._status(rid))
        if request.method == "GET" and path.startswith("/api/v1/pins/"):
            rid = path.rsplit("/", 1)[1]
            if rid not in self.pins:
                return httpx.Response(404, json={"error": {"reason": "NOT_FOUND"}})
            p = self.pins[rid]
            p["status"] = {"queued": "pinning", "pinning": "failed" if p["pin"]["cid"] in self.fail_cids
                           else "pinned"}.get(p["status"], p["status"])
            return httpx.Response(200, json=self._status(rid))
        if request.method == "GET" and path == "/api/v1/pins":
            wanted = set(request.url.params.get("cid", "").split(",")) - {""}
            hits = [self._status(r) for r, p in self.pins.items() if not wanted or p["pin"]["cid"] in wanted]
            return httpx.Response(200, json={"count": len(hits), "results": hits})
        return httpx.Response(404, text="404 page not found")

    def client(self, token: str | None = TOKEN, **kw: Any) -> PinningClient:
        return PinningClient("https://pins.example/api/v1/", token, token_env="TASKNET_PINNING_TOKEN",
                             transport=httpx.MockTransport(self.handler), backoff=0.0, **kw)


class FakeKubo:
    """kubo's RPC API for the calls a pinner makes; records the pins and the swarm connections."""

    def __init__(self, *, dial_errors: list[str] | None = None) -> None:
        self.pinned: list[str] = []
        self.connected: list[str] = []
        self.dials = 0
        self.dial_errors = list(dial_errors or [])  # what the next swarm connects fail with, then they succeed

    def handler(self, request: httpx.Request) -> httpx.Response:
        path, arg = request.url.path.removeprefix("/api/v0"), request.url.params.get("arg", "")
        if path == "/id":
            return httpx.Response(200, json={"ID": "12D3KooWClient", "Addresses": NODE_ADDRS})
        if path == "/pin/add":
            self.pinned.append(arg)
            return httpx.Response(200, json={"Pins": [arg]})
        if path == "/swarm/connect":
            self.dials += 1
            if self.dial_errors:
                return httpx.Response(500, json={"Message": self.dial_errors.pop(0), "Code": 0, "Type": "error"})
            self.connected.append(arg)
            return httpx.Response(200, json={"Strings": [f"connect {arg} success"]})
        return httpx.Response(500, json={"Message": f"unexpected {path}"})

    def client(self) -> IpfsClient:
        return IpfsClient("http://kubo.test:5001", transport=httpx.MockTransport(self.handler), retries=0)


def test_a_pin_request_carries_the_cid_name_origins_and_bearer_token_and_the_node_connects_to_the_delegates() -> None:
    service, kubo = FakeService(), FakeKubo()
    status = request_pin(service.client(), kubo.client(), "bafyresult", name="tasknet job 1 task 0")
    sent = service.requests[0]
    assert sent.method == "POST" and sent.url.path == "/api/v1/pins"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert json.loads(sent.content) == {"cid": "bafyresult", "name": "tasknet job 1 task 0", "origins": NODE_ADDRS}
    assert status.status == "queued" and status.requestid == "req-1" and status.pin.origins == NODE_ADDRS
    assert kubo.connected == [DELEGATE]


#: kubo's answer when the service's node dialled this node (the origins) at the moment this node dialled the service
#: (the delegates): one TCP connection, both sides TLS clients (seen in tests/network/test_net_pinning.py)
COLLISION = ("connect 12D3KooWService failure: failed to dial: failed to dial 12D3KooWService: all dials failed\n"
             "  * [/ip4/10.77.0.9/tcp/4001] failed to negotiate security protocol: tls: received unexpected "
             "handshake message of type *tls.clientHelloMsg when waiting for *tls.serverHelloMsg")


def test_a_dial_to_the_delegate_that_collides_with_the_services_own_dial_is_dialled_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("oracle.ipfs.COLLISION_PAUSE_S", 0.0)
    service, kubo = FakeService(), FakeKubo(dial_errors=[COLLISION, COLLISION])
    request_pin(service.client(), kubo.client(), "bafydata")
    assert kubo.dials == 3 and kubo.connected == [DELEGATE]


def test_collisions_are_dialled_again_a_bounded_number_of_times_and_other_failures_not_at_all(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("oracle.ipfs.COLLISION_PAUSE_S", 0.0)
    kubo = FakeKubo(dial_errors=[COLLISION] * 10)
    status = request_pin(FakeService().client(), kubo.client(), "bafydata")  # the request stands: origins may do
    assert status.status == "queued" and kubo.connected == [] and kubo.dials == 4  # COLLISION_RETRIES + 1
    refused = FakeKubo(dial_errors=["connect 12D3KooWService failure: failed to dial: connection refused"])
    request_pin(FakeService().client(), refused.client(), "bafydata")
    assert refused.dials == 1 and refused.connected == []


def test_wait_polls_the_request_from_queued_through_pinning_to_pinned() -> None:
    service = FakeService()
    with service.client() as svc:
        rid = svc.add("bafydata").requestid
        final = svc.wait(rid, timeout=10, poll=0.0)
        assert final.status == "pinned" and final.done
        assert [r.method for r in service.requests] == ["POST", "GET", "GET"]
        assert svc.list_pins(cids=["bafydata"]).results[0].requestid == rid


def test_a_wrong_token_is_refused_at_once_with_the_variable_to_fix() -> None:
    service = FakeService()
    with pytest.raises(PinningRefused) as err:
        service.client(token="wrong").add("bafydata")
    assert err.value.status == 401 and err.value.reason == "UNAUTHORIZED"
    assert "HTTP 401 UNAUTHORIZED (Access token is missing or invalid)" in str(err.value)
    assert "$TASKNET_PINNING_TOKEN" in str(err.value)
    assert len(service.requests) == 1  # a 4xx is never retried


def test_a_missing_token_is_reported_before_any_request_naming_the_variable() -> None:
    service = FakeService()
    svc = PinningClient.from_service(PinningService(endpoint="https://pins.example/api/v1", token_env="MY_PINS"),
                                     env={}, transport=httpx.MockTransport(service.handler))
    with pytest.raises(PinningError, match=r"\$MY_PINS is not set"):
        svc.add("bafydata")
    assert service.requests == []


def test_5xx_and_429_answers_are_retried_then_reported_as_unavailable() -> None:
    service = FakeService(answers=[503, 429])
    assert service.client().add("bafydata").status == "queued"  # third try served
    assert len(service.requests) == 3
    down = FakeService(answers=[502] * 10)
    with pytest.raises(PinningUnavailable, match=r"did not answer POST /pins after 3 tries \(HTTP 502 FORCED\)"):
        down.client(retries=2).add("bafydata")


def test_an_endpoint_that_is_not_a_pinning_service_is_named_as_such() -> None:
    def web_page(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>welcome</html>")
    svc = PinningClient("https://example.test", TOKEN, transport=httpx.MockTransport(web_page))
    with pytest.raises(PinningError, match="is the endpoint a Pinning Service API base URL"):
        svc.add("bafydata")


def test_the_result_pinner_pins_locally_then_asks_the_service_and_reports_its_final_word() -> None:
    service, kubo = FakeService(fail_cids={"bafybad"}), FakeKubo()
    pinner = ResultPinner(kubo.client(), remote=service.client(), remote_wait=10)
    for cid in ("bafy1", "bafy2", "bafybad", "bafy1"):  # a CID seen twice is pinned once
        pinner.add(cid, name=f"result {cid}")
    assert pinner.close() == (3, 0)
    assert sorted(kubo.pinned) == ["bafy1", "bafy2", "bafybad"]
    assert pinner.remote is not None
    assert sorted(pinner.remote.pinned) == ["bafy1", "bafy2"] and list(pinner.remote.failed) == ["bafybad"]
    posted = [json.loads(r.content) for r in service.requests if r.method == "POST"]
    assert sorted(p["cid"] for p in posted) == ["bafy1", "bafy2", "bafybad"]
    assert all(p["origins"] == NODE_ADDRS and p["name"] == f"result {p['cid']}" for p in posted)
    assert pinner.remote.summary().startswith("pinning service https://pins.example/api/v1: 2 pinned, 1 failed")


def test_the_result_pinner_keeps_watching_when_the_service_refuses() -> None:
    service, kubo = FakeService(), FakeKubo()
    pinner = ResultPinner(kubo.client(), remote=service.client(token="wrong"))
    pinner.add("bafy1")
    assert pinner.close() == (1, 0)  # pinned on the node all the same
    assert pinner.remote is not None and "HTTP 401" in pinner.remote.failed["bafy1"]


def test_a_profile_naming_a_pinning_service_reaches_every_commands_settings(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKNET_HOME", str(tmp_path))
    save_profile(NetworkProfile(name="lab", chain_id=5, rpc_urls=["http://10.0.0.1:8545"],
                                contracts={"Marketplace": "0x" + "11" * 20},
                                pinning_service=PinningService(endpoint="https://pins.lab/api/v1",
                                                               token_env="LAB_PINS")))
    settings = resolve({"network": "lab"}, env={})
    assert settings.pinning_service == PinningService(endpoint="https://pins.lab/api/v1", token_env="LAB_PINS")
    shown = {name: (value, source) for name, value, source in settings.describe()}
    assert shown["pinning_service"] == ("https://pins.lab/api/v1 (token in $LAB_PINS)", "profile")

