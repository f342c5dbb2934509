"""Credibility mode run by real worker daemons (anvil, kubo, Docker): new workers replicate until their results
are credible, a lying worker among them is outvoted in every dispute it enters, and no wrong result is accepted."""

from __future__ import annotations

from collections import Counter

import pytest
from web3.logs import DISCARD

from indexer import Verifier
from oracle.market import Market
from oracle.tx import TxSender
from tests.integration.test_worker import fund_worker, running, settings, wait_for
from tests.market_helpers import ETHER, fund, register_app
from worker._daemon import Worker

CONF, FAULT = 990_000_000, 1000  # 0.99 assuming 10 % faulty: three new workers agreeing are enough (729/730)


def post_credible(w3, market: Market, requester, ipfs, app_id: int, tasks: int, cap: int, spot_bps: int) -> int:
    data_cid = ipfs.add_bytes(b"hello\n")
    doc = {"count": tasks, "template": {"args": ["task", "{index}"]},
           "common_inputs": [{"uri": f"ipfs://{data_cid}", "path": "data.txt"}]}
    params = (app_id, 0, tasks, cap, ETHER // 10, market.chain_time() + 3600, 30, 1, 0, 0, 0, 0,
              "0x" + "00" * 20, ipfs.add_json(doc), b"")
    sender = TxSender(w3, requester, extra_abis=market.error_abis)
    receipt = sender.transact(market.contract.functions.postCredibilityJob(params, (CONF, FAULT, spot_bps)))
    return int(market.contract.events.JobPosted().process_receipt(receipt, errors=DISCARD)[0]["args"]["jobId"])


@pytest.mark.reliability(kind="attack", name="a lying worker among new workers in credibility mode",
                         how="4 honest worker daemons and one that changes every output run a 6-task job at "
                             "confidence 0.99: every task is finalized with the honest digest, the liar is slashed in "
                             "each dispute it enters, honest workers never are")
def test_workers_run_a_credibility_job_and_a_liar_gains_nothing(anvil, w3, accounts, market, ipfs, docker_client,
                                                                 echo_digest, tmp_path) -> None:
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 20 * ETHER)
    honest, liar = accounts[4:8], accounts[8]
    for a in (*honest, liar):
        fund_worker(w3, market, a)
    job_id = post_credible(w3, market, accounts[1], ipfs, app_id, tasks=6, cap=5, spot_bps=0)
    workers = [Worker(settings(anvil, ipfs, market, a, tmp_path / f"h{i}"), docker_client=docker_client)
               for i, a in enumerate(honest)]
    workers.append(Worker(settings(anvil, ipfs, market, liar, tmp_path / "liar", fault="wrong-result"),
                          docker_client=docker_client))
    with running(*workers):
        wait_for(lambda: market.job_record(job_id).settled == 6, timeout=400, what="6 settled tasks")
    job = market.job_record(job_id)
    finals = {e["args"]["taskId"]: e["args"] for e in market.contract.events.TaskFinalized().get_logs(from_block=0)}
    assert job.finished == 6, f"{6 - job.finished} task(s) failed"
    reveals = market.contract.events.ResultRevealed().get_logs(from_block=0)
    by_liar = [e["args"] for e in reveals if e["args"]["worker"] == liar.address]
    for r in by_liar:  # the liar's digest never won
        assert finals[r["taskId"]]["resultDigest"] != r["resultDigest"]
    honest_digests = {(e["args"]["taskId"], e["args"]["resultDigest"]) for e in reveals
                      if e["args"]["worker"] != liar.address}
    assert all((tid, f["resultDigest"]) in honest_digests for tid, f in finals.items())
    for a in honest:
        info = market.worker_record(a.address)
        assert info.slashes == 0 and info.locked == 0
    assert market.worker_record(liar.address).slashes == len(by_liar)
    used = Counter(e["args"]["taskId"] for e in reveals)
    disputed = {r["taskId"] for r in by_liar}
    # new workers need three agreeing replicas (fewer once they hold verified results); a dispute needs four
    # honest replicas against the liar
    assert all(used[tid] <= 3 for tid in finals if tid not in disputed)
    assert all(used[tid] == 5 for tid in disputed)
    assert market.contract.functions.jobEscrow(job_id).call() == 0
    assert all(market.worker_record(a.address).verified >= 1 for a in honest)
    # the auditor's verifier re-derives every outcome from public data (replayed verified counts, each ReplicaWanted,
    # the accepted groups, the slashes, the refunds, the archives on IPFS)
    report = Verifier(w3, market.address, ipfs).job(job_id)
    assert report.passed, [(r.id, c.name, c.detail) for r in report.tasks for c in r.failed]
    assert sum(1 for r in report.tasks for c in r.checks if c.name == "replica_wanted") == len(
        market.contract.events.ReplicaWanted().get_logs(from_block=0))
    assert disputed, "the liar entered no task: nothing was tested"


def test_trusted_daemons_finish_tasks_alone_and_open_their_spot_checks(anvil, w3, accounts, market, ipfs,
                                                                       docker_client, echo_digest, tmp_path) -> None:
    """Two daemons earn a record on an R = 2 job (10 verified results each: credible alone at 0.99 assuming 10 %
    faulty), then finish a credibility job through credible leases (a lease, one commitRange and one revealRange
    for several tasks), and on a job whose spot checks are always on, turn each lease into a check chunk whose check
    lane the other daemon runs (a task claimed alone gets a check replica)."""
    from tests.market_helpers import post_job
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 20 * ETHER)
    pair = accounts[4:6]
    for a in pair:
        fund_worker(w3, market, a)
    warm = post_job(w3, market, accounts[1], ipfs, app_id, tasks=10, replication=2)
    workers = [Worker(settings(anvil, ipfs, market, a, tmp_path / f"w{i}", policy={"max_concurrent": 3},
                              batching={"hold_s": 600.0, "hold_claim_fraction": 0.5}), docker_client=docker_client)
               for i, a in enumerate(pair)]
    with running(*workers):
        wait_for(lambda: market.job_record(warm).finished == 10, timeout=200, what="the warm-up job")
        assert [market.worker_record(a.address).verified for a in pair] == [10, 10]
        alone = post_credible(w3, market, accounts[1], ipfs, app_id, tasks=6, cap=4, spot_bps=0)
        wait_for(lambda: market.job_record(alone).finished == 6, timeout=200, what="the credibility job")
        checked = post_credible(w3, market, accounts[1], ipfs, app_id, tasks=3, cap=4, spot_bps=10_000)
        wait_for(lambda: market.job_record(checked).finished == 3, timeout=200, what="the spot-checked job")
    finals = {e["args"]["taskId"]: e["args"] for e in market.contract.events.TaskFinalized().get_logs(from_block=0)}
    # credible alone, each daemon leases tasks several at a time: one commitment and one reveal per lease, each task
    # final at its reveal (no per-task claim, commit or reveal)
    opened = {e["args"]["taskId"]: e for e in market.contract.events.ResultSubmitted().get_logs(from_block=0)
              if e["args"]["taskId"] >> 32 == alone}
    # (a task one daemon takes alone when no second one is free beside it goes the per-task way: a lone replica)
    alone_finals = {t for t, f in finals.items() if t >> 32 == alone and f["winners"] == 1}
    assert sorted(set(opened) | alone_finals) == [(alone << 32) | i for i in range(6)]
    assert not set(opened) & alone_finals
    ranges = [e["args"] for e in market.contract.events.RangeCommitted().get_logs(from_block=0)
              if e["args"]["startTaskId"] >> 32 == alone]
    assert ranges and sum(r["count"] for r in ranges) == len(opened) and len(ranges) < len(opened), ranges
    assert all(finals[(checked << 32) | i]["winners"] == 2 for i in range(3))
    # a lease the spot check picked is checked whole, as a second lane (checkLease: the other daemon's lane); a task
    # claimed alone is checked by a second replica
    leased = {t for e in market.contract.events.LeaseChecked().get_logs(from_block=0)
              for t in range(e["args"]["startTaskId"], e["args"]["startTaskId"] + e["args"]["count"])}
    wanted = [e["args"] for e in market.contract.events.ReplicaWanted().get_logs(from_block=0)]
    assert not leased & {w["taskId"] for w in wanted}
    assert sorted([(t, 1) for t in leased] + [(w["taskId"], w["reason"]) for w in wanted]) == \
        [((checked << 32) | i, 1) for i in range(3)]
    assert [market.worker_record(a.address).verified for a in pair] == [13, 13]  # the checks verified both
    assert all(market.worker_record(a.address).slashes == 0 for a in pair)
    reports = {}
    for job in (warm, alone, checked):  # the spot checks the daemons ran, verified from public data alone
        reports[job] = report = Verifier(w3, market.address, ipfs).job(job)
        assert report.passed, [(r.id, c.name, c.detail) for r in report.tasks for c in r.failed]
    # the credible leases' own checks ran and passed: the root rebuilt from each reveal, the worker credible alone,
    # no spot check skipped; the sealed tasks' first ReplicaWanted is their lease's spot check
    by_task = {r.id: {c.name: c.passed for c in r.checks} for job in (alone, checked) for r in reports[job].tasks}
    for tid in opened:
        assert all(by_task[tid].get(n) is True for n in ("lease", "range_commitment", "range_entry",
                                                         "credible_alone", "spot_check")), by_task[tid]
    # each lease of the checked job was checked whole: its draw, its commitment as lane 0, the lanes' roots, one
    # list settling every task at once, and the pair credible together
    checked_leases = [e["args"] for e in market.contract.events.RangeCommitted().get_logs(from_block=0)
                      if e["args"]["startTaskId"] >> 32 == checked]
    assert checked_leases and leased
    for r in checked_leases:
        for tid in range(r["startTaskId"], r["startTaskId"] + r["count"]):
            assert all(by_task[tid].get(n) is True for n in ("lease_check", "commit_authorized", "lane_root",
                                                             "lane_entry", "lane_settle", "credibility")), by_task[tid]
