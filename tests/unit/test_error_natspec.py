"""Every custom error of the marketplace's interfaces has a NatSpec ``@notice`` (when it is raised, what its values
are), read from the compiler's own user documentation in the artifacts. solhint's ``use-natspec`` (6.2.4) checks
contracts, functions, events and public variables, not errors, so this test is what enforces it (the artifacts
are checked against the sources by ``node scripts/compile.js --check``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "oracle" / "artifacts"


def _errors(name: str) -> tuple[list[str], dict[str, Any]]:
    artifact = json.loads((ARTIFACTS / f"{name}.json").read_text())
    sigs = [f"{e['name']}({','.join(i['type'] for i in e['inputs'])})" for e in artifact["abi"] if e["type"] == "error"]
    return sigs, artifact["userdoc"].get("errors", {})


def _notice(doc: dict[str, Any], sig: str) -> str:
    return " ".join(entry.get("notice", "") for entry in doc.get(sig, [])).strip()


@pytest.mark.parametrize("name", ["IMarketplace", "IMarketplaceRegistry", "Marketplace", "MarketplaceRegistry"])
def test_every_marketplace_error_says_when_it_is_raised(name: str) -> None:
    sigs, doc = _errors(name)
    ours = [s for s in sigs if s.startswith("Marketplace")]  # OpenZeppelin's own errors are documented there
    assert len(ours) >= (60 if "Registry" not in name else 9)
    missing = [s for s in ours if len(_notice(doc, s)) < 20]
    assert not missing, f"custom errors without a /// @notice in contracts/I{name.removeprefix('I')}.sol: {missing}"


def test_each_value_of_an_error_is_named_in_its_notice() -> None:
    """A notice names every value the error carries (`name` in backquotes), so a decoded revert reads on its own."""
    for name in ("IMarketplace", "IMarketplaceRegistry"):
        artifact = json.loads((ARTIFACTS / f"{name}.json").read_text())
        for error in (e for e in artifact["abi"] if e["type"] == "error"):
            sig = f"{error['name']}({','.join(i['type'] for i in error['inputs'])})"
            text = _notice(artifact["userdoc"]["errors"], sig)
            unnamed = [i["name"] for i in error["inputs"] if f"`{i['name']}`" not in text]
            assert not unnamed, f"{name}.{sig}: the notice does not name {unnamed}: {text!r}"
