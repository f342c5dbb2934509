"""worker._batching.flush_reason: a pure function, no chain (isolates the rule for holding finished R = 1 results;
the daemon's use of it is tested on a real anvil in tests/integration/test_worker_results_batching.py)."""

from __future__ import annotations

import pytest

from worker._batching import Held, flush_reason
from worker._settings import BatchingSettings

NOW = 1_000_000.0
CHAIN = 2_000_000  # the chain's clock need not be the machine's
RULE = BatchingSettings(hold_s=2.0, hold_claim_fraction=0.1, max_results=4)


def reason(held: list[Held], *, more_coming: bool = True, stopping: bool = False, blocked: bool = False,
           rule: BatchingSettings = RULE) -> str | None:
    return flush_reason(held, now=NOW, chain_now=CHAIN, more_coming=more_coming, stopping=stopping,
                        claims_blocked=blocked, rule=rule)


def fresh(waited: float = 0.5, left: int = 600) -> Held:
    """A result uploaded ``waited`` seconds ago whose claim has ``left`` seconds to go now."""
    return Held(since=NOW - waited, expiry=CHAIN + left)


def test_nothing_held_nothing_to_send() -> None:
    assert reason([], more_coming=False, stopping=True) is None


def test_a_fresh_result_waits_while_more_are_coming() -> None:
    assert reason([fresh(), fresh(1.9)]) is None


def test_the_oldest_goes_after_hold_s() -> None:
    assert reason([fresh(0.1), fresh(2.0)]) == "held"


@pytest.mark.parametrize(("kw", "why"), [
    ({"stopping": True}, "drain"),
    ({"more_coming": False}, "nothing-else-coming"),
    ({"blocked": True}, "stake"),
])
def test_drain_idle_and_stake_send_at_once(kw: dict[str, bool], why: str) -> None:
    assert reason([fresh(0.0)], **kw) == why


def test_a_full_batch_goes_at_once() -> None:
    assert reason([fresh(0.0)] * 3) is None
    assert reason([fresh(0.0)] * 4) == "full"


def test_a_claim_close_to_its_expiry_is_not_held() -> None:
    # 0.5 s held, 4 s left: it had 4.5 s when uploaded, and 10 % of that (0.45 s) has passed
    assert reason([fresh(0.5, left=4)]) == "claim-time"
    # 0.5 s held, 10 s left: 10 % of 10.5 s is 1.05 s, not yet
    assert reason([fresh(0.5, left=10)]) is None
    # a claim already past its expiry, or with no known expiry, is not held at all
    assert reason([fresh(0.0, left=-5)]) == "claim-time"
    assert reason([Held(since=NOW, expiry=0)]) == "claim-time"


def test_hold_zero_sends_each_result_alone_at_once() -> None:
    assert reason([fresh(0.0)], rule=BatchingSettings(hold_s=0.0)) == "held"


def test_the_settings_are_bounded() -> None:
    from pydantic import ValidationError

    for bad in ({"hold_s": -1}, {"hold_claim_fraction": 0.6}, {"max_results": 0}, {"max_results": 65}):
        with pytest.raises(ValidationError):
            BatchingSettings(**bad)
