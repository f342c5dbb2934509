"""Deploying the Tasknet contracts (used by ``tasknet up`` and by the test fixtures).

Five deployments, in order: the payment token (``TestToken``), the app/dataset registry
(``MarketplaceRegistry``), the linked libraries ``ReplicaLogic`` (R > 1 consensus) and ``AccountLogic`` (workers,
parameters, job bookkeeping), which the marketplace DELEGATECALLs so each contract stays under the 24 KiB
code-size limit, and the ``Marketplace`` itself.
"""

from __future__ import annotations

import re
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from pydantic import BaseModel
from web3 import Web3
from web3.contract import Contract

from ._artifacts import load_artifact
from ._chain import deploy
from .exceptions import ArtifactError

#: Libraries the marketplace links against: artifact name -> fully qualified source name.
LINKED_LIBRARIES = {"ReplicaLogic": "contracts/libraries/ReplicaLogic.sol:ReplicaLogic",
                    "AccountLogic": "contracts/libraries/AccountLogic.sol:AccountLogic"}


class Deployment(BaseModel):
    contracts: dict[str, str]
    deploy_block: int


def link_bytecode(bytecode: str, libraries: dict[str, str]) -> str:
    """Replace solc's ``__$<keccak(fq name)[:34]>$__`` placeholders with library addresses.

    ``libraries`` maps a fully qualified name (``path.sol:Name``) to its address. Raises
    :class:`ArtifactError` if a placeholder is left unresolved.
    """
    for fq_name, address in libraries.items():
        placeholder = "__$" + keccak(text=fq_name).hex().removeprefix("0x")[:34] + "$__"
        bytecode = bytecode.replace(placeholder, address.lower().removeprefix("0x"))
    missing = re.findall(r"__\$[0-9a-f]{34}\$__", bytecode)
    if missing:
        raise ArtifactError(f"unlinked library placeholders {sorted(set(missing))} in bytecode; pass their "
                            "addresses (see oracle._deploy.LINKED_LIBRARIES)")
    return bytecode


def deploy_linked(w3: Web3, name: str, libraries: dict[str, str], *args: Any, sender: LocalAccount,
                  timeout: float = 120.0) -> Contract:
    """Like :func:`oracle.deploy` for a contract whose bytecode links ``libraries`` (fq name -> address)."""
    bytecode = link_bytecode(load_artifact(name)["bytecode"], libraries)
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
