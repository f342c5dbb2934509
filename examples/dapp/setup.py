"""Deploy the example Dapp (contracts/examples/FileHasher.sol) on the devnet and write the page's config.json.

    .venv/bin/python examples/dapp/setup.py [--devnet-file PATH] [--app ID] [--price 0.2] [--reward 0.1]
                                            [--ttl 600] [--max-run 60] [--out examples/dapp/config.json]

Without ``--app`` it builds examples/dapp/app (``FROM tasknet/base-busybox``: run ``tasknet image base
--no-python`` once) and registers it as the app ``hasher`` (the ``app-owner`` account, price 0.01 token). The
Dapp is deployed and owned by the devnet's ``deployer`` account; the page's fallback account, when the browser
has no wallet, is the ``requester``. Prints the config as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from oracle import Client, DevnetInfo, deploy
from oracle.exceptions import TasknetError

HERE = Path(__file__).resolve().parent
APP_TAG = "tasknet-examples/hasher:1"
E18 = 10**18


def build_hasher_app(owner: Client, *, price: int = E18 // 100) -> int:
    """Build examples/dapp/app and register it (pushed to the devnet's image registry); return its app id."""
    from oracle.images import build_busybox_base

    build_busybox_base(owner.docker)
    owner.apps.build(HERE / "app", APP_TAG)
    return owner.apps.register(APP_TAG, name="hasher", price=price, description="sha256, size, lines and words of "
                              "/in/file", category="example").app_id


def deploy_file_hasher(operator: Client, app_id: int, *, price: int, reward: int, max_run: int, ttl: int) -> str:
    """Deploy FileHasher for ``app_id`` (one replica per request); return its address."""
    settings = (app_id, 1, reward, max_run, ttl)  # appId, replication, reward, maxRunSeconds, ttl
    return str(deploy(operator.w3, "FileHasher", operator.market.address, settings, price,
                      sender=operator.signer).address)


def page_config(info: DevnetInfo, file_hasher: str, role: str = "requester") -> dict[str, Any]:
    """What examples/dapp/index.html reads: where the chain, IPFS and the contracts are, and a dev account."""
    account = info.account(role)
    return {
        "chainId": info.chain_id, "rpcUrl": info.rpc_url, "ipfsApi": info.ipfs_api, "ipfsGateway": info.ipfs_gateway,
        "deployBlock": info.deploy_block,
        "contracts": {"Marketplace": info.contracts["Marketplace"],
                      "MarketplaceRegistry": info.contracts["MarketplaceRegistry"],
                      "TestToken": info.contracts["TestToken"], "FileHasher": file_hasher},
        "devAccount": {"role": role, "address": account.address, "privateKey": account.private_key},
    }


def setup(devnet_file: Path | None = None, *, app_id: int | None = None, price: int = E18 // 5,
          reward: int = E18 // 10, max_run: int = 60, ttl: int = 600, out: Path = HERE / "config.json"
          ) -> dict[str, Any]:
    """Register the app (unless ``app_id``), deploy the Dapp, write ``out``; return the config."""
    info = DevnetInfo.load(devnet_file)
    if app_id is None:
        with Client.from_devnet(role="app-owner", devnet_file=devnet_file) as owner:
            app_id = build_hasher_app(owner)
    with Client.from_devnet(role="deployer", devnet_file=devnet_file) as operator:
        address = deploy_file_hasher(operator, app_id, price=price, reward=reward, max_run=max_run, ttl=ttl)
    config = page_config(info, address)
    config["appId"] = app_id
    out.write_text(json.dumps(config, indent=2) + "\n")
    return config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devnet-file", type=Path, default=None)
    p.add_argument("--app", type=int, default=None, help="an app id already registered (default: build and "
                   "register examples/dapp/app)")
    p.add_argument("--price", type=float, default=0.2, help="what a request costs its user, in tokens")
    p.add_argument("--reward", type=float, default=0.1, help="the worker's reward per request, in tokens")
    p.add_argument("--max-run", type=int, default=60, help="seconds a task may run")
    p.add_argument("--ttl", type=int, default=600, help="seconds from a request to its job's deadline")
    p.add_argument("--out", type=Path, default=HERE / "config.json")
    a = p.parse_args()
    try:
        config = setup(a.devnet_file, app_id=a.app, price=int(a.price * E18), reward=int(a.reward * E18),
                       max_run=a.max_run, ttl=a.ttl, out=a.out)
    except TasknetError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({k: v for k, v in config.items() if k != "devAccount"}, indent=2))


if __name__ == "__main__":
    main()
