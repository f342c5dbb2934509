"""The one place structlog is configured."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(*, verbose: bool = False, json: bool | None = None) -> None:
    """JSON lines when ``json`` (or stderr is not a terminal), coloured console output otherwise."""
    if json is None:
        json = not sys.stderr.isatty()
    level = logging.DEBUG if verbose else logging.INFO
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
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
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger


if not structlog.is_configured():
    # Library use (the SDK without the CLI): keep structlog's defaults but write to stderr, so a program's
    # own output on stdout is never mixed with Tasknet's logs.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
