"""Crash safety: an ingester SIGKILLed inside a batch's transaction, or the real `tasknet indexer run` killed
mid-run, resumes from its saved cursor with no row lost and none written twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from test_indexer_helpers import GOOD, Traffic, chain_event_count, count, dump, traffic, wait_for

from indexer import Indexer, _db, make_engine
from oracle.protocol import task_id
from tasknet._devnet import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def t(w3, accounts, deployment) -> Traffic:
    return traffic(w3, accounts, deployment)


def _more_traffic(t: Traffic, gap: int = 0) -> None:
    """The scenario, ``gap`` empty blocks, then a 9-task range leased and relayed in three signed batches."""
    ids = t.scenario()
    if gap:
        t.w3.provider.make_request("anvil_mine", [gap])
    job = t.post(ids["app"], n=9)
    start = task_id(job, 0)
    t.claim_range(start, 9, t.workers[2])
    for k in range(3):
        t.relay_results(start, start + 3 * k, t.workers[2], [GOOD] * 3, [f"bafy{k}"] * 3)


def _reference(tmp_path: Path, t: Traffic) -> dict:
    ref = Indexer(make_engine(str(tmp_path / "reference.db")), t.w3, t.market.address)
    ref.sync()
    return dump(ref.engine)


def _cursor_block(url: str) -> int:
    try:
        with make_engine(url).connect() as conn:
            cur = _db.load_cursor(conn)
    except OperationalError:  # the ingester has not created its tables yet
        return -1
    return -1 if cur is None else cur["next_block"]


def test_sigkill_inside_a_batch_transaction_resumes_exactly(tmp_path: Path, t: Traffic, anvil) -> None:
    _more_traffic(t)
    url = str(tmp_path / "crash.db")
    script = textwrap.dedent(f"""
        import os, signal
        from indexer import Indexer, make_engine
        from oracle import connect
        calls = []
        def crash():
            calls.append(1)
            if len(calls) == 4:  # rows of the 4th batch are written, its transaction not yet committed
                os.kill(os.getpid(), signal.SIGKILL)
        ix = Indexer(make_engine({url!r}), connect({anvil.rpc_url!r}), {t.market.address!r}, batch_blocks=7,
                     on_batch_written=crash)
        ix.sync()
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    partial = _cursor_block(url)
    assert 0 < partial <= t.w3.eth.block_number  # three batches committed, the fourth lost whole
    with make_engine(url).connect() as conn:
        assert conn.execute(select(_db.events.c.block_number).where(_db.events.c.block_number >= partial)
                            ).first() is None

    resumed = Indexer(make_engine(url), t.w3, t.market.address, batch_blocks=7)
    resumed.sync()
    assert count(resumed.engine, _db.events) == chain_event_count(t)
    assert dump(resumed.engine) == _reference(tmp_path, t)


def test_tasknet_indexer_run_killed_mid_run_resumes_without_loss_or_duplicates(
        tmp_path: Path, t: Traffic, anvil) -> None:
    _more_traffic(t, gap=300)  # one block per step: the kill lands long before the last events
    url = str(tmp_path / "cli.db")
    total = chain_event_count(t)
    base = [sys.executable, "-m", "tasknet.cli", "indexer", "run", "--db", url, "--rpc-url", anvil.rpc_url,
            "--marketplace", t.market.address, "--from-block", "0"]
    env = {**os.environ, "TASKNET_HOME": str(tmp_path / "home")}
    first = subprocess.Popen([*base, "--batch-blocks", "1", "--no-api"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _cursor_block(url) > 20, 60, "the first batches")
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    with make_engine(url).connect() as conn:
        assert conn.execute(select(_db.cursor.c.events_total)).scalar_one() < total  # killed mid-run

    port = free_port()
    second = subprocess.Popen([*base, "--batch-blocks", "25", "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        def ready() -> bool:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2)
            except httpx.HTTPError:
                return False
            return r.status_code == 200 and r.json()["lag_blocks"] == 0
        wait_for(ready, 60, "the restarted indexer to catch up")
        stats = httpx.get(f"http://127.0.0.1:{port}/api/stats", timeout=5).json()
        assert stats["events_total"] == total
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0, second.stderr.read().decode()[-2000:] if second.stderr else ""
    assert dump(make_engine(url)) == _reference(tmp_path, t)
