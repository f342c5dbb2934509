"""A network as its operator and participants make it, on a chain that is not anvil (geth, one block a second):
keys in encrypted keystores, `tasknet network deploy` writing a profile, every role reading that profile
(`--network`), and each bad profile, key or endpoint refused with one sentence and nothing half-done."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.geth.conftest import Geth

PASSWORD = "correct horse battery staple"


def tn(home: Path, *args: str, code: int = 0, env: dict[str, str] | None = None, stdin: str | None = None,
       timeout: float = 300) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "tasknet.cli", *args], capture_output=True, text=True, timeout=timeout,
                       input=stdin, check=False,
                       env={**os.environ, "TASKNET_HOME": str(home), "TASKNET_PASSWORD": PASSWORD, "COLUMNS": "200",
                            **(env or {})})
    assert r.returncode == code, f"tasknet {' '.join(args)}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r


def _key(account: Any) -> str:
    return "0x" + account.key.hex().removeprefix("0x")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_deploy_a_network_and_use_it_from_every_role(geth: Geth, home: Path, ipfs: Any, echo_digest: str,
                                                     tmp_path: Path) -> None:
    owner, requester, worker = geth.accounts[0], geth.accounts[1], geth.accounts[7]
    for name, acct in (("owner", owner), ("requester", requester), ("worker", worker)):
        made = json.loads(tn(home, "account", "import", "--name", name, "--json", stdin=_key(acct)).stdout)
        assert made["address"] == acct.address and Path(made["keystore"]).stat().st_mode & 0o777 == 0o600
    keys = {n: str(home / "keys" / f"{n}.json") for n in ("owner", "requester", "worker")}
    deployed = tn(home, "network", "deploy", "--name", "lab", "--rpc-url", geth.rpc_url, "--keystore", keys["owner"],
                  "--test-token", "--confirmations", "2")
    assert "network 'lab' deployed on chain 1337" in deployed.stdout
    profile = json.loads((home / "networks" / "lab.json").read_text())
    assert profile["chain_id"] == 1337 and profile["confirmations"] == 2 and "Marketplace" in profile["contracts"]
    art = json.loads((home / "networks" / "lab" / "artifacts" / "Marketplace.json").read_text())
    assert art["networks"]["1337"]["address"] == profile["contracts"]["Marketplace"]
    tn(home, "network", "use", "lab")
    shown = json.loads(tn(home, "config", "show", "--json", env={"TASKNET_IPFS_API": ipfs.api_url}).stdout)
    assert shown["network"]["value"] == "lab" and shown["rpc_url"] == {"value": geth.rpc_url, "source": "profile"}
    assert shown["ipfs_api"]["source"] == "env"

    # every role on the profile: the requester registers an app and posts a job, a worker runs it, an auditor checks
    env = {"TASKNET_IPFS_API": ipfs.api_url}
    req = ["--keystore", keys["requester"]]
    tn(home, "account", "faucet", "50", *req, env=env)
    tn(home, "account", "deposit", "20", *req, env=env)
    app = json.loads(tn(home, "app", "register", echo_digest, "--name", "echo", "--no-push", "--json", *req,
                        env=env).stdout)
    (tmp_path / "data.txt").write_text("hello from the lab network\n")
    job = json.loads(tn(home, "job", "submit", "--app", str(app["app_id"]), "--count", "2", "--arg", "lab-{index}",
                        "--input", f"data.txt={tmp_path / 'data.txt'}", "--reward", "0.1", "--max-run", "1m",
                        "--json", *req, env=env).stdout)
    tn(home, "account", "faucet", "20", "--keystore", keys["worker"], env=env)
    daemon = subprocess.Popen([sys.executable, "-m", "tasknet.cli", "worker", "run", "--keystore", keys["worker"],
                               "--stake", "5", "--state-dir", str(tmp_path / "w")],
                              stdout=subprocess.DEVNULL, stderr=(tmp_path / "worker.log").open("w"),
                              env={**os.environ, "TASKNET_HOME": str(home), "TASKNET_PASSWORD": PASSWORD, **env})
    try:
        watched = tn(home, "job", "watch", str(job["job_id"]), "--timeout", "240", *req, env=env)
    finally:
        daemon.terminate()
        daemon.wait(120)
    assert f"job {job['job_id']}: 2/2 finalized" in watched.stdout
    audit = json.loads(tn(home, "audit", "job", str(job["job_id"]), "--json", env=env).stdout)
    assert audit["passed"] and audit["counts"]["succeeded"] == 2


def test_bad_profiles_keys_and_endpoints_are_one_sentence_and_leave_nothing(geth: Geth, home: Path, tmp_path: Path,
                                                                          ipfs: Any) -> None:
    tn(home, "account", "import", "--name", "owner", stdin=_key(geth.accounts[0]))
    owner = str(home / "keys" / "owner.json")
    # a failed deploy writes no profile: the token is not a contract
    bad = tn(home, "network", "deploy", "--name", "nope", "--rpc-url", geth.rpc_url, "--keystore", owner, "--token",
             "0x" + "12" * 20, code=1)
    assert "ProfileError: there is no contract at the token address" in bad.stderr
    assert not (home / "networks" / "nope.json").exists()
    # a wrong keystore password
    wrong = tn(home, "network", "deploy", "--name", "nope", "--rpc-url", geth.rpc_url, "--keystore", owner,
               "--test-token", code=1, env={"TASKNET_PASSWORD": "not it"})
    assert "KeystoreError: cannot open the keystore" in wrong.stderr and "wrong password" in wrong.stderr
    assert not (home / "networks" / "nope.json").exists()
    # an RPC that cannot be reached
    dead = tn(home, "network", "deploy", "--name", "nope", "--rpc-url", "http://127.0.0.1:9", "--keystore", owner,
              "--test-token", code=1)
    assert "RpcUnavailable: cannot reach the JSON-RPC endpoint http://127.0.0.1:9" in dead.stderr

    tn(home, "network", "deploy", "--name", "lab", "--rpc-url", geth.rpc_url, "--keystore", owner, "--test-token",
       "--confirmations", "0")
    env = {"TASKNET_IPFS_API": ipfs.api_url}
    profile = json.loads((home / "networks" / "lab.json").read_text())
    # a profile whose chain id differs from the node's
    (tmp_path / "other.json").write_text(json.dumps({**profile, "chain_id": 5}))
    tn(home, "network", "add", "other", str(tmp_path / "other.json"))
    other = tn(home, "account", "balance", "--network", "other", "--keystore", owner, code=1, env=env)
    assert "ProfileError: the node at" in other.stderr and "serves chain 1337" in other.stderr
    # no contract at the profile's marketplace address
    (tmp_path / "empty.json").write_text(json.dumps({**profile, "contracts": {"Marketplace": "0x" + "34" * 20}}))
    tn(home, "network", "add", "empty", str(tmp_path / "empty.json"))
    empty = tn(home, "account", "balance", "--network", "empty", "--keystore", owner, code=1, env=env)
    assert "ProfileError: there is no contract at the marketplace address" in empty.stderr
    # a kubo that cannot be reached, and one that runs offline only
    gone = tn(home, "account", "balance", "--network", "lab", "--keystore", owner, code=1,
              env={"TASKNET_IPFS_API": "http://127.0.0.1:9"})
    assert "IpfsUnavailable: cannot reach the IPFS RPC API at http://127.0.0.1:9" in gone.stderr
    from tasknet import _devnet

    offline_repo = tmp_path / "offline-ipfs"
    info, api, _ = _devnet.start_kubo(tmp_path / "offline", _devnet.free_port(), _devnet.free_port())
    _devnet.stop(info)
    cmd = [_devnet.find_ipfs(), "daemon", "--offline"]
    off = _devnet.spawn(cmd, tmp_path / "offline.log", env={"IPFS_PATH": str(tmp_path / "offline" / "ipfs")})
    try:
        _devnet.wait_until(lambda: _devnet.ipfs_healthy(api) is None, off, "offline kubo", 30)
        offline = tn(home, "account", "balance", "--network", "lab", "--keystore", owner, code=1,
                     env={"TASKNET_IPFS_API": api})
        assert "IpfsOffline: the IPFS node at" in offline.stderr and "runs offline" in offline.stderr
    finally:
        _devnet.stop(off)
    assert not offline_repo.exists()
    # a raw key off a development chain is refused (a chain id that is not 31337 or 1337): shown by the settings
    from oracle.settings import KeystoreError, Settings

    with pytest.raises(KeystoreError, match="only accepted on a development chain"):
        Settings(private_key=_key(geth.accounts[0])).account(8453)
