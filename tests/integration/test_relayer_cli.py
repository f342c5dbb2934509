"""``tasknet relayer run`` as a person starts it: the relayer package served by uvicorn, settings from options
and TASKNET_RELAYER_* variables, paying with the devnet's deployer by default."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import test_client_helpers as helpers

from oracle import DevnetInfo
from tasknet._devnet import free_port

devnet_file = helpers.devnet_file
image_registry = helpers.image_registry


def test_relayer_run_serves_its_api_with_settings_from_the_environment(devnet_file: Path) -> None:
    port = free_port()
    env = {**os.environ, "TASKNET_RELAYER_INTERVAL": "0.25", "TASKNET_RELAYER_PORT": "1"}  # --port wins over env
    proc = subprocess.Popen([sys.executable, "-m", "tasknet.cli", "relayer", "run", "--port", str(port),
                             "--devnet-file", str(devnet_file)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        health = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and health is None and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health is not None, f"no /health answer; exit {proc.poll()}"
        assert health["ok"] and health["relayer"] == DevnetInfo.load(devnet_file).account("deployer").address
        assert health["queued"] == 0 and health["sent"] == 0
        refused = httpx.post(f"http://127.0.0.1:{port}/v1/commits", json={"task_id": 1, "commitment": "0x00",
                                                                         "signature": "0x00"})
        assert refused.status_code == 422
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert f"on http://127.0.0.1:{port} (batches every 0.25 s)" in err, err
