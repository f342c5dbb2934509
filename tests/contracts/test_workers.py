"""Workers: registration, stake, unstake with a delay, bans; admin parameters and treasury."""

from __future__ import annotations

from market_helpers import E18, Env, reverts

DAY = 86400


def test_register_worker_sets_capabilities(env: Env) -> None:
    w = env.workers[0]
    receipt = env.tx(env.market.functions.registerWorker(16, 32_000, 2, 3), w)
    assert env.events(receipt, "WorkerRegistered")[0] == {
        "worker": w.address, "cores": 16, "memoryMB": 32_000, "gpus": 2, "archMask": 3}
    info = env.worker(w)
    assert (info["cores"], info["memoryMB"], info["gpus"], info["archMask"], info["flags"]) == (16, 32_000, 2, 3, 1)


def test_stake_moves_balance_into_stake(env: Env) -> None:
    w = env.workers[0]
    env.enroll(w, stake=0)
    env.fund(w, 5 * E18)
    receipt = env.tx(env.market.functions.stake(2 * E18), w)
    assert env.events(receipt, "Staked")[0] == {"worker": w.address, "amount": 2 * E18, "totalStake": 2 * E18}
    assert env.worker(w)["stake"] == 2 * E18 and env.balance(w) == 3 * E18


def test_stake_fails_for_non_worker_zero_or_too_much(env: Env) -> None:
    w = env.workers[0]
    reverts(env, env.market.functions.stake(1), w, "MarketplaceNotWorker", {"account": w.address})
    env.enroll(w, stake=0)
    reverts(env, env.market.functions.stake(0), w, "MarketplaceZeroAmount", {})
    reverts(env, env.market.functions.stake(1), w, "MarketplaceInsufficientBalance",
            {"account": w.address, "balance": 0, "needed": 1})


def test_unstake_waits_for_the_delay(env: Env) -> None:
    w = env.workers[0]
    env.enroll(w, stake=10 * E18)
    receipt = env.tx(env.market.functions.requestUnstake(4 * E18), w)
    ready = env.events(receipt, "UnstakeRequested")[0]["readyAt"]
    assert ready == env.now() + DAY
    assert env.worker(w)["stake"] == 6 * E18 and env.worker(w)["unstaking"] == 4 * E18
    reverts(env, env.market.functions.withdrawUnstaked(), w, "MarketplaceUnstakeNotReady",
            {"worker": w.address, "readyAt": ready})
    env.warp(DAY + 1)
    receipt = env.tx(env.market.functions.withdrawUnstaked(), w)
    assert env.events(receipt, "Unstaked")[0] == {"worker": w.address, "amount": 4 * E18}
    assert env.balance(w) == 4 * E18 and env.worker(w)["unstaking"] == 0


def test_unstake_fails_on_zero_locked_or_nothing_pending(env: Env) -> None:
    w = env.workers[0]
    env.enroll(w, stake=2 * E18)
    reverts(env, env.market.functions.requestUnstake(0), w, "MarketplaceZeroAmount", {})
    reverts(env, env.market.functions.withdrawUnstaked(), w, "MarketplaceZeroAmount", {})
    app = env.app()
    env.fund(env.requester, 10 * E18)
    job = env.post(app)
    env.tx(env.market.functions.claim(job << 32), w)  # locks 1 token of the 2
    reverts(env, env.market.functions.requestUnstake(2 * E18), w, "MarketplaceInsufficientStake",
            {"worker": w.address, "available": E18, "required": 2 * E18})


def test_owner_bans_and_unbans(env: Env) -> None:
    w = env.workers[0]
    env.enroll(w)
    reverts(env, env.market.functions.setWorkerBanned(w.address, True), env.outsider,
            "OwnableUnauthorizedAccount", {"account": env.outsider.address})
    reverts(env, env.market.functions.setWorkerBanned(env.outsider.address, True), env.owner,
            "MarketplaceNotWorker", {"account": env.outsider.address})
    receipt = env.tx(env.market.functions.setWorkerBanned(w.address, True), env.owner)
    assert env.events(receipt, "WorkerBanned") == [{"worker": w.address, "banned": True}]
    app = env.app()
    env.fund(env.requester, 10 * E18)
    job = env.post(app)
    reverts(env, env.market.functions.claim(job << 32), w, "MarketplaceWorkerBanned", {"worker": w.address})
    env.tx(env.market.functions.setWorkerBanned(w.address, False), env.owner)
    env.tx(env.market.functions.claim(job << 32), w)


def _params(env: Env, **kw: int) -> tuple[int, ...]:
    p = env.params()
    p.update(kw)
    return tuple(p.values())


def test_set_params_is_owner_only_bounded_and_evented(env: Env) -> None:
    new = _params(env, feeBps=250, maxReplicas=5)
    reverts(env, env.market.functions.setParams(new), env.outsider, "OwnableUnauthorizedAccount",
            {"account": env.outsider.address})
    receipt = env.tx(env.market.functions.setParams(new), env.owner)
    assert len(env.events(receipt, "ParamsUpdated")) == 1
    assert env.params()["feeBps"] == 250 and env.params()["maxReplicas"] == 5


def test_set_params_rejects_each_out_of_bound_value(env: Env) -> None:
    cases = {"claimGrace": (59, 60, 7 * DAY), "commitWindow": (7 * DAY + 1, 60, 7 * DAY),
             "revealWindow": (0, 60, 7 * DAY), "unstakeDelay": (30 * DAY + 1, 0, 30 * DAY),
             "callbackGas": (9_999, 10_000, 2_000_000), "feeBps": (1_001, 0, 1_000), "maxReplicas": (17, 1, 16),
             "maxSlashes": (0, 1, 100), "minStake": (10**27 + 1, 0, 10**27)}
    for name, (value, lo, hi) in cases.items():
        reverts(env, env.market.functions.setParams(_params(env, **{name: value})), env.owner,
                "MarketplaceParamOutOfBounds", {"name": name, "value": value, "min": lo, "max": hi})


def test_set_treasury(env: Env) -> None:
    reverts(env, env.market.functions.setTreasury(env.outsider.address), env.outsider,
            "OwnableUnauthorizedAccount", {"account": env.outsider.address})
    reverts(env, env.market.functions.setTreasury("0x" + "00" * 20), env.owner, "MarketplaceZeroAddress", {})
    receipt = env.tx(env.market.functions.setTreasury(env.outsider.address), env.owner)
    assert env.events(receipt, "TreasuryUpdated") == [
        {"previousTreasury": env.owner.address, "newTreasury": env.outsider.address}]
    assert env.market.functions.treasury().call() == env.outsider.address


def test_views_expose_token_and_registry(env: Env) -> None:
    assert env.market.functions.token().call() == env.token.address
    assert env.market.functions.registry().call() == env.registry.address
