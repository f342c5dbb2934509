"""A worker host that joins after the job was posted, knowing nothing but the network profile: its kubo's only
bootstrap is the profile's ipfs_peers, through which it fetches the inputs from the requester's node and serves
its results back."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from oracle.network import load_profile
from tasknet._testnet import Testnet
from tests.network.net_helpers import (
    dataset_blocks,
    deposit,
    holds_locally,
    ipfs_rpc,
    peer_id,
    register_app,
    results_by_worker,
    submit,
)

pytestmark = pytest.mark.network


def test_a_worker_host_joining_after_the_job_finds_its_peers_in_the_profile_and_runs_the_tasks(
        make_testnet: Callable[..., Testnet], net_app: str, tmp_path: Path) -> None:
    tn = make_testnet(hosts=0)  # no worker host yet
    deposit(tn)
    app = register_app(tn, net_app)
    data = os.urandom(1 << 20)
    (tmp_path / "input.bin").write_bytes(data)
    job = submit(tn, app, "--count", "3", "--arg", "late-{index}", "--input", f"input.bin={tmp_path / 'input.bin'}",
                 "--reward", "0.1", "--max-run", "30s")
    assert results_by_worker(tn, job) == [] and not tn.info.workers()

    late = tn.add_worker()  # after the job: a namespace, a kubo bootstrapped from the profile, a worker daemon
    profile = load_profile(tn.info.profile)
    config = json.loads((Path(late.state_dir) / "ipfs" / "config").read_text())
    assert config["Bootstrap"] == []
    assert sorted(p["ID"] for p in config["Peering"]["Peers"]) == sorted(a.rsplit("/p2p/", 1)[1]
                                                                         for a in profile.ipfs_peers)
    tn.tasknet("requester", "job", "watch", str(job), "--timeout", "120")

    results = results_by_worker(tn, job)
    assert [(i, w) for i, w, _ in results] == [(i, tn.info.account(late.name).address) for i in range(3)]
    connected = {p["Peer"] for p in ipfs_rpc(late, "swarm/peers").json()["Peers"]}
    bootstrap = {peer_id(tn.info.host("requester")), peer_id(tn.info.host("dataset-owner"))}
    assert bootstrap <= connected
    tn.tasknet("requester", "result", "get", str(job), str(tmp_path / "results"))
    for index in range(3):
        text = (tmp_path / "results" / str(index) / "output" / "result.txt").read_text()
        assert f"in: ./input.bin {len(data)} {hashlib.md5(data).hexdigest()}" in text
    # the input it ran on came from the requester's node (the only one that had it) into its own
    requester = tn.info.host("requester")
    added = ipfs_rpc(requester, "add", **{"only-hash": "true", "cid-version": "1", "quieter": "true"},
                     files={"file": ("input.bin", data)})
    blocks = dataset_blocks(requester, added.json()["Hash"])
    assert all(holds_locally(late, b) for b in blocks)
