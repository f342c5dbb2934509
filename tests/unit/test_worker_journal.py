"""worker._journal: steps survive a reopen (a crash), data merges, unfinished lists what to resume."""

from __future__ import annotations

import time
from pathlib import Path

from worker._journal import Journal, Step


def test_steps_and_data_survive_a_reopen(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db")
    j.record(7, 3, Step.CLAIMED, claim_block=12)
    j.record(7, 3, Step.COMMITTED, salt="0xabc", digest="0x01")
    j.record(8, 0, Step.CLAIMED)
    j.record(8, 0, Step.DONE)
    j.set_value("cursor", {"next_block": 42})
    j.close()

    j2 = Journal(tmp_path / "journal.db")
    rec = j2.get(7, 3)
    assert rec is not None and rec.step is Step.COMMITTED
    assert rec.data == {"claim_block": 12, "salt": "0xabc", "digest": "0x01"}
    assert [r.task_key for r in j2.unfinished()] == ["7:3"]
    assert j2.get_value("cursor") == {"next_block": 42}
    assert [s for s, _ in j2.history(7, 3)] == [Step.CLAIMED, Step.COMMITTED]
    assert j2.get(9, 9) is None


def test_a_task_walks_the_steps_of_a_replicated_run_and_history_keeps_each_with_its_note(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db")
    path = [Step.CLAIMED, Step.INPUTS_READY, Step.RAN, Step.PACKED, Step.UPLOADED, Step.COMMITTED, Step.REVEALED,
            Step.DONE]
    for n, step in enumerate(path):
        rec = j.record(3, 1, step, note=f"step {n}")
        assert rec.step is step and rec.finished is (step is Step.DONE)
    assert j.history(3, 1) == [(step, f"step {n}") for n, step in enumerate(path)]
    times = [t for _, t in j.step_times(3, 1)]
    assert times == sorted(times)
    assert j.unfinished() == []


def test_the_steps_of_a_pipeline_are_ordered_and_the_terminal_ones_are_finished() -> None:
    pipeline = [Step.CLAIMED, Step.INPUTS_READY, Step.RAN, Step.PACKED, Step.UPLOADED, Step.SUBMITTED,
                Step.COMMITTED, Step.REVEALED, Step.DONE]
    assert pipeline == sorted(pipeline)
    assert {s for s in Step if s >= Step.DONE} == {Step.DONE, Step.ABANDONED, Step.FAILED, Step.LOST}
    assert Step.REVEALED < Step.ABANDONING < Step.DONE  # giving a claim back waits on the chain like a reveal


def test_later_data_overrides_earlier_keys_and_keeps_the_others(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db")
    j.record(1, 0, Step.CLAIMED, attempt=1, lease=5)
    rec = j.record(1, 0, Step.RAN, attempt=2, exit_code=0)
    assert rec.data == {"attempt": 2, "lease": 5, "exit_code": 0}


def test_failed_and_lost_tasks_are_not_resumed(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db")
    j.record(1, 0, Step.CLAIMED)
    j.record(1, 1, Step.CLAIMED)
    j.record(1, 1, Step.FAILED, reason="inputs unavailable")
    j.record(1, 2, Step.UPLOADED)
    j.record(1, 2, Step.LOST, note="claim expired")
    j.record(1, 3, Step.SUBMITTED)
    assert [r.task_key for r in j.unfinished()] == ["1:0", "1:3"]
    assert {r.task_key: r.step for r in j.all()} == {"1:0": Step.CLAIMED, "1:1": Step.FAILED, "1:2": Step.LOST,
                                                   "1:3": Step.SUBMITTED}


def test_a_crash_without_close_loses_no_recorded_step(tmp_path: Path) -> None:
    """Another connection opened while the first is still open (as after a kill -9) sees every committed step."""
    crashed = Journal(tmp_path / "journal.db")
    crashed.record(5, 0, Step.COMMITTED, salt="0x" + "ab" * 32)
    crashed.set_value("cursor", {"next_block": 9})
    restarted = Journal(tmp_path / "journal.db")
    rec = restarted.get(5, 0)
    assert rec is not None and rec.step is Step.COMMITTED and rec.data["salt"] == "0x" + "ab" * 32
    assert restarted.get_value("cursor") == {"next_block": 9}
    crashed.close()
    restarted.close()


def test_resumed_work_is_listed_oldest_first(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db")
    j.record(2, 0, Step.CLAIMED)
    j.record(1, 0, Step.CLAIMED)
    j.record(2, 0, Step.RAN)  # updated last: resumed last
    assert [r.task_key for r in j.unfinished()] == ["1:0", "2:0"]


def test_values_are_replaced_and_missing_ones_read_as_none(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db")
    assert j.get_value("cursor") is None
    j.set_value("cursor", {"next_block": 1})
    j.set_value("cursor", {"next_block": 2, "recent": {"1": "0xab"}})
    assert j.get_value("cursor") == {"next_block": 2, "recent": {"1": "0xab"}}


def test_records_from_many_threads_are_all_kept(tmp_path: Path) -> None:
    import threading

    j = Journal(tmp_path / "nested" / "journal.db")  # the folder is created
    threads = [threading.Thread(target=lambda i=i: [j.record(i, k, Step.CLAIMED) for k in range(20)])
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(j.all()) == 80 and len(j.unfinished()) == 80


# -- schema 2: live tasks apart from finished ones (issue #22) ------------------------------------------------
JOB = {"job_id": 1, "reward": 10**17, "inputs_cid": "bafy" + "x" * 55}


def _live_rows(j: Journal) -> list[tuple[str, int]]:
    return [(k, s) for k, s in j._db.execute("SELECT task_key, step FROM tasks")]


def test_after_5000_finished_tasks_the_live_table_holds_only_live_tasks_and_earnings_are_exact(tmp_path: Path) -> None:
    """Regression (issue #22): 5,000 tasks walk to DONE/FAILED/LOST (some lost ones claimed again, some results
    unpinned): the live table holds exactly the unfinished ones, the finished records are compacted, and the
    earnings total is the exact sum of what each task earned, in wei beyond 2**64."""
    j = Journal(tmp_path / "journal.db")
    earned = 0
    expected_live: set[str] = set()
    for i in range(5000):
        j.record(1, i, Step.CLAIMED, job=JOB, app={"app_id": 1}, dataset=None, claim_block=i)
        j.record(1, i, Step.UPLOADED, digest="0x" + "ab" * 32, cid=f"bafy{i}")
        if i % 50 == 0:
            j.record(1, i, Step.LOST, reason="the lease is no longer ours")
            if i % 100 == 0:  # claimed again after a reorg dropped it: live again
                j.record(1, i, Step.CLAIMED, job=JOB, app={"app_id": 1})
                expected_live.add(f"1:{i}")
        elif i % 7 == 0:
            j.record(1, i, Step.FAILED, reason="gave up")
        elif i % 13 == 0:
            expected_live.add(f"1:{i}")  # still waiting on the chain
        else:
            pay = 10**20 + i  # beyond 2**64: SQLite integers would not hold a sum of these
            j.record(1, i, Step.DONE, outcome="paid", earned=pay)
            earned += pay
            if i % 3 == 0:
                j.record(1, i, Step.DONE, note="result unpinned", unpinned=True)  # counted once
    assert {k for k, _ in _live_rows(j)} == expected_live
    assert all(s < Step.DONE for _, s in _live_rows(j))
    assert {r.task_key for r in j.unfinished()} == expected_live
    summary = j.summary()
    assert summary.earned == earned and sum(int(r.data.get("earned") or 0) for r in j.all()) == earned
    assert summary.steps[Step.DONE] == sum(1 for r in j.all() if r.step is Step.DONE)
    assert summary.steps[Step.LOST] == 50 and summary.live == [r.task_key for r in j.unfinished()]
    assert sum(summary.steps.values()) == 5000
    done = j.get(1, 1)
    assert done is not None and done.step is Step.DONE and "job" not in done.data and done.data["cid"] == "bafy1"
    assert j.history(1, 1) == [(Step.CLAIMED, None), (Step.UPLOADED, None), (Step.DONE, None)]
    j.close()
    reopened = Journal(tmp_path / "journal.db")
    assert reopened.summary() == summary


def test_a_finished_task_claimed_again_is_live_with_its_new_claim(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db")
    j.record(2, 0, Step.CLAIMED, job=JOB, replica=1)
    j.record(2, 0, Step.LOST, reason="reorged away")
    assert not j.holds(2, 0) and j.unfinished() == []
    rec = j.record(2, 0, Step.CLAIMED, job=JOB, replica=2)
    assert rec.data == {"job": JOB, "replica": 2, "reason": "reorged away"}
    assert j.holds(2, 0) and [r.task_key for r in j.unfinished()] == ["2:0"]
    assert j.summary().steps[Step.LOST] == 0 and j.summary().steps[Step.CLAIMED] == 1
    assert not j.holds(2, 1)


def test_results_are_unpinned_only_for_closed_jobs_past_the_retention(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db")
    for job in (1, 2):
        j.record(job, 0, Step.CLAIMED, job=JOB)
        j.record(job, 0, Step.DONE, cid=f"bafy-{job}", earned=5)
    j.record(3, 0, Step.DONE)  # no result of ours to unpin
    later = time.time() + 10
    assert {r.job_id for r in j.pinned_before(later)} == {1, 2}
    assert j.unpin_due(later) == []  # no job closed yet
    j.job_closed([1, 3])
    assert [r.job_id for r in j.unpin_due(later)] == [1]
    assert j.unpin_due(time.time() - 10) == []  # closed too recently
    j.record(1, 0, Step.DONE, unpinned=True)
    assert j.unpin_due(later) == [] and j.summary().earned == 10


def test_old_finished_records_are_dropped_unless_still_pinned_and_totals_keep_them(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db")
    for i in range(10):
        j.record(1, i, Step.CLAIMED, job=JOB)
        j.record(1, i, Step.DONE, earned=3, **({"cid": "bafy"} if i == 0 else {}))
    j.record(1, 10, Step.CLAIMED, job=JOB)  # live: never dropped
    assert j.drop_finished(time.time() + 1, limit=4) == 4
    assert j.drop_finished(time.time() + 1) == 5  # the pinned one stays
    assert j.drop_finished(time.time() + 1) == 0
    assert [r.task_key for r in j.all()] == ["1:0", "1:10"] and j.history(1, 5) == []
    s = j.summary()
    assert (s.earned, s.steps[Step.DONE], s.finished_kept, s.dropped) == (30, 10, 1, 9)


def test_a_schema_1_journal_is_migrated_on_open_with_its_totals(tmp_path: Path) -> None:
    """A journal written before issue #22 (one table for every task) opens as schema 2: finished tasks move to
    the finished records, compacted, with their totals; live ones and the saved stream stay where they were."""
    import json
    import sqlite3

    path = tmp_path / "journal.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE tasks (task_key TEXT PRIMARY KEY, job_id INTEGER NOT NULL, task_index INTEGER NOT NULL,
            step INTEGER NOT NULL, data TEXT NOT NULL, updated_at REAL NOT NULL);
        CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, task_key TEXT NOT NULL, step INTEGER NOT NULL,
            at REAL NOT NULL, note TEXT);""")
    rows = [("4:0", 4, 0, 100, {"job": JOB, "earned": "7", "cid": "bafy0"}),
            ("4:1", 4, 1, 110, {"job": JOB, "reason": "gave up"}),
            ("4:2", 4, 2, 60, {"job": JOB, "salt": "0x01"})]
    for n, (key, job, index, step, data) in enumerate(rows):
        db.execute("INSERT INTO tasks VALUES(?,?,?,?,?,?)", (key, job, index, step, json.dumps(data), n))
        db.execute("INSERT INTO history(task_key, step, at, note) VALUES(?,?,?,?)", (key, step, n, None))
    db.execute("INSERT INTO kv VALUES('stream', ?)", (json.dumps({"cursor": {"next_block": 9}}),))
    db.commit()
    db.close()

    j = Journal(path)
    assert _live_rows(j) == [("4:2", 60)]
    # the record handed out is typed (earned read as an int); the row keeps the JSON as it was written
    assert j.get(4, 0) is not None and j.get(4, 0).data == {"earned": 7, "cid": "bafy0"}  # type: ignore[union-attr]
    with sqlite3.connect(path) as raw:
        assert json.loads(raw.execute("SELECT data FROM finished WHERE task_key='4:0'").fetchone()[0]) == {
            "earned": "7", "cid": "bafy0"}
    assert j.get(4, 2).data["job"] == JOB  # type: ignore[union-attr]
    s = j.summary()
    assert (s.earned, s.steps[Step.DONE], s.steps[Step.FAILED], s.live) == (7, 1, 1, ["4:2"])
    assert j.get_value("stream") == {"cursor": {"next_block": 9}} and j.history(4, 1) == [(Step.FAILED, None)]
    assert [r.task_key for r in j.pinned_before(10)] == ["4:0"]
    j.close()
    assert Journal(path).summary() == s  # opened again: nothing migrated twice


def test_jobs_served_per_task_after_a_dissolve_are_remembered_across_a_restart(tmp_path: Path) -> None:
    """worker._lanes.LaneRounds keeps the jobs it serves per task in the journal (a real SQLite journal; the
    pipeline around it is a namespace holding that journal: only the persistence is under test)."""
    from types import SimpleNamespace

    from worker._lanes import DISSOLVED_KEPT, LaneRounds

    path = tmp_path / "journal.db"
    journal = Journal(path)
    lanes = LaneRounds(SimpleNamespace(journal=journal))  # type: ignore[arg-type]
    assert lanes.dissolved_jobs == set()
    lanes.per_task_from_now(7)
    lanes.per_task_from_now(7)
    lanes.per_task_from_now(3)
    journal.close()
    again = LaneRounds(SimpleNamespace(journal=Journal(path)))  # type: ignore[arg-type]
    assert again.dissolved_jobs == {3, 7}
    for job in range(10, 10 + DISSOLVED_KEPT):
        again.per_task_from_now(job)
    assert len(again.dissolved_jobs) == DISSOLVED_KEPT and 3 not in again.dissolved_jobs  # the newest are kept
