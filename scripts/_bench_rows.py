"""The JSON rows the benchmarks print last (and ``--json``), as TypedDicts: what each bench script builds and what
scripts/bench_report.py reads back, one type for both, so mypy checks the keys on either side.

A row leaves as ``json.dumps`` of the typed dict, and comes back through ``read_row`` (pydantic): unknown keys and
wrong types are refused there, once, instead of as a ``KeyError`` in the middle of a report. The classes come from
``typing_extensions`` because pydantic needs them to on Python < 3.12.
"""

from __future__ import annotations

import json
from typing import NotRequired, TypeVar, final

from _daemon_costs import KindCost
from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

T = TypeVar("T")

#: a row read back must have exactly the keys of its type
ROW = ConfigDict(extra="forbid")


def dump_row(row: TypeAdapter[T], value: T) -> str:
    """The JSON line of ``value``, checked against its type and with its keys in the type's order (a row whose
    optional keys were added last prints them where they belong, as bench_report prints the row it read)."""
    return json.dumps(row.validate_python(value))


def read_row(row: TypeAdapter[T], text: str, what: str) -> T:
    """Parse one JSON row of ``what`` (a script's last line, a summary.json) with ``row``, or exit saying why."""
    try:
        return row.validate_json(text)
    except ValidationError as exc:
        raise SystemExit(f"bench: the row of {what} is not a {row}:\n{exc}\n(a bench script and "
                         "scripts/_bench_rows.py must change together)") from None


@with_config(ROW)
class Spread(TypedDict):
    """Median, min and max of a measure's runs."""

    median: float
    min: float
    max: float


# -- scripts/bench_worker.py ------------------------------------------------------------------------------------
@with_config(ROW)
class WorkerRow(TypedDict):
    overhead_median_s: float
    overhead_runs_s: Spread
    overhead_p90_s: float
    run_median_s: float
    tasks_per_s: float
    tasks_per_s_runs: Spread
    #: component (workers, dockerd, containerd, anvil, kubo, rest, machine) -> CPU ms per task
    cpu_ms_per_task: dict[str, float]
    workers: int
    max_concurrent: int
    repeats: int
    overhead_tasks: int
    throughput_tasks: int


# -- scripts/bench_indexer.py -----------------------------------------------------------------------------------
@with_config(ROW)
class IngestRuns(TypedDict):
    """Cold ingestions into fresh databases: events per second (median, min, max, each run) and the events."""

    median: int
    min: int
    max: int
    runs: list[int]
    events: int


@with_config(ROW)
class RouteLatency(TypedDict):
    route: str
    what: str
    p50: float
    p95: float
    n: int


@with_config(ROW)
class ApiLatency(TypedDict):
    p50: float
    p95: float
    #: (p50, p95) of each round
    rounds: list[list[float]]
    routes: list[RouteLatency]


@with_config(ROW)
class IndexerRow(TypedDict):
    sqlite_events_per_s: int
    postgres_events_per_s: int | None
    api_p50_ms: float
    api_p95_ms: float
    load_before: str
    sqlite_ingestion: IngestRuns
    events: int
    postgres_ingestion: NotRequired[IngestRuns]
    postgres_api: NotRequired[ApiLatency]
    api: ApiLatency
    tasks: int
    api_requests: int
    runs: int
    load_after: str
    python: str


# -- scripts/bench_network.py -----------------------------------------------------------------------------------
@with_config(ROW)
class NetworkRow(TypedDict):
    transfer_mb_s: float
    one_host_s: float
    four_hosts_s: float
    speedup_4_vs_1: float
    loopback_one_worker_s: float
    network_s_per_task: float
    network_s_per_task_runs: Spread
    transfer_runs_mb_s: Spread
    loopback_transfer_mb_s: float
    loopback_transfer_runs_mb_s: Spread
    one_host_runs_s: Spread
    four_hosts_runs_s: Spread
    loopback_one_worker_runs_s: Spread
    frames: int
    size: str
    replication: int
    repeats: int
    transfer_mb: int
    load_before: str
    load_after: str


# -- scripts/bench_report.py demo: tasknet demo's summary.json, run --repeats times ------------------------------
@with_config(ROW)
class DemoRow(TypedDict):
    runs: int
    wall_time_s: float
    wall_time_min_s: float
    wall_time_max_s: float
    gas_per_task: int
    frames: int
    workers: int
    replication: int


# -- scripts/bench_adaptive.py ----------------------------------------------------------------------------------
@with_config(ROW)
class Outcome(TypedDict):
    """What a job's events say: replicas per task, wrong results accepted, the extra replicas wanted and why."""

    replicas_per_task: float
    wrong_accepted: int
    finalized: int
    spot_checks: int
    disputes: int
    not_credible: int
    leases: int  # credible leases committed (commitRange): credibility mode only
    lease_mean: float  # their mean length, tasks
    checked_leases: int  # credible leases a spot check picked whole (LeaseChecked: a check lane each)
    checked_tasks: int  # their tasks
    check_gaps: list[int]  # blocks from each checked lease's commit to its check (past 256: picked for want of a hash)
    lease_sizes: list[int]  # each credible lease's length, tasks, in the order they were committed


@with_config(ROW)
class JobCost(TypedDict):
    """One job on the worker daemons: its costs from its blocks."""

    job: int
    tasks: int
    wall_s: float
    gas_per_task: int
    by_kind: dict[str, KindCost]


@with_config(ROW)
class JobRun(JobCost, Outcome):
    """One job on the worker daemons: its costs, then its outcome (the keys in the order they are printed)."""


@with_config(ROW)
class LiarJobRun(JobRun):
    """The job a lying worker joined, with its reveals and slashes."""

    liar_reveals: int
    liar_slashes: int


@with_config(ROW)
class AdaptiveRow(TypedDict):
    warmup: JobRun
    verified_after_warmup: list[int]
    r1: JobRun
    adaptive: JobRun
    r2: JobRun
    r3: JobRun
    with_liar: NotRequired[LiarJobRun]
    replicas_per_task: float
    gas_per_task_vs_r1: float
    wrong_accepted: int
    confidence: float
    assumed_faulty: float
    spot_check: float
    cap: int
    tasks: int
    workers: int
    load: list[float]
    runs: NotRequired[list[AdaptiveRun]]  # scripts/bench adaptive --runs N: every run's figures (the first is this row)


@with_config(ROW)
class AdaptiveRun(TypedDict):
    """One run of ``scripts/bench adaptive --runs N``: what its credibility job drew and cost."""

    gas_per_task_vs_r1: float
    replicas_per_task: float
    wrong_accepted: int
    gas_per_task: int
    r1_gas_per_task: int
    checked_leases: int
    spot_checks: int
    leases: int


# -- scripts/bench_gas.py ---------------------------------------------------------------------------------------
@with_config(ROW)
class OpStats(TypedDict):
    """gasUsed of one operation's transactions."""

    mean: int
    min: int
    max: int
    count: int


@with_config(ROW)
class DaemonGas(TypedDict):
    """(``--daemon``) Gas per task as 4 worker daemons send it, per job."""

    daemon_r1_bag_per_task: int
    daemon_r2_per_task: int
    daemon_r3_per_task: int
    #: the R = 2 and R = 3 jobs again, on daemons with lanes off (``batching.lanes`` false): per-task rounds
    daemon_r2_rounds_per_task: int
    daemon_r3_rounds_per_task: int
    #: job key -> kind -> its transactions and gas
    daemon_by_kind: dict[str, dict[str, KindCost]]
    daemon_wall_s: dict[str, float]
    #: (``--runs``) each run's figures; the keys above are their medians, the by-kind rows the median R = 1 run's
    daemon_runs: NotRequired[list[dict[str, int]]]


@with_config(ROW)
class GasRow(TypedDict):
    """Gas per scenario (per task where the key says so), per operation, and the daemon rows with ``--daemon``."""

    single_task_r1: int
    bag100_r1_per_task: int
    bag10_r3_per_task: int
    bag10_r3_unbatched_per_task: int
    bag100_r1_relayed_per_task: int
    bag10_credible_alone_per_task: int
    bag10_credible_lease_per_task: int
    bag10_r1_lease_per_task: int
    giving_back: int
    homogeneous: int
    operations: dict[str, OpStats]
    setup_gas_excluded: int
    #: bag10_r3_per_task's gas per task by kind of work (scripts/_gas_profile.py CLASSES)
    r3_profile_per_task: NotRequired[dict[str, int]]
    #: one credible lease's gas per task by its length (str keys, as JSON has them)
    credible_lease_by_size: NotRequired[dict[str, int]]
    #: 10 tasks through one lane chunk at R = 2 / R = 3, per task
    bag10_r2_lanes_per_task: NotRequired[int]
    bag10_r3_lanes_per_task: NotRequired[int]
    daemon_r1_bag_per_task: NotRequired[int]
    daemon_r2_per_task: NotRequired[int]
    daemon_r3_per_task: NotRequired[int]
    daemon_r2_rounds_per_task: NotRequired[int]
    daemon_r3_rounds_per_task: NotRequired[int]
    daemon_by_kind: NotRequired[dict[str, dict[str, KindCost]]]
    daemon_wall_s: NotRequired[dict[str, float]]
    daemon_runs: NotRequired[list[dict[str, int]]]


# -- scripts/bench_floor.py -------------------------------------------------------------------------------------
@with_config(ROW)
class FloorRun(TypedDict):
    floor_s: float
    render_cpu_s: float
    render_cpu_s_before: float
    render_cpu_s_after: float
    direct_wall_s: float
    r1_s: float
    r2_s: float
    r1_ratio: float
    r2_ratio_per_replica: float
    r1_gas_per_task: int
    r2_gas_per_task: int
    #: journal step reached -> seconds, summed over every task and worker
    r1_phases_s: dict[str, float]
    r2_phases_s: dict[str, float]
    #: the mean wall time of one frame's direct render (a docker exec), the frames' CPU alike
    frame_wall_s: float
    frame_cpu_s: float
    #: the same direct renders, 4 containers per core; and each frame in a new container, as many at a time
    direct_wide_wall_s: float
    direct_fresh_wall_s: float
    #: the worker daemons' start to all following the chain, before the R = 1 posting
    r1_workers_ready_s: float
    #: the machine's CPU from the R = 1 posting to its last result, by group (scripts/_cpu_profile.py)
    r1_cpu_s: dict[str, float]
    #: the same jobs with each worker running 1 task at once (tasknet demo --worker-slots 1)
    r1_s_1_slot: float
    r2_s_1_slot: float
    r1_ratio_1_slot: float
    r2_ratio_per_replica_1_slot: float
    r1_cpu_s_1_slot: dict[str, float]
    #: the R = 1 job again with every task in a fresh container (sandbox_reuse off: worker/_reuse.py)
    r1_s_fresh: float
    r1_ratio_fresh: float
    r1_cpu_s_fresh: dict[str, float]


@with_config(ROW)
class FloorRow(TypedDict):
    r1_ratio: Spread
    r2_ratio_per_replica: Spread
    floor_s: Spread
    r1_s: Spread
    r2_s: Spread
    direct_wall_s: Spread
    direct_wide_wall_s: Spread
    direct_fresh_wall_s: Spread
    r1_s_1_slot: Spread
    r2_s_1_slot: Spread
    r1_ratio_1_slot: Spread
    r2_ratio_per_replica_1_slot: Spread
    r1_s_fresh: Spread
    r1_ratio_fresh: Spread
    frame_wall_s: Spread
    frame_cpu_s: Spread
    runs: list[FloorRun]
    frames: int
    workers: int
    cores: int
    load_before: list[float]
    load_after: list[float]
    cpu_source: str


# -- scripts/bench_scale.py -------------------------------------------------------------------------------------
@with_config(ROW)
class Window(TypedDict):
    """CPU per task of the workers and per transaction of anvil over a window of finished tasks."""

    worker_cpu_ms_per_task: float
    anvil_cpu_ms_per_tx: float
    anvil_rss_mb: float
    tasks: int
    txs: int


@with_config(ROW)
class BagPart(TypedDict):
    tasks: int
    window: int
    bag_wall_s: float
    tasks_per_s: float
    first: Window
    last: Window


@with_config(ROW)
class KindTally(TypedDict):
    txs: int
    gas_per_task: int


@with_config(ROW)
class ChainCosts(TypedDict):
    """How a bag's results went on chain (from its blocks); a share is None when nothing was sent to share."""

    solo_submit_share: float | None
    revert_share: float | None
    gas_per_task: int
    worker_txs: int
    worker_txs_reverted: int
    reverted_gas: int
    result_txs: int
    results_per_result_tx: float | None
    claimed_per_claim_tx: float | None
    post_gas_per_task: int
    by_kind: dict[str, KindTally]


@with_config(ROW)
class BatchingBag(TypedDict):
    tasks: int
    bag_wall_s: float
    tasks_per_s: float
    load_before: list[float]
    load_after: list[float]


@with_config(ROW)
class BatchingRow(BatchingBag, ChainCosts):
    """(``--only batching``) One bag, then how its results went on chain."""


@with_config(ROW)
class RequesterPart(TypedDict):
    job_status_s: float
    job_status_runs_s: Spread
    job_status_sdk_s: float
    job_status_finalized: int
    result_get_full_ms_per_task: float
    result_get_ms_per_task: float
    result_get_ms_per_task_runs: Spread


@with_config(ROW)
class AuditPart(TypedDict):
    audit_s_2k: float
    audit_tasks: int
    audit_passed: bool
    #: the audit report's tasks by outcome
    audit_counts: dict[str, int]


@with_config(ROW)
class IdlePart(TypedDict):
    idle_cpu_pct_100k: float
    idle_seconds: float
    idle_cpu_pct_quarters: Spread
    idle_journal_records: int
    idle_start_s: float
    idle_journal_written_s: float
    idle_journal_mb: float


@with_config(ROW)
class BagWindows(TypedDict):
    """The CPU figures of the first and last windows, again at the top level."""

    cpu_ms_first_1k: float
    cpu_ms_last_1k: float
    anvil_cpu_ms_per_tx_first: float
    anvil_cpu_ms_per_tx_last: float


@with_config(ROW)
class AuditJob(TypedDict):
    audit_job_tasks: int


@with_config(ROW)
class BagResult(BagPart, BagWindows, ChainCosts, RequesterPart, AuditPart, AuditJob):
    """The big bag, the requester's commands on it, an audit (a TypedDict's bases give its keys' order)."""


@with_config(ROW)
class LoadBefore(TypedDict):
    load_before: list[float]


@with_config(ROW)
class LoadAfter(TypedDict):
    load_after: list[float]


@final
@with_config(ROW)
class ScaleFullRow(LoadBefore, BagResult, IdlePart, LoadAfter):
    """``scripts/bench scale``: everything."""


@final
@with_config(ROW)
class ScaleBagRow(LoadBefore, BagResult, LoadAfter):
    """``--only bag``."""


@final
@with_config(ROW)
class ScaleIdleRow(LoadBefore, IdlePart, LoadAfter):
    """``--only idle``."""


@final
@with_config(ROW)
class ScaleBatchingRow(TypedDict):
    """``--only batching``."""

    load_before: list[float]
    batching: list[BatchingRow]
    reverts_logged: int
    load_after: list[float]


ScaleRow = ScaleFullRow | ScaleBagRow | ScaleIdleRow | ScaleBatchingRow
