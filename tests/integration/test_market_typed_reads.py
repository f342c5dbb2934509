"""Market's typed reads (job_record, task_view, replica_view, lease_view, worker_record, market_params) against a
real anvil: each holds what the contract's view returns through web3's own call, field for field, by the ABI's
names (the typed reads go through a lean eth_call of their own: oracle.market._struct)."""

from __future__ import annotations

import pytest
from web3.exceptions import BadFunctionCallOutput

from oracle.market import JobFlag, JobRecord, Market, TaskStatus, WorkerFlag, _struct
from oracle.protocol import task_id
from oracle.tx import TxSender
from tests.market_helpers import ETHER, fund, post_job, register_app


def _same(model: object, market: Market, view: str, *args: object) -> bool:
    """Whether the typed read holds the view's raw return, field for field in the ABI's order."""
    from pydantic import BaseModel

    assert isinstance(model, BaseModel)
    raw = getattr(market.contract.functions, view)(*args).call()
    return tuple(model.model_dump(by_alias=True).values()) == tuple(raw)


def test_typed_reads_match_the_views(w3, accounts, market: Market, ipfs) -> None:
    owner, requester, worker = accounts[1], accounts[2], accounts[3]
    app_id = register_app(w3, market, owner, "sha256:" + "ab" * 32)
    fund(w3, market, requester, 10 * ETHER)
    job_id = post_job(w3, market, requester, ipfs, app_id, tasks=3, replication=2, memory_mb=64)
    TxSender(w3, worker, extra_abis=market.error_abis).transact(
        market.contract.functions.registerWorker(2, 2048, 0, 1))

    job = market.job_record(job_id)
    assert isinstance(job, JobRecord) and _same(job, market, "getJob", job_id)
    assert (job.num_tasks, job.replication, job.memory_mb, job.app_id) == (3, 2, 64, app_id)
    assert job.requester == requester.address and not job.closed and JobFlag.CLOSED not in job.flags

    me = market.worker_record(worker.address)
    assert _same(me, market, "getWorker", worker.address)
    assert me.registered and not me.banned and me.flags == WorkerFlag.REGISTERED and me.memory_mb == 2048

    params = market.market_params()
    assert _same(params, market, "params") and params.replica_stake == job.replica_stake

    tid = task_id(job_id, 1)
    task = market.task_view(tid)
    assert _same(task, market, "getTask", tid) and task.status == TaskStatus.NONE
    assert _same(market.replica_view(tid, 0), market, "getReplica", tid, 0)
    assert _same(market.lease_view(tid), market, "getLease", tid)

    # the same views holding a worker's address, an expiry and a stake: a claimed replica and an R = 1 lease
    sender = TxSender(w3, worker, extra_abis=market.error_abis)
    fund(w3, market, worker, 5 * ETHER)
    sender.transact(market.contract.functions.stake(5 * ETHER))
    sender.transact(market.contract.functions.claim(tid))
    replica, task = market.replica_view(tid, 0), market.task_view(tid)
    assert _same(replica, market, "getReplica", tid, 0) and replica.worker == worker.address and replica.expiry > 0
    assert _same(task, market, "getTask", tid) and task.status == TaskStatus.ACTIVE
    bag = post_job(w3, market, requester, ipfs, app_id, tasks=3, replication=1, memory_mb=64)
    sender.transact(market.contract.functions.claimRange(task_id(bag, 0), 2))
    lease = market.lease_view(task_id(bag, 0))
    assert _same(lease, market, "getLease", task_id(bag, 0)) and lease.worker == worker.address and lease.count == 2
    me = market.worker_record(worker.address)
    assert _same(me, market, "getWorker", worker.address) and me.locked == 3 * job.replica_stake


def test_a_view_at_an_address_without_code_raises_web3s_error(w3, accounts, market: Market) -> None:
    """The lean call gets an empty answer there and leaves it to web3, which says what is wrong."""
    nothing = w3.eth.contract(address=accounts[5].address, abi=market.contract.abi)
    with pytest.raises(BadFunctionCallOutput, match="is contract deployed correctly"):
        _struct(nothing, "getJob", 1)
