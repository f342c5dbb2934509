"""The worker daemon against a real anvil, kubo and Docker engine: claims, runs, publishes, gets paid."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oracle.market import Market
from oracle.protocol import task_id
from oracle.tx import TxSender
from tests.market_helpers import ETHER, fund, post_job, register_app
from worker._daemon import Worker
from worker._journal import Journal, Step
from worker._settings import WorkerSettings
from worker.exceptions import CannotClaim


def settings(anvil, ipfs, market: Market, account, state: Path, stake: int = 5 * ETHER, **kw) -> WorkerSettings:
    # these tests were written for one task at a time unless they say otherwise; the default, as many as the
    # cores lent hold, has its own (tests/integration/test_run_slots.py, the demo's)
    policy = kw.setdefault("policy", {})
    if isinstance(policy, dict):
        policy.setdefault("max_concurrent", 1)
    return WorkerSettings(rpc_url=anvil.rpc_url, ipfs_api=ipfs.api_url, marketplace=market.address,
                          private_key="0x" + account.key.hex().removeprefix("0x"), state_dir=state,
                          stake=stake, poll_interval=0.1, claim_backoff_max=0.05, **kw)


@contextlib.contextmanager
def running(*workers: Worker) -> Iterator[None]:
    """The workers' daemons on one event loop in a thread, until the block ends. A daemon that stops on its own
    does not stop the others: one banned (CannotClaim, ``on_ban = exit``, a liar's end) is expected; any other
    error is warned about, as an exception in the thread was before."""
    loop = asyncio.new_event_loop()
    stops = []

    async def main() -> None:
        nonlocal stops
        stops = [asyncio.Event() for _ in workers]
        ended = await asyncio.gather(*(w.async_run(s) for w, s in zip(workers, stops, strict=True)),
                                     return_exceptions=True)
        for w, end in zip(workers, ended, strict=True):
            if isinstance(end, BaseException) and not isinstance(end, CannotClaim):
                warnings.warn(f"worker {w.account.address} stopped with {end!r}", stacklevel=1)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        yield
    finally:
        for s in stops:
            loop.call_soon_threadsafe(s.set)
        thread.join(60)
        loop.close()


def wait_for(cond, timeout: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def fund_worker(w3, market, account) -> None:
    fund(w3, market, account, 10 * ETHER)


def test_worker_completes_a_five_task_job_and_is_paid(anvil, w3, accounts, market, ipfs, docker_client,
                                                      echo_digest, tmp_path) -> None:
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[4])
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=5)
    worker = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "w1"), docker_client=docker_client)
    with running(worker):
        wait_for(lambda: market.job_record(job_id).finished == 5, what="5 finished tasks")
    # deposited 10, staked 5 of it, earned 5 x 0.1
    assert market.balance(accounts[4].address) == 10 * ETHER - 5 * ETHER + 5 * ETHER // 10
    subs = market.contract.events.ResultSubmitted().get_logs(from_block=0)
    cids = {e["args"]["taskId"]: e["args"]["resultCID"] for e in subs}
    assert set(cids) == {task_id(job_id, i) for i in range(5)}
    # the published archive holds the app's real output
    from oracle.archive import unpack_result
    archive = tmp_path / "r.tar"
    archive.write_bytes(ipfs.cat(cids[task_id(job_id, 3)]))
    unpack_result(archive, tmp_path / "r")
    assert (tmp_path / "r" / "output" / "result.txt").read_text() == "hello\nargs: task 3\n"
    assert worker.market.worker_record(accounts[4].address).locked == 0
    assert all(r.step is Step.DONE for r in Journal(tmp_path / "w1" / "journal.db").all())


def test_two_workers_share_a_replicated_job_and_agree(anvil, w3, accounts, market, ipfs, docker_client,
                                                     echo_digest, tmp_path) -> None:
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 20 * ETHER)
    for a in (accounts[4], accounts[5]):
        fund_worker(w3, market, a)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=10, replication=2)
    w1 = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "w1"), docker_client=docker_client)
    w2 = Worker(settings(anvil, ipfs, market, accounts[5], tmp_path / "w2"), docker_client=docker_client)
    with running(w1, w2):
        wait_for(lambda: market.job_record(job_id).finished == 10, timeout=150, what="10 finalized tasks")
    finals = market.contract.events.TaskFinalized().get_logs(from_block=0)
    assert len(finals) == 10 and all(e["args"]["winners"] == 2 for e in finals)
    for a in (accounts[4], accounts[5]):
        info = market.worker_record(a.address)
        assert info.locked == 0 and info.slashes == 0 and info.reputation == 10
        # deposited 10, staked 5, earned 10 tasks x reward 0.1 (a task pays 2 x 0.1, shared by 2 winners)
        assert market.balance(a.address) == 5 * ETHER + 10 * ETHER // 10


def test_replicas_are_claimed_ahead_and_committed_and_revealed_together(anvil, w3, accounts, market, ipfs,
                                                                      docker_client, echo_digest, tmp_path) -> None:
    """R > 1 batching of per-task rounds (lanes off: tests/integration/test_worker_lanes.py has them; per-task
    rounds still serve jobs with a callback, homogeneous and GPU jobs): with one run slot each, two workers still claim several
    replicas per claimSome once they have seen a run of the job (queued for the slot, each with half its
    maxRunSeconds to spare), and hold their commits and reveals to send several per multicall. Nobody is slashed,
    no replica is given back, every task is won by both."""
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 40 * ETHER)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=12, replication=2, max_run=120)
    workers = []
    for i, a in enumerate((accounts[4], accounts[5])):
        fund(w3, market, a, 20 * ETHER)
        workers.append(Worker(settings(anvil, ipfs, market, a, tmp_path / f"w{i}", stake=15 * ETHER,
                                       policy={"max_concurrent": 1}, batching={"hold_s": 10.0, "lanes": False}),
                              docker_client=docker_client))
    with running(*workers):
        wait_for(lambda: market.job_record(job_id).finished == 12, timeout=240, what="12 finalized tasks")
    events = market.contract.events
    per_tx: dict[str, dict[tuple[str, str], int]] = {}
    for name in ("ReplicaClaimed", "ResultCommitted", "ResultRevealed"):
        for e in getattr(events, name)().get_logs(from_block=0):
            key = (e["transactionHash"].hex(), e["args"]["worker"])
            per_tx.setdefault(name, {}).setdefault(key, 0)
            per_tx[name][key] += 1
    assert sum(per_tx["ReplicaClaimed"].values()) == 24
    assert max(per_tx["ReplicaClaimed"].values()) >= 2, per_tx["ReplicaClaimed"]  # one slot: claimed ahead
    assert max(per_tx["ResultCommitted"].values()) >= 2, per_tx["ResultCommitted"]
    assert max(per_tx["ResultRevealed"].values()) >= 2, per_tx["ResultRevealed"]
    assert all(e["args"]["winners"] == 2 for e in events.TaskFinalized().get_logs(from_block=0))
    assert events.ClaimAbandoned().get_logs(from_block=0) == []
    assert events.WorkerSlashed().get_logs(from_block=0) == []
    for a in (accounts[4], accounts[5]):
        info = market.worker_record(a.address)
        assert info.locked == 0 and info.slashes == 0 and info.reputation == 12


def test_workers_on_a_chain_whose_clock_is_an_hour_behind_finish_a_replicated_job(
        anvil, w3, accounts, market, ipfs, docker_client, echo_digest, tmp_path) -> None:
    """Deadlines, claim expiries and the commit/reveal windows are the chain's clock, not this machine's: a chain
    stamping its blocks an hour behind the wall clock (a skewed sequencer; a test chain after reverts) must not
    make honest workers think their claims expired, give them back or miss a window."""
    import time
    w3.provider.make_request("anvil_setTime", [int(time.time()) - 3600])
    w3.provider.make_request("evm_mine", [])
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 20 * ETHER)
    for a in (accounts[4], accounts[5]):
        fund_worker(w3, market, a)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=3, replication=2)
    w1 = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "w1"), docker_client=docker_client)
    w2 = Worker(settings(anvil, ipfs, market, accounts[5], tmp_path / "w2"), docker_client=docker_client)
    with running(w1, w2):
        wait_for(lambda: market.job_record(job_id).finished == 3 and all(
            r.step is Step.DONE for w in (w1, w2) for r in w.journal.all()), timeout=150,
            what="3 finalized tasks, done in both journals")
    assert int(w3.eth.get_block("latest")["timestamp"]) < time.time() - 3000  # the chain stayed behind
    assert not market.contract.events.ClaimAbandoned().get_logs(from_block=0)
    for a in (accounts[4], accounts[5]):
        info = market.worker_record(a.address)
        assert info.locked == 0 and info.slashes == 0 and info.reputation == 3


def test_a_worker_batches_its_claims_commits_and_reveals(anvil, w3, accounts, market, ipfs, docker_client,
                                                        echo_digest, tmp_path) -> None:
    """Driven step by step: each of two workers claims the two tasks of an R = 2 job in one claimSome, commits
    the two in one, and reveals the two in one (the last reveals finalize). The first worker starts two
    fresh tasks at once because its free stake (5 replicas) still covers joining 2 (max_concurrent) others'
    tasks afterwards; with max_concurrent 3 it would start only two of three fresh ones (5 - 3). Driven by hand,
    nothing is held for more to join (``hold_s`` 0: what is due goes at each advance)."""
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=2, replication=2)
    assert market.market_params().replica_stake == ETHER
    workers = []
    for i, a in enumerate((accounts[4], accounts[5])):
        fund_worker(w3, market, a)
        w = Worker(settings(anvil, ipfs, market, a, tmp_path / f"w{i}", policy={"max_concurrent": 2},
                            batching={"hold_s": 0}), docker_client=docker_client)
        w.ensure_registered()
        w._follow()
        batch = [(job, index) for job, index, action in w._candidates() if action is None]
        assert sorted(index for _, index in batch) == [0, 1]
        recs = w._claim_some(batch, 2)
        assert len(recs) == 2 and len({r.data["claim_tx"] for r in recs}) == 1
        w._follow()
        for rec in recs:
            assert w.pipeline.run(rec).step is Step.UPLOADED
        workers.append(w)
    for w in workers:  # commits (the second pass of the first worker: nothing is due yet)
        w._advance_all()
    for w in workers:  # every replica is committed: reveals are due
        w._advance_all()
    per_tx: dict[str, dict[str, int]] = {}
    for name in ("ReplicaClaimed", "ResultCommitted", "ResultRevealed"):
        for e in getattr(market.contract.events, name)().get_logs(from_block=0):
            per_tx.setdefault(name, {}).setdefault(e["transactionHash"].hex(), 0)
            per_tx[name][e["transactionHash"].hex()] += 1
    assert sorted(per_tx["ReplicaClaimed"].values()) == [2, 2]
    assert sorted(per_tx["ResultCommitted"].values()) == [2, 2]
    assert sorted(per_tx["ResultRevealed"].values()) == [2, 2]
    assert market.job_record(job_id).finished == 2
    for w in workers:
        w._advance_all()
        assert all(r.step is Step.DONE and r.data["outcome"] == "won" for r in w.journal.all())
        w.sandbox.close()


# --- crashes: the worker process dies abruptly (os._exit at the named point, as kill -9 would) ------------
import json  # noqa: E402
import subprocess  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402


def worker_process(cfg: WorkerSettings, path: Path, fault: str = "none") -> subprocess.Popen[bytes]:
    doc = json.loads(cfg.model_dump_json())
    doc["private_key"] = cfg.private_key.get_secret_value()
    doc.pop("password", None)
    path.write_text(json.dumps(doc))
    args = ["--json-logs", "worker", "run", "--config", str(path)]
    crash = [str(Path(__file__).resolve().parents[1] / "crash_worker.py"), fault] if fault.startswith("crash") else \
        ["-m", "tasknet.cli"]
    return subprocess.Popen([sys.executable, *crash, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_and_read(proc: subprocess.Popen[bytes], when: Callable[[], bool], what: str) -> str:
    """Once ``when()`` holds, SIGTERM the worker process ``proc``; it must exit 0 within 90 s. Return its log
    (stderr). The process is killed if anything goes wrong on the way."""
    try:
        wait_for(when, what=what)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.stderr.read().decode() if proc.stderr else ""


@pytest.mark.parametrize("fault", ["crash-after-claim", "crash-after-run"])
def test_worker_killed_mid_task_resumes_on_restart_and_keeps_its_stake(anvil, w3, accounts, market, ipfs,
                                                                       docker_client, echo_digest, tmp_path,
                                                                       fault) -> None:
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[6])
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1)
    cfg = settings(anvil, ipfs, market, accounts[6], tmp_path / "w")
    crashed = worker_process(cfg, tmp_path / "cfg.json", fault)
    assert crashed.wait(120) == 137, crashed.stderr.read().decode()[-2000:] if crashed.stderr else ""
    assert "fault_injected" in crashed.stderr.read().decode()
    rec = Journal(tmp_path / "w" / "journal.db").get(job_id, 0)
    assert rec is not None and rec.step in (Step.CLAIMED, Step.RAN) and market.job_record(job_id).finished == 0
    restarted = worker_process(cfg, tmp_path / "cfg.json")
    try:
        wait_for(lambda: market.job_record(job_id).finished == 1, what="the resumed task to finish")
    finally:
        restarted.terminate()
        restarted.wait(60)
    info = market.worker_record(accounts[6].address)
    assert info.stake == 5 * ETHER and info.locked == 0 and info.slashes == 0
    history = [s for s, _ in Journal(tmp_path / "w" / "journal.db").history(job_id, 0)]
    assert history.count(Step.CLAIMED) == 1  # resumed, not claimed twice


def test_worker_killed_after_commit_reveals_after_restart(anvil, w3, accounts, market, ipfs, docker_client,
                                                          echo_digest, tmp_path) -> None:
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    for a in (accounts[6], accounts[7]):
        fund_worker(w3, market, a)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1, replication=2)
    cfg = settings(anvil, ipfs, market, accounts[6], tmp_path / "w6", policy={"max_concurrent": 1})
    crashed = worker_process(cfg, tmp_path / "cfg.json", "crash-after-commit")
    assert crashed.wait(120) == 137
    assert Journal(tmp_path / "w6" / "journal.db").get(job_id, 0).step is Step.COMMITTED
    helper = Worker(settings(anvil, ipfs, market, accounts[7], tmp_path / "w7"), docker_client=docker_client)
    restarted = worker_process(cfg, tmp_path / "cfg.json")
    try:
        with running(helper):
            wait_for(lambda: market.job_record(job_id).finished == 1, what="the task to finalize")
    finally:
        restarted.terminate()
        restarted.wait(60)
    final = market.contract.events.TaskFinalized().get_logs(from_block=0)
    assert final and final[-1]["args"]["winners"] == 2
    assert market.worker_record(accounts[6].address).slashes == 0


def test_sigterm_stops_claiming_and_drains_the_running_task(anvil, w3, accounts, market, ipfs, docker_client,
                                                             echo_digest, tmp_path) -> None:
    """SIGTERM while a task runs: the worker claims nothing more, finishes (and is paid for) the running task,
    and exits 0 within its drain timeout."""
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[6])
    data_cid = ipfs.add_bytes(b"slow\n")
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=3, doc={
        "count": 3, "template": {"args": ["sleep", "4"]},
        "common_inputs": [{"uri": f"ipfs://{data_cid}", "path": "data.txt"}]})
    cfg = settings(anvil, ipfs, market, accounts[6], tmp_path / "w", policy={"max_concurrent": 1},
                   drain_timeout=60)
    proc = worker_process(cfg, tmp_path / "cfg.json")
    journal = tmp_path / "w" / "journal.db"
    logs = stop_and_read(proc, lambda: journal.exists() and Journal(journal).get(job_id, 0) is not None,
                         what="the first claim")
    assert "draining" in logs and "worker_stopped" in logs
    assert Journal(journal).get(job_id, 0).step is Step.DONE
    assert market.job_record(job_id).finished == 1
    assert not market.is_taken(task_id(job_id, 1)) and not market.is_taken(task_id(job_id, 2))
    assert market.worker_record(accounts[6].address).locked == 0


# --- bad apps, bad inputs, policy ---------------------------------------------------------------------
def _status_of(ipfs, market: Market, tid: int, tmp: Path) -> str:
    from oracle.archive import unpack_result

    events = [*market.contract.events.ResultSubmitted().get_logs(from_block=0),
              *market.contract.events.FailureReported().get_logs(from_block=0)]
    cid = next(e["args"]["resultCID"] for e in events if e["args"]["taskId"] == tid)
    (tmp / "a.tar").write_bytes(ipfs.cat(cid))
    unpack_result(tmp / "a.tar", tmp / f"u{tid}")
    return (tmp / f"u{tid}" / "logs" / "status.txt").read_text()


@pytest.mark.reliability(kind="attack", name="failing app, missing input, malformed inputs document",
                         how="two real workers meet a failing app, an unknown input CID and a malformed inputs "
                             "document: the failures are confirmed by the second worker, the unreachable input is "
                             "given back by each (a fee, no slash), a later good job is still served")
def test_failures_become_clean_results_and_the_worker_keeps_serving(anvil, w3, accounts, market, ipfs,
                                                                    docker_client, echo_digest, tmp_path) -> None:
    """A failing app and a malformed inputs document each end as a failure result with a clear reason, final once
    a second worker reached the same one (R = 1); an input no node provides is the workers' environment, not the
    task's answer: each gives its claim back (a 10 % fee, no slash) and avoids the job; a good job is served."""
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[4])
    fund_worker(w3, market, accounts[5])
    failing = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1,
                       doc={"tasks": [{"args": ["fail"]}]})
    unknown = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    missing = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1,
                       doc={"tasks": [{"inputs": [{"uri": f"ipfs://{unknown}", "path": "data.txt"}]}]})
    malformed = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1, doc={"tasks": [{"inputs": [
        {"uri": "ipfs://bafy-not-a-cid", "path": "../../etc/passwd"}]}]})
    good = post_job(w3, market, accounts[1], ipfs, app_id, tasks=2)
    workers = [Worker(settings(anvil, ipfs, market, a, tmp_path / a.address, input_stall_s=3),
                      docker_client=docker_client) for a in (accounts[4], accounts[5])]
    abandoned = market.contract.events.ClaimAbandoned()
    with running(*workers):
        wait_for(lambda: all(market.job_record(j).finished == n for j, n in
                             ((failing, 1), (malformed, 1), (good, 2))), timeout=150, what="the jobs settled")
        wait_for(lambda: len([e for e in abandoned.get_logs(from_block=0)
                              if e["args"]["taskId"] >> 32 == missing]) == 2, what="both gave the missing one back")
    assert "reason: nonzero-exit" in _status_of(ipfs, market, task_id(failing, 0), tmp_path)
    assert "malformed" in _status_of(ipfs, market, task_id(malformed, 0), tmp_path)
    assert "reason: ok" in _status_of(ipfs, market, task_id(good, 1), tmp_path)
    assert market.job_record(missing).finished == 0 and not market.contract.functions.isTaken(task_id(missing, 0)).call()
    for a in (accounts[4], accounts[5]):
        me = market.worker_record(a.address)
        assert (me.slashes, me.locked, me.stake) == (0, 0, 5 * ETHER - ETHER // 10)  # one give-back fee
    confirmed = market.contract.events.FailureConfirmed().get_logs(from_block=0)
    assert {e["args"]["taskId"] for e in confirmed} == {task_id(failing, 0), task_id(malformed, 0)}


def test_a_container_killed_from_outside_is_run_again_not_published(anvil, w3, accounts, market, ipfs,
                                                                     docker_client, echo_digest, tmp_path) -> None:
    """A SIGKILL none of the worker's limits sent (here `docker kill` from outside, as an engine restart or the
    host's OOM killer would) is not the app's answer: the task is run once more and the good result published."""
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[4])
    data_cid = ipfs.add_bytes(b"hello\n")
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1, doc={
        "count": 1, "template": {"args": ["sleep", "3"]},
        "common_inputs": [{"uri": f"ipfs://{data_cid}", "path": "data.txt"}]})
    worker = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "w"), docker_client=docker_client)
    killed: list[str] = []
    with running(worker):
        def kill_first() -> bool:
            for c in task_containers(docker_client, worker.sandbox.owner):
                if not killed:
                    c.kill()
                    killed.append(c.id)
            return bool(killed)
        wait_for(kill_first, what="the app container to kill")
        wait_for(lambda: market.job_record(job_id).finished == 1, what="the task to finish")
    status = _status_of(ipfs, market, task_id(job_id, 0), tmp_path)
    assert "reason: ok" in status and "exit_code: 0" in status


def task_containers(docker_client: Any, owner: str) -> list[Any]:
    """The containers of sandbox ``owner`` running a task now, read from the engine: fresh task containers, and
    reused ones (worker/_reuse.py) whose launcher has a process (the app) running, read from this host's /proc."""
    import docker.errors

    from worker import _reuse

    def listed(role: str) -> list[Any]:
        return docker_client.containers.list(filters={"label": [f"tasknet.role={role}", f"tasknet.sandbox={owner}"],
                                                      "status": "running"}, ignore_removed=True)
    busy = listed("app")
    for container in listed("reused"):
        try:
            container.reload()
            if _reuse.child_ns_pid(int(container.attrs["State"].get("Pid") or 0)) is not None:
                busy.append(container)
        except docker.errors.NotFound:
            continue
    return busy


def test_policy_blocked_app_and_too_short_deadline_are_never_claimed(anvil, w3, accounts, market, ipfs,
                                                                     docker_client, echo_digest, tmp_path) -> None:
    blocked_app = register_app(w3, market, accounts[2], echo_digest)
    ok_app = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[4])
    blocked_job = post_job(w3, market, accounts[1], ipfs, blocked_app, tasks=1)
    # max run 600 s + the worker's 30 s margin cannot fit before a deadline 300 s away
    tight_job = post_job(w3, market, accounts[1], ipfs, ok_app, tasks=1, max_run=200, deadline_s=300)
    ok_job = post_job(w3, market, accounts[1], ipfs, ok_app, tasks=1)
    cfg = settings(anvil, ipfs, market, accounts[4], tmp_path / "w",
                   policy={"blocked_apps": [str(blocked_app)], "safety_margin_s": 120})
    with running(Worker(cfg, docker_client=docker_client)):
        wait_for(lambda: market.job_record(ok_job).finished == 1, what="the allowed job")
        time.sleep(1.0)
    assert not market.is_taken(task_id(blocked_job, 0))
    assert not market.is_taken(task_id(tight_job, 0))


def test_warm_cache_task_is_preferred(anvil, w3, accounts, market, ipfs, docker_client, echo_digest,
                                      tmp_path) -> None:
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[4])
    cold = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1, data=b"cold input\n")
    warm = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1, data=b"warm input\n")
    worker = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "w"), docker_client=docker_client)
    worker.cache.fetch(f"ipfs://{ipfs.add_bytes(b'warm input' + chr(10).encode())}")
    worker.ensure_registered()
    worker._follow()
    order = [(j.job_id, i) for j, i, _ in worker._candidates()]
    assert order[:2] == [(warm, 0), (cold, 0)]


def test_a_worker_never_claims_a_job_whose_announced_inputs_exceed_its_caps(anvil, w3, accounts, market, ipfs,
                                                                            docker_client, echo_digest,
                                                                            tmp_path) -> None:
    """A dataset announced on chain at 2 MiB, an inputs document announcing a 3 MiB input: a worker that accepts
    1 MiB per input never claims their tasks (its cap is its own environment, not the task's fault), and says
    why; the job that fits is claimed."""
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[4])
    sender = TxSender(w3, accounts[3], extra_abis=market.error_abis)
    data = b"x" * 100
    receipt = sender.transact(market.registry.functions.registerDataset(
        ipfs.add_bytes(data), hashlib.sha256(data).digest(), 2 << 20, 0, True, True))
    dataset_id = int(market.registry.events.DatasetRegistered().process_receipt(receipt)[0]["args"]["datasetId"])
    big_dataset = post_job(w3, market, accounts[1], ipfs, app_id, tasks=2, dataset_id=dataset_id)
    big_input = post_job(w3, market, accounts[1], ipfs, app_id, tasks=2, doc={
        "count": 2, "template": {"args": ["{index}"]},
        "common_inputs": [{"uri": f"ipfs://{ipfs.add_bytes(b'small really')}", "path": "a", "size": 3 << 20}]})
    fits = post_job(w3, market, accounts[1], ipfs, app_id, tasks=2)
    worker = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "w", max_input_mb=1),
                    docker_client=docker_client)
    worker.ensure_registered()
    worker._follow()
    candidates = {job.job_id for job, _, _ in worker._candidates()}
    assert candidates == {fits}
    assert "larger than this worker's cap of 1048576 bytes" in (worker._too_large[big_dataset] or "")
    assert "larger than this worker's cap" in (worker._too_large[big_input] or "")


def test_a_worker_unpins_its_results_once_the_job_closed_and_the_retention_passed(
        anvil, w3, accounts, market, ipfs, docker_client, echo_digest, tmp_path) -> None:
    """Results stay pinned on the worker's node while the job runs; once it closed and the retention (here 0 s)
    passed, the worker unpins them: a volunteer's disk is not the network's archive."""
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[4])
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=2, doc={
        "count": 2, "template": {"args": ["unpin-me", "{index}"]},
        "common_inputs": [{"uri": f"ipfs://{ipfs.add_bytes(b'kept a while')}", "path": "data.txt"}]})
    worker = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "w", result_retention_s=0),
                    docker_client=docker_client)
    with running(worker):
        wait_for(lambda: market.job_record(job_id).flags & 1, what="the job to close")
        cids = [e["args"]["resultCID"] for e in market.contract.events.ResultSubmitted().get_logs(from_block=0)
                if e["args"]["taskId"] >> 32 == job_id]
        assert len(cids) == 2
        wait_for(lambda: not any(ipfs.is_pinned(c) for c in cids), timeout=60, what="the results to be unpinned")
    assert all(r.data.get("unpinned") for r in worker.journal.all() if r.job_id == job_id)
