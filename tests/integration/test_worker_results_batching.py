"""The worker holds its finished R = 1 results and sends them together (worker/_batching.py), on a real anvil, kubo
and Docker engine: several results per transaction, never more than ``batching.max_results``; a held result is in
the journal, so a kill -9 while it is held loses nothing; SIGTERM sends the held results at once."""

from __future__ import annotations


from oracle.market import Market
from oracle.protocol import task_id
from tests.integration.test_worker import running, settings, stop_and_read, wait_for, worker_process
from tests.market_helpers import ETHER, fund, post_job, register_app
from worker._daemon import Worker
from worker._journal import Journal, Step

#: held as long as the other rules allow: every batch below is made by the rule under test, not by the clock
LONG_HOLD = {"hold_s": 600.0, "hold_claim_fraction": 0.5}
#: and a lease per task, claimed only for a free slot (the path of a worker behind a relayer or on a cluster):
#: leases of several tasks, claimed ahead, are tested in tests/integration/test_worker_leases.py
ONE_BY_ONE = {**LONG_HOLD, "claim_ahead": 0}


def results_per_tx(market: Market, job_id: int) -> dict[str, list[int]]:
    """The job's results on chain, grouped by the transaction that carried them: {tx hash: [task ids]}."""
    out: dict[str, list[int]] = {}
    for e in market.contract.events.ResultSubmitted().get_logs(from_block=0):
        if e["args"]["taskId"] >> 32 == job_id:
            out.setdefault(e["transactionHash"].hex(), []).append(int(e["args"]["taskId"]))
    return out


def slow_bag(ipfs, tasks: int, seconds: int) -> dict:
    data_cid = ipfs.add_bytes(b"slow\n")
    return {"count": tasks, "template": {"args": ["sleep", str(seconds)]},
            "common_inputs": [{"uri": f"ipfs://{data_cid}", "path": "data.txt"}]}


def test_results_finishing_close_together_share_transactions(anvil, w3, accounts, market, ipfs, docker_client,
                                                             echo_digest, tmp_path) -> None:
    """Six tasks, two at a time, results held up to 3: every result is paid, no transaction carries more than 3,
    and they went in at most 3 transactions (one by one would be 6); the full batch of 3 went without waiting."""
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund(w3, market, accounts[4], 10 * ETHER)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=6)
    worker = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "w", policy={"max_concurrent": 2},
                             batching={**LONG_HOLD, "max_results": 3}), docker_client=docker_client)
    with running(worker):
        wait_for(lambda: market.job_record(job_id).finished == 6, timeout=150, what="6 finished tasks")
    per_tx = results_per_tx(market, job_id)
    assert sorted(t for ts in per_tx.values() for t in ts) == [task_id(job_id, i) for i in range(6)]
    sizes = sorted(len(ts) for ts in per_tx.values())
    assert sizes[-1] == 3 and len(sizes) <= 3, sizes
    assert all(r.step is Step.DONE and r.data["outcome"] == "paid" for r in worker.journal.all())
    info = market.worker_record(accounts[4].address)
    assert info.locked == 0 and info.reputation == 6


def test_a_held_result_survives_kill_9_and_goes_on_chain_after_restart(anvil, w3, accounts, market, ipfs,
                                                                      docker_client, echo_digest, tmp_path) -> None:
    """Task 0's result is uploaded and held while task 1 runs; the worker is killed (-9) then. Restarted, it
    submits task 0's result as journaled (not run again), finishes task 1, and nobody is slashed."""
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund(w3, market, accounts[6], 10 * ETHER)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=2, max_run=300, doc=slow_bag(ipfs, 2, 4))
    cfg = settings(anvil, ipfs, market, accounts[6], tmp_path / "w", policy={"max_concurrent": 1},
                   batching=ONE_BY_ONE)
    path = tmp_path / "w" / "journal.db"

    def holding() -> bool:
        if not path.exists():
            return False
        recs = {r.task_index: r for r in Journal(path).unfinished()}
        return 0 in recs and 1 in recs and Step.UPLOADED in (recs[0].step, recs[1].step)

    proc = worker_process(cfg, tmp_path / "cfg.json")
    try:
        wait_for(holding, what="one result held while the other task runs")
        proc.kill()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert market.job_record(job_id).finished == 0  # held, not sent
    held = next(r for r in Journal(path).unfinished() if r.step is Step.UPLOADED)
    restarted = worker_process(cfg, tmp_path / "cfg.json")
    try:
        wait_for(lambda: market.job_record(job_id).finished == 2, what="both results on chain after the restart")
    finally:
        restarted.terminate()
        restarted.wait(60)
    sent = {e["args"]["taskId"]: e["args"] for e in market.contract.events.ResultSubmitted().get_logs(from_block=0)}
    mine = sent[task_id(job_id, held.task_index)]
    assert "0x" + bytes(mine["resultDigest"]).hex() == held.data["digest"] and mine["resultCID"] == held.data["cid"]
    history = [s for s, _ in Journal(path).history(job_id, held.task_index)]
    assert history.count(Step.RAN) == 1 and history.count(Step.CLAIMED) == 1  # not run again
    info = market.worker_record(accounts[6].address)
    assert info.slashes == 0 and info.locked == 0 and info.stake == 5 * ETHER


def test_sigterm_sends_the_held_results_at_once(anvil, w3, accounts, market, ipfs, docker_client, echo_digest,
                                                tmp_path) -> None:
    """SIGTERM while a result is held and the next task runs: the worker claims nothing more, lets the running
    task finish, and sends both results in one transaction before it exits (the hold of 600 s does not apply)."""
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund(w3, market, accounts[7], 10 * ETHER)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=3, max_run=300, doc=slow_bag(ipfs, 3, 3))
    cfg = settings(anvil, ipfs, market, accounts[7], tmp_path / "w", policy={"max_concurrent": 1},
                   batching=ONE_BY_ONE, drain_timeout=60)
    path = tmp_path / "w" / "journal.db"
    proc = worker_process(cfg, tmp_path / "cfg.json")
    logs = stop_and_read(proc, lambda: path.exists() and len(Journal(path).unfinished()) == 2 and any(
        r.step is Step.UPLOADED for r in Journal(path).unfinished()), what="one result held, the next running")
    assert '"reason": "drain"' in logs, logs[-3000:]
    per_tx = results_per_tx(market, job_id)
    assert [len(ts) for ts in per_tx.values()] == [2]
    assert market.job_record(job_id).finished == 2 and not Journal(path).unfinished()
    assert market.worker_record(accounts[7].address).locked == 0
    assert not market.is_taken(task_id(job_id, 2))
