"""`tasknet testnet up/status/down` as a user runs them (as root): what up builds, what status sees (a pulled cable
included), and that down removes all of it, again and again, also after `up` itself was killed halfway."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from oracle.network import read_profile
from tasknet import _devnet
from tasknet._testnet import (
    TestnetInfo,
    free_subnet,
    link_exists,
    netns_exists,
    netns_pids,
    set_link,
    tasknet_cmd,
)

pytestmark = pytest.mark.network


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    from tests.network.conftest import _cannot_run

    reason = _cannot_run()
    if reason:
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKNET_")}
    return {**env, "TASKNET_HOME": str(tmp_path / "home")}


def tasknet(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tasknet_cmd(*args), env=env, capture_output=True, text=True, timeout=timeout, check=False)


def options() -> list[str]:
    return ["--prefix", "t" + secrets.token_hex(2), "--subnet", free_subnet(201)]


def leftovers(info: TestnetInfo, pids: set[int]) -> list[str]:
    left = [h.netns for h in info.hosts.values() if netns_exists(h.netns)]
    left += [h.veth for h in info.hosts.values() if link_exists(h.veth)]
    left += [info.bridge] if link_exists(info.bridge) else []
    return left + [f"pid {p}" for p in pids if _devnet.pid_alive(p)]


def test_up_builds_the_hosts_status_sees_a_cable_pulled_and_plugged_back_and_down_removes_everything_twice(
        cli_env: dict[str, str]) -> None:
    home = Path(cli_env["TASKNET_HOME"])
    state = home / "testnet" / "testnet.json"
    built = tasknet(cli_env, "testnet", "up", "--hosts", "1", "--no-indexer", *options())
    try:
        assert built.returncode == 0, built.stderr
        info = TestnetInfo.model_validate_json(state.read_text())
        assert sorted(info.hosts) == ["chain", "dataset-owner", "requester", "worker-1"]
        for host in info.hosts.values():
            assert host.netns in built.stdout and host.address in built.stdout
            # the private /24 and nothing beyond it: no default route out of the namespace (v4 or v6)
            v4 = subprocess.run(["ip", "-n", host.netns, "-4", "route", "show", "table", "main"], capture_output=True,
                                text=True, check=True).stdout
            v6 = subprocess.run(["ip", "-n", host.netns, "-6", "route", "show", "default"], capture_output=True,
                                text=True, check=True).stdout
            assert [r.split()[0] for r in v4.splitlines()] == [info.subnet] and v6.strip() == "", (v4, v6)
        profile = read_profile(home / "networks" / "testnet.json")
        assert profile.rpc_urls == [info.rpc_url] and profile.contracts == info.contracts
        assert profile.ipfs_peers == [info.host("requester").ipfs_swarm, info.host("dataset-owner").ipfs_swarm]

        rows = json.loads(tasknet(cli_env, "testnet", "status", "--json").stdout)
        assert all(r["healthy"] for r in rows), rows
        assert {(r["host"], r["component"]) for r in rows} >= {("chain", "anvil"), ("worker-1", "worker"),
                                                                 ("worker-1", "kubo"), ("requester", "kubo")}
        # the requester host reaches the chain host by the profile alone
        listed = subprocess.run(["ip", "netns", "exec", info.host("requester").netns,
                                 *tasknet_cmd("job", "list", "--network", "testnet", "--json")],
                                env={**cli_env, "TASKNET_IPFS_API": info.host("requester").ipfs_api,
                                     "TASKNET_PRIVATE_KEY": info.account("requester").private_key},
                                capture_output=True, text=True, timeout=60, check=False)
        assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr

        set_link(info.host("worker-1"), up=False)
        cut = tasknet(cli_env, "testnet", "status", "--json")
        assert cut.returncode == 1
        unhealthy = {(r["host"], r["component"]): r["detail"] for r in json.loads(cut.stdout) if not r["healthy"]}
        assert sorted(unhealthy) == [("worker-1", "kubo"), ("worker-1", "link")], unhealthy
        assert unhealthy[("worker-1", "link")] == f"link {info.host('worker-1').veth} down"
        set_link(info.host("worker-1"), up=True)
        deadline = time.monotonic() + 30
        while tasknet(cli_env, "testnet", "status").returncode != 0:
            assert time.monotonic() < deadline, "the host did not come back after its cable was plugged in"
    finally:
        pids = {c.pid for h in TestnetInfo.model_validate_json(state.read_text()).hosts.values()
                for c in h.processes.values() if c.pid} if state.exists() else set()
        gone = tasknet(cli_env, "testnet", "down")
    assert gone.returncode == 0 and "bridge" in gone.stdout, gone.stderr
    assert leftovers(info, pids) == []
    assert not state.exists() and not (home / "networks" / "testnet.json").exists()
    again = tasknet(cli_env, "testnet", "down")
    assert again.returncode == 0 and "nothing to remove" in again.stdout


def test_down_removes_what_a_killed_up_had_made(cli_env: dict[str, str]) -> None:
    state = Path(cli_env["TASKNET_HOME"]) / "testnet" / "testnet.json"
    up = subprocess.Popen(tasknet_cmd("testnet", "up", "--hosts", "2", "--no-indexer", *options()), env=cli_env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        info = None
        while time.monotonic() < deadline and up.poll() is None:
            with_kubo = 0
            if state.exists():
                try:
                    info = TestnetInfo.model_validate_json(state.read_text())
                    with_kubo = sum("kubo" in h.processes for h in info.hosts.values())
                except ValueError:
                    pass  # being replaced
            if with_kubo >= 3:
                break
            time.sleep(0.05)
        assert up.poll() is None and info is not None, "up finished (or failed) before it could be killed"
        os.killpg(up.pid, signal.SIGKILL)  # a crash halfway: processes running, no worker yet
        up.wait()
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
    info = TestnetInfo.model_validate_json(state.read_text())
    pids = {c.pid for h in info.hosts.values() for c in h.processes.values() if c.pid}
    assert pids and all(_devnet.pid_alive(p) for p in pids)  # they outlived up: only the state file knows them
    namespaces = [h.netns for h in info.hosts.values()]
    gone = tasknet(cli_env, "testnet", "down")
    assert gone.returncode == 0, gone.stderr
    assert leftovers(info, pids) == []
    assert all(netns_pids(ns) == [] for ns in namespaces)
    assert tasknet(cli_env, "testnet", "down").returncode == 0
