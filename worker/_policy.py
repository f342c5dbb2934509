"""The volunteer's policy (deployment policy): which tasks this machine takes, and in which order.

``decide`` is a pure function of an offer, the machine, the policy and the moment: the daemon calls it for
every open task it sees, and the tests call it directly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pydantic import BaseModel, Field, field_validator

from ._caps import Capabilities


class HourRange(BaseModel):
    """Hours of the day (local time) when the worker may claim: ``start <= hour < end``; wraps past midnight."""

    start: int = Field(ge=0, le=23)
    end: int = Field(ge=1, le=24)

    def contains(self, hour: int) -> bool:
        return self.start <= hour < self.end if self.start < self.end else hour >= self.start or hour < self.end


class Policy(BaseModel):
    allowed_apps: list[str] = Field(default_factory=list, description="app ids; empty = any app not blocked")
    blocked_apps: list[str] = Field(default_factory=list)
    allowed_requesters: list[str] = Field(default_factory=list, description="addresses; empty = anyone")
    blocked_requesters: list[str] = Field(default_factory=list)
    blocked_categories: list[str] = Field(default_factory=list, description="app metadata categories to refuse")
    min_reward: int = Field(0, ge=0, description="minimum reward per replica, token wei")
    max_concurrent: int | None = Field(None, ge=1, description="tasks run at once, whatever their size; default: as "
                                       "many as the cores and memory lent hold, each task taking its job's cores "
                                       "and the RAM its container may use (see run_slots)")
    cores: int | None = Field(None, ge=1, description="cores lent; default: all")
    memory_mb: int | None = Field(None, ge=64, description="memory lent; default: all but 512 MB")
    gpus_lent: int | None = Field(None, ge=0, description="GPUs lent (e.g. 1 of 2; 0: none); default: every GPU "
                                  "the Docker engine can give a container")
    hours: list[HourRange] = Field(default_factory=list, description="empty = any time")
    idle_only: bool = False
    max_load: float = Field(0.5, gt=0, description="with idle_only: claim only below this load per core")
    cache_max_bytes: int = Field(10 << 30, ge=1 << 20)
    safety_margin_s: int = Field(30, ge=0, description="claim only if max run time + this fits before the deadline")

    @field_validator("allowed_requesters", "blocked_requesters", "allowed_apps", "blocked_apps")
    @classmethod
    def _lower(cls, v: list[str]) -> list[str]:
        return [x.lower() for x in v]


class Offer(BaseModel):
    """What the worker knows of an open task when it decides (from events and the job's inputs document)."""

    job_id: int
    task_index: int
    app: str
    requester: str
    reward: int
    cores: int = 1
    memory_mb: int = 0
    gpus: int = 0
    arch: int = 0
    max_run_s: int
    deadline: int
    min_reputation: int = 0
    category: str | None = None
    input_keys: list[str] = Field(default_factory=list, description="content keys of the task's inputs")


class Decision(BaseModel):
    accept: bool
    reason: str


def lent_gpus(caps: Capabilities, policy: Policy) -> int:
    """GPUs this worker lends: the policy's ``gpus_lent``, at most the machine's usable ones (default: all)."""
    return min(caps.gpus if policy.gpus_lent is None else policy.gpus_lent, caps.gpus)


def lent(caps: Capabilities, policy: Policy) -> tuple[int, int]:
    """Cores and memory (MB) this worker lends: the policy's, at most the machine's (default: every core, all the
    memory but 512 MB)."""
    return (min(policy.cores or caps.cores, caps.cores),
            min(policy.memory_mb or max(caps.memory_mb - 512, 64), caps.memory_mb))


def run_slots(caps: Capabilities, policy: Policy, cores: int = 1, ram_mb: int = 0) -> int:
    """How many tasks of ``cores`` cores whose containers may take ``ram_mb`` MB this worker runs at once: the
    policy's ``max_concurrent`` when it is set; else as many as the cores and the memory it lends hold, and at
    least one (a task larger than what is lent is refused by :func:`decide`, not queued)."""
    if policy.max_concurrent is not None:
        return policy.max_concurrent
    lent_cores, lent_mem = lent(caps, policy)
    n = lent_cores // max(cores, 1)
    if ram_mb > 0:
        n = min(n, lent_mem // ram_mb)
    return max(n, 1)


def decide(offer: Offer, caps: Capabilities, policy: Policy, *, now: dt.datetime, load: float = 0.0,
           running: int = 0, reputation: int = 0, chain_time: int | None = None,
           gpus_free: int | None = None, slots: int | None = None) -> Decision:
    """Accept or refuse ``offer``; the reason says which rule refused it. ``now`` is the local time (policy
    hours); ``chain_time`` (default: ``now``) is the clock the job's deadline is measured by; ``gpus_free``
    (default: all lent) the lent GPUs no task of this worker holds or is promised; ``slots`` (default:
    :func:`run_slots` for the offer's cores and memory) the tasks of its size this worker runs at once."""
    chain_now = chain_time if chain_time is not None else int(now.timestamp())
    app, requester = offer.app.lower(), offer.requester.lower()
    lent_cores, lent_mem = lent(caps, policy)
    lent_gpu = lent_gpus(caps, policy)
    free_gpu = lent_gpu if gpus_free is None else gpus_free
    if slots is None:
        slots = run_slots(caps, policy, offer.cores, offer.memory_mb)
    full = (f"already running {running} of max_concurrent {policy.max_concurrent}" if policy.max_concurrent
            else f"already running {running} of the {slots} tasks of its size the cores and memory lent hold")
    checks: list[tuple[bool, str]] = [
        (running < slots, full),
        (app not in policy.blocked_apps, f"app {offer.app} is blocked"),
        (not policy.allowed_apps or app in policy.allowed_apps, f"app {offer.app} is not in allowed_apps"),
        (requester not in policy.blocked_requesters, f"requester {offer.requester} is blocked"),
        (not policy.allowed_requesters or requester in policy.allowed_requesters,
         f"requester {offer.requester} is not in allowed_requesters"),
        (offer.category is None or offer.category not in policy.blocked_categories,
         f"category {offer.category} is blocked"),
        (offer.reward >= policy.min_reward, f"reward {offer.reward} < min_reward {policy.min_reward}"),
        (offer.cores <= lent_cores, f"needs {offer.cores} cores, {lent_cores} lent"),
        (offer.memory_mb <= lent_mem, f"needs {offer.memory_mb} MB, {lent_mem} MB lent"),
        (offer.gpus <= lent_gpu, f"needs {offer.gpus} GPUs, {lent_gpu} lent (machine has {caps.gpus})"),
        (offer.gpus <= free_gpu, f"needs {offer.gpus} GPUs, {free_gpu} of {lent_gpu} lent are free now"),
        (offer.arch in (0, caps.arch_code), f"needs architecture {offer.arch}, machine is {caps.arch}"),
        (reputation >= offer.min_reputation, f"needs reputation {offer.min_reputation}, worker has {reputation}"),
        (chain_now + offer.max_run_s + policy.safety_margin_s <= offer.deadline,
         f"max run {offer.max_run_s} s + margin {policy.safety_margin_s} s does not fit before the deadline"),
        (not policy.hours or any(h.contains(now.hour) for h in policy.hours), f"hour {now.hour} is outside policy hours"),
        (not policy.idle_only or load < policy.max_load, f"machine busy (load {load:.2f} >= {policy.max_load})"),
    ]
    for ok, reason in checks:
        if not ok:
            return Decision(accept=False, reason=reason)
    return Decision(accept=True, reason="ok")


def rank(offers: Sequence[Offer], cached: set[str]) -> list[Offer]:
    """Data-driven order: tasks whose inputs are all cached first, then by cached share, reward, then age."""
    def key(o: Offer) -> tuple[int, float, int, int, int]:
        hits = sum(1 for k in o.input_keys if k in cached)
        share = hits / len(o.input_keys) if o.input_keys else 0.0
        return (0 if o.input_keys and hits == len(o.input_keys) else 1, -share, -o.reward, o.job_id, o.task_index)
    return sorted(offers, key=key)
