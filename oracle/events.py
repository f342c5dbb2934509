"""A resumable, reorg-aware stream of decoded contract events.

The stream reads ``eth_getLogs`` in batches up to ``head - confirmations``, remembers the hash of every block
it has processed within ``keep`` blocks of the tip, and on each poll checks that the chain still agrees with
them. When it does not (a reorg), it walks back to the last block both agree on and reports a
:class:`Reorg` before re-reading from there, so a consumer undoes what it derived from the dropped blocks.
A reorg deeper than ``keep`` blocks raises :class:`ReorgTooDeep` instead of silently corrupting state.

Its whole position is :class:`StreamCursor` (pydantic): persist it with what you derived from the events,
in the same transaction, and a restart resumes without missing or repeating an event.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from eth_typing import ABIEvent
from eth_utils.abi import event_abi_to_log_topic
from hexbytes import HexBytes
from pydantic import BaseModel, Field
from web3 import Web3
from web3._utils.events import get_event_data

from ._artifacts import AbiList
from ._chain import BlockHead, block_head, latest_head, rpc_result
from .exceptions import ChainError


class ReorgTooDeep(ChainError):
    """The chain replaced blocks older than the stream keeps; derived state can no longer be trusted."""


class DecodedEvent(BaseModel):
    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int

    @property
    def key(self) -> tuple[int, int]:
        return (self.block_number, self.log_index)


class Reorg(BaseModel):
    """Blocks above ``common_ancestor`` were dropped: undo everything derived from them."""

    common_ancestor: int
    dropped: list[int]


class StreamCursor(BaseModel):
    next_block: int = Field(description="first block not yet processed")
    recent: dict[int, str] = Field(default_factory=dict, description="block number -> hash, processed, unfinal")


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | HexBytes):
        return "0x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class EventStream:
    """Decoded events of ``addresses`` (sharing the event ABIs ``abis``) from ``cursor`` onwards."""

    def __init__(self, w3: Web3, addresses: Iterable[str], abis: Iterable[AbiList],
                 cursor: StreamCursor, *, confirmations: int = 0, batch: int = 2000, keep: int = 64) -> None:
        self.w3 = w3
        self.addresses = [Web3.to_checksum_address(a) for a in addresses]
        self.cursor = cursor
        self.confirmations = confirmations
        self.batch = batch
        self.keep = max(keep, confirmations + 1)
        #: the latest block the last poll read (number, hash, parent hash, timestamp): the chain's head as it saw it
        self.tip: BlockHead | None = None
        self._events: dict[bytes, Any] = {}  # topic -> the event's ABI entry
        for abi in abis:
            for item in abi:
                if item.get("type") == "event" and not item.get("anonymous"):
                    self._events[bytes(event_abi_to_log_topic(cast(ABIEvent, item)))] = item

    def _block_hash(self, number: int) -> str | None:
        block = block_head(self.w3, number)
        return None if block is None else "0x" + block.hash.hex()

    def check_reorg(self, tip: BlockHead | None = None) -> Reorg | None:
        """Compare the remembered hashes with the chain; rewind the cursor and report if they diverge. ``tip``,
        the latest block just read (number, hash and parent hash), saves the requests it answers: the head, and
        the newest remembered block's hash when it is the tip or the tip's parent."""
        if not self.cursor.recent:
            return None
        newest = max(self.cursor.recent)
        head = self.w3.eth.block_number if tip is None else tip.number
        if newest <= head and self._hash_at(newest, tip) == self.cursor.recent[newest]:
            return None
        dropped: list[int] = []
        for number in sorted(self.cursor.recent, reverse=True):
            if number <= head and self._hash_at(number, tip) == self.cursor.recent[number]:
                ancestor = number
                break
            dropped.append(number)
        else:
            raise ReorgTooDeep(
                f"the chain replaced every block the stream remembers (back to block {min(self.cursor.recent)}): "
                f"the reorg is deeper than the finality depth of {self.keep} blocks; rebuild derived state from the "
                "deploy block, or raise the finality depth")
        for n in dropped:
            self.cursor.recent.pop(n, None)
        self.cursor.next_block = ancestor + 1
        return Reorg(common_ancestor=ancestor, dropped=sorted(dropped))

    def _hash_at(self, number: int, tip: BlockHead | None) -> str | None:
        """Block ``number``'s hash: read from ``tip`` when it is the tip or its parent, else asked of the node."""
        if tip is not None:
            if number == tip.number:
                return "0x" + tip.hash.hex()
            if number == tip.number - 1:
                return "0x" + tip.parent_hash.hex()
        return self._block_hash(number)

    def _step(self) -> tuple[Reorg | None, int, BlockHead] | None:
        """Read the tip. None when it is the very block (number and hash) the previous poll saw and everything up
        to its confirmed head was read: nothing can have changed. Otherwise check for a reorg against it and
        return the reorg (or None), the confirmed head and the tip."""
        seen, tip = self.tip, latest_head(self.w3)
        self.tip = tip
        number = tip.number
        if (seen is not None and (seen.number, seen.hash) == (number, tip.hash)
                and self.cursor.next_block > number - self.confirmations):
            return None
        reorg = self.check_reorg(tip)
        return reorg, number - self.confirmations, tip

    def _advance(self, events: list[Any], end: int, tip: BlockHead) -> None:
        """Remember the hashes of the blocks we derived something from, plus the newest one read: on a reorg the
        newest remembered block that still matches is a safe point to re-read from (blocks between it and the tip
        held no event of ours, and are re-read anyway). Forget those deeper than the finality depth."""
        for e in events:
            self.cursor.recent[e.block_number] = e.block_hash
        newest = self._hash_at(end, tip)
        if newest is not None:
            self.cursor.recent[end] = newest
        for number in [n for n in self.cursor.recent if n < end - self.keep]:
            del self.cursor.recent[number]  # deeper than the finality depth: final
        self.cursor.next_block = end + 1

    def poll(self) -> tuple[Reorg | None, list[DecodedEvent]]:
        """One step: detect a reorg, then read events up to the confirmed head (at most ``batch`` blocks).

        When the chain's tip is the very block (number and hash) seen by the previous poll, nothing can have
        changed and the step costs one request; otherwise two or three (the tip, the logs, and the newest
        remembered block's hash unless the tip holds it)."""
        step = self._step()
        if step is None:
            return None, []
        reorg, head, tip = step
        start = self.cursor.next_block
        if head < start:
            return reorg, []
        end = min(head, start + self.batch - 1)
        logs = self._logs(start, end)
        events = [e for e in (self._decode(log) for log in logs) if e is not None]
        events.sort(key=lambda e: e.key)
        self._advance(events, end, tip)
        return reorg, events

    def _logs(self, start: int, end: int) -> list[dict[str, Any]]:
        """The logs of ``start``..``end``, read as a raw ``eth_getLogs`` and given the types the decoder takes: web3's
        own result formatters cost about as much CPU as decoding the events (yappi)."""
        logs = rpc_result(self.w3, "eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(end),
                                                     "address": self.addresses}])
        return [{"address": Web3.to_checksum_address(log["address"]),
                 "topics": [bytes.fromhex(t[2:]) for t in log["topics"]], "data": bytes.fromhex(log["data"][2:]),
                 "blockNumber": int(log["blockNumber"], 16), "blockHash": bytes.fromhex(log["blockHash"][2:]),
                 "transactionHash": bytes.fromhex(log["transactionHash"][2:]),
                 "transactionIndex": int(log["transactionIndex"], 16), "logIndex": int(log["logIndex"], 16)}
                for log in logs or [] if not log.get("removed")]

    @property
    def caught_up(self) -> bool:
        """True when the last poll read up to the confirmed head it saw."""
        return self.tip is not None and self.cursor.next_block > self.tip.number - self.confirmations

    def _decode(self, log: Any) -> DecodedEvent | None:
        topics = log["topics"]
        if not topics:
            return None
        abi = self._events.get(bytes(topics[0]))
        if abi is None:
            return None
        data = get_event_data(self.w3.codec, abi, log)
        return DecodedEvent(
            name=data["event"], args=_plain(dict(data["args"])), address=data["address"],
            block_number=data["blockNumber"], block_hash="0x" + bytes(data["blockHash"]).hex(),
            tx_hash="0x" + bytes(data["transactionHash"]).hex(), log_index=data["logIndex"],
        )
