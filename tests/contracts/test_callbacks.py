"""Callbacks: every terminal outcome of a task reaches the job's callback (a result: onTaskResult; a failure:
onTaskFailed; a cancelled range or a job closed after its deadline: one onTasksEnded), each with the same gas cap;
reverting, gas-burning, return-bombing or re-entering callbacks are recorded and never block anything."""

from __future__ import annotations

import pytest
from market_helpers import E18, Env
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from oracle import decode_revert
from oracle._chain import deploy
from oracle.protocol import commitment, task_id

D = b"\xd1" * 32
SALT = b"\x5a" * 32
NO_CONSENSUS, FAILURE_REPORTS, CANCELLED, EXPIRED = range(4)  # ITaskCallback.FailureReason


@pytest.fixture
def setup(env: Env) -> int:
    env.fund(env.requester, 100 * E18)
    for w in env.workers[:3]:
        env.enroll(w)
    return env.app()


def _post_with(env: Env, app: int, callback: str, **kw: int) -> int:
    return env.post(app, callback=callback, **kw)


def test_example_consumer_receives_r1_result_and_data(env: Env, setup: int) -> None:
    consumer = deploy(env.w3, "ExampleConsumer", env.market.address, sender=env.owner)
    job = _post_with(env, setup, consumer.address)
    assert env.view("getJobExtras", job)["callback"] == consumer.address
    tid = task_id(job, 0)
    w = env.workers[0]
    env.tx(env.market.functions.claim(tid), w)
    receipt = env.tx(env.market.functions.submit(tid, D, "bafyR", b"answer=42"), w)
    assert env.events(receipt, "CallbackDelivered") == [{"taskId": tid, "callback": consumer.address, "success": True}]
    assert consumer.functions.digestOf(tid).call() == D
    assert consumer.functions.dataOf(tid).call() == b"answer=42"


def test_example_consumer_receives_the_winning_replicas_data(env: Env, setup: int) -> None:
    consumer = deploy(env.w3, "ExampleConsumer", env.market.address, sender=env.owner)
    job = _post_with(env, setup, consumer.address, replication=3)
    tid = task_id(job, 0)
    ws = env.workers[:3]
    for w in ws:
        env.tx(env.market.functions.claim(tid), w)
    digests = [b"\xee" * 32, D, D]
    for w, d in zip(ws, digests, strict=True):
        env.tx(env.market.functions.commit(tid, commitment(tid, d, SALT, w.address)), w)
    for i, (w, d) in enumerate(zip(ws, digests, strict=True)):
        receipt = env.tx(env.market.functions.reveal(tid, d, SALT, "c", f"from-{i}".encode()), w)
    assert env.events(receipt, "CallbackDelivered")[0]["success"] is True
    assert consumer.functions.digestOf(tid).call() == D
    assert consumer.functions.dataOf(tid).call() == b"from-1"  # the first winner, not the wrong replica


def test_example_consumer_accepts_only_the_marketplace(env: Env) -> None:
    consumer = deploy(env.w3, "ExampleConsumer", env.market.address, sender=env.owner)
    with pytest.raises(Exception, match="ExampleConsumerNotMarketplace"):
        env.tx(consumer.functions.onTaskResult(1, D, b""), env.outsider)


@pytest.mark.parametrize("helper", ["RevertingCallback", "GasBurningCallback", "ReturnBombCallback"])
@pytest.mark.reliability(kind="attack", name="callback reverts, burns all its gas, or return-bombs",
                         how="results delivered to a reverting / gas-burning / return-bomb callback: recorded as "
                             "failed, results paid, job closed, gas capped")
def test_a_hostile_callback_cannot_block_finalization(env: Env, setup: int, helper: str) -> None:
    cb = deploy(env.w3, helper, sender=env.owner)
    job = _post_with(env, setup, cb.address, numTasks=2)
    start = task_id(job, 0)
    w = env.workers[0]
    env.tx(env.market.functions.claimRange(start, 2), w)
    receipt = env.tx(env.market.functions.submitRange(start, start, [D, D], ["a", "b"], []), w)
    assert [e["success"] for e in env.events(receipt, "CallbackDelivered")] == [False, False]
    assert env.balance(w) == 2 * E18 and env.job(job)["flags"] & 1 == 1
    assert receipt["gasUsed"] < 2 * 200_000 + 250_000  # the cap held


@pytest.mark.reliability(kind="attack", name="callback re-enters the marketplace",
                         how="the callback calls finalize from inside the delivery: the guard stops it, the result "
                             "stands")
def test_a_reentering_callback_is_stopped_by_the_guard(env: Env, setup: int) -> None:
    cb = deploy(env.w3, "ReenteringCallback", env.market.address, sender=env.owner)
    job = _post_with(env, setup, cb.address)
    tid = task_id(job, 0)
    w = env.workers[0]
    env.tx(env.market.functions.claim(tid), w)
    receipt = env.tx(env.market.functions.submit(tid, D, "a", b""), w)
    assert env.events(receipt, "CallbackDelivered")[0]["success"] is False
    assert cb.functions.reentered().call() is False
    assert env.balance(w) == E18


@pytest.mark.reliability(kind="attack", name="finalizer starves the callback of gas",
                         how="submit with too little gas for the callback's cap: reverts with "
                             "MarketplaceInsufficientGas")
def test_the_finalizer_must_give_the_callback_its_full_gas(env: Env, setup: int) -> None:
    cb = deploy(env.w3, "GasBurningCallback", sender=env.owner)
    job = _post_with(env, setup, cb.address)
    tid = task_id(job, 0)
    w = env.workers[0]
    env.tx(env.market.functions.claim(tid), w)
    with pytest.raises(ContractLogicError) as err:
        env.market.functions.submit(tid, D, "a", b"").call({"from": w.address, "gas": 150_000})
    name, args = decode_revert(err.value.data, [env.market.abi])  # type: ignore[arg-type]
    assert name == "MarketplaceInsufficientGas"
    assert args["required"] == 200_000 + 200_000 // 63 + 10_000


# --- outcomes without a result ---------------------------------------------------------------------------------
def _set_params(env: Env, **kw: int) -> None:
    p = env.params()
    p.update(kw)
    env.tx(env.market.functions.setParams(tuple(p.values())), env.owner)


def fail_replicated(env: Env, app: int, callback: str) -> tuple[int, object]:
    """An R = 3 job whose only task gets three different digests with maxReplicas 3: no majority at the cap."""
    _set_params(env, maxReplicas=3)
    job = _post_with(env, app, callback, replication=3)
    tid = task_id(job, 0)
    ws = env.workers[:3]
    for w in ws:
        env.tx(env.market.functions.claim(tid), w)
    for i, w in enumerate(ws):
        env.tx(env.market.functions.commit(tid, commitment(tid, bytes([i + 1]) * 32, SALT, w.address)), w)
    for i, w in enumerate(ws):
        receipt = env.tx(env.market.functions.reveal(tid, bytes([i + 1]) * 32, SALT, "c", b""), w)
    return tid, receipt


def fail_by_reports(env: Env, app: int, callback: str) -> tuple[int, object]:
    """An R = 1 task whose two failure reports (maxReplicas 2) disagree: it fails at the cap."""
    _set_params(env, maxReplicas=2)
    job = _post_with(env, app, callback)
    tid = task_id(job, 0)
    for i, w in enumerate(env.workers[:2]):
        env.tx(env.market.functions.claim(tid), w)
        receipt = env.tx(env.market.functions.reportFailure(tid, bytes([0xF0 + i]) * 32, f"fail-{i}"), w)
    return tid, receipt


def _failed(env: Env, consumer: Contract, receipt: object) -> list[dict[str, object]]:
    return env.events(receipt, "FailureReceived", consumer)


@pytest.mark.parametrize("how", ["no consensus at the replica cap", "failure reports at the cap"])
def test_a_failed_task_reaches_the_callback_with_its_reason(env: Env, setup: int, how: str) -> None:
    consumer = deploy(env.w3, "ExampleConsumer", env.market.address, sender=env.owner)
    before = env.balance(env.requester)
    if how.startswith("no consensus"):
        tid, receipt = fail_replicated(env, setup, consumer.address)
        reason, refund = NO_CONSENSUS, 3 * E18
    else:
        tid, receipt = fail_by_reports(env, setup, consumer.address)
        reason, refund = FAILURE_REPORTS, E18
    assert env.events(receipt, "TaskFailed") == [{"taskId": tid, "refund": refund}]
    assert env.events(receipt, "CallbackDelivered") == [{"taskId": tid, "callback": consumer.address, "success": True}]
    assert _failed(env, consumer, receipt) == [{"jobId": tid >> 32, "firstIndex": 0, "count": 1, "reason": reason}]
    assert consumer.functions.failed().call() == 1 and consumer.functions.delivered().call() == 0
    assert env.balance(env.requester) == before  # posted, then refunded in full


def test_a_cancelled_range_reaches_the_callback_once(env: Env, setup: int) -> None:
    consumer = deploy(env.w3, "ExampleConsumer", env.market.address, sender=env.owner)
    job = _post_with(env, setup, consumer.address, numTasks=10)
    receipt = env.tx(env.market.functions.cancelTasks(job, 2, 5), env.requester)
    assert env.events(receipt, "TasksEndedDelivered") == [{"jobId": job, "callback": consumer.address,
                                                           "firstIndex": 2, "count": 5, "reason": CANCELLED,
                                                           "success": True}]
    assert _failed(env, consumer, receipt) == [{"jobId": job, "firstIndex": 2, "count": 5, "reason": CANCELLED}]
    assert env.events(receipt, "CallbackDelivered") == []  # one notice for the range, none per task


def test_a_job_closed_after_its_deadline_notifies_its_unsettled_tasks_once(env: Env, setup: int) -> None:
    consumer = deploy(env.w3, "ExampleConsumer", env.market.address, sender=env.owner)
    job = _post_with(env, setup, consumer.address, numTasks=3, deadline=env.now() + 10_000, maxRunSeconds=100)
    w = env.workers[0]
    env.tx(env.market.functions.claim(task_id(job, 0)), w)
    env.tx(env.market.functions.submit(task_id(job, 0), D, "c", b""), w)  # one result, two tasks never done
    env.warp(10_001)
    receipt = env.tx(env.market.functions.closeJob(job), env.outsider)
    assert env.events(receipt, "JobClosed")[0]["refund"] == 2 * E18
    assert env.events(receipt, "TasksEndedDelivered") == [{"jobId": job, "callback": consumer.address,
                                                           "firstIndex": 0, "count": 3, "reason": EXPIRED,
                                                           "success": True}]
    assert consumer.functions.delivered().call() == 1 and consumer.functions.ranges().call() == 1


def test_a_job_that_settled_every_task_sends_no_end_notice(env: Env, setup: int) -> None:
    consumer = deploy(env.w3, "ExampleConsumer", env.market.address, sender=env.owner)
    job = _post_with(env, setup, consumer.address, numTasks=2)
    w = env.workers[0]
    env.tx(env.market.functions.claim(task_id(job, 0)), w)
    env.tx(env.market.functions.submit(task_id(job, 0), D, "c", b""), w)
    receipt = env.tx(env.market.functions.cancelTasks(job, 1, 1), env.requester)  # the last one: the job closes
    assert env.events(receipt, "JobClosed")[0]["refund"] == 0
    assert [e["reason"] for e in env.events(receipt, "TasksEndedDelivered")] == [CANCELLED]
    assert consumer.functions.delivered().call() == 1 and consumer.functions.ranges().call() == 1


HOSTILE = ["RevertingCallback", "GasBurningCallback", "ReturnBombCallback", "ReenteringCallback"]
OUTCOMES = ["no consensus", "failure reports", "cancel", "close"]


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("helper", HOSTILE)
@pytest.mark.reliability(kind="attack", name="failure callback reverts, burns its gas, return-bombs or re-enters",
                         how="a failed task (no consensus, failure reports at the cap), a cancelled range and a "
                             "closed job delivered to a reverting / gas-burning / return-bomb / re-entering "
                             "callback: recorded as failed, the refund happens, the gas stays capped")
def test_a_hostile_callback_cannot_block_a_failure_a_cancel_or_a_close(env: Env, setup: int, helper: str,
                                                                         outcome: str) -> None:
    args = (env.market.address,) if helper == "ReenteringCallback" else ()
    cb = deploy(env.w3, helper, *args, sender=env.owner)
    before = env.balance(env.requester)
    if outcome == "no consensus":
        _, receipt = fail_replicated(env, setup, cb.address)
    elif outcome == "failure reports":
        _, receipt = fail_by_reports(env, setup, cb.address)
    elif outcome == "cancel":
        job = _post_with(env, setup, cb.address, numTasks=4)
        receipt = env.tx(env.market.functions.cancelTasks(job, 0, 4), env.requester)
    else:
        job = _post_with(env, setup, cb.address, numTasks=4, deadline=env.now() + 100)
        env.warp(101)
        receipt = env.tx(env.market.functions.closeJob(job), env.outsider)
    delivered = env.events(receipt, "CallbackDelivered") + env.events(receipt, "TasksEndedDelivered")
    assert [d["success"] for d in delivered] == [False]
    assert env.balance(env.requester) == before  # posted and refunded in full
    if helper == "ReenteringCallback":
        assert cb.functions.reentered().call() is False
    if outcome in ("cancel", "close"):
        assert receipt["gasUsed"] < 200_000 + 150_000  # one capped call, whatever the range


@pytest.mark.parametrize("outcome", ["cancel", "close"])
def test_a_cancel_or_close_must_give_the_callback_its_full_gas(env: Env, setup: int, outcome: str) -> None:
    cb = deploy(env.w3, "GasBurningCallback", sender=env.owner)
    job = _post_with(env, setup, cb.address, numTasks=2, deadline=env.now() + 100)
    if outcome == "cancel":
        fn, sender = env.market.functions.cancelTasks(job, 0, 2), env.requester
    else:
        env.warp(101)
        fn, sender = env.market.functions.closeJob(job), env.outsider
    with pytest.raises(ContractLogicError) as err:
        fn.call({"from": sender.address, "gas": 150_000})
    name, _args = decode_revert(err.value.data, [env.market.abi])  # type: ignore[arg-type]
    assert name == "MarketplaceInsufficientGas"
