"""Point a copy of examples/worker/worker.toml at the devnet and give it a dev account's key as a keystore.

    cp examples/worker/worker.toml worker.toml
    export TASKNET_PASSWORD='a long passphrase'
    .venv/bin/python examples/worker/devnet.py worker-3 worker.toml
    tasknet worker run --config worker.toml

Fills in the network keys (rpc_url, chain_id, marketplace, deploy_block, ipfs_api) from the devnet file, writes
ROLE's key as an encrypted JSON keystore ROLE.json beside the settings file (password: $TASKNET_PASSWORD,
the one the worker reads) and sets keystore and state_dir (the devnet's workers/ROLE folder). Everything else in
the file is left as you wrote it. The devnet's keys come from a public mnemonic: never use them elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tomllib
from pathlib import Path

from eth_account import Account

from oracle import DevnetInfo


def fill(text: str, values: dict[str, str | int]) -> str:
    """``text`` with each ``key = value`` line (commented out or not) set to ``values[key]``; comments kept."""
    for key, value in values.items():
        line = re.compile(rf'^#?[ \t]*{re.escape(key)}[ \t]*=[ \t]*("[^"\n]*"|[^\s#]*)', re.MULTILINE)
        text, n = line.subn(f"{key} = {json.dumps(value)}".replace("\\", "\\\\"), text, count=1)
        if n == 0:
            raise SystemExit(f"no '{key} = ...' line in the settings file: copy examples/worker/worker.toml first")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", help="devnet account, e.g. worker-3")
    parser.add_argument("config", type=Path, help="the settings file to fill in (a copy of worker.toml)")
    parser.add_argument("--devnet-file", type=Path, default=None, help="default: $TASKNET_HOME/devnet/devnet.json")
    args = parser.parse_args()
    password = os.environ.get("TASKNET_PASSWORD")
    if not password:
        sys.exit("set TASKNET_PASSWORD first: the keystore is encrypted with it, and the worker reads it")
    info = DevnetInfo.load(args.devnet_file)
    keystore = (args.config.parent / f"{args.role}.json").resolve()
    key = bytes.fromhex(info.account(args.role).private_key.removeprefix("0x"))
    keystore.write_text(json.dumps(Account.encrypt(key, password)))
    keystore.chmod(0o600)
    text = fill(args.config.read_text(), {
        "rpc_url": info.rpc_url, "chain_id": info.chain_id, "marketplace": info.contracts["Marketplace"],
        "deploy_block": info.deploy_block, "ipfs_api": info.ipfs_api, "keystore": str(keystore),
        "state_dir": str(Path(info.state_dir) / "workers" / args.role),
    })
    tomllib.loads(text)  # still valid TOML
    args.config.write_text(text)
    print(f"{args.config}: devnet settings for {args.role} ({info.account(args.role).address}), keystore {keystore}")


if __name__ == "__main__":
    main()
