"""The worker's crash-safe journal (SQLite, WAL): each step of each task, and the event-stream cursor.

A step is written (and fsynced by SQLite) *before* the action that depends on it becomes visible to others:
the salt is stored before the commitment is sent, the result CID before the reveal. After a crash the daemon
reads every unfinished task and resumes it from its last step; every step is idempotent.
"""

from __future__ import annotations

import enum
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel


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


class TaskRecord(BaseModel):
    task_key: str            # "jobId:index"
    job_id: int
    task_index: int
    step: Step
    data: dict[str, Any]     # salt, digest, result_cid, paths, reasons ...
    updated_at: float

    @property
    def finished(self) -> bool:
        return self.step >= Step.DONE


SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_key TEXT PRIMARY KEY, job_id INTEGER NOT NULL, task_index INTEGER NOT NULL,
    step INTEGER NOT NULL, data TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, task_key TEXT NOT NULL, step INTEGER NOT NULL, at REAL NOT NULL,
    note TEXT);
"""


class Journal:
    """Thread-safe; one connection guarded by a lock (the daemon's writes are few and small)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

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

    def record(self, job_id: int, task_index: int, step: Step, note: str | None = None, **data: Any) -> TaskRecord:
        """Move a task to ``step``, merging ``data`` into what is known of it. Steps never go backwards
        except to ``LOST``/``FAILED`` handling, which the caller decides."""
        key = f"{job_id}:{task_index}"
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT data FROM tasks WHERE task_key=?", (key,)).fetchone()
            merged = {**(json.loads(row[0]) if row else {}), **data}
            db.execute(
                "INSERT INTO tasks(task_key, job_id, task_index, step, data, updated_at) VALUES(?,?,?,?,?,?) "
                "ON CONFLICT(task_key) DO UPDATE SET step=excluded.step, data=excluded.data, "
                "updated_at=excluded.updated_at",
                (key, job_id, task_index, int(step), json.dumps(merged), now),
            )
            db.execute("INSERT INTO history(task_key, step, at, note) VALUES(?,?,?,?)", (key, int(step), now, note))
        return TaskRecord(task_key=key, job_id=job_id, task_index=task_index, step=step, data=merged, updated_at=now)

    def get(self, job_id: int, task_index: int) -> TaskRecord | None:
        with self._lock:
            row = self._db.execute("SELECT job_id, task_index, step, data, updated_at FROM tasks WHERE task_key=?",
                                   (f"{job_id}:{task_index}",)).fetchone()
        return None if row is None else self._rec(row)

    def unfinished(self) -> list[TaskRecord]:
        with self._lock:
            rows = self._db.execute("SELECT job_id, task_index, step, data, updated_at FROM tasks WHERE step < ? "
                                    "ORDER BY updated_at", (int(Step.DONE),)).fetchall()
        return [self._rec(r) for r in rows]

    def all(self) -> list[TaskRecord]:
        with self._lock:
            rows = self._db.execute("SELECT job_id, task_index, step, data, updated_at FROM tasks "
                                    "ORDER BY updated_at").fetchall()
        return [self._rec(r) for r in rows]

    def pinned_before(self, when: float) -> list[TaskRecord]:
        """Finished tasks whose result (``cid``) this worker still pins, last changed before ``when``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, task_index, step, data, updated_at FROM tasks WHERE step >= ? AND updated_at < ? "
                "AND json_extract(data, '$.cid') IS NOT NULL AND json_extract(data, '$.unpinned') IS NULL",
                (int(Step.DONE), when)).fetchall()
        return [self._rec(r) for r in rows]

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
                          data=json.loads(data), updated_at=updated)
