"""A worker host's cable is pulled mid-task: its claim expires, another host finishes the task, and what the cut
host published before the cut stays retrievable because the requester's node pinned it as it landed."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from oracle import IpfsClient
from tasknet._testnet import API_PORT, Testnet, link_up, set_link
from tests.network.net_helpers import (
    deposit,
    market,
    register_app,
    results_by_worker,
    submit,
    wait_for,
    watch_in_background,
)

pytestmark = pytest.mark.network
#: enough that worker-1 surely starts a second round of tasks, whatever the two hosts' speeds: each host's worker runs
#: as many tasks at once as the cores it lends hold (its default), here every core of this machine
TASKS = 6 * (os.cpu_count() or 1)


def leases(tn: Testnet, job_id: int, worker: str) -> dict[int, int]:
    """Task index -> lease expiry (chain time) of every R = 1 claim ``worker`` made in the job."""
    out: dict[int, int] = {}
    for e in market(tn).contract.events.TasksClaimed().get_logs(from_block=tn.info.deploy_block,
                                                              argument_filters={"worker": worker}):
        start = e["args"]["startTaskId"]
        if start >> 32 == job_id:
            for index in range(start & 0xFFFFFFFF, (start & 0xFFFFFFFF) + e["args"]["count"]):
                out[index] = int(e["args"]["expiry"])
    return out


def test_a_host_cut_off_mid_task_loses_the_task_to_another_host_and_its_earlier_results_stay_retrievable(
        make_testnet: Callable[..., Testnet], net_app: str, tmp_path: Path) -> None:
    tn = make_testnet(hosts=2)
    deposit(tn)
    app = register_app(tn, net_app)
    cut, other = tn.info.host("worker-1"), tn.info.host("worker-2")
    cut_address = tn.info.account("worker-1").address
    requester_node = IpfsClient(tn.info.host("requester").ipfs_api)
    job = submit(tn, app, "--count", str(TASKS), "--arg", "sleep", "--arg", "3", "--arg", "cut-{index}",
                 "--reward", "0.1", "--max-run", "30s")
    watch = watch_in_background(tn, job, tmp_path / "watch.log", timeout=170)
    try:
        def cut_host_mid_task() -> tuple[list[tuple[int, str]], set[int]] | None:
            """Once worker-1 has a result pinned on the requester's node and holds another task."""
            results = results_by_worker(tn, job)
            published = [(i, cid) for i, w, cid in results if w == cut_address]
            held = set(leases(tn, job, cut_address)) - {i for i, _, _ in results}
            if published and held and all(requester_node.is_pinned(cid) for _, cid in published):
                return published, held
            return None

        published, held = wait_for(cut_host_mid_task, "worker-1 to publish a result and start another task", 90,
                                   every=0.1)
        set_link(cut, up=False)  # the cable is pulled: neither its worker nor its kubo reaches anyone
        with pytest.raises(httpx.TransportError):
            httpx.post(f"http://{cut.address}:{API_PORT}/api/v0/id", timeout=2)

        # the other host finishes everything else, then the cut host's claim runs out (the chain's clock is moved
        # past the lease's expiry rather than waited for: max run + claim grace)
        wait_for(lambda: {i for i, _, _ in results_by_worker(tn, job)} == set(range(TASKS)) - held,
                 "worker-2 to finish the tasks worker-1 does not hold", 90)
        m = market(tn)
        expiry = max(leases(tn, job, cut_address)[i] for i in held)
        m.w3.provider.make_request("evm_increaseTime", [expiry - m.chain_time() + 2])  # type: ignore[arg-type]
        m.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        assert watch.wait(timeout=120) == 0, (tmp_path / "watch.log").read_text()[-3000:]
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()

    results = results_by_worker(tn, job)
    assert sorted(i for i, _, _ in results) == list(range(TASKS))
    other_address = tn.info.account(other.name).address
    assert all(w == other_address for i, w, _ in results if i in held), results  # the other host took it over
    expired = m.contract.events.LeaseExpired().get_logs(from_block=tn.info.deploy_block,
                                                        argument_filters={"worker": cut_address})
    assert sum(e["args"]["undone"] for e in expired) == len(held)  # one lease, or a few when it claimed ahead

    # worker-1 is still cut off: its results are served by the requester's own node, which pinned them
    assert link_up(cut.veth) is False
    assert all(requester_node.is_pinned(cid) for _, cid in published)
    got = tn.tasknet("requester", "result", "get", str(job), str(tmp_path / "results"), "--json", timeout=120)
    assert got.returncode == 0
    for index, _ in published:
        assert f"args: sleep 3 cut-{index}" in (tmp_path / "results" / str(index) / "output" / "result.txt").read_text()
    set_link(cut, up=True)  # plugged back in: its daemon answers SIGTERM at teardown instead of hanging on the chain
