"""Audit routes: re-derive a task's or a job's outcome from public data, or run a job's audit in the background.

Every route answers 503 when the indexer runs without a verifier (no chain or IPFS to audit with).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import JsonValue

from ._api import LIMIT, OFFSET, ApiState, IdPath, Page, get_state
from ._audit_runs import AuditRunOut
from ._queries import _js

router = APIRouter(tags=["audit"])
State = Annotated[ApiState, Depends(get_state)]


@router.get("/audit/tasks/{task_id}", responses={503: {}})
def audit_task(task_id: IdPath, state: State) -> JsonValue:
    """Re-derive a task's outcome from public data (events, calldata, signatures, IPFS content): the verifier's
    report (see indexer.Report), integers beyond 2**53 as strings."""
    return _js(state.audit_verifier().task(task_id).model_dump())


@router.get("/audit/jobs/{job_id}", responses={503: {}})
def audit_job(job_id: IdPath, state: State) -> JsonValue:
    """Audit every claimed task of a job, answering when done (for a large job, start a run instead:
    ``POST /audit/jobs/{job_id}/runs``)."""
    return _js(state.audit_verifier().job(job_id).model_dump())


@router.post("/audit/jobs/{job_id}/runs", status_code=202, response_model=AuditRunOut, responses={503: {}})
def start_audit(job_id: IdPath, response: Response, state: State) -> AuditRunOut:
    """Start auditing a job in the background (or return the run of this job still under way: 200)."""
    run, started = state.runs().start(job_id)
    if not started:
        response.status_code = 200
    response.headers["Location"] = f"/audit/runs/{run.run_id}"
    return run.out()


@router.get("/audit/jobs/{job_id}/runs", response_model=list[AuditRunOut], responses={503: {}})
def job_audits(job_id: IdPath, state: State) -> list[AuditRunOut]:
    """The runs of this job's audit that the API remembers, newest first."""
    return [r.out() for r in state.runs().of_job(job_id)]


@router.get("/audit/runs/{run_id}", response_model=AuditRunOut, responses={404: {}, 503: {}})
def audit_run(run_id: IdPath, state: State) -> AuditRunOut:
    """A run's progress (``done`` of ``total`` tasks) and, once ``done``, its verdict and counts."""
    run = state.runs().get(run_id)
    if run is None:
        raise HTTPException(404, f"no audit run {run_id} (runs are kept in memory: the API may have restarted)")
    return run.out()


@router.get("/audit/runs/{run_id}/findings", response_model=Page[JsonValue], responses={404: {}, 503: {}})
def audit_findings(run_id: IdPath, state: State, failed: bool = False, limit: int = LIMIT, offset: int = OFFSET
                   ) -> Page[JsonValue]:
    """The task reports audited so far, in task order (``failed=true``: only those with a failed check)."""
    run = state.runs().get(run_id)
    if run is None:
        raise HTTPException(404, f"no audit run {run_id} (runs are kept in memory: the API may have restarted)")
    total, items = run.findings(failed_only=failed, limit=limit, offset=offset)
    return Page[JsonValue](items=[_js(r.model_dump()) for r in items], total=total, limit=limit,
                            offset=offset)
