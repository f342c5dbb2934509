"""Shared pieces of the fault-injection tests (tests/reliability/test_faults_*.py): private components that a
test may break without hurting the session's ones, worker daemons run as real processes, and end-state checks.

Everything here is real: anvil (with a state file so it can be stopped and restarted), kubo, dockerd, the
``tasknet worker run`` and ``tasknet indexer run`` processes. Every start has a matching stop that the tests call
in ``finally`` blocks; nothing here kills a process it did not start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from oracle import DEV_MNEMONIC, connect, deploy_all, dev_accounts
from oracle.market import Market
from oracle.protocol import task_id
from tasknet import _devnet
from worker._journal import Journal, Step
from worker._settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
ETHER = 10**18
STAKE = 5 * ETHER
SETTLE_EVENTS = ("ResultSubmitted", "TaskFinalized", "TaskFailed")  # a task's final event (R = 1; R > 1)


# --- waiting ---------------------------------------------------------------------------------------------
def wait_for(cond: Callable[[], Any], timeout: float = 120.0, what: str = "condition", interval: float = 0.25,
             on_timeout: Callable[[], str] | None = None) -> Any:
    """Poll ``cond`` until it returns something truthy (returned); transport errors count as 'not yet'."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = cond()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - a component may be down on purpose while we wait
            last = exc
        time.sleep(interval)
    extra = on_timeout() if on_timeout else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                         + (f" (last error: {last})" if last else "") + (f"\n{extra}" if extra else ""))


def rpc(w3: Web3, method: str, *params: Any) -> Any:
    reply = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    if "error" in reply:
        raise RuntimeError(f"{method} failed: {reply['error']}")
    return reply.get("result")


# --- a private chain ----------------------------------------------------------------------------------------
class PrivateChain:
    """A private anvil on its own port whose whole state lives in ``folder/state.json`` (loaded at start,
    dumped on a clean exit), with the contracts deployed. ``stop()`` + ``start()`` is a node restart."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = _devnet.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state_file = folder / "state.json"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.start()
        self.w3 = connect(self.url)
        self.accounts: list[LocalAccount] = dev_accounts(10)
        self.contracts = deploy_all(self.w3, self.accounts[0]).contracts
        self.market = Market(self.w3, self.contracts["Marketplace"])

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "anvil already running"
        cmd = [_devnet.find_anvil(), "--host", "127.0.0.1", "--port", str(self.port), "--chain-id", "31337",
               "--mnemonic", DEV_MNEMONIC, "--accounts", "10", "--balance", "10000", "--silent",
               "--state", str(self.state_file)]
        log = (self.folder / "anvil.log").open("ab")
        with log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self.starts += 1
        wait_for(lambda: _devnet.rpc_healthy(self.url) is None, 30, "anvil to answer", interval=0.05)

    def stop(self) -> None:
        """A clean stop (SIGTERM): anvil dumps its whole state to the state file on the way out."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def new_worker(self) -> LocalAccount:
        """A fresh random account with gas money. Worker keys must be unique to the test: the sandbox labels its
        containers with the worker's address and a daemon starting up removes every container with its label, so
        two daemons sharing a dev key on the shared Docker engine (another test session) would kill each other's
        tasks."""
        from eth_account import Account

        acct: LocalAccount = Account.create()
        rpc(self.w3, "anvil_setBalance", acct.address, hex(1000 * ETHER))
        return acct

    def warp(self, seconds: int) -> None:
        """Move the chain's clock forward and mine a block stamped with it."""
        rpc(self.w3, "evm_increaseTime", seconds)
        rpc(self.w3, "evm_mine")

    def head(self) -> int:
        return int(self.w3.eth.block_number)


@contextlib.contextmanager
def private_chain(folder: Path) -> Iterator[PrivateChain]:
    chain = PrivateChain(folder)
    try:
        yield chain
    finally:
        chain.close()


# --- worker daemons as real processes ------------------------------------------------------------------------
def worker_settings(chain: PrivateChain, ipfs_api: str, account: LocalAccount, state: Path,
                    **kw: Any) -> WorkerSettings:
    base: dict[str, Any] = {"rpc_url": chain.url, "ipfs_api": ipfs_api, "marketplace": chain.market.address,
                            "private_key": "0x" + account.key.hex().removeprefix("0x"), "state_dir": state,
                            "stake": STAKE, "poll_interval": 0.2, "claim_backoff_max": 0.05,
                            "policy": {"max_concurrent": 1}}  # written for one task at a time unless they say
    base.update(kw)
    return WorkerSettings(**base)


class WorkerProc:
    """``python -m tasknet.cli --json-logs worker run --config …`` with its log in a file; started with a crash
    point, it runs through tests/crash_worker.py, which kills it right after the journal records that step."""

    def __init__(self, cfg: WorkerSettings, folder: Path, *, env: dict[str, str] | None = None) -> None:
        self.cfg = cfg
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.env = env or {}
        self.config_path = folder / "worker.json"
        doc = json.loads(cfg.model_dump_json())
        doc["private_key"] = cfg.private_key.get_secret_value() if cfg.private_key else None
        doc.pop("password", None)
        doc.pop("fault", None)
        self.config_path.write_text(json.dumps(doc))
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    @property
    def log_path(self) -> Path:
        return self.folder / f"worker-{self.runs}.log"

    def start(self, fault: str = "none") -> WorkerProc:
        assert self.proc is None or self.proc.poll() is not None, "worker already running"
        self.runs += 1
        with self.log_path.open("wb") as log:
            entry = [str(ROOT / "tests" / "crash_worker.py"), fault] if fault.startswith("crash") else \
                ["-m", "tasknet.cli"]
            extra = ["--fault", fault] if fault == "wrong-result" else []
            self.proc = subprocess.Popen(
                [sys.executable, *entry, "--json-logs", "worker", "run", "--config", str(self.config_path), *extra],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
                env={**os.environ, **self.env})
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout: float = 180.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker did not exit within {timeout:.0f} s; log tail:\n{self.tail()}") from None

    def kill9(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, grace: float = 60.0) -> None:
        """SIGTERM (the daemon drains), then SIGKILL if it is not gone after ``grace`` seconds."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    close = stop

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.folder.glob("worker-*.log")))

    def events(self, name: str) -> list[dict[str, Any]]:
        """The structured log lines whose event is ``name`` (every run of this worker)."""
        out = []
        for line in self.log().splitlines():
            if f'"{name}"' in line:
                with contextlib.suppress(ValueError):
                    doc = json.loads(line)
                    if doc.get("event") == name:
                        out.append(doc)
        return out

    def tail(self, n: int = 4000) -> str:
        return self.log()[-n:]

    def journal(self) -> Journal:
        return Journal(self.cfg.state_dir / "journal.db")


@contextlib.contextmanager
def workers_stopped(*procs: WorkerProc) -> Iterator[None]:
    try:
        yield
    finally:
        for p in procs:
            p.stop()


def tails(*procs: WorkerProc) -> Callable[[], str]:
    return lambda: "\n".join(f"--- {p.folder.name} (alive={p.alive()}) ---\n{p.tail(3000)}" for p in procs)


def journal_steps(proc: WorkerProc, job_id: int, index: int) -> list[Step]:
    j = proc.journal()
    try:
        return [s for s, _ in j.history(job_id, index)]
    finally:
        j.close()


def journal_step(proc: WorkerProc, job_id: int, index: int) -> Step | None:
    j = proc.journal()
    try:
        rec = j.get(job_id, index)
        return None if rec is None else rec.step
    finally:
        j.close()


def journal_data(proc: WorkerProc, job_id: int, index: int) -> dict[str, Any]:
    j = proc.journal()
    try:
        rec = j.get(job_id, index)
        return {} if rec is None else dict(rec.data)
    finally:
        j.close()


# --- end state on chain ---------------------------------------------------------------------------------------
def settle_counts(market: Market, job_id: int, num_tasks: int) -> dict[int, Counter[str]]:
    """Per task index: how many final events (ResultSubmitted for R = 1, TaskFinalized/TaskFailed for R > 1)."""
    out: dict[int, Counter[str]] = {i: Counter() for i in range(num_tasks)}
    ids = {task_id(job_id, i): i for i in range(num_tasks)}
    for name in SETTLE_EVENTS:
        for ev in getattr(market.contract.events, name)().get_logs(from_block=0):
            tid = int(ev["args"]["taskId"])
            if tid in ids:
                out[ids[tid]][name] += 1
    return out


def assert_settled_once(market: Market, job_id: int, num_tasks: int) -> str:
    """Every task of the job has exactly one final event and the job's counters agree; returns evidence."""
    counts = settle_counts(market, job_id, num_tasks)
    bad = {i: dict(c) for i, c in counts.items() if sum(c.values()) != 1}
    assert not bad, f"tasks of job {job_id} not settled exactly once: {bad}"
    job = market.job_record(job_id)
    assert job.settled == num_tasks, job
    kinds = Counter(name for c in counts.values() for name in c.elements())
    return f"job {job_id}: {num_tasks} tasks, final events {dict(kinds)} (one per task), settled={job.settled}"


def assert_stake_intact(market: Market, address: str, stake: int = STAKE) -> str:
    info = market.worker_record(address)
    assert (info.stake, info.locked, info.slashes) == (stake, 0, 0), \
        f"worker {address}: stake {info.stake} locked {info.locked} slashes {info.slashes}"
    return f"{address[:10]} stake intact ({stake // ETHER} tokens, locked 0, slashes 0)"


def result_digest_matches(ipfs: Any, cid: str, digest: bytes, tmp: Path) -> bool:
    """Whether the archive published at ``cid`` is a valid result archive whose digest (the archive's sha256, for
    an app without a deterministic file) is ``digest``."""
    import hashlib

    from oracle.archive import unpack_result

    data = ipfs.cat(cid)
    archive = tmp / f"{cid}.tar"
    archive.write_bytes(data)
    unpack_result(archive, tmp / f"{cid}-unpacked")
    return hashlib.sha256(data).digest() == bytes(digest)


# --- a private kubo -------------------------------------------------------------------------------------------
class PrivateKubo:
    """kubo with its own repo and fixed ports, so a test can kill it and start it again on the same ports."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.api_port, self.gw_port = _devnet.free_port(), _devnet.free_port()
        self.info: Any = None
        self.api = ""
        self.start()

    def start(self) -> None:
        self.info, self.api, _ = _devnet.start_kubo(self.folder, self.api_port, self.gw_port)

    def kill9(self) -> None:
        """The daemon dies (SIGKILL): no clean shutdown, the repo is left as a crash leaves it."""
        if self.info is not None and _devnet.pid_alive(self.info.pid):
            os.kill(self.info.pid, signal.SIGKILL)
            wait_for(lambda: not _devnet.pid_alive(self.info.pid), 30, "kubo to die", interval=0.05)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.info.pid, 0)

    def close(self) -> None:
        if self.info is not None:
            _devnet.stop(self.info)


@contextlib.contextmanager
def private_kubo(folder: Path) -> Iterator[PrivateKubo]:
    kubo = PrivateKubo(folder)
    try:
        yield kubo
    finally:
        kubo.close()


# --- a private Docker engine ----------------------------------------------------------------------------------
class PrivateDockerd:
    """A dockerd of our own (own socket, data root, exec root, pid file; no bridge, no iptables), so a test may
    kill it mid-task without touching the engine other tests share. Needs root."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder  # keep it short: the socket path must fit in 108 bytes
        self.sock = folder / "docker.sock"
        self.host = f"unix://{self.sock}"
        self.data_root, self.exec_root, self.pidfile = folder / "root", folder / "exec", folder / "docker.pid"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "dockerd already running"
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        cmd = [dockerd, "--host", self.host, "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
               "--pidfile", str(self.pidfile), "--bridge=none", "--iptables=false", "--ip6tables=false",
               "--storage-driver=overlay2"]
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / "dockerd.log").open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        wait_for(lambda: self.proc is not None and self.proc.poll() is None
                 and _devnet.docker_healthy(self.host) is None, 90, "the private dockerd to answer",
                 on_timeout=lambda: (self.folder / "dockerd.log").read_text(errors="replace")[-2000:])

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.host, timeout=120)

    def kill9(self) -> None:
        """dockerd dies abruptly (its containerd and shims, which we started through it, live on)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def _ours(self) -> list[int]:
        """Live processes whose command line names our folder: our dockerd's containerd and its shims."""
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                with contextlib.suppress(OSError):
                    if str(self.folder).encode() in (entry / "cmdline").read_bytes():
                        out.append(int(entry.name))
        return out

    def close(self) -> None:
        """Remove our containers, stop dockerd, kill what it left (our containerd and shims, found by pid through
        their command line naming our folder), unmount what is left under the folder and remove it."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                client = self.client()
                for c in client.containers.list(all=True):
                    with contextlib.suppress(Exception):
                        c.remove(force=True)
                client.close()
        self.stop()
        for pid in self._ours():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        for _ in range(3):
            mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                      if line.split()[1].startswith(str(self.folder))]
            if not mounts:
                break
            for m in sorted(mounts, key=len, reverse=True):
                subprocess.run(["umount", "-l", m], check=False, capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


def copy_images(src: Any, dst: Any, *refs: str) -> None:
    """docker save | docker load from one engine to another (the image ids stay the same)."""
    for ref in refs:
        data = b"".join(src.images.get(ref).save(named=True))
        dst.images.load(data)


# --- a TCP proxy that cuts an upload halfway --------------------------------------------------------------------
class CuttingProxy:
    """A loopback TCP proxy in front of kubo's RPC API. The first ``cuts`` requests whose request line matches
    ``match`` (bytes) are cut after ``after`` bytes of their body went through: both connections are reset."""

    def __init__(self, upstream_port: int, *, match: bytes, after: int, cuts: int = 1) -> None:
        self.upstream_port = upstream_port
        self.match, self.after, self.cuts_left = match, after, cuts
        self.port = _devnet.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cut = 0
        self.matched = 0
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="cutting-proxy")
        self.thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
            self._ready.set()
            async with self._server:
                await self._server.serve_forever()

        with contextlib.suppress(asyncio.CancelledError, RuntimeError):
            self.loop.run_until_complete(main())

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_w.close()
            return
        state = {"armed_at": None, "sent": 0}

        async def upstream() -> None:
            while True:
                data = await client_r.read(65536)
                if not data:
                    break
                if state["armed_at"] is None and self.cuts_left > 0 and b" HTTP/1.1\r\n" in data \
                        and self.match in data.split(b"\r\n", 1)[0]:
                    self.matched += 1
                    self.cuts_left -= 1
                    state["armed_at"] = state["sent"]
                state["sent"] += len(data)
                if state["armed_at"] is not None and state["sent"] - state["armed_at"] > self.after:
                    # forward only part of this chunk, then reset both sides
                    keep = max(0, self.after - (state["sent"] - len(data) - state["armed_at"]))
                    up_w.write(data[:keep])
                    with contextlib.suppress(Exception):
                        await up_w.drain()
                    self.cut += 1
                    for w in (up_w, client_w):
                        with contextlib.suppress(Exception):
                            w.transport.abort()
                    return
                up_w.write(data)
                await up_w.drain()
            with contextlib.suppress(Exception):
                up_w.write_eof()

        async def downstream() -> None:
            while True:
                data = await up_r.read(65536)
                if not data:
                    break
                client_w.write(data)
                await client_w.drain()
            with contextlib.suppress(Exception):
                client_w.close()

        with contextlib.suppress(Exception):
            await asyncio.gather(upstream(), downstream())
        for w in (up_w, client_w):
            with contextlib.suppress(Exception):
                w.close()

    def close(self) -> None:
        def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
        self.loop.call_soon_threadsafe(shutdown)
        self.thread.join(10)


# --- misc -----------------------------------------------------------------------------------------------------
def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --- the indexer as a real process ------------------------------------------------------------------------------
class IndexerProc:
    """``tasknet indexer run --no-api`` against a chain, mirroring into a SQLite file."""

    def __init__(self, chain: PrivateChain, folder: Path) -> None:
        self.chain = chain
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.db = folder / "mirror.db"
        self.log_path = folder / "indexer.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> IndexerProc:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tasknet.cli", "--json-logs", "indexer", "run", "--rpc-url", self.chain.url,
                 "--marketplace", self.chain.market.address, "--from-block", "0", "--db", str(self.db), "--no-api"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    close = stop

    def tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    def next_block(self) -> int:
        from indexer import _db, make_engine

        engine = make_engine(str(self.db))
        try:
            with engine.connect() as conn:
                cur = _db.load_cursor(conn)
        except Exception:  # noqa: BLE001 - tables not created yet
            return -1
        finally:
            engine.dispose()
        return -1 if cur is None else int(cur["next_block"])

    def wait_caught_up(self, timeout: float = 120.0) -> None:
        head = self.chain.head()
        wait_for(lambda: self.next_block() > head, timeout, f"the indexer to pass block {head}",
                 on_timeout=self.tail)

    def log_events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in self.tail(10**8).splitlines():
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if doc.get("event") == name:
                    out.append(doc)
        return out


def assert_mirror_agrees(ix: IndexerProc, market: Market, jobs: dict[int, int]) -> str:
    """The indexer's current rows for ``jobs`` ({job id: tasks}) equal the chain: each task finalized (or failed)
    with the chain's digest, one final event per task in its events table, job counters equal."""
    from sqlalchemy import func, select

    from indexer import _db, make_engine

    engine = make_engine(str(ix.db))
    try:
        with engine.connect() as conn:
            for job_id, n in jobs.items():
                job = market.job_record(job_id)
                row = conn.execute(select(_db.jobs).where(_db.jobs.c.job_id == job_id,
                                                          _db.jobs.c.is_current.is_(True))).mappings().one()
                assert (row["settled"], row["finished"]) == (job.settled, job.finished), (dict(row), job)
                for i in range(n):
                    tid = task_id(job_id, i)
                    t = conn.execute(select(_db.tasks).where(_db.tasks.c.task_id == tid,
                                                             _db.tasks.c.is_current.is_(True))).mappings().one()
                    finals = []
                    for name in SETTLE_EVENTS:
                        finals += getattr(market.contract.events, name)().get_logs(
                            from_block=0, argument_filters={"taskId": tid})
                    assert len(finals) == 1, finals
                    final = finals[0]
                    want = "failed" if final["event"] == "TaskFailed" else "finalized"
                    assert t["status"] == want, (dict(t), final["event"])
                    if want == "finalized":
                        assert t["result_digest"] == "0x" + bytes(final["args"]["resultDigest"]).hex(), dict(t)
                    mirrored = conn.execute(select(func.count()).select_from(_db.events).where(
                        _db.events.c.task_id == tid, _db.events.c.name.in_(SETTLE_EVENTS))).scalar_one()
                    assert mirrored == 1, f"task {tid}: {mirrored} final events in the mirror"
    finally:
        engine.dispose()
    return f"indexer mirror agrees with the chain for {sum(jobs.values())} tasks (status, digest, one final event)"


def result_status(ipfs: Any, cid: str, tmp: Path) -> str:
    """The ``logs/status.txt`` of the result archive at ``cid`` (the worker's reason line, exit code, error)."""
    from oracle.archive import unpack_result

    archive = tmp / f"status-{cid}.tar"
    archive.write_bytes(ipfs.cat(cid))
    dest = tmp / f"status-{cid}"
    unpack_result(archive, dest)
    return (dest / "logs" / "status.txt").read_text()


def assert_events_mirrored(ix: IndexerProc, chain: PrivateChain) -> str:
    """The indexer's events table holds exactly the marketplace/registry events of the current chain (same block,
    log index and transaction): nothing from dropped blocks is left, nothing is missing."""
    from eth_utils import event_abi_to_log_topic
    from sqlalchemy import select

    from indexer import _db, make_engine
    from oracle import abi

    topics = {bytes(event_abi_to_log_topic(e)) for name in ("IMarketplace", "IMarketplaceRegistry")
              for e in abi(name) if e.get("type") == "event"}
    logs = chain.w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest",
                                  "address": [chain.market.address, chain.market.registry.address]})
    on_chain = {(int(lg["blockNumber"]), int(lg["logIndex"]), "0x" + bytes(lg["transactionHash"]).hex())
                for lg in logs if bytes(lg["topics"][0]) in topics}
    engine = make_engine(str(ix.db))
    try:
        with engine.connect() as conn:
            mirrored = {(int(r.block_number), int(r.log_index), r.tx_hash.lower())
                        for r in conn.execute(select(_db.events))}
    finally:
        engine.dispose()
    assert mirrored == on_chain, f"only in the mirror: {sorted(mirrored - on_chain)}; only on chain: " \
        f"{sorted(on_chain - mirrored)}"
    return f"indexer events table equals the chain's {len(on_chain)} events"
