"""A credible lease (credibility mode) survives ``kill -9`` between its commitment and its reveal: the restarted
worker reads the lease and its commitment on chain, journals the tasks as committed and reveals them, so the
results it had committed are the ones accepted, nothing is committed twice and its stake stays whole.

Real ``tasknet worker run`` processes on a private anvil, the session's kubo and Docker engine. The two workers
first earn a record on an R = 2 job (10 verified results each: credible alone at 0.99 assuming 10 % faulty)."""

from __future__ import annotations

import pytest
from web3.logs import DISCARD

from oracle.protocol import task_id
from oracle.tx import TxSender
from tests.market_helpers import ETHER, fund, post_job, register_app
from tests.reliability.fault_helpers import (
    PrivateChain,
    WorkerProc,
    assert_settled_once,
    assert_stake_intact,
    journal_data,
    journal_step,
    result_digest_matches,
    tails,
    wait_for,
    worker_settings,
    workers_stopped,
)
from worker._journal import Step

CRASHED = 137


def _post_credible(chain: PrivateChain, ipfs, app_id: int, tasks: int, spot_bps: int = 0) -> int:
    market = chain.market
    doc = {"count": tasks, "template": {"args": ["task", "{index}"]},
           "common_inputs": [{"uri": f"ipfs://{ipfs.add_bytes(b'hello' + bytes([10]))}", "path": "data.txt"}]}
    params = (app_id, 0, tasks, 4, ETHER // 10, market.chain_time() + 3600, 30, 1, 0, 0, 0, 0,
              "0x" + "00" * 20, ipfs.add_json(doc), b"")
    sender = TxSender(chain.w3, chain.accounts[1], extra_abis=market.error_abis)
    receipt = sender.transact(market.contract.functions.postCredibilityJob(params, (990_000_000, 1000, spot_bps)))
    return int(market.contract.events.JobPosted().process_receipt(receipt, errors=DISCARD)[0]["args"]["jobId"])


def _credible_pair(chain: PrivateChain, ipfs, echo_digest: str, tmp_path) -> tuple[int, list, WorkerProc, WorkerProc]:
    """The echo app, and two funded workers (processes A and B, stopped) that ran an R = 2 warm-up job together:
    10 verified results each, credible alone at 0.99 assuming 10 % faulty."""
    market = chain.market
    app_id = register_app(chain.w3, market, chain.accounts[2], echo_digest)
    fund(chain.w3, market, chain.accounts[1], 50 * ETHER)
    ws = [chain.new_worker() for _ in range(2)]
    for w in ws:
        fund(chain.w3, market, w, 10 * ETHER)
    a, b = (WorkerProc(worker_settings(chain, ipfs.api_url, w, tmp_path / n / "state"), tmp_path / n)
            for w, n in zip(ws, "AB", strict=True))
    warm = post_job(chain.w3, market, chain.accounts[1], ipfs, app_id, tasks=10, replication=2)
    with workers_stopped(a, b):
        a.start()
        b.start()
        wait_for(lambda: market.job_record(warm).finished == 10, 240, "the warm-up job", on_timeout=tails(a, b))
    return app_id, ws, a, b


CASES = [
    pytest.param("crash-after-claim", Step.CLAIMED, id="claim", marks=pytest.mark.reliability(
        kind="fault", name="kill -9 right after a credible lease is claimed",
        how="a worker credible alone leases 2 tasks of a credibility-mode job and exits 137 as its journal records "
            "the first of them (the second is not journaled); restarted with the same state folder it adopts the "
            "lease's other task from the chain, runs both, commits and reveals them; checks one lease, one "
            "commitment, each task paid once, stake intact")),
    pytest.param("crash-after-commit", Step.COMMITTED, id="commit", marks=pytest.mark.reliability(
        kind="fault", name="kill -9 between a credible lease's commitment and its reveal",
        how="a worker credible alone leases 2 tasks of a credibility-mode job, commits them in one root "
            "(commitRange) and exits 137 as its journal records the commit; restarted with the same state folder it "
            "reveals them (revealRange) from what the chain holds; checks one commitment, each task paid once with "
            "the committed result, stake intact")),
    pytest.param("crash-before-commit-journal", Step.UPLOADED, id="commit-unjournaled", marks=pytest.mark.reliability(
        kind="fault", name="kill -9 after a credible lease's commitment is mined, before the journal records it",
        how="a worker credible alone leases 2 tasks of a credibility-mode job, sends commitRange and exits 137 "
            "before its journal records the commit (nor its block, which the reveal must give back: the contract "
            "keeps only the seal of the root and that block); restarted with the same state folder it finds its "
            "RangeCommitted on chain and reveals; checks one commitment, each task paid once with the committed "
            "result, stake intact")),
]


@pytest.mark.parametrize(("fault", "step"), CASES)
def test_kill9_in_a_credible_lease_resumes_and_keeps_the_stake(fault_chain: PrivateChain, ipfs, docker_client,
                                                               fault_echo_digest, tmp_path, record_property,
                                                               fault: str, step: Step) -> None:
    chain, market = fault_chain, fault_chain.market
    app_id, ws, a, _b = _credible_pair(chain, ipfs, fault_echo_digest, tmp_path)
    assert [market.worker_record(w.address).verified for w in ws] == [10, 10]
    job = _post_credible(chain, ipfs, app_id, tasks=2)
    with workers_stopped(a):
        a.start(fault)
        rc = a.wait_exit(180)
        assert rc == CRASHED, f"worker A exited {rc}, not at the fault point:\n{a.tail()}"
        start = task_id(job, 0)
        held = market.contract.functions.getRangeCommit(start).call()
        before = [journal_data(a, job, i) for i in range(2)]
        if step == Step.COMMITTED:
            assert held != b"\x00" * 32, "the crash came before the range commitment was mined"
            assert journal_step(a, job, 0) == Step.COMMITTED and journal_step(a, job, 1) == Step.UPLOADED
        elif step == Step.UPLOADED:
            assert held != b"\x00" * 32, "the crash came before the range commitment was mined"
            assert journal_step(a, job, 0) == Step.UPLOADED and journal_step(a, job, 1) == Step.UPLOADED
        else:
            assert market.lease_view(start).count == 2, "the crash came before a lease of both tasks"
            assert journal_step(a, job, 0) == Step.CLAIMED and journal_step(a, job, 1) is None
        a.start()  # the same state folder: it finds the commitment on chain and reveals
        wait_for(lambda: market.job_record(job).settled == 2, 180, "the lease's reveal", on_timeout=tails(a))
        wait_for(lambda: all(journal_step(a, job, i) == Step.DONE for i in range(2)), 60,
                 "the worker to record both outcomes", on_timeout=tails(a))
    evidence = [f"A exited {rc} at {fault}", assert_settled_once(market, job, 2)]
    leases = market.contract.events.TasksClaimed().get_logs(from_block=0, argument_filters={"startTaskId": start})
    assert [(e["args"]["worker"], e["args"]["count"]) for e in leases] == [(ws[0].address, 2)], "leased again"
    commits = market.contract.events.RangeCommitted().get_logs(from_block=0, argument_filters={"startTaskId": start})
    assert [(e["args"]["worker"], e["args"]["count"]) for e in commits] == [(ws[0].address, 2)]
    subs = {e["args"]["taskId"]: e["args"] for e in market.contract.events.ResultSubmitted().get_logs(from_block=0)
            if e["args"]["taskId"] >> 32 == job}
    assert sorted(subs) == [start, start + 1]
    for i, rec in enumerate(before):  # the results committed before the crash are the ones accepted
        s = subs[start + i]
        assert s["worker"] == ws[0].address
        if step in (Step.COMMITTED, Step.UPLOADED):
            assert (s["resultCID"], "0x" + bytes(s["resultDigest"]).hex()) == (rec["cid"], rec["digest"])
        (tmp_path / f"result{i}").mkdir()
        assert result_digest_matches(ipfs, s["resultCID"], s["resultDigest"], tmp_path / f"result{i}")
    assert not [e for e in market.contract.events.ResultCommitted().get_logs(from_block=0)
                if e["args"]["taskId"] >> 32 == job], "a task of the lease went the per-task way"
    for w in ws:
        evidence.append(assert_stake_intact(market, w.address))
    record_property("reliability", "; ".join(evidence))


@pytest.mark.reliability(
    kind="fault", name="kill -9 right after a credible lease is checked whole (a check lane)",
    how="a worker credible alone leases both tasks of a credibility-mode job whose spot checks are always on, commits "
        "them, sends checkLease when the draw picks the lease, and exits 137 as its journal records the first task "
        "as the check chunk's lane (the second still a lease's); restarted with the same state folder beside a "
        "second credible worker, it finds the chunk on chain, journals the other task as its lane, and reveals once "
        "the second worker's check lane committed; checks one commitment, one check, both tasks settled once with "
        "two winners, no slash, stakes intact")
def test_kill9_after_a_lease_is_checked_resumes_as_its_lane(fault_chain: PrivateChain, ipfs, docker_client,
                                                            fault_echo_digest, tmp_path, record_property) -> None:
    chain, market = fault_chain, fault_chain.market
    app_id, ws, a, b = _credible_pair(chain, ipfs, fault_echo_digest, tmp_path)
    job = _post_credible(chain, ipfs, app_id, tasks=2, spot_bps=10_000)
    start = task_id(job, 0)
    with workers_stopped(a, b):
        a.start("crash-after-check")  # alone: it leases both tasks
        rc = a.wait_exit(180)
        assert rc == CRASHED, f"worker A exited {rc}, not at the fault point:\n{a.tail()}"
        assert market.lease_view(start).count == 0, "the lease is still a lease: the check did not land"
        assert journal_data(a, job, 0).get("check_lane") and not journal_data(a, job, 1).get("check_lane")
        b.start()
        a.start()
        wait_for(lambda: market.job_record(job).settled == 2, 240, "the check chunk to settle", on_timeout=tails(a, b))
        wait_for(lambda: all(journal_step(a, job, i) == Step.DONE for i in range(2)), 60,
                 "the worker to record both outcomes", on_timeout=tails(a))
    evidence = [f"A exited {rc} at crash-after-check", assert_settled_once(market, job, 2)]
    checks = market.contract.events.LeaseChecked().get_logs(from_block=0, argument_filters={"startTaskId": start})
    assert [(e["args"]["worker"], e["args"]["count"]) for e in checks] == [(ws[0].address, 2)]
    lanes = market.contract.events.LaneClaimed().get_logs(from_block=0, argument_filters={"startTaskId": start})
    assert sorted((e["args"]["worker"], e["args"]["lane"]) for e in lanes) == \
        sorted([(ws[0].address, 0), (ws[1].address, 1)])
    finals = [e["args"] for e in market.contract.events.TaskFinalized().get_logs(from_block=0)
              if e["args"]["taskId"] >> 32 == job]
    assert sorted(f["taskId"] for f in finals) == [start, start + 1] and {f["winners"] for f in finals} == {2}
    assert journal_data(a, job, 1).get("lane_count") == 2  # journaled as the whole chunk's lane after the restart
    for w in ws:
        evidence.append(assert_stake_intact(market, w.address))
    record_property("reliability", "; ".join(evidence))
