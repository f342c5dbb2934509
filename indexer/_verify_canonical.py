"""The verifier's checks of a canonicalised result (an app whose image declares a canonicalise step; see
:mod:`oracle.canonical`).

* the digest is the canonical archive's: ``output/`` and ``logs/`` of the published archive packed again (``raw/``
  left out), or the app's deterministic file inside the canonical output;
* ``canonicalize``: the step, run again here confined as a worker runs it on the published ``raw/output``, writes
  exactly the published canonical output (a successful result), or fails too (a result whose reason is
  ``canonicalize-…``). A task that failed before the step has nothing to re-run (skipped).

The step is read from the labels of the app's pinned image, so the auditor needs the image (here already, or
pulled by digest from its registry) and a Docker engine; without them the re-run is skipped, not failed, and the
digest is checked over the canonical part when the archive has the canonical layout.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import JsonValue

from oracle.canonical import (
    REASON_PREFIX,
    CanonicalizeStep,
    canonical_digest,
    is_canonical_layout,
    read_step,
    run_confined,
    same_tree,
)
from oracle.exceptions import TasknetError
from oracle.images import ImageError, image_exists, pull_by_digest, verify_image_digest
from oracle.market import AppView
from oracle.status import read_status

from ._report import Check

if TYPE_CHECKING:
    import docker

#: the step's wall clock when re-run by an auditor: the declared one, and never less than this (an auditor's
#: machine may be slower than the workers')
MIN_AUDIT_TIMEOUT_S = 30.0


class StepLookup:
    """The canonicalise step of each app image (read once per image id), when a Docker engine is at hand."""

    def __init__(self, docker_client: docker.DockerClient | None) -> None:
        self.docker = docker_client
        self._steps: dict[str, tuple[CanonicalizeStep | None, str]] = {}

    def step(self, app: AppView | None) -> tuple[CanonicalizeStep | None, str]:
        """(step, "") when known (step None: the app has none), else (None, why it is unknown)."""
        if app is None:
            return None, "the app is unknown"
        if self.docker is None:
            return None, "no Docker engine given to read the app image's canonicalise labels"
        if app.image_digest not in self._steps:
            try:
                self._ensure(app)
                self._steps[app.image_digest] = (read_step(self.docker, app.image_digest), "")
            except TasknetError as exc:
                return None, f"the app's image cannot be read here: {exc}"
        return self._steps[app.image_digest]

    def _ensure(self, app: AppView) -> None:
        assert self.docker is not None
        if image_exists(self.docker, app.image_digest):
            verify_image_digest(self.docker, app.image_digest, app.image_digest)
        elif "@sha256:" in app.image_ref:
            pull_by_digest(self.docker, app.image_ref, expected_id=app.image_digest)
        else:
            raise ImageError(f"image {app.image_digest} is not on this engine and {app.image_ref!r} is no "
                             "pinned registry reference; load it here first")

    def ensure_step_image(self, step: CanonicalizeStep, app: AppView) -> str:
        """The image the step runs in (the app's, or its own pinned one), here and checked."""
        assert self.docker is not None
        if step.image is None:
            return app.image_digest
        digest = step.image_digest or ""
        if image_exists(self.docker, digest):
            return verify_image_digest(self.docker, digest, digest)
        return pull_by_digest(self.docker, step.image)


def digest_of_canonical(unpacked: Path, deterministic_file: str) -> str:
    """The digest a worker commits to for the canonicalised result unpacked at ``unpacked``."""
    ok = read_status(unpacked / "logs").ok
    return canonical_digest(unpacked, deterministic_file if deterministic_file and ok else None)


def rerun_check(lookup: StepLookup, step: CanonicalizeStep, app: AppView, unpacked: Path, cid: str,
                evidence: dict[str, JsonValue]) -> Check:
    """``canonicalize``: the step run again on the published raw output agrees with the published result."""
    status = read_status(unpacked / "logs")
    ev = {**evidence, "command": step.command, "image": step.image or app.image_digest, "reason": status.reason}
    if not is_canonical_layout(unpacked):
        return Check(name="canonicalize", subject=cid, passed=False, evidence=ev,
                     detail="the app declares a canonicalise step but the result has no raw/ folder beside its "
                            "output: its raw output was not published")
    if not status.ok and not status.reason.startswith(REASON_PREFIX):
        return Check(name="canonicalize", subject=cid, passed=None, evidence=ev,
                     detail=f"the task failed ({status.reason}) before its canonicalise step: nothing to re-run")
    assert lookup.docker is not None
    try:
        image = lookup.ensure_step_image(step, app)
    except TasknetError as exc:
        return Check(name="canonicalize", subject=cid, passed=None, evidence=ev,
                     detail=f"the step's image cannot be had here: {exc}")
    raw = unpacked / "raw" / "output"
    with tempfile.TemporaryDirectory(prefix="tasknet-audit-canon-") as tmp:
        out = Path(tmp) / "out"
        run = run_confined(lookup.docker, image, step.command, raw, out,
                           timeout_s=max(step.timeout_s, MIN_AUDIT_TIMEOUT_S))
        ev["rerun_reason"] = run.reason
        if not status.ok:  # the workers say the step failed: it must fail here too
            passed = not run.ok
            detail = (f"the step fails here too ({run.reason}), as the result says ({status.reason})" if passed else
                      f"the result says the step failed ({status.reason}) but it succeeds here")
        else:
            passed = run.ok and same_tree(out, unpacked / "output")
            detail = ("the step run again on raw/output writes exactly the published canonical output" if passed
                      else f"the step run again on raw/output ({run.reason}) does not write the published "
                           "canonical output")
    return Check(name="canonicalize", subject=cid, passed=passed, detail=detail, evidence=ev)
