"""The projection's row store: the current version of every row the projectors touched (loaded on first use:
tasks and replicas a whole job at a time), the versions written in the batch being applied, and the aggregates
(``counters``, ``series``) folded in at each block's end."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar, cast

from sqlalchemy import Connection, Table, select, update

from . import _db
from ._row_types import (
    AppRow,
    BlockFact,
    CounterRow,
    DatasetRow,
    EventFact,
    JobRow,
    ParamsRow,
    PaymentFact,
    ReplicaRow,
    SeriesRow,
    SlashFact,
    TaskRow,
    TxFact,
    Versioned,
    WorkerRow,
)

K = TypeVar("K", bound=Hashable)
R = TypeVar("R", bound=Versioned)


class Clock:
    """Where the batch being applied is: its connection, and the block and log index of the event."""

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.block = 0
        self.log_index = 0


class Store(Generic[K, R]):
    """One versioned table's rows: the current version per key (None: known not to exist), the versions the
    batch wrote, and (aggregated tables) the version each key had before the block being applied."""

    def __init__(self, table: Table, clock: Clock, key_of: Callable[[R], K], *, aggregated: bool = False,
                 load_job: Callable[[K], None] | None = None, on_new: Callable[[R], None] | None = None) -> None:
        self.table, self.clock, self.key_of = table, clock, key_of
        self.aggregated, self.load_job, self.on_new = aggregated, load_job, on_new
        self.reset()

    def reset(self) -> None:
        self.current: dict[K, R | None] = {}
        self.in_db: set[K] = set()
        self.begin()

    def begin(self) -> None:
        self.pending: dict[K, R] = {}  # the newest version written in the batch (also the current one)
        self.done: list[R] = []  # older versions written in the batch
        self.touched: dict[K, R | None] = {}  # the block being applied: row before it (None: created in it)

    def loaded(self, row: R) -> None:
        """A current version read from the database (kept unless a newer one is already in memory)."""
        key = self.key_of(row)
        if key not in self.current:
            self.current[key] = row
            self.in_db.add(key)

    def _load_key(self, key: K) -> R | None:
        table = self.table
        assert self.clock.conn is not None
        found = self.clock.conn.execute(select(table).where(table.c[table.info["key"]] == key,
                                                            _db.current_of(table))).mappings().first()
        row = None if found is None else cast(R, dict(found))  # the schema's columns: see _row_types
        self.current[key] = row
        if row is not None:
            self.in_db.add(key)
        return row

    def get(self, key: K) -> R | None:
        """The current version (read-only), loading it on first use; None if the key does not exist."""
        if key in self.current:
            return self.current[key]
        if self.load_job is not None:
            self.load_job(key)
            return self.current.get(key)
        return self._load_key(key)

    def edit(self, key: K) -> R | None:
        """The row's version for the current block (a copy of the current one), or None if it does not exist."""
        pend = self.pending.get(key)  # when set, it is also the current version
        if pend is not None and pend["block_number"] == self.clock.block:
            pend["log_index"] = self.clock.log_index
            return pend
        row = self.get(key)
        if row is None:
            return None
        new = row.copy()
        new["block_number"] = self.clock.block
        new["log_index"] = self.clock.log_index
        if pend is not None:
            self.done.append(pend)
        self.pending[key] = new
        self.current[key] = new
        if self.aggregated:
            self.touched[key] = row
        return new

    def create(self, values: R) -> R:
        """A new row (``values`` holds every column but the version's), or the existing one updated with them."""
        key = self.key_of(values)
        existing = self.edit(key)
        if existing is not None:
            existing.update(values)
            return existing
        row = values.copy()
        row["block_number"] = self.clock.block
        row["log_index"] = self.clock.log_index
        self.pending[key] = row
        self.current[key] = row
        if self.on_new is not None:
            self.on_new(row)
        if self.aggregated:
            self.touched[key] = None
        return row

    def flush(self, conn: Connection) -> None:
        if not self.pending:
            return
        table = self.table
        keycol = table.c[table.info["key"]]
        existing = [k for k in self.pending if k in self.in_db]
        for chunk in _db.chunks(existing):
            conn.execute(update(table).where(keycol.in_(chunk), _db.current_of(table)).values(is_current=False))
        for r in self.done:
            r["is_current"] = False
        for r in self.pending.values():
            r["is_current"] = True
        _db.insert_rows(conn, table, self.done + list(self.pending.values()))

    def committed(self) -> None:
        self.in_db.update(self.pending)
        self.begin()


def _job_of_replica(rid: str) -> int:
    return int(rid.split(":")[0]) >> 32


class Rows(Clock):
    """Current rows in memory + the versions written in the batch being applied, one :class:`Store` per table.

    It also maintains the aggregates (``counters`` and ``series``): for every row of an aggregated table changed
    in a block it compares the version before the block with the one after it, and at the block's end writes
    one new version of each counter that moved (so they roll back with a reorg like any other version).
    """

    def __init__(self) -> None:
        super().__init__()
        self.params: Store[int, ParamsRow] = Store(_db.params, self, lambda r: r["id"])
        self.apps: Store[int, AppRow] = Store(_db.apps, self, lambda r: r["app_id"], aggregated=True)
        self.datasets: Store[int, DatasetRow] = Store(_db.datasets, self, lambda r: r["dataset_id"],
                                                      aggregated=True)
        self.workers: Store[str, WorkerRow] = Store(_db.workers, self, lambda r: r["address"], aggregated=True)
        self.jobs: Store[int, JobRow] = Store(_db.jobs, self, lambda r: r["job_id"], aggregated=True)
        self.tasks: Store[int, TaskRow] = Store(_db.tasks, self, lambda r: r["task_id"], aggregated=True,
                                                load_job=lambda tid: self.load_job_tasks(tid >> 32))
        self.replicas: Store[str, ReplicaRow] = Store(
            _db.replicas, self, lambda r: r["rid"], load_job=lambda rid: self.load_job_tasks(_job_of_replica(rid)),
            on_new=lambda r: self.task_reps.setdefault(r["task_id"], []).append(r["rid"]))
        self.counters: Store[str, CounterRow] = Store(_db.counters, self, lambda r: r["name"])
        self.series: Store[int, SeriesRow] = Store(_db.series, self, lambda r: r["t"])
        self.reset()

    def _stores(self) -> tuple[Store[int, ParamsRow], Store[int, AppRow], Store[int, DatasetRow],
                               Store[str, WorkerRow], Store[int, JobRow], Store[int, TaskRow],
                               Store[str, ReplicaRow], Store[str, CounterRow], Store[int, SeriesRow]]:
        """In the order of :data:`indexer._db.VERSIONED`."""
        return (self.params, self.apps, self.datasets, self.workers, self.jobs, self.tasks, self.replicas,
                self.counters, self.series)

    def reset(self) -> None:
        for store in self._stores():
            store.reset()
        self.loaded_jobs: set[int] = set()
        self.task_reps: dict[int, list[str]] = {}
        self._begin()

    def _begin(self) -> None:
        for store in self._stores():
            store.begin()
        self.blocks: list[BlockFact] = []
        self.txs: list[TxFact] = []
        self.events: list[EventFact] = []
        self.payments: list[PaymentFact] = []
        self.slashes: list[SlashFact] = []
        self.conn = None
        self.block = 0
        self.log_index = 0
        # the block being applied: counter deltas, and per second of chain time [settled, finalized, failed, gas]
        self.deltas: defaultdict[str, int] = defaultdict(int)
        self.points: dict[int, list[int]] = {}

    def size(self) -> int:
        return sum(len(s.current) for s in self._stores())

    def load_job_tasks(self, job_id: int) -> None:
        if job_id in self.loaded_jobs:
            return
        assert self.conn is not None
        loaded: dict[int, list[str]] = {}
        for table in (_db.tasks, _db.replicas):
            of_job = table.c.task_id.between(job_id << 32, (job_id << 32) | 0xFFFFFFFF)  # = job_id, indexed
            for found in self.conn.execute(select(table).where(of_job, _db.current_of(table))).mappings():
                if table is _db.tasks:
                    self.tasks.loaded(cast(TaskRow, dict(found)))
                    continue
                rep = cast(ReplicaRow, dict(found))
                if rep["rid"] not in self.replicas.current:
                    loaded.setdefault(rep["task_id"], []).append(rep["rid"])
                self.replicas.loaded(rep)
        for tid, reps in loaded.items():
            known = self.task_reps.get(tid, [])
            self.task_reps[tid] = sorted(set(reps) | set(known), key=lambda r: int(r.split(":")[1]))
        self.loaded_jobs.add(job_id)

    # -- aggregates -------------------------------------------------------------------------------
    def end_block(self) -> None:
        """Fold the block's changes into ``counters`` and ``series`` (new versions at this block)."""
        self._fold_tasks()
        self._fold_jobs()
        d = self.deltas
        for store in (self.workers, self.apps, self.datasets):
            created = sum(1 for before in store.touched.values() if before is None)
            if created:
                d[store.table.name] += created
        for name, delta in d.items():
            if delta:
                counter = self.counters.edit(name) or self.counters.create({"name": name, "value": 0})
                counter["value"] += delta
        for t, (settled, finalized, failed, gas) in self.points.items():
            if settled or finalized or failed or gas:
                point = self.series.edit(t) or self.series.create(
                    {"t": t, "settled": 0, "finalized": 0, "failed": 0, "gas": 0})
                point["settled"] += settled
                point["finalized"] += finalized
                point["failed"] += failed
                point["gas"] += gas
        for agg in (self.tasks, self.jobs, self.workers, self.apps, self.datasets):
            agg.touched.clear()
        d.clear()
        self.points.clear()

    def _fold_tasks(self) -> None:
        for key, before in self.tasks.touched.items():
            after = self.tasks.current[key]
            assert after is not None
            if before is None:
                self.deltas["tasks"] += 1
            elif before["status"] == after["status"] and before["gas_used"] == after["gas_used"] \
                    and before["finished_at"] == after["finished_at"]:
                continue
            else:
                self._task_stats(before, -1)
            self._task_stats(after, 1)

    def _fold_jobs(self) -> None:
        d = self.deltas
        for key, before in self.jobs.touched.items():
            after = self.jobs.current[key]
            assert after is not None
            if before is None:
                d["jobs"] += 1
            elif not before["closed"]:
                d["jobs:open"] -= 1
                d["escrow:open"] -= before["escrow_held"]
            if not after["closed"]:
                d["jobs:open"] += 1
                d["escrow:open"] += after["escrow_held"]

    def _task_stats(self, row: TaskRow, sign: int) -> None:
        status = row["status"]
        self.deltas["tasks:" + status] += sign
        gas = row["gas_used"] if status == "finalized" else 0
        if gas:
            self.deltas["gas:finalized"] += sign * gas
        at = row["finished_at"]
        if at is not None:
            point = self.points.get(at)
            if point is None:
                point = self.points[at] = [0, 0, 0, 0]
            point[0] += sign
            if status == "finalized":
                point[1] += sign
                point[3] += sign * gas
            elif status == "failed":
                point[2] += sign

    # -- writing ----------------------------------------------------------------------------------
    def flush(self, conn: Connection) -> None:
        for store in self._stores():
            store.flush(conn)
        _db.insert_rows(conn, _db.events, self.events)
        _db.insert_rows(conn, _db.txs, self.txs)
        _db.insert_rows(conn, _db.payments, self.payments)
        _db.insert_rows(conn, _db.slashes, self.slashes)
        _db.insert_rows(conn, _db.blocks, self.blocks)

    def committed(self) -> None:
        for store in self._stores():
            store.committed()
        self._begin()
