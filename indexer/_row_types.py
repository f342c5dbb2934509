"""The rows the projectors write, typed as the schema of :mod:`indexer._db` declares them (token amounts as
Python ints; the database encodes them). They stay plain dicts at run time: the ingester makes hundreds of
thousands per batch and hands them to the driver's bulk insert as they are."""

from __future__ import annotations

from typing import TypedDict


class Versioned(TypedDict, total=False):
    """The version columns of every entity row (set by the row store, not by the projectors)."""

    block_number: int
    log_index: int
    is_current: bool


class ParamsRow(Versioned):
    id: int
    data: str  # JSON of IMarketplace.Params
    treasury: str | None


class AppRow(Versioned):
    app_id: int
    owner: str
    image_ref: str
    image_digest: str
    metadata_uri: str
    price: int
    is_public: bool
    deterministic_file: str
    deprecated: bool
    earned: int
    jobs: int
    registered_at: int


class DatasetRow(Versioned):
    dataset_id: int
    owner: str
    cid: str
    checksum: str
    price: int
    any_requester: bool
    any_app: bool
    deprecated: bool
    earned: int
    jobs: int
    registered_at: int


class WorkerRow(Versioned):
    address: str
    cores: int
    memory_mb: int
    gpus: int
    arch_mask: int
    stake: int
    locked: int
    unstaking: int
    reputation: int
    slashes: int
    banned: bool
    earned: int
    slashed: int
    tasks_done: int
    tasks_failed: int
    active_claims: int
    verified: int
    platform_class: str | None
    registered_at: int
    last_activity: int


class JobRow(Versioned):
    job_id: int
    requester: str
    app_id: int
    dataset_id: int
    num_tasks: int
    replication: int
    reward: int
    deadline: int
    max_run_seconds: int
    cores: int
    memory_mb: int
    gpus: int
    arch_mask: int
    min_reputation: int
    callback: str
    inputs_cid: str
    encryption_key: str
    escrow: int
    owners_price: int
    replica_stake: int
    fee_bps: int
    claimed: int
    settled: int
    finished: int
    failed: int
    cancelled: int
    closed: bool
    refund: int
    app_paid: int
    dataset_paid: int
    escrow_held: int
    confidence_ppb: int | None
    fault_bps: int | None
    spot_check_bps: int | None
    posted_at: int
    closed_at: int | None


class TaskRow(Versioned):
    task_id: int
    job_id: int
    idx: int
    status: str
    target: int
    claims: int
    occupied: int
    committed: int
    revealed: int
    worker: str | None
    lease_start: int | None
    result_digest: str | None
    result_cid: str | None
    winners: int
    reward_each: int
    refund: int
    callback_ok: bool | None
    wanted: str
    platform_class: str | None
    gas_used: int
    txs: int
    claimed_at: int
    finished_at: int | None


class ReplicaRow(Versioned):
    rid: str
    task_id: int
    job_id: int
    seq: int
    slot: int
    worker: str
    status: str
    expiry: int
    commitment: str | None
    result_digest: str | None
    result_cid: str | None
    reward: int
    slashed: int
    claimed_at: int
    updated_at: int


class CounterRow(Versioned):
    name: str
    value: int


class SeriesRow(Versioned):
    t: int
    settled: int
    finalized: int
    failed: int
    gas: int


class BlockFact(TypedDict):
    number: int
    hash: str
    timestamp: int


class TxFact(TypedDict):
    hash: str
    block_number: int
    tx_index: int
    sender: str
    to: str | None
    gas_used: int
    gas_price: int
    n_tasks: int


class EventFact(TypedDict):
    block_number: int
    log_index: int
    block_hash: str
    tx_hash: str
    address: str
    name: str
    args: str  # the decoded arguments as JSON
    task_id: int | None
    job_id: int | None
    worker: str | None
    timestamp: int


class PaymentFact(TypedDict):
    block_number: int
    log_index: int
    seq: int
    kind: str
    account: str | None
    amount: int
    job_id: int | None
    task_id: int | None
    timestamp: int


class SlashFact(TypedDict):
    block_number: int
    log_index: int
    worker: str
    task_id: int
    amount: int
    reputation: int
    timestamp: int
