"""A testnet on a private IPFS network (the profile's swarm_key): its nodes exchange content, a node without the
key (or with another key) cannot even connect to them while the same node with the key joins, and kubo refuses to start at all without a key when
LIBP2P_FORCE_PNET is set, which is how tasknet/_kubo.py starts every node of a private network."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from oracle.network import load_profile
from tasknet import _devnet, _kubo
from tasknet._testnet import API_PORT, GATEWAY_PORT, SWARM_PORT, HostInfo, Testnet
from tests.network.net_helpers import ipfs_rpc, peer_id, wait_for

pytestmark = pytest.mark.network


def connected(host: HostInfo) -> set[str]:
    return {p["Peer"] for p in ipfs_rpc(host, "swarm/peers").json().get("Peers") or []}


def cannot_join(outsider: HostInfo, members: list[HostInfo], cid: str) -> None:
    """The outsider's explicit dials fail, nobody is connected to it, and it cannot fetch the members' content."""
    for member in members:
        assert member.ipfs_swarm is not None
        dial = ipfs_rpc(outsider, "swarm/connect", arg=member.ipfs_swarm)
        assert dial.status_code != 200, f"{outsider.name} connected to {member.name}: {dial.text}"
    me = peer_id(outsider)
    assert connected(outsider) == set()
    assert all(me not in connected(m) for m in members)
    with pytest.raises(httpx.HTTPError):  # kubo keeps looking until the request times out
        httpx.post(f"{outsider.ipfs_api}/api/v0/cat", params={"arg": cid}, timeout=5).raise_for_status()


def test_a_testnet_with_a_swarm_key_is_a_private_ipfs_network_that_keeps_outsiders_out(
        make_testnet: Callable[..., Testnet]) -> None:
    key = secrets.token_hex(32)
    tn = make_testnet(hosts=0, swarm_key=key)
    requester, owner, chain = (tn.info.host(n) for n in ("requester", "dataset-owner", "chain"))
    assert load_profile(tn.info.profile).swarm_key == key
    for member in (requester, owner, chain):
        assert (Path(member.state_dir) / "ipfs" / "swarm.key").read_text().split()[-1] == key

    # the members form one network and exchange content
    data = os.urandom(300 << 10)
    cid = ipfs_rpc(owner, "add", files={"file": ("data.bin", data)}, **{"cid-version": "1"}).json()["Hash"]
    wait_for(lambda: peer_id(owner) in connected(requester), "the requester's node to be connected to the owner's")
    assert httpx.post(f"{requester.ipfs_api}/api/v0/cat", params={"arg": cid}, timeout=30).content == data

    # a node without the key: given the same peers, it gets no connection and no content
    outsider = tn.add_service_host("outsider")
    tn.start_kubo(outsider, tn.profile_peers(), private=False)
    assert not (Path(outsider.state_dir) / "ipfs" / "swarm.key").exists()
    time.sleep(2)  # its Peering dials have had their chance
    cannot_join(outsider, [requester, owner], cid)

    # nor a node with another key
    _devnet.stop(outsider.processes["kubo"])
    node = _kubo.start(Path(outsider.state_dir) / "ipfs", Path(outsider.state_dir) / "logs" / "kubo-other-key.log",
                       host=outsider.address, api_port=API_PORT, gateway_port=GATEWAY_PORT, swarm_port=SWARM_PORT,
                       peers=tn.profile_peers(), netns=outsider.netns, swarm_key=secrets.token_hex(32))
    tn.record_process(outsider, "kubo", node.info)
    cannot_join(outsider, [requester, owner], cid)
    _devnet.stop(node.info)

    # the same node given the network's key joins at once (so the key, not the host, kept it out)
    tn.start_kubo(outsider, tn.profile_peers())
    assert requester.ipfs_swarm is not None
    assert ipfs_rpc(outsider, "swarm/connect", arg=requester.ipfs_swarm).status_code == 200
    assert httpx.post(f"{outsider.ipfs_api}/api/v0/cat", params={"arg": cid}, timeout=30).content == data
    _devnet.stop(outsider.processes["kubo"])

    # and with LIBP2P_FORCE_PNET set, kubo refuses to start on a repo that has no key
    (Path(outsider.state_dir) / "ipfs" / "swarm.key").unlink()
    refused = subprocess.run(["ip", "netns", "exec", outsider.netns, _devnet.find_ipfs(), "daemon"],
                             env={"IPFS_PATH": str(Path(outsider.state_dir) / "ipfs"), "LIBP2P_FORCE_PNET": "1",
                                  "PATH": os.environ.get("PATH", "")},
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode != 0
    assert "private network was not configured but is enforced by the environment" in refused.stdout + refused.stderr
