"""The chain reads the namespaces share: a job's posting, its events in one pass, its tasks' states, its
cancellations; the registry's logs; addresses checked; receipts summarised."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from web3 import Web3
from web3.types import TxReceipt

from ..exceptions import ClientError, UnknownJob
from ..market import JobView
from ._indexer import IndexerTask
from ._models import JobProgress, JobStatus, TaskState, TxInfo
from ._scan import JobResults, RawEvent, decode, job_events, raw_logs
from ._watch import JOB_EVENTS, Tracker

if TYPE_CHECKING:
    from ._client import Client

#: reasons a task ends without a result, by state
NO_RESULT = {"failed": "no majority among the replicas at the replica cap; the escrow was refunded",
             "refunded": "not finished when the job closed; the escrow was refunded"}


def tx_info(receipt: TxReceipt) -> TxInfo:
    return TxInfo(tx_hash="0x" + bytes(receipt["transactionHash"]).hex(), block_number=receipt["blockNumber"],
                  gas_used=receipt["gasUsed"])


def hex_of(value: Any) -> str:
    return value.removeprefix("0x") if isinstance(value, str) else bytes(value).hex()


def checksum(value: str) -> str:
    """``value`` as a checksummed address; a :class:`ClientError` that says so when it is not one."""
    if not Web3.is_address(value):
        raise ClientError(f"{value!r} is not an Ethereum address (0x followed by 40 hex digits)")
    return str(Web3.to_checksum_address(value))


def registry_logs(c: Client, name: str, **filters: Any) -> list[Any]:
    ev = getattr(c.market.registry.events, name)()
    return list(ev.get_logs(from_block=c.deploy_block, argument_filters=filters or None))


def app_range(c: Client) -> str:
    count = int(c.market.registry.functions.appCount().call())
    return f"apps are numbered 1..{count}" if count else "no app was registered yet"


def posted(c: Client, job_id: int) -> tuple[JobView, int]:
    """The job as its JobPosted event shows it, and that event's block; :class:`UnknownJob` when there is none."""
    logs = c._events.events.JobPosted().get_logs(from_block=c.deploy_block,
                                                  argument_filters={"jobId": job_id})
    if not logs:
        count = int(c.market.contract.functions.jobCount().call())
        known = f"jobs are numbered 1..{count}" if count else "no job was posted yet"
        raise UnknownJob(f"no job {job_id} on this marketplace ({known}); list yours with 'tasknet job list'")
    return JobView.from_event(dict(logs[0]["args"])), int(logs[0]["blockNumber"])


def events_of(c: Client, job_id: int, from_block: int, names: Sequence[str]) -> list[RawEvent]:
    """The job's ``names`` events from ``from_block`` (its posting) to the head: one pass over the logs of
    those event types, decoded only for this job (see :mod:`oracle.client._scan`)."""
    return job_events(c.w3, c.market.address, job_id, names, from_block, int(c.w3.eth.block_number))


def tracker(c: Client, job_id: int) -> tuple[Tracker, JobView, int]:
    """Every task's state, from one pass over the job's events (a whole job: for per-task views), the job as
    posted and the block it was posted in."""
    view, block = posted(c, job_id)
    t = Tracker(job_id=job_id, total=view.num_tasks, replication=view.replication)
    names = [n for n in JOB_EVENTS if hasattr(Tracker, f"_on_{n}")]
    for ev in events_of(c, job_id, block, names):
        t.fold(ev.name, ev.args)
    return t, view, block


def status(c: Client, job_id: int, v: JobView, block: int, progress: JobProgress) -> JobStatus:
    return JobStatus(**v.model_dump(exclude={"closed"}),
                     escrow_left=int(c.market.contract.functions.jobEscrow(job_id).call()),
                     closed=c.market.job_record(job_id).closed, posted_block=block, progress=progress)


def cancelled(c: Client, job_id: int, from_block: int) -> list[tuple[int, int]]:
    """The job's cancelled ranges (first index, count): its TasksCancelled events, found by their jobId."""
    out = []
    for log in raw_logs(c.w3, c.market.address, ["TasksCancelled"], from_block, int(c.w3.eth.block_number),
                        topic1="0x" + job_id.to_bytes(32, "big").hex()):
        ev = decode(log)
        if ev is not None:
            out.append((int(ev.args["firstIndex"]), int(ev.args["count"])))
    return out


def task_rows(c: Client, job_id: int, v: JobView, block: int, indexes: list[int]) -> list[TaskState]:
    """The state of a few tasks from the chain: their own events (one log query filtered on their ids), whether
    each is taken (R = 1, one batched call), the job's cancellations and whether it closed."""
    from ..protocol import task_id

    if not indexes:
        return []
    tids = [task_id(job_id, i) for i in indexes]
    names = ["ResultSubmitted", "ReplicaClaimed", "ClaimExpired", "ResultRevealed", "TaskFinalized",
             "TaskFailed", "ClaimAbandoned", "FailureReported", "FailureConfirmed"]
    events = [e for e in (decode(log) for log in raw_logs(
        c.w3, c.market.address, names, block, int(c.w3.eth.block_number),
        topic1=["0x" + t.to_bytes(32, "big").hex() for t in tids])) if e is not None]
    results = JobResults.from_events(events)
    claimed: dict[int, list[str]] = {}
    revealed: set[int] = set()
    for e in events:
        index = int(e.args["taskId"]) & 0xFFFFFFFF
        if e.name == "ReplicaClaimed":
            claimed.setdefault(index, []).append(str(e.args["worker"]))
        elif e.name in ("ClaimExpired", "ClaimAbandoned") and str(e.args["worker"]) in claimed.get(index, []):
            claimed[index].remove(str(e.args["worker"]))
        elif e.name == "ResultRevealed":
            revealed.add(index)
    taken: dict[int, bool] = {}
    if v.replication == 1:
        contract = c.market.contract
        answers = contract.functions.multicall([contract.encode_abi("isTaken", [t]) for t in tids]).call()
        taken = {i: bool(int.from_bytes(bytes(a)[-32:], "big")) for i, a in zip(indexes, answers, strict=True)}
    gone = {i for start, n in cancelled(c, job_id, block) for i in range(start, start + n)}
    closed = c.market.job_record(job_id).closed
    rows = []
    for i in indexes:
        workers = results.workers.get(i) or claimed.get(i, [])
        if i in results.digests:
            cids = results.cids.get(i) or []
            rows.append(TaskState(index=i, state="finalized", workers=workers, digest=results.digests[i],
                                  cid=cids[0] if cids else None))
        elif i in results.failed:
            rows.append(TaskState(index=i, state="failed", workers=workers))
        elif i in gone:
            rows.append(TaskState(index=i, state="cancelled"))
        elif closed:
            rows.append(TaskState(index=i, state="refunded", workers=workers))
        elif (taken.get(i) if v.replication == 1 else bool(claimed.get(i))):
            rows.append(TaskState(index=i, state="committing" if i in revealed else "claimed", workers=workers))
        else:
            rows.append(TaskState(index=i, state="open", workers=workers))
    return rows


def indexer_row(r: IndexerTask) -> TaskState:
    """An indexer's task row (``/api/tasks``) as a :class:`TaskState`."""
    state = {"running": "claimed", "revealing": "committing"}.get(r.status, r.status)
    if state not in ("open", "claimed", "committing", "finalized", "failed", "cancelled", "refunded"):
        state = "claimed"
    return TaskState(index=r.idx, state=state, workers=[r.worker] if r.worker else [],
                     digest=r.result_digest, cid=r.result_cid)
