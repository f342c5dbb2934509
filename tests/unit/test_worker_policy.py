"""worker._policy.decide / rank: pure functions, no chain (isolates the policy rules)."""

from __future__ import annotations

import datetime as dt

import pytest

from worker._caps import Capabilities
from worker._policy import HourRange, Offer, Policy, decide, rank, run_slots

NOW = dt.datetime(2026, 11, 24, 14, 0, 0)
CAPS = Capabilities(cores=4, memory_mb=8192, gpus=0, arch="amd64")


def offer(**kw) -> Offer:
    base = {"job_id": 1, "task_index": 0, "app": "0xapp", "requester": "0xReq", "reward": 100, "max_run_s": 60,
            "deadline": int(NOW.timestamp()) + 3600}
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


def test_running_at_max_concurrent_refuses_and_one_less_accepts() -> None:
    policy = Policy(max_concurrent=3)
    assert decide(offer(), CAPS, policy, now=NOW, running=2).accept
    refused = decide(offer(), CAPS, policy, now=NOW, running=3)
    assert not refused.accept and refused.reason == "already running 3 of max_concurrent 3"


def test_memory_lent_defaults_to_all_but_512_mb_and_never_exceeds_the_machine() -> None:
    assert decide(offer(memory_mb=8192 - 512), CAPS, Policy(), now=NOW).accept
    assert "7680 MB lent" in decide(offer(memory_mb=8192 - 511), CAPS, Policy(), now=NOW).reason
    assert "8192 MB lent" in decide(offer(memory_mb=9000), CAPS, Policy(memory_mb=20_000), now=NOW).reason


def test_cores_lent_never_exceed_the_machine() -> None:
    assert "needs 5 cores, 4 lent" in decide(offer(cores=5), CAPS, Policy(cores=8), now=NOW).reason


def test_app_and_requester_lists_ignore_address_case() -> None:
    policy = Policy(allowed_apps=["0xAPP"], allowed_requesters=["0xREQ"])
    assert decide(offer(app="0xApp", requester="0xreq"), CAPS, policy, now=NOW).accept
    assert policy.allowed_apps == ["0xapp"] and policy.allowed_requesters == ["0xreq"]


def test_a_block_list_wins_over_an_allow_list() -> None:
    policy = Policy(allowed_apps=["0xapp"], blocked_apps=["0xapp"])
    assert decide(offer(), CAPS, policy, now=NOW).reason == "app 0xapp is blocked"


def test_an_offer_for_any_architecture_or_the_machines_own_code_fits() -> None:
    riscv = Capabilities(cores=1, memory_mb=1024, gpus=0, arch="riscv64")
    assert decide(offer(arch=0), riscv, Policy(), now=NOW).accept
    assert decide(offer(arch=riscv.arch_code), riscv, Policy(), now=NOW).accept
    assert "machine is riscv64" in decide(offer(arch=1), riscv, Policy(), now=NOW).reason


def test_the_deadline_is_measured_by_the_chain_clock_when_given() -> None:
    """A chain running ahead of the wall clock makes an offer too late even if the local time says it fits."""
    o = offer(max_run_s=60, deadline=int(NOW.timestamp()) + 120)
    assert decide(o, CAPS, Policy(safety_margin_s=30), now=NOW).accept
    late = decide(o, CAPS, Policy(safety_margin_s=30), now=NOW, chain_time=int(NOW.timestamp()) + 60)
    assert not late.accept and "does not fit before the deadline" in late.reason


def test_the_first_failing_rule_is_the_reason_given() -> None:
    d = decide(offer(reward=1, cores=64), CAPS, Policy(min_reward=10), now=NOW, running=5)
    assert d.reason.startswith("already running 5")


@pytest.mark.parametrize(("start", "end", "inside", "outside"), [
    (9, 17, [9, 12, 16], [8, 17, 23]),
    (0, 24, [0, 12, 23], []),
    (22, 6, [22, 23, 0, 5], [6, 12, 21]),
])
def test_hour_ranges_include_start_and_exclude_end(start: int, end: int, inside: list[int],
                                                   outside: list[int]) -> None:
    r = HourRange(start=start, end=end)
    assert all(r.contains(h) for h in inside) and not any(r.contains(h) for h in outside)


def test_several_hour_ranges_accept_any_of_them() -> None:
    policy = Policy(hours=[HourRange(start=8, end=9), HourRange(start=14, end=15)])
    assert decide(offer(), CAPS, policy, now=NOW).accept
    assert not decide(offer(), CAPS, policy, now=NOW.replace(hour=10)).accept


def test_rank_breaks_ties_by_reward_then_oldest_job_then_index() -> None:
    a = offer(job_id=2, task_index=0, reward=100)
    b = offer(job_id=1, task_index=1, reward=100)
    c = offer(job_id=1, task_index=0, reward=100)
    d = offer(job_id=3, task_index=0, reward=900)
    assert [(o.job_id, o.task_index) for o in rank([a, b, c, d], cached=set())] == [(3, 0), (1, 0), (1, 1), (2, 0)]


def test_rank_puts_tasks_without_inputs_after_fully_cached_ones() -> None:
    none = offer(task_index=0, reward=1000)
    cached = offer(task_index=1, reward=1, input_keys=["k"])
    assert [o.task_index for o in rank([none, cached], cached={"k"})] == [1, 0]


def test_run_slots_default_to_what_the_cores_and_memory_lent_hold() -> None:
    # 4 cores, 8192 MB: 7680 MB lent by default
    assert run_slots(CAPS, Policy()) == 4  # 1-core tasks, memory not counted
    assert run_slots(CAPS, Policy(), cores=2) == 2
    assert run_slots(CAPS, Policy(), cores=3) == 1
    assert run_slots(CAPS, Policy(), cores=1, ram_mb=2048) == 3  # 7680 // 2048: memory binds before the cores
    assert run_slots(CAPS, Policy(cores=2), cores=1, ram_mb=512) == 2  # the policy lends 2 of the 4 cores
    assert run_slots(CAPS, Policy(memory_mb=1024), cores=1, ram_mb=832) == 1
    assert run_slots(CAPS, Policy(), cores=8) == 1  # never 0: a task larger than lent is refused by decide instead
    assert run_slots(CAPS, Policy(max_concurrent=7), cores=4, ram_mb=4096) == 7  # an explicit count wins


def test_decide_counts_the_run_slots_of_the_offers_size_by_default() -> None:
    assert decide(offer(cores=2), CAPS, Policy(), now=NOW, running=1).accept
    refused = decide(offer(cores=2), CAPS, Policy(), now=NOW, running=2)
    assert not refused.accept
    assert refused.reason == "already running 2 of the 2 tasks of its size the cores and memory lent hold"
    assert not decide(offer(), CAPS, Policy(), now=NOW, running=3, slots=3).accept  # the daemon's own count
    assert decide(offer(), CAPS, Policy(), now=NOW, running=3).accept  # 4 one-core tasks fit
