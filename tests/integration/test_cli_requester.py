"""The requester's ``tasknet`` commands on a devnet of real components, with the real worker daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import test_client_helpers as helpers
from test_client_helpers import E18, as_json, client, register_echo_app, run_worker, tasknet

from oracle.images import BUSYBOX_BASE
from tasknet.cli import cli

app_image = helpers.app_image
devnet_file = helpers.devnet_file
image_registry = helpers.image_registry


def test_cli_end_to_end_with_a_real_worker(devnet_file: Path, app_image: str, tmp_path: Path) -> None:
    """Build and register an app, add a dataset, submit a bag of 10, watch it, get and verify the results."""
    ctx = tmp_path / "app"
    ctx.mkdir()
    (ctx / "run.sh").write_text(helpers.APP_SCRIPT)
    (ctx / "Dockerfile").write_text(f"FROM {BUSYBOX_BASE}\nCOPY run.sh /app/run.sh\n"
                                    'ENTRYPOINT ["/bin/sh", "/app/run.sh"]\n')
    built = as_json("app", "build", str(ctx), "--tag", "tasknet-test/cli-echo:1", "--push")
    assert built["ref"].startswith(f"{helpers.DevnetInfo.load(devnet_file).registry}/")
    app = as_json("app", "register", "tasknet-test/cli-echo:1", "--name", "echo", "--price", "0.01",
                  "--deterministic-file", "result.txt")
    assert app["image_digest"] == built["image_id"] and app["price"] == E18 // 100
    data = tmp_path / "data"
    data.mkdir()
    (data / "table.csv").write_text("a,b\n1,2\n")
    ds = as_json("dataset", "add", str(data), "--allow-app", str(app["app_id"]))
    assert ds["kind"] == "folder" and not ds["any_app"]
    tasknet("account", "faucet", "100")
    tasknet("account", "deposit", "50", "--permit")
    assert as_json("account", "balance")["deposited"] == 50 * E18
    lines = tmp_path / "tasks.txt"
    lines.write_text("# frame, size\n" + "".join(f"{i} 'size {i}'\n" for i in range(10)))
    job = as_json("job", "submit", "--app", str(app["app_id"]), "--dataset", str(ds["dataset_id"]),
                  "--args-file", str(lines), "--reward", "0.1", "--max-run", "1m", "--encrypt")
    assert job["num_tasks"] == 10 and job["escrow"] == 10 * (E18 // 10 + E18 // 100)
    with run_worker(devnet_file, "worker-1", tmp_path / "worker"):
        watched = tasknet("job", "watch", str(job["job_id"]), "--timeout", "120")
    assert f"job {job['job_id']}: 10/10 finalized, 0 failed" in watched.stdout
    got = as_json("result", "get", str(job["job_id"]), "--out", str(tmp_path / "results"))
    assert got["failed"] == []
    got = got["results"]
    assert [r["index"] for r in got] == list(range(10)) and {r["digest_source"] for r in got} == {"file"}
    text = (tmp_path / "results" / "7" / "output" / "result.txt").read_bytes()
    assert text.startswith(b"args: 7 size 7\nin: ./dataset table.csv")  # the dataset is a tar at /in/dataset
    assert "verify" not in tasknet("result", "verify", str(job["job_id"]), "--task", "3").stderr
    listed = as_json("job", "list")
    assert listed[0]["progress"]["finalized"] == 10 and listed[0]["closed"]
    assert [a["app_id"] for a in as_json("app", "list")] == [app["app_id"]]
    assert [d["dataset_id"] for d in as_json("dataset", "list")] == [ds["dataset_id"]]
    status = as_json("job", "status", str(job["job_id"]), "--tasks")
    assert {t["state"] for t in status["tasks"]} == {"finalized"}


def test_cli_bad_inputs_fail_with_one_message_and_spend_nothing(devnet_file: Path, app_image: str,
                                                                tmp_path: Path) -> None:
    app_id = str(register_echo_app(devnet_file, app_image))
    private_ds = client(devnet_file, "dataset-owner").datasets.add(_file(tmp_path / "d.txt", "x"), any_app=False,
                                                                  apps=[99])
    c = client(devnet_file, fund=E18)
    nonce, before = c.w3.eth.get_transaction_count(c.address), c.account.balance()
    bad_json = _file(tmp_path / "bad.json", '[["a", "b"], {"args": "oops"')
    cases = [
        (["--input", f"scene.pov={tmp_path / 'nope.pov'}"], "InvalidJobSpec", "input file"),
        (["--app", "77"], "UnknownApp", "no app 77"),
        (["--dataset", str(private_ds.dataset_id)], "AccessDenied", f"does not admit app {app_id}"),
        (["--count", "20"], "InsufficientBalance", "deposit 1 more"),
        (["--args-file", str(bad_json)], "InvalidJobSpec", "not valid JSON"),
        (["--args-file", str(tmp_path / "missing.csv")], "InvalidJobSpec", "does not exist"),
    ]
    for extra, error, message in cases:
        args = ["job", "submit", "--app", app_id, "--reward", "0.1", *extra]
        if "--app" in extra:
            args = ["job", "submit", "--reward", "0.1", *extra]
        r = tasknet(*args, code=1)
        text = " ".join(r.stderr.split())  # one message (rich may wrap it at the terminal width)
        assert text.startswith(f"{error}: ") and message in text and "Traceback" not in text, r.stderr
    r = tasknet("job", "submit", "--app", app_id, "--reward", "ten", code=2)
    assert "not a number of tokens" in r.stderr
    assert c.w3.eth.get_transaction_count(c.address) == nonce and c.account.balance() == before


def test_cli_explain_watch_timeout_and_cancel_exit_codes(devnet_file: Path, app_image: str) -> None:
    app_id = str(register_echo_app(devnet_file, app_image))
    client(devnet_file, fund=10 * E18)
    job = str(as_json("job", "submit", "--app", app_id, "--count", "3", "--arg", "{index}", "--reward", "1")
              ["job_id"])
    explained = as_json("job", "explain", job)
    assert [r["code"] for r in explained["reasons"] if r["severity"] == "blocking"] == ["no-workers"]
    assert "no worker is registered" in tasknet("job", "explain", job, "--task", "2").stdout
    assert "WaitTimeout: job" in tasknet("job", "watch", job, "--timeout", "0.5", code=4).stderr
    assert as_json("job", "cancel", job) == {"job_id": int(job), "cancelled": 3, "refund": 3 * E18}
    watched = tasknet("job", "watch", job, "--json", code=3)  # ended, but no task finished
    events = [json.loads(line) for line in watched.stdout.splitlines()]
    assert [e["name"] for e in events] == ["JobPosted", "TasksCancelled", "JobClosed"]
    r = tasknet("result", "get", job, "--task", "0", "--out", "x", code=1)
    assert r.stderr.startswith("ResultNotReady: task 0 of job")


def test_progress_bars_render_on_a_terminal(devnet_file: Path, app_image: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from tasknet import _cli_common, _cli_job

    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)
    monkeypatch.setattr(_cli_common, "err", terminal)  # the upload bar of 'job submit'
    monkeypatch.setattr(_cli_job, "err", terminal)  # the bars and the timeout of 'job watch'
    app_id = str(register_echo_app(devnet_file, app_image))
    client(devnet_file, fund=E18)
    scene = _file(tmp_path / "scene.pov", "sphere")
    job = tasknet("job", "submit", "--app", app_id, "--reward", "0.5", "--input", f"scene.pov={scene}").stdout
    assert job.startswith("job 1 posted: 1 task(s), escrow 0.5 TNT")
    tasknet("job", "watch", "1", "--timeout", "0.6", code=4)
    drawn = screen.getvalue()
    assert "finalized" in drawn and "0/1" in drawn and "WaitTimeout" in drawn


def test_image_base_builds_the_cached_busybox_base(docker_client: Any) -> None:
    from oracle.images import image_digest

    built = as_json("image", "base", "--no-python")
    assert built == {BUSYBOX_BASE: image_digest(docker_client, BUSYBOX_BASE)}


def test_every_requester_command_has_an_example_in_its_help() -> None:
    groups = ["account", "app", "dataset", "job", "result", "image", "network", "config"]
    for name in groups:
        group = cli.commands[name]
        assert isinstance(group, click.Group)
        for cmd_name, cmd in group.commands.items():
            assert "Example:" in (cmd.help or ""), f"tasknet {name} {cmd_name} has no example"
            assert f"tasknet {name} {cmd_name}" in (cmd.help or "") or name == "image"


def test_installed_entry_point_reports_errors_with_exit_1(devnet_file: Path) -> None:
    exe = Path(sys.executable).parent / "tasknet"
    env = {**os.environ, "TASKNET_DEVNET_FILE": str(devnet_file)}
    r = subprocess.run([str(exe), "job", "explain", "99"], capture_output=True, text=True, env=env, timeout=60,
                       check=False)
    assert r.returncode == 1 and r.stderr.strip().startswith("UnknownJob: no job 99"), r.stderr
    r = subprocess.run([str(exe), "account", "balance", "--json"], capture_output=True, text=True, env=env,
                       check=False, timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout)["wallet"] == 0


def _file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


FAILING_SCRIPT = """#!/bin/sh
# task 1 fails the way a broken app does: a command not found (exit 127), a word on stderr
if [ "$1" = 1 ]; then echo "oops: no such command" >&2; exit 127; fi
echo "fine $1" > /out/result.txt
"""


def test_failed_runs_are_reported_apart_with_their_reason_and_exit_5(devnet_file: Path, app_image: str,
                                                                     tmp_path: Path) -> None:
    """An app that exits 127 on one task: `job watch` and `result get` list that task as failed, with the
    reason and exit code from its status, apart from the successes, and both exit 5; `--json` carries it."""
    ctx = tmp_path / "app"
    ctx.mkdir()
    (ctx / "run.sh").write_text(FAILING_SCRIPT)
    (ctx / "Dockerfile").write_text(f"FROM {BUSYBOX_BASE}\nCOPY run.sh /app/run.sh\n"
                                    'ENTRYPOINT ["/bin/sh", "/app/run.sh"]\n')
    tasknet("app", "build", str(ctx), "--tag", "tasknet-test/cli-fails:1", "--push")
    app = as_json("app", "register", "tasknet-test/cli-fails:1", "--name", "fails",
                  "--deterministic-file", "result.txt")
    client(devnet_file, fund=10 * E18)
    job = str(as_json("job", "submit", "--app", str(app["app_id"]), "--count", "3", "--arg", "{index}",
                      "--reward", "0.1", "--max-run", "1m")["job_id"])
    with run_worker(devnet_file, "worker-1", tmp_path / "w1"), run_worker(devnet_file, "worker-2", tmp_path / "w2"):
        watched = tasknet("job", "watch", job, "--timeout", "120", code=5)
    assert "failed tasks" in watched.stdout and "nonzero-exit" in watched.stdout and "127" in watched.stdout
    got = tasknet("result", "get", job, str(tmp_path / "out"), code=5)
    assert "2 result(s) verified" in got.stdout and "1 task(s) failed" in got.stdout
    assert (tmp_path / "out" / "0" / "output" / "result.txt").read_text() == "fine 0\n"
    as_json_out = json.loads(tasknet("result", "get", job, str(tmp_path / "out"), "--json", code=5).stdout)
    assert [r["index"] for r in as_json_out["results"]] == [0, 2]
    assert [(f["index"], f["state"], f["reason"], f["exit_code"]) for f in as_json_out["failed"]] == \
        [(1, "finalized", "nonzero-exit", 127)]
    audit = json.loads(tasknet("audit", "job", job, "--json").stdout)
    assert audit["passed"] and audit["counts"] == {"succeeded": 2, "failed_runs": 1, "failed": 0, "cancelled": 0,
                                                   "unsettled": 0}
    assert "1 finalized with a failed run" in tasknet("audit", "job", job).stdout
