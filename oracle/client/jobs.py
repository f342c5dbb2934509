"""``client.jobs``: price, post, follow, page, cancel, close and explain jobs.

::

    job = c.jobs.submit(JobSpec(app_id=1, count=10, args=["{index}"], reward=10**17, encrypt=True))
    for ev in c.jobs.watch(job.job_id):                   # typed events, until every task settled
        print(ev.name, ev.task_index, ev.progress.finalized)
    print(c.jobs.summary(job.job_id).finalized)

A transaction the contract refuses raises :class:`~oracle.exceptions.TransactionReverted` with the custom error
decoded.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from web3.logs import DISCARD

from .._artifacts import abi
from .._log import get_logger
from ..credibility import CredibilitySettings
from ..event_args import ReplicaWanted
from ..events import EventStream, StreamCursor
from ..exceptions import (
    AccessDenied,
    ClientError,
    InsufficientBalance,
    InvalidJobSpec,
    TasknetError,
    UnknownApp,
    UnknownDataset,
    WaitTimeout,
)
from ..market import _struct
from ..models import InputRef, InputsDocument
from ..pinning import RemotePins
from ..protocol import ARCH_HOMOGENEOUS, platform_class_name, task_id
from . import _reads as reads
from ._explain import explain_task
from ._models import (
    Explanation,
    FailureGroup,
    FailureView,
    JobEvent,
    JobSpec,
    JobStatus,
    JobSummary,
    SubmittedJob,
    TaskFailure,
    TaskPage,
    TaskState,
    arch_mask,
    format_amount,
)
from ._pinner import ResultPinner
from ._reads import NO_RESULT
from ._scan import RESULT_EVENTS, JobResults
from ._tasks import build_inputs, check_inputs
from ._watch import Tracker

if TYPE_CHECKING:
    from ._client import Client

log = get_logger("oracle.client")
ZERO = "0x" + "00" * 20
UploadProgress = Callable[[str, int], None]


class Jobs:
    """The jobs of the marketplace, as a requester sees them: posting, progress, per-task rows, explanations."""

    def __init__(self, client: Client) -> None:
        self._c = client
        #: (pinned, failed) result CIDs of the last ``watch(pin=True)``
        self.pinned: tuple[int, int] = (0, 0)
        #: what the network's pinning service made of the results of the last ``watch(pin=True)``
        self.remote_pins: RemotePins | None = None

    def quote(self, spec: JobSpec) -> int:
        """The escrow ``spec`` would lock: N × (R × reward + app price + dataset price), checked for access."""
        c = self._c
        app = _struct(c.market.registry, "getApp", spec.app_id)
        if int(app["owner"], 16) == 0:
            raise UnknownApp(f"no app {spec.app_id} on this marketplace ({reads.app_range(c)}); list them with "
                             "'tasknet app list'")
        if app["flags"] & 2:
            raise AccessDenied(f"app {spec.app_id} is deprecated: no new job may use it; pick another app")
        if not c.market.registry.functions.appAllows(spec.app_id, c.address).call():
            raise AccessDenied(f"app {spec.app_id} is private and does not list requester {c.address}; ask its "
                               f"owner {app['owner']} to allow you ('tasknet app allow')")
        ds_price = 0
        if spec.dataset_id:
            ds = _struct(c.market.registry, "getDataset", spec.dataset_id)
            if int(ds["owner"], 16) == 0:
                raise UnknownDataset(f"no dataset {spec.dataset_id} on this marketplace; list them with "
                                     "'tasknet dataset list'")
            if ds["flags"] & 2:
                raise AccessDenied(f"dataset {spec.dataset_id} is deprecated: no new job may use it")
            if not c.market.registry.functions.datasetAllows(spec.dataset_id, spec.app_id, c.address).call():
                raise AccessDenied(f"dataset {spec.dataset_id} does not admit app {spec.app_id} run by {c.address}; "
                                   f"ask its owner {ds['owner']} to allow this app and requester")
            ds_price = int(ds["price"])
        return spec.num_tasks * (spec.replication * spec.reward + int(app["price"]) + ds_price)

    def submit(self, spec: JobSpec, *, progress: UploadProgress | None = None) -> SubmittedJob:
        """Check, upload inputs, write the inputs document, post the job; return its id and escrow.

        Every check that can be made before spending is made first (unknown app, access, balance, missing input
        files, deadline too short): those raise a :class:`ClientError` (:class:`InvalidJobSpec`,
        :class:`InsufficientBalance`, :class:`AccessDenied`...) and send nothing. Emits ``JobPosted``."""
        c = self._c
        params = c.market.market_params()
        if spec.replication > params.max_replicas:
            raise InvalidJobSpec(f"replication {spec.replication} exceeds the marketplace's cap of "
                                 f"{params.max_replicas}")
        grace = params.claim_grace
        if spec.max_run_seconds + grace >= spec.deadline_in:
            raise InvalidJobSpec(
                f"deadline in {spec.deadline_in} s is too short: a claim needs max run {spec.max_run_seconds} s + "
                f"claim grace {grace} s before the deadline; give at least {spec.max_run_seconds + grace + 60} s")
        mask = arch_mask(spec.arch) | (ARCH_HOMOGENEOUS if spec.homogeneous else 0)
        callback = ZERO
        if spec.callback:
            callback = reads.checksum(spec.callback)
            if not c.w3.eth.get_code(callback):  # type: ignore[arg-type]
                raise InvalidJobSpec(f"callback {callback} is not a contract; deploy your ITaskCallback contract "
                                     "first (see examples/consumer)")
        check_inputs(spec.tasks or [], spec.common_inputs)
        escrow = self.quote(spec)
        have = c.market.balance(c.address)
        if have < escrow:
            raise InsufficientBalance(
                f"the job locks {format_amount(escrow)} tokens ({spec.num_tasks} tasks × ({spec.replication} × reward "
                f"{format_amount(spec.reward)} + app/dataset prices)) but the marketplace balance of {c.address} "
                f"is {format_amount(have)}; deposit {format_amount(escrow - have)} more ('tasknet account deposit')")
        extra: builtins.list[InputRef] = []
        if spec.dataset_id:
            ds = c.datasets.get(spec.dataset_id)
            extra.append(InputRef(uri=f"ipfs://{ds.cid}", path=spec.dataset_path, size=None))
        key = c.keyring.new_key() if spec.encrypt else ""
        _doc, inputs_cid = build_inputs(c.ipfs, spec.tasks, spec.count, spec.args, spec.common_inputs, extra,
                                        progress)
        deadline = c.chain_time() + spec.deadline_in
        p = (spec.app_id, spec.dataset_id, spec.num_tasks, spec.replication, spec.reward, deadline,
             spec.max_run_seconds, spec.cores, spec.memory_mb, spec.gpus, mask, spec.min_reputation, callback,
             inputs_cid, bytes.fromhex(key))
        if spec.confidence is None:
            receipt = c._send(c.market.contract.functions.postJob(p))
        else:
            cred = CredibilitySettings.of(spec.confidence, spec.assume_faulty, spec.spot_check)
            receipt = c._send(c.market.contract.functions.postCredibilityJob(
                p, (cred.confidence_ppb, cred.fault_bps, cred.spot_check_bps)))
        ev = c._events.events.JobPosted().process_receipt(receipt, errors=DISCARD)[0]["args"]
        job_id = int(ev["jobId"])
        if key:
            c.keyring.note_job(key, job_id)
        log.info("job_posted", job_id=job_id, tasks=spec.num_tasks, escrow=int(ev["escrow"]), inputs=inputs_cid,
                 confidence=spec.confidence)
        return SubmittedJob(job_id=job_id, num_tasks=spec.num_tasks, inputs_cid=inputs_cid, escrow=int(ev["escrow"]),
                            deadline=deadline, encryption_key=key, tx=reads.tx_info(receipt))

    def summary(self, job_id: int) -> JobSummary:
        """Where the job stands, in time that does not depend on its size: the indexer's job row when an indexer
        is configured, else the chain's counters (``getJob``, ``jobEscrow``) plus the job's cancellations and
        the TaskFailed events since its posting (rare: they say which tasks failed)."""
        c = self._c
        if c.indexer is not None:
            return self._indexer_summary(job_id)
        v, block = reads.posted(c, job_id)
        raw = c.market.job_record(job_id)
        closed = raw.closed
        cancelled = sum(n for _, n in reads.cancelled(c, job_id, block))
        failed = sorted(JobResults.from_events(reads.events_of(c, job_id, block, ["TaskFailed"])).failed)
        finalized = raw.finished
        refunded = max(0, v.num_tasks - finalized - len(failed) - cancelled) if closed else 0
        groups = [FailureGroup(state="failed", reason=NO_RESULT["failed"], count=len(failed), first=failed[:20])]
        groups.append(FailureGroup(state="refunded", reason=NO_RESULT["refunded"], count=refunded))
        return JobSummary(job_id=job_id, source="chain", requester=v.requester, app_id=v.app_id, total=v.num_tasks,
                          replication=v.replication, reward=v.reward, deadline=v.deadline, closed=closed,
                          escrow_left=int(c.market.contract.functions.jobEscrow(job_id).call()),
                          finalized=finalized, failed=len(failed), cancelled=cancelled, refunded=refunded,
                          unsettled=0 if closed else v.num_tasks - raw.settled,
                          failures=[g for g in groups if g.count])

    def _indexer_summary(self, job_id: int) -> JobSummary:
        c = self._c
        assert c.indexer is not None
        j = c.indexer.job(job_id)
        running = sum(c.indexer.tasks(job_id, status=s, limit=1).total for s in ("running", "revealing"))
        failed_rows = c.indexer.tasks(job_id, status="failed", limit=20)
        total, finished, failed, cancelled = j.num_tasks, j.finished, j.failed, j.cancelled
        closed = j.status == "closed"
        refunded = max(0, total - finished - failed - cancelled) if closed else 0
        groups = [FailureGroup(state="failed", reason=NO_RESULT["failed"], count=failed,
                               first=[t.idx for t in failed_rows.items]),
                  FailureGroup(state="refunded", reason=NO_RESULT["refunded"], count=refunded)]
        return JobSummary(job_id=job_id, source="indexer", requester=j.requester, app_id=j.app_id,
                          total=total, replication=j.replication, reward=j.reward,
                          deadline=j.deadline, closed=closed, escrow_left=j.escrow_held,
                          finalized=finished, failed=failed, cancelled=cancelled, refunded=refunded,
                          unsettled=0 if closed else total - j.settled, claimed=j.claimed,
                          running=running, failures=[g for g in groups if g.count])

    def task_page(self, job_id: int, *, state: str | None = None, page: int = 1, per_page: int = 50) -> TaskPage:
        """One page (from 1) of the job's per-task rows, in task order; only those in ``state`` when given.

        From an indexer when one is configured (its rows: tasks appear there at their first claim). From the
        chain, a page of every task costs one log query and one call for its tasks, whatever the job's size;
        ``state="failed"`` or ``"cancelled"`` reads those few events; any other state needs every task's state
        (one pass over the job's events)."""
        c = self._c
        if page < 1 or per_page < 1:
            raise ClientError(f"pages are numbered from 1 and hold at least one row (page {page}, {per_page} rows)")
        first = (page - 1) * per_page
        if c.indexer is not None and state not in ("cancelled", "refunded"):
            indexer_state = {"claimed": "running", "committing": "revealing"}.get(state or "", state)
            rows = c.indexer.tasks(job_id, status=indexer_state, limit=per_page, offset=first)
            items = [reads.indexer_row(r) for r in rows.items]
            return TaskPage(job_id=job_id, source="indexer", state=state, page=page, per_page=per_page,
                            total=rows.total, items=items)
        v, block = reads.posted(c, job_id)
        if state is None:
            indexes = list(range(first, min(v.num_tasks, first + per_page)))
            return TaskPage(job_id=job_id, source="chain", state=None, page=page, per_page=per_page,
                            total=v.num_tasks, items=reads.task_rows(c, job_id, v, block, indexes))
        if state == "failed":
            matching = sorted(JobResults.from_events(reads.events_of(c, job_id, block, ["TaskFailed"])).failed)
        elif state == "cancelled":
            matching = sorted({i for start, n in reads.cancelled(c, job_id, block) for i in range(start, start + n)})
        else:
            t, _, _ = reads.tracker(c, job_id)
            states = [r for r in (t.task_state(i) for i in range(t.total)) if r.state == state]
            return TaskPage(job_id=job_id, source="chain", state=state, page=page, per_page=per_page,
                            total=len(states), items=states[first:first + per_page])
        return TaskPage(job_id=job_id, source="chain", state=state, page=page, per_page=per_page,
                        total=len(matching),
                        items=reads.task_rows(c, job_id, v, block, matching[first:first + per_page]))

    def get(self, job_id: int) -> JobStatus:
        """The job's parameters, escrow left and progress (from storage and its events).

        Raises :class:`UnknownJob` when there is no such job (every method taking a ``job_id`` does)."""
        c = self._c
        t, posted, block = reads.tracker(c, job_id)
        return reads.status(c, job_id, posted, block, t.progress())

    def list(self, requester: str | None = None) -> builtins.list[JobStatus]:
        """Jobs posted by ``requester`` (default: this account), oldest first."""
        c = self._c
        who = reads.checksum(requester or c.address)
        logs = c._events.events.JobPosted().get_logs(from_block=c.deploy_block, argument_filters={"requester": who})
        return [self.get(int(e["args"]["jobId"])) for e in logs]

    def tasks(self, job_id: int) -> builtins.list[TaskState]:
        """Every task's state, from one pass over the job's events (a large job: see :meth:`task_page`)."""
        c = self._c
        t, _posted, _block = reads.tracker(c, job_id)
        return [t.task_state(i) for i in range(t.total)]

    def watch(self, job_id: int, *, poll_interval: float = 0.25, timeout: float | None = None,
              confirmations: int = 0, pin: bool = False, remote_wait: float = 60.0) -> Iterator[JobEvent]:
        """Typed events of the job from its posting on, live, until every task settled or the job closed.

        Raises :class:`WaitTimeout` if ``timeout`` seconds pass first. Reorg-aware: on a reorg the progress is
        rebuilt from the posting block (events already yielded are not repeated unless they changed). With
        ``pin``, every result CID is pinned on this client's IPFS node as it lands (in the background), so the
        results stay available when the worker that made them leaves the network; when the network names a
        pinning service (``client.pinning``), it is asked to pin each result too, and :attr:`remote_pins` says, at
        the end, what it made of them (after waiting up to ``remote_wait`` seconds for it); :attr:`pinned` counts
        the pins of this node.
        """
        c = self._c
        pinner = ResultPinner(c.ipfs, remote=c.pinning, remote_wait=remote_wait) if pin else None
        try:
            yield from self._watch(job_id, poll_interval, timeout, confirmations, pinner)
        finally:
            if pinner is not None:
                self.pinned = pinner.close()
                self.remote_pins = pinner.remote

    def _watch(self, job_id: int, poll_interval: float, timeout: float | None, confirmations: int,
               pinner: ResultPinner | None) -> Iterator[JobEvent]:
        c = self._c
        view, block = reads.posted(c, job_id)

        def fresh() -> Tracker:
            return Tracker(job_id=job_id, total=view.num_tasks, replication=view.replication)

        tracker = fresh()
        stream = EventStream(c.w3, [c.market.address], [abi("IMarketplace")], StreamCursor(next_block=block),
                             confirmations=confirmations, batch=5000)
        seen: set[tuple[str, int]] = set()
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            reorg, events = stream.poll()
            if reorg is not None:
                tracker = fresh()
                stream.cursor = StreamCursor(next_block=block)
                continue
            for ev in events:
                out = tracker.apply(ev)
                if pinner is not None and out is not None and ev.name in ("ResultSubmitted", "ResultRevealed", "FailureReported"):
                    pinner.add(str(ev.args["resultCID"]), name=f"tasknet job {job_id} task {out.task_index}")
                if out is not None and (ev.tx_hash, ev.log_index) not in seen:
                    seen.add((ev.tx_hash, ev.log_index))
                    yield out
            if tracker.progress().done:
                return
            if events and stream.cursor.next_block <= c.w3.eth.block_number - confirmations:
                continue  # still catching up
            if end is not None and time.monotonic() > end:
                p = tracker.progress()
                raise WaitTimeout(f"job {job_id} is not finished after {timeout:.0f} s ({p.finalized}/{p.total} "
                                  f"finalized, {p.running} running); see why with 'tasknet job explain {job_id}'")
            time.sleep(poll_interval)

    def wait(self, job_id: int, *, timeout: float | None = None, poll_interval: float = 0.25) -> JobStatus:
        """Block until every task of the job settled (or it closed); return its status."""
        for _ev in self.watch(job_id, poll_interval=poll_interval, timeout=timeout):
            pass
        return self.get(job_id)

    def cancel(self, job_id: int, first: int = 0, count: int | None = None) -> tuple[int, int]:
        """Cancel the job's unclaimed tasks in ``first .. first+count-1`` (default: all of them); refunds their
        escrow at once. Returns (tasks cancelled, tokens refunded). The job's requester only: anyone else gets
        :class:`AccessDenied`. Emits ``TasksCancelled`` per range of tasks."""
        c = self._c
        t, posted, _block = reads.tracker(c, job_id)
        if reads.checksum(posted.requester) != c.address:
            raise AccessDenied(f"job {job_id} belongs to {posted.requester}, not {c.address}; only its "
                               "requester may cancel it")
        if t.closed:
            raise ClientError(f"job {job_id} is already closed: nothing left to cancel")
        last = t.total if count is None else min(t.total, first + count)
        # R = 1: an expired lease reopens its tasks; R > 1: a task once claimed stays taken
        busy = (t.claimed if t.replication > 1 else t.running) | t.cancelled | t.finalized | t.failed
        ranges: builtins.list[tuple[int, int]] = []
        for i in range(first, last):
            if i in busy:
                continue
            if ranges and ranges[-1][0] + ranges[-1][1] == i:
                ranges[-1] = (ranges[-1][0], ranges[-1][1] + 1)
            else:
                ranges.append((i, 1))
        cancelled = refund = 0
        for start, n in ranges:
            receipt = c._send(c.market.contract.functions.cancelTasks(job_id, start, n))
            for ev in c._events.events.TasksCancelled().process_receipt(receipt, errors=DISCARD):
                cancelled += int(ev["args"]["count"])
                refund += int(ev["args"]["refund"])
        return cancelled, refund

    def close(self, job_id: int) -> int:
        """After the deadline: refund every unfinished task (and pay the owners). Returns the refund.

        Raises :class:`ClientError` before the deadline or when the job is closed already. Emits ``JobClosed``."""
        c = self._c
        status = self.get(job_id)
        if status.closed:
            raise ClientError(f"job {job_id} is already closed")
        now = c.chain_time()
        if now <= status.deadline:
            raise ClientError(f"job {job_id}'s deadline is in {status.deadline - now} s; close it after that, or "
                              f"cancel its unclaimed tasks now with 'tasknet job cancel {job_id}'")
        receipt = c._send(c.market.contract.functions.closeJob(job_id))
        evs = c._events.events.JobClosed().process_receipt(receipt, errors=DISCARD)
        return int(evs[0]["args"]["refund"]) if evs else 0

    def failures(self, job_id: int) -> builtins.list[TaskFailure]:
        """The job's tasks that the chain failed (no majority at the replica cap) or refunded (the job closed
        first): they have no result. Tasks the requester cancelled are not failures. (Tasks whose app failed have a
        result: see ``TaskResult.outcome``.) From the job's result events and its cancellations, in one pass."""
        c = self._c
        v, block = reads.posted(c, job_id)
        found = JobResults.from_events(reads.events_of(c, job_id, block, RESULT_EVENTS))
        out = [TaskFailure(index=i, state="failed", reason=NO_RESULT["failed"]) for i in found.failed]
        if c.market.job_record(job_id).closed:
            settled = set(found.digests) | found.failed
            settled |= {i for start, n in reads.cancelled(c, job_id, block) for i in range(start, start + n)}
            out += [TaskFailure(index=i, state="refunded", reason=NO_RESULT["refunded"])
                    for i in range(v.num_tasks) if i not in settled]
        return sorted(out, key=lambda f: f.index)

    def explain(self, job_id: int, index: int | None = None) -> Explanation:
        """Why task ``index`` (default: the first open one) is not running, from what the chain shows: each reason
        with its severity and the fix (see :class:`Explanation`)."""
        c = self._c
        t, posted, block = reads.tracker(c, job_id)
        status = reads.status(c, job_id, posted, block, t.progress())
        if index is None:
            opens = [i for i in range(t.total) if t.task_state(i).state == "open"]
            index = opens[0] if opens else 0
        if not 0 <= index < t.total:
            raise ClientError(f"job {job_id} has tasks 0..{t.total - 1}; there is no task {index}")
        state = t.task_state(index).state
        allows = bool(c.market.registry.functions.appAllows(status.app_id, status.requester).call())
        pending = FailureView.model_validate(_struct(c.market.contract, "getFailure", task_id(job_id, index))) \
            if status.replication == 1 else None
        wanted = c.market.contract.events.ReplicaWanted().get_logs(
            from_block=c.deploy_block, argument_filters={"taskId": task_id(job_id, index)})
        confidence = int(c.market.contract.functions.getCredibility(job_id).call()[0])
        bound = platform_class_name(c.market.contract.functions.taskPlatformClass(task_id(job_id, index)).call()) \
            if status.arch_mask & ARCH_HOMOGENEOUS else None
        lane = t.lanes.get(index)
        checked = lane is not None and confidence != 0 and bool(c.market.contract.events.LeaseChecked().get_logs(
            from_block=c.deploy_block, argument_filters={"startTaskId": task_id(job_id, lane[0])}))
        return explain_task(status, index, state, c.chain_time(), c.market.market_params(),
                            c.apps.get(status.app_id), allows, c.workers.list(),
                            largest_input=self._largest_input(status), pending_failure=pending,
                            wanted=ReplicaWanted.model_validate(wanted[-1]["args"]) if wanted else None,
                            confidence_ppb=confidence, platform_class=bound, lane=lane, check_lane=checked)

    def _largest_input(self, status: JobStatus) -> int:
        """The largest input a task of the job announces: its dataset (size on chain) or an inputs-document
        entry; 0 when none announces a size (or the document cannot be read from here)."""
        c = self._c
        largest = 0
        if status.dataset_id:
            ev = reads.registry_logs(c, "DatasetRegistered", datasetId=status.dataset_id)
            largest = int(ev[-1]["args"]["size"]) if ev else 0
        try:
            doc = InputsDocument.model_validate(c.ipfs.cat_json(status.inputs_cid, max_bytes=16 << 20))
        except (TasknetError, ValueError):
            return largest
        return max(largest, doc.largest_inputs()[0])
