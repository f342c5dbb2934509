"""worker._settings.WorkerSettings: one settings object from a file, TASKNET_WORKER_* variables and overrides;
the key comes from a keystore, or a raw key on dev chains only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from pydantic import ValidationError

from oracle import DevnetInfo
from oracle.devnet import DevAccount
from oracle.settings import KeystoreError
from worker._settings import WorkerSettings
from worker.exceptions import WorkerError

KEY = "0x" + "11" * 32
ADDRESS = Account.from_key(KEY).address


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TASKNET_WORKER_* variable of the machine running the tests leaks into them."""
    import os

    for name in list(os.environ):
        if name.startswith("TASKNET_WORKER_"):
            monkeypatch.delenv(name)


def test_environment_variables_with_the_prefix_set_fields_and_nested_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKNET_WORKER_PRIVATE_KEY", KEY)
    monkeypatch.setenv("TASKNET_WORKER_RPC_URL", "http://node.test:8545")
    monkeypatch.setenv("TASKNET_WORKER_CONFIRMATIONS", "3")
    monkeypatch.setenv("TASKNET_WORKER_POLICY__MIN_REWARD", "1000")
    monkeypatch.setenv("TASKNET_WORKER_POLICY__BLOCKED_REQUESTERS", '["0xABC"]')
    s = WorkerSettings()
    assert (s.rpc_url, s.confirmations) == ("http://node.test:8545", 3)
    assert s.policy.min_reward == 1000 and s.policy.blocked_requesters == ["0xabc"]
    assert s.policy.max_concurrent is None  # the rest of the policy keeps its defaults (run slots: the cores lent)


def test_a_variable_without_the_prefix_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPC_URL", "http://elsewhere.test")
    assert WorkerSettings(private_key=KEY).rpc_url == "http://127.0.0.1:8545"


def test_no_key_at_all_is_refused_with_what_to_set() -> None:
    with pytest.raises(ValidationError, match="no worker key: set 'keystore'"):
        WorkerSettings()


@pytest.mark.parametrize(("field", "value"), [("confirmations", -1), ("poll_interval", 0), ("on_ban", "sulk"),
                                              ("fault", "explode"), ("memory_per_task_mb", 8)])
def test_out_of_range_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        WorkerSettings(private_key=KEY, **{field: value})


def test_an_unknown_setting_is_refused_not_ignored() -> None:
    with pytest.raises(ValidationError, match="min_rewad"):
        WorkerSettings(private_key=KEY, min_rewad=5)


def test_a_json_file_gives_the_same_keys_and_overrides_win(tmp_path: Path) -> None:
    path = tmp_path / "worker.json"
    path.write_text(json.dumps({"private_key": KEY, "rpc_url": "http://a.test", "stake": 5,
                                "policy": {"max_concurrent": 3, "hours": [{"start": 22, "end": 6}]}}))
    s = WorkerSettings.from_file(path, stake=7)
    assert (s.rpc_url, s.stake, s.policy.max_concurrent) == ("http://a.test", 7, 3)
    assert s.policy.hours[0].contains(23) and not s.policy.hours[0].contains(12)


def test_a_toml_file_gives_the_same_keys(tmp_path: Path) -> None:
    path = tmp_path / "worker.toml"
    path.write_text(f'private_key = "{KEY}"\nstate_dir = "{tmp_path / "state"}"\n\n[policy]\nmin_reward = 42\n'
                    'blocked_apps = ["0xAPP"]\n')
    s = WorkerSettings.from_file(path)
    assert s.state_dir == tmp_path / "state" and s.policy.min_reward == 42 and s.policy.blocked_apps == ["0xapp"]


def test_the_environment_fills_what_the_file_leaves_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "worker.json"
    path.write_text(json.dumps({"private_key": KEY}))
    monkeypatch.setenv("TASKNET_WORKER_IPFS_API", "http://kubo.test:5001")
    assert WorkerSettings.from_file(path).ipfs_api == "http://kubo.test:5001"


def test_the_devnet_file_gives_the_endpoints_the_role_key_and_a_state_folder(tmp_path: Path) -> None:
    info = DevnetInfo(rpc_url="http://127.0.0.1:9545", chain_id=31337, ipfs_api="http://127.0.0.1:5999",
                      ipfs_gateway="", registry="127.0.0.1:5000", docker_host="unix:///x", deploy_block=4,
                      contracts={"Marketplace": "0x" + "ab" * 20}, mnemonic="m", state_dir=str(tmp_path / "dev"),
                      accounts=[DevAccount(role="worker-2", address=ADDRESS, private_key=KEY)])
    info.save(tmp_path / "devnet.json")
    s = WorkerSettings.from_devnet("worker-2", tmp_path / "devnet.json", poll_interval=1.0)
    assert (s.rpc_url, s.chain_id, s.ipfs_api, s.deploy_block) == ("http://127.0.0.1:9545", 31337,
                                                                   "http://127.0.0.1:5999", 4)
    assert s.marketplace == "0x" + "ab" * 20 and s.poll_interval == 1.0
    assert s.state_dir == tmp_path / "dev" / "workers" / "worker-2"
    assert s.account(31337).address == ADDRESS


@pytest.mark.parametrize("chain_id", [31337, 1337])
def test_a_raw_key_is_accepted_on_dev_chains(chain_id: int) -> None:
    assert WorkerSettings(private_key=KEY).account(chain_id).address == ADDRESS


@pytest.mark.parametrize("chain_id", [1, 10, 11155111])
def test_a_raw_key_is_refused_off_dev_chains_with_the_fix(chain_id: int) -> None:
    with pytest.raises(WorkerError, match=f"only accepted on a dev chain .* this is chain {chain_id}; make an "
                                          "encrypted keystore with 'tasknet account import'"):
        WorkerSettings(private_key=KEY).account(chain_id)


def test_a_keystore_opens_with_its_password_on_any_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(KEY, "s3cret", kdf="pbkdf2", iterations=2)))
    assert WorkerSettings(keystore=keystore, password="s3cret").account(1).address == ADDRESS
    monkeypatch.setenv("TASKNET_PASSWORD", "s3cret")  # the one password variable every role reads
    assert WorkerSettings(keystore=keystore).account(1).address == ADDRESS  # password from the environment


def test_a_keystore_without_password_or_with_a_wrong_one_says_what_to_do(tmp_path: Path) -> None:
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(KEY, "s3cret", kdf="pbkdf2", iterations=2)))
    with pytest.raises(KeystoreError, match="needs a password: set TASKNET_PASSWORD"):
        WorkerSettings(keystore=keystore).account(1)
    with pytest.raises(KeystoreError, match="cannot open the keystore .*: wrong password"):
        WorkerSettings(keystore=keystore, password="wrong").account(1)


def test_the_password_and_key_do_not_show_in_the_settings_repr() -> None:
    s = WorkerSettings(private_key=KEY, password="s3cret")
    assert KEY not in repr(s) and "s3cret" not in repr(s)
