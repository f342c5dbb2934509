"""Platform classes (homogeneous redundancy) off chain: the bytes32 encoding, the worker's setting, the SDK's
JobSpec flag, and the worker's market view skipping tasks bound to another class. No chain: these are the pure
parts (the contract and the daemons are tested against anvil in tests/contracts and tests/integration)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from oracle.client._models import JobSpec
from oracle.events import DecodedEvent
from oracle.market import JobView
from oracle.protocol import ARCH_AMD64, ARCH_HOMOGENEOUS, platform_class_bytes, platform_class_name, task_id
from worker import WorkerSettings
from worker._view import MarketView


def test_class_tags_round_trip_through_bytes32() -> None:
    raw = platform_class_bytes("cuda-sm90")
    assert len(raw) == 32 and raw.startswith(b"cuda-sm90\0")
    assert platform_class_name(raw) == "cuda-sm90" == platform_class_name("0x" + raw.hex())
    assert platform_class_name(b"\0" * 32) == "" and platform_class_bytes("") == b"\0" * 32
    with pytest.raises(ValueError, match="at most 32"):
        platform_class_bytes("x" * 33)


def test_worker_setting_is_a_checked_tag_defaulting_to_empty() -> None:
    key = "0x" + "11" * 32
    assert WorkerSettings(private_key=key).platform_class == ""
    assert WorkerSettings(private_key=key, platform_class="amd64-avx2").platform_class == "amd64-avx2"
    for bad in ("AMD64", "amd64 avx2", "-amd64", "x" * 33):
        with pytest.raises(ValidationError, match="platform_class"):
            WorkerSettings(private_key=key, platform_class=bad)


def test_jobspec_homogeneous_needs_replicas() -> None:
    assert JobSpec(app_id=1, reward=1, replication=2, homogeneous=True).homogeneous
    with pytest.raises(ValidationError, match="replication 1 has one replica"):
        JobSpec(app_id=1, reward=1, homogeneous=True)
    assert JobSpec(app_id=1, reward=1, replication=4, confidence=0.99, homogeneous=True).homogeneous


def _job(arch_mask: int) -> JobView:
    return JobView(job_id=1, requester="0x" + "00" * 20, app_id=1, dataset_id=0, num_tasks=2, replication=2,
                   reward=1, deadline=10**10, max_run_seconds=60, cores=1, memory_mb=0, gpus=0, arch_mask=arch_mask,
                   min_reputation=0, callback="0x" + "00" * 20, inputs_cid="bafy", encryption_key="")


def test_job_view_reads_bit_7_and_the_market_view_mirrors_bindings() -> None:
    assert _job(ARCH_HOMOGENEOUS | ARCH_AMD64).homogeneous and not _job(ARCH_AMD64).homogeneous
    view = MarketView()
    view.jobs[1] = _job(ARCH_HOMOGENEOUS)
    tid = task_id(1, 0)
    view.apply(DecodedEvent(name="TaskPlatformClassBound", args={"taskId": tid,
                                                                  "platformClass": platform_class_bytes("amd64-a")},
                            address="0x", block_number=1, block_hash="0x", tx_hash="0x", log_index=0))
    assert view.classes == {tid: "amd64-a"}
    assert MarketView.model_validate_json(view.model_dump_json()).classes == {tid: "amd64-a"}  # saved and loaded
    view.apply(DecodedEvent(name="TaskFinalized", args={"taskId": tid}, address="0x", block_number=2,
                            block_hash="0x", tx_hash="0x", log_index=0))
    assert view.classes == {}


def test_job_explain_names_the_class_a_homogeneous_task_is_bound_to() -> None:
    from oracle.client._explain import explain_task
    from oracle.client._models import AppInfo, JobProgress, JobStatus, WorkerInfo
    from oracle.market import MarketParams

    status = JobStatus(job_id=1, requester="0x" + "22" * 20, app_id=1, dataset_id=0, num_tasks=1, replication=2,
                       reward=10**17, deadline=10_000, max_run_seconds=60, cores=1, memory_mb=0, gpus=0,
                       arch_mask=ARCH_HOMOGENEOUS, min_reputation=0, callback="0x" + "00" * 20, inputs_cid="bafy",
                       encryption_key="", escrow_left=0, posted_block=1, progress=JobProgress(total=1))
    params = MarketParams(min_stake=10**18, claim_grace=60, commit_window=0, reveal_window=0, unstake_delay=0,
                          callback_gas=0, replica_stake=10**18, fee_bps=0, max_replicas=0, max_slashes=0,
                          abandon_bps=0)
    app = AppInfo(app_id=1, owner="0x" + "44" * 20, image_ref="app", image_digest="sha256:" + "00" * 32,
                  metadata_uri="", price=0, public=True, deprecated=False, deterministic_file="")
    worker = WorkerInfo(address="0x" + "11" * 20, registered=True, banned=False, cores=8, memory_mb=16000, gpus=0,
                        arch_mask=1, reputation=5, stake=5 * 10**18, locked=0, slashes=0)
    bound = explain_task(status, 0, "claimed", 100, params, app, True, [worker], platform_class="amd64-a")
    assert any(r.code == "homogeneous" and "'amd64-a'" in r.message for r in bound.reasons)
    unbound = explain_task(status, 0, "open", 100, params, app, True, [worker], platform_class="")
    assert any(r.code == "homogeneous" and "will bind" in r.message for r in unbound.reasons)
    assert unbound.workers_capable == 1  # bit 7 is no architecture: an amd64 worker fits
    plain = explain_task(status, 0, "open", 100, params, app, True, [worker])
    assert "homogeneous" not in {r.code for r in plain.reasons}
