"""The accounting of scripts/_daemon_costs.py on fixed receipts: gas per task, its split by kind (a multicall named
by its inner calls, a reverted transaction booked as reverted whatever it called) and the floor arithmetic.

The fake decoder isolates the accounting from the Marketplace ABI: calldata here is the function's name in ASCII,
and a multicall's inner calls follow it separated by ``|``."""

from __future__ import annotations

from scripts._daemon_costs import floor_ratio, gas_by_kind


def _decode(data: bytes) -> tuple[str, list[bytes]]:
    name, *inner = data.split(b"|")
    return name.decode(), inner if name == b"multicall" else []


def _r(data: bytes, gas: int, status: int = 1) -> dict[str, object]:
    return {"input": data, "gasUsed": hex(gas), "status": hex(status)}


def test_gas_per_task_sums_every_worker_transaction_and_the_posting() -> None:
    receipts = [_r(b"claimRange", 60_000), _r(b"submitRange", 140_000), _r(b"claimSome", 20_000, status=0),
                _r(b"multicall|commit|commit|claim", 90_000), _r(b"reveal", 50_000), _r(b"abandon", 10_000)]
    out = gas_by_kind(receipts, _decode, tasks=10, post_gas=130_000)
    assert out["gas"] == 500_000 and out["gas_per_task"] == 50_000 and out["txs"] == 6
    kinds = out["by_kind"]
    assert kinds["claims"] == {"txs": 1, "gas": 60_000, "gas_per_task": 6_000}
    assert kinds["submits"]["gas"] == 140_000 and kinds["reveals"]["gas"] == 50_000
    assert kinds["reverted"] == {"txs": 1, "gas": 20_000, "gas_per_task": 2_000}  # not booked as a claim
    assert kinds["multicall(claims x1, commits x2)"]["gas"] == 90_000
    assert kinds["abandon"]["txs"] == 1 and kinds["post"]["gas"] == 130_000


def test_integer_receipt_fields_are_accepted() -> None:
    out = gas_by_kind([{"input": b"submit", "gasUsed": 21_000, "status": 1}], _decode, tasks=1)
    assert out["by_kind"] == {"submits": {"txs": 1, "gas": 21_000, "gas_per_task": 21_000}}


def test_floor_is_render_cpu_over_cores_and_per_replica_divides_by_r() -> None:
    # 48 renders of 0.22 s on 2 cores: a floor of 5.28 s; 23 s is 4.36x it
    r1 = floor_ratio(23.0, 48 * 0.22, cores=2)
    assert r1["floor_s"] == 5.28 and r1["ratio"] == 4.356
    # the same wall time for 24 frames at R = 2, floor given for one copy: per replica it is the same 4.36x
    r2 = floor_ratio(23.0, 24 * 0.22, cores=2, replicas=2)
    assert r2["floor_s"] == 2.64 and r2["ratio"] == 8.712 and r2["ratio_per_replica"] == 4.356
