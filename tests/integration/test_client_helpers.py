"""Fixtures and helpers shared by the requester SDK, CLI and frontend tests (no tests of its own).

``devnet_file`` writes a devnet file that points at the session's real anvil (inside the per-test snapshot),
kubo and image registry, so ``Client.from_devnet`` and the ``tasknet`` CLI run exactly as on ``tasknet up``.
``drive_worker`` plays an honest worker with the contract directly (claim, pack, seal, upload, submit or
commit/reveal), and ``run_worker`` runs the real worker daemon in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from eth_account.signers.local import LocalAccount
from web3 import Web3

from oracle import Client, DevnetInfo, send
from oracle.archive import encrypt_file, pack_result
from oracle.devnet import DevAccount
from oracle.images import BUSYBOX_BASE, build_app_image, build_busybox_base
from oracle.ipfs import IpfsClient
from oracle.market import JobView, Market
from oracle.models import InputsDocument
from oracle.protocol import commitment, new_salt, task_id
from tasknet import _devnet

E18 = 10**18
APP_TAG = "tasknet-test/echo:1"
APP_SCRIPT = """#!/bin/sh
# echo app: writes its arguments and the inputs it sees to /out/result.txt
set -eu
echo "args: $*" > /out/result.txt
for f in $(cd /in 2>/dev/null && find . -type f | sort); do echo "in: $f $(cat /in/$f | head -c 64)" >> /out/result.txt; done
echo "done $1" 
"""


@pytest.fixture(scope="session")
def image_registry(state_dir: Path) -> Iterator[str]:
    info, host = _devnet.start_registry(state_dir / "registry", _devnet.free_port())
    try:
        yield host
    finally:
        _devnet.stop(info)


@pytest.fixture(scope="session")
def app_image(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny busybox app (echo of args and inputs), built once per session; returns its tag."""
    build_busybox_base(docker_client)
    ctx = tmp_path_factory.mktemp("echo-app")
    (ctx / "run.sh").write_text(APP_SCRIPT)
    (ctx / "Dockerfile").write_text(f"FROM {BUSYBOX_BASE}\nCOPY run.sh /app/run.sh\n"
                                    'ENTRYPOINT ["/bin/sh", "/app/run.sh"]\n')
    build_app_image(docker_client, ctx, APP_TAG)
    return APP_TAG


@pytest.fixture
def devnet_file(w3: Web3, anvil: Any, _deployed: dict[str, str], ipfs: IpfsClient, image_registry: str,
                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A devnet file for the session components; TASKNET_HOME (keyring) is the test's temp folder."""
    monkeypatch.setenv("TASKNET_HOME", str(tmp_path / "home"))
    accounts = anvil.accounts
    info = DevnetInfo(
        rpc_url=anvil.rpc_url, chain_id=int(w3.eth.chain_id), ipfs_api=ipfs.api_url, ipfs_gateway="",
        registry=image_registry, docker_host="unix:///var/run/docker.sock", contracts=_deployed, deploy_block=0,
        mnemonic="test test test test test test test test test test test junk",
        accounts=[DevAccount(role=r, address=a.address, private_key="0x" + a.key.hex().removeprefix("0x"))
                  for r, a in zip(_devnet.ROLES, accounts, strict=True)],
        state_dir=str(tmp_path / "devnet"))
    path = tmp_path / "devnet" / "devnet.json"
    info.save(path)
    _devnet.write_network_artifacts(tmp_path / "devnet" / "artifacts", info.chain_id, _deployed)
    monkeypatch.setenv("TASKNET_DEVNET_FILE", str(path))
    return path


def client(devnet_file: Path, role: str = "requester", fund: int = 0) -> Client:
    c = Client.from_devnet(role=role, devnet_file=devnet_file)
    if fund:
        c.account.faucet(fund)
        c.account.deposit(fund)
    return c


def register_echo_app(devnet_file: Path, app_image: str, **kw: Any) -> int:
    with client(devnet_file, "app-owner") as owner:
        return owner.apps.register(app_image, name="echo", **kw).app_id


# -- an honest worker, driven by hand -------------------------------------------------------------------
def enroll(w3: Web3, market: Market, worker: LocalAccount, stake: int = 5 * E18, cores: int = 4,
           memory: int = 8000) -> None:
    extra = market.error_abis
    send(w3, market.contract.functions.registerWorker(cores, memory, 0, 1), worker, extra_abis=extra)
    if stake:
        send(w3, market.token.functions.faucet(worker.address, stake), worker, extra_abis=extra)
        send(w3, market.token.functions.approve(market.address, stake), worker, extra_abis=extra)
        send(w3, market.contract.functions.deposit(stake), worker, extra_abis=extra)
        send(w3, market.contract.functions.stake(stake), worker, extra_abis=extra)


def produce(ipfs: IpfsClient, job: JobView, index: int, tmp: Path, *, lie: bool = False) -> tuple[bytes, str]:
    """Run task ``index`` 'by hand' (no container): the output the echo app would write; returns (digest, cid)."""
    doc = InputsDocument.model_validate(ipfs.cat_json(job.inputs_cid))
    spec = doc.task(index)
    folder = tmp / f"w-{job.job_id}-{index}-{'lie' if lie else 'ok'}"
    (folder / "out").mkdir(parents=True, exist_ok=True)
    text = f"args: {' '.join(spec.args)}\n" + "".join(
        f"in: ./{r.path} {ipfs.cat(r.uri.removeprefix('ipfs://'))[:64].decode(errors='replace')}\n"
        for r in sorted(spec.inputs, key=lambda r: r.path))
    (folder / "out" / "result.txt").write_text(text + ("LIE\n" if lie else ""))
    (folder / "stdout.txt").write_text(f"done {index}\n")
    packed = pack_result(folder / "out", folder / "result.tar", logs={"stdout.txt": folder / "stdout.txt"})
    upload = packed.archive_path
    if job.encryption_key:
        upload = folder / "result.sealed"
        encrypt_file(packed.archive_path, upload, job.encryption_key)
    return packed.digest_bytes, ipfs.add_file(upload)


def drive_worker(w3: Web3, market: Market, ipfs: IpfsClient, workers: list[LocalAccount], job_id: int,
                 tmp: Path, indexes: list[int] | None = None, liars: int = 0) -> None:
    """Claim and complete tasks of ``job_id`` as ``workers`` (R = 1: the first worker; R > 1: R of them)."""
    logs = market.contract.events.JobPosted().get_logs(from_block=0, argument_filters={"jobId": job_id})
    job = JobView.from_event(dict(logs[0]["args"]))
    extra = market.error_abis
    fns = market.contract.functions
    for index in indexes if indexes is not None else range(job.num_tasks):
        tid = task_id(job_id, index)
        if job.replication == 1:
            digest, cid = produce(ipfs, job, index, tmp)
            send(w3, fns.claim(tid), workers[0], extra_abis=extra)
            send(w3, fns.submit(tid, digest, cid, b""), workers[0], extra_abis=extra)
            continue
        plan = []
        for n, w in enumerate(workers[:job.replication]):
            digest, cid = produce(ipfs, job, index, tmp, lie=n < liars)
            salt = new_salt()
            send(w3, fns.claim(tid), w, extra_abis=extra)
            send(w3, fns.commit(tid, commitment(tid, digest, salt, w.address)), w, extra_abis=extra)
            plan.append((w, digest, salt, cid))
        for w, digest, salt, cid in plan:
            send(w3, fns.reveal(tid, digest, salt, cid, b""), w, extra_abis=extra)


# -- the real worker daemon -----------------------------------------------------------------------------
@contextlib.contextmanager
def run_worker(devnet_file: Path, role: str, state_dir: Path, **overrides: Any) -> Iterator[Any]:
    """The worker daemon in a thread, stopped (drained) on exit."""
    from worker._daemon import Worker
    from worker._settings import WorkerSettings

    with client(devnet_file, role) as c:
        c.account.faucet(10 * E18)
    settings = WorkerSettings.from_devnet(role, devnet_file, stake=2 * E18, state_dir=state_dir,
                                          poll_interval=0.1, claim_backoff_max=0.0, drain_timeout=30.0, **overrides)
    w = Worker(settings)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    errors: list[BaseException] = []

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(w.async_run(stop))
        except BaseException as exc:  # noqa: BLE001  (re-raised in the test's thread)
            errors.append(exc)

    thread = threading.Thread(target=main, name=f"worker-{role}", daemon=True)
    thread.start()
    try:
        yield w
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        if errors:
            raise errors[0]


# -- the tasknet CLI in this process ----------------------------------------------------------------------------
def tasknet(*args: str, code: int = 0) -> Result:
    """Run ``tasknet ARGS`` (click's runner) and check its exit code."""
    from tasknet.cli import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def as_json(*args: str) -> Any:
    """``tasknet ARGS --json``, parsed."""
    return json.loads(tasknet(*args, "--json").stdout)
