"""A small client for kubo's RPC API (every call is an HTTP POST), with size caps and timeouts."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._log import get_logger
from .exceptions import (
    ContentNotFound,
    ContentNotJson,
    ContentTooLarge,
    IpfsError,
    IpfsOffline,
    IpfsUnavailable,
)

log = get_logger("oracle.ipfs")

#: how long a daemon, or a node as it starts, waits for each of the network's peers to answer a dial
DIAL_TIMEOUT_S = 3.0
#: the same for a user's command, which should not keep its user waiting as long
COMMAND_DIAL_TIMEOUT_S = 2.0
#: what kubo answers when two nodes dialled each other at the same moment (see :meth:`IpfsClient.connect`)
SIMULTANEOUS_OPEN = "failed to negotiate security protocol"
#: how many times :meth:`IpfsClient.connect` dials after such a collision, and the longest pause before each
COLLISION_RETRIES, COLLISION_PAUSE_S = 3, 1.0

DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB


class _KuboAnswer(BaseModel):
    """A kubo RPC answer (PascalCase keys), read as snake_case attributes; keys not named are ignored."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")


class NodeIdentity(_KuboAnswer):
    """``/id``: the node's peer id and the swarm addresses it listens on (with ``/p2p/<id>``)."""

    id: str = Field(alias="ID")
    addresses: list[str] = Field(default_factory=list, alias="Addresses")
    agent_version: str = Field("", alias="AgentVersion")

    @field_validator("addresses", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return [] if value is None else value  # kubo says null when it listens nowhere


class FileStat(_KuboAnswer):
    """``/files/stat`` of a CID: its type (``file``, ``directory``) and sizes in bytes."""

    hash: str = Field(alias="Hash")
    type: str = Field(alias="Type")
    size: int = Field(0, alias="Size")
    cumulative_size: int = Field(0, alias="CumulativeSize")
    blocks: int = Field(0, alias="Blocks")


class IpfsClient:
    """Talks to a kubo daemon's RPC API at ``api_url`` (e.g. ``http://127.0.0.1:5001``).

    Transport errors are retried with a bounded exponential back-off (``retries`` tries, ``backoff`` base);
    a CID that kubo cannot find within ``timeout`` raises :class:`ContentNotFound`.
    """

    def __init__(self, api_url: str, *, timeout: float = 60.0, retries: int = 4, backoff: float = 0.2,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._http = httpx.Client(base_url=self.api_url + "/api/v0", timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------
    def _post(self, path: str, *, params: dict[str, str] | None = None, files: Any = None,
              stream_to: Callable[[httpx.Response], Any] | None = None, timeout: float | None = None) -> Any:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                if stream_to is not None:
                    with self._http.stream("POST", path, params=params, timeout=timeout or self.timeout) as r:
                        self._raise_for(r, path, params)
                        return stream_to(r)
                r = self._http.post(path, params=params, files=files, timeout=timeout or self.timeout)
                self._raise_for(r, path, params)
                return r
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                last = exc
                if attempt < self.retries:
                    time.sleep(self.backoff * 2**attempt)
            except httpx.TimeoutException as exc:
                arg = (params or {}).get("arg", "")
                raise ContentNotFound(
                    f"IPFS {path} {arg}: nothing arrived for {timeout or self.timeout:.0f} s; no reachable node "
                    "provides the content (is the CID right, and is a node that holds it online and connected?)"
                ) from exc
        raise IpfsUnavailable(
            f"cannot reach the IPFS RPC API at {self.api_url} after {self.retries + 1} tries ({last}); "
            "start kubo ('ipfs daemon' or 'tasknet up') or fix the API URL"
        )

    def _raise_for(self, r: httpx.Response, path: str, params: dict[str, str] | None) -> None:
        if r.status_code < 400:
            return
        r.read()
        try:
            message = r.json().get("Message", r.text)
        except (json.JSONDecodeError, ValueError):
            message = r.text
        arg = (params or {}).get("arg", "")
        if "invalid" in message.lower() and "cid" in message.lower() or "failed to parse" in message.lower():
            raise IpfsError(f"IPFS {path}: {arg!r} is not a valid CID ({message})")
        if "not found" in message.lower() or "no link named" in message.lower():
            raise ContentNotFound(f"IPFS {path}: {arg} not found ({message})")
        raise IpfsError(f"IPFS {path} {arg} failed with HTTP {r.status_code}: {message}")

    # -- API ------------------------------------------------------------------------------------
    def id(self) -> NodeIdentity:
        """The node's identity (a cheap health check)."""
        return NodeIdentity.model_validate_json(self._post("/id").content)

    def check_online(self) -> None:
        """Raise :class:`IpfsOffline` when the node runs offline (``ipfs daemon --offline``): it could neither fetch
        what other nodes hold nor serve what it holds, so no role can work through it."""
        try:
            self._post("/swarm/peers")
        except IpfsUnavailable:
            raise
        except IpfsError as exc:
            if "online mode" in str(exc) or "offline" in str(exc):
                raise IpfsOffline(f"the IPFS node at {self.api_url} runs offline: it can neither fetch from other "
                                  "nodes nor serve them; restart it online ('ipfs daemon' without --offline)") from exc
            raise

    def multiaddrs(self) -> list[str]:
        """The node's swarm addresses with ``/p2p/<its id>``: where another node (a pinning service) can fetch
        what this one holds."""
        return list(self.id().addresses)

    def connect(self, multiaddr: str, *, timeout: float = 10.0) -> None:
        """``swarm connect`` to ``multiaddr`` (with ``/p2p/ID``); raises :class:`IpfsError` when it fails.

        Two kubo nodes that dial each other at the same moment collide: libp2p dials from its listening port, so
        both SYNs make one TCP connection (a simultaneous open) on which each side starts the security handshake
        as the client, and both dials fail ("failed to negotiate security protocol"). That happens by design in
        a remote pin: the service dials the ``origins`` while the client dials the ``delegates``. Such a failure
        is dialled again, up to :data:`COLLISION_RETRIES` times after a random pause (``swarm connect`` clears
        the dial backoff the failure left); any other failure is raised at once."""
        for attempt in range(COLLISION_RETRIES + 1):
            try:
                self._post("/swarm/connect", params={"arg": multiaddr}, timeout=timeout)
                return
            except IpfsError as exc:
                if SIMULTANEOUS_OPEN not in str(exc) or attempt == COLLISION_RETRIES:
                    raise
                log.info("ipfs_dial_collided", peer=multiaddr, attempt=attempt + 1)
                time.sleep(random.uniform(0.1, COLLISION_PAUSE_S))

    def dial(self, peers: Sequence[str], *, timeout: float = DIAL_TIMEOUT_S) -> dict[str, str]:
        """Connect this node to each of ``peers`` (multiaddrs with ``/p2p/ID``) now; return those it could not
        reach, with why. A node configured with ``Peering`` dials its peers on its own only after a backoff of some
        seconds, and a node without it never does: until connected it can fetch nothing they hold (a private
        network has no other way to find them), so a daemon dials the network's peers as it starts."""
        missed: dict[str, str] = {}
        me = f"/p2p/{self.id().id}" if peers else ""
        for peer in peers:
            if peer.endswith(me):
                continue  # the node itself (the devnet's profile names its one node)
            try:
                self.connect(peer, timeout=timeout)
            except IpfsError as exc:
                missed[peer] = str(exc)[:300]
        return missed

    def lost(self, peers: Sequence[str]) -> list[str]:
        """Those of ``peers`` (multiaddrs with ``/p2p/ID``) this node is not connected to now, itself left out."""
        if not peers:
            return []
        connected = {*self.peers(), self.id().id}
        return [p for p in peers if p.rpartition("/p2p/")[2] not in connected]

    def peers(self) -> list[str]:
        """The peer ids this node is connected to."""
        return [str(p["Peer"]) for p in self._post("/swarm/peers").json().get("Peers") or []]

    def bandwidth(self) -> dict[str, int]:
        """Bytes this node received and sent over libp2p since it started (``stats/bw``: ``TotalIn``,
        ``TotalOut``), every protocol included."""
        answer = self._post("/stats/bw").json()
        return {"total_in": int(answer.get("TotalIn", 0)), "total_out": int(answer.get("TotalOut", 0))}

    def bitswap_stat(self) -> dict[str, int]:
        """Content this node fetched and served over bitswap since it started (``bitswap/stat``): bytes and
        blocks received (duplicates included) and sent."""
        answer = self._post("/bitswap/stat").json()
        return {"data_received": int(answer.get("DataReceived", 0)), "data_sent": int(answer.get("DataSent", 0)),
                "blocks_received": int(answer.get("BlocksReceived", 0)),
                "blocks_sent": int(answer.get("BlocksSent", 0)), "dup_data_received": int(answer.get("DupDataReceived", 0))}

    def version(self) -> str:
        return str(self._post("/version").json()["Version"])

    def add_bytes(self, data: bytes, *, name: str = "data", pin: bool = True) -> str:
        """Add ``data`` as one file (CIDv1, raw leaves); return its CID."""
        params = {"pin": str(pin).lower(), "cid-version": "1", "quieter": "true"}
        r = self._post("/add", params=params, files={"file": (name, data, "application/octet-stream")})
        return str(json.loads(r.text.strip().splitlines()[-1])["Hash"])

    def add_file(self, path: str | Path, *, pin: bool = True) -> str:
        """Add the file at ``path``; return its CID."""
        p = Path(path)
        params = {"pin": str(pin).lower(), "cid-version": "1", "quieter": "true"}
        with p.open("rb") as fh:
            r = self._post("/add", params=params, files={"file": (p.name, fh, "application/octet-stream")})
        return str(json.loads(r.text.strip().splitlines()[-1])["Hash"])

    def add_json(self, obj: Any) -> str:
        """Add ``obj`` as canonical JSON (sorted keys, no spaces); return its CID."""
        return self.add_bytes(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode(), name="doc.json")

    def cat(self, cid: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float | None = None) -> bytes:
        """Return the content of ``cid``; raise :class:`ContentTooLarge` past ``max_bytes``."""
        def collect(r: httpx.Response) -> bytes:
            buf = bytearray()
            for chunk in r.iter_bytes():
                buf += chunk
                if len(buf) > max_bytes:
                    raise ContentTooLarge(f"IPFS content {cid} is larger than the cap of {max_bytes} bytes")
            return bytes(buf)
        result: bytes = self._post("/cat", params={"arg": cid}, stream_to=collect, timeout=timeout)
        return result

    def cat_to(self, cid: str, dest: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
               timeout: float | None = None, progress: Callable[[int], None] | None = None) -> int:
        """Stream ``cid`` into the file ``dest``; return the byte count. Removes ``dest`` on failure."""
        out = Path(dest)
        def write(r: httpx.Response) -> int:
            n = 0
            with out.open("wb") as fh:
                for chunk in r.iter_bytes():
                    n += len(chunk)
                    if n > max_bytes:
                        raise ContentTooLarge(f"IPFS content {cid} is larger than the cap of {max_bytes} bytes")
                    fh.write(chunk)
                    if progress is not None:
                        progress(len(chunk))
            return n
        try:
            result: int = self._post("/cat", params={"arg": cid}, stream_to=write, timeout=timeout)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        return result

    def cat_json(self, cid: str, *, max_bytes: int = 16 << 20) -> Any:
        data = self.cat(cid, max_bytes=max_bytes)
        try:
            return json.loads(data)
        except json.JSONDecodeError as exc:
            raise ContentNotJson(f"IPFS content {cid} is not valid JSON ({exc})") from exc

    def pin(self, cid: str, *, timeout: float | None = None) -> None:
        """Pin ``cid`` on this node (fetching it from the network first if it does not hold it)."""
        self._post("/pin/add", params={"arg": cid}, timeout=timeout)

    def unpin(self, cid: str) -> bool:
        """Unpin ``cid`` (its blocks go at the next garbage collection); False when it was not pinned."""
        try:
            self._post("/pin/rm", params={"arg": cid})
        except IpfsError as exc:
            if "not pinned" in str(exc):
                return False
            raise
        return True

    def is_pinned(self, cid: str) -> bool:
        try:
            self._post("/pin/ls", params={"arg": cid, "type": "recursive"})
        except IpfsError as exc:
            if "not pinned" in str(exc):
                return False
            raise
        return True

    def stat(self, cid: str, *, timeout: float | None = None) -> FileStat:
        """Size and type of ``cid`` (``files/stat``) without downloading it."""
        return FileStat.model_validate_json(
            self._post("/files/stat", params={"arg": f"/ipfs/{cid}"}, timeout=timeout).content)


def join_network(ipfs: IpfsClient, peers: Sequence[str], *, timeout: float = DIAL_TIMEOUT_S,
                 reported: Collection[str] = ()) -> dict[str, str]:
    """Connect the node ``ipfs`` to the network's peers (a profile's ``ipfs_peers``) now, as every participant's
    node is to be (:meth:`IpfsClient.dial`): what it publishes is then reachable by the others, and what they publish
    by it, without waiting for the node's own discovery (a private network has none). A peer that does not answer
    is logged with what to check (unless ``reported`` already), not fatal. Returns those missed, with why."""
    missed = ipfs.dial(peers, timeout=timeout)
    for peer, error in missed.items():
        if peer in reported:
            continue
        log.warning("ipfs_peer_unreachable", node=ipfs.api_url, peer=peer, error=error,
                    hint="what only that node holds cannot be fetched from here until it answers; check that it "
                         "runs and that its swarm address (the network profile's ipfs_peers) is reachable from here")
    return missed
