"""The JSON documents the SDK writes on the devnet (an app's metadata document and a job's inputs document, read
back from kubo by the URIs the chain holds; the devnet's network profile) are valid against docs/schemas, checked
by Ajv in Node."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import test_client_helpers as helpers
from test_client_helpers import E18, client

from oracle import DevnetInfo
from oracle.client import JobSpec, TaskInput
from oracle.ipfs import IpfsClient
from oracle.network import DEVNET, profile_path
from tasknet._devnet import write_devnet_profile

app_image = helpers.app_image
devnet_file = helpers.devnet_file
image_registry = helpers.image_registry

ROOT = Path(__file__).resolve().parents[2]


def ajv(schema: str, documents: list[Any]) -> list[str]:
    done = subprocess.run(["node", str(ROOT / "tests" / "node" / "validate_json.js"),
                           str(ROOT / "docs" / "schemas" / schema)],
                          input="".join(json.dumps(d) + "\n" for d in documents), capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_documents_the_sdk_publishes_are_valid(devnet_file: Path, app_image: str, ipfs: IpfsClient,
                                               tmp_path: Path) -> None:
    with client(devnet_file, "app-owner") as owner:
        full = owner.apps.register(app_image, name="echo", description="echoes its arguments", category="test",
                                  command=["/bin/sh", "/app/run.sh"], deterministic_file="result.txt",
                                  ipfs_archive=True)
        bare = owner.apps.register(app_image, name="bare")
    metadata = [ipfs.cat_json(app.metadata_uri.removeprefix("ipfs://")) for app in (full, bare)]
    assert metadata[0]["image_archive_cid"] and metadata[0]["deterministic_file"] == "result.txt"
    assert ajv("app-metadata.schema.json", metadata) == ["ok", "ok"]

    (tmp_path / "frame.ini").write_text("Frame=1\n")
    with client(devnet_file, fund=10 * E18) as c:
        listed = c.jobs.submit(JobSpec(app_id=bare.app_id, reward=E18 // 100, common_inputs={
            "shared.txt": str(tmp_path / "frame.ini")}, tasks=[
            TaskInput(args=["one", "é"], inputs={"conf/frame.ini": str(tmp_path / "frame.ini")}, env={"A": "1"}),
            TaskInput(args=[])]))
        templated = c.jobs.submit(JobSpec(app_id=bare.app_id, reward=E18 // 100, count=500, args=["n={index}"]))
    inputs = [ipfs.cat_json(job.inputs_cid) for job in (listed, templated)]
    assert len(inputs[0]["tasks"]) == 2 and inputs[1]["count"] == 500
    assert ajv("inputs-document.schema.json", inputs) == ["ok", "ok"]

    write_devnet_profile(DevnetInfo.load(devnet_file))  # what 'tasknet up' writes
    profile = json.loads(profile_path(DEVNET).read_text())
    assert profile["ipfs_peers"]  # the session's kubo, online: its swarm address
    assert ajv("network-profile.schema.json", [profile]) == ["ok"]
