"""`tasknet demo` as a newcomer runs it, on a smaller setting: 6 frames, 4 worker processes, one of them lying
(a frame the liar disputes needs R + 2 = 4 distinct workers to reach a strict majority).

Real everything: its own devnet (anvil, kubo, registry) under a private TASKNET_HOME, the Docker engine, the
POV-Ray image, the requester SDK, worker processes, the auditor's verifier.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image


def test_demo_renders_verifies_and_slashes_the_liar(tmp_path: Path, docker_client) -> None:
    env = {**os.environ, "TASKNET_HOME": str(tmp_path / "home"), "COLUMNS": "160"}
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "tasknet.cli", "demo", "--frames", "6", "--workers", "4", "--no-crash",
                        "--size", "96x72", "--out", str(out)], env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "demo passed" in r.stdout

    gif = Image.open(out / "animation.gif")
    assert gif.n_frames == 6 and gif.size == (96, 72)
    frames = []
    for i in range(6):
        gif.seek(i)
        frames.append(gif.convert("RGB").tobytes())
    assert len(set(frames)) == 6  # an animation: every frame differs

    summary = json.loads((out / "summary.json").read_text())
    liar = next(w for w in summary["workers"] if w["kind"] == "liar")
    honest = [w for w in summary["workers"] if w["kind"] == "honest"]
    assert liar["slashes"] >= 1 and liar["earned_tnt"] < 0
    assert all(w["slashes"] == 0 and w["earned_tnt"] > 0 for w in honest)
    assert summary["audit"]["passed"] and summary["audit"]["tasks"] == 6
    assert summary["gas_per_task"] > 0
    # issue #17: the time to results over the floor (renders' time from the workers' journals ÷ cores); no timing bound
    assert summary["render_s"] > 0 and summary["floor_s"] > 0 and summary["floor_ratio"] > 0
    assert "the floor" in r.stdout
    # the workers follow the chain before the job is posted (a live network), so their start-up is not in results_s
    assert summary["workers_ready_s"] > 0 and "workers ready in" in r.stdout
    # nothing left behind: the devnet the demo started is down
    assert not (tmp_path / "home" / "devnet" / "devnet.json").exists()


def test_demo_refuses_a_pool_too_small_to_outvote_the_liar(tmp_path: Path) -> None:
    env = {**os.environ, "TASKNET_HOME": str(tmp_path / "home")}
    r = subprocess.run([sys.executable, "-m", "tasknet.cli", "demo", "--workers", "3", "--no-crash"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "use --workers 4" in (r.stdout + r.stderr)
    assert not (tmp_path / "home" / "devnet" / "devnet.json").exists()
