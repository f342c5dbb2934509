"""Projector of the worker events: registration, platform class, stake, unstaking, bans and slashes."""

from __future__ import annotations

from oracle.protocol import platform_class_name

from ._ledger import Ledger, by_event
from ._stream import LogEvent, addr


def on_WorkerRegistered(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    w = led.worker(a["worker"])
    w.update({"cores": int(a["cores"]), "memory_mb": int(a["memoryMB"]), "gpus": int(a["gpus"]),
             "arch_mask": int(a["archMask"])})


def on_WorkerPlatformClassSet(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    led.worker(a["worker"])["platform_class"] = platform_class_name(a["platformClass"]) or None


def on_Staked(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    w = led.worker(a["worker"])
    w["stake"] = int(a["totalStake"])
    led.pay("stake", w["address"], int(a["amount"]))


def on_UnstakeRequested(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    w = led.worker(a["worker"])
    w["stake"] -= int(a["amount"])
    w["unstaking"] += int(a["amount"])


def on_Unstaked(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    w = led.worker(a["worker"])
    w["unstaking"] = 0
    led.pay("unstake", w["address"], int(a["amount"]))


def on_WorkerBanned(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    w = led.worker(a["worker"])
    w["banned"] = bool(a["banned"])
    if not a["banned"]:
        w["slashes"] = 0


def on_WorkerSlashed(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    worker, tid, amount = addr(a["worker"]), int(a["taskId"]), int(a["amount"])
    w = led.worker(worker)
    w["stake"] -= amount
    w["locked"] -= amount
    w["reputation"] = int(a["reputation"])
    w["verified"] = 0  # a slash resets the worker's credibility
    w["slashes"] += 1
    w["slashed"] += amount
    w["tasks_failed"] += 1
    led.rows.slashes.append({
        "block_number": led.rows.block, "log_index": led.rows.log_index, "worker": worker,
        "task_id": tid, "amount": amount, "reputation": int(a["reputation"]), "timestamp": led.ts})
    led.rows.deltas["slashes"] += 1
    led.pay("slash", led.treasury(), amount, job_id=tid >> 32, task_id=tid)
    rep = led.active(tid, worker)  # a replica that lost or stayed silent at settlement
    if rep is not None:
        task = led.task(tid)
        if task is not None:
            task["occupied"] -= 1
            task["committed"] -= rep["status"] in ("committed", "revealed")
            task["revealed"] -= rep["status"] == "revealed"
        rep["slashed"] = amount
        led.release(rep, "lost")
    else:  # the replica was already released by ClaimExpired / ReplicaReleased / LeaseExpired
        for rid in reversed(led.rows.task_reps.get(tid, [])):
            r = led.rows.replicas.get(rid)
            if r is not None and r["worker"] == worker and r["status"] in ("expired", "released") \
                    and r["slashed"] == 0:
                edited = led.rows.replicas.edit(rid)
                assert edited is not None
                edited["slashed"] = amount
                break


HANDLERS = by_event(
    on_WorkerRegistered,
    on_WorkerPlatformClassSet,
    on_Staked,
    on_UnstakeRequested,
    on_Unstaked,
    on_WorkerBanned,
    on_WorkerSlashed,
)
