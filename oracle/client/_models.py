"""Typed models at the requester SDK's boundary (what :class:`oracle.client.Client`'s namespaces take and return)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..exceptions import InvalidJobSpec
from ..market import JobView
from ..pinning import PinStatus
from ..protocol import ARCH_386, ARCH_AMD64, ARCH_ARM, ARCH_ARM64, ARCH_RISCV64, JobId, TaskId

TOKEN_DECIMALS = 18
ARCH_NAMES = {"amd64": ARCH_AMD64, "arm64": ARCH_ARM64, "riscv64": ARCH_RISCV64, "386": ARCH_386, "arm": ARCH_ARM}


def parse_amount(text: str | int, decimals: int = TOKEN_DECIMALS) -> int:
    """``"1.5"`` tokens -> wei; ``"1000wei"`` or an int -> wei as is. Raises :class:`InvalidJobSpec`."""
    if isinstance(text, int):
        return text
    s = text.strip().lower().replace("_", "")
    try:
        if s.endswith("wei"):
            value = int(s.removesuffix("wei"))
        else:
            d = Decimal(s.removesuffix("tnt").strip()) * (Decimal(10) ** decimals)
            if d != d.to_integral_value():
                raise InvalidJobSpec(f"amount {text!r} has more than {decimals} decimals")
            value = int(d)
    except (InvalidOperation, ValueError):
        raise InvalidJobSpec(f"amount {text!r} is not a number of tokens (e.g. '2.5') or of wei (e.g. '1000wei')"
                             ) from None
    if value < 0:
        raise InvalidJobSpec(f"amount {text!r} is negative")
    return value


def format_amount(wei: int, decimals: int = TOKEN_DECIMALS) -> str:
    """wei -> a token string without trailing zeros (``1500000000000000000`` -> ``"1.5"``)."""
    d = Decimal(wei) / (Decimal(10) ** decimals)
    text = format(d.normalize(), "f")
    return text


def parse_duration(text: str | int) -> int:
    """``"90"``, ``"90s"``, ``"10m"``, ``"2h"``, ``"1d"`` -> seconds."""
    if isinstance(text, int):
        return text
    s = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if s and s[-1] in units:
            return int(float(s[:-1]) * units[s[-1]])
        return int(s)
    except ValueError:
        raise InvalidJobSpec(f"duration {text!r} is not seconds or a number with s/m/h/d (e.g. '10m')") from None


def arch_mask(names: list[str] | int) -> int:
    """Architecture names (``amd64``, ``arm64``...) -> the contract's ``archMask`` (0 = any)."""
    if isinstance(names, int):
        return names
    mask = 0
    for n in names:
        if n.lower() not in ARCH_NAMES:
            raise InvalidJobSpec(f"unknown architecture {n!r}; use one of {', '.join(ARCH_NAMES)}")
        mask |= ARCH_NAMES[n.lower()]
    return mask


class TxInfo(BaseModel):
    """A mined transaction."""

    tx_hash: str
    block_number: int
    gas_used: int


class Balance(BaseModel):
    """An account's money: tokens in its wallet and its marketplace balance (deposits not locked in escrow)."""

    address: str
    wallet: int
    deposited: int
    staked: int = 0
    allowance: int = 0


class WorkerStanding(BaseModel):
    """A worker's standing on the marketplace: registered or banned, its stake and reputation (the first fields of
    :class:`WorkerInfo`, and of ``tasknet worker status --json``)."""

    address: str
    registered: bool
    banned: bool
    #: staked wei, ``locked`` included (locked by live claims: it leaves only by slashing)
    stake: int
    locked: int
    reputation: int
    slashes: int


class WorkerInfo(WorkerStanding):
    """A worker's record on the marketplace (``getWorker``): its standing, its stake and what it offers."""

    #: wei asked out of the stake, withdrawable from unix time ``unstake_at``
    unstaking: int = 0
    unstake_at: int = 0
    cores: int = 0
    memory_mb: int = 0
    gpus: int = 0
    arch_mask: int = 0
    #: results confirmed by another worker's matching replica since its last slash (credibility jobs)
    verified: int = 0


class FailureView(BaseModel):
    """``getFailure``: a task's unconfirmed failure (R = 1): the last ``worker`` that reported it (the zero address
    when none did), how many ``reports`` so far, and the ``digest`` of that worker's failure archive; frozen."""

    model_config = ConfigDict(frozen=True)

    worker: str
    reports: int
    digest: bytes

    @property
    def pending(self) -> bool:
        """Whether a worker has reported the task as failed."""
        return int(self.worker, 16) != 0


class AppInfo(BaseModel):
    app_id: int
    owner: str
    image_ref: str
    image_digest: str
    metadata_uri: str
    price: int
    public: bool
    deprecated: bool
    deterministic_file: str


class DatasetInfo(BaseModel):
    dataset_id: int
    owner: str
    cid: str
    checksum: str  # 64 hex digits (sha256 of the content on IPFS)
    price: int
    any_requester: bool
    any_app: bool
    deprecated: bool = False
    size: int | None = None
    kind: Literal["file", "folder"] | None = None
    remote_pin: PinStatus | None = Field(None, description="the network's pinning service's last word on it "
                                         "(when the profile names one; add_dataset only)")


class TaskInput(BaseModel):
    """One task of a bag: its arguments, input files (path under /in -> local file or URI) and environment."""

    model_config = ConfigDict(extra="forbid")

    args: list[str] = Field(default_factory=list)
    inputs: dict[str, str] = Field(default_factory=dict, description="path under /in -> local path, ipfs://CID "
                                   "or https://...#sha256=HEX")
    env: dict[str, str] = Field(default_factory=dict)


class JobSpec(BaseModel):
    """What a requester posts. Amounts are token wei; durations are seconds.

    Give ``tasks`` (one entry per task) or ``count`` (tasks from ``args`` with ``{index}`` replaced).
    """

    model_config = ConfigDict(extra="forbid")

    app_id: int = Field(ge=1)
    dataset_id: int = Field(default=0, ge=0)
    tasks: list[TaskInput] | None = None
    count: int | None = Field(default=None, ge=1)
    args: list[str] = Field(default_factory=list, description="template arguments for 'count' tasks")
    common_inputs: dict[str, str] = Field(default_factory=dict, description="inputs every task gets")
    dataset_path: str = Field(default="dataset", description="where the dataset appears under /in")
    replication: int = Field(default=1, ge=1, le=16)
    reward: int = Field(ge=0, lt=2**96, description="per replica, token wei")
    deadline_in: int = Field(default=3600, ge=1, lt=2**31, description="seconds from now (chain time)")
    max_run_seconds: int = Field(default=600, ge=1, lt=2**32)
    cores: int = Field(default=1, ge=0, lt=2**16)
    memory_mb: int = Field(default=256, ge=0, lt=2**32)
    gpus: int = Field(default=0, ge=0, lt=2**8)
    arch: list[str] | int = 0
    homogeneous: bool = Field(default=False, description="homogeneous redundancy: every replica of a task runs on "
                              "the platform class of its first (see PROTOCOL.md, 'Homogeneous redundancy')")
    min_reputation: int = Field(default=0, ge=0, lt=2**32)
    callback: str | None = None
    encrypt: bool = Field(default=False, description="seal results to a fresh key kept in the local keyring")
    confidence: float | None = Field(default=None, gt=0, lt=1, description=(
        "credibility mode: the probability an accepted result is right (e.g. 0.99); `replication` is then the "
        "replica cap (see PROTOCOL.md, 'Credibility mode')"))
    assume_faulty: float = Field(default=0.1, ge=0.01, le=0.5, description="credibility mode: the share of faulty "
                                 "workers assumed (f)")
    spot_check: float = Field(default=0.1, ge=0, le=1, description="credibility mode: the share of tasks one "
                              "trusted worker would finalize alone that get a check replica")

    @model_validator(mode="after")
    def _cap(self) -> JobSpec:
        if self.confidence is not None and self.replication < 2:
            raise ValueError(f"credibility mode (confidence {self.confidence}) needs a replica cap of at least 2: "
                             "give replication N >= 2 (e.g. 6), the most replicas a task may use")
        if self.homogeneous and self.replication < 2 and self.confidence is None:
            raise ValueError("homogeneous redundancy keeps a task's replicas on one platform class, and replication "
                             "1 has one replica: give replication >= 2, or drop 'homogeneous'")
        return self

    @field_validator("tasks")
    @classmethod
    def _non_empty(cls, v: list[TaskInput] | None) -> list[TaskInput] | None:
        if v is not None and not v:
            raise ValueError("'tasks' is empty: a job needs at least one task")
        return v

    @property
    def num_tasks(self) -> int:
        if self.tasks is not None:
            return len(self.tasks)
        return self.count or 1


class SubmittedJob(BaseModel):
    job_id: JobId
    num_tasks: int
    inputs_cid: str
    escrow: int
    deadline: int
    encryption_key: str = ""
    tx: TxInfo


class JobProgress(BaseModel):
    """Where a job's tasks stand, derived from its events."""

    total: int
    claimed: int = 0  # tasks claimed at least once
    running: int = 0  # claimed, not yet settled
    finalized: int = 0  # finished with a result
    failed: int = 0  # no majority at the replica cap (refunded)
    cancelled: int = 0
    closed: bool = False

    @property
    def settled(self) -> int:
        return self.finalized + self.failed + self.cancelled

    @property
    def done(self) -> bool:
        return self.closed or self.settled >= self.total


class JobEvent(BaseModel):
    """One decoded marketplace event of a job, with the job's progress after it."""

    name: str
    job_id: JobId
    task_index: int | None = None
    worker: str | None = None
    block_number: int
    tx_hash: str
    args: dict[str, Any]
    progress: JobProgress


class TaskState(BaseModel):
    index: int
    state: Literal["open", "claimed", "committing", "finalized", "failed", "cancelled", "refunded"]
    workers: list[str] = Field(default_factory=list)
    digest: str | None = None  # 0x-hex of the final result digest
    cid: str | None = None


class JobStatus(JobView):
    """A job as posted (:class:`oracle.market.JobView`), with what it still holds and how far it got."""

    escrow_left: int
    posted_block: int
    progress: JobProgress


class FailureGroup(BaseModel):
    """Tasks that ended without a result for one reason: how many, and the first few indexes."""

    state: Literal["failed", "refunded"]
    reason: str
    count: int
    first: list[int] = Field(default_factory=list, description="the lowest indexes (at most 20)")


class JobSummary(BaseModel):
    """Where a job stands, in time that does not depend on its size: the chain's counters (``getJob``,
    ``jobEscrow``) and the few events that say why tasks ended without a result, or the indexer's job row.

    ``running`` and ``claimed`` are known from an indexer only (None from the chain). Tasks whose app failed have a
    result (``finalized``); ``tasknet result get`` reads their status."""

    job_id: JobId
    source: Literal["chain", "indexer"]
    requester: str
    app_id: int
    total: int
    replication: int
    reward: int
    deadline: int
    closed: bool
    escrow_left: int
    finalized: int
    failed: int
    cancelled: int
    refunded: int
    unsettled: int
    claimed: int | None = None
    running: int | None = None
    failures: list[FailureGroup] = Field(default_factory=list)

    @property
    def progress(self) -> float:
        """Share of the tasks settled (finalized, failed, cancelled or refunded), 0..1."""
        return (self.total - self.unsettled) / self.total if self.total else 1.0


class TaskPage(BaseModel):
    """One page of a job's per-task rows."""

    job_id: JobId
    source: Literal["chain", "indexer"]
    state: str | None = Field(description="the state the rows were filtered on, or None for every task")
    page: int
    per_page: int
    total: int = Field(description="rows matching, over every page")
    items: list[TaskState]


class TaskResult(BaseModel):
    """A task's final result, checked against the chain. ``outcome`` says what the app did: ``ok``, or
    ``failed`` with the ``reason`` the worker recorded in ``logs/status.txt`` (a non-zero exit, a timeout, an
    output the worker refused...): a failed run is still a verified, agreed result, but not a success."""

    index: int
    task_id: TaskId
    digest: str  # 64 hex
    cid: str
    verified: bool
    digest_source: Literal["archive", "file", "canonical"]
    path: Path | None = None
    files: int = 0
    bytes: int = 0
    outcome: Literal["ok", "failed"] = "ok"
    reason: str = "ok"
    exit_code: int | None = None
    error: str | None = None
    skipped: list[str] = Field(default_factory=list, description="output entries the worker left out, and why")
    resumed: bool = Field(False, description="already verified in the destination by an earlier run (see the "
                          "manifest): not downloaded again")


class TaskFailure(BaseModel):
    """A task that ended without a usable result: its app failed (``state`` finalized, ``reason`` from its
    status) or the chain failed or refunded it (``state`` failed, refunded or cancelled)."""

    index: int
    state: str
    reason: str
    exit_code: int | None = None
    error: str | None = None


class Reason(BaseModel):
    code: str
    severity: Literal["blocking", "warning", "info"]
    message: str
    fix: str = ""


class Explanation(BaseModel):
    job_id: JobId
    task_index: int | None
    state: str
    summary: str
    reasons: list[Reason]
    workers_registered: int = 0
    workers_capable: int = 0
    workers_ready: int = 0

