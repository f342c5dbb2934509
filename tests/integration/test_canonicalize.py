"""Apps whose results are not bit-identical, made to agree by a canonicalise step (oracle/canonical.py): real worker
daemons on anvil, kubo and Docker run the Monte Carlo example (examples/montecarlo) at R = 3, a bad step of each
kind ends as an agreed failure result, and the auditor's verifier re-runs the step on the published raw output."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from oracle.archive import pack_result, unpack_result
from oracle.canonical import LABEL_COMMAND, LABEL_TIMEOUT, canonical_digest, pack_canonical
from oracle.images import build_app_image, build_busybox_base, build_python_base, image_digest
from oracle.market import Market
from oracle.protocol import task_id
from tests.integration.test_worker import fund_worker, running, settings, wait_for
from tests.market_helpers import ETHER, fund, post_job, register_app
from worker._daemon import Worker

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "montecarlo"
NODE_PACKER = Path(__file__).resolve().parents[2] / "scripts" / "result_archive.js"


@pytest.fixture(scope="module")
def montecarlo_digest(docker_client) -> str:
    """examples/montecarlo built as the README says (FROM the local python base image), its image id."""
    build_python_base(docker_client)  # ~40 s on a fresh engine, instant when cached
    build_app_image(docker_client, EXAMPLE, "tasknet-examples/montecarlo:1")
    return image_digest(docker_client, "tasknet-examples/montecarlo:1")


def _revealed(market: Market, job_id: int) -> dict[int, list[tuple[str, str, str]]]:
    """(worker, digest, CID) of each revealed replica, by task index."""
    out: dict[int, list[tuple[str, str, str]]] = {}
    for e in market.contract.events.ResultRevealed().get_logs(from_block=0):
        if e["args"]["taskId"] >> 32 == job_id:
            out.setdefault(e["args"]["taskId"] & 0xFFFFFFFF, []).append(
                (e["args"]["worker"], "0x" + bytes(e["args"]["resultDigest"]).hex(), e["args"]["resultCID"]))
    return out


def _unpack(ipfs, cid: str, dest: Path) -> Path:
    archive = dest.with_suffix(".tar")
    archive.write_bytes(ipfs.cat(cid))
    unpack_result(archive, dest)
    return dest


def test_monte_carlo_replicas_agree_through_canonicalisation_at_r3(anvil, w3, accounts, market, ipfs, docker_client,
                                                                   montecarlo_digest, tmp_path) -> None:
    """Three workers run a Monte Carlo estimate seeded from os.urandom: their raw outputs all differ (without the
    step they would disagree and the minority would be slashed), their canonical outputs agree, every task
    finalizes with 3 winners and nobody is slashed; the requester's check finds the digest over the canonical part."""
    app_id = register_app(w3, market, accounts[2], montecarlo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    trio = (accounts[4], accounts[5], accounts[6])
    for a in trio:
        fund_worker(w3, market, a)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=2, replication=3,
                      doc={"tasks": [{"args": ["500"]}, {"args": ["400"]}]})
    workers = [Worker(settings(anvil, ipfs, market, a, tmp_path / a.address), docker_client=docker_client)
               for a in trio]
    with running(*workers):
        wait_for(lambda: market.job_record(job_id).finished == 2, timeout=240, what="2 finalized tasks")
    finals = [e for e in market.contract.events.TaskFinalized().get_logs(from_block=0)
              if e["args"]["taskId"] >> 32 == job_id]
    assert len(finals) == 2 and all(e["args"]["winners"] == 3 for e in finals)
    for a in trio:
        info = market.worker_record(a.address)
        assert info.slashes == 0 and info.locked == 0
    for index, replicas in _revealed(market, job_id).items():
        assert len(replicas) == 3 and len({d for _, d, _ in replicas}) == 1
        raws, plain = [], []
        for n, (_, digest, cid) in enumerate(replicas):
            got = _unpack(ipfs, cid, tmp_path / f"t{index}-r{n}")
            assert (got / "logs" / "status.txt").read_text().startswith("reason: ok\n")
            canon = (got / "output" / "estimate.json").read_text()
            assert canon == f'{{"pi": 3.14, "mean_distance": 0.765, "samples": {[500, 400][index] ** 2}}}\n'
            assert canonical_digest(got) == digest.removeprefix("0x")
            # docs/FORMATS.md section 13: the digest is section 6's archive of output/ and logs/ alone, as an
            # implementation written from the document (scripts/result_archive.js) builds it
            node = subprocess.run(["node", str(NODE_PACKER), "pack", "--output", str(got / "output"), "--logs",
                                   str(got / "logs")], capture_output=True, text=True, check=True)
            assert json.loads(node.stdout)["digest"] == digest.removeprefix("0x")
            raw = json.loads((got / "raw" / "output" / "estimate.json").read_text())
            assert abs(raw["pi"] - 3.14159) < 0.01 and abs(raw["mean_distance"] - 0.76520) < 0.0001
            raws.append(raw["mean_distance"])  # a float sum: never the same twice (pi, a count, may coincide)
            assert "pi ~" in (got / "raw" / "logs" / "stdout.txt").read_text()
            # the digest a worker would have committed without the step: the raw output's plain archive
            plain.append(pack_result(got / "raw" / "output", tmp_path / f"p{index}-{n}.tar").digest)
        assert len(set(raws)) == 3 and len(set(plain)) == 3, "raw outputs agree: the example shows nothing"


def _bad_app(docker_client, tmp: Path, name: str, command: list[str], timeout: float | None = None) -> str:
    """A busybox app that writes a small output, whose canonicalise step is ``command``; its image id."""
    build_busybox_base(docker_client)
    ctx = tmp / name
    ctx.mkdir(parents=True)
    labels = {LABEL_COMMAND: json.dumps(command)} | ({LABEL_TIMEOUT: f"{timeout:g}"} if timeout else {})
    (ctx / "Dockerfile").write_text(
        "FROM tasknet/base-busybox\n" + "".join(f"LABEL {k}={json.dumps(v)}\n" for k, v in labels.items())
        + 'ENTRYPOINT ["sh", "-c", "echo $RANDOM > /out/raw.txt"]\n')
    build_app_image(docker_client, ctx, f"tasknet-test/canon-{name}:1")
    return image_digest(docker_client, f"tasknet-test/canon-{name}:1")


@pytest.mark.reliability(kind="attack", name="canonicalise step that fails, loops or writes too much",
                         how="two real workers run apps whose canonicalise step exits 4, loops past its 2 s "
                             "timeout, or fills its output cap: each ends as an agreed failure result naming the "
                             "reason, nobody is slashed")
def test_a_bad_canonicalise_step_ends_in_an_agreed_failure_result_not_a_slash(
        anvil, w3, accounts, market, ipfs, docker_client, tmp_path) -> None:
    cases = {"fails": (["sh", "-c", "echo broken step >&2; exit 4"], None, "canonicalize-nonzero-exit"),
             "loops": (["sh", "-c", "while :; do :; done"], 2.0, "canonicalize-timeout"),
             "floods": (["sh", "-c", "yes tasknet > /out/big"], None, "canonicalize-output-too-large")}
    fund(w3, market, accounts[1], 10 * ETHER)
    jobs = {}
    for name, (command, timeout, _) in cases.items():
        app_id = register_app(w3, market, accounts[2], _bad_app(docker_client, tmp_path, name, command, timeout))
        jobs[name] = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1, replication=2,
                              doc={"tasks": [{"args": []}]})
    pair = (accounts[4], accounts[5])
    for a in pair:
        fund_worker(w3, market, a)
    workers = [Worker(settings(anvil, ipfs, market, a, tmp_path / a.address, output_cap_mb=1),
                      docker_client=docker_client) for a in pair]
    with running(*workers):
        wait_for(lambda: all(market.job_record(j).finished == 1 for j in jobs.values()), timeout=180,
                 what="the three jobs settled")
    for name, job_id in jobs.items():
        replicas = _revealed(market, job_id)[0]
        assert len({d for _, d, _ in replicas}) == 1, f"{name}: the replicas disagree"
        got = _unpack(ipfs, replicas[0][2], tmp_path / f"u-{name}")
        status = (got / "logs" / "status.txt").read_text()
        assert f"reason: {cases[name][2]}\n" in status and "canonicalise step failed" in status, status
        assert not any((got / "output").iterdir())  # no canonical output, the raw one beside it
        assert (got / "raw" / "output" / "raw.txt").is_file()
        final = [e for e in market.contract.events.TaskFinalized().get_logs(from_block=0)
                 if e["args"]["taskId"] == task_id(job_id, 0)]
        assert final and final[0]["args"]["winners"] == 2
    assert "broken step" in (tmp_path / "u-fails" / "raw" / "logs" / "canonicalize-stderr.txt").read_text()
    for a in pair:
        assert market.worker_record(a.address).slashes == 0


def test_the_verifier_reruns_the_step_on_the_raw_output(anvil, w3, accounts, market, ipfs, docker_client,
                                                        montecarlo_digest, tmp_path) -> None:
    """The auditor's verifier, given a Docker engine, re-runs the app's canonicalise step on the published raw
    output: an honest result passes; a canonical output that is not what the step makes of the raw output fails
    its ``canonicalize`` check even though its digest is consistent with its canonical part."""
    from indexer import Verifier

    app_id = register_app(w3, market, accounts[2], montecarlo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[4])
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1, doc={"tasks": [{"args": ["300"]}]})
    worker = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "w"), docker_client=docker_client)
    with running(worker):
        wait_for(lambda: market.job_record(job_id).finished == 1, what="the task finished")
    verifier = Verifier(w3, market.address, ipfs, docker_client=docker_client)
    report = verifier.task(task_id(job_id, 0))
    checks = {c.name: c for c in report.checks}
    assert report.passed, [c for c in report.checks if c.passed is False]
    assert checks["archive_digest"].passed and "canonical" in checks["archive_digest"].detail
    assert checks["canonicalize"].passed is True
    # without an engine the re-run is skipped, the digest still checked over the canonical part
    bare = {c.name: c for c in Verifier(w3, market.address, ipfs).task(task_id(job_id, 0)).checks}
    assert bare["archive_digest"].passed and bare["canonicalize"].passed is None

    # a forged result: canonical output 3.15 beside a raw output whose step gives 3.14
    cid = next(e["args"]["resultCID"] for e in market.contract.events.ResultSubmitted().get_logs(from_block=0)
               if e["args"]["taskId"] == task_id(job_id, 0))
    got = _unpack(ipfs, cid, tmp_path / "honest")
    (got / "output" / "estimate.json").write_text('{"pi": 3.15, "mean_distance": 0.765, "samples": 90000}\n')
    forged = pack_canonical(got / "output", tmp_path / "forged.tar", logs={"status.txt": got / "logs" / "status.txt"},
                            raw_out=got / "raw" / "output",
                            raw_logs={p.name: p for p in sorted((got / "raw" / "logs").iterdir())})
    app = verifier._job(job_id)[1]
    job = verifier._job(job_id)[0]
    assert app is not None and job is not None
    checks = {c.name: c for c in verifier._archive(job, app, "0x" + forged.digest, [ipfs.add_file(forged.archive_path)])}
    assert checks["archive_digest"].passed is True  # consistent with itself ...
    assert checks["canonicalize"].passed is False  # ... but not what the step makes of the raw output


def test_a_step_in_a_second_image_pinned_by_digest_and_malformed_labels(anvil, w3, accounts, market, ipfs,
                                                                        docker_client, tmp_path) -> None:
    """The step may live in a second image pinned by its id (org.tasknet.canonicalize.image): the worker runs it
    there and the verifier re-runs it there. Labels that are malformed make an input-error failure result that
    names the fix, the same for every worker."""
    from indexer import Verifier

    build_busybox_base(docker_client)
    step_ctx = tmp_path / "step"
    step_ctx.mkdir()
    (step_ctx / "Dockerfile").write_text('FROM tasknet/base-busybox\nRUN ["/bin/sh", "-c", "echo -n canon > /tag"]\n')
    step_image = build_app_image(docker_client, step_ctx, "tasknet-test/canon-step:1")
    app_ctx = tmp_path / "app"
    app_ctx.mkdir()
    command = ["sh", "-c", "cat /tag > /out/which.txt; wc -w < /in/raw.txt >> /out/which.txt"]
    (app_ctx / "Dockerfile").write_text(
        f"FROM tasknet/base-busybox\nLABEL {LABEL_COMMAND}={json.dumps(json.dumps(command))}\n"
        f"LABEL org.tasknet.canonicalize.image={step_image}\n"
        'ENTRYPOINT ["sh", "-c", "echo $RANDOM words here > /out/raw.txt"]\n')
    app_image = build_app_image(docker_client, app_ctx, "tasknet-test/canon-second:1")
    bad_ctx = tmp_path / "bad"
    bad_ctx.mkdir()
    (bad_ctx / "Dockerfile").write_text(f'FROM tasknet/base-busybox\nLABEL {LABEL_COMMAND}="canon --round 2"\n'
                                        'ENTRYPOINT ["sh", "-c", "echo hi > /out/raw.txt"]\n')
    bad_image = build_app_image(docker_client, bad_ctx, "tasknet-test/canon-malformed:1")
    fund(w3, market, accounts[1], 10 * ETHER)
    good = post_job(w3, market, accounts[1], ipfs, register_app(w3, market, accounts[2], app_image), tasks=1,
                    doc={"tasks": [{"args": []}]})
    bad = post_job(w3, market, accounts[1], ipfs, register_app(w3, market, accounts[2], bad_image), tasks=1,
                   doc={"tasks": [{"args": []}]})
    fund_worker(w3, market, accounts[4])
    worker = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "w"), docker_client=docker_client)
    reported = market.contract.events.FailureReported()
    with running(worker):
        wait_for(lambda: market.job_record(good).finished == 1, what="the good task finished")
        wait_for(lambda: any(e["args"]["taskId"] == task_id(bad, 0) for e in reported.get_logs(from_block=0)),
                 what="the malformed one reported as failed")
    cid = next(e["args"]["resultCID"] for e in market.contract.events.ResultSubmitted().get_logs(from_block=0)
               if e["args"]["taskId"] == task_id(good, 0))
    got = _unpack(ipfs, cid, tmp_path / "good")
    assert (got / "output" / "which.txt").read_text() == "canon3\n"  # /tag exists only in the step's image
    checks = {c.name: c for c in Verifier(w3, market.address, ipfs, docker_client=docker_client)
              .task(task_id(good, 0)).checks}
    assert checks["archive_digest"].passed and checks["canonicalize"].passed is True
    bad_cid = next(e["args"]["resultCID"] for e in reported.get_logs(from_block=0)
                   if e["args"]["taskId"] == task_id(bad, 0))
    status = (_unpack(ipfs, bad_cid, tmp_path / "bad") / "logs" / "status.txt").read_text()
    assert "reason: input-error" in status and "CanonicalizeInvalid" in status and "JSON array" in status
    assert market.worker_record(accounts[4].address).slashes == 0
