"""What the projectors share: the row store, the event's block time, and the moves every family makes
(payments, a worker's row, a job's settlement, a task's replicas)."""

from __future__ import annotations

import json
from collections.abc import Callable

from ._row_types import JobRow, ReplicaRow, TaskRow, WorkerRow
from ._rows import Rows
from ._stream import LogEvent, addr

ACTIVE = ("claimed", "committed", "revealed")


class Ledger:
    """The row store plus the context of the event being applied (its block time, its payments' sequence)."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows
        self.ts = 0
        self.seq = 0

    def pay(self, kind: str, account: str | None, amount: int, *, job_id: int | None = None,
             task_id: int | None = None) -> None:
        if amount == 0 and kind not in ("deposit", "withdraw"):
            return
        self.rows.payments.append({
            "block_number": self.rows.block, "log_index": self.rows.log_index, "seq": self.seq, "kind": kind,
            "account": account, "amount": amount, "job_id": job_id, "task_id": task_id, "timestamp": self.ts})
        self.rows.deltas["payments"] += 1
        self.rows.deltas["payments:" + kind] += 1
        self.seq += 1

    def params(self) -> dict[str, int]:
        """The protocol parameters of the time (``IMarketplace.Params`` by field name), {} before any."""
        row = self.rows.params.get(1)
        return {k: int(v) for k, v in json.loads(row["data"]).items()} if row else {}

    def treasury(self) -> str | None:
        row = self.rows.params.get(1)
        return row["treasury"] if row else None

    def worker(self, address: str) -> WorkerRow:
        address = addr(address)
        row = self.rows.workers.edit(address)
        if row is None:  # stake moves can reach an address before any registration event was seen
            row = self.rows.workers.create({
                "address": address, "cores": 0, "memory_mb": 0, "gpus": 0, "arch_mask": 0, "stake": 0, "locked": 0,
                "unstaking": 0,
                "reputation": 0, "slashes": 0, "banned": False, "earned": 0, "slashed": 0, "tasks_done": 0,
                "tasks_failed": 0, "active_claims": 0, "verified": 0, "platform_class": None, "registered_at": self.ts,
                "last_activity": self.ts})
        row["last_activity"] = self.ts
        return row

    def job(self, job_id: int) -> JobRow | None:
        return self.rows.jobs.edit(int(job_id))

    @staticmethod
    def escrow_held(job: JobRow) -> int:
        if job["closed"]:
            return 0
        cost = job["replication"] * job["reward"] + job["owners_price"]
        return int((job["num_tasks"] - job["settled"]) * cost + job["finished"] * job["owners_price"])

    def settle(self, job: JobRow, *, finished: int = 0, failed: int = 0, cancelled: int = 0) -> None:
        job["settled"] += finished + failed + cancelled
        job["finished"] += finished
        job["failed"] += failed
        job["cancelled"] += cancelled
        job["escrow_held"] = self.escrow_held(job)

    def task(self, tid: int) -> TaskRow | None:
        return self.rows.tasks.edit(int(tid))

    def new_task(self, tid: int, job: JobRow | None, target: int) -> TaskRow:
        task = self.task(tid)
        if task is not None:
            return task
        if job is not None:
            job["claimed"] += 1
        return self.rows.tasks.create({
            "task_id": int(tid), "job_id": tid >> 32, "idx": tid & 0xFFFFFFFF, "status": "running", "target": target,
            "claims": 0,
            "occupied": 0, "committed": 0, "revealed": 0, "worker": None, "lease_start": None,
            "result_digest": None, "result_cid": None, "winners": 0, "reward_each": 0, "refund": 0,
            "callback_ok": None, "wanted": "", "platform_class": None, "gas_used": 0, "txs": 0,
            "claimed_at": self.ts, "finished_at": None})

    def contribute(self, task: TaskRow, worker: str, slot: int, expiry: int) -> ReplicaRow:
        task["claims"] += 1
        task["occupied"] += 1
        task["worker"] = worker
        tid = task["task_id"]
        return self.rows.replicas.create({
            "rid": f"{tid}:{task['claims']}", "task_id": tid, "job_id": tid >> 32, "seq": task["claims"], "slot": slot,
            "worker": worker,
            "status": "claimed", "expiry": expiry, "commitment": None, "result_digest": None,
            "result_cid": None, "reward": 0, "slashed": 0, "claimed_at": self.ts, "updated_at": self.ts})

    def active(self, tid: int, worker: str, statuses: tuple[str, ...] = ACTIVE) -> ReplicaRow | None:
        """The worker's live contribution to a task (for editing), if any."""
        self.rows.load_job_tasks(int(tid) >> 32)
        for rid in reversed(self.rows.task_reps.get(int(tid), [])):
            rep = self.rows.replicas.get(rid)
            if rep is not None and rep["worker"] == worker and rep["status"] in statuses:
                edited = self.rows.replicas.edit(rid)
                assert edited is not None
                edited["updated_at"] = self.ts
                return edited
        return None

    def chunk(self, start: int) -> list[int]:
        """The tasks of the lane chunk (or R = 1 lease) that starts at ``start``: the rows whose ``lease_start`` it
        is, in order from ``start``."""
        self.rows.load_job_tasks(int(start) >> 32)
        out, tid = [], int(start)
        while (task := self.rows.tasks.get(tid)) is not None and task["lease_start"] == start:
            out.append(tid)
            tid += 1
        return out

    def live(self, tid: int) -> list[ReplicaRow]:
        out = []
        for rid in self.rows.task_reps.get(int(tid), []):
            rep = self.rows.replicas.get(rid)
            if rep is not None and rep["status"] in ACTIVE:
                out.append(rep)
        return out

    def release(self, rep: ReplicaRow, status: str, *, unlock: int = 0, done: bool = False) -> None:
        edited = self.rows.replicas.edit(rep["rid"])
        assert edited is not None
        edited["status"] = status
        edited["updated_at"] = self.ts
        w = self.worker(rep["worker"])
        w["active_claims"] = max(0, w["active_claims"] - 1)
        w["locked"] -= unlock
        if done:
            w["tasks_done"] += 1


Handler = Callable[[Ledger, LogEvent], None]


def by_event(*handlers: Handler) -> dict[str, Handler]:
    """The handlers keyed by the event they project (their name without ``on_``)."""
    return {h.__name__.removeprefix("on_"): h for h in handlers}
