"""The *canonicalise* step of an app whose results are not bit-identical (Monte Carlo with floating point, ML
inference, renderers with different SIMD paths).

**Binding.** The step is declared by OCI labels of the app's image. The image is pinned on chain by its image id,
the sha256 of its config, and the labels are part of that config: every replica and every auditor that runs the
pinned image reads the same step, and nobody can change it without changing the app's digest. No contract field
is needed.

* ``org.tasknet.canonicalize``: the step's command, a JSON array of strings (the whole argv: the image's
  ENTRYPOINT is not prepended), for example ``["python3", "/app/canon.py", "2"]``;
* ``org.tasknet.canonicalize.image`` (optional): a second image that holds the step, pinned by digest: an image
  id ``sha256:<64 hex>`` or a registry reference ``host/repo@sha256:<64 hex>``; without it the step runs in the
  app's own image;
* ``org.tasknet.canonicalize.timeout`` (optional): the step's wall clock in seconds (default
  :data:`DEFAULT_TIMEOUT_S`, at most :data:`MAX_TIMEOUT_S`).

**The run.** After a successful task the worker runs the step confined exactly as the task (no network, read-only
root, no capabilities, unprivileged, the task's memory, CPU and output caps) with the task's raw output mounted
read-only at ``/in`` and a fresh, size-capped ``/out``. What it writes to ``/out`` is the result's canonical output.

**The archive** (docs/FORMATS.md, "Canonicalised results"): ``output/…`` is the canonical output, ``logs/`` holds
``status.txt`` (and ``skipped.txt``), and ``raw/output/…`` and ``raw/logs/…`` hold the task's raw output, its
stdout and stderr and the step's. The digest is the sha256 of the *canonical archive*: :func:`oracle.archive.
pack_result` of ``output/`` with ``logs/`` alone (no ``raw/``), or of the app's deterministic file inside the
canonical output when it declares one. Anybody can recompute it from a published archive
(:func:`canonical_digest`), and an auditor can re-run the step on ``raw/output`` (:func:`run_confined`) to check
that the canonical output is what the step makes of the raw one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tarfile
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._log import get_logger
from .archive import (
    LOGS_PREFIX,
    OUTPUT_PREFIX,
    ExtractStats,
    PackedResult,
    _add_tree,
    _tarinfo,
    extract_tar,
    pack_result,
    sha256_file,
)
from .exceptions import TasknetError
from .images import BUSYBOX_BASE, NOBODY_UID, ImageError, build_busybox_base, confinement

if TYPE_CHECKING:
    import docker

log = get_logger(__name__)

LABEL_COMMAND = "org.tasknet.canonicalize"
LABEL_IMAGE = "org.tasknet.canonicalize.image"
LABEL_TIMEOUT = "org.tasknet.canonicalize.timeout"
DEFAULT_TIMEOUT_S = 60.0
MAX_TIMEOUT_S = 3600.0
#: the published archive's folder for the raw output and the logs (the app's and the step's)
RAW_PREFIX = "raw"
#: the step's stdout and stderr, under ``raw/logs/``
STEP_STDOUT, STEP_STDERR = "canonicalize-stdout.txt", "canonicalize-stderr.txt"
#: a failure of the step is the result's reason with this prefix: ``canonicalize-nonzero-exit``,
#: ``canonicalize-timeout``, ``canonicalize-output-too-large``, ``canonicalize-oom`` ...
REASON_PREFIX = "canonicalize-"


class CanonicalizeInvalid(TasknetError):
    """An image's canonicalise labels are malformed."""


class CanonicalizeStep(BaseModel):
    """A canonicalise step as an app image's labels declare it."""

    model_config = ConfigDict(frozen=True)

    command: Annotated[list[str], Field(min_length=1)]
    image: str | None = None
    timeout_s: Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S)] = DEFAULT_TIMEOUT_S

    @field_validator("command")
    @classmethod
    def _argv(cls, value: list[str]) -> list[str]:
        if not value[0] or any("\0" in a for a in value):
            raise ValueError("the command's first word must name a program and no word may hold a NUL byte")
        return value

    @field_validator("image")
    @classmethod
    def _pinned(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digest = value.rsplit("@", 1)[-1]
        if not (digest.startswith("sha256:") and len(digest) == 71
                and all(c in "0123456789abcdef" for c in digest[7:])):
            raise ValueError(f"{value!r} is not pinned by digest: give an image id 'sha256:<64 hex>' or "
                             "'host/repo@sha256:<64 hex>' (a tag can be moved, so it is never trusted)")
        return value

    @property
    def image_digest(self) -> str | None:
        """The pin of the step's own image (``sha256:…``), or None when it runs in the app's image."""
        return None if self.image is None else self.image.rsplit("@", 1)[-1]

    def labels(self) -> dict[str, str]:
        """The image labels that declare this step."""
        out = {LABEL_COMMAND: json.dumps(self.command)}
        if self.image is not None:
            out[LABEL_IMAGE] = self.image
        if self.timeout_s != DEFAULT_TIMEOUT_S:
            out[LABEL_TIMEOUT] = f"{self.timeout_s:g}"
        return out


def step_from_labels(labels: Mapping[str, str] | None) -> CanonicalizeStep | None:
    """The step an image's labels declare, or None when they declare none (:class:`CanonicalizeInvalid` when they
    are malformed: every replica then sees the same error)."""
    labels = labels or {}
    raw = labels.get(LABEL_COMMAND)
    if raw is None:
        if LABEL_IMAGE in labels or LABEL_TIMEOUT in labels:
            raise CanonicalizeInvalid(f"the image has a {LABEL_IMAGE!r} or {LABEL_TIMEOUT!r} label but no "
                                      f"{LABEL_COMMAND!r} label naming the step's command")
        return None
    try:
        command = json.loads(raw)
        if not isinstance(command, list) or not all(isinstance(a, str) for a in command):
            raise ValueError("not a JSON array of strings")
        timeout = float(labels.get(LABEL_TIMEOUT, DEFAULT_TIMEOUT_S))
        return CanonicalizeStep(command=command, image=labels.get(LABEL_IMAGE) or None, timeout_s=timeout)
    except (ValueError, ValidationError) as exc:
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise CanonicalizeInvalid(
            f"the image's canonicalise labels are malformed ({detail}): {LABEL_COMMAND} must be a JSON array of "
            f"strings such as '[\"/app/canon\", \"2\"]', {LABEL_TIMEOUT} a number of seconds up to "
            f"{MAX_TIMEOUT_S:g}, {LABEL_IMAGE} an image pinned by digest; rebuild the image with valid labels"
        ) from exc


def read_step(client: docker.DockerClient, image: str) -> CanonicalizeStep | None:
    """The step the labels of local image ``image`` declare (None: the app has none)."""
    import docker.errors

    try:
        labels = client.images.get(image).labels
    except docker.errors.ImageNotFound as exc:
        raise ImageError(f"image {image} is not on this Docker engine; fetch it by digest first") from exc
    return step_from_labels(labels)


def parse_command(text: str) -> list[str]:
    """A step's command as a user types it: a JSON array, or words split as a shell would (no expansion)."""
    import shlex

    stripped = text.strip()
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except ValueError as exc:
            raise CanonicalizeInvalid(f"--canonicalize {text!r} starts like a JSON array but is not one ({exc}); "
                                      "write '[\"/app/canon\", \"2\"]' or plain words '/app/canon 2'") from exc
        if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
            raise CanonicalizeInvalid(f"--canonicalize {text!r} must be an array of strings")
        return value
    words = shlex.split(stripped)
    if not words:
        raise CanonicalizeInvalid("--canonicalize needs a command, e.g. '/app/canon 2'")
    return words


def step_from_options(command: str, image: str | None = None, timeout_s: float | None = None) -> CanonicalizeStep:
    """The step a user declares on the command line (``--canonicalize`` and friends)."""
    argv = parse_command(command)
    try:
        return CanonicalizeStep(command=argv, image=image, timeout_s=DEFAULT_TIMEOUT_S if timeout_s is None
                                else timeout_s)
    except ValidationError as exc:
        raise CanonicalizeInvalid(f"the canonicalise step is invalid: {exc.errors()[0]['msg']}") from exc


def canonical_tag(image: str) -> str:
    """The tag of the thin image :func:`add_step` builds on ``image`` (``repo:tag`` -> ``repo:tag-canonicalize``)."""
    if image.startswith("sha256:"):
        return f"tasknet/app-{image.removeprefix('sha256:')[:12]}:canonicalize"
    repo = image.split("@", 1)[0]
    name = repo.rsplit("/", 1)[-1]
    return f"{repo}-canonicalize" if ":" in name and "@" not in image else f"{repo}:canonicalize"


def add_step(client: docker.DockerClient, image: str, step: CanonicalizeStep, tag: str) -> str:
    """A thin image on top of ``image`` that only adds ``step``'s labels, tagged ``tag``; return its image id.
    The new image id is what the app is then pinned to (its labels are part of it)."""
    import docker.errors

    lines = [f"FROM {image}"] + [f"LABEL {k}={json.dumps(v)}" for k, v in sorted(step.labels().items())]
    with tempfile.TemporaryDirectory(prefix="tasknet-canon-") as tmp:
        (Path(tmp) / "Dockerfile").write_text("\n".join(lines) + "\n")
        try:
            built, _ = client.images.build(path=tmp, tag=tag, network_mode="none", pull=False, rm=True,
                                           forcerm=True)
        except (docker.errors.BuildError, docker.errors.APIError) as exc:
            raise ImageError(f"adding the canonicalise labels to {image} failed ({exc}); is {image} a local "
                             "image ('docker images')?") from exc
    found = step_from_labels(built.labels)
    if found != step:
        raise ImageError(f"the image built from {image} declares {found} instead of {step}")
    log.info("canonicalize_labels_added", image=image, tag=tag, image_id=built.id, command=step.command)
    return str(built.id)


# -- archives ----------------------------------------------------------------------------------------
def pack_canonical(canon_out: Path, dest: Path, *, logs: Mapping[str, Path], raw_out: Path,
                   raw_logs: Mapping[str, Path], deterministic_file: str | None = None) -> PackedResult:
    """Write the published archive of a canonicalised result to ``dest`` (``output/`` = ``canon_out``, ``logs/``
    = ``logs``, then ``raw/output/`` = ``raw_out`` and ``raw/logs/`` = ``raw_logs``). The digest is the canonical
    archive's (``output/`` and ``logs/`` alone, packed by :func:`pack_result`), or the deterministic file's."""
    canonical = dest.with_name(dest.name + ".canonical")
    try:
        packed = pack_result(canon_out, canonical, logs=logs, deterministic_file=deterministic_file)
        skipped = list(packed.skipped)
        files = packed.files
        with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
            for member in _members(canonical):
                tar.addfile(*member)
            tar.addfile(_tarinfo(RAW_PREFIX, os.stat(raw_out)))
            files += _add_tree(tar, raw_out, f"{RAW_PREFIX}/{OUTPUT_PREFIX}", skipped)
            tar.addfile(_tarinfo(f"{RAW_PREFIX}/{LOGS_PREFIX}", os.stat(raw_out)))
            for name in sorted(raw_logs, key=lambda n: n.encode()):
                path = raw_logs[name]
                with path.open("rb") as fh:
                    tar.addfile(_tarinfo(f"{RAW_PREFIX}/{LOGS_PREFIX}/{name}", os.stat(path)), fh)
                files += 1
    finally:
        canonical.unlink(missing_ok=True)
    return PackedResult(archive_path=dest, archive_size=dest.stat().st_size, archive_sha256=sha256_file(dest),
                        digest=packed.digest, digest_source="canonical", deterministic_file=deterministic_file,
                        files=files, skipped=skipped)


def _members(archive: Path) -> list[tuple[tarfile.TarInfo, Any]]:
    """The members of a canonical archive with their content, to copy them into the published one."""
    out: list[tuple[tarfile.TarInfo, Any]] = []
    with tarfile.open(archive, "r:") as tar:
        for info in tar:
            data = tar.extractfile(info) if info.isfile() else None
            out.append((info, None if data is None else _Bytes(data.read())))
    return out


class _Bytes:
    """A file object over bytes (tarfile.addfile reads ``size`` bytes from it)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        chunk = self.data[self.pos:end]
        self.pos += len(chunk)
        return chunk


def is_canonical_layout(unpacked: Path) -> bool:
    """Whether an unpacked result has the canonicalised layout (a ``raw/`` folder beside ``output/``)."""
    return (unpacked / RAW_PREFIX).is_dir()


def canonical_digest(unpacked: Path, deterministic_file: str | None = None) -> str:
    """The digest of an unpacked result with the canonicalised layout: the sha256 of ``output/`` and ``logs/``
    packed again canonically (``raw/`` left out), or of ``deterministic_file`` inside ``output/``."""
    logs_dir = unpacked / LOGS_PREFIX
    logs = {p.name: p for p in sorted(logs_dir.iterdir())} if logs_dir.is_dir() else {}
    with tempfile.TemporaryDirectory(prefix="tasknet-canonical-") as tmp:
        out = unpacked / OUTPUT_PREFIX
        if not out.is_dir():
            out = Path(tmp) / "empty"
            out.mkdir()
        packed = pack_result(out, Path(tmp) / "canonical.tar", logs=logs, deterministic_file=deterministic_file)
        return packed.digest


def same_tree(a: Path, b: Path) -> bool:
    """Whether folders ``a`` and ``b`` hold the same names, kinds and file bytes (the execute bit included, as
    the archive keeps it)."""
    def listing(root: Path) -> dict[str, tuple[str, bool, str]]:
        out = {}
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                continue
            if p.is_dir():
                out[rel] = ("dir", False, "")
            elif p.is_file():
                out[rel] = ("file", bool(p.stat().st_mode & 0o111), sha256_file(p))
        return out
    return listing(a) == listing(b)


# -- a confined run for auditors ---------------------------------------------------------------------
class ConfinedRun(BaseModel):
    """How :func:`run_confined` ended: ``reason`` is ``ok``, ``nonzero-exit``, ``timeout`` or an output reason."""

    reason: str
    exit_code: int | None = None
    stats: ExtractStats | None = None

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


def run_confined(client: docker.DockerClient, image: str, command: list[str], in_dir: Path, out_dir: Path, *,
                 timeout_s: float, memory_bytes: int = 512 << 20, output_bytes: int = 256 << 20,
                 output_files: int = 10_000) -> ConfinedRun:
    """Run ``command`` (the whole argv) in ``image`` as a worker runs a task: no network, read-only root, no
    capabilities, no-new-privileges, an unprivileged user, pids and memory limits, ``in_dir`` read-only at ``/in``,
    a size-capped tmpfs volume at ``/out`` (kept mounted by a busybox holder, from which it is copied out into
    ``out_dir``), and a wall-clock kill. Everything is removed afterwards. For auditors (the verifier): a worker
    runs its steps through its own sandbox, which pools the holders."""
    import docker.errors
    from docker.types import Mount

    holder_image = build_busybox_base(client, tag=BUSYBOX_BASE)
    for p in [in_dir, *in_dir.rglob("*")]:
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | (0o555 if p.is_dir() else 0o444))
    name = f"tasknet-audit-{uuid.uuid4().hex[:12]}"
    user = f"{NOBODY_UID}:{NOBODY_UID}"
    confined = confinement(user, {"tasknet.audit": name})
    volume = holder = app = None
    try:
        volume = client.volumes.create(name=name, driver="local", labels={"tasknet.audit": name}, driver_opts={
            "type": "tmpfs", "device": "tmpfs",
            "o": f"size={output_bytes + 4096},nr_inodes={output_files + 2},uid=0,gid={NOBODY_UID},mode=1775,"
                 "nosuid,nodev"})
        holder = client.containers.create(holder_image, ["sleep", "86400"], name=name + "-holder",
                                          mounts=[Mount("/out", name, type="volume", no_copy=True)], pids_limit=8,
                                          mem_limit=32 << 20, **confined)
        holder.start()
        app = client.containers.create(
            image, command[1:], entrypoint=command[:1], name=name, working_dir="/out",
            mounts=[Mount("/out", name, type="volume", no_copy=True), Mount("/in", str(in_dir.resolve()), type="bind",
                                                               read_only=True)],
            environment={"HOME": "/tmp", "TASKNET_INPUT": "/in", "TASKNET_OUTPUT": "/out"},
            tmpfs={"/tmp": "rw,nosuid,nodev,size=67108864,mode=1777"}, pids_limit=256,
            mem_limit=memory_bytes + output_bytes + (64 << 20), memswap_limit=memory_bytes + output_bytes + (64 << 20),
            **confined)
        try:
            app.start()
        except docker.errors.APIError:
            return ConfinedRun(reason="start-failed")
        reason, code = _wait_or_kill(app, timeout_s)
        stats = _copy_out(holder, out_dir, output_bytes, output_files)
        if stats.problem is not None:
            reason = stats.problem.reason
        elif reason == "ok" and code != 0:
            reason = "nonzero-exit"
        return ConfinedRun(reason=reason, exit_code=code, stats=stats)
    finally:
        for resource in (app, holder, volume):
            if resource is not None:
                with contextlib.suppress(docker.errors.APIError):
                    resource.remove(force=True)


def _wait_or_kill(app: Any, timeout_s: float) -> tuple[str, int | None]:
    """Wait for the started container ``app`` to exit: ("ok", its exit code); or, once ``timeout_s`` ran out, kill
    it: ("timeout", None)."""
    import docker.errors
    import requests

    started = time.monotonic()
    try:
        return "ok", int(app.wait(timeout=timeout_s).get("StatusCode", -1))
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):  # the wall clock ran out
        if time.monotonic() - started < timeout_s - 0.5:
            raise
        with contextlib.suppress(docker.errors.APIError):
            app.kill()
        return "timeout", None


def _copy_out(holder: Any, out_dir: Path, output_bytes: int, output_files: int) -> ExtractStats:
    """The holder's ``/out`` copied into ``out_dir`` (at most twice the cap is read)."""
    stream, _ = holder.get_archive("/out")
    with tempfile.TemporaryFile() as spool:
        taken = 0
        for chunk in stream:
            taken += len(chunk)
            if taken > 2 * output_bytes + (16 << 20):
                break
            spool.write(chunk)
        spool.seek(0)
        scratch = Path(tempfile.mkdtemp(prefix="tasknet-audit-out-"))
        try:
            with tarfile.open(fileobj=spool, mode="r:") as tar:
                stats = extract_tar(tar, scratch, max_bytes=output_bytes, max_files=output_files + 1, strict=False)
            root = scratch / "out"  # get_archive names the folder itself first
            out_dir.mkdir(parents=True, exist_ok=True)
            if root.is_dir():
                for child in root.iterdir():
                    shutil.move(str(child), out_dir / child.name)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return stats
