"""A second EVM client: geth in dev mode, one block a second, like a real chain (no anvil_/evm_ methods exist).

Fixtures:
    geth         -> Geth(rpc_url, w3, accounts): ``geth --dev --dev.period 1`` on free ports for the session; the
                    ten dev accounts (anvil's mnemonic) are funded with ETH from geth's dev account
    geth_market  -> the contracts deployed once on it (oracle.deploy_all), as an oracle.market.Market
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from oracle import connect, deploy_all, dev_accounts
from oracle.market import Market
from tasknet import _devnet


@dataclasses.dataclass
class Geth:
    rpc_url: str
    w3: Web3
    accounts: list[LocalAccount]


def _rpc(url: str, method: str, params: list[object]) -> object:
    answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=10).json()
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


@pytest.fixture(scope="session")
def geth(state_dir: Path) -> Iterator[Geth]:
    binary = shutil.which("geth")
    if binary is None:
        pytest.fail("geth is not installed; run scripts/setup (it builds geth from the Go module proxy)")
    port = _devnet.free_port()
    data = state_dir / "geth"
    log = (state_dir / "geth.log").open("w")
    proc = subprocess.Popen([binary, "--dev", "--dev.period", "1", "--datadir", str(data), "--http",
                             "--http.addr", "127.0.0.1", "--http.port", str(port), "--http.api", "eth,net,web3,txpool",
                             "--authrpc.port", str(_devnet.free_port()), "--port", "0", "--ipcdisable",
                             "--nodiscover", "--maxpeers", "0", "--verbosity", "2"], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                dev = _rpc(url, "eth_accounts", [])
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"geth did not start; see {state_dir / 'geth.log'}") from None
                time.sleep(0.2)
        assert isinstance(dev, list) and dev
        accounts = dev_accounts(10)
        hashes = [_rpc(url, "eth_sendTransaction", [{"from": dev[0], "to": a.address, "value": hex(1000 * 10**18)}])
                  for a in accounts]
        w3 = connect(url)
        for h in hashes:
            w3.eth.wait_for_transaction_receipt(h, timeout=60)  # type: ignore[arg-type]
        yield Geth(rpc_url=url, w3=w3, accounts=accounts)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


@pytest.fixture(scope="session")
def geth_market(geth: Geth) -> Market:
    deployment = deploy_all(geth.w3, geth.accounts[0])
    return Market(geth.w3, deployment.contracts["Marketplace"])
