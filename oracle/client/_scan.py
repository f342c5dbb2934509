"""One pass over a job's logs, decoded only for that job: what the requester's commands read instead of replaying
every event of the marketplace through web3's formatters.

``eth_getLogs`` is asked for the event types wanted only (``topics[0]``), in ranges of blocks from the job's
posting on, through the provider's raw ``make_request`` (no per-log formatting); a log is attributed to its job
from its first indexed argument (``jobId``, or ``taskId``/``startTaskId`` whose top bits are the job id) before its
data is decoded. The cost is a few microseconds per log of the range, and a few tens per log of the job.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict, cast

from eth_abi.abi import decode as abi_decode
from eth_typing import ABIComponent, ABIEvent
from eth_utils.abi import event_abi_to_log_topic
from web3 import Web3

from .._artifacts import abi
from ..exceptions import RpcUnavailable
from ..protocol import TASK_INDEX_BITS

#: events whose first indexed argument is the job id (the others': a task id, or a lease's first task id)
BY_JOB = {"JobPosted", "TasksCancelled", "JobClosed"}


@dataclass(frozen=True)
class _EventAbi:
    name: str
    topic: str
    indexed: list[tuple[str, str]]      # (name, type) of the indexed arguments, in order
    data: list[tuple[str, str]]         # (name, type) of the others


class RawLog(TypedDict):
    """A log as ``eth_getLogs`` answers it over JSON-RPC, unformatted: numbers and bytes are 0x-hex strings (what
    web3's :class:`~web3.types.LogReceipt` holds after its formatters)."""

    address: str
    topics: list[str]
    data: str
    blockNumber: str
    blockHash: str
    logIndex: str
    transactionHash: str
    transactionIndex: str
    removed: NotRequired[bool]


def _canonical(inp: ABIComponent) -> str:
    t = inp["type"]
    if t.startswith("tuple"):
        inner = ",".join(_canonical(c) for c in inp["components"])
        return f"({inner}){t[len('tuple'):]}"
    return t


def _events() -> dict[str, _EventAbi]:
    out: dict[str, _EventAbi] = {}
    for item in [*abi("IMarketplace"), *abi("IMarketplaceExtension")]:
        if item.get("type") != "event" or item.get("anonymous"):
            continue
        event = cast(ABIEvent, item)
        topic = "0x" + bytes(event_abi_to_log_topic(event)).hex()
        inputs = event.get("inputs", [])
        out[event["name"]] = _EventAbi(
            name=event["name"], topic=topic,
            indexed=[(i["name"], _canonical(i)) for i in inputs if i.get("indexed")],
            data=[(i["name"], _canonical(i)) for i in inputs if not i.get("indexed")])
    return out


EVENTS = _events()
_BY_TOPIC = {e.topic: e for e in EVENTS.values()}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _indexed(kind: str, topic: str) -> Any:
    raw = bytes.fromhex(topic[2:])
    if kind == "address":
        return Web3.to_checksum_address(raw[12:])
    if kind.startswith(("uint", "int")):
        return int.from_bytes(raw, "big", signed=kind.startswith("int"))
    if kind == "bool":
        return raw[-1] == 1
    return "0x" + raw.hex()  # bytes32, or the hash of a dynamic value


@dataclass
class RawEvent:
    """A decoded log: its event name, arguments (bytes as 0x-hex), block, log index, transaction."""

    name: str
    args: dict[str, Any]
    block_number: int
    log_index: int
    tx_hash: str

    @property
    def key(self) -> tuple[int, int]:
        return self.block_number, self.log_index


def job_of(name: str, first_topic: str) -> int:
    """The job a log is about, from its first indexed argument."""
    value = int(first_topic, 16)
    return value if name in BY_JOB else value >> TASK_INDEX_BITS


def decode(log: RawLog) -> RawEvent | None:
    """A raw ``eth_getLogs`` entry (hex strings) decoded, or None for an event not in the marketplace's ABI."""
    topics = log["topics"]
    ev = _BY_TOPIC.get(topics[0]) if topics else None
    if ev is None:
        return None
    args: dict[str, Any] = {name: _indexed(kind, t) for (name, kind), t in zip(ev.indexed, topics[1:], strict=False)}
    if ev.data:
        values = abi_decode([k for _, k in ev.data], bytes.fromhex(log["data"][2:]))
        args.update({name: _plain(v) for (name, _), v in zip(ev.data, values, strict=True)})
    return RawEvent(name=ev.name, args=args, block_number=int(log["blockNumber"], 16),
                    log_index=int(log["logIndex"], 16), tx_hash=log["transactionHash"])


def raw_logs(w3: Web3, address: str, names: Iterable[str], from_block: int, to_block: int, *,
             topic1: list[str] | str | None = None, batch: int = 50_000) -> Iterator[RawLog]:
    """The raw logs of ``names`` events at ``address`` in ``[from_block, to_block]``, oldest first, asked for
    ``batch`` blocks at a time (halved when the node refuses a range as too large)."""
    topics: list[Any] = [[EVENTS[n].topic for n in names if n in EVENTS]]
    if topic1 is not None:
        topics.append(topic1)
    start = from_block
    while start <= to_block:
        end = min(to_block, start + batch - 1)
        answer = w3.provider.make_request(
            "eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(end), "address": address,  # type: ignore[arg-type]
                             "topics": topics}])
        if "error" in answer:
            message = str(answer["error"].get("message", answer["error"]))
            if batch > 100 and any(w in message.lower() for w in ("range", "too many", "limit", "exceed")):
                batch //= 4
                continue
            raise RpcUnavailable(f"eth_getLogs {start}..{end} failed: {message}")
        yield from cast(list[RawLog], answer["result"])
        start = end + 1


def job_events(w3: Web3, address: str, job_id: int, names: Iterable[str], from_block: int, to_block: int, *,
               batch: int = 50_000) -> list[RawEvent]:
    """The ``names`` events of job ``job_id`` in the block range, decoded, in chain order."""
    out: list[RawEvent] = []
    for log in raw_logs(w3, address, names, from_block, to_block, batch=batch):
        topics = log["topics"]
        if len(topics) < 2 or log.get("removed"):
            continue
        ev = _BY_TOPIC.get(topics[0])
        if ev is None or job_of(ev.name, topics[1]) != job_id:
            continue
        decoded = decode(log)
        if decoded is not None:
            out.append(decoded)
    return out


@dataclass
class JobResults:
    """What one scan of a job's results says: the final digest and the CIDs holding it per finished task, the
    workers behind each, and the tasks that failed on chain."""

    digests: dict[int, str] = field(default_factory=dict)
    cids: dict[int, list[str]] = field(default_factory=dict)
    workers: dict[int, list[str]] = field(default_factory=dict)
    failed: set[int] = field(default_factory=set)

    @classmethod
    def from_events(cls, events: list[RawEvent]) -> JobResults:
        r = cls()
        reveals: dict[int, list[tuple[str, str, str]]] = {}
        mask = (1 << TASK_INDEX_BITS) - 1
        for ev in events:
            a = ev.args
            index = int(a["taskId"]) & mask
            if ev.name == "ResultSubmitted":
                r.digests[index] = str(a["resultDigest"])
                r.cids[index] = [str(a["resultCID"])]
                r.workers[index] = [str(a["worker"])]
            elif ev.name in ("ResultRevealed", "FailureReported"):
                # (R = 1) a failure reported is pending like a reveal: FailureConfirmed settles it with its digest
                reveals.setdefault(index, []).append((str(a["resultDigest"]), str(a["resultCID"]), str(a["worker"])))
            elif ev.name in ("TaskFinalized", "FailureConfirmed"):
                digest = str(a["resultDigest"])
                r.digests[index] = digest
                agreed = [(cid, w) for d, cid, w in reveals.get(index, []) if d == digest]
                r.cids[index] = list(dict.fromkeys(cid for cid, _ in agreed))
                r.workers[index] = [w for _, w in agreed]
            elif ev.name == "TaskFailed":  # (a task released when its job closed was refunded, not failed)
                r.failed.add(index)
        return r


RESULT_EVENTS = ("ResultSubmitted", "ResultRevealed", "TaskFinalized", "TaskFailed", "FailureReported",
                 "FailureConfirmed")
