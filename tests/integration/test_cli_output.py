"""What a person sees: one-shot commands print their own lines only (logs are for trouble), daemons log; JSON
lines when asked. Real processes under a real pseudo-terminal, on the session's devnet components."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import test_client_helpers as helpers

from oracle.images import BUSYBOX_BASE

app_image = helpers.app_image
devnet_file = helpers.devnet_file
image_registry = helpers.image_registry


def _app_context(tmp_path: Path) -> Path:
    ctx = tmp_path / "app"
    ctx.mkdir()
    (ctx / "run.sh").write_text(helpers.APP_SCRIPT)
    (ctx / "Dockerfile").write_text(f"FROM {BUSYBOX_BASE}\nCOPY run.sh /app/run.sh\n"
                                    'ENTRYPOINT ["/bin/sh", "/app/run.sh"]\n')
    return ctx


def run_in_pty(args: list[str], timeout: float = 120) -> tuple[int, str]:
    """Run ``tasknet ARGS`` with stdin, stdout and stderr on a fresh pseudo-terminal; return its exit code and
    everything it wrote there (what a person at a terminal sees)."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "200", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "tasknet.cli", *args], stdin=follower, stdout=follower,
                            stderr=follower, env=env, close_fds=True)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: every writer closed its end
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=10)
    os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    return code, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)  # colours and cursor moves, not text


def test_a_one_shot_command_in_a_terminal_prints_only_its_own_lines(devnet_file: Path, tmp_path: Path,
                                                                   app_image: str) -> None:
    """`tasknet app build` at a terminal: its spinner and its 'built …' line, no log line (info is for -v)."""
    ctx = _app_context(tmp_path)
    code, screen = run_in_pty(["app", "build", str(ctx), "--tag", "tasknet-test/pty-echo:1",
                               "--devnet-file", str(devnet_file)])
    assert code == 0, screen
    assert "built tasknet-test/pty-echo:1: sha256:" in screen
    assert "app_image_built" not in screen and "[info" not in screen and '{"' not in screen, screen

    code, verbose = run_in_pty(["-v", "app", "build", str(ctx), "--tag", "tasknet-test/pty-echo:1",
                                "--devnet-file", str(devnet_file)])
    assert code == 0 and "app_image_built" in verbose and '{"' not in verbose, verbose  # console lines, not JSON


def test_json_logs_are_valid_json_lines(devnet_file: Path, tmp_path: Path, app_image: str) -> None:
    """`--json-logs -v`: every line on stderr is one JSON object (an event with its level and time); the
    command's own result stays on stdout."""
    ctx = _app_context(tmp_path)
    r = subprocess.run([sys.executable, "-m", "tasknet.cli", "--json-logs", "-v", "app", "build", str(ctx), "--tag",
                        "tasknet-test/json-echo:1", "--devnet-file", str(devnet_file)],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # raises on any line that is not JSON
    assert events and all({"event", "level", "timestamp"} <= e.keys() for e in events)
    assert "app_image_built" in {e["event"] for e in events}
    assert r.stdout.startswith("built tasknet-test/json-echo:1: sha256:")


def test_a_daemon_logs_json_lines_when_its_stderr_is_a_pipe(devnet_file: Path, tmp_path: Path) -> None:
    """`tasknet worker run` with stderr on a pipe (a service manager, `| tee`): info-level JSON lines."""
    with helpers.client(devnet_file, "worker-1") as c:
        c.account.faucet(10 * helpers.E18)
    proc = subprocess.Popen([sys.executable, "-m", "tasknet.cli", "worker", "run", "--as", "worker-1", "--stake", "2",
                             "--state-dir", str(tmp_path / "w"), "--devnet-file", str(devnet_file)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        seen: list[dict[str, object]] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(e.get("event") == "worker_started" for e in seen):
            line = proc.stderr.readline()
            if not line:
                break
            try:
                seen.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"not a JSON line: {line!r}") from None
        assert any(e.get("event") == "worker_started" and e.get("level") == "info" for e in seen), seen
    finally:
        proc.terminate()
        proc.wait(60)
