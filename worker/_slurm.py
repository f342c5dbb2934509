"""The Slurm executor: a site's cluster joins Tasknet as one worker, without its nodes running the daemon.

The daemon keeps the whole chain side (claims, journal, commit and reveal); only the run of a task changes. Its
folder lives on storage every node mounts (``slurm.shared_dir``): the pipeline fetches the inputs into it, then
:meth:`SlurmExecutor.run` submits one batch job (``sbatch``) whose script, on the allocated node, runs the same
confined container as :class:`worker.Sandbox` with the node's own Docker engine and its command-line client:

- the same confinement and limits (``docker create`` with the flags of ``oracle.images.confinement`` and
  ``Sandbox._create_app``: no network but ``lo``, read-only root, all capabilities dropped, no-new-privileges,
  the unprivileged sandbox user, pids/memory/CPU limits, a private size-capped ``/tmp``, no core dumps);
- the same size-capped output: a tmpfs volume kept mounted by a holder container (busybox) whose ``tar`` writes
  ``/out`` into the run's folder (at most the cap plus the headers' room: a sparse file claiming terabytes is cut);
- the same wall-clock kill and the same pids watch (the container's pids cgroup, read every 50 ms);
- the same image: the worker checks the app's image against its pinned digest (``Sandbox._check_image``), writes
  it once with ``docker save`` into ``shared_dir/images``, and the node loads it from there when it lacks it,
  then runs it by image id (an id is the digest of the image's content).

The worker then extracts the archive with the sandbox's own code (:func:`oracle.archive.extract_tar`, the same
caps) and judges the run with ``Sandbox._judge``: the same reasons, sentences and canonical result as a local
run, so a task run on a cluster and one run on a laptop agree digest for digest.

The task's cores, memory (``memory + output + tmp`` plus the holder's 32 MiB) and wall clock (plus
``slurm.time_margin_s``, a backstop: the node's script kills the container itself) become the job's request.
The worker follows its jobs with one ``squeue`` per ``slurm.poll_s`` for all of them (a job's ``result.env`` in
its folder says the run is over, even while the controller is away), and cancels them with ``scancel`` when
their claim is lost or would expire before they could start, and when a drain times out. A job ``squeue`` no
longer lists (it ended longer than the controller's MinJobAge ago, e.g. while the worker was down) is collected
from its ``result.env``; one that left none is looked up with ``sacct`` (the accounting database; else the job
completion log, ``sacct -c``) to say how it ended, and is taken as interrupted when no record says.

Crash safety: the run's token (part of the job's name) is journaled before ``sbatch``, the job id right after.
A restarted worker finds the job again (by id, else by name) and follows it, or collects the result it left,
so a task never runs twice; a job that vanished without a result (a node failure, a cancellation from outside)
is submitted once more, then given back.

Node requirements: bash, coreutils, the Docker engine and its client, the shared folder at ``slurm.node_dir``.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pydantic import BaseModel

from oracle import get_logger, status
from oracle.archive import (
    MAX_DEPTH,
    MAX_PATH_BYTES,
    ExtractStats,
    OutputProblem,
    extract_tar,
    open_tar_stream,
)

from ._caps import Capabilities, detect
from ._journal import TaskData
from ._sandbox import (
    _IMAGE_EXPLANATIONS,
    _OUT_MODE,
    Limits,
    MiB,
    RunResult,
    RunSpec,
    Sandbox,
    _Copied,
    _fresh_paths,
    _ImageProblem,
    _make_readable,
    _Outcome,
    _Paths,
    _volume_bytes,
)
from ._settings import SlurmSettings
from .exceptions import EnvironmentFailure, SandboxError, SlurmRejected, SlurmUnavailable

if TYPE_CHECKING:
    import docker

log = get_logger(__name__)

#: exit codes of the job script (besides 0: the run is over, ``result.env`` says how)
EXIT_NO_FOLDER, EXIT_NODE_FAILED, EXIT_CANCELLED = 97, 98, 143
#: the holder container's memory (its request is added to the job's)
HOLDER_MEMORY = 32 * MiB
#: job states after which a job does nothing more
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
                      "DEADLINE", "OUT_OF_MEMORY", "REVOKED", "SPECIAL_EXIT"})
#: job states that say nothing about the app: the job is submitted once more (then the claim is given back)
INTERRUPTED = frozenset({"CANCELLED", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "REVOKED"})
#: pending reasons that never resolve by waiting: the cluster refuses the job as it is
HOPELESS = frozenset({"PartitionTimeLimit", "PartitionNodeLimit", "PartitionConfig", "BadConstraints",
                      "InvalidAccount", "InvalidQOS", "AccountNotAllowed", "QOSNotAllowed", "JobHeldAdmin"})
#: node states (sinfo %T, without the flag suffixes) whose CPUs take new jobs
USABLE_NODE_STATES = frozenset({"idle", "mixed", "allocated", "completing", "planned"})
#: the words of Slurm's messages when its controller does not answer
_UNREACHABLE = re.compile(r"Unable to contact slurm controller|Socket timed out|Connection refused|connect failure|"
                          r"Zero Bytes were transmitted|Communication connection failure|Transport endpoint|"
                          r"Connection timed out|No route to host", re.IGNORECASE)
_GPUS = re.compile(r"gpu(?::[^:,(]+)?:(\d+)")
_NODE_FLAGS = "*~#!%$@^-+"
#: seconds a finished job's result.env may take to show on the shared storage (a folder's listing revalidates
#: NFS's cached attributes: close-to-open consistency)
RESULT_GRACE_S = 3.0
#: seconds between two checks that the claim is still ours, while its job waits or runs
CLAIM_CHECK_S = 15.0


class SlurmNode(BaseModel):
    """One node of the partition, as ``sinfo`` describes it."""

    name: str
    cpus: int
    memory_mb: int
    state: str
    gpus: int = 0

    @property
    def usable(self) -> bool:
        """Whether the node takes new jobs (responding, not drained, down or failed)."""
        return not self.state.endswith("*") and self.state.rstrip(_NODE_FLAGS) in USABLE_NODE_STATES


class SlurmJob(BaseModel):
    """One job, as ``squeue`` describes it (``exit_code`` is the raw wait status: code << 8 | signal)."""

    job_id: str
    state: str
    reason: str = ""
    node: str = ""
    exit_status: int = 0
    name: str = ""

    @property
    def exit_code(self) -> int:
        return self.exit_status >> 8

    @property
    def signal(self) -> int:
        return self.exit_status & 0x7F


def parse_sinfo(text: str, partition: str | None) -> list[SlurmNode]:
    """The nodes of ``partition`` (else the default partition, marked ``*``) in ``sinfo -h -N -o
    '%N|%c|%m|%T|%G|%P'`` output, each once."""
    nodes: dict[str, SlurmNode] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 6:
            continue
        name, cpus, memory, state, gres, part = parts[:6]
        if (part.rstrip("*") != partition) if partition else not part.endswith("*"):
            continue
        gpus = sum(int(n) for n in _GPUS.findall(gres))
        nodes[name] = SlurmNode(name=name, cpus=int(cpus or 0), memory_mb=int(re.sub(r"\D", "", memory) or 0),
                                state=state, gpus=gpus)
    return list(nodes.values())


def parse_squeue(text: str, prefix: str) -> dict[str, SlurmJob]:
    """Jobs whose name starts with ``prefix`` in ``squeue -h -O JobID:|,State:|,Reason:|,NodeList:|,exit_code:|,
    Name:|`` output, by job id."""
    jobs: dict[str, SlurmJob] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 6 or not parts[5].startswith(prefix):
            continue
        jid, state, reason, node, code, name = parts[:6]
        jobs[jid] = SlurmJob(job_id=jid, state=state.split()[0] if state else "", reason=reason,
                             node="" if node in ("", "(null)") else node,
                             exit_status=int(code) if code.isdigit() else 0, name=name)
    return jobs


def parse_sacct(text: str, prefix: str) -> dict[str, SlurmJob]:
    """Jobs whose name starts with ``prefix`` in ``sacct -X -n -P -o JobID,State,ExitCode,NodeList,JobName`` output,
    by job id (a later line wins: the completion log may hold an id twice after the controller's state was reset)."""
    jobs: dict[str, SlurmJob] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 5 or "." in parts[0] or not parts[4].startswith(prefix):
            continue
        jid, state, code, node, name = parts[:5]
        status, _, sig = code.partition(":")
        jobs[jid] = SlurmJob(job_id=jid, state=state.split()[0] if state else "",
                             node="" if node in ("", "(null)", "None assigned") else node,
                             exit_status=(int(status) << 8 | int(sig)) if status.isdigit() and sig.isdigit() else 0,
                             name=name)
    return jobs


class SlurmClient:
    """The Slurm commands with this cluster's configuration (``slurm.slurm_conf``, ``slurm.bin_dir``)."""

    def __init__(self, settings: SlurmSettings) -> None:
        self.s = settings
        self.env = dict(os.environ)
        if settings.slurm_conf is not None:
            self.env["SLURM_CONF"] = str(settings.slurm_conf)

    def call(self, name: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a Slurm command; SlurmUnavailable when it is missing, hangs, or says the controller is away."""
        exe = str(self.s.bin_dir / name) if self.s.bin_dir is not None else name
        try:
            proc = subprocess.run([exe, *args], capture_output=True, text=True, env=self.env, timeout=timeout,
                                  check=False)
        except FileNotFoundError:
            raise SlurmUnavailable(f"'{name}' is not installed on this machine: install the Slurm client "
                                   "(Debian's slurm-client) or set slurm.bin_dir") from None
        except subprocess.TimeoutExpired:
            raise SlurmUnavailable(f"'{name}' did not answer within {timeout:g} s: the Slurm controller "
                                   "(slurmctld) is overloaded or unreachable") from None
        if proc.returncode != 0 and _UNREACHABLE.search(proc.stderr):
            raise SlurmUnavailable(f"the Slurm controller does not answer ({name}: {_last(proc.stderr)}); start "
                                   "slurmctld or check SLURM_CONF / slurm.slurm_conf")
        return proc

    def nodes(self, partition: str | None) -> list[SlurmNode]:
        proc = self.call("sinfo", "-h", "-N", "-o", "%N|%c|%m|%T|%G|%P")
        if proc.returncode != 0:
            raise SlurmUnavailable(f"sinfo failed: {_last(proc.stderr)}")
        return parse_sinfo(proc.stdout, partition)

    def queue(self, prefix: str) -> dict[str, SlurmJob]:
        """This user's jobs named ``prefix…`` (finished ones too, while the controller remembers them)."""
        proc = self.call("squeue", "--me", "-h", "-t", "all", "-O",
                         "JobID:|,State:|,Reason:|,NodeList:|,exit_code:|,Name:|")
        if proc.returncode != 0:
            raise SlurmUnavailable(f"squeue failed: {_last(proc.stderr)}")
        return parse_squeue(proc.stdout, prefix)

    def ended(self, job_ids: list[str], prefix: str) -> tuple[dict[str, SlurmJob], str | None]:
        """How jobs that ``squeue`` no longer lists (older than the controller's MinJobAge) ended, from Slurm's
        records: ``sacct`` (the accounting database, slurmdbd), else ``sacct -c`` (the job completion log,
        ``JobCompType=jobcomp/filetxt``, read at its path on this machine). The jobs named ``prefix…`` found, and
        None, or why no record could be read."""
        fields = ["-X", "-n", "-P", "-o", "JobID,State,ExitCode,NodeList,JobName", "-j", ",".join(job_ids)]
        errors: list[str] = []
        for mode in ([], ["-c"]):
            try:
                proc = self.call("sacct", *mode, *fields, timeout=30.0)
            except SlurmUnavailable as exc:
                return {}, str(exc)
            if proc.returncode == 0:
                return parse_sacct(proc.stdout, prefix), None
            errors.append(f"sacct{' -c' if mode else ''}: {_last(proc.stderr)}")
        return {}, "; ".join(errors)

    def sbatch(self, args: list[str], script: Path) -> str:
        """Submit ``script``; its job id. SlurmRejected when the cluster refuses the job as it is."""
        proc = self.call("sbatch", "--parsable", *args, str(script))
        if proc.returncode != 0:
            raise SlurmRejected(f"Slurm refused the task's job: {_last(proc.stderr)} (sbatch {shlex.join(args)})")
        return proc.stdout.strip().split(";")[0]

    def scancel(self, job_id: str) -> None:
        proc = self.call("scancel", job_id)
        if proc.returncode != 0 and "already completing or completed" not in proc.stderr:
            log.warning("slurm_cancel_failed", slurm_job=job_id, error=_last(proc.stderr))


@dataclass
class SlurmTask:
    """What the executor needs of a task beside its RunSpec: a label, the claim's expiry (unix time), what the
    journal knows of its Slurm job, a way to journal more (``note(**data)``), and a check that raises when the
    claim is no longer this worker's (the pipeline's TaskLost)."""

    label: str
    expiry: float = 0.0
    data: TaskData = field(default_factory=lambda: TaskData())
    note: Callable[..., None] = lambda **_: None
    check: Callable[[], None] = lambda: None


class _Interrupted(Exception):
    """The job ended without running the task to its end, for a reason that is not the app's."""


class SlurmExecutor:
    """Runs tasks as Slurm jobs (see the module's docstring); safe to call from several threads at once.

    ``sandbox`` is the worker's local sandbox: its image checks, its holder image and its judging are reused, so
    a run on the cluster is judged exactly as a local one. ``owner`` is the sandbox's owner label: the jobs of
    this worker are named ``tasknet-<digest of owner>-…`` and its containers labelled ``tasknet.slurm=<owner>``.
    """

    def __init__(self, settings: SlurmSettings, sandbox: Sandbox, *, owner: str,
                 client: SlurmClient | None = None, chain_now: Callable[[], float] = time.time) -> None:
        if settings.shared_dir is None:
            raise ValueError("the Slurm executor needs slurm.shared_dir")
        self.s = settings
        self.sandbox = sandbox
        self.docker: docker.DockerClient = sandbox.client
        self.owner = owner
        self.chain_now = chain_now  # the chain's clock, which claim expiries are measured by
        self.client = client or SlurmClient(settings)
        self.shared: Path = settings.shared_dir
        self.node_shared: Path = settings.node_dir or settings.shared_dir
        tag = hashlib.sha256(owner.encode()).hexdigest()[:10]
        self.prefix = f"tasknet-{tag}-"
        #: the task folders of this worker on the shared storage (workers sharing it never share a folder)
        self.work_dir = self.shared / "tasks" / tag
        self._lock = threading.Lock()
        self._queue: dict[str, SlurmJob] = {}
        self._queue_error: str | None = None
        self._queue_at = -math.inf
        self._nodes: tuple[float, list[SlurmNode]] | None = None
        self._images: set[str] = set()
        self._ours: set[str] = set()  # jobs this worker cancelled (not an interruption from outside)
        self._stopping: str | None = None
        self._unreachable_logged = 0.0

    # -- the cluster ----------------------------------------------------------------------------
    def nodes(self, max_age: float = 5.0) -> list[SlurmNode]:
        """The partition's nodes, read again at most every ``max_age`` seconds (SlurmUnavailable when away)."""
        with self._lock:
            cached = self._nodes
        if cached is not None and time.monotonic() - cached[0] < max_age:
            return cached[1]
        nodes = self.client.nodes(self.s.partition)
        if not nodes:
            which = f"partition '{self.s.partition}'" if self.s.partition else "the default partition"
            raise SlurmUnavailable(f"Slurm lists no node in {which}; set slurm.partition to one 'sinfo' shows")
        with self._lock:
            self._nodes = (time.monotonic(), nodes)
        return nodes

    def capabilities(self) -> Capabilities:
        """What one task may ask for on this cluster (a task is one job on one node): the largest node's cores,
        memory and GPUs; the architecture is this machine's (the nodes' is taken to be the same)."""
        nodes = self.nodes(max_age=0.0)
        return Capabilities(cores=max(n.cpus for n in nodes), memory_mb=max(n.memory_mb for n in nodes),
                            gpus=max(n.gpus for n in nodes), arch=detect().arch)

    def capacity(self) -> int:
        """Tasks the partition can run at once: the CPUs of its nodes that take new jobs (drained, down or not
        responding ones excepted). SlurmUnavailable when the controller does not answer."""
        return sum(n.cpus for n in self.nodes() if n.usable)

    def stop(self, reason: str) -> None:
        """Cancel every job still queued or running (a drain that timed out): their runs raise
        EnvironmentFailure, so that their claims are given back."""
        self._stopping = reason

    # -- one task -------------------------------------------------------------------------------
    def run(self, spec: RunSpec, task: SlurmTask, *, resume: bool = False) -> RunResult:
        """Run ``spec`` as a Slurm job and return how it ended, as :meth:`Sandbox.run` would. With ``resume``,
        first look for the job a previous worker process submitted for it (``task.data``) and follow it."""
        started = time.monotonic()
        paths = _fresh_dirs(spec)
        try:
            image_id = self.sandbox._check_image(spec)
        except _ImageProblem as problem:
            return RunResult(reason=problem.reason, message=str(problem),
                             explanation=_IMAGE_EXPLANATIONS[problem.reason], total_seconds=time.monotonic() - started,
                             output_dir=paths.output, stdout_path=paths.stdout, stderr_path=paths.stderr)
        found = self._adopt(spec, task) if resume else None
        interrupted: str | None = None
        while True:
            run_dir, job_id = found or self._submit(spec, task, image_id)
            found = None
            try:
                self._wait(job_id, run_dir, spec, task)
                break
            except _Interrupted as exc:
                if interrupted is not None:
                    raise EnvironmentFailure(f"the cluster interrupted task {task.label} twice ({interrupted}; then "
                                             f"{exc}): its claim is given back") from exc
                interrupted = str(exc)
                log.warning("slurm_job_interrupted", task=task.label, slurm_job=job_id, why=interrupted,
                            action="submit again once")
        result = self._collect(spec, run_dir, image_id, paths, started)
        log.info("slurm_run", task=task.label, slurm_job=job_id, reason=result.reason.value,
                 exit_code=result.exit_code, run_s=round(result.run_seconds, 3),
                 total_s=round(result.total_seconds, 3), **({} if result.ok else {"why": result.message}))
        return result

    def _adopt(self, spec: RunSpec, task: SlurmTask) -> tuple[Path, str] | None:
        """The job a previous worker process submitted for this task and its folder, when there is one to follow
        or collect: known by the journal's job id, else found by the run's name (submitted, then the worker died
        before journaling its id). None: nothing to adopt (never submitted, or gone without a result)."""
        token = task.data.get("slurm_token")
        if not token:
            return None
        run_dir = spec.output_dir.parent / f"slurm-{token}"
        if not run_dir.is_dir():
            return None
        job_id = task.data.get("slurm_job")
        if (run_dir / "result.env").exists():
            log.info("slurm_job_adopted", task=task.label, slurm_job=job_id, state="finished")
            return run_dir, str(job_id or "")
        if not job_id:
            queue, error = self._look(force=True)
            if error is not None:
                raise SlurmUnavailable(f"cannot look for the job of task {task.label} in the queue: {error}")
            named = [j for j in queue.values() if j.name == self._name(task, token)]
            if not named:
                return None
            job_id = named[0].job_id
            task.note(slurm_job=job_id)
        log.info("slurm_job_adopted", task=task.label, slurm_job=job_id)
        return run_dir, str(job_id)

    def _name(self, task: SlurmTask, token: str) -> str:
        return f"{self.prefix}{task.label}-{token}"

    def _submit(self, spec: RunSpec, task: SlurmTask, image_id: str) -> tuple[Path, str]:
        """Write the run's folder and script, journal its token, submit it; its folder and job id."""
        folder = spec.output_dir.parent
        try:
            node_folder = self.node_shared / folder.resolve().relative_to(self.shared.resolve())
        except ValueError:
            raise SandboxError(f"the task folder {folder} is not under slurm.shared_dir {self.shared}; the "
                               "pipeline's work folder must be on the shared storage") from None
        if self._stopping is not None:
            raise EnvironmentFailure(f"the worker stops ({self._stopping}): task {task.label} is not submitted")
        token = uuid.uuid4().hex[:12]
        run_dir = folder / f"slurm-{token}"
        run_dir.mkdir(parents=True)
        holder_id = self.sandbox._ensure_holder()
        for image in (holder_id, image_id):
            self._share_image(image)
        if spec.input_dir is not None:
            _make_readable(spec.input_dir)
        script = run_dir / "job.sh"
        script.write_text(job_script(spec, task=task.label, run=run_dir.name, name=f"tasknet-{token}",
                                     node_folder=node_folder, image_id=image_id,
                                     image_tar=self._node_image_path(image_id), holder_id=holder_id,
                                     holder_tar=self._node_image_path(holder_id), user=self.sandbox.user,
                                     owner=self.owner))
        task.note(slurm_token=token, slurm_job=None, slurm_node=None)
        job_id = self.client.sbatch(self._request(spec, task, token), script)
        task.note(slurm_job=job_id)
        log.info("slurm_submitted", task=task.label, slurm_job=job_id, run=run_dir.name)
        return run_dir, job_id

    def _request(self, spec: RunSpec, task: SlurmTask, token: str) -> list[str]:
        """sbatch's options: the task's cores, memory and wall clock become the job's request."""
        lim = spec.limits
        args = [f"--job-name={self._name(task, token)}", "--output=/dev/null", "--error=/dev/null", "--chdir=/",
                "--nodes=1", "--ntasks=1", f"--cpus-per-task={max(1, math.ceil(lim.cpus))}",
                f"--mem={math.ceil((lim.ram_bytes + HOLDER_MEMORY) / MiB)}",
                f"--time={math.ceil((lim.wall_seconds + self.s.time_margin_s) / 60)}", "--no-requeue",
                "--export=NONE"]
        if self.s.partition:
            args.append(f"--partition={self.s.partition}")
        return args + list(self.s.sbatch_args)

    def _node_image_path(self, image_id: str) -> Path:
        return self.node_shared / "images" / f"{image_id.removeprefix('sha256:')}.tar"

    def _share_image(self, image_id: str) -> None:
        """``docker save`` the image into the shared folder once (nodes that lack it load it from there)."""
        path = self.shared / "images" / f"{image_id.removeprefix('sha256:')}.tar"
        if image_id in self._images and path.exists():
            return
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.partial")
            try:
                image = self.sandbox._api(lambda: self.docker.images.get(image_id), "look up the image to share")
                with partial.open("wb") as fh:
                    for chunk in image.save(named=False):
                        fh.write(chunk)
                os.replace(partial, path)
            finally:
                partial.unlink(missing_ok=True)
            log.info("slurm_image_shared", image=image_id, path=str(path), bytes=path.stat().st_size)
        self._images.add(image_id)

    # -- following the job ----------------------------------------------------------------------
    def _look(self, force: bool = False, since: float = -math.inf) -> tuple[dict[str, SlurmJob], str | None]:
        """The queue's view of this worker's jobs, read at most once per ``poll_s`` for all the tasks waiting,
        and read again when the last reading began before ``since`` (a job submitted since is not in it)."""
        with self._lock:
            if force or self._queue_at < since or time.monotonic() - self._queue_at >= self.s.poll_s:
                at = time.monotonic()
                try:
                    self._queue, self._queue_error = self.client.queue(self.prefix), None
                except SlurmUnavailable as exc:
                    self._queue_error = str(exc)
                self._queue_at = at
            return self._queue, self._queue_error

    def _wait(self, job_id: str, run_dir: Path, spec: RunSpec, task: SlurmTask) -> None:
        """Until the job's result is in its folder. Raises _Interrupted (run it again), EnvironmentFailure (give
        the claim back), SandboxError, or what ``task.check`` raises; the job is cancelled when it raises."""
        result = run_dir / "result.env"
        checked = since = time.monotonic()  # a reading of the queue begun before this may not know the job yet
        node = task.data.get("slurm_node")
        done = False
        try:
            while not result.exists():
                if self._stopping is not None:
                    raise EnvironmentFailure(f"the worker stops ({self._stopping}): Slurm job {job_id} of task "
                                             f"{task.label} is cancelled and its claim given back")
                if not job_id:  # finished before a restart, its id never journaled, and its result gone
                    raise _Interrupted("the job's result is gone")
                queue, error = self._look(since=since)
                job = queue.get(job_id)
                if error is not None:
                    self._unreachable(error)
                elif job is None:
                    done = True
                    if self._appears(result):
                        break
                    self._forgotten(job_id, run_dir, task)
                elif job.state in TERMINAL:
                    done = True
                    if self._appears(result):
                        break
                    self._ended(job, run_dir, task)
                else:
                    if job.node and job.node != node:
                        node = job.node
                        task.note(slurm_node=node)
                    if job.state == "PENDING":
                        self._pending(job, spec, task)
                if time.monotonic() - checked > CLAIM_CHECK_S:
                    task.check()
                    checked = time.monotonic()
                time.sleep(min(0.2, self.s.poll_s / 2))
        except BaseException:
            if not done and job_id:
                self._cancel(job_id)
            raise

    def _pending(self, job: SlurmJob, spec: RunSpec, task: SlurmTask) -> None:
        """A job still queued: refused as it is (its reason never resolves), or waiting too long to start and
        still end before its claim's expiry: raise, so that the claim is given back while it is live."""
        if job.reason in HOPELESS or job.reason.startswith("QOSMax"):
            raise SlurmRejected(f"Slurm will not start job {job.job_id} of task {task.label} as it is (pending: "
                                f"{job.reason}): the task asks more than the partition allows")
        if task.expiry and self.chain_now() + spec.limits.wall_seconds + self.s.start_margin_s > task.expiry:
            raise EnvironmentFailure(f"Slurm job {job.job_id} of task {task.label} is still queued ({job.reason}) "
                                     f"and could no longer end before its claim expires at {int(task.expiry)}: the "
                                     "cluster is full, drained or down; the claim is given back")

    def _forgotten(self, job_id: str, run_dir: Path, task: SlurmTask) -> NoReturn:
        """A job ``squeue`` no longer lists that left no result (it ended longer than MinJobAge ago, e.g. while
        this worker was down): raise what its end means, as Slurm's records (sacct) tell it; with no record, it
        was interrupted (run it again)."""
        ended, why = self.client.ended([job_id], self.prefix)
        job = ended.get(job_id)
        if job is not None and job.name == self._name(task, run_dir.name.removeprefix("slurm-")) \
                and job.state in TERMINAL:
            log.info("slurm_job_from_accounting", task=task.label, slurm_job=job_id, state=job.state,
                     exit_code=job.exit_code, node=job.node)
            self._ended(job, run_dir, task)
        raise _Interrupted(f"Slurm no longer knows job {job_id}: squeue has forgotten it and "
                           f"{why or 'sacct has no record of it'}; it left no result")

    def _ended(self, job: SlurmJob, run_dir: Path, task: SlurmTask) -> NoReturn:
        """A job that ended without writing its result: raise what it means."""
        where = f"node {job.node}" if job.node else "its node"
        if job.state in INTERRUPTED and not (job.state == "CANCELLED" and job.job_id in self._ours):
            raise _Interrupted(f"Slurm job {job.job_id} ended {job.state} on {where}, which this worker did not ask")
        if job.exit_code == EXIT_NO_FOLDER:
            raise EnvironmentFailure(f"the shared folder {self.node_shared} (task folder of {task.label}) is missing "
                                     f"on {where} of Slurm job {job.job_id}: mount the shared storage there at that "
                                     "path, or set slurm.node_dir to the path the nodes see it at")
        if job.exit_code == EXIT_NODE_FAILED:
            why = _read(run_dir / "error") or "see job.log"
            raise EnvironmentFailure(f"Slurm job {job.job_id} of task {task.label} failed on {where}: {why}")
        if job.state in ("TIMEOUT", "DEADLINE", "OUT_OF_MEMORY"):
            raise EnvironmentFailure(f"Slurm ended job {job.job_id} of task {task.label} on {where} ({job.state}) "
                                     "before the task's own limits did: the cluster's limits are tighter than the "
                                     "job's request")
        raise SandboxError(f"Slurm job {job.job_id} of task {task.label} ended {job.state} (exit {job.exit_code}, "
                           f"signal {job.signal}) on {where} without a result; see {run_dir / 'job.log'}")

    def _appears(self, result: Path) -> bool:
        """Whether ``result`` shows up within RESULT_GRACE_S (the shared storage may show it late)."""
        end = time.monotonic() + RESULT_GRACE_S
        while True:
            with contextlib.suppress(OSError):
                if result.name in os.listdir(result.parent):  # a listing revalidates NFS's cached attributes
                    return True
            if time.monotonic() > end:
                return False
            time.sleep(0.25)

    def _cancel(self, job_id: str) -> None:
        self._ours.add(job_id)
        try:
            self.client.scancel(job_id)
            log.info("slurm_cancelled", slurm_job=job_id)
        except SlurmUnavailable as exc:
            log.error("slurm_cancel_failed", slurm_job=job_id, error=str(exc),
                      hint="cancel it by hand once slurmctld is back ('scancel JOBID')")

    def _unreachable(self, error: str) -> None:
        if time.monotonic() - self._unreachable_logged > 30.0:
            self._unreachable_logged = time.monotonic()
            log.warning("slurm_unreachable", error=error, action="jobs keep running on their nodes; waiting")

    # -- collecting the run ---------------------------------------------------------------------
    def _collect(self, spec: RunSpec, run_dir: Path, image_id: str, paths: _Paths, started: float) -> RunResult:
        """Turn the node's files into the sandbox's outcome and copy, then judge them with the sandbox's code."""
        env = _read_env(run_dir / "result.env")
        if env.get("image") == "missing":
            raise EnvironmentFailure(f"the app's image {image_id} is neither on node {env.get('node', '?')} nor "
                                     f"loadable from {self._node_image_path(image_id)}")
        o = _Outcome()
        o.start_error = _read(run_dir / "start_error") or None
        o.exit_code = None if o.start_error is not None else int(env.get("exit_code", "-1"))
        o.run_seconds = int(env.get("run_us", "0")) / 1e6
        o.timed_out, o.pids_hit = env.get("timed_out") == "1", env.get("pids_hit") == "1"
        o.oom_killed = env.get("oom") == "true"
        o.outside_signal = env.get("signal") or None
        for name, dest in (("stdout", paths.stdout), ("stderr", paths.stderr)):
            kept = run_dir / name
            if kept.exists() and o.start_error is None:
                shutil.copyfile(kept, dest)
            more = _read(run_dir / f"{name}.more")
            seen = dest.stat().st_size + (int(more) if more.isdigit() else 0)
            if name == "stdout":
                o.stdout_bytes = seen
            else:
                o.stderr_bytes = seen
        copied = self._extract(spec, run_dir, env)
        return self.sandbox._judge(spec, image_id, o, copied, paths, time.monotonic() - started)

    def _extract(self, spec: RunSpec, run_dir: Path, env: dict[str, str]) -> _Copied:
        """The output archive the holder wrote, extracted as the sandbox extracts its stream (same caps)."""
        lim = spec.limits
        archive = run_dir / "out.tar"
        if not archive.exists():
            return _Copied(ExtractStats(), 0)  # the app never started: nothing to copy
        cut = archive.stat().st_size >= tar_cap(lim)
        names = _read_bytes(run_dir / "sockets").split(b"\0")
        sockets = [n.removeprefix(b"/out/").decode("utf-8", "surrogateescape") for n in names if n]
        too_large = OutputProblem(reason=status.OUTPUT_TOO_LARGE, sentence="the output is larger than the output cap "
                                  "allows")
        try:
            with archive.open("rb") as fh, open_tar_stream(fh) as tar:
                stats = extract_tar(tar, spec.output_dir, max_bytes=lim.output_bytes, max_files=lim.output_files,
                                    max_depth=MAX_DEPTH, max_path_bytes=MAX_PATH_BYTES, strict=False,
                                    others=((name, "socket") for name in sockets))
        except tarfile.TarError as exc:
            if not cut:
                raise SandboxError(f"the output archive {archive} from the node is unreadable ({exc})") from exc
            return _Copied(ExtractStats(over_cap=True, problem=too_large), 0)
        except OSError as exc:
            raise SandboxError(f"cannot write the task's output into {spec.output_dir} ({exc}); free space on "
                               "this worker's disk — the task is retried") from exc
        if stats.over_cap:
            return _Copied(stats, 0)
        if cut:  # cut at the cap, yet read to its end: the cut fell in the end blocks
            return _Copied(stats.model_copy(update={"over_cap": True, "problem": too_large}), 0)
        tar_status = int(env.get("tar_status", "0"))
        error = _read(run_dir / "tar.err").strip().splitlines() if tar_status else []
        return _Copied(stats, tar_status, error[-1] if error else "")


def tar_cap(limits: Limits) -> int:
    """The most bytes a legitimate output archive can take: the volume's bytes, and per entry (one past the cap)
    a header, a long name and a long link target with their headers, and the data's padding; then the end blocks.
    The node cuts the archive there: an app's sparse file claiming terabytes costs no more."""
    per_entry = 512 + (512 + 4096) + (512 + 4096) + 512
    return _volume_bytes(limits) + (limits.output_files + 2) * per_entry + 1024


def _fresh_dirs(spec: RunSpec) -> _Paths:
    """Empty log files and an empty output folder, as :meth:`Sandbox.run` prepares them."""
    paths = _fresh_paths(spec)
    if spec.input_dir is not None and not spec.input_dir.is_dir():
        raise SandboxError(f"input folder {spec.input_dir} does not exist; stage the inputs first")
    return paths


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in _read(path).splitlines() if "=" in line)


def _last(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip()[:500] if lines else "no message"


# -- the job script ---------------------------------------------------------------------------------
def confinement_flags(user: str, labels: dict[str, str]) -> list[str]:
    """``oracle.images.confinement`` as ``docker create`` flags (the network and hostname are the caller's)."""
    flags = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--user", user,
             "--ulimit", "core=0:0", "--log-driver", "none", "--ipc", "private"]
    for key, value in labels.items():
        flags += ["--label", f"{key}={value}"]
    return flags


def app_flags(limits: Limits, user: str, labels: dict[str, str], env: dict[str, str]) -> list[str]:
    """``Sandbox._create_app``'s container as ``docker create`` flags (the mounts and network are the script's)."""
    flags = confinement_flags(user, {**labels, "tasknet.role": "app"})
    for key, value in {"HOME": "/tmp", "TASKNET_INPUT": "/in", "TASKNET_OUTPUT": "/out", **env}.items():
        flags += ["-e", f"{key}={value}"]
    return flags + ["--workdir", "/out", "--tmpfs", f"/tmp:rw,nosuid,nodev,size={limits.tmp_bytes},mode=1777",
                    "--shm-size", str(limits.tmp_bytes), "--pids-limit", str(limits.pids),
                    "--memory", str(limits.ram_bytes), "--memory-swap", str(limits.ram_bytes),
                    "--cpus", f"{limits.cpus:g}"]


def holder_flags(user: str, labels: dict[str, str]) -> list[str]:
    """``Sandbox._new_slot``'s holder container as ``docker run`` flags."""
    return confinement_flags(user, {**labels, "tasknet.role": "holder"}) + [
        "--network", "none", "--hostname", "tasknet", "--pids-limit", "16", "--memory", str(HOLDER_MEMORY),
        "--memory-swap", str(HOLDER_MEMORY), "--cpus", "1", "--shm-size", str(4096 * 16)]


def volume_flags(limits: Limits, gid: str, labels: dict[str, str]) -> list[str]:
    """``Sandbox._new_slot``'s size-capped tmpfs output volume as ``docker volume create`` flags."""
    options = (f"size={_volume_bytes(limits)},nr_inodes={limits.output_files + 2},uid=0,gid={gid},"
               f"mode={_OUT_MODE},nosuid,nodev")
    flags = ["--driver", "local", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", f"o={options}"]
    for key, value in labels.items():
        flags += ["--label", f"{key}={value}"]
    return flags


_SCRIPT = r"""#!/bin/bash
# Tasknet task @TASK@, run @RUN@: the confined container of worker/_sandbox.py, on this Slurm node.
# Written by worker/_slurm.py. Exit: 0 the run is over (result.env says how), 97 the shared folder is missing on
# this node, 98 this node's Docker engine failed (the file 'error' says why), 143 cancelled.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
D=@FOLDER@
R="$D"/@RUN@
[ -d "$R" ] || exit 97
exec >>"$R/job.log" 2>&1
node=${SLURMD_NODENAME:-$(hostname)}
APP=@NAME@ HOLD=@NAME@-out VOL=@NAME@-out
T=$(mktemp -d) || exit 98
fail() { printf '%s\n' "$*" >"$R/error"; exit 98; }
cleanup() { docker rm -f "$APP" "$HOLD" >/dev/null 2>&1; docker volume rm -f "$VOL" >/dev/null 2>&1; rm -rf "$T"; }
trap cleanup EXIT
trap 'exit 143' TERM INT HUP
have() { [ "$(docker image inspect -f '{{.Id}}' "$1" 2>/dev/null)" = "$1" ]; }
load() { have "$1" || { [ -f "$2" ] && docker load -q -i "$2" >/dev/null; have "$1"; }; }
docker version -f '{{.Server.Version}}' >/dev/null 2>"$T/err" \
  || fail "the Docker engine on node $node does not answer: $(tail -n1 "$T/err")"
load @HOLDER@ @HOLDER_TAR@ || fail "the output holder image @HOLDER@ cannot be loaded on node $node"
if ! load @IMAGE@ @IMAGE_TAR@; then
  printf 'image=missing\nnode=%s\n' "$node" >"$R/result.tmp" && mv "$R/result.tmp" "$R/result.env"; exit 0
fi
docker volume create @VOLUME@ "$VOL" >/dev/null 2>"$T/err" \
  || fail "cannot create the output volume on node $node: $(tail -n1 "$T/err")"
docker run -d --name "$HOLD" @HOLDER_FLAGS@ --mount "type=volume,src=$VOL,dst=/out,volume-nocopy" @HOLDER@ \
  sleep 2147483647 >/dev/null 2>"$T/err" || fail "cannot start the output holder on node $node: $(tail -n1 "$T/err")"
cid=$(docker create --name "$APP" @APP_FLAGS@ --network "container:$HOLD" \
  --mount "type=volume,src=$VOL,dst=/out,volume-nocopy" @INPUT@ @IMAGE@ @COMMAND@ 2>"$T/err") \
  || fail "cannot create the task container on node $node: $(tail -n1 "$T/err")"
mkfifo "$T/o" "$T/e" "$T/tick" || fail "cannot make fifos in $T on node $node"
{ head -c @LOG@ >"$R/stdout"; wc -c >"$R/stdout.more"; } <"$T/o" & po=$!
{ head -c @LOG@ >"$R/stderr"; wc -c >"$R/stderr.more"; } <"$T/e" & pe=$!
exec {tick}<>"$T/tick"
t0=${EPOCHREALTIME/./}
docker start -a "$APP" >"$T/o" 2>"$T/e" & att=$!
deadline=$(( t0 + @WALL_US@ )) timed_out=0 pids_hit=0 ev=
while kill -0 "$att" 2>/dev/null; do
  if (( ${EPOCHREALTIME/./} >= deadline )); then timed_out=1; docker kill "$APP" >/dev/null 2>&1; break; fi
  if [ -z "$ev" ]; then
    for p in pids/docker/$cid pids/system.slice/docker-$cid.scope docker/$cid system.slice/docker-$cid.scope; do
      if [ -f "/sys/fs/cgroup/$p/pids.events" ]; then ev=/sys/fs/cgroup/$p/pids.events; break; fi
    done
  fi
  if [ -n "$ev" ]; then
    while read -r k v; do if [ "$k" = max ] && [ "$v" != 0 ]; then pids_hit=1; fi; done 2>/dev/null <"$ev"
    if [ "$pids_hit" = 1 ]; then docker kill "$APP" >/dev/null 2>&1; break; fi
  fi
  read -r -t 0.05 -u "$tick" _ || true
done
wait "$att"
code=$(docker wait "$APP") || fail "the task container vanished on node $node"
t1=${EPOCHREALTIME/./}
wait "$po" "$pe"
state=$(docker inspect -f '{{.State.OOMKilled}} {{.State.Error}}' "$APP") \
  || fail "cannot inspect the task container on node $node"
if [ -n "${state#* }" ]; then printf '%s\n' "${state#* }" >"$R/start_error"; fi
state=${state%% *}
sig=
if [ "$code" != 0 ] && [ "$timed_out$pids_hit" = 00 ] && [ "$state" != true ] && [ ! -s "$R/start_error" ]; then
  sig=$(docker events --since "$(( t0 / 1000000 - 300 ))" --until "$(date +%s.%N)" --filter "container=$cid" \
        --filter event=kill --format '{{index .Actor.Attributes "signal"}}' 2>/dev/null | head -n1 | tr -cd '0-9A-Z')
fi
docker exec "$HOLD" sh -c 'find /out -mindepth 1 -maxdepth 1 -exec chmod -R u+rwX {} + 2>/dev/null
  find /out -type s -print0 2>/dev/null; exit 0' >"$R/sockets" 2>"$T/err" \
  || fail "the output holder on node $node stopped answering: $(tail -n1 "$T/err")"
docker exec "$HOLD" tar -cf - -C /out . 2>"$R/tar.err" | head -c @TAR_CAP@ >"$R/out.tar"
tar_status=${PIPESTATUS[0]}
[ "$(docker inspect -f '{{.State.Running}}' "$HOLD" 2>/dev/null)" = true ] \
  || fail "the output holder on node $node stopped before the output was copied out: the output is lost"
# the containers and the volume are gone before the result shows: a collected run leaves nothing on its node
cleanup; trap - EXIT
printf 'exit_code=%s\noom=%s\ntimed_out=%s\npids_hit=%s\nsignal=%s\nrun_us=%s\ntar_status=%s\nnode=%s\n' \
  "$code" "$state" "$timed_out" "$pids_hit" "$sig" "$(( t1 - t0 ))" "$tar_status" "$node" >"$R/result.tmp" \
  && mv "$R/result.tmp" "$R/result.env"
"""


def job_script(spec: RunSpec, *, task: str, run: str, name: str, node_folder: Path, image_id: str, image_tar: Path,
               holder_id: str, holder_tar: Path, user: str, owner: str) -> str:
    """The batch script that runs ``spec`` on a node, confined as :class:`Sandbox` runs it (every value quoted)."""
    q = shlex.quote
    lim = spec.limits
    labels = {"tasknet.slurm": owner, "tasknet.run": run, "tasknet.task": spec.task}
    gid = user.split(":")[1] if ":" in user else user
    values = {
        "TASK": task.replace("\n", " "), "RUN": q(run), "FOLDER": q(str(node_folder)), "NAME": q(name),
        "HOLDER": q(holder_id), "HOLDER_TAR": q(str(holder_tar)), "IMAGE": q(image_id), "IMAGE_TAR": q(str(image_tar)),
        "VOLUME": shlex.join(volume_flags(lim, gid, labels)), "HOLDER_FLAGS": shlex.join(holder_flags(user, labels)),
        "APP_FLAGS": shlex.join(app_flags(lim, user, labels, spec.env)),
        "INPUT": '--mount "type=bind,src=$D/in,dst=/in,readonly"' if spec.input_dir is not None else "",
        "COMMAND": shlex.join(spec.command) if spec.command else "", "LOG": str(lim.log_bytes),
        "WALL_US": str(int(lim.wall_seconds * 1_000_000)), "TAR_CAP": str(tar_cap(lim)),
    }
    return re.sub(r"@([A-Z_]+)@", lambda m: values[m.group(1)], _SCRIPT)
