"""claimSome: claim the listed tasks that are still free, skip those others took first, never revert on a race."""

from __future__ import annotations

from market_helpers import E18, Env, reverts

from oracle.protocol import task_id


def _setup(env: Env, replication: int, tasks: int = 4) -> int:
    app = env.app()
    env.fund(env.requester, 100 * E18)
    for w in env.workers[:3]:
        env.enroll(w)
    return env.post(app, numTasks=tasks, replication=replication, maxRunSeconds=100)


def test_r1_skips_tasks_taken_first_and_stops_at_max(env: Env) -> None:
    job = _setup(env, 1)
    a, b = env.workers[:2]
    env.tx(env.market.functions.claim(task_id(job, 0)), a)
    tids = [task_id(job, i) for i in range(4)]
    assert env.market.functions.claimSome(tids, 2).call({"from": b.address}) == 2
    receipt = env.tx(env.market.functions.claimSome(tids, 2), b)
    got = [(e["startTaskId"], e["worker"], e["count"]) for e in env.events(receipt, "TasksClaimed")]
    assert got == [(tids[1], b.address, 1), (tids[2], b.address, 1)]  # 0 was a's: skipped; max 2 reached
    assert env.worker(b)["locked"] == 2 * E18
    # every task listed is taken now but the last: a race lost on all of them costs no revert, and claims none
    c = env.workers[2]
    assert env.market.functions.claimSome(tids[:3], 3).call({"from": c.address}) == 0
    receipt = env.tx(env.market.functions.claimSome(tids[:3], 3), c)
    assert receipt["status"] == 1 and env.events(receipt, "TasksClaimed") == []


def test_rn_skips_full_and_held_tasks_and_closed_jobs(env: Env) -> None:
    job = _setup(env, 2, tasks=2)
    a, b, c = env.workers[:3]
    t0, t1 = task_id(job, 0), task_id(job, 1)
    env.tx(env.market.functions.claim(t0), a)
    env.tx(env.market.functions.claim(t0), b)  # t0 is full now
    receipt = env.tx(env.market.functions.claimSome([t0, t1], 2), a)  # a holds t0 already: only t1
    assert [(e["taskId"], e["worker"]) for e in env.events(receipt, "ReplicaClaimed")] == [(t1, a.address)]
    receipt = env.tx(env.market.functions.claimSome([t0, t1], 2), c)  # t0 full: only t1's second slot
    assert [(e["taskId"], e["worker"]) for e in env.events(receipt, "ReplicaClaimed")] == [(t1, c.address)]
    env.warp(7200)  # past the deadline: the job accepts no claim, claimSome skips it
    assert env.market.functions.claimSome([t0, t1], 2).call({"from": c.address}) == 0


def test_what_concerns_the_caller_still_reverts(env: Env) -> None:
    job = _setup(env, 1)
    stranger = env.workers[-1]
    reverts(env, env.market.functions.claimSome([task_id(job, 1)], 1), stranger, "MarketplaceNotWorker",
            {"account": stranger.address})
