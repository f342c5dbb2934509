"""``tasknet demo``: the main job, end to end on the embedded devnet.

Until the worker daemon lands this is a smoke run: it starts (or reuses) the devnet, moves tokens on the chain,
round-trips an inputs document through IPFS and checks the Docker engine, then stops what it started.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from oracle import DevnetInfo, IpfsClient, connect, contract_at, send
from oracle.devnet import default_devnet_file
from oracle.exceptions import TasknetError
from oracle._chain import dev_accounts

from . import _devnet


class DemoFailed(TasknetError):
    """A step of the demo did not produce what it must."""


def ensure_devnet(devnet_file: Path | None) -> tuple[DevnetInfo, bool]:
    """Reuse a healthy devnet or start one; return it and whether we started it."""
    path = devnet_file or default_devnet_file()
    existing, dead = _devnet.devnet_file_state(path)
    if existing is not None and not dead and all(s.healthy for s in _devnet.status(path)):
        return existing, False
    if existing is not None or dead:
        _devnet.down(path)
    return _devnet.up(_devnet.UpOptions(rpc_port=_devnet.free_port()), path), True


def run_demo(devnet_file: Path | None, *, keep: bool, console: Console) -> None:
    t0 = time.monotonic()
    with console.status("starting the devnet"):
        info, started = ensure_devnet(devnet_file)
    console.print(f"devnet {'started' if started else 'reused'}: chain {info.rpc_url}, IPFS {info.ipfs_api}")
    try:
        w3 = connect(info.rpc_url)
        token = contract_at(w3, "TestToken", info.contracts["TestToken"])
        requester, worker = dev_accounts(6)[1], dev_accounts(6)[4]
        before = token.functions.balanceOf(worker.address).call()
        receipt = send(w3, token.functions.transfer(worker.address, 10**18), requester)
        after = token.functions.balanceOf(worker.address).call()
        if after - before != 10**18:
            raise DemoFailed(f"a token transfer moved {after - before} wei instead of 10**18")
        console.print(f"chain: transfer mined in block {receipt['blockNumber']} ({receipt['gasUsed']} gas)")
        with IpfsClient(info.ipfs_api) as ipfs:
            doc = {"tasks": [{"args": ["frame", str(i)]} for i in range(3)]}
            cid = ipfs.add_json(doc)
            if ipfs.cat_json(cid) != doc:
                raise DemoFailed(f"IPFS returned different content for {cid}")
        console.print(f"ipfs: inputs document stored as {cid}")
        problem = _devnet.docker_healthy()
        if problem:
            raise DemoFailed(problem)
        console.print("docker: engine answers")
        console.print(f"[bold green]demo smoke run passed[/] in {time.monotonic() - t0:.1f} s")
    finally:
        if started and not keep:
            _devnet.down(devnet_file)
