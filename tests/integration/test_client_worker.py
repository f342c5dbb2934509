"""The SDK with the real worker daemon: a bag runs in confined containers and comes back verified."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import test_client_helpers as helpers
from test_client_helpers import E18, client, register_echo_app, run_worker
from web3.logs import DISCARD

from oracle.client import JobSpec, TaskInput

app_image = helpers.app_image
devnet_file = helpers.devnet_file
image_registry = helpers.image_registry


def test_real_worker_runs_an_encrypted_bag_and_results_verify(devnet_file: Path, app_image: str,
                                                              tmp_path: Path) -> None:
    app_id = register_echo_app(devnet_file, app_image, deterministic_file="result.txt")
    (tmp_path / "scene.txt").write_text("the scene")
    c = client(devnet_file, fund=10 * E18)
    job = c.jobs.submit(JobSpec(app_id=app_id, tasks=[TaskInput(args=[str(i), "x"]) for i in range(3)],
                               common_inputs={"scene.txt": str(tmp_path / "scene.txt")}, reward=E18 // 10,
                               encrypt=True, max_run_seconds=60))
    with run_worker(devnet_file, "worker-1", tmp_path / "worker"):
        seen: list[Any] = list(c.jobs.watch(job.job_id, timeout=90))
    assert seen[-1].progress.finalized == 3
    results = c.results.download(job.job_id, tmp_path / "out")
    assert [r.digest_source for r in results] == ["file"] * 3
    for i in range(3):
        out = (tmp_path / "out" / str(i) / "output" / "result.txt").read_text()
        assert out == f"args: {i} x\nin: ./scene.txt the scene\n"
        assert (tmp_path / "out" / str(i) / "logs" / "stdout.txt").read_text() == f"done {i}\n"


def _unique_app(docker_client: Any, tmp_path: Path, name: str) -> str:
    """A fresh echo app image only this test uses (so it can be removed from the engine)."""
    import uuid

    from oracle.images import BUSYBOX_BASE, build_app_image

    ctx = tmp_path / name
    ctx.mkdir()
    (ctx / "run.sh").write_text(helpers.APP_SCRIPT)
    (ctx / "id").write_text(uuid.uuid4().hex)
    (ctx / "Dockerfile").write_text(f"FROM {BUSYBOX_BASE}\nCOPY run.sh id /app/\nENTRYPOINT [\"/bin/sh\", "
                                    "\"/app/run.sh\"]\n")
    tag = f"tasknet-test/{name}:{uuid.uuid4().hex[:8]}"
    build_app_image(docker_client, ctx, tag)
    return tag


def test_apps_published_as_ipfs_archives_run_on_a_worker_that_lacks_the_image(devnet_file: Path, docker_client: Any,
                                                                              tmp_path: Path) -> None:
    """One app's image reference is ipfs://CID (no registry at all); another's points at a registry that cannot
    serve it and its metadata names an archive: the worker loads each from IPFS, checked by digest, untagged."""
    from oracle.images import image_digest
    from oracle.models import AppMetadata

    owner = client(devnet_file, "app-owner")
    only_ipfs = owner.apps.register(_unique_app(docker_client, tmp_path, "archived"), name="archived", push=False,
                                   ipfs_archive=True, deterministic_file="result.txt")
    assert only_ipfs.image_ref.startswith("ipfs://")
    fallback_tag = _unique_app(docker_client, tmp_path, "fallback")
    digest = image_digest(docker_client, fallback_tag)
    shipped = owner.apps.register(fallback_tag, name="shipped", push=False, ipfs_archive=True)
    cid = AppMetadata.model_validate(owner.ipfs.cat_json(shipped.metadata_uri.removeprefix("ipfs://")))
    dead_ref = f"127.0.0.1:1/tasknet-test/gone@{digest}"  # nothing listens on port 1
    meta = cid.model_copy(update={"image": dead_ref})
    receipt = owner._send(owner.market.registry.functions.registerApp(
        dead_ref, bytes.fromhex(digest.removeprefix("sha256:")), "ipfs://" + owner.ipfs.add_json(meta.model_dump()),
        0, True, "result.txt"))
    fallback_id = int(owner.market.registry.events.AppRegistered().process_receipt(receipt, errors=DISCARD)[0][
        "args"]["appId"])
    assert owner.apps.get(fallback_id).image_ref == dead_ref
    for app in (only_ipfs.image_digest, digest):
        docker_client.images.remove(app, force=True)  # this engine (the worker's) no longer has either image
    try:
        c = client(devnet_file, fund=10 * E18)
        jobs = [c.jobs.submit(JobSpec(app_id=a, tasks=[TaskInput(args=[str(i)]) for i in range(2)], reward=E18 // 10,
                                     max_run_seconds=60)) for a in (only_ipfs.app_id, fallback_id)]
        with run_worker(devnet_file, "worker-1", tmp_path / "worker"):
            for job in jobs:
                c.jobs.wait(job.job_id, timeout=120)
        for job in jobs:
            results = c.results.download(job.job_id, tmp_path / f"out-{job.job_id}")
            assert [r.digest_source for r in results] == ["file", "file"]
            assert (tmp_path / f"out-{job.job_id}" / "1" / "output" / "result.txt").read_text() == "args: 1\n"
        for image in (only_ipfs.image_digest, digest):
            assert docker_client.images.get(image).tags == []  # loaded by digest, no tag moved
    finally:
        for image in (only_ipfs.image_digest, digest):
            with contextlib.suppress(Exception):
                docker_client.images.remove(image, force=True)
