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
