"""Checkpoints: a folder per task that survives a stop, so a long task resumes instead of starting over.

Each task the local executor runs gets ``/checkpoint`` (``TASKNET_CHECKPOINT_DIR``), a host folder under
``<state_dir>/checkpoints/<job>-<index>`` bind-mounted read-write. The worker keeps it, as the app left it,
across every stop of the task:

- **policy**: outside the policy's ``hours``, or with ``idle_only`` while the machine is busy with other work,
  running tasks are *paused* and resumed when the policy opens again;
- **SIGTERM**: the drain pauses the tasks that cannot finish within ``drain_timeout``; the next start resumes them;
- **a crash or restart**: the task is run again from its journaled step, with its folder.

A stop is ``docker stop`` with ``checkpoint.grace_s``: the app gets SIGTERM, writes its checkpoint, exits; SIGKILL
follows the grace period. A paused task keeps its claim and its folder; the journal marks it (``data.paused``: why,
``data.ran_s``: seconds it ran before) at its step, and ``tasknet worker status`` lists it. It resumes on this
worker while the claim lasts: when the claim would expire before the task could run the rest of its
``maxRunSeconds`` (``max_run - ran_s``) plus ``checkpoint.resume_margin_s``, the claim is given back
(``abandon``: a small fee, no slash) instead.

The folder is capped (``checkpoint.max_mb``): it is measured twice a second while the app runs and once after; a
folder over the cap stops the app, and the task ends as a failure result ``checkpoint-too-large`` (published and
voted on like any other failure, never a slash). The folder is deleted when the task finishes (any outcome) or is
given back; at start the daemon removes the folders of tasks its journal no longer holds.

Only the local executor mounts a checkpoint folder (``executor = "slurm"`` runs tasks to the end, as before).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from oracle import get_logger

from ._policy import Policy
from .exceptions import EnvironmentFailure, TaskPaused

if TYPE_CHECKING:
    import docker

    from ._sandbox import Limits, RunResult

log = get_logger(__name__)

#: where the folder is mounted in the task's container, and the environment variable that names it
MOUNT = "/checkpoint"
ENV = "TASKNET_CHECKPOINT_DIR"
#: the failure reason of a task whose checkpoint folder outgrew the cap
TOO_LARGE = "checkpoint-too-large"
#: seconds between two measurements of a running task's folder
WATCH_INTERVAL = 0.5


class CheckpointSettings(BaseModel):
    """How the worker keeps its tasks' checkpoint folders (see worker/_checkpoint.py)."""

    enabled: bool = Field(True, description="give each task a /checkpoint folder kept across stops, and pause "
                          "(rather than lose) running tasks when the policy closes or the worker stops")
    max_mb: int = Field(256, ge=1, description="largest checkpoint folder, MB (disk blocks); a task whose folder "
                        "grows past it fails with 'checkpoint-too-large'")
    grace_s: float = Field(10.0, ge=0, description="seconds a stopped task has between SIGTERM and SIGKILL to "
                           "write its checkpoint")
    resume_margin_s: int = Field(30, ge=0, description="a paused task is given back when its claim would expire "
                                 "within the rest of its maxRunSeconds plus this margin")


def container_label(key: str) -> str:
    """The ``tasknet.task`` label of the app container of task ``job:index`` (as the pipeline names its run)."""
    job_id, index = key.split(":")
    return f"{job_id}-{job_id}-{index}"


def policy_closed(policy: Policy, now: dt.datetime, load: float, own_load: float = 0.0) -> str | None:
    """Why the policy stops tasks now (outside its hours; idle-only with the machine busy), or None.

    ``load`` is the load per core; ``own_load`` the share of it this worker's own running tasks account for (it is
    taken off: a task must not pause itself for the load it makes)."""
    if policy.hours and not any(h.contains(now.hour) for h in policy.hours):
        return f"hour {now.hour} is outside the policy's hours"
    if policy.idle_only and load - own_load >= policy.max_load:
        return f"the machine is busy (load {load - own_load:.2f} per core besides tasks >= {policy.max_load})"
    return None


def must_give_back(expiry: int, chain_now: float, max_run_s: int, ran_s: float, margin_s: int) -> bool:
    """Whether a paused task can no longer resume and finish before its claim expires: the rest of its
    ``maxRunSeconds`` (what it did not run yet) plus a margin would pass ``expiry``. No expiry known: False."""
    if not expiry:
        return False
    return chain_now + max(0.0, max_run_s - ran_s) + margin_s > expiry


def folder_bytes(folder: Path) -> int:
    """Disk space the folder takes (blocks of every entry, a sparse file's holes excluded; links not followed)."""
    total = 0
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


class _Watch(threading.Thread):
    """Measures a running task's checkpoint folder; past the cap, calls ``stop`` once and notes it."""

    def __init__(self, folder: Path, cap: int, stop: Callable[[], object]) -> None:
        super().__init__(name="checkpoint-watch", daemon=True)
        self.folder, self.cap, self.stop_task = folder, cap, stop
        self.done = threading.Event()
        self.over = False

    def run(self) -> None:
        while not self.done.wait(WATCH_INTERVAL):
            if folder_bytes(self.folder) > self.cap:
                self.over = True
                with contextlib.suppress(Exception):
                    self.stop_task()
                return


class Checkpoints:
    """The checkpoint folders of one daemon, and the pauses it asked for (``pausing``: task key -> why).

    The daemon adds a running task to ``pausing`` and stops its container (:meth:`stop`); the pipeline, once the
    run is over (or before it starts), sees the key and raises :class:`TaskPaused` instead of publishing what a
    stopped app left (:meth:`judge`)."""

    def __init__(self, settings: CheckpointSettings, root: Path, docker_client: docker.DockerClient | None,
                 owner: str, stop_reused: Callable[[str, float], int] | None = None) -> None:
        self.s, self.root, self.docker, self.owner = settings, root, docker_client, owner
        #: the sandbox's stop of a run in a reused container (worker/_reuse.py), which has no container of its own
        self.stop_reused = stop_reused
        self.pausing: dict[str, str] = {}

    def folder(self, job_id: int, index: int) -> Path:
        return self.root / f"{job_id}-{index}"

    def prepare(self, job_id: int, index: int) -> Path | None:
        """The task's folder, made (kept as it is when it exists) and writable by the sandbox's user; None when
        checkpoints are off."""
        if not self.s.enabled:
            return None
        folder = self.folder(job_id, index)
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)  # no other user of this host reaches the folders (a container sees its own only)
        folder.mkdir(exist_ok=True)
        folder.chmod(0o777)  # the app runs as an unprivileged user of its own
        return folder

    def check(self, key: str) -> None:
        """Raise :class:`TaskPaused` when the daemon asked to pause the task (before its container starts)."""
        if key in self.pausing:
            raise TaskPaused(self.pausing[key], 0.0)

    @contextlib.contextmanager
    def watch(self, folder: Path | None, label: str) -> Iterator[_Watch | None]:
        """Measure ``folder`` while the block runs (the task's container); stop the task once it is over the cap."""
        if folder is None:
            yield None
            return
        watch = _Watch(folder, self.s.max_mb << 20, lambda: self.stop(label, grace=0.0))
        watch.start()
        try:
            yield watch
        finally:
            watch.done.set()
            watch.join(timeout=5)

    def wall_clock(self, limits: Limits, expiry: int, chain_now: float) -> Limits:
        """The limits of a resumed task's run (it ran before a pause): no more wall clock than its claim has left,
        less the margin, so that the run ends, one way or another, while the claim lasts."""
        left = expiry - chain_now - self.s.resume_margin_s
        if left >= limits.wall_seconds:
            return limits
        return limits.model_copy(update={"wall_seconds": max(1.0, left)})

    def judge(self, key: str, folder: Path | None, run: RunResult, watch: _Watch | None, cut: bool = False
              ) -> RunResult:
        """What a run that ended means: paused (raise :class:`TaskPaused`, the folder kept); stopped by a wall
        clock its claim cut short (``cut``: :meth:`wall_clock`; raise :class:`EnvironmentFailure`, the claim is
        given back); a checkpoint over the cap (a failure result ``checkpoint-too-large``); or the run as it is."""
        from ._sandbox import Reason

        if key in self.pausing:
            raise TaskPaused(self.pausing[key], run.run_seconds)
        if cut and run.reason is Reason.TIMEOUT:
            raise EnvironmentFailure("the resumed task did not finish in what its claim had left; given back rather "
                                     "than let the claim expire (its time was spent in pauses)")
        if folder is None:
            return run
        size = folder_bytes(folder)
        if (watch is not None and watch.over) or size > self.s.max_mb << 20:
            sentence = "the app's checkpoint folder grew larger than the checkpoint cap allows"
            log.warning("checkpoint_too_large", task=key, bytes=size, cap_mb=self.s.max_mb)
            return run.model_copy(update={
                "reason": Reason.CHECKPOINT_TOO_LARGE, "explanation": sentence, "killed_from_outside": False,
                "exit_code": None,  # the app was stopped, or not, depending on when the folder was measured
                "message": f"{sentence} ({size} bytes on disk, cap {self.s.max_mb} MB: checkpoint.max_mb)"})
        return run

    def stop(self, label: str, grace: float | None = None) -> int:
        """``docker stop`` the task's app container(s) (SIGTERM, SIGKILL after the grace period), or its run in a
        reused container; how many."""
        wait = self.s.grace_s if grace is None else grace
        n = self.stop_reused(label, wait) if self.stop_reused is not None else 0
        if self.docker is None:
            return n
        import docker.errors
        import requests

        labels = [f"tasknet.sandbox={self.owner}", f"tasknet.task={label}", "tasknet.role=app"]
        try:
            for container in self.docker.containers.list(filters={"label": labels}, ignore_removed=True):
                with contextlib.suppress(docker.errors.NotFound):
                    container.stop(timeout=math.ceil(wait))
                    n += 1
        except (docker.errors.DockerException, requests.RequestException) as exc:  # the daemon tries again
            log.warning("checkpoint_stop_failed", task=label, error=str(exc)[:300])
        return n

    def drop(self, job_id: int, index: int) -> None:
        """Delete the task's folder (it finished, or was given back)."""
        remove(self.folder(job_id, index))

    def sweep(self, live: set[str]) -> int:
        """Delete the folders of tasks not in ``live`` (task keys ``job:index``); how many."""
        if not self.root.is_dir():
            return 0
        n = 0
        for path in self.root.iterdir():
            if path.name.replace("-", ":", 1) not in live:
                remove(path)
                n += 1
        return n


def remove(folder: Path) -> None:
    """Delete a checkpoint folder. What the app made is its user's: a worker that is not root may be refused a
    folder the app made unwritable; that is logged, and the next start's sweep tries again."""
    def grant(func: Any, path: str, exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(path), 0o777)
            func(path)

    if not folder.exists():
        return
    shutil.rmtree(folder, onerror=grant)
    if folder.exists():
        log.warning("checkpoint_not_removed", folder=str(folder), hint="run the worker as the owner of the files "
                    "its tasks' containers write (or root), or remove the folder by hand")
