"""What this machine can lend: cores, memory, architecture, GPUs, and whether Docker is usable."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

from pydantic import BaseModel

#: architectures as the contracts encode them (uint8); 0 means "any" in a job's requirements
ARCHITECTURES = {"any": 0, "amd64": 1, "arm64": 2, "riscv64": 3}
_MACHINE_TO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "riscv64": "riscv64"}


class Capabilities(BaseModel):
    cores: int
    memory_mb: int
    gpus: int
    arch: str

    @property
    def arch_code(self) -> int:
        return ARCHITECTURES.get(self.arch, 0)


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


def detect_gpus() -> int:
    """NVIDIA devices visible to this host (``/dev/nvidia0`` ...); 0 when none or no driver."""
    if not shutil.which("nvidia-smi"):
        return 0
    return len([p for p in Path("/dev").glob("nvidia[0-9]*")])


def detect() -> Capabilities:
    return Capabilities(cores=detect_cores(), memory_mb=detect_memory_mb(), gpus=detect_gpus(),
                        arch=_MACHINE_TO_ARCH.get(platform.machine().lower(), platform.machine().lower()))


def load_average() -> float:
    """The 1-minute load average divided by the number of cores (1.0 = fully busy)."""
    return os.getloadavg()[0] / max(detect_cores(), 1)
