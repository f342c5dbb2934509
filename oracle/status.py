"""``logs/status.txt``: how a task's run ended, as the worker records it inside the result archive.

It is part of the archive, hence of the digest, so two honest replicas of the same app and arguments must write
the same bytes: only facts every replica shares (the reason, the exit code, a fixed sentence), never a time, a
host path or a worker's name. The format is ``key: value`` lines::

    reason: nonzero-exit
    exit_code: 127
    error: <one sentence, when the worker has one>

``reason`` is ``ok`` for a success; anything else is a failed run (``nonzero-exit``, ``timeout``, ``oom``,
``output-unsafe`` ...). Entries the worker left out of the output are listed one per line in
``logs/skipped.txt`` when there are any.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

STATUS_FILE = "status.txt"
SKIPPED_FILE = "skipped.txt"


class ResultStatus(BaseModel):
    """What ``logs/status.txt`` (and ``logs/skipped.txt``) of a result say."""

    reason: str = "ok"
    exit_code: int | None = None
    error: str | None = None
    skipped: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


def parse_status(text: str) -> ResultStatus:
    """Read a ``status.txt``; unknown keys are ignored, a missing reason counts as ``unknown``."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    code = fields.get("exit_code", "")
    return ResultStatus(reason=fields.get("reason") or "unknown",
                        exit_code=int(code) if code.lstrip("-").isdigit() else None,
                        error=fields.get("error") or None)


def read_status(logs_dir: Path) -> ResultStatus:
    """The status of an unpacked result's ``logs/`` folder. A result without a status file (an archive made by
    something other than the worker) counts as failed with reason ``no-status``."""
    status_path = logs_dir / STATUS_FILE
    if not status_path.is_file() or status_path.is_symlink():
        return ResultStatus(reason="no-status", error="the result has no logs/status.txt")
    status = parse_status(status_path.read_text(errors="replace"))
    skipped_path = logs_dir / SKIPPED_FILE
    if skipped_path.is_file() and not skipped_path.is_symlink():
        status.skipped = [line for line in skipped_path.read_text(errors="replace").splitlines() if line.strip()]
    return status
