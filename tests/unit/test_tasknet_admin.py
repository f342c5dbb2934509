"""tasknet._cli_admin's pure helpers: parameters named by the ABI (a future field such as ``abandonBps`` needs
no code), NAME=VALUE parsing in each field's unit, and the owner-side reverts turned into one sentence."""

from __future__ import annotations

from typing import Any

import pytest

from oracle import abi
from oracle.exceptions import TransactionReverted
from tasknet._cli_admin import (
    InvalidParam,
    NotOwner,
    NotWorker,
    ParamField,
    ParamOutOfBounds,
    UnknownParam,
    explain_revert,
    param_fields,
    parse_assignments,
)

OWNER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
E18 = 10**18


def _abi_with(components: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"type": "function", "name": "setParams", "stateMutability": "nonpayable", "outputs": [],
             "inputs": [{"name": "p", "type": "tuple", "components": [{"name": n, "type": t} for n, t in components]}]}]


FIELDS = param_fields(abi("Marketplace"))


def test_the_fields_are_those_of_the_shipped_abi_in_its_order() -> None:
    entries = abi("Marketplace")
    fn = next(i for i in entries if i.get("name") == "setParams")
    assert [(f.name, f.type) for f in FIELDS] == [(c["name"], c["type"]) for c in fn["inputs"][0]["components"]]
    assert {"claimGrace", "feeBps", "minStake"} <= {f.name for f in FIELDS}


def test_a_field_the_abi_gains_is_settable_without_code() -> None:
    fields = param_fields(_abi_with([("minStake", "uint96"), ("feeBps", "uint16"), ("abandonBps", "uint16")]))
    assert parse_assignments(["abandonBps=2500", "feeBps=50"], fields) == {"abandonBps": 2500, "feeBps": 50}
    assert fields[2].describe(2500) == "2500 bps (25 %)"


@pytest.mark.parametrize(("assignment", "value"), [
    ("minStake=2.5", 5 * E18 // 2), ("minStake=1000wei", 1000), ("replicaStake=1", E18),
    ("claimGrace=120", 120), ("claimGrace=2m", 120), ("unstakeDelay=1d", 86400), ("revealWindow=90s", 90),
    ("feeBps=50", 50), ("callbackGas=200_000", 200_000), ("maxReplicas=16", 16),
])
def test_values_are_read_in_the_unit_their_name_implies(assignment: str, value: int) -> None:
    name = assignment.partition("=")[0]
    assert parse_assignments([assignment], FIELDS) == {name: value}


@pytest.mark.parametrize(("assignments", "error", "msg"), [
    (["claimgrace=120"], UnknownParam, "no parameter 'claimgrace'; did you mean claimGrace?"),
    (["nope=1"], UnknownParam, "no parameter .nope.; its parameters are .*claimGrace"),
    (["claimGrace"], InvalidParam, "is not NAME=VALUE"),
    (["claimGrace="], InvalidParam, "is not NAME=VALUE"),
    (["feeBps=1", "feeBps=2"], InvalidParam, "feeBps is given twice"),
    (["maxReplicas=256"], InvalidParam, "does not fit its type uint8: allowed 0 to 255"),
    (["claimGrace=-5"], InvalidParam, "does not fit its type uint32"),
    (["feeBps=half"], InvalidParam, "expected basis points"),
    (["claimGrace=soon"], InvalidParam, "expected a duration such as '90', '90s', '10m' or '1d'"),
    (["minStake=lots"], InvalidParam, "expected a token amount"),
])
def test_bad_assignments_say_what_is_allowed(assignments: list[str], error: type[Exception], msg: str) -> None:
    with pytest.raises(error, match=msg):
        parse_assignments(assignments, FIELDS)


def test_a_non_integer_field_cannot_be_set_here() -> None:
    with pytest.raises(InvalidParam, match="only unsigned integers"):
        ParamField("paused", "bool").parse("1")


def test_values_are_described_in_words() -> None:
    by_name = {f.name: f for f in FIELDS}
    assert by_name["minStake"].describe(3 * E18 // 2) == "1.5 TNT"
    assert by_name["claimGrace"].describe(45) == "45 s"
    assert by_name["unstakeDelay"].describe(5400) == "5400 s (1.5h)"
    assert by_name["feeBps"].describe(50) == "50 bps (0.5 %)"
    assert by_name["callbackGas"].describe(200_000) == "200000"


def _reverted(error: str, **args: Any) -> TransactionReverted:
    return TransactionReverted(f"setParams reverted with {error}", error_name=error, error_args=args)


def test_a_non_owner_is_told_who_the_owner_is() -> None:
    caller = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
    err = explain_revert(_reverted("OwnableUnauthorizedAccount", account=caller), lambda: OWNER)
    assert isinstance(err, NotOwner)
    assert str(err) == ("0x70997970C51812dc3A010C7d01b50e0d17dc79C8 is not the marketplace's owner, "
                        f"{OWNER} is: run the command as the owner (on the devnet: --as deployer)")


def test_an_out_of_bounds_parameter_reads_as_one_sentence_with_the_range() -> None:
    err = explain_revert(_reverted("MarketplaceParamOutOfBounds", name="claimGrace", value=30, min=60, max=604800),
                         lambda: OWNER, FIELDS)
    assert isinstance(err, ParamOutOfBounds)
    assert str(err) == ("claimGrace=30 s is out of bounds: the marketplace allows claimGrace from 60 s (1m) to "
                        "604800 s (7d); nothing was changed")


def test_banning_an_unregistered_address_says_so() -> None:
    err = explain_revert(_reverted("MarketplaceNotWorker", account=OWNER.lower()), lambda: OWNER)
    assert isinstance(err, NotWorker) and str(err).startswith(f"{OWNER} is not a registered worker")


def test_other_reverts_pass_through_unchanged() -> None:
    original = _reverted("MarketplaceZeroAmount")
    assert explain_revert(original, lambda: OWNER) is original
