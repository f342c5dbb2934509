"""Credible leases (credibility mode; PROTOCOL.md, "Credible leases"): what a worker credible alone does with the
tasks of a credibility-mode job it leased with ``claimFreeRange``.

Once every task of the lease has its result uploaded and journaled (digest, CID, salt), one ``commitRange`` fixes
them all in a root over their per-task commitments. From the next block on, the hash of the commit block decides
which tasks a spot check picked; one ``revealRange`` then gives the others open (final at once, paid) and the picked
ones sealed (their commitment only): those become replicated tasks with this worker's replica in slot 0, committed,
and go on as any replica does (:meth:`worker._pipeline.Pipeline.advance` reveals them once the check replica
committed). A task given up while its lease lives gives back the whole lease (``abandon``).

Every step is journaled before the next is sent, and each step first reads what the chain already has (the lease,
its commitment, the tasks' results), so a restart or a reorg at any point neither sends a step twice nor loses one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from oracle import get_logger
from oracle.credibility import checked_as_lane, of_worker, spot_checked
from oracle.exceptions import TransactionReverted
from oracle.market import JobView, TaskStatus
from oracle.protocol import commitment, lane_key, lane_root, range_seal, task_id

from ._journal import Step, TaskRecord

if TYPE_CHECKING:
    from ._pipeline import Pipeline

log = get_logger("worker.credible")

#: blocks after which a commit block's hash is no longer readable on chain: every task then counts as picked
BLOCKHASH_WINDOW = 256
ZERO32 = b"\x00" * 32

Pair = tuple[TaskRecord, TaskRecord]


class Credibility(NamedTuple):
    """A credibility-mode job's settings (``getCredibility``)."""

    confidence_ppb: int
    fault_bps: int
    spot_check_bps: int


def is_credible_lease(rec: TaskRecord) -> bool:
    """Whether ``rec`` is a task of a credible lease, not sealed into a replica nor checked as a lane yet."""
    return bool(rec.data.get("credible_lease")) and rec.data.get("replica") is None and rec.data.get("lane") is None


def sealed_tasks(tids: Sequence[int], seed: bytes, spot_check_bps: int, credible: bool, as_lane: bool = False
                 ) -> list[bool]:
    """Which entries of a reveal must stay sealed: every one when the worker is no longer credible alone, else the
    tasks the commit block's hash ``seed`` picked for a spot check (a zero seed: every one); none of a lease checked
    whole (``as_lane``: its draw is the lease's, :func:`lease_checked`)."""
    return [not credible or (not as_lane and spot_checked(seed, tid, spot_check_bps)) for tid in tids]


def lease_checked(job: JobView, start: int, count: int, seed: bytes, spot_check_bps: int) -> bool:
    """Whether the commit block's hash ``seed`` picked the whole credible lease (``start``, ``count``) of ``job`` for
    a check lane (``checkLease``; PROTOCOL.md, "Check lanes")."""
    return checked_as_lane(count, int(job.callback, 16) != 0) and spot_checked(seed, start, spot_check_bps)


class CredibleLeases:
    """Commits and reveals this worker's credible leases, for :class:`worker._pipeline.Pipeline`."""

    def __init__(self, pipe: Pipeline) -> None:
        self.p = pipe
        self._settings: dict[int, Credibility] = {}

    def credibility(self, job_id: int) -> Credibility:
        if job_id not in self._settings:
            c = self.p.market.contract.functions.getCredibility(job_id).call()
            self._settings[job_id] = Credibility(int(c[0]), int(c[1]), int(c[2]))
        return self._settings[job_id]

    def credible_alone(self, job: JobView, verified: int) -> bool:
        """Whether a worker with ``verified`` checks passed may lease ``job`` (its credibility alone reaches the
        job's confidence)."""
        c = self.credibility(job.job_id)
        return of_worker(verified, c.fault_bps) >= c.confidence_ppb

    def settle(self, start: int, count: int, running: set[str]) -> list[Pair]:
        """Take lease ``start`` (``count`` tasks) one step further if it can go: give it back, commit it, or reveal
        it. Returns the (old, new) records that changed."""
        p = self.p
        mine = p.journal.range_records(start, count, running)
        if mine is None:
            return []
        live = [r for r in mine if not r.finished and is_credible_lease(r)]
        if not live:
            return []
        lease = p.market.lease_view(start)
        if lease.worker.lower() != p.me.lower():  # revealed before a restart, given back, expired, or checked
            if (checked := self._checked_before(start, count, live)) is not None:
                return checked
            return [(r, self._gone(r, f"lease {start} is no longer this worker's")) for r in live]
        if any(r.step in (Step.ABANDONING, Step.FAILED) or (r.finished and r.step != Step.DONE) for r in mine):
            return self._give_back(start, live)
        if any(r.step < Step.UPLOADED for r in mine):
            return []  # some still to run: the commitment covers the whole lease
        job = JobView.model_validate(live[0].data["job"])
        tids = [start + i for i in range(count)]
        leaves = [commitment(tid, r.data["digest"], r.data["salt"], p.me) for tid, r in zip(tids, mine, strict=True)]
        root = lane_root(leaves)
        seal = bytes(p.market.contract.functions.getRangeCommit(start).call())
        if seal == ZERO32:
            return self._commit(job, start, mine, leaves, root)
        commit_block = self._commit_block(start, root, seal, mine)
        if commit_block is None:
            reason = f"lease {start} holds a commitment that is not this worker's results"
            return [(r, p.journal.record(r.job_id, r.task_index, Step.LOST, note=reason, reason=reason)) for r in live]
        out: list[Pair] = []
        if any(r.step == Step.UPLOADED for r in mine):  # committed before a restart
            out = self._journal_committed(mine, leaves, commit_block, note="committed before a restart")
            mine = [new for _, new in out]
        return out or self._reveal(job, start, mine, leaves, commit_block)

    def _commit_block(self, start: int, root: bytes, seal: bytes, recs: list[TaskRecord]) -> int | None:
        """The block of lease ``start``'s commit, if the chain's ``seal`` is our ``root`` committed in it: the block
        journaled at the commit, else (a restart before the journal had it, or a reorg that moved the commit) the
        block of our ``RangeCommitted`` of that root. None when the commitment is not ours."""
        journaled = max(int(r.data.get("commit_block") or 0) for r in recs)
        if journaled and range_seal(root, journaled) == seal:
            return journaled
        p = self.p
        events = p.market.contract.events.RangeCommitted().get_logs(
            from_block=min(int(r.data.get("claim_block") or 0) for r in recs), argument_filters={"startTaskId": start})
        return next((int(e["blockNumber"]) for e in reversed(events)
                     if bytes(e["args"]["root"]) == root and range_seal(root, int(e["blockNumber"])) == seal), None)

    def _commit(self, job: JobView, start: int, recs: list[TaskRecord], leaves: list[bytes], root: bytes
                ) -> list[Pair]:
        """``commitRange``, journaled; then the reveal at once: the commit's block is mined, so the next one (where
        the reveal lands) reads its hash."""
        p = self.p
        try:
            receipt = p.sender.transact(p.market.contract.functions.commitRange(start, root))
        except TransactionReverted as exc:
            log.warning("commit_range_refused", lease=start, error=str(exc), action="look again next poll")
            return []
        log.info("range_committed", lease=start, tasks=len(recs), gas=int(receipt["gasUsed"]))
        committed = self._journal_committed(recs, leaves, int(receipt["blockNumber"]),
                                            tx=receipt["transactionHash"].hex(), gas=int(receipt["gasUsed"]) // len(recs))
        revealed = {old.task_key: new for old, new in
                        self._reveal(job, start, [new for _, new in committed], leaves, int(receipt["blockNumber"]))}
        return [(old, revealed.get(new.task_key, new)) for old, new in committed]

    def _journal_committed(self, recs: list[TaskRecord], leaves: list[bytes], commit_block: int, **data: Any
                           ) -> list[Pair]:
        return [(r, self.p.journal.record(r.job_id, r.task_index, Step.COMMITTED, commitment="0x" + c.hex(),
                                          commit_block=commit_block, batch=len(recs), **data))
                for r, c in zip(recs, leaves, strict=True)]

    def _reveal(self, job: JobView, start: int, recs: list[TaskRecord], leaves: list[bytes],
                commit_block: int) -> list[Pair]:
        p = self.p
        w3 = p.market.w3
        latest = int(w3.eth.block_number)
        if latest < commit_block:
            return []  # the commit's block is not visible here yet
        seed = ZERO32 if latest + 1 - commit_block > BLOCKHASH_WINDOW else bytes(w3.eth.get_block(commit_block)["hash"])
        c = self.credibility(job.job_id)
        if lease_checked(job, start, len(recs), seed, c.spot_check_bps):
            return self._check(start, recs, lane_root(leaves), commit_block)
        credible = self.credible_alone(job, p.market.worker_record(p.me).verified)
        tids = [start + i for i in range(len(recs))]
        as_lane = checked_as_lane(len(recs), int(job.callback, 16) != 0)
        sealed = sealed_tasks(tids, seed, c.spot_check_bps, credible, as_lane)
        digests = [leaf if s else bytes.fromhex(r.data["digest"][2:])
                   for r, leaf, s in zip(recs, leaves, sealed, strict=True)]
        salts = [ZERO32 if s else bytes.fromhex(r.data["salt"][2:]) for r, s in zip(recs, sealed, strict=True)]
        cids = ["" if s else r.data["cid"] for r, s in zip(recs, sealed, strict=True)]
        fn = p.market.contract.functions.revealRange(start, commit_block, digests, salts, cids, [])
        opened = len(sealed) - sum(sealed)
        try:
            receipt = p.sender.transact(fn, pending=True, min_gas=opened * p.submit_allowance(job))
        except TransactionReverted as exc:
            log.warning("reveal_range_refused", lease=start, error=str(exc), action="look again next poll")
            return []
        tx, gas = receipt["transactionHash"].hex(), int(receipt["gasUsed"]) // len(recs)
        log.info("range_revealed", lease=start, open=opened, sealed=len(recs) - opened, gas=int(receipt["gasUsed"]))
        out: list[Pair] = []
        for r, s in zip(recs, sealed, strict=True):
            if s:  # a replica now: Pipeline.advance reveals it once the check replica committed
                new = p.journal.record(r.job_id, r.task_index, Step.COMMITTED, replica=0, sealed=True, tx=tx)
            else:
                new = p.journal.record(r.job_id, r.task_index, Step.DONE, outcome="paid", earned=p.net_reward(job),
                                       tx=tx, gas=gas)
            out.append((r, new))
        return out

    def _check(self, start: int, recs: list[TaskRecord], root: bytes, commit_block: int) -> list[Pair]:
        """The spot check picked the whole lease: ``checkLease`` turns it into a check chunk whose lane 0 is ours,
        committed; :class:`worker._lanes.LaneRounds` then reveals it once the check lane committed, and settles or
        splits it. (Anyone may send the check: when another did first, the lease is gone and the chunk is ours.)"""
        p = self.p
        fn = p.market.contract.functions.checkLease(start, root, commit_block)
        try:
            receipt = p.sender.transact(fn, pending=True)
        except TransactionReverted as exc:
            log.warning("check_lease_refused", lease=start, error=str(exc), action="look again next poll")
            return []
        log.info("lease_checked", lease=start, tasks=len(recs), gas=int(receipt["gasUsed"]),
                 reason="a spot check picked the whole lease: a second lane checks it")
        return self._as_lane(start, len(recs), recs, commit_block, tx=receipt["transactionHash"].hex())

    def _as_lane(self, start: int, count: int, recs: list[TaskRecord], commit_block: int, **data: Any) -> list[Pair]:
        """Journal ``recs``, tasks of the ``count``-task lease ``start``, as our committed lane 0 of its check chunk."""
        return [(r, self.p.journal.record(r.job_id, r.task_index, Step.COMMITTED, lane=start, lane_count=count,
                                          lane_slot=0, check_lane=True, claim_block=commit_block, **data))
                for r in recs]

    def _checked_before(self, start: int, count: int, live: list[TaskRecord]) -> list[Pair] | None:
        """The lease became a check chunk (``checkLease``, ours or another's, before a restart or while we waited):
        its tasks are our lane 0 from now on; None when it did not."""
        p = self.p
        key = lane_key(start, count)
        if p.market.task_view(key).status != TaskStatus.ACTIVE or \
                p.market.replica_view(key, 0).worker.lower() != p.me.lower():
            return None
        commit_block = max(int(r.data.get("commit_block") or 0) for r in live)
        return self._as_lane(start, count, live, commit_block, note="checked as a lane")

    def _give_back(self, start: int, live: list[TaskRecord]) -> list[Pair]:
        """A task of the lease was given up here: give back the whole lease (its uploaded results are lost)."""
        p = self.p
        note = f"given back with its credible lease {start}"
        try:
            p.sender.transact(p.market.contract.functions.abandon(start))
        except TransactionReverted as exc:
            note = f"abandon of lease {start} reverted: {exc.error_name}"
        return [(r, p.journal.record(r.job_id, r.task_index, Step.ABANDONED, outcome="abandoned", earned=0, note=note))
                for r in live]

    def _gone(self, rec: TaskRecord, reason: str) -> TaskRecord:
        """The lease ended without this daemon seeing how (a restart): its reveal landed (the task paid, or sealed
        into our replica), or the lease was given back, or it expired."""
        p = self.p
        tid = task_id(rec.job_id, rec.task_index)
        if rec.step >= Step.COMMITTED:
            if (done := p.sent_before_restart(rec)) is not None:
                return done
            if p.market.task_view(tid).status == TaskStatus.ACTIVE and \
                    p.market.replica_view(tid, 0).worker.lower() == p.me.lower():
                return p.journal.record(rec.job_id, rec.task_index, Step.COMMITTED, replica=0, sealed=True,
                                        note="sealed before a restart")
        if rec.step == Step.ABANDONING:
            return p.journal.record(rec.job_id, rec.task_index, Step.ABANDONED, outcome="abandoned", earned=0,
                                    note=reason)
        log.warning("task_lost", task_id=tid, reason=reason)
        return p.journal.record(rec.job_id, rec.task_index, Step.LOST, note=reason, reason=reason)
