"""Exceptions raised by the relayer.

Hierarchy (``TasknetError`` is :class:`oracle.exceptions.TasknetError`)::

    TasknetError
    └── RelayerError       base of every error the relayer raises on purpose
        └── RelayRejected  a message would revert on chain (``error_name`` says why): it was not queued

Every message says what happened, the value involved, and what to do about it.
"""

from __future__ import annotations

from oracle.exceptions import TasknetError

__all__ = ["RelayRejected", "RelayerError"]


class RelayerError(TasknetError):
    """Base class of the relayer's errors."""


class RelayRejected(RelayerError):
    """The message would revert on chain (``error_name`` says why); it was not queued."""

    def __init__(self, message: str, error_name: str | None) -> None:
        super().__init__(message)
        self.error_name = error_name
