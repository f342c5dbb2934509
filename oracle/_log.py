"""The one place structlog is configured.

Two kinds of programs use it:

* one-shot commands (``tasknet app build``, ``job submit`` ...) print their own human messages; their logs are
  for trouble only: warnings and errors by default, info with ``-v``, debug with ``-vv``;
* daemons (``tasknet worker run``, ``indexer run``, ``relayer run``) log what they do: info by default.

On a terminal logs are console lines for a person; otherwise (a pipe, a file, CI) or with ``--json-logs`` they
are JSON lines, one event per line, for a machine. Logs always go to stderr; a command's own output to stdout.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

import structlog

Kind = Literal["command", "daemon"]


def log_level(kind: Kind, verbosity: int) -> int:
    """The level for ``kind`` at ``-v`` repeated ``verbosity`` times."""
    base = logging.WARNING if kind == "command" else logging.INFO
    if verbosity >= 2 or (kind == "daemon" and verbosity >= 1):
        return logging.DEBUG
    return logging.INFO if verbosity == 1 else base


def configure_logging(*, verbose: bool | int = False, json: bool | None = None, kind: Kind = "daemon",
                      file: TextIO | None = None) -> None:
    """Configure structlog for a ``kind`` of program. ``json`` None means JSON lines unless the log's stream is
    a terminal; ``verbose`` is how many ``-v`` were given (True counts as debug, for compatibility). Logs go to
    ``file`` (a log file of a command that keeps its terminal for its own display) or stderr."""
    stream = file or sys.stderr
    terminal = stream.isatty()
    if json is None:
        json = not terminal
    level = logging.DEBUG if verbose is True else log_level(kind, int(verbose))
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=terminal)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger


if not structlog.is_configured():
    # Library use (the SDK without the CLI): keep structlog's defaults but write to stderr, so a program's
    # own output on stdout is never mixed with Tasknet's logs.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
