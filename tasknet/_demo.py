"""``tasknet demo``: the main job end to end on the embedded devnet.

A POV-Ray app and a scene dataset are registered; a requester posts one job (one frame per task, replication
2, results encrypted to the requester); a pool of worker *processes* renders it — honest ones, one that
returns wrong images (outvoted and slashed) and one killed with SIGKILL in the middle of a task (its claim
expires and another worker finishes the frame). The demo then downloads, decrypts and verifies every frame,
assembles an animated GIF, runs the auditor's verifier on every task and prints a summary.

With ``--hosts`` (tasknet/_demo_hosts.py) the same story runs on a testnet instead: each worker on its own host
with its own kubo, the requester and the dataset owner on theirs, and the summary shows what each host fetched
and served.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any, NotRequired

import docker
import docker.errors
from eth_typing import HexStr
from pydantic import BaseModel, Field, ValidationError, model_validator
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from typing_extensions import TypedDict  # pydantic (scripts/bench_report.py) reads it back on Python < 3.12

from oracle import Client, DevnetInfo, IpfsClient, configure_logging, connect
from oracle.devnet import default_devnet_file
from oracle.exceptions import TasknetError
from oracle.images import build_base, build_busybox_base, image_exists
from oracle.market import Market
from worker import Journal, remove_sandbox_leftovers, sandbox_owner

from . import _devnet
from ._process import DIE_WITH_PARENT_ENV

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "povray"
POVRAY_BASE = "tasknet/base-povray:bookworm"
ETHER = 10**18


class DemoFailed(TasknetError):
    """A step of the demo did not produce what it must."""


class InvalidDemoOptions(TasknetError):
    """The demo's options cannot make a meaningful run."""


class WorkerRow(TypedDict):
    """One worker of the summary."""

    worker: str
    kind: str
    address: str
    claims: int
    earned_tnt: float
    slashes: int
    killed: bool


class AuditRow(TypedDict):
    """The auditor's verifier on the job."""

    passed: bool
    tasks: int
    checks: int
    failed: list[str]


class FloorRow(TypedDict):
    """Posting to the last verified result over the floor (render time ÷ cores)."""

    results_s: float
    render_s: float
    cores: int
    floor_s: float
    floor_ratio: float | None
    workers_ready_s: float  # the worker daemons' start to all following the chain, before the posting


class HostRow(TypedDict):
    """(``--hosts``) What one host's kubo fetched and served."""

    host: str
    address: str
    fetched_bytes: int
    served_bytes: int
    blocks_fetched: int
    blocks_served: int
    swarm_in_bytes: int
    swarm_out_bytes: int


class TestnetRow(TypedDict):
    """(``--hosts``) The demo's testnet: what it made, to check that nothing is left."""

    state_file: str
    profile: str
    subnet: str
    bridge: str
    namespaces: list[str]
    pids: list[int]
    kept: bool


class HostsExtra(TypedDict):
    """(``--hosts``) The summary's entries about the testnet."""

    hosts: list[HostRow]
    testnet: TestnetRow


class SummaryHead(TypedDict):
    frames: int
    replication: int
    wall_time_s: float
    gif: str
    workers: list[WorkerRow]
    gas_total: int
    gas_per_task: int
    claims_expired: int
    audit: AuditRow
    dashboard: str
    logs: dict[str, str]


class Summary(SummaryHead, FloorRow):
    """The demo's summary: returned, and written to ``summary.json`` (where JSON leaves; scripts/bench_report.py
    and scripts/bench_floor.py read it back). The bases give the keys' order."""

    hosts: NotRequired[list[HostRow]]
    testnet: NotRequired[TestnetRow]


class DemoOptions(BaseModel):
    frames: int = Field(24, ge=2, le=500)
    workers: int = Field(6, ge=3, le=6, description="worker processes, including the liar and the crasher")
    worker_slots: int | None = Field(1, ge=1, le=8, description="tasks each worker runs at once (its "
                                     "--max-concurrent): one, so that every worker, the liar included, gets a share "
                                     "of a small job; None: the workers' own default, as many as the cores lent")
    liar: bool = True
    crasher: bool = True
    width: int = Field(320, ge=16, le=1920)
    height: int = Field(240, ge=16, le=1080)
    replication: int = Field(2, ge=2, le=5)
    out_dir: Path = Path("tasknet-demo")
    keep: bool = False
    dashboard_port: int = 8700
    timeout: float = Field(900.0, gt=0)
    hosts: bool = Field(False, description="each worker on its own host of a testnet (tasknet/_demo_hosts.py)")

    @model_validator(mode="after")
    def _enough_honest_workers(self) -> DemoOptions:
        # A task the liar disputes gets 2 more replicas (target R + 2), each held by a different worker: the
        # liar plus R + 1 live honest workers are needed to reach a strict majority, and the crasher is dead.
        honest = self.workers - self.liar - self.crasher
        need = self.replication + 1 if self.liar else self.replication
        if honest < need:
            raise ValueError(f"{self.workers} workers leave {honest} honest ones; a disputed frame needs {need} "
                             f"(replication {self.replication}{' + 1 to outvote the liar' if self.liar else ''}): "
                             f"use --workers {self.workers + need - honest}")
        return self


class WorkerView:
    """What the demo shows of one worker: its role, kind, claims and last activity, read from its JSON log lines."""

    def __init__(self, role: str, kind: str, state_dir: Path, log_path: Path) -> None:
        self.role, self.kind, self.state_dir, self.log_path = role, kind, state_dir, log_path
        self.claims = 0
        self.last = "starting"
        self.killed = False
        self.claimed_event = threading.Event()
        #: set at the daemon's ``worker_started`` line: registered, staked, following the chain's events
        self.ready_event = threading.Event()
        #: set at its ``worker_warm`` line: its output slots, and the containers of the app it expects, are made
        self.warm_event = threading.Event()

    def on_line(self, line: str) -> None:
        try:
            ev = json.loads(line)
        except ValueError:
            return
        name = ev.get("event", "")
        if name == "task_claimed":
            self.claims += 1
            self.last = f"claimed frame {ev.get('task_index')}"
            self.claimed_event.set()
        elif name == "sandbox_run":
            self.last = f"rendered in {ev.get('run_s', 0):.1f} s"
        elif name == "task_step":
            self.last = f"frame {ev.get('task_index')}: {str(ev.get('step', '')).lower()}"
        elif name in ("worker_ready", "worker_started"):
            self.last = "ready"
            if name == "worker_started":
                self.ready_event.set()
        elif name == "worker_warm":
            self.warm_event.set()

    def exited(self) -> int | None:
        """The daemon's exit status once it has exited (-1: exited, status unknown); None while it runs."""
        return None

    def kill(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


def max_concurrent(slots: int | None) -> list[str]:
    """A demo worker's ``--max-concurrent`` option: none when the worker is to size its run slots itself."""
    return [] if slots is None else ["--max-concurrent", str(slots)]


def slots_text(slots: int | None) -> str:
    """How many tasks a demo worker runs at once, in words."""
    return "as many tasks at once as the cores lent hold" if slots is None else f"{slots} task(s) at once"


class WorkerProc(WorkerView):
    """One `tasknet worker run` process of the demo; its JSON log lines are read to show activity."""

    def __init__(self, role: str, kind: str, devnet_file: Path, state_dir: Path, slots: int | None = None) -> None:
        super().__init__(role, kind, state_dir, state_dir.parent / f"{role}.log")
        cmd = [sys.executable, "-m", "tasknet.cli", "--json-logs", "worker", "run", "--as", role, "--stake", "10",
               "--state-dir", str(state_dir), "--devnet-file", str(devnet_file), *max_concurrent(slots)]
        if kind == "liar":
            cmd += ["--fault", "wrong-result"]
        state_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True, env=_die_with_parent_env())
        self._reader = threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str] | None) -> None:
        assert stream is not None
        with self.log_path.open("w") as log:
            for line in stream:
                log.write(line)
                log.flush()
                self.on_line(line)

    def exited(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.killed = True
        self.last = "killed (SIGKILL) mid-task"

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def ensure_devnet(devnet_file: Path | None) -> tuple[Path, DevnetInfo, bool]:
    """Reuse a healthy devnet or start one; return its file, its info and whether we started it."""
    path = devnet_file or default_devnet_file()
    existing, dead = _devnet.devnet_file_state(path)
    if existing is not None and not dead and all(s.healthy for s in _devnet.status(path)) \
            and "Marketplace" in existing.contracts:
        return path, existing, False
    if existing is not None or dead:
        _devnet.down(path)
    port = 8545 if _port_free(8545) else _devnet.free_port()
    return path, _devnet.up(_devnet.UpOptions(rpc_port=port), path), True


def _port_free(port: int) -> bool:
    try:
        _devnet.check_port_free(port, "anvil", "--rpc-port")
        return True
    except TasknetError:
        return False


class Demo:
    def __init__(self, opts: DemoOptions, devnet_file: Path | None, console: Console) -> None:
        self.o = opts
        self.console = console
        self.devnet_file_arg = devnet_file
        self.workers: list[WorkerView] = []
        self.indexer: subprocess.Popen[bytes] | None = None
        self.t0 = time.monotonic()
        # where the network is, set by run(): the chain, the marketplace, the dev accounts (role -> address)
        self.rpc_url, self.marketplace, self.deploy_block = "", "", 0
        self.addresses: dict[str, str] = {}
        #: the requester pins each result on its node as it lands (on a testnet the workers' nodes are elsewhere)
        self.pin_results = False
        self.workers_ready_s = 0.0  # the workers' start to all following the chain (_await_workers)

    def say(self, msg: str) -> None:
        self.console.print(f"[dim]{time.monotonic() - self.t0:6.1f}s[/] {msg}")

    # -- the story ----------------------------------------------------------------------------------
    def run(self) -> Summary:
        self.devnet_file, self.info, started = ensure_devnet(self.devnet_file_arg)
        self.say(f"devnet {'started' if started else 'reused'}: chain {self.info.rpc_url}, IPFS {self.info.ipfs_api}")
        self.rpc_url, self.marketplace = self.info.rpc_url, self.info.contracts["Marketplace"]
        self.deploy_block = self.info.deploy_block
        self.addresses = {a.role: a.address for a in self.info.accounts}
        try:
            return self._run()
        finally:
            try:  # each step of the clean-up runs whatever the one before it did: never leave a devnet behind
                for w in self.workers:
                    w.stop()
                self._remove_leftovers()
            finally:
                try:
                    if self.indexer is not None and not self.o.keep:
                        self.indexer.terminate()
                        self.indexer.wait(30)
                finally:
                    if started and not self.o.keep:
                        _devnet.down(self.devnet_file)

    def _run(self) -> Summary:
        out = self.o.out_dir.resolve()
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        # The terminal shows the progress display and the summary only: this process's own logs (the SDK's
        # clients, the verifier) go to a file beside the workers' and the indexer's (see _logs).
        self._log_file = (out / "demo.log").open("a")
        configure_logging(verbose=1, json=True, kind="command", file=self._log_file)
        self.w3 = connect(self.rpc_url)
        self.market = Market(self.w3, self.marketplace)
        start_block = self.w3.eth.block_number
        app_id, dataset_id = self._publish_app_and_scene()
        requester = self._client("requester", keyring=out / "keyring.json")
        self._start_indexer(out)
        balances = {role: self._worth(a) for role, a in self.addresses.items() if role.startswith("worker-")}
        self._start_workers(out / "workers")
        self._await_workers()
        job = self._post_job(requester, app_id, dataset_id)
        posted = time.monotonic()
        self._watch(requester, job.job_id)
        # posting to the last verified result, the workers already running as on a live network (their start-up,
        # once per daemon and not per job, is self.workers_ready_s)
        self.results_s = time.monotonic() - posted
        results = self._collect(requester, job.job_id, out)
        gif = self._gif(results, out)
        audit = self._audit(job.job_id, requester, job.encryption_key)
        summary = self._summary(job.job_id, start_block, balances, gif, audit)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        self._check(summary)
        return summary

    def _publish_app_and_scene(self) -> tuple[int, int]:
        client = docker.from_env()
        if not image_exists(client, POVRAY_BASE):
            self.say("building the POV-Ray base image (debootstrap, once; ~40 s)")
            build_base(client, POVRAY_BASE, ["povray", "povray-includes"])
        build_busybox_base(client)
        owner = self._client("app-owner")
        image = owner.apps.build(EXAMPLE, "tasknet/povray-demo:1")
        app = owner.apps.register(image, name="povray-frames", price=ETHER // 100, deterministic_file="frame.bmp")
        self.say(f"app {app.app_id} registered: POV-Ray renderer, image {app.image_digest[:19]}…, "
                 "deterministic file frame.bmp")
        ds_owner = self._client("dataset-owner")
        ds = ds_owner.datasets.add(EXAMPLE / "scene.pov", price=ETHER // 200)
        self.say(f"dataset {ds.dataset_id} registered: scene.pov on IPFS ({ds.cid})")
        return app.app_id, ds.dataset_id

    def _client(self, role: str, **kw: Any) -> Client:
        """The SDK client of dev account ``role`` (on the devnet: its one kubo for every role)."""
        return Client.from_devnet(role, self.devnet_file, **kw)

    def _post_job(self, requester: Client, app_id: int, dataset_id: int) -> Any:
        from oracle.client import JobSpec

        spec = JobSpec(app_id=app_id, dataset_id=dataset_id, count=self.o.frames,
                       args=["{index}", str(self.o.frames), str(self.o.width), str(self.o.height)],
                       replication=self.o.replication, reward=ETHER // 10, deadline_in=3600, max_run_seconds=30,
                       cores=1, memory_mb=256, encrypt=True)
        cost = requester.jobs.quote(spec)
        requester.account.deposit(cost)
        job = requester.jobs.submit(spec)
        self.say(f"job {job.job_id} posted: {self.o.frames} frames x R={self.o.replication}, escrow "
                 f"{job.escrow / ETHER:g} TNT, results sealed to the requester's key")
        return job

    def _start_indexer(self, out: Path) -> None:
        port = self.o.dashboard_port if _port_free(self.o.dashboard_port) else _devnet.free_port()
        self.dashboard = f"http://127.0.0.1:{port}/"
        self.indexer = subprocess.Popen(
            [sys.executable, "-m", "tasknet.cli", "--json-logs", "indexer", "run", "--devnet-file",
             str(self.devnet_file), "--db", str(out / "indexer.db"), "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=(out / "indexer.log").open("w"), start_new_session=True,
            env=None if self.o.keep else _die_with_parent_env())

    def _remove_leftovers(self) -> None:
        """Remove what the workers left in the engine: the one killed with SIGKILL never cleans up its output
        holders, and the others' are gone already (each removes its own when it stops)."""
        with contextlib.suppress(docker.errors.DockerException, OSError):
            client = docker.from_env()
            try:
                for w in self.workers:
                    remove_sandbox_leftovers(client, sandbox_owner(self.addresses[w.role], w.state_dir))
            finally:
                client.close()

    def _logs(self, out: Path) -> dict[str, str]:
        """Where each component's logs are: this process, the indexer, every worker, the devnet's daemons."""
        logs = {"demo": out / "demo.log", "indexer": out / "indexer.log"}
        logs.update({w.role: w.log_path for w in self.workers})
        logs["devnet"] = Path(self.info.state_dir) / "logs"
        return {name: str(path) for name, path in logs.items()}

    def _worker_kinds(self) -> list[str]:
        """worker-1, worker-2...: honest ones, then the crasher, then the liar (as the options ask)."""
        kinds = ["honest"] * self.o.workers
        if self.o.liar:
            kinds[-1] = "liar"
        if self.o.crasher:
            kinds[-2 if self.o.liar else -1] = "crasher"
        return kinds

    def _start_workers(self, root: Path) -> None:
        kinds = self._worker_kinds()
        for i, kind in enumerate(kinds, start=1):
            self.workers.append(WorkerProc(f"worker-{i}", kind, self.devnet_file, root / f"worker-{i}", self.o.worker_slots))
        self.say(f"{len(kinds)} worker processes started, {slots_text(self.o.worker_slots)} each: "
                 + ", ".join(f"{w.role} ({w.kind})" for w in self.workers))
        for w in self.workers:
            if w.kind == "crasher":
                threading.Thread(target=self._kill_mid_task, args=(w,), daemon=True).start()

    def _await_workers(self, timeout: float = 300.0) -> None:
        """Wait until every worker daemon follows the chain (registered, staked, resumed) and has made its output
        slots and the demo app's containers ready (``worker_warm``, 60 s at most), as the idle workers of a live
        network are before a job is posted; their start-up time goes to ``workers_ready_s``."""
        t0 = time.monotonic()
        with self.console.status("waiting for the workers to register, stake and follow the chain"):
            for w in self.workers:
                while not w.ready_event.wait(0.2):
                    code = w.exited()
                    if code is not None:
                        status = f" with status {code}" if code >= 0 else ""
                        raise TasknetError(f"worker {w.role} exited{status} before it was ready; see its log "
                                           f"{w.log_path}")
                    if time.monotonic() - t0 > timeout:
                        raise TasknetError(f"worker {w.role} was not ready after {timeout:.0f} s (no worker_started "
                                           f"line in {w.log_path}): is the Docker engine or the chain slow or down?")
            warm_by = time.monotonic() + 60  # a worker of another version may never say it: the job goes anyway
            for w in self.workers:
                while not w.warm_event.wait(0.2) and w.exited() is None and time.monotonic() < warm_by:
                    pass
        self.workers_ready_s = round(time.monotonic() - t0, 1)
        self.say(f"{len(self.workers)} workers ready in {self.workers_ready_s} s: registered, staked, following "
                 "the chain, their containers made")

    @staticmethod
    def _kill_mid_task(w: WorkerView) -> None:
        if w.claimed_event.wait(300):
            time.sleep(0.3)  # inside the task: fetching inputs or rendering
            w.kill()

    def _watch(self, requester: Client, job_id: int) -> None:
        progress: Any = None
        with Live(self._table(None), console=self.console, refresh_per_second=4, transient=False) as live:
            for ev in requester.jobs.watch(job_id, timeout=self.o.timeout, pin=self.pin_results):
                progress = ev.progress
                live.update(self._table(progress))
        self.say(f"all {self.o.frames} frames settled")

    def _table(self, p: Any) -> Group:
        head = Table.grid(padding=(0, 2))
        if p is not None:
            head.add_row(f"frames {p.total}", f"claimed {p.claimed}", f"running {p.running}",
                         f"[green]finalized {p.finalized}[/]", f"[red]failed {p.failed}[/]")
        workers = Table("worker", "role", "claims", "activity", box=None)
        for w in self.workers:
            workers.add_row(w.role, w.kind, str(w.claims), w.last)
        return Group(head, workers)

    def _collect(self, requester: Client, job_id: int, out: Path) -> list[Any]:
        results = requester.results.download(job_id, out / "frames")
        bad = [r.index for r in results if not r.verified]
        if bad or len(results) != self.o.frames:
            raise DemoFailed(f"frames {bad or 'missing'} did not verify against the chain's digests")
        self.say(f"{len(results)} frames downloaded, decrypted and checked against the on-chain digests")
        return results

    def _gif(self, results: list[Any], out: Path) -> Path:
        from PIL import Image

        frames = [Image.open(out / "frames" / str(r.index) / "output" / "frame.bmp").convert("P", palette=Image.Palette.ADAPTIVE)
                  for r in sorted(results, key=lambda r: r.index)]
        gif = out / "animation.gif"
        frames[0].save(gif, save_all=True, append_images=frames[1:], duration=80, loop=0)
        self.say(f"animation written to {gif}")
        return gif

    def _audit(self, job_id: int, requester: Client, public_key: str) -> AuditRow:
        from indexer import Verifier

        key = requester.keyring.private_key(public_key) if public_key else None
        with IpfsClient(self._audit_ipfs_api()) as ipfs:
            report = Verifier(self.w3, self.market.address, ipfs, from_block=self.deploy_block,
                              decryption_key=key).job(job_id)
        failed = [f"{c.name} ({c.subject})" for c in report.failed]
        checks = sum(len(t.checks) for t in report.tasks)
        self.say(f"auditor's verifier: {len(report.tasks)} tasks, {checks} checks, "
                 + ("[green]all passed[/]" if report.passed else f"[red]failed: {', '.join(failed)}[/]"))
        return {"passed": report.passed, "tasks": len(report.tasks), "checks": checks, "failed": failed}

    def _audit_ipfs_api(self) -> str:
        """The IPFS node the auditor's verifier fetches the results through."""
        return self.info.ipfs_api

    def _worth(self, address: str) -> int:
        """Tokens an account owns: in its wallet, its marketplace balance, its stake (deposits are neutral)."""
        w = self.market.worker_record(address)
        return (int(self.market.token.functions.balanceOf(address).call()) + self.market.balance(address)
                + w.stake + w.unstaking)

    def _summary(self, job_id: int, start_block: int, before: dict[str, int], gif: Path,
                 audit: AuditRow) -> Summary:
        slashes = Counter(e["args"]["worker"] for e in self.market.contract.events.WorkerSlashed().get_logs(
            from_block=start_block))
        per_worker: list[WorkerRow] = []
        for w in self.workers:
            addr = self.addresses[w.role]
            per_worker.append({"worker": w.role, "kind": w.kind, "address": addr, "claims": w.claims,
                               "earned_tnt": (self._worth(addr) - before[w.role]) / ETHER,
                               "slashes": slashes.get(addr, 0), "killed": w.killed})
        gas = sum(int(self.w3.eth.get_transaction_receipt(HexStr(tx))["gasUsed"]) for tx in self._job_txs(job_id, start_block))
        # a killed worker's claim is reopened per task (ClaimExpired) or, for a lane, per chunk (LaneExpired)
        expired = sum(len(getattr(self.market.contract.events, name)().get_logs(from_block=start_block))
                      for name in ("ClaimExpired", "LaneExpired"))
        floor = self._floor(job_id, getattr(self, "results_s", 0.0))
        summary: Summary = {
            "frames": self.o.frames, "replication": self.o.replication,
            "wall_time_s": round(time.monotonic() - self.t0, 1), "gif": str(gif), "workers": per_worker,
            "gas_total": gas, "gas_per_task": gas // self.o.frames, "claims_expired": expired,
            "audit": audit, "dashboard": self.dashboard, "logs": self._logs(self.o.out_dir.resolve()),
            "results_s": floor["results_s"], "render_s": floor["render_s"], "cores": floor["cores"],
            "floor_s": floor["floor_s"], "floor_ratio": floor["floor_ratio"],
            "workers_ready_s": floor["workers_ready_s"]}
        extra = self._extra_summary()
        if extra is not None:
            summary["hosts"], summary["testnet"] = extra["hosts"], extra["testnet"]
        table = Table("worker", "kind", "claims", "earned TNT", "slashes", title="summary")
        for row in per_worker:
            table.add_row(row["worker"], row["kind"], str(row["claims"]), f"{row['earned_tnt']:+.3f}",
                          str(row["slashes"]))
        self.console.print(table)
        self.console.print(f"frames {self.o.frames} in {summary['wall_time_s']} s; gas per task "
                           f"{summary['gas_per_task']:,} (all transactions of the job / frames); expired claims "
                           f"reopened: {expired}; dashboard: {self.dashboard}")
        self.console.print(f"posting to last result {summary['results_s']} s = {summary['floor_ratio']}× the floor "
                           f"({summary['render_s']} s of renders ÷ {summary['cores']} cores = {summary['floor_s']} s; "
                           f"the workers were ready {summary['workers_ready_s']} s after they started, before the "
                           "posting)")
        self._print_extra(summary)
        self._print_logs(summary["logs"])
        return summary

    def _floor(self, job_id: int, results_s: float) -> FloorRow:
        """The time from posting to the last verified result over the floor: the renders' time (every replica,
        the ``run_seconds`` each worker's journal keeps: container start to exit, an upper bound of its CPU for
        these one-core renders) ÷ this machine's cores (issue #17)."""
        render = 0.0
        for w in self.workers:
            path = w.state_dir / "journal.db"
            if path.exists():
                journal = Journal(path)
                try:
                    recs = journal.finished_records(job_id=job_id) + [
                        r for r in journal.unfinished() if r.job_id == job_id]
                finally:
                    journal.close()
                render += sum(float(r.data.get("run_seconds") or 0.0) for r in recs)
        cores = os.cpu_count() or 1
        floor = render / cores
        return {"results_s": round(results_s, 1), "render_s": round(render, 2), "cores": cores,
                "floor_s": round(floor, 2), "floor_ratio": round(results_s / floor, 2) if floor else None,
                "workers_ready_s": self.workers_ready_s}

    def _extra_summary(self) -> HostsExtra | None:
        """More entries of the summary (the testnet's per-host traffic)."""
        return None

    def _print_extra(self, summary: Summary) -> None:
        pass

    def _print_logs(self, logs: dict[str, str]) -> None:
        self.console.print(f"logs: {logs['demo']} (this run), {logs['indexer']}, one per worker under "
                           f"{Path(logs['worker-1']).parent}, the devnet's in {logs['devnet']}")

    def _job_txs(self, job_id: int, start_block: int) -> set[str]:
        """Every transaction that emitted an event about this job or its tasks."""
        txs: set[str] = set()
        for log in self.w3.eth.get_logs({"fromBlock": start_block, "address": self.market.address}):
            topics = log["topics"]
            if len(topics) > 1:
                first = int.from_bytes(bytes(topics[1]), "big")
                if first == job_id or first >> 32 == job_id:
                    txs.add("0x" + bytes(log["transactionHash"]).hex())
        return txs

    def _check(self, s: Summary) -> None:
        problems = []
        if not s["audit"]["passed"]:
            problems.append(f"the verifier failed: {s['audit']['failed']}")
        for w in s["workers"]:
            if w["kind"] == "liar" and w["claims"] and not w["slashes"]:
                problems.append(f"{w['worker']} lied but was never slashed")
            if w["kind"] == "honest" and w["slashes"]:
                problems.append(f"honest {w['worker']} was slashed {w['slashes']} times")
        if self.o.crasher and not s["claims_expired"]:
            problems.append("the killed worker's claim was never reopened")
        if problems:
            raise DemoFailed("; ".join(problems))
        story = ["every frame rendered, verified and audited"]
        if self.o.liar:
            story.append("the liar was outvoted and slashed")
        if self.o.crasher:
            story.append("the killed worker's frame was finished by another")
        self.console.print("[bold green]demo passed[/]: " + "; ".join(story))


def _die_with_parent_env() -> dict[str, str]:
    """The environment of a child ``tasknet`` process that must get SIGTERM when the demo dies, however it dies
    (no orphans): the child's CLI asks the kernel for it first thing (see ``tasknet.cli``)."""
    return {**os.environ, DIE_WITH_PARENT_ENV: str(os.getpid())}


def run_demo(devnet_file: Path | None, *, keep: bool, console: Console, **kw: Any) -> Summary:
    try:
        opts = DemoOptions(keep=keep, **kw)
    except ValidationError as exc:
        raise InvalidDemoOptions("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
    if opts.hosts:
        from ._demo_hosts import HostsDemo

        return HostsDemo(opts, None, console).run()
    return Demo(opts, devnet_file, console).run()
