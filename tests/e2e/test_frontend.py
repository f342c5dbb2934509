"""examples/frontend/post-job.mjs (ethers v6 + the devnet's Truffle artifacts) run with node, as a dapp would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import test_client_helpers as helpers
from test_client_helpers import E18, client, drive_worker, enroll, register_echo_app, run_worker

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "frontend" / "post-job.mjs"
NODE = shutil.which("node")

app_image = helpers.app_image
devnet_file = helpers.devnet_file
image_registry = helpers.image_registry

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def wallet(devnet_file: Path) -> None:
    """Tokens in the requester's wallet, as 'tasknet up' gives every dev account."""
    with client(devnet_file) as c:
        c.account.faucet(100 * E18)


def node(devnet_file: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(NODE), str(SCRIPT), "--devnet", str(devnet_file), *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_node_script_posts_a_job_and_prints_the_result_cid(devnet_file: Path, app_image: str,
                                                           tmp_path: Path) -> None:
    app_id = register_echo_app(devnet_file, app_image, price=E18 // 100)
    wallet(devnet_file)
    with run_worker(devnet_file, "worker-1", tmp_path / "worker"):
        code, out, err = finish(node(devnet_file, "--app", str(app_id), "--count", "2", "--args", "hello,{index}",
                                     "--reward", "0.2", "--timeout", "90"))
    assert code == 0, err
    doc = json.loads(out)
    assert [r["index"] for r in doc["results"]] == [0, 1]
    with client(devnet_file) as c:  # the Python SDK agrees, and the CID holds what the digest says
        status = c.jobs.get(doc["jobId"])
        assert status.escrow_left == 0 and status.progress.finalized == 2 and status.inputs_cid == doc["inputsCID"]
        results = c.results.download(doc["jobId"], tmp_path / "out")
    assert [r.cid for r in results] == [r["cid"] for r in doc["results"]]
    assert [r.digest for r in results] == [r["digest"].removeprefix("0x") for r in doc["results"]]
    assert (tmp_path / "out" / "1" / "output" / "result.txt").read_text() == "args: hello 1\n"


def test_node_script_waits_for_task_finalized_when_replicated(devnet_file: Path, app_image: str, tmp_path: Path,
                                                              w3: Web3, accounts: list[Any]) -> None:
    app_id = register_echo_app(devnet_file, app_image)
    wallet(devnet_file)
    proc = node(devnet_file, "--app", str(app_id), "--replication", "3", "--reward", "0.1", "--args", "x")
    workers = accounts[4:7]
    with client(devnet_file) as c:
        for w in workers:
            enroll(w3, c.market, w)
        end = time.monotonic() + 30
        while not c.jobs.list() and time.monotonic() < end:
            time.sleep(0.1)
        assert c.jobs.list(), proc.stderr.read() if proc.poll() is not None and proc.stderr else "no job posted"
        drive_worker(w3, c.market, c.ipfs, workers, 1, tmp_path, liars=1)
        code, out, err = finish(proc)
        assert code == 0, err
        doc = json.loads(out)
        tasks = c.jobs.tasks(doc["jobId"])
    assert tasks[0].state == "finalized" and doc["results"][0]["digest"] == tasks[0].digest
    assert doc["results"][0]["cid"] in {ev["args"]["resultCID"] for ev in _reveals(w3, c, tasks[0].digest)}


def _reveals(w3: Web3, c: Any, digest: str | None) -> list[Any]:
    logs = c.market.contract.events.ResultRevealed().get_logs(from_block=0)
    return [e for e in logs if "0x" + bytes(e["args"]["resultDigest"]).hex() == digest]


def test_node_script_reports_decoded_reverts_and_bad_input(devnet_file: Path, app_image: str) -> None:
    app_id = register_echo_app(devnet_file, app_image)
    wallet(devnet_file)
    code, _out, err = finish(node(devnet_file, "--app", str(app_id), "--max-run", "0"))
    assert code == 1 and "MarketplaceInvalidMaxRun(0)" in err, err
    code, _out, err = finish(node(devnet_file, "--app", "99"))
    assert code == 1 and "no app 99" in err, err
