"""A managed IPFS node: a kubo daemon that Tasknet starts online for one role (the devnet, a testnet host, a
worker or requester without a node of its own), on the addresses it is given and with no public bootstrap.

It talks to the network's peers only: those of the profile (kept connected through ``Peering``), on a private
network when the profile names a swarm key. Nothing reaches out to the public IPFS network: no bootstrap list,
no AutoConf, no AutoTLS, no mDNS, no HTTP retrieval, TCP only.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import httpx

from oracle.devnet import ComponentInfo
from oracle.exceptions import DevnetError
from oracle.ipfs import DIAL_TIMEOUT_S, IpfsClient, join_network

from . import _devnet


class KuboNode:
    """A managed kubo: its process record, RPC API URL, gateway URL and swarm multiaddr (with its peer id)."""

    def __init__(self, info: ComponentInfo, api: str, gateway: str, swarm: str) -> None:
        self.info, self.api, self.gateway, self.swarm = info, api, gateway, swarm

    def stop(self) -> None:
        _devnet.stop(self.info)


def init_repo(repo: Path, *, host: str, api_port: int, gateway_port: int, swarm_port: int,
              peers: Sequence[str] = (), swarm_key: str | None = None, api_origins: Sequence[str] = ()) -> None:
    """Create (once) and configure a kubo repo: API, gateway and swarm on ``host``, the given ``peers`` kept
    connected, a private network when ``swarm_key`` (64 hex digits) is given. ``api_origins``: web pages (e.g.
    ``http://127.0.0.1:8000``, a Dapp page) allowed to call the RPC API from a browser (CORS); none by default."""
    ipfs = _devnet.find_ipfs()
    env = {**os.environ, "IPFS_PATH": str(repo)}
    if not (repo / "config").exists():
        repo.mkdir(parents=True, exist_ok=True)
        subprocess.run([ipfs, "init", "--profile", "test", "--empty-repo"], env=env, check=True, capture_output=True)
    path = repo / "config"
    config = json.loads(path.read_text())
    config["Addresses"].update({"API": f"/ip4/{host}/tcp/{api_port}", "Gateway": f"/ip4/{host}/tcp/{gateway_port}",
                                "Swarm": [f"/ip4/{host}/tcp/{swarm_port}"], "Announce": [], "AppendAnnounce": []})
    config["Bootstrap"] = []
    config.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
    config.setdefault("AutoConf", {})["Enabled"] = False
    config.setdefault("AutoTLS", {})["Enabled"] = False
    config.setdefault("HTTPRetrieval", {})["Enabled"] = False
    transports = config["Swarm"].setdefault("Transports", {}).setdefault("Network", {})
    transports.update({"QUIC": False, "WebTransport": False, "WebRTCDirect": False, "Websocket": False,
                       "TCP": True})
    config["Swarm"]["RelayClient"] = {"Enabled": False}
    config["Swarm"]["RelayService"] = {"Enabled": False}
    config["Peering"] = {"Peers": [_peer_entry(p) for p in peers]}
    headers = config["API"].setdefault("HTTPHeaders", {})
    if api_origins:
        headers.update({"Access-Control-Allow-Origin": list(api_origins), "Access-Control-Allow-Methods": ["POST"]})
    else:
        headers.pop("Access-Control-Allow-Origin", None)
        headers.pop("Access-Control-Allow-Methods", None)
    path.write_text(json.dumps(config, indent=2))
    key = repo / "swarm.key"
    if swarm_key:
        key.write_text(f"/key/swarm/psk/1.0.0/\n/base16/\n{swarm_key}\n")
    else:
        key.unlink(missing_ok=True)


def _peer_entry(multiaddr: str) -> dict[str, object]:
    """``/ip4/…/tcp/…/p2p/ID`` as kubo's Peering entry ``{"ID": …, "Addrs": [the address part]}``."""
    address, sep, peer_id = multiaddr.rpartition("/p2p/")
    if not sep or not peer_id:
        raise DevnetError(f"IPFS peer {multiaddr!r} has no '/p2p/<peer id>' part; give the full multiaddr "
                          "(from 'ipfs id' on that node)")
    return {"ID": peer_id, "Addrs": [address] if address else []}


def start(repo: Path, log: Path, *, host: str = "127.0.0.1", api_port: int | None = None,
          gateway_port: int | None = None, swarm_port: int | None = None, peers: Sequence[str] = (),
          swarm_key: str | None = None, netns: str | None = None, api_origins: Sequence[str] = ()) -> KuboNode:
    """Configure ``repo`` and start ``ipfs daemon`` online on it (inside network namespace ``netns`` when given).
    Free ports are picked when none are given (loopback only: in a namespace, pass them)."""
    api_port = api_port or _devnet.free_port()
    gateway_port = gateway_port or _devnet.free_port()
    swarm_port = swarm_port or _devnet.free_port()
    init_repo(repo, host=host, api_port=api_port, gateway_port=gateway_port, swarm_port=swarm_port, peers=peers,
              swarm_key=swarm_key, api_origins=api_origins)
    cmd = [_devnet.find_ipfs(), "daemon"]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    env = {"IPFS_PATH": str(repo)}
    if swarm_key:
        env["LIBP2P_FORCE_PNET"] = "1"  # refuse to start rather than join the public network without the key
    info = _devnet.spawn(cmd, log, env=env)
    api = f"http://{host}:{api_port}"
    _devnet.wait_until(lambda: _devnet.ipfs_healthy(api) is None, info, "kubo (ipfs daemon)", 60)
    dial_peers(api, peers)
    return KuboNode(info, api, f"http://{host}:{gateway_port}", f"/ip4/{host}/tcp/{swarm_port}/p2p/{peer_id(api)}")


def dial_peers(api: str, peers: Sequence[str], timeout: float = DIAL_TIMEOUT_S) -> dict[str, str]:
    """Connect the node at ``api`` to its ``peers`` now (:func:`oracle.ipfs.join_network`), through a client of its
    own: a node Tasknet starts (``Peering`` would dial them only some seconds after the start, and until then the
    node can fetch nothing: a worker would see a job and wait that long for its inputs), or the verifier's before
    it fetches results. Returns the peers missed, with why."""
    with IpfsClient(api, timeout=timeout + 2, retries=0) as ipfs:
        return join_network(ipfs, peers, timeout=timeout)


def peer_id(api: str) -> str:
    answer = httpx.post(f"{api}/api/v0/id", timeout=10)
    answer.raise_for_status()
    return str(answer.json()["ID"])
