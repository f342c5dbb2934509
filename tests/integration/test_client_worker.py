"""The SDK with the real worker daemon: a bag runs in confined containers and comes back verified."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import test_client_helpers as helpers
from test_client_helpers import E18, client, register_echo_app, run_worker

from oracle.client import JobSpec, TaskInput

app_image = helpers.app_image
devnet_file = helpers.devnet_file
image_registry = helpers.image_registry


def test_real_worker_runs_an_encrypted_bag_and_results_verify(devnet_file: Path, app_image: str,
                                                              tmp_path: Path) -> None:
    app_id = register_echo_app(devnet_file, app_image, deterministic_file="result.txt")
    (tmp_path / "scene.txt").write_text("the scene")
    c = client(devnet_file, fund=10 * E18)
    job = c.submit_job(JobSpec(app_id=app_id, tasks=[TaskInput(args=[str(i), "x"]) for i in range(3)],
                               common_inputs={"scene.txt": str(tmp_path / "scene.txt")}, reward=E18 // 10,
                               encrypt=True, max_run_seconds=60))
    with run_worker(devnet_file, "worker-1", tmp_path / "worker"):
        seen: list[Any] = list(c.watch(job.job_id, timeout=90))
    assert seen[-1].progress.finalized == 3
    results = c.results(job.job_id, tmp_path / "out")
    assert [r.digest_source for r in results] == ["file"] * 3
    for i in range(3):
        out = (tmp_path / "out" / str(i) / "output" / "result.txt").read_text()
        assert out == f"args: {i} x\nin: ./scene.txt the scene\n"
        assert (tmp_path / "out" / str(i) / "logs" / "stdout.txt").read_text() == f"done {i}\n"
