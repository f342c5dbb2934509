"""Where a machine's CPU goes while a job runs (issue #17: "the profile decides"), read from ``/proc``.

:class:`CpuProfile` samples every process's CPU time (``/proc/<pid>/stat``: user + system) a few times a second
between :meth:`~CpuProfile.start` and :meth:`~CpuProfile.stop`, and groups it by what the process is (its command
line). Processes in a Docker container are not sampled one by one: their CPU is the containers' cgroup total
(``cpuacct.usage`` of the engine's cgroup, cgroup v1), exact. What no group holds (processes too short-lived to be
sampled, such as ``runc``, and the kernel's own work) is the machine's total from
``/proc/stat`` less the groups, so the groups and ``other`` add up to the CPU the machine used. Linux only.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_CLK = os.sysconf("SC_CLK_TCK")
_DOCKER_CGROUP = Path("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage")

ENGINE = "docker engine (dockerd, containerd, shims)"
#: (group, what the command line holds), the first match wins; the caller's own process is "requester"
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("worker daemons", ("tasknet.cli", " worker run")),
    ("indexer", ("tasknet.cli", " indexer run")),
    ("chain (anvil)", ("anvil",)),
    ("kubo", ("ipfs", " daemon")),
    (ENGINE, ("containerd",)),
    (ENGINE, ("dockerd",)),
)
CONTAINERS = "containers (the renders, the output holders)"
REQUESTER = "requester (the demo's process)"
OTHER = "other (runc, the kernel, short-lived processes)"


def _busy_ticks() -> tuple[int, int]:
    """The machine's (busy, idle) clock ticks since boot, all CPUs."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields[:8]) - idle, idle  # user nice system idle iowait irq softirq steal


def _containers_ns() -> int:
    try:
        return int(_DOCKER_CGROUP.read_text())
    except (OSError, ValueError):
        return 0


@dataclass(slots=True)
class _Proc:
    group: str | None  # None: no group's (or a container's, counted by the engine's cgroup)
    first: int  # its CPU ticks when first counted
    last: int  # its CPU ticks when last sampled


class CpuProfile:
    """CPU seconds by group between :meth:`start` and :meth:`stop` (see the module's docstring)."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self._me = os.getpid()
        self._seen: dict[tuple[int, int], _Proc] = {}  # (pid, start tick) -> its group and CPU ticks
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._own_s = 0.0  # the sampler thread's own CPU, taken out of the requester's
        self.result: dict[str, float] = {}  # where a caller keeps what stop() returned
        self._t0 = 0.0
        self._since_tick = 0
        self._busy0 = self._idle0 = self._containers0 = 0

    def _group(self, pid: int) -> str | None:
        if pid == self._me:
            return REQUESTER
        try:
            if "/docker/" in Path(f"/proc/{pid}/cgroup").read_text():
                return None  # a container's: counted by the engine's cgroup
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return None
        for name, needles in GROUPS:
            if all(n in cmd for n in needles):
                return name
        return None

    def _sample(self, first: bool) -> None:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            ticks, started = int(fields[11]) + int(fields[12]), int(fields[19])
            key = (pid, started)
            proc = self._seen.get(key)
            if proc is None:
                # a process born after start() counts from its birth; one alive before, from start()
                base = ticks if first or started < self._since_tick else 0
                proc = self._seen[key] = _Proc(self._group(pid), base, ticks)
            proc.last = ticks

    def _loop(self) -> None:
        t = time.thread_time()
        while not self._stop.wait(self.interval):
            self._sample(first=False)
        self._own_s = time.thread_time() - t

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._since_tick = int(float(Path("/proc/uptime").read_text().split()[0]) * _CLK)
        self._busy0, self._idle0 = _busy_ticks()
        self._containers0 = _containers_ns()
        self._sample(first=True)
        self._thread = threading.Thread(target=self._loop, name="cpu-profile", daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        """Seconds of CPU by group, plus ``other``, ``idle``, ``total`` (busy + idle) and ``wall_s``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample(first=False)
        busy, idle = _busy_ticks()
        out: dict[str, float] = {CONTAINERS: (_containers_ns() - self._containers0) / 1e9}
        for proc in self._seen.values():
            if proc.group is not None:
                out[proc.group] = out.get(proc.group, 0.0) + (proc.last - proc.first) / _CLK
        if REQUESTER in out:
            out[REQUESTER] = max(0.0, out[REQUESTER] - self._own_s)
        used = (busy - self._busy0) / _CLK
        out[OTHER] = max(0.0, used - sum(out.values()))
        out = {k: round(v, 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}
        out["idle"] = round((idle - self._idle0) / _CLK, 2)
        out["total"] = round(used + (idle - self._idle0) / _CLK, 2)
        out["wall_s"] = round(time.monotonic() - self._t0, 2)
        return out
