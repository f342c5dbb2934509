"""Where a transaction's gas goes, by kind of work, from the chain's own step trace (``debug_traceTransaction``).

Used by ``scripts/bench gas`` to split a scenario's gas into what a protocol change could remove and what it
could not. Every step of every call frame is charged its own cost: an ``SSTORE`` by what it did (a zero slot made
non-zero, a slot written for the first time in the transaction, a rewrite of a slot already written in it), an
``SLOAD`` cold (first touch of the slot in the transaction) or warm, a ``LOG`` with its topics and data, a call
its own overhead (the gas its callee used is charged to the callee's steps), the rest as computation. To those the
transaction's intrinsic cost (21,000 plus its calldata) is added and the storage refund taken off, so the classes
add up to the receipt's ``gasUsed`` exactly (:func:`profile` checks it).

The node must record steps: anvil started with ``--steps-tracing``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from eth_typing import HexStr
from web3 import Web3
from web3.types import RPCEndpoint

#: the classes, in the order reports list them
CLASSES = ("storage: new slots", "storage: updates", "storage: rewrites in the same transaction", "reads: cold",
           "reads: warm", "events", "calls (their own cost)", "hashing", "computation",
           "intrinsic (21,000 + calldata)", "refund")
_CALLS = frozenset({"CALL", "CALLCODE", "DELEGATECALL", "STATICCALL"})
#: an SSTORE of a zero slot to non-zero costs 20,000 (+2,100 when the slot was cold); a first write of a non-zero
#: slot 2,900 (+2,100); a slot written earlier in the transaction 100
_NEW_SLOT = 20_000
_UPDATE = 2_900


class TraceUnavailable(RuntimeError):
    """The node returned no steps: it does not record them (anvil needs ``--steps-tracing``)."""


def classify(steps: Sequence[Mapping[str, Any]]) -> Counter[str]:
    """Gas of the execution steps (a ``structLogs`` list) by class; a call step is charged its overhead only."""
    out: Counter[str] = Counter()
    n = len(steps)
    for i, step in enumerate(steps):
        op, cost = str(step["op"]), int(step["gasCost"])
        if op in _CALLS:
            depth = int(step["depth"])
            j = i + 1
            while j < n and int(steps[j]["depth"]) > depth:
                j += 1
            after = int(steps[j]["gas"]) if j < n else int(step["gas"]) - cost
            used_inside = 0
            if i + 1 < j:  # the callee ran: it was given the first inner step's gas and returned the rest
                last = steps[j - 1]
                used_inside = int(steps[i + 1]["gas"]) - (int(last["gas"]) - int(last["gasCost"]))
            out["calls (their own cost)"] += int(step["gas"]) - after - used_inside
        elif op == "SSTORE":
            out["storage: new slots" if cost >= _NEW_SLOT else
                "storage: updates" if cost >= _UPDATE else "storage: rewrites in the same transaction"] += cost
        elif op == "SLOAD":
            out["reads: cold" if cost >= 2_100 else "reads: warm"] += cost
        elif op.startswith("LOG"):
            out["events"] += cost
        elif op == "KECCAK256":
            out["hashing"] += cost
        else:
            out["computation"] += cost
    return out


def intrinsic(data: bytes) -> int:
    """21,000 plus the calldata's cost (4 per zero byte, 16 per other byte); no access list, no contract creation."""
    zeros = data.count(0)
    return 21_000 + 4 * zeros + 16 * (len(data) - zeros)


def profile(w3: Web3, tx_hash: bytes | str) -> Counter[str]:
    """One mined transaction's gas by class (:data:`CLASSES`); they add up to its ``gasUsed``."""
    h = HexStr(tx_hash if isinstance(tx_hash, str) else "0x" + tx_hash.hex().removeprefix("0x"))
    trace = w3.provider.make_request(RPCEndpoint("debug_traceTransaction"),
                                     [h, {"disableMemory": True, "disableStorage": True}])["result"]
    steps = trace.get("structLogs") or []
    if not steps:
        raise TraceUnavailable(f"the node recorded no steps for {h}: start anvil with --steps-tracing")
    out = classify(steps)
    used = int(w3.eth.get_transaction_receipt(h)["gasUsed"])
    out["intrinsic (21,000 + calldata)"] = intrinsic(bytes(w3.eth.get_transaction(h)["input"]))
    out["refund"] = used - sum(out.values())  # the storage refund, at most a fifth of the gas used: <= 0
    if out["refund"] > 0 or -out["refund"] > used // 5:
        raise ValueError(f"{h}: the classes add up to {sum(out.values()) - out['refund']} for {used} gas used; "
                         "the trace is not what this profile expects")
    return out


def total(w3: Web3, tx_hashes: Iterable[bytes | str]) -> Counter[str]:
    """The sum of :func:`profile` over several transactions."""
    out: Counter[str] = Counter()
    for h in tx_hashes:
        out.update(profile(w3, h))
    return out
