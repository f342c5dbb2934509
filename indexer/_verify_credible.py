"""The verifier's rules for a task in credibility mode (PROTOCOL.md, "Credibility mode"), from its events alone.

A credibility-mode task starts with one replica and wants one more at a time (``ReplicaWanted``) until a group of
matching results is credible enough; the credibility of a worker follows from its ``verified`` count, which no
event states. :class:`VerifiedLedger` replays it from public events, as the contract keeps it: +1 for every winner
of a ``TaskFinalized`` with two or more winners (the workers that revealed the finalized digest), back to 0 at each
``WorkerSlashed``. :class:`CredibleAudit` walks the task's events with it and checks, with the contract's own
integers (:mod:`oracle.credibility`):

* ``replica_wanted`` (each ``ReplicaWanted``): the reason and credibility the contract gave, recomputed from the
  moment it gave them. Three moments: a round's last commit (``not-credible``: the committed workers would not be
  credible enough if they all agreed, ``all_agree_ppb``), a settlement below the confidence (``dispute`` when the
  revealed digests disagree, else ``not-credible``: the best group's credibility, ``best_group``), and
  ``startSpotCheck`` (``spot-check``: the lone worker's credibility, and the hash of the commit block picks the
  task). The credibility given must be below the confidence and the task below its replica cap;
* ``credibility``: the finalized digest is the best group's, with as many winners, and reaches the confidence; a
  failed task reached its cap with no group that credible;
* ``spot_check``: a result finalized by its lone replica was not picked for a spot check;
* ``reward``: each winner's share is ``(target * reward - fee) / winners`` (the replicas used, not the cap);
* ``refund`` (failed tasks): the whole cap's escrow went back;
* ``slashes``: exactly the expired claims, the silent replicas of each settlement and the losers were slashed.

The unused replicas' refund of a finalized task (``(cap - target) * reward``) moves a balance no event states:
the verifier checks it against the node's state (:meth:`indexer.Verifier`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from pydantic import JsonValue

from oracle import credibility as cr
from oracle.events import DecodedEvent

from ._report import Check
from ._report import as_hex as _h

if TYPE_CHECKING:
    from ._verify_lanes import Lanes

Key = tuple[int, int]
#: (block of the commit, block reading its hash) -> the hash ``blockhash`` gave there (zero past 256 blocks)
Seed = Callable[[int, int], bytes]
ZERO_HASH = b"\x00" * 32


def _reason(reason: int) -> str:
    try:
        return cr.MoreReason(reason).name.lower()
    except ValueError:
        return f"reason {reason}"


def seen_hash(commit_block: int, at_block: int, block_hash: Callable[[int], bytes]) -> bytes:
    """What ``blockhash(commit_block)`` returned to a call in ``at_block``: the hash for the 256 previous blocks,
    zero otherwise (a spot check then counts as picked)."""
    if not 0 < at_block - commit_block <= 256:
        return ZERO_HASH
    return block_hash(commit_block)


def _moment(events: list[DecodedEvent], i: int) -> Key:
    """When the contract weighed the replicas for the decision ``events[i]`` states: before the slashes (and the
    ReplicasAdded) the same call emitted just ahead of it, which follow the weighing."""
    j = i
    while j > 0 and events[j - 1].tx_hash == events[i].tx_hash and events[j - 1].name in ("WorkerSlashed",
                                                                                          "ReplicasAdded"):
        j -= 1
    return events[j].key


class VerifiedLedger:
    """Each covered worker's ``verified`` count through time, replayed from its events (see the module doc)."""

    def __init__(self, workers: Iterable[str]) -> None:
        self.workers = {w.lower() for w in workers}
        self._moves: dict[str, list[tuple[Key, bool]]] = {w: [] for w in self.workers}  # True: +1, False: reset

    @classmethod
    def replay(cls, workers: Iterable[str], slashes: Iterable[DecodedEvent], reveals: Iterable[DecodedEvent],
               finals: Iterable[DecodedEvent]) -> VerifiedLedger:
        """From the covered workers' ``WorkerSlashed`` and ``ResultRevealed`` events and the ``TaskFinalized`` of
        the tasks they revealed on (from the chain's first block: a count replayed from later is wrong)."""
        ledger = cls(workers)
        by_digest: dict[tuple[int, str], list[str]] = {}
        for e in reveals:
            by_digest.setdefault((int(e.args["taskId"]), _h(e.args["resultDigest"])), []).append(
                str(e.args["worker"]).lower())
        moves: list[tuple[Key, str, bool]] = []
        for e in finals:
            if int(e.args["winners"]) >= 2:
                moves += [(e.key, w, True) for w in by_digest.get((int(e.args["taskId"]), _h(e.args["resultDigest"])),
                                                                    [])]
        moves += [(e.key, str(e.args["worker"]).lower(), False) for e in slashes]
        for key, worker, up in sorted(moves):
            if worker in ledger._moves:
                ledger._moves[worker].append((key, up))
        return ledger

    def at(self, worker: str, key: Key) -> int:
        """``worker``'s count just before the event at ``key`` (KeyError for a worker the ledger does not cover)."""
        n = 0
        for when, up in self._moves[worker.lower()]:
            if when >= key:
                break
            n = n + 1 if up else 0
        return n


@dataclasses.dataclass(frozen=True)
class Terms:
    """What the audit needs of the job: its credibility settings, replica cap and money."""

    settings: cr.CredibilitySettings
    cap: int
    reward: int
    fee_bps: int
    replica_stake: int
    owners_price: int


@dataclasses.dataclass
class _Replica:
    worker: str
    slot: int
    digest: str | None = None
    cid: str | None = None


class CredibleAudit:
    """Replays one credibility-mode task's events (chain order, its ``WorkerSlashed`` included) and checks them
    (:meth:`run`). ``seed`` gives the hash the contract read for a spot check."""

    def __init__(self, tid: int, terms: Terms, ledger: VerifiedLedger, seed: Seed) -> None:
        self.tid, self.terms, self.ledger, self.seed = tid, terms, ledger, seed
        self.live: dict[str, _Replica] = {}
        self.target = 1
        self.commit_block: int | None = None
        self.expected_slash: list[str] = []
        self.actual_slash: list[tuple[str, int]] = []
        self.checks: list[Check] = []
        self.status = "running"
        self.winner: str | None = None
        self.winner_cids: list[str] = []
        self.unused = 0  # (finalized) the unused replicas' rewards due back to the requester
        self.sealed = False  # a credible lease's task, sealed at the lease's reveal (see sealed_at)
        self.drawn_whole = False  # ... of a lease whose spot check is drawn whole (a check lane), not per task

    def sealed_at(self, commit_block: int, drawn_whole: bool = False) -> None:
        """The task came from a credible lease committed in ``commit_block`` and was sealed at its reveal: its first
        ReplicaWanted is that reveal's (a spot check the commit block's hash picked, or the worker not credible alone
        any more, or its own choice). ``drawn_whole``: the lease's spot check is drawn for the whole lease (a check
        lane, PROTOCOL.md), so no per-task draw picked the task."""
        self.sealed, self.commit_block, self.drawn_whole = True, commit_block, drawn_whole

    def run(self, events: list[DecodedEvent], lanes: Lanes | None = None) -> list[Check]:
        """Replay ``events``; ``lanes``: the check chunk the task belongs to, whose lanes are its first two
        replicas."""
        for i, ev in enumerate(events):
            a = ev.args
            w = str(a.get("worker") or "")
            if lanes is not None and lanes.handles(ev):
                self.checks += lanes.apply(ev, {}, lambda **_: None)
                self._lane(ev, lanes)
            elif ev.name == "ReplicaClaimed":
                self.live[w.lower()] = _Replica(w, int(a["replica"]))
            elif ev.name == "ResultCommitted" and self.commit_block is None:
                self.commit_block = ev.block_number  # the task's first commit: its hash seeds the spot check
            elif ev.name == "ResultRevealed" and w.lower() in self.live:
                self.live[w.lower()].digest, self.live[w.lower()].cid = _h(a["resultDigest"]), str(a["resultCID"])
            elif ev.name in ("ClaimExpired", "ClaimAbandoned", "ReplicaReleased"):
                self.live.pop(w.lower(), None)
                if ev.name == "ClaimExpired" or (ev.name == "ReplicaReleased" and a["slashed"]):
                    self.expected_slash.append(w)
                self.status = "failed" if ev.name == "ReplicaReleased" else self.status
            elif ev.name == "TaskReleased":
                self.status = "failed"
            elif ev.name == "WorkerSlashed":
                self.actual_slash.append((w, int(a["amount"])))
            elif ev.name == "ReplicaWanted":
                self._wanted(ev, _moment(events, i), events[i + 1] if i + 1 < len(events) else None, events[:i])
            elif ev.name == "TaskFinalized":
                if lanes is not None and not lanes.split:
                    self.checks.append(lanes.settle_check(ev))
                self._finalized(ev, _moment(events, i))
            elif ev.name == "TaskFailed":
                self._failed(ev, _moment(events, i))
        if self.status in ("finalized", "failed") or self.actual_slash:
            self.checks.append(self._slashes())
        if lanes is not None and (lane_slash := lanes.slash_check()) is not None:
            self.checks.append(lane_slash)
        return self.checks

    def _lane(self, ev: DecodedEvent, lanes: Lanes) -> None:
        """A lane event of the task's check chunk, as the task's round sees it: each lane a replica in its slot."""
        a = ev.args
        w = str(a.get("worker") or "").lower()
        if ev.name == "LaneClaimed":
            self.live[w] = _Replica(str(a["worker"]), int(a["lane"]))
            self.target = 2  # the lease's lane and its check
        elif ev.name == "ResultRevealed" and w in self.live:
            self.live[w].digest, self.live[w].cid = _h(a["resultDigest"]), str(a["resultCID"])
        elif ev.name in ("LaneExpired", "LaneReleased"):
            self.live.pop(w, None)
            self.status = "failed" if lanes.released else self.status

    # -- the replicas -----------------------------------------------------------------------------
    def _revealed(self, key: Key) -> list[tuple[_Replica, int]]:
        """The revealed replicas in slot order (the contract's), with their workers' verified counts at ``key``."""
        reps = sorted((r for r in self.live.values() if r.digest is not None), key=lambda r: r.slot)
        return [(r, self.ledger.at(r.worker, key)) for r in reps]

    def _drop_silent(self) -> None:
        """The replicas that did not reveal are slashed and leave (a settlement)."""
        for key in [k for k, r in self.live.items() if r.digest is None]:
            self.expected_slash.append(self.live.pop(key).worker)

    def _verdict(self, revealed: list[tuple[_Replica, int]]) -> cr.Verdict:
        return cr.best_group([(bytes.fromhex(str(r.digest)[2:]), k) for r, k in revealed], self.terms.settings.fault_bps)

    # -- ReplicaWanted ----------------------------------------------------------------------------
    def _wanted(self, ev: DecodedEvent, at: Key, following: DecodedEvent | None, before: list[DecodedEvent]) -> None:
        """Which of the three moments emitted it, told from the events around it, and what it should say then."""
        reason, target, ppb = int(ev.args["reason"]), int(ev.args["target"]), int(ev.args["credibilityPpb"])
        revealed = self._revealed(at)
        committing = following is not None and following.name == "ResultCommitted" \
            and following.key == (ev.block_number, ev.log_index + 1)
        dropped = any(e.name == "WorkerSlashed" and e.tx_hash == ev.tx_hash for e in before)
        evidence: dict[str, JsonValue] = {"reason": reason, "credibility_ppb": ppb, "target": target}
        picked = True
        short = True
        if self.sealed and self.target == 1:  # revealRange sealed it: picked for a check, or not open alone
            moment = "lease reveal"
            lone = next(iter(self.live.values()), None)
            k = 0 if lone is None else self.ledger.at(lone.worker, at)
            exp_ppb = cr.of_worker(k, self.terms.settings.fault_bps)
            seed = self.seed(self.commit_block or 0, ev.block_number)
            spot = not self.drawn_whole and cr.spot_checked(seed, self.tid, self.terms.settings.spot_check_bps)
            exp_reason = cr.MoreReason.SPOT_CHECK if spot else cr.MoreReason.NOT_CREDIBLE
            evidence.update(verified=k, commit_block=self.commit_block, seed="0x" + seed.hex(), picked=spot)
            self.sealed = False
        elif committing and not revealed:  # commit(): the round is complete, nobody revealed
            moment, exp_reason = "last commit", cr.MoreReason.NOT_CREDIBLE
            verified = [self.ledger.at(r.worker, at) for r in sorted(self.live.values(), key=lambda r: r.slot)]
            exp_ppb = cr.all_agree_ppb(verified, self.terms.settings.fault_bps)
            evidence["verified"] = list[JsonValue](verified)
        elif revealed or dropped or self.target != 1:  # reveal() or finalize(): the round settled below the bar
            moment, want = "settlement", self._verdict(revealed)
            exp_reason = cr.MoreReason.DISPUTE if want.dispute else cr.MoreReason.NOT_CREDIBLE
            exp_ppb = want.credibility_ppb
            evidence["replicas"] = [{"worker": r.worker, "digest": r.digest, "verified": k} for r, k in revealed]
            self._drop_silent()
        else:  # startSpotCheck(): one committed replica, no reveal, nobody slashed
            moment, exp_reason = "spot check", cr.MoreReason.SPOT_CHECK
            lone = next(iter(self.live.values()), None)
            k = 0 if lone is None else self.ledger.at(lone.worker, at)
            exp_ppb = cr.of_worker(k, self.terms.settings.fault_bps)
            seed = self.seed(self.commit_block or 0, ev.block_number)
            picked = cr.spot_checked(seed, self.tid, self.terms.settings.spot_check_bps)
            evidence.update(verified=k, commit_block=self.commit_block, seed="0x" + seed.hex(), picked=picked)
        # a spot check is of a worker credible enough alone; the other two moments fall short of the confidence (a
        # lease's worker may seal a task it could have given open: that is its own choice, one more replica)
        if moment != "lease reveal":
            short = exp_reason == cr.MoreReason.SPOT_CHECK or ppb < self.terms.settings.confidence_ppb
        ok = reason == exp_reason and ppb == exp_ppb and short and picked and target == self.target + 1 <= self.terms.cap
        evidence.update(moment=moment, expected_reason=int(exp_reason), expected_ppb=exp_ppb,
                        confidence_ppb=self.terms.settings.confidence_ppb, cap=self.terms.cap)
        detail = (f"at the {moment}: {exp_reason.name.lower()} at {exp_ppb} ppb (confidence "
                  f"{self.terms.settings.confidence_ppb}), replica {target} of at most {self.terms.cap}")
        if not ok:
            detail = (f"the contract wanted replica {target} ({_reason(reason)} at {ppb} ppb) at "
                      f"the {moment}, where the rules give {exp_reason.name.lower()} at {exp_ppb} ppb"
                      + ("" if picked else ", and the commit block's hash does not pick the task for a spot check")
                      + f" (confidence {self.terms.settings.confidence_ppb}, replica {self.target + 1} of "
                        f"at most {self.terms.cap})")
        self.checks.append(Check(name="replica_wanted", subject=f"replica {target}", passed=ok, detail=detail,
                                 evidence=evidence))
        self.target = target

    # -- settlements ------------------------------------------------------------------------------
    def _finalized(self, ev: DecodedEvent, at: Key) -> None:
        final, winners, paid = _h(ev.args["resultDigest"]), int(ev.args["winners"]), int(ev.args["rewardEach"])
        revealed = self._revealed(at)
        verdict = self._verdict(revealed)
        best = None if verdict.digest is None else "0x" + verdict.digest.hex()
        conf = self.terms.settings.confidence_ppb
        ok = best == final and verdict.votes == winners and verdict.credibility_ppb >= conf
        self.checks.append(Check(
            name="credibility", subject="task", passed=ok,
            detail=(f"the best group ({verdict.votes} x {best}) stands at {verdict.credibility_ppb} ppb, at least "
                    f"the confidence {conf}" if ok else
                    f"the best group ({verdict.votes} x {best}) stands at {verdict.credibility_ppb} ppb against the "
                    f"confidence {conf}, but the contract finalized {final} with {winners} winner(s)"),
            evidence=self._group_evidence(revealed, verdict, final)))
        if self.target == 1:
            self.checks.append(self._not_spot_checked(ev.block_number))
        pool = self.target * self.terms.reward
        share = (pool - pool * self.terms.fee_bps // 10_000) // max(1, verdict.votes)
        self.checks.append(Check(name="reward", subject="task", passed=share == paid,
                                 detail=f"each of {verdict.votes} winners gets {share} of the {self.target} "
                                        f"replica(s) used",
                                 evidence={"expected": str(share), "paid": str(paid), "target": self.target,
                                           "fee_bps": self.terms.fee_bps}))
        self.unused = max(0, self.terms.cap - self.target) * self.terms.reward
        self._drop_silent()
        self.expected_slash += [r.worker for r, _ in revealed if r.digest != final]
        self.winner, self.status = final, "finalized"
        self.winner_cids = sorted({str(r.cid) for r, _ in revealed if r.digest == final})

    def _failed(self, ev: DecodedEvent, at: Key) -> None:
        revealed = self._revealed(at)
        verdict = self._verdict(revealed)
        conf, cap = self.terms.settings.confidence_ppb, self.terms.cap
        ok = self.target >= cap and (verdict.votes == 0 or verdict.credibility_ppb < conf)
        self.checks.append(Check(
            name="credibility", subject="task", passed=ok,
            detail=(f"at the cap of {cap} replicas the best group stands at {verdict.credibility_ppb} ppb, below "
                    f"the confidence {conf}: failed and refunded" if ok else
                    f"the task failed with {self.target} of at most {cap} replicas and a best group at "
                    f"{verdict.credibility_ppb} ppb against the confidence {conf}"),
            evidence=self._group_evidence(revealed, verdict, None)))
        refund = cap * self.terms.reward + self.terms.owners_price
        self.checks.append(Check(name="refund", subject="task", passed=int(ev.args["refund"]) == refund,
                                 detail=f"the whole cap's escrow goes back: {cap} x reward + owners' price = {refund}",
                                 evidence={"expected": str(refund), "refunded": str(ev.args["refund"])}))
        self._drop_silent()
        self.status = "failed"

    def _group_evidence(self, revealed: list[tuple[_Replica, int]], verdict: cr.Verdict, final: str | None
                        ) -> dict[str, JsonValue]:
        s = self.terms.settings
        return {"replicas": [{"worker": r.worker, "slot": r.slot, "digest": r.digest, "verified": k}
                             for r, k in revealed],
                "best": None if verdict.digest is None else "0x" + verdict.digest.hex(), "votes": verdict.votes,
                "credibility_ppb": verdict.credibility_ppb, "dispute": verdict.dispute, "finalized": final,
                "confidence_ppb": s.confidence_ppb, "fault_bps": s.fault_bps, "target": self.target,
                "cap": self.terms.cap}

    def _not_spot_checked(self, block: int) -> Check:
        """A lone replica's result was revealed in ``block``: the commit block's hash did not pick the task."""
        seed = self.seed(self.commit_block or 0, block)
        picked = cr.spot_checked(seed, self.tid, self.terms.settings.spot_check_bps)
        return Check(name="spot_check", subject="task", passed=not picked,
                     detail=f"the hash of commit block {self.commit_block} does not pick the task for a spot check "
                            f"({self.terms.settings.spot_check_bps} bps)" if not picked else
                            "the task was picked for a spot check, yet its lone replica's result was accepted",
                     evidence={"commit_block": self.commit_block, "reveal_block": block, "seed": "0x" + seed.hex(),
                               "spot_check_bps": self.terms.settings.spot_check_bps})

    def _slashes(self) -> Check:
        stake = self.terms.replica_stake
        wrong_amount = [(w, amt) for w, amt in self.actual_slash if amt != stake]
        ok = sorted(w.lower() for w in self.expected_slash) == sorted(w.lower() for w, _ in self.actual_slash) \
            and not wrong_amount
        return Check(name="slashes", subject="task", passed=ok,
                     detail=f"{len(self.actual_slash)} slash(es) of {stake} each, as the rules require" if ok
                     else "the slashed replicas or amounts differ from what the rules require",
                     evidence={"expected": self.expected_slash, "actual": [w for w, _ in self.actual_slash],
                               "amounts": [str(x) for _, x in self.actual_slash], "replica_stake": str(stake)})


__all__ = ["CredibleAudit", "Terms", "VerifiedLedger", "seen_hash"]
