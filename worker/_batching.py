"""When the finished R = 1 results this worker holds go on chain: one pure rule (see :class:`BatchingSettings`).

A result is held only once it is journaled (UPLOADED: digest, CID), so a crash while it is held loses nothing:
the restarted daemon finds it in the journal and submits it. The daemon asks :func:`flush_reason` after each
round of claims; the tests ask it directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from ._settings import BatchingSettings


class Held(NamedTuple):
    """One held result, as the rule sees it."""

    since: float  #: wall-clock time it was journaled as uploaded (the journal's ``updated_at``)
    expiry: int   #: chain time its claim expires (0: unknown, so it is not held)


def flush_reason(held: Sequence[Held], *, now: float, chain_now: float, more_coming: bool, stopping: bool,
                 claims_blocked: bool, rule: BatchingSettings) -> str | None:
    """Why the held results must go now, or None to keep holding them.

    - ``drain``: the worker is stopping;
    - ``nothing-else-coming``: no other result would join them (``more_coming`` False: no R = 1 task of this worker
      runs and there is nothing it may claim now);
    - ``stake``: they lock stake a claim needs (``claims_blocked``);
    - ``full``: ``rule.max_results`` are held;
    - ``held``: one has waited ``rule.hold_s``;
    - ``claim-time``: one has waited ``rule.hold_claim_fraction`` of the time its claim had left when it was
      uploaded (``expiry - chain_now + waited``); an unknown expiry counts as none left.
    """
    if not held:
        return None
    if stopping:
        return "drain"
    if not more_coming:
        return "nothing-else-coming"
    if claims_blocked:
        return "stake"
    if len(held) >= rule.max_results:
        return "full"
    for h in held:
        waited = max(0.0, now - h.since)
        if waited >= rule.hold_s:
            return "held"
        if waited >= rule.hold_claim_fraction * max(0.0, h.expiry - chain_now + waited):
            return "claim-time"
    return None
