"""What the worker knows of the market, derived from events only (persisted with the stream cursor).

The view is a hint: every claim is checked by the contract, so a stale view costs at most a lost race.

It holds open jobs only: a job that closed is forgotten with its hints (taken indexes, leases, replicas), and
events about jobs it does not hold are ignored, so its size (and the cost of saving it after a poll) follows the
open market, not its history. The indexes taken in a job are kept as sorted ``[start, end)`` ranges: a bag of ten
thousand tasks claimed in leases is a handful of ranges, updated in place instead of re-sorted per event.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel, Field, field_validator

from oracle import event_args as ea
from oracle.events import DecodedEvent
from oracle.market import AppView, JobView
from oracle.protocol import platform_class_name, split_task_id


class ReplicaHint(BaseModel):
    worker: str
    expiry: int
    committed: bool = False


class DatasetHint(BaseModel):
    """A registered dataset, as a claim's journal record keeps it for fetching the task's inputs."""

    cid: str
    owner: str
    size: int
    checksum: str  # 0x-hex


class LeaseHint(BaseModel):
    worker: str
    count: int
    expiry: int
    done: int = 0


class ChunkHint(BaseModel):
    """A lane chunk (PROTOCOL.md, "Lanes"): ``count`` tasks from its key in :attr:`MarketView.chunks`, its lanes by
    slot."""

    count: int
    lanes: dict[int, ReplicaHint] = Field(default_factory=dict)


Ranges = list[tuple[int, int]]
_END = 1 << 64  # beyond any index: (i, _END) sorts after every range starting at i


def ranges_add(ranges: Ranges, lo: int, hi: int) -> None:
    """Add ``[lo, hi)`` to sorted, disjoint, non-adjacent ``ranges`` in place."""
    if hi <= lo:
        return
    i = bisect_right(ranges, (lo, hi))
    if i > 0 and ranges[i - 1][1] >= lo:  # touches or overlaps the range before
        i -= 1
        lo = min(lo, ranges[i][0])
    j = i
    while j < len(ranges) and ranges[j][0] <= hi:
        hi = max(hi, ranges[j][1])
        j += 1
    ranges[i:j] = [(lo, hi)]


def ranges_remove(ranges: Ranges, lo: int, hi: int) -> None:
    """Remove ``[lo, hi)`` from sorted, disjoint ``ranges`` in place."""
    if hi <= lo:
        return
    i = max(0, bisect_right(ranges, (lo, hi)) - 1)
    out: Ranges = []
    j = i
    while j < len(ranges) and ranges[j][0] < hi:
        a, b = ranges[j]
        if b > lo:
            if a < lo:
                out.append((a, lo))
            if b > hi:
                out.append((hi, b))
        else:
            out.append((a, b))
        j += 1
    ranges[i:j] = out


def ranges_contain(ranges: Ranges, index: int) -> bool:
    i = bisect_right(ranges, (index, _END))
    return i > 0 and ranges[i - 1][0] <= index < ranges[i - 1][1]


def _free_in(ranges: Ranges, lo: int, hi: int) -> Iterator[int]:
    """The indexes in ``[lo, hi)`` outside ``ranges``."""
    i = lo
    k = bisect_right(ranges, (lo, _END)) - 1  # the last range starting at or before lo
    if k >= 0 and ranges[k][1] > i:
        i = ranges[k][1]
    k += 1
    while i < hi:
        nxt = ranges[k][0] if k < len(ranges) else hi
        if nxt > i:
            yield from range(i, min(nxt, hi))
        if k >= len(ranges):
            return
        i = max(i, ranges[k][1])
        k += 1


class TakenIndexes:
    """Read-only membership over a job's taken ranges (``index in taken``)."""

    __slots__ = ("ranges",)

    def __init__(self, ranges: Ranges) -> None:
        self.ranges = ranges

    def __contains__(self, index: object) -> bool:
        return isinstance(index, int) and ranges_contain(self.ranges, index)

    def __len__(self) -> int:
        return sum(b - a for a, b in self.ranges)


class MarketView(BaseModel):
    jobs: dict[int, JobView] = Field(default_factory=dict, description="open jobs only")
    apps: dict[int, AppView] = Field(default_factory=dict)
    datasets: dict[int, DatasetHint] = Field(default_factory=dict)
    taken: dict[int, Ranges] = Field(default_factory=dict, description="job -> [start, end) ranges of indexes "
                                     "claimed/cancelled (R=1) or settled (R>1)")
    leases: dict[int, LeaseHint] = Field(default_factory=dict, description="start task id -> lease (R=1)")
    replicas: dict[int, dict[int, ReplicaHint]] = Field(default_factory=dict, description="task id -> slot -> hint")
    targets: dict[int, int] = Field(default_factory=dict, description="task id -> replicas wanted (R>1)")
    classes: dict[int, str] = Field(default_factory=dict, description="task id -> the platform class its first "
                                    "replica bound it to (homogeneous redundancy)")
    chunks: dict[int, ChunkHint] = Field(default_factory=dict, description="start task id -> a lane chunk not "
                                         "settled or split yet (R > 1)")

    @field_validator("taken", mode="before")
    @classmethod
    def _ranges_from_indexes(cls, value: Any) -> Any:
        """A view saved before ranges held sorted index lists: turn each into ranges."""
        if not isinstance(value, dict):
            return value
        out: dict[Any, Any] = {}
        for job, items in value.items():
            if items and all(isinstance(x, int) for x in items):
                ranges: Ranges = []
                for x in sorted(items):
                    ranges_add(ranges, x, x + 1)
                out[job] = ranges
            else:
                out[job] = items
        return out

    def apply(self, ev: DecodedEvent) -> None:
        parse = _ARGS.get(ev.name)
        if parse is not None:  # the decoded arguments, typed once here; events the view ignores are not parsed
            getattr(self, f"_on_{ev.name}")(parse(ev.args))

    # -- registry ---------------------------------------------------------------------------------
    def _on_AppRegistered(self, a: AppView) -> None:
        self.apps[a.app_id] = a

    def _on_AppDeprecated(self, a: ea.AppRef) -> None:
        if a.app_id in self.apps:
            self.apps[a.app_id].deprecated = True

    def _on_DatasetRegistered(self, a: ea.DatasetRegistered) -> None:
        self.datasets[a.dataset_id] = DatasetHint(cid=a.cid, owner=a.owner, size=a.size, checksum=ea.hex32(a.checksum))

    # -- jobs -------------------------------------------------------------------------------------
    def _on_JobPosted(self, a: JobView) -> None:
        self.jobs[a.job_id] = a
        self.taken.setdefault(a.job_id, [])

    def _on_JobCredibility(self, a: ea.JobCredibility) -> None:
        if (job := self.jobs.get(a.job_id)) is not None:
            job.confidence_ppb = a.confidence_ppb

    def _on_JobClosed(self, a: ea.JobRef) -> None:
        self.forget(a.job_id)

    def chunks_of(self, job_id: int) -> list[tuple[int, ChunkHint]]:
        """The lane chunks of ``job_id`` not settled yet, by first task."""
        return [(start, c) for start, c in self.chunks.items() if split_task_id(start)[0] == job_id]

    def forget(self, job_id: int) -> None:
        """Drop a job and every hint about its tasks (it closed, or it is past its deadline)."""
        self.jobs.pop(job_id, None)
        self.taken.pop(job_id, None)
        for start in [s for s in self.leases if split_task_id(s)[0] == job_id]:
            del self.leases[start]
        for tid in [t for t in self.replicas if split_task_id(t)[0] == job_id]:
            del self.replicas[tid]
        for tid in [t for t in self.targets if split_task_id(t)[0] == job_id]:
            del self.targets[tid]
        for tid in [t for t in self.classes if split_task_id(t)[0] == job_id]:
            del self.classes[tid]
        for start in [s for s in self.chunks if split_task_id(s)[0] == job_id]:
            del self.chunks[start]

    def forget_expired(self, now: float, grace: float) -> list[int]:
        """Forget the jobs whose deadline passed more than ``grace`` seconds before ``now``: none of their tasks
        can be claimed any more. Returns their ids."""
        gone = [j for j, job in self.jobs.items() if job.deadline + grace < now]
        for j in gone:
            self.forget(j)
        return gone

    def _on_TasksCancelled(self, a: ea.TasksCancelled) -> None:
        self._take(a.job_id, range(a.first_index, a.first_index + a.count))

    def _take(self, job_id: int, indexes: range) -> None:
        ranges = self.taken.get(job_id)
        if ranges is not None:  # a job this view does not hold (closed, or posted before a reset): nothing to do
            ranges_add(ranges, indexes.start, indexes.stop)

    def _release(self, job_id: int, indexes: range) -> None:
        ranges = self.taken.get(job_id)
        if ranges is not None:
            ranges_remove(ranges, indexes.start, indexes.stop)

    def taken_in(self, job_id: int) -> TakenIndexes:
        """The indexes of ``job_id`` taken (``i in view.taken_in(job)``), in O(log ranges) per test."""
        return TakenIndexes(self.taken.get(job_id, []))

    def free_indexes(self, job_id: int, num_tasks: int, offset: int = 0) -> Iterator[int]:
        """The indexes of ``job_id`` not taken, from ``offset`` round to ``offset - 1``, jumping over taken
        ranges without visiting their indexes."""
        ranges = self.taken.get(job_id, [])
        yield from _free_in(ranges, offset, num_tasks)
        yield from _free_in(ranges, 0, min(offset, num_tasks))

    # -- R = 1 ------------------------------------------------------------------------------------
    def _on_TasksClaimed(self, a: ea.TasksClaimed) -> None:
        start = a.start_task_id
        job_id, index = split_task_id(start)
        if job_id not in self.jobs:
            return
        self.leases[start] = LeaseHint(worker=a.worker, count=a.count, expiry=a.expiry)
        self._take(job_id, range(index, index + a.count))

    def _on_ResultSubmitted(self, a: ea.TaskRef) -> None:
        self._lease_moved(a.task_id)

    def _lease_moved(self, tid: int) -> None:
        """A task of a lease settled (a result), or left it sealed into a replica (a credible lease's reveal)."""
        for start, lease in list(self.leases.items()):
            if start <= tid < start + lease.count:
                lease.done += 1
                if lease.done >= lease.count:
                    del self.leases[start]

    def _on_LeaseExpired(self, a: ea.LeaseExpired) -> None:
        start = a.start_task_id
        lease = self.leases.pop(start, None)
        job_id, index = split_task_id(start)
        count = lease.count if lease else a.undone
        self._release(job_id, range(index + count - a.undone, index + count))

    def _on_FailureReported(self, a: ea.TaskRef) -> None:
        """A failure reported, pending a second worker's confirmation: the task is open again."""
        tid = a.task_id
        self._on_ResultSubmitted(a)  # the lease moved past it
        job_id, index = split_task_id(tid)
        self._release(job_id, range(index, index + 1))

    def _on_FailureConfirmed(self, a: ea.TaskRef) -> None:
        self._settle(a.task_id)

    def _on_ClaimAbandoned(self, a: ea.TaskWorker) -> None:
        """A claim given back: an R = 1 lease's remaining tasks, or an R > 1 replica slot, are open again."""
        tid = a.task_id
        lease = self.leases.pop(tid, None)
        if lease is not None:
            job_id, index = split_task_id(tid)
            self._release(job_id, range(index + lease.done, index + lease.count))
            return
        slots = self.replicas.get(tid, {})
        for slot, hint in list(slots.items()):
            if hint.worker.lower() == a.worker.lower():
                del slots[slot]

    # -- R > 1 ------------------------------------------------------------------------------------
    def _on_ReplicaClaimed(self, a: ea.ReplicaClaimed) -> None:
        if split_task_id(a.task_id)[0] not in self.jobs:
            return
        if a.replica == 0 and a.task_id not in self.replicas:
            self._lease_moved(a.task_id)  # a credible lease's task sealed at its reveal (no-op for a plain claim)
        self.replicas.setdefault(a.task_id, {})[a.replica] = ReplicaHint(worker=a.worker, expiry=a.expiry)

    def _on_TaskPlatformClassBound(self, a: ea.TaskPlatformClassBound) -> None:
        if split_task_id(a.task_id)[0] in self.jobs:
            self.classes[a.task_id] = platform_class_name(a.platform_class)

    def _on_ResultCommitted(self, a: ea.TaskWorker) -> None:
        for hint in self.replicas.get(a.task_id, {}).values():
            if hint.worker.lower() == a.worker.lower():
                hint.committed = True

    def _on_ClaimExpired(self, a: ea.TaskWorker) -> None:
        slots = self.replicas.get(a.task_id, {})
        for slot, hint in list(slots.items()):
            if hint.worker.lower() == a.worker.lower():
                del slots[slot]

    def _on_ReplicasAdded(self, a: ea.ReplicasAdded) -> None:
        if split_task_id(a.task_id)[0] not in self.jobs:
            return
        self.targets[a.task_id] = a.target
        slots = self.replicas.get(a.task_id, {})
        for slot, hint in list(slots.items()):  # silent replicas left the task
            if not hint.committed:
                del slots[slot]

    # -- lanes (R > 1) ---------------------------------------------------------------------------
    def _on_LaneClaimed(self, a: ea.LaneClaimed) -> None:
        job_id, index = split_task_id(a.start_task_id)
        if job_id not in self.jobs:
            return
        chunk = self.chunks.setdefault(a.start_task_id, ChunkHint(count=a.count))
        chunk.lanes[a.lane] = ReplicaHint(worker=a.worker, expiry=a.expiry)
        self._take(job_id, range(index, index + a.count))

    def _on_LeaseChecked(self, a: ea.LeaseChecked) -> None:
        """A credible lease became a check chunk (its ``LaneClaimed`` follows): no longer a lease."""
        self.leases.pop(a.start_task_id, None)

    def _lane_of(self, a: ea.LaneRef) -> tuple[int, ReplicaHint] | None:
        chunk = self.chunks.get(a.start_task_id)
        for slot, hint in (chunk.lanes.items() if chunk else ()):
            if hint.worker.lower() == a.worker.lower():
                return slot, hint
        return None

    def _on_LaneCommitted(self, a: ea.LaneRef) -> None:
        if (lane := self._lane_of(a)) is not None:
            lane[1].committed = True

    def _on_LaneExpired(self, a: ea.LaneRef) -> None:
        if (lane := self._lane_of(a)) is not None:
            del self.chunks[a.start_task_id].lanes[lane[0]]

    def _on_LanesSplit(self, a: ea.LanesSplit) -> None:
        """Each task goes on as a round of its own whose replicas are the lanes."""
        chunk = self.chunks.pop(a.start_task_id, None)
        if chunk is None:
            return
        for tid in range(a.start_task_id, a.start_task_id + a.count):
            self.replicas[tid] = {slot: hint.model_copy() for slot, hint in chunk.lanes.items()}

    def _on_LanesDissolved(self, a: ea.LanesSplit) -> None:
        """The chunk did not get all its lanes: it is gone and its tasks are free again."""
        if self.chunks.pop(a.start_task_id, None) is not None:
            job_id, index = split_task_id(a.start_task_id)
            self._release(job_id, range(index, index + a.count))

    def _on_TaskFinalized(self, a: ea.TaskRef) -> None:
        self.chunks.pop(a.task_id, None)  # a chunk's first task: the chunk settled (its others finalize with it)
        self._settle(a.task_id)

    def _on_TaskFailed(self, a: ea.TaskRef) -> None:
        self._settle(a.task_id)

    def _settle(self, tid: int) -> None:
        job_id, index = split_task_id(tid)
        self._take(job_id, range(index, index + 1))
        self.replicas.pop(tid, None)
        self.targets.pop(tid, None)
        self.classes.pop(tid, None)

    # -- queries ----------------------------------------------------------------------------------
    def target(self, job: JobView, tid: int) -> int:
        return self.targets.get(tid, 1 if job.confidence_ppb else job.replication)

    def open_slots(self, job: JobView, tid: int, me: str) -> tuple[bool, bool]:
        """(has a free slot, I hold a slot) for a replicated task."""
        slots = self.replicas.get(tid, {})
        mine = any(h.worker.lower() == me.lower() for h in slots.values())
        return len(slots) < self.target(job, tid), mine

    def expired_replicas(self, tid: int, now: int) -> bool:
        return any(not h.committed and h.expiry < now for h in self.replicas.get(tid, {}).values())


#: How the view parses the arguments of each event it folds in (the handler is ``MarketView._on_<name>``).
_ARGS: dict[str, Callable[..., BaseModel]] = {
    "AppRegistered": AppView.from_event, "AppDeprecated": ea.AppRef.model_validate,
    "DatasetRegistered": ea.DatasetRegistered.model_validate, "JobPosted": JobView.from_event,
    "JobCredibility": ea.JobCredibility.model_validate, "JobClosed": ea.JobRef.model_validate,
    "TasksCancelled": ea.TasksCancelled.model_validate, "TasksClaimed": ea.TasksClaimed.model_validate,
    "ResultSubmitted": ea.TaskRef.model_validate, "LeaseExpired": ea.LeaseExpired.model_validate,
    "FailureReported": ea.TaskRef.model_validate, "FailureConfirmed": ea.TaskRef.model_validate,
    "ClaimAbandoned": ea.TaskWorker.model_validate, "ReplicaClaimed": ea.ReplicaClaimed.model_validate,
    "TaskPlatformClassBound": ea.TaskPlatformClassBound.model_validate,
    "ResultCommitted": ea.TaskWorker.model_validate, "ClaimExpired": ea.TaskWorker.model_validate,
    "ReplicasAdded": ea.ReplicasAdded.model_validate, "TaskFinalized": ea.TaskRef.model_validate,
    "TaskFailed": ea.TaskRef.model_validate, "LaneClaimed": ea.LaneClaimed.model_validate,
    "LaneCommitted": ea.LaneRef.model_validate, "LaneExpired": ea.LaneRef.model_validate,
    "LanesSplit": ea.LanesSplit.model_validate, "LanesDissolved": ea.LanesSplit.model_validate,
    "LeaseChecked": ea.LeaseChecked.model_validate,
}
