"""The marketplace owner's ``tasknet admin`` commands on a devnet of real components (anvil, kubo): parameters
read and written by their ABI names, bounds and ownership refused in one sentence, bans, the treasury."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import test_client_helpers as helpers
from eth_account import Account
from eth_account.signers.local import LocalAccount
from test_client_helpers import E18, as_json, enroll, tasknet
from web3 import Web3

from oracle import DevnetInfo
from oracle.market import Market
from oracle.protocol import task_id
from oracle.tx import TxSender
from tests.market_helpers import fund, post_job, register_app

devnet_file = helpers.devnet_file
image_registry = helpers.image_registry


def _market(w3: Web3, devnet_file: Path) -> tuple[DevnetInfo, Market]:
    info = DevnetInfo.load(devnet_file)
    return info, Market(w3, info.contracts["Marketplace"])


def _account(info: DevnetInfo, role: str) -> LocalAccount:
    return Account.from_key(info.account(role).private_key)


def _params(market: Market) -> dict[str, int]:
    """The marketplace's parameters by the ABI's names, as ``admin params show --json`` lists them."""
    return {k: int(v) for k, v in market.market_params().model_dump(by_alias=True).items()}


def _setparams_names(market: Market) -> list[str]:
    fn = next(i for i in market.contract.abi if i.get("name") == "setParams")
    return [c["name"] for c in fn["inputs"][0]["components"]]


def test_params_show_lists_every_parameter_the_abi_names(devnet_file: Path, w3: Web3) -> None:
    info, market = _market(w3, devnet_file)
    shown = as_json("admin", "params", "show")
    assert list(shown["params"]) == _setparams_names(market)
    assert shown["params"] == _params(market)
    assert shown["owner"] == info.account("deployer").address and shown["marketplace"] == market.address
    table = tasknet("admin", "params", "show").stdout
    assert "claimGrace" in table and "feeBps" in table and "TNT" in table


def test_params_set_changes_the_named_parameters_and_keeps_the_others(devnet_file: Path, w3: Web3) -> None:
    _, market = _market(w3, devnet_file)
    before = _params(market)
    done = as_json("admin", "params", "set", "claimGrace=120", "feeBps=50")
    assert done["changed"] == {"claimGrace": {"from": before["claimGrace"], "to": 120},
                               "feeBps": {"from": before["feeBps"], "to": 50}} and done["tx"]
    after = as_json("admin", "params", "show")["params"]
    assert after == {**before, "claimGrace": 120, "feeBps": 50} == _params(market)

    assert "claimGrace: 120 s (2m) -> 600 s (10m)" in tasknet("admin", "params", "set", "claimGrace=10m").stdout
    assert as_json("admin", "params", "set", "minStake=2.5")["params"]["minStake"] == 5 * E18 // 2
    assert "nothing to change" in tasknet("admin", "params", "set", "feeBps=50").stdout


def test_an_out_of_bounds_value_is_refused_with_the_allowed_range(devnet_file: Path, w3: Web3) -> None:
    _, market = _market(w3, devnet_file)
    before = _params(market)
    low = tasknet("admin", "params", "set", "claimGrace=30", "feeBps=10", code=1).stderr
    assert "ParamOutOfBounds: claimGrace=30 s is out of bounds: the marketplace allows claimGrace from 60 s (1m) " \
           "to 604800 s (7d); nothing was changed" in " ".join(low.split()), low
    high = tasknet("admin", "params", "set", "feeBps=2000", code=1).stderr
    assert "feeBps from 0 bps (0 %) to 1000 bps (10 %)" in " ".join(high.split()), high
    assert _params(market) == before


def test_unknown_names_and_values_that_do_not_fit_are_refused_before_sending(devnet_file: Path, w3: Web3) -> None:
    _, market = _market(w3, devnet_file)
    unknown = " ".join(tasknet("admin", "params", "set", "claimgrace=120", code=1).stderr.split())
    assert "UnknownParam: the marketplace has no parameter 'claimgrace'; did you mean claimGrace? its parameters " \
           f"are {', '.join(_setparams_names(market))}" in unknown, unknown
    wide = " ".join(tasknet("admin", "params", "set", "maxReplicas=300", code=1).stderr.split())
    assert "InvalidParam: maxReplicas=300 does not fit its type uint8: allowed 0 to 255" in wide, wide
    bad = " ".join(tasknet("admin", "params", "set", "claimGrace", code=1).stderr.split())
    assert "is not NAME=VALUE" in bad


def test_ban_and_unban_a_registered_worker(devnet_file: Path, w3: Web3) -> None:
    info, market = _market(w3, devnet_file)
    worker = _account(info, "worker-3")
    enroll(w3, market, worker, stake=0)
    assert "banned " + worker.address in tasknet("admin", "ban", worker.address).stdout
    assert market.worker_record(worker.address).flags & 2
    assert as_json("admin", "ban", worker.address.lower())["changed"] is False  # already banned: nothing sent
    assert as_json("admin", "unban", worker.address)["changed"] is True
    assert not market.worker_record(worker.address).flags & 2

    stranger = info.account("worker-6").address
    refused = " ".join(tasknet("admin", "ban", stranger, code=1).stderr.split())
    assert f"NotWorker: {stranger} is not a registered worker" in refused, refused
    assert "is not an address" in tasknet("admin", "ban", "0x1234", code=2).stderr


def test_a_caller_that_is_not_the_owner_is_told_who_is(devnet_file: Path, w3: Web3) -> None:
    info, market = _market(w3, devnet_file)
    me, owner = info.account("requester").address, info.account("deployer").address
    before = _params(market)
    for args in (("params", "set", "feeBps=10"), ("treasury", "set", me)):
        refused = " ".join(tasknet("admin", *args, "--as", "requester", code=1).stderr.split())
        assert f"NotOwner: {me} is not the marketplace's owner, {owner} is: run the command as the owner" in refused, \
            refused
    worker = _account(info, "worker-3")
    enroll(w3, market, worker, stake=0)
    assert "NotOwner" in tasknet("admin", "ban", worker.address, "--as", "requester", code=1).stderr
    assert _params(market) == before and not market.worker_record(worker.address).flags & 2


def _slash_one_lease(w3: Web3, market: Market, info: DevnetInfo, ipfs: Any) -> int:
    """A worker claims a task and lets its lease expire; reopening it slashes the replica stake to the treasury."""
    requester, owner, worker = (_account(info, r) for r in ("requester", "app-owner", "worker-4"))
    app_id = register_app(w3, market, owner, "sha256:" + "ab" * 32)
    fund(w3, market, requester, 10 * E18)
    job_id = post_job(w3, market, requester, ipfs, app_id, tasks=1, max_run=30)
    enroll(w3, market, worker, stake=5 * E18)
    TxSender(w3, worker, extra_abis=market.error_abis).transact(market.contract.functions.claim(task_id(job_id, 0)))
    w3.provider.make_request("evm_increaseTime", [30 + int(market.market_params().claim_grace) + 1])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    TxSender(w3, requester, extra_abis=market.error_abis).transact(
        market.contract.functions.reopenLease(task_id(job_id, 0)))
    return int(market.job_record(job_id).replica_stake)


def test_the_treasury_withdraws_the_stake_a_slash_credited_it(devnet_file: Path, w3: Web3, ipfs: Any) -> None:
    info, market = _market(w3, devnet_file)
    deployer, keeper = info.account("deployer").address, info.account("dataset-owner").address
    shown = as_json("admin", "treasury", "show")
    assert shown["treasury"] == deployer and shown["balance"] == market.balance(deployer)

    assert as_json("admin", "treasury", "set", keeper)["treasury"] == keeper
    slashed = _slash_one_lease(w3, market, info, ipfs)
    shown = as_json("admin", "treasury", "show")
    assert (shown["treasury"], shown["balance"]) == (keeper, slashed) and slashed > 0
    wallet = shown["wallet"]

    others = " ".join(tasknet("admin", "treasury", "withdraw", "all", code=1).stderr.split())
    assert f"NotTreasury: {deployer} is not the treasury, {keeper} is" in others, others
    done = as_json("admin", "treasury", "withdraw", "all", "--as", "dataset-owner")
    assert (done["withdrawn"], done["balance"], done["wallet"]) == (slashed, 0, wallet + slashed)
    empty = " ".join(tasknet("admin", "treasury", "withdraw", "all", "--as", "dataset-owner", code=1).stderr.split())
    assert "has nothing to withdraw" in empty, empty
