"""Fixtures of the reliability suite's attack tests (the session anvil, kubo and Docker come from tests/conftest.py).

    env          -> the contract tests' Env (tests/contracts/market_helpers.py) on the session deployment
    second_market-> another Marketplace (same token and registry, own address) for cross-contract replays
    hostile      -> an Env on a fresh Marketplace whose token is contracts/test/ReentrancyProbes.sol:HostileToken
                    (unlimited faucet for uint-edge amounts; can re-enter the marketplace from transfer/permit)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from oracle._chain import deploy
from oracle._deploy import LINKED_LIBRARIES, deploy_linked
from tests.contracts.market_helpers import Env
from tests.market_helpers import build_echo_app
from tests.reliability.fault_helpers import PrivateChain, private_chain


def deploy_market(env: Env, token: str, registry: str) -> Contract:
    """A new Marketplace (own libraries) on ``token`` and ``registry``; the env's owner owns it and is its treasury."""
    libs = {LINKED_LIBRARIES[n]: deploy(env.w3, n, sender=env.owner).address for n in LINKED_LIBRARIES}
    return deploy_linked(env.w3, "Marketplace", libs, token, registry, env.owner.address, sender=env.owner)


@pytest.fixture
def env(w3: Web3, accounts: list[LocalAccount], deployment: dict[str, Contract]) -> Env:
    return Env(w3=w3, market=deployment["Marketplace"], registry=deployment["MarketplaceRegistry"],
               token=deployment["TestToken"], owner=accounts[0], requester=accounts[1], app_owner=accounts[2],
               dataset_owner=accounts[3], workers=accounts[4:9], outsider=accounts[9])


@pytest.fixture
def second_market(env: Env) -> Env:
    """The same roles, token and registry on a second Marketplace contract."""
    return dataclasses.replace(env, market=deploy_market(env, env.token.address, env.registry.address))


@pytest.fixture
def hostile(env: Env) -> Env:
    """The same roles on a Marketplace whose payment token is a HostileToken (its own registry)."""
    token = deploy(env.w3, "HostileToken", sender=env.owner)
    registry = deploy(env.w3, "MarketplaceRegistry", sender=env.owner)
    return dataclasses.replace(env, token=token, registry=registry,
                               market=deploy_market(env, token.address, registry.address))


# --- the worker fault tests' private chain and app (tests/reliability/test_faults_*.py) ---------------------------
@pytest.fixture(scope="module")
def fault_echo_digest(docker_client, tmp_path_factory) -> str:
    return build_echo_app(docker_client, tmp_path_factory.mktemp("fault-app"))


@pytest.fixture
def fault_chain(tmp_path: Path) -> Iterator[PrivateChain]:
    """A private anvil of the test's own (a test may move its clock), the Marketplace deployed."""
    with private_chain(tmp_path / "chain") as chain:
        yield chain
