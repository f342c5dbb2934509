"""The benchmarks' JSON rows (scripts/_bench_rows.py) as scripts/bench_report.py reads them back: a row a bench
prints comes back with the same keys and values, a row with a key too many or too few is refused in one message,
and the report's tables are made from the typed rows.

The fake ``run_json`` and ``write_section`` isolate the report from running a benchmark (minutes, a devnet) and
from BENCHMARKS.md: they hand over a fixed row and keep the section written."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))  # the scripts import each other so

import _bench_rows as rows
import bench_report

SPREAD = {"median": 0.25, "min": 0.2, "max": 0.3}
WORKER = {"overhead_median_s": 0.21, "overhead_runs_s": SPREAD, "overhead_p90_s": 0.3, "run_median_s": 0.2,
          "tasks_per_s": 5.5, "tasks_per_s_runs": SPREAD, "cpu_ms_per_task": {"workers": 40.0, "anvil": 3.5},
          "workers": 4, "max_concurrent": 2, "repeats": 3, "overhead_tasks": 20, "throughput_tasks": 100}
CHAIN = {"solo_submit_share": None, "revert_share": 0.0012, "gas_per_task": 30_000, "worker_txs": 812,
         "worker_txs_reverted": 1, "reverted_gas": 25_000, "result_txs": 0, "results_per_result_tx": None,
         "claimed_per_claim_tx": 12.5, "post_gas_per_task": 400,
         "by_kind": {"results": {"txs": 40, "gas_per_task": 20_000}, "claims": {"txs": 40, "gas_per_task": 9_000},
                     "abandon": {"txs": 2, "gas_per_task": 600}}}
BATCHING = {"load_before": [1.0, 1.5, 2.0],
            "batching": [{"tasks": 500, "bag_wall_s": 100.5, "tasks_per_s": 4.98, "load_before": [1.0, 1.5, 2.0],
                          "load_after": [2.0, 1.5, 1.25], **CHAIN}], "reverts_logged": 1, "load_after": [2.0, 1.5, 1.25]}


def test_a_row_comes_back_with_the_same_keys_and_values() -> None:
    text = json.dumps(WORKER)
    row = rows.read_row(TypeAdapter(rows.WorkerRow), text, "bench_worker.py")
    assert json.dumps(row) == text  # the same JSON: keys, their order, ints kept ints, floats kept floats
    scale = rows.read_row(TypeAdapter[rows.ScaleRow](rows.ScaleRow), json.dumps(BATCHING), "bench_scale.py")
    assert "batching" in scale and json.dumps(scale) == json.dumps(BATCHING)


@pytest.mark.parametrize("change", [{"overhead_tasks": None}, {"surprise": 1}], ids=["missing", "unknown"])
def test_a_row_with_other_keys_is_refused_saying_which(change: dict[str, Any]) -> None:
    doc = {k: v for k, v in {**WORKER, **change}.items() if v is not None}
    with pytest.raises(SystemExit) as exc:
        rows.read_row(TypeAdapter(rows.WorkerRow), json.dumps(doc), "bench_worker.py")
    assert "bench_worker.py" in str(exc.value) and next(iter(change)) in str(exc.value)


def test_the_report_reads_the_typed_row(monkeypatch: pytest.MonkeyPatch) -> None:
    written: dict[str, str] = {}
    monkeypatch.setattr(bench_report, "run_json", lambda script, args, row: row.validate_json(json.dumps(BATCHING)))
    monkeypatch.setattr(bench_report, "write_section", lambda name, md: written.setdefault(name, md))
    assert bench_report.scale(["--only", "batching"]) == BATCHING
    line = next(x for x in written["scale-batching"].splitlines() if x.startswith("| 500 "))
    # no result went out alone or not: the share is a dash, not a failure on None
    assert "| **—** |" in line and "0.12 %" in line and "abandon 2" in line


def test_the_report_asks_for_every_part_of_the_scale_run(monkeypatch: pytest.MonkeyPatch) -> None:
    idle = {"load_before": [1.0], "idle_cpu_pct_100k": 0.4, "idle_seconds": 20.0, "idle_cpu_pct_quarters": SPREAD,
            "idle_journal_records": 100_000, "idle_start_s": 3.1, "idle_journal_written_s": 9.0,
            "idle_journal_mb": 60.2, "load_after": [1.0]}
    monkeypatch.setattr(bench_report, "run_json", lambda script, args, row: row.validate_json(json.dumps(idle)))
    with pytest.raises(SystemExit, match="without --only"):
        bench_report.scale(["--only", "idle"])


def test_the_demo_summary_is_read_back_as_written() -> None:
    """(summary.json as tasknet/_demo.py writes it: its keys in this order)"""
    from tasknet._demo import Summary

    summary = {"frames": 6, "replication": 2, "wall_time_s": 95.3, "gif": "/tmp/out/animation.gif",
               "workers": [{"worker": "worker-1", "kind": "liar", "address": "0x" + "11" * 20, "claims": 3,
                            "earned_tnt": -1.5, "slashes": 1, "killed": False}],
               "gas_total": 3_000_000, "gas_per_task": 500_000, "claims_expired": 1,
               "audit": {"passed": True, "tasks": 6, "checks": 40, "failed": []}, "dashboard": "http://127.0.0.1:8700/",
               "logs": {"demo": "/tmp/out/demo.log"}, "results_s": 40.1, "render_s": 30.25, "cores": 2,
               "floor_s": 15.12, "floor_ratio": 2.65, "workers_ready_s": 4.2}
    text = json.dumps(summary)
    assert json.dumps(rows.read_row(TypeAdapter(Summary), text, "summary.json")) == text


def test_a_row_leaves_with_its_optional_keys_where_the_type_has_them() -> None:
    runs = {"median": 5000, "min": 4900, "max": 5100, "runs": [5000], "events": 300}
    api = {"p50": 2.5, "p95": 3.5, "rounds": [[2.5, 3.5]],
           "routes": [{"route": "/api/stats", "what": "stats", "p50": 2.5, "p95": 3.5, "n": 8}]}
    row = {"sqlite_events_per_s": 5000, "postgres_events_per_s": 2600, "api_p50_ms": 2.5, "api_p95_ms": 3.5,
           "load_before": "1.00 1.00 1.00", "sqlite_ingestion": runs, "events": 300, "api": api, "tasks": 100,
           "api_requests": 8, "runs": 1, "load_after": "1.00 1.00 1.00", "python": "3.11.7",
           "postgres_ingestion": runs, "postgres_api": api}  # as bench_indexer builds it: PostgreSQL's added last
    keys = list(json.loads(rows.dump_row(TypeAdapter(rows.IndexerRow), row)))
    assert keys[6:9] == ["events", "postgres_ingestion", "postgres_api"] and sorted(keys) == sorted(row)
