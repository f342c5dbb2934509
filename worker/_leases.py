"""What an R = 1 lease of several tasks may send to the chain now: one pure rule (see :func:`plan_lease`).

A lease (``claimRange``) holds consecutive tasks ``start .. start+count-1``; the contract takes their outcomes in
index order only (``done`` counts the ones settled). So a finished result waits for the tasks before it in its
lease, and a task given back (``abandon``) gives back every task of the lease from the first unsettled one on.
The daemon asks :func:`plan_lease` for each lease it holds results or give-backs of, then sends the operations of
all plans in one ``multicall`` (:meth:`worker._pipeline.Pipeline.settle_leases`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Literal

from oracle.market import JobView
from oracle.protocol import task_id

from ._journal import Step, TaskRecord
from ._view import Ranges, ranges_contain

#: steps of a task given up here while its lease lives: the lease gives it back (and the rest after it)
GIVE_BACK = (Step.ABANDONING, Step.FAILED)


@dataclass(frozen=True)
class LeaseOp:
    """One call for a lease: ``results`` (submitRange of consecutive results), ``failure`` (reportFailure of the
    next task) or ``abandon`` (give back the lease's remaining tasks)."""

    kind: Literal["results", "failure", "abandon"]
    start: int  #: the lease's first task id (its key on chain)
    first: int  #: the first task id the call covers (``start + done`` when it is sent)
    records: tuple[TaskRecord, ...]


@dataclass
class LeasePlan:
    """What to send for one lease now (``ops``, in order) and the records already settled on chain (``settled``:
    journaled as uploaded, but the lease moved past them: submitted before a restart)."""

    ops: list[LeaseOp] = field(default_factory=list)
    settled: list[TaskRecord] = field(default_factory=list)


def lease_of(rec: TaskRecord) -> tuple[int, int]:
    """(R = 1) The lease holding ``rec``'s task: its first task id and its count (a record from before leases of
    several tasks: a lease of its own)."""
    return int(rec.data.get("lease") or task_id(rec.job_id, rec.task_index)), int(rec.data.get("lease_count") or 1)


def plan_lease(start: int, count: int, done: int, record: Callable[[int], TaskRecord | None], running: AbstractSet[str],
               is_failure: Callable[[TaskRecord], bool]) -> LeasePlan:
    """The operations lease ``start`` (``count`` tasks, ``done`` settled on chain) may take now, in order.

    From task ``start + done`` on: consecutive uploaded results make one ``results`` op, an uploaded failure a
    ``failure`` op; a task given up here (:data:`GIVE_BACK`) ends the plan with an ``abandon`` of every task left,
    once none of them runs. A task still running, queued, paused or unknown here ends the plan: what follows it
    waits. ``record(task_id)`` reads the journal."""
    plan = LeasePlan()
    for tid in range(start, start + done):
        rec = record(tid)
        if rec is not None and rec.step == Step.UPLOADED and rec.task_key not in running:
            plan.settled.append(rec)
    run: list[TaskRecord] = []

    def close_run(first: int) -> None:
        if run:
            plan.ops.append(LeaseOp("results", start, first, tuple(run)))
            run.clear()

    first = start + done
    for tid in range(start + done, start + count):
        rec = record(tid)
        if rec is None or rec.task_key in running:
            break
        if rec.step == Step.UPLOADED:
            if is_failure(rec):
                close_run(first)
                plan.ops.append(LeaseOp("failure", start, tid, (rec,)))
                first = tid + 1
            else:
                run.append(rec)
            continue
        if rec.step in GIVE_BACK:
            rest = [record(t) for t in range(tid, start + count)]
            if any(r is not None and r.task_key in running for r in rest):
                break  # a later task still runs: give the lease back once it is over
            close_run(first)
            plan.ops.append(LeaseOp("abandon", start, tid, tuple(r for r in rest if r is not None)))
            return plan
        break
    close_run(first)
    return plan


def ahead_for(most: int, slots: int, horizon_s: float, seen: Sequence[float] | None, max_run_s: int) -> int:
    """How many tasks of a job to claim beyond the free slots: at most ``most``, and only those expected to start
    within ``horizon_s`` on ``slots`` run slots, a task taking the median of the times ``seen`` here (its
    ``max_run_s`` before one has run). Quick tasks get the whole ``most``; tasks of minutes get none, so a worker
    never sits on work others could start."""
    typical = statistics.median(seen) if seen else float(max_run_s)
    return max(0, min(most, int(slots * horizon_s / max(typical, 1e-3))))


def tail_least(least_s: float, slots: int, seen: Sequence[float] | None) -> int:
    """(R = 1) The fewest tasks a lease takes as a bag ends (``least`` of :func:`range_size`): those expected to keep
    this worker's ``slots`` run slots busy ``least_s`` seconds, a task taking the median of the times ``seen`` here;
    1 (the free tasks shared out evenly) before one has run. A claim costs about the same for 2 tasks as for 16, and
    guided self-scheduling's last shares shrink to a task or two each: quick tasks would pay a claim for a second of
    work. The bag's end is then uneven by about ``least_s`` at most."""
    if not seen or least_s <= 0:
        return 1
    return max(1, int(slots * least_s / max(statistics.median(seen), 1e-3)))


def replicas_ahead(most: int, slots: int, horizon_s: float, seen: Sequence[float] | None, max_run_s: int,
                   expected_run_s: float) -> int:
    """(R > 1) How many replicas of a job to claim beyond the free slots, queued for a slot like R = 1 tasks claimed
    ahead, so that one ``claimSome`` takes several. A replica must commit by its claim's expiry (``max_run_s`` plus
    the claim grace from its claim) and by its round's commit window (at least ``max_run_s`` from the round's first
    commit, which is after this claim when the round is new; a round already committed is checked at the claim).
    So only the replicas whose wait in the queue plus their own run here (``expected_run_s``) leaves half of
    ``max_run_s`` to spare are claimed ahead: none before a run of the job was seen here (``seen``)."""
    if not seen:
        return 0
    room = (max_run_s - expected_run_s) / 2
    return ahead_for(most, slots, min(horizon_s, room), seen, max_run_s) if room > 0 else 0


def replicas_go_ahead(job: JobView) -> bool:
    """Whether replicas of ``job`` may be claimed ahead (:func:`replicas_ahead`): R > 1 with a fixed R, no GPUs (a
    GPU is promised at the claim), and not homogeneous redundancy: a homogeneous task's first claim binds it to this
    worker's platform class, so a replica claimed ahead would keep the task from the workers of other classes while
    it waited here for a slot."""
    return job.replication > 1 and not job.confidence_ppb and not job.gpus and not job.homogeneous


def replica_late(ends: float, expiry: int, commit_deadline: int) -> str | None:
    """(A replica claimed ahead, about to start after its wait for a slot) Why it can no longer commit in time when
    a run here would end at chain time ``ends``: past its claim's ``expiry``, or past its round's
    ``commit_deadline`` (0: not open yet, another replica's commit opens it); None when it can."""
    if expiry and ends > expiry:
        return f"claimed ahead, it waited for a slot too long: a run here would end after its claim's expiry {expiry}"
    if commit_deadline and ends > commit_deadline:
        return (f"claimed ahead, it waited for a slot too long: a run here would end after its round's commit "
                f"deadline {commit_deadline}")
    return None


def start_in_bag(frontier: int | None, spread: int, taken: Ranges, num_tasks: int,
                 lease_tasks: int) -> int:
    """Where a worker looks for its next lease in an R = 1 bag of ``num_tasks``: its own ``frontier`` (the task after
    its last lease) while that task is free, so consecutive leases follow each other; ``spread`` (an offset of its
    own) before its first lease; and once another worker's leases reach its frontier, the middle of the widest free
    run (``taken``: the sorted, merged ``[lo, hi)`` ranges taken), so it does not race that worker for the same
    next tasks, claim after claim: workers split the bag's free runs in halves, as a work-stealing scheduler
    splits the biggest remaining chunk. Where in that run's middle half depends on ``spread``, so two workers that
    jump at once land apart. A run shorter than two leases is taken from its start (it is the bag's end, shared
    out by :func:`range_size`)."""
    if frontier is None:
        return spread % max(num_tasks, 1)
    if frontier < num_tasks and not ranges_contain(taken, frontier):
        return frontier
    best, lo_best, prev = 0, 0, 0
    for lo, hi in [*taken, (num_tasks, num_tasks)]:
        if lo - prev > best:
            best, lo_best = lo - prev, prev
        prev = max(prev, hi)
    if best < 2 * lease_tasks:
        return lo_best
    return lo_best + best // 4 + spread % max(best // 2, 1)


def range_size(room: int, *, lease_tasks: int, free_tasks: int, holders: int, fits: int, stake_for: int,
               least: int = 1) -> int:
    """How many consecutive tasks of a job one claim takes: ``room`` (free slots plus ``claim_ahead``), at most
    ``lease_tasks``, what the job's deadline leaves time for (``fits``: a lease's expiry grows with its count) and
    what the free stake locks (``stake_for``); and at most the job's free tasks divided by the workers seen on it
    (``holders``, this one included), rounded up, so leases shrink as the bag ends and its last tasks are shared
    out (guided self-scheduling: Polychronopoulos and Kuck, IEEE Trans. Computers 36(12), 1987), but not below
    ``least`` (a credible lease: its fixed cost is paid per lease, see ``BatchingSettings.credible_lease_least``);
    ``room`` still bounds it, so the tail is shared less evenly by at most the tasks that start within the
    claim-ahead horizon."""
    share = max(1, least, -(-free_tasks // max(holders, 1)))
    return max(0, min(room, lease_tasks, fits, stake_for, share))


def chunk_ops(ops: list[LeaseOp], size: int) -> list[list[LeaseOp]]:
    """``ops`` in order, cut into transactions of at most ``size`` results each: a ``results`` operation longer
    than that is cut into consecutive ones (each the next results of its lease); a give-back counts as one, since
    one call gives back the whole rest of its lease."""
    out: list[list[LeaseOp]] = []
    tasks = size  # start a new transaction at the first operation
    for op in ops:
        parts = [op] if op.kind != "results" else [
            LeaseOp("results", op.start, op.first + i, op.records[i:i + size]) for i in range(0, len(op.records), size)]
        for part in parts:
            weight = 1 if part.kind == "abandon" else len(part.records)
            if tasks + weight > size:
                out.append([])
                tasks = 0
            out[-1].append(part)
            tasks += weight
    return out
