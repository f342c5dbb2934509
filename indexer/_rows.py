"""The projection's row store: the current version of every row the projectors touched (loaded on first use:
tasks and replicas a whole job at a time), the versions written in the batch being applied, and the aggregates
(``counters``, ``series``) folded in at each block's end."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Table, select, update

from . import _db

ABSENT: dict[str, Any] = {}  # a key known not to exist in the database


class Rows:
    """Current rows in memory + the versions written in the batch being applied.

    It also maintains the aggregates (``counters`` and ``series``): for every row of an aggregated table changed
    in a block it compares the version before the block with the one after it, and at the block's end writes
    one new version of each counter that moved (so they roll back with a reorg like any other version).
    """

    AGGREGATED = ("tasks", "jobs", "workers", "apps", "datasets")

    def __init__(self) -> None:
        self.tables: dict[str, Table] = {t.name: t for t in _db.VERSIONED}
        self.reset()

    def reset(self) -> None:
        self.current: dict[str, dict[Any, dict[str, Any]]] = {n: {} for n in self.tables}
        self.in_db: dict[str, set[Any]] = {n: set() for n in self.tables}
        self.loaded_jobs: set[int] = set()
        self.task_reps: dict[int, list[str]] = {}
        self._begin()

    def _begin(self) -> None:
        self.pending: dict[str, dict[Any, dict[str, Any]]] = {n: {} for n in self.tables}
        self.done: dict[str, list[dict[str, Any]]] = {n: [] for n in self.tables}
        self.facts: dict[str, list[dict[str, Any]]] = {t.name: [] for t in _db.FACTS}
        self.conn: Connection | None = None
        self.block = 0
        self.log_index = 0
        # the block being applied: row before the block (None: created in it) per aggregated key, and deltas
        self.touched: dict[str, dict[Any, dict[str, Any] | None]] = {n: {} for n in self.AGGREGATED}
        self.deltas: defaultdict[str, int] = defaultdict(int)
        self.series: dict[int, list[int]] = {}

    def size(self) -> int:
        return sum(len(v) for v in self.current.values())

    # -- loading ----------------------------------------------------------------------------------
    def _load_key(self, name: str, key: Any) -> dict[str, Any] | None:
        table = self.tables[name]
        assert self.conn is not None
        row = self.conn.execute(select(table).where(table.c[table.info["key"]] == key,
                                                    _db.current_of(table))).mappings().first()
        if row is None:
            self.current[name][key] = ABSENT
            return None
        self.current[name][key] = dict(row)
        self.in_db[name].add(key)
        return self.current[name][key]

    def load_job_tasks(self, job_id: int) -> None:
        if job_id in self.loaded_jobs:
            return
        assert self.conn is not None
        loaded: dict[int, list[str]] = {}
        for name in ("tasks", "replicas"):
            table = self.tables[name]
            key = table.info["key"]
            current, in_db = self.current[name], self.in_db[name]
            of_job = table.c.task_id.between(job_id << 32, (job_id << 32) | 0xFFFFFFFF)  # = job_id, indexed
            for row in self.conn.execute(select(table).where(of_job, _db.current_of(table))).mappings():
                d = dict(row)
                if d[key] in current:  # already in memory (and possibly newer): keep it
                    continue
                current[d[key]] = d
                in_db.add(d[key])
                if name == "replicas":
                    loaded.setdefault(d["task_id"], []).append(d[key])
        for tid, reps in loaded.items():
            known = self.task_reps.get(tid, [])
            self.task_reps[tid] = sorted(set(reps) | set(known), key=lambda r: int(r.split(":")[1]))
        self.loaded_jobs.add(job_id)

    def get(self, name: str, key: Any) -> dict[str, Any] | None:
        row = self.current[name].get(key)
        if row is not None:
            return None if row is ABSENT else row
        if name in ("tasks", "replicas"):
            self.load_job_tasks((key if name == "tasks" else int(key.split(":")[0])) >> 32)
            row = self.current[name].get(key)
            return None if row is None or row is ABSENT else row
        return self._load_key(name, key)

    # -- versions ---------------------------------------------------------------------------------
    def edit(self, name: str, key: Any) -> dict[str, Any] | None:
        """The row's version for the current block (a copy of the current one), or None if it does not exist."""
        pending = self.pending[name]
        pend = pending.get(key)  # when set, it is also the current version
        if pend is not None and pend["block_number"] == self.block:
            pend["log_index"] = self.log_index
            return pend
        row = self.get(name, key)
        if row is None:
            return None
        new = dict(row)
        new["block_number"] = self.block
        new["log_index"] = self.log_index
        if pend is not None:
            self.done[name].append(pend)
        pending[key] = new
        self.current[name][key] = new
        touched = self.touched.get(name)
        if touched is not None:
            touched[key] = row
        return new

    def create(self, name: str, key: Any, values: dict[str, Any]) -> dict[str, Any]:
        existing = self.edit(name, key)
        if existing is not None:
            existing.update(values)
            return existing
        row = dict(values, block_number=self.block, log_index=self.log_index)
        row[self.tables[name].info["key"]] = key
        self.pending[name][key] = row
        self.current[name][key] = row
        if name == "replicas":
            self.task_reps.setdefault(row["task_id"], []).append(key)
        touched = self.touched.get(name)
        if touched is not None:
            touched[key] = None
        return row

    # -- aggregates -------------------------------------------------------------------------------
    def end_block(self) -> None:
        """Fold the block's changes into ``counters`` and ``series`` (new versions at this block)."""
        d, touched = self.deltas, self.touched
        tasks = self.current["tasks"]
        for key, before in touched["tasks"].items():
            after = tasks[key]
            if before is None:
                d["tasks"] += 1
            elif before["status"] == after["status"] and before["gas_used"] == after["gas_used"] \
                    and before["finished_at"] == after["finished_at"]:
                continue
            else:
                self._task_stats(before, -1)
            self._task_stats(after, 1)
        jobs = self.current["jobs"]
        for key, before in touched["jobs"].items():
            after = jobs[key]
            if before is None:
                d["jobs"] += 1
            elif not before["closed"]:
                d["jobs:open"] -= 1
                d["escrow:open"] -= before["escrow_held"]
            if not after["closed"]:
                d["jobs:open"] += 1
                d["escrow:open"] += after["escrow_held"]
        for name in ("workers", "apps", "datasets"):
            created = sum(1 for before in touched[name].values() if before is None)
            if created:
                d[name] += created
        for name, delta in d.items():
            if delta:
                counter = self.edit("counters", name) or self.create("counters", name, {"value": 0})
                counter["value"] += delta
        for t, (settled, finalized, failed, gas) in self.series.items():
            if settled or finalized or failed or gas:
                point = self.edit("series", t) or self.create(
                    "series", t, {"settled": 0, "finalized": 0, "failed": 0, "gas": 0})
                point["settled"] += settled
                point["finalized"] += finalized
                point["failed"] += failed
                point["gas"] += gas
        for v in touched.values():
            v.clear()
        d.clear()
        self.series.clear()

    def _task_stats(self, row: dict[str, Any], sign: int) -> None:
        status = row["status"]
        self.deltas["tasks:" + status] += sign
        gas = row["gas_used"] if status == "finalized" else 0
        if gas:
            self.deltas["gas:finalized"] += sign * gas
        at = row["finished_at"]
        if at is not None:
            point = self.series.get(at)
            if point is None:
                point = self.series[at] = [0, 0, 0, 0]
            point[0] += sign
            if status == "finalized":
                point[1] += sign
                point[3] += sign * gas
            elif status == "failed":
                point[2] += sign

    # -- writing ----------------------------------------------------------------------------------
    def flush(self, conn: Connection) -> None:
        for name, table in self.tables.items():
            pend = self.pending[name]
            if not pend:
                continue
            keycol = table.c[table.info["key"]]
            existing = [k for k in pend if k in self.in_db[name]]
            for chunk in _db.chunks(existing):
                conn.execute(update(table).where(keycol.in_(chunk), _db.current_of(table))
                             .values(is_current=False))
            for r in self.done[name]:
                r["is_current"] = False
            for r in pend.values():
                r["is_current"] = True
            _db.insert_rows(conn, table, self.done[name] + list(pend.values()))
        for fact in _db.FACTS:
            _db.insert_rows(conn, fact, self.facts[fact.name])

    def committed(self) -> None:
        for name in self.tables:
            self.in_db[name].update(self.pending[name])
        self._begin()

