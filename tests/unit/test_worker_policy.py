"""worker._policy.decide / rank: pure functions, no chain (isolates the policy rules)."""

from __future__ import annotations

import datetime as dt

import pytest

from worker._caps import Capabilities
from worker._policy import HourRange, Offer, Policy, decide, rank

NOW = dt.datetime(2026, 11, 24, 14, 0, 0)
CAPS = Capabilities(cores=4, memory_mb=8192, gpus=0, arch="amd64")


def offer(**kw) -> Offer:
    base = dict(job_id=1, task_index=0, app="0xapp", requester="0xReq", reward=100, max_run_s=60,
                deadline=int(NOW.timestamp()) + 3600)
    return Offer(**{**base, **kw})


def test_a_fitting_offer_is_accepted() -> None:
    assert decide(offer(), CAPS, Policy(), now=NOW).accept


@pytest.mark.parametrize(("policy", "o", "reason"), [
    (Policy(blocked_apps=["0xAPP"]), offer(), "app 0xapp is blocked"),
    (Policy(allowed_apps=["0xother"]), offer(), "not in allowed_apps"),
    (Policy(blocked_requesters=["0xreq"]), offer(), "requester 0xReq is blocked"),
    (Policy(allowed_requesters=["0xfriend"]), offer(), "not in allowed_requesters"),
    (Policy(blocked_categories=["mining"]), offer(category="mining"), "category mining is blocked"),
    (Policy(min_reward=101), offer(), "reward 100 < min_reward 101"),
    (Policy(cores=2), offer(cores=3), "needs 3 cores, 2 lent"),
    (Policy(), offer(memory_mb=9000), "MB lent"),
    (Policy(), offer(gpus=1), "needs 1 GPUs"),
    (Policy(), offer(arch=2), "needs architecture 2"),
    (Policy(), offer(min_reputation=5), "needs reputation 5"),
    (Policy(), offer(max_run_s=3600), "does not fit before the deadline"),
    (Policy(hours=[HourRange(start=22, end=6)]), offer(), "hour 14 is outside"),
])
def test_each_rule_refuses_with_its_reason(policy: Policy, o: Offer, reason: str) -> None:
    d = decide(o, CAPS, policy, now=NOW)
    assert not d.accept and reason in d.reason


def test_idle_only_and_max_concurrent() -> None:
    assert not decide(offer(), CAPS, Policy(idle_only=True, max_load=0.5), now=NOW, load=0.9).accept
    assert decide(offer(), CAPS, Policy(idle_only=True, max_load=0.5), now=NOW, load=0.1).accept
    assert "max_concurrent" in decide(offer(), CAPS, Policy(max_concurrent=2), now=NOW, running=2).reason


def test_hour_ranges_wrap_past_midnight() -> None:
    night = HourRange(start=22, end=6)
    assert night.contains(23) and night.contains(0) and night.contains(5)
    assert not night.contains(6) and not night.contains(14)


def test_rank_prefers_tasks_whose_inputs_are_cached() -> None:
    cold = offer(task_index=0, reward=500, input_keys=["a", "b"])
    half = offer(task_index=1, reward=100, input_keys=["c", "d"])
    warm = offer(task_index=2, reward=100, input_keys=["e"])
    assert [o.task_index for o in rank([cold, half, warm], cached={"e", "c"})] == [2, 1, 0]
