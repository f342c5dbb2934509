"""Adaptive replication benchmark (issue #16): a 100-task job at confidence 0.99 run by reputable worker daemons,
against fixed R = 1, 2 and 3 on the same workers, with gas as the daemons really send it.

    scripts/bench adaptive [--tasks 100] [--workers 4] [--no-liar] [--json]

On a private anvil + kubo + the Docker engine, ``--workers`` ``tasknet worker run`` processes first earn a record on
an R = 2 warm-up job (every worker's verified count is reported), then run, one after the other, an R = 1 bag, the
credibility-mode job (confidence 0.99, f = 10 %, spot checks 10 %, cap 6), and fixed R = 2 and R = 3 jobs of the
same size. Gas per task is the sum of gasUsed over every transaction of the job (posting included) divided by the
tasks; replicas per task counts the revealed results. Then (unless ``--no-liar``) a worker that changes every output
joins, new, and a 50-task credibility job runs: its wrong results must all lose. A result is wrong when its digest is
not the one the honest workers computed. The last line is JSON:
``{"replicas_per_task": …, "gas_per_task_vs_r1": …, "wrong_accepted": …, …}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker
from _bench_rows import AdaptiveRow, JobRun, LiarJobRun, Outcome, dump_row
from _daemon_costs import block_receipts, gas_by_kind, market_decoder
from eth_account.signers.local import LocalAccount
from pydantic import TypeAdapter
from web3.logs import DISCARD

from oracle import IpfsClient, connect, deploy_all, dev_accounts
from oracle.market import Market
from oracle.tx import TxSender
from tasknet import _devnet
from tests.market_helpers import ETHER, build_echo_app, fund, register_app
from worker import WorkerSettings

CONF, FAULT, SPOT, CAP = 990_000_000, 1000, 1000, 6


def say(msg: str) -> None:
    print(f"bench adaptive: {msg}", file=sys.stderr, flush=True)


class Run:
    def __init__(self, tmp: Path, url: str, api: str, market: Market, ipfs: IpfsClient, app: int,
                 requester: LocalAccount) -> None:
        self.tmp, self.url, self.api, self.market, self.ipfs, self.app = tmp, url, api, market, ipfs, app
        self.requester = requester
        self.sender = TxSender(market.w3, requester, extra_abis=market.error_abis)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workers: list[str] = []
        self.liars: set[str] = set()
        self.accounts: list[LocalAccount] = []

    def start_worker(self, account: LocalAccount, name: str, **kw: Any) -> None:
        fund(self.market.w3, self.market, account, 50 * ETHER)
        cfg = WorkerSettings(rpc_url=self.url, ipfs_api=self.api, marketplace=self.market.address,
                             private_key="0x" + account.key.hex().removeprefix("0x"), state_dir=self.tmp / name,
                             stake=40 * ETHER, poll_interval=0.1, claim_backoff_max=0.02, **kw)
        doc = json.loads(cfg.model_dump_json())
        doc["private_key"] = cfg.private_key.get_secret_value() if cfg.private_key else None
        path = self.tmp / f"{name}.json"
        path.write_text(json.dumps(doc))
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "tasknet.cli", "worker", "run", "--config", str(path)], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=(self.tmp / f"{name}.log").open("wb"), env={**os.environ}))
        self.workers.append(account.address)
        end = time.monotonic() + 120
        while self.market.worker_record(account.address).stake < 40 * ETHER:
            if time.monotonic() > end or self.procs[-1].poll() is not None:
                raise SystemExit(f"bench: worker {name} did not start; see {self.tmp}/{name}.log")
            time.sleep(0.2)

    def job(self, tasks: int, replication: int, credible: bool) -> JobRun:
        """Post, wait until every task settled, and return the job's costs from its blocks."""
        data = self.ipfs.add_bytes(b"hello\n")
        doc = {"count": tasks, "template": {"args": ["task", "{index}"]},
               "common_inputs": [{"uri": f"ipfs://{data}", "path": "data.txt"}]}
        params = (self.app, 0, tasks, replication, ETHER // 1000, self.market.chain_time() + 7200, 60, 1, 0, 0, 0, 0,
                  "0x" + "00" * 20, self.ipfs.add_json(doc), b"")
        fn = (self.market.contract.functions.postCredibilityJob(params, (CONF, FAULT, SPOT)) if credible
              else self.market.contract.functions.postJob(params))
        receipt = self.sender.transact(fn)
        job = int(self.market.contract.events.JobPosted().process_receipt(receipt, errors=DISCARD)[0]["args"]["jobId"])
        t0, end = time.monotonic(), time.monotonic() + 1800
        while self.market.job_record(job).settled < tasks:
            if time.monotonic() > end:
                raise SystemExit(f"bench: job {job} did not settle within 30 min")
            time.sleep(0.2)
        wall = time.monotonic() - t0
        receipts = block_receipts(self.market.w3, int(receipt["blockNumber"]) + 1,
                                  int(self.market.w3.eth.block_number), self.workers)
        costs = gas_by_kind(receipts, market_decoder(self.market.contract), tasks, int(receipt["gasUsed"]))
        return {"job": job, "tasks": tasks, "wall_s": round(wall, 1), "gas_per_task": costs["gas_per_task"],
                "by_kind": costs["by_kind"], **self._results(job, int(receipt["blockNumber"]))}

    def _results(self, job: int, block: int) -> Outcome:
        c = self.market.contract
        lo, hi = job << 32, (job + 1) << 32
        reveals = [e["args"] for e in c.events.ResultRevealed().get_logs(from_block=block) if lo <= e["args"]["taskId"] < hi]
        finals = {e["args"]["taskId"]: e["args"]["resultDigest"]
                  for e in c.events.TaskFinalized().get_logs(from_block=block) if lo <= e["args"]["taskId"] < hi}
        submits = [e for e in c.events.ResultSubmitted().get_logs(from_block=block) if lo <= e["args"]["taskId"] < hi]
        wanted = [e["args"]["reason"] for e in c.events.ReplicaWanted().get_logs(from_block=block)
                  if lo <= e["args"]["taskId"] < hi]
        commits = [e for e in c.events.RangeCommitted().get_logs(from_block=block)
                   if lo <= e["args"]["startTaskId"] < hi]
        leases = [int(e["args"]["count"]) for e in commits]
        committed_at = {int(e["args"]["startTaskId"]): int(e["blockNumber"]) for e in commits}
        checks = [e for e in c.events.LeaseChecked().get_logs(from_block=block) if lo <= e["args"]["startTaskId"] < hi]
        checked = [int(e["args"]["count"]) for e in checks]
        # blocks from each checked lease's commit to its check: past 256 the commit block's hash is gone and the
        # lease counts as picked whatever the draw
        gaps = [int(e["blockNumber"]) - committed_at.get(int(e["args"]["startTaskId"]), 0) for e in checks]
        honest = {(r["taskId"], r["resultDigest"]) for r in reveals if r["worker"] not in self.liars}
        # a result accepted alone (R = 1, or a credible lease's open reveal) is wrong when a liar sent it
        wrong = sum(1 for tid, d in finals.items() if (tid, d) not in honest) + sum(
            1 for e in submits if e["args"]["worker"] in self.liars)
        n = len(finals) + len(submits)
        return {"replicas_per_task": round((len(reveals) + len(submits)) / max(n, 1), 3), "wrong_accepted": wrong,
                "finalized": n, "spot_checks": wanted.count(1), "disputes": wanted.count(2),
                "not_credible": wanted.count(0), "leases": len(leases),
                "lease_mean": round(sum(leases) / len(leases), 1) if leases else 0.0,
                "checked_leases": len(checked), "checked_tasks": sum(checked), "check_gaps": gaps, "lease_sizes": leases}

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()


@contextmanager
def daemons(prefix: str, workers: int, spare: int = 0, batching: dict[str, Any] | None = None) -> Iterator[Run]:
    """A private anvil + kubo with the Marketplace deployed, the echo app registered (app owner: account 2), a
    funded requester (account 1) and ``workers`` ``tasknet worker run`` processes (accounts 4...), max_concurrent 2
    each (and ``batching`` settings, e.g. ``{"lanes": True}``); ``spare`` more dev accounts stay unused
    (``run.accounts``). Everything is stopped on the way out."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    anvil, url = _devnet.start_anvil(tmp / "anvil", _devnet.free_port())
    kubo, api, _ = _devnet.start_kubo(tmp / "kubo", _devnet.free_port(), _devnet.free_port())
    run: Run | None = None
    try:
        w3 = connect(url)
        accounts = dev_accounts(4 + workers + spare)
        market = Market(w3, deploy_all(w3, accounts[0]).contracts["Marketplace"])
        app = register_app(w3, market, accounts[2], build_echo_app(docker.from_env(), tmp))
        fund(w3, market, accounts[1], 10_000 * ETHER)
        run = Run(tmp, url, api, market, IpfsClient(api), app, accounts[1])
        run.accounts = accounts
        for i in range(workers):
            run.start_worker(accounts[4 + i], f"w{i}", policy={"max_concurrent": 2},
                             **({"batching": batching} if batching else {}))
        yield run
    finally:
        if run is not None:
            run.stop()
        _devnet.stop(kubo)
        _devnet.stop(anvil)


def main(argv: list[str] | None = None) -> AdaptiveRow:
    ap = argparse.ArgumentParser(prog="scripts/bench adaptive")
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=60, help="R = 2 warm-up tasks that give the workers a record")
    ap.add_argument("--no-liar", action="store_true")
    ap.add_argument("--liar-tasks", type=int, default=50, help="tasks of the job the liar joins")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    with daemons("tasknet-bench-adaptive-", a.workers, spare=1) as run:
        market, accounts = run.market, run.accounts
        say(f"{a.workers} workers up; warm-up: R = 2, {a.warmup} tasks")
        warm = run.job(a.warmup, 2, False)
        verified = [market.worker_record(w).verified for w in run.workers]

        def run_job(name: str, replication: int, credible: bool) -> JobRun:
            say(f"{name}: {a.tasks} tasks")
            return run.job(a.tasks, replication, credible)

        r1, adaptive, r2, r3 = (run_job(name, r, credible) for name, r, credible in (
            ("r1", 1, False), ("adaptive", CAP, True), ("r2", 2, False), ("r3", 3, False)))
        liar: LiarJobRun | None = None
        if not a.no_liar:
            run.start_worker(accounts[4 + a.workers], "liar", fault="wrong-result", policy={"max_concurrent": 2})
            run.liars.add(accounts[4 + a.workers].address)
            time.sleep(3.0)  # past its start: the liar polls like the others
            say(f"a lying worker joined; credibility job of {a.liar_tasks} tasks")
            liar = {**run.job(a.liar_tasks, CAP, True), "liar_reveals": sum(
                1 for e in market.contract.events.ResultRevealed().get_logs(from_block=0)
                if e["args"]["worker"] == accounts[4 + a.workers].address),
                "liar_slashes": market.worker_record(accounts[4 + a.workers].address).slashes}
        out: AdaptiveRow = {
            "warmup": warm, "verified_after_warmup": verified, "r1": r1, "adaptive": adaptive, "r2": r2, "r3": r3,
            "replicas_per_task": adaptive["replicas_per_task"],
            "gas_per_task_vs_r1": round(adaptive["gas_per_task"] / r1["gas_per_task"], 3),
            "wrong_accepted": adaptive["wrong_accepted"] + (liar["wrong_accepted"] if liar else 0),
            "confidence": CONF / 1e9, "assumed_faulty": FAULT / 1e4, "spot_check": SPOT / 1e4, "cap": CAP,
            "tasks": a.tasks, "workers": a.workers, "load": [round(x, 2) for x in os.getloadavg()]}
        if liar is not None:
            out["with_liar"] = liar
    print(dump_row(TypeAdapter(AdaptiveRow), out))  # with_liar where it belongs, before the figures
    return out


if __name__ == "__main__":
    main()
