"""The mirror: marketplace events -> SQL rows, batched, confirmation-aware, reorg-safe and crash-safe.

One :meth:`Indexer.step` is one database transaction: it polls :class:`oracle.events.EventStream` (batched
``eth_getLogs`` up to ``head - confirmations``), reads the blocks and receipts of the blocks that held events
(one JSON-RPC batch), rolls back the rows of dropped blocks if the stream saw a reorg, derives the entity
versions, and saves the stream's cursor, all in the same transaction. A crash anywhere loses the whole step
and nothing else: the next start resumes from the saved cursor, so no row is lost or written twice.

Entities are versioned (see :mod:`indexer._db`): the row store (:mod:`indexer._rows`) keeps the current version
of the rows the projectors touched in memory (loaded on first use: tasks and replicas a whole job at a time)
and, per block, writes one new version of each row that changed in it, plus one of each aggregate (``counters``,
``series``) that moved. Each decoded event goes to the handler of its family's projector (``_proj_*``), which
edits rows through the shared :class:`indexer._ledger.Ledger`.

Where the time goes, for a batch of ~100,000 events: logs are decoded by slicing the hex data (no eth_abi for
the simple types, no pydantic per event); handlers only touch in-memory rows (no per-event SELECT); the rows
reach the database in one driver-level bulk insert per table (``executemany`` on SQLite, ``COPY`` on
PostgreSQL), inside the step's single transaction.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, update
from web3 import Web3

from oracle import get_logger
from oracle.events import ReorgTooDeep, StreamCursor
from oracle.market import Market

from . import (
    _db,
    _proj_jobs,
    _proj_lanes,
    _proj_params,
    _proj_registry,
    _proj_replicas,
    _proj_tasks,
    _proj_workers,
)
from ._ledger import Handler, Ledger
from ._rows import Rows
from ._stream import FastEventStream, LogEvent, tasks_of
from .exceptions import BlockRace, IndexerHalted

__all__ = ["BlockInfo", "FastEventStream", "Indexer", "LogEvent", "StepResult", "tasks_of"]

log = get_logger("indexer.ingest")

# every event the mirror projects, by name -> its projector's handler (the rest are only recorded in ``events``)
HANDLERS: dict[str, Handler] = {
    **_proj_registry.HANDLERS, **_proj_params.HANDLERS, **_proj_workers.HANDLERS, **_proj_jobs.HANDLERS,
    **_proj_tasks.HANDLERS, **_proj_replicas.HANDLERS, **_proj_lanes.HANDLERS}

#: lane events that name only their chunk's first task (their transaction's gas is shared by the whole chunk)
_CHUNK_EVENTS = frozenset({"LaneCommitted", "LaneRevealed", "LaneExpired", "LaneReleased"})


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the mirror keeps of a transaction's receipt (the ``txs`` row, with its hash, block and tasks)."""

    tx_index: int
    sender: str
    to: str | None
    gas_used: int
    gas_price: int


@dataclass
class BlockInfo:
    number: int
    hash: str
    timestamp: int
    receipts: dict[str, Receipt] = field(default_factory=dict)  # tx hash -> its receipt


@dataclass
class StepResult:
    events: int
    reorg: int | None  # the common ancestor when a reorg was rolled back
    next_block: int
    head: int

    @property
    def caught_up(self) -> bool:
        return self.next_block > self.head


_args_json = json.JSONEncoder(default=str).encode  # json.dumps(args, default=str) without an encoder per call


class Indexer:
    """Mirrors the marketplace at ``marketplace`` (and its registry) into the database behind ``engine``.

    ``confirmations`` holds back the newest blocks; ``finality`` is how many blocks of hashes the stream keeps
    to detect reorgs (a deeper one raises :class:`IndexerHalted`). ``on_batch_written`` is called inside the
    transaction after the rows are written and before it commits (a fault-injection point for tests).
    """

    def __init__(self, engine: Engine, w3: Web3, marketplace: str, *, from_block: int = 0,
                 confirmations: int = 0, batch_blocks: int = 2000, finality: int = 64,
                 on_batch_written: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.w3 = w3
        self.market = Market(w3, marketplace)
        self.confirmations = confirmations
        self.from_block = from_block
        self.on_batch_written = on_batch_written
        self.meta = _db.init_db(engine, chain_id=self.market.chain_id, marketplace=self.market.address)
        self._proj = Rows()
        self._ledger = Ledger(self._proj)
        self.stream = FastEventStream(w3, self.market.addresses, self.market.event_abis, self._load_cursor(),
                                  confirmations=confirmations, batch=batch_blocks, keep=finality)
        self.events_total = 0
        self.last_step_seconds = 0.0
        self.log = log.bind(marketplace=self.market.address, chain_id=self.market.chain_id)

    # -- cursor -----------------------------------------------------------------------------------
    def _load_cursor(self) -> StreamCursor:
        with self.engine.connect() as conn:
            saved = _db.load_cursor(conn)
        if saved is None:
            return StreamCursor(next_block=self.from_block)
        return StreamCursor(next_block=saved["next_block"], recent=saved["recent"])

    def _reset(self) -> None:
        self._proj.reset()
        self.stream.cursor = self._load_cursor()

    # -- the loop ---------------------------------------------------------------------------------
    def step(self) -> StepResult:
        """One poll in one transaction: reorg rollback, new events, cursor.

        The cyclic garbage collector is paused for the step: a batch allocates hundreds of thousands of row
        dicts that all live until the commit, and the collector would rescan them over and over (a quarter
        of the step's CPU time). Reference counting still frees everything acyclic at once; cycles, if any,
        wait for the collector, which resumes when the step returns or raises.
        """
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._step()
        finally:
            if was_enabled:
                gc.enable()

    def _step(self) -> StepResult:
        t0 = time.perf_counter()
        try:
            reorg, evs = self.stream.poll()
        except ReorgTooDeep as exc:
            self._reset()
            raise IndexerHalted(f"{exc}. The indexer stopped without touching the database") from exc
        try:
            infos = self._fetch_blocks(evs)
            head_block = self.stream.tip  # the head the poll just read (one request less per step)
            assert head_block is not None  # every poll reads the tip first
            head, head_ts = head_block.number, head_block.timestamp
            with self.engine.begin() as conn:
                undone = 0
                if reorg is not None:
                    undone = self._rollback(conn, reorg.common_ancestor)
                    self.log.warning("reorg_rolled_back", common_ancestor=reorg.common_ancestor,
                                     dropped=reorg.dropped, events_undone=undone)
                self._apply(conn, evs, infos)
                _db.save_cursor(conn, next_block=self.stream.cursor.next_block, recent=self.stream.cursor.recent,
                                chain_head=head, head_timestamp=head_ts, events_added=len(evs) - undone)
                if self.on_batch_written is not None:
                    self.on_batch_written()
            self._proj.committed()
            if self._proj.size() > 300_000:
                self._proj.reset()  # bound memory: rows are reloaded from the database on demand
        except BaseException:
            self._reset()
            raise
        self.events_total += len(evs)
        self.last_step_seconds = time.perf_counter() - t0
        return StepResult(events=len(evs), reorg=None if reorg is None else reorg.common_ancestor,
                          next_block=self.stream.cursor.next_block, head=head - self.confirmations)

    def sync(self, *, max_steps: int = 1_000_000) -> int:
        """Step until caught up with ``head - confirmations``; return the number of events applied."""
        total = 0
        for _ in range(max_steps):
            result = self.step()
            total += result.events
            if result.caught_up:
                break
        return total

    def run(self, should_stop: Callable[[], bool], *, idle_sleep: float = 0.5,
            on_step: Callable[[StepResult], None] | None = None) -> None:
        """Follow the chain until ``should_stop()``; retry transport errors and block races with a bounded
        back-off; stop loudly on a reorg deeper than the finality depth."""
        failures = 0
        while not should_stop():
            try:
                result = self.step()
                failures = 0
            except IndexerHalted:
                raise
            except BlockRace as exc:
                self.log.info("block_race_retry", detail=str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - transport errors: the node or the database blinked
                failures += 1
                delay = min(0.2 * 2 ** failures, 10.0)
                self.log.warning("step_failed_retrying", error=f"{type(exc).__name__}: {exc}", in_s=delay)
                time.sleep(delay)
                continue
            if on_step is not None:
                on_step(result)
            if result.events:
                self.log.info("ingested", events=result.events, next_block=result.next_block, head=result.head)
            if result.caught_up:
                time.sleep(idle_sleep)

    # -- blocks and receipts ----------------------------------------------------------------------
    def _rpc_batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        if not calls:
            return []
        out: list[Any] = []
        for chunk in _db.chunks(calls, 200):
            responses = self.w3.provider.make_batch_request(chunk)  # type: ignore[attr-defined]
            if not isinstance(responses, list):
                raise BlockRace(f"the node refused a batch request: {responses}")
            out += [r.get("result") if "error" not in r else r for r in responses]
        return out

    def _fetch_blocks(self, evs: list[LogEvent]) -> dict[int, BlockInfo]:
        wanted: dict[int, str] = {}
        tx_hashes: dict[int, set[str]] = {}
        for ev in evs:
            wanted[ev.block_number] = ev.block_hash
            tx_hashes.setdefault(ev.block_number, set()).add(ev.tx_hash)
        numbers = sorted(wanted)
        calls: list[tuple[str, list[Any]]] = []
        for n in numbers:
            calls += [("eth_getBlockByNumber", [hex(n), False]), ("eth_getBlockReceipts", [hex(n)])]
        results = self._rpc_batch(calls)
        infos: dict[int, BlockInfo] = {}
        missing: list[str] = []
        for i, n in enumerate(numbers):
            block, receipts = results[2 * i], results[2 * i + 1]
            if not isinstance(block, dict) or "hash" not in block or block["hash"].lower() != wanted[n].lower():
                raise BlockRace(f"block {n} changed between reading its logs and reading it (expected "
                                f"{wanted[n]}); a reorg is in progress, the step is retried")
            info = BlockInfo(number=n, hash=wanted[n].lower(), timestamp=int(block["timestamp"], 16))
            if isinstance(receipts, list):
                for r in receipts:
                    if r["transactionHash"].lower() in tx_hashes[n]:
                        info.receipts[r["transactionHash"].lower()] = _receipt(r)
            missing += [h for h in tx_hashes[n] if h not in info.receipts]
            infos[n] = info
        if missing:  # a node without eth_getBlockReceipts: one call per transaction
            for h, r in zip(missing, self._rpc_batch([("eth_getTransactionReceipt", [h]) for h in missing]),
                            strict=True):
                if not isinstance(r, dict) or "blockHash" not in r:
                    raise BlockRace(f"no receipt for transaction {h}; a reorg is in progress, the step is retried")
                infos[int(r["blockNumber"], 16)].receipts[h] = _receipt(r)
        return infos

    # -- reorgs -----------------------------------------------------------------------------------
    def _rollback(self, conn: Connection, ancestor: int) -> int:
        """Delete every row derived from blocks above ``ancestor``; make the newest surviving versions current
        (the aggregates included). Return the number of events deleted."""
        for table in _db.VERSIONED:
            keycol = table.c[table.info["key"]]
            affected = [r[0] for r in conn.execute(select(keycol).where(table.c.block_number > ancestor).distinct())]
            conn.execute(delete(table).where(table.c.block_number > ancestor))
            older = table.alias("older")
            newest = (select(func.max(older.c.block_number)).where(older.c[keycol.name] == keycol)
                      .scalar_subquery())
            for chunk in _db.chunks(affected):
                conn.execute(update(table).where(keycol.in_(chunk), table.c.block_number == newest)
                             .values(is_current=True))
        undone = 0
        for fact in _db.FACTS:
            col = fact.c.number if fact is _db.blocks else fact.c.block_number
            deleted = conn.execute(delete(fact).where(col > ancestor)).rowcount
            if fact is _db.events:
                undone = deleted
        self._proj.reset()
        return undone

    # -- projection -------------------------------------------------------------------------------
    def _apply(self, conn: Connection, evs: list[LogEvent], infos: dict[int, BlockInfo]) -> None:
        p = self._proj
        p.conn = conn
        ids = self._tasks_of(evs)
        tx_tasks: dict[str, set[int]] = {}
        for ev, tids in zip(evs, ids, strict=True):
            if tids:
                tx_tasks.setdefault(ev.tx_hash.lower(), set()).update(tids)
        for b in infos.values():
            p.blocks.append({"number": b.number, "hash": b.hash, "timestamp": b.timestamp})
            for h, r in b.receipts.items():
                p.txs.append({"hash": h, "block_number": b.number, "tx_index": r.tx_index, "sender": r.sender,
                              "to": r.to, "gas_used": r.gas_used, "gas_price": r.gas_price,
                              "n_tasks": len(tx_tasks.get(h, ()))})
        charged: set[tuple[str, int]] = set()
        handlers, led = HANDLERS, self._ledger
        events, deltas = p.events, p.deltas
        block: int | None = None
        info: BlockInfo | None = None
        for ev, tids in zip(evs, ids, strict=True):
            if ev.block_number != block:
                if block is not None:
                    p.end_block()
                block = ev.block_number
                info = infos[block]
            assert info is not None
            p.block, p.log_index = block, ev.log_index
            led.ts, led.seq = info.timestamp, 0
            args = ev.args
            job_id = args.get("jobId")
            tx = ev.tx_hash.lower()
            events.append({
                "block_number": block, "log_index": ev.log_index, "block_hash": info.hash, "tx_hash": tx,
                "address": ev.address, "name": ev.name, "args": _args_json(args),
                "task_id": tids[0] if tids else None,
                "job_id": job_id if job_id is not None else (tids[0] >> 32 if tids else None),
                "worker": args.get("worker"), "timestamp": info.timestamp,
            })
            deltas["events"] += 1
            deltas["events:" + ev.name] += 1
            handler = handlers.get(ev.name)
            if handler is not None:
                handler(led, ev)
            receipt = info.receipts.get(tx)
            if receipt is None or not tids:
                continue
            share = receipt.gas_used // max(1, len(tx_tasks[tx]))
            for tid in tids:
                if (tx, tid) in charged:
                    continue
                task = p.tasks.edit(tid)
                if task is not None:
                    charged.add((tx, tid))
                    task["gas_used"] += share
                    task["txs"] += 1
        if block is not None:
            p.end_block()
        p.flush(conn)


    def _tasks_of(self, evs: list[LogEvent]) -> list[list[int]]:
        """The task ids of each event; a lane event naming its chunk's first task covers the whole chunk (from a
        ``LaneClaimed`` earlier in the batch, or the mirror's rows)."""
        chunks: dict[int, int] = {}
        out = []
        for ev in evs:
            tids = tasks_of(ev)
            if ev.name == "LaneClaimed":
                chunks[tids[0]] = len(tids)
            elif ev.name in _CHUNK_EVENTS:
                start = tids[0]
                n = chunks.get(start)
                tids = list(range(start, start + n)) if n else self._ledger.chunk(start) or tids
            out.append(tids)
        return out


def _receipt(r: dict[str, Any]) -> Receipt:
    """The fields the mirror keeps of a JSON-RPC transaction receipt."""
    price = r.get("effectiveGasPrice") or "0x0"
    return Receipt(tx_index=int(r["transactionIndex"], 16), sender=Web3.to_checksum_address(r["from"]),
                   to=Web3.to_checksum_address(r["to"]) if r.get("to") else None, gas_used=int(r["gasUsed"], 16),
                   gas_price=int(price, 16))

