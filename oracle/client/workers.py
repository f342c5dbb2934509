"""``client.workers``: the workers' records on the marketplace (what ``tasknet worker status`` and ``tasknet job
explain`` read): standing, reputation, stake, what each offers.

::

    w = c.workers.get("0x…")
    print(w.registered, w.reputation, w.stake)
    online = [w for w in c.workers.list() if w.registered and not w.banned]
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from ._models import WorkerInfo
from ._reads import checksum

if TYPE_CHECKING:
    from ._client import Client


def registered(c: Client) -> builtins.list[dict[str, Any]]:
    """The ``getWorker`` struct (plus ``address``) of every account that ever registered as a worker."""
    logs = c._events.events.WorkerRegistered().get_logs(from_block=c.deploy_block)
    addrs = sorted({str(e["args"]["worker"]) for e in logs})
    return [{"address": a, **c.market.worker(a)} for a in addrs]


def worker_info(raw: dict[str, Any]) -> WorkerInfo:
    """A ``getWorker`` struct with an ``address`` key as a :class:`WorkerInfo`."""
    flags = int(raw["flags"])
    return WorkerInfo(address=str(raw["address"]), registered=bool(flags & 1), banned=bool(flags & 2),
                      stake=int(raw["stake"]), locked=int(raw["locked"]), reputation=int(raw["reputation"]),
                      slashes=int(raw["slashes"]), unstaking=int(raw.get("unstaking", 0)),
                      unstake_at=int(raw.get("unstakeAt", 0)), cores=int(raw.get("cores", 0)),
                      memory_mb=int(raw.get("memoryMB", 0)), gpus=int(raw.get("gpus", 0)),
                      arch_mask=int(raw.get("archMask", 0)), verified=int(raw.get("verified", 0)))


class Workers:
    """Read-only: the workers' records, as the chain holds them."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def get(self, address: str) -> WorkerInfo:
        """The record of worker ``address`` (all zero, ``registered=False``, for an account that never
        registered). Raises :class:`ClientError` for a string that is not an address."""
        who = checksum(address)
        return worker_info({"address": who, **self._c.market.worker(who)})

    def list(self) -> builtins.list[WorkerInfo]:
        """Every account that registered as a worker (banned and unregistered ones included: see their flags),
        by address."""
        return [worker_info(w) for w in registered(self._c)]
