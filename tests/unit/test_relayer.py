"""The relayer package without a chain: its message models, its settings, and its HTTP API in front of a fake
relayer (which isolates the API's status codes and bodies from the chain); the worker's RelayClient talks to that
API in process, so the two sides agree on the wire format without either importing the other."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from pydantic import ValidationError

from oracle.exceptions import RpcUnavailable
from oracle.protocol import Eip712Domain, commit_message, results_message, reveal_message
from relayer import (
    MessageStatus,
    RelayerSettings,
    RelayRejected,
    SignedCommit,
    SignedMessage,
    SignedResults,
    SignedReveal,
    create_app,
)
from worker._relay import RelayClient, RelayError

WORKER = Account.from_key("0x" + "42" * 32)
DOMAIN = Eip712Domain(chain_id=31337, verifying_contract="0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9")
D32 = "0x" + "ab" * 32
SIG = "0x" + "11" * 65


class FakeRelayer:
    """Records what the API hands it; ``refuse`` makes the next submission fail with that exception."""

    def __init__(self) -> None:
        self.account = WORKER
        self.received: list[tuple[str, SignedMessage]] = []
        self.statuses: dict[int, MessageStatus] = {}
        self.stats = {"accepted": 0, "rejected": 0, "sent": 0, "transactions": 0, "gas": 0}
        self.refuse: Exception | None = None

    def submit(self, kind: str, message: SignedMessage) -> MessageStatus:
        if self.refuse is not None:
            raise self.refuse
        self.received.append((kind, message))
        status = MessageStatus(id=len(self.received), kind=kind, status="queued")
        self.statuses[status.id] = status
        return status

    def queued(self) -> int:
        return len(self.received)


@pytest.fixture
def fake() -> FakeRelayer:
    return FakeRelayer()


@pytest.fixture
def api(fake: FakeRelayer) -> TestClient:
    return TestClient(create_app(fake))  # type: ignore[arg-type]


# -- messages --------------------------------------------------------------------------------------------
def test_messages_become_the_structs_the_contract_takes() -> None:
    results = SignedResults(start_task_id=5, first_task_id=6, result_digests=[D32], result_cids=["bafy"],
                            callback_data=["0xcafe"], signature=SIG)
    assert results.as_tuple() == (5, 6, [bytes.fromhex("ab" * 32)], ["bafy"], [b"\xca\xfe"], bytes.fromhex("11" * 65))
    commit = SignedCommit(task_id=7, commitment=D32, signature=SIG)
    assert commit.as_tuple() == (7, bytes.fromhex("ab" * 32), bytes.fromhex("11" * 65))
    reveal = SignedReveal(task_id=7, result_digest=D32, salt=D32, result_cid="bafy", signature=SIG)
    assert reveal.as_tuple()[4] == b"" and reveal.as_tuple()[3] == "bafy"


@pytest.mark.parametrize(("model", "fields", "msg"), [
    (SignedResults, {"start_task_id": 1, "first_task_id": 1, "result_digests": ["0xab"], "result_cids": ["x"],
                     "signature": SIG}, "expected 32 bytes of hex, got 1"),
    (SignedResults, {"start_task_id": 1, "first_task_id": 1, "result_digests": [], "result_cids": [],
                     "signature": SIG}, "at least 1 item"),
    (SignedCommit, {"task_id": -1, "commitment": D32, "signature": SIG}, "greater than or equal to 0"),
    (SignedCommit, {"task_id": 1, "commitment": "0x00", "signature": SIG}, "expected 32 bytes of hex, got 1"),
    (SignedCommit, {"task_id": 1, "commitment": D32, "signature": "0x" + "11" * 64}, "expected 65 bytes of hex"),
    (SignedReveal, {"task_id": 1, "result_digest": D32, "salt": "0xzz", "result_cid": "x", "signature": SIG},
     "non-hexadecimal"),
    (SignedReveal, {"task_id": 1, "result_digest": D32, "salt": D32, "result_cid": "x", "callback_data": "0xabc",
                    "signature": SIG}, "salt|callback_data"),
])
def test_malformed_messages_are_refused_by_their_model(model: type[SignedMessage], fields: dict[str, Any],
                                                       msg: str) -> None:
    with pytest.raises(ValidationError, match=msg):
        model(**fields)


# -- settings --------------------------------------------------------------------------------------------
def test_settings_come_from_tasknet_relayer_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKNET_RELAYER_INTERVAL", "2.5")
    monkeypatch.setenv("TASKNET_RELAYER_MAX_BATCH", "100")
    s = RelayerSettings()
    assert (s.host, s.port, s.interval, s.max_batch) == ("127.0.0.1", 8600, 2.5, 100)
    assert RelayerSettings(max_batch=7).max_batch == 7  # what the command line gives wins


@pytest.mark.parametrize(("field", "value"), [("max_batch", 0), ("max_batch", 257), ("interval", 0), ("port", 0)])
def test_settings_out_of_range_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        RelayerSettings(**{field: value})


# -- the HTTP API ----------------------------------------------------------------------------------------
def test_an_accepted_message_answers_202_with_its_id(api: TestClient, fake: FakeRelayer) -> None:
    r = api.post("/v1/commits", json={"task_id": 3, "commitment": D32, "signature": SIG})
    assert r.status_code == 202 and r.json() == {"id": 1, "kind": "commits", "status": "queued", "tx": None,
                                                 "error": None, "reason": None}
    assert fake.received[0][0] == "commits" and isinstance(fake.received[0][1], SignedCommit)
    assert api.get("/v1/messages/1").json()["status"] == "queued"


def test_a_message_that_would_revert_answers_422_with_the_contracts_error_name(api: TestClient,
                                                                             fake: FakeRelayer) -> None:
    fake.refuse = RelayRejected("relayCommits reverted with MarketplaceInvalidSignature(...)",
                                "MarketplaceInvalidSignature")
    r = api.post("/v1/commits", json={"task_id": 3, "commitment": D32, "signature": SIG})
    assert r.status_code == 422
    assert r.json()["detail"] == {"error": "MarketplaceInvalidSignature",
                                  "message": "relayCommits reverted with MarketplaceInvalidSignature(...)"}


def test_a_chain_outage_answers_503_with_the_error_type(api: TestClient, fake: FakeRelayer) -> None:
    fake.refuse = RpcUnavailable("cannot reach the JSON-RPC endpoint")
    r = api.post("/v1/reveals", json={"task_id": 3, "result_digest": D32, "salt": D32, "result_cid": "bafy",
                                      "signature": SIG})
    assert r.status_code == 503 and r.json()["detail"]["error"] == "RpcUnavailable"


@pytest.mark.parametrize(("kind", "body"), [
    ("results", {"start_task_id": 1, "first_task_id": 1, "result_digests": ["0x00"], "result_cids": ["x"],
                 "signature": SIG}),
    ("commits", {"task_id": 1, "commitment": "0x00", "signature": SIG}),
    ("reveals", {"task_id": 1, "result_digest": D32, "salt": D32, "result_cid": "x", "signature": "0x00"}),
])
def test_a_malformed_body_is_refused_before_the_relayer_sees_it(api: TestClient, fake: FakeRelayer, kind: str,
                                                                body: dict[str, Any]) -> None:
    r = api.post(f"/v1/{kind}", json=body)
    assert r.status_code == 422 and "bytes of hex, got 1" in r.text and fake.received == []


def test_an_unknown_message_id_answers_404_saying_ids_restart(api: TestClient) -> None:
    r = api.get("/v1/messages/99")
    assert r.status_code == 404 and "ids restart when the relayer restarts" in r.json()["detail"]


def test_health_names_the_relayer_account_and_its_counters(api: TestClient) -> None:
    body = api.get("/health").json()
    assert body["ok"] and body["relayer"] == WORKER.address and body["queued"] == 0 and body["sent"] == 0


# -- the worker's client against the API -----------------------------------------------------------------
@pytest.fixture
def relay_client(api: TestClient) -> RelayClient:
    client = RelayClient("http://testserver/", WORKER, DOMAIN)
    client.http = api  # in process: the TestClient is an httpx.Client
    return client


def test_the_workers_signed_messages_reach_the_relayer_intact(relay_client: RelayClient, fake: FakeRelayer) -> None:
    assert relay_client.results(9, D32, "bafy-r") == 1
    assert relay_client.commit(10, bytes.fromhex("cd" * 32)) == 2
    assert relay_client.reveal(10, D32, "0x" + "ef" * 32, "bafy-v") == 3
    (_, results), (_, commit), (_, reveal) = fake.received
    assert isinstance(results, SignedResults) and isinstance(commit, SignedCommit) and isinstance(reveal, SignedReveal)
    signed = [
        (results_message(DOMAIN, 9, 9, [D32], ["bafy-r"]), results.signature),
        (commit_message(DOMAIN, 10, "0x" + "cd" * 32), commit.signature),
        (reveal_message(DOMAIN, 10, D32, "0x" + "ef" * 32, "bafy-v"), reveal.signature),
    ]
    assert all(Account.recover_message(m, signature=bytes.fromhex(s[2:])) == WORKER.address for m, s in signed)


def test_a_refusal_reaches_the_worker_with_the_error_name(relay_client: RelayClient, fake: FakeRelayer) -> None:
    fake.refuse = RelayRejected("lease expired", "MarketplaceLeaseExpired")
    with pytest.raises(RelayError, match=r"refused the result \(HTTP 422\): lease expired") as info:
        relay_client.results(9, D32, "bafy-r")
    assert info.value.error_name == "MarketplaceLeaseExpired"
