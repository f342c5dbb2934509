"""A requester's own contract (contracts/examples/ExampleConsumer.sol) receives results through the callback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import test_client_helpers as helpers
from test_client_helpers import E18, client, enroll, produce, register_echo_app, run_worker
from web3 import Web3
from web3.logs import DISCARD

from oracle import deploy, send
from oracle.client import JobSpec
from oracle.market import JobView
from oracle.protocol import task_id

REPO = Path(__file__).resolve().parents[2]
app_image = helpers.app_image
devnet_file = helpers.devnet_file
image_registry = helpers.image_registry


def test_example_script_lands_the_real_workers_result_in_the_consumer(devnet_file: Path, app_image: str,
                                                                      tmp_path: Path) -> None:
    app_id = register_echo_app(devnet_file, app_image)
    with client(devnet_file) as c:
        c.account.faucet(10 * E18)
    env = {**os.environ, "TASKNET_DEVNET_FILE": str(devnet_file)}
    with run_worker(devnet_file, "worker-1", tmp_path / "worker"):
        r = subprocess.run([sys.executable, str(REPO / "examples/consumer/consume.py"), "--app", str(app_id),
                            "--args", "7,x", "--timeout", "90"], capture_output=True, text=True, env=env, timeout=120,
                           check=False)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    with client(devnet_file) as c:
        final = c.jobs.tasks(out["jobId"])[0]
        results = c.results.download(out["jobId"], tmp_path / "out")
    assert out["delivered"] == 1 and out["digest"] == final.digest == "0x" + results[0].digest
    assert (tmp_path / "out" / "0" / "output" / "result.txt").read_text() == "args: 7 x\n"


def test_callback_data_from_the_worker_is_stored_on_chain(devnet_file: Path, app_image: str, w3: Web3,
                                                          accounts: list[Any], tmp_path: Path) -> None:
    app_id = register_echo_app(devnet_file, app_image)
    c = client(devnet_file, fund=2 * E18)
    consumer = deploy(w3, "ExampleConsumer", c.market.address, sender=c.signer)
    job = c.jobs.submit(JobSpec(app_id=app_id, reward=E18, callback=consumer.address))
    worker = accounts[4]
    enroll(w3, c.market, worker)
    view = JobView.from_event(dict(c.market.contract.events.JobPosted().get_logs(from_block=0)[0]["args"]))
    digest, cid = produce(c.ipfs, view, 0, tmp_path)
    tid = task_id(job.job_id, 0)
    fns = c.market.contract.functions
    send(w3, fns.claim(tid), worker, extra_abis=c.market.error_abis)
    receipt = send(w3, fns.submit(tid, digest, cid, b"price=42"), worker, extra_abis=c.market.error_abis)
    delivered = c.market.contract.events.CallbackDelivered().process_receipt(receipt, errors=DISCARD)
    assert delivered[0]["args"]["success"]
    assert consumer.functions.digestOf(tid).call() == digest
    assert consumer.functions.dataOf(tid).call() == b"price=42"
    events = [e.name for e in c.jobs.watch(job.job_id, timeout=5)]
    assert events == ["JobPosted", "TasksClaimed", "ResultSubmitted", "JobClosed", "CallbackDelivered"]
