"""contracts/client/TasknetClient.sol, the base of Dapp contracts, through a bare harness
(contracts/test/TasknetClientHarness.sol): posting from its own marketplace balance, request ids, every outcome
(result, failure, refund at the close, cancel) reaching the right hook, callbacks accepted only from the marketplace
and only for its own jobs, and a reverting or gas-hungry hook whose outcome is kept for a replay."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from market_helpers import E18, Env
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from oracle import decode_revert, send
from oracle._chain import deploy
from oracle.exceptions import TransactionReverted
from oracle.protocol import commitment, task_id

D = b"\xd1" * 32
SALT = b"\x5a" * 32
NO_CONSENSUS, FAILURE_REPORTS, CANCELLED, EXPIRED = range(4)
RECORD, REVERT, BURN = range(3)


@pytest.fixture
def app(env: Env) -> int:
    for w in env.workers[:3]:
        env.enroll(w)
    return env.app(price=E18 // 10)


@pytest.fixture
def client(env: Env) -> Contract:
    c = deploy(env.w3, "TasknetClientHarness", env.market.address, sender=env.owner)
    env.tx(env.token.functions.faucet(env.requester.address, 100 * E18), env.requester)
    env.tx(env.token.functions.approve(c.address, 100 * E18), env.requester)
    env.tx(c.functions.deposit(20 * E18), env.requester)
    return c


def tx(env: Env, fn: Any, sender: LocalAccount) -> Any:
    """Send, decoding reverts with the marketplace's, registry's and token's errors too."""
    return send(env.w3, fn, sender, extra_abis=[env.market.abi, env.registry.abi, env.token.abi])


def _norm(v: Any) -> Any:
    return "0x" + v.hex() if isinstance(v, bytes) else v.lower() if isinstance(v, str) else v


def reverts(env: Env, fn: Any, sender: LocalAccount, name: str, args: dict[str, Any]) -> None:
    """Sending ``fn`` reverts with custom error ``name`` carrying exactly ``args``."""
    with pytest.raises(TransactionReverted) as err:
        tx(env, fn, sender)
    assert err.value.error_name == name, str(err.value)
    assert {k: _norm(v) for k, v in err.value.error_args.items()} == {k: _norm(v) for k, v in args.items()}, \
        str(err.value)


def post(env: Env, client: Contract, request_id: int, app: int, **kw: Any) -> int:
    tx(env, client.functions.post(request_id, env.job_params(app, **kw)), env.requester)
    return int(env.market.functions.jobCount().call())


def hooks(env: Env, client: Contract, receipt: Any) -> list[tuple[str, dict[str, Any]]]:
    out = [("result", e) for e in env.events(receipt, "ResultHook", client)]
    return out + [("failure", e) for e in env.events(receipt, "FailureHook", client)]


# --- posting -----------------------------------------------------------------------------------------------------
def test_posts_from_its_own_balance_as_its_own_callback_with_a_request_id(env: Env, client: Contract,
                                                                          app: int) -> None:
    receipt = tx(env, client.functions.post(7, env.job_params(app, numTasks=3, callback=env.outsider.address)),
                 env.requester)
    job = int(env.market.functions.jobCount().call())
    posted = env.events(receipt, "JobPosted")[0]
    assert posted["requester"] == client.address and posted["params"]["callback"] == client.address
    escrow = 3 * (E18 + E18 // 10)
    assert env.events(receipt, "TasknetJobPosted", client) == [{"requestId": 7, "jobId": job, "numTasks": 3,
                                                                "escrow": escrow}]
    assert env.balance(client.address) == 20 * E18 - escrow and env.balance(env.requester) == 0
    assert client.functions.requestOf(task_id(job, 2)).call() == 7


def test_a_request_the_balance_cannot_pay_names_both_amounts(env: Env, client: Contract, app: int) -> None:
    reverts(env, client.functions.post(1, env.job_params(app, numTasks=100)), env.requester,
            "TasknetClientInsufficientBalance", {"available": 20 * E18, "needed": 100 * (E18 + E18 // 10)})


def test_a_request_for_a_deprecated_app_names_it(env: Env, client: Contract, app: int) -> None:
    env.tx(env.registry.functions.deprecateApp(app), env.app_owner)
    reverts(env, client.functions.post(1, env.job_params(app)), env.requester, "TasknetClientAppDeprecated",
            {"appId": app})


def test_request_id_zero_is_refused(env: Env, client: Contract, app: int) -> None:
    reverts(env, client.functions.post(0, env.job_params(app)), env.requester, "TasknetClientZeroRequestId", {})


def test_deposit_and_withdraw_helpers_move_the_contracts_money(env: Env, client: Contract) -> None:
    tx(env, client.functions.withdraw(5 * E18), env.requester)
    assert env.balance(client.address) == 15 * E18
    assert env.token.functions.balanceOf(env.requester.address).call() == 85 * E18


# --- callbacks: who may call ---------------------------------------------------------------------------------------
def test_callbacks_from_anyone_but_the_marketplace_are_refused(env: Env, client: Contract, app: int) -> None:
    job = post(env, client, 1, app)
    expected = {"caller": env.outsider.address, "marketplace": env.market.address}
    for fn in (client.functions.onTaskResult(task_id(job, 0), D, b""),
               client.functions.onTaskFailed(task_id(job, 0), NO_CONSENSUS),
               client.functions.onTasksEnded(job, 0, 1, EXPIRED)):
        reverts(env, fn, env.outsider, "TasknetClientNotMarketplace", expected)
    reverts(env, client.functions.runResultHook(1, task_id(job, 0), D, b""), env.outsider, "TasknetClientNotSelf",
            {"caller": env.outsider.address})


def test_a_job_posted_by_someone_else_cannot_feed_it_results(env: Env, client: Contract, app: int) -> None:
    env.fund(env.requester, 10 * E18)
    job = env.post(app, callback=client.address)  # the requester names the client as its callback
    w = env.workers[0]
    env.tx(env.market.functions.claim(task_id(job, 0)), w)
    receipt = env.tx(env.market.functions.submit(task_id(job, 0), D, "c", b""), w)
    assert [e["success"] for e in env.events(receipt, "CallbackDelivered")] == [False]
    assert hooks(env, client, receipt) == []
    with pytest.raises(ContractLogicError) as err:  # why: the marketplace's own call, replayed
        client.functions.onTaskResult(task_id(job, 0), D, b"").call({"from": env.market.address})
    assert decode_revert(err.value.data, [client.abi]) == ("TasknetClientUnknownJob", {"jobId": job})  # type: ignore[arg-type]


# --- every outcome reaches the right hook --------------------------------------------------------------------------
def test_a_result_reaches_on_result_with_the_request_id(env: Env, client: Contract, app: int) -> None:
    job = post(env, client, 41, app)
    tid, w = task_id(job, 0), env.workers[0]
    env.tx(env.market.functions.claim(tid), w)
    receipt = env.tx(env.market.functions.submit(tid, D, "c", b"price=42"), w)
    assert hooks(env, client, receipt) == [("result", {"requestId": 41, "taskId": tid, "resultDigest": D,
                                                       "callbackData": b"price=42"})]
    assert env.events(receipt, "CallbackDelivered")[0]["success"] is True


def test_a_failed_task_reaches_on_failure_with_its_refund_already_back(env: Env, client: Contract, app: int) -> None:
    p = env.params()
    p["maxReplicas"] = 3
    env.tx(env.market.functions.setParams(tuple(p.values())), env.owner)
    job = post(env, client, 5, app, replication=3)
    tid = task_id(job, 0)
    ws = env.workers[:3]
    for w in ws:
        env.tx(env.market.functions.claim(tid), w)
    for i, w in enumerate(ws):
        env.tx(env.market.functions.commit(tid, commitment(tid, bytes([i + 1]) * 32, SALT, w.address)), w)
    for i, w in enumerate(ws):
        receipt = env.tx(env.market.functions.reveal(tid, bytes([i + 1]) * 32, SALT, "c", b""), w)
    assert hooks(env, client, receipt) == [("failure", {"requestId": 5, "firstTaskId": tid, "count": 1,
                                                        "reason": NO_CONSENSUS})]
    assert env.balance(client.address) == 20 * E18  # the escrow came back


def test_a_refund_at_the_close_reaches_on_failure_once(env: Env, client: Contract, app: int) -> None:
    job = post(env, client, 9, app, numTasks=4, deadline=env.now() + 500, maxRunSeconds=100)
    env.warp(501)
    receipt = env.tx(env.market.functions.closeJob(job), env.outsider)
    assert hooks(env, client, receipt) == [("failure", {"requestId": 9, "firstTaskId": task_id(job, 0), "count": 4,
                                                        "reason": EXPIRED})]
    assert env.balance(client.address) == 20 * E18


def test_a_cancel_reaches_on_failure_inside_the_cancelling_call(env: Env, client: Contract, app: int) -> None:
    job = post(env, client, 3, app, numTasks=5)
    receipt = tx(env, client.functions.cancel(job, 1, 3), env.requester)
    assert hooks(env, client, receipt) == [("failure", {"requestId": 3, "firstTaskId": task_id(job, 1), "count": 3,
                                                        "reason": CANCELLED})]
    assert env.balance(client.address) == 20 * E18 - 2 * (E18 + E18 // 10)


# --- a hook that fails ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", [REVERT, BURN], ids=["reverting hook", "gas-hungry hook"])
@pytest.mark.reliability(kind="attack", name="a Dapp hook that reverts or burns its gas",
                         how="a TasknetClient whose _onResult / _onFailure reverts or loops forever: the task still "
                             "settles and pays, the marketplace records a successful delivery, the client keeps the "
                             "outcome (TasknetHookFailed, isStalled) and anyone replays it once with more gas")
def test_a_failing_hook_keeps_its_outcome_for_a_replay(env: Env, client: Contract, app: int, mode: int) -> None:
    tx(env, client.functions.setMode(mode), env.requester)
    job = post(env, client, 11, app, numTasks=3)
    tid, w = task_id(job, 0), env.workers[0]
    env.tx(env.market.functions.claim(tid), w)
    receipt = env.tx(env.market.functions.submit(tid, D, "c", b"xyz"), w)
    assert env.events(receipt, "CallbackDelivered")[0]["success"] is True  # the client took it and kept it
    outcome = client.functions.resultOutcome(tid, D, b"xyz").call()
    assert env.events(receipt, "TasknetHookFailed", client) == [{"requestId": 11, "firstTaskId": tid, "count": 1,
                                                                 "outcome": outcome}]
    assert client.functions.isStalled(outcome).call() is True and env.balance(w) == E18
    receipt = tx(env, client.functions.cancel(job, 1, 2), env.requester)  # a failure notice stalls the same way
    failure = client.functions.failureOutcome(task_id(job, 1), 2, CANCELLED).call()
    assert [e["outcome"] for e in env.events(receipt, "TasknetHookFailed", client)] == [failure]
    if mode == BURN:
        assert receipt["gasUsed"] < 200_000 + 150_000

    # the hook is fixed (or given more gas): anyone replays, once, only what the marketplace delivered
    tx(env, client.functions.setMode(RECORD), env.requester)
    reverts(env, client.functions.retryResult(tid, D, b"forged"), env.outsider, "TasknetClientNothingToRetry",
            {"outcome": client.functions.resultOutcome(tid, D, b"forged").call()})
    receipt = tx(env, client.functions.retryResult(tid, D, b"xyz"), env.outsider)
    assert hooks(env, client, receipt) == [("result", {"requestId": 11, "taskId": tid, "resultDigest": D,
                                                       "callbackData": b"xyz"})]
    receipt = tx(env, client.functions.retryFailure(task_id(job, 1), 2, CANCELLED), env.outsider)
    assert hooks(env, client, receipt)[0][1]["count"] == 2
    reverts(env, client.functions.retryResult(tid, D, b"xyz"), env.outsider, "TasknetClientNothingToRetry",
            {"outcome": outcome})
    assert client.functions.isStalled(outcome).call() is False


def test_a_callback_gas_below_the_hook_reserve_still_records_the_outcome(env: Env, client: Contract,
                                                                         app: int) -> None:
    p = env.params()
    p["callbackGas"] = 45_000  # the hook gets ~nothing: the outcome must still be kept
    env.tx(env.market.functions.setParams(tuple(p.values())), env.owner)
    job = post(env, client, 2, app)
    tid, w = task_id(job, 0), env.workers[0]
    env.tx(env.market.functions.claim(tid), w)
    receipt = env.tx(env.market.functions.submit(tid, D, "c", b""), w)
    assert env.events(receipt, "CallbackDelivered")[0]["success"] is True
    assert client.functions.isStalled(client.functions.resultOutcome(tid, D, b"").call()).call() is True
