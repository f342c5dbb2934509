"""Projector of the admin and money events: protocol parameters, treasury, deposits and withdrawals."""

from __future__ import annotations

import json

from ._ledger import Ledger, by_event
from ._stream import LogEvent, addr


def on_ParamsUpdated(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    p = a["params"]
    if isinstance(p, list | tuple):
        keys = ["minStake", "claimGrace", "commitWindow", "revealWindow", "unstakeDelay", "callbackGas",
                "replicaStake", "feeBps", "maxReplicas", "maxSlashes", "abandonBps"]
        p = dict(zip(keys, p, strict=True))
    row = led.rows.params.get(1)
    treasury = row["treasury"] if row else None
    data = json.dumps({k: int(v) for k, v in p.items()})
    led.rows.params.create({"id": 1, "data": data, "treasury": treasury})


def on_TreasuryUpdated(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    row = led.rows.params.edit(1)
    if row is None:
        led.rows.params.create({"id": 1, "data": "{}", "treasury": addr(a["newTreasury"])})
    else:
        row["treasury"] = addr(a["newTreasury"])


def on_Deposited(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    led.pay("deposit", addr(a["account"]), int(a["amount"]))


def on_Withdrawn(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    led.pay("withdraw", addr(a["account"]), int(a["amount"]))


HANDLERS = by_event(
    on_ParamsUpdated,
    on_TreasuryUpdated,
    on_Deposited,
    on_Withdrawn,
)
