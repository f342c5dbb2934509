"""Faults injected into the components around the worker: the RPC node, kubo, dockerd, a chain reorg, a full
disk under the input cache, and a result upload cut halfway.

Each test breaks a *private* component (its own anvil, kubo or dockerd, a tmpfs, a TCP proxy) so the session's
shared ones are never touched, runs real ``tasknet worker run`` (and ``tasknet indexer run``) processes, and checks
the end state on chain: every task settled exactly once, stakes as an honest worker must keep them, and where an
indexer runs, its mirror equal to the chain.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from oracle import IpfsClient
from oracle.protocol import task_id
from tests.integration.test_worker import task_containers
from tests.market_helpers import ETHER, fund, post_job, register_app
from tests.reliability.fault_helpers import (
    CuttingProxy,
    IndexerProc,
    PrivateChain,
    PrivateDockerd,
    PrivateKubo,
    WorkerProc,
    assert_events_mirrored,
    assert_mirror_agrees,
    assert_settled_once,
    assert_stake_intact,
    copy_images,
    journal_data,
    journal_step,
    private_chain,
    result_digest_matches,
    result_status,
    rpc,
    tails,
    wait_for,
    worker_settings,
    workers_stopped,
)
from worker import sandbox_owner
from worker._journal import Step


def _market_ready(chain: PrivateChain, digest: str, workers: int) -> tuple[int, list]:
    """Register the echo app, fund the requester (dev account 1) and ``workers`` fresh worker accounts."""
    a = chain.accounts
    app_id = register_app(chain.w3, chain.market, a[2], digest)
    fund(chain.w3, chain.market, a[1], 50 * ETHER)
    ws = [chain.new_worker() for _ in range(workers)]
    for w in ws:
        fund(chain.w3, chain.market, w, 10 * ETHER)
    return app_id, ws


def _tasks_doc(ipfs: IpfsClient, n: int, *, sleep: int = 0, data: bytes = b"hello\n") -> dict:
    cid = ipfs.add_bytes(data)
    args = ["sleep", str(sleep)] if sleep else ["task"]
    return {"tasks": [{"args": [*args, str(i)], "inputs": [{"uri": f"ipfs://{cid}", "path": "data.txt"}]}
                      for i in range(n)]}


def _proc(chain: PrivateChain, ipfs_api: str, tmp: Path, acct, name: str, env: dict[str, str] | None = None,
          **kw) -> WorkerProc:
    return WorkerProc(worker_settings(chain, ipfs_api, acct, tmp / name / "state", **kw), tmp / name, env=env)


def _alive(*procs: WorkerProc) -> None:
    for p in procs:
        assert p.alive(), f"worker {p.folder.name} died:\n{p.tail()}"


# --- the RPC node goes away and comes back --------------------------------------------------------------------
@dataclasses.dataclass
class Outcome:
    """What a fault scenario run once per module left behind, for the tests that each check one property."""

    chain: PrivateChain
    jobs: dict[int, int] = dataclasses.field(default_factory=dict)  # job id -> tasks
    workers: list = dataclasses.field(default_factory=list)         # worker accounts
    procs: list = dataclasses.field(default_factory=list)
    facts: dict = dataclasses.field(default_factory=dict)
    error: str | None = None

    def ok(self) -> None:
        assert self.error is None, f"the fault scenario itself failed: {self.error}"


@pytest.fixture(scope="module")
def fault_rpc_outage(tmp_path_factory, ipfs, docker_client, fault_echo_digest):
    """Two workers on an 8-task job (6 x R=1, 2 x R=2, 1 s each) and an indexer; after two tasks the anvil is
    stopped cleanly (its state dumped), left down 10 s (beyond the transaction sender's ~6 s retry budget) and
    restarted on the same port from its state file. A worker found dead once anvil is back is restarted, as
    systemd's Restart=on-failure would, so the rest of the run can still be checked."""
    tmp = tmp_path_factory.mktemp("rpc-outage")
    with private_chain(tmp / "chain") as chain:
        out = Outcome(chain)
        market = chain.market
        try:
            app_id, out.workers = _market_ready(chain, fault_echo_digest, workers=2)
            single = post_job(chain.w3, market, chain.accounts[1], ipfs, app_id, tasks=6,
                              doc=_tasks_doc(ipfs, 6, sleep=1))
            double = post_job(chain.w3, market, chain.accounts[1], ipfs, app_id, tasks=2, replication=2,
                              doc=_tasks_doc(ipfs, 2, sleep=1))
            out.jobs = {single: 6, double: 2}
            a, b = (_proc(chain, ipfs.api_url, tmp, w, n) for w, n in zip(out.workers, "AB", strict=True))
            ix = IndexerProc(chain, tmp / "indexer")
            out.procs = [a, b, ix]
            ix.start()
            a.start()
            b.start()
            wait_for(lambda: market.job_record(single).settled >= 2, 120, "two tasks done before the outage",
                     on_timeout=tails(a, b))
            out.facts["settled_before"] = market.job_record(single).settled + market.job_record(double).settled
            chain.stop()
            time.sleep(10)
            chain.start()
            time.sleep(1.0)
            out.facts["died"] = [p.folder.name for p in (a, b) if not p.alive()]
            out.facts["death"] = "\n".join(p.tail(1500) for p in (a, b) if not p.alive())
            restarts = 0

            def done() -> bool:
                nonlocal restarts
                for p in (a, b):
                    if not p.alive():
                        p.start()
                        restarts += 1
                return market.job_record(single).settled == 6 and market.job_record(double).settled == 2

            wait_for(done, 240, "every task to settle after the restart", on_timeout=tails(a, b))
            out.facts["restarts"] = restarts
            out.facts["indexer_alive"] = ix.alive()
            ix.wait_caught_up()
            out.facts["indexer_retries"] = len(ix.log_events("step_failed_retrying"))
        except Exception as exc:  # noqa: BLE001 - reported by the tests
            out.error = f"{type(exc).__name__}: {exc}"
        finally:
            for p in reversed(out.procs):
                p.stop()
        yield out


@pytest.mark.reliability(
    kind="fault", name="RPC node restart: tasks and indexer",
    how="private anvil stopped (SIGTERM, state dumped) while 2 workers run 8 tasks (6 x R=1, 2 x R=2) and an indexer "
        "follows; down 10 s, restarted on the same port from its state file; a worker that died is restarted as a "
        "supervisor would; checks every task settled once, both stakes intact, the indexer stayed up and its "
        "mirror equals the chain")
def test_rpc_node_restart_tasks_settle_once_and_indexer_recovers(fault_rpc_outage: Outcome,
                                                                 record_property) -> None:
    out = fault_rpc_outage
    out.ok()
    market = out.chain.market
    evidence = [(f"anvil down 10 s after {out.facts['settled_before']} of 8 tasks, restarted from its state file; "
                 f"workers dead after the outage: {out.facts['died'] or 'none'} (restarted by the test)")]
    evidence += [assert_settled_once(market, job, n) for job, n in out.jobs.items()]
    evidence += [assert_stake_intact(market, w.address) for w in out.workers]
    assert out.facts["indexer_alive"], "the indexer process died during the outage"
    evidence.append(assert_mirror_agrees(out.procs[2], market, out.jobs))
    evidence.append(f"the indexer retried {out.facts['indexer_retries']} failed steps and caught up")
    record_property("reliability", "; ".join(evidence))


@pytest.mark.reliability(
    kind="fault", name="RPC node restart: daemons survive",
    how="same 10 s anvil outage: checks both worker processes are still alive once anvil is back (no supervisor)")
def test_rpc_node_restart_worker_daemons_survive(fault_rpc_outage: Outcome) -> None:
    out = fault_rpc_outage
    out.ok()
    assert not out.facts["died"], f"worker(s) {out.facts['died']} died while the RPC node was down:\n" \
        f"{out.facts['death']}"


# --- kubo goes down for a while ------------------------------------------------------------------------------
def _kubo_outage(chain: PrivateChain, digest: str, tmp: Path, outage: float, started: list):
    """One worker on a private kubo; 4 R=1 tasks, each with its own input (so every task needs IPFS to fetch and
    to publish). After the first task settles kubo is SIGKILLed, left down ``outage`` seconds, and restarted on
    the same ports with the same repo. Returns (job id, worker account, worker, kubo, tasks left unsettled when
    kubo came back)."""
    market = chain.market
    kubo = PrivateKubo(tmp / "kubo")
    started.append(kubo)
    ipfs = IpfsClient(kubo.api)
    app_id, ws = _market_ready(chain, digest, workers=1)
    inputs = [ipfs.add_bytes(f"input of task {i}\n".encode() * 1000) for i in range(4)]
    doc = {"tasks": [{"args": ["sleep", "1"], "inputs": [{"uri": f"ipfs://{c}", "path": "data.txt"}]}
                     for c in inputs]}
    job = post_job(chain.w3, market, chain.accounts[1], ipfs, app_id, tasks=4, doc=doc)
    a = _proc(chain, kubo.api, tmp, ws[0], "A")
    started.append(a)
    a.start()
    wait_for(lambda: market.job_record(job).settled >= 1, 120, "a first task before the outage", on_timeout=tails(a))
    kubo.kill9()
    time.sleep(outage)
    pending = 4 - market.job_record(job).settled
    kubo.start()
    ipfs.close()
    return job, ws[0], a, kubo, pending


def _stop_all(started: list) -> None:
    """Close what a test started, newest first (workers before the components they use)."""
    for p in reversed(started):
        p.close()


@pytest.mark.reliability(
    kind="fault", name="kubo down for 12 s",
    how="the worker's private kubo is SIGKILLed after the first of 4 tasks (each task has its own input), left "
        "down 12 s and restarted on the same ports with the same repo; checks the worker stays up, the tasks that "
        "needed IPFS meanwhile are retried and all 4 settle once with archives that match their digests, stake "
        "intact")
def test_kubo_down_for_a_while(fault_chain: PrivateChain, docker_client, fault_echo_digest, tmp_path,
                               record_property) -> None:
    chain, market = fault_chain, fault_chain.market
    started: list = []
    try:
        job, acct, a, kubo, pending = _kubo_outage(chain, fault_echo_digest, tmp_path, 12.0, started)
        assert pending > 0, "every task settled during the outage: the fault was not exercised"
        wait_for(lambda: market.job_record(job).settled == 4, 180, "every task to settle", on_timeout=tails(a))
        _alive(a)
        evidence = [f"kubo SIGKILLed for 12 s after the first task; {pending} tasks still open when it came back",
                    assert_settled_once(market, job, 4), assert_stake_intact(market, acct.address)]
        with IpfsClient(kubo.api) as ipfs:
            for ev in market.contract.events.ResultSubmitted().get_logs(from_block=0):
                assert result_digest_matches(ipfs, ev["args"]["resultCID"], ev["args"]["resultDigest"], tmp_path)
        evidence.append(f"{len(a.events('task_error'))} task attempts failed on IPFS and were retried; every "
                        "published archive matches its digest")
        record_property("reliability", "; ".join(evidence))
    finally:
        _stop_all(started)


@pytest.mark.reliability(
    kind="fault", name="kubo down for 35 s",
    how="as above with a 35 s outage: checks the worker does not give up a task whose claim is still live (no "
        "FAILED step in its journal) and that all 4 tasks settle once after kubo is back")
def test_kubo_down_longer_than_the_retry_budget(fault_chain: PrivateChain, docker_client, fault_echo_digest,
                                                tmp_path) -> None:
    chain, market = fault_chain, fault_chain.market
    started: list = []
    try:
        job, acct, a, _, _ = _kubo_outage(chain, fault_echo_digest, tmp_path, 35.0, started)
        given_up = [i for i in range(4) if journal_step(a, job, i) == Step.FAILED]
        assert not given_up, f"tasks {given_up} given up while their claims are live (the stake will be slashed)"
        wait_for(lambda: market.job_record(job).settled == 4, 120, "every task to settle", on_timeout=tails(a))
        assert_settled_once(market, job, 4)
        assert_stake_intact(market, acct.address)
    finally:
        _stop_all(started)


# --- dockerd restarts mid-task -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fault_dockerd_restart(tmp_path_factory, ipfs, docker_client, fault_echo_digest):
    """One worker (max_concurrent 1) on a private dockerd (own socket, data root, exec root; DOCKER_HOST) holding
    copies of the test images; 3 R=1 tasks of 4 s each. While the first task's container runs, dockerd is
    SIGKILLed, left down 5 s and restarted on the same data root. The worker is stopped (SIGTERM) at the end so
    what it leaves in the engine can be inspected."""
    import tempfile

    from oracle.images import BUSYBOX_BASE

    if os.geteuid() != 0:
        pytest.skip("a private dockerd needs root")
    tmp = tmp_path_factory.mktemp("dockerd-restart")
    engine = PrivateDockerd(Path(tempfile.mkdtemp(prefix="tnd-", dir="/tmp")))
    try:
        with private_chain(tmp / "chain") as chain:
            out = Outcome(chain)
            market = chain.market
            try:
                client = engine.client()
                copy_images(docker_client, client, "tasknet-test/echo:1", BUSYBOX_BASE)
                app_id, out.workers = _market_ready(chain, fault_echo_digest, workers=1)
                job = post_job(chain.w3, market, chain.accounts[1], ipfs, app_id, tasks=3,
                               doc=_tasks_doc(ipfs, 3, sleep=4))
                out.jobs = {job: 3}
                a = _proc(chain, ipfs.api_url, tmp, out.workers[0], "A", env={"DOCKER_HOST": engine.host})
                out.procs = [a]
                owner = sandbox_owner(out.workers[0].address, tmp / 'A' / 'state')
                label = {"label": f"tasknet.sandbox={owner}"}
                a.start()
                wait_for(lambda: bool(task_containers(client, owner)),
                         120, "a task container in the private engine", interval=0.1, on_timeout=tails(a))
                out.facts["settled_before"] = market.job_record(job).settled
                engine.kill9()
                time.sleep(5)
                out.facts["alive_during"] = a.alive()
                claims = market.contract.events.TasksClaimed().get_logs(from_block=0)
                out.facts["held_during"] = sum(1 for e in claims if e["args"]["worker"] == out.workers[0].address) \
                    - market.job_record(job).settled
                engine.start()
                wait_for(lambda: market.job_record(job).settled == 3, 240, "every task to settle", on_timeout=tails(a))
                out.facts["alive_after"] = a.alive()
                out.facts["task_errors"] = len(a.events("task_error"))
                out.facts["reasons"] = [
                    result_status(ipfs, e["args"]["resultCID"], tmp).splitlines()[0].removeprefix("reason: ")
                    for e in market.contract.events.ResultSubmitted().get_logs(from_block=0)]
                a.stop()
                client = engine.client()
                out.facts["left"] = [c.name for c in client.containers.list(all=True, filters=label)] + \
                    [v.name for v in client.volumes.list(filters=label)]
                client.close()
            except Exception as exc:  # noqa: BLE001 - reported by the tests
                out.error = f"{type(exc).__name__}: {exc}"
            finally:
                for p in out.procs:
                    p.stop()
            yield out
    finally:
        engine.close()


@pytest.mark.reliability(
    kind="fault", name="dockerd killed and restarted mid-task",
    how="the worker uses a private dockerd (DOCKER_HOST); while a 4 s task container runs, dockerd is SIGKILLed, "
        "left down 5 s and restarted on the same data root; checks the worker stays up, the interrupted task is "
        "retried (or published as a clean failure result), the 3 tasks settle once, stake intact")
def test_dockerd_restart_mid_task(fault_dockerd_restart: Outcome, record_property) -> None:
    out = fault_dockerd_restart
    out.ok()
    market = out.chain.market
    assert out.facts["alive_during"] and out.facts["alive_after"], "the worker died with the engine"
    (job, n), = out.jobs.items()
    evidence = [f"dockerd SIGKILLed while task {out.facts['settled_before']} ran, back after 5 s",
                assert_settled_once(market, job, n), assert_stake_intact(market, out.workers[0].address)]
    for reason in out.facts["reasons"]:  # ok, or a failure result that says what happened
        assert reason in ("ok", "nonzero-exit", "timeout", "engine-error", "error"), out.facts["reasons"]
    evidence.append(f"result reasons {out.facts['reasons']}; {out.facts['task_errors']} journaled engine errors")
    record_property("reliability", "; ".join(evidence))


@pytest.mark.reliability(
    kind="fault", name="dockerd down: no claims it cannot run",
    how="same dockerd outage: counts the tasks the worker holds (claimed, unsettled) after 5 s without an engine; "
        "checks it is no more than max_concurrent (1)")
def test_dockerd_down_worker_claims_no_more_than_it_can_run(fault_dockerd_restart: Outcome) -> None:
    out = fault_dockerd_restart
    out.ok()
    assert out.facts["held_during"] <= 1, f"the worker held {out.facts['held_during']} claims without an engine"


@pytest.mark.reliability(
    kind="fault", name="dockerd restart: no container left behind",
    how="same dockerd outage; after every task settled the worker is stopped with SIGTERM; checks the engine holds "
        "no container or volume labelled with the worker's address")
def test_dockerd_restart_leaves_no_containers(fault_dockerd_restart: Outcome) -> None:
    out = fault_dockerd_restart
    out.ok()
    assert not out.facts["left"], f"left in the engine: {out.facts['left']}"


# --- a chain reorg drops a claim or a reveal ----------------------------------------------------------------------
def _reorg_out(chain: PrivateChain, block: int, ix: IndexerProc) -> int:
    """Wait until the indexer has ingested ``block``, then replace every block from ``block`` to the head by empty
    ones (``anvil_reorg``, no transaction replayed). Returns the depth."""
    wait_for(lambda: ix.next_block() > block, 60, f"the indexer to ingest block {block}", on_timeout=ix.tail)
    depth = chain.head() - block + 1
    rpc(chain.w3, "anvil_reorg", depth, [])
    return depth


@pytest.fixture(scope="module")
def fault_reorg_claim(tmp_path_factory, ipfs, docker_client, fault_echo_digest):
    """One worker on a 2-task R=1 job (3 s each) and an indexer; while the first task's container runs, the block
    holding its claim (and every later one) is reorged out, so the worker's claim (and its nonce) is gone."""
    tmp = tmp_path_factory.mktemp("reorg-claim")
    with private_chain(tmp / "chain") as chain:
        out = Outcome(chain)
        market = chain.market
        try:
            app_id, out.workers = _market_ready(chain, fault_echo_digest, workers=1)
            me = out.workers[0].address
            job = post_job(chain.w3, market, chain.accounts[1], ipfs, app_id, tasks=2,
                           doc=_tasks_doc(ipfs, 2, sleep=3))
            out.jobs = {job: 2}
            a = _proc(chain, ipfs.api_url, tmp, out.workers[0], "A")
            ix = IndexerProc(chain, tmp / "indexer")
            out.procs = [a, ix]
            ix.start()
            a.start()
            claim = wait_for(lambda: [e for e in market.contract.events.TasksClaimed().get_logs(from_block=0)
                                      if e["args"]["worker"] == me], 120, "A's first claim", on_timeout=tails(a))[0]
            wait_for(lambda: (journal_step(a, job, 0) or 0) >= Step.INPUTS_READY, 60, "the task to start")
            out.facts["depth"] = _reorg_out(chain, claim["blockNumber"], ix)
            out.facts["claim_gone"] = not market.is_taken(task_id(job, 0))
            try:
                wait_for(lambda: market.job_record(job).settled == 2, 25, "both tasks to settle after the reorg",
                         on_timeout=tails(a))
                out.facts["settled"] = None
            except AssertionError as exc:
                out.facts["settled"] = str(exc)[:3000]
            out.facts["steps"] = [journal_step(a, job, i) for i in range(2)]
            out.facts["indexer_alive"] = ix.alive()
            ix.wait_caught_up()
        except Exception as exc:  # noqa: BLE001 - reported by the tests
            out.error = f"{type(exc).__name__}: {exc}"
        finally:
            for p in reversed(out.procs):
                # a daemon blocked on a transaction that cannot be mined does not drain: no long grace
                p.stop(grace=3) if isinstance(p, WorkerProc) else p.stop()
        yield out


@pytest.mark.reliability(
    kind="fault", name="reorg drops a claim: indexer",
    how="anvil_reorg replaces the block holding a worker's claim (and later ones) with empty blocks while the task "
        "runs; checks the indexer stayed up, rolled the claim back and its events table equals the new chain")
def test_reorg_dropping_a_claim_indexer_rolls_back(fault_reorg_claim: Outcome, record_property) -> None:
    out = fault_reorg_claim
    out.ok()
    assert out.facts["claim_gone"], "the reorg did not drop the claim: the fault was not injected"
    assert out.facts["indexer_alive"], "the indexer died"
    ix = out.procs[1]
    evidence = [f"reorg of depth {out.facts['depth']} dropped the claim", assert_events_mirrored(ix, out.chain)]
    rollbacks = ix.log_events("reorg_rolled_back")
    assert rollbacks, "the indexer never reported a rollback"
    evidence.append(f"indexer rolled back to block {rollbacks[0]['common_ancestor']}")
    record_property("reliability", "; ".join(evidence))


@pytest.mark.reliability(
    kind="fault", name="reorg drops a claim: tasks settle",
    how="same reorg: checks the worker re-claims the reopened task and finishes the job (both tasks settled once "
        "within 25 s; 3 s of work each), stake intact")
def test_reorg_dropping_a_claim_tasks_still_settle(fault_reorg_claim: Outcome) -> None:
    out = fault_reorg_claim
    out.ok()
    assert out.facts["settled"] is None, f"journal steps {out.facts['steps']}; {out.facts['settled']}"
    (job, n), = out.jobs.items()
    assert_settled_once(out.chain.market, job, n)
    assert_stake_intact(out.chain.market, out.workers[0].address)


@pytest.fixture(scope="module")
def fault_reorg_reveal(tmp_path_factory, ipfs, docker_client, fault_echo_digest):
    """A 1-task R=2 job: worker B is played by the test (claims first, commits A's digest once A committed), worker
    A is a daemon. Once A's reveal is mined, that block (and later ones) is reorged out; then B reveals."""
    from oracle.protocol import commitment, new_salt
    from oracle.tx import TxSender

    tmp = tmp_path_factory.mktemp("reorg-reveal")
    with private_chain(tmp / "chain") as chain:
        out = Outcome(chain)
        market = chain.market
        try:
            app_id, out.workers = _market_ready(chain, fault_echo_digest, workers=2)
            a_acct, b_acct = out.workers
            b = TxSender(chain.w3, b_acct, extra_abis=market.error_abis)
            b.transact(market.contract.functions.registerWorker(1, 1024, 0, 1))
            b.transact(market.contract.functions.stake(5 * ETHER))
            job = post_job(chain.w3, market, chain.accounts[1], ipfs, app_id, tasks=1, replication=2)
            out.jobs = {job: 1}
            tid = task_id(job, 0)
            b.transact(market.contract.functions.claim(tid))
            a = _proc(chain, ipfs.api_url, tmp, a_acct, "A")
            ix = IndexerProc(chain, tmp / "indexer")
            out.procs = [a, ix]
            ix.start()
            a.start()
            wait_for(lambda: journal_step(a, job, 0) == Step.COMMITTED, 120, "A to commit", on_timeout=tails(a))
            j = a.journal()
            rec = j.get(job, 0)
            j.close()
            digest, salt = rec.data["digest"], new_salt()
            b.transact(market.contract.functions.commit(tid, commitment(tid, digest, salt, b_acct.address)))
            wait_for(lambda: journal_step(a, job, 0) == Step.REVEALED, 60, "A to reveal", on_timeout=tails(a))
            revealed = market.contract.events.ResultRevealed().get_logs(from_block=0)
            out.facts["depth"] = _reorg_out(chain, revealed[0]["blockNumber"], ix)
            out.facts["reveal_gone"] = market.task_view(tid).revealed == 0
            b.transact(market.contract.functions.reveal(tid, bytes.fromhex(digest[2:]), salt, rec.data["cid"], b""))
            try:
                wait_for(lambda: market.task_view(tid).status != 1, 25, "the task to finalize", on_timeout=tails(a))
                out.facts["settled"] = None
            except AssertionError as exc:
                out.facts["settled"] = str(exc)[:3000]
            out.facts["a_step"] = journal_step(a, job, 0)
            out.facts["indexer_alive"] = ix.alive()
            ix.wait_caught_up()
        except Exception as exc:  # noqa: BLE001 - reported by the tests
            out.error = f"{type(exc).__name__}: {exc}"
        finally:
            for p in reversed(out.procs):
                # a daemon blocked on a transaction that cannot be mined does not drain: no long grace
                p.stop(grace=3) if isinstance(p, WorkerProc) else p.stop()
        yield out


@pytest.mark.reliability(
    kind="fault", name="reorg drops a reveal: indexer",
    how="anvil_reorg replaces the block holding worker A's reveal (R=2) with empty blocks; checks the indexer stayed "
        "up, rolled the reveal back and its events table equals the new chain")
def test_reorg_dropping_a_reveal_indexer_rolls_back(fault_reorg_reveal: Outcome, record_property) -> None:
    out = fault_reorg_reveal
    out.ok()
    assert out.facts["reveal_gone"], "the reorg did not drop the reveal: the fault was not injected"
    assert out.facts["indexer_alive"], "the indexer died"
    ix = out.procs[1]
    evidence = [f"reorg of depth {out.facts['depth']} dropped A's reveal", assert_events_mirrored(ix, out.chain)]
    assert ix.log_events("reorg_rolled_back"), "the indexer never reported a rollback"
    record_property("reliability", "; ".join(evidence))


@pytest.mark.reliability(
    kind="fault", name="reorg drops a reveal: honest worker keeps its stake",
    how="same reorg, then the other replica reveals: checks worker A reveals again, the task finalizes once with "
        "2 winners within 25 s and A keeps its stake")
def test_reorg_dropping_a_reveal_worker_reveals_again(fault_reorg_reveal: Outcome) -> None:
    out = fault_reorg_reveal
    out.ok()
    assert out.facts["settled"] is None, f"A's journal step {out.facts['a_step']}; {out.facts['settled']}"
    (job, n), = out.jobs.items()
    assert_settled_once(out.chain.market, job, n)
    fin = out.chain.market.contract.events.TaskFinalized().get_logs(from_block=0)
    assert fin[0]["args"]["winners"] == 2
    assert_stake_intact(out.chain.market, out.workers[0].address)


# --- disk full under the worker's input cache ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def fault_disk_full(tmp_path_factory, ipfs, docker_client, fault_echo_digest):
    """The worker's input cache folder is a 2 MiB tmpfs. A first job's task needs a 3 MiB input (under every cap the
    worker has, but more than the disk holds); a second job's task needs 6 bytes. Waits up to 25 s for the big
    one's claim to be given back (the worker's own disk is its environment, not the task's answer)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    tmp = tmp_path_factory.mktemp("disk-full")
    with private_chain(tmp / "chain") as chain:
        out = Outcome(chain)
        market = chain.market
        cache = tmp / "A" / "state" / "cache"
        cache.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(cache)], check=True)
        out.facts["cache"] = cache
        try:
            app_id, out.workers = _market_ready(chain, fault_echo_digest, workers=1)
            big_cid = ipfs.add_bytes(os.urandom(3 << 20))
            big = post_job(chain.w3, market, chain.accounts[1], ipfs, app_id, tasks=1, doc={
                "tasks": [{"args": ["big"], "inputs": [{"uri": f"ipfs://{big_cid}", "path": "data.txt"}]}]})
            small = post_job(chain.w3, market, chain.accounts[1], ipfs, app_id, tasks=1,
                             doc=_tasks_doc(ipfs, 1, data=b"small\n"))
            out.jobs = {big: 1, small: 1}
            a = _proc(chain, ipfs.api_url, tmp, out.workers[0], "A")
            out.procs = [a]
            a.start()
            wait_for(lambda: market.job_record(small).settled == 1, 120, "the small task to settle", on_timeout=tails(a))
            given_back = market.contract.events.ClaimAbandoned()
            try:
                wait_for(lambda: bool(given_back.get_logs(from_block=0, argument_filters={"taskId": task_id(big, 0)})),
                         25, "the big task's claim to be given back", on_timeout=tails(a))
                out.facts["big"] = None
            except AssertionError as exc:
                out.facts["big"] = str(exc)[:3000]
            out.facts["alive"] = a.alive()
            out.facts["big_step"] = journal_step(a, big, 0)
            a.stop(grace=10)
            from worker._cache import InputCache

            with InputCache(cache, max_bytes=10 << 30) as c:
                stats = c.stats()
            objects = sorted(p.name for p in (cache / "objects").iterdir())
            out.facts["cache_stats"] = stats
            out.facts["objects"] = objects
            out.facts["incoming"] = sorted(p.name for p in (cache / "incoming").iterdir())
            out.facts["free"] = shutil.disk_usage(cache).free
            out.facts["big_open"] = not market.contract.functions.isTaken(task_id(big, 0)).call()
            out.facts["big_reason"] = journal_data(a, big, 0).get("reason")
        except Exception as exc:  # noqa: BLE001 - reported by the tests
            out.error = f"{type(exc).__name__}: {exc}"
        finally:
            for p in out.procs:
                p.stop(grace=10)
            subprocess.run(["umount", "-l", str(cache)], check=False, capture_output=True)
        yield out


@pytest.mark.reliability(
    kind="fault", name="disk full in the cache: worker keeps serving",
    how="the input cache is a 2 MiB tmpfs and a task needs a 3 MiB input: checks the daemon stays up, a task that "
        "fits still settles once, the cache is not corrupted (index entries = verified objects, no partial "
        "download left, space given back), stake not slashed")
def test_disk_full_worker_keeps_serving_and_cache_is_intact(fault_disk_full: Outcome, record_property) -> None:
    out = fault_disk_full
    out.ok()
    market = out.chain.market
    _big, small = out.jobs
    assert out.facts["alive"], "the worker died"
    evidence = [assert_settled_once(market, small, 1)]
    stats = out.facts["cache_stats"]
    assert stats.entries == len(out.facts["objects"]) and not out.facts["incoming"], out.facts
    assert out.facts["free"] > 1 << 20, f"only {out.facts['free']} bytes free: a partial download was left"
    info = market.worker_record(out.workers[0].address)
    assert info.slashes == 0 and info.stake == 5 * ETHER - ETHER // 10  # the give-back fee, no slash
    evidence.append(f"cache index: {stats.entries} entries = {len(out.facts['objects'])} objects, no partial "
                    f"download, {out.facts['free'] >> 10} KiB free")
    record_property("reliability", "; ".join(evidence))


@pytest.mark.reliability(
    kind="fault", name="disk full in the cache: the claim is given back",
    how="same 2 MiB tmpfs cache: the task whose input does not fit this worker's disk is not the task's fault: "
        "within 25 s the worker gives its claim back (a fee, no slash), the task is open for another worker and "
        "the journal says why")
def test_disk_full_task_is_given_back(fault_disk_full: Outcome) -> None:
    out = fault_disk_full
    out.ok()
    assert out.facts["big"] is None, f"journal step {out.facts['big_step']}; {out.facts['big']}"
    assert out.facts["big_open"] and out.facts["big_step"] is Step.ABANDONED, out.facts
    reason = str(out.facts["big_reason"]).lower()
    assert "disk" in reason or "space" in reason or "cache" in reason, reason


# --- a result upload that fails halfway -----------------------------------------------------------------------------
@pytest.mark.reliability(
    kind="fault", name="result upload cut halfway",
    how="the worker talks to kubo through a loopback TCP proxy that resets both connections after 256 KiB of the "
        "first result upload (POST /api/v0/add?pin=true, a ~2 MiB archive); checks the upload is retried, the task "
        "settles once, the submitted CID is the journaled one and its archive re-digests to the submitted digest")
def test_result_upload_cut_halfway(fault_chain: PrivateChain, ipfs, docker_client, fault_echo_digest, tmp_path,
                                   record_property) -> None:
    chain, market = fault_chain, fault_chain.market
    upstream = int(ipfs.api_url.rsplit(":", 1)[1])
    proxy = CuttingProxy(upstream, match=b"/api/v0/add?pin=true", after=256 << 10)
    try:
        app_id, ws = _market_ready(chain, fault_echo_digest, workers=1)
        job = post_job(chain.w3, market, chain.accounts[1], ipfs, app_id, tasks=1,
                       doc=_tasks_doc(ipfs, 1, data=os.urandom(2 << 20)))
        a = _proc(chain, proxy.url, tmp_path, ws[0], "A")
        with workers_stopped(a):
            a.start()
            wait_for(lambda: market.job_record(job).settled == 1, 180, "the task to settle", on_timeout=tails(a))
            wait_for(lambda: journal_step(a, job, 0) == Step.DONE, 60, "the journal to say DONE")
        assert proxy.cut == 1, f"the proxy cut {proxy.cut} uploads (matched {proxy.matched}): fault not injected"
        evidence = ["the first result upload was reset after 256 KiB", assert_settled_once(market, job, 1),
                    assert_stake_intact(market, ws[0].address)]
        ev = market.contract.events.ResultSubmitted().get_logs(from_block=0)[0]["args"]
        j = a.journal()
        rec = j.get(job, 0)
        j.close()
        assert (ev["resultCID"], "0x" + bytes(ev["resultDigest"]).hex()) == (rec.data["cid"], rec.data["digest"])
        assert result_digest_matches(ipfs, ev["resultCID"], ev["resultDigest"], tmp_path), \
            "the CID submitted does not hold the archive whose digest was submitted"
        size = len(ipfs.cat(ev["resultCID"]))
        assert size > 2 << 20
        evidence.append(f"the {size >> 10} KiB archive at the submitted CID re-digests to the submitted digest")
        record_property("reliability", "; ".join(evidence))
    finally:
        proxy.close()
