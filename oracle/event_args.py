"""Typed arguments of the marketplace events a consumer folds into state (the worker's market view).

A :class:`~oracle.events.DecodedEvent` carries its arguments as the ABI decoder gives them, by their Solidity
names; these models validate them once into snake_case attributes (``taskId`` -> ``task_id``). One model serves
every event of the same shape, and arguments a model does not name are ignored. ``JobPosted`` and
``AppRegistered`` have their own views, :class:`~oracle.market.JobView` and :class:`~oracle.market.AppView`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from .protocol import JobId, TaskId


class EventArgs(BaseModel):
    """Event arguments by their ABI names (camelCase), read as snake_case attributes; frozen."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="ignore")


def hex32(value: str | bytes) -> str:
    """A ``bytes32`` argument as ``0x``-hex, whether the decoder gave bytes or hex already."""
    return value if isinstance(value, str) else "0x" + bytes(value).hex()


class AppRef(EventArgs):
    """``AppDeprecated``."""

    app_id: int


class DatasetRegistered(EventArgs):
    dataset_id: int
    owner: str
    cid: str
    checksum: str | bytes
    size: int


class JobRef(EventArgs):
    """``JobClosed``."""

    job_id: JobId


class JobCredibility(EventArgs):
    job_id: JobId
    confidence_ppb: int


class TasksCancelled(EventArgs):
    job_id: JobId
    first_index: int
    count: int


class TasksClaimed(EventArgs):
    """A lease (R = 1) on ``count`` tasks from ``start_task_id``."""

    start_task_id: TaskId
    worker: str
    count: int
    expiry: int


class LeaseExpired(EventArgs):
    start_task_id: TaskId
    undone: int


class TaskRef(EventArgs):
    """``ResultSubmitted``, ``FailureReported``, ``FailureConfirmed``, ``TaskFinalized``, ``TaskFailed``."""

    task_id: TaskId


class TaskWorker(EventArgs):
    """``ClaimAbandoned``, ``ResultCommitted``, ``ClaimExpired``."""

    task_id: TaskId
    worker: str


class LaneClaimed(EventArgs):
    """A lane (one replica of each task of a chunk of ``count`` tasks from ``start_task_id``; PROTOCOL.md, "Lanes")."""

    start_task_id: TaskId
    worker: str
    lane: int
    count: int
    expiry: int


class LeaseChecked(EventArgs):
    """A credible lease of ``count`` tasks from ``start_task_id`` turned into a check chunk (``checkLease``)."""

    start_task_id: TaskId
    worker: str
    count: int


class LaneRef(EventArgs):
    """``LaneCommitted``, ``LaneRevealed``, ``LaneExpired``, ``LaneReleased``: a worker's lane of a chunk."""

    start_task_id: TaskId
    worker: str


class LanesSplit(EventArgs):
    """``LanesSplit`` and ``LanesDissolved``: a whole chunk of ``count`` tasks from ``start_task_id``."""

    start_task_id: TaskId
    count: int


class ReplicaClaimed(EventArgs):
    task_id: TaskId
    worker: str
    replica: int
    expiry: int


class TaskPlatformClassBound(EventArgs):
    task_id: TaskId
    platform_class: str | bytes


class TaskFinalized(EventArgs):
    """A replicated task settled: ``winners`` replicas held ``result_digest`` and got ``reward_each``."""

    task_id: TaskId
    result_digest: str | bytes
    winners: int
    reward_each: int


class ReplicasAdded(EventArgs):
    task_id: TaskId
    target: int


class ReplicaWanted(EventArgs):
    """(credibility mode) the task wants replica number ``target`` for ``reason`` (``IMarketplace.MoreReason``: 0 not
    credible, 1 spot check, 2 dispute); ``credibility_ppb`` is its best group's credibility so far."""

    task_id: TaskId
    reason: int
    target: int
    credibility_ppb: int
