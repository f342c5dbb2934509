"""Runs the worker and indexer benchmarks as subprocesses, parses the JSON line each prints last, and rewrites
their sections of BENCHMARKS.md (between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    mem = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:")), 0)
    return f"{os.cpu_count()} cores, {mem / 1024:.0f} GiB, {platform.machine()}, Python {platform.python_version()}"


def write_section(name: str, md: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{md}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def run_json(script: str, args: list[str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {script} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def worker(args: list[str]) -> dict[str, Any]:
    r = run_json("bench_worker.py", args)
    md = f"""## Worker

Command: `scripts/bench worker {' '.join(args)}`. Machine: {machine()}. A private anvil (automine), kubo and the
local Docker engine; a trivial busybox app (`cat` + `echo`), R = 1, results on IPFS, one `claim` + one `submit`
per task.

| measure | Tasknet | target |
| --- | ---: | ---: |
| worker overhead per task, median (claim to result on chain, minus the container's run time; {r['overhead_tasks']} tasks, one at a time) | {r['overhead_median_s']} s (p90 {r['overhead_p90_s']} s) | ≤ 0.3 s |
| container run time, median (create, start, exit, copy out) | {r['run_median_s']} s | — |
| end-to-end throughput, {r['workers']} workers, {r['throughput_tasks']} tasks | {r['tasks_per_s']} tasks/s | ≥ 5 |
"""
    write_section("worker", md)
    return r


def indexer(args: list[str]) -> dict[str, Any]:
    r = run_json("bench_indexer.py", args)
    md = f"""## Indexer

Command: `scripts/bench indexer {' '.join(args)}`. Machine: {machine()}. {r['tasks']} R = 1 tasks of real
traffic on a private anvil ({r['events']} events), then a cold ingestion from the deploy block, then
{r['api_requests']} API requests over 8 routes against a real uvicorn.

| measure | Tasknet |
| --- | ---: |
| ingestion, SQLite | {r['sqlite_events_per_s']} events/s |
| ingestion, PostgreSQL 15 | {r['postgres_events_per_s']} events/s |
| API latency p50 | {r['api_p50_ms']} ms |
| API latency p95 | {r['api_p95_ms']} ms |
"""
    write_section("indexer", md)
    return r


if __name__ == "__main__":
    what, rest = sys.argv[1], sys.argv[2:]
    print(json.dumps({"worker": worker, "indexer": indexer}[what](rest)))
