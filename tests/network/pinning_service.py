"""A real IPFS Pinning Service API on a host of a test network: IPFS Cluster's ``ipfs-cluster-service`` (built by
scripts/setup) with only its pinsvc API enabled, in front of a managed kubo of its own.

The service host is a namespace on the testnet's bridge (an address of .5-.9, no default route). Its kubo has no
peers at all: it can only get what it is asked to pin through the pin's ``origins`` (which the cluster dials) or a
client's node connecting to the ``delegates`` (its addresses). The cluster is one CRDT peer on TCP only, mDNS
off, no relay; the pinsvc API listens on the host's address with basic-auth credentials, and the Bearer token the
commands use is a JWT from its ``POST /token``.

IPFS Cluster always asks for a NAT port mapping (UPnP multicast from every interface address, NAT-PMP to the
default gateway): the namespace has no gateway, and an iptables OUTPUT policy in it drops everything but unicast to
the testnet's /24, so nothing it sends leaves the testnet.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from oracle.network import PinningService, load_profile, save_profile
from tasknet import _devnet
from tasknet._testnet import HostInfo, Testnet, clean_env, spawn_in

PINSVC_PORT, CLUSTER_PORT = 9097, 9096
TOKEN_ENV = "TASKNET_PINNING_TOKEN"


def cluster_binary() -> str:
    found = shutil.which("ipfs-cluster-service")
    if found is None:
        pytest.skip("ipfs-cluster-service is not installed: run scripts/setup (it builds it from the Go module proxy)")
    return found


@dataclass
class PinningServiceHost:
    host: HostInfo
    endpoint: str
    user: str
    password: str

    def token(self) -> str:
        """A JWT for the Bearer header, issued by the service itself."""
        answer = httpx.post(f"{self.endpoint}/token", auth=(self.user, self.password), timeout=10)
        answer.raise_for_status()
        return str(answer.json()["token"])

    def pins(self, cid: str) -> list[dict[str, object]]:
        """``GET /pins?cid=`` in every state, as the service reports them."""
        answer = httpx.get(f"{self.endpoint}/pins", params={"cid": cid, "status": "queued,pinning,pinned,failed"},
                           auth=(self.user, self.password), timeout=10)
        answer.raise_for_status()
        return list(answer.json()["results"])


def _lock_egress(host: HostInfo, subnet: str) -> None:
    rules = [["iptables", "-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT"],
             ["iptables", "-A", "OUTPUT", "-d", subnet, "-m", "addrtype", "--dst-type", "UNICAST", "-j", "ACCEPT"],
             ["iptables", "-P", "OUTPUT", "DROP"],
             ["ip6tables", "-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT"], ["ip6tables", "-P", "OUTPUT", "DROP"]]
    for rule in rules:
        subprocess.run(["ip", "netns", "exec", host.netns, *rule], check=True, capture_output=True)


def start_pinning_service(tn: Testnet) -> PinningServiceHost:
    """The service host, its kubo and ipfs-cluster-service; the profile names the service (token in
    $TASKNET_PINNING_TOKEN). Everything is recorded in the testnet's state: ``down`` removes it."""
    binary = cluster_binary()
    host = tn.add_service_host("pinning")
    _lock_egress(host, tn.info.subnet)
    tn.start_kubo(host, [])
    config = Path(host.state_dir) / "cluster"
    subprocess.run([binary, "--config", str(config), "init", "--consensus", "crdt"], check=True, capture_output=True)
    doc = json.loads((config / "service.json").read_text())
    doc["cluster"].update({"peername": "pinning", "listen_multiaddress": [f"/ip4/{host.address}/tcp/{CLUSTER_PORT}"],
                           "enable_relay_hop": False, "mdns_interval": "0s", "peer_addresses": []})
    user, password = "tasknet", secrets.token_hex(16)
    doc["api"] = {"pinsvcapi": {**doc["api"]["pinsvcapi"], "basic_auth_credentials": {user: password},
                                "http_listen_multiaddress": f"/ip4/{host.address}/tcp/{PINSVC_PORT}"}}
    doc["ipfs_connector"]["ipfshttp"]["node_multiaddress"] = f"/ip4/{host.address}/tcp/5001"
    doc["consensus"]["crdt"]["trusted_peers"] = ["*"]
    (config / "service.json").write_text(json.dumps(doc, indent=2))
    info = spawn_in(host.netns, [binary, "--config", str(config), "daemon"],
                    Path(host.state_dir) / "logs" / "ipfs-cluster.log", clean_env())
    tn.record_process(host, "ipfs-cluster", info)
    endpoint = f"http://{host.address}:{PINSVC_PORT}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{endpoint}/health", timeout=2).status_code < 300
        except httpx.HTTPError:
            return False
    _devnet.wait_until(healthy, info, "ipfs-cluster-service", 90)
    profile = load_profile(tn.info.profile)
    save_profile(profile.model_copy(update={"pinning_service": PinningService(endpoint=endpoint, token_env=TOKEN_ENV)}))
    return PinningServiceHost(host=host, endpoint=endpoint, user=user, password=password)
