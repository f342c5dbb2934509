"""scripts/_gas_profile.py's arithmetic on hand-written step traces (isolates the classification and a call's own
cost from a node; the same profile on a real anvil is tests/integration/test_gas_profile_anvil.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from _gas_profile import classify, intrinsic  # noqa: E402


def step(op: str, gas: int, cost: int, depth: int = 1) -> dict[str, object]:
    return {"op": op, "gas": gas, "gasCost": cost, "depth": depth}


def test_each_step_is_charged_to_its_class() -> None:
    steps = [step("PUSH1", 1000, 3), step("SLOAD", 997, 2100), step("SLOAD", 900, 100), step("SSTORE", 800, 22100),
             step("SSTORE", 700, 2900), step("SSTORE", 600, 100), step("LOG3", 500, 1756), step("KECCAK256", 400, 36)]
    out = classify(steps)
    assert out == {"computation": 3, "reads: cold": 2100, "reads: warm": 100, "storage: new slots": 22100,
                   "storage: updates": 2900, "storage: rewrites in the same transaction": 100, "events": 1756,
                   "hashing": 36}


def test_a_call_is_charged_its_overhead_and_its_callee_its_own_steps() -> None:
    # the caller has 10,000 gas at the DELEGATECALL; 2,600 is the call's own cost (cold account), 7,245 is given
    # to the callee, which spends 3 + 2,100 and returns the rest; the caller resumes with 10,000 - 2,600 - 2,103
    steps = [step("DELEGATECALL", 10_000, 7_400), step("PUSH1", 7_245, 3, depth=2), step("SLOAD", 7_242, 2_100, depth=2),
             step("STOP", 5_142, 0, depth=2), step("POP", 10_000 - 2_600 - 2_103, 2)]
    out = classify(steps)
    assert out["calls (their own cost)"] == 2_600
    assert out["reads: cold"] == 2_100 and out["computation"] == 3 + 2
    assert sum(out.values()) == 10_000 - (10_000 - 2_600 - 2_103 - 2)  # what the frame used, nothing twice


def test_intrinsic_counts_zero_and_other_calldata_bytes() -> None:
    assert intrinsic(b"") == 21_000
    assert intrinsic(b"\x00\x00\x01") == 21_000 + 4 * 2 + 16
