"""Load: one job of many tasks (1,000 by default; TASKNET_LOAD_TASKS) served by 6 `tasknet worker run` processes on a
chain that mines one block a second, like a real one. At the end every task is finalized exactly once, the
marketplace's token balance equals every balance, stake and escrow to the wei, and the indexer (synced from the
deploy block into SQLite) agrees with the chain on every task.

Real anvil (--block-time 1), kubo, the Docker engine and SQLite; the wall time and the rate are recorded as the
test's evidence for RELIABILITY.md, never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from indexer import _db
from indexer._ingest import Indexer
from oracle import connect, deploy_all, dev_accounts
from oracle.market import Market
from oracle.protocol import task_id
from tasknet import _devnet
from tests.market_helpers import ETHER, build_echo_app, fund, post_job, register_app
from worker._settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
TASKS = int(os.environ.get("TASKNET_LOAD_TASKS", "1000"))
WORKERS = 6


def _start_worker(tmp: Path, i: int, url: str, ipfs_api: str, market: Market, key: str) -> subprocess.Popen[bytes]:
    cfg = WorkerSettings(rpc_url=url, ipfs_api=ipfs_api, marketplace=market.address, private_key=key,
                         state_dir=tmp / f"w{i}", stake=5 * ETHER, poll_interval=0.25, claim_backoff_max=0.2,
                         policy={"max_concurrent": 4})
    doc = json.loads(cfg.model_dump_json())
    doc["private_key"] = key
    doc.pop("password", None)
    path = tmp / f"w{i}.json"
    path.write_text(json.dumps(doc))
    return subprocess.Popen([sys.executable, "-m", "tasknet.cli", "--json-logs", "worker", "run", "--config", str(path)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(tmp / f"w{i}.log").open("wb"))


@pytest.mark.reliability(kind="load", name=f"one job of {TASKS} tasks, {WORKERS} workers, block time 1 s",
                         how="6 `tasknet worker run` processes (4 tasks at once each) on a private anvil mining a "
                             "block a second; then every task settled exactly once, solvency to the wei, and the "
                             "indexer (SQLite, synced from the deploy block) equal to the chain on every task")
def test_a_thousand_tasks_settle_exactly_once_and_the_books_balance(ipfs, docker_client, tmp_path,
                                                                    record_property) -> None:
    anvil, url = _devnet.start_anvil(tmp_path / "anvil", _devnet.free_port(), block_time=1)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        w3 = connect(url)
        accounts = dev_accounts(10)
        deployed = deploy_all(w3, accounts[0])
        market = Market(w3, deployed.contracts["Marketplace"])
        app = register_app(w3, market, accounts[2], build_echo_app(docker_client, tmp_path))
        fund(w3, market, accounts[1], TASKS * ETHER // 100 + 10 * ETHER)
        workers = accounts[4:4 + WORKERS]
        for i, a in enumerate(workers):
            fund(w3, market, a, 10 * ETHER)
            procs.append(_start_worker(tmp_path, i, url, ipfs.api_url, market, "0x" + a.key.hex().removeprefix("0x")))
        deadline = time.monotonic() + 180
        while not all(market.worker_record(a.address).stake >= 5 * ETHER for a in workers):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
                f"the workers did not start; see {tmp_path}/w*.log"
            time.sleep(0.5)
        t0 = time.monotonic()
        job = post_job(w3, market, accounts[1], ipfs, app, tasks=TASKS, reward=ETHER // 100, max_run=60,
                       deadline_s=7200)
        deadline = time.monotonic() + 1800
        while market.job_record(job).finished < TASKS:
            assert time.monotonic() < deadline, f"{market.job_record(job).finished} of {TASKS} tasks after 30 min"
            assert all(p.poll() is None for p in procs), f"a worker died; see {tmp_path}/w*.log"
            time.sleep(2.0)
        elapsed = time.monotonic() - t0
        for p in procs:
            p.terminate()
        for p in procs:
            assert p.wait(120) == 0, f"a worker did not drain and stop cleanly; see {tmp_path}/w*.log"

        # every task settled exactly once, by a worker that held it
        submitted = market.contract.events.ResultSubmitted().get_logs(from_block=0)
        per_task = Counter(int(e["args"]["taskId"]) for e in submitted)
        assert sorted(per_task) == [task_id(job, i) for i in range(TASKS)]
        assert set(per_task.values()) == {1}
        info = market.job_record(job)
        assert info.settled == info.finished == TASKS
        # solvency to the wei: what the market holds is exactly balances + stakes + escrow
        c = market.contract.functions
        held = market.token.functions.balanceOf(market.address).call()
        people = {a.address for a in accounts} | {c.treasury().call()}
        balances = sum(market.balance(p) for p in people)
        stakes = sum(int(market.worker_record(p).stake) + int(market.worker_record(p).unstaking) for p in people)
        escrow = sum(int(c.jobEscrow(j).call()) for j in range(1, int(c.jobCount().call()) + 1))
        assert held == balances + stakes + escrow
        assert all(int(market.worker_record(a.address).locked) == 0 for a in workers)
        # the indexer agrees with the chain on every task
        engine = _db.make_engine(f"sqlite:///{tmp_path / 'indexer.db'}")
        Indexer(engine, w3, market.address, from_block=0).sync()
        with engine.connect() as conn:
            rows = conn.execute(select(_db.tasks.c.task_id, _db.tasks.c.status, _db.tasks.c.result_digest)
                                .where(_db.tasks.c.is_current.is_(True))).all()
        digests = {int(e["args"]["taskId"]): "0x" + bytes(e["args"]["resultDigest"]).hex() for e in submitted}
        assert {int(r.task_id): (r.status, r.result_digest) for r in rows} == {
            t: ("finalized", d) for t, d in digests.items()}
        rate = TASKS / elapsed
        record_property("reliability", f"{TASKS} tasks finalized exactly once in {elapsed:.0f} s ({rate:.2f} tasks/s); "
                                       f"market holds {held} wei = balances + stakes + escrow; indexer = chain on "
                                       f"all {len(rows)} tasks")
        print(f"load: {TASKS} tasks in {elapsed:.1f} s = {rate:.2f} tasks/s")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        _devnet.stop(anvil)
