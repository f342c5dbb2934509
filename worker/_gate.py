"""The worker's run slots: which claimed tasks may run now, in the order they asked.

A task runs once the gate admits it and gives its share back when it ends. Two ways to count, set by the policy:

- ``policy.max_concurrent`` set: at most that many tasks run at once, whatever their size (the old rule, and the
  operator's explicit choice);
- unset (the default): a task takes its job's cores and the RAM its container may use (memory, output cap and
  ``/tmp``: worker/_sandbox.py ``Limits.ram_bytes``) of what the worker lends, and runs while both fit. A worker
  lending 8 cores runs eight 1-core tasks at once, or two 4-core ones, never more cores than it lends.

Either way a task runs when nothing else does (a task larger than what is lent is refused before its claim, see
worker/_policy.py ``decide``), and the gate is first come, first served: a large task waiting at the head is not
overtaken by smaller ones that would keep it waiting for ever.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import NamedTuple


class Size(NamedTuple):
    """What a task takes of the worker while it runs."""

    cores: int
    ram_mb: int


class RunGate:
    """Run slots for one worker's event loop (not thread-safe: acquire and release from the loop)."""

    def __init__(self, cores: int, ram_mb: int, count: int | None = None) -> None:
        self.cores, self.ram_mb, self.count = cores, ram_mb, count
        self.running = 0
        self.used = Size(0, 0)
        self._waiters: collections.deque[tuple[Size, asyncio.Future[None]]] = collections.deque()

    def _fits(self, size: Size) -> bool:
        if self.running == 0:
            return True
        if self.count is not None:
            return self.running < self.count
        return self.used.cores + size.cores <= self.cores and self.used.ram_mb + size.ram_mb <= self.ram_mb

    def would_wait(self, size: Size) -> bool:
        """Whether a task of ``size`` asking now would wait (others wait, or it does not fit beside those running)."""
        return bool(self._waiters) or not self._fits(size)

    def _take(self, size: Size) -> None:
        self.running += 1
        self.used = Size(self.used.cores + size.cores, self.used.ram_mb + size.ram_mb)

    async def acquire(self, size: Size) -> None:
        """Wait until a task of ``size`` may run, then count it as running. Cancelled while waiting, it takes
        nothing (and if it was admitted at that very moment, its share is given back)."""
        if not self.would_wait(size):
            self._take(size)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (size, fut)
        self._waiters.append(entry)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(size)  # admitted just as it was cancelled
            else:
                with contextlib.suppress(ValueError):  # _wake may have dropped it already
                    self._waiters.remove(entry)
                self._wake()  # the head may have left: those behind it may fit now
            raise

    def release(self, size: Size) -> None:
        """A task of ``size`` that ran has ended: admit the waiters that now fit, in order."""
        self.running -= 1
        self.used = Size(self.used.cores - size.cores, self.used.ram_mb - size.ram_mb)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            size, fut = self._waiters[0]
            if fut.done():  # cancelled: acquire() removes it, but do not let it block the line meanwhile
                self._waiters.popleft()
                continue
            if not self._fits(size):
                return
            self._waiters.popleft()
            self._take(size)
            fut.set_result(None)
