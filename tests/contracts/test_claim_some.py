"""claimSome and claimFreeRange: claim the tasks that are still free, skip those others took first, never revert on
a race."""

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


def _lease(receipt: object, env: Env) -> list[tuple[int, str, int]]:
    return [(e["startTaskId"], e["worker"], e["count"]) for e in env.events(receipt, "TasksClaimed")]


def test_claim_free_range_leases_the_free_tasks_in_a_row_and_stops_at_a_taken_one(env: Env) -> None:
    job = _setup(env, 1, tasks=10)
    a, b, c = env.workers[:3]
    env.tx(env.market.functions.claim(task_id(job, 5)), a)
    fn = env.market.functions.claimFreeRange(task_id(job, 2), 6)
    assert fn.call({"from": b.address}) == 3  # 2, 3, 4: task 5 is a's
    receipt = env.tx(fn, b)
    assert _lease(receipt, env) == [(task_id(job, 2), b.address, 3)]
    assert env.worker(b)["locked"] == 3 * E18
    lease = env.market.functions.getLease(task_id(job, 2)).call()
    assert (lease[0], lease[2], lease[3]) == (b.address, 3, 0)
    # the end of the job ends the lease too: 6 .. 9, though 8 were asked for
    receipt = env.tx(env.market.functions.claimFreeRange(task_id(job, 6), 8), c)
    assert _lease(receipt, env) == [(task_id(job, 6), c.address, 4)]


def test_claim_free_range_loses_a_race_without_reverting(env: Env) -> None:
    job = _setup(env, 1, tasks=4)
    a, b = env.workers[:2]
    env.tx(env.market.functions.claimRange(task_id(job, 0), 2), a)
    for start in (0, 1):  # taken first by a: nothing claimed, no revert
        fn = env.market.functions.claimFreeRange(task_id(job, start), 2)
        assert fn.call({"from": b.address}) == 0
        receipt = env.tx(fn, b)
        assert receipt["status"] == 1 and _lease(receipt, env) == []
    assert env.worker(b)["locked"] == 0


def test_claim_free_range_fits_the_lease_in_the_deadline(env: Env) -> None:
    app = env.app()
    env.fund(env.requester, 100 * E18)
    b = env.workers[1]
    env.enroll(b)
    # claimGrace 300 s; 100 s per task; 700 s to the deadline: a lease of at most 4 tasks expires in time
    job = env.post(app, numTasks=10, maxRunSeconds=100, deadline=env.now() + 705)
    receipt = env.tx(env.market.functions.claimFreeRange(task_id(job, 0), 10), b)
    [(_, _, count)] = _lease(receipt, env)
    assert count == 4
    deadline = env.market.functions.getJob(job).call()
    expiry = env.market.functions.getLease(task_id(job, 0)).call()[1]
    assert expiry <= _deadline(env, job), (expiry, deadline)
    env.warp(706)  # past the deadline: claims nothing, no revert
    assert env.market.functions.claimFreeRange(task_id(job, 4), 2).call({"from": b.address}) == 0


def _deadline(env: Env, job: int) -> int:
    return int(dict(zip([c["name"] for c in next(
        f for f in env.market.abi if f.get("name") == "getJob")["outputs"][0]["components"]],
        env.market.functions.getJob(job).call(), strict=True))["deadline"])


def test_claim_free_range_refuses_what_no_race_explains(env: Env) -> None:
    job = _setup(env, 1, tasks=4)
    replicated = _setup(env, 2, tasks=2)
    b = env.workers[1]
    fns = env.market.functions
    reverts(env, fns.claimFreeRange(task_id(replicated, 0), 1), b, "MarketplaceWrongReplication",
            {"jobId": replicated, "replication": 2})
    reverts(env, fns.claimFreeRange(task_id(job, 0), 0), b, "MarketplaceInvalidRange", {"count": 0, "max": 1024})
    reverts(env, fns.claimFreeRange(task_id(job, 0), 1025), b, "MarketplaceInvalidRange",
            {"count": 1025, "max": 1024})
    reverts(env, fns.claimFreeRange(task_id(job, 4), 1), b, "MarketplaceTaskOutOfRange",
            {"jobId": job, "index": 4, "numTasks": 4})
    stranger = env.workers[-1]
    reverts(env, fns.claimFreeRange(task_id(job, 0), 2), stranger, "MarketplaceNotWorker",
            {"account": stranger.address})
