"""A requester on a host of its own whose kubo knows nobody (no Peering, no bootstrap: the network is private to
the testnet, so its node has no way to find anyone) and which is not among the profile's ``ipfs_peers``. Its
``tasknet`` commands connect that node to the profile's peers as they start (oracle.ipfs.join_network): the worker,
peered with those only, fetches the job's input from the newcomer's node, and the newcomer's ``job watch`` pins the
results it fetches back from the worker's."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tasknet._testnet import Testnet
from tests.network.net_helpers import (
    dataset_blocks,
    deposit,
    holds_locally,
    ipfs_rpc,
    peer_id,
    register_app,
    results_by_worker,
    tasknet_json,
)

pytestmark = pytest.mark.network


def test_a_requester_whose_node_knows_nobody_joins_the_network_through_the_profile(
        make_testnet: Callable[..., Testnet], net_app: str, tmp_path: Path) -> None:
    tn = make_testnet(hosts=1)
    deposit(tn)
    app = register_app(tn, net_app)
    lab = tn.add_service_host("lab")
    tn.start_kubo(lab, [])  # its own node: no peers configured at all
    (worker,) = tn.info.workers()
    assert not ipfs_rpc(lab, "swarm/peers").json().get("Peers")

    data = os.urandom(1 << 19)
    (tmp_path / "input.bin").write_bytes(data)
    job = int(tasknet_json(tn, "lab", "job", "submit", "--app", str(app), "--count", "2", "--arg", "lab-{index}",
                           "--input", f"input.bin={tmp_path / 'input.bin'}", "--reward", "0.1", "--max-run", "30s",
                           account="requester")["job_id"])
    connected = {p["Peer"] for p in ipfs_rpc(lab, "swarm/peers").json()["Peers"]}
    assert {peer_id(tn.info.host("requester")), peer_id(tn.info.host("dataset-owner"))} <= connected

    watched = tn.tasknet("lab", "job", "watch", str(job), "--timeout", "120", account="requester")
    assert "2 result(s) pinned on your IPFS node" in watched.stdout, watched.stdout
    results = results_by_worker(tn, job)
    assert sorted(i for i, _, _ in results) == [0, 1]
    # the input was only on the newcomer's node: the worker's node fetched every block of it from there
    added = ipfs_rpc(lab, "add", **{"only-hash": "true", "cid-version": "1", "quieter": "true"},
                     files={"file": ("input.bin", data)})
    assert all(holds_locally(worker, b) for b in dataset_blocks(lab, added.json()["Hash"]))
    # and the results, published on the worker's node, are now in the newcomer's own store
    assert all(holds_locally(lab, cid) for _, _, cid in results)
    tn.tasknet("lab", "result", "get", str(job), str(tmp_path / "results"), account="requester")
    for index in range(2):
        text = (tmp_path / "results" / str(index) / "output" / "result.txt").read_text()
        assert f"in: ./input.bin {len(data)} {hashlib.md5(data).hexdigest()}" in text
