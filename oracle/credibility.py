"""Credibility mode arithmetic, the same integers as ``contracts/libraries/CredibilityMath.sol`` and the rules of
``ReplicaLogic`` (see PROTOCOL.md, "Credibility mode"): used by ``job explain``, the verifier and the simulation
(``scripts/credibility_sim.py``).

A worker with ``k`` verified results has credibility ``1 - f / max(k, 1)`` (Sarmenta 2002, without blacklisting);
a group of matching results has odds equal to the product of its members' odds, and the credibility of group ``a``
among groups ``G`` is ``O_a / (1 + sum(O_g))``. In a dispute (revealed results disagree) every worker weighs as new.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence

from eth_abi.abi import encode
from eth_utils.crypto import keccak

ONE = 10**18
MAX_ODDS = 10**40
PPB = 10**9


class MoreReason(enum.IntEnum):
    """Why a credibility-mode task wants one more replica (``ReplicaWanted.reason``)."""

    NOT_CREDIBLE = 0
    SPOT_CHECK = 1
    DISPUTE = 2


@dataclasses.dataclass(frozen=True)
class CredibilitySettings:
    """A job's ``Credibility`` struct: confidence in parts per billion, assumed faulty share and spot-check share in
    basis points."""

    confidence_ppb: int
    fault_bps: int
    spot_check_bps: int

    @classmethod
    def of(cls, confidence: float, fault: float = 0.1, spot_check: float = 0.1) -> CredibilitySettings:
        """From fractions (0.99, 0.1, 0.1); raises ValueError with the accepted ranges."""
        if not 0 < confidence < 1:
            raise ValueError(f"confidence {confidence} must be between 0 and 1 (for example 0.99 or 0.999)")
        if not 0.01 <= fault <= 0.5:
            raise ValueError(f"assumed faulty share {fault} must be between 0.01 and 0.5")
        if not 0 <= spot_check <= 1:
            raise ValueError(f"spot-check share {spot_check} must be between 0 and 1")
        return cls(round(confidence * PPB), round(fault * 10_000), round(spot_check * 10_000))


def odds(verified: int, fault_bps: int) -> int:
    """A worker's odds of being right, fixed point 1e18 (``CredibilityMath.odds``)."""
    k = max(verified, 1)
    return (k * 10_000 - fault_bps) * ONE // fault_bps


def times(group_odds: int, worker_odds: int) -> int:
    return min(group_odds * worker_odds // ONE, MAX_ODDS)


def ppb(group_odds: int, sum_odds: int) -> int:
    return group_odds * PPB // (ONE + sum_odds)


def of_worker(verified: int, fault_bps: int) -> int:
    """A worker's credibility in parts per billion (``credibilityOf``)."""
    return PPB - fault_bps * (PPB // 10_000) // max(verified, 1)


def all_agree_ppb(verified: Sequence[int], fault_bps: int) -> int:
    """The credibility the committed workers would have if they all agreed (the pre-reveal check)."""
    o = ONE
    for k in verified:
        o = times(o, odds(k, fault_bps))
    return ppb(o, o)


@dataclasses.dataclass(frozen=True)
class Verdict:
    digest: bytes | None
    votes: int
    credibility_ppb: int
    dispute: bool


def best_group(results: Sequence[tuple[bytes, int]], fault_bps: int) -> Verdict:
    """The revealed group with the highest credibility, from ``(digest, verified)`` per revealed replica in slot
    order (``ReplicaLogic._bestGroup``)."""
    if not results:
        return Verdict(None, 0, 0, False)
    dispute = any(d != results[0][0] for d, _ in results)
    base = odds(0, fault_bps)
    groups: dict[bytes, tuple[int, int]] = {}
    for digest, k in results:
        o, n = groups.get(digest, (ONE, 0))
        groups[digest] = (times(o, base if dispute else odds(k, fault_bps)), n + 1)
    total = sum(o for o, _ in groups.values())
    best = max(groups, key=lambda d: groups[d][0])  # first of equals: dict order is first-seen order
    return Verdict(best, groups[best][1], ppb(groups[best][0], total), dispute)


#: the most tasks in one lane chunk (``MarketStorage.MAX_LANE``)
MAX_LANE = 32


def checked_as_lane(count: int, has_callback: bool) -> bool:
    """``MarketStorage.checkedAsLane``: whether a spot check of a credible lease of ``count`` tasks checks the whole
    lease as a second lane (``checkLease``; PROTOCOL.md, "Check lanes") rather than task by task."""
    return not has_callback and count <= MAX_LANE


def spot_checked(commit_block_hash: bytes, task_id: int, spot_check_bps: int) -> bool:
    """``CredibilityMath.spotChecked``: a zero hash (unreadable) counts as picked."""
    if spot_check_bps == 0:
        return False
    if commit_block_hash == b"\x00" * 32:
        return True
    draw = int.from_bytes(keccak(encode(["bytes32", "uint256"], [commit_block_hash, task_id])), "big")
    return draw % 10_000 < spot_check_bps
