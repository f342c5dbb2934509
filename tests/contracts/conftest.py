"""Fixtures of the marketplace contract tests (helpers live in ``market_helpers``)."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from market_helpers import E18, Env
from web3 import Web3
from web3.contract import Contract


@pytest.fixture
def env(w3: Web3, accounts: list[LocalAccount], deployment: dict[str, Contract]) -> Env:
    return Env(w3=w3, market=deployment["Marketplace"], registry=deployment["MarketplaceRegistry"],
               token=deployment["TestToken"], owner=accounts[0], requester=accounts[1], app_owner=accounts[2],
               dataset_owner=accounts[3], workers=accounts[4:9], outsider=accounts[9])



@pytest.fixture
def enrolled_app(env: Env) -> int:
    """A free public app, a requester holding 1,000 tokens, every worker registered and staked."""
    app = env.app()
    env.fund(env.requester, 1000 * E18)
    for w in env.workers:
        env.enroll(w)
    return app
