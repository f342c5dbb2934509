"""worker._credible's spot-check draws for a credible lease, pure functions (isolates which rule a lease follows:
drawn whole as a check lane, or task by task; the contract's side is tests/contracts/test_check_lanes.py and the
daemons' is tests/integration/test_credibility_workers.py, both on anvil)."""

from __future__ import annotations

from oracle.credibility import MAX_LANE, checked_as_lane, spot_checked
from oracle.market import JobView
from worker._credible import lease_checked, sealed_tasks

CALLBACK = "0x" + "11" * 20
NONE = "0x" + "00" * 20


def job(callback: str = NONE) -> JobView:
    return JobView(job_id=3, requester=NONE, app_id=1, dataset_id=0, num_tasks=64, reward=1, deadline=10**10,
                   max_run_seconds=60, cores=1, memory_mb=0, min_reputation=0, callback=callback, inputs_cid="bafy",
                   encryption_key="", replication=4, gpus=0, arch_mask=0, confidence_ppb=990_000_000)


def seed_picking(start: int, bps: int, picked: bool) -> bytes:
    """A block hash whose draw for ``start`` is ``picked``."""
    for i in range(1, 10_000):
        h = i.to_bytes(32, "big")
        if spot_checked(h, start, bps) is picked:
            return h
    raise AssertionError("no such hash")


def test_a_lease_a_chunk_holds_of_a_job_without_callback_is_drawn_whole() -> None:
    start = (3 << 32) | 5
    assert checked_as_lane(MAX_LANE, False) and not checked_as_lane(MAX_LANE + 1, False)
    assert not checked_as_lane(1, True)
    hit, miss = seed_picking(start, 1_000, True), seed_picking(start, 1_000, False)
    assert lease_checked(job(), start, 8, hit, 1_000)
    assert not lease_checked(job(), start, 8, miss, 1_000)
    # a callback, or a lease longer than a chunk: never drawn whole, whatever the hash
    assert not lease_checked(job(CALLBACK), start, 8, hit, 1_000)
    assert not lease_checked(job(), start, MAX_LANE + 1, hit, 1_000)
    # a zero hash (unreadable: 256 blocks later) picks the lease, as it picks a task
    assert lease_checked(job(), start, 8, b"\x00" * 32, 1)


def test_what_a_reveal_seals() -> None:
    tids = [(3 << 32) | i for i in range(4)]
    every = b"\x00" * 32  # picks every task drawn per task
    # drawn whole (and not picked, else there is no reveal): nothing sealed while the worker is credible alone
    assert sealed_tasks(tids, every, 10_000, credible=True, as_lane=True) == [False] * 4
    # drawn per task: the picked tasks stay sealed
    assert sealed_tasks(tids, every, 10_000, credible=True) == [True] * 4
    assert sealed_tasks(tids, every, 0, credible=True) == [False] * 4
    # no longer credible alone: every entry sealed, whichever way the lease is drawn
    assert sealed_tasks(tids, every, 0, credible=False, as_lane=True) == [True] * 4
