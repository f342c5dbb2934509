"""Tasknet on a chain that is not anvil: geth in dev mode with one block a second. Real worker daemons run an R = 1
bag and an R = 2 job with a callback contract; every transaction they send succeeds (no lost race landed on chain,
no last reveal or result batch out of gas); the indexer mirrors it and `tasknet audit` passes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from web3 import Web3

from indexer import Indexer, create_app, make_engine
from oracle import deploy
from oracle.market import Market
from oracle.protocol import task_id
from oracle.tx import TxSender
from tests.integration.test_worker import running, wait_for
from tests.market_helpers import ETHER, fund, register_app
from worker._daemon import Worker
from worker._settings import WorkerSettings


def _worker(geth: Any, market: Market, ipfs: Any, account: LocalAccount, state: Path, docker_client: Any,
            **kw: Any) -> Worker:
    fund(geth.w3, market, account, 10 * ETHER)
    s = WorkerSettings(rpc_url=geth.rpc_url, ipfs_api=ipfs.api_url, marketplace=market.address,
                       private_key="0x" + account.key.hex().removeprefix("0x"), state_dir=state, stake=5 * ETHER,
                       poll_interval=0.2, claim_backoff_max=0.3, policy={"max_concurrent": 2}, **kw)
    return Worker(s, docker_client=docker_client)


def _post(geth: Any, market: Market, ipfs: Any, requester: LocalAccount, app_id: int, *, tasks: int,
          replication: int, callback: str, credibility: tuple[int, int, int] | None = None) -> int:
    data_cid = ipfs.add_bytes(b"hello from geth\n")
    inputs = ipfs.add_json({"count": tasks, "template": {"args": ["task", "{index}"]},
                            "common_inputs": [{"uri": f"ipfs://{data_cid}", "path": "data.txt"}]})
    params = (app_id, 0, tasks, replication, ETHER // 10, market.chain_time() + 3600, 60, 1, 0, 0, 0, 0, callback,
              inputs, b"")
    fns = market.contract.functions
    receipt = TxSender(geth.w3, requester, extra_abis=market.error_abis).transact(
        fns.postJob(params) if credibility is None else fns.postCredibilityJob(params, credibility))
    return int(market.contract.events.JobPosted().process_receipt(receipt)[0]["args"]["jobId"])


def _called(w3: Web3, market: Market, tx_hash: Any) -> str:
    """The Marketplace function a transaction called, with the calls inside a ``multicall``."""
    fn, args = market.contract.decode_function_input(w3.eth.get_transaction(tx_hash)["input"])
    if fn.fn_name != "multicall":
        return str(fn.fn_name)
    return "multicall(" + ", ".join(str(market.contract.decode_function_input(c)[0].fn_name)
                                    for c in args["data"]) + ")"


def _sent_by(w3: Web3, start: int, senders: set[str]) -> list[Any]:
    """Receipts of every transaction ``senders`` sent from block ``start`` on."""
    out = []
    for n in range(start, w3.eth.block_number + 1):
        for tx in w3.eth.get_block(n, full_transactions=True)["transactions"]:
            if tx["from"] in senders:  # type: ignore[index]
                out.append(w3.eth.get_transaction_receipt(tx["hash"]))  # type: ignore[index]
    return out


def test_r1_and_r2_jobs_with_callbacks_run_on_geth(geth: Any, geth_market: Market, ipfs: Any, docker_client: Any,
                                                  echo_digest: str, tmp_path: Path, state_dir: Path) -> None:
    w3, market, acc = geth.w3, geth_market, geth.accounts
    app_id = register_app(w3, market, acc[2], echo_digest)
    fund(w3, market, acc[1], 20 * ETHER)
    consumer = deploy(w3, "ExampleConsumer", market.address, sender=acc[1]).address
    workers = [_worker(geth, market, ipfs, a, tmp_path / a.address, docker_client) for a in acc[4:7]]
    start = w3.eth.block_number
    bag = _post(geth, market, ipfs, acc[1], app_id, tasks=6, replication=1, callback=consumer)
    pair = _post(geth, market, ipfs, acc[1], app_id, tasks=2, replication=2, callback=consumer)
    # credibility mode: reveals simulated on geth's pending block, replicas added one at a time before any reveal
    credible = _post(geth, market, ipfs, acc[1], app_id, tasks=2, replication=3, callback="0x" + "00" * 20,
                     credibility=(990_000_000, 1000, 1000))
    with running(*workers):
        wait_for(lambda: market.job_record(bag).finished == 6 and market.job_record(pair).finished == 2
                 and market.job_record(credible).settled == 2, timeout=300,
                 what="the R = 1 bag, the R = 2 job and the credibility job on geth")
    assert market.job_record(credible).finished == 2
    consumer_c = w3.eth.contract(address=consumer, abi=[{
        "type": "function", "name": "delivered", "inputs": [], "outputs": [{"type": "uint256", "name": ""}],
        "stateMutability": "view"}])
    assert consumer_c.functions.delivered().call() == 8  # every result reached the callback, none starved
    receipts = _sent_by(w3, start, {w.account.address for w in workers})
    failed = [(r["transactionHash"].hex(), _called(w3, market, r["transactionHash"])) for r in receipts
              if r["status"] != 1]
    assert receipts and not failed, f"reverted worker transactions on geth: {failed}"
    for w in workers:
        me = market.worker_record(w.account.address)
        assert (me.slashes, me.locked, me.stake) == (0, 0, 5 * ETHER)

    # the indexer mirrors geth's chain, and the auditor's verifier passes on both jobs
    engine = make_engine(f"sqlite:///{tmp_path / 'ix.db'}")
    ix = Indexer(engine, w3, market.address, from_block=start)
    ix.sync()
    api = TestClient(create_app(engine, chain_head=lambda: w3.eth.block_number))
    for job_id, n in ((bag, 6), (pair, 2)):
        body = api.get(f"/api/jobs/{job_id}").json()
        assert body["num_tasks"] == n and body["finished"] == n, body
    for job_id in (bag, pair):
        audit = subprocess.run([sys.executable, "-m", "tasknet.cli", "audit", "job", str(job_id), "--rpc-url",
                                geth.rpc_url, "--marketplace", market.address, "--from-block", str(start),
                                "--ipfs-api", ipfs.api_url, "--json"], capture_output=True, text=True, timeout=300,
                               check=False)
        assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-2000:]
        assert json.loads(audit.stdout)["passed"]
    assert task_id(pair, 1) >> 32 == pair


def test_lanes_run_on_geth_and_the_audit_passes(geth: Any, geth_market: Market, ipfs: Any, docker_client: Any,
                                                echo_digest: str, tmp_path: Path, state_dir: Path) -> None:
    """Daemons leasing lanes (``batching.lanes``) on geth: an R = 2 job goes through chunks that settle at once, no
    worker transaction reverts but lost claim races, and the auditor's verifier re-checks every task from the
    lanes' roots and lists."""
    w3, market, acc = geth.w3, geth_market, geth.accounts
    app_id = register_app(w3, market, acc[2], echo_digest)
    fund(w3, market, acc[1], 20 * ETHER)
    workers = [_worker(geth, market, ipfs, a, tmp_path / a.address, docker_client,
                       batching={"lanes": True, "lane_tasks": 3}) for a in acc[7:9]]
    start = w3.eth.block_number
    job = _post(geth, market, ipfs, acc[1], app_id, tasks=5, replication=2, callback="0x" + "00" * 20)
    with running(*workers):
        wait_for(lambda: market.job_record(job).finished == 5, timeout=300, what="the R = 2 job through lanes on geth")
    lanes = [e for e in market.contract.events.LaneClaimed().get_logs(from_block=start)]
    assert lanes and {e["args"]["worker"] for e in lanes} == {w.account.address for w in workers}
    assert not market.contract.events.ReplicaClaimed().get_logs(from_block=start)
    receipts = _sent_by(w3, start, {w.account.address for w in workers})
    failed = [_called(w3, market, r["transactionHash"]) for r in receipts if r["status"] != 1]
    assert set(failed) <= {"claimLane"}, failed  # a lost race to a chunk, at most
    for w in workers:
        me = market.worker_record(w.account.address)
        assert (me.slashes, me.locked) == (0, 0)
    audit = subprocess.run([sys.executable, "-m", "tasknet.cli", "audit", "job", str(job), "--rpc-url", geth.rpc_url,
                            "--marketplace", market.address, "--from-block", str(start), "--ipfs-api", ipfs.api_url,
                            "--json"], capture_output=True, text=True, timeout=300, check=False)
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-2000:]
    assert json.loads(audit.stdout)["passed"]
