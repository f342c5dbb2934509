"""Direct contract calls the worker tests use to play app owner and requester (no SDK involved)."""

from __future__ import annotations

from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.logs import DISCARD

from oracle import IpfsClient
from oracle.images import build_app_image, build_busybox_base, image_digest
from oracle.market import Market
from oracle.tx import TxSender

ETHER = 10**18

ECHO_APP = """#!/bin/sh
# test app: output = the input file + the arguments; exit code from the first argument if it is 'fail'
set -eu
[ "${1:-}" = fail ] && { echo "asked to fail" >&2; exit 3; }
[ "${1:-}" = sleep ] && sleep "$2"
cat /in/data.txt > /out/result.txt
echo "args: $*" >> /out/result.txt
"""


def build_script_app(docker_client, ctx: Path, script: str, tag: str) -> str:
    """A busybox app image tagged ``tag`` whose entrypoint is the shell ``script``, built in the folder ``ctx``;
    returns its image id (the digest registered on chain)."""
    build_busybox_base(docker_client)
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "app.sh").write_text(script)
    (ctx / "app.sh").chmod(0o755)
    (ctx / "Dockerfile").write_text("FROM tasknet/base-busybox\nCOPY app.sh /app.sh\nENTRYPOINT [\"/app.sh\"]\n")
    build_app_image(docker_client, ctx, tag)
    return image_digest(docker_client, tag)


def build_echo_app(docker_client, tmp: Path) -> str:
    """A busybox app image (tag tasknet-test/echo); returns its image id (the digest registered on chain)."""
    return build_script_app(docker_client, tmp / "echo-app", ECHO_APP, "tasknet-test/echo:1")


def register_app(w3: Web3, market: Market, owner: LocalAccount, digest: str, *, price: int = 0,
                 deterministic_file: str = "") -> int:
    sender = TxSender(w3, owner, extra_abis=market.error_abis)
    receipt = sender.transact(market.registry.functions.registerApp(
        "tasknet-test/echo:1", bytes.fromhex(digest.removeprefix("sha256:")), "ipfs://none", price, True,
        deterministic_file))
    return int(market.registry.events.AppRegistered().process_receipt(receipt, errors=DISCARD)[0]["args"]["appId"])


def fund(w3: Web3, market: Market, who: LocalAccount, amount: int) -> None:
    sender = TxSender(w3, who, extra_abis=market.error_abis)
    sender.transact(market.token.functions.faucet(who.address, amount))
    sender.transact(market.token.functions.approve(market.address, amount))
    sender.transact(market.contract.functions.deposit(amount))


def post_job(w3: Web3, market: Market, requester: LocalAccount, ipfs: IpfsClient, app_id: int, *, tasks: int,
             replication: int = 1, reward: int = ETHER // 10, max_run: int = 30, deadline_s: int = 3600,
             doc: dict | None = None, data: bytes = b"hello\n", encryption_key: bytes = b"",
             dataset_id: int = 0, cores: int = 1, memory_mb: int = 0, gpus: int = 0) -> int:
    data_cid = ipfs.add_bytes(data)
    doc = doc or {"count": tasks, "template": {"args": ["task", "{index}"]},
                  "common_inputs": [{"uri": f"ipfs://{data_cid}", "path": "data.txt"}]}
    inputs_cid = ipfs.add_json(doc)
    params = (app_id, dataset_id, tasks, replication, reward, market.chain_time() + deadline_s, max_run, cores,
              memory_mb, gpus, 0, 0,
              "0x" + "00" * 20, inputs_cid, encryption_key)
    sender = TxSender(w3, requester, extra_abis=market.error_abis)
    receipt = sender.transact(market.contract.functions.postJob(params))
    return int(market.contract.events.JobPosted().process_receipt(receipt, errors=DISCARD)[0]["args"]["jobId"])
