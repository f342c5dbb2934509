"""The credibility-mode simulation (scripts/credibility_sim.py) on fixed seeds: the properties PROTOCOL.md reports.
No chain: it isolates the rules' arithmetic (oracle.credibility), which test_credibility.py checks against the
contract."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from oracle.credibility import CredibilitySettings, best_group, spot_checked

pytestmark = pytest.mark.unit


def _sim() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "scripts" / "credibility_sim.py"
    spec = importlib.util.spec_from_file_location("credibility_sim", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["credibility_sim"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_an_honest_population_accepts_only_right_results_with_few_replicas() -> None:
    sim = _sim()
    c = CredibilitySettings.of(0.99, 0.1, 0.1)
    out = sim.simulate(0.0, 5000, 100, c, 8, 0.5, 0, 2000, seed=3)
    assert out.wrong == 0 and out.failed == 0
    assert out.replicas_per_task < 1.3  # trusted workers alone, plus the 10 % spot checks


@pytest.mark.parametrize("cheaters", [0.1, 0.2, 0.3])
def test_independent_cheaters_below_the_assumed_share_stay_under_the_target_error(cheaters: float) -> None:
    sim = _sim()
    c = CredibilitySettings.of(0.99, 0.3, 0.1)
    out = sim.simulate(cheaters, 5000, 100, c, 8, 0.5, 0, 0, seed=5, collude=False)
    assert out.accepted > 0 and out.error_rate <= 0.01


def test_a_dispute_weighs_every_replica_as_new() -> None:
    veteran, new = 10_000, 0
    verdict = best_group([(b"lie", veteran), (b"ok", new)], 1000)
    assert verdict.dispute and verdict.credibility_ppb < 500_000_000  # 9 / (1 + 9 + 9): a veteran's record is moot
    assert best_group([(b"ok", veteran)], 1000).credibility_ppb > 999_000_000


def test_an_unreadable_commit_block_hash_means_a_spot_check() -> None:
    assert spot_checked(b"\x00" * 32, 1, 1) is True
    assert spot_checked(b"\x11" * 32, 1, 0) is False
    picked = sum(spot_checked(i.to_bytes(32, "big"), 7, 1000) for i in range(1, 5001))
    assert 350 < picked < 650  # about 10 %


@pytest.mark.parametrize("args", [(0.0, 0.1, 0.1), (1.0, 0.1, 0.1), (0.99, 0.005, 0.1), (0.99, 0.6, 0.1),
                                  (0.99, 0.1, 1.5)])
def test_bad_settings_say_what_is_accepted(args: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError, match="must be between"):
        CredibilitySettings.of(*args)
