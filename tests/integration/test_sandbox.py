"""The confined sandbox on the real Docker engine: normal apps work, hostile apps are contained and cleaned up."""

from __future__ import annotations

import http.server
import os
import socket
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from oracle.images import BUSYBOX_BASE, build_busybox_base
from worker import Limits, Reason, RunResult, RunSpec, Sandbox, pack_result

MiB = 1 << 20
LIMITS = Limits(wall_seconds=10, memory_bytes=48 * MiB, cpus=1.0, pids=48, output_bytes=1 * MiB, output_files=200,
                tmp_bytes=4 * MiB, log_bytes=64 * 1024)


@pytest.fixture(scope="module", params=["fresh", "reused"])
def sandbox(request: pytest.FixtureRequest, docker_client: Any, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Sandbox]:
    """Every test below runs twice: each task in a fresh container, and the tasks one after another in reused
    containers (worker/_reuse.py), which must contain and report every hostile app the same way."""
    build_busybox_base(docker_client)
    owner = f"pytest-{uuid.uuid4().hex[:8]}"
    reuse_dir = tmp_path_factory.mktemp("reuse") if request.param == "reused" else None
    with Sandbox(docker_client, owner=owner, reuse_dir=reuse_dir) as box:
        yield box
        if reuse_dir is not None:
            assert box.runs["reused"] > 0
    label = {"label": f"tasknet.sandbox={owner}"}
    assert docker_client.containers.list(all=True, filters=label) == []
    assert docker_client.volumes.list(filters=label) == []
    if reuse_dir is not None:
        assert list(reuse_dir.iterdir()) == []


@pytest.fixture(autouse=True)
def _no_task_container_left(request: pytest.FixtureRequest, docker_client: Any) -> Iterator[None]:
    yield
    if "sandbox" in request.fixturenames:
        box = request.getfixturevalue("sandbox")
        box.wait_removed()
        owner = box.owner
        left = docker_client.containers.list(all=True, filters={"label": ["tasknet.role=app",
                                                                          f"tasknet.sandbox={owner}"]})
        assert left == [], "a task container was left behind"


def run(sandbox: Sandbox, tmp_path: Path, script: str, *, limits: Limits = LIMITS, image: str = BUSYBOX_BASE,
        inputs: dict[str, bytes] | None = None, **kw: Any) -> RunResult:
    input_dir = None
    if inputs is not None or sandbox.reuse_dir is not None:  # a reused container serves runs with inputs
        tmp_path.mkdir(parents=True, exist_ok=True)
        input_dir = Path(tempfile.mkdtemp(dir=tmp_path))  # 0700, like the daemon's task folders
        for name, data in (inputs or {}).items():
            (input_dir / name).write_bytes(data)
            (input_dir / name).chmod(0o600)
    command = kw.pop("command", ["sh", "-c", script])
    spec = RunSpec(image=image, command=command, input_dir=input_dir, output_dir=tmp_path / "out",
                   log_dir=tmp_path / "logs", limits=limits, task=kw.pop("task", "t-1"),
                   reuse="job-1" if sandbox.reuse_dir is not None else None, **kw)
    return sandbox.run(spec)


def test_normal_app_reads_inputs_and_writes_outputs_and_logs(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run(sandbox, tmp_path, "wc -c < /in/data > count; mkdir -p sub && cp /in/data sub/copy; "
                 "echo to-stdout; echo to-stderr >&2; pwd", inputs={"data": b"12345"})
    assert result.ok, result.message
    assert (result.reason, result.exit_code) == (Reason.OK, 0)
    assert (result.output_dir / "count").read_text().strip() == "5"
    assert (result.output_dir / "sub" / "copy").read_bytes() == b"12345"
    assert (result.output_dir / "count").stat().st_mode & 0o777 == 0o644
    assert result.stdout_path.read_bytes() == b"to-stdout\n/out\n"
    assert result.stderr_path.read_bytes() == b"to-stderr\n"
    assert (result.output_files, result.output_bytes) == (2, 7)
    assert result.image_id is not None and result.image_id.startswith("sha256:")
    assert 0 < result.run_seconds < 3 and result.total_seconds >= result.run_seconds


@pytest.mark.reliability(kind="attack", name="app tries to escalate or write the root fs",
                         how="the app inspects its uid, capabilities, no-new-privs and tries to write /, /etc, /in: "
                             "unprivileged, no capabilities, read-only")
def test_app_runs_unprivileged_without_capabilities_network_or_writable_root(sandbox: Sandbox,
                                                                            tmp_path: Path) -> None:
    result = run(sandbox, tmp_path, "grep -E '^(Uid|Gid|CapEff|CapBnd|NoNewPrivs)' /proc/self/status; "
                 "ls /sys/class/net; for p in /etc/x /x /in/x; do touch $p 2>/dev/null && echo WROTE $p; done; "
                 "touch /tmp/ok && echo tmp-ok", inputs={"data": b"x"})
    assert result.ok, result.message
    out = result.stdout_path.read_text()
    assert "Uid:\t65534\t65534\t65534\t65534" in out and "Gid:\t65534" in out
    assert "CapEff:\t0000000000000000" in out and "CapBnd:\t0000000000000000" in out
    assert "NoNewPrivs:\t1" in out
    assert out.splitlines()[5:7] == ["lo", "tmp-ok"]  # the only network interface is loopback
    assert "WROTE" not in out


@pytest.mark.reliability(kind="attack", name="app tries the network",
                         how="the app connects to a server on the host's loopback and resolves a name: refused")
def test_network_attempt_fails_even_to_the_hosts_loopback(sandbox: Sandbox, tmp_path: Path) -> None:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # the host itself reaches it
        result = run(sandbox, tmp_path, f"echo GET / | nc -w 2 127.0.0.1 {port} && echo CONNECTED; "
                     "nslookup example.org 2>&1 | tail -1; exit 0")
    finally:
        server.shutdown()
    assert result.ok
    assert "CONNECTED" not in result.stdout_path.read_text()
    assert "Connection refused" in result.stderr_path.read_text()


@pytest.mark.reliability(kind="attack", name="app forks endlessly",
                         how="a shell fork bomb: killed at the pids limit, reason pids")
def test_fork_bomb_is_killed_with_reason_pids(sandbox: Sandbox, tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(sandbox, tmp_path, "f(){ f|f& }; f; sleep 30")
    assert result.reason is Reason.PIDS, result.message
    assert "48 processes" in result.message
    assert time.monotonic() - started < 5  # killed at once, not at the wall clock


@pytest.mark.reliability(kind="attack", name="app eats memory",
                         how="a doubling string: OOM-killed at the memory limit, reason oom")
def test_memory_hog_is_killed_with_reason_oom(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run(sandbox, tmp_path, "x=a; while :; do x=$x$x; done")
    assert result.reason is Reason.OOM, result.message
    assert result.exit_code == 137 and "out of memory" in result.message and not result.killed_from_outside


@pytest.mark.reliability(kind="attack", name="app loops forever",
                         how="a busy loop: killed at the wall-clock limit, reason timeout")
def test_infinite_loop_is_killed_by_the_wall_clock(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run(sandbox, tmp_path, "echo started; while :; do :; done",
                 limits=LIMITS.model_copy(update={"wall_seconds": 1.0}))
    assert result.reason is Reason.TIMEOUT, result.message
    assert 1.0 <= result.run_seconds < 3.0
    assert result.stdout_path.read_text() == "started\n"


@pytest.mark.reliability(kind="attack", name="app floods its output folder",
                         how="yes > /out/flood: stopped at the size cap, reason output-too-large")
def test_output_flood_is_stopped_at_the_cap(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run(sandbox, tmp_path, "yes > /out/flood; echo after >&2; exit 0")
    assert result.reason is Reason.OUTPUT_TOO_LARGE, result.message
    assert result.output_bytes <= LIMITS.output_bytes
    assert "No space left on device" in result.stderr_path.read_text()


def test_an_output_exactly_at_the_cap_is_accepted_and_one_byte_more_is_too_large(sandbox: Sandbox,
                                                                                 tmp_path: Path) -> None:
    """The cap counts each file's bytes rounded up to 4 KiB pages (what a tmpfs takes for them): an output that
    takes exactly the cap is a success, one byte more is not, nor are many small files that take more pages."""
    cap = LIMITS.output_bytes
    at = run(sandbox, tmp_path / "at", f"head -c {cap - 4096} /dev/zero > a; head -c 4096 /dev/zero > b")
    assert at.ok, at.message
    assert at.output_bytes == cap
    one = run(sandbox, tmp_path / "one", f"head -c {cap} /dev/zero > a")
    assert one.ok and one.output_bytes == cap, one.message
    over = run(sandbox, tmp_path / "over", f"head -c {cap + 1} /dev/zero > a")
    assert over.reason is Reason.OUTPUT_TOO_LARGE and over.explanation == "the output is larger than the output cap allows"
    pages = run(sandbox, tmp_path / "pages", "i=0; while [ $i -lt 300 ]; do echo > f$i || exit 1; i=$((i+1)); done",
                limits=LIMITS.model_copy(update={"output_files": 1000}))
    assert pages.reason is Reason.OUTPUT_TOO_LARGE, pages.message  # 300 one-byte files take 300 pages > 256


@pytest.mark.reliability(kind="attack", name="app floods small files",
                         how="touch f0..fN: stopped at the file-count cap, reason output-too-many-files")
def test_flood_of_small_files_is_stopped_at_the_entry_cap(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run(sandbox, tmp_path, "i=0; while touch f$i 2>/dev/null; do i=$((i+1)); done; exit 0")
    assert result.reason is Reason.OUTPUT_TOO_MANY_FILES, result.message
    assert result.output_entries == LIMITS.output_files + 1  # the volume holds one entry past the cap, no more
    assert result.explanation == "the output holds more entries than the output cap allows"


@pytest.mark.reliability(kind="attack", name="app emits a huge (sparse) file for the archive",
                         how="a 50 MB sparse file: refused, nothing copied out")
def test_sparse_file_claiming_more_than_the_cap_is_not_copied_out(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run(sandbox, tmp_path, "truncate -s 50M huge && ls -l huge")
    assert result.reason is Reason.OUTPUT_TOO_LARGE, result.message
    assert result.output_bytes == 0 and not (result.output_dir / "huge").exists()


@pytest.mark.reliability(kind="attack", name="app writes symlinks out of its output folder",
                         how="links to /etc/passwd, / and ../..: skipped, never followed into the result archive")
def test_symlinks_out_of_the_output_are_not_followed_into_the_result(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run(sandbox, tmp_path, "echo real > real; ln -s /etc/passwd leak; ln -s / root; ln real hard; "
                 "mkdir d; ln -s ../../../../etc d/up")
    assert result.ok, result.message
    assert sorted(p.name for p in result.output_dir.rglob("*")) == ["d", "hard", "real"]  # a hard link is a copy
    assert (result.output_dir / "hard").read_text() == (result.output_dir / "real").read_text() == "real\n"
    assert not any(p.is_symlink() for p in result.output_dir.rglob("*"))
    assert {s.split(":")[0] for s in result.skipped} == {"leak", "root", "d/up"}
    packed = pack_result(result.output_dir, tmp_path / "r.tar",
                         logs={"stdout": result.stdout_path, "stderr": result.stderr_path})
    with tarfile.open(packed.archive_path) as tar:
        assert tar.getnames() == ["output", "output/d", "output/hard", "output/real", "logs", "logs/stderr",
                                  "logs/stdout"]
    assert b"root:x:0:0" not in packed.archive_path.read_bytes()


@pytest.mark.reliability(kind="attack", name="app floods stdout",
                         how="3 MB on stdout: the log is capped, stderr kept")
def test_logs_are_capped_per_stream(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run(sandbox, tmp_path, "yes | head -c 3000000; echo the-end >&2")
    assert result.ok, result.message
    assert result.stdout_path.stat().st_size == LIMITS.log_bytes
    assert result.stdout_bytes == 3_000_000 and result.logs_truncated
    assert result.stderr_path.read_text() == "the-end\n"


@pytest.mark.reliability(kind="fault", name="app container killed from outside vs an app exiting 137",
                         how="docker kill of a running app is flagged killed_from_outside (the engine recorded a kill "
                             "none of our limits sent); exit 137 and a SIGKILL the app sends itself are not")
def test_a_kill_from_outside_is_told_apart_from_the_apps_own_exit_137(sandbox: Sandbox, tmp_path: Path,
                                                                      docker_client: Any) -> None:
    own = run(sandbox, tmp_path / "own", "exit 137")
    assert (own.reason, own.exit_code, own.killed_from_outside) == (Reason.NONZERO_EXIT, 137, False)
    itself = run(sandbox, tmp_path / "self", "sh -c 'kill -9 $$'; exit $?")
    assert (itself.exit_code, itself.killed_from_outside) == (137, False)
    role = "tasknet.role=app" if sandbox.reuse_dir is None else "tasknet.role=reused"
    selector = {"label": [role, f"tasknet.sandbox={sandbox.owner}"], "status": "running"}
    stop = threading.Event()

    def killer() -> None:
        stop.wait(1.0)  # the app is running by then (a reused container is there before it)
        while not stop.is_set():
            for c in docker_client.containers.list(filters=selector):
                c.kill()
                return
            time.sleep(0.05)
    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        killed = run(sandbox, tmp_path / "killed", "sleep 8")
    finally:
        stop.set()
        thread.join(5)
    assert (killed.reason, killed.exit_code, killed.killed_from_outside) == (Reason.NONZERO_EXIT, 137, True)
    assert "signal 9" in killed.message and killed.explanation == "the app exited with code 137"
    timed_out = run(sandbox, tmp_path / "late", "sleep 5", limits=LIMITS.model_copy(update={"wall_seconds": 0.5}))
    assert (timed_out.reason, timed_out.killed_from_outside) == (Reason.TIMEOUT, False)


def test_nonzero_exit_reports_the_code_and_the_last_stderr_line(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run(sandbox, tmp_path, "echo 'cannot parse input' >&2; exit 3")
    assert (result.reason, result.exit_code) == (Reason.NONZERO_EXIT, 3)
    assert "code 3" in result.message and "cannot parse input" in result.message


def test_missing_command_fails_to_start(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run(sandbox, tmp_path / "path", "", command=["/no/such/binary"])
    assert result.reason is Reason.START_FAILED and "/no/such/binary" in result.message
    assert result.exit_code is None
    # a name looked up on the image's PATH (not one of busybox's own applets in a reused container)
    named = run(sandbox, tmp_path / "name", "", command=["no-such-program"])
    assert named.reason is Reason.START_FAILED and "no-such-program" in named.message
    fine = run(sandbox, tmp_path / "fine", "", command=["echo", "still", "fine"])
    assert fine.ok and fine.stdout_path.read_text() == "still fine\n"


@pytest.mark.reliability(kind="attack", name="app image missing or swapped",
                         how="an unknown image and an image whose digest differs from the registered one: refused "
                             "before running")
def test_missing_image_and_wrong_digest_are_refused_before_running(sandbox: Sandbox, tmp_path: Path) -> None:
    missing = run(sandbox, tmp_path, "true", image="tasknet/no-such-image:1")
    assert missing.reason is Reason.IMAGE_MISSING and "pull_by_digest" in missing.message
    wrong = run(sandbox, tmp_path / "2", "true", image_digest="sha256:" + "0" * 64)
    assert wrong.reason is Reason.IMAGE_MISMATCH and "refuse" in wrong.message
    right = run(sandbox, tmp_path / "3", "true", image_digest=sandbox.client.images.get(BUSYBOX_BASE).id)
    assert right.ok


def test_output_folder_must_be_fresh(sandbox: Sandbox, tmp_path: Path) -> None:
    from worker.exceptions import SandboxError

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale").write_text("x")
    with pytest.raises(SandboxError, match="not empty"):
        run(sandbox, tmp_path, "true")


@pytest.mark.reliability(kind="attack", name="tasks running side by side stay separate",
                         how="4 concurrent tasks each write their own output: no mixing")
def test_concurrent_runs_stay_separate(sandbox: Sandbox, tmp_path: Path) -> None:
    def one(i: int) -> RunResult:
        return run(sandbox, tmp_path / str(i), f"echo {i} > me; sleep 0.2")

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(4)))
    assert [r.reason for r in results] == [Reason.OK] * 4
    assert [(r.output_dir / "me").read_text().strip() for r in results] == ["0", "1", "2", "3"]


@pytest.mark.reliability(kind="attack", name="others' work after hostile apps",
                         how="after the hostile apps above, ordinary tasks still run normally")
def test_engine_still_serves_tasks_after_hostile_apps(sandbox: Sandbox, tmp_path: Path) -> None:
    times = []
    for i in range(3):
        result = run(sandbox, tmp_path / str(i), "echo fine > ok")
        assert result.ok, result.message
        times.append(result.total_seconds)
    assert min(times) < 1.5


def _holders(docker_client: Any, owner: str, *, all: bool = True) -> set[str]:
    selector = {"label": [f"tasknet.sandbox={owner}", "tasknet.role=holder"]}
    return {c.id for c in docker_client.containers.list(all=all, filters=selector)}


@pytest.mark.reliability(kind="attack", name="a task leaves traps in its reused output slot",
                         how="an app locks a folder (mode 000), leaves hidden files and a FIFO and tries to make "
                             "/out read-only; the next task in the same slot starts with an empty, writable /out")
def test_a_reused_output_slot_starts_empty_whatever_the_last_app_left(docker_client: Any, tmp_path: Path) -> None:
    owner = f"pytest-{uuid.uuid4().hex[:8]}"
    with Sandbox(docker_client, owner=owner, prewarm=False, max_idle=1) as box:
        first = run(box, tmp_path / "a", "mkdir -p d/e && echo x > d/e/f && chmod 000 d && echo y > .h && "
                    "echo z > ..z && mkfifo p && ! chmod 500 /out 2>/dev/null && ls -A /out")
        assert first.ok, first.message
        assert first.stdout_path.read_text().split() == ["..z", ".h", "d", "p"]
        assert first.skipped == ["p: special file (a fifo), not copied"]
        holders = _holders(docker_client, owner)
        assert len(holders) == 1
        for i in range(3):
            again = run(box, tmp_path / f"b{i}", "ls -A /out; echo w > w && stat -c %a /out")
            assert again.ok, again.message
            assert again.stdout_path.read_text() == "1775\n"  # nothing left, writable, the mode it always has
            assert (again.output_dir / "w").read_text() == "w\n"
        assert _holders(docker_client, owner) == holders  # one slot served every run
    assert _holders(docker_client, owner) == set()


def test_a_slot_whose_holder_died_is_replaced(docker_client: Any, tmp_path: Path) -> None:
    owner = f"pytest-{uuid.uuid4().hex[:8]}"
    with Sandbox(docker_client, owner=owner, prewarm=False) as box:
        assert run(box, tmp_path / "a", "echo 1 > f").ok
        (dead,) = _holders(docker_client, owner)
        docker_client.containers.get(dead).kill()  # something on the engine kills the idle holder
        result = run(box, tmp_path / "b", "echo 2 > f")
        assert result.ok, result.message
        assert (result.output_dir / "f").read_text() == "2\n"
        assert dead not in _holders(docker_client, owner, all=False)


_CRASHING_WORKER = """
import os, sys, time
from pathlib import Path
import docker
from worker import Limits, RunSpec, Sandbox
box = Sandbox(docker.from_env(), owner=sys.argv[1], prewarm=False)
out = Path(sys.argv[2])
r = box.run(RunSpec(image=sys.argv[3], command=["sh", "-c", "echo hi > f"], output_dir=out / "out",
                    log_dir=out / "logs", limits=Limits(output_bytes=1 << 20)))
print(r.reason.value, flush=True)
time.sleep(600)
"""


@pytest.mark.reliability(kind="fault", name="worker killed with idle output slots",
                         how="kill -9 a process holding an idle output slot: the holder sees its stdin close and "
                             "exits, unmounting the tmpfs; cleanup() removes the rest")
def test_a_killed_workers_output_slots_unmount_themselves(docker_client: Any, tmp_path: Path) -> None:
    import subprocess
    import sys

    owner = f"pytest-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([sys.executable, "-c", _CRASHING_WORKER, owner, str(tmp_path), BUSYBOX_BASE],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ok"
        (holder,) = _holders(docker_client, owner, all=False)  # idle, running, keeping its volume mounted
        proc.kill()
        proc.wait(10)
        end = time.monotonic() + 20
        while holder in _holders(docker_client, owner, all=False) and time.monotonic() < end:
            time.sleep(0.1)
        assert holder not in _holders(docker_client, owner, all=False)
    finally:
        proc.kill()
    assert Sandbox(docker_client, owner=owner).cleanup() == 2  # the exited holder and its volume
    assert _holders(docker_client, owner) == set()


def test_odd_names_and_modes_come_out_whole(sandbox: Sandbox, tmp_path: Path) -> None:
    long = "n" * 150
    result = run(sandbox, tmp_path, f"mkdir -p a/b/c/d && echo deep > a/b/c/d/{long} && : > empty && "
                 "printf 'x' > 'sp ace' && printf 'y' > 'caf\u00e9 \u2603' && echo run > tool && "
                 "chmod 700 tool && chmod 000 a/b && dd if=/dev/zero of=big bs=1024 count=300 2>/dev/null")
    assert result.ok, result.message
    out = result.output_dir
    assert (out / "a/b/c/d" / long).read_text() == "deep\n"
    assert (out / "empty").read_bytes() == b"" and (out / "sp ace").read_text() == "x"
    assert (out / "caf\u00e9 \u2603").read_text() == "y"
    assert (out / "tool").stat().st_mode & 0o777 == 0o755 and (out / "big").stat().st_size == 300 * 1024
    assert (result.output_files, result.skipped) == (6, [])


def test_thousands_of_long_names_with_locked_modes_are_copied_out_and_the_slot_emptied(docker_client: Any,
                                                                                       tmp_path: Path) -> None:
    """9,000 names of 240 bytes (2 MB of names) and a locked file in /out, which is not the holder's: all copied
    out, the slot emptied and reused."""
    owner = f"pytest-{uuid.uuid4().hex[:8]}"
    limits = LIMITS.model_copy(update={"output_files": 10_000, "wall_seconds": 60})
    with Sandbox(docker_client, owner=owner, prewarm=False, max_idle=1) as box:
        many = run(box, tmp_path / "a", 'L=$(printf "%0236d" 0); i=0; while [ $i -lt 9000 ]; do : > $L$i; '
                   "i=$((i+1)); done; echo s > locked; chmod 000 locked", limits=limits)
        assert many.ok, many.message
        assert many.output_files == 9001 and (many.output_dir / "locked").read_text() == "s\n"
        holders = _holders(docker_client, owner)
        again = run(box, tmp_path / "b", "ls -A /out | wc -l", limits=limits)
        assert again.ok and again.stdout_path.read_text().strip() == "0"
        assert _holders(docker_client, owner) == holders


# -- reused containers (worker/_reuse.py) ---------------------------------------------------------------------------
@pytest.fixture
def reusing(docker_client: Any, tmp_path: Path) -> Iterator[Sandbox]:
    build_busybox_base(docker_client)
    owner = f"pytest-{uuid.uuid4().hex[:8]}"
    with Sandbox(docker_client, owner=owner, prewarm=False, max_idle=1, reuse_dir=tmp_path / "reuse") as box:
        yield box
    assert docker_client.containers.list(all=True, filters={"label": f"tasknet.sandbox={owner}"}) == []
    assert list((tmp_path / "reuse").iterdir()) == []


def _reused(docker_client: Any, owner: str) -> set[str]:
    selector = {"label": [f"tasknet.sandbox={owner}", "tasknet.role=reused"]}
    return {c.id for c in docker_client.containers.list(all=True, filters=selector)}


@pytest.mark.reliability(kind="attack", name="a task leaves traps in its reused container",
                         how="an app leaves a process running, files in /tmp (one locked, mode 000), /dev/shm and "
                             "/dev/mqueue; the job's next task in the same container finds none of it and its own "
                             "inputs only")
def test_a_reused_container_starts_each_task_clean(reusing: Sandbox, docker_client: Any, tmp_path: Path) -> None:
    first = run(reusing, tmp_path / "a", "sleep 300 & (sleep 2; echo late > /out/late) & echo secret > /tmp/s; "
                "mkdir /tmp/d && echo x > /tmp/d/x && chmod 000 /tmp/d; echo shm > /dev/shm/x; "
                "touch /dev/mqueue/q 2>/dev/null; printf 'no newline'", inputs={"one": b"1"})
    assert first.ok, first.message
    assert first.stdout_path.read_bytes() == b"no newline" and first.stdout_bytes == 10  # the marker is not the app's
    assert first.stderr_path.read_bytes() == b""  # nor does the wrapper write on the app's stderr
    containers = _reused(docker_client, reusing.owner)
    assert len(containers) == 1
    second = run(reusing, tmp_path / "b", "ps -o comm | grep -c sleep; ls -A /tmp /dev/shm /dev/mqueue /in /out",
                 inputs={"two": b"2"})
    assert second.ok, second.message
    out = second.stdout_path.read_text().split("\n")
    assert out[0] == "0"  # no process of the first task is left
    assert "sleep" not in second.stdout_path.read_text() and "secret" not in second.stdout_path.read_text()
    listing = second.stdout_path.read_text().split("/in:\n", 1)[1]
    assert listing.startswith("two\n")  # the second task's inputs only, and the rest empty
    assert "/dev/mqueue:\n\n/dev/shm:\n\n" in second.stdout_path.read_text()
    assert second.stdout_path.read_text().endswith("/out:\n\n/tmp:\n") and second.stderr_bytes == 0
    assert not (second.output_dir / "late").exists()  # the first task's background writer died with it
    assert _reused(docker_client, reusing.owner) == containers  # the same container served both
    assert reusing.runs == {"reused": 2, "fresh": 0}


@pytest.mark.reliability(kind="attack", name="a task attacks its reused container's launcher",
                         how="an app signals the launcher (PID 1, its own uid) with SIGKILL, SIGTERM, SIGSTOP and 8 "
                             "more, tries to read its environment and file descriptors and to write its OOM score, "
                             "and looks for the run's nonce in every process's command line, environment and the "
                             "task file; the launcher serves the next task in the same container")
def test_an_app_can_neither_stop_nor_read_the_launcher_nor_forge_its_marker(reusing: Sandbox, docker_client: Any,
                                                                          tmp_path: Path) -> None:
    import re

    first = run(reusing, tmp_path / "a",
                "for s in KILL TERM INT HUP QUIT STOP USR1 USR2 PIPE ALRM CHLD; do kill -$s 1; done; "
                "cat /proc/1/environ; ls /proc/1/fd; echo 1000 > /proc/1/oom_score_adj; "
                "cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ /.tasknet/ctl/task 2>/dev/null | tr '\\0' '\\n' "
                "| grep -o 'tasknet-[0-9a-f]*'; sleep 0.3; echo end")
    assert first.ok, first.message
    out, err = first.stdout_path.read_text(), first.stderr_path.read_text()
    assert out.endswith("end\n") and not re.search(r"tasknet-[0-9a-f]{32}", out), out  # no nonce to be found
    assert err.count("Permission denied") == 3, err  # environ, fd, oom_score_adj: the launcher is not dumpable
    containers = _reused(docker_client, reusing.owner)
    second = run(reusing, tmp_path / "b", "echo again")
    assert second.ok and second.stdout_path.read_text() == "again\n", second.message
    assert _reused(docker_client, reusing.owner) == containers and reusing.runs == {"reused": 2, "fresh": 0}


@pytest.mark.reliability(kind="attack", name="a task changes its reused container's launcher",
                         how="an app lowers the launcher's open-files limit, its priority, its CPU affinity or its "
                             "I/O priority (what a process of the same uid may change in another); the worker sees "
                             "it from the host and the job's next task gets a new container with none of it")
@pytest.mark.parametrize("change", [
    "import resource; resource.prlimit(1, resource.RLIMIT_NOFILE, (64, 64))",
    "import os; os.setpriority(os.PRIO_PROCESS, 1, 10)",
    "import os; os.sched_setaffinity(1, {min(os.sched_getaffinity(1))})",
    "import ctypes; assert ctypes.CDLL(None).syscall(251, 1, 1, 3 << 13) == 0",  # ioprio_set(PROCESS, 1, IDLE)
])
def test_an_app_that_changes_the_launcher_gets_its_container_replaced(reusing: Sandbox, docker_client: Any,
                                                                       tmp_path: Path, change: str) -> None:
    from oracle.images import PYTHON_BASE, build_python_base

    if "affinity" in change and len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: no affinity to narrow")
    build_python_base(docker_client)
    first = run(reusing, tmp_path / "a", "", image=PYTHON_BASE, command=["python3", "-c", change + "; print('done')"])
    assert first.ok and first.stdout_path.read_text() == "done\n", first.message
    reusing.wait_removed()
    assert _reused(docker_client, reusing.owner) == set()  # discarded
    second = run(reusing, tmp_path / "b", "", image=PYTHON_BASE, command=["python3", "-c", (
        "import os, resource; print(resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 64, os.getpriority("
        "os.PRIO_PROCESS, 0), len(os.sched_getaffinity(0)) == os.cpu_count())")])
    assert second.ok and second.stdout_path.read_text() == "True 0 True\n", second.message
    assert reusing.runs == {"reused": 2, "fresh": 0}


def test_containers_prepared_before_a_run_serve_it(reusing: Sandbox, docker_client: Any, tmp_path: Path) -> None:
    """Sandbox.prepare makes a reused container for runs like a spec in an idle slot before any run: the run then
    goes through it, and preparing again makes none."""
    reusing.warm(LIMITS, 1)
    like = RunSpec(image=BUSYBOX_BASE, command=[], input_dir=tmp_path, output_dir=tmp_path, log_dir=tmp_path,
                   limits=LIMITS, task="warm", reuse="job-1")
    assert reusing.prepare(like, 1) == 1
    ready = _reused(docker_client, reusing.owner)
    assert len(ready) == 1 and reusing.prepare(like, 1) == 0
    result = run(reusing, tmp_path / "a", "echo ran")
    assert result.ok and result.stdout_path.read_text() == "ran\n", result.message
    assert _reused(docker_client, reusing.owner) == ready and reusing.runs == {"reused": 1, "fresh": 0}
    other = like.model_copy(update={"reuse": "job-2"})
    assert reusing.prepare(other, 1) == 1  # another group's: the slot's container is replaced
    reusing.wait_removed()
    assert len(_reused(docker_client, reusing.owner) - ready) == 1 and not ready & _reused(docker_client, reusing.owner)


def test_a_container_an_app_leaves_ipc_objects_in_is_replaced(reusing: Sandbox, docker_client: Any,
                                                               tmp_path: Path) -> None:
    """System V IPC objects outlive their process and busybox cannot remove them: the container goes."""
    from oracle.images import PYTHON_BASE, build_python_base

    build_python_base(docker_client)  # ~40 s on a fresh engine, instant when cached
    make = ("import ctypes; libc = ctypes.CDLL(None); "
            "print(libc.shmget(0, 4096, 0o1600) >= 0, open('/proc/sysvipc/shm').read().count('\\n'))")
    first = run(reusing, tmp_path / "a", "", image=PYTHON_BASE, command=["python3", "-c", make])
    assert first.ok and first.stdout_path.read_text() == "True 2\n", first.message
    second = run(reusing, tmp_path / "b", "", image=PYTHON_BASE,
                 command=["python3", "-c", "print(open('/proc/sysvipc/shm').read().count('\\n'))"])
    assert second.ok and second.stdout_path.read_text() == "1\n", second.message  # a new IPC namespace
    reusing.wait_removed()
    assert len(_reused(docker_client, reusing.owner)) == 1


def test_a_reused_container_keeps_checkpoints_where_the_worker_looks_and_stops_like_docker_stop(
        reusing: Sandbox, docker_client: Any, tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    folder.chmod(0o777)
    (folder / "state").write_text("3")
    (folder / "state").chmod(0o666)
    seen: list[bool] = []

    def stopper() -> None:
        time.sleep(1.0)  # the app has set its trap
        for _ in range(100):
            if reusing.stop_reused("t-1", grace=5.0):
                seen.append((folder / "state").exists())  # the run's folder is at the task's path while it runs
                return
            time.sleep(0.05)
    thread = threading.Thread(target=stopper, daemon=True)
    thread.start()
    paused = run(reusing, tmp_path / "a", "trap 'echo $(( $(cat /checkpoint/state) + 1 )) > /checkpoint/state; exit 0' "
                 "TERM; echo $TASKNET_CHECKPOINT_DIR; sleep 30 & wait", checkpoint_dir=folder)
    thread.join(10)
    assert seen == [True]
    assert paused.killed_from_outside and paused.run_seconds < 10, paused.message  # SIGTERM, then its own exit
    assert paused.stdout_path.read_text() == "/checkpoint\n"
    assert (folder / "state").read_text() == "4\n"  # written by the app on SIGTERM, back in the task's folder
    resumed = run(reusing, tmp_path / "b", "cat /checkpoint/state; echo 5 > /checkpoint/state", checkpoint_dir=folder)
    assert resumed.ok and resumed.stdout_path.read_text() == "4\n", resumed.message
    assert (folder / "state").read_text() == "5\n"
    assert reusing.runs == {"reused": 2, "fresh": 0}  # stopped by SIGTERM and clean: the container served again


def test_the_app_sees_exactly_its_environment_and_arguments(sandbox: Sandbox, tmp_path: Path) -> None:
    """The same in a fresh container and through a reused one's wrapper: no variable the shell sets (PWD, SHLVL),
    argv[0] as given, arguments with spaces and quotes whole."""
    result = run(sandbox, tmp_path / "env", "", command=["env"], env={"PWD": "/custom", "A": "x y"})
    assert sorted(result.stdout_path.read_text().splitlines()) == [
        "A=x y", "HOME=/tmp", "HOSTNAME=tasknet", "PATH=/bin", "PWD=/custom", "TASKNET_INPUT=/in",
        "TASKNET_OUTPUT=/out"]
    args = run(sandbox, tmp_path / "args", "", command=["sh", "-c", 'printf "%s|" "$0" "$@"', "zero", "a b", "'\"", ""])
    assert args.stdout_path.read_text() == "zero|a b|'\"||"
    signals = run(sandbox, tmp_path / "signals", "", command=["grep", "^Sig[BIC]", "/proc/self/status"])
    zero = "0" * 16  # nothing blocked, ignored or caught: the launcher's own trap is not the app's
    assert signals.stdout_path.read_text() == f"SigBlk:\t{zero}\nSigIgn:\t{zero}\nSigCgt:\t{zero}\n"


def test_the_worker_sees_from_outside_whether_an_apps_process_is_left(reusing: Sandbox, docker_client: Any,
                                                                       tmp_path: Path) -> None:
    """The check that does not trust the wrapper's own line (worker/_reuse.py): the container's cgroup on this
    host shows the app's processes while it runs, none once the run is over."""
    from worker import _reuse

    seen: list[bool | None] = []

    def look() -> None:
        for _ in range(100):
            for cid in _reused(docker_client, reusing.owner):
                seen.append(_reuse.processes_left(cid, "65534"))
            if True in seen:
                return
            time.sleep(0.05)
    thread = threading.Thread(target=look, daemon=True)
    thread.start()
    result = run(reusing, tmp_path / "a", "sleep 2")
    thread.join(10)
    assert result.ok and True in seen, seen
    (cid,) = _reused(docker_client, reusing.owner)
    assert _reuse.processes_left(cid, "65534") is False and reusing.runs == {"reused": 1, "fresh": 0}
