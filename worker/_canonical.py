"""The canonicalise step of an app whose results are not bit-identical (see :mod:`oracle.canonical`).

After a successful task the step runs in the same sandbox, confined the same way (the task's memory, CPUs and
output cap; its own wall clock from the image's labels), with the raw output read-only at ``/in`` and a fresh
``/out``. Whatever it does (fails, loops, writes too much, writes unsafe names) ends as a failure result whose
reason is ``canonicalize-<the run's reason>``: every honest replica reaches the same one, so nobody is slashed.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from oracle import get_logger
from oracle.archive import PackedResult, escape_name, unsafe_name
from oracle.canonical import (
    REASON_PREFIX,
    STEP_STDERR,
    STEP_STDOUT,
    CanonicalizeInvalid,
    CanonicalizeStep,
    pack_canonical,
    read_step,
)
from oracle.images import ImageDigestMismatch, ImageError, image_exists, pull_by_digest, verify_image_digest
from oracle.status import MISSING_DETERMINISTIC_FILE, SKIPPED_FILE, STATUS_FILE, format_status

from ._sandbox import Limits, Reason, RunResult, RunSpec, Sandbox

if TYPE_CHECKING:
    import docker

log = get_logger("worker.canonical")

#: reasons of a task run whose raw output was refused as a whole: none of it is published
_NO_RAW_OUTPUT = frozenset({Reason.OUTPUT_UNSAFE, Reason.OUTPUT_TOO_DEEP, Reason.OUTPUT_TOO_LARGE,
                            Reason.OUTPUT_TOO_MANY_FILES})


class StepOutcome(BaseModel):
    """How a canonicalised task ended: ``reason`` (``ok``, the task's own reason, or ``canonicalize-…``), the exit
    code and sentence for ``status.txt``, and the step's run when it ran."""

    model_config = ConfigDict(frozen=True)

    reason: str
    exit_code: int | None = None
    sentence: str | None = None
    step_run: RunResult | None = None

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


class Canonicalizer:
    """Finds an app's step (its image's labels, read once per image id) and runs it in ``sandbox``."""

    def __init__(self, sandbox: Sandbox, docker_client: docker.DockerClient) -> None:
        self.sandbox, self.docker = sandbox, docker_client
        self._steps: dict[str, CanonicalizeStep | None] = {}

    def step_of(self, image_digest: str) -> CanonicalizeStep | None:
        """The step the app's (local, verified) image declares; :class:`CanonicalizeInvalid` when malformed."""
        if image_digest not in self._steps:
            self._steps[image_digest] = read_step(self.docker, image_digest)
        return self._steps[image_digest]

    def run(self, step: CanonicalizeStep, app_image: str, task: RunResult, limits: Limits, folder: Path,
            deterministic_file: str) -> StepOutcome:
        """Run ``step`` on the task's raw output (``task.output_dir``) when the task succeeded; the canonical output
        goes to ``folder/canonical``, the step's logs to ``folder/canonical-logs``. Raises ImageError when the
        step's own image cannot be had here (this worker's environment, not the task's answer)."""
        if not task.ok:
            return StepOutcome(reason=task.reason.value, exit_code=task.exit_code, sentence=task.explanation or None)
        try:
            image = app_image if step.image is None else self._ensure_image(step)
        except ImageDigestMismatch as exc:  # the image served is not the one pinned: every worker sees it
            log.warning("canonicalize_image_mismatch", image=step.image, error=str(exc))
            return StepOutcome(reason=REASON_PREFIX + Reason.IMAGE_MISMATCH.value,
                               sentence="the canonicalise step failed: its image does not match its pinned digest")
        for name in ("canonical", "canonical-logs"):  # a run before a restart may have left them
            shutil.rmtree(folder / name, ignore_errors=True)
        spec = RunSpec(image=image, image_digest=step.image_digest or app_image, entrypoint=step.command[:1],
                       command=step.command[1:], input_dir=task.output_dir, output_dir=folder / "canonical",
                       log_dir=folder / "canonical-logs", task=f"{folder.name}-canonicalize",
                       limits=limits.model_copy(update={"wall_seconds": step.timeout_s}))
        run = self.sandbox.run(spec)
        if run.reason is Reason.IMAGE_MISSING:
            raise ImageError(f"the canonicalise step's image {step.image} is not on this engine: {run.message}")
        log.info("canonicalized", task=spec.task, reason=run.reason.value, run_s=round(run.run_seconds, 3),
                 **({} if run.ok else {"why": run.message}))
        if not run.ok:
            return StepOutcome(reason=REASON_PREFIX + run.reason.value, exit_code=run.exit_code, step_run=run,
                               sentence=f"the canonicalise step failed: {run.explanation or run.message}")
        missing = _missing_file(run.output_dir, deterministic_file)
        if missing is not None:
            return StepOutcome(reason=MISSING_DETERMINISTIC_FILE, exit_code=run.exit_code, sentence=missing,
                               step_run=run)
        return StepOutcome(reason="ok", exit_code=task.exit_code, step_run=run)

    def _ensure_image(self, step: CanonicalizeStep) -> str:
        """The step's own image, here and checked against its pin (pulled by digest from its registry)."""
        assert step.image is not None and step.image_digest is not None
        if image_exists(self.docker, step.image_digest):
            return verify_image_digest(self.docker, step.image_digest, step.image_digest)
        if "@" in step.image:
            return pull_by_digest(self.docker, step.image)
        raise ImageError(f"the canonicalise step's image {step.image} is not on this engine and names no registry "
                         "to pull it from; load it here ('docker load') or have the app owner pin it as "
                         "'host/repo@sha256:…'")


def pack(folder: Path, task: RunResult | None, outcome: StepOutcome, deterministic_file: str) -> PackedResult:
    """The published archive of a canonicalised task (see :func:`oracle.canonical.pack_canonical`): the canonical
    output (none unless the task and its step succeeded) with ``logs/status.txt``, beside ``raw/``: the task's raw
    output (unless refused as a whole), its stdout and stderr, its skipped entries and the step's logs."""
    status = folder / STATUS_FILE
    status.write_text(format_status(outcome.reason, outcome.exit_code, outcome.sentence))
    logs = {STATUS_FILE: status}
    empty = folder / "no-output"
    empty.mkdir(exist_ok=True)
    canon = empty
    step = outcome.step_run
    if outcome.ok and step is not None:
        canon = step.output_dir
        if step.skipped:
            skipped = folder / SKIPPED_FILE
            skipped.write_text("".join(line + "\n" for line in step.skipped))
            logs[SKIPPED_FILE] = skipped
    raw_out, raw_logs = empty, {}
    if task is not None:
        raw_logs = {"stdout.txt": task.stdout_path, "stderr.txt": task.stderr_path}
        if task.reason not in _NO_RAW_OUTPUT:
            raw_out = task.output_dir
            if task.skipped:
                raw_skipped = folder / "raw-skipped.txt"
                raw_skipped.write_text("".join(line + "\n" for line in task.skipped))
                raw_logs[SKIPPED_FILE] = raw_skipped
    if step is not None:
        raw_logs |= {STEP_STDOUT: step.stdout_path, STEP_STDERR: step.stderr_path}
    det = deterministic_file if outcome.ok and deterministic_file else None
    return pack_canonical(canon, folder / "result.tar", logs=logs, raw_out=raw_out, raw_logs=raw_logs,
                          deterministic_file=det)


def _missing_file(out: Path, declared: str) -> str | None:
    """Why the canonical output lacks the app's declared deterministic file (None: it has it, or none is declared)."""
    if not declared:
        return None
    rel = PurePosixPath(declared)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or unsafe_name(declared) is not None:
        return (f"the app declares '{escape_name(declared)}' as its deterministic file, which is not a relative "
                "path inside the output folder")
    try:
        if stat.S_ISREG(os.lstat(out.joinpath(*rel.parts)).st_mode):
            return None
    except OSError:
        pass
    return f"the canonicalise step did not write the app's declared deterministic file '{escape_name(declared)}'"


__all__ = ["CanonicalizeInvalid", "Canonicalizer", "StepOutcome", "pack"]
