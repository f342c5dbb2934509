"""`tasknet demo --hosts` as a user runs it (as root), on a small setting: 4 frames at 64x48, 4 worker hosts (one of
them lying: a disputed frame needs R + 2 = 4 distinct workers), each with its own kubo, the requester, the dataset
owner and the indexer on theirs. The summary's per-host traffic is checked against what each host did, and
everything the demo made (namespaces, links, the bridge, processes, the worker containers, its state and profile)
is gone afterwards."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tasknet import _devnet
from tasknet._testnet import link_exists, netns_exists, tasknet_cmd
from tests.network.conftest import _cannot_run

pytestmark = pytest.mark.network

EXAMPLE_SCENE = Path(__file__).resolve().parents[2] / "examples" / "povray" / "scene.pov"


def test_demo_on_hosts_reports_each_hosts_traffic_and_leaves_nothing_behind(tmp_path: Path, docker_client: Any) -> None:
    reason = _cannot_run()
    if reason:
        pytest.skip(reason)
    home, out = tmp_path / "home", tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKNET_")}
    env.update({"TASKNET_HOME": str(home), "COLUMNS": "160"})
    r = subprocess.run(tasknet_cmd("demo", "--hosts", "--frames", "4", "--workers", "4", "--no-crash", "--size",
                                   "64x48", "--out", str(out)), env=env, capture_output=True, text=True, timeout=900,
                       check=False)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "demo passed" in r.stdout and "testnet down" in r.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["audit"]["passed"] and summary["audit"]["tasks"] == 4
    liar = next(w for w in summary["workers"] if w["kind"] == "liar")
    assert liar["slashes"] >= 1 and all(w["slashes"] == 0 for w in summary["workers"] if w["kind"] == "honest")

    hosts = {row["host"]: row for row in summary["hosts"]}
    assert sorted(hosts) == ["chain", "dataset-owner", "indexer", "requester", "worker-1", "worker-2", "worker-3",
                             "worker-4"]
    for row in hosts.values():  # the table shows every host's figures
        assert row["host"] in r.stdout and row["address"] in r.stdout
    # the scene was only on the dataset owner's node: it served it, and fetched nothing itself
    assert hosts["dataset-owner"]["served_bytes"] >= EXAMPLE_SCENE.stat().st_size
    assert hosts["dataset-owner"]["fetched_bytes"] == 0
    # every worker that claimed fetched its inputs from the others and served its results
    for w in summary["workers"]:
        if w["claims"]:
            row = hosts[w["worker"]]
            assert row["fetched_bytes"] > 0 and row["served_bytes"] > 0, row
    # the requester pinned every result it got, and the auditor fetched them through the indexer's node
    assert hosts["requester"]["blocks_fetched"] >= 4 and hosts["indexer"]["blocks_fetched"] >= 4
    assert hosts["chain"]["fetched_bytes"] == hosts["chain"]["served_bytes"] == 0
    # a closed network: every byte a host fetched another host of the testnet served
    fetched = sum(row["fetched_bytes"] for row in hosts.values())
    served = sum(row["served_bytes"] for row in hosts.values())
    assert served > 0 and abs(fetched - served) <= 0.02 * served, (fetched, served)
    assert all(row["swarm_in_bytes"] > 0 and row["swarm_out_bytes"] > 0 for row in hosts.values())

    # nothing left behind
    testnet = summary["testnet"]
    assert not testnet["kept"]
    left = [ns for ns in testnet["namespaces"] if netns_exists(ns) or link_exists(f"{ns}-v")]
    left += [testnet["bridge"]] if link_exists(testnet["bridge"]) else []
    left += [f"pid {p}" for p in testnet["pids"] if _devnet.pid_alive(p)]
    assert not left, f"the demo left {left} behind"
    assert not (home / "demo-hosts").exists() and not (home / "networks" / "demo-hosts.json").exists()
    from worker import sandbox_owner

    for w in summary["workers"]:
        owner = sandbox_owner(w["address"], home / "demo-hosts" / "hosts" / w["worker"] / "worker")
        selector = {"label": f"tasknet.sandbox={owner}"}
        assert docker_client.containers.list(all=True, filters=selector) == []
        assert docker_client.volumes.list(filters=selector) == []
    # the hosts' logs were kept with the frames
    assert (out / "hosts" / "worker-1" / "worker.log").stat().st_size > 0
    assert Path(summary["logs"]["indexer"]).is_file()
