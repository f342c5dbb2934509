"""``logs/status.txt``: how a task's run ended, as the worker records it inside the result archive.

It is part of the archive, hence of the digest, so two honest replicas of the same app and arguments must write
the same bytes: only facts every replica shares (the reason, the exit code, a fixed sentence), never a time, a
host path or a worker's name. The format is ``key: value`` lines::

    reason: nonzero-exit
    exit_code: 127
    error: <one sentence, when the worker has one>

``reason`` is ``ok`` for a success; anything else is a failed run (``nonzero-exit``, ``timeout``, ``oom``,
``output-unsafe`` ...): see :data:`OUTPUT_REASONS` and contracts/PROTOCOL.md ("Result archives"). Entries the worker
left out of the output (links, sockets...) are listed one per line in ``logs/skipped.txt`` when there are any,
names escaped (:func:`oracle.archive.escape_name`), in byte order of the names.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

STATUS_FILE = "status.txt"
SKIPPED_FILE = "skipped.txt"

#: an output entry's name is not portable (a backslash, a control character, bytes that are not UTF-8)
OUTPUT_UNSAFE = "output-unsafe"
#: an output entry is nested deeper than :data:`oracle.archive.MAX_DEPTH` levels or its path is longer than
#: :data:`oracle.archive.MAX_PATH_BYTES` bytes
OUTPUT_TOO_DEEP = "output-too-deep"
#: the output's bytes (or the pages its files take) exceed the output cap
OUTPUT_TOO_LARGE = "output-too-large"
#: the output holds more entries than the output cap allows
OUTPUT_TOO_MANY_FILES = "output-too-many-files"
#: the app exited 0 without writing its declared deterministic file
MISSING_DETERMINISTIC_FILE = "missing-deterministic-file"
#: the reasons that refuse an output as a whole, strongest first: when several apply, the first is reported (an
#: order that does not depend on the order in which the entries were read, so every replica reports the same)
OUTPUT_REASONS = (OUTPUT_TOO_LARGE, OUTPUT_TOO_MANY_FILES, OUTPUT_TOO_DEEP, OUTPUT_UNSAFE)


class ResultStatus(BaseModel):
    """What ``logs/status.txt`` (and ``logs/skipped.txt``) of a result say."""

    reason: str = "ok"
    exit_code: int | None = None
    error: str | None = None
    skipped: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


def format_status(reason: str, exit_code: int | None, error: str | None = None) -> str:
    """The ``status.txt`` of a run: ``reason`` and ``exit_code`` lines, and for a failure the ``error`` sentence
    (kept on one line: a line break in it is written as ``\\n``)."""
    text = f"reason: {reason}\nexit_code: {'' if exit_code is None else exit_code}\n"
    if error:
        text += "error: " + error.replace("\r", "\\r").replace("\n", "\\n") + "\n"
    return text


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
