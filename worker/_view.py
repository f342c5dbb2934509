"""What the worker knows of the market, derived from events only (persisted with the stream cursor).

The view is a hint: every claim is checked by the contract, so a stale view costs at most a lost race.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from oracle.events import DecodedEvent
from oracle.market import AppView, JobView
from oracle.protocol import split_task_id


class ReplicaHint(BaseModel):
    worker: str
    expiry: int
    committed: bool = False


class LeaseHint(BaseModel):
    worker: str
    count: int
    expiry: int
    done: int = 0


class MarketView(BaseModel):
    jobs: dict[int, JobView] = Field(default_factory=dict)
    apps: dict[int, AppView] = Field(default_factory=dict)
    datasets: dict[int, dict[str, Any]] = Field(default_factory=dict)
    taken: dict[int, list[int]] = Field(default_factory=dict, description="job -> indexes claimed/cancelled (R=1) "
                                        "or settled (R>1)")
    leases: dict[int, LeaseHint] = Field(default_factory=dict, description="start task id -> lease (R=1)")
    replicas: dict[int, dict[int, ReplicaHint]] = Field(default_factory=dict, description="task id -> slot -> hint")
    targets: dict[int, int] = Field(default_factory=dict, description="task id -> replicas wanted (R>1)")

    def apply(self, ev: DecodedEvent) -> None:
        handler = getattr(self, f"_on_{ev.name}", None)
        if handler is not None:
            handler(ev.args)

    # -- registry ---------------------------------------------------------------------------------
    def _on_AppRegistered(self, a: dict[str, Any]) -> None:
        self.apps[a["appId"]] = AppView.from_event(a)

    def _on_AppDeprecated(self, a: dict[str, Any]) -> None:
        if a["appId"] in self.apps:
            self.apps[a["appId"]].deprecated = True

    def _on_DatasetRegistered(self, a: dict[str, Any]) -> None:
        checksum = a["checksum"]
        self.datasets[a["datasetId"]] = {"cid": a["cid"], "owner": a["owner"], "size": int(a["size"]),
                                         "checksum": checksum if isinstance(checksum, str) else "0x" + checksum.hex()}

    # -- jobs -------------------------------------------------------------------------------------
    def _on_JobPosted(self, a: dict[str, Any]) -> None:
        job = JobView.from_event(a)
        self.jobs[job.job_id] = job
        self.taken.setdefault(job.job_id, [])

    def _on_JobClosed(self, a: dict[str, Any]) -> None:
        if a["jobId"] in self.jobs:
            self.jobs[a["jobId"]].closed = True

    def _on_TasksCancelled(self, a: dict[str, Any]) -> None:
        self._take(a["jobId"], range(a["firstIndex"], a["firstIndex"] + a["count"]))

    def _take(self, job_id: int, indexes: range | list[int]) -> None:
        s = set(self.taken.setdefault(job_id, []))
        s.update(indexes)
        self.taken[job_id] = sorted(s)

    def _release(self, job_id: int, indexes: range) -> None:
        self.taken[job_id] = sorted(set(self.taken.get(job_id, [])) - set(indexes))

    # -- R = 1 ------------------------------------------------------------------------------------
    def _on_TasksClaimed(self, a: dict[str, Any]) -> None:
        start = a["startTaskId"]
        job_id, index = split_task_id(start)
        self.leases[start] = LeaseHint(worker=a["worker"], count=a["count"], expiry=a["expiry"])
        self._take(job_id, range(index, index + a["count"]))

    def _on_ResultSubmitted(self, a: dict[str, Any]) -> None:
        for start, lease in list(self.leases.items()):
            if start <= a["taskId"] < start + lease.count:
                lease.done += 1
                if lease.done >= lease.count:
                    del self.leases[start]

    def _on_LeaseExpired(self, a: dict[str, Any]) -> None:
        start = a["startTaskId"]
        lease = self.leases.pop(start, None)
        job_id, index = split_task_id(start)
        count = lease.count if lease else a["undone"]
        self._release(job_id, range(index + count - a["undone"], index + count))

    def _on_FailureReported(self, a: dict[str, Any]) -> None:
        """A failure reported, pending a second worker's confirmation: the task is open again."""
        tid = a["taskId"]
        self._on_ResultSubmitted(a)  # the lease moved past it
        job_id, index = split_task_id(tid)
        self._release(job_id, range(index, index + 1))

    def _on_FailureConfirmed(self, a: dict[str, Any]) -> None:
        self._settle(a["taskId"])

    def _on_ClaimAbandoned(self, a: dict[str, Any]) -> None:
        """A claim given back: an R = 1 lease's remaining tasks, or an R > 1 replica slot, are open again."""
        tid = a["taskId"]
        lease = self.leases.pop(tid, None)
        if lease is not None:
            job_id, index = split_task_id(tid)
            self._release(job_id, range(index + lease.done, index + lease.count))
            return
        slots = self.replicas.get(tid, {})
        for slot, hint in list(slots.items()):
            if hint.worker.lower() == a["worker"].lower():
                del slots[slot]

    # -- R > 1 ------------------------------------------------------------------------------------
    def _on_ReplicaClaimed(self, a: dict[str, Any]) -> None:
        self.replicas.setdefault(a["taskId"], {})[a["replica"]] = ReplicaHint(worker=a["worker"], expiry=a["expiry"])

    def _on_ResultCommitted(self, a: dict[str, Any]) -> None:
        for hint in self.replicas.get(a["taskId"], {}).values():
            if hint.worker.lower() == a["worker"].lower():
                hint.committed = True

    def _on_ClaimExpired(self, a: dict[str, Any]) -> None:
        slots = self.replicas.get(a["taskId"], {})
        for slot, hint in list(slots.items()):
            if hint.worker.lower() == a["worker"].lower():
                del slots[slot]

    def _on_ReplicasAdded(self, a: dict[str, Any]) -> None:
        self.targets[a["taskId"]] = a["target"]
        slots = self.replicas.get(a["taskId"], {})
        for slot, hint in list(slots.items()):  # silent replicas left the task
            if not hint.committed:
                del slots[slot]

    def _on_TaskFinalized(self, a: dict[str, Any]) -> None:
        self._settle(a["taskId"])

    def _on_TaskFailed(self, a: dict[str, Any]) -> None:
        self._settle(a["taskId"])

    def _settle(self, tid: int) -> None:
        job_id, index = split_task_id(tid)
        self._take(job_id, [index])
        self.replicas.pop(tid, None)
        self.targets.pop(tid, None)

    # -- queries ----------------------------------------------------------------------------------
    def target(self, job: JobView, tid: int) -> int:
        return self.targets.get(tid, job.replication)

    def open_slots(self, job: JobView, tid: int, me: str) -> tuple[bool, bool]:
        """(has a free slot, I hold a slot) for a replicated task."""
        slots = self.replicas.get(tid, {})
        mine = any(h.worker.lower() == me.lower() for h in slots.values())
        return len(slots) < self.target(job, tid), mine

    def expired_replicas(self, tid: int, now: int) -> bool:
        return any(not h.committed and h.expiry < now for h in self.replicas.get(tid, {}).values())
