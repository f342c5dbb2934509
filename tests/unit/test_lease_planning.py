"""worker._leases: pure functions, no chain (isolates the rules of R = 1 leases of several tasks: what a lease may
send in task order, how many tasks one claim takes; the daemon's use of them is tested on a real anvil in
tests/integration/test_worker_leases.py)."""

from __future__ import annotations

from typing import Any

import pytest

from oracle.market import JobView
from worker._journal import Step, TaskRecord
from worker._leases import LeaseOp, chunk_ops, plan_lease, range_size, start_in_bag, tail_least

JOB = 7
START = (JOB << 32) | 10  # a lease of tasks 10..15 of job 7


def rec(index: int, step: Step, failure: bool = False) -> TaskRecord:
    return TaskRecord(task_key=f"{JOB}:{index}", job_id=JOB, task_index=index, step=step,
                      data={"failure": failure}, updated_at=0.0)


def plan(records: dict[int, TaskRecord], done: int = 0, running: set[str] | None = None, count: int = 6
         ) -> list[tuple[str, int, list[int]]]:
    p = plan_lease(START, count, done, lambda tid: records.get(tid & 0xFFFFFFFF), running or set(),
                   lambda r: bool(r.data["failure"]))
    return [(op.kind, op.first & 0xFFFFFFFF, [r.task_index for r in op.records]) for op in p.ops]


def test_consecutive_results_go_in_one_submit_range() -> None:
    records = {i: rec(i, Step.UPLOADED) for i in range(10, 13)} | {13: rec(13, Step.RAN)}
    assert plan(records) == [("results", 10, [10, 11, 12])]


def test_a_result_waits_for_the_task_before_it() -> None:
    records = {10: rec(10, Step.CLAIMED), 11: rec(11, Step.UPLOADED), 12: rec(12, Step.UPLOADED)}
    assert plan(records) == []
    assert plan(records, running={f"{JOB}:10"}) == []


def test_the_walk_starts_where_the_chain_left_off_and_reports_settled_records() -> None:
    records = {i: rec(i, Step.UPLOADED) for i in range(10, 16)}
    p = plan_lease(START, 6, 4, lambda tid: records.get(tid & 0xFFFFFFFF), set(), lambda r: False)
    assert [(op.first & 0xFFFFFFFF, len(op.records)) for op in p.ops] == [(14, 2)]
    assert [r.task_index for r in p.settled] == [10, 11, 12, 13]  # submitted before a restart


def test_a_failure_splits_the_results_around_it() -> None:
    records = {10: rec(10, Step.UPLOADED), 11: rec(11, Step.UPLOADED, failure=True), 12: rec(12, Step.UPLOADED)}
    assert plan(records) == [("results", 10, [10]), ("failure", 11, [11]), ("results", 12, [12])]


@pytest.mark.parametrize("given_up", [Step.ABANDONING, Step.FAILED])
def test_a_task_given_up_gives_back_the_rest_of_the_lease(given_up: Step) -> None:
    records = {10: rec(10, Step.UPLOADED), 11: rec(11, given_up), 12: rec(12, Step.CLAIMED),
               13: rec(13, Step.UPLOADED), 14: rec(14, Step.ABANDONING), 15: rec(15, Step.CLAIMED)}
    assert plan(records) == [("results", 10, [10]), ("abandon", 11, [11, 12, 13, 14, 15])]


def test_a_give_back_waits_while_a_later_task_of_the_lease_runs() -> None:
    records = {10: rec(10, Step.ABANDONING), 11: rec(11, Step.CLAIMED)}
    assert plan(records, running={f"{JOB}:11"}) == []
    assert plan(records) == [("abandon", 10, [10, 11])]


def test_a_give_back_behind_a_running_task_waits_for_it() -> None:
    records = {10: rec(10, Step.CLAIMED), 11: rec(11, Step.ABANDONING)}
    assert plan(records, running={f"{JOB}:10"}) == []


def test_range_size_takes_the_smallest_bound() -> None:
    kw = {"lease_tasks": 16, "free_tasks": 1000, "holders": 1, "fits": 100, "stake_for": 100}
    assert range_size(6, **kw) == 6
    assert range_size(40, **kw) == 16
    assert range_size(6, **(kw | {"fits": 3})) == 3  # the job's deadline
    assert range_size(6, **(kw | {"stake_for": 2})) == 2  # the free stake
    assert range_size(6, **(kw | {"stake_for": 0})) == 0


def test_range_size_shares_the_end_of_a_bag() -> None:
    kw = {"lease_tasks": 16, "fits": 100, "stake_for": 100}
    assert range_size(6, free_tasks=12, holders=4, **kw) == 3  # 12 free tasks, 4 workers: 12 / 4
    assert range_size(6, free_tasks=13, holders=4, **kw) == 4  # rounded up
    assert range_size(6, free_tasks=1, holders=4, **kw) == 1


def test_a_credible_lease_keeps_its_least_length_as_the_bag_ends() -> None:
    """Credibility mode: a lease's fixed cost (claim, commitRange, revealRange) is four times an R = 1 lease's, so
    the end of the bag is not shared out below ``least`` tasks; the room (claim-ahead horizon) still bounds it."""
    kw = {"lease_tasks": 16, "fits": 100, "stake_for": 100, "free_tasks": 12, "holders": 4}
    assert range_size(14, least=8, **kw) == 8  # not 12 / 4
    assert range_size(5, least=8, **kw) == 5  # the room is the bound
    assert range_size(14, least=8, **(kw | {"free_tasks": 40})) == 10  # above the least, shared out as before
    assert range_size(14, least=8, **(kw | {"stake_for": 6})) == 6


def test_an_r1_lease_at_the_end_of_a_bag_still_takes_a_few_seconds_of_work() -> None:
    """R = 1: the least a lease takes as the bag ends is the tasks that keep the worker's slots busy ``least_s``
    seconds, by the median run seen here; before any run (or with 0 s) the end is shared out evenly."""
    assert tail_least(4.0, 2, [1.0, 0.8, 1.2]) == 8  # 2 slots x 4 s / 1 s
    assert tail_least(4.0, 2, [10.0]) == 1  # slow tasks: no fewer than the even share
    assert tail_least(4.0, 2, None) == 1 and tail_least(4.0, 2, []) == 1
    assert tail_least(0.0, 2, [0.1]) == 1
    kw = {"lease_tasks": 16, "fits": 100, "stake_for": 100, "free_tasks": 12, "holders": 4}
    assert range_size(14, least=tail_least(4.0, 2, [1.0]), **kw) == 8  # not 12 / 4 = 3
    assert range_size(14, least=tail_least(4.0, 2, [30.0]), **kw) == 3


def test_chunks_keep_order_and_cut_long_results_into_consecutive_parts() -> None:
    def op(n: int, first: int = 10) -> LeaseOp:
        return LeaseOp("results", START, (JOB << 32) | first, tuple(rec(first + i, Step.UPLOADED) for i in range(n)))

    def shape(chunks: list[list[LeaseOp]]) -> list[list[tuple[int, int]]]:
        return [[(o.first & 0xFFFFFFFF, len(o.records)) for o in c] for c in chunks]

    assert shape(chunk_ops([op(3), op(2)], 6)) == [[(10, 3), (10, 2)]]
    assert shape(chunk_ops([op(3), op(2)], 4)) == [[(10, 3)], [(10, 2)]]
    assert shape(chunk_ops([op(5)], 2)) == [[(10, 2)], [(12, 2)], [(14, 1)]]  # each part the lease's next results
    back = LeaseOp("abandon", START, START, tuple(rec(10 + i, Step.ABANDONING) for i in range(8)))
    assert shape(chunk_ops([op(1), back], 2)) == [[(10, 1), (10, 8)]]  # one call gives back the whole rest
    assert chunk_ops([], 4) == []


def test_claim_ahead_only_what_would_start_soon() -> None:
    from worker._leases import ahead_for

    assert ahead_for(12, 2, 60.0, [0.3, 0.5, 0.4], 3600) == 12  # quick tasks: the whole claim_ahead
    assert ahead_for(12, 2, 60.0, [20.0, 30.0, 40.0], 3600) == 4  # 2 slots x 60 s / 30 s
    assert ahead_for(12, 2, 60.0, [600.0], 3600) == 0  # tasks of minutes: none ahead
    assert ahead_for(12, 2, 60.0, None, 3600) == 0  # none run here yet: its maxRunSeconds counts
    assert ahead_for(12, 2, 60.0, None, 10) == 12
    assert ahead_for(0, 2, 60.0, [0.1], 10) == 0


def test_replicas_are_claimed_ahead_only_with_half_their_run_time_to_spare() -> None:
    from worker._leases import replicas_ahead

    # maxRunSeconds 60, a run expected to take 21 s here: a queue of (60 - 21) / 2 = 19.5 s, 2 slots of 3 s tasks
    assert replicas_ahead(12, 2, 60.0, [2.0, 3.0, 4.0], 60, 21.0) == 12
    assert replicas_ahead(12, 2, 60.0, [10.0], 60, 35.0) == 2  # 2 x 12.5 s / 10 s
    assert replicas_ahead(12, 2, 5.0, [1.0], 60, 17.0) == 10  # the claim_ahead_s horizon binds first
    assert replicas_ahead(12, 2, 60.0, [20.0], 60, 55.0) == 0  # a run takes nearly all of maxRunSeconds: none
    assert replicas_ahead(12, 2, 60.0, [20.0], 60, 75.0) == 0  # more than all of it
    assert replicas_ahead(12, 2, 60.0, None, 60, 60.0) == 0  # no run of the job seen here yet
    assert replicas_ahead(12, 2, 60.0, [], 3600, 15.0) == 0


def test_only_fixed_replicas_bound_to_no_class_or_gpu_go_ahead() -> None:
    from oracle.protocol import ARCH_AMD64, ARCH_HOMOGENEOUS
    from worker._leases import replicas_go_ahead

    def job(**kw: int) -> JobView:
        fields = {"replication": 2, "gpus": 0, "arch_mask": ARCH_AMD64, "confidence_ppb": 0} | kw
        return JobView(job_id=1, requester="0x" + "00" * 20, app_id=1, dataset_id=0, num_tasks=2, reward=1,
                       deadline=10**10, max_run_seconds=60, cores=1, memory_mb=0, min_reputation=0,
                       callback="0x" + "00" * 20, inputs_cid="bafy", encryption_key="", **fields)

    assert replicas_go_ahead(job())
    assert not replicas_go_ahead(job(replication=1))  # R = 1 goes ahead in leases instead
    assert not replicas_go_ahead(job(arch_mask=ARCH_AMD64 | ARCH_HOMOGENEOUS))  # a claim binds the task's class
    assert not replicas_go_ahead(job(gpus=1))
    assert not replicas_go_ahead(job(confidence_ppb=990_000_000))


def test_a_replica_that_waited_too_long_for_its_slot_is_given_back_not_run() -> None:
    from worker._leases import replica_late

    assert replica_late(1_000.0, 1_060, 0) is None  # ends before its claim's expiry; the round is not open yet
    assert replica_late(1_000.0, 1_060, 1_030) is None
    assert "claim's expiry 990" in (replica_late(1_000.0, 990, 0) or "")
    assert "commit deadline 999" in (replica_late(1_000.0, 1_060, 999) or "")  # another replica opened the round
    assert replica_late(1_000.0, 0, 0) is None  # expiry unknown (an old journal) and no round open


# -- where a worker starts its next lease in a bag (start_in_bag) ------------------------------------------------
def test_first_lease_starts_at_the_workers_own_offset() -> None:
    assert start_in_bag(None, 1234, [], 500, 16) == 1234 % 500


def test_next_lease_follows_the_last_while_its_next_task_is_free() -> None:
    assert start_in_bag(40, 7, [(30, 40), (100, 120)], 500, 16) == 40


def test_a_frontier_reached_by_another_worker_jumps_into_the_widest_free_run() -> None:
    # 40 is taken by another worker's lease: the widest free run is [120, 500); start in its middle half
    taken = [(30, 60), (100, 120)]
    for spread in range(0, 1000, 37):
        start = start_in_bag(40, spread, taken, 500, 16)
        assert 120 + 380 // 4 <= start < 120 + 3 * 380 // 4


def test_two_workers_jumping_at_once_land_apart() -> None:
    taken = [(0, 100)]
    assert start_in_bag(100 - 1, 3, taken, 1000, 16) != start_in_bag(50, 211, [(0, 100)], 1000, 16)


def test_a_short_run_at_the_end_of_the_bag_is_taken_from_its_start() -> None:
    # free runs [60, 70) and [480, 500): both shorter than two leases: the widest is taken from its start
    assert start_in_bag(60, 9, [(0, 60), (70, 480)], 500, 16) == 60
    assert start_in_bag(70, 9, [(0, 60), (70, 480)], 500, 16) == 480


def test_a_new_job_of_an_app_that_ran_here_claims_ahead_from_the_apps_run_times() -> None:
    """``Worker._ran`` / ``Worker._seconds_of`` in isolation (a namespace stands for the worker: only the two run-time
    tables are read): before a job's first run here, its app's last runs here size its claim ahead, not its
    maxRunSeconds; once one ran, the job's own."""
    from types import SimpleNamespace

    from worker._daemon import Worker
    from worker._leases import ahead_for

    def job(job_id: int, app_id: int) -> JobView:
        return JobView(job_id=job_id, requester="0x" + "00" * 20, app_id=app_id, dataset_id=0, num_tasks=100,
                       reward=1, deadline=10**10, max_run_seconds=60, cores=1, memory_mb=0, min_reputation=0,
                       callback="0x" + "00" * 20, inputs_cid="bafy", encryption_key="", replication=1, gpus=0,
                       arch_mask=0, confidence_ppb=0)

    w: Any = SimpleNamespace(_task_seconds={}, _app_seconds={})
    assert Worker._seconds_of(w, job(1, 7)) is None
    assert ahead_for(12, 2, 60.0, Worker._seconds_of(w, job(1, 7)), 60) == 2  # maxRunSeconds: 2 slots x 60 / 60
    for s in (0.5, 0.7, 0.6):
        Worker._ran(w, SimpleNamespace(job_id=1, data={"job": job(1, 7).model_dump(mode="json")}), s)
    assert list(Worker._seconds_of(w, job(2, 7)) or []) == [0.5, 0.7, 0.6]  # a new job of app 7: its runs
    assert ahead_for(12, 2, 60.0, Worker._seconds_of(w, job(2, 7)), 60) == 12
    assert Worker._seconds_of(w, job(3, 8)) is None  # another app: nothing known
    Worker._ran(w, SimpleNamespace(job_id=4, data={"job": job(4, 8).model_dump(mode="json")}), 2.0, lease=False)
    assert list(Worker._seconds_of(w, job(3, 8)) or []) == [2.0]  # an R > 1 replica of app 8 ran here: its time counts
    assert 4 not in w._task_seconds  # but not as its job's own (replicas are not leased)
    Worker._ran(w, SimpleNamespace(job_id=2, data={"job": job(2, 7).model_dump(mode="json")}), 30.0)
    assert list(Worker._seconds_of(w, job(2, 7)) or []) == [30.0]  # the job's own runs, once there are some
