"""The shipped artifacts: Truffle format, and in sync with contracts/ (checked without node)."""

from __future__ import annotations

from pathlib import Path

from oracle import load_artifact
from oracle._artifacts import manifest, sources_digest

ROOT = Path(__file__).resolve().parents[2]


def test_every_contract_has_a_truffle_format_artifact() -> None:
    for name in manifest()["contracts"]:
        art = load_artifact(name)
        assert {"contractName", "abi", "bytecode", "deployedBytecode", "sourceMap", "networks"} <= set(art)
        assert art["contractName"] == name and art["bytecode"].startswith("0x")


def test_artifacts_are_not_stale_against_the_sources() -> None:
    assert sources_digest(ROOT) == manifest()["sourcesSha256"], (
        "oracle/artifacts/ is stale: run 'npm run compile' and commit the artifacts")
