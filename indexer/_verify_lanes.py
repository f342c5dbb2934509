"""The verifier's checks of lanes (replicated ranges of fixed-R jobs, ``contracts/RANGE-REPLICATION.md``).

A task of a chunk has the chunk's lanes for replicas: each ``LaneClaimed`` of the chunk stands for a replica
claim of the task, each ``LaneCommitted`` for its commit (a root over the lane's per-task commitments), each
``LaneRevealed`` (with the task's ``ResultRevealed`` that follows it) for its reveal. :class:`Lanes` replays them
for one task, from public data alone:

* ``commit_authorized``: the ``commitLane`` call that committed the root was sent by the lane's worker;
* ``reveal_authorized`` and ``lane_root``: the ``revealLane`` call, sent by the worker, rebuilds the root the
  worker committed: ``keccak256(c_0 ‖ … ‖ c_{count−1})``, ``c_i = keccak256(abi.encode(startTaskId + i, digest_i,
  salt_i, worker))``, and its digests hash (``keccak256(abi.encode(digests))``) to the event's list hash;
* ``lane_entry``: the task's ``ResultRevealed`` holds the digest and CID of the reveal call's entry for the task;
* ``lane_settle`` (the chunk settled at once): every one of the job's R lanes revealed, all the same list, and
  the task finalized in the transaction of the last reveal (then :func:`indexer._verify._round_end` checks the
  majority, R winners, and the reward as for any round);
* ``lane_split`` (the chunk split): the lanes had not all revealed one list (else it would have settled); the
  task then goes on as a per-task round whose replicas are the lanes (majority, slashes, added replicas);
* ``lane_dissolve`` (the chunk went back to the free pool): it lacked a lane and none had revealed; its lanes
  leave the task's round unslashed, and the task's own per-task claims follow;
* ``lease_check`` (credibility mode: a check chunk, PROTOCOL.md "Check lanes"): the chunk was a committed credible
  lease that its spot check picked whole (the hash of its commit block draws its first task, a chunk can hold it,
  the job has no callback); lane 0's root is the lease's ``RangeCommitted`` root, committed by the lease's worker,
  and stands for its ``commit_authorized``;
* ``lane_slashes``: exactly the lanes the rules punish (expired without a commit, released uncommitted) were
  slashed, each ``count`` replica stakes in one ``WorkerSlashed`` naming the chunk's first task.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak

from oracle import credibility as cr
from oracle.credibility import CredibilitySettings
from oracle.events import DecodedEvent
from oracle.protocol import commitment

from ._report import Check
from ._report import as_bytes as _b
from ._report import as_hex as _h

if TYPE_CHECKING:
    from ._verify import Verifier

#: the most tasks a chunk holds (``LaneLogic.MAX_LANE``)
MAX_LANE = 32
#: the chunk-level events (all name the chunk's first task as ``startTaskId``)
LANE_EVENTS = ("LaneClaimed", "LaneCommitted", "LaneRevealed", "LaneExpired", "LaneReleased", "LanesSplit",
               "LanesDissolved", "LeaseChecked")


def lane_root(start: int, digests: list[bytes], salts: list[bytes], worker: str) -> tuple[bytes, list[bytes]]:
    """The root a lane commits and its leaves, the per-task commitments (``LaneLogic.rootOf``)."""
    leaves = [commitment(start + i, d, s, worker) for i, (d, s) in enumerate(zip(digests, salts, strict=True))]
    return keccak(b"".join(leaves)), leaves


def list_hash(digests: list[bytes]) -> bytes:
    """``keccak256(abi.encode(digests))``: what a lane's reveal leaves as its hash (``LaneRevealed.listHash``)."""
    return keccak(encode(["bytes32[]"], [digests]))


def chunk_of(tid: int, lane_events: list[DecodedEvent]) -> tuple[int, int] | None:
    """The chunk (first task, count) that holds task ``tid``, from the ``LaneClaimed`` events; None if none does."""
    for e in reversed(lane_events):
        if e.name == "LaneClaimed" and e.args["startTaskId"] <= tid < e.args["startTaskId"] + e.args["count"]:
            return int(e.args["startTaskId"]), int(e.args["count"])
    return None


def lane_slashes(events: list[DecodedEvent]) -> set[tuple[int, int]]:
    """The keys of the ``WorkerSlashed`` events that slash a lane as a whole: each follows at once (next log of the
    same transaction) a ``LaneExpired``, or a ``LaneReleased`` that slashed, of the same worker and chunk."""
    by_key = {e.key: e for e in events}
    out = set()
    for e in events:
        if e.name != "WorkerSlashed":
            continue
        before = by_key.get((e.block_number, e.log_index - 1))
        if before is not None and before.tx_hash == e.tx_hash and (
                before.name == "LaneExpired" or (before.name == "LaneReleased" and before.args["slashed"])) \
                and int(before.args["startTaskId"]) == int(e.args["taskId"]) \
                and str(before.args["worker"]).lower() == str(e.args["worker"]).lower():
            out.add(e.key)
    return out


def chunk_events(v: Verifier, tid: int) -> list[DecodedEvent]:
    """The lane events of the chunk holding ``tid`` (and the slashes naming its first task), from the node; [] when
    the task is in no chunk."""
    first = max((tid >> 32) << 32, tid - MAX_LANE + 1)
    claims = v._logs(v.market.address, [v._topics["LaneClaimed"], [v._topic(s) for s in range(first, tid + 1)]])
    found = chunk_of(tid, claims)
    if found is None:
        return []
    start = found[0]
    events = v._logs(v.market.address, [[v._topics[n] for n in LANE_EVENTS], v._topic(start)])
    events += v._logs(v.market.address, [v._topics["WorkerSlashed"], None, v._topic(start)])
    return sorted(events, key=lambda e: e.key)


@dataclasses.dataclass
class _Lane:
    root: str | None = None
    list_hash: str | None = None
    entry: tuple[str, str] | None = None  # this task's (digest, CID) in the lane's reveal call
    reveal_tx: str | None = None


class Lanes:
    """The lanes of task ``tid``'s chunk, replayed for that task (see the module doc); ``live`` is the task's round
    (worker -> its reveal), shared with :meth:`indexer._verify.Verifier._replicated`."""

    def __init__(self, v: Verifier, tid: int, start: int, count: int, replication: int, stake: int,
                 events: list[DecodedEvent]) -> None:
        self.v, self.tid, self.start, self.count = v, tid, start, count
        self.replication, self.stake = replication, stake
        self.lanes: dict[str, _Lane] = {}
        self.split = False
        self.dissolved = False  # the chunk went back to the free pool: the task's own rounds decide it
        self.released = False
        self.expected_slash: list[str] = []
        self.actual_slash: list[tuple[str, int]] = []
        self._lane_slashes = lane_slashes(events)
        #: (tx, worker) of every lane reveal among the events: the task's ResultRevealed in them are the lanes' (a
        #: lane's reveal emits its LaneRevealed, then one ResultRevealed per task)
        self._lane_reveals = {(e.tx_hash, str(e.args["worker"]).lower()) for e in events if e.name == "LaneRevealed"}
        self._last_reveal_tx: str | None = None
        #: credibility mode (a check chunk): the job's settings and whether it has a callback (set by the caller)
        self.credibility: CredibilitySettings | None = None
        self.has_callback = False
        self._lease: tuple[str, str] | None = None  # (tx of the LeaseChecked, the lease's committed root)

    @classmethod
    def of(cls, v: Verifier, tid: int, replication: int, stake: int, lane_events: list[DecodedEvent],
           events: list[DecodedEvent]) -> tuple[Lanes | None, list[DecodedEvent]]:
        """The lanes of ``tid``'s chunk (None for a task of no chunk) and the task's events merged with the chunk's:
        ``lane_events`` are chunk-level events of the job (or of the chunk), ``events`` the task's own."""
        found = chunk_of(tid, lane_events)
        if found is None:
            return None, events
        start, count = found
        slashes = lane_slashes(lane_events)
        chunk = [e for e in lane_events if (e.name in LANE_EVENTS and int(e.args["startTaskId"]) == start)
                 or e.key in slashes and int(e.args["taskId"]) == start]
        keys = {e.key for e in chunk}
        own = [e for e in events if e.name not in LANE_EVENTS and e.key not in keys and e.key not in slashes]
        merged = sorted(own + chunk, key=lambda e: e.key)
        return cls(v, tid, start, count, replication, stake, merged), merged

    def handles(self, ev: DecodedEvent) -> bool:
        """Whether ``ev`` is the lanes' to replay (a lane event, a lane's slash, or a task's reveal by a lane), known
        before any event is replayed."""
        return ev.name in LANE_EVENTS or ev.key in self._lane_slashes or (
            ev.name == "ResultRevealed" and (ev.tx_hash, str(ev.args["worker"]).lower()) in self._lane_reveals)

    def apply(self, ev: DecodedEvent, live: dict[str, Any], new_replica: Callable[..., Any]) -> list[Check]:
        """Replay one event the lanes handle; ``live`` is the task's round, ``new_replica(digest=, cid=)`` makes
        one of its entries."""
        a = ev.args
        w = str(a.get("worker") or "")
        if ev.key in self._lane_slashes:
            self.actual_slash.append((w, int(a["amount"])))
        elif ev.name == "LaneClaimed":
            live[w] = new_replica()
            self.lanes[w.lower()] = _Lane()
        elif ev.name == "LaneCommitted":
            self.lanes.setdefault(w.lower(), _Lane()).root = _h(a["root"])
            return [self._commit_check(ev)]
        elif ev.name == "LaneRevealed":
            self._last_reveal_tx = ev.tx_hash
            return self._reveal_checks(ev)
        elif ev.name == "ResultRevealed":
            return self._entry_check(ev, live, new_replica)
        elif ev.name in ("LaneExpired", "LaneReleased"):
            live.pop(w, None)
            self.lanes.pop(w.lower(), None)
            if ev.name == "LaneExpired" or a["slashed"]:
                self.expected_slash.append(w)
            self.released |= ev.name == "LaneReleased"
        elif ev.name == "LanesSplit":
            self.split = True
            return [self._split_check()]
        elif ev.name == "LanesDissolved":
            return [self._dissolve_check(live)]
        elif ev.name == "LeaseChecked":
            return [self._lease_check(ev)]
        return []

    def _lease_check(self, ev: DecodedEvent) -> Check:
        """``lease_check``: see the module doc."""
        v, w = self.v, str(ev.args["worker"])
        commits = [e for e in v._logs(v.market.address, [v._topics["RangeCommitted"], v._topic(self.start),
                                                         v._topic(w)]) if e.key < ev.key]
        s = self.credibility
        evidence: dict[str, Any] = {"tx": ev.tx_hash, "lease": self.start, "count": int(ev.args["count"])}
        if not commits or s is None:
            return Check(name="lease_check", subject=w, passed=False, evidence=evidence,
                         detail=f"no commitment of lease {self.start} by its worker precedes its check"
                         if s is not None else "a lease checked as a lane in a job not in credibility mode")
        commit = commits[-1]
        sender, calls = v._calls(commit.tx_hash)
        root = _h(commit.args["root"])
        self._lease = (ev.tx_hash, root)
        seed = v._seed(commit.block_number, ev.block_number)
        lane = cr.checked_as_lane(self.count, self.has_callback)
        picked = lane and cr.spot_checked(seed, self.start, s.spot_check_bps)
        sent = sender.lower() == w.lower() and any(fn == "commitRange" and args["startTaskId"] == self.start
                                                   and _h(args["root"]) == root for fn, args in calls)
        ok = picked and sent and int(ev.args["count"]) == self.count == int(commit.args["count"])
        evidence.update(commit_tx=commit.tx_hash, sender=sender, root=root, commit_block=commit.block_number,
                        seed="0x" + seed.hex(), spot_check_bps=s.spot_check_bps, lane_sized=lane)
        return Check(name="lease_check", subject=w, passed=ok, evidence=evidence,
                     detail=f"lease {self.start}, committed by its worker in block {commit.block_number}, was picked "
                            "whole by that block's hash and checked as a second lane" if ok else
                            f"lease {self.start} was checked as a lane, but its commit block's hash does not pick it, "
                            "it is not one a chunk checks, or its commitment was not its worker's")

    def _dissolve_check(self, live: dict[str, Any]) -> Check:
        """``lane_dissolve``: the chunk went back to the free pool, which the rules allow only while it lacks a lane
        and none revealed; its lanes leave the task's round unslashed (the task's own claims follow)."""
        self.dissolved = True
        lanes = sorted(self.lanes)
        ok = len(lanes) < self.replication and not any(lane.list_hash for lane in self.lanes.values())
        for w in [k for k in live if k.lower() in self.lanes]:
            live.pop(w)
        self.lanes.clear()
        return Check(name="lane_dissolve", subject=str(self.start), passed=ok,
                     detail=f"chunk {self.start} dissolved with {len(lanes)} of {self.replication} lanes, none revealed"
                     if ok else f"chunk {self.start} dissolved with {len(lanes)} lanes or a reveal, which the rules "
                                f"forbid", evidence={"lanes": lanes})

    def _commit_check(self, ev: DecodedEvent) -> Check:
        w, root = str(ev.args["worker"]), _h(ev.args["root"])
        if self._lease is not None and ev.tx_hash == self._lease[0]:  # lane 0 of a check chunk: the lease's commit
            ok = root == self._lease[1]
            return Check(name="commit_authorized", subject=w, passed=ok,
                         detail=f"lane 0 of check chunk {self.start} holds its lease's commitment" if ok else
                         f"lane 0 of check chunk {self.start} holds a root other than its lease's commitment",
                         evidence={"tx": ev.tx_hash, "root": root, "lease_root": self._lease[1]})
        sender, calls = self.v._calls(ev.tx_hash)
        ok = sender.lower() == w.lower() and any(
            fn == "commitLane" and args["startTaskId"] == self.start and _h(args["root"]) == root
            for fn, args in calls)
        return Check(name="commit_authorized", subject=w, passed=ok,
                     detail=f"lane {self.start} committed by the worker {sender}" if ok else
                     f"no commitLane of lane {self.start} with this root sent by the worker (sender {sender})",
                     evidence={"tx": ev.tx_hash, "sender": sender, "root": root})

    def _reveal_checks(self, ev: DecodedEvent) -> list[Check]:
        w = str(ev.args["worker"])
        sender, calls = self.v._calls(ev.tx_hash)
        base: dict[str, Any] = {"tx": ev.tx_hash, "sender": sender}
        call = next((args for fn, args in calls if fn == "revealLane" and args["startTaskId"] == self.start), None)
        ok = call is not None and sender.lower() == w.lower()
        checks = [Check(name="reveal_authorized", subject=w, passed=ok,
                        detail=f"lane {self.start} revealed by the worker {sender}" if ok else
                        f"no revealLane of lane {self.start} sent by the worker (sender {sender})", evidence=base)]
        if call is None:
            return checks
        lane = self.lanes.setdefault(w.lower(), _Lane())
        digests, salts, cids = ([_b(d) for d in call["resultDigests"]], [_b(s) for s in call["salts"]],
                                list(call["resultCIDs"]))
        if len(digests) != self.count or len(salts) != self.count or len(cids) != self.count:
            checks.append(Check(name="lane_root", subject=w, passed=False, evidence=base,
                                detail=f"the reveal gives {len(digests)} digests, {len(salts)} salts and {len(cids)} "
                                       f"CIDs for a chunk of {self.count} tasks"))
            return checks
        root, leaves = lane_root(self.start, digests, salts, w)
        listed = list_hash(digests)
        i = self.tid - self.start
        lane.list_hash, lane.reveal_tx = "0x" + listed.hex(), ev.tx_hash
        lane.entry = ("0x" + digests[i].hex(), cids[i])
        ok = lane.root == "0x" + root.hex() and "0x" + listed.hex() == _h(ev.args["listHash"])
        checks.append(Check(
            name="lane_root", subject=w, passed=ok,
            detail=f"the reveal of lane {self.start} rebuilds the root its worker committed" if ok else
            f"the reveal of lane {self.start} does not rebuild the committed root, or its digests do not hash to "
            "the revealed list hash",
            evidence={**base, "committed": lane.root, "recomputed": "0x" + root.hex(),
                      "list_hash": _h(ev.args["listHash"]), "recomputed_list_hash": "0x" + listed.hex(),
                      "task_commitment": "0x" + leaves[i].hex(), "salt": "0x" + salts[i].hex(),
                      "digest": "0x" + digests[i].hex()}))
        return checks

    def _entry_check(self, ev: DecodedEvent, live: dict[str, Any], new_replica: Callable[..., Any]) -> list[Check]:
        w = str(ev.args["worker"])
        digest, cid = _h(ev.args["resultDigest"]), str(ev.args["resultCID"])
        lane = self.lanes.get(w.lower())
        entry = lane.entry if lane is not None else None
        live[w] = new_replica(digest=digest, cid=cid)
        ok = entry == (digest, cid)
        return [Check(name="lane_entry", subject=w, passed=ok,
                      detail="the task's result is the lane reveal's entry for it" if ok else
                      "the task's ResultRevealed differs from the lane reveal's entry for the task",
                      evidence={"digest": digest, "cid": cid, "entry": list(entry) if entry else None})]

    def _agreed(self) -> tuple[bool, list[str | None]]:
        hashes = [lane.list_hash for lane in self.lanes.values()]
        return len(hashes) == self.replication and None not in hashes and len(set(hashes)) == 1, hashes

    def _split_check(self) -> Check:
        agreed, hashes = self._agreed()
        return Check(name="lane_split", subject=f"chunk {self.start}", passed=not agreed,
                     detail="the lanes had not all revealed one list: the chunk split into per-task rounds"
                     if not agreed else "every lane revealed the same list, yet the chunk was split",
                     evidence={"list_hashes": list(hashes), "lanes": self.replication})

    def settle_check(self, ev: DecodedEvent) -> Check:
        """``lane_settle``: a TaskFinalized of the chunk's task without a split (see the module doc)."""
        agreed, hashes = self._agreed()
        ok = agreed and ev.tx_hash == self._last_reveal_tx
        return Check(name="lane_settle", subject=f"chunk {self.start}", passed=ok,
                     detail=f"all {self.replication} lanes revealed the same list; the last reveal settled the chunk"
                     if ok else "the chunk's task finalized without a split, but its lanes did not all reveal one "
                     "list, or not in the transaction of the last reveal",
                     evidence={"list_hashes": list(hashes), "lanes": self.replication, "tx": ev.tx_hash,
                               "last_reveal_tx": self._last_reveal_tx})

    def slash_check(self) -> Check | None:
        """``lane_slashes`` (None when no lane was or should have been slashed)."""
        if not self.expected_slash and not self.actual_slash:
            return None
        amount = self.count * self.stake
        ok = sorted(x.lower() for x in self.expected_slash) == sorted(x.lower() for x, _ in self.actual_slash) \
            and all(x == amount for _, x in self.actual_slash)
        return Check(name="lane_slashes", subject=f"chunk {self.start}", passed=ok,
                     detail=f"{len(self.actual_slash)} lane slash(es) of {self.count} x {self.stake}, as the rules "
                     "require" if ok else "the slashed lanes or amounts differ from what the rules require",
                     evidence={"expected": self.expected_slash, "actual": [x for x, _ in self.actual_slash],
                               "amounts": [str(x) for _, x in self.actual_slash], "lane_stake": str(amount)})
