"""Loading the compiled contract artifacts shipped inside this package (no node needed at run time)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypedDict

from .exceptions import ArtifactError

ARTIFACTS_DIR = Path(__file__).parent / "artifacts"


@cache
def load_artifact(name: str) -> dict[str, Any]:
    """Return the Truffle-format artifact of contract ``name`` (abi, bytecode, deployedBytecode, ...)."""
    path = ARTIFACTS_DIR / f"{name}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in ARTIFACTS_DIR.glob("*.json") if p.stem != "manifest"))
        raise ArtifactError(
            f"no compiled artifact for contract {name!r} in {ARTIFACTS_DIR} (known: {known or 'none'}); "
            "run 'npm run compile'"
        )
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ArtifactError(f"the artifact {path} is not a JSON object; run 'npm run compile' to write it again")
    return data


#: an ABI as web3 hands it out (``contract.abi``, ``fn.contract_abi``) or as read from an artifact
AbiList = Sequence[Mapping[str, Any]]


def abi(name: str) -> AbiList:
    """The ABI of contract ``name``."""
    result: AbiList = load_artifact(name)["abi"]
    return result


class Manifest(TypedDict):
    """``artifacts/manifest.json``, written by ``scripts/compile.js``."""

    compiler: str  # solc's long version
    settings: dict[str, object]  # the standard-JSON settings compiled with, hashed as they are
    sourcesSha256: str  # the file's key
    sources: list[str]
    contracts: list[str]


def manifest() -> Manifest:
    """The compile manifest: compiler version, settings, and the sha256 of the sources compiled."""
    m = load_artifact("manifest")
    return Manifest(compiler=str(m["compiler"]), settings=dict(m["settings"]), sourcesSha256=str(m["sourcesSha256"]),
                    sources=[str(s) for s in m["sources"]], contracts=[str(c) for c in m["contracts"]])


def sources_digest(root: Path) -> str:
    """Recompute the manifest's ``sourcesSha256`` from the Solidity sources under ``root`` (the repo).

    Mirrors ``scripts/compile.js`` so a test (or a user) can tell stale artifacts apart without node.
    """
    m = manifest()
    h = hashlib.sha256()
    h.update(json.dumps({"version": m["compiler"], "settings": m["settings"]}, separators=(",", ":")).encode())
    for rel in sorted(str(p.relative_to(root)) for p in (root / "contracts").rglob("*.sol")):
        h.update(rel.encode() + b"\0" + (root / rel).read_bytes() + b"\0")
    return h.hexdigest()
