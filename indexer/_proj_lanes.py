"""Projector of the lane events (replicated ranges of fixed-R jobs, ``contracts/RANGE-REPLICATION.md``).

A lane is one replica of each task of its chunk: the mirror gives each task of the chunk a replica row per lane
(slot = the lane's index), so the per-task events that follow (``ResultRevealed`` at the lane's reveal,
``TaskFinalized`` when the lanes settle or a split finalizes a task, ``WorkerSlashed`` / ``ReplicasAdded`` /
``TaskFailed`` of a split task, per-task claims of the replicas a split adds) apply to them as to any replica.
The chunk's tasks carry its first task in ``lease_start`` (so :meth:`indexer._ledger.Ledger.chunk` finds them). A
chunk dissolved for want of lanes (``LanesDissolved``) leaves its tasks open, their lane rows ``dissolved``.

A lane's commit holds one root over its per-task commitments: each replica row's ``commitment`` is that root
(the per-task commitments are rebuilt by the verifier from the reveal's calldata). A lane that expires or is
released slashed loses ``count`` replica stakes in one ``WorkerSlashed`` naming the chunk's first task: the
mirror puts one replica stake on each of the lane's replica rows, and the slash event itself (the stake, the
``slashes`` row) is projected by :func:`indexer._proj_workers.on_WorkerSlashed`.
"""

from __future__ import annotations

from ._ledger import Ledger, by_event
from ._stream import LogEvent, addr, hex_of


def on_LaneClaimed(led: Ledger, ev: LogEvent) -> None:
    """A lane of ``count`` tasks from ``startTaskId``: a replica at slot ``lane`` of each; ``count`` stakes locked."""
    a = ev.args
    start, worker, lane, count = int(a["startTaskId"]), addr(a["worker"]), int(a["lane"]), int(a["count"])
    job = led.job(start >> 32)
    first = led.rows.tasks.get(start)
    bound = first["platform_class"] if first is not None else None  # TaskPlatformClassBound of the first lane
    for tid in range(start, start + count):
        task = led.new_task(tid, job, job["replication"] if job else 0)
        task.update({"status": "running", "lease_start": start})
        if bound is not None and task["platform_class"] is None:
            task["platform_class"] = bound
        led.contribute(task, worker, lane, int(a["expiry"]))
    w = led.worker(worker)
    w["locked"] += count * (job["replica_stake"] if job else 0)
    w["active_claims"] += count


def on_LaneCommitted(led: Ledger, ev: LogEvent) -> None:
    """The lane's replicas are committed (to the lane's root)."""
    a = ev.args
    start, worker, root = int(a["startTaskId"]), addr(a["worker"]), hex_of(a["root"])
    for tid in led.chunk(start):
        rep = led.active(tid, worker, ("claimed",))
        if rep is not None:
            rep.update({"status": "committed", "commitment": root})
        task = led.task(tid)
        if task is not None:
            task["committed"] += 1
    led.worker(worker)


def on_LaneExpired(led: Ledger, ev: LogEvent) -> None:
    """A lane past its expiry without a commit leaves the chunk; its slash (``count`` stakes) follows."""
    a = ev.args
    start, worker = int(a["startTaskId"]), addr(a["worker"])
    _leave(led, start, worker, "expired", slashed=True)


def on_LaneReleased(led: Ledger, ev: LogEvent) -> None:
    """The job closed with the chunk unsettled: the lane's stake is back (committed) or slashed (not)."""
    a = ev.args
    start, worker = int(a["startTaskId"]), addr(a["worker"])
    _leave(led, start, worker, "released", slashed=bool(a["slashed"]))
    for tid in led.chunk(start):
        task = led.task(tid)
        if task is not None:
            task.update({"status": "failed", "finished_at": led.ts})


def on_LanesSplit(led: Ledger, ev: LogEvent) -> None:
    """The chunk's tasks become rounds of their own: their replica rows (the lanes) already stand as each task's
    round does; the per-task events that follow settle them."""
    a = ev.args
    start = int(a["startTaskId"])
    for tid in range(start, start + int(a["count"])):
        task = led.task(tid)
        if task is not None and task["status"] == "running":
            task["status"] = "revealing"


def on_LanesDissolved(led: Ledger, ev: LogEvent) -> None:
    """The chunk did not get all its lanes within the claim grace: each lane's replica rows end ``dissolved`` with
    their stakes unlocked (nothing slashed), and the tasks are open again, free for per-task claims or a new chunk
    (which start their rows afresh: a new chunk's ``LaneClaimed`` binds its own platform class)."""
    a = ev.args
    start, count = int(a["startTaskId"]), int(a["count"])
    job = led.rows.jobs.get(start >> 32)
    stake = job["replica_stake"] if job else 0
    for tid in range(start, start + count):
        task = led.task(tid)
        if task is None:
            continue
        for rep in led.live(tid):  # loaded with the task (its job's rows)
            led.release(rep, "dissolved", unlock=stake)
        task.update({"status": "open", "worker": None, "lease_start": None, "occupied": 0, "committed": 0,
                     "platform_class": None})


def on_LeaseChecked(led: Ledger, ev: LogEvent) -> None:
    """A credible lease its spot check picked whole became a check chunk (credibility mode, PROTOCOL.md "Check
    lanes"): the lease's replica rows end ``checked`` (their stake goes on with lane 0, whose ``LaneClaimed`` and
    ``LaneCommitted`` follow in the same transaction), and each task now wants two replicas, the lease's and its
    check."""
    a = ev.args
    start, worker = int(a["startTaskId"]), addr(a["worker"])
    _leave(led, start, worker, "checked", slashed=False)
    for tid in led.chunk(start):
        task = led.task(tid)
        if task is not None:
            task.update({"target": 2, "wanted": "spot-check"})


def _leave(led: Ledger, start: int, worker: str, status: str, *, slashed: bool) -> None:
    """``worker``'s lane leaves each task of the chunk; a slashed lane's rows carry one replica stake each (the
    stake itself moves with the ``WorkerSlashed`` that follows), an unslashed one's stake is unlocked."""
    job = led.rows.jobs.get(start >> 32)
    stake = job["replica_stake"] if job else 0
    for tid in led.chunk(start):
        rep = led.active(tid, worker)
        if rep is None:
            continue
        if slashed:
            rep["slashed"] = stake
        led.release(rep, status, unlock=0 if slashed else stake)
        task = led.task(tid)
        if task is not None:
            task["occupied"] = max(0, task["occupied"] - 1)


HANDLERS = by_event(
    on_LaneClaimed,
    on_LaneCommitted,
    on_LaneExpired,
    on_LaneReleased,
    on_LanesSplit,
    on_LanesDissolved,
    on_LeaseChecked,
)
