"""What worker daemons really send, read back from the chain, and the floor arithmetic of the time benchmark.

Shared by ``scripts/bench gas --daemon`` and ``scripts/bench adaptive`` (both run real ``tasknet worker run``
processes): the receipts of a job's blocks sent by its workers, their gas summed and sorted by kind (claims,
commits, reveals, submits, a ``multicall`` named by the calls inside it, reverted), and the ratio of a job's wall
time to its floor (total render CPU ÷ cores).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict  # read back by pydantic (scripts/_bench_rows.py) on Python < 3.12
from web3 import Web3
from web3.types import RPCEndpoint

#: the kind a Marketplace function's transaction is booked under (other functions are booked under their name)
KINDS = {"claim": "claims", "claimRange": "claims", "claimFreeRange": "claims", "claimSome": "claims",
         "commit": "commits", "commitRange": "commits", "reveal": "reveals", "revealRange": "reveals",
         "submit": "submits", "submitRange": "submits", "submitResults": "submits",
         "relayResults": "submits"}

#: ``decode(input) -> (function name, inner calldata list for a multicall, else [])``
Decoder = Callable[[bytes], tuple[str, list[bytes]]]


class SentTx(TypedDict):
    """What the accounting needs of a receipt (JSON-RPC quantities: hex strings, or ints) and its transaction."""

    gasUsed: str | int
    status: str | int
    input: bytes


@with_config(ConfigDict(extra="forbid"))
class KindCost(TypedDict):
    """A kind of transaction of a job: how many, their gas, and that gas per task of the job."""

    txs: int
    gas: int
    gas_per_task: int


class JobCosts(TypedDict):
    gas: int
    gas_per_task: int
    txs: int
    by_kind: dict[str, KindCost]


def block_receipts(w3: Web3, first: int, last: int, senders: Iterable[str]) -> list[SentTx]:
    """Every receipt of blocks ``first..last`` sent by one of ``senders``, with the transaction's input."""
    me = {a.lower() for a in senders}
    out: list[SentTx] = []
    for number in range(first, last + 1):
        block = w3.provider.make_request(RPCEndpoint("eth_getBlockReceipts"), [hex(number)])["result"] or []
        for r in block:
            if str(r["from"]).lower() in me:
                tx = w3.eth.get_transaction(r["transactionHash"])
                out.append({"gasUsed": r["gasUsed"], "status": r["status"], "input": bytes(tx["input"])})
    return out


def market_decoder(contract: Any) -> Decoder:
    """A decoder of Marketplace calldata (``multicall``'s inner calls decoded too)."""
    def name(data: bytes) -> tuple[str, list[bytes]]:
        try:
            fn, args = contract.decode_function_input(data)
        except ValueError:
            return "unknown", []
        return str(fn.fn_name), [bytes(c) for c in args.get("data", [])] if fn.fn_name == "multicall" else []
    return name


def _kind(data: bytes, decode: Decoder) -> str:
    fn, inner = decode(data)
    if fn != "multicall":
        return KINDS.get(fn, fn)
    names = [KINDS.get(n, n) for n, _ in map(decode, inner)]
    counts = {n: names.count(n) for n in sorted(set(names))}
    return "multicall(" + ", ".join(f"{n} x{c}" for n, c in counts.items()) + ")"


def gas_by_kind(receipts: Iterable[SentTx], decode: Decoder, tasks: int, post_gas: int = 0) -> JobCosts:
    """Gas per task of the job (``post_gas`` + every receipt) and, per kind, its transactions and gas per task.
    A receipt with status 0 is booked as ``reverted`` whatever it called."""
    kinds: dict[str, list[int]] = {}
    total = post_gas
    for r in receipts:
        used = int(r["gasUsed"], 16) if isinstance(r["gasUsed"], str) else int(r["gasUsed"])
        status = int(r["status"], 16) if isinstance(r["status"], str) else int(r["status"])
        kind = "reverted" if status == 0 else _kind(r["input"], decode)
        tally = kinds.setdefault(kind, [0, 0])
        tally[0], tally[1] = tally[0] + 1, tally[1] + used
        total += used
    by_kind: dict[str, KindCost] = {k: {"txs": v[0], "gas": v[1], "gas_per_task": round(v[1] / tasks)}
                                    for k, v in sorted(kinds.items())}
    if post_gas:
        by_kind["post"] = {"txs": 1, "gas": post_gas, "gas_per_task": round(post_gas / tasks)}
    return {"gas": total, "gas_per_task": round(total / tasks), "txs": sum(v[0] for v in kinds.values()),
            "by_kind": by_kind}


def floor_ratio(wall_s: float, cpu_s: float, cores: int, replicas: int = 1) -> dict[str, float]:
    """The floor of a job is the CPU its renders need (``cpu_s`` for one copy of every task) times ``replicas``,
    spread over ``cores``; the ratio is wall time over it. Per replica: the wall time over the floor of R copies."""
    floor = cpu_s / cores
    return {"floor_s": round(floor, 3), "ratio": round(wall_s / floor, 3) if floor else float("nan"),
            "ratio_per_replica": round(wall_s / (floor * replicas), 3) if floor else float("nan")}
