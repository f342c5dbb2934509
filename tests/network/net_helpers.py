"""What the participants of a test network do (the requester and the dataset owner through the `tasknet` CLI
inside their own namespaces), and how the tests look at the chain and at each host's IPFS node."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from oracle import connect
from oracle.market import Market
from tasknet._testnet import HostInfo, Testnet, tasknet_cmd


def tasknet_json(tn: Testnet, host: str, *args: str, account: str | None = None) -> Any:
    done = tn.tasknet(host, *args, "--json", account=account)
    return json.loads(done.stdout)


def register_app(tn: Testnet, tag: str) -> int:
    """The app owner registers the local image (no registry: workers find it in the shared engine by digest);
    its metadata goes to the requester host's node."""
    app = tasknet_json(tn, "requester", "app", "register", tag, "--name", "net", "--no-push", account="app-owner")
    return int(app["app_id"])


def deposit(tn: Testnet, tokens: int = 100) -> None:
    tn.tasknet("requester", "account", "deposit", str(tokens))


def submit(tn: Testnet, app_id: int, *args: str) -> int:
    """``tasknet job submit`` on the requester host; returns the job id."""
    return int(tasknet_json(tn, "requester", "job", "submit", "--app", str(app_id), *args)["job_id"])


def watch_in_background(tn: Testnet, job_id: int, log: Path, timeout: int = 150) -> Any:
    """``tasknet job watch`` on the requester host (it pins each result on the requester's node as it lands)."""
    return tn.popen("requester", tasknet_cmd("job", "watch", str(job_id), "--timeout", str(timeout)), log_path=log)


def market(tn: Testnet) -> Market:
    return Market(connect(tn.info.rpc_url), tn.info.contracts["Marketplace"])


def results_by_worker(tn: Testnet, job_id: int) -> list[tuple[int, str, str]]:
    """(task index, worker address, result CID) of every result the job got, R = 1 (ResultSubmitted) or R > 1
    (ResultRevealed)."""
    m = market(tn)
    rows = []
    for name in ("ResultSubmitted", "ResultRevealed"):
        for e in getattr(m.contract.events, name)().get_logs(from_block=tn.info.deploy_block):
            if e["args"]["taskId"] >> 32 == job_id:
                rows.append((e["args"]["taskId"] & 0xFFFFFFFF, e["args"]["worker"], e["args"]["resultCID"]))
    return sorted(rows)


def host_of(tn: Testnet, address: str) -> str:
    for h in tn.info.workers():
        if h.account and tn.info.account(h.account).address.lower() == address.lower():
            return h.name
    raise AssertionError(f"no worker host signs as {address}")


def ipfs_rpc(host: HostInfo, command: str, *, files: Any = None, **params: Any) -> httpx.Response:
    """A call to the host's kubo RPC API (from this, the root namespace, through the bridge)."""
    return httpx.post(f"{host.ipfs_api}/api/v0/{command}", params=params, files=files, timeout=30)


def dataset_blocks(owner: HostInfo, cid: str) -> list[str]:
    """Every block of ``cid`` (the root first), listed by the node that holds it."""
    answer = ipfs_rpc(owner, "refs", arg=cid, recursive="true", unique="true")
    answer.raise_for_status()
    return [cid, *[json.loads(line)["Ref"] for line in answer.text.splitlines() if line.strip()]]


def holds_locally(host: HostInfo, block: str) -> bool:
    """Whether the host's node has the block in its own store (asked offline: it fetches nothing)."""
    return ipfs_rpc(host, "block/stat", arg=block, offline="true").status_code == 200


def peer_id(host: HostInfo) -> str:
    return str(ipfs_rpc(host, "id").json()["ID"])


def wait_for(check: Callable[[], Any], what: str, timeout: float = 90, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
