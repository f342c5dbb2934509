"""The worker's side of a relayer (the ``relayer`` package, reached over HTTP only): sign a result, commit or reveal (EIP-712) and hand
it over instead of sending a transaction. The relayer checks each message against the chain before queueing it;
a refusal (HTTP 422) carries the contract's error name. Whether a message landed is read on chain, never taken
from the relayer's word: the pipeline sends the transaction itself when the deadline comes close."""

from __future__ import annotations

from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from pydantic import JsonValue

from oracle import get_logger
from oracle.exceptions import TasknetError
from oracle.protocol import Eip712Domain, sign_commit, sign_results, sign_reveal

log = get_logger("worker.relay")


class RelayError(TasknetError):
    """The relayer refused the message (``error_name`` from the contract) or could not be reached."""

    def __init__(self, message: str, error_name: str | None = None) -> None:
        super().__init__(message)
        self.error_name = error_name


class RelayClient:
    def __init__(self, url: str, account: LocalAccount, domain: Eip712Domain, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.account = account
        self.domain = domain
        self.http = httpx.Client(timeout=timeout)

    def _post(self, kind: str, body: dict[str, JsonValue]) -> int:
        try:
            r = self.http.post(f"{self.url}/v1/{kind}", json=body)
        except httpx.HTTPError as exc:
            raise RelayError(f"relayer {self.url} unreachable: {exc}") from exc
        if r.status_code == 202:
            return int(r.json()["id"])
        detail: Any = None
        try:
            detail = r.json().get("detail")
        except ValueError:
            pass
        name = detail.get("error") if isinstance(detail, dict) else None
        msg = detail.get("message") if isinstance(detail, dict) else (detail or r.text[:300])
        raise RelayError(f"relayer {self.url} refused the {kind[:-1]} (HTTP {r.status_code}): {msg}", name)

    def results(self, tid: int, digest: str, cid: str) -> int:
        """One result of a single-task lease starting at ``tid`` (the worker claims R = 1 tasks one by one)."""
        sig = sign_results(self.account, self.domain, tid, tid, [digest], [cid])
        return self._post("results", {"start_task_id": tid, "first_task_id": tid, "result_digests": [digest],
                                      "result_cids": [cid], "callback_data": [], "signature": "0x" + sig.hex()})

    def commit(self, tid: int, commitment: bytes) -> int:
        sig = sign_commit(self.account, self.domain, tid, commitment)
        return self._post("commits", {"task_id": tid, "commitment": "0x" + commitment.hex(),
                                      "signature": "0x" + sig.hex()})

    def reveal(self, tid: int, digest: str, salt: str, cid: str) -> int:
        sig = sign_reveal(self.account, self.domain, tid, digest, salt, cid, b"")
        return self._post("reveals", {"task_id": tid, "result_digest": digest, "salt": salt, "result_cid": cid,
                                      "callback_data": "0x", "signature": "0x" + sig.hex()})

    def close(self) -> None:
        self.http.close()
