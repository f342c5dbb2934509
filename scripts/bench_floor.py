"""Time to results against its floor (issue #17): an honest POV-Ray bag, 48 frames, at R = 1 and R = 2 with 4 workers.

    scripts/bench floor [--runs 3] [--frames 48] [--json] [--no-write]

Each run does, on this machine:

1. **The floor.** The same 48 frames rendered directly in the demo's image (``tasknet/povray-demo:1``, built by
   ``tasknet demo``) with the sandbox's confinement (no network, read-only root, all capabilities dropped,
   ``no-new-privileges``, user 65534, one CPU, 256 MiB, a tmpfs ``/out``), one long-lived container per core, each
   frame a ``docker exec`` of the app's ``render.sh``. The render CPU is the sum over those containers of their
   cgroup's ``cpuacct.usage`` (cgroup v1; the engine runs on this host), read before and after; the floor is that
   CPU ÷ the cores. The same renders again with 4 containers per core show how much of a frame's wall time is
   POV-Ray's own waiting (its front end polls its render threads with 10-100 ms sleeps: a frame takes about 0.9 s
   of wall time for about 0.2 s of CPU), which only more renders at once can fill.
2. **The job, R = 1 then R = 2.** ``tasknet demo``'s run (its own devnet, 4 honest worker processes, no liar, no
   crash, R forced to 1 and 2) and its summary's ``results_s``: from posting to the last verified result, the
   workers already registered, following the chain and warm (as on a live network; their start-up is reported
   apart).
   While the R = 1 job runs (posting to last result), the CPU every process of the machine used is sampled from
   ``/proc`` and grouped: the renders (the containers' cgroup), the worker daemons, the requester (this
   process), the indexer, the chain, kubo, the Docker engine (dockerd, containerd, the containers' shims), and the
   rest (runc, the kernel, processes too short-lived to sample), which is the machine's total (``/proc/stat``) less
   the others.
   The workers run their own default (``tasknet demo --worker-slots 0``): as many tasks at once as the cores
   they lend hold (``policy.max_concurrent`` unset; worker/_gate.py), so each of the 4 runs as many frames at once
   as the machine has cores.
3. **The same jobs, 1 task at once per worker** (``tasknet demo``'s default ``--worker-slots 1``, and the
   workers' default before issue #17's run gate), profiled alike: how much of the gap is POV-Ray's waiting that
   more tasks at once fill.

Ratios: ``r1_ratio`` = R = 1's time ÷ floor, ``r2_ratio_per_replica`` = R = 2's time ÷ (2 × floor). Medians and
min–max over ``--runs``, the load average before and after, and each worker's per-phase profile (seconds between
journal steps, summed over its tasks: claim → fetched inputs → ran → uploaded → committed/submitted → done). The
last line is JSON: ``{"r1_ratio": …, "r2_ratio_per_replica": …, "r1_ratio_1_slot": …,
"r2_ratio_per_replica_1_slot": …, "floor_s": …}`` (medians; the first two at the workers' default; ``--json`` prints
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
from _cpu_profile import CONTAINERS, CpuProfile
from _daemon_costs import floor_ratio
from docker.types import Mount
from rich.console import Console

if TYPE_CHECKING:
    from tasknet._demo import Summary

IMAGE = "tasknet/povray-demo:1"
CGROUP = Path("/sys/fs/cgroup/cpuacct/docker")


def say(msg: str) -> None:
    print(f"bench floor: {msg}", file=sys.stderr, flush=True)


def _confined() -> dict[str, Any]:
    """The sandbox's confinement for a direct render (its user and its tmpfs mounts aside), the scene at /in."""
    return {"network_mode": "none", "read_only": True, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
            "nano_cpus": 1_000_000_000, "mem_limit": "256m", "memswap_limit": "256m", "pids_limit": 64,
            "environment": {"HOME": "/tmp"}, "labels": {"tasknet.bench": "floor"},
            "mounts": [Mount("/in/scene.pov", str(ROOT / "examples" / "povray" / "scene.pov"), type="bind",
                             read_only=True)]}


def render_cpu(frames: int, width: int, height: int, lanes: int) -> dict[str, float]:
    """Render every frame directly, ``lanes`` confined containers at a time; their summed cgroup CPU and wall (and
    the mean wall time of one frame's ``docker exec``)."""
    client = docker.from_env()
    confined = _confined()
    confined["mounts"] += [Mount("/out", "", type="tmpfs", tmpfs_size=64 * 2**20, tmpfs_mode=0o1777),
                           Mount("/tmp", "", type="tmpfs", tmpfs_size=16 * 2**20, tmpfs_mode=0o1777)]
    boxes = [client.containers.run(IMAGE, ["infinity"], entrypoint="sleep", detach=True, user="65534:65534", **confined)
             for _ in range(lanes)]
    try:
        for c in boxes:  # the engine ignores tmpfs_mode here; root owns the tmpfs and may chmod it without capabilities
            c.exec_run(["chmod", "1777", "/out"], user="0")
        def usage(c: Any) -> int:
            return int((CGROUP / c.id / "cpuacct.usage").read_text())

        before = [usage(c) for c in boxes]

        def lane(k: int) -> float:
            spent = 0.0
            for i in range(k, frames, lanes):
                t = time.monotonic()
                code, out = boxes[k].exec_run(["/usr/local/bin/render.sh", str(i), str(frames), str(width),
                                               str(height)], workdir="/out")
                spent += time.monotonic() - t
                if code != 0:
                    raise SystemExit(f"bench floor: frame {i} failed to render ({code}): {out[-300:]!r}")
            return spent

        t0 = time.monotonic()
        with ThreadPoolExecutor(lanes) as pool:
            spent = sum(pool.map(lane, range(lanes)))
        wall = time.monotonic() - t0
        cpu = sum(usage(c) for c in boxes) - sum(before)
        return {"cpu_s": cpu / 1e9, "direct_wall_s": wall, "frame_wall_s": spent / frames}
    finally:
        for c in boxes:
            c.remove(force=True)
        client.close()


def render_fresh(frames: int, width: int, height: int, lanes: int) -> float:
    """Render every frame directly, ``lanes`` at a time, each frame in a new container (created, started, waited for
    and removed) confined alike but for its user: root, with no capability (a tmpfs mounted on an image's folder
    keeps that folder's owner and mode, and the image's ``/out`` is root's). The wall time; against
    :func:`render_cpu`'s long-lived containers, what a container's start and stop add."""
    client = docker.from_env()
    confined = _confined()

    def lane(k: int) -> None:
        for i in range(k, frames, lanes):
            client.containers.run(IMAGE, [str(i), str(frames), str(width), str(height)],
                                  entrypoint="/usr/local/bin/render.sh", remove=True, user="0:0", working_dir="/out",
                                  tmpfs={"/out": "size=64m", "/tmp": "size=16m"}, **confined)

    try:
        t0 = time.monotonic()
        with ThreadPoolExecutor(lanes) as pool:
            list(pool.map(lane, range(lanes)))
        return time.monotonic() - t0
    finally:
        client.close()


def job(frames: int, replication: int, tmp: Path, profile: CpuProfile | None = None,
        slots: int | None = None) -> tuple[Summary, dict[str, float]]:
    """``tasknet demo`` with 4 honest workers at R = ``replication``, each running ``slots`` tasks at once (None:
    the workers' default, as many as the cores lent hold); its
    summary and its workers' phases. With ``profile``, the machine's CPU is profiled from the posting to the last
    verified result."""
    from tasknet._demo import Demo, DemoOptions

    class Profiled(Demo):
        def _post_job(self, requester: Any, app_id: int, dataset_id: int) -> Any:
            posted = super()._post_job(requester, app_id, dataset_id)
            if profile is not None:
                profile.start()
            return posted

        def _watch(self, requester: Any, job_id: int) -> None:
            try:
                super()._watch(requester, job_id)
            finally:
                if profile is not None:
                    profile.result = profile.stop()

    opts = DemoOptions(frames=frames, workers=4, liar=False, crasher=False, keep=False,
                       worker_slots=slots, out_dir=tmp / f"demo-r{replication}-s{slots or 'auto'}").model_copy(
                           update={"replication": replication})
    summary = Profiled(opts, None, Console(stderr=True, quiet=True)).run()
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

    med = {k: out[k]["median"] for k in ("floor_s", "direct_wall_s", "direct_wide_wall_s", "direct_fresh_wall_s",
                                         "r1_s", "r2_s", "frame_wall_s", "frame_cpu_s")}
    r = out["runs"][0]
    cpu = median_profile([run["r1_cpu_s"] for run in out["runs"]])
    lines = ["## Time to results over the floor (POV-Ray bag, issue #17)", "",
             (f"Measured by `scripts/bench floor --runs {len(out['runs'])}`: {out['frames']} frames of the demo's scene "
             f"(320×240), 4 honest worker processes, {out['cores']} cores, load average {out['load_before']} before "
             f"and {out['load_after']} after (the machine is shared: the figures are indicative). Time: from posting "
             "to the last verified result, the workers already registered, following the chain and warm as the "
             "idle workers of a live network are: their output slots made, and a reused container in each ready for "
             "the app registered last (worker/_reuse.py; their start-up, "
             f"{r['r1_workers_ready_s']} s in the first run, comes before the posting). "
             "Floor: the same frames rendered directly in the same image with the sandbox's confinement, their "
             f"containers' CPU ({out['cpu_source']}) ÷ the cores, measured before a run's jobs and after them "
             "(their mean: the machine's speed drifts within a run; render CPU before / after, run by run: "
             + ", ".join(f"{x['render_cpu_s_before']} / {x['render_cpu_s_after']} s" for x in out["runs"])
             + "). Median (min–max) of the runs; the R = 1 ratio run by run: "
             + ", ".join(str(x["r1_ratio"]) for x in out["runs"]) + "."), "",
             "| figure | value | target |", "| --- | ---: | ---: |",
             f"| floor (render CPU ÷ cores), s | {cell(out['floor_s'])} | — |",
             f"| one frame rendered directly: wall time (a `docker exec`), s | {cell(out['frame_wall_s'])} | — |",
             f"| one frame rendered directly: CPU, s | {cell(out['frame_cpu_s'])} | — |",
             f"| the direct renders' wall time, {out['cores']} at a time, s | {cell(out['direct_wall_s'])} | — |",
             f"| the direct renders' wall time, {4 * out['cores']} at a time, s | {cell(out['direct_wide_wall_s'])} | — |",
             f"| the same, each frame in a new container, s | {cell(out['direct_fresh_wall_s'])} | — |",
             f"| R = 1: posting to last result, s | {cell(out['r1_s'])} | — |",
             f"| R = 1 ÷ floor | {cell(out['r1_ratio'])} | ≤ 1.5 |",
             f"| R = 2: posting to last result, s | {cell(out['r2_s'])} | — |",
             f"| R = 2 ÷ (2 × floor), per replica | {cell(out['r2_ratio_per_replica'])} | ≤ 1.6 |",
             f"| R = 1, each worker running 1 task at once: posting to last result, s | {cell(out['r1_s_1_slot'])} | — |",
             f"| R = 1, 1 task at once ÷ floor | {cell(out['r1_ratio_1_slot'])} | ≤ 1.5 |",
             f"| R = 2, 1 task at once: posting to last result, s | {cell(out['r2_s_1_slot'])} | — |",
             f"| R = 2, 1 task at once ÷ (2 × floor), per replica | {cell(out['r2_ratio_per_replica_1_slot'])} | ≤ 1.6 |",
             (f"| R = 1, every task in a fresh container (`sandbox_reuse = false`): posting to last result, s | "
             f"{cell(out['r1_s_fresh'])} | — |"),
             f"| R = 1, fresh containers ÷ floor | {cell(out['r1_ratio_fresh'])} | — |",
             "",
             (f"A frame rendered on its own takes {med['frame_wall_s']} s of wall time for {med['frame_cpu_s']} s of "
              "CPU: POV-Ray's front end polls its render threads with 10–100 ms sleeps (seen with strace), and the "
              "direct renders run in long-lived containers, so this is the app's own waiting, not a container's "
              f"start. {out['cores']} renders at a time therefore take {med['direct_wall_s'] / med['floor_s']:.1f}× "
              f"the floor and {4 * out['cores']} at a time {med['direct_wide_wall_s'] / med['floor_s']:.1f}×: "
              f"only more renders at once than cores fill the waiting. By default a worker runs as many tasks at "
              f"once as the cores it lends hold ({out['cores']} here, {4 * out['cores']} at once in all); the rows "
              "\"1 task at once\" run the same jobs with `tasknet demo --worker-slots 1` (4 at once: the demo's "
              "default, and the workers' before their run gate, worker/_gate.py)."), "",
             ("Where the machine's CPU went from the R = 1 posting to its last result (median of the runs, group by "
              "group; sampled from `/proc` by scripts/_cpu_profile.py):"), "",
             (f"| group | {out['cores']} tasks at once (default), CPU s | 1 task at once, CPU s | "
             "fresh containers, CPU s |"), "| --- | ---: | ---: | ---: |"]
    cpu2 = median_profile([run["r1_cpu_s_1_slot"] for run in out["runs"]])
    cpu3 = median_profile([run["r1_cpu_s_fresh"] for run in out["runs"]])
    for group in list(cpu) + [g for g in [*cpu2, *cpu3] if g not in cpu]:
        if group not in ("total", "wall_s"):
            lines.append(f"| {group} | {cpu.get(group, '—')} | {cpu2.get(group, '—')} | {cpu3.get(group, '—')} |")
    lines.append(f"| total (busy + idle), over the wall time | {cpu.get('total', 0)} ({cpu.get('wall_s', 0)} s) | "
                 f"{cpu2.get('total', 0)} ({cpu2.get('wall_s', 0)} s) | {cpu3.get('total', 0)} "
                 f"({cpu3.get('wall_s', 0)} s) |")
    def stack(c: dict[str, float]) -> dict[str, float]:
        return {k: v for k, v in c.items() if k not in ("idle", "total", "wall_s", CONTAINERS)}

    def overhead(c: dict[str, float]) -> float:
        return round(sum(stack(c).values()), 2)

    def largest(c: dict[str, float]) -> list[tuple[str, float]]:
        return sorted(stack(c).items(), key=lambda kv: -kv[1])[:3]

    fresh = med["direct_fresh_wall_s"] / med["direct_wide_wall_s"]
    lines += ["", (f"Every role (chain, IPFS, engine, 4 workers, indexer, requester) shares these {out['cores']} cores. "
                   f"With one task at once per worker the cores sat idle {cpu2.get('idle', 0)} of "
                   f"{cpu2.get('total', 0)} CPU-seconds (the renders wait in POV-Ray); with {out['cores']} at once "
                   f"(the default) {cpu.get('idle', 0)} of {cpu.get('total', 0)}: the machine is then bound by the "
                   f"CPU the stack takes besides the containers, {overhead(cpu)} and {overhead(cpu2)} CPU-seconds "
                   f"({1000 * overhead(cpu) / out['frames']:.0f} ms per task at the default; the largest shares: "
                   + ", ".join(f"{name} {seconds}" for name, seconds in largest(cpu)) + "). A new container for "
                   f"each frame costs the direct renders {fresh:.2f}× the wall time of long-lived ones "
                   f"({4 * out['cores']} at a time). The workers run a job's tasks in reused containers "
                   "(worker/_reuse.py: a line to the container's launcher each, the container reset between "
                   "tasks); the same R = 1 job with a "
                   f"fresh container per task took {overhead(cpu3)} CPU-seconds besides the containers "
                   f"({1000 * overhead(cpu3) / out['frames']:.0f} ms per task) and "
                   f"{out['r1_s_fresh']['median'] / out['r1_s']['median']:.2f}× the reused containers' time "
                   "(medians; run by run "
                   + ", ".join(f"{run['r1_s_fresh'] / run['r1_s']:.2f}×" for run in out["runs"])
                   + ": the wall time moves with the shared machine more than with this). The rest is the worker's own CPU per task, and the stack's: chain, IPFS, indexer and "
                   "4 daemons share the cores the floor gives the renders alone."), "",
              ("Where the workers' time goes (seconds between journal steps, summed over every task and worker; the "
               "step names the phase that ended there), first run:"), "", "| step reached | R = 1, s | R = 2, s |",
              "| --- | ---: | ---: |"]
    for step in sorted(set(r["r1_phases_s"]) | set(r["r2_phases_s"]), key=lambda k: -r["r2_phases_s"].get(k, 0.0)):
        lines.append(f"| {step} | {r['r1_phases_s'].get(step, '—')} | {r['r2_phases_s'].get(step, '—')} |")
    return "\n".join(lines)


def median_profile(profiles: list[dict[str, float]]) -> dict[str, float]:
    """Group by group, the median of the runs' CPU profiles (the groups in the first run's order)."""
    groups = list(dict.fromkeys(g for p in profiles for g in p))
    return {g: round(statistics.median(p[g] for p in profiles if g in p), 2) for g in groups}


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
        # the floor before the jobs and after them (the mean is the run's): a shared machine's speed drifts over
        # the minutes of a run, and the renders' CPU with it (in one measurement the jobs' own renders took 18 % and 19 %
        # more CPU than the direct renders measured minutes later, and in one run 12 % less)
        say(f"run {n + 1}/{a.runs}: the floor before the jobs, {a.frames} frames rendered directly on {cores} cores")
        early = render_cpu(a.frames, int(width), int(height), cores)
        say(f"run {n + 1}/{a.runs}: R = 1")
        profile = CpuProfile()
        r1, r1_phases = job(a.frames, 1, tmp / f"run{n}", profile)
        say(f"run {n + 1}/{a.runs}: R = 2")
        r2, r2_phases = job(a.frames, 2, tmp / f"run{n}")
        say(f"run {n + 1}/{a.runs}: R = 1 and R = 2, each worker running 1 task at once")
        profile2 = CpuProfile()
        r1s1, _ = job(a.frames, 1, tmp / f"run{n}", profile2, slots=1)
        r2s1, _ = job(a.frames, 2, tmp / f"run{n}", slots=1)
        say(f"run {n + 1}/{a.runs}: R = 1 with every task in a fresh container (sandbox_reuse off)")
        profile3 = CpuProfile()
        os.environ["TASKNET_WORKER_SANDBOX_REUSE"] = "false"  # the worker processes read it as they start
        try:
            r1f, _ = job(a.frames, 1, tmp / f"run{n}", profile3)
        finally:
            del os.environ["TASKNET_WORKER_SANDBOX_REUSE"]
        say(f"run {n + 1}/{a.runs}: the floor after the jobs, {a.frames} frames rendered directly on {cores} cores")
        late = render_cpu(a.frames, int(width), int(height), cores)
        direct = {k: (early[k] + late[k]) / 2 for k in late}
        say(f"run {n + 1}/{a.runs}: the same renders, {4 * cores} at a time")
        wide = render_cpu(a.frames, int(width), int(height), 4 * cores)
        say(f"run {n + 1}/{a.runs}: the same renders, {4 * cores} at a time, each in a new container")
        fresh = render_fresh(a.frames, int(width), int(height), 4 * cores)
        f1 = floor_ratio(r1["results_s"], direct["cpu_s"], cores)
        f2 = floor_ratio(r2["results_s"], direct["cpu_s"], cores, replicas=2)
        f1s1 = floor_ratio(r1s1["results_s"], direct["cpu_s"], cores)
        f2s1 = floor_ratio(r2s1["results_s"], direct["cpu_s"], cores, replicas=2)
        f1f = floor_ratio(r1f["results_s"], direct["cpu_s"], cores)
        runs.append({"floor_s": f1["floor_s"], "render_cpu_s": round(direct["cpu_s"], 2),
                     "render_cpu_s_before": round(early["cpu_s"], 2), "render_cpu_s_after": round(late["cpu_s"], 2),
                     "direct_wall_s": round(direct["direct_wall_s"], 2), "r1_s": r1["results_s"],
                     "r2_s": r2["results_s"], "r1_ratio": f1["ratio"], "r2_ratio_per_replica": f2["ratio_per_replica"],
                     "r1_gas_per_task": r1["gas_per_task"], "r2_gas_per_task": r2["gas_per_task"],
                     "r1_phases_s": r1_phases, "r2_phases_s": r2_phases,
                     "frame_wall_s": round(direct["frame_wall_s"], 3), "frame_cpu_s": round(direct["cpu_s"] / a.frames, 3),
                     "direct_wide_wall_s": round(wide["direct_wall_s"], 2), "direct_fresh_wall_s": round(fresh, 2), "r1_workers_ready_s": r1["workers_ready_s"],
                     "r1_cpu_s": profile.result, "r1_s_1_slot": r1s1["results_s"], "r2_s_1_slot": r2s1["results_s"],
                     "r1_ratio_1_slot": f1s1["ratio"], "r2_ratio_per_replica_1_slot": f2s1["ratio_per_replica"],
                     "r1_cpu_s_1_slot": profile2.result, "r1_s_fresh": r1f["results_s"], "r1_ratio_fresh": f1f["ratio"],
                     "r1_cpu_s_fresh": profile3.result})
        say(json.dumps(runs[-1]))
    out: FloorRow = {"r1_ratio": spread([r["r1_ratio"] for r in runs]),
                     "r2_ratio_per_replica": spread([r["r2_ratio_per_replica"] for r in runs]),
                     "floor_s": spread([r["floor_s"] for r in runs]), "r1_s": spread([r["r1_s"] for r in runs]),
                     "r2_s": spread([r["r2_s"] for r in runs]),
                     "r1_ratio_1_slot": spread([r["r1_ratio_1_slot"] for r in runs]),
                     "r2_ratio_per_replica_1_slot": spread([r["r2_ratio_per_replica_1_slot"] for r in runs]),
                     "r1_s_1_slot": spread([r["r1_s_1_slot"] for r in runs]),
                     "r2_s_1_slot": spread([r["r2_s_1_slot"] for r in runs]),
                     "r1_s_fresh": spread([r["r1_s_fresh"] for r in runs]),
                     "r1_ratio_fresh": spread([r["r1_ratio_fresh"] for r in runs]),
                     "direct_wall_s": spread([r["direct_wall_s"] for r in runs]),
                     "direct_wide_wall_s": spread([r["direct_wide_wall_s"] for r in runs]),
                     "direct_fresh_wall_s": spread([r["direct_fresh_wall_s"] for r in runs]),
                     "frame_wall_s": spread([r["frame_wall_s"] for r in runs]),
                     "frame_cpu_s": spread([r["frame_cpu_s"] for r in runs]),
                     "runs": runs, "frames": a.frames, "workers": 4, "cores": cores, "load_before": load_before,
                     "load_after": [round(x, 2) for x in os.getloadavg()],
                     "cpu_source": "cgroup v1 cpuacct.usage of the render containers"}
    last = {"r1_ratio": out["r1_ratio"]["median"], "r2_ratio_per_replica": out["r2_ratio_per_replica"]["median"],
            "r1_ratio_1_slot": out["r1_ratio_1_slot"]["median"],
            "r2_ratio_per_replica_1_slot": out["r2_ratio_per_replica_1_slot"]["median"],
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
