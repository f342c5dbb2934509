"""Worker benchmark: overhead per task and end-to-end throughput, on a private anvil + kubo + the Docker engine.

overhead = wall time from claim to result on chain minus the container's own run time, for trivial tasks run one
at a time by one worker (median over the tasks of a run; the figure is the median of the runs); throughput =
trivial R = 1 tasks per second with N worker processes (`tasknet worker run`, each its own process, as resource
providers run it) on one automine chain, from the job's posting to its last result (median of the runs), with the
CPU each component spent per task meanwhile (from /proc: the machine is CPU-bound, so this is what sets the rate).
Prints a JSON line last: {"overhead_median_s": ..., "tasks_per_s": ..., "workers": 4, ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker
from _bench_rows import Spread, WorkerRow

from oracle import IpfsClient, connect, deploy_all, dev_accounts
from oracle.market import Market
from tasknet import _devnet
from tests.integration.test_worker import running
from tests.market_helpers import ETHER, build_echo_app, fund, post_job, register_app
from worker import Journal, Step, Worker, WorkerSettings


def wait_finished(market: Market, job_id: int, n: int, timeout: float) -> None:
    end = time.monotonic() + timeout
    while market.job_record(job_id).finished < n:
        if time.monotonic() > end:
            raise SystemExit(f"bench: job {job_id} did not finish {n} tasks within {timeout:.0f} s")
        time.sleep(0.1)  # the bench's own polling must not load the chain it measures


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> float:
    """CPU seconds of ``pid`` and of its children it has waited for (utime, stime, cutime, cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / _TICK


def _pids_named(name: str) -> list[int]:
    out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True, check=False).stdout.split()
    return [int(p) for p in out]


def _machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all but idle and iowait) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / _TICK


class CpuMeter:
    """CPU per task of each component during a run: the worker processes, anvil, kubo, dockerd, containerd, and
    the rest of the machine (containerd shims, runc, the kernel's work for containers; the bench's own polling
    is taken out)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups

    def snapshot(self) -> dict[str, float]:
        snap = {g: sum(_cpu_of(p) for p in pids) for g, pids in self.groups.items()}
        snap["bench"] = time.process_time()
        snap["machine"] = _machine_busy()
        return snap

    @staticmethod
    def per_task(before: dict[str, float], after: dict[str, float], tasks: int) -> dict[str, float]:
        delta = {k: after[k] - before[k] for k in before}
        rest = delta.pop("machine") - sum(delta.values())
        delta.pop("bench")
        return {**{k: v / tasks for k, v in delta.items()}, "rest": rest / tasks,
                "machine": (after["machine"] - before["machine"]) / tasks}


def spread(values: list[float], digits: int = 3) -> Spread:
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits)}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="scripts/bench worker")
    ap.add_argument("--overhead-tasks", type=int, default=50, help="tasks per overhead run")
    ap.add_argument("--throughput-tasks", type=int, default=100, help="tasks per throughput run")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--max-concurrent", type=int, default=2, help="tasks each worker runs at once (throughput)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each measure (medians are reported)")
    ap.add_argument("--json", action="store_true")
    return ap.parse_args(argv)


def _overhead(args: argparse.Namespace, post: Callable[[int], int], market: Market, solo: WorkerSettings,
              client: Any, journal_path: Path) -> tuple[list[float], list[float], list[float]]:
    """One worker (in this process, its journal read afterwards), one task at a time: the median overhead of each
    run, every task's overhead, every task's run time."""
    run_medians: list[float] = []
    overheads: list[float] = []
    runs: list[float] = []
    for _ in range(args.repeats):
        job = post(args.overhead_tasks)
        with running(Worker(solo, docker_client=client)):  # a stopped worker is not restarted
            wait_finished(market, job, args.overhead_tasks, 600)
        journal = Journal(journal_path)
        this = []
        for rec in journal.all():
            if rec.job_id != job:
                continue
            times = dict(journal.step_times(rec.job_id, rec.task_index))
            run = float(rec.data.get("run_seconds", 0.0))
            this.append(times[Step.DONE] - times[Step.CLAIMED] - run)
            runs.append(run)
        overheads += this
        run_medians.append(statistics.median(this))
    return run_medians, overheads, runs


def _start_workers(args: argparse.Namespace, settings: Callable[..., WorkerSettings], market: Market,
                   accounts: list[Any], tmp: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    """N worker processes (appended to ``procs``), waited for until each has registered and staked."""
    for i in range(args.workers):
        cfg = settings(1 + i, f"w{i}", policy={"max_concurrent": args.max_concurrent})
        doc = json.loads(cfg.model_dump_json())
        doc["private_key"] = cfg.private_key.get_secret_value() if cfg.private_key else None
        doc.pop("password", None)
        path = tmp / f"w{i}.json"
        path.write_text(json.dumps(doc))
        procs.append(subprocess.Popen([sys.executable, "-m", "tasknet.cli", "worker", "run", "--config",
                                       str(path)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                      stderr=(tmp / f"w{i}.log").open("wb"), env={**os.environ}))
    end = time.monotonic() + 120
    while not all(market.worker_record(accounts[5 + i].address).stake >= 10 * ETHER for i in range(args.workers)):
        if time.monotonic() > end or any(p.poll() is not None for p in procs):
            raise SystemExit(f"bench: the worker processes did not start; see {tmp}/w*.log")
        time.sleep(0.2)
    time.sleep(1.0)  # past registration: the workers are polling


def _throughput(args: argparse.Namespace, post: Callable[[int], int], market: Market, meter: CpuMeter
                ) -> tuple[list[float], list[dict[str, float]]]:
    """Bags of tasks for the worker processes: tasks per second and CPU per task of each run."""
    rates: list[float] = []
    cpu: list[dict[str, float]] = []
    for _ in range(args.repeats):
        before = meter.snapshot()
        t0 = time.monotonic()
        job2 = post(args.throughput_tasks)
        wait_finished(market, job2, args.throughput_tasks, 900)
        rates.append(args.throughput_tasks / (time.monotonic() - t0))
        cpu.append(meter.per_task(before, meter.snapshot(), args.throughput_tasks))
    return rates, cpu


def _result(args: argparse.Namespace, run_medians: list[float], overheads: list[float], runs: list[float],
            rates: list[float], cpu: list[dict[str, float]]) -> WorkerRow:
    return {"overhead_median_s": round(statistics.median(run_medians), 3),
            "overhead_runs_s": spread(run_medians),
            "overhead_p90_s": round(sorted(overheads)[int(len(overheads) * 0.9) - 1], 3),
            "run_median_s": round(statistics.median(runs), 3),
            "tasks_per_s": round(statistics.median(rates), 2), "tasks_per_s_runs": spread(rates, 2),
            "cpu_ms_per_task": {k: round(statistics.median(c[k] for c in cpu) * 1000, 1) for k in cpu[0]},
            "workers": args.workers, "max_concurrent": args.max_concurrent, "repeats": args.repeats,
            "overhead_tasks": args.overhead_tasks, "throughput_tasks": args.throughput_tasks}


def main(argv: list[str] | None = None) -> WorkerRow:
    args = _parse(argv)
    tmp = Path(tempfile.mkdtemp(prefix="tasknet-bench-"))
    anvil, url = _devnet.start_anvil(tmp / "anvil", _devnet.free_port())
    kubo, api, _ = _devnet.start_kubo(tmp / "kubo", _devnet.free_port(), _devnet.free_port())
    procs: list[subprocess.Popen[bytes]] = []
    try:
        w3 = connect(url)
        accounts = dev_accounts(10)
        market = Market(w3, deploy_all(w3, accounts[0]).contracts["Marketplace"])
        client = docker.from_env()
        ipfs = IpfsClient(api)
        app = register_app(w3, market, accounts[2], build_echo_app(client, tmp))
        fund(w3, market, accounts[1], 1000 * ETHER)

        def settings(i: int, name: str, **kw: Any) -> WorkerSettings:
            fund(w3, market, accounts[4 + i], 20 * ETHER)
            return WorkerSettings(rpc_url=url, ipfs_api=api, marketplace=market.address,
                                  private_key="0x" + accounts[4 + i].key.hex().removeprefix("0x"),
                                  state_dir=tmp / name, stake=10 * ETHER, poll_interval=0.1, claim_backoff_max=0.02,
                                  **kw)

        def post(tasks: int) -> int:
            return post_job(w3, market, accounts[1], ipfs, app, tasks=tasks, reward=ETHER // 1000)

        # overhead: each result sent as soon as it is uploaded (batching.hold_s 0: by default it would wait for
        # the next task's result, a deliberate wait for gas that is not the worker's overhead; the throughput runs
        # below keep the default)
        run_medians, overheads, runs = _overhead(args, post, market, settings(0, "solo", batching={"hold_s": 0.0}),
                                                 client, tmp / "solo" / "journal.db")
        # throughput: N worker processes on one bag, started (and registered) before the job is posted
        _start_workers(args, settings, market, accounts, tmp, procs)
        meter = CpuMeter({"workers": [p.pid for p in procs], "anvil": [anvil.pid or 0], "kubo": [kubo.pid or 0],
                          "dockerd": _pids_named("dockerd"), "containerd": _pids_named("containerd")})
        rates, cpu = _throughput(args, post, market, meter)
        result = _result(args, run_medians, overheads, runs, rates, cpu)
        print(json.dumps(result))
        return result
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        _devnet.stop(kubo)
        _devnet.stop(anvil)

if __name__ == "__main__":
    main()
