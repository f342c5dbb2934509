"""Deploying the Tasknet contracts (used by ``tasknet up`` and by the test fixtures).

Five deployments, in order: the payment token (``TestToken``), the app/dataset registry
(``MarketplaceRegistry``), the linked libraries ``ReplicaLogic`` (R > 1 consensus) and ``AccountLogic`` (workers,
parameters, job bookkeeping), which the marketplace DELEGATECALLs so each contract stays under the 24 KiB
code-size limit, and the ``Marketplace`` itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from eth_account.signers.local import LocalAccount
from pydantic import BaseModel
from web3 import Web3
from web3.contract import Contract

from ._artifacts import load_artifact
from ._chain import deploy
from .exceptions import ArtifactError

#: Libraries the marketplace links against: artifact name -> fully qualified source name.
LINKED_LIBRARIES = {"ReplicaLogic": "contracts/libraries/ReplicaLogic.sol:ReplicaLogic",
                    "AccountLogic": "contracts/libraries/AccountLogic.sol:AccountLogic"}


#: solc's link references, as in an artifact's ``linkReferences``: source -> library -> [{"start", "length"}]
LinkReferences = Mapping[str, Mapping[str, Sequence[Mapping[str, int]]]]


class Deployment(BaseModel):
    contracts: dict[str, str]
    deploy_block: int


def link_bytecode(bytecode: str, libraries: Mapping[str, str], link_references: LinkReferences) -> str:
    """Write each library's address into ``bytecode`` at the byte offsets solc reported for it.

    ``link_references`` is the artifact's ``linkReferences`` for its ``bytecode`` (``deployedLinkReferences``
    for its ``deployedBytecode``): ``{source: {library: [{"start": byte, "length": 20}, ...]}}``. ``libraries``
    maps a fully qualified name (``path.sol:Name``) to its address; names the bytecode does not reference are
    ignored. The placeholder text at those offsets does not matter (the artifacts hold Truffle's
    ``__Name___…``). Raises :class:`ArtifactError` if a referenced library has no address or a placeholder is
    left that no link reference covers.
    """
    code = bytecode.removeprefix("0x")
    missing: list[str] = []
    for source, names in link_references.items():
        for library, refs in names.items():
            address = libraries.get(f"{source}:{library}")
            if address is None:
                missing.append(f"{source}:{library}")
                continue
            raw = address.lower().removeprefix("0x")
            if not re.fullmatch(r"[0-9a-f]{40}", raw):
                raise ArtifactError(f"library {source}:{library} has the address {address!r}, which is not a "
                                    "20-byte hex address")
            for ref in refs:
                start, end = 2 * ref["start"], 2 * (ref["start"] + ref["length"])
                code = code[:start] + raw + code[end:]
    if missing:
        raise ArtifactError(f"the bytecode links libraries {sorted(missing)} but no address was given for them; "
                            "deploy them first and pass their addresses (see oracle._deploy.LINKED_LIBRARIES)")
    if not re.fullmatch(r"[0-9a-fA-F]*", code):
        raise ArtifactError("the bytecode holds library placeholders its link references do not cover; "
                            "regenerate the artifacts with 'npm run compile'")
    return "0x" + code


def deploy_linked(w3: Web3, name: str, libraries: dict[str, str], *args: Any, sender: LocalAccount,
                  timeout: float = 120.0) -> Contract:
    """Like :func:`oracle.deploy` for a contract whose bytecode links ``libraries`` (fq name -> address)."""
    art = load_artifact(name)
    bytecode = link_bytecode(art["bytecode"], libraries, art.get("linkReferences", {}))
    return deploy(w3, name, *args, sender=sender, timeout=timeout, bytecode=bytecode)


def deploy_all(w3: Web3, deployer: LocalAccount, *, treasury: str | None = None, token: str | None = None,
               progress: Any = None) -> Deployment:
    """Deploy the marketplace (with a test token unless ``token``, an ERC-20's address, is given); return the
    addresses and the first deploy block.

    Names: ``TestToken`` (only when deployed here), ``MarketplaceRegistry``, ``ReplicaLogic``, ``AccountLogic``,
    ``Marketplace``. The deployer owns the marketplace; slashed stake and fees go to ``treasury`` (default: the
    deployer). ``progress(name)`` is called before each deployment.
    """
    say = progress or (lambda _name: None)
    start = w3.eth.block_number + 1
    contracts: dict[str, str] = {}
    if token is None:
        say("TestToken")
        token = contracts["TestToken"] = deploy(w3, "TestToken", sender=deployer).address
    say("MarketplaceRegistry")
    registry = contracts["MarketplaceRegistry"] = deploy(w3, "MarketplaceRegistry", sender=deployer).address
    for name in LINKED_LIBRARIES:
        say(name)
        contracts[name] = deploy(w3, name, sender=deployer).address
    say("Marketplace")
    contracts["Marketplace"] = deploy_linked(
        w3, "Marketplace", {LINKED_LIBRARIES[name]: contracts[name] for name in LINKED_LIBRARIES},
        Web3.to_checksum_address(token), registry, treasury or deployer.address, sender=deployer,
    ).address
    return Deployment(contracts=contracts, deploy_block=start)
