"""tasknet testnet offline: the root check (one sentence, before anything is touched), the options it refuses,
the names and addresses it plans, and how a process started in a namespace is recognised."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from tasknet import _devnet, _testnet
from tasknet._testnet import MAX_WORKERS, Testnet, TestnetInfo, UpOptions
from tasknet.cli import cli


@pytest.mark.parametrize("args", [["testnet", "up", "--hosts", "2"], ["testnet", "down"], ["testnet", "add-worker"]])
def test_testnet_commands_refuse_to_run_without_root_in_one_sentence(args: list[str], tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_testnet.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("TASKNET_HOME", str(tmp_path))
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert message == ("TestnetError: tasknet testnet needs root: it creates network namespaces, veth pairs and a "
                       "bridge; run it as root (e.g. with sudo)")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_status_without_a_testnet_says_how_to_start_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKNET_HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["testnet", "status"])
    assert result.exit_code == 1
    assert "no testnet state file at" in result.output and "tasknet testnet up" in " ".join(result.output.split())


@pytest.mark.parametrize(("field", "value", "says"), [
    ("subnet", "10.78.0.0/24", "must be a /24 inside 10.77.0.0/16"),
    ("subnet", "10.77.0.0/16", "must be a /24 inside 10.77.0.0/16"),
    ("subnet", "192.168.1.0/24", "must be a /24 inside 10.77.0.0/16"),
    ("subnet", "10.77.0.1/24", "is not a network address"),
    ("prefix", "Tn", "lowercase letters or digits"),
    ("prefix", "toolong", "1 to 6"),
    ("hosts", MAX_WORKERS + 1, "less than or equal"),
])
def test_up_options_refuse_what_could_touch_more_than_the_testnet(field: str, value: object, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        UpOptions(**{field: value})


def test_the_plan_names_every_host_within_the_interface_name_limit() -> None:
    info = TestnetInfo(profile="testnet", prefix="abcdef", subnet="10.77.42.0/24", bridge="abcdef-br0",
                       bridge_address="10.77.42.254", rpc_url="http://10.77.42.1:8545", state_dir="/nowhere")
    tn = Testnet(info, Path("/nowhere/testnet.json"))
    names = ["chain", "requester", "dataset-owner", "indexer", *[f"worker-{i}" for i in range(1, MAX_WORKERS + 1)]]
    hosts = [tn._plan_host(n) for n in names]
    assert [(h.netns, h.address, h.account) for h in hosts[:5]] == [
        ("abcdef-chain", "10.77.42.1", "deployer"), ("abcdef-req", "10.77.42.2", "requester"),
        ("abcdef-data", "10.77.42.3", "dataset-owner"), ("abcdef-idx", "10.77.42.4", None),
        ("abcdef-w1", "10.77.42.11", "worker-1")]
    assert hosts[-1].address == "10.77.42.30" and hosts[-1].ipfs_api == "http://10.77.42.30:5001"
    assert all(len(h.veth) <= 15 for h in hosts) and len(info.bridge) <= 15  # IFNAMSIZ - 1
    assert len({h.address for h in hosts}) == len(hosts) and info.bridge_address not in {h.address for h in hosts}
    assert all(r in _testnet.ROLES for r in (h.account for h in hosts) if r)


def test_a_process_started_in_a_namespace_is_known_by_the_command_ip_runs() -> None:
    assert _devnet._program(["ip", "netns", "exec", "tn-w1", "/usr/local/bin/ipfs", "daemon"]) == "/usr/local/bin/ipfs"
    assert _devnet._program(["/usr/sbin/ip", "netns", "exec", "tn-w1", "anvil"]) == "anvil"
    assert _devnet._program(["/usr/local/bin/ipfs", "daemon"]) == "/usr/local/bin/ipfs"
    assert _devnet._program(["ip", "link", "show"]) == "ip"


def test_hosts_get_the_profile_and_their_key_but_none_of_the_callers_settings(monkeypatch: pytest.MonkeyPatch,
                                                                             tmp_path: Path) -> None:
    monkeypatch.setenv("TASKNET_HOME", str(tmp_path))
    monkeypatch.setenv("TASKNET_RPC_URL", "http://elsewhere:8545")
    monkeypatch.setenv("TASKNET_ROLE", "worker-3")
    env = _testnet.clean_env({"TASKNET_NETWORK": "testnet"})
    assert env["TASKNET_HOME"] == str(tmp_path) and env["TASKNET_NETWORK"] == "testnet"
    assert "TASKNET_RPC_URL" not in env and "TASKNET_ROLE" not in env


def test_up_refuses_a_swarm_key_that_is_not_64_lowercase_hex_digits() -> None:
    with pytest.raises(ValidationError, match="swarm key must be 64 lowercase hex digits"):
        UpOptions(swarm_key="ABCD" * 16)
    assert UpOptions(swarm_key="ab" * 32).swarm_key == "ab" * 32


def test_demo_on_hosts_refuses_to_run_without_root_in_one_sentence(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_testnet.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("TASKNET_HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["demo", "--hosts", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert " ".join(result.output.split()) == (
        "TestnetError: tasknet demo --hosts needs root: it creates network namespaces, veth pairs and a bridge; run "
        "it as root (e.g. with sudo)")
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing built
