"""Lanes (R > 1; PROTOCOL.md, "Lanes"): what a worker does with the tasks of a lane it leased with ``claimLane``.

Its tasks run as any task, up to their uploaded result (digest, CID, salt, journaled). Once all of them are
uploaded, one ``commitLane`` fixes them in a root over their per-task commitments; once every lane committed (or
the chunk's commit window passed), one ``revealLane`` gives the whole list. The reveal that completes a set of equal
lists settles every task of the chunk at once: each is then DONE, won. Otherwise anyone may split the chunk into
per-task rounds (``splitLanes``, the revealed lists read back from the lanes' ``ResultRevealed`` events); this worker
does so when its own lane is owed: each of its tasks then becomes a revealed replica at its lane's slot, which
:meth:`worker._pipeline.Pipeline.advance` follows to its end as any replica (won, outvoted, more replicas wanted).

A check chunk (credibility mode: a credible lease of ours a spot check picked whole, worker/_credible.py) is our
committed lane 0 and a check lane another worker runs; it goes on as any chunk, but is never dissolved.

A chunk whose other lanes do not come within the claim grace of its first claim (the job's other workers do not
lease lanes: relayed, GPU, cluster, or lanes off) is dissolved (``dissolveLanes``: stakes unlocked, nothing slashed)
in the same ``multicall`` as a ``claimSome`` of its tasks per task, so each result already computed goes on as a
per-task replica of this worker (commit, reveal) instead of being computed again; the job is then served per task
here (:attr:`LaneRounds.dissolved_jobs`), as the chunk showed its other workers do not take lanes.

Every step is journaled before the next one is sent, and each first reads what the chain has (the chunk's round,
our lane's bits), so a restart or a reorg at any point neither sends a step twice nor loses one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from web3.logs import DISCARD

from oracle import event_args as ea
from oracle import get_logger
from oracle.exceptions import TransactionReverted
from oracle.market import JobView, TaskStatus, TaskView
from oracle.protocol import commitment, lane_key, lane_root, task_id

from ._journal import Step, TaskRecord

if TYPE_CHECKING:
    from ._pipeline import Pipeline

log = get_logger("worker.lanes")

Pair = tuple[TaskRecord, TaskRecord]
#: gas of a dissolve with the claimSome of its tasks beyond its simulation: per task one replica claim (a new slot)
DISSOLVE_TASK_GAS = 90_000
#: gas a split may need per task beyond its simulation (each task's round settles: payouts and slashes)
SPLIT_TASK_GAS = 250_000
#: gas a lane's reveal must be able to spend beyond its simulation: when another lane's reveal lands first in the
#: same block, ours completes the set and settles the chunk (every lane paid, a TaskFinalized per task, and the job
#: closed when it was the last chunk). Measured: a 10-task R = 2 reveal costs 117,774 alone and 228,023 settling.
LANE_SETTLE_BASE_GAS = 120_000
LANE_SETTLE_LANE_GAS = 40_000
LANE_SETTLE_TASK_GAS = 15_000


def settle_allowance(count: int, lanes: int) -> int:
    """Gas floor of a reveal of a ``count``-task lane in a chunk of ``lanes`` lanes that may be the one settling."""
    return LANE_SETTLE_BASE_GAS + LANE_SETTLE_LANE_GAS * lanes + LANE_SETTLE_TASK_GAS * count


def is_lane(rec: TaskRecord) -> bool:
    """Whether ``rec`` is a task of this worker's lane, not turned into a per-task replica by a split yet."""
    return rec.data.get("lane") is not None and rec.data.get("replica") is None


def lane_of(rec: TaskRecord) -> tuple[int, int]:
    """(first task id, count) of the chunk ``rec``'s lane belongs to."""
    return int(rec.data["lane"]), int(rec.data["lane_count"])


#: the journal's value naming the jobs served per task after a dissolve, and how many of the newest it keeps
DISSOLVED_KEY = "lanes_dissolved_jobs"
DISSOLVED_KEPT = 1000


class LaneRounds:
    """Commits, reveals, and settles or splits this worker's lanes, for :class:`worker._pipeline.Pipeline`."""

    def __init__(self, pipe: Pipeline) -> None:
        self.p = pipe
        #: jobs one of whose chunks this worker dissolved: it serves them per task from then on (kept in the
        #: journal, so that a restart does not lease a lone lane in them again and wait out another claim grace)
        self.dissolved_jobs: set[int] = set(pipe.journal.get_value(DISSOLVED_KEY) or [])

    def per_task_from_now(self, job_id: int) -> None:
        """Serve ``job_id`` per task from now on, across restarts (the newest ``DISSOLVED_KEPT`` such jobs)."""
        if job_id in self.dissolved_jobs:
            return
        self.dissolved_jobs = set(sorted(self.dissolved_jobs | {job_id})[-DISSOLVED_KEPT:])
        self.p.journal.set_value(DISSOLVED_KEY, sorted(self.dissolved_jobs))

    def settle(self, start: int, count: int, running: set[str]) -> list[Pair]:
        """Take the lane of chunk (``start``, ``count``) one step further if it can go. Returns the (old, new)
        records that changed."""
        p = self.p
        mine = p.journal.range_records(start, count, running)
        if mine is None:
            return []
        live = [r for r in mine if not r.finished and is_lane(r)]
        if not live:
            return []
        slot = int(live[0].data["lane_slot"])
        bit = 1 << slot
        key = lane_key(start, count)
        chunk = p.market.task_view(key)
        if chunk.status == TaskStatus.FINALIZED:
            return self._ended(start, live, chunk, slot)
        if chunk.status == TaskStatus.NONE and all(r.step >= Step.UPLOADED for r in live):
            # dissolved by another (anyone may): the tasks are free, our results may still go on per task
            return self._per_task(JobView.model_validate(live[0].data["job"]), start, count, live, dissolve=False)
        lane = p.market.replica_view(key, slot)
        if chunk.status != TaskStatus.ACTIVE or not chunk.occupied & bit or lane.worker.lower() != p.me.lower():
            why = f"lane {slot} of chunk {start} is no longer this worker's (expired, or released)"
            return [(r, p.journal.record(r.job_id, r.task_index, Step.LOST, note=why, reason=why)) for r in live]
        if any(r.step in (Step.ABANDONING, Step.FAILED, Step.ABANDONED) or (r.finished and r.step != Step.DONE)
               for r in mine):
            # this worker could not produce one of the lane's results, and a lane is not given back in part: the
            # root could not cover it, so the lane expires (its stakes are slashed) and another worker takes it
            why = f"a task of lane {slot} of chunk {start} could not be finished here: the lane will expire"
            log.warning("lane_given_up", chunk=start, reason=why)
            return [(r, p.journal.record(r.job_id, r.task_index, Step.LOST, note=why, reason=why)) for r in live]
        if any(r.step < Step.UPLOADED for r in mine):
            return []  # some still to run: the root covers the whole chunk
        job = JobView.model_validate(live[0].data["job"])
        now = p.market.chain_time()
        if not chunk.revealed and chunk.occupied.bit_count() < chunk.target and not job.confidence_ppb and \
                now > self.join_until(key, chunk.occupied, chunk.target, count * job.max_run_seconds):
            return self._per_task(job, start, count, live, dissolve=True)
        if not chunk.committed & bit:
            return self._commit(job, start, count, mine)
        if not chunk.revealed & bit:
            if chunk.committed.bit_count() != chunk.target and now <= chunk.commit_deadline:
                return [] if all(r.step == Step.COMMITTED for r in mine) else self._journal(mine, Step.COMMITTED)
            if now <= chunk.reveal_deadline:
                return self._reveal(job, start, mine, chunk.target)
        elif any(r.step != Step.REVEALED for r in mine):  # revealed before a restart
            return self._journal(mine, Step.REVEALED)
        if chunk.revealed.bit_count() == chunk.target or (chunk.reveal_deadline and now > chunk.reveal_deadline):
            self._split(start, count, chunk, int(live[0].data.get("claim_block") or 0))
        return []

    def join_until(self, key: int, occupied: int, target: int, run: int) -> int:
        """When the chunk under ``key`` stops taking lanes (``LaneLogic.dissolve``): its earliest lane's expiry less
        the chunk's run, that is its claim plus the claim grace."""
        expiries = [self.p.market.replica_view(key, i).expiry for i in range(target) if occupied & (1 << i)]
        return min(expiries) - run if expiries else 0

    def _per_task(self, job: JobView, start: int, count: int, recs: list[TaskRecord], *, dissolve: bool
                  ) -> list[Pair]:
        """The chunk lacks lanes past its join window (``dissolve``: dissolve it first, in the same ``multicall``) or
        is gone: claim its tasks per task, and go on with each result already uploaded as that replica's."""
        p = self.p
        fns = p.market.contract
        tids = [start + i for i in range(count)]
        calls = ([fns.encode_abi("dissolveLanes", [start, count])] if dissolve else []) + \
            [fns.encode_abi("claimSome", [tids, count])]
        try:
            # time-gated (the join window's end), as a reveal: simulated on the pending block
            receipt = p.sender.transact(fns.functions.multicall(calls), pending=True,
                                        min_gas=count * DISSOLVE_TASK_GAS)
        except TransactionReverted as exc:  # another lane joined, or another worker dissolved it first
            log.info("dissolve_lanes_refused", chunk=start, error=str(exc), action="look again next poll")
            return []
        self.per_task_from_now(job.job_id)
        claimed: dict[int, ea.ReplicaClaimed] = {}
        for e in fns.events.ReplicaClaimed().process_receipt(receipt, errors=DISCARD):
            a = ea.ReplicaClaimed.model_validate(e["args"])
            if a.worker.lower() == p.me.lower():
                claimed[a.task_id] = a
        log.warning("lanes_dissolved" if dissolve else "lanes_gone", chunk=start, tasks=count, claimed=len(claimed),
                    gas=int(receipt["gasUsed"]),
                    reason="no other lane came within the claim grace: this job goes on per task here" if dissolve
                    else "another worker dissolved the chunk (its lanes did not fill within the claim grace): this "
                         "job goes on per task here")
        out: list[Pair] = []
        for r in recs:
            got = claimed.get(task_id(r.job_id, r.task_index)) or self._held(task_id(r.job_id, r.task_index))
            if got is None:  # another worker's per-task claim took it first: nothing of ours is locked on it
                why = f"chunk {start} dissolved; the task was claimed by others first"
                out.append((r, p.journal.record(r.job_id, r.task_index, Step.ABANDONED, outcome="abandoned",
                                                earned=0, note=why)))
            else:
                out.append((r, p.journal.record(
                    r.job_id, r.task_index, Step.UPLOADED, replica=got.replica, expiry=got.expiry,
                    claim_block=int(receipt["blockNumber"]), claim_tx=receipt["transactionHash"].hex(),
                    note=f"chunk {start} dissolved: its result goes on as replica {got.replica} of the task")))
        return out

    def _held(self, tid: int) -> ea.ReplicaClaimed | None:
        """Our replica of task ``tid`` on chain, if we hold one: a dissolve and claim of ours that landed before a
        crash kept its journal from recording it (claimSome then skips the task, ours already)."""
        p = self.p
        t = p.market.task_view(tid)
        if t.status != TaskStatus.ACTIVE:
            return None
        for slot in range(t.target):
            if t.occupied & (1 << slot) and (rep := p.market.replica_view(tid, slot)).worker.lower() == p.me.lower():
                return ea.ReplicaClaimed(task_id=tid, worker=rep.worker, replica=slot, expiry=rep.expiry)
        return None

    def _commit(self, job: JobView, start: int, count: int, recs: list[TaskRecord]) -> list[Pair]:
        p = self.p
        leaves = [commitment(start + i, r.data["digest"], r.data["salt"], p.me) for i, r in enumerate(recs)]
        try:
            receipt = p.sender.transact(p.market.contract.functions.commitLane(start, count, lane_root(leaves)))
        except TransactionReverted as exc:
            log.warning("commit_lane_refused", chunk=start, error=str(exc), action="look again next poll")
            return []
        gas = int(receipt["gasUsed"])
        log.info("lane_committed", chunk=start, tasks=count, gas=gas)
        return self._journal(recs, Step.COMMITTED, tx=receipt["transactionHash"].hex(), gas=gas // count)

    def _reveal(self, job: JobView, start: int, recs: list[TaskRecord], lanes: int) -> list[Pair]:
        p = self.p
        fn = p.market.contract.functions.revealLane(
            start, [bytes.fromhex(r.data["digest"][2:]) for r in recs],
            [bytes.fromhex(r.data["salt"][2:]) for r in recs], [r.data["cid"] for r in recs])
        try:
            # simulated on the pending block: a reveal the commit window's end opened is valid from the next
            # block's time on, which the last mined block may not have reached (a chain mines only when sent to);
            # with the gas to settle the chunk, should another lane's reveal land first in the same block
            receipt = p.sender.transact(fn, pending=True, min_gas=settle_allowance(len(recs), lanes))
        except TransactionReverted as exc:
            log.warning("reveal_lane_refused", chunk=start, error=str(exc), action="look again next poll")
            return []
        gas = int(receipt["gasUsed"])
        settled = [ea.TaskRef.model_validate(e["args"]) for e in
                   p.market.contract.events.TaskFinalized().process_receipt(receipt, errors=DISCARD)]
        log.info("lane_revealed", chunk=start, tasks=len(recs), settled=len(settled), gas=gas)
        return self._journal(recs, Step.REVEALED, tx=receipt["transactionHash"].hex(), gas=gas // len(recs))

    def _journal(self, recs: list[TaskRecord], step: Step, **data: Any) -> list[Pair]:
        return [(r, self.p.journal.record(r.job_id, r.task_index, step, **data)) for r in recs]

    def _split(self, start: int, count: int, chunk: TaskView, from_block: int) -> None:
        """The lanes disagree, or the reveal window passed with a lane silent: split the chunk into per-task rounds,
        giving every revealed lane's list (read back from its ``ResultRevealed`` events)."""
        p = self.p
        key = lane_key(start, count)
        workers = [p.market.replica_view(key, i).worker.lower() if chunk.revealed & (1 << i) else None
                   for i in range(chunk.target)]
        digests: dict[tuple[str, int], bytes] = {}
        for e in p.market.contract.events.ResultRevealed().get_logs(
                from_block=from_block, argument_filters={"taskId": list(range(start, start + count))}):
            a = e["args"]
            digests[(str(a["worker"]).lower(), int(a["taskId"]))] = bytes(a["resultDigest"])
        lists = [[digests.get((w, start + i), b"\0" * 32) for i in range(count)] for w in workers if w is not None]
        try:
            receipt = p.sender.transact(p.market.contract.functions.splitLanes(start, count, lists),
                                        min_gas=count * SPLIT_TASK_GAS, pending=True)  # time-gated, as a reveal
        except TransactionReverted as exc:
            log.warning("split_lanes_refused", chunk=start, error=str(exc), action="look again next poll")
            return
        log.info("lanes_split", chunk=start, tasks=count, lanes=len(lists), gas=int(receipt["gasUsed"]))

    def _ended(self, start: int, live: list[TaskRecord], chunk: TaskView, slot: int) -> list[Pair]:
        """The chunk is over: settled at once (its tasks have no round of their own: each is won, for the share its
        ``TaskFinalized`` gives), or split (each task is now a round whose replica at our slot is ours: revealed, it
        is followed as any replica; silent, it was slashed)."""
        p = self.p
        out: list[Pair] = []
        for r in live:
            tid = task_id(r.job_id, r.task_index)
            t = p.market.task_view(tid)
            if t.status == TaskStatus.NONE:
                share = self._share(tid, int(r.data.get("claim_block") or 0))
                out.append((r, p.journal.record(r.job_id, r.task_index, Step.DONE, outcome="won", earned=share)))
            elif chunk.revealed & (1 << slot):
                out.append((r, p.journal.record(r.job_id, r.task_index, Step.REVEALED, replica=slot,
                                                note=f"chunk {start} split into per-task rounds")))
            else:
                why = f"chunk {start} split while this lane had not revealed: slashed for each task"
                out.append((r, p.journal.record(r.job_id, r.task_index, Step.LOST, note=why, reason=why)))
        return out

    def _share(self, tid: int, from_block: int) -> int:
        events = self.p.market.contract.events.TaskFinalized().get_logs(
            from_block=from_block, argument_filters={"taskId": tid})
        return ea.TaskFinalized.model_validate(events[-1]["args"]).reward_each if events else 0
