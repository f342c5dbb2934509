"""``tasknet app register --canonicalize`` on a devnet of real components, with the real worker daemon: the step is
bound to the app by a thin image adding its labels, the worker runs it, ``result get`` checks the digest over the
canonical part."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import test_client_helpers as helpers
from test_client_helpers import as_json, run_worker, tasknet

from oracle.canonical import LABEL_COMMAND, LABEL_TIMEOUT
from oracle.images import BUSYBOX_BASE, build_app_image, build_busybox_base

devnet_file = helpers.devnet_file
image_registry = helpers.image_registry

#: raw output that differs on every run (a random number), and a line count that does not
APP = 'ENTRYPOINT ["sh", "-c", "echo value $RANDOM$RANDOM > /out/raw.txt; echo one more line >> /out/raw.txt"]\n'


def test_register_with_canonicalize_binds_the_step_and_results_verify_over_the_canonical_part(
        devnet_file: Path, docker_client: Any, tmp_path: Path) -> None:
    build_busybox_base(docker_client)
    ctx = tmp_path / "app"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {BUSYBOX_BASE}\n{APP}")
    plain_id = build_app_image(docker_client, ctx, "tasknet-test/cli-canon:1")
    app = as_json("app", "register", "tasknet-test/cli-canon:1", "--name", "lines",
                  "--canonicalize", "sh -c 'wc -l < /in/raw.txt > /out/lines.txt'", "--canonicalize-timeout", "20")
    # a thin image on top of the plain one, declaring the step by its labels, is what got pinned
    assert app["image_digest"] != plain_id
    labels = docker_client.images.get(app["image_digest"]).labels
    assert json.loads(labels[LABEL_COMMAND]) == ["sh", "-c", "wc -l < /in/raw.txt > /out/lines.txt"]
    assert labels[LABEL_TIMEOUT] == "20"
    assert docker_client.images.get("tasknet-test/cli-canon:1-canonicalize").id == app["image_digest"]
    # registering the labelled image with the same step builds nothing new
    again = as_json("app", "register", "tasknet-test/cli-canon:1-canonicalize", "--name", "lines-again",
                    "--canonicalize", '["sh", "-c", "wc -l < /in/raw.txt > /out/lines.txt"]',
                    "--canonicalize-timeout", "20")
    assert again["image_digest"] == app["image_digest"]
    bad = tasknet("app", "register", "tasknet-test/cli-canon:1", "--name", "x", "--canonicalize", "[1, 2]", code=1)
    assert "CanonicalizeInvalid" in bad.stderr and "array of strings" in bad.stderr
    tasknet("account", "faucet", "100")
    tasknet("account", "deposit", "50", "--permit")
    job = as_json("job", "submit", "--app", str(app["app_id"]), "--count", "2", "--reward", "0.1",
                  "--max-run", "1m")
    with run_worker(devnet_file, "worker-1", tmp_path / "worker"):
        tasknet("job", "watch", str(job["job_id"]), "--timeout", "120")
    got = as_json("result", "get", str(job["job_id"]), "--out", str(tmp_path / "results"))
    assert got["failed"] == [] and {r["digest_source"] for r in got["results"]} == {"canonical"}
    assert {r["digest"] for r in got["results"]} == {got["results"][0]["digest"]}  # same canonical output
    first = tmp_path / "results" / "0"
    assert (first / "output" / "lines.txt").read_text().strip() == "2"
    assert (first / "raw" / "output" / "raw.txt").read_text().startswith("value ")
    # an image without the step, built FROM the thin one, still inherits its labels: documented, checked here
    ctx2 = tmp_path / "child"
    ctx2.mkdir()
    (ctx2 / "Dockerfile").write_text("FROM tasknet-test/cli-canon:1-canonicalize\n")
    child = build_app_image(docker_client, ctx2, "tasknet-test/cli-canon-child:1")
    assert LABEL_COMMAND in docker_client.images.get(child).labels
