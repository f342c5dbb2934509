"""The auditor's verifier from public data alone (logs, calldata, EIP-712 signatures, IPFS content): passes on
honest tasks, fails naming the check on a tampered archive or a forged signature; also through the CLI and API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from test_indexer_helpers import E18, SALT, Traffic, current, make_result, traffic

from indexer import Indexer, Verifier, _db, create_app, make_engine
from indexer._verify import _callback_check, signature_check, strict_majority
from oracle._chain import deploy
from oracle.events import DecodedEvent
from oracle.protocol import reveal_message, task_id
from tasknet.cli import cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def t(w3, accounts, deployment) -> Traffic:
    return traffic(w3, accounts, deployment)


def _verifier(t: Traffic, ipfs) -> Verifier:
    return Verifier(t.w3, t.market.address, ipfs)


def _setup(t: Traffic, det_file: str = "") -> int:
    app = t.app(deterministic_file=det_file)
    t.fund(t.requester, 50 * 10**18)
    for w in t.workers[:3]:
        t.enroll(w)
    return app


def test_honest_replicated_task_passes_every_check_including_the_archive(t: Traffic, ipfs, tmp_path) -> None:
    app = _setup(t)
    packed = make_result(tmp_path, b"frame 1")
    cid = ipfs.add_file(packed.archive_path)
    job = t.post(app, r=3)
    tid = task_id(job, 0)
    t.replicated(tid, t.workers[:3], [packed.digest_bytes] * 3, [cid] * 3, relayed=(True, False, True))
    report = _verifier(t, ipfs).task(tid)
    assert report.status == "finalized" and report.passed, [c for c in report.checks if not c.passed]
    names = [c.name for c in report.checks]
    assert names.count("commit_authorized") == 3 and names.count("commitment") == 3
    for name in ("majority", "reward", "slashes", "archive_digest"):
        assert name in names
    archive = next(c for c in report.checks if c.name == "archive_digest")
    assert archive.passed is True and archive.evidence["computed"] == "0x" + packed.digest
    relayed = [c for c in report.checks if c.name == "commit_authorized" and "relayer" in c.evidence]
    assert [c.evidence["signer"] for c in relayed] == [t.workers[0].address, t.workers[2].address]
    assert all(c.evidence["relayer"] == t.relayer.address for c in relayed)


def test_single_replica_result_is_checked_against_the_apps_deterministic_file(t: Traffic, ipfs, tmp_path) -> None:
    app = _setup(t, det_file="digest.txt")
    packed = make_result(tmp_path, b"pixels", det_file="digest.txt")
    cid = ipfs.add_file(packed.archive_path)
    job = t.post(app, n=2)
    start = task_id(job, 0)
    t.claim_range(start, 2, t.workers[0])
    t.relay_results(start, start, t.workers[0], [packed.digest_bytes] * 2, [cid] * 2)
    report = _verifier(t, ipfs).job(job)
    assert report.passed and [r.id for r in report.tasks] == [start, start + 1]
    archive = next(c for c in report.tasks[0].checks if c.name == "archive_digest")
    assert archive.passed and "deterministic file" in archive.detail
    signed = next(c for c in report.tasks[1].checks if c.name == "result_authorized")
    assert signed.passed and signed.evidence["signer"] == t.workers[0].address


def test_an_archive_that_does_not_hash_to_the_digest_fails_the_archive_check(t: Traffic, ipfs, tmp_path,
                                                                              anvil) -> None:
    app = _setup(t)
    honest = make_result(tmp_path, b"the real output")
    forged = make_result(tmp_path, b"something else")
    job = t.post(app, n=2)
    good, bad = task_id(job, 0), task_id(job, 1)
    for tid, cid in ((good, ipfs.add_file(honest.archive_path)), (bad, ipfs.add_file(forged.archive_path))):
        t.claim(tid, t.workers[1])
        t.submit(tid, t.workers[1], honest.digest_bytes, cid)  # the second worker lies about its upload

    v = _verifier(t, ipfs)
    assert v.task(good).passed
    report = v.task(bad)
    assert not report.passed
    assert [c.name for c in report.failed] == ["archive_digest"]
    assert report.failed[0].evidence["computed"] == "0x" + forged.digest

    # the CLI exits non-zero naming the check, and zero on the honest task; --json is machine-readable
    common = ["--rpc-url", anvil.rpc_url, "--marketplace", t.market.address, "--from-block", "0",
              "--ipfs-api", ipfs.api_url]
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "task", str(good), "--json", *common])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["passed"] is True
    failed = subprocess.run([sys.executable, "-m", "tasknet.cli", "audit", "job", str(job), *common], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert failed.returncode == 1
    assert "AuditFailed" in failed.stderr and "archive_digest" in failed.stderr

    # the API serves the same report
    engine = make_engine(str(tmp_path / "a.db"))
    Indexer(engine, t.w3, t.market.address).sync()
    client = TestClient(create_app(engine, verifier=v))
    body = client.get(f"/audit/tasks/{bad}").json()
    assert body["passed"] is False
    assert [c["name"] for c in body["checks"] if c["passed"] is False] == ["archive_digest"]
    assert client.get(f"/audit/jobs/{job}").json()["passed"] is False
    assert TestClient(create_app(engine)).get(f"/audit/tasks/{bad}").status_code == 503


def test_a_forged_relayed_signature_fails_the_authorization_check(t: Traffic) -> None:
    worker, forger = t.workers[0], t.workers[1]
    tid = task_id(7, 0)
    msg = reveal_message(t.domain, tid, b"\x01" * 32, SALT, "bafyX")
    from eth_account import Account

    forged = Account.sign_message(msg, forger.key).signature
    check = signature_check("reveal_authorized", msg, forged, worker.address)
    assert check.passed is False and check.evidence["signer"] == forger.address
    assert "not the worker" in check.detail
    genuine = Account.sign_message(msg, worker.key).signature
    assert signature_check("reveal_authorized", msg, genuine, worker.address).passed
    garbage = signature_check("reveal_authorized", msg, b"\x00" * 65, worker.address)
    assert garbage.passed is False and garbage.evidence["signer"] is None


def test_majority_follows_the_contracts_strict_majority_rule() -> None:
    assert strict_majority(["a", "b", "a"], 3) == ("a", 2)
    assert strict_majority(["a", "b", "c"], 3) == (None, 0)
    assert strict_majority(["a", "a"], 4) == (None, 0)  # 2 of a target of 4 is not strict
    assert strict_majority(["b", "a", "a", "a"], 5) == ("a", 3)


def test_unknown_job_fails_loudly(t: Traffic) -> None:
    report = Verifier(t.w3, t.market.address, None).task(task_id(999, 0))
    assert not report.passed and report.failed[0].name == "job_exists"


def test_a_job_audit_runs_in_the_background_of_the_api_with_progress_and_paged_findings(t: Traffic, ipfs, tmp_path,
                                                                                        anvil) -> None:
    """POST /audit/jobs/ID/runs starts the audit (202, or 200 with the run still under way), GET /audit/runs/RUN
    reports done/total then the verdict and counts, /audit/runs/RUN/findings pages the task reports (all, or the
    failed ones); tasknet audit job --indexer follows such a run and prints the report a local audit gives."""
    import threading
    import time

    app = _setup(t)
    honest, forged = make_result(tmp_path, b"the real output"), make_result(tmp_path, b"something else")
    good_cid, bad_cid = ipfs.add_file(honest.archive_path), ipfs.add_file(forged.archive_path)
    job = t.post(app, n=6)
    for i in range(6):
        tid = task_id(job, i)
        t.claim(tid, t.workers[i % 2])
        t.submit(tid, t.workers[i % 2], honest.digest_bytes, bad_cid if i == 4 else good_cid)
    engine = make_engine(str(tmp_path / "a.db"))
    Indexer(engine, t.w3, t.market.address).sync()
    v = _verifier(t, ipfs)
    release = threading.Event()
    task_report = v._task_report

    def slow_report(*args, **kw):  # the first task waits until the test saw the run under way
        release.wait(30)
        return task_report(*args, **kw)

    v._task_report = slow_report  # type: ignore[method-assign]
    client = TestClient(create_app(engine, verifier=v))
    started = client.post(f"/audit/jobs/{job}/runs")
    assert started.status_code == 202 and started.headers["location"] == f"/audit/runs/{started.json()['run_id']}"
    run = started.json()
    assert run["state"] == "running" and run["passed"] is None
    again = client.post(f"/audit/jobs/{job}/runs")  # the same job while its run is under way: that run
    assert again.status_code == 200 and again.json()["run_id"] == run["run_id"]
    release.set()
    deadline = time.monotonic() + 60
    seen = []
    while run["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
        run = client.get(run["links"]["self"]).json()
        seen.append((run["done"], run["total"]))
    assert run["state"] == "done" and (run["done"], run["total"]) == (6, 6) and seen == sorted(seen)
    assert run["passed"] is False and run["failed_tasks"] == 1
    assert run["counts"] == {"succeeded": 6, "failed_runs": 0, "failed": 0, "cancelled": 0, "unsettled": 0}
    pages = [client.get(run["links"]["findings"], params={"limit": 4, "offset": o}).json() for o in (0, 4)]
    assert [p["total"] for p in pages] == [6, 6]
    assert [r["id"] for p in pages for r in p["items"]] == [task_id(job, i) for i in range(6)]
    failed = client.get(run["links"]["findings"], params={"failed": "true"}).json()
    assert failed["total"] == 1 and failed["items"][0]["id"] == task_id(job, 4)
    assert [c["name"] for c in failed["items"][0]["checks"] if c["passed"] is False] == ["archive_digest"]
    assert [r["run_id"] for r in client.get(f"/audit/jobs/{job}/runs").json()] == [run["run_id"]]
    assert client.get("/audit/runs/999").status_code == 404
    assert TestClient(create_app(engine)).post(f"/audit/jobs/{job}/runs").status_code == 503

    # the CLI through a real indexer API: the same report as a local audit, exit 1 naming the check
    from tasknet._cli_indexer import _serve_in_thread
    from tasknet._devnet import free_port

    v._task_report = task_report  # type: ignore[method-assign]
    port = free_port()
    server, thread = _serve_in_thread(create_app(engine, verifier=v), "127.0.0.1", port)
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        remote = subprocess.run([sys.executable, "-m", "tasknet.cli", "audit", "job", str(job), "--json",
                                 "--indexer", f"http://127.0.0.1:{port}"], cwd=ROOT, capture_output=True, text=True,
                                timeout=120, check=False)
    finally:
        server.should_exit = True
        thread.join(10)
    assert remote.returncode == 1 and "archive_digest" in remote.stderr
    local = v.job(job).model_dump(mode="json")
    assert json.loads(remote.stdout) == json.loads(json.dumps(local, default=str))


def test_every_terminal_outcome_of_a_callback_job_is_delivered_mirrored_and_verified(t: Traffic, tmp_path) -> None:
    """A job calling back ExampleConsumer: a result, a cancelled range and a close after the deadline each reach the
    callback once; the mirror records the notices, the verifier's ``callbacks`` check counts them."""
    app = _setup(t)
    consumer = deploy(t.w3, "ExampleConsumer", t.market.address, sender=t.owner)
    p = (app, 0, 5, 1, 10**18, t.now() + 1000, 100, 1, 512, 0, 0, 0, consumer.address, "bafyinputs", b"")
    t.tx(t.market.functions.postJob(p), t.requester)
    job = int(t.market.functions.jobCount().call())
    t.claim(task_id(job, 0), t.workers[0])
    t.submit(task_id(job, 0), t.workers[0])
    t.claim(task_id(job, 1), t.workers[1])  # leased, never finished: refunded at the close
    t.tx(t.market.functions.cancelTasks(job, 3, 2), t.requester)
    t.w3.provider.make_request("evm_increaseTime", [1001])  # type: ignore[arg-type]
    t.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    t.tx(t.market.functions.closeJob(job), t.relayer)
    assert consumer.functions.delivered().call() == 1 and consumer.functions.ranges().call() == 2

    report = Verifier(t.w3, t.market.address, None).job(job)
    check = next(c for c in report.checks if c.name == "callbacks")
    assert check.passed is True and check.evidence == {"outcomes": 3, "refused": 0, "missing": []}, check

    engine = make_engine(str(tmp_path / "cb.db"))
    Indexer(engine, t.w3, t.market.address).sync()
    rows = {r["task_id"]: r for r in current(engine, _db.tasks, job_id=job)}
    assert rows[task_id(job, 0)]["callback_ok"] is True  # onTaskResult
    assert rows[task_id(job, 1)]["callback_ok"] is True  # covered by the close's onTasksEnded
    with engine.connect() as conn:
        names = [r[0] for r in conn.execute(_db.events.select().with_only_columns(_db.events.c.name)
                                            .where(_db.events.c.job_id == job))]
    assert names.count("TasksEndedDelivered") == 2


def test_the_callback_check_names_an_outcome_without_a_delivery() -> None:
    def ev(name: str, tx: str, **args: object) -> DecodedEvent:
        return DecodedEvent(name=name, args=args, address="0x" + "11" * 20, block_number=1, block_hash="0x",
                            tx_hash=tx, log_index=0)

    cb = "0x" + "cc" * 20
    tid = task_id(7, 0)
    events = [ev("TaskFailed", "0xa", taskId=tid, refund=1),
              ev("CallbackDelivered", "0xa", taskId=tid, callback=cb, success=False),
              ev("TasksCancelled", "0xb", jobId=7, firstIndex=1, count=2, refund=2),
              ev("JobClosed", "0xc", jobId=7, refund=3, appPaid=0, datasetPaid=0)]
    check = _callback_check(7, 4, cb, events)
    assert check.passed is False
    assert check.evidence["missing"] == ["cancel of tasks 1+2", "close refunding unsettled tasks"]
    assert check.evidence["refused"] == 1


# -- credibility mode -----------------------------------------------------------------------------
def _by_name(report, name: str) -> list:
    return [c for c in report.checks if c.name == name]


def test_a_credibility_job_with_a_spot_check_a_dispute_and_a_failure_is_verified(t: Traffic) -> None:
    """Credibility mode from public data alone: every ReplicaWanted recomputed (a spot check picked by the commit
    block's hash, two disputes, a round of workers not credible enough), the accepted groups against the jobs'
    confidence with verified counts replayed from the events, winners and slashes, the unused replicas' refund read
    from the requester's balance, and a task failed at its cap."""
    ids = t.credibility_scenario()
    v = Verifier(t.w3, t.market.address, None)
    reports = {k: v.job(ids[k]) for k in ("checked", "alone", "capped")}
    for k, r in reports.items():
        assert r.passed, (k, [(c.name, c.detail) for c in r.failed])
    lie, check = reports["checked"].tasks
    wanted = _by_name(lie, "replica_wanted")
    assert [(c.passed, c.evidence["moment"], c.evidence["expected_reason"]) for c in wanted] == [
        (True, "spot check", 1), (True, "settlement", 2), (True, "settlement", 2)]
    assert wanted[0].evidence["picked"] is True and wanted[0].evidence["verified"] == 2
    group = _by_name(lie, "credibility")[0]
    assert group.passed and group.evidence["votes"] == 3 and group.evidence["dispute"] is True
    assert group.evidence["credibility_ppb"] == 64 * 10**9 // 69  # 4^3 / (1 + 4^3 + 4): every replica weighs new
    assert [r["verified"] for r in group.evidence["replicas"]] == [2, 2, 0, 0]  # vet, partner, h2, h3 at that moment
    slashes = _by_name(lie, "slashes")[0]
    assert slashes.passed and slashes.evidence["expected"] == [t.workers[0].address]
    refund = _by_name(lie, "unused_refund")[0]
    assert refund.passed is True and refund.evidence["unused"] == str(2 * E18)  # 4 replicas used of 6
    assert [c.evidence["moment"] for c in _by_name(check, "replica_wanted")] == ["spot check"]
    alone = reports["alone"].tasks[0]
    assert _by_name(alone, "spot_check")[0].passed is True
    assert _by_name(alone, "unused_refund")[0].evidence["unused"] == str(3 * E18)
    capped = reports["capped"].tasks[0]
    assert capped.status == "failed"
    assert [c.evidence["moment"] for c in _by_name(capped, "replica_wanted")] == ["last commit"]
    assert _by_name(capped, "credibility")[0].evidence["credibility_ppb"] == 81 * 10**9 // 82
    assert _by_name(capped, "refund")[0].passed
    # the replayed verified counts are the contract's
    ledger = v._ledger({w.address for w in t.workers})
    now = (int(t.w3.eth.block_number) + 1, 0)
    assert [ledger.at(w.address, now) for w in t.workers] == \
        [t.market.functions.getWorker(w.address).call()[11] for w in t.workers] == [0, 4, 1, 1, 1]


def test_verifying_against_other_credibility_settings_than_the_jobs_fails_naming_the_check(t: Traffic) -> None:
    """The verifier reads the job's confidence and f from its JobCredibility event; fed other values (the only
    thing faked here), it flags the accepted groups (confidence) and the recomputed ReplicaWanted values (f)."""
    from oracle.credibility import CredibilitySettings

    ids = t.credibility_scenario()
    lie = task_id(ids["checked"], 0)
    stricter = Verifier(t.w3, t.market.address, None)
    stricter._settings[ids["checked"]] = CredibilitySettings(990_000_000, 2000, 10_000)
    report = stricter.task(lie)
    assert [c.name for c in report.failed] == ["credibility"]
    assert "against the confidence 990000000" in report.failed[0].detail
    other_f = Verifier(t.w3, t.market.address, None)
    other_f._settings[ids["checked"]] = CredibilitySettings(900_000_000, 1000, 10_000)
    report = other_f.task(lie)
    assert {c.name for c in report.failed} == {"replica_wanted"}  # 9^3 / (1 + 9^3 + 9) still passes 0.9
    assert all(c.passed is False for c in _by_name(report, "replica_wanted"))
    spot = _by_name(report, "replica_wanted")[0]
    assert spot.passed is False and spot.evidence["expected_ppb"] == 950_000_000  # 1 - 0.1/2, not the 0.9 emitted
