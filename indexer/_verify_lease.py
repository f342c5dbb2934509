"""The verifier's checks of credible leases (credibility mode; ``contracts/PROTOCOL.md``, "Credible leases").

A task of a credible lease ends one of three ways, each re-derived from public data alone:

* **open** (its ``ResultSubmitted`` came from a ``revealRange``): ``lease`` (the worker leased the task before),
  ``range_commitment`` (the reveal call rebuilds the root of the worker's ``RangeCommitted``, and gives this task
  open with the digest of the event), ``credible_alone`` (the worker's verified count, replayed, reaches the
  confidence at the reveal), ``spot_check`` (the hash of the commit block does not pick the task; or the whole
  lease, when a chunk can hold it and the job has no callback), ``unused_refund`` (the cap's other replicas'
  rewards went back to the requester), then the archive;
* **checked as a lane** (a spot check picked the whole lease: ``LeaseChecked``; PROTOCOL.md, "Check lanes"): the
  task is a check chunk's (:mod:`indexer._verify_lanes`, ``lease_check``), settled by its lanes or split;
* **sealed** (its first ``ResultCommitted`` came from a ``revealRange``): ``range_commitment`` for that commit
  (the entry is sealed and is the commitment of the event); the rest is a replicated credibility-mode task, whose
  first ``ReplicaWanted`` says why it was sealed (:class:`indexer._verify_credible.CredibleAudit`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from eth_utils.crypto import keccak

from oracle import credibility as cr
from oracle.events import DecodedEvent
from oracle.market import AppView, JobView
from oracle.protocol import commitment

from ._report import Check
from ._report import as_bytes as _b
from ._report import as_hex as _h
from ._verify_credible import VerifiedLedger

if TYPE_CHECKING:
    from ._verify import Verifier

ZERO32 = b"\x00" * 32


class RangeEntry(NamedTuple):
    """Task ``tid``'s entry in a ``revealRange`` call: the lease, its commit block, whether the entry is open, and
    its digest (open) or commitment (sealed), 0x-hex; and the lease's tasks."""

    start: int
    commit_block: int
    open: bool
    value: str
    tasks: int = 1


def range_entry(v: Verifier, tid: int, worker: str, tx_hash: str) -> tuple[Check, RangeEntry | None]:
    """``range_commitment``: the ``revealRange`` call of ``worker`` in ``tx_hash`` that covers ``tid`` rebuilds the
    root the worker committed for that lease (its last ``RangeCommitted`` before the reveal) and gives back the block
    of that commit (whose hash decided the lease's spot checks)."""
    sender, calls = v._calls(tx_hash)
    base: dict[str, object] = {"tx": tx_hash, "sender": sender}
    for fn, args in calls:
        start, digests, salts = args.get("startTaskId"), args.get("resultDigests"), args.get("salts")
        if fn != "revealRange" or not isinstance(start, int) or not (start <= tid < start + len(digests or [])):
            continue
        assert digests is not None and salts is not None
        commits = [e for e in v._logs(v.market.address, [v._topics["RangeCommitted"], v._topic(start),
                                                         v._topic(worker)])]
        tx_block = int(v.w3.eth.get_transaction(tx_hash)["blockNumber"])  # type: ignore[arg-type]
        before = [e for e in commits if e.block_number < tx_block]
        leaves = [_b(d) if _b(s) == ZERO32 else commitment(start + k, _b(d), _b(s), worker)
                  for k, (d, s) in enumerate(zip(digests, salts, strict=True))]
        root = keccak(b"".join(leaves))
        committed = _b(before[-1].args["root"]) if before else None
        committed_at = before[-1].block_number if before else 0
        ok = sender.lower() == worker.lower() and committed == root and args.get("commitBlock") == committed_at
        i = tid - start
        entry = RangeEntry(start, committed_at, _b(salts[i]) != ZERO32,
                           _h(digests[i]) if _b(salts[i]) != ZERO32 else "0x" + leaves[i].hex(), len(digests))
        return Check(name="range_commitment", subject=worker, passed=ok,
                     detail=(f"the reveal of lease {start} rebuilds the root its worker committed in block "
                             f"{entry.commit_block}" if ok else
                             f"the reveal of lease {start} does not rebuild a root its worker committed before, gives "
                             f"another commit block ({args.get('commitBlock')}), or was sent by {sender}"),
                     evidence={**base, "lease": start, "root": "0x" + root.hex(),
                               "commit_block": args.get("commitBlock"),
                               "committed": None if committed is None else "0x" + committed.hex()}), entry
    return Check(name="range_commitment", subject=worker, passed=False,
                 detail="no revealRange call in the transaction covers the task", evidence=base), None


def is_range_reveal(v: Verifier, tx_hash: str) -> bool:
    return any(fn == "revealRange" for fn, _ in v._calls(tx_hash)[1])


def open_task(v: Verifier, tid: int, job: JobView, app: AppView | None, events: list[DecodedEvent],
              settings: cr.CredibilitySettings, ledger: VerifiedLedger | None) -> tuple[str, list[Check]]:
    """A credible lease's task revealed open: final alone. See the module doc for the checks."""
    ev = [e for e in events if e.name == "ResultSubmitted"][-1]
    worker, digest, cid = str(ev.args["worker"]), _h(ev.args["resultDigest"]), str(ev.args["resultCID"])
    leases = [e for e in v._logs(v.market.address, [v._topics["TasksClaimed"], None, v._topic(worker)])
              if e.key < ev.key and e.args["startTaskId"] <= tid < e.args["startTaskId"] + e.args["count"]]
    checks = [Check(name="lease", subject=worker, passed=bool(leases),
                    detail="the worker leased the task before its result" if leases else
                    "no lease of this task by the worker precedes the result",
                    evidence={"lease_tx": leases[-1].tx_hash if leases else None})]
    check, entry = range_entry(v, tid, worker, ev.tx_hash)
    checks.append(check)
    if entry is not None:
        ok = entry.open and entry.value == digest
        checks.append(Check(name="range_entry", subject="task", passed=ok,
                            detail="the reveal gives the task open, with the digest of its result" if ok else
                            "the reveal's entry for the task is sealed, or holds another digest",
                            evidence={"entry": entry.value, "open": entry.open, "digest": digest}))
        if ledger is None:
            ledger = v._ledger({worker})
        k = ledger.at(worker, ev.key)
        ppb = cr.of_worker(k, settings.fault_bps)
        ok = ppb >= settings.confidence_ppb
        checks.append(Check(name="credible_alone", subject=worker, passed=ok,
                            detail=f"{k} verified results: credibility {ppb} ppb, at least the confidence "
                                   f"{settings.confidence_ppb}" if ok else
                            f"{k} verified results: credibility {ppb} ppb, below the confidence "
                            f"{settings.confidence_ppb}, yet the result was accepted alone",
                            evidence={"verified": k, "credibility_ppb": ppb,
                                      "confidence_ppb": settings.confidence_ppb}))
        seed = v._seed(entry.commit_block, ev.block_number)
        # a lease a chunk can hold is drawn whole (its first task's draw: PROTOCOL.md, "Check lanes"), else per task
        as_lane = cr.checked_as_lane(entry.tasks, int(job.callback, 16) != 0)
        what = f"lease {entry.start}" if as_lane else "the task"
        picked = cr.spot_checked(seed, entry.start if as_lane else tid, settings.spot_check_bps)
        checks.append(Check(name="spot_check", subject="task", passed=not picked,
                            detail=f"the hash of commit block {entry.commit_block} does not pick {what} for a spot "
                                   f"check ({settings.spot_check_bps} bps)" if not picked else
                            f"{what} was picked for a spot check, yet the task was revealed open and accepted alone",
                            evidence={"commit_block": entry.commit_block, "seed": "0x" + seed.hex(),
                                      "spot_check_bps": settings.spot_check_bps, "drawn_for": what}))
    checks.append(v._unused_refund(job, ev, (job.replication - 1) * job.reward))
    checks += v._archive(job, app, digest, [cid])
    return "finalized", checks


def sealed_commit(v: Verifier, tid: int, ev: DecodedEvent) -> tuple[Check, RangeEntry | None]:
    """The ResultCommitted a credible lease's reveal emitted for a sealed task: the entry is sealed and is that
    commitment."""
    worker = str(ev.args["worker"])
    check, entry = range_entry(v, tid, worker, ev.tx_hash)
    if entry is not None and check.passed and (entry.open or entry.value != _h(ev.args["commitment"])):
        check.passed = False
        check.detail = "the reveal gives the task open, or a commitment other than the one the task holds"
    return check, entry
