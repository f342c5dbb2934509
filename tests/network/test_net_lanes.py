"""Lanes across hosts (``batching.lanes`` on every worker host; PROTOCOL.md, "Lanes"): two worker hosts, each with
its own kubo, lease the two lanes of each chunk of an R = 2 job, each publishes its own results on its own node, the
chunks settle at once, and the indexer's host mirrors the job and audits every task from the lanes' roots."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import httpx
import pytest

from tasknet._testnet import INDEXER_PORT, Testnet
from tests.network.net_helpers import (
    deposit,
    holds_locally,
    host_of,
    market,
    register_app,
    results_by_worker,
    submit,
    wait_for,
)

pytestmark = pytest.mark.network


def test_two_worker_hosts_lease_the_lanes_of_each_chunk(make_testnet: Callable[..., Testnet], net_app: str) -> None:
    tn = make_testnet(hosts=2, indexer=True, worker_env={"TASKNET_WORKER_BATCHING__LANES": "true"})
    deposit(tn, 1000)
    app_id = register_app(tn, net_app)
    job = submit(tn, app_id, "--count", "4", "--arg", "lane-{index}", "--replication", "2", "--reward", "0.1",
                 "--max-run", "30s")
    tn.tasknet("requester", "job", "watch", str(job), "--timeout", "180")

    m = market(tn)
    lanes = [e["args"] for e in m.contract.events.LaneClaimed().get_logs(from_block=tn.info.deploy_block)
             if e["args"]["startTaskId"] >> 32 == job]
    assert lanes and sorted({host_of(tn, a["worker"]) for a in lanes}) == ["worker-1", "worker-2"]
    assert not [e for e in m.contract.events.ReplicaClaimed().get_logs(from_block=tn.info.deploy_block)
                if e["args"]["taskId"] >> 32 == job], "a task went the per-task way"
    replicas: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for index, worker, cid in results_by_worker(tn, job):
        replicas[index].append((host_of(tn, worker), cid))
    assert sorted(replicas) == [0, 1, 2, 3]
    for index, reps in replicas.items():
        assert sorted(h for h, _ in reps) == ["worker-1", "worker-2"], f"task {index}: {reps}"
        for host, cid in reps:
            assert holds_locally(tn.info.host(host), cid)

    api = tn.info.host("indexer").url(INDEXER_PORT)
    wait_for(lambda: (r := httpx.get(f"{api}/api/jobs/{job}", timeout=5)).status_code == 200
             and r.json()["finished"] == 4, f"the indexer to mirror job {job}", 60)
    audit = tn.tasknet("indexer", "audit", "job", str(job))
    assert "all checks passed" in audit.stdout, audit.stdout
