"""oracle.market.ChainClock: the chain's clock told apart from the wall clock (pure arithmetic, no chain)."""

from __future__ import annotations

import pytest

from oracle.market import ChainClock

pytestmark = pytest.mark.unit


def test_it_starts_at_the_wall_clock_and_ignores_the_block_found_at_start() -> None:
    clock = ChainClock()
    # an idle automine chain: its latest block is an hour old, but its clock runs on with the wall's
    assert clock.observe(5, 1_000, wall=4_600.0) == 4_600
    assert clock.now(wall=4_700.0) == 4_700.0


def test_a_chain_behind_the_wall_clock_is_followed_not_overtaken() -> None:
    clock = ChainClock()
    clock.observe(1, 10_000, wall=12_000.0)
    for n in range(2, 8):  # blocks stamped 2,000 s behind the wall, seen within a second
        now = clock.observe(n, 10_000 + n, wall=12_000.5 + n)
    assert now == 10_007
    assert clock.now(wall=12_100.0) == pytest.approx(10_099.5)


def test_a_chain_ahead_is_followed_and_a_late_look_does_not_move_the_median() -> None:
    clock = ChainClock(window=5)
    clock.observe(1, 500, wall=100.0)
    for n in range(2, 6):
        clock.observe(n, 500 + n, wall=100.0 + n)  # 400 s ahead
    clock.observe(6, 506, wall=400.0)  # one block seen very late
    assert clock.offset == pytest.approx(400.0)
    assert clock.observe(6, 506, wall=200.0) == 600


def test_a_revert_drops_the_old_samples() -> None:
    clock = ChainClock()
    clock.observe(10, 100, wall=100.0)
    clock.observe(11, 101, wall=101.0)
    clock.observe(3, 50, wall=102.0)  # reverted to an older block
    clock.observe(4, 60, wall=110.0)
    assert clock.offset == pytest.approx(-50.0)
