"""`tasknet up / status / down` as a user runs them: real processes, a private TASKNET_HOME."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from oracle import DevnetInfo
from tasknet._devnet import free_port, pid_alive

TASKNET = [sys.executable, "-m", "tasknet.cli"]


def run(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TASKNET, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TASKNET_HOME": str(home), "COLUMNS": "200", **(env or {})})


@pytest.fixture
def home(tmp_path: Path, docker_client) -> Path:  # docker_client: the engine is up, so 'up' reuses it
    yield tmp_path
    run(tmp_path, "down")


def test_up_status_down_lifecycle(home: Path) -> None:
    port = free_port()
    r = run(home, "up", "--rpc-port", str(port))
    assert r.returncode == 0, r.stderr
    info = DevnetInfo.load(home / "devnet" / "devnet.json")
    assert info.rpc_url == f"http://127.0.0.1:{port}" and info.chain_id == 31337
    assert set(info.contracts) >= {"TestToken"}
    assert {a.role for a in info.accounts} >= {"deployer", "requester", "worker-1"}
    assert not info.components["dockerd"].started  # an engine already answered: reused, never stopped
    art = json.loads((home / "devnet" / "artifacts" / "TestToken.json").read_text())
    assert art["networks"]["31337"]["address"] == info.contracts["TestToken"]
    # the devnet is a network profile like any other, its kubo online (no public bootstrap) so peers can join
    profile = json.loads((home / "networks" / "devnet.json").read_text())
    assert profile["rpc_urls"] == [info.rpc_url] and profile["contracts"] == info.contracts
    assert len(profile["ipfs_peers"]) == 1 and profile["ipfs_peers"][0].startswith("/ip4/127.0.0.1/tcp/")
    assert json.loads((home / "networks" / "devnet" / "artifacts" / "Marketplace.json").read_text())[
        "networks"]["31337"]["address"] == info.contracts["Marketplace"]

    s = run(home, "status", "--json")
    assert s.returncode == 0, s.stdout + s.stderr
    assert all(c["healthy"] for c in json.loads(s.stdout))

    pids = [c.pid for c in info.components.values() if c.started]
    assert pids and all(pid_alive(p) for p in pids)
    d = run(home, "down")
    assert d.returncode == 0 and "anvil" in d.stdout
    assert not any(pid_alive(p) for p in pids)
    assert not (home / "devnet" / "devnet.json").exists()
    assert not (home / "networks" / "devnet.json").exists()


def test_second_up_is_refused_while_one_runs(home: Path) -> None:
    assert run(home, "up", "--rpc-port", str(free_port())).returncode == 0
    r = run(home, "up", "--rpc-port", str(free_port()))
    assert r.returncode == 1
    assert "DevnetError: a devnet is already running" in r.stderr and "tasknet down" in r.stderr


def test_stale_devnet_file_is_reported_and_down_cleans_it(home: Path) -> None:
    assert run(home, "up", "--rpc-port", str(free_port())).returncode == 0
    info = DevnetInfo.load(home / "devnet" / "devnet.json")
    os.kill(info.components["anvil"].pid, signal.SIGKILL)
    s = run(home, "status")
    assert s.returncode == 1 and "unhealthy" in s.stdout
    r = run(home, "up", "--rpc-port", str(free_port()))
    assert r.returncode == 1 and "stale" in r.stderr and "tasknet down" in r.stderr
    assert run(home, "down").returncode == 0
    assert run(home, "up", "--rpc-port", str(free_port())).returncode == 0


def test_port_in_use_is_a_clear_error_and_nothing_is_left_behind(home: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run(home, "up", "--rpc-port", str(port))
    assert r.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in r.stderr and "--rpc-port" in r.stderr
    assert not (home / "devnet" / "devnet.json").exists()


def test_missing_binary_is_a_clear_error_and_nothing_half_started(home: Path) -> None:
    port = free_port()
    r = run(home, "up", "--rpc-port", str(port), env={"TASKNET_IPFS": str(home / "no-such-ipfs")})
    assert r.returncode == 1
    assert "kubo's 'ipfs' binary not found" in r.stderr and "scripts/setup" in r.stderr
    assert not (home / "devnet" / "devnet.json").exists()
    # the anvil started before kubo failed was stopped again
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_status_without_devnet_says_how_to_start_one(home: Path) -> None:
    r = run(home, "status")
    assert r.returncode == 1 and "tasknet up" in r.stderr


def test_ipfs_api_origin_opens_the_devnet_kubo_api_to_those_web_pages_only(home: Path) -> None:
    """``tasknet up --ipfs-api-origin``: the devnet's kubo answers a browser's cross-origin calls from the pages named
    (the origin as a browser sends it: a trailing ``/`` or a default port is dropped) and refuses every other page
    (kubo: 403); a value that is not an origin is refused before anything starts."""
    import httpx

    bad = run(home, "up", "--rpc-port", str(free_port()), "--ipfs-api-origin", "http://127.0.0.1:8000/index.html")
    assert bad.returncode == 2 and "has the origin http://127.0.0.1:8000" in bad.stderr, bad.stderr
    assert not (home / "devnet" / "devnet.json").exists()

    r = run(home, "up", "--rpc-port", str(free_port()), "--ipfs-api-origin", "http://127.0.0.1:8000/",
            "--ipfs-api-origin", "HTTP://LocalHost:80")
    assert r.returncode == 0, r.stderr
    api = DevnetInfo.load(home / "devnet" / "devnet.json").ipfs_api
    for origin in ("http://127.0.0.1:8000", "http://localhost"):
        pre = httpx.options(f"{api}/api/v0/add", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
        assert pre.headers.get("access-control-allow-origin") == origin
        call = httpx.post(f"{api}/api/v0/id", headers={"Origin": origin})
        assert call.status_code == 200 and call.headers.get("access-control-allow-origin") == origin
    for origin in ("http://127.0.0.1:8001", "http://evil.example"):
        assert httpx.post(f"{api}/api/v0/id", headers={"Origin": origin}).status_code == 403
    assert httpx.post(f"{api}/api/v0/id").status_code == 200  # no Origin: the CLI and the SDK, as before
