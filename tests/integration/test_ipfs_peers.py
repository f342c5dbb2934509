"""Two IPFS nodes on loopback: the worker's (the session's kubo) and the requester's own (a managed kubo that
knows the worker's node only as a peer). The requester's `job watch` pins each result on its own node as it
lands, fetched over bitswap from the worker's node; `--no-pin` leaves them where they are."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_client_helpers as helpers
from test_client_helpers import E18, as_json, run_worker, tasknet

from oracle import DevnetInfo, IpfsClient
from tasknet import _devnet, _kubo

app_image = helpers.app_image
devnet_file = helpers.devnet_file
image_registry = helpers.image_registry


@pytest.fixture
def requester_node(ipfs: IpfsClient, tmp_path: Path) -> Iterator[IpfsClient]:
    swarm = _devnet.kubo_swarm(ipfs.api_url)
    assert swarm is not None, "the session's kubo is not online"
    node = _kubo.start(tmp_path / "req-ipfs", tmp_path / "req-kubo.log", peers=[swarm])
    client = IpfsClient(node.api)
    try:
        yield client
    finally:
        client.close()
        node.stop()


def test_job_watch_pins_results_on_the_requesters_own_node(devnet_file: Path, app_image: str, tmp_path: Path,
                                                            requester_node: IpfsClient, ipfs: IpfsClient,
                                                            monkeypatch: Any) -> None:
    app = str(helpers.register_echo_app(devnet_file, app_image))
    helpers.client(devnet_file, fund=10 * E18)
    jobs = [str(as_json("job", "submit", "--app", app, "--count", "2", "--arg", f"job{n}-{{index}}", "--reward",
                        "0.1")["job_id"]) for n in range(2)]  # distinct outputs, so distinct result CIDs
    with run_worker(devnet_file, "worker-1", tmp_path / "w"):
        monkeypatch.setenv("TASKNET_IPFS_API", requester_node.api_url)
        info = DevnetInfo.load(devnet_file)
        key = info.account("requester").private_key
        conn = ["--rpc-url", info.rpc_url, "--marketplace", info.contracts["Marketplace"], "--private-key", key,
                "--ipfs-api", requester_node.api_url]
        pinned = tasknet("job", "watch", jobs[0], "--timeout", "120", *conn)
        unpinned = tasknet("job", "watch", jobs[1], "--timeout", "120", "--no-pin", *conn)
    assert "2 result(s) pinned on your IPFS node" in pinned.stdout, pinned.stdout
    results = {j: [e["args"]["resultCID"] for e in helpers.client(devnet_file).market.contract.events
                   .ResultSubmitted().get_logs(from_block=0) if e["args"]["taskId"] >> 32 == int(j)] for j in jobs}
    assert all(requester_node.is_pinned(cid) for cid in results[jobs[0]])
    assert not any(requester_node.is_pinned(cid) for cid in results[jobs[1]])
    assert all(ipfs.is_pinned(cid) for cid in results[jobs[0]] + results[jobs[1]])  # the worker's node keeps its own
    assert "pinned" not in unpinned.stdout


@pytest.mark.reliability(kind="fault", name="a worker whose IPFS node cannot reach an input",
                         how="a worker on its own kubo, connected to nobody, claims a task whose input only the "
                             "network's node holds: it gives the claim back (a 10 % fee, no slash), avoids the job, "
                             "and a connected worker finishes the task")
def test_an_isolated_worker_gives_its_claim_back_and_a_connected_one_finishes(
        anvil: Any, w3: Any, accounts: Any, market: Any, ipfs: IpfsClient, docker_client: Any, echo_digest: str,
        tmp_path: Path) -> None:
    from oracle.protocol import task_id
    from tests.integration.test_worker import fund_worker, running, settings, wait_for
    from tests.market_helpers import ETHER, fund, post_job, register_app
    from worker import Worker

    lonely = _kubo.start(tmp_path / "lonely-ipfs", tmp_path / "lonely.log")  # no peers: an isolated node
    try:
        app_id = register_app(w3, market, accounts[2], echo_digest)
        fund(w3, market, accounts[1], 10 * ETHER)
        for a in (accounts[4], accounts[5]):
            fund_worker(w3, market, a)
        job = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1, data=b"only on the network's node\n")
        isolated = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "iso", input_stall_s=3)
                          .model_copy(update={"ipfs_api": lonely.api}), docker_client=docker_client)
        given_back = market.contract.events.ClaimAbandoned()
        with running(isolated):
            wait_for(lambda: [e for e in given_back.get_logs(from_block=0) if e["args"]["taskId"] == task_id(job, 0)],
                     what="the isolated worker to give its claim back")
            connected = Worker(settings(anvil, ipfs, market, accounts[5], tmp_path / "net"), docker_client=docker_client)
            with running(connected):
                wait_for(lambda: market.job_record(job).finished == 1, what="the connected worker to finish it")
        iso = market.worker_record(accounts[4].address)
        assert (iso.slashes, iso.locked, iso.stake) == (0, 0, 5 * ETHER - ETHER // 10)
        done = market.contract.events.ResultSubmitted().get_logs(from_block=0)
        assert [e["args"]["worker"] for e in done if e["args"]["taskId"] == task_id(job, 0)] == [accounts[5].address]
        rec = isolated.journal.get(job, 0)
        assert rec is not None and rec.step.name == "ABANDONED" and "InputUnavailable" in str(rec.data["reason"])
    finally:
        lonely.stop()



@pytest.fixture
def swarm(ipfs: IpfsClient) -> str:
    """The session's kubo's swarm address: the network's one peer in these tests."""
    address = _devnet.kubo_swarm(ipfs.api_url)
    assert address is not None, "the session's kubo is not online"
    return address


@dataclasses.dataclass
class Node:
    api: str
    client: IpfsClient


@pytest.fixture
def own_node(ipfs: IpfsClient, tmp_path: Path) -> Iterator[Node]:
    """A participant's own kubo, configured with no peer at all (no Peering, no bootstrap): connected to nobody."""
    node = _kubo.start(tmp_path / "own-ipfs", tmp_path / "own.log")
    client = IpfsClient(node.api)
    try:
        assert ipfs.id().id not in client.peers()
        yield Node(node.api, client)
    finally:
        client.close()
        node.stop()


def test_a_managed_node_is_connected_to_its_peers_when_it_starts(ipfs: IpfsClient, swarm: str, tmp_path: Path
                                                                  ) -> None:
    """kubo's Peering dials a node's peers only after a backoff of some seconds: a node started by Tasknet dials
    them itself, so it can fetch what they hold as soon as it answers (a worker on a fresh testnet host otherwise
    waited seconds for a job's first input). A peer that does not answer is reported, not fatal."""
    # a well-formed peer id no node here has (a kubo of another run), on a port nothing listens on
    nobody = f"/ip4/127.0.0.1/tcp/{_devnet.free_port()}/p2p/12D3KooWGbV96uozayVqXgurHcKuZAiirK4Yr285gJ7KJ4xdhs77"
    node = _kubo.start(tmp_path / "n-ipfs", tmp_path / "n.log", peers=[nobody, swarm])
    try:
        with IpfsClient(node.api) as client:
            assert ipfs.id().id in client.peers()  # connected on return, without waiting for Peering
            cid = ipfs.add_bytes(b"held by the session's node only " + tmp_path.name.encode())
            assert client.cat(cid, timeout=10) == b"held by the session's node only " + tmp_path.name.encode()
            missed = _kubo.dial_peers(node.api, [nobody, swarm], timeout=1.0)
        assert list(missed) == [nobody] and "dial" in missed[nobody].lower(), missed
    finally:
        node.stop()


def test_a_worker_dials_the_networks_peers_as_it_starts(anvil: Any, market: Any, accounts: Any, ipfs: IpfsClient,
                                                        swarm: str, own_node: Node, docker_client: Any,
                                                        tmp_path: Path) -> None:
    """A worker whose own node knows nobody (no Peering, no bootstrap: a private network) connects it to the
    network's IPFS peers (the profile's ``ipfs_peers``) as it starts, and can then fetch what they hold."""
    from tests.integration.test_worker import settings
    from worker import Worker

    Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "w", ipfs_peers=[swarm])
           .model_copy(update={"ipfs_api": own_node.api}), docker_client=docker_client)
    assert ipfs.id().id in own_node.client.peers()
    cid = ipfs.add_bytes(b"an input on the network's node " + tmp_path.name.encode())
    assert own_node.client.cat(cid, timeout=10).startswith(b"an input on the network's node")


def test_a_users_client_connects_its_node_to_the_networks_peers(anvil: Any, market: Any, accounts: Any,
                                                                 ipfs: IpfsClient, swarm: str, own_node: Node,
                                                                 tmp_path: Path) -> None:
    """A requester's (or dataset owner's, or auditor's) command on its own node, which knows nobody, connects it to
    the profile's ``ipfs_peers``: the workers can then fetch what it publishes, and it what they publish. A peer
    that is the node itself (the devnet's profile names its one node) is skipped, not reported."""
    from oracle import Client
    from oracle.settings import Settings

    itself = _devnet.kubo_swarm(own_node.api)
    assert itself is not None
    settings = Settings(rpc_url=anvil.rpc_url, marketplace=market.address, ipfs_api=own_node.api,
                        ipfs_peers=[itself, swarm], private_key="0x" + accounts[1].key.hex().removeprefix("0x"))
    Client.from_settings(settings)
    assert ipfs.id().id in own_node.client.peers()
    assert own_node.client.dial([itself, swarm]) == {}
    cid = own_node.client.add_bytes(b"a job's inputs on the requester's own node " + tmp_path.name.encode())
    assert ipfs.cat(cid, timeout=10).startswith(b"a job's inputs on the requester's own node")


def test_the_auditors_node_joins_the_network_before_it_verifies(anvil: Any, market: Any, ipfs: IpfsClient,
                                                                 swarm: str, own_node: Node, tmp_path: Path,
                                                                 monkeypatch: Any) -> None:
    """``tasknet audit`` and ``tasknet indexer run`` fetch results to verify them: on a network profile, their node
    is connected to the profile's ``ipfs_peers`` first (tasknet._cli_common._resolve, what both commands call)."""
    from oracle.network import NetworkProfile, save_profile
    from tasknet._cli_common import _resolve

    monkeypatch.setenv("TASKNET_HOME", str(tmp_path / "home"))
    for var in ("TASKNET_RPC_URL", "TASKNET_MARKETPLACE", "TASKNET_IPFS_API", "TASKNET_NETWORK"):
        monkeypatch.delenv(var, raising=False)
    save_profile(NetworkProfile(name="lab", chain_id=int(anvil.w3.eth.chain_id), rpc_urls=[anvil.rpc_url],
                                contracts={"Marketplace": market.address}, ipfs_peers=[swarm]))
    rpc, marketplace, _, api = _resolve(None, None, None, None, own_node.api, "lab")
    assert (rpc, marketplace, api) == (anvil.rpc_url, market.address, own_node.api)
    assert ipfs.id().id in own_node.client.peers()


def test_a_running_worker_dials_again_the_network_peer_its_node_lost(anvil: Any, market: Any, accounts: Any,
                                                                     ipfs: IpfsClient, own_node: Node,
                                                                     docker_client: Any, tmp_path: Path) -> None:
    """The network's peer restarts: the worker's own node (no Peering, no bootstrap) would never dial it again
    (kubo does not, in 40 s at least), and would fetch nothing it holds. The running worker looks every
    ``ipfs_peer_check_s`` and dials the lost peer. A peer that never answers (a dead address) does not stop it."""
    from tests.integration.test_worker import fund_worker, running, settings, wait_for
    from worker import Worker

    fund_worker(anvil.w3, market, accounts[6])
    ports = {"api_port": _devnet.free_port(), "gateway_port": _devnet.free_port(), "swarm_port": _devnet.free_port()}
    network = _kubo.start(tmp_path / "net-ipfs", tmp_path / "net.log", **ports)
    dead = f"/ip4/127.0.0.1/tcp/{_devnet.free_port()}/p2p/12D3KooWGbV96uozayVqXgurHcKuZAiirK4Yr285gJ7KJ4xdhs77"
    peer, client = network.swarm.rpartition("/p2p/")[2], own_node.client
    try:
        w = Worker(settings(anvil, ipfs, market, accounts[6], tmp_path / "w", ipfs_peers=[dead, network.swarm],
                            ipfs_peer_check_s=0.5).model_copy(update={"ipfs_api": own_node.api}),
                   docker_client=docker_client)
        assert peer in client.peers()
        with running(w):
            for n in range(2):  # the peer restarts twice: found again twice
                network.stop()
                wait_for(lambda: peer not in client.peers(), what="the connection to drop", timeout=20)
                network = _kubo.start(tmp_path / "net-ipfs", tmp_path / f"net{n}.log", **ports)
                wait_for(lambda: peer in client.peers(), what="the worker to dial the restarted peer", timeout=20)
                cid = IpfsClient(network.api).add_bytes(b"on the restarted peer %d " % n + tmp_path.name.encode())
                assert client.cat(cid, timeout=10).startswith(b"on the restarted peer")
        assert w._unreachable_peers == {dead}
    finally:
        network.stop()
