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
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker
from eth_account.signers.local import LocalAccount
from web3 import Web3

from oracle import IpfsClient, connect, deploy_all, dev_accounts
from oracle.market import AppView, JobView, Market
from scripts.bench_worker import _cpu_of
from tasknet import _devnet
from tests.market_helpers import ETHER, build_echo_app, fund, post_job, register_app
from worker import WorkerSettings


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Devnet:
    """anvil (as ``tasknet up`` starts it: automine here) + kubo + the contracts, the echo app, a funded requester."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.anvil, self.url = _devnet.start_anvil(tmp / "anvil", _devnet.free_port())
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
        while not all(self.market.worker(a)["stake"] >= 10 * ETHER for a in addresses):
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
    views: dict[str, Any] = {}
    for n in range(records):
        job_id, index = 1000 + n // per_job, n % per_job
        key = f"{job_id}:{index}"
        at = t0 + n * step_s
        data = {"job": {**job.model_dump(mode="json"), "job_id": job_id, "num_tasks": per_job},
                "app": app.model_dump(mode="json"), "dataset": None, "claim_block": 100 + n,
                "claim_tx": "0x" + f"{n:064x}", "expiry": int(at) + 600, "digest": "0x" + f"{n:064x}",
                "cid": f"bafkrei{n:052d}", "run_seconds": 0.1, "tx": "0x" + f"{n + 1:064x}", "gas": 120_000,
                "outcome": "paid", "earned": 10**17, "batch": 4, "unpinned": True}
        rows.append((key, job_id, index, 100, json.dumps(data), at))
        history += [(key, s, at + k * 0.1, None) for k, s in enumerate((10, 20, 30, 40, 50, 100))]
        views.setdefault(str(job_id), {**data["job"], "closed": True})
    db.executemany("INSERT INTO tasks VALUES(?,?,?,?,?,?)", rows)
    db.executemany("INSERT INTO history(task_key, step, at, note) VALUES(?,?,?,?)", history)
    view = {"jobs": views, "apps": {str(app.app_id): app.model_dump(mode="json")}, "datasets": {},
            "taken": {j: list(range(per_job)) for j in views}, "leases": {}, "replicas": {}, "targets": {}}
    db.execute("INSERT INTO kv VALUES('stream', ?)", (json.dumps(
        {"market": market, "cursor": {"next_block": next_block, "recent": {}}, "view": view}),))
    db.commit()
    db.close()


def idle_worker(net: Devnet, records: int, seconds: float, account: LocalAccount) -> dict[str, Any]:
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
        time.sleep(seconds)
        cpu, wall = _cpu_of(proc.pid) - before, time.monotonic() - w0
    finally:
        stop([proc])
    size = sum(f.stat().st_size for f in state.glob("journal.db*"))
    return {"idle_cpu_pct_100k": round(100 * cpu / wall, 2), "idle_seconds": round(wall, 1),
            "idle_journal_records": records, "idle_start_s": round(started_s, 1),
            "idle_journal_written_s": round(written_s, 1), "idle_journal_mb": round(size / 1e6, 1)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="scripts/bench scale")
    ap.add_argument("--tasks", type=int, default=10_000, help="tasks of the big bag")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--max-concurrent", type=int, default=2)
    ap.add_argument("--window", type=int, default=1000, help="finished tasks per CPU window (first and last)")
    ap.add_argument("--audit-tasks", type=int, default=2000)
    ap.add_argument("--journal-records", type=int, default=100_000)
    ap.add_argument("--idle-seconds", type=float, default=20.0)
    ap.add_argument("--only", choices=["idle", "bag"], default=None, help="run one part only")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="tasknet-bench-scale-"))
    result: dict[str, Any] = {"load_before": _load()}
    net = Devnet(tmp)
    try:
        if args.only in (None, "idle"):
            result.update(idle_worker(net, args.journal_records, args.idle_seconds, net.accounts[9]))
        result["load_after"] = _load()
        print(json.dumps(result))
        return result
    finally:
        net.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
