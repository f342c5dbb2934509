"""docs/FORMATS.md against what the worker really publishes.

Result archives made by the worker's own produce/publish step (``Pipeline._produce``: a confined run on the real
Docker engine, the copy out, the judgement, the canonical archive, the encryption) and by worker daemons on the
devnet (digests on chain, archives on IPFS, sealed to the requester) are unpacked as a requester would, then rebuilt
from the unpacked ``output/`` and ``logs/`` folders by scripts/result_archive.js, an implementation in Node with no
Python in it: it must give the same bytes, hence the digest the worker committed to.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from nacl.bindings import crypto_box_open

from oracle.archive import decrypt_with, generate_keypair, unpack_result
from oracle.images import BUSYBOX_BASE, build_busybox_base
from oracle.market import AppView, JobView
from oracle.status import format_status, parse_status
from worker import Sandbox
from worker._journal import Journal, Step
from worker._pipeline import Pipeline
from worker._settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
NODE_PACKER = ROOT / "scripts" / "result_archive.js"

#: an output with nested folders, an executable, an empty file, non-ASCII names, names past the 100-byte ustar
#: field (pax headers), a file over several tar records, and what the worker never copies (a link, a fifo)
TRICKY = r"""
mkdir -p a/b/c && echo deep > a/b/c/f.txt
mkdir a-b && echo x > a-b/x
: > empty
printf '#!/bin/sh\necho hi\n' > run.sh && chmod 755 run.sh
printf e > "$(printf 'caf\303\251.txt')"
printf s > "$(printf '\360\237\231\202')"
L=$(head -c 94 /dev/zero | tr '\0' L); echo long > "$L"
E=$(head -c 93 /dev/zero | tr '\0' E); mkdir "$E" && echo in > "$E/f"
N=$(head -c 60 /dev/zero | tr '\0' n); mkdir "$N" && echo x > "$N/$N"
yes tasknet | head -c 70000 > big
ln -s a/b link
mkfifo fifo
echo out; echo err >&2
"""


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
    with Sandbox(docker_client, owner=f"pytest-{uuid.uuid4().hex[:8]}") as box:
        yield box


class Harness:
    """The worker's pipeline on the real engine; the chain and IPFS replaced by what these tests need."""

    def __init__(self, docker_client: Any, sandbox: Sandbox, tmp: Path) -> None:
        settings = WorkerSettings(private_key="0x" + "11" * 32, state_dir=tmp, output_cap_mb=4, memory_per_task_mb=64)
        self.ipfs = FakeIpfs()
        self.journal = Journal(tmp / "journal.db")
        self.pipeline = Pipeline(settings, SimpleNamespace(), SimpleNamespace(address="0x" + "22" * 20),  # type: ignore[arg-type]
                                 self.ipfs, None, sandbox, docker_client, self.journal)  # type: ignore[arg-type]
        self.image = docker_client.images.get(BUSYBOX_BASE).id
        self.index = 0

    def produce(self, script: str, *, deterministic_file: str = "", encryption_key: str = "") -> tuple[str, bytes]:
        """Run ``script`` as a task; return (the digest committed to, 64 hex digits; the bytes uploaded)."""
        self.index += 1
        job = JobView(job_id=9, requester="0x" + "33" * 20, app_id=1, dataset_id=0, num_tasks=100, replication=2,
                      reward=1, deadline=2**40, max_run_seconds=30, cores=1, memory_mb=64, gpus=0, arch_mask=1,
                      min_reputation=0, callback="0x" + "00" * 20, inputs_cid="bafy-none",
                      encryption_key=encryption_key)
        app = AppView(app_id=1, owner="0x" + "44" * 20, image_ref=BUSYBOX_BASE, image_digest=self.image,
                      metadata_uri="ipfs://none", price=0, is_public=True, deterministic_file=deterministic_file)
        self.pipeline._prepare_inputs = lambda *a: (["sh", "-c", script], {})  # type: ignore[method-assign]
        rec = self.journal.record(job.job_id, self.index, Step.CLAIMED, replica=0)
        rec = self.pipeline._produce(job, app, rec)
        assert rec.step is Step.UPLOADED
        return rec.data["digest"].removeprefix("0x"), self.ipfs.blobs[rec.data["cid"]]


@pytest.fixture
def harness(docker_client: Any, sandbox: Sandbox, tmp_path: Path) -> Harness:
    return Harness(docker_client, sandbox, tmp_path / "worker")


def node_rebuild(archive: bytes, tmp: Path, deterministic_file: str | None = None) -> tuple[dict[str, Any], Path]:
    """Unpack ``archive`` as a requester does, rebuild it in Node from the folders; (Node's answer, the folder)."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "published.tar").write_bytes(archive)
    unpack_result(tmp / "published.tar", tmp / "unpacked")
    args = ["node", str(NODE_PACKER), "pack", "--output", str(tmp / "unpacked" / "output"), "--logs",
            str(tmp / "unpacked" / "logs"), "--write", str(tmp / "rebuilt.tar")]
    if deterministic_file is not None:
        args += ["--deterministic-file", deterministic_file]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp / "rebuilt.tar").read_bytes() == archive, "Node rebuilt other bytes than the worker published"
    result: dict[str, Any] = json.loads(done.stdout)
    return result, tmp / "unpacked"


def node_status(reason: str, exit_code: int | None, error: str | None) -> str:
    done = subprocess.run(["node", str(NODE_PACKER), "status", reason, "" if exit_code is None else str(exit_code),
                           *([error] if error else [])], capture_output=True, timeout=60, check=True)
    return done.stdout.decode()


def test_a_result_the_worker_published_is_rebuilt_byte_for_byte(harness: Harness, tmp_path: Path) -> None:
    digest, archive = harness.produce(TRICKY)
    js, unpacked = node_rebuild(archive, tmp_path)
    assert js["digest"] == js["archive_sha256"] == digest == hashlib.sha256(archive).hexdigest()
    assert js["skipped"] == []  # the worker's copy of the output holds only folders and regular files
    logs = unpacked / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["skipped.txt", "status.txt", "stderr.txt", "stdout.txt"]
    assert (logs / "status.txt").read_text() == "reason: ok\nexit_code: 0\n" == node_status("ok", 0, None)
    assert (logs / "skipped.txt").read_text() == ("fifo: special file (a fifo), not copied\n"
                                                  "link: symbolic link to 'a/b', not copied\n")
    assert (logs / "stdout.txt").read_text() == "out\n" and (logs / "stderr.txt").read_text() == "err\n"
    out = unpacked / "output"
    assert (out / "run.sh").stat().st_mode & 0o777 == 0o755 and (out / "empty").stat().st_size == 0
    assert (out / "café.txt").read_text() == "e" and (out / "🙂").read_text() == "s"
    assert (out / ("L" * 94)).is_file() and (out / ("E" * 93) / "f").is_file()
    assert (out / "big").stat().st_size == 70000
    assert archive.count(b"././@PaxHeader") == 6  # café.txt, the emoji; L*94, E*93/, E*93/f, n*60/n*60


def test_a_deterministic_file_is_the_digest(harness: Harness, tmp_path: Path) -> None:
    script = "mkdir frames && printf 'P6 1 1 255\\n\\000\\000\\000' > frames/pixels.ppm && date +%s%N > noise"
    digest, archive = harness.produce(script, deterministic_file="frames/pixels.ppm")
    js, _ = node_rebuild(archive, tmp_path, deterministic_file="frames/pixels.ppm")
    assert digest == js["digest"] == hashlib.sha256(b"P6 1 1 255\n\x00\x00\x00").hexdigest()
    assert js["digest_source"] == "file" and js["archive_sha256"] == hashlib.sha256(archive).hexdigest() != digest


@pytest.mark.parametrize(("script", "deterministic_file", "reason", "exit_code", "error", "members"), [
    ("echo partial > p.txt; echo oops >&2; exit 3", "", "nonzero-exit", 3, "the app exited with code 3",
     ["output", "output/p.txt", "logs", "logs/status.txt", "logs/stderr.txt", "logs/stdout.txt"]),
    ("echo fine > ok.txt; echo x > 'a\\b'; echo done", "", "output-unsafe", 0,
     "the output entry 'a\\\\b' has a name that is not portable (a backslash)",
     ["output", "logs", "logs/status.txt", "logs/stderr.txt", "logs/stdout.txt"]),
    ("echo noise > noise; echo chatter", "result.txt", "missing-deterministic-file", 0,
     "the app exited with code 0 but did not write its declared deterministic file 'result.txt'",
     ["output", "logs", "logs/status.txt"]),
    ("echo x > x; exit 5", "result.txt", "nonzero-exit", 5, "the app exited with code 5",
     ["output", "logs", "logs/status.txt"]),
])
def test_a_failure_archive_is_rebuilt_with_its_documented_status(harness: Harness, tmp_path: Path, script: str,
                                                                 deterministic_file: str, reason: str,
                                                                 exit_code: int, error: str,
                                                                 members: list[str]) -> None:
    import tarfile

    digest, archive = harness.produce(script, deterministic_file=deterministic_file)
    js, unpacked = node_rebuild(archive, tmp_path)  # a failure's digest is always the archive's
    assert js["digest"] == digest
    status = (unpacked / "logs" / "status.txt").read_text()
    assert status == format_status(reason, exit_code, error) == node_status(reason, exit_code, error)
    assert parse_status(status).reason == reason
    with tarfile.open(tmp_path / "published.tar") as tar:
        assert tar.getnames() == members


def test_an_encrypted_result_is_a_sealed_box_of_the_archive_it_digests(harness: Harness, tmp_path: Path) -> None:
    secret, public = generate_keypair()
    digest, sealed = harness.produce("echo secret > s.txt", encryption_key=public.hex())
    # FORMATS.md: ephemeral public key (32 bytes) || crypto_box(archive, nonce, requester key, ephemeral secret),
    # nonce = BLAKE2b-192(ephemeral public key || requester public key)
    ephemeral, box = sealed[:32], sealed[32:]
    nonce = hashlib.blake2b(ephemeral + public, digest_size=24).digest()
    archive = crypto_box_open(box, nonce, ephemeral, secret)
    assert archive == decrypt_with(secret, sealed) and len(sealed) == len(archive) + 48
    js, _ = node_rebuild(archive, tmp_path)
    assert js["digest"] == digest == hashlib.sha256(archive).hexdigest()  # digested before sealing


# --- the devnet: digests on chain, archives on IPFS, sealed to the requester ------------------------------------
def test_digests_on_chain_match_node_rebuilds_of_what_workers_published(anvil, w3, accounts, market, ipfs,
                                                                        docker_client, echo_digest,
                                                                        tmp_path) -> None:
    """Two worker daemons run an R = 1 job sealed to the requester: a result (ResultSubmitted) and a failure both
    workers reach (FailureConfirmed). Each published archive, decrypted, is rebuilt by Node to the on-chain digest."""
    from tests.integration.test_worker import running, settings, wait_for
    from tests.market_helpers import ETHER, fund, post_job, register_app
    from worker._daemon import Worker

    secret, public = generate_keypair()
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    for a in (accounts[4], accounts[5]):
        fund(w3, market, a, 10 * ETHER)
    data_cid = ipfs.add_bytes(b"hello\n")
    doc = {"tasks": [{"args": ["task", "0"]}, {"args": ["fail"]}],
           "common_inputs": [{"uri": f"ipfs://{data_cid}", "path": "data.txt"}]}
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=2, doc=doc, encryption_key=public)
    workers = [Worker(settings(anvil, ipfs, market, a, tmp_path / f"w{i}"), docker_client=docker_client)
               for i, a in enumerate((accounts[4], accounts[5]))]
    with running(*workers):
        wait_for(lambda: market.job_record(job_id).finished == 2, timeout=240, what="a result and a confirmed failure")
    events = market.contract.events
    (result,) = events.ResultSubmitted().get_logs(from_block=0)
    (confirmed,) = events.FailureConfirmed().get_logs(from_block=0)
    reports = events.FailureReported().get_logs(from_block=0)
    published = [(result["args"]["resultDigest"], result["args"]["resultCID"], "ok")]
    published += [(r["args"]["resultDigest"], r["args"]["resultCID"], "nonzero-exit") for r in reports]
    assert {r["args"]["resultDigest"] for r in reports} == {confirmed["args"]["resultDigest"]}
    for n, (on_chain, cid, reason) in enumerate(published):
        archive = decrypt_with(secret, ipfs.cat(cid))
        js, unpacked = node_rebuild(archive, tmp_path / f"r{n}")
        assert bytes.fromhex(js["digest"]) == bytes(on_chain)
        status = parse_status((unpacked / "logs" / "status.txt").read_text())
        assert status.reason == reason
    assert (tmp_path / "r0" / "unpacked" / "output" / "result.txt").read_text() == "hello\nargs: task 0\n"
    assert (tmp_path / "r1" / "unpacked" / "logs" / "stderr.txt").read_text() == "asked to fail\n"
