"""Why a task is not running: everything the chain can tell, and what it cannot."""

from __future__ import annotations

from ..event_args import ReplicaWanted
from ..market import MarketParams
from ..protocol import ARCH_BITS_MASK
from ._models import AppInfo, Explanation, FailureView, JobStatus, Reason, WorkerInfo, format_amount

#: a worker's default cap on one input (worker setting max_input_mb): larger inputs need workers that raised it
DEFAULT_MAX_INPUT = 1024 << 20


def explain_task(status: JobStatus, index: int | None, state: str, now: int, params: MarketParams,
                 app: AppInfo, app_allows: bool, workers: list[WorkerInfo], *, largest_input: int = 0,
                 pending_failure: FailureView | None = None, wanted: ReplicaWanted | None = None,
                 confidence_ppb: int = 0, platform_class: str | None = None,
                 lane: tuple[int, int] | None = None, check_lane: bool = False) -> Explanation:
    """Build the explanation from the job's status, the chain time, the market parameters, the app and every
    worker that ever registered (``client.workers.list()``); ``largest_input`` is the largest input a task
    announces (its dataset's size included), ``pending_failure`` the task's unconfirmed failure (R = 1),
    ``wanted`` the arguments of the task's last ``ReplicaWanted`` event, ``confidence_ppb`` the job's confidence
    (credibility mode), ``platform_class`` the class the task is bound to ("" when unbound; None when the job
    does not ask for homogeneous redundancy) and ``lane`` the (first index, tasks) of the chunk the task is leased in
    as lanes (PROTOCOL.md, "Lanes"), None when it is not; ``check_lane``: that chunk is a credible lease a spot
    check picked whole (credibility mode, PROTOCOL.md "Check lanes")."""
    job_id = status.job_id
    if state in ("finalized", "failed", "cancelled", "refunded"):
        return Explanation(job_id=job_id, task_index=index, state=state, reasons=[],
                           summary=f"the task is {state}: nothing will run any more")
    reasons = _task_reasons(status, largest_input, pending_failure, wanted, confidence_ppb)
    if platform_class is not None:
        reasons.append(Reason(
            code="homogeneous", severity="info",
            message=(f"the job asks for homogeneous redundancy: this task is bound to platform class "
                     f"'{platform_class}', only workers of that class may add its replicas" if platform_class else
                     "the job asks for homogeneous redundancy: the first replica's platform class will bind this "
                     "task, and only workers of that class may add its other replicas"),
            fix="if replicas wait long, too few workers of that class are online: post without --homogeneous, or "
                "use an app that canonicalises its output"))
    if lane is not None and check_lane:
        first, count = lane
        reasons.append(Reason(
            code="check-lane", severity="info",
            message=(f"a spot check picked the whole credible lease of {count} tasks from task {first} that this task "
                     "was in: its worker's committed results wait for a second worker to run the same tasks as a "
                     "check lane; equal lists make every task of the lease final at once, different ones go task by "
                     "task to more replicas, and the worker on the losing side is slashed"),
            fix="nothing to do: any registered worker may take the check lane; the results follow its reveal"))
    elif lane is not None:
        first, count = lane
        reasons.append(Reason(
            code="lane", severity="info",
            message=(f"the task is one of the {count} tasks of a chunk from task {first} that its workers lease as "
                     f"lanes (one claim, one commitment and one reveal per worker for the whole chunk): its result "
                     "is final with the chunk's, once all its lanes revealed the same list, or task by task if they "
                     "differ; a lane that does not commit by its expiry (its tasks × maxRunSeconds plus the claim "
                     "grace) is slashed and taken over"),
            fix="nothing to do: wait for the chunk's slowest lane"))
    if state in ("claimed", "committing"):
        return Explanation(job_id=job_id, task_index=index, state=state, reasons=reasons,
                           summary="the task is running: a worker holds a claim on it"
                           + (f"; {reasons[0].message}" if wanted is not None else ""))
    reasons += _job_reasons(status, now, params.claim_grace, app, app_allows)
    counts, worker_reasons = _worker_reasons(status, params, workers)
    reasons += worker_reasons
    reasons.append(Reason(
        code="reward-unknowable", severity="info",
        message=(f"the reward is {format_amount(status.reward)} tokens per replica; each worker's minimum reward "
                 "(and its app, requester and category block lists) is local policy that the chain cannot show"),
        fix="if capable workers stay idle, post again with a higher --reward"))
    blocking = [r for r in reasons if r.severity == "blocking"]
    if blocking:
        summary = "the task cannot run: " + blocking[0].message
    else:
        summary = (f"the task is open and {counts[2]} worker(s) could claim it now; it is waiting to be picked up "
                   "(unless their local policies refuse it)")
    return Explanation(job_id=job_id, task_index=index, state=state, summary=summary, reasons=reasons,
                       workers_registered=counts[0], workers_capable=counts[1], workers_ready=counts[2])


def _task_reasons(status: JobStatus, largest_input: int, pending_failure: FailureView | None,
                  wanted: ReplicaWanted | None, confidence_ppb: int) -> list[Reason]:
    """What the task itself shows: why it wants another replica, a pending failure, an input over the default cap."""
    reasons: list[Reason] = []
    if wanted is not None:
        reasons.append(_wanted_reason(wanted, confidence_ppb, status.replication))
    if pending_failure is not None and pending_failure.pending:
        reasons.append(Reason(
            code="failure-pending", severity="info",
            message=(f"worker {pending_failure.worker} reported this task as failed ({pending_failure.reports} "
                     "report(s) so far): it waits for a second worker to reach the same failure, or to produce a "
                     "result"),
            fix="nothing to do: another worker will take it"))
    if largest_input > DEFAULT_MAX_INPUT:
        reasons.append(Reason(
            code="inputs-over-default-cap", severity="warning",
            message=(f"an input of the job is {largest_input} bytes, more than the {DEFAULT_MAX_INPUT} bytes a worker "
                     "accepts by default (its max_input_mb): only workers that raised their cap claim it, and a "
                     "worker's cap is a local setting the chain cannot show"),
            fix="wait for such a worker, or split the input into smaller ones"))
    return reasons


def _job_reasons(status: JobStatus, now: int, grace: int, app: AppInfo, app_allows: bool) -> list[Reason]:
    """What the job shows: closed, deadline passed or too short for a claim, the app deprecated or not allowing."""
    reasons: list[Reason] = []
    job_id = status.job_id
    if status.closed:
        reasons.append(Reason(code="job-closed", severity="blocking", message="the job is closed",
                              fix="post a new job"))
    elif now > status.deadline:
        reasons.append(Reason(code="deadline-passed", severity="blocking",
                              message=f"the deadline ({status.deadline}) passed {now - status.deadline} s ago",
                              fix=f"refund the unfinished tasks with 'tasknet job close {job_id}' and post again"))
    elif now + status.max_run_seconds + grace > status.deadline:
        reasons.append(Reason(
            code="deadline-too-short", severity="blocking",
            message=(f"a claim needs max run time {status.max_run_seconds} s + claim grace {grace} s before the "
                     f"deadline, but only {status.deadline - now} s are left: the contract refuses every claim"),
            fix=f"cancel with 'tasknet job cancel {job_id}' and post again with a later deadline or a shorter "
                "--max-run"))
    if app.deprecated:
        reasons.append(Reason(code="app-deprecated", severity="warning",
                              message=f"app {status.app_id} was deprecated by its owner; workers may skip it",
                              fix="ask the app owner, or use another app"))
    if not app_allows:
        reasons.append(Reason(code="requester-not-allowed", severity="warning",
                              message=f"app {status.app_id} no longer lists requester {status.requester}",
                              fix="ask the app owner to allow you again"))
    return reasons


def _worker_reasons(status: JobStatus, params: MarketParams, workers: list[WorkerInfo]
                    ) -> tuple[tuple[int, int, int], list[Reason]]:
    """Whether any registered worker could claim the task now: (registered, capable, ready) and the reasons."""
    reasons: list[Reason] = []
    need_stake = max(params.min_stake, params.replica_stake)
    registered = [w for w in workers if w.registered]
    unbanned = [w for w in registered if not w.banned]
    capable = [w for w in unbanned if _fits(status, w)]
    ready = [w for w in capable if w.stake >= need_stake and w.stake - w.locked >= params.replica_stake]
    if not registered:
        reasons.append(Reason(code="no-workers", severity="blocking", message="no worker is registered on this "
                              "marketplace", fix="start one: 'tasknet worker run'"))
    elif not unbanned:
        reasons.append(Reason(code="workers-banned", severity="blocking",
                              message=f"all {len(registered)} registered workers are banned",
                              fix="wait for honest workers to join"))
    elif not capable:
        best = max(unbanned, key=lambda w: (w.cores, w.memory_mb))
        reasons.append(Reason(
            code="no-capable-worker", severity="blocking",
            message=(f"none of the {len(unbanned)} workers has the capabilities the job asks for (cores >= "
                     f"{status.cores}, memory >= {status.memory_mb} MB, gpus >= {status.gpus}, arch mask "
                     f"{status.arch_mask & ARCH_BITS_MASK or 'any'}, reputation >= {status.min_reputation}); "
                     "the largest offers "
                     f"{best.cores} cores, {best.memory_mb} MB, {best.gpus} gpus, arch mask {best.arch_mask}, "
                     f"reputation {best.reputation}"),
            fix="post again with smaller requirements, or wait for a bigger worker"))
    elif not ready:
        reasons.append(Reason(
            code="not-enough-stake", severity="blocking",
            message=(f"{len(capable)} workers fit the job but none has {format_amount(need_stake)} tokens of free "
                     "stake to lock for a claim (their stake is locked by other claims, or too small)"),
            fix="wait for running claims to finish, or for workers to stake more"))
    if status.replication > 1 and 0 < len(ready) < status.replication:
        reasons.append(Reason(
            code="too-few-workers-for-replication", severity="warning",
            message=(f"each task needs {status.replication} different workers but only {len(ready)} can claim now"),
            fix="wait for more workers, or post with a lower --replication"))
    return (len(registered), len(capable), len(ready)), reasons


def _wanted_reason(wanted: ReplicaWanted, confidence_ppb: int, cap: int) -> Reason:
    """Why a credibility-mode task wants one more replica, from its last ``ReplicaWanted`` event."""
    target, ppb = wanted.target, wanted.credibility_ppb
    have = f"{ppb / 1e9:.6f}".rstrip("0").rstrip(".")
    goal = f"{confidence_ppb / 1e9:.6f}".rstrip("0").rstrip(".")
    why = {
        0: f"the results so far would be right with probability {have} if they agreed, below the job's {goal}: "
           "its workers have too few verified results",
        1: "a random spot check picked it: a trusted worker's result gets a second, independent replica",
        2: f"its revealed results disagree (a dispute; the best group stands at {have}, every replica weighing as "
           "a new worker)",
    }.get(wanted.reason, f"reason {wanted.reason}")
    return Reason(code="replica-wanted", severity="info",
                  message=f"the task wants replica {target} of at most {cap}: {why}",
                  fix="nothing to do: another worker will take the new replica (past the cap the task fails and is "
                      "refunded)")


def _fits(job: JobStatus, w: WorkerInfo) -> bool:
    return (w.cores >= job.cores and w.memory_mb >= job.memory_mb and w.gpus >= job.gpus
            and (job.arch_mask & ARCH_BITS_MASK == 0 or w.arch_mask & job.arch_mask & ARCH_BITS_MASK != 0)
            and w.reputation >= job.min_reputation)
