"""The resource provider's ``tasknet worker`` commands on a devnet of real components (anvil, kubo, Docker):
register, stake, run (the daemon), status with earnings, unstake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import test_client_helpers as helpers
from test_client_helpers import E18, as_json, client, register_echo_app, run_worker, tasknet

from oracle import DevnetInfo
from oracle.client import JobSpec, TaskInput
from oracle.market import Market
from oracle.protocol import platform_class_name

app_image = helpers.app_image
devnet_file = helpers.devnet_file
image_registry = helpers.image_registry


def test_register_stake_run_status_and_unstake(devnet_file: Path, app_image: str, w3: Any) -> None:
    info = DevnetInfo.load(devnet_file)
    market = Market(w3, info.contracts["Marketplace"])
    me = info.account("worker-2").address
    assert not market.worker_record(me).flags & 1

    first = as_json("worker", "register", "--as", "worker-2")
    assert first["changed"] and first["address"] == me and first["cores"] >= 1 and first["memoryMB"] > 0
    on_chain = market.worker_record(me)
    assert on_chain.flags & 1 and (on_chain.cores, on_chain.memory_mb) == (first["cores"], first["memoryMB"])
    assert (on_chain.stake, as_json("worker", "register", "--as", "worker-2")["changed"]) == (0, False)
    # the platform class (homogeneous redundancy): the architecture by default, a declared tag on request
    assert platform_class_name(market.contract.functions.platformClassOf(me).call()) == first["platformClass"] != ""
    tagged = as_json("worker", "register", "--as", "worker-2", "--platform-class", "amd64-test")
    assert tagged["changed"] and tagged["platformClass"] == "amd64-test"
    assert platform_class_name(market.contract.functions.platformClassOf(me).call()) == "amd64-test"

    with client(devnet_file, "worker-2") as c:
        c.account.faucet(10 * E18)
    assert "stake of" in tasknet("worker", "stake", "5", "--as", "worker-2").stdout
    assert market.worker_record(me).stake == 5 * E18

    app_id = register_echo_app(devnet_file, app_image)
    requester = client(devnet_file, fund=10 * E18)
    job = requester.jobs.submit(JobSpec(app_id=app_id, tasks=[TaskInput(args=[str(i)]) for i in range(3)],
                                       reward=E18 // 10, max_run_seconds=60))
    with run_worker(devnet_file, "worker-2", Path(info.state_dir) / "workers" / "worker-2"):
        requester.jobs.wait(job.job_id, timeout=90)
    fee = int(market.job_record(job.job_id).fee_bps)
    status = as_json("worker", "status", "--as", "worker-2")
    assert status["registered"] and status["stake"] == 5 * E18 and status["locked"] == 0
    assert status["tasks"]["done"] == 3 and status["running"] == []
    assert status["earned"] == 3 * (E18 // 10 - E18 // 10 * fee // 10_000) == market.balance(me)
    assert status["reputation"] == int(market.worker_record(me).reputation) > 0

    assert "withdraw with --withdraw" in tasknet("worker", "unstake", "2", "--as", "worker-2").stdout
    assert market.worker_record(me).unstaking == 2 * E18
    early = tasknet("worker", "unstake", "--withdraw", "--as", "worker-2", code=1)
    assert "TransactionReverted" in early.stderr and "MarketplaceUnstakeNotReady" in early.stderr, early.stderr
