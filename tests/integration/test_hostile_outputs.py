"""Hostile outputs on the real Docker engine (issue #20): whatever an app writes ends as a published result or a
deterministic failure result, never as an exception that makes the worker retry until its claim expires.

Each hostile app runs through the worker's own produce/publish step (``Pipeline._produce``: confined run, copy
out, judgement, canonical archive) twice, in two task folders, and both runs must give the same reason and the
same digest, as two honest replicas would.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from oracle.archive import unpack_result
from oracle.images import BUSYBOX_BASE, PYTHON_BASE, build_busybox_base, build_python_base
from oracle.market import AppView, JobView
from oracle.status import parse_status
from worker import Limits, Reason, RunSpec, Sandbox
from worker._journal import Journal, Step
from worker._pipeline import Pipeline
from worker._settings import WorkerSettings

MiB = 1 << 20


class FakeIpfs:
    """Keeps what the pipeline uploads, by a made-up CID."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def add_file(self, path: Path) -> str:
        data = Path(path).read_bytes()
        cid = "bafy" + hashlib.sha256(data).hexdigest()[:32]
        self.blobs[cid] = data
        return cid


@pytest.fixture(scope="module")
def sandbox(docker_client: Any) -> Iterator[Sandbox]:
    build_busybox_base(docker_client)
    owner = f"pytest-{uuid.uuid4().hex[:8]}"
    with Sandbox(docker_client, owner=owner) as box:
        yield box
    label = {"label": f"tasknet.sandbox={owner}"}
    assert docker_client.containers.list(all=True, filters=label) == []
    assert docker_client.volumes.list(filters=label) == []


class Harness:
    """A worker pipeline on the real engine, with the chain and IPFS replaced by what these tests need."""

    def __init__(self, docker_client: Any, sandbox: Sandbox, tmp: Path) -> None:
        settings = WorkerSettings(private_key="0x" + "11" * 32, state_dir=tmp, output_cap_mb=1,
                                  memory_per_task_mb=64)
        self.ipfs = FakeIpfs()
        self.journal = Journal(tmp / "journal.db")
        self.pipeline = Pipeline(settings, SimpleNamespace(), SimpleNamespace(address="0x" + "22" * 20),  # type: ignore[arg-type]
                                 self.ipfs, None, sandbox, docker_client, self.journal)  # type: ignore[arg-type]
        self.runs = 0
        execute = self.pipeline._execute

        def counted(*args: Any) -> Any:
            self.runs += 1
            return execute(*args)
        self.pipeline._execute = counted  # type: ignore[method-assign]
        self.docker = docker_client
        self.index = 0

    def produce(self, script: str, *, image: str = BUSYBOX_BASE, deterministic_file: str = "",
                max_run: int = 20) -> tuple[str, str, dict[str, bytes]]:
        """Run ``script`` as a task; return (digest, status.txt, the archive's members by name)."""
        self.index += 1
        job = JobView(job_id=7, requester="0x" + "33" * 20, app_id=1, dataset_id=0, num_tasks=100, replication=2,
                      reward=1, deadline=2**40, max_run_seconds=max_run, cores=1, memory_mb=64, gpus=0,
                      arch_mask=1, min_reputation=0, callback="0x" + "00" * 20, inputs_cid="bafy-none",
                      encryption_key="")
        digest = self.docker.images.get(image).id
        app = AppView(app_id=1, owner="0x" + "44" * 20, image_ref=image, image_digest=digest,
                      metadata_uri="ipfs://none", price=0, is_public=True, deterministic_file=deterministic_file)
        self.pipeline._prepare_inputs = lambda *a: (["sh", "-c", script], {})  # type: ignore[method-assign]
        rec = self.journal.record(job.job_id, self.index, Step.CLAIMED, replica=0)
        rec = self.pipeline._produce(job, app, rec)  # must not raise, whatever the app wrote
        assert rec.step is Step.UPLOADED
        data = self.ipfs.blobs[rec.data["cid"]]
        members: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for m in tar:
                f = tar.extractfile(m) if m.isfile() else None
                members[m.name] = f.read() if f is not None else b""
        return rec.data["digest"], members.get("logs/status.txt", b"").decode(), members


@pytest.fixture
def harness(docker_client: Any, sandbox: Sandbox, tmp_path: Path) -> Harness:
    return Harness(docker_client, sandbox, tmp_path)


def twice(h: Harness, script: str, **kw: Any) -> tuple[str, dict[str, bytes]]:
    """Run the hostile app as two replicas would (two task folders, reused slots); both agree."""
    first = h.produce(script, **kw)
    second = h.produce(script, **kw)
    assert first[0] == second[0], (first[1], second[1])
    assert first[1] == second[1]
    return first[1], first[2]


NOTHING_OUT = sorted(["output", "logs", "logs/status.txt", "logs/stderr.txt", "logs/stdout.txt"])


@pytest.mark.parametrize(("script", "shown", "why"), [
    ("echo x > 'a\\b'", "'a\\\\b'", "a backslash"),
    ("printf x > \"$(printf 'evil\\033[2Jname')\"", "'evil\\x1b[2Jname'", "control character \\x1b"),
    ("printf x > \"$(printf 'bad\\377')\"", "'bad\\xff'", "not UTF-8"),
    ("mkdir sub && printf x > \"sub/$(printf 'new\\nline')\"", "'sub/new\\nline'", "control character \\n"),
])
@pytest.mark.reliability(kind="attack", name="app names an output file with a backslash, an escape or bad bytes",
                         how="a backslash, an ESC sequence, a byte that is not UTF-8, a line break in a name: a "
                             "published failure result output-unsafe naming the entry escaped; same digest twice")
def test_a_name_that_is_not_portable_is_a_failure_result(harness: Harness, script: str, shown: str,
                                                         why: str) -> None:
    status, members = twice(harness, f"echo fine > ok.txt; {script}; echo done")
    parsed = parse_status(status)
    assert parsed.reason == "output-unsafe" and parsed.exit_code == 0
    assert shown in (parsed.error or "") and why in (parsed.error or ""), status
    assert status.isprintable() or all(line.isprintable() for line in status.splitlines())
    assert sorted(members) == NOTHING_OUT  # none of the output: the failure holds the logs and the status
    assert members["logs/stdout.txt"] == b"done\n"


@pytest.mark.reliability(kind="attack", name="app exits 0 without its deterministic file",
                         how="an app declaring result.txt exits 0 without it: failure result "
                             "missing-deterministic-file (status only); same digest twice")
def test_exit_zero_without_the_declared_deterministic_file_is_a_failure_result(harness: Harness) -> None:
    status, members = twice(harness, "date +%s%N > noise.txt; echo $RANDOM", deterministic_file="result.txt")
    parsed = parse_status(status)
    assert parsed.reason == "missing-deterministic-file" and parsed.exit_code == 0
    assert "'result.txt'" in (parsed.error or "")
    assert sorted(members) == ["logs", "logs/status.txt", "output"]  # no noise from a non-reproducible app
    ok_status, _, _ = harness.produce("echo same > result.txt; date +%s%N > noise", deterministic_file="result.txt")
    assert ok_status == "0x" + hashlib.sha256(b"same\n").hexdigest()


def test_a_deterministic_file_outside_the_output_is_a_failure_result(harness: Harness) -> None:
    status, _ = twice(harness, "echo x > /tmp/x", deterministic_file="../etc/passwd")
    assert parse_status(status).reason == "missing-deterministic-file"
    assert "not a relative path inside the output folder" in status


@pytest.mark.reliability(kind="attack", name="app nests its output 2,000 folders deep",
                         how="mkdir -p of 2,000 levels: failure result output-too-deep (limit 128), in well under "
                             "a second of extraction, same digest twice")
def test_two_thousand_nested_folders_are_a_failure_result(harness: Harness) -> None:
    deep = "d/" * 2000
    status, members = twice(harness, f"mkdir -p {deep} && echo bottom > {deep}f")
    parsed = parse_status(status)
    assert parsed.reason == "output-too-deep", status
    assert "129 levels deep" in (parsed.error or "") and "128 levels" in (parsed.error or "")
    assert sorted(members) == NOTHING_OUT


@pytest.mark.reliability(kind="attack", name="app writes a path longer than the tar can archive",
                         how="20 levels of 250-byte names (paths past PATH_MAX): failure result output-too-deep")
def test_a_path_past_path_max_is_a_failure_result(harness: Harness) -> None:
    name = "n" * 250
    status, _ = twice(harness, f"for i in $(seq 20); do mkdir {name} && cd -P {name} || exit 9; done; echo x > f")
    assert parse_status(status).reason == "output-too-deep", status


@pytest.mark.reliability(kind="attack", name="app writes exactly its output cap, then one byte more",
                         how="1 MiB into a 1 MiB cap is a success; 1 MiB + 1 byte is output-too-large")
def test_an_output_exactly_at_the_cap_is_accepted_and_one_byte_more_is_not(harness: Harness) -> None:
    status, members = twice(harness, f"head -c {MiB} /dev/zero > f")
    assert parse_status(status).reason == "ok", status
    assert len(members["output/f"]) == MiB
    status, members = twice(harness, f"head -c {MiB + 1} /dev/zero > f")
    parsed = parse_status(status)
    assert parsed.reason == "output-too-large" and parsed.error == "the output is larger than the output cap allows"
    assert sorted(members) == NOTHING_OUT


def test_a_flood_is_too_large_whatever_the_exit(harness: Harness) -> None:
    status, _ = twice(harness, "yes > flood; exit 3")
    assert parse_status(status).reason == "output-too-large"


@pytest.mark.reliability(kind="attack", name="app writes more entries than the cap",
                         how="10,001 empty files (cap 10,000): failure result output-too-many-files; exactly 10,000 "
                             "is a success")
def test_too_many_files_is_a_failure_result_and_exactly_the_cap_is_not(harness: Harness) -> None:
    make = "i=1; while [ $i -le {n} ]; do : > f$i; i=$((i+1)); done"
    cap = Limits().output_files
    status, members = twice(harness, make.format(n=cap + 1))
    assert parse_status(status).reason == "output-too-many-files", status
    assert sorted(members) == NOTHING_OUT
    _, status, members = harness.produce(make.format(n=cap))
    assert parse_status(status).reason == "ok" and len(members) == cap + 5


@pytest.mark.reliability(kind="attack", name="app exits 137 by itself",
                         how="exit 137, and a SIGKILL the app sends itself: the app's answer, run once, published "
                             "as nonzero-exit 137 (only a kill the engine recorded and our limits did not send is "
                             "run again)")
@pytest.mark.parametrize("script", ["echo x > f; exit 137", "echo x > f; sh -c 'kill -9 $$'; exit $?"])
def test_an_app_exiting_137_by_itself_runs_once(harness: Harness, script: str) -> None:
    status, members = twice(harness, script)
    parsed = parse_status(status)
    assert (parsed.reason, parsed.exit_code, parsed.error) == ("nonzero-exit", 137, "the app exited with code 137")
    assert harness.runs == 2  # one run per replica
    assert members["output/f"] == b"x\n"


def test_symlinks_and_sockets_are_listed_in_skipped_txt(harness: Harness, docker_client: Any) -> None:
    build_python_base(docker_client)
    script = ("python3 -c \"import os, socket; os.symlink('/etc/passwd', 'leak'); os.mkdir('d'); "
              "socket.socket(socket.AF_UNIX).bind('d/sock'); open('real', 'w').write('r')\"")
    status, members = twice(harness, script, image=PYTHON_BASE)
    assert parse_status(status).reason == "ok"
    assert members["logs/skipped.txt"].decode().splitlines() == [
        "d/sock: socket, not copied", "leak: symbolic link to '/etc/passwd', not copied"]
    assert sorted(m for m in members if m.startswith("output")) == ["output", "output/d", "output/real"]


@pytest.mark.reliability(kind="attack", name="app leaves extended attributes and modes on its reused output slot",
                         how="task 1 sets user.x on /out and on a file, and chmod 700 /out; task 2 in the same slot "
                             "sees neither (the volume's root is root's, sticky: only the app's files carry them, "
                             "and they are removed)")
def test_a_reused_slot_carries_no_xattr_mode_or_owner_change(docker_client: Any, tmp_path: Path) -> None:
    build_python_base(docker_client)
    owner = f"pytest-{uuid.uuid4().hex[:8]}"
    probe = ("import os\nst = os.stat('/out')\nprint(oct(st.st_mode), st.st_uid, st.st_gid, os.listxattr('/out'), "
             "sorted(os.listdir('/out')))\n")
    hostile = ("import os\n"
               "for what, f in (('xattr', lambda: os.setxattr('/out', 'user.x', b'1')),"
               " ('chmod', lambda: os.chmod('/out', 0o700)), ('chown', lambda: os.chown('/out', 65534, 65534))):\n"
               "    try:\n        f(); print(what, 'done')\n    except OSError as e:\n        print(what, e.errno)\n"
               "open('/out/f', 'w').write('x'); os.setxattr('/out/f', 'user.y', b'2')\n"
               "os.mkdir('/out/d'); os.setxattr('/out/d', 'user.z', b'3')\n" + probe)

    def run(box: Sandbox, name: str, code: str) -> str:
        spec = RunSpec(image=PYTHON_BASE, command=["python3", "-c", code], output_dir=tmp_path / name / "out",
                       log_dir=tmp_path / name / "logs", limits=Limits(output_bytes=MiB, memory_bytes=64 * MiB))
        result = box.run(spec)
        assert result.ok, result.message
        return result.stdout_path.read_text()

    with Sandbox(docker_client, owner=owner, prewarm=False, max_idle=1) as box:
        fresh = run(box, "fresh", probe)
        first = run(box, "first", hostile)
        assert first.splitlines()[:3] == ["xattr 1", "chmod 1", "chown 1"]  # EPERM: /out is not the app's
        second = run(box, "second", probe)
        assert second == fresh == "0o41775 0 65534 [] []\n"
    assert docker_client.volumes.list(filters={"label": f"tasknet.sandbox={owner}"}) == []


def test_unpack_result_reads_back_a_failure_result(harness: Harness, tmp_path: Path) -> None:
    """What a requester downloads for a refused output unpacks cleanly and says why."""
    harness.produce("echo x > 'a\\b'")
    archive = tmp_path / "r.tar"
    (data,) = harness.ipfs.blobs.values()
    archive.write_bytes(data)
    unpack_result(archive, tmp_path / "u")
    assert parse_status((tmp_path / "u" / "logs" / "status.txt").read_text()).reason == "output-unsafe"
    assert Reason("output-unsafe") is Reason.OUTPUT_UNSAFE


# --- end to end: an honest worker daemon on the session devnet meets hostile apps at R = 1 --------------------
HOSTILE_APP = r"""#!/bin/sh
# test app: writes what its first argument names into /out
case "$1" in
  backslash) echo x > '/out/a\b' ;;
  escape) printf x > "/out/$(printf 'evil\033[2Jname')" ;;
  deep) cd /out && mkdir -p "$(seq 2000 | sed 's/.*/d/' | tr '\n' '/')" ;;
  nodet) echo noise > /out/noise ;;
  itself) echo x > /out/x; exit 137 ;;
  link) echo real > /out/real; ln -s /etc/passwd /out/leak ;;
esac
"""


@pytest.fixture(scope="module")
def hostile_digest(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    from oracle.images import build_app_image, image_digest

    build_busybox_base(docker_client)
    ctx = tmp_path_factory.mktemp("hostile-app")
    (ctx / "app.sh").write_text(HOSTILE_APP)
    (ctx / "app.sh").chmod(0o755)
    (ctx / "Dockerfile").write_text(f"FROM {BUSYBOX_BASE}\nCOPY app.sh /app.sh\nENTRYPOINT [\"/app.sh\"]\n")
    build_app_image(docker_client, ctx, "tasknet-test/hostile:1")
    return image_digest(docker_client, "tasknet-test/hostile:1")


@pytest.mark.reliability(kind="attack", name="hostile apps against an honest worker daemon (R = 1)",
                         how="a backslash name, an escape sequence, 2,000 nested folders, a missing deterministic "
                             "file, exit 137, a symlink, run by two honest workers: every task settles with a "
                             "published result (a failure confirmed by the second worker), both are paid for each "
                             "and never slashed, and their task folders are removed")
def test_an_honest_worker_survives_hostile_outputs_with_its_stake_intact(anvil, w3, accounts, market, ipfs,
                                                                        docker_client, hostile_digest,
                                                                        tmp_path) -> None:
    from oracle.protocol import task_id
    from tests.integration.test_worker import _status_of, running, settings, wait_for
    from tests.market_helpers import ETHER, fund, post_job, register_app
    from worker._daemon import Worker

    app = register_app(w3, market, accounts[2], hostile_digest)
    det_app = register_app(w3, market, accounts[2], hostile_digest, deterministic_file="result.txt")
    fund(w3, market, accounts[1], 10 * ETHER)
    fund(w3, market, accounts[4], 10 * ETHER)
    fund(w3, market, accounts[5], 10 * ETHER)
    kinds = ["backslash", "escape", "deep", "itself", "link"]
    job = post_job(w3, market, accounts[1], ipfs, app, tasks=len(kinds),
                   doc={"tasks": [{"args": [k]} for k in kinds]})
    det_job = post_job(w3, market, accounts[1], ipfs, det_app, tasks=1, doc={"tasks": [{"args": ["nodet"]}]})
    pair = (accounts[4], accounts[5])
    workers = [Worker(settings(anvil, ipfs, market, a, tmp_path / f"w{i}"), docker_client=docker_client)
               for i, a in enumerate(pair)]
    with running(*workers):
        wait_for(lambda: market.job_record(job).finished == len(kinds) and market.job_record(det_job).finished == 1,
                 timeout=240, what="every hostile task settled")
    for a in pair:
        info = market.worker_record(a.address)
        assert (info.stake, info.locked, info.slashes) == (5 * ETHER, 0, 0)
    # every task's reward went to the two honest workers (a confirmed failure's is split between them)
    assert sum(market.balance(a.address) for a in pair) == 10 * ETHER + (len(kinds) + 1) * ETHER // 10
    assert len(market.contract.events.FailureConfirmed().get_logs(from_block=0)) == len(kinds)  # all but "link"
    # the job's audit (one pass over its events) and result get (one pass over its result events) see the
    # confirmed failures as settled results, fetched from the reports of their digest
    from indexer import Verifier
    from oracle.client import Client
    report = Verifier(w3, market.address, ipfs).job(job)
    assert report.passed, [(t.id, [c for c in t.checks if c.passed is False]) for t in report.tasks]
    assert report.counts["unsettled"] == 0 and report.counts["failed_runs"] == len(kinds) - 1
    assert any(c.name == "failure_confirmed" for t in report.tasks for c in t.checks)
    client = Client(w3, accounts[1], market.address, ipfs)
    got = client.results.download(job, tmp_path / "results")
    assert [r.index for r in got] == list(range(len(kinds))) and all(r.verified for r in got)
    assert [r.outcome for r in got] == ["failed"] * (len(kinds) - 1) + ["ok"]
    reasons = {k: _status_of(ipfs, market, task_id(job, i), tmp_path) for i, k in enumerate(kinds)}
    assert "reason: output-unsafe" in reasons["backslash"] and "'a\\\\b'" in reasons["backslash"]
    assert "reason: output-unsafe" in reasons["escape"] and "\x1b" not in reasons["escape"]
    assert "reason: output-too-deep" in reasons["deep"]
    assert "reason: nonzero-exit\nexit_code: 137\n" in reasons["itself"]
    assert "reason: ok" in reasons["link"]
    assert (tmp_path / f"u{task_id(job, 4)}" / "logs" / "skipped.txt").read_text() == (
        "leak: symbolic link to '/etc/passwd', not copied\n")
    assert "reason: missing-deterministic-file" in _status_of(ipfs, market, task_id(det_job, 0), tmp_path)
    for i in range(len(pair)):  # folders removed
        tasks = tmp_path / f"w{i}" / "tasks"
        assert not tasks.exists() or sorted(p.name for p in tasks.iterdir() if p.is_dir()) == []
