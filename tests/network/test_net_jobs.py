"""Jobs across hosts of one testnet (2 worker hosts and an indexer host, each with its own kubo): the dataset comes
from its owner's node alone, replicas from two hosts, and the indexer's host audits what it mirrored."""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from tasknet._testnet import INDEXER_PORT, Testnet
from tests.network.net_helpers import (
    dataset_blocks,
    deposit,
    holds_locally,
    host_of,
    ipfs_rpc,
    market,
    peer_id,
    register_app,
    results_by_worker,
    submit,
    tasknet_json,
    wait_for,
)

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def app_id(shared_net: Testnet, net_app: str) -> int:
    deposit(shared_net, 1000)
    return register_app(shared_net, net_app)


def test_every_worker_fetches_the_dataset_from_its_owners_node_and_the_requester_never_holds_it(
        shared_net: Testnet, app_id: int, tmp_path: Path) -> None:
    tn = shared_net
    owner, requester = tn.info.host("dataset-owner"), tn.info.host("requester")
    data = os.urandom(20 << 20)
    (tmp_path / "dataset.bin").write_bytes(data)
    dataset = tasknet_json(tn, "dataset-owner", "dataset", "add", str(tmp_path / "dataset.bin"))
    blocks = dataset_blocks(owner, dataset["cid"])
    assert len(blocks) > 70 and all(holds_locally(owner, b) for b in blocks)
    assert not any(holds_locally(h, blocks[0]) for h in tn.info.hosts.values() if h is not owner)

    job = submit(tn, app_id, "--dataset", str(dataset["dataset_id"]), "--count", "6", "--arg", "sleep", "--arg", "1",
                 "--arg", "{index}", "--reward", "0.1", "--max-run", "60s")
    tn.tasknet("requester", "job", "watch", str(job), "--timeout", "150")
    tn.tasknet("requester", "result", "get", str(job), str(tmp_path / "results"))

    expected = f"in: ./dataset {len(data)} {hashlib.md5(data).hexdigest()}"
    for index in range(6):
        assert expected in (tmp_path / "results" / str(index) / "output" / "result.txt").read_text()
    workers = [tn.info.host(h) for h in sorted({host_of(tn, w) for _, w, _ in results_by_worker(tn, job)})]
    assert [w.name for w in workers] == ["worker-1", "worker-2"]  # both hosts ran tasks
    sent = {}
    for w in workers:  # each worker host's node holds the whole dataset, and got it over bitswap from the owner's
        assert all(holds_locally(w, b) for b in blocks), f"{w.name} misses blocks of the dataset"
        sent[w.name] = int(ipfs_rpc(owner, "bitswap/ledger", arg=peer_id(w)).json()["Sent"])
    # (a worker may get some blocks from another worker that fetched them first: bitswap asks every peer)
    assert all(n > 0 for n in sent.values()) and sum(sent.values()) >= len(data), sent
    assert not any(holds_locally(requester, b) for b in blocks), "the requester's node holds dataset blocks"


def test_each_tasks_two_replicas_come_from_two_worker_hosts(shared_net: Testnet, app_id: int) -> None:
    tn = shared_net
    job = submit(tn, app_id, "--count", "3", "--arg", "replicated-{index}", "--replication", "2", "--reward", "0.1",
                 "--max-run", "30s")
    tn.tasknet("requester", "job", "watch", str(job), "--timeout", "150")

    replicas: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for index, worker, cid in results_by_worker(tn, job):
        replicas[index].append((host_of(tn, worker), cid))
    assert sorted(replicas) == [0, 1, 2]
    for index, reps in replicas.items():
        assert sorted(h for h, _ in reps) == ["worker-1", "worker-2"], f"task {index}: {reps}"
        for host, cid in reps:  # each replica was published on its own host's node
            assert holds_locally(tn.info.host(host), cid)
    finalized = [e for e in market(tn).contract.events.TaskFinalized().get_logs(from_block=tn.info.deploy_block)
                 if e["args"]["taskId"] >> 32 == job]
    assert sorted((e["args"]["taskId"] & 0xFFFFFFFF, e["args"]["winners"]) for e in finalized) == \
        [(0, 2), (1, 2), (2, 2)]


def test_the_indexer_on_its_own_host_mirrors_the_chain_and_the_audit_passes_there(shared_net: Testnet,
                                                                                   app_id: int) -> None:
    tn = shared_net
    indexer = tn.info.host("indexer")
    job = submit(tn, app_id, "--count", "2", "--arg", "audited-{index}", "--replication", "2", "--reward", "0.1",
                 "--max-run", "30s")
    tn.tasknet("requester", "job", "watch", str(job), "--timeout", "150")

    api = indexer.url(INDEXER_PORT)
    mirrored = wait_for(lambda: (r := httpx.get(f"{api}/api/jobs/{job}", timeout=5)).status_code == 200
                        and r.json()["finished"] == 2 and r.json(), f"the indexer to mirror job {job}", 60)
    assert mirrored["replication"] == 2 and mirrored["requester"] == tn.info.account("requester").address

    audit = tn.tasknet("indexer", "audit", "job", str(job))  # on the indexer's host, with its own kubo
    assert "all checks passed" in audit.stdout, audit.stdout
    results = [cid for _, _, cid in results_by_worker(tn, job)]
    assert all(holds_locally(indexer, cid) for cid in results)  # the auditor fetched them over the network
    served = httpx.get(f"{api}/audit/jobs/{job}", timeout=60).json()
    assert served["passed"] is True
