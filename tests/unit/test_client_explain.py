"""`job explain` from what the chain shows (pure logic: the job, parameters and workers are given as values)."""

from __future__ import annotations

from oracle.client._explain import DEFAULT_MAX_INPUT, explain_task
from oracle.client._models import AppInfo, FailureView, JobProgress, JobStatus, WorkerInfo
from oracle.market import MarketParams

PARAMS = MarketParams(min_stake=10**18, claim_grace=60, commit_window=0, reveal_window=0, unstake_delay=0,
                      callback_gas=0, replica_stake=10**18, fee_bps=0, max_replicas=0, max_slashes=0, abandon_bps=0)
APP = AppInfo(app_id=1, owner="0x" + "44" * 20, image_ref="app", image_digest="sha256:" + "00" * 32,
              metadata_uri="", price=0, public=True, deprecated=False, deterministic_file="")
WORKER = WorkerInfo(address="0x" + "11" * 20, registered=True, banned=False, cores=8, memory_mb=16000, gpus=0,
                    arch_mask=1, reputation=5, stake=5 * 10**18, locked=0, slashes=0)


def _job() -> JobStatus:
    return JobStatus(job_id=1, requester="0x" + "22" * 20, app_id=1, dataset_id=1, num_tasks=2, replication=1,
                     reward=10**17, deadline=10_000, max_run_seconds=60, cores=1, memory_mb=256, gpus=0, arch_mask=0,
                     min_reputation=0, callback="0x" + "00" * 20, inputs_cid="bafy", encryption_key="", escrow_left=0,
                     posted_block=1, progress=JobProgress(total=2))


def test_an_input_over_the_default_worker_cap_is_named() -> None:
    e = explain_task(_job(), 0, "open", 100, PARAMS, APP, True, [WORKER], largest_input=DEFAULT_MAX_INPUT + 1)
    codes = {r.code: r for r in e.reasons}
    assert "inputs-over-default-cap" in codes and str(DEFAULT_MAX_INPUT + 1) in codes["inputs-over-default-cap"].message
    fits = explain_task(_job(), 0, "open", 100, PARAMS, APP, True, [WORKER], largest_input=1000)
    assert "inputs-over-default-cap" not in {r.code for r in fits.reasons}


def test_a_pending_failure_says_it_waits_for_a_second_worker() -> None:
    pending = FailureView(worker="0x" + "33" * 20, reports=1, digest=b"\x01" * 32)
    e = explain_task(_job(), 0, "open", 100, PARAMS, APP, True, [WORKER], pending_failure=pending)
    reason = next(r for r in e.reasons if r.code == "failure-pending")
    assert "second worker" in reason.message and pending.worker in reason.message
    none = explain_task(_job(), 0, "open", 100, PARAMS, APP, True, [WORKER],
                        pending_failure=FailureView(worker="0x" + "00" * 20, reports=0, digest=b"\0" * 32))
    assert "failure-pending" not in {r.code for r in none.reasons}


def test_a_task_leased_in_lanes_says_its_result_comes_with_its_chunk() -> None:
    e = explain_task(_job(), 3, "claimed", 100, PARAMS, APP, True, [WORKER], lane=(2, 5))
    lane = [r for r in e.reasons if r.code == "lane"]
    assert len(lane) == 1 and "one of the 5 tasks of a chunk from task 2" in lane[0].message
    assert "running" in e.summary
    plain = explain_task(_job(), 3, "claimed", 100, PARAMS, APP, True, [WORKER])
    assert not [r for r in plain.reasons if r.code == "lane"]


def test_the_tracker_knows_a_task_s_chunk_until_it_splits_or_settles() -> None:
    from oracle.client._watch import Tracker
    from oracle.protocol import task_id

    t = Tracker(job_id=1, total=8, replication=2)
    t.fold("LaneClaimed", {"startTaskId": task_id(1, 2), "worker": "0x" + "11" * 20, "lane": 0, "count": 3,
                           "expiry": 500})
    assert t.lanes == {2: (2, 3), 3: (2, 3), 4: (2, 3)} and t.task_state(3).state == "claimed"
    t.fold("TaskFinalized", {"taskId": task_id(1, 2), "resultDigest": "0x" + "00" * 32, "winners": 2, "share": 1})
    t.fold("LanesSplit", {"startTaskId": task_id(1, 2), "count": 3})
    assert t.lanes == {}


def test_a_task_of_a_lease_checked_whole_says_it_waits_for_its_check_lane() -> None:
    e = explain_task(_job(), 3, "claimed", 100, PARAMS, APP, True, [WORKER], lane=(2, 5), check_lane=True)
    codes = [r.code for r in e.reasons]
    assert "check-lane" in codes and "lane" not in codes
    check = next(r for r in e.reasons if r.code == "check-lane")
    assert "spot check picked the whole credible lease of 5 tasks from task 2" in check.message
    assert "check lane" in check.fix
