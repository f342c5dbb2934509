"""A client for the IPFS Pinning Service API (https://ipfs.github.io/pinning-services-api-spec/).

A network profile may name a remote pinning service (``pinning_service``: its endpoint and the environment
variable holding the access token, never the token itself). ``tasknet dataset add`` and ``tasknet job watch``
then ask it to pin what they keep on their own node (the dataset, each result), so the content stays available
when that node goes offline too::

    from oracle.pinning import PinningClient

    with PinningClient("https://pins.example/api/v1", token) as svc:
        status = svc.add(cid, name="dataset 3", origins=ipfs.multiaddrs())   # POST /pins: queued
        status = svc.wait(status.requestid, timeout=60)                     # ... pinning -> pinned (or failed)

The service answers every request with a :class:`PinStatus` (``queued``, ``pinning``, ``pinned`` or ``failed``)
naming a request id to poll and the ``delegates``: its own nodes, which the caller's node should connect to so
that the service can fetch the content from it (the ``origins`` the caller gave say where to fetch it from).

Transport errors, 5xx and 429 answers are retried with a bounded back-off (:class:`PinningUnavailable` when the
tries run out); any other 4xx is a :class:`PinningRefused` at once, carrying the service's ``error.reason``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._log import get_logger
from .exceptions import IpfsError, PinningError, PinningRefused, PinningUnavailable
from .ipfs import IpfsClient
from .network import PinningService

log = get_logger("oracle.pinning")

PinState = Literal["queued", "pinning", "pinned", "failed"]
#: the states a request does not leave
FINAL_STATES: frozenset[str] = frozenset({"pinned", "failed"})
#: the spec's caps: at most 20 origins and delegates, a name of at most 255 characters
MAX_ORIGINS, MAX_NAME = 20, 255


def _none_to_list(value: Any) -> Any:
    return [] if value is None else value


class Pin(BaseModel):
    """What to pin: the CID, an optional name, where to fetch it from (``origins``) and free-form ``meta``."""

    model_config = ConfigDict(extra="ignore")

    cid: str
    name: str | None = Field(None, max_length=MAX_NAME)
    origins: list[str] = Field(default_factory=list, max_length=MAX_ORIGINS,
                               description="multiaddrs (with /p2p/ID) of nodes known to hold the content")
    meta: dict[str, str] | None = None

    _origins = field_validator("origins", mode="before")(_none_to_list)


class PinStatus(BaseModel):
    """The service's record of one pin request."""

    model_config = ConfigDict(extra="ignore")

    requestid: str
    status: PinState
    created: datetime
    pin: Pin
    delegates: list[str] = Field(default_factory=list, description="the service's nodes that will fetch the content")
    info: dict[str, str] | None = Field(None, description="the service's notes (the spec's values are strings)")

    _delegates = field_validator("delegates", mode="before")(_none_to_list)

    @field_validator("info", mode="before")
    @classmethod
    def _info_as_text(cls, value: Any) -> Any:
        """A service that puts numbers or booleans in ``info`` is read, not refused: they become text."""
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()} \
            if isinstance(value, dict) else value

    @property
    def done(self) -> bool:
        """Whether the request reached a state it does not leave (``pinned`` or ``failed``)."""
        return self.status in FINAL_STATES


class PinResults(BaseModel):
    """A page of pin requests (``GET /pins``): ``count`` is the total that match, ``results`` this page."""

    model_config = ConfigDict(extra="ignore")

    count: int
    results: list[PinStatus] = Field(default_factory=list)

    _results = field_validator("results", mode="before")(_none_to_list)


class _FailureReason(BaseModel):
    reason: str = ""
    details: str | None = None


class _Failure(BaseModel):
    error: _FailureReason


class PinningClient:
    """Talks to one Pinning Service API ``endpoint`` with a Bearer ``token``.

    ``token_env`` (the variable the token came from) only serves the error messages. ``transport`` replaces the
    HTTP transport (tests).
    """

    def __init__(self, endpoint: str, token: str | None, *, token_env: str | None = None, timeout: float = 30.0,
                 retries: int = 4, backoff: float = 0.25, transport: httpx.BaseTransport | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token_env = token_env
        self.retries, self.backoff = retries, backoff
        self._token = token
        self._http = httpx.Client(base_url=self.endpoint, timeout=timeout, transport=transport,
                                  headers={"Accept": "application/json"})

    @classmethod
    def from_service(cls, service: PinningService, env: Mapping[str, str] | None = None, **kw: Any) -> PinningClient:
        """A client for the profile's ``pinning_service``, its token read from ``service.token_env`` (a missing
        token is reported when the first request is made, so that commands that pin nothing still work)."""
        env = os.environ if env is None else env
        return cls(service.endpoint, env.get(service.token_env) or None, token_env=service.token_env, **kw)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------
    def _where_token(self) -> str:
        return f"${self.token_env}" if self.token_env else "the token you gave"

    def _request(self, method: str, path: str, *, json: Any = None, params: Any = None) -> httpx.Response:
        if not self._token:
            raise PinningError(f"the pinning service {self.endpoint} needs an access token, and "
                               f"{self._where_token()} is not set: set it to your token for that service (the "
                               "network profile names the variable, never the token)")
        headers = {"Authorization": f"Bearer {self._token}"}
        last = ""
        for attempt in range(self.retries + 1):
            try:
                r = self._http.request(method, path, json=json, params=params, headers=headers)
            except httpx.HTTPError as exc:
                last = f"{exc.__class__.__name__}: {exc}"
            else:
                if r.status_code < 400:
                    return r
                reason, details = self._failure(r)
                if r.status_code < 500 and r.status_code != 429:
                    hint = f"check the token in {self._where_token()}" if r.status_code in (401, 403) else \
                        "nothing was retried"
                    raise PinningRefused(f"the pinning service {self.endpoint} refused {method} {path}: HTTP "
                                         f"{r.status_code} {reason}{f' ({details})' if details else ''}; {hint}",
                                         status=r.status_code, reason=reason)
                last = f"HTTP {r.status_code} {reason}"
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise PinningUnavailable(f"the pinning service {self.endpoint} did not answer {method} {path} after "
                                 f"{self.retries + 1} tries ({last}); check the endpoint in the network profile and "
                                 "that the service is up")

    @staticmethod
    def _failure(r: httpx.Response) -> tuple[str, str | None]:
        """The spec's ``{"error": {"reason", "details"}}``, else the body's first line."""
        try:
            failure = _Failure.model_validate_json(r.content)
            return failure.error.reason or r.reason_phrase, failure.error.details
        except ValidationError:
            text = r.text.strip().splitlines()[0][:200] if r.text.strip() else ""
            return r.reason_phrase, text or None

    def _status(self, r: httpx.Response, what: str) -> PinStatus:
        try:
            return PinStatus.model_validate_json(r.content)
        except ValidationError as exc:
            raise PinningError(f"the pinning service {self.endpoint} answered {what} with something that is not a "
                               f"PinStatus ({exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}): {r.text[:200]!r}; "
                               "is the endpoint a Pinning Service API base URL?") from exc

    # -- API ------------------------------------------------------------------------------------
    def add(self, cid: str, *, name: str | None = None, origins: Sequence[str] = (),
            meta: Mapping[str, str] | None = None) -> PinStatus:
        """``POST /pins``: ask the service to pin ``cid``, fetching it from ``origins`` (at most 20 are sent)."""
        pin = Pin(cid=cid, name=name[:MAX_NAME] if name else None, origins=list(origins)[:MAX_ORIGINS],
                  meta=dict(meta) if meta else None)
        r = self._request("POST", "/pins", json=pin.model_dump(exclude_none=True))
        status = self._status(r, "POST /pins")
        log.info("remote_pin_requested", cid=cid, requestid=status.requestid, status=status.status,
                 endpoint=self.endpoint)
        return status

    def get(self, requestid: str) -> PinStatus:
        """``GET /pins/{requestid}``: the request's current status."""
        return self._status(self._request("GET", f"/pins/{requestid}"), f"GET /pins/{requestid}")

    def list_pins(self, *, cids: Iterable[str] = (), status: Iterable[PinState] = (), name: str | None = None,
             limit: int = 10) -> PinResults:
        """``GET /pins``: the requests that match (by default the spec lists ``pinned`` ones only)."""
        params: dict[str, str | int] = {"limit": limit}
        if cids:
            params["cid"] = ",".join(cids)
        if status:
            params["status"] = ",".join(status)
        if name:
            params["name"] = name
        r = self._request("GET", "/pins", params=params)
        try:
            return PinResults.model_validate_json(r.content)
        except ValidationError as exc:
            raise PinningError(f"the pinning service {self.endpoint} answered GET /pins with something that is not "
                               f"a PinResults ({exc.errors()[0]['msg']}): {r.text[:200]!r}") from exc

    def remove(self, requestid: str) -> None:
        """``DELETE /pins/{requestid}``: the service may unpin the content."""
        self._request("DELETE", f"/pins/{requestid}")

    def wait(self, requestid: str, *, timeout: float, poll: float = 0.5, max_poll: float = 5.0) -> PinStatus:
        """Poll the request until it is ``pinned`` or ``failed``, or ``timeout`` seconds passed; return its last
        status (still ``queued`` or ``pinning`` on a timeout: the service keeps working on it)."""
        end = time.monotonic() + timeout
        status = self.get(requestid)
        while not status.done and time.monotonic() < end:
            time.sleep(min(poll, max(0.0, end - time.monotonic())))
            poll = min(poll * 1.5, max_poll)
            status = self.get(requestid)
        return status

    def wait_all(self, requestids: Iterable[str], *, timeout: float, poll: float = 0.5,
                 max_poll: float = 5.0) -> dict[str, PinStatus | PinningError]:
        """:meth:`wait` for several requests within one ``timeout`` in all; a request that cannot be read maps to
        its error."""
        end = time.monotonic() + timeout
        pending = list(dict.fromkeys(requestids))
        out: dict[str, PinStatus | PinningError] = {}
        while pending:
            still: list[str] = []
            for rid in pending:
                try:
                    out[rid] = status = self.get(rid)
                except PinningError as exc:
                    out[rid] = exc
                    continue
                if not status.done:
                    still.append(rid)
            pending = still
            if not pending or time.monotonic() >= end:
                break
            time.sleep(min(poll, max(0.0, end - time.monotonic())))
            poll = min(poll * 1.5, max_poll)
        return out


def request_pin(service: PinningClient, ipfs: IpfsClient, cid: str, *, name: str | None = None,
                origins: Sequence[str] | None = None) -> PinStatus:
    """Ask ``service`` to pin ``cid`` that ``ipfs`` (this client's node) holds: the node's addresses go as the
    ``origins``, and the node then connects to the service's ``delegates`` (best effort, as the spec suggests) so
    that the service can fetch the content from it even when nothing else provides it. The service dials the
    origins at that same moment: a dial that collides with it is dialled again (:meth:`IpfsClient.connect`)."""
    status = service.add(cid, name=name, origins=ipfs.multiaddrs() if origins is None else origins)
    for delegate in status.delegates[:MAX_ORIGINS]:
        try:
            ipfs.connect(delegate)
        except IpfsError as exc:  # the service may still reach us through the origins
            log.warning("remote_pin_delegate_unreachable", delegate=delegate, error=str(exc)[:800],
                        hint="the service fetches the content only if it can reach this node by the origins; "
                             "check that this node's swarm address is reachable from the service")
    return status


class RemotePins(BaseModel):
    """What a pinning service made of the pins a command asked for: CIDs pinned, still under way (``queued`` or
    ``pinning`` when the command stopped waiting: the service keeps working on them) and failed (with the
    reason)."""

    endpoint: str
    pinned: list[str] = Field(default_factory=list)
    pending: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"{len(self.pinned)} pinned"]
        if self.pending:
            parts.append(f"{len(self.pending)} still queued or pinning (the service keeps working on them)")
        if self.failed:
            first = next(iter(self.failed.values()))
            parts.append(f"{len(self.failed)} failed ({first})")
        return f"pinning service {self.endpoint}: " + ", ".join(parts)
