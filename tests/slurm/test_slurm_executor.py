"""The Slurm executor on a real cluster (slurmctld, two slurmd, munge) and the real Docker engine, without a chain:
each task is a batch job whose node runs the sandbox's confined container, and the worker judges and packs its
output with the sandbox's own code, so a cluster's result is the local one, digest for digest."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from oracle.images import BUSYBOX_BASE, build_busybox_base
from oracle.market import AppView, JobView
from oracle.status import parse_status
from tests.integration.test_hostile_outputs import FakeIpfs
from tests.slurm.slurm_helpers import Cluster
from worker import Limits, Reason, RunSpec, Sandbox
from worker._journal import Journal, Step
from worker._pipeline import Pipeline
from worker._settings import SlurmSettings, WorkerSettings
from worker._slurm import SlurmExecutor, SlurmTask
from worker.exceptions import EnvironmentFailure, SlurmRejected

pytestmark = [pytest.mark.slurm, pytest.mark.integration]

MiB = 1 << 20
LIMITS = Limits(wall_seconds=10, memory_bytes=48 * MiB, cpus=1.0, pids=48, output_bytes=1 * MiB, output_files=200,
                tmp_bytes=4 * MiB, log_bytes=64 * 1024)


@pytest.fixture(scope="module")
def sandbox(docker_client: Any) -> Iterator[Sandbox]:
    build_busybox_base(docker_client)
    with Sandbox(docker_client, owner=f"pytest-slurm-{uuid.uuid4().hex[:8]}") as box:
        yield box


@pytest.fixture
def executor(cluster: Cluster, sandbox: Sandbox, tmp_path: Path, docker_client: Any) -> Iterator[SlurmExecutor]:
    ex = SlurmExecutor(SlurmSettings(shared_dir=tmp_path / "shared", slurm_conf=cluster.conf, poll_s=0.3), sandbox,
                       owner=sandbox.owner)
    yield ex
    label = {"label": f"tasknet.slurm={sandbox.owner}"}
    assert docker_client.containers.list(all=True, filters=label) == [], "a node left a container behind"
    assert docker_client.volumes.list(filters=label) == [], "a node left an output volume behind"


def spec_in(folder: Path, command: list[str], limits: Limits = LIMITS) -> RunSpec:
    (folder / "in").mkdir(parents=True)
    (folder / "in" / "data").write_text("12345")
    return RunSpec(image=BUSYBOX_BASE, command=command, input_dir=folder / "in", output_dir=folder / "out",
                   log_dir=folder / "logs", limits=limits, task=folder.name)


class Harness:
    """The worker's produce step (``Pipeline._produce``: inputs, run, judgement, canonical archive) with the chain
    and IPFS faked, on the local sandbox or on the cluster."""

    def __init__(self, docker_client: Any, sandbox: Sandbox, tmp: Path, slurm: SlurmExecutor | None) -> None:
        settings = WorkerSettings(private_key="0x" + "11" * 32, state_dir=tmp, output_cap_mb=1, memory_per_task_mb=64)
        self.ipfs = FakeIpfs()
        self.journal = Journal(tmp / "journal.db")
        self.pipeline = Pipeline(settings, SimpleNamespace(), SimpleNamespace(address="0x" + "22" * 20),  # type: ignore[arg-type]
                                 self.ipfs, None, sandbox, docker_client, self.journal, slurm=slurm)  # type: ignore[arg-type]
        self.pipeline._check_claim = lambda *a: None  # type: ignore[method-assign]
        self.docker = docker_client
        self.index = 0

    def produce(self, command: list[str], *, max_run: int = 10) -> tuple[str, str]:
        """Run ``command`` as a task; its result's digest and status.txt."""
        self.index += 1
        job = JobView(job_id=7, requester="0x" + "33" * 20, app_id=1, dataset_id=0, num_tasks=100, replication=2,
                      reward=1, deadline=2**40, max_run_seconds=max_run, cores=1, memory_mb=64, gpus=0,
                      arch_mask=1, min_reputation=0, callback="0x" + "00" * 20, inputs_cid="bafy-none",
                      encryption_key="")
        app = AppView(app_id=1, owner="0x" + "44" * 20, image_ref=BUSYBOX_BASE,
                      image_digest=self.docker.images.get(BUSYBOX_BASE).id, metadata_uri="ipfs://none", price=0,
                      is_public=True, deterministic_file="")
        self.pipeline._prepare_inputs = lambda *a: (command, {})  # type: ignore[method-assign]
        rec = self.journal.record(job.job_id, self.index, Step.CLAIMED, replica=0)
        rec = self.pipeline._produce(job, app, rec)
        assert rec.step is Step.UPLOADED
        import io
        import tarfile

        with tarfile.open(fileobj=io.BytesIO(self.ipfs.blobs[rec.data["cid"]])) as tar:
            member = tar.extractfile("logs/status.txt")
            status = member.read().decode() if member is not None else ""
        return rec.data["digest"], status


SH = ["sh", "-c"]
#: apps whose whole result is reproducible: the cluster's digest must be the local one
SAME_RESULT = {
    "ok": SH + ["wc -c < /in/data > count; mkdir -p sub && cp /in/data sub/copy; echo out; echo err >&2; pwd"],
    "nonzero-exit": SH + ["echo 'cannot parse input' >&2; exit 3"],
    "timeout": SH + ["echo started; while :; do :; done"],
    "oom": SH + ["x=a; while :; do x=$x$x; done"],
    "output-too-large": SH + ["yes > /out/flood; echo after >&2; exit 0"],
    "sparse-too-large": SH + ["truncate -s 50M huge"],
    # (too many files is left out: 10,000 touches take 15 s here and there; the node's volume has the local inodes cap)
    "output-unsafe": SH + ["echo fine > ok.txt; echo x > 'a\\b'; echo done"],
    "symlinks-skipped": SH + ["echo real > real; ln -s /etc/passwd leak; ln real hard; mkdir d; ln -s ../../.. d/up"],
    "logs-capped": SH + ["yes | head -c 3000000; echo the-end >&2"],
    "confined": SH + [("grep -E '^(Uid|Gid|CapEff|CapBnd|NoNewPrivs)' /proc/self/status; ls /sys/class/net; "
                       "for p in /etc/x /x /in/x; do touch $p 2>/dev/null && echo WROTE $p; done; touch /tmp/ok && "
                       "echo tmp-ok; nslookup example.org >/dev/null 2>&1 || echo no-network")],
    "exit-137-itself": SH + ["echo x > f; exit 137"],
    "start-failed": ["/no/such/binary"],
}


@pytest.mark.reliability(kind="attack", name="hostile apps on a Slurm cluster",
                         how="12 apps (timeout, oom, floods, sparse file, unsafe names, links, escalation and "
                             "network attempts, a missing binary...) through the worker's produce step, locally "
                             "and as Slurm jobs: the same reason and the same result digest")
def test_a_cluster_run_gives_the_local_result_digest_for_digest(cluster: Cluster, executor: SlurmExecutor,
                                                               sandbox: Sandbox, docker_client: Any,
                                                               tmp_path: Path) -> None:
    local = Harness(docker_client, sandbox, tmp_path / "local", None)
    remote = Harness(docker_client, sandbox, tmp_path / "remote", executor)
    for name, command in SAME_RESULT.items():
        max_run = 3 if name == "timeout" else 10
        here, there = local.produce(command, max_run=max_run), remote.produce(command, max_run=max_run)
        assert there == here, f"{name}: the cluster's result differs from the local one"
    # the fork bomb's stderr depends on timing (here as locally): its reason is what replicas share
    bomb = remote.produce(SH + ["f(){ f|f& }; f; sleep 30"])
    assert parse_status(bomb[1]).reason == "pids"


def test_the_confined_container_on_the_node_is_the_sandboxs(cluster: Cluster, executor: SlurmExecutor,
                                                             tmp_path: Path) -> None:
    """The node's container: unprivileged, no capability, no-new-privs, only lo, read-only root and /in."""
    result = executor.run(spec_in(tmp_path / "shared" / "t", SAME_RESULT["confined"]), SlurmTask(label="1-1"))
    assert result.ok, result.message
    out = result.stdout_path.read_text()
    assert "Uid:\t65534\t65534\t65534\t65534" in out and "CapEff:\t0000000000000000" in out
    assert "NoNewPrivs:\t1" in out and "WROTE" not in out and "no-network" in out
    assert out.splitlines()[5:7] == ["lo", "tmp-ok"]


@pytest.mark.reliability(kind="fault", name="a Slurm job cancelled from outside mid-run",
                         how="scancel of a running task's job by the site: the executor submits it once more and "
                             "the run ends ok; never published as the app's answer")
def test_a_job_cancelled_from_outside_is_submitted_once_more(cluster: Cluster, executor: SlurmExecutor,
                                                            tmp_path: Path) -> None:
    notes: dict[str, Any] = {}
    cancelled: list[str] = []

    def site_admin() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job = notes.get("slurm_job")
            if job and cluster.states([job]) == ["RUNNING"]:
                time.sleep(1.0)
                cluster.run("scancel", job)
                cancelled.append(job)
                return
            time.sleep(0.1)
    thread = threading.Thread(target=site_admin, daemon=True)
    thread.start()
    result = executor.run(spec_in(tmp_path / "shared" / "t", SH + ["sleep 4; echo done > x"]),
                          SlurmTask(label="1-2", note=lambda **d: notes.update(d)))
    thread.join(5)
    assert cancelled and notes["slurm_job"] != cancelled[0]
    assert result.ok and (result.output_dir / "x").read_text() == "done\n"
    assert cluster.settled_states([cancelled[0], notes["slurm_job"]]) == ["CANCELLED", "COMPLETED"]


def test_a_shared_folder_missing_on_the_node_is_a_clear_environment_failure(cluster: Cluster, sandbox: Sandbox,
                                                                             tmp_path: Path) -> None:
    ex = SlurmExecutor(SlurmSettings(shared_dir=tmp_path / "shared", node_dir=Path("/mnt/not-mounted"),
                                     slurm_conf=cluster.conf, poll_s=0.3), sandbox, owner=sandbox.owner)
    with pytest.raises(EnvironmentFailure, match=r"shared folder /mnt/not-mounted .* is missing on node vm-n\d"):
        ex.run(spec_in(tmp_path / "shared" / "t", SH + ["true"]), SlurmTask(label="1-3"))


def test_a_job_over_the_partitions_limits_is_refused(cluster: Cluster, executor: SlurmExecutor,
                                                     tmp_path: Path) -> None:
    big = LIMITS.model_copy(update={"memory_bytes": 8000 * MiB})
    with pytest.raises(SlurmRejected, match="Requested node configuration is not available"):
        executor.run(spec_in(tmp_path / "shared" / "t", SH + ["true"], big), SlurmTask(label="1-4"))


def test_a_lost_claim_cancels_the_job_and_its_containers(cluster: Cluster, executor: SlurmExecutor,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import worker._slurm

    monkeypatch.setattr(worker._slurm, "CLAIM_CHECK_S", 0.5)
    notes: dict[str, Any] = {}

    class Lost(Exception):
        pass

    def check() -> None:
        if notes.get("slurm_node"):
            raise Lost("the claim is gone")
    with pytest.raises(Lost):
        executor.run(spec_in(tmp_path / "shared" / "t", SH + ["sleep 60"]),
                     SlurmTask(label="1-5", note=lambda **d: notes.update(d), check=check))
    deadline = time.monotonic() + 20
    while cluster.states([notes["slurm_job"]]) != ["CANCELLED"]:
        assert time.monotonic() < deadline, cluster.jobs()
        time.sleep(0.2)
    time.sleep(1.0)  # the executor fixture checks that the node removed the containers and the volume


def test_a_job_queued_past_the_point_its_claim_could_be_met_is_cancelled(cluster: Cluster, executor: SlurmExecutor,
                                                                         tmp_path: Path) -> None:
    """The nodes are drained: the task's job waits in the queue until its wall clock (plus slurm.start_margin_s)
    would no longer fit before the claim expires, then it is cancelled (scancel) and the claim is to be given back
    (EnvironmentFailure), saying why; it never ran."""
    cluster.set_nodes("drain")
    notes: dict[str, Any] = {}
    expiry = time.time() + LIMITS.wall_seconds + executor.s.start_margin_s + 6
    spec = spec_in(tmp_path / "shared" / "t", SH + ["echo ran > x"])
    with pytest.raises(EnvironmentFailure, match=r"is still queued \(.+\) and could no longer end before its claim "
                                                 r"expires .*the claim is given back"):
        executor.run(spec, SlurmTask(label="1-11", expiry=expiry, note=notes.update))
    assert time.time() + LIMITS.wall_seconds + executor.s.start_margin_s > expiry  # not given up before its time
    assert cluster.settled_states([notes["slurm_job"]]) == ["CANCELLED"]
    assert not notes.get("slurm_node") and not list(spec.output_dir.parent.glob("slurm-*/result.env"))


@pytest.mark.reliability(kind="fault", name="slurmctld down while a task runs",
                         how="the controller stops mid-run: the job goes on on its node, the worker collects its "
                             "result from the shared folder; the controller comes back")
def test_a_job_finishes_and_is_collected_while_the_controller_is_down(cluster: Cluster, executor: SlurmExecutor,
                                                                      tmp_path: Path) -> None:
    notes: dict[str, Any] = {}

    def stop_controller() -> None:
        while not notes.get("slurm_node"):
            time.sleep(0.1)
        cluster.script("ctld", "stop")
    thread = threading.Thread(target=stop_controller, daemon=True)
    thread.start()
    result = executor.run(spec_in(tmp_path / "shared" / "t", SH + ["sleep 3; echo done > x"]),
                          SlurmTask(label="1-6", note=lambda **d: notes.update(d)))
    thread.join(5)
    assert result.ok and (result.output_dir / "x").read_text() == "done\n"
    assert "DOWN" in cluster.run("scontrol", "ping", check=False)  # it was down all along the collection
    cluster.script("ctld", "start")


def test_a_restarted_executor_follows_the_job_it_finds_in_the_journal(cluster: Cluster, executor: SlurmExecutor,
                                                                      sandbox: Sandbox, tmp_path: Path) -> None:
    """A first executor submits and is abandoned mid-run (its process died); a second one, given what the journal
    kept (the run's token, not even the job id), finds the job by its name, follows it and collects its result:
    one job, one run."""
    notes: dict[str, Any] = {}
    spec = spec_in(tmp_path / "shared" / "t", SH + ["sleep 3; echo once >> /out/x"])
    first = threading.Thread(target=lambda: _run_quietly(executor, spec, SlurmTask(label="1-7", note=notes.update)),
                             daemon=True)
    first.start()
    while not notes.get("slurm_job"):
        time.sleep(0.1)
    executor.stop("abandoned by the test")  # the first executor lets go (its cancel is not called: we catch it)
    again = SlurmExecutor(executor.s, sandbox, owner=sandbox.owner)
    for d in (spec.output_dir, spec.log_dir):
        for p in d.glob("*"):
            p.unlink()
    result = again.run(spec, SlurmTask(label="1-7", data={"slurm_token": notes["slurm_token"]}), resume=True)
    assert result.ok and (result.output_dir / "x").read_text() == "once\n"
    assert len([j for j in cluster.jobs() if j["name"].endswith(notes["slurm_token"])]) == 1


@pytest.mark.reliability(kind="crash", name="Slurm jobs that ended while the worker was down, forgotten by squeue",
                         how="the worker dies right after sbatch; its two jobs end (one with its result, one on a node "
                             "without the shared folder) and the controller forgets them (MinJobAge); the restarted "
                             "executor collects the first from its result file and learns from sacct (the job "
                             "completion log) why the second ended: a clear error, nothing submitted again")
def test_jobs_squeue_has_forgotten_are_collected_or_explained_by_sacct(cluster: Cluster, executor: SlurmExecutor,
                                                                       sandbox: Sandbox, tmp_path: Path) -> None:
    blind = SlurmExecutor(executor.s.model_copy(update={"node_dir": Path("/mnt/not-mounted")}), sandbox,
                          owner=sandbox.owner)
    runs: dict[str, tuple[SlurmExecutor, RunSpec, dict[str, Any]]] = {}
    for label, ex in (("1-9", executor), ("1-10", blind)):
        spec = spec_in(tmp_path / "shared" / label, SH + ["echo done > x"])
        notes: dict[str, Any] = {}
        ex._submit(spec, SlurmTask(label=label, note=notes.update), sandbox._check_image(spec))  # then it dies
        runs[label] = (ex, spec, notes)
    ids = [notes["slurm_job"] for _, _, notes in runs.values()]
    deadline = time.monotonic() + 60
    while set(cluster.settled_states(ids)) != {"COMPLETED", "FAILED"}:
        assert time.monotonic() < deadline, cluster.jobs()
        time.sleep(0.5)
    cluster.forget(ids)
    for label, (ex, spec, notes) in runs.items():
        again = SlurmExecutor(ex.s, sandbox, owner=sandbox.owner)
        task = SlurmTask(label=label, data=dict(notes))
        if ex is executor:
            result = again.run(spec, task, resume=True)
            assert result.ok and (result.output_dir / "x").read_text() == "done\n"
        else:
            with pytest.raises(EnvironmentFailure, match=r"shared folder /mnt/not-mounted .* is missing on node vm-n\d"):
                again.run(spec, task, resume=True)
    names = tuple(f"{executor.prefix}{label}-" for label in runs)
    assert [j for j in cluster.jobs() if j["name"].startswith(names)] == []  # nothing submitted again
    assert cluster.accounted(ids) == dict(zip(ids, ["COMPLETED", "FAILED"], strict=True))


def _run_quietly(ex: SlurmExecutor, spec: RunSpec, task: SlurmTask) -> None:
    """Run, as a worker process that dies would: nothing it does after the stop reaches Slurm."""
    ex._cancel = lambda job_id: None  # type: ignore[method-assign]
    try:
        ex.run(spec, task)
    except EnvironmentFailure:
        pass


def test_an_image_the_node_lacks_is_loaded_from_the_shared_folder(cluster: Cluster, executor: SlurmExecutor,
                                                                  docker_client: Any, tmp_path: Path) -> None:
    """The worker saves the app's image into the shared folder; a node without it loads it from there and runs it
    by its id (here the node's engine is the worker's: the image is removed before the job starts)."""
    from oracle.images import build_app_image

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    marker = uuid.uuid4().hex
    (ctx / "Dockerfile").write_text(f"FROM tasknet/base-busybox\nRUN echo {marker} > /marker\n")
    tag = f"tasknet-test/slurm-load-{marker[:8]}:1"
    build_app_image(docker_client, ctx, tag)
    image_id = docker_client.images.get(tag).id
    spec = spec_in(tmp_path / "shared" / "t", ["cat", "/marker"]).model_copy(update={"image": image_id,
                                                                                     "image_digest": image_id})
    executor._share_image(image_id)
    docker_client.images.remove(tag, force=True)
    assert not any(i.id == image_id for i in docker_client.images.list(all=True))
    try:
        executor._images.add(image_id)
        executor.sandbox._check_image = lambda s: image_id  # type: ignore[method-assign]
        result = executor.run(spec, SlurmTask(label="1-8"))
        assert result.ok, result.message
        assert result.stdout_path.read_text() == marker + "\n" and result.image_id == image_id
    finally:
        del executor.sandbox._check_image
        docker_client.images.remove(image_id, force=True)
    assert Reason.OK is result.reason
