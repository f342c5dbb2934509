"""GPUs given to tasks: what this machine can lend (detection), and which task holds which device (allocation).

**Detection.** A GPU is lent only when a container can be given it: ``nvidia-smi --query-gpu=index,name,memory.total
--format=csv,noheader,nounits`` lists the devices (model and memory), and the Docker engine must have a working
NVIDIA container runtime: ``nvidia`` among ``docker info``'s Runtimes (the NVIDIA Container Toolkit; devices are then
passed as ``--gpus``-style device requests), or CDI (Docker 25+ with CDI enabled: ``docker info`` reports its
``CDISpecDirs``) with a spec in those folders that lists ``nvidia.com/gpu`` devices (passed as ``nvidia.com/gpu=<i>``).
Without either, the machine lends 0 GPUs whatever ``/dev`` shows: a task asking for one would run without it.

**Allocation.** :class:`GpuAllocator` hands each running task the device ids it asked for, never the same device
to two tasks at once, and takes them back when the run ends, however it ends (:meth:`GpuAllocator.lease` is a
context manager around the container's run). Devices are held only while a container runs; what a worker has
claimed but not yet run is counted from its journal (the daemon claims a GPU job only while enough lent GPUs are
not promised to its other claimed tasks), so a restart needs nothing saved: the allocator starts empty, as the
engine does (the sandbox removes a crashed worker's containers at start).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from oracle import get_logger

from .exceptions import GpuUnavailable

if TYPE_CHECKING:
    import docker
    from docker.types import DeviceRequest

log = get_logger(__name__)

#: what nvidia-smi is asked (one CSV line per device)
NVIDIA_SMI_QUERY = ["--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"]
#: where CDI specs live when the engine does not say (the CDI specification's defaults)
CDI_SPEC_DIRS = ("/etc/cdi", "/var/run/cdi")
#: the CDI kind of NVIDIA GPUs
CDI_KIND = "nvidia.com/gpu"
#: words of the engine's answer when a container's device request cannot be met (no driver, device gone)
_GPU_ERROR_WORDS = ("nvidia", "gpu", "cdi", "device driver", "device request")

Runtime = Literal["nvidia", "cdi"]


class GpuDevice(BaseModel):
    """One GPU as ``nvidia-smi`` lists it. ``id`` is what the sandbox passes to Docker: the index for the NVIDIA
    runtime, ``nvidia.com/gpu=<index>`` for CDI."""

    index: int
    name: str
    memory_mb: int
    id: str = ""


class GpuInventory(BaseModel):
    """What detection found: the devices lent (none without a container runtime), those ``nvidia-smi`` listed, the
    runtime that passes them to containers, and, when none is lent, why."""

    devices: list[GpuDevice] = []
    seen: list[GpuDevice] = []
    runtime: Runtime | None = None
    note: str = ""

    @property
    def count(self) -> int:
        return len(self.devices)


def query_nvidia_smi(binary: str = "nvidia-smi", timeout: float = 15.0) -> tuple[list[GpuDevice], str]:
    """The devices ``nvidia-smi`` lists (index, model, memory in MiB), and why none when it lists none."""
    path = shutil.which(binary)
    if path is None:
        return [], "nvidia-smi is not installed (no NVIDIA driver)"
    try:
        proc = subprocess.run([path, *NVIDIA_SMI_QUERY], capture_output=True, text=True, timeout=timeout,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], f"nvidia-smi did not answer ({exc})"
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        return [], f"nvidia-smi failed (exit {proc.returncode}: {detail[-1] if detail else 'no output'})"
    devices: list[GpuDevice] = []
    for line in proc.stdout.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 3 or not fields[0].isdigit():
            continue
        memory = fields[-1]
        devices.append(GpuDevice(index=int(fields[0]), name=",".join(fields[1:-1]),
                                 memory_mb=int(float(memory)) if memory.replace(".", "", 1).isdigit() else 0))
    return devices, "" if devices else "nvidia-smi lists no GPU"


def cdi_lists_nvidia(dirs: Sequence[str | Path]) -> bool:
    """Whether a CDI spec (JSON or YAML) in ``dirs`` declares the kind ``nvidia.com/gpu``."""
    for folder in map(Path, dirs):
        try:
            specs = sorted(p for p in folder.iterdir() if p.suffix in (".json", ".yaml", ".yml"))
        except OSError:
            continue
        for spec in specs:
            try:
                text = spec.read_text(errors="replace")
            except OSError:
                continue
            if spec.suffix == ".json":
                with contextlib.suppress(ValueError):
                    if isinstance(doc := json.loads(text), dict) and doc.get("kind") == CDI_KIND:
                        return True
                continue
            for line in text.splitlines():
                key, _, value = line.partition(":")
                if key.strip() == "kind" and value.strip().strip("'\"") == CDI_KIND:
                    return True
    return False


def container_runtime(info: Mapping[str, Any] | None) -> tuple[Runtime | None, str]:
    """How the engine described by ``info`` (``docker info`` as a dict) gives GPUs to containers, and why it
    cannot when it cannot."""
    if info is None:
        return None, "the Docker engine did not answer 'docker info'"
    if "nvidia" in (info.get("Runtimes") or {}):
        return "nvidia", ""
    cdi_dirs = info.get("CDISpecDirs")
    if cdi_dirs and cdi_lists_nvidia(cdi_dirs):
        return "cdi", ""
    if cdi_dirs is None and cdi_lists_nvidia(CDI_SPEC_DIRS):
        return None, ("a CDI spec lists nvidia.com/gpu, but this Docker engine does not use CDI (Docker 25+ with "
                      "the 'cdi' feature enabled); install the NVIDIA Container Toolkit and run 'nvidia-ctk runtime "
                      "configure --runtime=docker', or upgrade Docker")
    return None, ("the Docker engine has no NVIDIA container runtime (no 'nvidia' in 'docker info' Runtimes, no "
                  "CDI spec listing nvidia.com/gpu); install the NVIDIA Container Toolkit and run 'nvidia-ctk "
                  "runtime configure --runtime=docker', then restart Docker")


def detect_gpus(info: Mapping[str, Any] | None, *, nvidia_smi: str = "nvidia-smi") -> GpuInventory:
    """The GPUs this machine lends: those ``nvidia-smi`` lists, when the engine (``docker info`` as ``info``) has
    a runtime to pass them to containers; none otherwise (the note says why)."""
    seen, note = query_nvidia_smi(nvidia_smi)
    if not seen:
        return GpuInventory(note=note)
    runtime, note = container_runtime(info)
    if runtime is None:
        return GpuInventory(seen=seen, note=f"{len(seen)} GPU(s) found, none lent: {note}")
    devices = [d.model_copy(update={"id": str(d.index) if runtime == "nvidia" else f"{CDI_KIND}={d.index}"})
               for d in seen]
    return GpuInventory(devices=devices, seen=seen, runtime=runtime)


def docker_info(client: docker.DockerClient | None) -> dict[str, Any] | None:
    """``docker info`` of ``client``'s engine, or None when there is no client or it does not answer."""
    if client is None:
        return None
    try:
        return dict(client.info())
    except Exception as exc:  # noqa: BLE001 - no engine: no GPU can be given to a container
        log.warning("docker_info_failed", error=str(exc)[:300])
        return None


def device_requests(ids: Sequence[str]) -> list[DeviceRequest]:
    """Docker device requests giving a container exactly the GPUs ``ids``: the NVIDIA runtime's (``--gpus
    device=0,1``) for plain indexes, CDI's for qualified names (``nvidia.com/gpu=0``)."""
    from docker.types import DeviceRequest

    plain = [i for i in ids if "=" not in i]
    cdi = [i for i in ids if "=" in i]
    out = []
    if plain:
        out.append(DeviceRequest(driver="nvidia", device_ids=plain, capabilities=[["gpu"]]))
    if cdi:
        out.append(DeviceRequest(driver="cdi", device_ids=cdi))
    return out


def is_gpu_start_error(message: str) -> bool:
    """Whether the engine's refusal to start a container that was given GPUs is about the GPUs (no driver, no
    runtime, a device gone), not about the app."""
    text = message.lower()
    return any(word in text for word in _GPU_ERROR_WORDS)


def promised_gpus(records: Iterable[Mapping[str, Any]]) -> int:
    """GPUs promised to the tasks of ``records`` (the data of the journal's unfinished records before UPLOADED:
    claimed, fetching inputs, running, or waiting to be retried): they are not free for another claim. Read from
    the journal, so a restarted worker counts what it claimed before its crash."""
    return sum(int((data.get("job") or {}).get("gpus") or 0) for data in records)


class GpuAllocator:
    """Which running task holds which GPU. Thread-safe; a device is held by one task at a time."""

    def __init__(self, ids: Sequence[str]) -> None:
        self.ids = list(dict.fromkeys(ids))
        self._held: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return len(self.ids)

    def set_ids(self, ids: Sequence[str]) -> None:
        """Lend ``ids`` from now on (after a new detection); what running tasks hold stays theirs until released."""
        with self._lock:
            self.ids = list(dict.fromkeys(ids))

    def free(self) -> int:
        with self._lock:
            busy = {d for devices in self._held.values() for d in devices}
            return len([d for d in self.ids if d not in busy])

    def holds(self, key: str) -> list[str]:
        with self._lock:
            return list(self._held.get(key, []))

    def assignments(self) -> dict[str, list[str]]:
        with self._lock:
            return {k: list(v) for k, v in self._held.items()}

    def take(self, key: str, count: int) -> list[str] | None:
        """``count`` free devices for task ``key`` (the lowest ids first), or None when fewer are free. A task that
        already holds devices keeps them (and gets more if it asks for more)."""
        with self._lock:
            mine = self._held.get(key, [])
            if len(mine) >= count:
                return list(mine[:count])
            busy = {d for devices in self._held.values() for d in devices}
            extra = [d for d in self.ids if d not in busy][:count - len(mine)]
            if len(mine) + len(extra) < count:
                return None
            self._held[key] = mine + extra
            return list(self._held[key])

    def release(self, key: str) -> list[str]:
        with self._lock:
            return self._held.pop(key, [])

    def keep_only(self, keys: set[str]) -> list[str]:
        """Release what tasks other than ``keys`` hold (the tasks still running); return the keys released."""
        with self._lock:
            gone = [k for k in self._held if k not in keys]
            for k in gone:
                del self._held[k]
            return gone

    @contextlib.contextmanager
    def lease(self, key: str, count: int) -> Iterator[tuple[str, ...]]:
        """The devices of task ``key`` for the length of the ``with`` block (one run), released however it ends.
        Raises :class:`GpuUnavailable` when fewer than ``count`` are free: this worker's environment, not the task."""
        if count <= 0:
            yield ()
            return
        devices = self.take(key, count)
        if devices is None:
            raise GpuUnavailable(f"the task needs {count} GPU(s) but only {self.free()} of the {self.total} this "
                                 "worker lends are free now; it is given back for another worker (raise "
                                 "policy.gpus_lent or lower max_concurrent if this repeats)")
        try:
            yield tuple(devices)
        finally:
            self.release(key)
