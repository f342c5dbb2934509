"""Deploying the Tasknet contracts (used by ``tasknet up`` and by the test fixtures)."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from pydantic import BaseModel
from web3 import Web3

from ._chain import deploy


class Deployment(BaseModel):
    contracts: dict[str, str]
    deploy_block: int


def deploy_all(w3: Web3, deployer: LocalAccount) -> Deployment:
    """Deploy the payment token and the marketplace; return their addresses and the first deploy block."""
    start = w3.eth.block_number + 1
    token = deploy(w3, "TestToken", sender=deployer)
    return Deployment(contracts={"TestToken": token.address}, deploy_block=start)
