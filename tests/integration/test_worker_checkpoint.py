"""Checkpoints with a real worker daemon, anvil, kubo and Docker: a counting app that checkpoints every step is
stopped twice (SIGTERM of the worker process, then its policy's hours) and resumes from where it was each time; so
does a replica at R = 2, and the task of a worker killed with SIGKILL; a checkpoint folder over its cap ends as the
failure ``checkpoint-too-large``; a paused task whose claim would run out is given back (a fee, no slash)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from oracle.market import Market
from oracle.protocol import task_id
from tests.integration.test_worker import (
    fund_worker,
    running,
    settings,
    stop_and_read,
    wait_for,
    worker_process,
)
from tests.market_helpers import ETHER, build_script_app, fund, post_job, register_app
from worker._daemon import Worker
from worker._journal import Journal, Step
from worker._policy import HourRange

COUNTER_APP = """#!/bin/sh
# test app: counts to $1, one step every $2 seconds, keeping its count in the checkpoint folder and resuming
# from it; 'big' writes 3 MB into the checkpoint folder instead
set -u
ck="${TASKNET_CHECKPOINT_DIR:?no checkpoint folder}"
if [ "$1" = big ]; then dd if=/dev/zero of="$ck/big" bs=1024 count=3072 2>/dev/null; sleep 3; exit 0; fi
n=$1; c=0
[ -f "$ck/count" ] && c=$(cat "$ck/count")
echo "start $c" >> "$ck/runs"
echo "resumed from $c"
trap 'echo "stopped at $c" >&2; exit 143' TERM
while [ "$c" -lt "$n" ]; do
  sleep "$2"
  c=$((c + 1))
  echo "$c" > "$ck/count.new" && mv "$ck/count.new" "$ck/count"
done
echo "counted to $c" > /out/result.txt
cp "$ck/runs" /out/runs.txt
"""


@pytest.fixture(scope="module")
def counter_digest(docker_client, tmp_path_factory) -> str:
    return build_script_app(docker_client, tmp_path_factory.mktemp("counter-app"), COUNTER_APP,
                            "tasknet-test/counter:1")


def _count(state: Path, job_id: int) -> int:
    try:
        return int((state / "checkpoints" / f"{job_id}-0" / "count").read_text())
    except (OSError, ValueError):
        return 0


def _closed_hours() -> list[HourRange]:
    """Policy hours that exclude the current hour, and the next: one hour, twelve hours away."""
    far = (dt.datetime.now().hour + 12) % 24
    return [HourRange(start=far, end=far + 1)]


def _result(ipfs, market: Market, tid: int, tmp: Path) -> tuple[str, Path]:
    """The digest and the unpacked archive of the task's submitted result (or failure report)."""
    from oracle.archive import unpack_result

    events = [*market.contract.events.ResultSubmitted().get_logs(from_block=0),
              *market.contract.events.FailureReported().get_logs(from_block=0)]
    ev = next(e for e in events if e["args"]["taskId"] == tid)
    (tmp / f"{tid}.tar").write_bytes(ipfs.cat(ev["args"]["resultCID"]))
    unpack_result(tmp / f"{tid}.tar", tmp / f"u{tid}")
    return "0x" + bytes(ev["args"]["resultDigest"]).hex(), tmp / f"u{tid}"


def test_a_counting_task_stopped_twice_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_run(
        anvil, w3, accounts, market, ipfs, docker_client, counter_digest, tmp_path) -> None:
    """SIGTERM of the worker process pauses the task (its checkpoint kept, the journal and 'worker status' say
    so); the next start resumes it; the policy's hours closing pauses it again and their opening resumes it. Its
    final output equals an uninterrupted run's (same digest), and its runs started from 0, then from the counts
    reached: resumed, never restarted from 0. No slash, nothing left locked, the folder is deleted."""
    app_id = register_app(w3, market, accounts[2], counter_digest, deterministic_file="result.txt")
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[6])
    n = 24
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1, max_run=120,
                      doc={"tasks": [{"args": [str(n), "0.3"]}]})
    state = tmp_path / "w"
    cfg = settings(anvil, ipfs, market, accounts[6], state, drain_timeout=1, checkpoint={"grace_s": 5})
    # 1. SIGTERM: the drain cannot finish the task in 1 s: it pauses it; the process exits 0
    proc = worker_process(cfg, tmp_path / "cfg.json")
    logs = stop_and_read(proc, lambda: _count(state, job_id) >= 4, what="the task to count to 4")
    assert "drain_pausing" in logs and "task_paused" in logs
    rec = Journal(state / "journal.db").get(job_id, 0)
    assert rec is not None and rec.step < Step.UPLOADED and "stopping" in rec.data["paused"]
    first = _count(state, job_id)
    assert 4 <= first < n and market.job_record(job_id).finished == 0
    status = subprocess.run([sys.executable, "-m", "tasknet.cli", "worker", "status", "--config",
                             str(tmp_path / "cfg.json"), "--json"], check=False, capture_output=True, text=True,
                            timeout=120)
    assert status.returncode == 0, status.stderr[-2000:]
    assert f"{job_id}:0" in json.loads(status.stdout)["paused"]
    # 2. restarted (in this process): resumes; the policy's hours close: paused; they open: resumed to the end
    worker = Worker(cfg, docker_client=docker_client)
    journal = Journal(state / "journal.db")
    with running(worker):
        wait_for(lambda: _count(state, job_id) >= first + 4, what="the resumed task to count on")
        worker.s.policy.hours = _closed_hours()
        wait_for(lambda: (r := journal.get(job_id, 0)) is not None and bool(r.data.get("paused")),
                 what="the policy to pause the task")
        assert "outside the policy's hours" in journal.get(job_id, 0).data["paused"]
        second = _count(state, job_id)
        assert first < second < n
        worker.s.policy.hours = []
        wait_for(lambda: market.job_record(job_id).finished == 1, what="the task to finish")
        # an uninterrupted run of the same task, for comparison
        plain = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1, max_run=120,
                         doc={"tasks": [{"args": [str(n), "0.3"]}]})
        wait_for(lambda: market.job_record(plain).finished == 1, what="the uninterrupted task to finish")
    digest, unpacked = _result(ipfs, market, task_id(job_id, 0), tmp_path)
    plain_digest, plain_unpacked = _result(ipfs, market, task_id(plain, 0), tmp_path)
    assert (unpacked / "output" / "result.txt").read_text() == f"counted to {n}\n"
    assert digest == plain_digest
    runs = [int(line.split()[1]) for line in (unpacked / "output" / "runs.txt").read_text().splitlines()]
    assert len(runs) == 3 and runs[0] == 0 and first <= runs[1] < second <= runs[2] < n, runs
    assert (plain_unpacked / "output" / "runs.txt").read_text() == "start 0\n"
    notes = [note or "" for _, note in journal.history(job_id, 0)]
    assert sum(note.startswith("paused:") for note in notes) == 2 and notes.count("resumed") == 2
    assert not (state / "checkpoints" / f"{job_id}-0").exists()
    me = market.worker_record(accounts[6].address)
    assert (me.slashes, me.locked) == (0, 0)


def test_a_checkpoint_over_its_cap_ends_as_a_failure_result(anvil, w3, accounts, market, ipfs, docker_client,
                                                            counter_digest, tmp_path) -> None:
    """An app that writes 3 MB into a checkpoint folder capped at 1 MB is stopped; the task ends as the failure
    result 'checkpoint-too-large' (reported, not slashed), and its folder is deleted."""
    app_id = register_app(w3, market, accounts[2], counter_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[6])
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1, doc={"tasks": [{"args": ["big"]}]})
    state = tmp_path / "w"
    worker = Worker(settings(anvil, ipfs, market, accounts[6], state, checkpoint={"max_mb": 1}),
                    docker_client=docker_client)
    reported = market.contract.events.FailureReported()
    with running(worker):
        wait_for(lambda: any(e["args"]["taskId"] == task_id(job_id, 0) for e in reported.get_logs(from_block=0)),
                 what="the failure report")
    _, unpacked = _result(ipfs, market, task_id(job_id, 0), tmp_path)
    status = (unpacked / "logs" / "status.txt").read_text()
    assert "reason: checkpoint-too-large" in status and "checkpoint cap" in status
    assert sorted(p.name for p in (unpacked / "logs").iterdir()) == ["status.txt"]
    assert Journal(state / "journal.db").get(job_id, 0).data["outcome"] == "failure-reported"
    assert not (state / "checkpoints" / f"{job_id}-0").exists()
    assert market.worker_record(accounts[6].address).slashes == 0


def test_a_paused_task_whose_claim_would_expire_is_given_back(anvil, w3, accounts, market, ipfs, docker_client,
                                                              counter_digest, tmp_path) -> None:
    """A task paused by the policy, whose claim comes within its remaining run time of expiring (the chain's
    clock moved on), is given back early (abandon: a fee, no slash) and its folder deleted."""
    app_id = register_app(w3, market, accounts[2], counter_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[6])
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1, max_run=60,
                      doc={"tasks": [{"args": ["1000", "0.3"]}]})
    state = tmp_path / "w"
    worker = Worker(settings(anvil, ipfs, market, accounts[6], state, checkpoint={"grace_s": 3}),
                    docker_client=docker_client)
    journal = Journal(state / "journal.db")
    tid = task_id(job_id, 0)
    abandoned = market.contract.events.ClaimAbandoned()
    with running(worker):
        wait_for(lambda: _count(state, job_id) >= 2, what="the task to count")
        worker.s.policy.hours = _closed_hours()
        wait_for(lambda: (r := journal.get(job_id, 0)) is not None and bool(r.data.get("paused")),
                 what="the policy to pause the task")
        assert (state / "checkpoints" / f"{job_id}-0" / "count").exists()
        expiry = int(market.lease_view(tid).expiry)
        w3.provider.make_request("evm_increaseTime", [expiry - market.chain_time() - 20])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        wait_for(lambda: any(e["args"]["taskId"] == tid for e in abandoned.get_logs(from_block=0)),
                 what="the claim given back")
        wait_for(lambda: journal.get(job_id, 0).step is Step.ABANDONED, what="the journal to record it")
    assert "would expire" in (journal.get(job_id, 0).data.get("reason") or "")
    assert not (state / "checkpoints" / f"{job_id}-0").exists()
    me = market.worker_record(accounts[6].address)
    assert (me.slashes, me.locked) == (0, 0) and me.stake < 5 * ETHER  # the give-back fee only


def test_a_replica_paused_and_resumed_agrees_with_one_that_ran_through(anvil, w3, accounts, market, ipfs,
                                                                        docker_client, counter_digest,
                                                                        tmp_path) -> None:
    """R = 2: one worker's policy pauses its replica mid-count while the other runs through and commits; resumed
    from its checkpoint, the paused one commits the same result in the round's window: both win, none slashed."""
    app_id = register_app(w3, market, accounts[2], counter_digest, deterministic_file="result.txt")
    fund(w3, market, accounts[1], 10 * ETHER)
    for a in (accounts[6], accounts[7]):
        fund_worker(w3, market, a)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1, replication=2, max_run=60,
                      doc={"tasks": [{"args": ["12", "0.3"]}]})
    paused_state, plain_state = tmp_path / "w6", tmp_path / "w7"
    pausing = Worker(settings(anvil, ipfs, market, accounts[6], paused_state, checkpoint={"grace_s": 3}),
                     docker_client=docker_client)
    plain = Worker(settings(anvil, ipfs, market, accounts[7], plain_state), docker_client=docker_client)
    journal = Journal(paused_state / "journal.db")
    with running(pausing, plain):
        wait_for(lambda: _count(paused_state, job_id) >= 3, what="the replica to count to 3")
        pausing.s.policy.hours = _closed_hours()
        wait_for(lambda: (r := journal.get(job_id, 0)) is not None and bool(r.data.get("paused")),
                 what="the policy to pause the replica")
        wait_for(lambda: (r := Journal(plain_state / "journal.db").get(job_id, 0)) is not None
                 and r.step >= Step.COMMITTED, what="the other replica to commit")
        pausing.s.policy.hours = []
        wait_for(lambda: market.job_record(job_id).finished == 1, what="the task to finalize")
    final = market.contract.events.TaskFinalized().get_logs(from_block=0)
    assert final and final[-1]["args"]["winners"] == 2
    assert [n for _, n in journal.history(job_id, 0)].count("resumed") == 1
    for a in (accounts[6], accounts[7]):
        assert market.worker_record(a.address).slashes == 0
    assert not (paused_state / "checkpoints" / f"{job_id}-0").exists()


def test_a_task_of_a_worker_killed_with_sigkill_resumes_from_its_checkpoint_on_restart(
        anvil, w3, accounts, market, ipfs, docker_client, counter_digest, tmp_path) -> None:
    """kill -9 of the worker mid-count (no drain, no pause recorded): the restarted worker runs the task again from
    its journaled step, with its checkpoint folder as the app left it, so the count goes on from there."""
    app_id = register_app(w3, market, accounts[2], counter_digest, deterministic_file="result.txt")
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[6])
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1, max_run=120,
                      doc={"tasks": [{"args": ["16", "0.3"]}]})
    state = tmp_path / "w"
    cfg = settings(anvil, ipfs, market, accounts[6], state)
    proc = worker_process(cfg, tmp_path / "cfg.json")
    try:
        wait_for(lambda: _count(state, job_id) >= 3, what="the task to count to 3")
    finally:
        proc.kill()
        proc.wait(60)
    killed_at = _count(state, job_id)
    with running(Worker(cfg, docker_client=docker_client)):
        wait_for(lambda: market.job_record(job_id).finished == 1, what="the task to finish")
    _, unpacked = _result(ipfs, market, task_id(job_id, 0), tmp_path)
    assert (unpacked / "output" / "result.txt").read_text() == "counted to 16\n"
    runs = [int(line.split()[1]) for line in (unpacked / "output" / "runs.txt").read_text().splitlines()]
    assert len(runs) == 2 and runs[0] == 0 and runs[1] >= killed_at >= 3, runs
    assert market.worker_record(accounts[6].address).slashes == 0
