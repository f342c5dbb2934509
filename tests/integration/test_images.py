"""Local base images, app builds without network, and digest pinning (registry and image archives)."""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oracle import images
from oracle.images import ImageDigestMismatch, ImageError
from tasknet import _devnet
from worker import Limits, RunSpec, Sandbox

# The python base takes ~35-45 s the first time on a fresh engine (debootstrap), then is cached on the engine.
# TASKNET_SKIP_SLOW_IMAGES=1 skips it (e.g. on a machine without a Debian mirror).
SKIP_SLOW = os.environ.get("TASKNET_SKIP_SLOW_IMAGES") == "1"


@pytest.fixture(scope="module")
def busybox(docker_client: Any) -> str:
    return images.build_busybox_base(docker_client)


@pytest.fixture(scope="module")
def app_image(docker_client: Any, busybox: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    context = tmp_path_factory.mktemp("app")
    (context / "Dockerfile").write_text(
        f"FROM {images.BUSYBOX_BASE}\nCOPY app.sh /app/app.sh\nRUN chmod 0555 /app/app.sh\n"
        "ENTRYPOINT [\"sh\", \"/app/app.sh\"]\n")
    (context / "app.sh").write_text("echo \"$@\" > /out/args; wc -c < /in/data > /out/size\n")
    tag = f"tasknet-test/app-{uuid.uuid4().hex[:8]}:1"
    image_id = images.build_app_image(docker_client, context, tag)
    yield tag
    docker_client.images.remove(image_id, force=True)  # every tag and registry reference of it


def test_busybox_base_builds_in_about_a_second_and_is_cached(docker_client: Any) -> None:
    tag = f"tasknet-test/busybox-{uuid.uuid4().hex[:8]}:latest"
    try:
        started = time.monotonic()
        image_id = images.build_busybox_base(docker_client, tag=tag)
        assert time.monotonic() - started < 5
        assert images.build_busybox_base(docker_client, tag=tag) == image_id  # cached: not rebuilt
        config = docker_client.images.get(tag).attrs["Config"]
        assert config["WorkingDir"] == "/out" and not config["User"]  # RUN steps of app builds need root
        out = docker_client.containers.run(tag, ["sh", "-c", "id -u; ls /bin | wc -l; test -d /tmp && echo tmp"],
                                           remove=True, network_mode="none", read_only=True, user="nobody")
        uid, applets, tmp = out.decode().split()
        assert uid == "65534" and int(applets) > 200 and tmp == "tmp"
    finally:
        docker_client.images.remove(tag, force=True)


def test_busybox_base_without_busybox_says_what_to_install(docker_client: Any, tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="busybox-static"):
        images.build_busybox_base(docker_client, tag="tasknet-test/never:1", busybox=tmp_path / "nope")


def test_app_image_builds_offline_and_runs_confined(docker_client: Any, app_image: str, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data").write_bytes(b"abc")
    with Sandbox(docker_client, owner=f"pytest-{uuid.uuid4().hex[:8]}", prewarm=False) as box:
        result = box.run(RunSpec(image=app_image, command=["hello", "world"], input_dir=tmp_path / "in",
                                 output_dir=tmp_path / "out", log_dir=tmp_path / "logs",
                                 image_digest=images.image_digest(docker_client, app_image),
                                 limits=Limits(wall_seconds=10, memory_bytes=32 << 20)))
    assert result.ok, result.message
    assert (tmp_path / "out" / "args").read_text() == "hello world\n"
    assert (tmp_path / "out" / "size").read_text().strip() == "3"


def test_app_build_from_a_missing_base_is_refused_without_pulling(docker_client: Any, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM tasknet/no-such-base:1 AS build\nFROM build\n")
    with pytest.raises(ImageError, match="not on this engine and cannot be pulled"):
        images.build_app_image(docker_client, tmp_path, "tasknet-test/broken:1")
    with pytest.raises(ImageError, match="no Dockerfile"):
        images.build_app_image(docker_client, tmp_path / "nowhere", "tasknet-test/broken:1")


def test_a_failing_build_step_reports_the_build_log(docker_client: Any, busybox: str, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {images.BUSYBOX_BASE}\nRUN echo step-output && exit 7\n")
    with pytest.raises(ImageError, match="step-output"):
        images.build_app_image(docker_client, tmp_path, "tasknet-test/broken:1")


def test_digest_pinning_accepts_the_right_id_and_refuses_a_wrong_one(docker_client: Any, app_image: str) -> None:
    image_id = images.image_digest(docker_client, app_image)
    assert images.verify_image_digest(docker_client, app_image, image_id) == image_id
    with pytest.raises(ImageDigestMismatch, match="refuse to run"):
        images.verify_image_digest(docker_client, app_image, "sha256:" + "1" * 64)
    with pytest.raises(ImageError, match="64 hex"):
        images.verify_image_digest(docker_client, app_image, "latest")
    with pytest.raises(ImageError, match="not on this Docker engine"):
        images.image_digest(docker_client, "tasknet-test/absent:1")


@pytest.fixture(scope="module")
def registry(state_dir: Path) -> Iterator[str]:
    info, host = _devnet.start_registry(state_dir / f"registry-{uuid.uuid4().hex[:6]}", _devnet.free_port())
    try:
        yield host
    finally:
        _devnet.stop(info)


def test_push_then_pull_by_digest_gives_the_same_image_id(docker_client: Any, app_image: str, registry: str) -> None:
    image_id = images.image_digest(docker_client, app_image)
    ref = images.push_to_registry(docker_client, app_image, registry)
    assert ref.startswith(f"{registry}/tasknet-test/app-") and "@sha256:" in ref
    docker_client.images.remove(ref.split("@")[0] + ":1", force=True)
    docker_client.images.remove(app_image, force=True)  # gone locally: the pull must really fetch it
    try:
        assert images.pull_by_digest(docker_client, ref, expected_id=image_id) == image_id
        assert images.verify_image_digest(docker_client, ref, ref) == image_id  # the manifest digest is accepted
        with pytest.raises(ImageDigestMismatch):
            images.pull_by_digest(docker_client, ref, expected_id="sha256:" + "2" * 64)
        with pytest.raises(ImageError, match="pinned reference"):
            images.pull_by_digest(docker_client, f"{registry}/tasknet-test/app:1")
        with pytest.raises(ImageError):
            images.pull_by_digest(docker_client, ref.split("@")[0] + "@sha256:" + "3" * 64)
    finally:
        docker_client.images.get(image_id).tag(app_image)


def test_image_archive_round_trip_checks_the_id(docker_client: Any, app_image: str, tmp_path: Path) -> None:
    image_id = images.save_image(docker_client, app_image, tmp_path / "app.tar")
    assert images.load_image(docker_client, tmp_path / "app.tar", image_id) == image_id
    with pytest.raises(ImageDigestMismatch, match="refuse"):
        images.load_image(docker_client, tmp_path / "app.tar", "sha256:" + "4" * 64)


@pytest.mark.reliability(kind="attack", name="an app's image archive retags the holder image",
                         how="an archive on IPFS whose manifest tags the app image as the sandbox's busybox holder "
                             "(or holds a second image) is refused before docker load; the holder tag is untouched")
def test_an_image_archive_that_names_tags_or_other_images_is_refused(docker_client: Any, app_image: str,
                                                                      tmp_path: Path) -> None:
    import json
    import tarfile

    holder_before = images.image_digest(docker_client, images.BUSYBOX_BASE)
    image_id = images.save_image(docker_client, app_image, tmp_path / "app.tar")

    def forged(name: str, edit: Any) -> Path:
        dest = tmp_path / name
        with tarfile.open(tmp_path / "app.tar") as src, tarfile.open(dest, "w") as out:
            for m in src.getmembers():
                data = src.extractfile(m) if m.isfile() else None
                if m.name == "manifest.json" and data is not None:
                    raw = json.dumps(edit(json.loads(data.read()))).encode()
                    m.size = len(raw)
                    out.addfile(m, io.BytesIO(raw))
                else:
                    out.addfile(m, data)
        return dest

    retag = forged("retag.tar", lambda man: [{**man[0], "RepoTags": [images.BUSYBOX_BASE]}])
    with pytest.raises(ImageError, match="names tags"):
        images.load_image(docker_client, retag, image_id)
    two = forged("two.tar", lambda man: man + [{**man[0], "Config": "f" * 64 + ".json"}])
    with pytest.raises(ImageDigestMismatch, match="exactly one image"):
        images.load_image(docker_client, two, image_id)
    with pytest.raises(ImageError, match="not a readable"):
        images.load_image(docker_client, tmp_path / "app.tar.missing", image_id)
    named = tmp_path / "named.tar"
    with named.open("wb") as fh:
        fh.writelines(docker_client.images.get(app_image).save(named=True))
    with pytest.raises(ImageError, match="names tags"):
        images.load_image(docker_client, named, image_id)
    assert images.image_digest(docker_client, images.BUSYBOX_BASE) == holder_before


def test_debian_base_needs_debootstrap_and_root(docker_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ImageError, match="needs root"):
        images.build_base(docker_client, "tasknet-test/never:1", ["python3"])
    monkeypatch.setattr("oracle.images.shutil.which", lambda _name: None)
    monkeypatch.setattr("oracle.images.os.access", lambda *_a: False)
    with pytest.raises(ImageError, match="apt-get install debootstrap"):
        images.build_base(docker_client, "tasknet-test/never:1", ["python3"])


def test_debian_base_refuses_bad_package_names(docker_client: Any) -> None:
    with pytest.raises(ImageError, match="package names"):
        images.build_base(docker_client, "tasknet-test/never:1", ["python3; rm -rf /"])


@pytest.mark.skipif(SKIP_SLOW, reason="TASKNET_SKIP_SLOW_IMAGES=1")
def test_python_base_builds_once_and_runs_python_confined(docker_client: Any, tmp_path: Path) -> None:
    image_id = images.build_python_base(docker_client)  # ~40 s on a fresh engine, instant when cached
    assert images.build_python_base(docker_client) == image_id
    with Sandbox(docker_client, owner=f"pytest-{uuid.uuid4().hex[:8]}", prewarm=False) as box:
        result = box.run(RunSpec(image=images.PYTHON_BASE,
                                 command=["python3", "-c", "import json, os; json.dump(os.getuid(), open('uid', 'w'))"],
                                 output_dir=tmp_path / "out", log_dir=tmp_path / "logs", image_digest=image_id,
                                 limits=Limits(wall_seconds=20, memory_bytes=64 << 20)))
    assert result.ok, result.message + result.stderr_path.read_text()
    assert (tmp_path / "out" / "uid").read_text() == "65534"
