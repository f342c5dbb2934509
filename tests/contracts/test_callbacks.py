"""Result callbacks: delivered with a gas cap; reverting, gas-burning, return-bombing or re-entering callbacks
are recorded and never block finalization."""

from __future__ import annotations

import pytest
from market_helpers import E18, Env
from web3.exceptions import ContractLogicError

from oracle import decode_revert
from oracle._chain import deploy
from oracle.protocol import commitment, task_id

D = b"\xd1" * 32
SALT = b"\x5a" * 32


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
