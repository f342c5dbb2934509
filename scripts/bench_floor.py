"""Time to results against its floor (issue #17): an honest POV-Ray bag, 48 frames, at R = 1 and R = 2 with 4 workers.

    scripts/bench floor [--runs 3] [--frames 48] [--json] [--no-write]

Each run does, on this machine:

1. **The floor.** The same 48 frames rendered directly in the demo's image (``tasknet/povray-demo:1``, built by
   ``tasknet demo``) with the sandbox's confinement (no network, read-only root, all capabilities dropped,
   ``no-new-privileges``, user 65534, one CPU, 256 MiB, a tmpfs ``/out``), one long-lived container per core, each
   frame a ``docker exec`` of the app's ``render.sh``. The render CPU is the sum over those containers of their
   cgroup's ``cpuacct.usage`` (cgroup v1; the engine runs on this host), read before and after; the floor is that
   CPU ÷ the cores.
2. **The job, R = 1 then R = 2.** ``tasknet demo``'s run (its own devnet, 4 honest worker processes, no liar, no
   crash, R forced to 1 and 2) and its summary's ``results_s``: from posting to the last verified result (the
   workers start after the posting, so their start-up is included).

Ratios: ``r1_ratio`` = R = 1's time ÷ floor, ``r2_ratio_per_replica`` = R = 2's time ÷ (2 × floor). Medians and
min–max over ``--runs``, the load average before and after, and each worker's per-phase profile (seconds between
journal steps, summed over its tasks: claim → fetched inputs → ran → uploaded → committed/submitted → done). The
last line is JSON: ``{"r1_ratio": …, "r2_ratio_per_replica": …, "floor_s": …}`` (medians; ``--json`` prints
the whole result on the line before). The Markdown table goes into BENCHMARKS.md between ``<!-- floor:start -->``
and ``<!-- floor:end -->``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker
from _bench_rows import FloorRow, FloorRun, Spread
from _daemon_costs import floor_ratio
from docker.types import Mount
from rich.console import Console

if TYPE_CHECKING:
    from tasknet._demo import Summary

IMAGE = "tasknet/povray-demo:1"
CGROUP = Path("/sys/fs/cgroup/cpuacct/docker")


def say(msg: str) -> None:
    print(f"bench floor: {msg}", file=sys.stderr, flush=True)


def render_cpu(frames: int, width: int, height: int, cores: int) -> dict[str, float]:
    """Render every frame directly, ``cores`` confined containers at a time; their summed cgroup CPU and wall."""
    client = docker.from_env()
    scene = ROOT / "examples" / "povray" / "scene.pov"
    boxes = [client.containers.run(
        IMAGE, ["infinity"], entrypoint="sleep", detach=True, network_mode="none", read_only=True,
        cap_drop=["ALL"], security_opt=["no-new-privileges"], user="65534:65534", nano_cpus=1_000_000_000,
        mem_limit="256m", memswap_limit="256m", pids_limit=64, environment={"HOME": "/tmp"},
        mounts=[Mount("/out", "", type="tmpfs", tmpfs_size=64 * 2**20, tmpfs_mode=0o1777),
                Mount("/tmp", "", type="tmpfs", tmpfs_size=16 * 2**20, tmpfs_mode=0o1777),
                Mount("/in/scene.pov", str(scene), type="bind", read_only=True)], labels={"tasknet.bench": "floor"})
        for _ in range(cores)]
    try:
        for c in boxes:  # the engine ignores tmpfs_mode here; root owns the tmpfs and may chmod it without capabilities
            c.exec_run(["chmod", "1777", "/out"], user="0")
        def usage(c: Any) -> int:
            return int((CGROUP / c.id / "cpuacct.usage").read_text())

        before = [usage(c) for c in boxes]

        def lane(k: int) -> None:
            for i in range(k, frames, cores):
                code, out = boxes[k].exec_run(["/usr/local/bin/render.sh", str(i), str(frames), str(width),
                                               str(height)], workdir="/out")
                if code != 0:
                    raise SystemExit(f"bench floor: frame {i} failed to render ({code}): {out[-300:]!r}")

        t0 = time.monotonic()
        with ThreadPoolExecutor(cores) as pool:
            list(pool.map(lane, range(cores)))
        wall = time.monotonic() - t0
        cpu = sum(usage(c) for c in boxes) - sum(before)
        return {"cpu_s": cpu / 1e9, "direct_wall_s": wall}
    finally:
        for c in boxes:
            c.remove(force=True)
        client.close()


def job(frames: int, replication: int, tmp: Path) -> tuple[Summary, dict[str, float]]:
    """``tasknet demo`` with 4 honest workers at R = ``replication``; its summary and its workers' phases."""
    from tasknet._demo import Demo, DemoOptions

    opts = DemoOptions(frames=frames, workers=4, liar=False, crasher=False, keep=False,
                       out_dir=tmp / f"demo-r{replication}").model_copy(update={"replication": replication})
    summary = Demo(opts, None, Console(stderr=True, quiet=True)).run()
    return summary, phases(opts.out_dir / "workers")


def phases(workers: Path) -> dict[str, float]:
    """Seconds between consecutive journal steps, summed over every task of every worker (the step reached names
    the phase that ended there: ``INPUTS_READY`` is fetching, ``RAN`` running, ``UPLOADED`` uploading, ...)."""
    from worker import Journal

    out: dict[str, float] = {}
    for db in sorted(workers.glob("*/journal.db")):
        journal = Journal(db)
        try:
            for rec in journal.finished_records() + journal.unfinished():
                steps = journal.step_times(rec.job_id, rec.task_index)
                for (_, t0), (step, t1) in itertools.pairwise(steps):
                    out[step.name.lower()] = out.get(step.name.lower(), 0.0) + (t1 - t0)
        finally:
            journal.close()
    return {k: round(v, 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


def spread(values: list[float]) -> Spread:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def markdown(out: FloorRow) -> str:
    def cell(v: Spread) -> str:
        return f"{v['median']} ({v['min']}–{v['max']})"

    lines = ["## Time to results over the floor (POV-Ray bag, issue #17)", "",
             (f"Measured by `scripts/bench floor --runs {len(out['runs'])}`: {out['frames']} frames of the demo's scene "
             f"(320×240), 4 honest worker processes, {out['cores']} cores, load average {out['load_before']} before "
             f"and {out['load_after']} after (the machine is shared: the figures are indicative). Time: from posting "
             "to the last verified result (the workers start after the posting). Floor: the same frames rendered "
             "directly in the same image with the sandbox's confinement, their containers' CPU "
             f"({out['cpu_source']}) ÷ the cores. Median (min–max) of the runs."), "",
             "| figure | value | target |", "| --- | ---: | ---: |",
             f"| floor (render CPU ÷ cores), s | {cell(out['floor_s'])} | — |",
             f"| the same renders' wall time, {out['cores']} at a time, s | {cell(out['direct_wall_s'])} | — |",
             f"| R = 1: posting to last result, s | {cell(out['r1_s'])} | — |",
             f"| R = 1 ÷ floor | {cell(out['r1_ratio'])} | ≤ 1.5 |",
             f"| R = 2: posting to last result, s | {cell(out['r2_s'])} | — |",
             f"| R = 2 ÷ (2 × floor), per replica | {cell(out['r2_ratio_per_replica'])} | ≤ 1.6 |", "",
             (f"The direct renders themselves, one container each, take "
              f"{out['direct_wall_s']['median'] / out['floor_s']['median']:.1f}× the floor: a container's start and "
              f"stop cost more than a frame's render. Against their wall time R = 1 is "
              f"{out['r1_s']['median'] / out['direct_wall_s']['median']:.2f}× and R = 2 per replica "
              f"{out['r2_s']['median'] / (2 * out['direct_wall_s']['median']):.2f}× (medians). Coming nearer the "
              "floor would take one container for several tasks, which needs a full reset of its state between "
              "tasks: otherwise a hostile app could leave state behind that makes honest replicas disagree."), "",
             ("Where the workers' time goes (seconds between journal steps, summed over every task and worker; the "
             "step names the phase that ended there), first run:"), "", "| step reached | R = 1, s | R = 2, s |",
             "| --- | ---: | ---: |"]
    r = out["runs"][0]
    for step in sorted(set(r["r1_phases_s"]) | set(r["r2_phases_s"]), key=lambda k: -r["r2_phases_s"].get(k, 0.0)):
        lines.append(f"| {step} | {r['r1_phases_s'].get(step, '—')} | {r['r2_phases_s'].get(step, '—')} |")
    return "\n".join(lines)


def write_benchmarks(md: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    start, end = "<!-- floor:start -->", "<!-- floor:end -->"
    text = path.read_text()
    block = f"{start}\n{md}\n{end}"
    if start in text and end in text:
        text = text.split(start, 1)[0] + block + text.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> FloorRow:
    ap = argparse.ArgumentParser(prog="scripts/bench floor")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    a = ap.parse_args(argv)
    width, _, height = a.size.partition("x")
    cores = os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix="tasknet-bench-floor-"))
    os.environ.setdefault("TASKNET_HOME", str(tmp / "home"))
    load_before = [round(x, 2) for x in os.getloadavg()]
    runs: list[FloorRun] = []
    for n in range(a.runs):
        say(f"run {n + 1}/{a.runs}: R = 1")
        r1, r1_phases = job(a.frames, 1, tmp / f"run{n}")
        say(f"run {n + 1}/{a.runs}: R = 2")
        r2, r2_phases = job(a.frames, 2, tmp / f"run{n}")
        say(f"run {n + 1}/{a.runs}: the floor, {a.frames} frames rendered directly on {cores} cores")
        direct = render_cpu(a.frames, int(width), int(height), cores)
        f1 = floor_ratio(r1["results_s"], direct["cpu_s"], cores)
        f2 = floor_ratio(r2["results_s"], direct["cpu_s"], cores, replicas=2)
        runs.append({"floor_s": f1["floor_s"], "render_cpu_s": round(direct["cpu_s"], 2),
                     "direct_wall_s": round(direct["direct_wall_s"], 2), "r1_s": r1["results_s"],
                     "r2_s": r2["results_s"], "r1_ratio": f1["ratio"], "r2_ratio_per_replica": f2["ratio_per_replica"],
                     "r1_gas_per_task": r1["gas_per_task"], "r2_gas_per_task": r2["gas_per_task"],
                     "r1_phases_s": r1_phases, "r2_phases_s": r2_phases})
        say(json.dumps(runs[-1]))
    out: FloorRow = {"r1_ratio": spread([r["r1_ratio"] for r in runs]),
                     "r2_ratio_per_replica": spread([r["r2_ratio_per_replica"] for r in runs]),
                     "floor_s": spread([r["floor_s"] for r in runs]), "r1_s": spread([r["r1_s"] for r in runs]),
                     "r2_s": spread([r["r2_s"] for r in runs]),
                     "direct_wall_s": spread([r["direct_wall_s"] for r in runs]),
                     "runs": runs, "frames": a.frames, "workers": 4, "cores": cores, "load_before": load_before,
                     "load_after": [round(x, 2) for x in os.getloadavg()],
                     "cpu_source": "cgroup v1 cpuacct.usage of the render containers"}
    last = {"r1_ratio": out["r1_ratio"]["median"], "r2_ratio_per_replica": out["r2_ratio_per_replica"]["median"],
            "floor_s": out["floor_s"]["median"]}
    md = markdown(out)
    if not a.no_write:
        write_benchmarks(md)
    print(md)
    if a.json:
        print(json.dumps(out))
    print(json.dumps(last))
    return out


if __name__ == "__main__":
    main()
