"""GPUs given to tasks, against a real anvil, kubo and Docker engine (worker/_gpus.py).

This machine's engine has no NVIDIA container runtime (and the machine no GPU): the run of a real GPU job is
skipped here, saying so, and runs where a GPU and the runtime exist. What the engine does without the runtime is
real: it refuses a container's GPU device request at start, and a worker on it advertises no GPU and never claims a
GPU job. Where a test needs the NVIDIA driver to answer (a worker that sees GPUs but has no runtime), a fake
``nvidia-smi`` script on PATH stands in for the driver only; the engine, the chain and IPFS are real.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from oracle.protocol import split_task_id, task_id
from tasknet.cli import cli
from tests.integration.test_worker import fund_worker, running, settings, wait_for
from tests.market_helpers import ETHER, build_script_app, fund, post_job, register_app
from worker import Limits, RunSpec, Sandbox
from worker._caps import Capabilities, detect
from worker._daemon import Worker
from worker._journal import Step
from worker.exceptions import GpuUnavailable

PROBE_APP = """#!/bin/sh
# test app: which GPUs the container was given (device nodes and what the runtime says it made visible)
ls /dev | grep -E '^nvidia[0-9]+$' > /out/devices.txt || true
echo "${NVIDIA_VISIBLE_DEVICES:-}" > /out/visible.txt
"""


def fake_driver(folder: Path, monkeypatch: pytest.MonkeyPatch, gpus: int) -> None:
    """An ``nvidia-smi`` on PATH listing ``gpus`` devices: the NVIDIA driver, which this machine lacks (only it)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"echo '{i}, NVIDIA Test GPU {i}, 16384'\n" for i in range(gpus))
    (folder / "nvidia-smi").write_text("#!/bin/sh\n" + lines)
    (folder / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")


def claims_of(market, job_id: int) -> list:
    events = [*market.contract.events.TasksClaimed().get_logs(from_block=0),
              *market.contract.events.ReplicaClaimed().get_logs(from_block=0)]
    return [e for e in events
            if split_task_id(int(e["args"].get("startTaskId", e["args"].get("taskId"))))[0] == job_id]


def test_the_sandbox_passes_exactly_the_task_gpus_and_none_to_a_cpu_task(docker_client, echo_digest,
                                                                       tmp_path) -> None:
    """The app container's HostConfig, as the engine recorded it: one NVIDIA device request naming the task's
    device ids for a GPU task, no device request at all for a CPU task."""
    found: dict[tuple[str, ...], object] = {}
    with Sandbox(docker_client, owner="gpu-test-spec") as sandbox:
        for gpus in (("1",), ("0", "2"), ("nvidia.com/gpu=3",), ()):
            spec = RunSpec(image=echo_digest, output_dir=tmp_path / f"out{len(found)}", log_dir=tmp_path / "logs",
                           limits=Limits(wall_seconds=30), gpus=gpus, task="gpu-spec")
            slot = sandbox._take_slot(spec.limits)
            app = None
            try:
                app = sandbox._create_app(echo_digest, slot, spec, {"tasknet.sandbox": "gpu-test-spec"},
                                          f"gpuspec{len(found)}")
                found[gpus] = docker_client.api.inspect_container(app.id)["HostConfig"].get("DeviceRequests")
            finally:
                sandbox._remove(app, slot)
    assert found[("1",)] == [{"Driver": "nvidia", "Count": 0, "DeviceIDs": ["1"], "Capabilities": [["gpu"]],
                              "Options": {}}]
    assert found[("0", "2")][0]["DeviceIDs"] == ["0", "2"]  # type: ignore[index]
    assert found[("nvidia.com/gpu=3",)][0]["Driver"] == "cdi"  # type: ignore[index]
    assert not found[()]


def test_a_gpu_run_on_an_engine_that_cannot_give_the_gpu_is_an_environment_failure(docker_client, echo_digest,
                                                                                    tmp_path) -> None:
    """The engine refuses the device request at start (here: no NVIDIA runtime at all; elsewhere: the GPU
    disappeared): the sandbox raises GpuUnavailable (the task is given back), it does not publish a failure."""
    if detect(docker_client).gpus:
        pytest.skip("this engine can give GPUs to containers: the refusal cannot be produced here")
    with Sandbox(docker_client, owner="gpu-test-refused") as sandbox:
        spec = RunSpec(image=echo_digest, output_dir=tmp_path / "out", log_dir=tmp_path / "logs",
                       input_dir=tmp_path, limits=Limits(wall_seconds=30), gpus=("0",), task="gpu-refused")
        with pytest.raises(GpuUnavailable) as err:
            sandbox.run(spec)
        assert err.value.engine and "could not give the task its GPUs ['0']" in str(err.value)
        ok = sandbox.run(spec.model_copy(update={"gpus": (), "output_dir": tmp_path / "out2"}))
    assert ok.reason.value != "start-failed"  # the same task without GPUs starts on this engine


def test_a_worker_without_the_runtime_never_claims_a_gpu_job_but_claims_the_cpu_job_beside_it(
        anvil, w3, accounts, market, ipfs, docker_client, echo_digest, tmp_path, monkeypatch) -> None:
    """The driver lists two GPUs (fake nvidia-smi), but the engine has no NVIDIA container runtime: the worker
    advertises 0 GPUs and runs the CPU job; the GPU job posted beside it is never claimed."""
    if detect(docker_client).gpus:
        pytest.skip("this engine has an NVIDIA container runtime: it would lend its GPUs")
    fake_driver(tmp_path / "bin", monkeypatch, gpus=2)
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[4])
    gpu_job = post_job(w3, market, accounts[1], ipfs, app_id, tasks=2, gpus=1)
    cpu_job = post_job(w3, market, accounts[1], ipfs, app_id, tasks=2)
    worker = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "w"), docker_client=docker_client)
    assert worker.caps.gpus == 0 and "2 GPU(s) found, none lent" in worker.caps.gpu_note
    with running(worker):
        wait_for(lambda: market.job_record(cpu_job).finished == 2, what="the CPU job's 2 tasks")
        time.sleep(2.0)  # a few more rounds of claims with the GPU job still open
    assert market.worker_record(accounts[4].address).gpus == 0
    assert claims_of(market, gpu_job) == [] and market.job_record(gpu_job).finished == 0
    assert len(claims_of(market, cpu_job)) >= 1
    # 'tasknet worker status' says what is advertised, and why no GPU is lent
    config = tmp_path / "worker.json"
    config.write_text(json.dumps({"rpc_url": anvil.rpc_url, "ipfs_api": ipfs.api_url, "marketplace": market.address,
                                  "private_key": "0x" + accounts[4].key.hex().removeprefix("0x"),
                                  "state_dir": str(tmp_path / "w")}))
    worker.journal.close()
    for flags in (["--json"], []):
        result = CliRunner().invoke(cli, ["worker", "status", "--config", str(config), *flags])
        assert result.exit_code == 0, result.output
        if flags:
            gpus = json.loads(result.output)["gpus"]
            assert gpus["advertised"] == 0 and gpus["devices"] == []
            assert gpus["note"].startswith("2 GPU(s) found, none lent: the Docker engine has no NVIDIA container")
        else:
            assert "0 advertised (2 GPU(s) found, none lent" in " ".join(result.output.split())


def test_a_gpu_job_whose_gpu_disappeared_is_given_back_not_failed(
        anvil, w3, accounts, market, ipfs, docker_client, echo_digest, tmp_path) -> None:
    """The worker detected one GPU (its capabilities say so) that the engine can no longer give. With two slots
    free it claims one task of the two-task GPU job (its one GPU is then promised) and the CPU task beside it, not
    both GPU tasks. The GPU task's container does not start: the claim is given back (abandon: no failure result,
    no slash), and the worker detects its GPUs again and advertises what is left (none here)."""
    if detect(docker_client).gpus:
        pytest.skip("this engine can give GPUs to containers: a vanished GPU cannot be produced here")
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[5])
    gpu_job = post_job(w3, market, accounts[1], ipfs, app_id, tasks=2, gpus=1)
    cpu_job = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1)
    caps = Capabilities(cores=2, memory_mb=4096, gpus=1, arch=detect().arch)  # as detected before the GPU left
    worker = Worker(settings(anvil, ipfs, market, accounts[5], tmp_path / "w", policy={"max_concurrent": 2}),
                    docker_client=docker_client, caps=caps)
    assert worker.advertised()["gpus"] == 1
    abandoned = market.contract.events.ClaimAbandoned()
    with running(worker):
        wait_for(lambda: len(abandoned.get_logs(from_block=0, argument_filters={"worker": accounts[5].address})) == 1,
                 what="the GPU task's claim given back")
        wait_for(lambda: market.worker_record(accounts[5].address).gpus == 0, what="the worker advertising 0 GPUs")
        wait_for(lambda: market.job_record(cpu_job).finished == 1, what="the CPU task")
        time.sleep(1.0)
    claimed = sum(int(e["args"].get("count", 1)) for e in claims_of(market, gpu_job))
    assert claimed == 1  # one GPU: never two GPU tasks at once
    (back,) = [r for r in worker.journal.all() if r.job_id == gpu_job]
    assert back.step is Step.ABANDONED
    assert "could not give the task its GPUs ['0']" in back.data["reason"]
    assert not market.contract.events.FailureReported().get_logs(from_block=0)
    assert market.worker_record(accounts[5].address).slashes == 0
    assert worker.gpus.total == 0 and worker.gpus.assignments() == {}


def test_a_gpu_job_runs_with_exactly_its_gpu_where_a_gpu_and_the_runtime_exist(
        anvil, w3, accounts, market, ipfs, docker_client, tmp_path) -> None:
    caps = detect(docker_client)
    if not caps.gpus:
        pytest.skip(f"needs an NVIDIA GPU and an NVIDIA container runtime on the Docker engine: {caps.gpu_note}")
    probe = build_script_app(docker_client, tmp_path / "probe", PROBE_APP, "tasknet-test/gpu-probe:1")
    app_id = register_app(w3, market, accounts[2], probe)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[6])
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1, gpus=1)
    worker = Worker(settings(anvil, ipfs, market, accounts[6], tmp_path / "w"), docker_client=docker_client)
    with running(worker):
        wait_for(lambda: market.job_record(job_id).finished == 1, what="the GPU task")
    from oracle.archive import unpack_result
    (sub,) = [e for e in market.contract.events.ResultSubmitted().get_logs(from_block=0)
              if e["args"]["taskId"] == task_id(job_id, 0)]
    archive = tmp_path / "r.tar"
    archive.write_bytes(ipfs.cat(sub["args"]["resultCID"]))
    unpack_result(archive, tmp_path / "r")
    devices = (tmp_path / "r" / "output" / "devices.txt").read_text().split()
    visible = (tmp_path / "r" / "output" / "visible.txt").read_text().strip()
    assert len(devices) == 1, (devices, visible)  # its one GPU, and no other of the machine's
