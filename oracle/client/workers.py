"""``client.workers``: the workers' records on the marketplace (what ``tasknet worker status`` and ``tasknet job
explain`` read): standing, reputation, stake, what each offers.

::

    w = c.workers.get("0x…")
    print(w.registered, w.reputation, w.stake)
    online = [w for w in c.workers.list() if w.registered and not w.banned]
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from ..market import WorkerRecord
from ._models import WorkerInfo
from ._reads import checksum

if TYPE_CHECKING:
    from ._client import Client


def registered_addresses(c: Client) -> builtins.list[str]:
    """Every account that ever registered as a worker, by address."""
    logs = c._events.events.WorkerRegistered().get_logs(from_block=c.deploy_block)
    return sorted({str(e["args"]["worker"]) for e in logs})


def worker_info(address: str, record: WorkerRecord) -> WorkerInfo:
    """Worker ``address``'s ``getWorker`` record as a :class:`WorkerInfo`."""
    return WorkerInfo(address=address, registered=record.registered, banned=record.banned, stake=record.stake,
                      locked=record.locked, reputation=record.reputation, slashes=record.slashes,
                      unstaking=record.unstaking, unstake_at=record.unstake_at, cores=record.cores,
                      memory_mb=record.memory_mb, gpus=record.gpus, arch_mask=record.arch_mask,
                      verified=record.verified)


class Workers:
    """Read-only: the workers' records, as the chain holds them."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def get(self, address: str) -> WorkerInfo:
        """The record of worker ``address`` (all zero, ``registered=False``, for an account that never
        registered). Raises :class:`ClientError` for a string that is not an address."""
        who = checksum(address)
        return worker_info(who, self._c.market.worker_record(who))

    def list(self) -> builtins.list[WorkerInfo]:
        """Every account that registered as a worker (banned and unregistered ones included: see their flags),
        by address."""
        return [worker_info(a, self._c.market.worker_record(a)) for a in registered_addresses(self._c)]
