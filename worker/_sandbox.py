"""Run an app image confined as DESIGN.md says, and always clean up after it.

Every task container gets: no network (``network_mode=none``: only ``lo``), a read-only root, all capabilities
dropped, ``no-new-privileges``, an unprivileged user (65534:65534), pids/memory/CPU limits (no swap), a private
size-capped ``/tmp`` and ``/dev/shm``, the inputs read-only at ``/in``, a size-capped output folder at ``/out``
(also its working directory), no core dumps, and a wall-clock kill. The container is created and started in a
``try`` whose ``finally`` removes it, whatever happens.

**How the output cap works.** Docker's overlay2 here has no quota, so ``/out`` is a *tmpfs volume* (Docker's
``local`` driver, ``type=tmpfs,size=…,nr_inodes=…``): the kernel refuses writes past the cap (the app gets
ENOSPC), so neither disk nor RAM can be flooded whatever the app does. A tmpfs volume is unmounted (and its
content lost) when no running container uses it, so a tiny *holder* container (busybox, confined the same way)
mounts it and keeps it alive. After the app exits the holder writes ``/out`` as a tar stream on its attached
stdout (no host mount, no root needed; Docker's own ``get_archive`` costs ~50 ms of CPU a call, the holder's tar
~3 ms), which is extracted as it comes into the host's output folder, keeping regular files and folders only
(symlinks are never followed nor copied), and checking the apparent size again (a sparse file could claim more
than the cap: the rest of such an archive is never read, and the slot is dropped). Pages written to ``/out``
and ``/tmp`` are charged to the app's memory cgroup, so the container's memory limit is ``memory + output + tmp``
bytes: the RAM a task can take is exactly that sum.

**What the output may hold.** The cap counts each file's bytes rounded up to 4 KiB pages (what the tmpfs takes
for it; hard links count once per name): an output that takes exactly the cap is accepted. The volume is one page
and one inode larger than the caps, so an app that tries to go past them is seen to (its pages or its entries
exceed the cap) rather than taken for one that stopped exactly at them. Whatever the output holds never raises:
over a cap (``output-too-large``, ``output-too-many-files``), deeper than 128 levels or a path over 4,000 bytes
(``output-too-deep``), a name that is not portable (``output-unsafe``) are reasons of the run's result, decided
by what the output holds, not by the order it is read in (see :func:`oracle.archive.extract_tar`). Sockets, which
the holder's tar ignores, are listed by the holder first and reported as skipped like links.

**Output slots are reused.** A volume with its holder is an *output slot*. Slots are pooled: on a line the
worker writes to the holder's stdin, it restores the owner's rights on what the app left (so it can read and
remove all of it), lists the sockets, writes the tar, empties ``/out`` and answers with its tar's status and the
count of entries left; the slot serves the next run once it answers 0, and is removed otherwise. The answer also
proves the holder ran all along, so the copy is the whole output. The volume's root is root's (mode 1775, the
sandbox user's group): the app writes in it but cannot change its mode, owner, ACL or extended attributes (user
attributes of a sticky folder are its owner's), and what it writes inside goes with its attributes when the slot
is emptied, so nothing of a task reaches the next. The app joins the holder's network namespace (``network_mode=container:…``),
which has no interface but ``lo`` and nothing listening: creating and destroying a namespace per task cost more
CPU than the rest of a trivial run. Two runs never share a slot at once, and nothing of a run survives into the
next (its processes die with its pid namespace; IPC, ``/tmp`` and ``/dev/shm`` stay private per container; the
holder's ``/etc/hosts`` and ``/etc/hostname`` are root's, read-only to the app). The holder exits when the
worker's connection to its stdin closes, so a crashed worker's slots unmount themselves; :meth:`cleanup` removes
what is left.

Stdout and stderr are read live through an ``attach`` stream (the container's log driver is ``none``, so the
engine stores nothing) and the first ``log_bytes`` of each are kept. A monitor thread reads the container's pids
cgroup (when the engine runs on this host) and kills a container that hits its pids limit at once (a fork
bomb), so it does not eat the wall clock.

Stderr written after stdout has dropped 64 MiB past its cap is lost: the pump then detaches so that a flooding
app cannot keep the worker's CPU busy.

**Reused containers.** With ``reuse_dir`` set and the engine on this host, runs that carry a ``reuse`` group (the
worker gives the app) run one after another in a long-lived container beside their slot, started by its launcher
(its first process) and reset between runs; :meth:`Sandbox.prepare` makes them before a run comes. See
worker/_reuse.py for what is reset, what an app may notice, and when a container is replaced instead.

Measured here (dockerd 20.10, cgroup v1, 2 cores): creating, starting, waiting for and removing a confined
``true`` costs ~0.23 s of CPU with a network namespace of its own and ~0.12 s joining a slot's; a new slot costs
~0.3 s more; copying a small output out and emptying the slot a few ms. A whole run of a trivial task (checks,
container, copy-out) takes the machine ~0.21 s of CPU in a fresh container and ~0.12 s in a reused one.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import io
import math
import os
import shutil
import socket
import tarfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple, Self

from pydantic import BaseModel, ConfigDict, Field

from oracle import get_logger, status
from oracle.archive import (
    MAX_DEPTH,
    MAX_PATH_BYTES,
    ExtractStats,
    OutputProblem,
    escape_name,
    extract_tar,
    open_tar_stream,
)
from oracle.images import (
    BUSYBOX_BASE,
    ImageDigestMismatch,
    ImageError,
    build_busybox_base,
    check_image_pin,
    confinement,
)

from . import _reuse
from ._gpus import device_requests, is_gpu_start_error
from .exceptions import GpuUnavailable, SandboxError

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

log = get_logger(__name__)

MiB = 1 << 20
_PAGE = 4096
#: the output holder's program (busybox sh): for each line N read on stdin, give the owner back every right on
#: what the app left in /out; write "N <bytes>" and the NUL-separated paths of the sockets in /out (its tar
#: ignores them; the worker lists them as skipped); write /out as a tar archive; remove it all; answer
#: "N <tar's exit status> <entries left>". Exit when stdin closes (the worker went away). /out itself is root's
#: (sticky, group-writable): neither the app nor the holder can change its mode, owner, ACL or attributes.
#: (find names /out's entries: ``chmod -R /out`` stops at /out, which is not the holder's, and a glob of
#: 10,000 long names could pass ARG_MAX where busybox execs its applets.)
_HOLDER_SCRIPT = ('while read -r n; do find /out -mindepth 1 -maxdepth 1 -exec chmod -R u+rwX {} + 2>/dev/null; '
                  's=$(( $(find /out -type s -print0 2>/dev/null | wc -c) )); echo "$n $s"; '
                  '[ "$s" -eq 0 ] || find /out -type s -print0 2>/dev/null; '
                  'tar -cf - -C /out .; r=$?; find /out -mindepth 1 -maxdepth 1 -exec rm -rf {} + 2>/dev/null; '
                  'echo "$n $r $(ls -A /out | wc -l)"; done')
#: mode of the output volume's root (owner root, group the sandbox user's): sticky and group-writable, so the app
#: writes in it but cannot chmod it, chown it, set an ACL or a user extended attribute on it (a sticky folder's
#: user.* attributes are its owner's) - nothing of it carries over to the next task using the slot
_OUT_MODE = "1775"
#: seconds an image's check against its pin is kept (see Sandbox._checked_image)
IMAGE_RECHECK_S = 10.0
_ZERO_BLOCK = bytes(512)


class Limits(BaseModel):
    """Resources one task may use. RAM taken in total is ``memory_bytes + output_bytes + tmp_bytes``."""

    model_config = ConfigDict(frozen=True)

    wall_seconds: Annotated[float, Field(gt=0)] = 3600.0
    memory_bytes: Annotated[int, Field(ge=8 * MiB)] = 512 * MiB
    cpus: Annotated[float, Field(gt=0)] = 1.0
    pids: Annotated[int, Field(ge=4)] = 256
    output_bytes: Annotated[int, Field(ge=_PAGE)] = 256 * MiB
    output_files: Annotated[int, Field(ge=2)] = 10_000
    tmp_bytes: Annotated[int, Field(ge=_PAGE)] = 64 * MiB
    log_bytes: Annotated[int, Field(ge=0)] = 1 * MiB  # kept per stream; archived, so keep it a protocol constant

    @property
    def ram_bytes(self) -> int:
        return self.memory_bytes + self.output_bytes + self.tmp_bytes


class Reason(str, enum.Enum):
    """Why a run ended. Only ``ok`` is a success."""

    OK = "ok"
    NONZERO_EXIT = "nonzero-exit"
    TIMEOUT = "timeout"
    OOM = "oom"
    PIDS = "pids"
    OUTPUT_TOO_LARGE = status.OUTPUT_TOO_LARGE
    OUTPUT_TOO_MANY_FILES = status.OUTPUT_TOO_MANY_FILES
    OUTPUT_TOO_DEEP = status.OUTPUT_TOO_DEEP
    OUTPUT_UNSAFE = status.OUTPUT_UNSAFE
    MISSING_DETERMINISTIC_FILE = status.MISSING_DETERMINISTIC_FILE  # judged by the pipeline, which knows the app
    IMAGE_MISSING = "image-missing"
    IMAGE_MISMATCH = "image-digest-mismatch"
    START_FAILED = "start-failed"
    CHECKPOINT_TOO_LARGE = "checkpoint-too-large"  # judged by the pipeline (worker/_checkpoint.py)


#: the status.txt sentences of runs refused before they started
_IMAGE_EXPLANATIONS = {Reason.IMAGE_MISSING: "the app's image could not be found by its registered digest",
                       Reason.IMAGE_MISMATCH: "the app's image does not match its registered digest"}


class RunSpec(BaseModel):
    """One confined run. ``command`` replaces the image's CMD (its ENTRYPOINT is kept)."""

    model_config = ConfigDict(frozen=True)

    image: str
    image_digest: str | None = None  # image id or registry digest the image must match; checked before running
    command: list[str] | None = None
    entrypoint: list[str] | None = None  # replaces the image's ENTRYPOINT when given (a canonicalise step's argv)
    env: dict[str, str] = {}
    input_dir: Path | None = None  # mounted read-only at /in (made world-readable)
    output_dir: Path  # receives /out; created, must be empty
    log_dir: Path  # receives stdout and stderr
    limits: Limits = Field(default_factory=Limits)
    task: str = ""  # a label for logs and container labels (e.g. the task id)
    #: the GPUs the container is given, and no others (ids from worker/_gpus.py: "0", or "nvidia.com/gpu=0" for CDI)
    gpus: tuple[str, ...] = ()
    checkpoint_dir: Path | None = None  # mounted read-write at /checkpoint, kept across stops (worker/_checkpoint.py)
    #: runs with the same key (the worker passes the job) may share one reused container, one after another
    #: (worker/_reuse.py); None: a fresh container
    reuse: str | None = None


class RunResult(BaseModel):
    """What happened to a run. ``reason`` is machine-readable, ``message`` is for people (with this worker's
    limits and the last stderr line); ``explanation`` says it in one sentence holding only what every replica
    shares (no limit of this worker, no path, no time): it goes into the result's ``status.txt``."""

    model_config = ConfigDict(frozen=True)

    reason: Reason
    message: str
    explanation: str = ""
    exit_code: int | None = None
    #: a signal the engine delivered (``docker kill``, a stop, an engine shutdown) that none of our limits sent:
    #: the run says nothing about the app (see Sandbox._execute)
    killed_from_outside: bool = False
    image_id: str | None = None
    run_seconds: float = 0.0  # container start to exit
    total_seconds: float = 0.0  # the whole call: checks, containers, copy-out, clean-up
    output_dir: Path
    output_bytes: int = 0
    output_files: int = 0
    output_entries: int = 0  # files, folders, links, specials: what counts against limits.output_files
    skipped: list[str] = []  # output entries not copied out (symlinks, sockets, …) with why, escaped, in order
    stdout_path: Path
    stderr_path: Path
    stdout_bytes: int = 0  # bytes the app wrote (kept: at most limits.log_bytes)
    stderr_bytes: int = 0
    logs_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.reason is Reason.OK


class _LogPump(threading.Thread):
    """Reads a container's multiplexed attach stream into two files, keeping the first ``cap`` bytes of each."""

    def __init__(self, sock: Any, stdout: Path, stderr: Path, cap: int) -> None:
        super().__init__(name="sandbox-logs", daemon=True)
        self.sock, self.paths, self.cap = sock, {1: stdout, 2: stderr}, cap
        self.seen = {1: 0, 2: 0}
        self.drain_limit = max(64 * MiB, 16 * cap)  # past this many dropped bytes stop reading: Docker discards

    def run(self) -> None:
        from docker.utils.socket import SocketError, frames_iter

        files = {k: p.open("wb") for k, p in self.paths.items()}
        try:
            for stream, data in frames_iter(self.sock, tty=False):
                if stream not in files:
                    continue
                room = self.cap - self.seen[stream]
                if room > 0:
                    files[stream].write(data[:room])
                self.seen[stream] += len(data)
                if sum(max(0, n - self.cap) for n in self.seen.values()) > self.drain_limit:
                    break
        except (OSError, SocketError, ValueError):
            pass  # the socket was shut down: the container is gone
        finally:
            for fh in files.values():
                fh.close()
            self.close()

    def close(self) -> None:
        raw = getattr(self.sock, "_sock", self.sock)
        if raw is not None:
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()


class _PidsWatch(threading.Thread):
    """Polls the container's pids cgroup; kills the container the moment it hits its pids limit."""

    def __init__(self, container: Container, interval: float = 0.05, baseline: int = 0) -> None:
        super().__init__(name="sandbox-pids", daemon=True)
        self.container, self.interval = container, interval
        self.baseline = baseline  # the limit hits before this run (a reused container's earlier runs)
        self.stop = threading.Event()
        self.hit = False

    def run(self) -> None:
        events: Path | None = None
        for _ in range(20):  # the cgroup appears as the container starts
            if self.stop.is_set() or (events := _reuse.cgroup_file(self.container.id, "pids", "pids.events")) is not None:
                break
            time.sleep(0.01)
        if events is None:
            return  # not on this host's cgroup tree (remote engine, nested namespaces): no pids detection
        while not self.stop.wait(self.interval):
            try:
                text = events.read_text()
            except OSError:
                return  # the container exited
            if any(int(line.split()[1]) > self.baseline for line in text.splitlines() if line.startswith("max")):
                self.hit = True
                with contextlib.suppress(Exception):
                    self.container.kill()
                return


def _task_env(spec: RunSpec) -> dict[str, str]:
    """A task's environment: its own, then ours (which win)."""
    env = {**spec.env, "HOME": "/tmp", "TASKNET_INPUT": "/in", "TASKNET_OUTPUT": "/out"}
    if spec.checkpoint_dir is not None:
        env["TASKNET_CHECKPOINT_DIR"] = "/checkpoint"
    return env


def _finish(pump: _LogPump, watch: _PidsWatch) -> None:
    """Once a run is over: stop its pids watch, let its log pump read what is left, then close the stream."""
    watch.stop.set()
    pump.join(timeout=2.0)
    pump.close()
    pump.join(timeout=2.0)
    if watch.is_alive():
        watch.join(timeout=1.0)


def _make_readable(root: Path) -> None:
    """Let the container's user read ``root`` (mkdtemp folders are 0700): o+rx on folders, o+r on files."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        want = mode | (0o555 if path.is_dir() else 0o444)
        if want != mode:
            path.chmod(want)


class Sandbox:
    """Runs app images confined on one Docker engine; safe to call from several threads at once.

    ``owner`` labels every container and volume this sandbox makes (``tasknet.sandbox=<owner>``) so that
    :meth:`cleanup` can remove what a crashed worker left, without touching other workers on the engine: call it
    when the worker starts. ``user`` must not be root. The holder image (busybox) is built on first use if missing.
    Output slots (volume + running holder, see the module's docstring) are kept for the next run, at most
    ``max_idle`` per output cap. With ``prewarm`` a run that takes the last idle slot also makes a spare one in the
    background, so the next concurrent run does not wait for it. :meth:`close` removes every slot.
    """

    def __init__(self, client: docker.DockerClient, *, owner: str = "default", user: str = "65534:65534",
                 holder_image: str = BUSYBOX_BASE, prewarm: bool = True, max_idle: int = 4,
                 reuse_dir: Path | None = None) -> None:
        if user.split(":")[0] in ("0", "root", ""):
            raise ValueError(f"sandbox user must be unprivileged, got {user!r}")
        if ":" not in user:
            user = f"{user}:{user}"  # the output volume's group is the user's: name it, never the image's default
        self.client, self.owner, self.user, self.holder_image = client, owner, user, holder_image
        self.prewarm, self.max_idle = prewarm, max_idle
        #: where reused containers' /in and /checkpoint folders live (worker/_reuse.py); None: every run is fresh
        self.reuse_dir: Path | None = None
        if reuse_dir is not None:
            if _reuse.static_busybox():
                reuse_dir.mkdir(parents=True, exist_ok=True)
                reuse_dir.chmod(0o700)
                self.reuse_dir = reuse_dir
            else:
                log.warning("sandbox_reuse_off", why=f"{_reuse.HOST_BUSYBOX} is not a static busybox",
                            hint="install Debian's busybox-static: every task then gets a fresh container")
        self._active: dict[str, _Active] = {}  # reused runs going on, by task label (for stop_reused)
        #: counts of runs in a reused container and in a fresh one (for tests and benchmarks)
        self.runs = {"reused": 0, "fresh": 0}
        self._closed = False
        self._lock = threading.Lock()
        self._idle: dict[tuple[int, int], list[_Slot]] = {}
        self._warmers: set[threading.Thread] = set()
        self._removers: set[threading.Thread] = set()
        self._leftovers: list[Any] = []
        self._holder_id: str | None = None
        #: images checked against their pins lately: (name, digest) -> (id, config, when), see _checked_image
        self._images: dict[tuple[str, str | None], tuple[str, dict[str, Any], float]] = {}

    # -- public API -----------------------------------------------------------------------------
    def run(self, spec: RunSpec) -> RunResult:
        """Run ``spec`` confined; return how it ended. Raises :class:`SandboxError` only if the engine fails."""
        started = time.monotonic()
        paths = _fresh_paths(spec)
        try:
            image_id, config = self._checked_image(spec)
        except _ImageProblem as problem:
            return RunResult(reason=problem.reason, message=str(problem), explanation=_IMAGE_EXPLANATIONS[problem.reason],
                             total_seconds=time.monotonic() - started,
                             output_dir=paths.output, stdout_path=paths.stdout, stderr_path=paths.stderr)
        if spec.input_dir is not None:
            if not spec.input_dir.is_dir():
                raise SandboxError(f"input folder {spec.input_dir} does not exist; stage the inputs first")
            _make_readable(spec.input_dir)
        run_id = uuid.uuid4().hex[:12]
        labels = {"tasknet.sandbox": self.owner, "tasknet.run": run_id, "tasknet.task": spec.task}
        slot = app = None
        key = self._reuse_key(spec, image_id)
        try:
            slot = self._take_slot(spec.limits, key)
            outcome = None if key is None else self._run_reused(slot, key, config, spec, paths)
            if outcome is None:  # a fresh container
                app = self._create_app(image_id, slot, spec, labels, run_id)
                outcome = self._execute(app, spec, paths)  # returns once the app's container is over
            with self._lock:
                self.runs["fresh" if app is not None else "reused"] += 1
            copied, reusable = self._copy_out(slot, spec)
            if reusable:
                self._keep(slot)
                slot = None
        except SandboxError:
            with self._lock:
                self._images.pop((spec.image, spec.image_digest), None)  # the image may be gone: look again
            raise
        finally:
            self._remove_async(app, slot)  # off the task's critical path; close()/wait_removed() wait for it
        result = self._judge(spec, image_id, outcome, copied, paths, time.monotonic() - started)
        log.info("sandbox_run", task=spec.task, image=spec.image, reason=result.reason.value,
                 exit_code=result.exit_code, reused=app is None, run_s=round(result.run_seconds, 3),
                 total_s=round(result.total_seconds, 3), output_bytes=result.output_bytes,
                 **({} if result.ok else {"why": result.message}))
        return result

    def warm(self, limits: Limits, count: int = 1) -> None:
        """Have ``count`` idle output slots for runs with ``limits``' output cap (at most the pool's ``max_idle``),
        making those missing."""
        key = _slot_key(limits)
        for _ in range(min(count, self.max_idle)):
            with self._lock:
                if len(self._idle.get(key) or ()) >= count or self._closed:
                    return
            self._keep(self._new_slot(limits))

    def warm_async(self, limits: Limits, count: int = 1) -> None:
        """:meth:`warm` in a thread of its own (close() waits for it); a failure is logged, not raised: the runs
        make the slots they need."""
        def warm() -> None:
            try:
                self.warm(limits, count)
            except Exception as exc:  # noqa: BLE001 - a spare is an optimisation: the next run makes its own
                log.warning("sandbox_prewarm_failed", error=str(exc))
            finally:
                self._warmers.discard(threading.current_thread())
        thread = threading.Thread(target=warm, name="sandbox-prewarm", daemon=True)
        self._warmers.add(thread)
        thread.start()

    def prepare(self, spec: RunSpec, count: int) -> int:
        """Make reused containers ready for runs like ``spec`` (its image, limits, checkpoint mount and ``reuse``
        group; its command and folders do not matter) in up to ``count`` idle output slots that hold none for
        them; return how many were made. Each slot is out of the pool while its container is made: call it when no
        run waits for a slot (the worker does when it holds no task). An image that is missing or not its pin
        makes nothing: the runs check it again."""
        if self.reuse_dir is None:
            return 0
        try:
            image_id, _ = self._checked_image(spec)
        except _ImageProblem:
            return 0
        key = self._reuse_key(spec, image_id)
        made = 0
        while key is not None and made < count:
            with self._lock:
                idle = self._idle.get(_slot_key(spec.limits)) or []
                pick = next((i for i, s in enumerate(idle) if s.reused is None or s.reused.key != key), None)
                slot = None if pick is None or self._closed else idle.pop(pick)
            if slot is None:
                break
            if not self._running(slot.holder):
                self._remove_async(None, slot)  # its holder is gone: a run would replace it
                continue
            if not self._sees_cgroups(slot):
                self._keep(slot)  # an engine elsewhere: runs get fresh containers
                break
            try:
                self._drop_reused(slot)
                slot.reused = self._new_reused(slot, key, spec)
                made += 1
            except SandboxError as exc:
                log.warning("sandbox_prepare_failed", image=spec.image, error=str(exc)[:300])
                break
            finally:
                self._keep(slot)
        return made

    def prepare_async(self, spec: RunSpec | None, count: int, done: Callable[[int], None] | None = None) -> None:
        """:meth:`prepare` (``spec`` None: nothing) in a thread of its own (close() waits for it), once the slots
        being made now are in the pool, then ``done`` with the count made; a failure is logged, not raised."""
        before = list(self._warmers)

        def prepare() -> None:
            made = 0
            try:
                for warmer in before:
                    warmer.join(timeout=60)
                if spec is not None and (made := self.prepare(spec, count)):
                    log.info("sandbox_prepared", image=spec.image, containers=made, reuse=spec.reuse)
            except Exception as exc:  # noqa: BLE001 - an optimisation: the runs make the containers they need
                log.warning("sandbox_prepare_failed", error=str(exc)[:300])
            finally:
                self._warmers.discard(threading.current_thread())
                if done is not None:
                    done(made)
        thread = threading.Thread(target=prepare, name="sandbox-prepare", daemon=True)
        self._warmers.add(thread)
        thread.start()

    def close(self) -> None:
        """Remove the output slots and wait for pending removals (call when the worker stops)."""
        self.wait_removed()
        with self._lock:
            self._closed = True
        for warmer in list(self._warmers):
            warmer.join(timeout=10)
        with self._lock:
            slots = [slot for idle in self._idle.values() for slot in idle]
            self._idle = {}
        for slot in slots:
            self._remove(None, slot)
        self.wait_removed()  # a warmer that finished after the close gave its slot to a remover thread

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cleanup(self) -> int:
        """Remove containers and volumes this sandbox's owner left behind (e.g. after a crash), and exited
        containers of any earlier daemon with the same key (another state folder: nothing of theirs still runs
        in an exited container); return the count."""
        n = remove_sandbox_leftovers(self.client, self.owner)
        if self.reuse_dir is not None:  # the folders of reused containers a crashed daemon left
            for leftover in self.reuse_dir.iterdir():
                _remove_tree(leftover)
        address = self.owner.split("-", 1)[0]
        # ignore_removed: a container that goes away between the listing and its inspection (a holder of a killed
        # worker exiting with --rm) is no error
        for container in self.client.containers.list(all=True, ignore_removed=True,
                                                     filters={"label": "tasknet.sandbox", "status": "exited"}):
            if str(container.labels.get("tasknet.sandbox", "")).startswith(address + "-"):
                with contextlib.suppress(Exception):
                    container.remove(force=True)
                    n += 1
        return n

    # -- steps ----------------------------------------------------------------------------------
    @property
    def _uid(self) -> str:
        return self.user.split(":")[0]

    @property
    def _gid(self) -> str:
        parts = self.user.split(":")
        return parts[1] if len(parts) > 1 else parts[0]

    def _api(self, call: Any, what: str) -> Any:
        import docker.errors
        import requests

        try:
            return call()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            explanation = getattr(exc, "explanation", None) or exc
            raise SandboxError(f"Docker failed to {what}: {explanation}; check that the engine is healthy "
                               "('docker info') and has disk space") from exc

    def _check_image(self, spec: RunSpec) -> str:
        """The image's id, once it matches its pin (raises _ImageProblem)."""
        return self._checked_image(spec)[0]

    def _checked_image(self, spec: RunSpec) -> tuple[str, dict[str, Any]]:
        """The image's id and its config (ENTRYPOINT, CMD...), once it matches its pin. A check is kept for
        ``IMAGE_RECHECK_S``: an image id is the digest of its content, so what passed stays right; an image
        removed meanwhile fails the run's container (a SandboxError, and the check is made again)."""
        import docker.errors

        key = (spec.image, spec.image_digest)
        with self._lock:
            known = self._images.get(key)
        if known is not None and time.monotonic() - known[2] < IMAGE_RECHECK_S:
            return known[0], known[1]
        try:
            image = self.client.images.get(spec.image)
        except docker.errors.ImageNotFound:
            raise _ImageProblem(Reason.IMAGE_MISSING, f"image {spec.image} is not on this engine; fetch it by "
                                "digest (oracle.images.pull_by_digest / load_image) before running the task"
                                ) from None
        except docker.errors.APIError as exc:
            raise SandboxError(f"Docker failed to look up image {spec.image}: {exc.explanation or exc}") from exc
        if spec.image_digest is not None:
            try:
                check_image_pin(image, spec.image, spec.image_digest)
            except ImageDigestMismatch as exc:
                raise _ImageProblem(Reason.IMAGE_MISMATCH, str(exc)) from None
            except ImageError as exc:
                raise _ImageProblem(Reason.IMAGE_MISMATCH, str(exc)) from None
        checked = str(image.id), dict(image.attrs.get("Config") or {})
        with self._lock:
            self._images[key] = (*checked, time.monotonic())
        return checked

    def _ensure_holder(self) -> str:
        """The holder image's id: looked up (or built, in ~0.1 s) once, then used by id, so that a tag moved
        later (say, by a loaded archive) cannot change what the holders run."""
        import docker.errors

        with self._lock:
            if self._holder_id is not None:
                try:
                    self.client.images.get(self._holder_id)
                    return self._holder_id
                except docker.errors.ImageNotFound:
                    self._holder_id = None  # someone removed it: build it again
            try:
                self._holder_id = build_busybox_base(self.client, tag=self.holder_image)
            except ImageError as exc:
                raise SandboxError(f"cannot prepare the sandbox's output holder image: {exc}") from exc
            return self._holder_id

    def _take_slot(self, limits: Limits, reuse: _ReuseKey | None = None) -> _Slot:
        """An idle slot for ``limits``' output cap whose holder still runs (one whose reused container is
        ``reuse``'s, when there is one), else a new one."""
        key = _slot_key(limits)
        while True:
            with self._lock:
                idle = self._idle.get(key)
                slot = None
                if idle:
                    match = [i for i, s in enumerate(idle) if reuse is not None and s.reused is not None
                             and s.reused.key == reuse]
                    slot = idle.pop(match[-1] if match else -1)
                empty = not idle
            if slot is None:
                break
            if empty and self.prewarm:
                self.warm_async(limits)
            if self._running(slot.holder):
                return slot
            self._remove(None, slot)
        return self._new_slot(limits)  # it joins the pool after this run: no spare is warmed beside it

    def _keep(self, slot: _Slot) -> None:
        """Put an empty slot in the pool (or remove it when the pool is full or the sandbox closed)."""
        with self._lock:
            idle = self._idle.setdefault(slot.key, [])
            keep = not self._closed and len(idle) < self.max_idle
            if keep:
                idle.append(slot)
        if not keep:
            self._remove_async(None, slot)

    def _new_slot(self, limits: Limits) -> _Slot:
        """A fresh size-capped tmpfs volume, mounted by a running holder container listening on its stdin."""
        from docker.types import Mount

        holder_image = self._ensure_holder()
        name = f"tasknet-out-{uuid.uuid4().hex[:12]}"
        labels = {"tasknet.sandbox": self.owner, "tasknet.role": "holder"}
        volume = self._api(lambda: self.client.volumes.create(name=name, driver="local", labels=labels, driver_opts={
            "type": "tmpfs", "device": "tmpfs",
            "o": f"size={_volume_bytes(limits)},nr_inodes={limits.output_files + 2},uid=0,gid={self._gid},"
                 f"mode={_OUT_MODE},nosuid,nodev"}), "create the output volume")
        slot = _Slot(volume, _slot_key(limits))
        try:
            slot.holder = self._api(lambda: self.client.containers.create(
                holder_image, ["sh", "-c", _HOLDER_SCRIPT], name=name, stdin_open=True,
                mounts=[Mount("/out", volume.name, type="volume", no_copy=True)],
                pids_limit=16, mem_limit=32 * MiB, memswap_limit=32 * MiB, nano_cpus=1_000_000_000,
                shm_size=_PAGE * 16, **confinement(self.user, labels, keep_logs=False, hostname="tasknet")),
                "create the output holder")
            slot.sock = self._api(lambda: self.client.api.attach_socket(
                slot.holder.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}),
                "attach to the output holder")
            self._api(slot.holder.start, "start the output holder")
        except BaseException:
            self._remove(None, slot)
            raise
        return slot

    def _running(self, container: Container | None) -> bool:
        import docker.errors

        if container is None:
            return False
        procs = _reuse.cgroup_file(container.id, "pids", "cgroup.procs")
        if procs is not None:  # the kernel's word, without a call to the engine
            with contextlib.suppress(OSError):
                if procs.read_text().strip():
                    return True
        try:
            container.reload()
        except docker.errors.DockerException:
            return False
        return bool(container.status == "running")

    def _create_app(self, image_id: str, slot: _Slot, spec: RunSpec, labels: dict[str, str],
                    run_id: str) -> Container:
        from docker.types import Mount

        mounts = [Mount("/out", slot.volume.name, type="volume", no_copy=True)]
        if spec.input_dir is not None:
            mounts.append(Mount("/in", str(spec.input_dir.resolve()), type="bind", read_only=True))
        if spec.checkpoint_dir is not None:
            mounts.append(Mount("/checkpoint", str(spec.checkpoint_dir.resolve()), type="bind"))
        conf = self._task_conf(slot, self.user, {**labels, "tasknet.role": "app"}, spec.limits)
        if spec.gpus:  # exactly the task's devices; a task that asks for none gets no device request at all
            conf["device_requests"] = device_requests(spec.gpus)
        return self._api(lambda: self.client.containers.create(
            image_id, spec.command, entrypoint=spec.entrypoint, name=f"tasknet-{run_id}", environment=_task_env(spec),
            working_dir="/out", mounts=mounts, **conf), "create the task container")

    @staticmethod
    def _task_conf(slot: _Slot, user: str, labels: dict[str, str], lim: Limits, extra_pids: int = 0,
                   extra_bytes: int = 0) -> dict[str, Any]:
        """The create keywords of a container that runs tasks (fresh or reused): the confinement, the slot's
        network namespace, a private size-capped /tmp and /dev/shm, and the limits (plus what a reused container's
        own processes take)."""
        conf = confinement(user, labels, keep_logs=False)
        # the holder's namespace: only lo, nothing listening (and its hostname: Docker refuses to set another)
        assert slot.holder is not None  # a slot in use has its holder
        conf["network_mode"] = f"container:{slot.holder.id}"
        ram = lim.ram_bytes + extra_bytes
        return {**conf, "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={lim.tmp_bytes},mode=1777"},
                "shm_size": lim.tmp_bytes, "pids_limit": lim.pids + extra_pids, "mem_limit": ram,
                "memswap_limit": ram, "nano_cpus": int(lim.cpus * 1e9)}

    def _execute(self, app: Container, spec: RunSpec, paths: _Paths) -> _Outcome:
        """Start ``app``, enforce the wall clock and pids limit, and collect its logs."""
        import docker.errors
        import requests

        sock = self._api(lambda: self.client.api.attach_socket(app.id, params={"stdout": 1, "stderr": 1,
                                                                                "stream": 1}), "attach to the task")
        pump = _LogPump(sock, paths.stdout, paths.stderr, spec.limits.log_bytes)
        pump.start()
        watch = _PidsWatch(app)
        outcome = _Outcome()
        t0, started_at = time.monotonic(), time.time()
        try:
            try:
                app.start()
            except docker.errors.APIError as exc:
                outcome.start_error = str(exc.explanation or exc)
                if spec.gpus and is_gpu_start_error(outcome.start_error):  # this machine's GPUs, not the app
                    raise GpuUnavailable(f"the Docker engine could not give the task its GPUs {list(spec.gpus)}: "
                                         f"{outcome.start_error}; the worker detects its GPUs again (check "
                                         "'nvidia-smi' and the NVIDIA container runtime in 'docker info')",
                                         engine=True) from exc
                return outcome
            except requests.exceptions.RequestException as exc:
                raise SandboxError(f"the Docker engine stopped answering at the start ({exc})") from exc
            watch.start()
            try:
                status = app.wait(timeout=spec.limits.wall_seconds)
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                if time.monotonic() - t0 < spec.limits.wall_seconds - 0.5:
                    # not our wall clock: the engine went away mid-run; nothing about the app can be said
                    raise SandboxError(f"the Docker engine stopped answering during the run ({exc}); the task "
                                       "is retried when the engine is back") from exc
                outcome.timed_out = True
                with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
                    app.kill()
                status = self._api(lambda: app.wait(timeout=30), "wait for the killed task")
            outcome.run_seconds = time.monotonic() - t0
            outcome.exit_code = int(status.get("StatusCode", -1))
            state = self._api(lambda: self.client.api.inspect_container(app.id), "inspect the task")["State"]
            outcome.oom_killed = bool(state.get("OOMKilled"))
        finally:
            _finish(pump, watch)
            outcome.pids_hit = watch.hit
            outcome.stdout_bytes, outcome.stderr_bytes = pump.seen[1], pump.seen[2]
        if outcome.exit_code not in (None, 0) and not (outcome.timed_out or outcome.pids_hit or outcome.oom_killed):
            outcome.outside_signal = self._signal_from_outside(app, started_at)
        return outcome

    def _signal_from_outside(self, app: Container, started_at: float) -> str | None:
        """The signal the engine delivered to ``app`` while it ran, if any. We only get here when none of our
        limits killed it (wall clock, pids watch), and the engine's OOM kills are known (OOMKilled): so a ``kill``
        event in the engine's own record is someone else's (``docker kill``/``stop``, an engine shutdown). An
        exit code of 137 without one is the app's own answer (``exit 137``, or a SIGKILL it sent itself).
        NOTE: a SIGKILL that bypasses the engine (the host's OOM killer, ``kill -9`` by the host's root) leaves
        no such record and cannot be told from the app's own: it is published as the app's exit."""
        events = self._api(lambda: list(self.client.events(
            since=started_at - 300, until=time.time(), filters={"container": app.id, "event": "kill"},
            decode=True)), "read the task's events")
        signals = [str((e.get("Actor") or {}).get("Attributes", {}).get("signal", "?")) for e in events]
        return signals[0] if signals else None

    # -- reused containers (worker/_reuse.py) ---------------------------------------------------------
    def _reuse_key(self, spec: RunSpec, image_id: str) -> _ReuseKey | None:
        """The key of the reused container ``spec`` may run in, or None for a fresh container."""
        if self.reuse_dir is None or spec.reuse is None or spec.gpus or spec.input_dir is None:
            return None
        if spec.checkpoint_dir is not None and not _reuse.same_device(spec.checkpoint_dir, self.reuse_dir):
            return None  # the swap is renames on one file system
        lim = spec.limits
        return (spec.reuse, image_id, lim.ram_bytes, lim.cpus, lim.pids, lim.tmp_bytes, spec.checkpoint_dir is not None)

    def _run_reused(self, slot: _Slot, key: _ReuseKey, config: dict[str, Any], spec: RunSpec,
                    paths: _Paths) -> _Outcome | None:
        """Run ``spec`` through the launcher of the slot's reused container for ``key`` (made when it has none);
        None when the run needs a fresh container after all (no command to run, an engine elsewhere, a variable the
        launcher cannot export, a container that cannot be made)."""
        argv = _reuse.resolve_argv(config, spec.entrypoint, spec.command)
        if not argv or not self._sees_cgroups(slot):
            return None  # no command to run; or an engine elsewhere, whose containers' processes are not seen here
        image_env = [str(item) for item in config.get("Env") or []]
        if not _reuse.shell_names(image_env, _task_env(spec)):
            return None  # a variable the launcher's shell cannot export: a fresh container
        for attempt in range(2):
            if slot.reused is not None and (slot.reused.key != key or attempt):
                self._drop_reused(slot)
            if slot.reused is None:
                try:
                    slot.reused = self._new_reused(slot, key, spec)
                except SandboxError as exc:  # say, the image cannot run the launcher: this run gets a fresh one
                    log.warning("sandbox_reuse_failed", task=spec.task, error=str(exc)[:300])
                    return None
            reused = slot.reused
            try:
                if spec.input_dir is not None:
                    _reuse.stage(spec.input_dir, reused.inputs)
            except OSError as exc:
                raise SandboxError(f"cannot stage the task's inputs into {reused.inputs} ({exc}); free space on "
                                   "this worker's disk — the task is retried") from exc
            swap = None if spec.checkpoint_dir is None else _reuse.CheckpointSwap(reused.checkpoint,
                                                                                 spec.checkpoint_dir)
            try:
                if swap is not None:
                    swap.enter()
                try:
                    outcome, clean = self._launch_reused(reused, argv, image_env, spec, paths)
                finally:
                    if swap is not None:
                        swap.leave()
            except _StaleContainer:
                continue  # it stopped between two runs (the engine restarted, someone removed it): a new one
            except OSError as exc:
                raise SandboxError(f"cannot move the task's checkpoint folder {spec.checkpoint_dir} ({exc}); "
                                   "the task is retried") from exc
            finally:
                with contextlib.suppress(OSError):
                    _reuse.clear(reused.inputs)
            if not clean:
                self._drop_reused(slot)
            return outcome
        return None

    def _new_reused(self, slot: _Slot, key: _ReuseKey, spec: RunSpec) -> _Reused:
        """A running container for ``key``'s runs: its launcher as PID 1, the slot's /out, its own /in (and
        /checkpoint), confined and limited as a fresh task container is."""
        from docker.types import Mount

        assert self.reuse_dir is not None
        name = f"tasknet-reuse-{uuid.uuid4().hex[:12]}"
        folder = self.reuse_dir / name
        reused = _Reused(key, folder)
        reused.inputs.mkdir(parents=True)
        reused.checkpoint.mkdir()
        reused.checkpoint.chmod(0o777)
        reused.control.mkdir()
        reused.control.chmod(0o755)
        mounts = [Mount("/out", slot.volume.name, type="volume", no_copy=True),
                  Mount("/in", str(reused.inputs), type="bind", read_only=True),
                  Mount(_reuse.TOOLS, str(_reuse.exec_only_busybox(folder)), type="bind", read_only=True),
                  Mount(os.path.dirname(_reuse.TASK_FILE), str(reused.control), type="bind", read_only=True)]
        if spec.checkpoint_dir is not None:
            mounts.append(Mount("/checkpoint", str(reused.checkpoint), type="bind"))
        conf = self._task_conf(slot, self.user,
                               {"tasknet.sandbox": self.owner, "tasknet.role": "reused", "tasknet.reuse": str(key[0])},
                               spec.limits, extra_pids=_reuse.LAUNCHER_PIDS, extra_bytes=_reuse.EXTRA_BYTES)
        try:
            container = reused.container = self._api(lambda: self.client.containers.create(
                key[1], ["sh", "-c", _reuse.LAUNCHER], entrypoint=[_reuse.TOOLS], name=name, stdin_open=True,
                working_dir="/out", mounts=mounts, **conf), "create the task container")
            launcher = reused.launcher = _Launcher(self._api(lambda: self.client.api.attach_socket(
                container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}),
                "attach to the task container"))
            self._api(container.start, "start the task container")
            self._api(container.reload, "inspect the task container")
            launcher.pid = int(container.attrs["State"].get("Pid") or 0)
            launcher.traits = _reuse.process_traits(launcher.pid)
            if not launcher.alive(container.id):
                raise SandboxError("the reused container's launcher is not visible in this host's /proc")
        except BaseException:
            self._remove_reused(reused)
            raise
        return reused

    def _sees_cgroups(self, slot: _Slot) -> bool:
        """Whether this host's /proc and cgroups show the slot's containers (the engine runs here): reused
        containers need it (their launcher is checked from here, worker/_reuse.py), else each run is fresh."""
        return slot.holder is not None and _reuse.cgroup_file(slot.holder.id, "pids", "cgroup.procs") is not None

    def _launch_reused(self, reused: _Reused, argv: list[str], image_env: list[str], spec: RunSpec,
                       paths: _Paths) -> tuple[_Outcome, bool]:
        """Run the task through the container's launcher: the task file, a nonce on its stdin, then its stdout and
        stderr up to the markers the launcher writes once the app and every process of its uid are gone. Return
        what happened and whether the container is clean: the launcher's markers say nothing was left, no limit
        or stop (but one the app's SIGTERM ended) ended the run, no process of the app's uid is left in the
        container's cgroup, and the launcher runs unchanged."""
        launcher, container, lim = reused.launcher, reused.container, spec.limits
        assert launcher is not None and container is not None
        if not launcher.alive(container.id):
            raise _StaleContainer("the launcher is gone or was changed")
        env = _task_env(spec)
        task = reused.control / "task"
        fresh = task.with_name(f".task-{uuid.uuid4().hex[:8]}")
        fresh.write_text(_reuse.task_file(image_env, env, argv))
        fresh.chmod(0o644)
        os.replace(fresh, task)
        nonce = _reuse.new_nonce()
        end_err = _reuse.stderr_marker(nonce)
        oom_before, pids_before = _reuse.oom_kills(container.id), _reuse.pids_hits(container.id)
        watch = _PidsWatch(container, baseline=pids_before or 0)
        active = _Active(reused, launcher.pid)
        outcome = _Outcome()
        seen, tails = {1: 0, 2: 0}, {1: bytearray(), 2: bytearray()}
        t0, started_at = time.monotonic(), time.time()
        with self._lock:
            self._active[spec.task] = active
        watch.start()
        files = {1: paths.stdout.open("wb"), 2: paths.stderr.open("wb")}
        ended = {1: False, 2: False}
        try:
            try:
                launcher.send(nonce)
            except OSError as exc:
                raise _StaleContainer(f"the launcher's stream is closed ({exc})") from exc
            deadline = t0 + lim.wall_seconds
            while not (ended[1] and ended[2]):
                try:
                    frame = launcher.frame(deadline)
                except TimeoutError:
                    outcome.timed_out = True
                    with contextlib.suppress(Exception):
                        container.kill()
                    deadline = time.monotonic() + 30  # read what is left until the stream ends
                    continue
                if frame is None:
                    break  # the container stopped: killed (a limit, a stop, someone outside), or its launcher died
                stream, data = frame
                if stream not in files:
                    continue
                room = lim.log_bytes - seen[stream]
                if room > 0:
                    files[stream].write(data[:room])
                seen[stream] += len(data)
                tails[stream] += data
                del tails[stream][:-4096]
                ended[1] = ended[1] or (stream == 1 and _reuse.split_marker(bytes(tails[1]), nonce)[0] is not None)
                ended[2] = ended[2] or (stream == 2 and tails[2].endswith(end_err))
            outcome.run_seconds = time.monotonic() - t0
        finally:
            for fh in files.values():
                fh.close()
            with self._lock:
                self._active.pop(spec.task, None)
            active.done.set()
            watch.stop.set()
            if watch.is_alive():
                watch.join(timeout=1.0)
        pids_after = _reuse.pids_hits(container.id)  # a hit the watch's last look came too early for
        outcome.pids_hit = watch.hit or (pids_before is not None and pids_after is not None and pids_after > pids_before)
        marker, size = _reuse.split_marker(bytes(tails[1]), nonce) if ended[2] else (None, 0)
        outcome.stdout_bytes = seen[1] - size
        outcome.stderr_bytes = seen[2] - (len(end_err) if ended[2] else 0)
        for stream, path in ((1, paths.stdout), (2, paths.stderr)):
            kept = outcome.stdout_bytes if stream == 1 else outcome.stderr_bytes
            if seen[stream] != kept:
                with path.open("r+b") as log_file:
                    log_file.truncate(min(lim.log_bytes, kept))
        oom_after = _reuse.oom_kills(container.id)
        outcome.oom_killed = oom_before is not None and oom_after is not None and oom_after > oom_before
        outcome.exit_code = marker.status if marker is not None else 137
        if marker is not None and marker.not_found:
            outcome.start_error = f'exec: "{argv[0]}": executable file not found in $PATH'
            outcome.exit_code = None
        if active.stopped is not None:
            outcome.outside_signal = active.stopped
        elif marker is None and not (outcome.timed_out or outcome.pids_hit or outcome.oom_killed):
            if launcher.running(container.id):  # the stream broke (the engine restarted?), not the container: the
                # run() that called us removes the whole slot on a SandboxError
                raise SandboxError("the task's output stream from the Docker engine broke during the run; the task "
                                   "is retried (check the engine: 'docker info')")
            with contextlib.suppress(Exception):
                container.wait(timeout=2)
            outcome.outside_signal = self._signal_from_outside(container, started_at)
        clean = (marker is not None and marker.clean and active.stopped in (None, "15")
                 and not (outcome.timed_out or outcome.pids_hit or outcome.oom_killed)
                 and not _reuse.processes_left(container.id, self._uid) and launcher.alive(container.id))
        if not clean:
            log.info("sandbox_reuse_dropped", task=spec.task, marker=marker is not None,
                     left=None if marker is None else marker._asdict())
        return outcome, clean

    def stop_reused(self, label: str, grace: float) -> int:
        """Stop task ``label``'s run if it goes on in a reused container, as ``docker stop`` would a fresh one:
        SIGTERM to the app, SIGKILL (the whole container) after ``grace`` seconds. Return 1 if it ran, else 0."""
        with self._lock:
            active = self._active.get(label)
        if active is None or active.reused.container is None:
            return 0
        container = active.reused.container
        signalled = False
        with contextlib.suppress(Exception):
            ns_pid = None
            for _ in range(40):  # the run may be starting: its app appears within a moment
                ns_pid = _reuse.child_ns_pid(active.pid)
                if ns_pid is not None or active.done.is_set():
                    break
                time.sleep(0.05)
            if ns_pid is not None:
                self.client.api.exec_start(self.client.api.exec_create(
                    container.id, [_reuse.TOOLS, "kill", "-TERM", str(ns_pid)], user=self.user)["Id"])
                signalled = True
        active.stopped = "15" if signalled else "9"
        if not signalled or not active.done.wait(grace):
            active.stopped = "9"
            with contextlib.suppress(Exception):
                container.kill()
        return 1

    def _drop_reused(self, slot: _Slot) -> None:
        """Take the slot's reused container away and remove it in the background."""
        reused, slot.reused = slot.reused, None
        if reused is not None:
            self._in_background(lambda: self._remove_reused(reused))

    def _remove_reused(self, reused: _Reused) -> None:
        if reused.launcher is not None:
            reused.launcher.close()
        self._remove_one(reused.container)
        _remove_tree(reused.folder)

    def _copy_out(self, slot: _Slot, spec: RunSpec) -> tuple[_Copied, bool]:
        """Have the holder list ``/out``'s sockets, write ``/out`` as a tar stream (extracted as it comes) and
        empty it; return what was extracted and whether the slot may serve again. The holder's answer after the
        archive also proves it ran all along, so the volume stayed mounted and the copy is the app's whole output.
        Whatever the app left, nothing raises but the engine's or this host's own failures (SandboxError)."""
        from docker.utils.socket import SocketError

        lim = spec.limits
        try:
            request = slot.send()
            sockets = slot.sockets(request)
            reader = _HolderTar(slot)
            with open_tar_stream(io.BufferedReader(reader, 1 << 20)) as tar:
                stats = extract_tar(tar, spec.output_dir, max_bytes=lim.output_bytes, max_files=lim.output_files,
                                    max_depth=MAX_DEPTH, max_path_bytes=MAX_PATH_BYTES, strict=False,
                                    others=((name, "socket") for name in sockets))
            if stats.over_cap:  # the rest of the archive (a sparse file may claim terabytes) is not read
                return _Copied(stats, 0), False
            reader.drain()
            tar_status, left = slot.answer(request)
        except tarfile.TarError as exc:
            raise SandboxError(f"the output archive from the holder is unreadable ({exc}); the holder said "
                               f"{slot.errors[-300:].decode(errors='replace')!r}") from exc
        except (_HolderGone, EOFError, SocketError, ValueError) as exc:
            raise SandboxError("the sandbox's output holder stopped answering while it copied the output out "
                               f"({exc or type(exc).__name__}), so the task's output is lost; something on this "
                               "engine removes containers — retry the task") from exc
        except OSError as exc:  # the holder's stream is read through _HolderTar: this is our own disk
            raise SandboxError(f"cannot write the task's output into {spec.output_dir} ({exc}); free space on "
                               "this worker's disk — the task is retried") from exc
        if left:
            log.warning("sandbox_slot_dropped", holder=slot.holder.name if slot.holder else None,
                        reason=f"{left} entries left in the output volume after emptying it")
        return _Copied(stats, tar_status, _last_error(slot.errors) if tar_status else ""), left == 0

    def _remove_async(self, app: Container | None, slot: _Slot | None) -> None:
        self._in_background(lambda: self._remove(app, slot))

    def _in_background(self, removal: Callable[[], None]) -> None:
        """Run ``removal`` in a thread of its own, which close()/wait_removed() wait for."""
        def remove() -> None:
            try:
                removal()
            finally:
                with self._lock:
                    self._removers.discard(threading.current_thread())
        thread = threading.Thread(target=remove, name="sandbox-remove", daemon=True)
        with self._lock:
            self._removers.add(thread)
        thread.start()

    def retry_leftovers(self) -> int:
        """Try again to remove what could not be removed (the engine was down); return how many remain."""
        with self._lock:
            pending, self._leftovers = self._leftovers, []
        for resource in pending:
            self._remove_one(resource)
        with self._lock:
            return len(self._leftovers)

    def wait_removed(self, timeout: float = 60.0) -> None:
        """Wait until the containers and volumes of finished runs are removed (done in the background)."""
        end = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = list(self._removers)
            if not pending or time.monotonic() > end:
                return
            for thread in pending:
                thread.join(max(0.0, end - time.monotonic()))

    def _remove(self, app: Container | None, slot: _Slot | None) -> None:
        """Remove the app container and the slot (its reused container, holder, then volume); the containers go
        in parallel."""
        side = threading.Thread(target=self._remove_one, args=(app,), daemon=True) if app is not None else None
        if side is not None:
            side.start()
        if slot is not None:
            slot.close()
            if slot.reused is not None:
                self._remove_reused(slot.reused)
                slot.reused = None
            self._remove_one(slot.holder)
        if side is not None:
            side.join(timeout=60)
        if slot is not None:
            self._remove_one(slot.volume)

    def _remove_one(self, resource: Any) -> None:
        for attempt in range(4):
            if resource is None:
                return
            try:
                resource.remove(force=True)
                return
            except Exception as exc:  # noqa: BLE001 - NotFound is fine; anything else: retry, then report
                if getattr(exc, "status_code", None) == 404:
                    return
                if attempt == 3:
                    log.error("sandbox_cleanup_failed", resource=getattr(resource, "name", resource),
                              error=str(exc), hint="retried by retry_leftovers()")
                    with self._lock:
                        self._leftovers.append(resource)
                    return
                time.sleep(0.1 * (attempt + 1))

    def _judge(self, spec: RunSpec, image_id: str, o: _Outcome, copied: _Copied, paths: _Paths,
               total: float) -> RunResult:
        lim = spec.limits
        stats = copied.stats
        problem = _output_problem(lim, copied)
        hint = _last_line(paths.stderr)
        # a failed start, then the kernel's OOM kill, then the output (what it holds decides, whatever the exit),
        # then our kills, then the exit code
        if o.start_error is not None:
            reason, message = Reason.START_FAILED, (f"the container could not start: {o.start_error}; check the "
                                                    "app's command and entrypoint")
            explanation = "the app's container could not start; check the app's command and entrypoint"
        elif o.oom_killed and o.exit_code != 0:
            reason, message = Reason.OOM, (f"the app ran out of memory (limit {lim.memory_bytes} bytes plus "
                                           f"{lim.output_bytes + lim.tmp_bytes} for /out and /tmp) and was killed")
            explanation = "the app ran out of memory and was killed"
        elif problem is not None:
            reason, explanation = Reason(problem.reason), problem.sentence
            message = explanation + (f" (caps here: {lim.output_bytes} bytes, {lim.output_files} entries; read "
                                     f"{stats.bytes} bytes, {stats.entries} entries)")
        elif o.pids_hit:
            reason, message = Reason.PIDS, (f"the app hit its limit of {lim.pids} processes (a fork bomb?) and "
                                            "was killed")
            explanation = "the app hit its limit of processes (a fork bomb?) and was killed"
        elif o.timed_out:
            reason, message = Reason.TIMEOUT, (f"the app ran longer than its wall-clock limit of "
                                               f"{lim.wall_seconds:g} s and was killed")
            explanation = message
        elif o.exit_code != 0:
            reason, explanation = Reason.NONZERO_EXIT, f"the app exited with code {o.exit_code}"
            message = explanation
            if o.outside_signal is not None:
                message += (f" after the engine delivered signal {o.outside_signal}, which none of this worker's "
                            "limits sent (someone killed or stopped the container)")
        else:
            reason, message, explanation = Reason.OK, "the app exited with code 0", ""
        if reason is not Reason.OK and hint:
            message += f" (last stderr line: {escape_name(hint)!r})"
        return RunResult(
            reason=reason, message=message, explanation=explanation, exit_code=o.exit_code, image_id=image_id,
            killed_from_outside=o.outside_signal is not None, run_seconds=o.run_seconds,
            total_seconds=total, output_bytes=stats.bytes, output_files=stats.files, output_entries=stats.entries,
            skipped=stats.skipped, stdout_bytes=o.stdout_bytes, stderr_bytes=o.stderr_bytes,
            logs_truncated=max(o.stdout_bytes, o.stderr_bytes) > lim.log_bytes, output_dir=paths.output,
            stdout_path=paths.stdout, stderr_path=paths.stderr)


class _Copied(NamedTuple):
    """What :meth:`Sandbox._copy_out` brought back: the extraction, the holder's tar exit status and, when it
    failed, its last error line."""

    stats: ExtractStats
    tar_status: int
    tar_error: str = ""


def _output_problem(lim: Limits, copied: _Copied) -> OutputProblem | None:
    """Why the output is refused, if it is: the strongest reason of :data:`oracle.status.OUTPUT_REASONS`. The
    caps are judged here (a tmpfs counts pages, not bytes: an output whose files take more pages than the cap
    allows filled the volume too); names and depth by the extraction; a tar that could not archive everything
    left out an entry whose path was too long for it."""
    stats = copied.stats
    cap_problem = stats.problem if stats.problem is not None and stats.problem.reason in (
        status.OUTPUT_TOO_LARGE, status.OUTPUT_TOO_MANY_FILES) else None
    if stats.bytes > lim.output_bytes or stats.block_bytes > _cap_pages(lim) or (
            cap_problem is not None and cap_problem.reason == status.OUTPUT_TOO_LARGE):
        return OutputProblem(reason=status.OUTPUT_TOO_LARGE, sentence="the output is larger than the output cap "
                             "allows")
    if stats.entries > lim.output_files or cap_problem is not None:
        return OutputProblem(reason=status.OUTPUT_TOO_MANY_FILES, sentence="the output holds more entries than "
                             "the output cap allows")
    if stats.problem is not None:
        return stats.problem
    if copied.tar_status != 0:
        long_name = "too long" in copied.tar_error.lower()
        return OutputProblem(
            reason=status.OUTPUT_TOO_DEEP if long_name else status.OUTPUT_UNSAFE,
            sentence="the output holds an entry the output holder could not archive ("
                     + ("its path is longer than the system allows" if long_name else
                        f"tar: {escape_name(copied.tar_error)[:200]}") + ")")
    return None


class _Paths(NamedTuple):
    output: Path
    stdout: Path
    stderr: Path


class _Slot:
    """An output volume and the holder container that keeps it mounted, copies it out and empties it on request
    (through the holder's attached stdin and stdout)."""

    def __init__(self, volume: Any, key: tuple[int, int], timeout: float = 60.0) -> None:
        self.volume, self.key, self.timeout = volume, key, timeout
        self.holder: Container | None = None
        self.reused: _Reused | None = None  # the job's container that runs its tasks here (worker/_reuse.py)
        self.sock: Any = None
        self.requests = 0
        self.buf = bytearray()  # the holder's stdout, received and not consumed yet
        self.errors = b""  # the last bytes of the holder's stderr, for messages

    def _raw(self) -> Any:
        return getattr(self.sock, "_sock", self.sock)

    def send(self) -> int:
        """Ask the holder to copy ``/out`` out and empty it; return the request's number."""
        if self.sock is None:
            raise EOFError("the output holder is not attached")
        self.requests += 1
        raw = self._raw()
        raw.settimeout(self.timeout)
        raw.sendall(f"{self.requests}\n".encode())
        return self.requests

    def fill(self, n: int) -> None:
        """Receive until ``n`` bytes of the holder's stdout are buffered (_HolderGone when the holder is gone)."""
        from docker.utils.socket import SocketError, next_frame_header, read_exactly

        if self.sock is None:
            raise _HolderGone("the output holder is not attached")
        try:
            while len(self.buf) < n:
                stream, size = next_frame_header(self.sock)
                if stream < 0:
                    raise _HolderGone("the output holder closed its output")
                data = read_exactly(self.sock, size) if size else b""
                if stream == 1:
                    self.buf += data
                else:
                    self.errors = (self.errors + data)[-4096:]
        except (OSError, SocketError) as exc:  # a timeout, a reset: not to be taken for our own disk's errors
            raise _HolderGone(str(exc) or type(exc).__name__) from exc

    def take(self, n: int) -> bytes:
        self.fill(n)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def take_some(self, limit: int) -> bytes:
        self.fill(1)
        return self.take(min(limit, len(self.buf)))

    def _line(self, request: int, fields: int) -> list[int]:
        """The holder's next line: ``request`` then ``fields`` more integers."""
        while b"\n" not in self.buf:
            if len(self.buf) > 64:
                raise ValueError(f"the output holder wrote {bytes(self.buf[:64])!r} instead of its answer")
            self.fill(len(self.buf) + 1)
        line, _, rest = bytes(self.buf).partition(b"\n")
        self.buf = bytearray(rest)
        numbers = [int(x) for x in line.split()]
        if len(numbers) != fields + 1 or numbers[0] != request:
            raise ValueError(f"the output holder answered {line[:64]!r} to request {request}")
        return numbers[1:]

    def sockets(self, request: int) -> list[str]:
        """The holder's first answer to ``request``: the sockets in ``/out`` (paths relative to it)."""
        (size,) = self._line(request, 1)
        if size > 1 << 24:
            raise ValueError(f"the output holder announced {size} bytes of socket names")
        names = self.take(size).split(b"\0") if size else []
        return [name.removeprefix(b"/out/").decode("utf-8", "surrogateescape") for name in names if name]

    def answer(self, request: int) -> tuple[int, int]:
        """The holder's last answer to ``request``: its tar's exit status and the count of entries left in
        ``/out`` after emptying it."""
        tar_status, left = self._line(request, 2)
        return tar_status, left

    def close(self) -> None:
        """Close the holder's stdin (it exits on its own)."""
        raw = self._raw()
        if raw is not None:
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError, AttributeError):
            self.sock.close()
        self.sock = None


class _HolderGone(EOFError):
    """The output holder stopped answering (its connection closed, reset or timed out)."""


class _HolderTar(io.RawIOBase):
    """The tar archive a holder writes on its stdout, read up to its two end-of-archive blocks and not a byte
    further (its answer line follows). Busybox tar writes 512-byte header blocks, each followed by its data
    padded to 512 bytes, then two zero blocks, with no record padding."""

    def __init__(self, slot: _Slot) -> None:
        self.slot = slot
        self.data_left = 0
        self.zeros = 0
        self.pending = b""
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:

        if not self.pending:
            if self.done:
                return 0
            if self.data_left:
                self.pending = self.slot.take_some(min(self.data_left, 1 << 20))
                self.data_left -= len(self.pending)
            else:
                block = self.slot.take(512)
                if block == _ZERO_BLOCK:
                    self.zeros += 1
                    self.done = self.zeros == 2
                else:
                    self.zeros = 0
                    self.data_left = -(-_tar_number(block[124:136]) // 512) * 512
                self.pending = block
        n = min(len(b), len(self.pending))
        b[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def drain(self) -> None:
        """Consume what the tar reader left of the archive (its end blocks)."""
        chunk = bytearray(1 << 16)
        while self.readinto(chunk):
            pass


def _slot_key(limits: Limits) -> tuple[int, int]:
    return limits.output_bytes, limits.output_files


def _cap_pages(limits: Limits) -> int:
    """The output cap rounded up to whole pages (a tmpfs allocates a file's bytes by pages)."""
    return math.ceil(limits.output_bytes / _PAGE) * _PAGE


def _volume_bytes(limits: Limits) -> int:
    """The output volume's size: the cap in whole pages plus one page. An output exactly at the cap then fits,
    and an app that tries to write past it is seen to: its apparent bytes or its pages exceed the cap (and
    ``nr_inodes`` likewise leaves one inode past ``output_files`` entries)."""
    return _cap_pages(limits) + _PAGE


class _Outcome:
    """What :meth:`Sandbox._execute` observed."""

    def __init__(self) -> None:
        self.exit_code: int | None = None
        self.run_seconds = 0.0
        self.timed_out = self.oom_killed = self.pids_hit = False
        self.outside_signal: str | None = None  # a signal the engine delivered that our limits did not send
        self.start_error: str | None = None
        self.stdout_bytes = self.stderr_bytes = 0


#: what a reused container serves: the job (RunSpec.reuse), the image, RAM, CPUs, pids, /tmp, /checkpoint mounted
_ReuseKey = tuple[str, str, int, float, int, int, bool]


class _Reused:
    """A reused container (worker/_reuse.py) and its folder: ``in`` (its /in), ``checkpoint`` (its /checkpoint)."""

    def __init__(self, key: _ReuseKey, folder: Path) -> None:
        self.key, self.folder = key, folder
        self.inputs, self.checkpoint = folder / "in", folder / "checkpoint"
        self.control = folder / "ctl"  # the launcher's task file (read-only in the container)
        self.container: Container | None = None
        self.launcher: _Launcher | None = None


class _Launcher:
    """A reused container's launcher (worker/_reuse.py): its attach stream, its host pid and what it was like when it
    started (:func:`worker._reuse.process_traits`)."""

    def __init__(self, sock: Any) -> None:
        self.sock, self.raw = sock, getattr(sock, "_sock", sock)
        self.pid = 0
        self.traits: tuple[str, ...] | None = None
        self._buf = bytearray()

    def running(self, container_id: str) -> bool:
        """Whether the launcher still runs in its container (read from this host's cgroup)."""
        procs = _reuse.cgroup_file(container_id, "pids", "cgroup.procs")
        try:
            return procs is not None and str(self.pid) in procs.read_text().split()
        except OSError:
            return False

    def alive(self, container_id: str) -> bool:
        """Whether the launcher still runs, unchanged, in its container (read from this host's /proc)."""
        return self.running(container_id) and self.traits is not None and \
            _reuse.process_traits(self.pid) == self.traits

    def send(self, line: str) -> None:
        self.raw.sendall(line.encode() + b"\n")

    def frame(self, deadline: float) -> tuple[int, bytes] | None:
        """The next (stream, data) frame of the attach stream, None at its end; :class:`TimeoutError` past
        ``deadline`` (monotonic)."""
        header = self._read(8, deadline)
        if header is None:
            return None
        data = self._read(int.from_bytes(header[4:], "big"), deadline)
        return None if data is None else (header[0], data)

    def _read(self, n: int, deadline: float) -> bytes | None:
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.raw.settimeout(left)
            try:
                chunk = self.raw.recv(1 << 16)
            except TimeoutError:
                raise
            except OSError:
                return None
            if not chunk:
                return None
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.raw.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()


class _Active:
    """A run going on in a reused container: its launcher's host pid, whether it ended, and the signal a stop sent
    it."""

    def __init__(self, reused: _Reused, pid: int) -> None:
        self.reused, self.pid = reused, pid
        self.done = threading.Event()
        self.stopped: str | None = None


class _StaleContainer(Exception):
    """The reused container is no longer running (it is replaced)."""


def _remove_tree(path: Path) -> None:
    """Remove ``path`` whatever the app left in it (folders without rights included)."""
    def grant(func: Any, target: str, exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(target) or ".", 0o700)
            func(target)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, onerror=grant)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


class _ImageProblem(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _last_error(errors: bytes) -> str:
    """The last line the holder wrote on its stderr (its tar's complaint)."""
    lines = errors.decode("utf-8", "surrogateescape").strip().splitlines()
    return lines[-1] if lines else ""


def _last_line(path: Path, limit: int = 200) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - 4096))
            tail = fh.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return tail[-1][:limit] if tail else ""


def sandbox_owner(address: str, state_dir: Path) -> str:
    """The ``tasknet.sandbox`` label of a daemon's containers: its address and a digest of its state folder."""
    return f"{address.lower()}-{hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:8]}"


def remove_sandbox_leftovers(client: docker.DockerClient, owner: str) -> int:
    """Remove every container and volume labelled as ``owner``'s (``tasknet.sandbox=<owner>``): what a daemon
    that died without cleaning up left in the engine. Return how many were removed."""
    n = 0
    selector = {"label": f"tasknet.sandbox={owner}"}
    for container in client.containers.list(all=True, filters=selector, ignore_removed=True):
        with contextlib.suppress(Exception):
            container.remove(force=True)
            n += 1
    for volume in client.volumes.list(filters=selector):
        with contextlib.suppress(Exception):
            volume.remove(force=True)
            n += 1
    return n


def _tar_number(field: bytes) -> int:
    """A numeric field of a tar header: octal text, or GNU base-256 (first byte 0x80 or 0xff) for large values."""
    if field[:1] in (b"\x80", b"\xff"):
        n = int.from_bytes(field[1:], "big")
        return n if field[0] == 0x80 else n - (1 << (8 * (len(field) - 1)))
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError as exc:
        raise tarfile.HeaderError(f"invalid number {field!r} in a tar header") from exc


def _fresh_paths(spec: RunSpec) -> _Paths:
    """Empty log files and an empty output folder for a run (a local one, or a cluster's)."""
    spec.log_dir.mkdir(parents=True, exist_ok=True)
    paths = _Paths(spec.output_dir, spec.log_dir / "stdout", spec.log_dir / "stderr")
    for p in (paths.stdout, paths.stderr):
        p.write_bytes(b"")
    spec.output_dir.mkdir(parents=True, exist_ok=True)
    if any(spec.output_dir.iterdir()):
        raise SandboxError(f"output folder {spec.output_dir} is not empty; give each run a fresh folder")
    spec.output_dir.chmod(0o755)
    return paths
