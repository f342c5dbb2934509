"""Workers hand EIP-712 signed results, commits and reveals to a relayer (the relayer package over HTTP), which lands
them in batched transactions; real anvil, kubo and Docker, the relayer served by uvicorn on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from oracle.market import Market
from oracle.protocol import Eip712Domain, sign_results, task_id
from relayer import Relayer, create_app
from tasknet._cli_indexer import _serve_in_thread
from tasknet._devnet import free_port
from tests.integration.test_worker import fund_worker, running, settings, wait_for
from tests.market_helpers import ETHER, fund, post_job, register_app
from worker._daemon import Worker
from worker._journal import Journal, Step


@pytest.fixture
def relay(w3, accounts, market) -> Iterator[tuple[Relayer, str]]:
    relayer = Relayer(w3, market, accounts[9], interval=0.5)
    port = free_port()
    server, thread = _serve_in_thread(create_app(relayer), "127.0.0.1", port)
    relayer.start()
    try:
        yield relayer, f"http://127.0.0.1:{port}"
    finally:
        relayer.stop()
        server.should_exit = True
        thread.join(10)


def senders(w3, market: Market, event: str, job_id: int) -> set[str]:
    logs = getattr(market.contract.events, event)().get_logs(from_block=0)
    return {w3.eth.get_transaction(e["transactionHash"])["from"] for e in logs if e["args"]["taskId"] >> 32 == job_id}


def test_single_replica_results_are_relayed_in_batches(anvil, w3, accounts, market, ipfs, docker_client,
                                                       echo_digest, relay, tmp_path) -> None:
    relayer, url = relay
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[4])
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=4)
    # the relayer's answers may be slow on a loaded machine: wait for them (a slow answer is not a dead relayer)
    worker = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "w", relay_url=url, relay_timeout_s=300,
                             policy={"max_concurrent": 4}), docker_client=docker_client)
    with running(worker):
        wait_for(lambda: market.job_record(job_id).finished == 4, what="4 relayed results")
        wait_for(lambda: all(Journal(tmp_path / "w" / "journal.db").get(job_id, i).step is Step.DONE
                             for i in range(4)), what="the journal to see them")
    assert senders(w3, market, "ResultSubmitted", job_id) == {accounts[9].address}
    assert relayer.stats["sent"] == 4 and relayer.stats["transactions"] <= 4 and relayer.stats["rejected"] == 0
    assert market.balance(accounts[4].address) == 5 * ETHER + 4 * ETHER // 10  # paid, not the relayer
    assert all(Journal(tmp_path / "w" / "journal.db").get(job_id, i).data["relayed"] for i in range(4))


def test_replicated_commits_and_reveals_are_relayed(anvil, w3, accounts, market, ipfs, docker_client,
                                                    echo_digest, relay, tmp_path) -> None:
    _, url = relay
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    for a in (accounts[4], accounts[5]):
        fund_worker(w3, market, a)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=2, replication=2)
    workers = [Worker(settings(anvil, ipfs, market, a, tmp_path / a.address, relay_url=url),
                      docker_client=docker_client) for a in (accounts[4], accounts[5])]
    with running(*workers):
        wait_for(lambda: market.job_record(job_id).finished == 2, timeout=150, what="2 finalized tasks")
    assert senders(w3, market, "ResultCommitted", job_id) == {accounts[9].address}
    assert senders(w3, market, "ResultRevealed", job_id) == {accounts[9].address}
    finals = [e for e in market.contract.events.TaskFinalized().get_logs(from_block=0) if e["args"]["taskId"] >> 32
              == job_id]
    assert len(finals) == 2 and all(e["args"]["winners"] == 2 for e in finals)
    for a in (accounts[4], accounts[5]):
        assert market.worker_record(a.address).slashes == 0 and market.worker_record(a.address).locked == 0


def test_a_dead_relayer_costs_nothing_the_worker_sends_itself(anvil, w3, accounts, market, ipfs, docker_client,
                                                              echo_digest, tmp_path) -> None:
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[4])
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=2)
    dead = f"http://127.0.0.1:{free_port()}"
    worker = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "w", relay_url=dead),
                    docker_client=docker_client)
    with running(worker):
        wait_for(lambda: market.job_record(job_id).finished == 2, what="2 results sent by the worker itself")
    assert senders(w3, market, "ResultSubmitted", job_id) == {accounts[4].address}


def test_relayer_refuses_forged_and_malformed_messages_with_the_reason(w3, accounts, market, ipfs, docker_client,
                                                                       echo_digest, relay) -> None:
    from oracle.tx import TxSender

    relayer, url = relay
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund_worker(w3, market, accounts[4])
    me = TxSender(w3, accounts[4], extra_abis=market.error_abis)
    me.transact(market.contract.functions.registerWorker(2, 4096, 0, 1))
    me.transact(market.contract.functions.stake(5 * ETHER))
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1)
    tid = task_id(job_id, 0)
    me.transact(market.contract.functions.claim(tid))
    domain = Eip712Domain(chain_id=market.chain_id, verifying_contract=market.address)
    digest, cid = "0x" + "11" * 32, "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    forged = sign_results(accounts[5], domain, tid, tid, [digest], [cid])  # not the lease holder's key
    body = {"start_task_id": tid, "first_task_id": tid, "result_digests": [digest], "result_cids": [cid],
            "signature": "0x" + forged.hex()}
    r = httpx.post(f"{url}/v1/results", json=body)
    assert r.status_code == 422 and r.json()["detail"]["error"] == "MarketplaceInvalidSignature"
    r = httpx.post(f"{url}/v1/results", json={**body, "result_digests": ["0x12"]})
    assert r.status_code == 422 and "32 bytes" in r.text
    good = sign_results(accounts[4], domain, tid, tid, [digest], [cid])
    r = httpx.post(f"{url}/v1/results", json={**body, "signature": "0x" + good.hex()})
    assert r.status_code == 202
    mid = r.json()["id"]
    wait_for(lambda: httpx.get(f"{url}/v1/messages/{mid}").json()["status"] == "sent", what="the batch")
    assert market.job_record(job_id).finished == 1 and relayer.stats["rejected"] == 1


def test_a_relayer_that_sits_on_messages_is_overtaken_before_the_deadline(anvil, w3, accounts, market, ipfs,
                                                                         docker_client, echo_digest, tmp_path) -> None:
    """The relayer accepts but never lands (no flush loop); the worker's margin is larger than the claim, so it
    sends the result itself on the next poll. The late batch is then refused: nothing is paid twice."""
    relayer = Relayer(w3, market, accounts[9])
    port = free_port()
    server, thread = _serve_in_thread(create_app(relayer), "127.0.0.1", port)
    try:
        app_id = register_app(w3, market, accounts[2], echo_digest)
        fund(w3, market, accounts[1], 10 * ETHER)
        fund_worker(w3, market, accounts[4])
        job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1)
        worker = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "w", relay_url=f"http://127.0.0.1:{port}",
                                 relay_margin_s=100_000), docker_client=docker_client)
        with running(worker):
            wait_for(lambda: market.job_record(job_id).finished == 1, what="the worker's own submit")
        assert relayer.queued() == 1
        assert senders(w3, market, "ResultSubmitted", job_id) == {accounts[4].address}
        assert relayer.flush() == 0 and relayer.statuses[1].status == "rejected"
        assert len(market.contract.events.ResultSubmitted().get_logs(from_block=0, argument_filters={
            "taskId": task_id(job_id, 0)})) == 1
    finally:
        server.should_exit = True
        thread.join(10)
