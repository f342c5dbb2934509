"""GPUs given to tasks (worker/_gpus.py): detection, allocation, and what the policy lends.

Detection runs against a fake ``nvidia-smi`` script put first on PATH and against ``docker info`` dictionaries
written here: they isolate the parsing and the decision (lend a GPU only when the engine has a runtime to give it to
a container) from the NVIDIA driver and the NVIDIA Container Toolkit, which this machine does not have. The real
engine's answer (no runtime: no GPU) is checked in tests/integration/test_gpu_tasks.py.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

import pytest

from worker._caps import Capabilities, detect
from worker._daemon import _within_gpus
from worker._gpus import (
    GpuAllocator,
    container_runtime,
    detect_gpus,
    device_requests,
    is_gpu_start_error,
    promised_gpus,
    query_nvidia_smi,
)
from worker._journal import Journal, Step
from worker._policy import Offer, Policy, decide, lent_gpus
from worker.exceptions import EnvironmentFailure, GpuUnavailable

NVIDIA_INFO = {"Runtimes": {"runc": {"path": "runc"}, "nvidia": {"path": "nvidia-container-runtime"}}}
PLAIN_INFO = {"Runtimes": {"runc": {"path": "runc"}, "io.containerd.runc.v2": {"path": "runc"}}}


def fake_nvidia_smi(folder: Path, monkeypatch: pytest.MonkeyPatch, stdout: str, code: int = 0) -> Path:
    """An ``nvidia-smi`` on PATH that prints ``stdout`` (only for the query the worker makes) and exits ``code``."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nvidia-smi"
    (folder / "out.txt").write_text(stdout)
    script.write_text("#!/bin/sh\n"
                      'case "$*" in *--query-gpu=index,name,memory.total*--format=csv,noheader,nounits*) ;; '
                      '*) echo "unexpected arguments: $*" >&2; exit 9;; esac\n'
                      f'cat "{folder}/out.txt"\nexit {code}\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    return script


TWO_GPUS = "0, NVIDIA A100-SXM4-40GB, 40960\n1, NVIDIA GeForce RTX 4090, 24564\n"


def test_nvidia_smi_lines_give_index_model_and_memory(tmp_path, monkeypatch) -> None:
    fake_nvidia_smi(tmp_path / "bin", monkeypatch, TWO_GPUS)
    devices, note = query_nvidia_smi()
    assert note == ""
    assert [(d.index, d.name, d.memory_mb) for d in devices] == [
        (0, "NVIDIA A100-SXM4-40GB", 40960), (1, "NVIDIA GeForce RTX 4090", 24564)]


def test_no_nvidia_smi_or_a_failing_one_means_no_gpu(tmp_path, monkeypatch) -> None:
    path = os.environ.get("PATH", "")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert detect_gpus(NVIDIA_INFO).count == 0
    assert "not installed" in detect_gpus(NVIDIA_INFO).note
    monkeypatch.setenv("PATH", path)
    fake_nvidia_smi(tmp_path / "bin", monkeypatch, "NVIDIA-SMI has failed because it couldn't communicate with the "
                    "NVIDIA driver\n", code=9)
    inventory = detect_gpus(NVIDIA_INFO)
    assert inventory.count == 0 and "exit 9" in inventory.note and "communicate" in inventory.note


def test_gpus_are_lent_with_the_nvidia_runtime(tmp_path, monkeypatch) -> None:
    fake_nvidia_smi(tmp_path / "bin", monkeypatch, TWO_GPUS)
    inventory = detect_gpus(NVIDIA_INFO)
    assert inventory.count == 2 and inventory.runtime == "nvidia"
    assert [d.id for d in inventory.devices] == ["0", "1"]


def test_without_a_container_runtime_no_gpu_is_lent_whatever_the_driver_shows(tmp_path, monkeypatch) -> None:
    fake_nvidia_smi(tmp_path / "bin", monkeypatch, TWO_GPUS)
    for info in (PLAIN_INFO, None, {}):
        inventory = detect_gpus(info)
        assert inventory.count == 0 and len(inventory.seen) == 2
        assert "none lent" in inventory.note
    assert "nvidia-ctk runtime configure" in detect_gpus(PLAIN_INFO).note


def test_cdi_specs_listing_nvidia_gpus_lend_them_by_qualified_name(tmp_path, monkeypatch) -> None:
    fake_nvidia_smi(tmp_path / "bin", monkeypatch, TWO_GPUS)
    cdi = tmp_path / "cdi"
    cdi.mkdir()
    (cdi / "other.yaml").write_text("cdiVersion: 0.5.0\nkind: vendor.com/fpga\n")
    info = {**PLAIN_INFO, "CDISpecDirs": [str(cdi)]}
    assert container_runtime(info)[0] is None
    (cdi / "nvidia.yaml").write_text("---\ncdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: \"0\"\n")
    inventory = detect_gpus(info)
    assert inventory.runtime == "cdi"
    assert [d.id for d in inventory.devices] == ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
    (cdi / "nvidia.yaml").unlink()
    (cdi / "nvidia.json").write_text('{"cdiVersion": "0.6.0", "kind": "nvidia.com/gpu", "devices": []}')
    assert container_runtime(info)[0] == "cdi"


def test_detect_counts_no_gpu_on_an_engine_without_the_runtime(tmp_path, monkeypatch) -> None:
    """Capabilities.gpus is what the engine can give a container: 0 on an engine without the runtime."""
    fake_nvidia_smi(tmp_path / "bin", monkeypatch, TWO_GPUS)

    class Engine:  # a docker client whose only call detection makes is info()
        def __init__(self, info: dict) -> None:
            self._info = info

        def info(self) -> dict:
            return self._info

    caps = detect(Engine(PLAIN_INFO))  # type: ignore[arg-type]
    assert caps.gpus == 0 and caps.gpu_ids == [] and "2 GPU(s) found" in caps.gpu_note
    caps = detect(Engine(NVIDIA_INFO))  # type: ignore[arg-type]
    assert caps.gpus == 2 and caps.gpu_ids == ["0", "1"]
    assert caps.gpu_devices[1].name == "NVIDIA GeForce RTX 4090"


def test_device_requests_name_exactly_the_task_gpus() -> None:
    (req,) = device_requests(["1"])
    assert req["Driver"] == "nvidia" and req["DeviceIDs"] == ["1"] and req["Capabilities"] == [["gpu"]]
    assert "Count" not in req or req["Count"] in (None, 0)  # never "all"
    (req,) = device_requests(["nvidia.com/gpu=0", "nvidia.com/gpu=1"])
    assert req["Driver"] == "cdi" and req["DeviceIDs"] == ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
    assert device_requests([]) == []


def test_engine_refusals_about_gpus_are_told_from_the_app_own() -> None:
    assert is_gpu_start_error('could not select device driver "nvidia" with capabilities: [[gpu]]')
    assert is_gpu_start_error("OCI runtime create failed: nvidia-container-cli: device error: 1: unknown device")
    assert is_gpu_start_error("unresolvable CDI devices nvidia.com/gpu=1")
    assert not is_gpu_start_error('exec: "/app/run": stat /app/run: no such file or directory')


def test_allocator_gives_concurrent_tasks_distinct_devices_and_takes_them_back() -> None:
    gpus = GpuAllocator(["0", "1", "2"])
    assert gpus.take("1:0", 2) == ["0", "1"]
    assert gpus.take("1:0", 2) == ["0", "1"]  # idempotent for the same task
    assert gpus.take("1:1", 2) is None  # one left
    assert gpus.take("1:1", 1) == ["2"]
    assert gpus.free() == 0
    assert gpus.release("1:0") == ["0", "1"]
    assert gpus.take("2:0", 2) == ["0", "1"]
    assert gpus.keep_only({"2:0"}) == ["1:1"]  # re-derived from the tasks still running
    assert gpus.assignments() == {"2:0": ["0", "1"]} and gpus.free() == 1


def test_a_lease_is_released_on_success_failure_and_crash_of_the_run() -> None:
    gpus = GpuAllocator(["0", "1"])
    with gpus.lease("1:0", 1) as devices:
        assert devices == ("0",) and gpus.free() == 1
    assert gpus.free() == 2
    with pytest.raises(RuntimeError), gpus.lease("1:0", 2):
        raise RuntimeError("the engine went away")
    assert gpus.free() == 2 and gpus.assignments() == {}
    with gpus.lease("1:1", 0) as none:  # a CPU task: no device at all
        assert none == ()
    with gpus.lease("1:0", 2), pytest.raises(GpuUnavailable) as err, gpus.lease("1:1", 1):
        pass
    assert isinstance(err.value, EnvironmentFailure)  # given back, not failed
    assert "only 0 of the 2" in str(err.value)
    assert gpus.free() == 2
    with pytest.raises(GpuUnavailable), GpuAllocator([]).lease("1:0", 1):
        pass


def test_allocator_never_hands_one_device_to_two_threads() -> None:
    gpus = GpuAllocator([str(i) for i in range(4)])
    seen: list[tuple[str, ...]] = []
    overlap = threading.Event()
    held: set[str] = set()
    lock = threading.Lock()

    def task(n: int) -> None:
        for _ in range(100):
            try:
                with gpus.lease(f"t:{n}", 1 + n % 2) as devices:
                    with lock:
                        if held & set(devices):
                            overlap.set()
                        held.update(devices)
                        seen.append(devices)
                    with lock:
                        held.difference_update(devices)
            except GpuUnavailable:
                pass

    threads = [threading.Thread(target=task, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not overlap.is_set() and seen and gpus.free() == 4


CAPS = Capabilities(cores=4, memory_mb=8192, gpus=2, arch="amd64")


def offer(**kw: object) -> Offer:
    base: dict[str, object] = {"job_id": 1, "task_index": 0, "app": "7", "requester": "0xabc", "reward": 10,
                               "max_run_s": 60, "deadline": 10**10}
    return Offer.model_validate({**base, **kw})


def test_policy_lends_some_gpus_and_refuses_jobs_that_need_more() -> None:
    now = dt.datetime(2026, 12, 4, 12)
    one = Policy(gpus_lent=1)
    assert lent_gpus(CAPS, one) == 1 and lent_gpus(CAPS, Policy()) == 2 and lent_gpus(CAPS, Policy(gpus_lent=5)) == 2
    assert decide(offer(gpus=1), CAPS, one, now=now).accept
    d = decide(offer(gpus=2), CAPS, one, now=now)
    assert not d.accept and d.reason == "needs 2 GPUs, 1 lent (machine has 2)"
    assert not decide(offer(gpus=1), CAPS, Policy(gpus_lent=0), now=now).accept
    # free now: a GPU promised to another task of this worker is not claimed again (it may be later)
    d = decide(offer(gpus=1), CAPS, Policy(), now=now, gpus_free=0)
    assert not d.accept and d.reason == "needs 1 GPUs, 0 of 2 lent are free now"
    assert decide(offer(gpus=0), CAPS, Policy(), now=now, gpus_free=0).accept  # CPU jobs are not held up


def test_claim_candidates_keep_gpu_tasks_within_the_free_gpus() -> None:
    from oracle.market import JobView

    def job(job_id: int, gpus: int) -> JobView:
        return JobView.model_construct(job_id=job_id, gpus=gpus)

    gpu2, gpu1, cpu = job(1, 2), job(2, 1), job(3, 0)
    cands = [(gpu2, 0, None), (gpu1, 0, None), (cpu, 0, None), (gpu1, 1, None), (gpu1, 2, None), (cpu, 1, None)]
    kept = [(j.job_id, i) for j, i, _ in _within_gpus(cands, 3)]
    assert kept == [(1, 0), (2, 0), (3, 0), (3, 1)]
    assert [(j.job_id, i) for j, i, _ in _within_gpus(cands, 0)] == [(3, 0), (3, 1)]


def test_gpus_promised_to_claimed_tasks_are_read_back_from_the_journal_after_a_restart(tmp_path) -> None:
    """A worker that crashed holding a claimed GPU task (not run yet) and a running one counts their GPUs as
    promised when it starts again: the journal is all it needs (a real journal file, reopened)."""
    journal = Journal(tmp_path / "journal.db")
    journal.record(1, 0, Step.CLAIMED, job={"gpus": 2})
    journal.record(1, 1, Step.INPUTS_READY, job={"gpus": 2})
    journal.record(2, 0, Step.CLAIMED, job={"gpus": 0})
    journal.record(3, 0, Step.CLAIMED, job={"gpus": 1})
    journal.record(3, 0, Step.UPLOADED)  # ran: its GPU is free again
    journal.record(4, 0, Step.CLAIMED, job={"gpus": 1})
    journal.record(4, 0, Step.ABANDONING)  # given back
    journal.close()
    again = Journal(tmp_path / "journal.db")
    live = [r.data for r in again.unfinished() if r.step < Step.UPLOADED]
    assert promised_gpus(live) == 4
