"""One task, step by step: inputs -> confined run -> canonical archive -> IPFS -> submit or commit.

Each step is journaled before the next starts; ``run`` resumes a task from its last recorded step, so a crash
at any point neither loses a result nor gets the worker slashed for its own restart.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import docker
from pydantic import ValidationError

from oracle import event_args as ea
from oracle import get_logger
from oracle.archive import PackedResult, encrypt_file, escape_name, pack_result, sha256_file, unsafe_name
from oracle.exceptions import (
    ContentNotJson,
    ContentTooLarge,
    IpfsError,
    IpfsUnavailable,
    TasknetError,
    TransactionReverted,
)
from oracle.images import (
    ImageDigestMismatch,
    ImageError,
    image_exists,
    load_image,
    pull_by_digest,
    verify_image_digest,
)
from oracle.ipfs import IpfsClient
from oracle.market import AppView, JobView, Market, MarketParams, TaskStatus
from oracle.models import AppMetadata, InputsDocument
from oracle.protocol import Eip712Domain, commitment, lane_key, new_salt, task_id
from oracle.status import SKIPPED_FILE, STATUS_FILE, format_status
from oracle.tx import TxSender

from ._cache import InputCache
from ._canonical import CanonicalizeInvalid, Canonicalizer, StepOutcome
from ._canonical import pack as pack_canonicalized
from ._checkpoint import Checkpoints
from ._credible import CredibleLeases, is_credible_lease
from ._gate import Size
from ._gpus import GpuAllocator
from ._journal import DatasetFields, Journal, Step, TaskRecord
from ._lanes import LaneRounds, is_lane, lane_of
from ._leases import LeaseOp, lease_of
from ._relay import RelayClient, RelayError
from ._sandbox import Limits, Reason, RunResult, RunSpec, Sandbox
from ._settings import WorkerSettings
from ._slurm import SlurmExecutor, SlurmTask
from .exceptions import (
    EnvironmentFailure,
    InputCorrupt,
    InputError,
    InputsDocumentInvalid,
    InputTooLarge,
    InputUnavailable,
)

log = get_logger("worker.pipeline")

#: Gas for a transaction gated by time (a window or a claim that ran out): it is sent without a simulation,
#: because simulating runs against the latest block, whose timestamp an idle automine devnet never moves on,
#: while the transaction itself lands in a new block stamped with the current time.
TIME_GATED_GAS = 2_000_000

#: seconds a broken inputs document is remembered as broken (not fetched again)
DOC_ERROR_TTL = 300.0

#: stdout/stderr kept per task: part of the archive, hence of the digest, so it is a protocol constant
LOG_CAP = 1 << 20


#: reasons whose result archive carries no output: the output was refused (its content decides, whatever the
#: order it was read in), or the app did not produce what it declared
NO_OUTPUT = frozenset({Reason.OUTPUT_UNSAFE, Reason.OUTPUT_TOO_DEEP, Reason.OUTPUT_TOO_LARGE,
                       Reason.OUTPUT_TOO_MANY_FILES, Reason.MISSING_DETERMINISTIC_FILE, Reason.CHECKPOINT_TOO_LARGE})


def _check_deterministic_file(run: RunResult, app: AppView) -> RunResult:
    """A successful run of an app that declares a deterministic file must have written it (a regular file inside
    the output folder); otherwise the run failed with ``missing-deterministic-file``, as for every replica."""
    declared = app.deterministic_file
    if not run.ok or not declared:
        return run
    rel = PurePosixPath(declared)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or unsafe_name(declared) is not None:
        sentence = (f"the app declares '{escape_name(declared)}' as its deterministic file, which is not a "
                    "relative path inside the output folder")
    else:
        try:
            found = stat.S_ISREG(os.lstat(run.output_dir.joinpath(*rel.parts)).st_mode)
        except OSError:
            found = False
        if found:
            return run
        sentence = (f"the app exited with code {run.exit_code} but did not write its declared deterministic file "
                    f"'{escape_name(declared)}'")
    return run.model_copy(update={"reason": Reason.MISSING_DETERMINISTIC_FILE, "message": sentence,
                                  "explanation": sentence})


class TaskLost(TasknetError):
    """Our claim on the task is gone (expired, reorged away, or the task settled without us)."""


class Pipeline:
    def __init__(self, settings: WorkerSettings, market: Market, sender: TxSender, ipfs: IpfsClient,
                 cache: InputCache, sandbox: Sandbox, docker_client: docker.DockerClient, journal: Journal,
                 slurm: SlurmExecutor | None = None) -> None:
        self.s = settings
        self.market = market
        self.sender = sender
        self.ipfs = ipfs
        self.cache = cache
        self.sandbox = sandbox
        self.docker = docker_client
        self.journal = journal
        #: with executor 'slurm', runs go to the cluster (task folders on its shared storage) instead of the sandbox
        self.slurm = slurm
        self.me = sender.address
        #: set by the daemon, which holds uploaded R = 1 results and submits them together (submit_many; see
        #: worker/_batching.py): ``run`` then stops at UPLOADED. False: ``run`` submits each result itself.
        self.hold_results = False
        self.relay: RelayClient | None = None
        #: set by the daemon: the GPUs it lends, handed to the tasks that ask for them while they run
        self.gpus: GpuAllocator | None = None
        if settings.relay_url:
            self.relay = RelayClient(settings.relay_url, sender.sender,
                                     Eip712Domain(chain_id=market.chain_id, verifying_contract=market.address),
                                     timeout=settings.relay_timeout_s)
        self.work = slurm.work_dir if slurm is not None else settings.state_dir / "tasks"
        #: each task's /checkpoint folder, and the pauses the daemon asked for (see worker/_checkpoint.py)
        self.checkpoints = Checkpoints(settings.checkpoint, settings.state_dir / "checkpoints", docker_client,
                                       getattr(sandbox, "owner", "default"),
                                       stop_reused=getattr(sandbox, "stop_reused", None))
        self._docs: dict[str, InputsDocument] = {}
        self._doc_errors: dict[tuple[int, str], tuple[InputError, float]] = {}  # (job, cid) -> (error, until)
        self._images_ok: set[str] = set()
        #: a lock per image being fetched or checked (:meth:`_ensure_image`), and the lock of that map
        self._image_locks: dict[str, threading.Lock] = {}
        self._image_locks_guard = threading.Lock()
        self._canon = Canonicalizer(sandbox, docker_client)
        self._fee_bps: dict[int, int] = {}
        self._params: tuple[float, MarketParams] | None = None
        #: commits and reveals this worker's credible leases (credibility mode; worker/_credible.py)
        self.credible = CredibleLeases(self)
        #: commits, reveals, settles or splits this worker's lanes (R > 1; worker/_lanes.py)
        self.lanes = LaneRounds(self)
        #: (R > 1) chain time each reveal collected by :meth:`advance` must land by, by task key (for the hold rule)
        self.reveal_deadlines: dict[str, int] = {}

    # -- entry ------------------------------------------------------------------------------------
    def run(self, rec: TaskRecord) -> TaskRecord:
        """Drive ``rec`` as far as this worker can alone (up to DONE for R = 1, UPLOADED for R > 1)."""
        job = JobView.model_validate(rec.data["job"])
        bound = log.bind(job_id=job.job_id, task_index=rec.task_index)
        try:
            if rec.step < Step.UPLOADED:
                self._check_claim(job, rec)
                rec = self._produce(job, AppView.model_validate(rec.data["app"]), rec)
            if job.replication == 1 and rec.step == Step.UPLOADED and (self.relay or not self.hold_results):
                rec = self._submit(job, rec)
            # else R = 1, journaled as UPLOADED: the daemon holds it and submits it with others (submit_many)
            # R > 1: the daemon commits the uploaded replicas it holds together (commit_many)
        except TaskLost as exc:
            bound.warning("task_lost", reason=str(exc))
            rec = self.journal.record(job.job_id, rec.task_index, Step.LOST, note=str(exc), reason=str(exc))
        except BaseException:
            # the daemon retries the task (from a fresh folder) or gives it up: either way its folder is not needed
            self.cleanup(rec)
            raise
        return rec

    # -- producing the result -----------------------------------------------------------------------
    def _produce(self, job: JobView, app: AppView, rec: TaskRecord) -> TaskRecord:
        index = rec.task_index
        folder, dirs, resume = self._task_dirs(job, rec)
        run: RunResult | None = None
        error: str | None = None
        canon: StepOutcome | None = None
        try:
            if resume:  # the inputs are in place (its job may be reading them): only its arguments are needed
                task_spec = self._inputs_doc(job.inputs_cid, job.job_id).task(index)
                command, env = task_spec.args, task_spec.env
            else:
                command, env = self._prepare_inputs(job, index, dirs["in"], rec.data.get("dataset"))
                self.journal.record(job.job_id, index, Step.INPUTS_READY)
            self._ensure_image(app)
            step = self._canon.step_of(app.image_digest)  # declared by the pinned image's labels (oracle.canonical)
            run = self._execute(job, app, command, dirs, env, rec, resume)
            if run.killed_from_outside:
                # a signal the engine delivered that none of our limits sent (docker kill or stop, an engine
                # shutdown): not the app's answer, and publishing it would get an honest worker outvoted. Run it
                # once more; a second kill is published as it is. An app that exits 137 (or SIGKILLs itself) left
                # no such record: that is its answer, run once (see Sandbox._signal_from_outside).
                log.warning("task_killed_from_outside", exit_code=run.exit_code, why=run.message,
                            action="run again once")
                for d in (dirs["out"], dirs["logs"]):
                    shutil.rmtree(d, ignore_errors=True)
                    d.mkdir(parents=True)
                run = self._execute(job, app, command, dirs, env, rec)
            if step is None:
                run = _check_deterministic_file(run, app)
            else:  # canonicalise the raw output: what the step writes is digested (worker/_canonical.py)
                canon = self._canon.run(step, app.image_digest, run, self._limits(job), folder, app.deterministic_file)
        except (InputUnavailable, InputTooLarge) as exc:
            # no reachable node provides an input, or it exceeds this worker's own caps: this worker's view of the
            # network and its settings, not the task's answer (another worker may well run it)
            raise EnvironmentFailure(f"{type(exc).__name__}: {exc}".splitlines()[0][:2000]) from exc
        except ImageError as exc:
            if isinstance(exc, ImageDigestMismatch):  # the image served is not the one pinned: every worker sees it
                error = f"{type(exc).__name__}: {exc}".splitlines()[0][:2000]
            else:  # no registry or archive this worker can reach serves the image
                raise EnvironmentFailure(f"{type(exc).__name__}: {exc}".splitlines()[0][:2000]) from exc
        except (InputError, ValidationError, CanonicalizeInvalid) as exc:
            error = f"{type(exc).__name__}: {exc}".splitlines()[0][:2000]
        except IpfsUnavailable:
            raise  # transient: the daemon retries the task later
        except IpfsError as exc:
            error = f"{type(exc).__name__}: {exc}"[:2000]
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise EnvironmentFailure(f"the task's inputs do not fit in this worker's disk ({exc.strerror} in "
                                     f"{self.work.parent}); the worker's cache cap is larger than its free disk"
                                     ) from exc
        reason = canon.reason if canon is not None else run.reason.value if run else "input-error"
        rec = self.journal.record(job.job_id, index, Step.RAN, reason=reason,
                                  exit_code=canon.exit_code if canon else run.exit_code if run else None, error=error,
                                  run_seconds=run.run_seconds if run else 0.0)
        return self._publish(job, app, rec, dirs, run, error, canon)

    def _task_dirs(self, job: JobView, rec: TaskRecord) -> tuple[Path, dict[str, Path], bool]:
        """The task's folder and its fresh ``in``, ``out`` and ``logs``, and whether it resumes a Slurm job a
        previous process submitted (then followed, or its result collected, never rerun: its inputs are kept)."""
        folder = self.work / f"{job.job_id}-{rec.task_index}"
        resume = self.slurm is not None and bool(rec.data.get("slurm_token")) and (folder / "in").is_dir()
        dirs = {name: folder / name for name in ("in", "out", "logs")}
        for d in (dirs["out"], dirs["logs"]) if resume else (folder,):
            shutil.rmtree(d, ignore_errors=True)
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        return folder, dirs, resume

    def _prepare_inputs(self, job: JobView, index: int, in_dir: Path, dataset: DatasetFields | None
                        ) -> tuple[list[str], dict[str, str]]:
        """Fetch the task's inputs (and the job's dataset) into ``in_dir``; return its arguments and environment."""
        doc = self._inputs_doc(job.inputs_cid, job.job_id)
        if index >= doc.task_count:  # the same for every worker: the document does not describe this task
            raise InputsDocumentInvalid(f"the inputs document {job.inputs_cid} describes {doc.task_count} task(s), "
                                        f"but the job has {job.num_tasks}: there is no task {index} in it")
        spec = doc.task(index)
        for ref in spec.inputs:
            dest = in_dir / ref.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.cache.fetch_to(ref.uri, dest)
        if dataset is not None:
            self._fetch_dataset(dataset, in_dir / "dataset")
        return spec.args, spec.env

    def _fetch_dataset(self, dataset: DatasetFields, dest: Path) -> None:
        """The job's dataset at /in/dataset, checked against its CID and its on-chain sha256 checksum
        (the requester SDK may also list it as a common input at that path: then it is already there)."""
        if not dest.exists():
            try:
                self.cache.fetch_to(f"ipfs://{dataset['cid']}", dest)
            except InputUnavailable as exc:
                raise InputUnavailable(
                    f"the job's dataset {dataset['cid']} is provided by no IPFS node this worker can reach: the "
                    f"dataset owner's node ({dataset.get('owner', 'its owner')}) must be online and connected to "
                    f"the network's peers ({exc})") from exc
        digest = sha256_file(dest)
        expected = dataset["checksum"].removeprefix("0x")
        if digest != expected:
            raise InputCorrupt(f"dataset {dataset['cid']} has sha256 {digest}, but its registered checksum is "
                               f"{expected}; the dataset owner must re-register it")

    def _inputs_doc(self, cid: str, job_id: int) -> InputsDocument:
        """The job's inputs document, read once (and shared by the jobs that name the same CID). A broken one is
        remembered for DOC_ERROR_TTL seconds, for this job only, so it is not fetched again for every candidate
        and task of the job: malformed (:class:`InputsDocumentInvalid`, the content's fault, the same for every
        worker) or unreachable (:class:`InputUnavailable`, no reachable node provides it: this worker's view of
        the network). Our own IPFS node being down is not remembered."""
        cached = self._docs.get(cid)
        if isinstance(cached, InputsDocument):
            return cached
        failed = self._doc_errors.get((job_id, cid))
        if failed is not None and time.monotonic() < failed[1]:
            raise failed[0]
        try:
            doc = InputsDocument.model_validate(self.ipfs.cat_json(cid, max_bytes=16 << 20))
        except (ValidationError, ValueError) as exc:
            detail = (f"{exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}" if isinstance(exc, ValidationError)
                      else str(exc))
            error: InputError = InputsDocumentInvalid(f"the inputs document {cid} is malformed: {detail}")
            self._doc_errors[(job_id, cid)] = (error, time.monotonic() + DOC_ERROR_TTL)
            raise error from exc
        except IpfsUnavailable:
            raise
        except (ContentTooLarge, ContentNotJson) as exc:
            error = InputsDocumentInvalid(f"the inputs document {cid} is not a valid inputs document: {exc}")
            self._doc_errors[(job_id, cid)] = (error, time.monotonic() + DOC_ERROR_TTL)
            raise error from exc
        except IpfsError as exc:
            error = InputUnavailable(f"the inputs document {cid} cannot be fetched from IPFS: {exc}")
            self._doc_errors[(job_id, cid)] = (error, time.monotonic() + DOC_ERROR_TTL)
            raise error from exc
        self._docs[cid] = doc
        return doc

    def _ensure_image(self, app: AppView) -> None:
        if app.image_digest in self._images_ok:
            return  # checked before: an image id is the digest of its content (the sandbox sees it is still there)
        # one fetch per image at a time: the tasks of a lease start together, and a second thread would otherwise
        # pull or load the same image beside the first (and, from IPFS, into the same archive file)
        with self._image_locks_guard:
            lock = self._image_locks.setdefault(app.image_digest, threading.Lock())
        with lock:
            if app.image_digest in self._images_ok:
                return
            self._pull_or_verify(app)
            self._images_ok.add(app.image_digest)

    def _pull_or_verify(self, app: AppView) -> None:
        """Have the app's image, checked against its pinned digest: already here, else from its registry, else
        from the ``docker save`` archive on IPFS its reference (``ipfs://CID``) or its metadata names."""
        if image_exists(self.docker, app.image_digest):
            verify_image_digest(self.docker, app.image_digest, app.image_digest)
            return
        if app.image_ref.startswith("ipfs://"):
            self._load_archive(app, app.image_ref)
            return
        if image_exists(self.docker, app.image_ref):
            verify_image_digest(self.docker, app.image_ref, app.image_digest)
            return
        try:
            pull_by_digest(self.docker, app.image_ref, expected_id=app.image_digest)
        except ImageDigestMismatch:
            raise
        except ImageError as exc:
            cid = self._archive_cid(app)
            if cid is None:
                raise
            log.warning("image_pull_failed", ref=app.image_ref, error=str(exc), fallback=f"ipfs://{cid}")
            self._load_archive(app, f"ipfs://{cid}")

    def _archive_cid(self, app: AppView) -> str | None:
        """The image archive CID the app's metadata document names, if it names one and can be read."""
        if not app.metadata_uri.startswith("ipfs://"):
            return None
        try:
            meta = AppMetadata.model_validate(self.ipfs.cat_json(app.metadata_uri.removeprefix("ipfs://"),
                                                                 max_bytes=1 << 20))
        except IpfsUnavailable:
            raise  # our own node is down: the task waits for it instead of failing
        except (IpfsError, ValidationError, ValueError) as exc:
            log.warning("app_metadata_unreadable", uri=app.metadata_uri, error=str(exc)[:300])
            return None
        return meta.image_archive_cid

    def _load_archive(self, app: AppView, uri: str) -> None:
        """Fetch the image archive at ``uri`` through the input cache (CID verified, size-capped) and load it
        (one untagged image, the pinned one, or nothing is loaded)."""
        dest = self.work / f"image-{app.image_digest.removeprefix('sha256:')[:16]}-{os.getpid()}.tar"
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.cache.fetch_to(uri, dest)
            load_image(self.docker, dest, app.image_digest)
        except InputError as exc:
            raise ImageError(f"the app's image archive {uri} cannot be fetched: {exc}") from exc
        finally:
            dest.unlink(missing_ok=True)
        log.info("image_loaded", uri=uri, image=app.image_digest)

    def task_size(self, job: JobView) -> Size:
        """What one task of ``job`` takes of this worker while it runs (its run gate: worker/_gate.py): the job's
        cores, and the RAM its container may use."""
        return Size(max(job.cores, 1), self._limits(job).ram_bytes >> 20)

    def _limits(self, job: JobView) -> Limits:
        return self._limits_for(job.max_run_seconds, job.cores, job.memory_mb)

    def _limits_for(self, wall_seconds: int, cores: int = 1, memory_mb: int = 0) -> Limits:
        return Limits.model_validate(self.output_limits().model_dump() | {
            "wall_seconds": wall_seconds, "cpus": max(cores, 1),
            "memory_bytes": max(memory_mb, self.s.memory_per_task_mb) << 20})

    def warm_spec(self, app: AppView) -> RunSpec:
        """A run of ``app`` as a job of one core and no memory ask would have it, for :meth:`Sandbox.prepare` (its
        reused containers, made before a job comes: see :meth:`worker._daemon.Worker._warm_app`)."""
        root = self.checkpoints.root if self.s.checkpoint.enabled else None
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
            root.chmod(0o700)
        return RunSpec(image=app.image_digest, image_digest=app.image_digest, command=[], output_dir=root or
                       self.s.state_dir, log_dir=root or self.s.state_dir, limits=self._limits_for(1),
                       input_dir=root or self.s.state_dir, checkpoint_dir=root, task=f"warm-app-{app.app_id}",
                       reuse=_reuse_group(app))

    def output_limits(self) -> Limits:
        """The limits every task's output slot is made for (this worker's output cap, whatever the job): a task's
        own limits (:meth:`_limits`) add the job's time, cores and memory to them, so its runs find the slots the
        worker made as it started."""
        return Limits(output_bytes=self.s.output_cap_mb << 20, log_bytes=LOG_CAP)

    def _execute(self, job: JobView, app: AppView, command: list[str], dirs: dict[str, Path],
                 env: dict[str, str] | None = None, rec: TaskRecord | None = None, resume: bool = False) -> RunResult:
        self._ensure_image(app)
        limits = self._limits(job)
        spec = RunSpec(image=app.image_digest, image_digest=app.image_digest, command=command, input_dir=dirs["in"],
                       output_dir=dirs["out"], log_dir=dirs["logs"], limits=limits, env=env or {},
                       task=f"{job.job_id}-{dirs['in'].parent.name}", reuse=_reuse_group(app))
        if self.slurm is not None and rec is not None:
            return self.slurm.run(spec, self._slurm_task(job, rec), resume=resume)
        key = rec.task_key if rec is not None else dirs["in"].parent.name.replace("-", ":", 1)
        self.checkpoints.check(key)  # a pause asked for before the container starts
        folder = self.checkpoints.prepare(*map(int, key.split(":")))
        run_limits = limits
        if rec is not None and rec.data.get("ran_s") and rec.data.get("run_by"):  # resumed after a pause
            run_limits = self.checkpoints.wall_clock(limits, int(rec.data["run_by"]), self.market.chain_time())
        spec = spec.model_copy(update={"checkpoint_dir": folder, "limits": run_limits})
        # the task's GPUs (worker/_gpus.py), held while its container runs: none lent, a GPU job is given back
        with ((self.gpus or GpuAllocator([])).lease(rec.task_key if rec else spec.task, job.gpus) as devices,
              self.checkpoints.watch(folder, spec.task) as watch):
            spec = spec.model_copy(update={"gpus": devices})
            run = self.sandbox.run(spec)
            if run.reason is Reason.IMAGE_MISSING:  # removed from the engine since it was checked: fetch it again
                self._images_ok.discard(app.image_digest)
                self._ensure_image(app)
                run = self.sandbox.run(spec)
        # paused (raises), cut short by its claim (raises: given back), checkpoint over its cap, or the run
        return self.checkpoints.judge(key, folder, run, watch, cut=spec.limits.wall_seconds < limits.wall_seconds)

    def _slurm_task(self, job: JobView, rec: TaskRecord) -> SlurmTask:
        """The task as the Slurm executor sees it: its claim's expiry, its journaled job, and the journal and claim
        checks it calls while the job waits or runs."""
        current = self.journal.get(job.job_id, rec.task_index) or rec

        def note(**data: Any) -> None:
            step = max(Step.INPUTS_READY, (self.journal.get(job.job_id, rec.task_index) or rec).step)
            self.journal.record(job.job_id, rec.task_index, step, **data)
        return SlurmTask(label=f"{job.job_id}-{rec.task_index}", expiry=float(current.data.get("expiry") or 0),
                         data=current.data.copy(), note=note, check=lambda: self._check_claim(job, current))

    def _publish(self, job: JobView, app: AppView, rec: TaskRecord, dirs: dict[str, Path], run: RunResult | None,
                 error: str | None, canon: StepOutcome | None = None) -> TaskRecord:
        """Pack and upload the result: a success, or a failure result that every honest replica packs alike.

        A failure archive holds ``logs/status.txt`` (reason, exit code, one sentence with nothing of this worker
        in it); the app's stdout and stderr, unless the app declares a deterministic file (it says its bytes are
        not reproducible: its logs may not be either); and its output, unless the output was refused or the app
        declares a deterministic file (then none). Skipped entries are listed in ``logs/skipped.txt``."""
        folder = dirs["in"].parent
        if canon is not None:  # an app with a canonicalise step (worker/_canonical.py): its own layout
            if not canon.ok:
                log.warning("task_failed", job_id=job.job_id, task_index=rec.task_index, reason=canon.reason,
                            error=canon.sentence)
            elif self.s.fault == "wrong-result" and canon.step_run is not None:
                self._corrupt(canon.step_run.output_dir)
            return self._upload(job, rec, folder, pack_canonicalized(folder, run, canon, app.deterministic_file))
        reason = run.reason.value if run is not None else "input-error"
        failed = run is None or not run.ok
        sentence = error if run is None else run.explanation or None
        bare = failed and bool(app.deterministic_file)  # a failure of an app whose bytes are not reproducible
        bare = bare or (run is not None and run.reason is Reason.CHECKPOINT_TOO_LARGE)  # logs of a stop: timing
        out = dirs["out"]
        if run is not None and (run.reason in NO_OUTPUT or bare):
            out = folder / "no-output"
            out.mkdir(exist_ok=True)
        logs: dict[str, Path] = {}
        if run is not None and not bare:
            logs = {"stdout.txt": run.stdout_path, "stderr.txt": run.stderr_path}
        status = folder / STATUS_FILE
        status.write_text(format_status(reason, run.exit_code if run is not None else None, sentence))
        logs[STATUS_FILE] = status
        if run is not None and run.skipped and out == dirs["out"]:
            skipped = folder / SKIPPED_FILE
            skipped.write_text("".join(line + "\n" for line in run.skipped))
            logs[SKIPPED_FILE] = skipped
        if failed:
            log.warning("task_failed", job_id=job.job_id, task_index=rec.task_index, reason=reason, error=sentence)
        if self.s.fault == "wrong-result":
            self._corrupt(dirs["out"])
        det = app.deterministic_file if not failed and app.deterministic_file else None
        packed = pack_result(out, folder / "result.tar", logs=logs, deterministic_file=det)
        return self._upload(job, rec, folder, packed)

    def _upload(self, job: JobView, rec: TaskRecord, folder: Path, packed: PackedResult) -> TaskRecord:
        """Encrypt the packed result to the requester's key (when the job names one), add it to IPFS, journal it."""
        upload = packed.archive_path
        if job.encryption_key:
            upload = folder / "result.tar.sealed"
            encrypt_file(packed.archive_path, upload, job.encryption_key)
        cid = self.ipfs.add_file(upload)
        rec = self.journal.record(job.job_id, rec.task_index, Step.UPLOADED, digest="0x" + packed.digest,
                                  cid=cid, salt="0x" + new_salt().hex(), archive_sha256=packed.archive_sha256)
        return rec

    @staticmethod
    def _corrupt(out: Path) -> None:
        """Fault injection ('wrong-result'): change every output file, as a lying or broken worker would."""
        files = [p for p in sorted(out.rglob("*")) if p.is_file()]
        for p in files:
            data = bytearray(p.read_bytes())
            for i in range(0, len(data), 97):
                data[i] ^= 0x5A
            p.write_bytes(bytes(data))
        if not files:
            (out / "lie.txt").write_text("not the real result\n")

    # -- chain steps ---------------------------------------------------------------------------------
    def _check_claim(self, job: JobView, rec: TaskRecord) -> None:
        tid = task_id(job.job_id, rec.task_index)
        now = self.market.chain_time()
        if job.replication == 1 or is_credible_lease(rec):
            start = lease_of(rec)[0]  # several tasks may share a lease, keyed by its first
            lease = self.market.lease_view(start)
            if lease.worker.lower() != self.me.lower() or not start + lease.done <= tid < start + lease.count:
                raise TaskLost(f"task {tid}: the lease is no longer ours")
            if lease.expiry <= now:
                raise TaskLost(f"task {tid}: the lease expired at {lease.expiry}")
        elif is_lane(rec):
            start, count = lane_of(rec)
            lane = self.market.replica_view(lane_key(start, count), int(rec.data["lane_slot"]))
            if lane.worker.lower() != self.me.lower():
                raise TaskLost(f"task {tid}: lane {rec.data['lane_slot']} of chunk {start} is no longer ours")
            if lane.expiry <= now:
                raise TaskLost(f"task {tid}: the lane expired at {lane.expiry}")
        else:
            replica = self.market.replica_view(tid, rec.data["replica"])
            if replica.worker.lower() != self.me.lower():
                raise TaskLost(f"task {tid}: replica {rec.data['replica']} is no longer ours")
            if replica.expiry <= now:
                raise TaskLost(f"task {tid}: the claim expired at {replica.expiry}")

    def _submit(self, job: JobView, rec: TaskRecord, *, direct: bool = False) -> TaskRecord:
        tid = task_id(job.job_id, rec.task_index)
        if is_failure(rec):
            return self._report_failure(job, rec)
        if self.relay is not None and not direct:
            try:
                mid = self.relay.results(tid, rec.data["digest"], rec.data["cid"])
                return self.journal.record(job.job_id, rec.task_index, Step.SUBMITTED, relay_id=mid)
            except RelayError as exc:
                log.warning("relay_refused", task_id=tid, error=str(exc), fallback="own transaction")
        fn = self.market.contract.functions.submit(tid, bytes.fromhex(rec.data["digest"][2:]), rec.data["cid"], b"")
        try:
            receipt = self.sender.transact(fn, min_gas=self._submit_allowance(job))
        except TransactionReverted as exc:
            if (done := self._sent_before_restart(rec)) is not None:
                return done
            raise TaskLost(f"submit of task {tid} reverted: {exc}") from exc
        return self.journal.record(job.job_id, rec.task_index, Step.DONE, tx=receipt["transactionHash"].hex(),
                                   gas=receipt["gasUsed"], outcome="paid", earned=self._net_reward(job))

    def _report_failure(self, job: JobView, rec: TaskRecord) -> TaskRecord:
        """(R = 1) A failure result: reported, final only once a second worker confirms it (never relayed)."""
        tid = task_id(job.job_id, rec.task_index)
        fn = self.market.contract.functions.reportFailure(tid, bytes.fromhex(rec.data["digest"][2:]), rec.data["cid"])
        try:
            receipt = self.sender.transact(fn, min_gas=self._submit_allowance(job))
        except TransactionReverted as exc:
            if (done := self._sent_before_restart(rec)) is not None:
                return done
            raise TaskLost(f"failure report of task {tid} reverted: {exc}") from exc
        return self.journal.record(job.job_id, rec.task_index, Step.DONE, tx=receipt["transactionHash"].hex(),
                                   gas=receipt["gasUsed"], outcome="failure-reported", earned=0)

    def _sent_before_restart(self, rec: TaskRecord) -> TaskRecord | None:
        """(R = 1) ``rec``'s result, or its failure report, found on chain from this worker (sent before a restart
        or a reorg): journaled DONE and returned; None when it is not there."""
        tid = task_id(rec.job_id, rec.task_index)
        if is_failure(rec):
            if not self._already_reported(tid, rec):
                return None
            return self.journal.record(rec.job_id, rec.task_index, Step.DONE, note="reported before a restart",
                                       outcome="failure-reported", earned=0)
        if not self._already_submitted(tid, rec):
            return None
        return self.journal.record(rec.job_id, rec.task_index, Step.DONE, note="submitted before a restart",
                                   outcome="paid", earned=self._net_reward(JobView.model_validate(rec.data["job"])))

    def _already_reported(self, tid: int, rec: TaskRecord) -> bool:
        logs = self.market.contract.events.FailureReported().get_logs(
            from_block=rec.data.get("claim_block", 0), argument_filters={"taskId": tid})
        return any(e["args"]["worker"].lower() == self.me.lower() for e in logs)

    def abandon_many(self, recs: list[TaskRecord]) -> list[TaskRecord]:
        """Give back the claims of tasks this worker's environment failed (``abandon``), several in one
        ``multicall``; one by one when the batch reverts. A claim already gone (expired, settled) is recorded as
        given back all the same: there is nothing left to do for it."""
        def alone(rec: TaskRecord) -> TaskRecord:
            tid = task_id(rec.job_id, rec.task_index)
            try:
                self.sender.transact(self.market.contract.functions.abandon(tid))
            except TransactionReverted as exc:
                return self.journal.record(rec.job_id, rec.task_index, Step.ABANDONED, outcome="abandoned",
                                           note=f"abandon reverted: {exc.error_name}", earned=0)
            return self.journal.record(rec.job_id, rec.task_index, Step.ABANDONED, outcome="abandoned", earned=0)

        if len(recs) < 2:
            return [alone(r) for r in recs]
        calls = [self.market.contract.encode_abi("abandon", [task_id(r.job_id, r.task_index)]) for r in recs]
        if self._send_batch("abandon", calls) is None:
            return [alone(r) for r in recs]
        return [self.journal.record(r.job_id, r.task_index, Step.ABANDONED, outcome="abandoned", earned=0,
                                    batch=len(recs)) for r in recs]

    def _already_submitted(self, tid: int, rec: TaskRecord) -> bool:
        logs = self.market.contract.events.ResultSubmitted().get_logs(
            from_block=rec.data.get("claim_block", 0), argument_filters={"taskId": tid})
        return any(e["args"]["worker"].lower() == self.me.lower() for e in logs)

    def _commit(self, job: JobView, rec: TaskRecord) -> TaskRecord:
        tid = task_id(job.job_id, rec.task_index)
        c = commitment(tid, rec.data["digest"], rec.data["salt"], self.me)
        replica = self.market.replica_view(tid, rec.data["replica"])
        if replica.hash != c and self.relay is not None and not rec.data.get("relay_failed"):
            try:
                mid = self.relay.commit(tid, c)
                rec = self.journal.record(job.job_id, rec.task_index, Step.COMMITTED, commitment="0x" + c.hex(),
                                          relay_id=mid, relayed=True)
                return rec
            except RelayError as exc:
                log.warning("relay_refused", task_id=tid, error=str(exc), fallback="own transaction")
        if replica.hash != c:  # not committed before a crash
            try:
                self.sender.transact(self.market.contract.functions.commit(tid, c))
            except TransactionReverted as exc:
                raise TaskLost(f"commit of task {tid} reverted: {exc}") from exc
        rec = self.journal.record(job.job_id, rec.task_index, Step.COMMITTED, commitment="0x" + c.hex())
        return rec

    def commit_many(self, recs: list[TaskRecord]) -> list[TaskRecord]:
        """Commit uploaded replicas (R > 1): several in one ``multicall`` transaction, one by one through a relayer,
        or when the batch reverts (a claim expired, or the commit landed before a crash): each alone then says
        which, and is recorded as such."""
        if len(recs) < 2 or self.relay is not None:
            return [self._or_lost(r, self._commit) for r in recs]
        hashes = [commitment(task_id(r.job_id, r.task_index), r.data["digest"], r.data["salt"], self.me) for r in recs]
        calls = [self.market.contract.encode_abi("commit", [task_id(r.job_id, r.task_index), h])
                 for r, h in zip(recs, hashes, strict=True)]
        if self._send_batch("commit", calls) is None:
            return [self._or_lost(r, self._commit) for r in recs]
        out = [self.journal.record(r.job_id, r.task_index, Step.COMMITTED, commitment="0x" + h.hex(),
                                   batch=len(recs)) for r, h in zip(recs, hashes, strict=True)]
        return out

    def settle_leases(self, ops: list[LeaseOp], reason: str) -> list[tuple[TaskRecord, TaskRecord]]:
        """Send the operations of R = 1 leases (:func:`worker._leases.plan_lease`), in order, in one ``multicall``
        (each alone when it reverts, which says which one failed and why); journal what each did. Returns (old, new)
        record pairs."""
        if not ops:
            return []
        calls = [self.market.contract.encode_abi(*_lease_args(op)) for op in ops]
        allowance = sum(self._op_allowance(op) for op in ops)
        tasks = sum(len(op.records) for op in ops)
        log.info("results_submitting", tasks=tasks, leases=len({op.start for op in ops}), reason=reason)
        receipt = self._send_batch("settle", calls, min_gas=allowance) if len(calls) > 1 else None
        if receipt is not None:
            tx, gas = receipt["transactionHash"].hex(), int(receipt["gasUsed"]) // max(tasks, 1)
            return [pair for op in ops for pair in self._lease_done(op, tx=tx, gas=gas, batch=tasks)]
        out: list[tuple[TaskRecord, TaskRecord]] = []
        for op in ops:  # one by one: alone, or after the batch reverted
            try:
                r = self.sender.transact(self._lease_fn(op), min_gas=self._op_allowance(op))
                out += self._lease_done(op, tx=r["transactionHash"].hex(), gas=int(r["gasUsed"]) // len(op.records),
                                        batch=len(op.records))
            except TransactionReverted as exc:
                out += self.resolve_gone_lease(op.start, op.records, f"{op.kind} of lease {op.start} reverted: {exc}",
                                               give_back=op.kind == "abandon")
        return out

    def _op_allowance(self, op: LeaseOp) -> int:
        """Gas a lease operation must be able to spend beyond its simulation: each result's (or failure's) submit
        allowance; a give-back pays nobody and calls back nothing."""
        if op.kind == "abandon":
            return 0
        return sum(self._submit_allowance(JobView.model_validate(r.data["job"])) for r in op.records)

    def _lease_fn(self, op: LeaseOp) -> Any:
        """The contract call of ``op``."""
        name, args = _lease_args(op)
        return self.market.contract.get_function_by_name(name)(*args)

    def _lease_done(self, op: LeaseOp, **data: Any) -> list[tuple[TaskRecord, TaskRecord]]:
        out = []
        for r in op.records:
            if op.kind == "abandon":
                new = self.journal.record(r.job_id, r.task_index, Step.ABANDONED, outcome="abandoned", earned=0,
                                          **data)
            else:
                paid = op.kind == "results"
                new = self.journal.record(r.job_id, r.task_index, Step.DONE, outcome="paid" if paid else
                                          "failure-reported", earned=self._net_reward(
                                              JobView.model_validate(r.data["job"])) if paid else 0, **data)
            out.append((r, new))
        return out

    def resolve_gone_lease(self, start: int, recs: list[TaskRecord] | tuple[TaskRecord, ...], why: str = "",
                           give_back: bool = False) -> list[tuple[TaskRecord, TaskRecord]]:
        """Journal what became of tasks whose lease moved past them, ended, or refused an operation (``why``): a
        result or failure report already on chain (sent before a restart) is DONE; a task being given back
        (``give_back``, or journaled ABANDONING) has nothing left to give back; any other is LOST."""
        out = []
        for r in recs:
            if give_back or r.step == Step.ABANDONING:
                new = self.journal.record(r.job_id, r.task_index, Step.ABANDONED, outcome="abandoned", earned=0,
                                          note=why or f"lease {start} was over")
            elif (sent := self._sent_before_restart(r) if r.step == Step.UPLOADED else None) is not None:
                new = sent
            else:
                reason = why or f"lease {start} is no longer this worker's"
                log.warning("task_lost", task_id=task_id(r.job_id, r.task_index), reason=reason)
                new = self.journal.record(r.job_id, r.task_index, Step.LOST, note=reason, reason=reason)
            out.append((r, new))
        return out

    def reveal_many(self, due: list[TaskRecord]) -> list[TaskRecord]:
        """Reveal replicas whose reveal phase is open (collected by :meth:`advance`) in one ``multicall``; one by
        one when the batch reverts."""
        def alone(rec: TaskRecord) -> TaskRecord:
            job = JobView.model_validate(rec.data["job"])
            return self._reveal(job, task_id(rec.job_id, rec.task_index), rec, pending=bool(job.confidence_ppb))

        if len(due) < 2:
            return [alone(r) for r in due]
        calls = [self.market.contract.encode_abi("reveal", [
            task_id(r.job_id, r.task_index), bytes.fromhex(r.data["digest"][2:]), bytes.fromhex(r.data["salt"][2:]),
            r.data["cid"], b""]) for r in due]
        jobs = [JobView.model_validate(r.data["job"]) for r in due]
        allowance = sum(self._finalize_allowance(j) for j in jobs)
        # a credibility-mode reveal is simulated on the pending block: its spot check reads the commit block's hash
        pending = any(j.confidence_ppb for j in jobs)
        if self._send_batch("reveal", calls, min_gas=allowance, pending=pending) is None:
            return [alone(r) for r in due]
        out = [self.journal.record(r.job_id, r.task_index, Step.REVEALED, batch=len(due)) for r in due]
        return out

    def _finalize_allowance(self, job: JobView) -> int:
        """Gas a reveal must be able to spend beyond what its simulation saw: when another replica's reveal lands
        first in the same block, ours is the last one, so it finalizes the task (paying or slashing up to
        ``maxReplicas`` replicas) and calls the job's callback with its full gas cap."""
        params = self._protocol_params()
        allowance = 90_000 + 30_000 * params.max_replicas
        if int(job.callback, 16):
            cap = params.callback_gas
            allowance += cap + cap // 63 + 10_000
        return allowance

    def _submit_allowance(self, job: JobView) -> int:
        """Gas an R = 1 result must be able to spend: the submit, closing the job (paying its owners) when it is
        the last result (another worker's may land first in the same block), and the callback's full cap."""
        allowance = 120_000
        if int(job.callback, 16):
            cap = self._protocol_params().callback_gas
            allowance += cap + cap // 63 + 10_000
        return allowance

    def _protocol_params(self) -> MarketParams:
        """The protocol parameters, read again at most once a minute (the owner rarely changes them)."""
        if self._params is None or time.monotonic() - self._params[0] > 60.0:
            self._params = (time.monotonic(), self.market.market_params())
        return self._params[1]

    def _send_batch(self, what: str, calls: list[Any], min_gas: int = 0, pending: bool = False) -> Any | None:
        """``calls`` in one ``multicall`` transaction: its receipt, or None when it reverted (nothing changed on
        chain; the caller then sends each call alone, which says which one failed and why)."""
        try:
            return self.sender.transact(self.market.contract.functions.multicall(calls), min_gas=min_gas,
                                        pending=pending)
        except TransactionReverted as exc:
            log.info("batch_fallback", what=what, tasks=len(calls), error=exc.error_name)
            return None

    def _or_lost(self, rec: TaskRecord, step: Callable[[JobView, TaskRecord], TaskRecord]) -> TaskRecord:
        """``step`` (a submit or a commit) for ``rec``; a claim that turns out to be gone is journaled LOST."""
        try:
            return step(JobView.model_validate(rec.data["job"]), rec)
        except TaskLost as exc:
            return self.journal.record(rec.job_id, rec.task_index, Step.LOST, note=str(exc), reason=str(exc))

    def advance(self, rec: TaskRecord, reveals: list[TaskRecord] | None = None) -> TaskRecord:
        """For R > 1 after the commit: reveal when the phase opens, finalize when possible. Cheap; idempotent.
        With ``reveals``, a reveal that is due (and needs no time-gated gas) is appended there for
        :meth:`reveal_many` instead of being sent now."""
        job = JobView.model_validate(rec.data["job"])
        tid = task_id(job.job_id, rec.task_index)
        if rec.step == Step.SUBMITTED:
            return self._await_relayed_result(job, tid, rec)
        t = self.market.task_view(tid)
        if t.status != TaskStatus.ACTIVE:  # FINALIZED or FAILED
            outcome, earned = self._outcome(tid, rec, t.status)
            return self.journal.record(job.job_id, rec.task_index, Step.DONE, outcome=outcome, earned=earned)
        now = self.market.chain_time()
        bit = 1 << int(rec.data["replica"])
        if rec.data.get("relayed") and rec.step in (Step.COMMITTED, Step.REVEALED):
            landed = t.revealed & bit if rec.step == Step.REVEALED else t.committed & bit
            if not landed:  # still with the relayer: wait, or send it ourselves when time runs short
                close = (t.reveal_deadline if rec.step == Step.REVEALED
                         else self.market.replica_view(tid, rec.data["replica"]).expiry)
                if close and now >= close - self.s.relay_margin_s:
                    log.warning("relay_late", task_id=tid, step=rec.step.name, fallback="own transaction")
                    rec = self.journal.record(job.job_id, rec.task_index, Step.COMMITTED if rec.step == Step.REVEALED
                                              else Step.UPLOADED, relayed=False, relay_failed=True)
                    if rec.step == Step.UPLOADED:
                        return self._commit(job, rec)
                return rec
        if not rec.data.get("relayed"):
            # our own commit or reveal is not on chain although journaled: a reorg dropped it; send it again
            if rec.step == Step.COMMITTED and not t.committed & bit:
                log.warning("commit_missing", task_id=tid, action="commit again")
                return self._or_lost(self.journal.record(job.job_id, rec.task_index, Step.UPLOADED,
                                                         note="commit dropped by a reorg"), self._commit)
            if rec.step == Step.REVEALED and not t.revealed & bit and t.committed & bit:
                log.warning("reveal_missing", task_id=tid, action="reveal again")
                return self._reveal(job, tid, rec, gas=TIME_GATED_GAS)
        if rec.step == Step.COMMITTED:
            all_in = t.committed.bit_count() == t.target
            if all_in and job.confidence_ppb and t.target == 1:
                return self._reveal_alone(job, tid, rec, reveals)
            if all_in and reveals is not None and self.relay is None:
                reveals.append(rec)
                self.reveal_deadlines[rec.task_key] = t.reveal_deadline
            elif all_in or (t.commit_deadline and now > t.commit_deadline):
                return self._reveal(job, tid, rec, gas=None if all_in else TIME_GATED_GAS)
        elif rec.step == Step.REVEALED:
            done = t.revealed.bit_count() == t.target
            if done or (t.reveal_deadline and now > t.reveal_deadline):
                try:
                    self.sender.transact(self.market.contract.functions.finalize(tid),
                                         gas=None if done else TIME_GATED_GAS)
                except TransactionReverted as exc:
                    if exc.error_name not in ("MarketplaceTaskNotActive", "MarketplaceNotFinalizable"):
                        raise
        return rec

    def _await_relayed_result(self, job: JobView, tid: int, rec: TaskRecord) -> TaskRecord:
        """R = 1 through a relayer: DONE once our result is on chain; our own submit when the lease runs short.
        The lease is read before our result is looked for: the batch that settles the result deletes the lease, so
        a lease found gone with no result after it is truly lost, not settled between the two reads."""
        lease = self.market.lease_view(tid)
        if self._already_submitted(tid, rec):
            return self.journal.record(job.job_id, rec.task_index, Step.DONE, outcome="paid", relayed=True,
                                       earned=self._net_reward(job))
        if lease.worker.lower() != self.me.lower():
            return self.journal.record(job.job_id, rec.task_index, Step.LOST, reason="the lease is no longer ours")
        if self.market.chain_time() >= lease.expiry - self.s.relay_margin_s:
            log.warning("relay_late", task_id=tid, step="SUBMITTED", fallback="own transaction")
            try:
                return self._submit(job, rec, direct=True)
            except TaskLost as exc:
                return self.journal.record(job.job_id, rec.task_index, Step.LOST, reason=str(exc))
        return rec

    def _reveal_alone(self, job: JobView, tid: int, rec: TaskRecord, reveals: list[TaskRecord] | None) -> TaskRecord:
        """(credibility mode) The task's only replica is ours: reveal (with ``reveals``, batched by
        :meth:`reveal_many`) unless a spot check picked it, in which case open the check replica first (our reveal
        then waits for its commit; see PROTOCOL.md). Both are simulated on the pending block, where the commit
        block's hash that decides the check is readable."""
        due = bool(self.market.contract.functions.spotCheckDue(tid).call(block_identifier="pending"))
        if not due and reveals is not None and self.relay is None:
            reveals.append(rec)
            return rec
        if not due:
            return self._reveal(job, tid, rec, pending=True)
        log.info("spot_check", task_id=tid, action="open the check replica; reveal after its commit")
        try:
            self.sender.transact(self.market.contract.functions.startSpotCheck(tid), pending=True)
        except TransactionReverted as exc:
            if exc.error_name != "MarketplaceNoSpotCheck":  # another worker opened it first
                raise
        return rec

    def _reveal(self, job: JobView, tid: int, rec: TaskRecord, gas: int | None = None,
                pending: bool = False) -> TaskRecord:
        if self.relay is not None and not rec.data.get("relay_failed"):
            try:
                mid = self.relay.reveal(tid, rec.data["digest"], rec.data["salt"], rec.data["cid"])
                rec = self.journal.record(job.job_id, rec.task_index, Step.REVEALED, relay_id=mid, relayed=True)
                return rec
            except RelayError as exc:
                if exc.error_name == "MarketplaceRevealNotOpen" and gas is None:
                    return rec
                log.warning("relay_refused", task_id=tid, error=str(exc), fallback="own transaction")
        fn = self.market.contract.functions.reveal(tid, bytes.fromhex(rec.data["digest"][2:]),
                                                   bytes.fromhex(rec.data["salt"][2:]), rec.data["cid"], b"")
        try:
            self.sender.transact(fn, gas=gas, min_gas=self._finalize_allowance(job), pending=pending)
        except TransactionReverted as exc:
            if exc.error_name in ("MarketplaceRevealNotOpen", "MarketplaceSpotCheckUndecided", "MarketplaceSpotCheckDue"):
                return rec  # not yet (a spot check decided or opened meanwhile): the next look tries again
            if exc.error_name != "MarketplaceAlreadyRevealed":
                return self.journal.record(job.job_id, rec.task_index, Step.LOST, reason=f"reveal reverted: {exc}")
        rec = self.journal.record(job.job_id, rec.task_index, Step.REVEALED)
        return rec

    def _outcome(self, tid: int, rec: TaskRecord, status: TaskStatus) -> tuple[str, int]:
        """How a replicated task ended for us, and what we earned from it (the winners' share, net of the fee)."""
        if status == TaskStatus.FAILED:
            return "task-failed", 0
        events = self.market.contract.events.TaskFinalized().get_logs(
            from_block=rec.data.get("claim_block", 0), argument_filters={"taskId": tid})
        if not events:
            return "finalized", 0
        final = ea.TaskFinalized.model_validate(events[-1]["args"])
        if ea.hex32(final.result_digest) == rec.data.get("digest"):
            return "won", final.reward_each
        return "outvoted", 0

    def net_reward(self, job: JobView) -> int:
        """What one accepted single result of ``job`` pays this worker (the reward less the fee)."""
        return self._net_reward(job)

    def submit_allowance(self, job: JobView) -> int:
        """Gas a result of ``job`` must be able to spend beyond its simulation (its callback)."""
        return self._submit_allowance(job)

    def sent_before_restart(self, rec: TaskRecord) -> TaskRecord | None:
        """``rec``'s result found on chain from this worker (see :meth:`_sent_before_restart`)."""
        return self._sent_before_restart(rec)

    def _net_reward(self, job: JobView) -> int:
        """What an accepted R = 1 result pays: the reward less the protocol fee fixed at the job's posting."""
        if job.job_id not in self._fee_bps:
            self._fee_bps[job.job_id] = self.market.job_record(job.job_id).fee_bps
        return job.reward - job.reward * self._fee_bps[job.job_id] // 10_000

    def cleanup(self, rec: TaskRecord) -> None:
        shutil.rmtree(self.work / f"{rec.job_id}-{rec.task_index}", ignore_errors=True)
        if rec.finished:  # a live task keeps its checkpoint folder (retried, resumed after a pause or a restart)
            self.checkpoints.drop(rec.job_id, rec.task_index)


def _lease_args(op: LeaseOp) -> tuple[str, list[Any]]:
    """The function name and arguments of a lease operation (see :func:`worker._leases.plan_lease`)."""
    recs = op.records
    if op.kind == "abandon":
        return "abandon", [op.start]
    if op.kind == "failure":
        return "reportFailure", [op.start, bytes.fromhex(recs[0].data["digest"][2:]), recs[0].data["cid"]]
    return "submitRange", [op.start, op.first, [bytes.fromhex(r.data["digest"][2:]) for r in recs],
                           [r.data["cid"] for r in recs], []]


def is_failure(rec: TaskRecord) -> bool:
    """Whether the uploaded result of ``rec`` is a failure result (its run did not end ``ok``)."""
    return str(rec.data.get("reason") or "ok") != "ok"


def _reuse_group(app: AppView) -> str:
    """The runs that may share a reused container (worker/_reuse.py): every job's tasks of one app (with the same
    image and limits). The launcher leaves nothing of a task to the next, so jobs of one app share containers as
    tasks of one job do."""
    return f"app-{app.app_id}"
