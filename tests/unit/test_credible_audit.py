"""The verifier's credibility-mode rules (indexer._verify_credible) on event sequences written by hand: the replay of
verified counts, and the findings on sequences a faithful contract never emits (a wrong reason, a lone result the
spot check picked, a settlement below the confidence). Only the events are made up; the arithmetic is
oracle.credibility's, which tests/contracts/test_credibility.py checks against the contract."""

from __future__ import annotations

from typing import Any

from indexer._verify_credible import CredibleAudit, Terms, VerifiedLedger, seen_hash
from oracle.credibility import CredibilitySettings, MoreReason, spot_checked
from oracle.events import DecodedEvent

A, B, C = ("0x" + c * 40 for c in "abc")
GOOD, BAD = "0x" + "60" * 32, "0x" + "ba" * 32
TID = (7 << 32) | 0
NC, SPOT, DISPUTE = (int(r) for r in MoreReason)


def ev(name: str, block: int, log: int = 0, tx: str | None = None, **args: Any) -> DecodedEvent:
    return DecodedEvent(name=name, args=args, address="0x" + "11" * 20, block_number=block, block_hash="0x",
                        tx_hash=tx or f"0x{block:04x}", log_index=log)


def agreed(tid: int, block: int, workers: tuple[str, ...], digest: str = GOOD) -> list[DecodedEvent]:
    """Reveals of ``workers`` on ``tid`` and its finalization (one block)."""
    out = [ev("ResultRevealed", block, i, taskId=tid, worker=w, resultDigest=digest) for i, w in enumerate(workers)]
    return out + [ev("TaskFinalized", block, len(workers), taskId=tid, resultDigest=digest, winners=len(workers),
                     rewardEach=1)]


def history(*runs: list[DecodedEvent]) -> VerifiedLedger:
    events = [e for run in runs for e in run]
    return VerifiedLedger.replay([A, B, C], [e for e in events if e.name == "WorkerSlashed"],
                                 [e for e in events if e.name == "ResultRevealed"],
                                 [e for e in events if e.name == "TaskFinalized"])


def test_the_ledger_counts_confirmed_wins_and_resets_at_a_slash() -> None:
    ledger = history(
        agreed(1, 10, (A, B)),  # confirmed: A 1, B 1
        agreed(2, 11, (A,)),  # a lone result is not a verified one
        [ev("ResultRevealed", 12, 0, taskId=3, worker=C, resultDigest=BAD)] + agreed(3, 12, (A, B)),  # C lost
        [ev("WorkerSlashed", 13, 0, worker=A, taskId=4, amount=1, reputation=0)],
        agreed(5, 14, (A, B)))
    assert [ledger.at(w, (12, 0)) for w in (A, B, C)] == [1, 1, 0]
    assert [ledger.at(w, (13, 0)) for w in (A, B, C)] == [2, 2, 0]
    assert [ledger.at(w, (14, 0)) for w in (A, B, C)] == [0, 2, 0]  # the slash reset A
    assert [ledger.at(w.upper().replace("0X", "0x"), (99, 0)) for w in (A, B, C)] == [1, 3, 0]


TERMS = Terms(settings=CredibilitySettings(900_000_000, 2000, 0), cap=4, reward=10, fee_bps=0, replica_stake=5,
              owners_price=0)


def disputed(reason: int = DISPUTE, ppb: int = 4 * 10**9 // 9) -> list[DecodedEvent]:
    """Two new workers at f = 20 % (0.8 each): A alone is not credible (a replica wanted at its commit), A and B
    together would be (16/17), they disagree (a dispute at 4/9)."""
    return [ev("ReplicaClaimed", 10, taskId=TID, worker=A, replica=0),
            ev("ReplicasAdded", 11, 0, taskId=TID, target=2),
            ev("ReplicaWanted", 11, 1, taskId=TID, reason=NC, target=2, credibilityPpb=800_000_000),
            ev("ResultCommitted", 11, 2, taskId=TID, worker=A),
            ev("ReplicaClaimed", 12, taskId=TID, worker=B, replica=1),
            ev("ResultCommitted", 13, taskId=TID, worker=B),
            ev("ResultRevealed", 14, taskId=TID, worker=A, resultDigest=GOOD, resultCID="bafyA"),
            ev("ResultRevealed", 15, 0, taskId=TID, worker=B, resultDigest=BAD, resultCID="bafyB"),
            ev("ReplicasAdded", 15, 1, taskId=TID, target=3),
            ev("ReplicaWanted", 15, 2, taskId=TID, reason=reason, target=3, credibilityPpb=ppb)]


def audit(events: list[DecodedEvent], terms: Terms = TERMS, ledger: VerifiedLedger | None = None,
          seed: bytes = b"\x01" * 32) -> CredibleAudit:
    a = CredibleAudit(TID, terms, ledger or history(), lambda commit, at: seed)
    a.run(events)
    return a


def test_each_replica_wanted_is_recomputed_at_its_moment() -> None:
    checks = [c for c in audit(disputed()).checks if c.name == "replica_wanted"]
    assert [(c.passed, c.evidence["moment"]) for c in checks] == [(True, "last commit"), (True, "settlement")]


def test_a_dispute_reported_as_not_credible_or_with_another_credibility_is_flagged() -> None:
    wrong = [c for c in audit(disputed(reason=NC)).checks if c.name == "replica_wanted"][-1]
    assert wrong.passed is False and "where the rules give dispute at 444444444 ppb" in wrong.detail
    inflated = [c for c in audit(disputed(ppb=5 * 10**8)).checks if c.name == "replica_wanted"][-1]
    assert inflated.passed is False and inflated.evidence["expected_ppb"] == 444_444_444


def test_a_settlement_naming_the_wrong_winners_or_below_the_confidence_is_flagged() -> None:
    three = disputed() + [ev("ReplicaClaimed", 16, taskId=TID, worker=C, replica=2),
                          ev("ResultCommitted", 17, taskId=TID, worker=C),
                          ev("ResultRevealed", 18, 0, taskId=TID, worker=C, resultDigest=GOOD, resultCID="bafyC"),
                          ev("WorkerSlashed", 18, 1, taskId=TID, worker=B, amount=5, reputation=0)]
    final = ev("TaskFinalized", 18, 2, taskId=TID, resultDigest=GOOD, winners=2, rewardEach=15)
    # 16 / (1 + 16 + 4) = 0.76 < 0.9: the contract should have wanted a fourth replica
    low = audit([*three, final])
    group = next(c for c in low.checks if c.name == "credibility")
    assert group.passed is False and group.evidence["credibility_ppb"] == 16 * 10**9 // 21
    assert next(c for c in low.checks if c.name == "slashes").passed  # B lost and was slashed
    # at 0.75 the pair is credible enough, but the settlement must name 2 winners, not 3
    lenient = Terms(settings=CredibilitySettings(750_000_000, 2000, 0), cap=4, reward=10, fee_bps=0,
                    replica_stake=5, owners_price=0)
    assert next(c for c in audit([*three, final], lenient).checks if c.name == "credibility").passed
    miscounted = ev("TaskFinalized", 18, 2, taskId=TID, resultDigest=GOOD, winners=3, rewardEach=10)
    assert next(c for c in audit([*three, miscounted], lenient).checks if c.name == "credibility").passed is False


def lone(reveal_block: int) -> list[DecodedEvent]:
    """A worker with 10 verified results (0.98 at f = 20 %) commits in block 100 and finalizes alone."""
    return [ev("ReplicaClaimed", 99, taskId=TID, worker=A, replica=0),
            ev("ResultCommitted", 100, taskId=TID, worker=A),
            ev("ResultRevealed", reveal_block, 0, taskId=TID, worker=A, resultDigest=GOOD, resultCID="bafyA"),
            ev("TaskFinalized", reveal_block, 1, taskId=TID, resultDigest=GOOD, winners=1, rewardEach=10)]


def test_a_lone_result_is_accepted_only_when_the_commit_blocks_hash_did_not_pick_it() -> None:
    veteran = history(*(agreed(1000 + i, i + 1, (A, B)) for i in range(10)))
    never = audit(lone(101), ledger=veteran)
    assert all(c.passed for c in never.checks), [(c.name, c.detail) for c in never.checks]
    assert never.unused == 30  # 3 of the 4 replicas unused
    always = Terms(settings=CredibilitySettings(900_000_000, 2000, 10_000), cap=4, reward=10, fee_bps=0,
                   replica_stake=5, owners_price=0)
    picked = next(c for c in audit(lone(101), always, veteran).checks if c.name == "spot_check")
    assert picked.passed is False and "picked for a spot check" in picked.detail


def test_the_seed_is_the_commit_blocks_hash_for_256_blocks_then_zero() -> None:
    def block_hash(n: int) -> bytes:
        return n.to_bytes(32, "big")

    assert seen_hash(100, 101, block_hash) == block_hash(100)
    assert seen_hash(100, 356, block_hash) == block_hash(100)
    assert seen_hash(100, 357, block_hash) == b"\x00" * 32  # gone: the task counts as picked
    assert seen_hash(100, 100, block_hash) == b"\x00" * 32  # the commit block's own hash is not known yet


def test_a_spot_check_the_seed_does_not_pick_is_flagged() -> None:
    veteran = history(*(agreed(1000 + i, i + 1, (A, B)) for i in range(10)))
    half = Terms(settings=CredibilitySettings(900_000_000, 2000, 5000), cap=4, reward=10, fee_bps=0,
                 replica_stake=5, owners_price=0)
    events = lone(101)[:2] + [ev("ReplicasAdded", 105, 0, taskId=TID, target=2),
                              ev("ReplicaWanted", 105, 1, taskId=TID, reason=SPOT, target=2,
                                 credibilityPpb=980_000_000)]
    seeds = [bytes([i]) * 32 for i in range(1, 60)]
    unpicked = next(s for s in seeds if not spot_checked(s, TID, 5000))
    picked = next(s for s in seeds if spot_checked(s, TID, 5000))
    check = next(c for c in audit(events, half, veteran, unpicked).checks if c.name == "replica_wanted")
    assert check.passed is False and check.evidence["picked"] is False
    assert "does not pick the task" in check.detail
    assert next(c for c in audit(events, half, veteran, picked).checks if c.name == "replica_wanted").passed


def test_a_round_settled_short_of_a_silent_replica_drops_it_and_wants_one_more() -> None:
    """A and B (1 verified each at f = 20 %: 16/17 together) committed; only A revealed before the deadline: the
    finalize call slashes B and wants a third replica for A's lone result (0.8, not credible)."""
    ledger = history(agreed(1, 1, (A, B)))
    events = [ev("ReplicaClaimed", 10, taskId=TID, worker=A, replica=0),
              ev("ReplicasAdded", 11, 0, taskId=TID, target=2),
              ev("ReplicaWanted", 11, 1, taskId=TID, reason=NC, target=2, credibilityPpb=800_000_000),
              ev("ResultCommitted", 11, 2, taskId=TID, worker=A),
              ev("ReplicaClaimed", 12, taskId=TID, worker=B, replica=1),
              ev("ResultCommitted", 13, taskId=TID, worker=B),
              ev("ResultRevealed", 14, taskId=TID, worker=A, resultDigest=GOOD, resultCID="bafyA"),
              ev("WorkerSlashed", 20, 0, taskId=TID, worker=B, amount=5, reputation=0),
              ev("ReplicasAdded", 20, 1, taskId=TID, target=3),
              ev("ReplicaWanted", 20, 2, taskId=TID, reason=NC, target=3, credibilityPpb=800_000_000)]
    a = audit(events, ledger=ledger)
    assert [(c.name, c.passed) for c in a.checks] == [("replica_wanted", True), ("replica_wanted", True),
                                                      ("slashes", True)]
    assert a.checks[1].evidence["moment"] == "settlement" and a.expected_slash == [B]
