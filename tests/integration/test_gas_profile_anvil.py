"""scripts/_gas_profile.py on a real anvil recording steps: the classes of a transaction add up to its gasUsed,
and a storage slot made non-zero is seen as one (the first faucet to an address creates its balance slot; the
second only updates it)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from _gas_profile import CLASSES, TraceUnavailable, profile  # noqa: E402

from oracle import connect, contract_at, deploy_all, dev_accounts, send  # noqa: E402
from tasknet import _devnet  # noqa: E402


def test_the_classes_add_up_to_gas_used_and_see_new_slots(tmp_path: Path) -> None:
    info, url = _devnet.start_anvil(tmp_path, _devnet.free_port(), extra_args=["--steps-tracing"])
    try:
        w3 = connect(url)
        accounts = dev_accounts(10)
        token = contract_at(w3, "TestToken", deploy_all(w3, accounts[0]).contracts["TestToken"])
        fresh = accounts[7].address
        receipts = [send(w3, token.functions.faucet(fresh, 10**18), accounts[7]) for _ in range(2)]
        first, second = (profile(w3, bytes(r["transactionHash"])) for r in receipts)
        for prof, r in ((first, receipts[0]), (second, receipts[1])):
            assert set(prof) <= set(CLASSES)
            assert sum(prof.values()) == int(r["gasUsed"])
            assert prof["intrinsic (21,000 + calldata)"] > 21_000
        assert first["storage: new slots"] >= 20_000  # the balance slot of an address that held nothing
        assert second["storage: new slots"] == 0 and second["storage: updates"] > 0
    finally:
        _devnet.stop(info)


def test_a_node_without_step_traces_is_named(tmp_path: Path) -> None:
    info, url = _devnet.start_anvil(tmp_path, _devnet.free_port())
    try:
        w3 = connect(url)
        accounts = dev_accounts(10)
        token = contract_at(w3, "TestToken", deploy_all(w3, accounts[0]).contracts["TestToken"])
        r = send(w3, token.functions.faucet(accounts[7].address, 1), accounts[7])
        with pytest.raises(TraceUnavailable, match="--steps-tracing"):
            profile(w3, bytes(r["transactionHash"]))
    finally:
        _devnet.stop(info)
