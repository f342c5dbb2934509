"""worker._journal: steps survive a reopen (a crash), data merges, unfinished lists what to resume."""

from __future__ import annotations

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
