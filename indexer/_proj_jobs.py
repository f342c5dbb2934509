"""Projector of the job events: posted (with the parameters of the time), credibility terms, cancelled ranges
and closes."""

from __future__ import annotations

from oracle.market import JobView

from ._ledger import Ledger, by_event
from ._stream import LogEvent, addr


def on_JobPosted(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    v = JobView.from_event(a)
    prm = led.params()
    ownership = max(0, int(a["escrow"]) // max(1, v.num_tasks) - v.replication * v.reward)
    job = led.rows.jobs.create({
        "job_id": v.job_id, "requester": addr(v.requester), "app_id": v.app_id, "dataset_id": v.dataset_id,
        "num_tasks": v.num_tasks, "replication": v.replication, "reward": v.reward, "deadline": v.deadline,
        "max_run_seconds": v.max_run_seconds, "cores": v.cores, "memory_mb": v.memory_mb, "gpus": v.gpus,
        "arch_mask": v.arch_mask, "min_reputation": v.min_reputation, "callback": addr(v.callback),
        "inputs_cid": v.inputs_cid, "encryption_key": v.encryption_key, "escrow": int(a["escrow"]),
        "owners_price": ownership, "replica_stake": int(prm.get("replicaStake", 0)),
        "fee_bps": int(prm.get("feeBps", 0)), "claimed": 0, "settled": 0, "finished": 0, "failed": 0,
        "cancelled": 0, "closed": False, "refund": 0, "app_paid": 0, "dataset_paid": 0,
        "escrow_held": int(a["escrow"]), "confidence_ppb": None, "fault_bps": None, "spot_check_bps": None,
        "posted_at": led.ts, "closed_at": None})
    job["escrow_held"] = led.escrow_held(job)
    led.pay("escrow", job["requester"], int(a["escrow"]), job_id=v.job_id)
    app = led.rows.apps.edit(v.app_id) if v.app_id else None
    if app is not None:
        app["jobs"] += 1
    dataset = led.rows.datasets.edit(v.dataset_id) if v.dataset_id else None
    if dataset is not None:
        dataset["jobs"] += 1


def on_JobCredibility(led: Ledger, ev: LogEvent) -> None:
    """The job just posted is in credibility mode: its ``replication`` is the replica cap."""
    a = ev.args
    job = led.job(a["jobId"])
    if job is not None:
        job.update({"confidence_ppb": int(a["confidencePpb"]), "fault_bps": int(a["faultBps"]),
                   "spot_check_bps": int(a["spotCheckBps"])})


def on_TasksCancelled(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    job = led.job(a["jobId"])
    if job is not None:
        led.settle(job, cancelled=int(a["count"]))
        job["refund"] += int(a["refund"])
        led.pay("refund", job["requester"], int(a["refund"]), job_id=job["job_id"])


def on_JobClosed(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    job = led.job(a["jobId"])
    if job is None:
        return
    refund, app_paid, ds_paid = int(a["refund"]), int(a["appPaid"]), int(a["datasetPaid"])
    job.update({"closed": True, "settled": job["num_tasks"], "closed_at": led.ts, "app_paid": app_paid,
               "dataset_paid": ds_paid, "escrow_held": 0})
    job["refund"] += refund
    led.pay("refund", job["requester"], refund, job_id=job["job_id"])
    app = led.rows.apps.edit(job["app_id"]) if job["app_id"] and app_paid else None
    if app is not None:
        app["earned"] += app_paid
        led.pay("app_fee", app["owner"], app_paid, job_id=job["job_id"])
    dataset = led.rows.datasets.edit(job["dataset_id"]) if job["dataset_id"] and ds_paid else None
    if dataset is not None:
        dataset["earned"] += ds_paid
        led.pay("dataset_fee", dataset["owner"], ds_paid, job_id=job["job_id"])


HANDLERS = by_event(
    on_JobPosted,
    on_JobCredibility,
    on_TasksCancelled,
    on_JobClosed,
)
