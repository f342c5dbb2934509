"""oracle.status: how the requester reads a result's ``logs/status.txt`` (and ``logs/skipped.txt``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oracle.status import ResultStatus, parse_status, read_status


def test_a_successful_run_reads_as_ok() -> None:
    status = parse_status("reason: ok\nexit_code: 0\n")
    assert status.ok and status == ResultStatus(reason="ok", exit_code=0)


def test_a_failed_run_keeps_its_reason_exit_code_and_error_sentence() -> None:
    status = parse_status("reason: nonzero-exit\nexit_code: 127\nerror: /app/run: not found: check the image\n")
    assert not status.ok
    assert (status.reason, status.exit_code, status.error) == ("nonzero-exit", 127,
                                                               "/app/run: not found: check the image")


@pytest.mark.parametrize(("text", "reason", "code"), [
    ("", "unknown", None),
    ("exit_code: 1\n", "unknown", 1),
    ("reason:\n", "unknown", None),
    ("reason: killed\nexit_code: -9\n", "killed", -9),
    ("reason: timeout\nexit_code: n/a\n", "timeout", None),
    ("reason: oom\nreason: ok\n", "oom", None),          # the first value of a key counts
    ("garbage line\n  reason  :  ok  \nextra: 1\n", "ok", None),  # unknown keys and lines are ignored
])
def test_parse_status_tolerates_missing_repeated_and_unknown_lines(text: str, reason: str, code: int | None) -> None:
    status = parse_status(text)
    assert (status.reason, status.exit_code) == (reason, code)


def test_an_empty_error_reads_as_none() -> None:
    assert parse_status("reason: ok\nerror:\n").error is None


def test_read_status_reads_the_status_and_the_skipped_entries(tmp_path: Path) -> None:
    (tmp_path / "status.txt").write_text("reason: output-unsafe\nerror: a link was left out\n")
    (tmp_path / "skipped.txt").write_text("out/link\n\n  \nout/dev\n")
    status = read_status(tmp_path)
    assert status.reason == "output-unsafe" and status.skipped == ["out/link", "out/dev"]


def test_a_result_without_status_file_counts_as_failed(tmp_path: Path) -> None:
    status = read_status(tmp_path)
    assert not status.ok and status.reason == "no-status" and "no logs/status.txt" in (status.error or "")


def test_a_symlinked_status_or_skipped_file_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("reason: ok\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "status.txt").symlink_to(outside)
    assert read_status(logs).reason == "no-status"
    (logs / "status.txt").unlink()
    (logs / "status.txt").write_text("reason: ok\n")
    (logs / "skipped.txt").symlink_to(outside)
    assert read_status(logs).skipped == []
