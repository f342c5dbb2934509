"""Posting jobs (escrow, access, validation), cancelling unclaimed tasks, closing after the deadline."""

from __future__ import annotations

from market_helpers import E18, Env, reverts

from oracle.protocol import task_id


def test_post_job_locks_escrow_and_emits_all_parameters(env: Env) -> None:
    app = env.app(price=E18 // 10)
    ds = env.dataset(price=E18 // 20)
    env.fund(env.requester, 100 * E18)
    params = env.job_params(app, datasetId=ds, numTasks=4, replication=3, reward=E18, inputsCID="bafyIN",
                            encryptionKey=b"\x01\x02")
    receipt = env.tx(env.market.functions.postJob(params), env.requester)
    per_task = 3 * E18 + E18 // 10 + E18 // 20
    ev = env.events(receipt, "JobPosted")[0]
    assert ev["jobId"] == 1 and ev["requester"] == env.requester.address and ev["escrow"] == 4 * per_task
    assert (ev["params"]["inputsCID"], ev["params"]["encryptionKey"], ev["params"]["numTasks"]) == ("bafyIN", b"\x01\x02", 4)
    assert env.balance(env.requester) == 100 * E18 - 4 * per_task
    assert env.market.functions.jobEscrow(1).call() == 4 * per_task
    job = env.job(1)
    assert (job["numTasks"], job["replication"], job["ownersPrice"], job["replicaStake"]) == (
        4, 3, E18 // 10 + E18 // 20, E18)


def test_post_job_validates_its_parameters(env: Env) -> None:
    app = env.app()
    env.fund(env.requester, 100 * E18)
    post = env.market.functions.postJob
    r = env.requester
    reverts(env, post(env.job_params(app, numTasks=0)), r, "MarketplaceInvalidTaskCount", {"numTasks": 0})
    reverts(env, post(env.job_params(app, replication=0)), r, "MarketplaceInvalidReplication",
            {"replication": 0, "max": 9})
    reverts(env, post(env.job_params(app, replication=10)), r, "MarketplaceInvalidReplication",
            {"replication": 10, "max": 9})
    now = env.now()
    reverts(env, post(env.job_params(app, deadline=now - 1)), r, "MarketplaceInvalidDeadline")
    reverts(env, post(env.job_params(app, maxRunSeconds=0)), r, "MarketplaceInvalidMaxRun", {"maxRunSeconds": 0})
    reverts(env, post(env.job_params(app, callback=env.outsider.address)), r, "MarketplaceCallbackNotContract",
            {"callback": env.outsider.address})
    reverts(env, post(env.job_params(app, numTasks=1000, reward=E18)), r, "MarketplaceInsufficientBalance",
            {"account": r.address, "balance": 100 * E18, "needed": 1000 * E18})


def test_post_job_rejects_owner_prices_beyond_80_bits(env: Env) -> None:
    app = env.app(price=2**88 - 1)
    env.fund(env.requester, E18)
    reverts(env, env.market.functions.postJob(env.job_params(app)), env.requester, "MarketplacePriceTooHigh",
            {"price": 2**88 - 1, "max": 2**80 - 1})


def test_cancel_unclaimed_tasks_refunds_at_once(env: Env) -> None:
    app = env.app()
    env.fund(env.requester, 10 * E18)
    job = env.post(app, numTasks=10)
    receipt = env.tx(env.market.functions.cancelTasks(job, 2, 5), env.requester)
    assert env.events(receipt, "TasksCancelled") == [{"jobId": job, "firstIndex": 2, "count": 5, "refund": 5 * E18}]
    assert env.balance(env.requester) == 5 * E18
    assert env.market.functions.isTaken(task_id(job, 4)).call()
    assert not env.market.functions.isTaken(task_id(job, 7)).call()
    assert env.job(job)["settled"] == 5


def test_cancelling_every_task_closes_the_job(env: Env) -> None:
    app = env.app()
    env.fund(env.requester, 3 * E18)
    job = env.post(app, numTasks=3)
    receipt = env.tx(env.market.functions.cancelTasks(job, 0, 3), env.requester)
    assert env.events(receipt, "JobClosed") == [{"jobId": job, "refund": 0, "appPaid": 0, "datasetPaid": 0}]
    assert env.balance(env.requester) == 3 * E18
    reverts(env, env.market.functions.cancelTasks(job, 0, 1), env.requester, "MarketplaceJobClosed", {"jobId": job})


def test_cancel_fails_for_claimed_foreign_or_bad_ranges(env: Env) -> None:
    app = env.app()
    env.fund(env.requester, 10 * E18)
    job = env.post(app, numTasks=4)
    env.enroll(env.workers[0])
    env.tx(env.market.functions.claim(task_id(job, 1)), env.workers[0])
    cancel = env.market.functions.cancelTasks
    reverts(env, cancel(job, 0, 2), env.requester, "MarketplaceTaskTaken", {"taskId": task_id(job, 1)})
    reverts(env, cancel(job, 0, 1), env.outsider, "MarketplaceNotRequester", {"jobId": job, "caller": env.outsider.address})
    reverts(env, cancel(job, 0, 0), env.requester, "MarketplaceInvalidRange", {"count": 0, "max": 4})
    reverts(env, cancel(job, 3, 2), env.requester, "MarketplaceTaskOutOfRange", {"jobId": job, "index": 4, "numTasks": 4})
    reverts(env, cancel(99, 0, 1), env.requester, "MarketplaceUnknownJob", {"jobId": 99})


def test_close_job_after_deadline_refunds_unfinished_and_pays_owners(env: Env) -> None:
    app = env.app(price=E18 // 10)
    ds = env.dataset(price=E18 // 100)
    env.fund(env.requester, 10 * E18)
    deadline = env.now() + 10_000
    job = env.post(app, datasetId=ds, numTasks=3, deadline=deadline, maxRunSeconds=100)
    w = env.workers[0]
    env.enroll(w)
    tid = task_id(job, 0)
    env.tx(env.market.functions.claim(tid), w)
    env.tx(env.market.functions.submit(tid, b"\x01" * 32, "bafyR", b""), w)
    reverts(env, env.market.functions.closeJob(job), env.outsider, "MarketplaceDeadlineNotReached",
            {"jobId": job, "deadline": deadline})
    env.warp(10_001)
    receipt = env.tx(env.market.functions.closeJob(job), env.outsider)
    per_task = E18 + E18 // 10 + E18 // 100
    assert env.events(receipt, "JobClosed") == [
        {"jobId": job, "refund": 2 * per_task, "appPaid": E18 // 10, "datasetPaid": E18 // 100}]
    assert env.balance(env.app_owner) == E18 // 10
    assert env.balance(env.dataset_owner) == E18 // 100
    assert env.market.functions.jobEscrow(job).call() == 0
    reverts(env, env.market.functions.closeJob(job), env.outsider, "MarketplaceJobClosed", {"jobId": job})
    reverts(env, env.market.functions.closeJob(7), env.outsider, "MarketplaceUnknownJob", {"jobId": 7})
