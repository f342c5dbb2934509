"""Session-scoped real components: an anvil chain (snapshot/revert per test), a kubo daemon, the Docker engine.

Fixtures:
    anvil        -> Anvil(rpc_url, w3, accounts) for the whole session (own port, automine)
    w3           -> the session's Web3, wrapped in evm_snapshot/evm_revert so each test starts clean
    accounts     -> ten funded LocalAccounts (anvil's dev mnemonic)
    deployment   -> the contracts deployed once per session (oracle.deploy_all), as {name: Contract}
    ipfs         -> oracle.IpfsClient on a fresh kubo repo (--offline)
    market       -> the deployed Marketplace as an oracle.market.Market
    echo_digest  -> image id of the busybox echo test app (tests/market_helpers.py), built once
    docker_client-> docker.DockerClient of a running engine (started as root when none answers)
    state_dir    -> a session temp folder holding the components' state and logs
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from oracle import IpfsClient, connect, contract_at, deploy_all, dev_accounts
from oracle.market import Market
from tasknet import _devnet


@dataclasses.dataclass
class Anvil:
    rpc_url: str
    w3: Web3
    accounts: list[LocalAccount]


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tasknet-components")


@pytest.fixture(scope="session")
def anvil(state_dir: Path) -> Iterator[Anvil]:
    info, url = _devnet.start_anvil(state_dir / "anvil", _devnet.free_port())
    try:
        yield Anvil(rpc_url=url, w3=connect(url), accounts=dev_accounts(10))
    finally:
        _devnet.stop(info)


@pytest.fixture(scope="session")
def _deployed(anvil: Anvil) -> dict[str, str]:
    return deploy_all(anvil.w3, anvil.accounts[0]).contracts


@pytest.fixture
def w3(anvil: Anvil, _deployed: dict[str, str]) -> Iterator[Web3]:
    snap = anvil.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        yield anvil.w3
    finally:
        anvil.w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]
        # anvil's revert also rewinds its clock to the snapshot's block: put it back on the wall clock, as a
        # real chain's is (else every test's duration accumulates as a lag; tests/integration/test_worker.py
        # has its own test of a chain whose clock is behind)
        latest = int(anvil.w3.eth.get_block("latest")["timestamp"])
        anvil.w3.provider.make_request("anvil_setTime", [max(int(time.time()), latest + 1)])  # type: ignore[arg-type]


@pytest.fixture
def accounts(anvil: Anvil) -> list[LocalAccount]:
    return anvil.accounts


@pytest.fixture
def deployment(w3: Web3, _deployed: dict[str, str]) -> dict[str, Contract]:
    return {name: contract_at(w3, name, addr) for name, addr in _deployed.items()}


@pytest.fixture(scope="session")
def ipfs(state_dir: Path) -> Iterator[IpfsClient]:
    info, api, _gateway = _devnet.start_kubo(state_dir / "kubo", _devnet.free_port(), _devnet.free_port())
    client = IpfsClient(api)
    try:
        yield client
    finally:
        client.close()
        _devnet.stop(info)


@pytest.fixture(scope="session")
def docker_client(state_dir: Path) -> Iterator["docker.DockerClient"]:  # type: ignore[name-defined]  # noqa: F821
    import docker

    _devnet.ensure_docker(state_dir / "docker")  # left running: other sessions may share the engine
    client = docker.from_env()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def echo_digest(docker_client: "docker.DockerClient", tmp_path_factory: pytest.TempPathFactory) -> str:  # type: ignore[name-defined]  # noqa: F821
    """The busybox echo app of tests/market_helpers.py (image id, the digest registered on chain), built once."""
    from tests.market_helpers import build_echo_app

    return build_echo_app(docker_client, tmp_path_factory.mktemp("echo-app"))


@pytest.fixture
def market(w3: Web3, deployment: dict[str, Contract]) -> Market:
    """The session's Marketplace as an oracle.market.Market."""
    return Market(w3, deployment["Marketplace"].address)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability-report", metavar="PATH", default=None,
        help="append one JSON line per test marked `reliability` (kind, name, how, outcome) to PATH; "
        "scripts/reliability turns them into RELIABILITY.md")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Record the outcome of every `@pytest.mark.reliability(kind=..., name=..., how=...)` test.

    kind is "fault" (injected and survived), "attack" (tried and blocked) or "load"; a test passes only when
    the system held, so a failed test is reported as a fault not survived / an attack not blocked.
    """
    outcome = yield
    report = outcome.get_result()
    path = item.config.getoption("--reliability-report")
    marker = item.get_closest_marker("reliability")
    if path is None or marker is None:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        import json

        entry = {
            "nodeid": item.nodeid,
            "kind": marker.kwargs.get("kind", "fault"),
            "name": marker.kwargs.get("name", item.name),
            "how": marker.kwargs.get("how", ""),
            "outcome": report.outcome,
            "seconds": round(report.duration, 2),
            "details": dict(item.user_properties).get("reliability", ""),
        }
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under tests/unit are marked ``unit``; everything else ``integration`` unless marked ``e2e``."""
    for item in items:
        path = str(item.fspath)
        if "/tests/unit/" in path:
            item.add_marker(pytest.mark.unit)
        elif "/tests/e2e/" in path:
            item.add_marker(pytest.mark.e2e)
        else:
            item.add_marker(pytest.mark.integration)
