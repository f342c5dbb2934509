"""`tasknet result get` warns once per task whose worker left output entries out, names escaped (offline)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from oracle.client._models import TaskResult
from tasknet import _cli_result


def _result(index: int, skipped: list[str]) -> TaskResult:
    return TaskResult(index=index, task_id=index, digest="0" * 64, cid="bafy", verified=True,
                      digest_source="archive", path=Path("/res") / str(index), skipped=skipped)


def test_one_warning_line_per_task_with_skipped_entries_and_no_raw_control_characters(
        monkeypatch: pytest.MonkeyPatch) -> None:
    console = Console(stderr=False, record=True, width=400, force_terminal=False)
    monkeypatch.setattr(_cli_result, "err", console)
    hostile = ["evil\x1b[2J\x07: symbolic link to '/etc/passwd', not copied", "[red]markup[/]: fifo", "c: x",
               "d: y"]
    _cli_result._print_skipped([_result(0, []), _result(1, ["leak: symbolic link to '/x', not copied"]),
                                _result(2, hostile)])
    text = console.export_text()
    lines = text.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("warning: task 1: 1 output entry left out: leak: symbolic link to '/x'")
    assert "/res/1/logs/skipped.txt" in lines[0]
    assert lines[1].startswith("warning: task 2: 4 output entries left out: evil\\x1b[2J\\x07: symbolic link")
    assert "[red]markup[/]" in lines[1] and "and 1 more" in lines[1]
    assert "\x1b" not in text and "\x07" not in text
