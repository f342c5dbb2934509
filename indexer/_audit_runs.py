"""Job audits run in the background of the indexer's API: started by a POST, followed by GETs (progress, then the
report), their findings (the task reports) read a page at a time. A job of thousands of tasks takes a while to
audit (its results are fetched from IPFS and hashed): no request waits for it.

Runs live in the API process's memory (the last ``keep`` of them); they are re-derived from public data, so a
restart loses nothing that cannot be recomputed.
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from pydantic import BaseModel, Field

from ._report import Check
from ._verify import Report, Verifier


class AuditRunOut(BaseModel):
    run_id: int
    job_id: int
    state: Literal["running", "done", "error"]
    done: int = Field(description="tasks audited so far")
    total: int | None = Field(description="tasks to audit (None until the job's events were read)")
    passed: bool | None = Field(description="None while running")
    failed_tasks: int = Field(description="tasks audited so far with a failed check")
    counts: dict[str, int] = Field(default_factory=dict, description="when done: the job report's counts")
    checks: list[Check] = Field(default_factory=list, description="when done: the job's own checks")
    status: str | None = Field(None, description="when done: the job's status (open, closed)")
    error: str | None = None
    started_at: float
    finished_at: float | None = None
    links: dict[str, str] = Field(default_factory=dict)


class AuditRun:
    def __init__(self, run_id: int, job_id: int) -> None:
        self.run_id, self.job_id = run_id, job_id
        self.state: Literal["running", "done", "error"] = "running"
        self.done = 0
        self.total: int | None = None
        self.reports: dict[int, Report] = {}   # task id -> report, as tasks finish
        self.report: Report | None = None
        self.error: str | None = None
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.lock = threading.Lock()

    def out(self) -> AuditRunOut:
        with self.lock:
            failed = sum(1 for r in self.reports.values() if not r.passed)
            rep = self.report
            return AuditRunOut(
                run_id=self.run_id, job_id=self.job_id, state=self.state, done=self.done, total=self.total,
                passed=None if rep is None else rep.passed, failed_tasks=failed,
                counts=rep.counts if rep else {}, checks=list(rep.checks) if rep else [],
                status=rep.status if rep else None, error=self.error, started_at=self.started_at,
                finished_at=self.finished_at,
                links={"self": f"/audit/runs/{self.run_id}", "findings": f"/audit/runs/{self.run_id}/findings"})

    def findings(self, *, failed_only: bool, limit: int, offset: int) -> tuple[int, list[Report]]:
        """Task reports audited so far in task order (only the failed ones with ``failed_only``)."""
        with self.lock:
            items = [r for _, r in sorted(self.reports.items()) if not failed_only or not r.passed]
        return len(items), items[offset:offset + limit]


class AuditRuns:
    """Background job audits: at most ``workers`` at once, the last ``keep`` remembered."""

    def __init__(self, verifier: Verifier, *, workers: int = 1, keep: int = 32, parallel: int = 4) -> None:
        self.verifier = verifier
        self.keep = keep
        self.parallel = parallel
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tasknet-audit-run")
        self._runs: dict[int, AuditRun] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, job_id: int) -> tuple[AuditRun, bool]:
        """A new run of the job's audit, or the one of this job still running. Returns (run, started now)."""
        with self._lock:
            for run in self._runs.values():
                if run.job_id == job_id and run.state == "running":
                    return run, False
            run = AuditRun(next(self._ids), job_id)
            self._runs[run.run_id] = run
            for old in sorted(self._runs)[:-self.keep]:
                if self._runs[old].state != "running":
                    del self._runs[old]
        self._pool.submit(self._run, run)
        return run, True

    def get(self, run_id: int) -> AuditRun | None:
        return self._runs.get(run_id)

    def of_job(self, job_id: int) -> list[AuditRun]:
        return sorted((r for r in self._runs.values() if r.job_id == job_id), key=lambda r: -r.run_id)

    def _run(self, run: AuditRun) -> None:
        def progress(done: int, total: int) -> None:
            with run.lock:
                run.done, run.total = done, total

        def on_task(report: Report) -> None:
            with run.lock:
                run.reports[report.id] = report

        try:
            report = self.verifier.job(run.job_id, parallel=self.parallel, progress=progress, on_task=on_task)
        except Exception as exc:  # noqa: BLE001 - the node or IPFS failed: the run says so, the API goes on
            with run.lock:
                run.state, run.error, run.finished_at = "error", f"{type(exc).__name__}: {exc}"[:1000], time.time()
            return
        with run.lock:
            run.report = report
            run.reports = {r.id: r for r in report.tasks}
            run.total = len(report.tasks)
            run.done = run.total
            run.state, run.finished_at = "done", time.time()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
