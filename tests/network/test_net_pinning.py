"""Remote pinning through a real IPFS Pinning Service API (IPFS Cluster's pinsvc API on a service host of the
testnet, see pinning_service.py) named by the network profile: `tasknet dataset add` and `tasknet job watch` ask it
to pin, it fetches the content from the client's node alone (its own node has no other peer), and a wrong token is
refused before anything reaches the chain."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasknet._testnet import Testnet
from tests.network.conftest import running_testnet
from tests.network.net_helpers import (
    dataset_blocks,
    deposit,
    holds_locally,
    ipfs_rpc,
    market,
    peer_id,
    register_app,
    results_by_worker,
    submit,
)
from tests.network.pinning_service import TOKEN_ENV, PinningServiceHost, cluster_binary, start_pinning_service

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def pin_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Testnet, PinningServiceHost]]:
    cluster_binary()  # skip before building anything when the service is not installed
    with running_testnet(tmp_path_factory.mktemp("testnet-pinning"), hosts=1, indexer=False) as tn:
        yield tn, start_pinning_service(tn)


def pinned_on_service(svc: PinningServiceHost, cid: str) -> bool:
    return ipfs_rpc(svc.host, "pin/ls", arg=cid, type="recursive").status_code == 200


def diagnosis(tn: Testnet, svc: PinningServiceHost, remote: dict[str, object], stderr: str = "") -> str:
    """What to read when the service did not pin in time (an intermittent failure): the request, who each node is
    connected to, what the service node still wants, the command's log, and the cluster's and the service node's
    logs (the cluster's status polls left out)."""
    owner = tn.info.host("dataset-owner")
    peers = {h.name: [p["Addr"] for p in ipfs_rpc(h, "swarm/peers").json().get("Peers") or []] for h in (owner, svc.host)}
    wants = ipfs_rpc(svc.host, "bitswap/wantlist").json()
    logs = Path(svc.host.state_dir) / "logs"
    cluster = "\n".join(line for line in (logs / "ipfs-cluster.log").read_text(errors="replace").splitlines()
                        if "GET /pins" not in line)[-4000:]
    kubo = (logs / "kubo.log").read_text(errors="replace")[-3000:] if (logs / "kubo.log").exists() else ""
    return (f"remote pin {remote}\npeers {peers}\nservice node wants {wants}\ncommand's log:\n{stderr[-3000:]}\n"
            f"cluster log:\n{cluster}\nservice node's log:\n{kubo}")


def datasets_registered(tn: Testnet) -> int:
    return len(market(tn).registry.events.DatasetRegistered().get_logs(from_block=tn.info.deploy_block))


def test_dataset_add_has_the_pinning_service_fetch_and_pin_the_dataset_from_the_owners_node(
        pin_net: tuple[Testnet, PinningServiceHost], tmp_path: Path) -> None:
    tn, svc = pin_net
    owner = tn.info.host("dataset-owner")
    (tmp_path / "scene.bin").write_bytes(os.urandom(3 << 20))
    done = tn.tasknet("dataset-owner", "dataset", "add", str(tmp_path / "scene.bin"), "--json",
                      env={TOKEN_ENV: svc.token()})
    info = json.loads(done.stdout)
    cid, remote = info["cid"], info["remote_pin"]
    assert remote["status"] == "pinned" and remote["pin"]["cid"] == cid, diagnosis(tn, svc, remote, done.stderr)
    assert remote["pin"]["name"] == "tasknet dataset scene.bin"
    owner_addrs = ipfs_rpc(owner, "id").json()["Addresses"]
    assert remote["pin"]["origins"] == owner_addrs and owner_addrs  # the owner's node, with its /p2p/ID
    assert remote["delegates"] and all(peer_id(svc.host) in d for d in remote["delegates"])

    # the service's own node holds every block, pinned, and got them from the owner's node (its only peer)
    assert pinned_on_service(svc, cid)
    assert all(holds_locally(svc.host, b) for b in dataset_blocks(owner, cid))
    sent = int(ipfs_rpc(owner, "bitswap/ledger", arg=peer_id(svc.host)).json()["Sent"])
    assert sent >= 3 << 20
    listed = svc.pins(cid)
    assert [(p["status"], p["requestid"]) for p in listed] == [("pinned", remote["requestid"])]


def test_job_watch_has_the_pinning_service_pin_every_result_as_it_lands(
        pin_net: tuple[Testnet, PinningServiceHost], net_app: str) -> None:
    tn, svc = pin_net
    deposit(tn)
    app = register_app(tn, net_app)
    job = submit(tn, app, "--count", "3", "--arg", "pinned-{index}", "--reward", "0.1", "--max-run", "30s")
    watched = tn.tasknet("requester", "job", "watch", str(job), "--timeout", "150", env={TOKEN_ENV: svc.token()})

    results = [cid for _, _, cid in results_by_worker(tn, job)]
    assert len(results) == 3
    assert "3 result(s) pinned on your IPFS node" in watched.stdout
    assert f"pinning service {svc.endpoint}: 3 pinned" in " ".join(watched.stdout.split()), watched.stdout
    requester = tn.info.host("requester")
    for index, cid in enumerate(results):
        assert pinned_on_service(svc, cid) and holds_locally(requester, cid)
        [record] = svc.pins(cid)
        assert record["status"] == "pinned" and record["pin"]["name"] == f"tasknet job {job} task {index}"  # type: ignore[index]


def test_a_wrong_token_is_refused_before_the_dataset_reaches_the_chain(
        pin_net: tuple[Testnet, PinningServiceHost], tmp_path: Path) -> None:
    tn, svc = pin_net
    (tmp_path / "other.bin").write_bytes(os.urandom(64 << 10))
    before = datasets_registered(tn)
    done = tn.tasknet("dataset-owner", "dataset", "add", str(tmp_path / "other.bin"), check=False,
                      env={TOKEN_ENV: "not-a-token"})
    message = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 1
    assert f"PinningRefused: the pinning service {svc.endpoint} refused POST /pins: HTTP 401" in message
    assert f"check the token in ${TOKEN_ENV}" in message
    assert datasets_registered(tn) == before
