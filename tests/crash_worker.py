"""Fault injection for the reliability and crash tests, kept out of the product: run ``tasknet`` (the worker
daemon) so that the process dies with ``os._exit(137)`` (as ``kill -9`` would leave it: no clean-up, no flush
beyond what is already on disk) right after the journal records a given step.

    python tests/crash_worker.py crash-after-upload --json-logs worker run --config worker.json

The points: ``crash-after-claim`` (the claim mined and journaled), ``crash-after-run`` (the container ran),
``crash-after-upload`` (the result is on IPFS, nothing sent yet), ``crash-after-commit``, ``crash-after-reveal``,
``crash-after-check`` (the first task of a credible lease journaled as a check chunk's lane, after ``checkLease``),
``crash-before-commit-journal`` (a credible lease's ``commitRange`` mined, the process gone before its journal
records the commit: the journal knows neither the commit nor its block). Each logs ``fault_injected`` first, so a test can tell the crash it asked for from any other exit.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from oracle import get_logger
from worker import Journal, Step

POINTS = {"crash-after-claim": Step.CLAIMED, "crash-after-run": Step.RAN, "crash-after-upload": Step.UPLOADED,
          "crash-after-commit": Step.COMMITTED, "crash-after-reveal": Step.REVEALED,
          "crash-after-check": Step.COMMITTED, "crash-before-commit-journal": Step.COMMITTED}
#: the point that waits for a record with ``check_lane`` (a credible lease just turned into a check chunk)
CHECK = "crash-after-check"
#: the point that dies before the journal records a credible lease's commit (the records that carry its block)
BEFORE = "crash-before-commit-journal"


def main() -> None:
    point, args = sys.argv[1], sys.argv[2:]
    if point not in POINTS:
        sys.exit(f"crash_worker: unknown point {point!r}; one of {', '.join(POINTS)}")
    step = POINTS[point]
    real = Journal.record

    def record(self: Journal, job_id: int, task_index: int, s: Step, note: str | None = None, **data: Any) -> Any:
        if point == BEFORE and s == step and data.get("commit_block") and not data.get("check_lane"):
            get_logger("worker.fault").warning("fault_injected", point=point)
            os._exit(137)
        rec = real(self, job_id, task_index, s, note, **data)
        if s == step and point != BEFORE and (point != CHECK or data.get("check_lane")):
            get_logger("worker.fault").warning("fault_injected", point=point)
            os._exit(137)
        return rec

    Journal.record = record  # type: ignore[method-assign]
    from tasknet.cli import cli

    cli(args=args, prog_name="tasknet")


if __name__ == "__main__":
    main()
