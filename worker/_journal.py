"""The worker's crash-safe journal (SQLite, WAL): each step of each task, and the event-stream cursor.

A step is written (and fsynced by SQLite) *before* the action that depends on it becomes visible to others:
the salt is stored before the commitment is sent, the result CID before the reveal. After a crash the daemon
reads every unfinished task and resumes it from its last step; every step is idempotent.

Costs stay flat however long the worker runs (schema 2). Live tasks (``step < DONE``) are the ``tasks`` table,
and only they: what the daemon reads on every poll. A task that finishes moves, in the same transaction, to
``finished``, compacted to what ``tasknet worker status``, earnings and unpinning need (the claim's copies of
the job, app and dataset are dropped), and its outcome is added to ``totals`` (exact integers: tasks per final
step, tokens earned). Finished records are kept for a retention period (:meth:`Journal.drop_finished`, the
setting ``journal_retention_s``), then dropped with their history; ``totals`` keeps counting them. Nothing the
daemon does per poll or per task reads ``finished`` but by its primary key or through a partial index.

A journal of schema 1 (one ``tasks`` table holding every task) is migrated when it is opened, in one transaction:
a crash during the migration leaves it as it was.
"""

from __future__ import annotations

import enum
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NotRequired

from pydantic import BaseModel, ConfigDict, TypeAdapter, with_config
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict only from Python 3.12

from oracle.protocol import JobId


class Step(enum.IntEnum):
    CLAIMED = 10
    INPUTS_READY = 20
    RAN = 30
    PACKED = 40
    UPLOADED = 50
    SUBMITTED = 55  # R = 1: the signed result is with a relayer; DONE once it is on chain
    COMMITTED = 60
    REVEALED = 70
    ABANDONING = 80  # this worker's environment failed the task: the claim is being given back (abandon)
    DONE = 100      # finalized on chain (paid or not)
    ABANDONED = 105  # the claim was given back before it expired (a small fee, no slash): the task reopened
    FAILED = 110    # given up: the reason says why
    LOST = 120      # the claim expired or was reorged away; nothing more to do


class ClaimData(TypedDict, total=False):
    """What a claim adds to its task's record: when it expires, and the replica slot (R > 1) or the lease (its
    first task id and size, R = 1) it holds."""

    expiry: int
    replica: int
    lease: int
    lease_count: int
    credible_lease: bool  # credibility mode: a lease of a worker credible alone (commitRange, revealRange)
    lane: int  # R > 1 through lanes: the chunk's first task id (its count is lane_count, our lane lane_slot)
    lane_count: int
    lane_slot: int


class GpuNote(TypedDict):
    """What the daemon lends in GPUs, as it detected them at its start (the ``gpus`` value, for 'tasknet worker
    status')."""

    gpus: int
    gpu_devices: list[str]  # "index: model (memory MiB)"
    gpu_note: NotRequired[str]  # why none is lent, when that is so


class DatasetFields(TypedDict):
    """The job's dataset as a claim keeps it (the market view's ``DatasetHint``, dumped)."""

    cid: str
    owner: str
    size: int
    checksum: str  # 0x-hex sha256


@with_config(ConfigDict(extra="allow"))  # a key this version does not name (a newer one's) is kept, not dropped
class TaskData(TypedDict, total=False):
    """What the journal knows of a task, merged step by step (``Journal.record(..., **data)``); stored as JSON."""

    # the claim (ClaimData, and copies of what it was made for: dropped once the task is finished)
    job: dict[str, Any]  # the posted job as JobView dumps it (JSON)
    app: dict[str, Any]  # its app as AppView dumps it (JSON)
    dataset: DatasetFields | None
    claim_block: int
    claim_tx: str
    expiry: int
    replica: int
    lease: int
    lease_count: int
    credible_lease: bool  # a credible lease's task (worker/_credible.py)
    lane: int  # a lane's task (worker/_lanes.py): the chunk's first task id, its count, our lane's slot
    lane_count: int
    lane_slot: int
    commit_block: int  # the block of its lease's commitRange
    sealed: bool  # revealed sealed (spot-checked): a replica in slot 0 since
    # the run
    reason: str  # "ok", or why the run, the claim or the task ended otherwise
    exit_code: int | None
    error: str | None
    run_seconds: float
    paused: str | None  # why the run is paused (None once it resumed)
    ran_s: float  # seconds it ran before its pauses
    run_by: int  # chain time by which a resumed run must end
    attempts: int
    outages: int
    retry_at: float
    slurm_token: str | None
    slurm_job: str | None
    slurm_node: str | None
    # the result
    digest: str  # 0x-hex
    cid: str
    salt: str  # 0x-hex
    archive_sha256: str
    commitment: str  # 0x-hex
    relay_id: int
    relayed: bool
    relay_failed: bool
    batch: int
    # the end
    tx: str
    gas: int
    outcome: str
    earned: int
    unpinned: bool


_TASK_DATA = TypeAdapter(TaskData)


class TaskRecord(BaseModel):
    task_key: str            # "jobId:index"
    job_id: JobId
    task_index: int
    step: Step
    data: TaskData
    updated_at: float

    @property
    def finished(self) -> bool:
        return self.step >= Step.DONE


class JournalSummary(BaseModel):
    """What ``tasknet worker status`` shows, read without scanning finished records."""

    earned: int                  # tokens (wei) earned by every task ever finished here, dropped ones included
    steps: dict[Step, int]       # tasks per step: live ones now, finished ones ever
    live: list[str]              # task keys not finished, oldest first
    finished_kept: int           # finished records still held (within the retention period)
    dropped: int                 # finished records dropped after the retention period


SCHEMA_VERSION = 2
#: data a finished record no longer needs: the claim's copies of the job, its app and dataset (a few KB a task)
COMPACTED_KEYS = ("job", "app", "dataset")

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_key TEXT PRIMARY KEY, job_id INTEGER NOT NULL, task_index INTEGER NOT NULL,
    step INTEGER NOT NULL, data TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS finished (
    task_key TEXT PRIMARY KEY, job_id INTEGER NOT NULL, task_index INTEGER NOT NULL,
    step INTEGER NOT NULL, data TEXT NOT NULL, updated_at REAL NOT NULL,
    pinned TEXT);
CREATE INDEX IF NOT EXISTS finished_age ON finished(updated_at);
CREATE INDEX IF NOT EXISTS finished_pinned ON finished(job_id, updated_at) WHERE pinned IS NOT NULL;
CREATE TABLE IF NOT EXISTS closed_jobs (job_id INTEGER PRIMARY KEY, closed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS totals (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, task_key TEXT NOT NULL, step INTEGER NOT NULL, at REAL NOT NULL,
    note TEXT);
CREATE INDEX IF NOT EXISTS history_task ON history(task_key, id);
"""

_COLS = "job_id, task_index, step, data, updated_at"


def _compact(data: Mapping[str, object]) -> dict[str, object]:
    """The JSON of a finished record: without the claim's copies (written as read, values untouched)."""
    return {k: v for k, v in data.items() if k not in COMPACTED_KEYS}


def _pinned(data: TaskData) -> str | None:
    cid = data.get("cid")
    return cid if cid and not data.get("unpinned") else None


def _earned(data: TaskData) -> int:
    return data.get("earned") or 0


def _task_data(raw: str | bytes | Mapping[str, object]) -> TaskData:
    """A record's data (its JSON column, or that JSON parsed and merged), checked. What is written stays the JSON
    as it was read and merged; only the record handed out is typed."""
    return _TASK_DATA.validate_json(raw) if isinstance(raw, str | bytes) else _TASK_DATA.validate_python(raw)


class Journal:
    """Thread-safe; one connection guarded by a lock (the daemon's writes are few and small)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._lock = threading.Lock()
        self._migrate()

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- schema -----------------------------------------------------------------------------------
    def _migrate(self) -> None:
        """Create the tables, or bring a schema-1 journal to schema 2: its finished tasks move to ``finished``
        (compacted) and are counted in ``totals``. One transaction: all of it, or nothing."""
        with self._tx() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version >= SCHEMA_VERSION:
                return
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            rows = db.execute(f"SELECT task_key, {_COLS} FROM tasks WHERE step >= ?", (int(Step.DONE),)).fetchall()
            totals: dict[str, int] = {}
            for key, job_id, index, step, data, updated in rows:
                raw = _compact(json.loads(data))
                d = _task_data(raw)
                db.execute(f"INSERT OR REPLACE INTO finished(task_key, {_COLS}, pinned) VALUES(?,?,?,?,?,?,?)",
                           (key, job_id, index, step, json.dumps(raw), updated, _pinned(d)))
                totals[f"step:{step}"] = totals.get(f"step:{step}", 0) + 1
                totals["earned"] = totals.get("earned", 0) + _earned(d)
            db.execute("DELETE FROM tasks WHERE step >= ?", (int(Step.DONE),))
            for name, delta in totals.items():
                self._add_total(db, name, delta)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @staticmethod
    def _add_total(db: sqlite3.Connection, name: str, delta: int) -> None:
        if not delta:
            return
        row = db.execute("SELECT value FROM totals WHERE name=?", (name,)).fetchone()
        value = (int(row[0]) if row else 0) + delta
        db.execute("INSERT INTO totals(name, value) VALUES(?, ?) ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                   (name, str(value)))

    # -- tasks ------------------------------------------------------------------------------------
    def record(self, job_id: int, task_index: int, step: Step, note: str | None = None, **data: Any) -> TaskRecord:
        """Move a task to ``step``, merging ``data`` into what is known of it. Steps never go backwards
        except to ``LOST``/``FAILED`` handling, which the caller decides. A finished task moves to the finished
        records (compacted) in the same transaction; one claimed again (after ``LOST``) moves back."""
        key = f"{job_id}:{task_index}"
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT data FROM tasks WHERE task_key=?", (key,)).fetchone()
            old_finished = None
            if row is None:
                old_finished = db.execute("SELECT step, data FROM finished WHERE task_key=?", (key,)).fetchone()
            previous = json.loads(row[0]) if row else json.loads(old_finished[1]) if old_finished else {}
            raw: Mapping[str, object] = {**previous, **data}
            if step >= Step.DONE:
                raw = _compact(raw)
            merged = _task_data(raw)  # checked before anything is written
            if step >= Step.DONE:
                if row is not None:
                    db.execute("DELETE FROM tasks WHERE task_key=?", (key,))
                db.execute(
                    f"INSERT INTO finished(task_key, {_COLS}, pinned) VALUES(?,?,?,?,?,?,?) "
                    "ON CONFLICT(task_key) DO UPDATE SET step=excluded.step, data=excluded.data, "
                    "updated_at=excluded.updated_at, pinned=excluded.pinned",
                    (key, job_id, task_index, int(step), json.dumps(raw), now, _pinned(merged)))
                self._add_total(db, f"step:{int(step)}", 1)
                self._add_total(db, "earned", _earned(merged))
            else:
                if old_finished is not None:
                    db.execute("DELETE FROM finished WHERE task_key=?", (key,))
                db.execute(
                    f"INSERT INTO tasks(task_key, {_COLS}) VALUES(?,?,?,?,?,?) "
                    "ON CONFLICT(task_key) DO UPDATE SET step=excluded.step, data=excluded.data, "
                    "updated_at=excluded.updated_at",
                    (key, job_id, task_index, int(step), json.dumps(raw), now))
            if old_finished is not None:  # what the finished record counted before is replaced by the above
                self._add_total(db, f"step:{int(old_finished[0])}", -1)
                self._add_total(db, "earned", -_earned(_task_data(old_finished[1])))
            db.execute("INSERT INTO history(task_key, step, at, note) VALUES(?,?,?,?)", (key, int(step), now, note))
        return TaskRecord(task_key=key, job_id=job_id, task_index=task_index, step=step, data=merged, updated_at=now)

    def range_records(self, start: int, count: int, running: set[str]) -> list[TaskRecord] | None:
        """The records of the ``count`` tasks from task id ``start`` (a lease's or a lane's), or None while one is
        missing or its task runs (``running``: task keys): a range is settled as a whole."""
        job_id, first = start >> 32, start & 0xFFFFFFFF
        recs = [self.get(job_id, first + i) for i in range(count)]
        if any(r is None or r.task_key in running for r in recs):
            return None
        return [r for r in recs if r is not None]

    def get(self, job_id: int, task_index: int) -> TaskRecord | None:
        key = f"{job_id}:{task_index}"
        with self._lock:
            row = self._db.execute(f"SELECT {_COLS} FROM tasks WHERE task_key=?", (key,)).fetchone()
            if row is None:
                row = self._db.execute(f"SELECT {_COLS} FROM finished WHERE task_key=?", (key,)).fetchone()
        return None if row is None else self._rec(row)

    def holds(self, job_id: int, task_index: int) -> bool:
        """True when the journal holds the task at any step but ``LOST`` (a claim a reorg dropped, or one that
        expired, may be made again). Two primary-key lookups."""
        key = f"{job_id}:{task_index}"
        with self._lock:
            if self._db.execute("SELECT 1 FROM tasks WHERE task_key=?", (key,)).fetchone() is not None:
                return True
            row = self._db.execute("SELECT step FROM finished WHERE task_key=?", (key,)).fetchone()
        return row is not None and int(row[0]) != Step.LOST

    def unfinished(self) -> list[TaskRecord]:
        """The live tasks, oldest change first: what the daemon resumes and advances."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLS} FROM tasks ORDER BY updated_at").fetchall()
        return [self._rec(r) for r in rows]

    def finished_records(self, *, job_id: int | None = None) -> list[TaskRecord]:
        """The finished records still kept (compacted), oldest first; of one job when ``job_id`` is given.
        For reports and tests: the daemon never calls it."""
        query = f"SELECT {_COLS} FROM finished" + (" WHERE job_id=?" if job_id is not None else "")
        with self._lock:
            rows = self._db.execute(query + " ORDER BY updated_at", () if job_id is None else (job_id,)).fetchall()
        return [self._rec(r) for r in rows]

    def all(self) -> list[TaskRecord]:
        """Every task held: live ones and the finished records still kept, oldest change first. Reads the whole
        journal: for reports and tests, never for the daemon's loop."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLS} FROM tasks UNION ALL SELECT {_COLS} FROM finished "
                                    "ORDER BY updated_at").fetchall()
        return [self._rec(r) for r in rows]

    def summary(self) -> JournalSummary:
        """Earnings and task counts from ``totals`` and the live table: no finished record is read."""
        with self._lock:
            totals = {n: int(v) for n, v in self._db.execute("SELECT name, value FROM totals")}
            live = self._db.execute("SELECT task_key, step FROM tasks ORDER BY updated_at").fetchall()
            kept = int(self._db.execute("SELECT count(*) FROM finished").fetchone()[0])
        steps = {s: totals.get(f"step:{int(s)}", 0) for s in Step}
        for _, step in live:
            steps[Step(step)] += 1
        return JournalSummary(earned=totals.get("earned", 0), steps=steps, live=[k for k, _ in live],
                              finished_kept=kept, dropped=totals.get("dropped", 0))

    # -- results this worker pins ---------------------------------------------------------------------
    def pinned_before(self, when: float) -> list[TaskRecord]:
        """Finished tasks whose result (``cid``) this worker still pins, last changed before ``when``."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLS} FROM finished WHERE pinned IS NOT NULL AND updated_at < ?",
                                    (when,)).fetchall()
        return [self._rec(r) for r in rows]

    def unpin_due(self, when: float, limit: int = 500) -> list[TaskRecord]:
        """Finished tasks whose result this worker still pins, last changed before ``when``, of jobs that closed
        before ``when`` (see :meth:`job_closed`). Reads the pinned records only (a partial index)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT f.job_id, f.task_index, f.step, f.data, f.updated_at FROM finished f "
                "JOIN closed_jobs c ON c.job_id = f.job_id "
                "WHERE f.pinned IS NOT NULL AND f.updated_at < ? AND c.closed_at < ? LIMIT ?",
                (when, when, limit)).fetchall()
        return [self._rec(r) for r in rows]

    def job_closed(self, job_ids: list[int], at: float | None = None) -> None:
        """Note that these jobs closed (first time seen): their results may be unpinned after the retention."""
        if not job_ids:
            return
        at = time.time() if at is None else at
        with self._tx() as db:
            db.executemany("INSERT OR IGNORE INTO closed_jobs(job_id, closed_at) VALUES(?, ?)",
                           [(j, at) for j in job_ids])

    # -- retention --------------------------------------------------------------------------------
    def drop_finished(self, before: float, limit: int = 2000) -> int:
        """Drop up to ``limit`` finished records last changed before ``before`` (and their history), except
        those whose result this worker still pins. ``totals`` keeps their counts and earnings. Returns how many
        were dropped; call again while it returns ``limit``."""
        with self._tx() as db:
            keys = [k for (k,) in db.execute(
                "SELECT task_key FROM finished WHERE updated_at < ? AND pinned IS NULL ORDER BY updated_at LIMIT ?",
                (before, limit))]
            if not keys:
                return 0
            db.executemany("DELETE FROM finished WHERE task_key=?", [(k,) for k in keys])
            db.executemany("DELETE FROM history WHERE task_key=?", [(k,) for k in keys])
            self._add_total(db, "dropped", len(keys))
            closed = [j for (j,) in db.execute(
                "SELECT job_id FROM closed_jobs c WHERE closed_at < ? AND NOT EXISTS "
                "(SELECT 1 FROM finished f WHERE f.job_id = c.job_id AND f.pinned IS NOT NULL) LIMIT ?",
                (before, limit))]
            db.executemany("DELETE FROM closed_jobs WHERE job_id=?", [(j,) for j in closed])
        return len(keys)

    # -- history ----------------------------------------------------------------------------------
    def history(self, job_id: int, task_index: int) -> list[tuple[Step, str | None]]:
        """Each step the task went through, oldest first, with its note."""
        return [(step, note) for step, _, note in self._history(job_id, task_index)]

    def step_times(self, job_id: int, task_index: int) -> list[tuple[Step, float]]:
        """Each step the task went through, oldest first, with the time it was recorded (seconds since the epoch)."""
        return [(step, at) for step, at, _ in self._history(job_id, task_index)]

    def _history(self, job_id: int, task_index: int) -> list[tuple[Step, float, str | None]]:
        with self._lock:
            rows = self._db.execute("SELECT step, at, note FROM history WHERE task_key=? ORDER BY id",
                                    (f"{job_id}:{task_index}",)).fetchall()
        return [(Step(s), float(a), n) for s, a, n in rows]

    # -- values -----------------------------------------------------------------------------------
    def get_value(self, key: str) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_value(self, key: str, value: Any) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO kv(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                       (key, json.dumps(value)))

    @staticmethod
    def _rec(row: tuple[Any, ...]) -> TaskRecord:
        job_id, index, step, data, updated = row
        return TaskRecord(task_key=f"{job_id}:{index}", job_id=job_id, task_index=index, step=Step(step),
                          data=_task_data(data), updated_at=updated)
