"""Worker benchmark: overhead per task and end-to-end throughput, on a private anvil + kubo + the Docker engine.

overhead = wall time from claim to result on chain minus the container's own run time, median over N trivial
tasks run one at a time by one worker; throughput = trivial R = 1 tasks per second with 4 workers (automine).
Prints a JSON line last: {"overhead_median_s": ..., "tasks_per_s": ..., "workers": 4, ...}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

from oracle import IpfsClient, connect, deploy_all, dev_accounts  # noqa: E402
from oracle.market import Market  # noqa: E402
from tasknet import _devnet  # noqa: E402
from tests.integration.test_worker import running  # noqa: E402
from tests.market_helpers import ETHER, build_echo_app, fund, post_job, register_app  # noqa: E402
from worker._daemon import Worker  # noqa: E402
from worker._journal import Journal, Step  # noqa: E402
from worker._settings import WorkerSettings  # noqa: E402


def wait_finished(market: Market, job_id: int, n: int, timeout: float) -> None:
    end = time.monotonic() + timeout
    while market.job(job_id)["finished"] < n:
        if time.monotonic() > end:
            raise SystemExit(f"bench: job {job_id} did not finish {n} tasks within {timeout:.0f} s")
        time.sleep(0.25)  # the bench's own polling must not load the chain it measures


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(prog="scripts/bench worker")
    ap.add_argument("--overhead-tasks", type=int, default=50)
    ap.add_argument("--throughput-tasks", type=int, default=100)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="tasknet-bench-"))
    anvil, url = _devnet.start_anvil(tmp / "anvil", _devnet.free_port())
    kubo, api, _ = _devnet.start_kubo(tmp / "kubo", _devnet.free_port(), _devnet.free_port())
    try:
        w3 = connect(url)
        accounts = dev_accounts(10)
        market = Market(w3, deploy_all(w3, accounts[0]).contracts["Marketplace"])
        client = docker.from_env()
        ipfs = IpfsClient(api)
        app = register_app(w3, market, accounts[2], build_echo_app(client, tmp))
        fund(w3, market, accounts[1], 1000 * ETHER)

        def worker(i: int, name: str) -> Worker:
            fund(w3, market, accounts[4 + i], 20 * ETHER)
            return Worker(WorkerSettings(rpc_url=url, ipfs_api=api, marketplace=market.address,
                                         private_key="0x" + accounts[4 + i].key.hex().removeprefix("0x"),
                                         state_dir=tmp / name, stake=10 * ETHER, poll_interval=0.05,
                                         claim_backoff_max=0.02), docker_client=client)

        # overhead: one worker, one task at a time
        job = post_job(w3, market, accounts[1], ipfs, app, tasks=args.overhead_tasks, reward=ETHER // 1000)
        solo = worker(0, "solo")
        with running(solo):
            wait_finished(market, job, args.overhead_tasks, 600)
        journal = Journal(tmp / "solo" / "journal.db")
        overheads = []
        for rec in journal.all():
            times = dict(_times(journal, rec))
            overheads.append(times[Step.DONE] - times[Step.CLAIMED] - float(rec.data.get("run_seconds", 0.0)))
        # throughput: N workers on one bag
        job2 = post_job(w3, market, accounts[1], ipfs, app, tasks=args.throughput_tasks, reward=ETHER // 1000)
        pool = [worker(1 + i, f"w{i}") for i in range(args.workers)]
        t0 = time.monotonic()
        with running(*pool):
            wait_finished(market, job2, args.throughput_tasks, 900)
            elapsed = time.monotonic() - t0
        result = {"overhead_median_s": round(statistics.median(overheads), 3),
                  "overhead_p90_s": round(sorted(overheads)[int(len(overheads) * 0.9) - 1], 3),
                  "run_median_s": round(statistics.median(float(r.data.get("run_seconds", 0)) for r in journal.all()), 3),
                  "tasks_per_s": round(args.throughput_tasks / elapsed, 2), "workers": args.workers,
                  "overhead_tasks": len(overheads), "throughput_tasks": args.throughput_tasks}
        print(json.dumps(result))
        return result
    finally:
        _devnet.stop(kubo)
        _devnet.stop(anvil)


def _times(journal: Journal, rec) -> list[tuple[Step, float]]:  # type: ignore[no-untyped-def]
    with journal._lock:
        rows = journal._db.execute("SELECT step, at FROM history WHERE task_key=? ORDER BY id",
                                   (rec.task_key,)).fetchall()
    return [(Step(s), t) for s, t in rows]


if __name__ == "__main__":
    main()
