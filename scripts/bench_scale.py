"""Scale benchmark (issue #22): costs that stay flat over a long run and a large job.

On a private devnet (anvil started as ``tasknet up`` starts it, kubo, the local Docker engine):

1. a bag of ``--tasks`` (default 10,000) trivial R = 1 tasks run by ``--workers`` ``tasknet worker run`` processes;
   the workers' CPU per task over the first and the last ``--window`` (1,000) finished tasks, and anvil's CPU per
   transaction over the same windows (a devnet that stays fast: the last within 2x of the first);
   from the chain afterwards: the share of results submitted alone in a transaction, the share of the workers'
   transactions that reverted, and the gas per task (every worker transaction and the posting, ÷ tasks);
2. the requester's commands on that job: ``tasknet job status`` (summary) and ``tasknet result get`` (all results;
   then again, resuming: the cost beyond the downloads themselves, per task);
3. ``tasknet audit job`` on a job of ``--audit-tasks`` (2,000) tasks run on the same chain;
4. a worker whose journal holds ``--journal-records`` (100,000) finished tasks (written in the schema-1 layout of
   a worker that ran before issue #22, so opening it migrates it) and no open job: its CPU over ``--idle-seconds``
   (20) seconds, from /proc, in percent of one core.

Prints a JSON line last: {"cpu_ms_first_1k": …, "cpu_ms_last_1k": …, "idle_cpu_pct_100k": …, "solo_submit_share": …,
"revert_share": …, "gas_per_task": …, "job_status_s": …, "result_get_ms_per_task": …, "audit_s_2k": …, ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker
from _bench_rows import (
    AuditPart,
    BagPart,
    BagResult,
    BatchingRow,
    ChainCosts,
    IdlePart,
    KindTally,
    RequesterPart,
    ScaleRow,
    Window,
)
from bench_worker import _cpu_of, spread  # scripts/ is on sys.path: this script runs from there
from eth_account.signers.local import LocalAccount
from pydantic import JsonValue
from web3.types import RPCEndpoint

from oracle import IpfsClient, connect, deploy_all, dev_accounts
from oracle.client._scan import EVENTS
from oracle.market import AppView, JobView, Market
from tasknet import _devnet
from tests.market_helpers import ETHER, build_echo_app, fund, post_job, register_app
from worker import WorkerSettings


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Devnet:
    """anvil (as ``tasknet up`` starts it: automine here) + kubo + the contracts, the echo app, a funded requester."""

    def __init__(self, tmp: Path, *, anvil_defaults: bool = False) -> None:
        self.tmp = tmp
        # --anvil-defaults: anvil's own defaults (Prague, every state kept), to compare with the devnet's options
        self.anvil, self.url = _devnet.start_anvil(tmp / "anvil", _devnet.free_port(),
                                                   long_run_args=not anvil_defaults)
        self.kubo, self.api, _ = _devnet.start_kubo(tmp / "kubo", _devnet.free_port(), _devnet.free_port())
        self.w3 = connect(self.url)
        self.accounts = dev_accounts(10)
        deployed = deploy_all(self.w3, self.accounts[0])
        self.deploy_block = 0
        self.market = Market(self.w3, deployed.contracts["Marketplace"])
        self.docker = docker.from_env()
        self.ipfs = IpfsClient(self.api)
        self.app = register_app(self.w3, self.market, self.accounts[2], build_echo_app(self.docker, tmp))
        fund(self.w3, self.market, self.accounts[1], 10**6 * ETHER)

    def close(self) -> None:
        self.ipfs.close()
        _devnet.stop(self.kubo)
        _devnet.stop(self.anvil)

    def worker_config(self, account: LocalAccount, name: str, **kw: Any) -> Path:
        cfg = WorkerSettings(rpc_url=self.url, ipfs_api=self.api, marketplace=self.market.address,
                             private_key="0x" + account.key.hex().removeprefix("0x"), state_dir=self.tmp / name,
                             stake=10 * ETHER, **kw)
        doc = json.loads(cfg.model_dump_json())
        doc["private_key"] = cfg.private_key.get_secret_value() if cfg.private_key else None
        doc.pop("password", None)
        path = self.tmp / f"{name}.json"
        path.write_text(json.dumps(doc))
        return path

    def start_worker(self, config: Path, name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "tasknet.cli", "worker", "run", "--config", str(config)],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(self.tmp / f"{name}.log").open("wb"),
                                env={**os.environ})

    def wait_staked(self, procs: list[subprocess.Popen[bytes]], addresses: list[str], timeout: float = 180) -> None:
        end = time.monotonic() + timeout
        while not all(self.market.worker_record(a).stake >= 10 * ETHER for a in addresses):
            if time.monotonic() > end or any(p.poll() is not None for p in procs):
                raise SystemExit(f"bench: the worker processes did not start; see {self.tmp}/*.log")
            time.sleep(0.2)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(120)
        except subprocess.TimeoutExpired:
            p.kill()


# -- 4. an idle worker with a long history ------------------------------------------------------------------
def write_old_journal(path: Path, records: int, market: str, next_block: int, job: JobView, app: AppView) -> None:
    """A schema-1 journal (every task in one table, each with the claim's copy of its job and app) holding
    ``records`` finished tasks of 20 closed jobs, and the saved stream of such a worker (its view holding those
    jobs with every index taken)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript("""
        PRAGMA journal_mode=WAL;
        CREATE TABLE tasks (task_key TEXT PRIMARY KEY, job_id INTEGER NOT NULL, task_index INTEGER NOT NULL,
            step INTEGER NOT NULL, data TEXT NOT NULL, updated_at REAL NOT NULL);
        CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, task_key TEXT NOT NULL, step INTEGER NOT NULL,
            at REAL NOT NULL, note TEXT);""")
    jobs = 20
    per_job = max(1, records // jobs)
    # weeks of work, all of it within the journal's retention (30 days by default): nothing to drop meanwhile
    t0 = time.time() - 25 * 24 * 3600
    step_s = (25 - 1) * 24 * 3600 / max(records, 1)
    rows, history = [], []
    views: dict[str, JsonValue] = {}
    for n in range(records):
        job_id, index = 1000 + n // per_job, n % per_job
        key = f"{job_id}:{index}"
        at = t0 + n * step_s
        job_doc: dict[str, JsonValue] = {**job.model_dump(mode="json"), "job_id": job_id, "num_tasks": per_job}
        data: dict[str, JsonValue] = {"job": job_doc,
                "app": app.model_dump(mode="json"), "dataset": None, "claim_block": 100 + n,
                "claim_tx": "0x" + f"{n:064x}", "expiry": int(at) + 600, "digest": "0x" + f"{n:064x}",
                "cid": f"bafkrei{n:052d}", "run_seconds": 0.1, "tx": "0x" + f"{n + 1:064x}", "gas": 120_000,
                "outcome": "paid", "earned": 10**17, "batch": 4, "unpinned": True}
        rows.append((key, job_id, index, 100, json.dumps(data), at))
        history += [(key, s, at + k * 0.1, None) for k, s in enumerate((10, 20, 30, 40, 50, 100))]
        views.setdefault(str(job_id), {**job_doc, "closed": True})
    db.executemany("INSERT INTO tasks VALUES(?,?,?,?,?,?)", rows)
    db.executemany("INSERT INTO history(task_key, step, at, note) VALUES(?,?,?,?)", history)
    view = {"jobs": views, "apps": {str(app.app_id): app.model_dump(mode="json")}, "datasets": {},
            "taken": {j: list(range(per_job)) for j in views}, "leases": {}, "replicas": {}, "targets": {}}
    db.execute("INSERT INTO kv VALUES('stream', ?)", (json.dumps(
        {"market": market, "cursor": {"next_block": next_block, "recent": {}}, "view": view}),))
    db.commit()
    db.close()


def idle_worker(net: Devnet, records: int, seconds: float, account: LocalAccount) -> IdlePart:
    """CPU of a worker with ``records`` finished tasks in its journal and no open job, over ``seconds``."""
    job_args = {"jobId": 1, "requester": net.accounts[1].address, "escrow": 0, "params": {
        "appId": net.app, "datasetId": 0, "numTasks": 1, "replication": 1, "reward": ETHER // 10, "deadline": 0,
        "maxRunSeconds": 30, "cores": 1, "memoryMB": 0, "gpus": 0, "archMask": 0, "minReputation": 0,
        "callback": "0x" + "00" * 20, "inputsCID": "bafy" + "x" * 55, "encryptionKey": ""}}
    app = AppView(app_id=net.app, owner=net.accounts[2].address, image_ref="tasknet-test/echo:1",
                  image_digest="sha256:" + "00" * 32, metadata_uri="ipfs://none", price=0, is_public=True,
                  deterministic_file="")
    state = net.tmp / "idle"
    t0 = time.monotonic()
    write_old_journal(state / "journal.db", records, net.market.address, int(net.w3.eth.block_number) + 1,
                      JobView.from_event(job_args), app)
    written_s = time.monotonic() - t0
    fund(net.w3, net.market, account, 20 * ETHER)
    proc = net.start_worker(net.worker_config(account, "idle"), "idle")
    try:
        t0 = time.monotonic()
        log = net.tmp / "idle.log"
        while b"worker_started" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() - t0 > 600:
                raise SystemExit(f"bench: the idle worker did not start; see {log}")
            time.sleep(0.2)
        started_s = time.monotonic() - t0  # opening (migrating) the journal, registering, staking
        time.sleep(2.0)  # past start-up
        before, w0 = _cpu_of(proc.pid), time.monotonic()
        parts = []
        for _ in range(4):  # four quarters: their spread shows whether the figure is steady
            c0, t0 = _cpu_of(proc.pid), time.monotonic()
            time.sleep(seconds / 4)
            parts.append(100 * (_cpu_of(proc.pid) - c0) / (time.monotonic() - t0))
        cpu, wall = _cpu_of(proc.pid) - before, time.monotonic() - w0
    finally:
        stop([proc])
    size = sum(f.stat().st_size for f in state.glob("journal.db*"))
    return {"idle_cpu_pct_100k": round(100 * cpu / wall, 2), "idle_seconds": round(wall, 1),
            "idle_cpu_pct_quarters": spread(parts, 2),
            "idle_journal_records": records, "idle_start_s": round(started_s, 1),
            "idle_journal_written_s": round(written_s, 1), "idle_journal_mb": round(size / 1e6, 1)}


# -- 1. a large bag -----------------------------------------------------------------------------------------
def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Sampler:
    """(finished tasks, workers' CPU, anvil's CPU, blocks, anvil's RSS) samples while a job runs."""

    def __init__(self, net: Devnet, job: int, workers: list[int]) -> None:
        self.net, self.job, self.workers = net, job, workers
        self.samples: list[tuple[int, float, float, int, float]] = []

    def take(self) -> tuple[int, float, float, int, float]:
        n = self.net.market.job_record(self.job).finished
        pid = self.net.anvil.pid or 0
        sample = (n, sum(_cpu_of(p) for p in self.workers), _cpu_of(pid), int(self.net.w3.eth.block_number),
                  _rss_mb(pid))
        self.samples.append(sample)
        return sample

    def until(self, total: int, timeout: float) -> None:
        end = time.monotonic() + timeout
        while self.take()[0] < total:
            if time.monotonic() > end:
                raise SystemExit(f"bench: job {self.job} did not finish {total} tasks within {timeout:.0f} s")
            time.sleep(0.5)  # the bench's own polling must not load the chain it measures

    def window(self, lo: int, hi: int) -> Window:
        """CPU per task of the workers and per transaction of anvil between the first samples at or past ``lo``
        and ``hi`` finished tasks (automine: a block per transaction)."""
        a = next(x for x in self.samples if x[0] >= lo)
        b = next(x for x in self.samples if x[0] >= hi)
        tasks, blocks = max(1, b[0] - a[0]), max(1, b[3] - a[3])
        return {"worker_cpu_ms_per_task": round(1000 * (b[1] - a[1]) / tasks, 1),
                "anvil_cpu_ms_per_tx": round(1000 * (b[2] - a[2]) / blocks, 2), "anvil_rss_mb": round(b[4], 1),
                "tasks": tasks, "txs": blocks}


def chain_costs(net: Devnet, first_block: int, last_block: int, workers: list[str], tasks: int,
                post_gas: int) -> ChainCosts:
    """From the blocks of the run: the share of results submitted alone in a transaction, the share of the
    workers' transactions that reverted, gas per task (every worker transaction and the posting), and the
    workers' transactions by kind (results, claims, and the others by function name) with their gas per task."""
    me = {a.lower() for a in workers}
    topic, claimed = EVENTS["ResultSubmitted"].topic, EVENTS["TasksClaimed"].topic
    txs = reverted = gas = results = solo = submit_txs = reverted_gas = claims = 0
    kinds: dict[str, list[int]] = {}
    for number in range(first_block, last_block + 1):
        receipts = net.w3.provider.make_request(RPCEndpoint("eth_getBlockReceipts"), [hex(number)])["result"] or []
        for r in receipts:
            if str(r["from"]).lower() not in me:
                continue
            txs += 1
            used = int(r["gasUsed"], 16)
            gas += used
            topics = [log["topics"][0] for log in r["logs"] if log["topics"]]
            n = topics.count(topic)
            # tasks claimed: each TasksClaimed's count (its data's first word), a lease may hold several
            c = sum(int(log["data"][2:66], 16) for log in r["logs"] if log["topics"] and log["topics"][0] == claimed)
            if int(r["status"], 16) == 0:
                reverted, reverted_gas, kind = reverted + 1, reverted_gas + used, "reverted"
            elif n:
                kind = "results"
            elif c:
                kind = "claims"
            else:
                kind = _function_name(net, r["transactionHash"])
            tally = kinds.setdefault(kind, [0, 0])
            tally[0], tally[1] = tally[0] + 1, tally[1] + used
            results, solo, submit_txs, claims = results + n, solo + (n if n == 1 else 0), submit_txs + bool(n), claims + c
    return {"solo_submit_share": round(solo / results, 3) if results else None,
            "revert_share": round(reverted / txs, 4) if txs else None,
            "gas_per_task": round((gas + post_gas) / tasks), "worker_txs": txs, "worker_txs_reverted": reverted,
            "reverted_gas": reverted_gas, "result_txs": submit_txs,
            "results_per_result_tx": round(results / submit_txs, 2) if submit_txs else None,
            "claimed_per_claim_tx": round(claims / kinds["claims"][0], 2) if "claims" in kinds else None,
            "post_gas_per_task": round(post_gas / tasks),
            "by_kind": {k: KindTally(txs=v[0], gas_per_task=round(v[1] / tasks)) for k, v in sorted(kinds.items())}}


def _function_name(net: Devnet, tx_hash: str) -> str:
    """The Marketplace function a transaction called (``claimSome`` that claimed nothing, a reopen...)."""
    tx = net.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
    try:
        fn, _ = net.market.contract.decode_function_input(tx["input"])
    except ValueError:
        return "unknown"
    return str(fn.fn_name)


def logged_reverts(net: Devnet, names: list[str]) -> int:
    """Reverted transactions the workers logged at warning level (``tx_reverted``, with the gas it used)."""
    return sum(line.count(b"tx_reverted") for name in names
               for line in (net.tmp / f"{name}.log").read_bytes().splitlines() if b"warn" in line.lower())


def run_bag(net: Devnet, n: int, procs: list[int], window: int) -> tuple[int, BagPart, Sampler]:
    t0 = time.monotonic()
    job = post_job(net.w3, net.market, net.accounts[1], net.ipfs, net.app, tasks=n, reward=ETHER // 1000,
                   deadline_s=6 * 3600 + 2 * n)
    sampler = Sampler(net, job, procs)
    sampler.take()
    sampler.until(n, timeout=600 + 2.0 * n)
    wall = time.monotonic() - t0
    w = min(window, max(1, n // 4))
    first, last = sampler.window(0, w), sampler.window(n - w, n)
    return job, {"tasks": n, "window": w, "bag_wall_s": round(wall, 1), "tasks_per_s": round(n / wall, 2),
                 "first": first, "last": last}, sampler


def start_workers(net: Devnet, workers: list[LocalAccount], max_concurrent: int) -> list[subprocess.Popen[bytes]]:
    """One ``tasknet worker run`` process per account (max_concurrent each), registered, staked and polling."""
    procs = []
    for i, acct in enumerate(workers):
        fund(net.w3, net.market, acct, 20 * ETHER)
        cfg = net.worker_config(acct, f"w{i}", poll_interval=0.1, claim_backoff_max=0.02,
                                policy={"max_concurrent": max_concurrent})
        procs.append(net.start_worker(cfg, f"w{i}"))
    net.wait_staked(procs, [a.address for a in workers])
    time.sleep(1.0)  # past registration: the workers are polling
    return procs


def batching_bag(net: Devnet, n: int, procs: list[subprocess.Popen[bytes]], workers: list[LocalAccount]
                 ) -> BatchingRow:
    """(``--only batching``) A bag of ``n`` tasks on the running workers: how its results went on chain."""
    load = _load()
    start_block = int(net.w3.eth.block_number) + 1
    job, bag, _ = run_bag(net, n, [p.pid for p in procs], 1000)
    end_block = int(net.w3.eth.block_number)
    post = net.market.contract.events.JobPosted().get_logs(from_block=start_block, argument_filters={"jobId": job})
    post_gas = int(net.w3.eth.get_transaction_receipt(post[0]["transactionHash"])["gasUsed"])
    load_after = _load()  # before the blocks are read
    costs = chain_costs(net, start_block, end_block, [a.address for a in workers], n, post_gas)
    row: BatchingRow = {"tasks": n, "bag_wall_s": bag["bag_wall_s"], "tasks_per_s": bag["tasks_per_s"],
                        "load_before": load, "load_after": load_after, **costs}
    print("bench scale batching:", json.dumps(row), file=sys.stderr, flush=True)
    time.sleep(3.0)  # the last results and the workers' housekeeping settle before the next bag
    return row


# -- 2. the requester's commands ----------------------------------------------------------------------------------
def cli(net: Devnet, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    common = ["--rpc-url", net.url, "--marketplace", net.market.address, "--ipfs-api", net.api]
    if args[0] == "audit":
        common += ["--from-block", "0"]
    else:
        common += ["--private-key", "0x" + net.accounts[1].key.hex().removeprefix("0x"), "--deploy-block", "0"]
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "tasknet.cli", *args, *common], cwd=ROOT, capture_output=True,
                          text=True, check=False, env={**os.environ, "TASKNET_HOME": str(net.tmp / "home")})
    return time.monotonic() - t0, proc


def requester(net: Devnet, job: int, n: int) -> RequesterPart:
    from oracle.client import Client

    times = []
    for _ in range(3):
        wall, proc = cli(net, "job", "status", str(job))
        if proc.returncode != 0:
            raise SystemExit(f"bench: tasknet job status failed: {proc.stderr[-2000:]}")
        times.append(wall)
    client = Client(net.w3, net.accounts[1], net.market.address, net.ipfs, keyring=net.tmp / "home" / "keyring.json")
    out = net.tmp / "results"
    t0 = time.monotonic()
    first = client.results.download(job, out)
    full = time.monotonic() - t0
    resumed_runs = []
    for _ in range(3):
        t0 = time.monotonic()
        again = client.results.download(job, out)
        resumed_runs.append(time.monotonic() - t0)
        assert len(first) == n and all(r.resumed for r in again), "a second result get should download nothing"
    resumed = statistics.median(resumed_runs)
    t0 = time.monotonic()
    summary = client.jobs.summary(job)
    sdk_status = time.monotonic() - t0
    return {"job_status_s": round(statistics.median(times), 2), "job_status_runs_s": spread(times, 2),
            "job_status_sdk_s": round(sdk_status, 3), "job_status_finalized": summary.finalized,
            "result_get_full_ms_per_task": round(1000 * full / n, 2),
            "result_get_ms_per_task": round(1000 * resumed / n, 3),
            "result_get_ms_per_task_runs": spread([1000 * x / n for x in resumed_runs], 3)}


# -- 3. an audit -----------------------------------------------------------------------------------------------
def audit(net: Devnet, job: int) -> AuditPart:
    wall, proc = cli(net, "audit", "job", str(job), "--json")
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise SystemExit(f"bench: tasknet audit job failed: {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    return {"audit_s_2k": round(wall, 1), "audit_tasks": len(report["tasks"]), "audit_passed": report["passed"],
            "audit_counts": report["counts"]}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="scripts/bench scale")
    ap.add_argument("--tasks", type=int, default=10_000, help="tasks of the big bag")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--max-concurrent", type=int, default=2)
    ap.add_argument("--window", type=int, default=1000, help="finished tasks per CPU window (first and last)")
    ap.add_argument("--audit-tasks", type=int, default=2000)
    ap.add_argument("--journal-records", type=int, default=100_000)
    ap.add_argument("--idle-seconds", type=float, default=20.0)
    ap.add_argument("--only", choices=["idle", "bag", "batching"], default=None,
                    help="run one part only; 'batching': bags of --sizes tasks one after the other on the same "
                         "workers, and how their results went on chain (no requester commands, audit or idle worker)")
    ap.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=[500, 2000],
                    help="with --only batching: the bags' sizes, comma-separated (default 500,2000)")
    ap.add_argument("--anvil-defaults", action="store_true",
                    help="run anvil with its own defaults instead of the devnet's long-run options (a comparison)")
    ap.add_argument("--json", action="store_true")
    return ap.parse_args(argv)


def big_bag(net: Devnet, args: argparse.Namespace, procs: list[subprocess.Popen[bytes]],
            workers: list[LocalAccount]) -> BagResult:
    """The big bag on the running workers, the requester's commands on it, then a job audited (the workers are
    stopped before the audit)."""
    start_block = int(net.w3.eth.block_number) + 1
    job, bag, _ = run_bag(net, args.tasks, [p.pid for p in procs], args.window)
    end_block = int(net.w3.eth.block_number)
    post = net.market.contract.events.JobPosted().get_logs(from_block=start_block, argument_filters={"jobId": job})
    post_gas = int(net.w3.eth.get_transaction_receipt(post[0]["transactionHash"])["gasUsed"])
    costs = chain_costs(net, start_block, end_block, [a.address for a in workers], args.tasks, post_gas)
    print("bench scale so far:", json.dumps({**bag, **costs}), file=sys.stderr, flush=True)
    commands = requester(net, job, args.tasks)
    print("bench scale so far:", json.dumps(commands), file=sys.stderr, flush=True)
    audit_n = min(args.audit_tasks, args.tasks)
    audit_job, _, _ = run_bag(net, audit_n, [p.pid for p in procs], args.window)
    stop(procs)
    audited = audit(net, audit_job)
    print("bench scale so far:", json.dumps(audited), file=sys.stderr, flush=True)
    return {**bag, "cpu_ms_first_1k": bag["first"]["worker_cpu_ms_per_task"],
            "cpu_ms_last_1k": bag["last"]["worker_cpu_ms_per_task"],
            "anvil_cpu_ms_per_tx_first": bag["first"]["anvil_cpu_ms_per_tx"],
            "anvil_cpu_ms_per_tx_last": bag["last"]["anvil_cpu_ms_per_tx"], **costs, **commands, **audited,
            "audit_job_tasks": audit_n}


def main(argv: list[str] | None = None) -> ScaleRow:
    args = _parse(argv)
    tmp = Path(tempfile.mkdtemp(prefix="tasknet-bench-scale-"))
    load_before = _load()
    net = Devnet(tmp, anvil_defaults=args.anvil_defaults)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        workers = net.accounts[4:4 + args.workers]
        result: ScaleRow
        if args.only == "batching":
            procs = start_workers(net, workers, args.max_concurrent)
            batching = [batching_bag(net, n, procs, workers) for n in args.sizes]
            result = {"load_before": load_before, "batching": batching,
                      "reverts_logged": logged_reverts(net, [f"w{i}" for i in range(len(workers))]),
                      "load_after": _load()}
        elif args.only == "idle":
            idle = idle_worker(net, args.journal_records, args.idle_seconds, net.accounts[9])
            result = {"load_before": load_before, **idle, "load_after": _load()}
        else:
            procs = start_workers(net, workers, args.max_concurrent)
            bag = big_bag(net, args, procs, workers)
            procs = []  # stopped before the audit
            if args.only == "bag":
                result = {"load_before": load_before, **bag, "load_after": _load()}
            else:
                idle = idle_worker(net, args.journal_records, args.idle_seconds, net.accounts[9])
                result = {"load_before": load_before, **bag, **idle, "load_after": _load()}
        print(json.dumps(result))
        return result
    finally:
        stop(procs)
        net.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
