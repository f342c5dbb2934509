"""The worker daemon with ``executor = "slurm"`` against a real anvil, kubo, Docker engine and the test cluster
(slurmctld, two slurmd): it claims on chain, each task runs as a Slurm job, and it publishes, commits, reveals and
is paid as a local worker is. A local worker replicating the same tasks agrees with it digest for digest."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from oracle.market import Market
from oracle.protocol import task_id
from tests.integration.test_worker import fund_worker, running, settings, wait_for, worker_process
from tests.market_helpers import ETHER, fund, post_job, register_app
from tests.slurm.slurm_helpers import Cluster
from worker._daemon import Worker
from worker._journal import Journal, Step
from worker._sandbox import sandbox_owner
from worker._settings import WorkerSettings

pytestmark = [pytest.mark.slurm, pytest.mark.integration]


def slurm_settings(anvil: Any, ipfs: Any, market: Market, account: Any, state: Path, cluster: Cluster,
                   shared: Path, **kw: Any) -> WorkerSettings:
    kw.setdefault("policy", {"max_concurrent": 2})
    return settings(anvil, ipfs, market, account, state, executor="slurm",
                    slurm={"shared_dir": shared, "slurm_conf": cluster.conf, "poll_s": 0.3}, **kw)


def owner_of(cfg: WorkerSettings, account: Any) -> str:
    return sandbox_owner(account.address, cfg.state_dir)


@pytest.mark.reliability(kind="fault", name="a Slurm job cancelled by the site while the daemon runs it",
                         how="a 10-task R = 2 job, one replica of each on a Slurm worker (each task its own Slurm "
                             "job), one on a local worker; scancel of one running task's job: the Slurm worker "
                             "submits it once more; every task finalizes with both replicas agreeing (2 winners)")
def test_a_slurm_worker_and_a_local_one_agree_on_every_task_and_are_paid(
        cluster: Cluster, anvil: Any, w3: Any, accounts: Any, market: Market, ipfs: Any, docker_client: Any,
        echo_digest: str, tmp_path: Path) -> None:
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 20 * ETHER)
    for a in (accounts[4], accounts[5]):
        fund_worker(w3, market, a)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=10, replication=2)
    cfg = slurm_settings(anvil, ipfs, market, accounts[4], tmp_path / "slurm", cluster, tmp_path / "shared")
    on_cluster = Worker(cfg, docker_client=docker_client)
    assert on_cluster.caps.cores == 1 and on_cluster.caps.memory_mb == 4000  # the largest node's, from sinfo
    # per-task rounds on both sides (a cluster worker takes no lanes; a local one leasing lanes would dissolve its
    # chunks only after the claim grace: tests/integration/test_worker_lanes.py covers that mix)
    local = Worker(settings(anvil, ipfs, market, accounts[5], tmp_path / "local", batching={"lanes": False}),
                   docker_client=docker_client)
    owner = owner_of(cfg, accounts[4])
    cancelled: list[str] = []

    def site_admin() -> None:  # cancels the first job it sees running, once
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not cancelled:
            for jobs in cluster.task_jobs(owner, job_id).values():
                if jobs[0]["state"] == "RUNNING":
                    cluster.run("scancel", jobs[0]["id"])
                    cancelled.append(jobs[0]["id"])
                    return
            time.sleep(0.1)
    admin = threading.Thread(target=site_admin, daemon=True)
    admin.start()
    with running(on_cluster, local):
        wait_for(lambda: market.job_record(job_id).finished == 10, timeout=180, what="10 finalized tasks")
        journal = Journal(tmp_path / "slurm" / "journal.db")
        wait_for(lambda: all(r.step is Step.DONE for r in journal.all()), timeout=30, what="the journal's DONE")
    admin.join(5)
    finals = market.contract.events.TaskFinalized().get_logs(from_block=0)
    assert len(finals) == 10 and all(e["args"]["winners"] == 2 for e in finals)  # the same digest, every task
    info = market.worker_record(accounts[4].address)
    assert info.locked == 0 and info.slashes == 0
    assert market.balance(accounts[4].address) == 5 * ETHER + 10 * ETHER // 10
    # every task ran as its own Slurm job: one COMPLETED each, and the cancelled one submitted once more
    jobs = cluster.task_jobs(owner, job_id)
    assert sorted(jobs) == list(range(10))
    assert cancelled, "the site admin never saw a job running"
    for index, runs in jobs.items():
        states = cluster.settled_states([j["id"] for j in sorted(runs, key=lambda j: int(j["id"]))])
        assert states == (["CANCELLED", "COMPLETED"] if runs[0]["id"] in cancelled else ["COMPLETED"]), (index, runs)
    assert len(journal.all()) == 10


@pytest.mark.reliability(kind="crash", name="a Slurm worker killed while its jobs run",
                         how="kill -9 of the daemon while two tasks run as Slurm jobs: the jobs go on; the restarted "
                             "daemon finds them through its journal, collects their results and is paid; each task "
                             "ran once")
def test_a_restarted_slurm_worker_finds_its_running_jobs_again(cluster: Cluster, anvil: Any, w3: Any,
                                                               accounts: Any, market: Market, ipfs: Any,
                                                               echo_digest: str, tmp_path: Path) -> None:
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[6])
    data_cid = ipfs.add_bytes(b"slow\n")
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=2, doc={
        "count": 2, "template": {"args": ["sleep", "6"]},
        "common_inputs": [{"uri": f"ipfs://{data_cid}", "path": "data.txt"}]})
    cfg = slurm_settings(anvil, ipfs, market, accounts[6], tmp_path / "w", cluster, tmp_path / "shared")
    owner = owner_of(cfg, accounts[6])
    first = worker_process(cfg, tmp_path / "cfg.json")
    try:
        wait_for(lambda: [j[0]["state"] for j in cluster.task_jobs(owner, job_id).values()] == ["RUNNING"] * 2,
                 timeout=60, what="both tasks running as Slurm jobs")
        first.send_signal(signal.SIGKILL)
        assert first.wait(30) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    journal = Journal(tmp_path / "w" / "journal.db")
    before = {i: journal.get(job_id, i) for i in range(2)}
    assert all(r is not None and r.data.get("slurm_job") for r in before.values())
    assert [j[0]["state"] for j in cluster.task_jobs(owner, job_id).values()] == ["RUNNING"] * 2  # still running
    restarted = worker_process(cfg, tmp_path / "cfg.json")
    try:
        wait_for(lambda: market.job_record(job_id).finished == 2, timeout=90, what="the two resumed tasks to finish")
    finally:
        restarted.terminate()
        restarted.wait(60)
    logs = restarted.stderr.read().decode() if restarted.stderr else ""
    assert logs.count("slurm_job_adopted") == 2, logs[-3000:]
    jobs = cluster.task_jobs(owner, job_id)
    assert {i: [j["id"] for j in runs] for i, runs in jobs.items()} == \
        {i: [str(before[i].data["slurm_job"])] for i in range(2)}  # type: ignore[union-attr]
    assert all(runs[0]["state"] == "COMPLETED" for runs in jobs.values())
    info = market.worker_record(accounts[6].address)
    assert info.stake == 5 * ETHER and info.locked == 0 and info.slashes == 0
    assert market.balance(accounts[6].address) == 5 * ETHER + 2 * ETHER // 10
    for i in range(2):
        assert [s for s, _ in journal.history(job_id, i)].count(Step.CLAIMED) == 1


@pytest.mark.reliability(kind="fault", name="SIGTERM to a Slurm worker while its jobs run",
                         how="SIGTERM while two tasks run as Slurm jobs (a short one, one longer than the drain "
                             "timeout): nothing more is claimed; the short one finishes, is collected and paid; the "
                             "long one's job is scancelled at the drain timeout and its claim given back; exit 0")
def test_sigterm_drains_a_slurm_worker_and_cancels_what_outlives_the_drain(
        cluster: Cluster, anvil: Any, w3: Any, accounts: Any, market: Market, ipfs: Any, docker_client: Any,
        echo_digest: str, tmp_path: Path) -> None:
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[6])
    data_cid = ipfs.add_bytes(b"slow\n")
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=3, max_run=400, doc={
        "tasks": [{"args": ["sleep", s]} for s in ("5", "300", "1")],
        "common_inputs": [{"uri": f"ipfs://{data_cid}", "path": "data.txt"}]})
    cfg = slurm_settings(anvil, ipfs, market, accounts[6], tmp_path / "w", cluster, tmp_path / "shared",
                         drain_timeout=20)
    owner = owner_of(cfg, accounts[6])
    proc = worker_process(cfg, tmp_path / "cfg.json")
    logs: list[bytes] = []
    reader = threading.Thread(target=lambda: logs.append(proc.stderr.read() if proc.stderr else b""), daemon=True)
    reader.start()
    try:
        wait_for(lambda: [r[0]["state"] for r in cluster.task_jobs(owner, job_id).values()] == ["RUNNING"] * 2,
                 timeout=90, what="tasks 0 and 1 running as Slurm jobs")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(150) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
    text = b"".join(logs).decode(errors="replace")
    for event in ("draining", "drain_timeout", "slurm_cancelled", "drain_gave_back", "worker_stopped"):
        assert event in text, (event, text[-4000:])
    journal = Journal(tmp_path / "w" / "journal.db")
    steps = {i: r.step if (r := journal.get(job_id, i)) else None for i in range(3)}
    assert steps == {0: Step.DONE, 1: Step.ABANDONED, 2: None}  # nothing claimed after the SIGTERM
    jobs = cluster.task_jobs(owner, job_id)
    assert {i: cluster.settled_states([j["id"] for j in runs]) for i, runs in jobs.items()} == \
        {0: ["COMPLETED"], 1: ["CANCELLED"]}
    # task 0 was submitted (held back while task 1 ran, sent by the drain) and paid; task 1 is free again
    assert market.job_record(job_id).finished == 1
    assert not market.is_taken(task_id(job_id, 1)) and not market.is_taken(task_id(job_id, 2))
    gave_back = market.contract.events.ClaimAbandoned().get_logs(from_block=0)
    assert [(e["args"]["taskId"], e["args"]["worker"]) for e in gave_back] == [(task_id(job_id, 1),
                                                                              accounts[6].address)]
    info = market.worker_record(accounts[6].address)  # the give-back's fee comes out of the stake: no slash
    assert info.locked == 0 and info.slashes == 0 and info.stake == 5 * ETHER - gave_back[0]["args"]["fee"]
    assert market.balance(accounts[6].address) == 5 * ETHER + ETHER // 10
    label = {"label": f"tasknet.slurm={owner}"}
    assert docker_client.containers.list(all=True, filters=label) == [], "a node left a container behind"


def test_tasks_queued_on_a_partition_drained_meanwhile_wait_and_run_once_it_is_resumed(
        cluster: Cluster, anvil: Any, w3: Any, accounts: Any, market: Market, ipfs: Any, docker_client: Any,
        echo_digest: str, tmp_path: Path) -> None:
    """Two tasks wait in Slurm's queue (the site's own jobs hold both nodes) when the site drains the nodes
    (scontrol update state=drain): the worker pauses its claims, keeps its queued jobs and its claims (they can
    still end in time), and once the nodes are resumed each task runs once, as the job it was queued as."""
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[7])
    site = [cluster.run("sbatch", "--parsable", "--job-name=site-user", "--output=/dev/null", "--mem=64",
                        "--wrap", "sleep 600").strip() for _ in cluster.nodes]
    wait_for(lambda: cluster.states(site) == ["RUNNING"] * len(site), timeout=30, what="the site's jobs running")
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=4)
    cfg = slurm_settings(anvil, ipfs, market, accounts[7], tmp_path / "w", cluster, tmp_path / "shared")
    owner = owner_of(cfg, accounts[7])
    worker = Worker(cfg, docker_client=docker_client)
    journal = Journal(tmp_path / "w" / "journal.db")

    def queued() -> dict[int, list[dict[str, str]]]:
        return cluster.task_jobs(owner, job_id)
    with running(worker):
        wait_for(lambda: [r[0]["state"] for r in queued().values()] == ["PENDING"] * 2, timeout=90,
                 what="two tasks queued behind the site's jobs")
        waiting = {i: runs[0]["id"] for i, runs in queued().items()}
        cluster.set_nodes("drain")
        cluster.run("scancel", *site)  # the nodes go from draining to drained, the tasks' jobs still queued
        wait_for(lambda: cluster.node_states() == ["drained"] * len(cluster.nodes), timeout=30, what="drained nodes")
        wait_for(lambda: "no node of the Slurm partition takes jobs" in str(worker._claims_paused_reason),
                 timeout=30, what="the worker's claims paused")
        for _ in range(3):  # a few of the worker's polls later: nothing given back, run, claimed or submitted
            time.sleep(2)
            assert {i: [(j["id"], j["state"]) for j in runs] for i, runs in queued().items()} == \
                {i: [(jid, "PENDING")] for i, jid in waiting.items()}
            assert sorted((r.task_index, r.step) for r in journal.all()) == \
                [(i, Step.INPUTS_READY) for i in sorted(waiting)]
        cluster.set_nodes("resume")
        wait_for(lambda: market.job_record(job_id).finished == 4, timeout=120, what="the 4 tasks to finish")
        wait_for(lambda: all(r.step is Step.DONE for r in journal.all()), timeout=30, what="the journal's DONE")
    jobs = queued()
    assert sorted(jobs) == [0, 1, 2, 3]
    for index, runs in jobs.items():  # each task ran once, as one Slurm job: the queued ones as they were queued
        assert len(runs) == 1 and cluster.settled_states([runs[0]["id"]]) == ["COMPLETED"], (index, runs)
        assert index not in waiting or runs[0]["id"] == waiting[index]
        assert [s for s, _ in journal.history(job_id, index)].count(Step.CLAIMED) == 1
    assert market.contract.events.ClaimAbandoned().get_logs(from_block=0) == []
    info = market.worker_record(accounts[7].address)
    assert info.locked == 0 and info.slashes == 0
    assert market.balance(accounts[7].address) == 5 * ETHER + 4 * ETHER // 10


def test_claims_pause_while_the_partition_is_drained_or_its_controller_is_away(
        cluster: Cluster, anvil: Any, w3: Any, accounts: Any, market: Market, ipfs: Any, docker_client: Any,
        tmp_path: Path) -> None:
    """The capacity a Slurm worker claims for is its partition's CPUs that take jobs, capped by its policy: none
    while the nodes are drained (scontrol update state=drain) or slurmctld does not answer, with the reason."""
    cfg = slurm_settings(anvil, ipfs, market, accounts[7], tmp_path / "w", cluster, tmp_path / "shared",
                         policy={"max_concurrent": 5})
    worker = Worker(cfg, docker_client=docker_client)
    assert worker._capacity() == 2  # two nodes of one CPU each, under the policy's 5
    cluster.set_nodes("drain")
    worker.slurm._nodes = None  # type: ignore[union-attr]
    assert worker._capacity() == 0 and "no node of the Slurm partition takes jobs" in str(
        worker._claims_paused_reason)
    cluster.set_nodes("resume")
    assert back_to_two(worker)
    cluster.script("ctld", "stop")
    worker.slurm._nodes = None  # type: ignore[union-attr]
    assert worker._capacity() == 0 and "does not answer" in str(worker._claims_paused_reason)
    cluster.script("ctld", "start")  # its nodes register again within seconds
    assert back_to_two(worker)


def back_to_two(worker: Worker) -> bool:
    """Whether the worker's capacity comes back to the two nodes' CPUs within 20 s, its claims resumed."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        worker.slurm._nodes = None  # type: ignore[union-attr]
        if worker._capacity() == 2:
            return worker._claims_paused_reason is None
        time.sleep(0.2)
    return False
