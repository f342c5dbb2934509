"""A worker that must not run says so and stops: a second daemon on one state folder, a banned worker, a worker
staked below the minimum. Real `tasknet worker run` processes on the session's anvil, kubo and Docker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import test_client_helpers as helpers
from test_client_helpers import E18, client

from oracle import DevnetInfo, send
from oracle.market import Market

app_image = helpers.app_image
devnet_file = helpers.devnet_file
image_registry = helpers.image_registry


def _worker(devnet_file: Path, role: str, state: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tasknet.cli", "worker", "run", "--as", role, "--state-dir",
                             str(state), "--devnet-file", str(devnet_file), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 120) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if needle in line:
            return
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"never saw {needle!r} (exit {proc.poll()})")


def test_a_second_worker_on_the_same_state_folder_refuses_to_start(devnet_file: Path, tmp_path: Path) -> None:
    with client(devnet_file, "worker-3") as c:
        c.account.faucet(10 * E18)
    first = _worker(devnet_file, "worker-3", tmp_path / "state", "--stake", "2")
    try:
        _wait_for_line(first, "worker_started")
        second = subprocess.run([sys.executable, "-m", "tasknet.cli", "worker", "run", "--as", "worker-3",
                                 "--state-dir", str(tmp_path / "state"), "--devnet-file", str(devnet_file)],
                                capture_output=True, text=True, timeout=120, check=False)
        assert second.returncode == 1
        assert f"StateDirInUse: another worker (pid {first.pid}) is running on the state folder" in second.stderr
        assert first.poll() is None  # the first one is untouched
    finally:
        first.terminate()
        first.wait(60)
    # once the first has gone, the folder is free again (the kernel released the lock with the process)
    again = _worker(devnet_file, "worker-3", tmp_path / "state")
    try:
        _wait_for_line(again, "worker_started")
    finally:
        again.terminate()
        again.wait(60)


def test_a_banned_worker_claims_nothing_and_exits_with_one_sentence(devnet_file: Path, tmp_path: Path,
                                                                     w3: Any, app_image: str) -> None:
    info = DevnetInfo.load(devnet_file)
    market = Market(w3, info.contracts["Marketplace"])
    me = info.account("worker-4")
    with client(devnet_file, "worker-4") as c:
        c.account.faucet(10 * E18)
    registered = subprocess.run([sys.executable, "-m", "tasknet.cli", "worker", "register", "--as", "worker-4",
                                 "--devnet-file", str(devnet_file)], capture_output=True, text=True, check=False)
    assert registered.returncode == 0, registered.stderr
    owner = info.account("deployer")
    from eth_account import Account

    send(w3, market.contract.functions.setWorkerBanned(me.address, True), Account.from_key(owner.private_key),
         extra_abis=market.error_abis)
    app_id = helpers.register_echo_app(devnet_file, app_image)  # something to claim, if it tried
    with client(devnet_file, fund=10 * E18) as requester:
        from oracle.client import JobSpec

        requester.jobs.submit(JobSpec(app_id=app_id, count=2, args=["{index}"], reward=E18 // 10, max_run_seconds=60))
    nonce = w3.eth.get_transaction_count(me.address)
    proc = subprocess.run([sys.executable, "-m", "tasknet.cli", "worker", "run", "--as", "worker-4", "--stake", "2",
                           "--state-dir", str(tmp_path / "w"), "--devnet-file", str(devnet_file)],
                          capture_output=True, text=True, timeout=180, check=False, env={**os.environ})
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"CannotClaim: worker {me.address} is banned by the marketplace"), last
    assert "tasknet worker status" in last
    # it topped up its stake (3 transactions: approve, deposit, stake), and never sent a claim
    sent = w3.eth.get_transaction_count(me.address) - nonce
    assert sent <= 3 and market.worker_record(me.address).locked == 0
