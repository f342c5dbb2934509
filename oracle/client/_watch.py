"""A job's events and what they say about its tasks (progress counts, per-task state, final results)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from ..events import DecodedEvent
from ..protocol import split_task_id
from ._models import JobEvent, JobProgress, TaskState

#: events that concern one job (JobPosted is the first)
JOB_EVENTS = {
    "JobPosted", "TasksCancelled", "JobClosed", "TasksClaimed", "ResultSubmitted", "LeaseExpired", "ReplicaClaimed",
    "ResultCommitted", "ResultRevealed", "TaskFinalized", "ReplicasAdded", "TaskFailed", "ClaimExpired",
    "ReplicaReleased", "TaskReleased", "CallbackDelivered", "WorkerSlashed", "ClaimAbandoned", "FailureReported",
    "FailureConfirmed", "TasksEndedDelivered", "JobCredibility", "ReplicaWanted", "LaneClaimed", "LaneCommitted",
    "LaneRevealed", "LanesSplit", "LaneExpired", "LaneReleased", "LanesDissolved",
}


def event_job(ev: DecodedEvent) -> tuple[int | None, int | None]:
    """(job id, task index) an event is about, or (None, None)."""
    if ev.name not in JOB_EVENTS:
        return None, None
    a = ev.args
    if "jobId" in a:
        return int(a["jobId"]), a.get("firstIndex")
    for key in ("taskId", "startTaskId"):
        if key in a:
            job_id, index = split_task_id(int(a[key]))
            return job_id, index
    return None, None


def _plain(value: Any) -> Any:
    """JSON-ready event arguments (structs arrive as web3 AttributeDicts, bytes as bytes)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class Tracker(BaseModel):
    """Per-task state of one job, folded from its events in chain order."""

    job_id: int
    total: int
    replication: int
    claimed: set[int] = Field(default_factory=set)
    running: set[int] = Field(default_factory=set)
    finalized: set[int] = Field(default_factory=set)
    failed: set[int] = Field(default_factory=set)
    cancelled: set[int] = Field(default_factory=set)
    closed: bool = False
    leases: dict[int, int] = Field(default_factory=dict, description="first index -> count")
    workers: dict[int, list[str]] = Field(default_factory=dict)
    digests: dict[int, str] = Field(default_factory=dict, description="index -> final digest (0x hex)")
    cids: dict[int, list[str]] = Field(default_factory=dict, description="index -> CIDs holding the final result")
    reveals: dict[int, list[tuple[str, str]]] = Field(default_factory=dict, description="index -> (digest, cid)")
    lanes: dict[int, tuple[int, int]] = Field(default_factory=dict, description="index -> (first index, tasks) of "
                                              "the chunk it is leased in, as lanes, until the chunk settles or splits")

    def progress(self) -> JobProgress:
        return JobProgress(total=self.total, claimed=len(self.claimed), running=len(self.running),
                           finalized=len(self.finalized), failed=len(self.failed), cancelled=len(self.cancelled),
                           closed=self.closed)

    def apply(self, ev: DecodedEvent) -> JobEvent | None:
        job_id, index = event_job(ev)
        if job_id != self.job_id:
            return None
        a = _plain(ev.args)
        handler = getattr(self, f"_on_{ev.name}", None)
        if handler is not None:
            handler(a, index)
        worker = a.get("worker") or a.get("requester")
        return JobEvent(name=ev.name, job_id=job_id, task_index=index, worker=worker, block_number=ev.block_number,
                        tx_hash=ev.tx_hash, args=a, progress=self.progress())

    def fold(self, name: str, args: dict[str, Any]) -> None:
        """Apply one event of this job already decoded to plain values (see :mod:`oracle.client._scan`), without
        building a :class:`JobEvent`: how a whole job's history is read in one pass."""
        handler = getattr(self, f"_on_{name}", None)
        if handler is None:
            return
        if "jobId" in args:
            index = args.get("firstIndex")
        else:
            index = split_task_id(int(args.get("taskId", args.get("startTaskId", 0))))[1]
        handler(args, index)

    def _on_TasksCancelled(self, a: dict[str, int], index: int | None) -> None:
        self.cancelled.update(range(a["firstIndex"], a["firstIndex"] + a["count"]))

    def _on_JobClosed(self, a: dict[str, int], index: int | None) -> None:
        self.closed = True
        self.running.clear()

    def _on_TasksClaimed(self, a: dict[str, object], index: int | None) -> None:
        assert index is not None
        count = int(a["count"])  # type: ignore[call-overload]
        self.leases[index] = count
        for i in range(index, index + count):
            self.claimed.add(i)
            self.running.add(i)
            self.workers.setdefault(i, []).append(str(a["worker"]))

    def _on_LeaseExpired(self, a: dict[str, object], index: int | None) -> None:
        assert index is not None
        count = self.leases.pop(index, 0)
        undone = int(a["undone"])  # type: ignore[call-overload]
        for i in range(index + count - undone, index + count):
            self.running.discard(i)

    def _on_ResultSubmitted(self, a: dict[str, object], index: int | None) -> None:
        assert index is not None
        self.running.discard(index)
        self.finalized.add(index)
        self.digests[index] = str(a["resultDigest"])
        self.cids[index] = [str(a["resultCID"])]

    def _on_FailureReported(self, a: dict[str, object], index: int | None) -> None:
        """(R = 1) A failure reported, pending a second worker's confirmation: the task is open again."""
        assert index is not None
        self.running.discard(index)
        self.reveals.setdefault(index, []).append((str(a["resultDigest"]), str(a["resultCID"])))

    def _on_FailureConfirmed(self, a: dict[str, object], index: int | None) -> None:
        self._on_TaskFinalized(a, index)  # settled with the failure result both workers reported

    def _on_ClaimAbandoned(self, a: dict[str, object], index: int | None) -> None:
        """A claim given back: its tasks are open again (an R = 1 lease's rest; an R > 1 task keeps its others)."""
        assert index is not None
        if self.replication == 1:
            count = self.leases.pop(index, 1)
            undone = int(a["tasks"])  # type: ignore[call-overload]
            for i in range(index + count - undone, index + count):
                self.running.discard(i)

    def _on_ReplicaClaimed(self, a: dict[str, object], index: int | None) -> None:
        assert index is not None
        self.claimed.add(index)
        self.running.add(index)
        self.workers.setdefault(index, []).append(str(a["worker"]))

    def _on_LaneClaimed(self, a: dict[str, object], index: int | None) -> None:
        """A lane (R > 1): one replica of each task of its chunk."""
        assert index is not None
        count = int(a["count"])  # type: ignore[call-overload]
        for i in range(index, index + count):
            self._on_ReplicaClaimed(a, i)
            self.lanes[i] = (index, count)

    def _on_LanesSplit(self, a: dict[str, object], index: int | None) -> None:
        """The chunk's tasks go on as rounds of their own."""
        assert index is not None
        for i in range(index, index + int(a["count"])):  # type: ignore[call-overload]
            self.lanes.pop(i, None)

    def _on_LanesDissolved(self, a: dict[str, object], index: int | None) -> None:
        """The chunk did not get all its lanes: its tasks are free again, no longer running."""
        assert index is not None
        for i in range(index, index + int(a["count"])):  # type: ignore[call-overload]
            self.lanes.pop(i, None)
            self.running.discard(i)

    def _on_ResultRevealed(self, a: dict[str, object], index: int | None) -> None:
        assert index is not None
        self.reveals.setdefault(index, []).append((str(a["resultDigest"]), str(a["resultCID"])))

    def _on_TaskFinalized(self, a: dict[str, object], index: int | None) -> None:
        assert index is not None
        self.lanes.pop(index, None)
        digest = str(a["resultDigest"])
        self.running.discard(index)
        self.finalized.add(index)
        self.digests[index] = digest
        self.cids[index] = [cid for d, cid in self.reveals.get(index, []) if d == digest]

    def _on_TaskFailed(self, a: dict[str, object], index: int | None) -> None:
        assert index is not None
        self.running.discard(index)
        self.failed.add(index)

    def task_state(self, index: int) -> TaskState:
        workers = self.workers.get(index, [])
        if index in self.finalized:
            cids = self.cids.get(index) or []
            return TaskState(index=index, state="finalized", workers=workers, digest=self.digests[index],
                             cid=cids[0] if cids else None)
        if index in self.failed:
            return TaskState(index=index, state="failed", workers=workers)
        if index in self.cancelled:
            return TaskState(index=index, state="cancelled")
        if self.closed:
            return TaskState(index=index, state="refunded", workers=workers)
        if index in self.running:
            return TaskState(index=index, state="committing" if index in self.reveals else "claimed",
                             workers=workers)
        return TaskState(index=index, state="open", workers=workers)
