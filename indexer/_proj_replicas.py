"""Projector of the replicated (R > 1) task events: replica claims, commits, reveals, consensus, credibility
rounds, releases and callback deliveries."""

from __future__ import annotations

from oracle.protocol import platform_class_name

from . import _db
from ._ledger import Ledger, by_event
from ._stream import LogEvent, addr, hex_of


def on_ReplicaClaimed(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    tid, worker = int(a["taskId"]), addr(a["worker"])
    job = led.job(tid >> 32)
    target = 0 if job is None else 1 if job["confidence_ppb"] is not None else job["replication"]
    task = led.new_task(tid, job, target)  # credibility mode: one replica at first
    task["status"] = "running"
    led.contribute(task, worker, int(a["replica"]), int(a["expiry"]))
    w = led.worker(worker)
    w["locked"] += job["replica_stake"] if job else 0
    w["active_claims"] += 1


def on_TaskPlatformClassBound(led: Ledger, ev: LogEvent) -> None:
    """Emitted by a task's first replica claim, just before its ReplicaClaimed: the task row starts here."""
    a = ev.args
    tid = int(a["taskId"])
    job = led.job(tid >> 32)
    target = 0 if job is None else 1 if job["confidence_ppb"] is not None else job["replication"]
    led.new_task(tid, job, target)["platform_class"] = platform_class_name(a["platformClass"])


def on_ResultCommitted(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    tid, worker = int(a["taskId"]), addr(a["worker"])
    rep = led.active(tid, worker, ("claimed",))
    if rep is not None:
        rep.update({"status": "committed", "commitment": hex_of(a["commitment"])})
    task = led.task(tid)
    if task is not None:
        task["committed"] += 1
    led.worker(worker)


def on_ResultRevealed(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    tid, worker = int(a["taskId"]), addr(a["worker"])
    rep = led.active(tid, worker, ("committed",))
    if rep is not None:
        rep.update({"status": "revealed", "result_digest": hex_of(a["resultDigest"]), "result_cid": a["resultCID"]})
    task = led.task(tid)
    if task is not None:
        task["revealed"] += 1
        task["status"] = "revealing"
    led.worker(worker)


def on_TaskFinalized(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    tid, digest, share = int(a["taskId"]), hex_of(a["resultDigest"]), int(a["rewardEach"])
    task, job = led.task(tid), led.job(tid >> 32)
    if task is None or job is None:
        return
    winners = int(a["winners"])
    cid: str | None = None
    for rep in led.live(tid):
        if rep["status"] == "revealed" and rep["result_digest"] == digest:
            edited = led.rows.replicas.edit(rep["rid"])
            assert edited is not None
            edited["reward"] = share
            led.release(edited, "won", unlock=job["replica_stake"], done=True)
            w = led.worker(rep["worker"])
            w["reputation"] += 1
            if winners >= 2:  # a result another replica confirmed: one more verified (credibility mode)
                w["verified"] += 1
            w["earned"] += share
            led.pay("reward", rep["worker"], share, job_id=job["job_id"], task_id=tid)
            cid = cid or rep["result_cid"]
    pool, unused = job["replication"] * job["reward"], 0
    if job["confidence_ppb"] is not None:  # credibility mode: the replicas used; the rest goes back
        pool, unused = task["target"] * job["reward"], (job["replication"] - task["target"]) * job["reward"]
        job["refund"] += unused
        led.pay("refund", job["requester"], unused, job_id=job["job_id"], task_id=tid)
    led.pay("protocol_fee", led.treasury(), pool - share * winners, job_id=job["job_id"], task_id=tid)
    task.update({"status": "finalized", "result_digest": digest, "result_cid": cid, "winners": winners,
                 "reward_each": share, "refund": unused, "finished_at": led.ts, "occupied": 0})
    led.settle(job, finished=1)


def on_ReplicasAdded(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    tid = int(a["taskId"])
    task, job = led.task(tid), led.rows.jobs.get(tid >> 32)
    if task is None:
        return
    task.update({"target": int(a["target"]), "status": "running"})
    if job is None or job["confidence_ppb"] is None:  # R > 1: after a round, only the revealed stay committed
        task["committed"] = task["revealed"]  # (credibility mode: a replica added before any reveal keeps them)


def on_ReplicaWanted(led: Ledger, ev: LogEvent) -> None:
    """(credibility mode) Why the task wanted the replica ReplicasAdded just added."""
    a = ev.args
    task = led.task(int(a["taskId"]))
    if task is not None:
        reason = _db.wanted_reason(int(a["reason"]))
        task["wanted"] = f"{task['wanted']},{reason}" if task["wanted"] else reason


def on_TaskFailed(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    tid = int(a["taskId"])
    task, job = led.task(tid), led.job(tid >> 32)
    if task is None or job is None:
        return
    for rep in led.live(tid):
        led.release(rep, "unpaid", unlock=job["replica_stake"])
    task.update({"status": "failed", "refund": int(a["refund"]), "finished_at": led.ts, "occupied": 0})
    led.settle(job, failed=1)
    job["refund"] += int(a["refund"])
    led.pay("refund", job["requester"], int(a["refund"]), job_id=job["job_id"], task_id=tid)


def on_ClaimExpired(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    tid, worker = int(a["taskId"]), addr(a["worker"])
    rep = led.active(tid, worker)
    if rep is not None:
        led.release(rep, "expired")
    task = led.task(tid)
    if task is not None:
        task["occupied"] -= 1


def on_ReplicaReleased(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    tid, worker = int(a["taskId"]), addr(a["worker"])
    job = led.rows.jobs.get(tid >> 32)
    rep = led.active(tid, worker)
    if rep is not None:
        led.release(rep, "released", unlock=0 if a["slashed"] else (job["replica_stake"] if job else 0))
    task = led.task(tid)
    if task is not None:
        task.update({"status": "failed", "occupied": max(0, task["occupied"] - 1), "finished_at": led.ts})


def on_TaskReleased(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    # the task of a closed job is failed (its escrow went back at the close); also when no replica was left
    task = led.task(int(a["taskId"]))
    if task is not None:
        task.update({"status": "failed", "occupied": 0, "finished_at": led.ts})


def on_CallbackDelivered(led: Ledger, ev: LogEvent) -> None:
    """onTaskResult (a finished task) or onTaskFailed (a failed one) reached the job's callback, or not."""
    a = ev.args
    task = led.task(int(a["taskId"]))
    if task is not None:
        task["callback_ok"] = bool(a["success"])


def on_TasksEndedDelivered(led: Ledger, ev: LogEvent) -> None:
    """One onTasksEnded notice for a cancelled range or a job closed with tasks unsettled: the mirror's rows of
    the range that had not settled record whether the callback took it (the event itself is in ``events``
    under the job). A cancelled task that was never claimed has no row; a close covers the whole job."""
    a = ev.args
    job_id, first, count = int(a["jobId"]), int(a["firstIndex"]), int(a["count"])
    lo, hi = (job_id << 32) + first, (job_id << 32) + first + count
    led.rows.load_job_tasks(job_id)
    rows = led.rows.tasks.current
    ended = [tid for tid, row in rows.items()
             if lo <= tid < hi and row is not None and row["status"] not in ("finalized", "failed")]
    for tid in sorted(ended):
        task = led.task(tid)
        if task is not None:
            task["callback_ok"] = bool(a["success"])


HANDLERS = by_event(
    on_ReplicaClaimed,
    on_TaskPlatformClassBound,
    on_ResultCommitted,
    on_ResultRevealed,
    on_TaskFinalized,
    on_ReplicasAdded,
    on_ReplicaWanted,
    on_TaskFailed,
    on_ClaimExpired,
    on_ReplicaReleased,
    on_TaskReleased,
    on_CallbackDelivered,
    on_TasksEndedDelivered,
)
