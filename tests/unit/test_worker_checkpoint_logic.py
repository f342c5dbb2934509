"""Checkpoints, offline: when the policy pauses tasks, when a paused task is given back, the folder's cap and
pause marks, and the journal's record of a pause (see worker/_checkpoint.py)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog

from worker._checkpoint import (
    Checkpoints,
    CheckpointSettings,
    _Watch,
    container_label,
    folder_bytes,
    must_give_back,
    policy_closed,
)
from worker._daemon import Worker
from worker._journal import Journal, Step
from worker._policy import HourRange, Policy
from worker._sandbox import Limits, Reason, RunResult
from worker._settings import WorkerSettings
from worker.exceptions import EnvironmentFailure, TaskPaused

AT_10 = dt.datetime(2026, 12, 4, 10, 30)


def test_the_policy_pauses_tasks_outside_its_hours_only() -> None:
    assert policy_closed(Policy(), AT_10, load=5.0) is None
    assert policy_closed(Policy(hours=[HourRange(start=9, end=17)]), AT_10, load=0.0) is None
    reason = policy_closed(Policy(hours=[HourRange(start=18, end=8)]), AT_10, load=0.0)
    assert reason is not None and "hour 10" in reason
    assert policy_closed(Policy(hours=[HourRange(start=22, end=11)]), AT_10, load=0.0) is None  # wraps midnight


def test_idle_only_pauses_for_other_work_not_for_the_tasks_own_load() -> None:
    policy = Policy(idle_only=True, max_load=0.5)
    assert policy_closed(policy, AT_10, load=0.2) is None
    busy = policy_closed(policy, AT_10, load=0.9)
    assert busy is not None and "busy" in busy
    assert policy_closed(policy, AT_10, load=0.9, own_load=0.5) is None  # the task itself makes that load
    assert policy_closed(Policy(max_load=0.5), AT_10, load=0.9) is None  # not idle-only: the load does not matter


def test_a_paused_task_is_given_back_when_the_rest_of_its_run_would_pass_its_claim() -> None:
    assert not must_give_back(0, 1_000, 600, 0, 30)  # no expiry known
    assert not must_give_back(2_000, 1_000, 600, 0, 30)  # 1000 + 600 + 30 <= 2000
    assert must_give_back(2_000, 1_500, 600, 0, 30)
    assert not must_give_back(2_000, 1_500, 600, 200, 30)  # 200 s already run: 400 left
    assert must_give_back(2_000, 1_990, 600, 600, 30)  # nothing left to run, but within the margin


def test_folder_bytes_counts_disk_blocks_and_no_sparse_holes(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 10_000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 5_000)
    with (tmp_path / "sparse").open("wb") as fh:
        fh.truncate(1 << 30)
    os.symlink("/etc", tmp_path / "link")  # not followed
    size = folder_bytes(tmp_path)
    assert 15_000 <= size < 64 * 1024


def _checkpoints(tmp_path: Path, **kw: Any) -> Checkpoints:
    return Checkpoints(CheckpointSettings(**kw), tmp_path / "checkpoints", None, "owner")


def _run(tmp_path: Path, seconds: float = 2.0) -> RunResult:
    return RunResult(reason=Reason.OK, message="the app exited with code 0", exit_code=0, run_seconds=seconds,
                     output_dir=tmp_path / "out", stdout_path=tmp_path / "stdout", stderr_path=tmp_path / "stderr")


def test_a_task_folder_is_kept_as_it_was_and_writable_by_the_apps_user(tmp_path: Path) -> None:
    cp = _checkpoints(tmp_path)
    folder = cp.prepare(7, 3)
    assert folder == tmp_path / "checkpoints" / "7-3" and folder.stat().st_mode & 0o777 == 0o777
    assert folder.parent.stat().st_mode & 0o777 == 0o700  # other users of the host cannot reach it
    (folder / "count").write_text("12")
    assert cp.prepare(7, 3) == folder and (folder / "count").read_text() == "12"
    assert _checkpoints(tmp_path, enabled=False).prepare(7, 3) is None


def test_a_pause_asked_for_raises_task_paused_before_and_after_the_run(tmp_path: Path) -> None:
    cp = _checkpoints(tmp_path)
    cp.check("7:3")  # nothing asked
    cp.pausing["7:3"] = "the worker is stopping (SIGTERM)"
    with pytest.raises(TaskPaused) as before:
        cp.check("7:3")
    assert before.value.run_seconds == 0.0
    with pytest.raises(TaskPaused) as after:
        cp.judge("7:3", cp.prepare(7, 3), _run(tmp_path, 4.5), None)
    assert after.value.reason == "the worker is stopping (SIGTERM)" and after.value.run_seconds == 4.5


def test_a_folder_over_its_cap_is_the_failure_checkpoint_too_large(tmp_path: Path) -> None:
    cp = _checkpoints(tmp_path, max_mb=1)
    folder = cp.prepare(7, 3)
    assert folder is not None
    run = _run(tmp_path)
    assert cp.judge("7:3", folder, run, None) is run  # empty: the run as it was
    (folder / "big").write_bytes(b"z" * (2 << 20))
    judged = cp.judge("7:3", folder, run, None)
    assert judged.reason is Reason.CHECKPOINT_TOO_LARGE and judged.reason.value == "checkpoint-too-large"
    assert judged.exit_code is None and not judged.killed_from_outside
    assert judged.explanation == "the app's checkpoint folder grew larger than the checkpoint cap allows"
    assert "checkpoint.max_mb" in judged.message


def test_the_watch_stops_a_task_whose_folder_grows_past_the_cap(tmp_path: Path) -> None:
    stopped: list[bool] = []
    tmp_path.joinpath("big").write_bytes(b"z" * 8192)
    watch = _Watch(tmp_path, 4096, lambda: stopped.append(True))
    watch.start()
    watch.join(timeout=10)
    assert watch.over and stopped == [True]


def test_sweep_and_drop_delete_the_folders_of_tasks_no_longer_held(tmp_path: Path) -> None:
    cp = _checkpoints(tmp_path)
    for index in range(3):
        folder = cp.prepare(5, index)
        assert folder is not None
        (folder / "sub").mkdir()
        (folder / "sub" / "f").write_text("x")
    assert cp.sweep({"5:1", "5:2"}) == 1
    assert sorted(p.name for p in cp.root.iterdir()) == ["5-1", "5-2"]
    cp.drop(5, 1)
    assert sorted(p.name for p in cp.root.iterdir()) == ["5-2"]
    assert container_label("5:2") == "5-5-2"  # as the pipeline labels the task's container


def test_the_journal_records_a_pause_at_its_step_and_clears_it_on_resume(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    journal.record(4, 0, Step.CLAIMED, expiry=2_000, job={"max_run_seconds": 60})
    journal.record(4, 0, Step.INPUTS_READY)
    paused = journal.record(4, 0, Step.INPUTS_READY, note="paused: hour 10 is outside the policy's hours",
                            paused="hour 10 is outside the policy's hours", ran_s=12.5)
    assert paused.step is Step.INPUTS_READY and not paused.finished
    (live,) = journal.unfinished()
    assert live.data["paused"] and live.data["ran_s"] == 12.5 and live.data["expiry"] == 2_000
    resumed = journal.record(4, 0, Step.INPUTS_READY, note="resumed", paused=None)
    assert resumed.data["paused"] is None and resumed.data["ran_s"] == 12.5
    assert [n for _, n in journal.history(4, 0)][-2:] == ["paused: hour 10 is outside the policy's hours", "resumed"]


class _Clock:
    """Isolates the chain's clock (``Market.chain_time``): the decision is the daemon's, the time is given."""

    def __init__(self, now: float) -> None:
        self.now = now

    def chain_time(self) -> float:
        return self.now


def _daemon(tmp_path: Path, chain_now: float) -> Any:
    """Just what ``Worker._resume_or_hold`` reads of a daemon: a real journal and settings, its own give-back; the
    chain's clock isolated by :class:`_Clock`, the policy's verdict given (``_policy_pause_reason``)."""
    s = WorkerSettings(private_key="0x" + "11" * 32, state_dir=tmp_path)
    daemon = SimpleNamespace(s=s, journal=Journal(tmp_path / "journal.db"), market=_Clock(chain_now), stopping=False,
                             _avoid={}, _advance_soon=False, log=structlog.get_logger("test"),
                             _policy_pause_reason=lambda: None)
    daemon._give_back = lambda rec, reason: Worker._give_back(daemon, rec, reason)  # type: ignore[arg-type]
    return daemon


@pytest.mark.parametrize("case", ["resume", "hold", "give-back", "stopping"])
def test_a_paused_task_resumes_waits_or_is_given_back(tmp_path: Path, case: str) -> None:
    """Resumed when nothing holds it; held while the policy is closed or the worker stops; given back when the
    rest of its run (600 - 100 s) and the margin (30 s) would pass its claim's expiry (2000)."""
    daemon = _daemon(tmp_path, chain_now=1_480.0 if case == "give-back" else 1_460.0)
    if case == "hold":
        daemon._policy_pause_reason = lambda: "hour 10 is outside the policy's hours"
    daemon.stopping = case == "stopping"
    daemon.journal.record(4, 0, Step.CLAIMED, expiry=2_000, job={"max_run_seconds": 600})
    rec = daemon.journal.record(4, 0, Step.INPUTS_READY, paused="the worker is stopping (SIGTERM)", ran_s=100.0)
    out = Worker._resume_or_hold(daemon, rec)
    after = daemon.journal.get(4, 0)
    if case == "resume":
        assert out is not None and out.data["paused"] is None and after.step is Step.INPUTS_READY
        assert out.data["run_by"] == 2_000  # the pipeline cuts its wall clock to end by then
    elif case == "give-back":
        assert out is None and after.step is Step.ABANDONING and "would expire" in after.data["reason"]
        assert daemon._advance_soon and 4 in daemon._avoid
    else:
        assert out is None and after.step is Step.INPUTS_READY and after.data["paused"]


def test_a_resumed_run_gets_no_more_wall_clock_than_its_claim_has_left(tmp_path: Path) -> None:
    """Its run then ends while the claim lasts; a timeout of that shortened clock gives the claim back (it is
    this worker's pauses, not the app's answer) instead of publishing a timeout."""
    cp = _checkpoints(tmp_path, resume_margin_s=30)
    limits = Limits(wall_seconds=600)
    assert cp.wall_clock(limits, expiry=2_000, chain_now=1_000) is limits
    assert cp.wall_clock(limits, expiry=2_000, chain_now=1_570).wall_seconds == 400
    assert cp.wall_clock(limits, expiry=2_000, chain_now=1_990).wall_seconds == 1.0
    timeout = _run(tmp_path).model_copy(update={"reason": Reason.TIMEOUT})
    with pytest.raises(EnvironmentFailure, match="claim"):
        cp.judge("7:3", None, timeout, None, cut=True)
    assert cp.judge("7:3", None, timeout, None, cut=False) is timeout  # the job's own limit: the app's answer
