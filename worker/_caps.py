"""What this machine can lend: cores, memory, architecture, GPUs, and whether Docker is usable."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from ._gpus import GpuDevice, detect_gpus, docker_info

if TYPE_CHECKING:
    import docker

#: architectures as the contracts encode them (uint8); 0 means "any" in a job's requirements
ARCHITECTURES = {"any": 0, "amd64": 1, "arm64": 2, "riscv64": 3}
_MACHINE_TO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "riscv64": "riscv64"}


class Capabilities(BaseModel):
    cores: int
    memory_mb: int
    gpus: int
    arch: str
    #: the GPUs counted in ``gpus`` (model, memory, the id Docker is given), as detection listed them
    gpu_devices: list[GpuDevice] = Field(default_factory=list)
    #: why no GPU is lent although some were seen (no NVIDIA container runtime...), for logs and status
    gpu_note: str = ""

    @property
    def arch_code(self) -> int:
        return ARCHITECTURES.get(self.arch, 0)

    @property
    def gpu_ids(self) -> list[str]:
        """The ids the sandbox gives Docker for the ``gpus`` devices (their indexes when they were not listed)."""
        ids = [d.id or str(d.index) for d in self.gpu_devices]
        return ids[:self.gpus] if len(ids) >= self.gpus else [str(i) for i in range(self.gpus)]


def detect_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def detect_memory_mb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20))


def detect(docker_client: docker.DockerClient | None = None) -> Capabilities:
    """This machine's capabilities. GPUs count only when ``docker_client``'s engine can give them to a container
    (see worker/_gpus.py): without a client, or without an NVIDIA container runtime, none."""
    inventory = detect_gpus(docker_info(docker_client))
    return Capabilities(cores=detect_cores(), memory_mb=detect_memory_mb(), gpus=inventory.count,
                        gpu_devices=inventory.devices, gpu_note=inventory.note,
                        arch=_MACHINE_TO_ARCH.get(platform.machine().lower(), platform.machine().lower()))


def load_average() -> float:
    """The 1-minute load average divided by the number of cores (1.0 = fully busy)."""
    return os.getloadavg()[0] / max(detect_cores(), 1)
