"""Projector of the single-replica (R = 1) task events: claimed leases, results, expiries, abandoned claims and
failures."""

from __future__ import annotations

from ._ledger import Ledger, by_event
from ._stream import LogEvent, addr, hex_of


def on_TasksClaimed(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    start, count, worker = int(a["startTaskId"]), int(a["count"]), addr(a["worker"])
    job = led.job(start >> 32)
    stake = job["replica_stake"] if job else 0
    w = led.worker(worker)
    w["locked"] += count * stake
    w["active_claims"] += count
    for tid in range(start, start + count):
        task = led.new_task(tid, job, 1)
        task.update({"status": "running", "lease_start": start, "result_digest": None, "result_cid": None})
        led.contribute(task, worker, 0, int(a["expiry"]))


def on_ResultSubmitted(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    tid, worker = int(a["taskId"]), addr(a["worker"])
    task, job = led.task(tid), led.job(tid >> 32)
    if task is None or job is None:
        return
    fee = job["reward"] * job["fee_bps"] // 10_000
    digest = hex_of(a["resultDigest"])
    task.update({"status": "finalized", "result_digest": digest, "result_cid": a["resultCID"], "winners": 1,
                "reward_each": job["reward"] - fee, "finished_at": led.ts, "occupied": 0, "committed": 1,
                 "revealed": 1})
    rep = led.active(tid, worker)
    if rep is not None:
        rep.update({"result_digest": digest, "result_cid": a["resultCID"], "reward": job["reward"] - fee})
        led.release(rep, "won", unlock=job["replica_stake"], done=True)
    w = led.worker(worker)
    w["reputation"] += 1
    w["earned"] += job["reward"] - fee
    led.settle(job, finished=1)
    led.pay("reward", worker, job["reward"] - fee, job_id=job["job_id"], task_id=tid)
    led.pay("protocol_fee", led.treasury(), fee, job_id=job["job_id"], task_id=tid)


def on_LeaseExpired(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    start, worker = int(a["startTaskId"]), addr(a["worker"])
    job = led.rows.jobs.get(start >> 32)
    closed = bool(job and job["closed"])
    tid = start
    while (task := led.rows.tasks.get(tid)) is not None and task["lease_start"] == start:
        tid += 1
        if task["status"] != "running":
            continue
        edited = led.task(tid - 1)
        assert edited is not None
        edited.update({"status": "failed" if closed else "open", "worker": None, "lease_start": None, "occupied": 0})
        rep = led.active(tid - 1, worker)
        if rep is not None:
            led.release(rep, "expired")


def on_ClaimAbandoned(led: Ledger, ev: LogEvent) -> None:
    """A claim given back: the lease's remaining tasks (R = 1) or the replica (R > 1) open again; the fee of
    the worker's stake goes to the treasury."""
    a = ev.args
    tid, worker, tasks, fee = int(a["taskId"]), addr(a["worker"]), int(a["tasks"]), int(a["fee"])
    job = led.job(tid >> 32)
    stake = job["replica_stake"] if job else 0
    reopened = [tid] if job is None or job["replication"] != 1 else []
    if not reopened:
        t = tid
        while (task := led.rows.tasks.get(t)) is not None and task["lease_start"] == tid:
            if task["status"] == "running":
                reopened.append(t)
            t += 1
    for t in reopened[-tasks:] if tasks else []:
        task = led.task(t)
        if task is not None and job is not None and job["replication"] == 1:
            task.update({"status": "open", "worker": None, "lease_start": None, "occupied": 0})
        elif task is not None:
            task["occupied"] = max(0, task["occupied"] - 1)
        rep = led.active(t, worker)
        if rep is not None:
            led.release(rep, "abandoned", unlock=stake)
    w = led.worker(worker)
    w["stake"] -= fee
    led.pay("abandon_fee", led.treasury(), fee, job_id=tid >> 32, task_id=tid)


def on_FailureReported(led: Ledger, ev: LogEvent) -> None:
    """(R = 1) A failure reported and pending a second worker's confirmation: the task is open again."""
    a = ev.args
    tid, worker = int(a["taskId"]), addr(a["worker"])
    task, job = led.task(tid), led.job(tid >> 32)
    if task is None or job is None:
        return
    task.update({"status": "open", "worker": None, "lease_start": None, "occupied": 0})
    rep = led.active(tid, worker)
    if rep is not None:
        rep.update({"result_digest": hex_of(a["resultDigest"]), "result_cid": a["resultCID"]})
        led.release(rep, "failure-reported", unlock=job["replica_stake"])


def on_FailureConfirmed(led: Ledger, ev: LogEvent) -> None:
    """(R = 1) Two workers reported the same failure: the task settles with it; both share the reward."""
    a = ev.args
    tid, share = int(a["taskId"]), int(a["rewardEach"])
    task, job = led.task(tid), led.job(tid >> 32)
    if task is None or job is None:
        return
    task.update({"status": "finalized", "result_digest": hex_of(a["resultDigest"]), "winners": 2,
                 "reward_each": share, "finished_at": led.ts, "occupied": 0})
    for who in (addr(a["firstWorker"]), addr(a["confirmer"])):
        w = led.worker(who)
        w["reputation"] += 1
        w["earned"] += share
        led.pay("reward", who, share, job_id=job["job_id"], task_id=tid)
    rep = led.active(tid, addr(a["confirmer"]))
    if rep is not None:
        rep.update({"result_digest": hex_of(a["resultDigest"]), "reward": share})
        led.release(rep, "won", unlock=job["replica_stake"], done=True)
    led.settle(job, finished=1)
    led.pay("protocol_fee", led.treasury(), job["reward"] - 2 * share, job_id=job["job_id"], task_id=tid)


HANDLERS = by_event(
    on_TasksClaimed,
    on_ResultSubmitted,
    on_LeaseExpired,
    on_ClaimAbandoned,
    on_FailureReported,
    on_FailureConfirmed,
)
