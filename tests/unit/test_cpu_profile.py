"""scripts/_cpu_profile.py on this machine's real /proc: a busy process is counted in its group, idle ones are not,
and the groups plus ``other`` add up to what the machine used (no fake: the processes and /proc are real)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import _cpu_profile as cp

BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"


def test_a_busy_worker_process_counts_in_its_group_and_the_groups_add_up_to_the_machines_cpu() -> None:
    profile = cp.CpuProfile(interval=0.05)
    # alive before start(): only what it spends after start() counts
    early = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)\n" + BUSY.format(s=0.4),
                              "tasknet.cli", "indexer run"])
    time.sleep(0.1)
    profile.start()
    # born after start(): counted from its birth; argv makes it a "worker daemon" by its command line
    busy = subprocess.Popen([sys.executable, "-c", BUSY.format(s=0.6), "tasknet.cli", "worker run"])
    busy.wait(30)
    early.wait(30)
    time.sleep(0.2)
    out = profile.stop()
    assert 0.5 <= out["worker daemons"] <= 1.0, out  # 0.6 s of CPU, less what the last samples missed, plus start-up
    assert 0.3 <= out["indexer"] <= 0.8, out
    groups = sum(v for k, v in out.items() if k not in ("idle", "total", "wall_s"))
    used = out["total"] - out["idle"]
    assert abs(groups - used) < 0.05 or out[cp.OTHER] == 0.0, out  # other is the rest, never negative
    assert out["wall_s"] >= 0.6 and out["total"] > 0, out
    assert out.get(cp.REQUESTER, 0.0) < 0.5, out  # this process mostly waited
