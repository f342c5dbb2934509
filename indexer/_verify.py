"""The auditor's verifier: re-derive a task's outcome from public data alone.

Nothing here trusts the mirror: the verifier reads the marketplace's logs and the calldata of the
transactions that emitted them straight from a JSON-RPC node, and result content from IPFS. For a task it checks

* ``commit_authorized`` / ``reveal_authorized`` / ``result_authorized``: each commit, reveal or result came
  from its worker: the transaction's sender, or an EIP-712 signature (``Commit``, ``Reveal``, ``Results``,
  domain "Tasknet Marketplace" v1 on this chain and contract) that recovers to the worker;
* ``commitment``: ``keccak256(abi.encode(taskId, resultDigest, salt, worker))`` of each reveal equals the
  worker's commitment;
* ``lease``: (R = 1) the worker held a lease covering the task;
* ``majority``: the strict majority of the revealed digests over the task's replica target is the digest the
  contract finalized, with the same number of winners (or there was none when the task failed);
* ``reward``: each winner's share is ``(R * reward - fee) / winners``;
* ``slashes``: exactly the replicas the rules punish (expired claims, silent replicas, dissenting reveals)
  were slashed, each by the job's replica stake;
* ``archive_digest``: the content at each accepted result CID hashes to the digest: the sha256 of the archive,
  or of the app's declared deterministic file inside it (see :mod:`oracle.archive`);
* ``canonicalize`` (apps whose image declares a canonicalise step, :mod:`indexer._verify_canonical`): the digest
  is over the canonical part of the archive, and the step run again here on the published raw output writes the
  published canonical output (needs a Docker engine: ``docker_client``; skipped without one);
* lanes (a task of a chunk leased by lanes, fixed R > 1): its replicas are the chunk's lanes; the lane's commit,
  its reveal call rebuilding the committed root, the task's entry, and the chunk's unanimous settlement or split
  are checked by :mod:`indexer._verify_lanes` (``lane_root``, ``lane_entry``, ``lane_settle``, ``lane_split``,
  ``lane_slashes``), then the task's rounds as above;
* ``job_close`` (jobs): what a closed job refunded and paid its owners follows from its task counts;
* credibility mode (jobs posted with ``postCredibilityJob``): instead of ``majority``, the rules of
  :mod:`indexer._verify_credible` over each worker's ``verified`` count replayed from the events
  (``replica_wanted`` for every extra replica the task wanted, ``credibility`` of the accepted group against the
  job's confidence, ``spot_check``, ``reward`` over the replicas used, ``refund`` of a failed task, ``slashes``),
  and ``unused_refund``: the requester's balance grew by the rewards of the replicas the task did not use in the
  block that finalized it (read from the node's state at that block and the one before);
* ``callbacks`` (jobs with a callback): every terminal outcome reached the callback in the transaction that
  settled it: a ``CallbackDelivered`` per finished or failed task, a ``TasksEndedDelivered`` per cancelled range
  (same range) and one for a close that refunded unsettled tasks (the whole job); a delivery the callback itself
  refused (``success`` false) still passes, it is counted in the evidence.

Each :class:`Check` says pass, fail or skipped (``passed=None``: e.g. a result encrypted to the requester)
with its evidence.

A job's audit (:meth:`Verifier.job`) reads the job's events in one pass over the logs from its posting block
(grouped by task, each task's R = 1 leases among them), fetches the calldata of the transactions involved once
each, and checks its tasks ``parallel`` at a time (the result content of each comes from IPFS meanwhile), telling
``progress(done, total)`` as tasks finish. Each task's report is the one :meth:`Verifier.task` gives.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tarfile
import tempfile
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path
from typing import Any, Literal, NamedTuple

from eth_account import Account
from eth_account.messages import SignableMessage
from eth_utils.abi import event_abi_to_log_topic
from pydantic import JsonValue
from web3 import Web3

from oracle import IpfsClient
from oracle import credibility as cr
from oracle.archive import MAX_DEPTH, MAX_PATH_BYTES, decrypt_with, extract_tar, sha256_file
from oracle.canonical import CanonicalizeStep
from oracle.credibility import CredibilitySettings
from oracle.events import DecodedEvent, EventStream, StreamCursor
from oracle.exceptions import TasknetError
from oracle.market import AppView, JobRecord, JobView, Market
from oracle.protocol import (
    Eip712Domain,
    commit_message,
    commitment,
    results_message,
    reveal_message,
    split_task_id,
)
from oracle.status import STATUS_FILE, parse_status

from . import _verify_lanes as lane_checks
from . import _verify_lease as lease_checks
from ._report import Check, Report
from ._report import as_bytes as _b
from ._report import as_hex as _h
from ._verify_canonical import StepLookup, digest_of_canonical, rerun_check
from ._verify_credible import CredibleAudit, Terms, VerifiedLedger, seen_hash

MAX_ARCHIVE_BYTES = 256 << 20


def recover_signer(message: SignableMessage, signature: bytes | str) -> str | None:
    """The address that signed ``message`` (EIP-712), or None when the signature is malformed."""
    sig = bytes.fromhex(signature.removeprefix("0x")) if isinstance(signature, str) else bytes(signature)
    try:
        return str(Account.recover_message(message, signature=sig))
    except Exception:  # noqa: BLE001 - eth_keys raises several types for malformed signatures
        return None


def signature_check(name: str, message: SignableMessage, signature: bytes | str, worker: str, **evidence: Any
                    ) -> Check:
    """Pass when ``signature`` over ``message`` recovers to ``worker``."""
    signer = recover_signer(message, signature)
    ok = signer is not None and signer.lower() == worker.lower()
    sig_hex = signature if isinstance(signature, str) else "0x" + bytes(signature).hex()
    return Check(name=name, subject=worker, passed=ok,
                 detail=f"relayed signature recovers to {signer}" + ("" if ok else f", not the worker {worker}"),
                 evidence={"signer": signer, "signature": sig_hex, **evidence})


def strict_majority(digests: list[str], target: int) -> tuple[str | None, int]:
    """The digest held by more than half of ``target`` (the contract's ``Consensus.strictMajority``)."""
    for i, d in enumerate(digests):
        n = sum(1 for x in digests[i:] if x == d)
        if n * 2 > target:
            return d, n
    return None, 0


class Verifier:
    """Audits tasks of the marketplace at ``marketplace`` from public data (``w3`` node, ``ipfs`` content).

    ``decryption_key`` (the requester's X25519 private key) lets the archive check open encrypted results;
    without it those checks are skipped, not failed.
    """

    def __init__(self, w3: Web3, marketplace: str, ipfs: IpfsClient | None, *, from_block: int = 0,
                 decryption_key: str | bytes | None = None, docker_client: Any | None = None) -> None:
        self.w3 = w3
        self.market = Market(w3, marketplace)
        self.ipfs = ipfs
        self.from_block = from_block
        self.decryption_key = decryption_key
        #: with a Docker engine, an app's canonicalise step is read from its image and re-run on the raw output
        self._steps = StepLookup(docker_client)
        self._decoder = EventStream(w3, self.market.addresses, self.market.event_abis, StreamCursor(next_block=0))
        self._topics = {item["name"]: "0x" + bytes(event_abi_to_log_topic(item)).hex()  # type: ignore[arg-type]
                        for abi in self.market.event_abis for item in abi if item.get("type") == "event"}
        self.domain = Eip712Domain(chain_id=self.market.chain_id, verifying_contract=self.market.address)
        self._tx_cache: dict[str, tuple[str, list[MarketCall]]] = {}
        self._tx_lock = threading.Lock()
        self._posted: dict[int, JobView | None] = {}  # JobPosted, by job id (never changes)
        self._settings: dict[int, CredibilitySettings | None] = {}  # JobCredibility, by job id

    # -- public data ------------------------------------------------------------------------------
    def _logs(self, address: str, topics: list[Any]) -> list[DecodedEvent]:
        logs = self.w3.eth.get_logs({"fromBlock": self.from_block, "toBlock": "latest",
                                     "address": Web3.to_checksum_address(address), "topics": topics})
        out = [e for e in (self._decoder._decode(log) for log in logs) if e is not None]
        return sorted(out, key=lambda e: e.key)

    @staticmethod
    def _topic(n: int | str) -> str:
        if isinstance(n, str):
            return "0x" + "00" * 12 + n.lower().removeprefix("0x")
        return "0x" + n.to_bytes(32, "big").hex()

    def _calls(self, tx_hash: str) -> tuple[str, list[MarketCall]]:
        """The sender of a transaction and the marketplace calls in it (multicall unpacked); read once."""
        cached = self._tx_cache.get(tx_hash)
        if cached is None:
            tx = self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
            calls: list[MarketCall] = []
            self._decode_call(_b(tx["input"]), calls)
            cached = (str(tx["from"]), calls)
            with self._tx_lock:
                if len(self._tx_cache) > 50_000:  # a long-lived verifier (the indexer's) keeps a bounded cache
                    self._tx_cache.clear()
                self._tx_cache[tx_hash] = cached
        return cached

    def _decode_call(self, data: bytes, out: list[MarketCall]) -> None:
        try:
            fn, args = self.market.contract.decode_function_input(data)
        except Exception:  # noqa: BLE001 - not a marketplace call (e.g. a contract calling in): nothing to read
            return
        if fn.fn_name == "multicall":
            for inner in args["data"]:
                self._decode_call(_b(inner), out)
        else:
            out.append(MarketCall(fn.fn_name, dict(args)))

    def _job(self, job_id: int) -> tuple[JobView | None, AppView | None, StoredJob]:
        job, app, stored, _ = self._job_posted(job_id)
        return job, app, stored

    def _job_posted(self, job_id: int) -> tuple[JobView | None, AppView | None, StoredJob, int]:
        """The job as posted, its app, its storage, and the block it was posted in."""
        posted = self._logs(self.market.address, [self._topics["JobPosted"], self._topic(job_id)])
        if not posted:
            return None, None, StoredJob(), 0
        job = JobView.from_event(posted[0].args)
        apps = self._logs(self.market.registry.address, [self._topics["AppRegistered"], self._topic(job.app_id)])
        app = AppView.from_event(apps[0].args) if apps else None
        return job, app, StoredJob.of(self.market.job_record(job_id)), posted[0].block_number

    # -- tasks ------------------------------------------------------------------------------------
    def task(self, tid: int) -> Report:
        job_id, _ = split_task_id(tid)
        job, app, stored = self._job(job_id)
        if job is None:
            return Report(kind="task", id=tid, status="unknown", passed=False, checks=[Check(
                name="job_exists", subject=f"job {job_id}", passed=False,
                detail=f"no JobPosted event for job {job_id}: the task id is wrong or the job is on another chain")])
        events = self._logs(self.market.address, [None, self._topic(tid)])
        events += [e for e in self._logs(self.market.address, [self._topics["WorkerSlashed"], None,
                                                               self._topic(tid)]) if e not in events]
        events.sort(key=lambda e: e.key)
        lanes = lane_checks.chunk_events(self, tid) if job.replication > 1 else []
        return self._task_report(tid, job, app, stored, events, None, lanes=lanes)

    def _task_report(self, tid: int, job: JobView, app: AppView | None, stored: StoredJob,
                     events: list[DecodedEvent], leases: list[DecodedEvent] | None,
                     ledger: VerifiedLedger | None = None, *, lanes: list[DecodedEvent] | None = None) -> Report:
        """The report of task ``tid`` from its events (in chain order); ``leases``: the job's TasksClaimed events
        (R = 1), or None to ask the node for the leases of the worker that submitted; ``ledger`` (credibility
        mode): the verified counts of the job's workers, or None to replay those of the task's; ``lanes`` (fixed
        R > 1): the lane events of the job or of the task's chunk, with the slashes naming chunks' first tasks."""
        settings = self._credibility(job.job_id) if job.replication > 1 else None
        if job.replication == 1:
            status, checks = self._single(tid, job, app, events, leases)
        elif settings is not None:
            status, checks = self._credible(tid, job, app, stored, events, settings, ledger, lanes or [])
        else:
            status, checks = self._replicated(tid, job, app, stored, events, lanes or [])
        return Report(kind="task", id=tid, status=status, passed=all(c.passed is not False for c in checks),
                      checks=checks)

    def _single(self, tid: int, job: JobView, app: AppView | None, events: list[DecodedEvent],
                job_leases: list[DecodedEvent] | None = None) -> tuple[str, list[Check]]:
        checks: list[Check] = []
        results = [e for e in events if e.name == "ResultSubmitted"]
        confirmed = [e for e in events if e.name == "FailureConfirmed"]
        if confirmed and not results:
            return "finalized", self._confirmed_failure(job, app, confirmed[-1], events)
        if not results:
            return "failed" if any(e.name == "TaskFailed" for e in events) else "running", checks
        ev = results[-1]
        worker, digest, cid = ev.args["worker"], _h(ev.args["resultDigest"]), ev.args["resultCID"]
        if job_leases is None:
            job_leases = self._logs(self.market.address, [self._topics["TasksClaimed"], None, self._topic(worker)])
        leases = [e for e in job_leases
                  if str(e.args["worker"]).lower() == str(worker).lower() and e.key < ev.key
                  and e.args["startTaskId"] <= tid < e.args["startTaskId"] + e.args["count"]]
        checks.append(Check(name="lease", subject=worker, passed=bool(leases),
                            detail="the worker leased the task before its result" if leases else
                            "no lease of this task by the worker precedes the result",
                            evidence={"lease_tx": leases[-1].tx_hash if leases else None}))
        checks.append(self._result_authorized(tid, worker, digest, cid, ev.tx_hash))
        checks += self._archive(job, app, digest, [cid])
        return "finalized", checks

    def _confirmed_failure(self, job: JobView, app: AppView | None, ev: DecodedEvent,
                           events: list[DecodedEvent]) -> list[Check]:
        """(R = 1) A failure two workers reported with the same digest: both reports exist, come from the two
        workers the settlement names, precede it, and the archives they point to hash to that digest."""
        digest = _h(ev.args["resultDigest"])
        first, confirmer = ev.args["firstWorker"].lower(), ev.args["confirmer"].lower()
        reports = {e.args["worker"].lower(): e for e in events
                   if e.name == "FailureReported" and e.key <= ev.key and _h(e.args["resultDigest"]) == digest}
        ok = first in reports and confirmer in reports and first != confirmer
        checks = [Check(name="failure_confirmed", subject=f"task {ev.args['taskId']}", passed=ok,
                        detail="two different workers reported this failure digest before it settled" if ok else
                        "the settlement names reports that do not exist, or one worker twice",
                        evidence={"first": first, "confirmer": confirmer, "digest": digest})]
        return checks + self._archive(job, app, digest, sorted({str(e.args["resultCID"]) for e in reports.values()}))

    def _result_authorized(self, tid: int, worker: str, digest: str, cid: str, tx_hash: str) -> Check:
        sender, calls = self._calls(tx_hash)
        base = {"tx": tx_hash, "sender": sender}
        for name, args in calls:
            if name == "submit" and args["taskId"] == tid:
                ok = sender.lower() == worker.lower() and _h(args["resultDigest"]) == digest
                return Check(name="result_authorized", subject=worker, passed=ok,
                             detail=f"submitted directly by {sender}", evidence=base)
            if name == "submitRange" and args["firstTaskId"] <= tid < args["firstTaskId"] + len(args["resultDigests"]):
                i = tid - args["firstTaskId"]
                ok = sender.lower() == worker.lower() and _h(args["resultDigests"][i]) == digest
                return Check(name="result_authorized", subject=worker, passed=ok,
                             detail=f"submitted in a range by {sender}", evidence=base)
            if name == "relayResults":
                for b in args["batches"]:
                    start, first, digests, cids, cbs, sig = _fields(b, ["startTaskId", "firstTaskId", "resultDigests",
                                                                        "resultCIDs", "callbackData", "signature"])
                    if first <= tid < first + len(digests):
                        msg = results_message(self.domain, start, first, [_b(d) for d in digests], list(cids),
                                              [_b(c) for c in cbs])
                        check = signature_check("result_authorized", msg, sig, worker, **base)
                        if _h(digests[tid - first]) != digest or cids[tid - first] != cid:
                            check.passed = False
                            check.detail += "; the signed batch does not hold the digest and CID of the event"
                        return check
        return Check(name="result_authorized", subject=worker, passed=False,
                     detail="no call in the transaction submits this result", evidence=base)

    def _authorized(self, kind: Literal["commit", "reveal"], tid: int, worker: str, tx_hash: str,
                    match: dict[str, str]) -> tuple[Check, str | None]:
        """Who made a commit or reveal: the sender itself, or a relayed signature. Returns the salt the call
        reveals (0x-hex; "" for a commit), or None when no call made it."""
        sender, calls = self._calls(tx_hash)
        name = f"{kind}_authorized"
        base = {"tx": tx_hash, "sender": sender}
        for fn, args in calls:
            if fn == kind and args["taskId"] == tid and sender.lower() == worker.lower():
                fields = {k: args[k] for k in args}
                if all(_h(fields[k]) == v for k, v in match.items()):
                    return Check(name=name, subject=worker, passed=True, detail=f"sent by the worker {sender}",
                                 evidence=base), _salt_of(fields)
            if fn == ("relayCommits" if kind == "commit" else "relayReveals"):
                for entry in args["commits" if kind == "commit" else "reveals"]:
                    if kind == "commit":
                        t, c, sig = _fields(entry, ["taskId", "commitment", "signature"])
                        fields = {"taskId": t, "commitment": c}
                        msg = commit_message(self.domain, t, _b(c))
                    else:
                        t, d, salt, cid, cb, sig = _fields(entry, ["taskId", "resultDigest", "salt", "resultCID",
                                                                   "callbackData", "signature"])
                        fields = {"taskId": t, "resultDigest": d, "salt": salt, "resultCID": cid, "callbackData": cb}
                        msg = reveal_message(self.domain, t, _b(d), _b(salt), cid, _b(cb))
                    if t != tid or not all(_h(fields[k]) == v for k, v in match.items()):
                        continue
                    signer = recover_signer(msg, sig)
                    if signer is not None and signer.lower() != worker.lower():
                        continue  # another worker's entry for the same task and values
                    return signature_check(name, msg, sig, worker, relayer=sender, **base), _salt_of(fields)
        return Check(name=name, subject=worker, passed=False,
                     detail=f"no {kind} by or signed by the worker in the transaction", evidence=base), None

    def _commit_reveal(self, tid: int, ev: DecodedEvent, commitments: dict[str, str]) -> list[Check]:
        """``commit_authorized`` of a ResultCommitted (its value kept in ``commitments`` by worker), or
        ``reveal_authorized`` and ``commitment`` of a ResultRevealed."""
        w: str = ev.args["worker"]
        if ev.name == "ResultCommitted":
            c = commitments[w] = _h(ev.args["commitment"])
            return [self._authorized("commit", tid, w, ev.tx_hash, {"commitment": c})[0]]
        digest = _h(ev.args["resultDigest"])
        check, salt = self._authorized("reveal", tid, w, ev.tx_hash, {"resultDigest": digest})
        if salt is None:
            return [check]
        recomputed = "0x" + commitment(tid, digest, _b(salt), w).hex()
        ok = recomputed == commitments.get(w)
        return [check, Check(name="commitment", subject=w, passed=ok,
                             detail="the reveal opens the commitment" if ok else
                             "keccak256(taskId, digest, salt, worker) differs from the committed value",
                             evidence={"committed": commitments.get(w), "recomputed": recomputed,
                                       "salt": salt, "digest": digest})]

    def _replicated(self, tid: int, job: JobView, app: AppView | None, stored: StoredJob,
                    events: list[DecodedEvent], lane_events: list[DecodedEvent]) -> tuple[str, list[Check]]:
        """A fixed-R task: its rounds replayed (a task of a lane chunk: its lanes first, see
        :mod:`indexer._verify_lanes`)."""
        st = _Rounds(target=job.replication)
        fee_bps = stored.fee_bps
        lanes, events = lane_checks.Lanes.of(self, tid, job.replication, stored.replica_stake, lane_events, events)
        for ev in events:
            a = ev.args
            w: str = a.get("worker") or ""
            if lanes is not None and lanes.handles(ev):
                st.checks += lanes.apply(ev, st.live, _Replica)
                st.status = "failed" if lanes.released else st.status
            elif ev.name == "ReplicaClaimed":
                st.live[w] = _Replica()
            elif ev.name in ("ResultCommitted", "ResultRevealed"):
                st.checks += self._commit_reveal(tid, ev, st.commitments)
                if ev.name == "ResultRevealed":
                    st.live[w] = _Replica(digest=_h(a["resultDigest"]), cid=a["resultCID"])
            elif ev.name == "ClaimExpired":
                st.live.pop(w, None)
                st.expected_slash.append(w)
            elif ev.name == "WorkerSlashed":
                st.actual_slash.append((w, int(a["amount"])))
            elif ev.name == "ReplicaReleased":
                st.live.pop(w, None)
                if a["slashed"]:
                    st.expected_slash.append(w)
                st.status = "failed"
            elif ev.name in ("ReplicasAdded", "TaskFinalized", "TaskFailed"):
                if lanes is not None and not (lanes.split or lanes.dissolved) and ev.name == "TaskFinalized":
                    st.checks.append(lanes.settle_check(ev))
                _round_end(st, ev, job, fee_bps)
        if st.status in ("finalized", "failed") or st.actual_slash:
            st.checks.append(_slash_check(st.expected_slash, st.actual_slash, stored.replica_stake))
        lane_slash = lanes.slash_check() if lanes is not None else None
        if lane_slash is not None:
            st.checks.append(lane_slash)
        if st.status == "finalized" and st.winner is not None:
            st.checks += self._archive(job, app, st.winner, st.winners_cids)
        return st.status, st.checks

    # -- credibility mode -------------------------------------------------------------------------
    def _credible(self, tid: int, job: JobView, app: AppView | None, stored: StoredJob,
                  events: list[DecodedEvent], settings: CredibilitySettings, ledger: VerifiedLedger | None,
                  lane_events: list[DecodedEvent]) -> tuple[str, list[Check]]:
        """A credibility-mode task: who committed and revealed, then the rules of :mod:`indexer._verify_credible`
        over the workers' replayed verified counts, the unused replicas' refund and the accepted archive (a task of
        a check chunk: its lanes replayed as its first two replicas, :mod:`indexer._verify_lanes`)."""
        if any(e.name == "ResultSubmitted" for e in events):  # a credible lease revealed it open: final alone
            return lease_checks.open_task(self, tid, job, app, events, settings, ledger)
        has_callback = int(job.callback, 16) != 0
        lanes, events = lane_checks.Lanes.of(self, tid, 2, stored.replica_stake, lane_events, events)
        if lanes is not None:
            lanes.credibility, lanes.has_callback = settings, has_callback
        commitments: dict[str, str] = {}
        checks: list[Check] = []
        sealed: lease_checks.RangeEntry | None = None
        for ev in events:
            if lanes is not None and lanes.handles(ev):
                continue  # the audit replays the lanes
            if ev.name == "ResultCommitted" and not commitments and lease_checks.is_range_reveal(self, ev.tx_hash):
                # a credible lease's task sealed at the lease's reveal: its first replica's commitment is the entry
                check, sealed = lease_checks.sealed_commit(self, tid, ev)
                commitments[str(ev.args["worker"])] = _h(ev.args["commitment"])
                checks.append(check)
            elif ev.name in ("ResultCommitted", "ResultRevealed"):
                checks += self._commit_reveal(tid, ev, commitments)
        if ledger is None:
            ledger = self._ledger({str(e.args["worker"]) for e in events if e.name in ("ReplicaClaimed", "LaneClaimed")})
        terms = Terms(settings=settings, cap=job.replication, reward=job.reward,
                      fee_bps=stored.fee_bps, replica_stake=stored.replica_stake,
                      owners_price=job.escrow // max(1, job.num_tasks) - job.replication * job.reward)
        audit = CredibleAudit(tid, terms, ledger, self._seed)
        if sealed is not None:
            audit.sealed_at(sealed.commit_block, cr.checked_as_lane(sealed.tasks, has_callback))
        checks += audit.run(events, lanes)
        final = next((e for e in events if e.name == "TaskFinalized"), None)
        if audit.status == "finalized" and final is not None and audit.winner is not None:
            checks.append(self._unused_refund(job, final, audit.unused))
            checks += self._archive(job, app, audit.winner, audit.winner_cids)
        return audit.status, checks

    def _credibility(self, job_id: int) -> CredibilitySettings | None:
        """The job's credibility settings (its JobCredibility event); None for a job with a fixed R."""
        if job_id not in self._settings:
            logs = self._logs(self.market.address, [self._topics["JobCredibility"], self._topic(job_id)])
            a = logs[0].args if logs else None
            self._settings[job_id] = None if a is None else CredibilitySettings(
                int(a["confidencePpb"]), int(a["faultBps"]), int(a["spotCheckBps"]))
        return self._settings[job_id]

    def _ledger(self, workers: set[str]) -> VerifiedLedger:
        """The verified counts of ``workers`` through time, replayed from their slashes, their reveals and the
        settlements of the tasks they revealed on, from ``from_block`` (the default 0 replays whole histories; a
        later start misses what came before)."""
        addr, t = self.market.address, self._topics
        slashes: list[DecodedEvent] = []
        reveals: list[DecodedEvent] = []
        finals: list[DecodedEvent] = []
        ordered = sorted(workers)
        for i in range(0, len(ordered), 200):
            topics = [self._topic(w) for w in ordered[i:i + 200]]
            slashes += self._logs(addr, [t["WorkerSlashed"], topics])
            reveals += self._logs(addr, [t["ResultRevealed"], None, topics])
        tids = sorted({int(e.args["taskId"]) for e in reveals})
        if len(tids) > 2000:  # long histories: every settlement in one query beats thousands of filtered ones
            finals = self._logs(addr, [t["TaskFinalized"]])
        else:
            for i in range(0, len(tids), 200):
                finals += self._logs(addr, [t["TaskFinalized"], [self._topic(x) for x in tids[i:i + 200]]])
        return VerifiedLedger.replay(workers, slashes, reveals, finals)

    def _seed(self, commit_block: int, at_block: int) -> bytes:
        """What ``blockhash(commit_block)`` gave a call in ``at_block``."""
        return seen_hash(commit_block, at_block, lambda n: bytes(self.w3.eth.get_block(n)["hash"]))

    def _job_view(self, job_id: int) -> JobView | None:
        """The job as its JobPosted event states it (cached: it never changes)."""
        if job_id not in self._posted:
            logs = self._logs(self.market.address, [self._topics["JobPosted"], self._topic(job_id)])
            self._posted[job_id] = JobView.from_event(logs[0].args) if logs else None
        return self._posted[job_id]

    def _unused_refund(self, job: JobView, final: DecodedEvent, unused: int) -> Check:
        """The requester's marketplace balance grew by the unused replicas' rewards in the block that finalized the
        task, once the block's other moves of that balance are set apart. No event states the refund: this reads
        the balance at that block and the one before (old blocks need an archive node)."""
        n, req = final.block_number, Web3.to_checksum_address(job.requester)
        evidence: dict[str, JsonValue] = {"unused": str(unused), "block": n, "requester": req}
        try:
            balance = self.market.contract.functions.balanceOf(req)
            delta = int(balance.call(block_identifier=n)) - int(balance.call(block_identifier=n - 1))
            other, unknown = self._requester_moves(req, n, final)
        except Exception as exc:  # noqa: BLE001 - a node that pruned the state of that block answers with an error
            return Check(name="unused_refund", subject="task", passed=None, evidence=evidence,
                         detail=f"the requester's balance around block {n} cannot be read from this node: {exc}")
        evidence.update(balance_delta=str(delta), other_moves=str(other))
        if unknown:
            return Check(name="unused_refund", subject="task", passed=None, evidence=evidence,
                         detail=f"block {n} also moves the requester's balance in ways its events do not price "
                                f"({'; '.join(unknown)}): the refund cannot be told apart")
        ok = delta == unused + other
        return Check(name="unused_refund", subject="task", passed=ok, evidence=evidence,
                     detail=f"the requester got {unused} back for the replicas the task did not use" if ok else
                     f"the requester's balance moved by {delta} in block {n}, where {unused} for the unused replicas "
                     f"and {other} for the block's other moves were due")

    def _requester_moves(self, req: str, n: int, final: DecodedEvent) -> tuple[int, list[str]]:
        """What block ``n``'s events other than ``final`` add to ``req``'s balance, and the moves they cannot price
        (``req`` also paid as a worker, as the treasury, or as an owner at a job's close)."""
        logs = [e for e in (self._decoder._decode(log) for log in self.w3.eth.get_logs(
            {"fromBlock": n, "toBlock": n, "address": self.market.address})) if e is not None and e.key != final.key]
        other, unknown, me = 0, [], req.lower()

        def mine(job_id: int) -> bool:
            view = self._job_view(job_id)
            return view is not None and view.requester.lower() == me
        for e in logs:
            a = e.args
            job_id = int(a["jobId"]) if "jobId" in a else int(a["taskId"]) >> 32 if "taskId" in a else 0
            if e.name in ("Deposited", "Withdrawn", "Unstaked") and str(a.get("account", a.get("worker"))).lower() == me:
                other += int(a["amount"]) * (-1 if e.name == "Withdrawn" else 1)
            elif e.name == "JobPosted" and str(a["requester"]).lower() == me:
                other -= int(a["escrow"])
            elif e.name in ("TasksCancelled", "JobClosed", "TaskFailed") and mine(job_id):
                other += int(a["refund"])
            elif e.name == "TaskFinalized" and mine(job_id):
                other += self._unused_of(int(a["taskId"]), e.key)
            elif e.name == "ResultSubmitted" and mine(job_id) and (view := self._job_view(job_id)) is not None \
                    and view.replication > 1:  # a credible lease's open result: the cap's other replicas come back
                other += (view.replication - 1) * view.reward
            if e.name == "JobClosed" and int(a["appPaid"]) + int(a["datasetPaid"]) and self._owner_paid(me, e, n):
                unknown.append(f"it owns the app or dataset of job {a['jobId']}, paid at its close")
        contract = self.market.contract.functions
        if int(contract.getWorker(req).call(block_identifier=n)[4]) & 1 and any(
                e.name in ("TaskFinalized", "ResultSubmitted", "FailureConfirmed") for e in logs):
            unknown.append("it is also a registered worker and results were paid in the block")
        if str(contract.treasury().call(block_identifier=n)).lower() == me:
            unknown.append("it is the treasury")
        return other, unknown

    def _owner_paid(self, me: str, closed: DecodedEvent, n: int) -> bool:
        view = self._job_view(int(closed.args["jobId"]))
        if view is None:
            return False
        owners = self.market.registry.functions.owners(view.app_id, view.dataset_id).call(block_identifier=n)
        return me in {str(o).lower() for o in owners}

    def _unused_of(self, tid: int, key: tuple[int, int]) -> int:
        """(credibility mode) The unused replicas' rewards task ``tid`` refunded when it finalized at ``key``."""
        view, settings = self._job_view(tid >> 32), self._credibility(tid >> 32)
        if view is None or settings is None:
            return 0
        added = [e for e in self._logs(self.market.address, [self._topics["ReplicasAdded"], self._topic(tid)])
                 if e.key < key]
        # a check chunk's task starts with two replicas, its lanes (no ReplicasAdded says so)
        target = int(added[-1].args["target"]) if added else 2 if lane_checks.chunk_events(self, tid) else 1
        return (view.replication - target) * view.reward

    # -- content ----------------------------------------------------------------------------------
    def _archive(self, job: JobView, app: AppView | None, digest: str, cids: list[str]) -> list[Check]:
        out = []
        det = app.deterministic_file if app else ""
        step, unknown = self._steps.step(app)
        for cid in cids:
            ev: dict[str, JsonValue] = {"cid": cid, "digest": digest, "deterministic_file": det or None}
            if self.ipfs is None:
                out.append(Check(name="archive_digest", subject=cid, passed=None,
                                 detail="no IPFS API configured: content not checked", evidence=ev))
                continue
            try:
                data = self.ipfs.cat(cid, max_bytes=MAX_ARCHIVE_BYTES, timeout=30)
            except TasknetError as exc:
                out.append(Check(name="archive_digest", subject=cid, passed=False,
                                 detail=f"the result content cannot be fetched: {exc}", evidence=ev))
                continue
            if job.encryption_key:
                if self.decryption_key is None:
                    out.append(Check(name="archive_digest", subject=cid, passed=None,
                                     detail="the result is encrypted to the requester; pass its key to check it",
                                     evidence=ev))
                    continue
                try:
                    data = decrypt_with(self.decryption_key, data)
                except TasknetError as exc:
                    out.append(Check(name="archive_digest", subject=cid, passed=False, detail=str(exc), evidence=ev))
                    continue
            extra: list[Check] = []
            if step is not None or (unknown and _has_raw(data)):
                actual, how, extra = self._canonical(data, det, step, unknown, app, cid, digest)
            else:
                actual, how = self._digest_of(data, det)
            ev.update(computed="0x" + actual if actual else None, over=how, run=_run_reason(data))
            ok = actual is not None and "0x" + actual == digest
            out.append(Check(name="archive_digest", subject=cid, passed=ok,
                             detail=f"sha256 of the {how} matches the digest" if ok else
                             f"sha256 of the {how} does not match the revealed digest", evidence=ev))
            out += extra
        return out

    def _canonical(self, data: bytes, det: str, step: CanonicalizeStep | None, unknown: str, app: AppView | None,
                   cid: str, digest: str) -> tuple[str | None, str, list[Check]]:
        """A canonicalised result (see :mod:`indexer._verify_canonical`): its digest over the canonical part, and
        the ``canonicalize`` re-run (skipped when the step cannot be read here)."""
        with tempfile.TemporaryDirectory(prefix="tasknet-audit-") as tmp:
            try:
                with tarfile.open(fileobj=BytesIO(data), mode="r:") as tar:
                    extract_tar(tar, tmp, max_bytes=MAX_ARCHIVE_BYTES, max_depth=MAX_DEPTH + 2,
                                max_path_bytes=MAX_PATH_BYTES + len("raw/output/"))
            except (tarfile.TarError, TasknetError):
                return None, "canonical output (the content is not a result archive)", []
            actual = digest_of_canonical(Path(tmp), det)
            how = "canonical output and status (raw/ left out)"
            if step is None or app is None:
                return actual, how, [Check(name="canonicalize", subject=cid, passed=None,
                                           detail=f"the step was not re-run: {unknown}", evidence={"digest": digest})]
            return actual, how, [rerun_check(self._steps, step, app, Path(tmp), cid, {"digest": digest})]

    @staticmethod
    def _digest_of(data: bytes, deterministic_file: str) -> tuple[str | None, str]:
        """The digest a worker commits to: the declared deterministic file's sha256 when the run succeeded, else
        (no such file declared, or a failed run: its output proves nothing) the whole archive's."""
        if not deterministic_file or _run_reason(data) not in ("ok", None):
            return hashlib.sha256(data).hexdigest(), "archive"
        with tempfile.TemporaryDirectory(prefix="tasknet-audit-") as tmp:
            try:
                with tarfile.open(fileobj=BytesIO(data), mode="r:") as tar:
                    extract_tar(tar, tmp, max_bytes=MAX_ARCHIVE_BYTES)
            except (tarfile.TarError, TasknetError):
                return None, f"deterministic file {deterministic_file!r} (the content is not a result archive)"
            path = Path(tmp) / "output" / deterministic_file
            if not path.is_file():
                return None, f"deterministic file {deterministic_file!r} (missing from the archive)"
            return sha256_file(path), f"deterministic file {deterministic_file!r}"

    # -- jobs -------------------------------------------------------------------------------------
    #: events a job's audit reads, in one pass from the job's posting block
    JOB_AUDIT_EVENTS = ("ReplicaClaimed", "ResultCommitted", "ResultRevealed", "ClaimExpired", "WorkerSlashed",
                        "ReplicaReleased", "ReplicasAdded", "TaskFinalized", "TaskFailed", "ResultSubmitted",
                        "TasksClaimed", "TaskReleased", "CallbackDelivered", "LeaseExpired", "TasksCancelled",
                        "JobClosed", "FailureReported", "FailureConfirmed", "ClaimAbandoned", "TasksEndedDelivered",
                        "ReplicaWanted", *lane_checks.LANE_EVENTS)

    def _job_logs(self, job_id: int, from_block: int) -> list[DecodedEvent]:
        """The job's events from ``from_block`` on, in chain order: one ``eth_getLogs`` per range of blocks over
        the event types a job's audit reads; a log is decoded only when its ids name this job."""
        topics = [[self._topics[n] for n in self.JOB_AUDIT_EVENTS if n in self._topics]]
        head = int(self.w3.eth.block_number)
        out: list[DecodedEvent] = []
        start, batch = from_block, 50_000
        by_job = {self._topics[n] for n in ("TasksCancelled", "JobClosed", "TasksEndedDelivered")}
        slashed = self._topics["WorkerSlashed"]
        while start <= head:
            end = min(head, start + batch - 1)
            for log in self.w3.eth.get_logs({"fromBlock": start, "toBlock": end,
                                             "address": self.market.address, "topics": topics}):
                t = log["topics"]
                topic0 = "0x" + bytes(t[0]).hex()
                ident = int.from_bytes(bytes(t[2] if topic0 == slashed else t[1]), "big")
                if (ident if topic0 in by_job else ident >> 32) != job_id:
                    continue
                ev = self._decoder._decode(log)
                if ev is not None:
                    out.append(ev)
            start = end + 1
        out.sort(key=lambda e: e.key)
        return out

    def job(self, job_id: int, *, parallel: int = 4, progress: Callable[[int, int], None] | None = None,
            on_task: Callable[[Report], None] | None = None) -> Report:
        """Audit every claimed task of the job and its closing payments, ``parallel`` tasks at a time;
        ``progress(done, total)`` after each task, ``on_task(report)`` with each task's report as it is done."""
        job, app, stored, posted_block = self._job_posted(job_id)
        if job is None:
            return Report(kind="job", id=job_id, status="unknown", passed=False, checks=[Check(
                name="job_exists", subject=f"job {job_id}", passed=False, detail=f"no JobPosted event for job {job_id}")])
        has_callback = int(job.callback, 16) != 0
        logs = self._job_logs(job_id, posted_block)
        per_task, leases, tids, (finished, failed, cancelled), closed = _by_task(logs)
        lanes = [e for e in logs if e.name in lane_checks.LANE_EVENTS or e.name == "WorkerSlashed"]
        ordered = sorted(tids)
        ledger = None  # credibility mode: the verified counts of every worker of the job, replayed once
        if job.replication > 1 and self._credibility(job_id) is not None:
            ledger = self._ledger({str(e.args["worker"]) for e in logs
                                   if e.name in ("ReplicaClaimed", "TasksClaimed", "ResultSubmitted", "LaneClaimed")})
        # the calldata of every transaction a check reads, fetched once each (a batch of results is one transaction)
        txs = sorted({e.tx_hash for t in ordered for e in per_task.get(t, [])
                      if e.name in ("ResultSubmitted", "ResultCommitted", "ResultRevealed", "LaneCommitted",
                                    "LaneRevealed")})
        done = 0
        reports: dict[int, Report] = {}
        lock = threading.Lock()

        def audit(tid: int) -> None:
            nonlocal done
            report = self._task_report(tid, job, app, stored, per_task.get(tid, []), leases, ledger, lanes=lanes)
            with lock:
                reports[tid] = report
                done += 1
                if on_task is not None:
                    on_task(report)
                if progress is not None:
                    progress(done, len(ordered))

        if progress is not None:
            progress(0, len(ordered))
        with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="tasknet-audit") as pool:
            list(pool.map(self._calls, txs))
            list(pool.map(audit, ordered))
        checks = [] if closed is None else [_close_check(job, closed, finished, failed, cancelled)]
        if has_callback:
            checks.append(_callback_check(job_id, job.num_tasks, job.callback, logs))  # the job's own events
        status = "closed" if closed is not None or stored.flags & 1 else "open"
        tasks = [reports[t] for t in ordered]
        failed_runs = sum(1 for r in tasks if r.run not in (None, "ok"))
        counts = {"succeeded": finished - failed_runs, "failed_runs": failed_runs, "failed": failed,
                  "cancelled": cancelled, "unsettled": job.num_tasks - finished - failed - cancelled}
        return Report(kind="job", id=job_id, status=status,
                      passed=all(c.passed is not False for c in checks) and all(r.passed for r in tasks),
                      checks=checks, tasks=tasks, counts=counts)


def _by_task(logs: list[DecodedEvent]) -> tuple[dict[int, list[DecodedEvent]], list[DecodedEvent], set[int],
                                                tuple[int, int, int], DecodedEvent | None]:
    """A job's events sorted out: each task's events, the leases (``TasksClaimed``), the tasks that were claimed
    or ended, the counts of finished, failed and cancelled tasks, and the ``JobClosed`` event if any."""
    per_task: dict[int, list[DecodedEvent]] = {}
    leases: list[DecodedEvent] = []
    tids: set[int] = set()
    finished = failed = cancelled = 0
    closed: DecodedEvent | None = None
    for e in logs:
        if e.name in ("CallbackDelivered", "TasksEndedDelivered"):
            continue
        if e.name in ("TasksCancelled", "JobClosed"):
            cancelled += int(e.args.get("count", 0))
            closed = e if e.name == "JobClosed" else closed
            continue
        tid = int(e.args["taskId"] if "taskId" in e.args else e.args["startTaskId"])
        per_task.setdefault(tid, []).append(e)
        if e.name == "TasksClaimed":
            leases.append(e)
        if e.name == "LaneClaimed":  # a chunk's tasks are claimed by its first lane
            tids.update(range(tid, tid + int(e.args["count"])))
        if e.name in ("ReplicaClaimed", "ResultSubmitted", "TaskFinalized", "TaskFailed", "FailureConfirmed",
                      "FailureReported"):
            tids.add(tid)
            finished += e.name in ("ResultSubmitted", "TaskFinalized", "FailureConfirmed")
            failed += e.name == "TaskFailed"
    return per_task, leases, tids, (finished, failed, cancelled), closed


def _salt_of(fields: Mapping[str, object]) -> str:
    """The salt a reveal call carries (0x-hex), "" for a commit."""
    salt = fields.get("salt")
    return _h(salt) if isinstance(salt, bytes | str) else ""


class MarketCall(NamedTuple):
    """A marketplace function called in a transaction (a multicall's calls one by one), its arguments by their ABI
    names as web3 decodes them."""

    name: str
    args: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class StoredJob:
    """What the verifier reads of a job's storage (``getJob``): its fee and replica stake, and its flags."""

    fee_bps: int = 0
    replica_stake: int = 0
    flags: int = 0

    @classmethod
    def of(cls, job: JobRecord) -> StoredJob:
        """From the ``getJob`` struct."""
        return cls(fee_bps=job.fee_bps, replica_stake=job.replica_stake, flags=int(job.flags))


@dataclasses.dataclass(frozen=True)
class _Replica:
    """A live replica of a round: its reveal, once made."""

    digest: str | None = None
    cid: str | None = None


@dataclasses.dataclass
class _Rounds:
    """What a replicated task's events have told so far, round by round (see :meth:`Verifier._replicated`)."""

    target: int
    live: dict[str, _Replica] = dataclasses.field(default_factory=dict)  # by worker
    commitments: dict[str, str] = dataclasses.field(default_factory=dict)
    expected_slash: list[str] = dataclasses.field(default_factory=list)
    actual_slash: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    status: str = "running"
    winners_cids: list[str] = dataclasses.field(default_factory=list)
    winner: str | None = None
    checks: list[Check] = dataclasses.field(default_factory=list)


def _round_end(st: _Rounds, ev: DecodedEvent, job: JobView, fee_bps: int) -> None:
    """A round ends (``ReplicasAdded``, ``TaskFinalized`` or ``TaskFailed``): its silent replicas are due a slash,
    and the strict majority of its reveals must match what the contract did (and, finalized, the reward and the
    dissenters' slashes)."""
    a = ev.args
    revealed = {x: r for x, r in st.live.items() if r.digest is not None}
    silent = [x for x in st.live if x not in revealed]
    digests = [r.digest for r in revealed.values() if r.digest is not None]
    winner, votes = strict_majority(digests, st.target)
    st.winner = winner
    st.expected_slash += silent
    for x in silent:
        st.live.pop(x)
    if ev.name == "ReplicasAdded":
        st.checks.append(Check(name="majority", subject=f"round of {st.target}", passed=winner is None,
                               detail="no strict majority: replicas were added" if winner is None else
                               f"digest {winner} had a strict majority but the task was not finalized",
                               evidence={"digests": digests, "target": st.target}))
        st.target = int(a["target"])
    elif ev.name == "TaskFailed":
        st.status = "failed"
        st.checks.append(Check(name="majority", subject="task", passed=winner is None,
                               detail="no strict majority at the replica cap: failed and refunded"
                               if winner is None else f"digest {winner} had a strict majority",
                               evidence={"digests": digests, "target": st.target}))
    else:
        st.status = "finalized"
        final = _h(a["resultDigest"])
        ok = winner == final and votes == int(a["winners"])
        st.checks.append(Check(name="majority", subject="task", passed=ok,
                               detail=f"strict majority of {votes}/{st.target} for {winner}" +
                               ("" if ok else f"; the contract finalized {final} with {a['winners']}"),
                               evidence={"digests": digests, "target": st.target, "finalized": final}))
        pool = job.replication * job.reward
        share = (pool - pool * fee_bps // 10_000) // max(1, votes)
        st.checks.append(Check(name="reward", subject="task", passed=share == int(a["rewardEach"]),
                               detail=f"each of {votes} winners gets {share}",
                               evidence={"expected": str(share), "paid": str(a["rewardEach"]), "fee_bps": fee_bps}))
        st.expected_slash += [x for x, r in revealed.items() if r.digest != final]
        st.winners_cids = sorted({r.cid for r in revealed.values() if r.digest == final and r.cid is not None})
        st.winner = final


def _slash_check(expected_slash: list[str], actual_slash: list[tuple[str, int]], stake: int) -> Check:
    """``slashes``: exactly the replicas the rules punish were slashed, each by the job's replica stake."""
    wrong_amount = [(w, amt) for w, amt in actual_slash if amt != stake]
    ok = sorted(w.lower() for w in expected_slash) == sorted(w.lower() for w, _ in actual_slash) \
        and not wrong_amount
    return Check(name="slashes", subject="task", passed=ok,
                 detail=f"{len(actual_slash)} slash(es) of {stake} each, as the rules require" if ok
                 else "the slashed replicas or amounts differ from what the rules require",
                 evidence={"expected": expected_slash, "actual": [w for w, _ in actual_slash],
                           "amounts": [str(x) for _, x in actual_slash], "replica_stake": str(stake)})


def _close_check(job: JobView, closed: DecodedEvent, finished: int, failed: int, cancelled: int) -> Check:
    """What a closed job refunded (its unsettled tasks' escrow; in credibility mode the cap's) and paid its
    owners (per finished task) follows from its task counts."""
    owners = job.escrow // max(1, job.num_tasks) - job.replication * job.reward
    cost = job.replication * job.reward + owners
    exp_refund = (job.num_tasks - finished - failed - cancelled) * cost
    paid = int(closed.args["appPaid"]) + int(closed.args["datasetPaid"])
    ok = int(closed.args["refund"]) == exp_refund and paid == finished * owners
    return Check(name="job_close", subject=f"job {job.job_id}", passed=ok,
                 detail=f"refund {exp_refund} for {job.num_tasks - finished - failed - cancelled} "
                        f"unsettled task(s), owners paid {finished} x {owners}",
                 evidence={"refund": str(closed.args["refund"]), "expected_refund": str(exp_refund),
                           "owners_paid": str(paid), "expected_owners_paid": str(finished * owners)})


#: the ITaskCallback.FailureReason of each range notice
_CANCELLED, _EXPIRED = 2, 3


def _callback_check(job_id: int, num_tasks: int, callback: str, events: list[DecodedEvent]) -> Check:
    """Every terminal outcome of the job reached its callback in the settling transaction (see the module doc)."""
    delivered = {(e.tx_hash, int(e.args["taskId"])): bool(e.args["success"]) for e in events
                 if e.name == "CallbackDelivered" and e.args["callback"].lower() == callback.lower()}
    notices = {(e.tx_hash, int(e.args["firstIndex"]), int(e.args["count"]), int(e.args["reason"])):
               bool(e.args["success"]) for e in events
               if e.name == "TasksEndedDelivered" and e.args["callback"].lower() == callback.lower()}
    missing: list[str] = []
    outcomes = refused = 0
    for e in events:
        if e.name in ("ResultSubmitted", "TaskFinalized", "FailureConfirmed", "TaskFailed"):
            seen = delivered.get((e.tx_hash, int(e.args["taskId"])))
            what = f"{e.name} of task {e.args['taskId']}"
        elif e.name == "TasksCancelled":
            seen = notices.get((e.tx_hash, int(e.args["firstIndex"]), int(e.args["count"]), _CANCELLED))
            what = f"cancel of tasks {e.args['firstIndex']}+{e.args['count']}"
        elif e.name == "JobClosed" and int(e.args["refund"]) != 0:  # closeJob (a close by a cancel refunds 0)
            seen = notices.get((e.tx_hash, 0, num_tasks, _EXPIRED))
            what = "close refunding unsettled tasks"
        else:
            continue
        outcomes += 1
        if seen is None:
            missing.append(what)
        elif not seen:
            refused += 1
    ok = not missing
    return Check(name="callbacks", subject=f"job {job_id}", passed=ok,
                 detail=f"{outcomes} terminal outcome(s) delivered to {callback}" + (f", {refused} refused by it"
                                                                                    if refused else "")
                 if ok else f"no delivery to the callback for: {', '.join(missing)}",
                 evidence={"outcomes": outcomes, "refused": refused, "missing": missing})


def _has_raw(archive: bytes) -> bool:
    """Whether a result archive has the canonicalised layout (a ``raw/`` folder)."""
    try:
        with tarfile.open(fileobj=BytesIO(archive), mode="r:") as tar:
            return any(m.name == "raw" or m.name.startswith("raw/") for m in tar)
    except tarfile.TarError:
        return False


def _run_reason(archive: bytes) -> str | None:
    """The ``reason`` in a result archive's ``logs/status.txt`` (``ok`` for a success), or None without one."""
    try:
        with tarfile.open(fileobj=BytesIO(archive), mode="r:") as tar:
            member = tar.getmember(f"logs/{STATUS_FILE}")
            data = tar.extractfile(member) if member.isfile() and member.size < 1 << 16 else None
            return parse_status(data.read().decode(errors="replace")).reason if data is not None else None
    except (tarfile.TarError, KeyError):
        return None


def _fields(value: Any, names: list[str]) -> list[Any]:
    """Struct fields from web3's decoded tuple (a dict or a positional tuple)."""
    if isinstance(value, dict):
        return [value[n] for n in names]
    return list(value)


__all__ = ["Check", "Report", "Verifier", "recover_signer", "signature_check", "strict_majority"]
