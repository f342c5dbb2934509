"""Homogeneous redundancy: a job whose archMask has bit 7 set binds each task to the platform class of its first
replica; a worker of another class (or none) cannot join it. Replica claims, claimSome and credibility mode
enforce it; jobs without the bit, and R = 1 range claims, are unaffected."""

from __future__ import annotations

from typing import Any

import pytest
from market_helpers import E18, Env, reverts

from oracle.protocol import ARCH_AMD64, ARCH_HOMOGENEOUS, commitment, platform_class_bytes, platform_class_name, task_id

A = platform_class_bytes("amd64-a")
B = platform_class_bytes("amd64-b")
ZERO = b"\0" * 32
SALT = b"\x5a" * 32


def h(cls: bytes) -> str:
    """A bytes32 as a decoded revert argument shows it."""
    return "0x" + cls.hex()


@pytest.fixture
def app(env: Env) -> int:
    app = env.app()
    env.fund(env.requester, 1000 * E18)
    for w, cls in zip(env.workers[:4], (A, A, B, B), strict=True):
        env.enroll(w)
        env.tx(env.market.functions.setPlatformClass(cls), w)
    return app


def claim(env: Env, tid: int, who: Any) -> Any:
    return env.tx(env.market.functions.claim(tid), who)


def test_set_platform_class_is_stored_and_emitted(env: Env) -> None:
    w = env.workers[0]
    env.enroll(w, stake=0)
    receipt = env.tx(env.market.functions.setPlatformClass(A), w)
    assert env.events(receipt, "WorkerPlatformClassSet") == [{"worker": w.address, "platformClass": A}]
    print(f"setPlatformClass gas {receipt['gasUsed']}")
    assert env.market.functions.platformClassOf(w.address).call() == A
    assert platform_class_name(env.market.functions.platformClassOf(w.address).call()) == "amd64-a"
    reverts(env, env.market.functions.setPlatformClass(A), env.outsider, "MarketplaceNotWorker",
            {"account": env.outsider.address})


def test_first_replica_binds_and_another_class_reverts_naming_both(env: Env, app: int) -> None:
    a1, a2, b1, _ = env.workers[:4]
    job = env.post(app, numTasks=2, replication=3, maxRunSeconds=100, archMask=ARCH_HOMOGENEOUS)
    tid = task_id(job, 1)
    receipt = claim(env, tid, b1)
    assert env.events(receipt, "TaskPlatformClassBound") == [{"taskId": tid, "platformClass": B}]
    assert env.market.functions.taskPlatformClass(tid).call() == B
    reverts(env, env.market.functions.claim(tid), a1, "MarketplacePlatformClassMismatch",
            {"jobId": job, "taskIndex": 1, "bound": h(B), "yours": h(A)})
    # the other task is still free: the first class to claim it binds it
    t0 = task_id(job, 0)
    claim(env, t0, a1)
    claim(env, t0, a2)
    assert env.market.functions.taskPlatformClass(t0).call() == A
    # a later replica of the same class joins without a second binding event
    receipt = claim(env, tid, env.workers[3])
    assert env.events(receipt, "TaskPlatformClassBound") == []
    assert env.task(tid)["occupied"] == 0b11


def test_a_worker_without_a_class_cannot_claim_a_homogeneous_task(env: Env, app: int) -> None:
    plain = env.workers[4]
    env.enroll(plain)
    job = env.post(app, replication=2, maxRunSeconds=100, archMask=ARCH_HOMOGENEOUS)
    tid = task_id(job, 0)
    reverts(env, env.market.functions.claim(tid), plain, "MarketplacePlatformClassMismatch",
            {"jobId": job, "taskIndex": 0, "bound": h(ZERO), "yours": h(ZERO)})
    claim(env, tid, env.workers[0])
    reverts(env, env.market.functions.claimSome([tid], 1), plain, "MarketplacePlatformClassMismatch",
            {"jobId": job, "taskIndex": 0, "bound": h(A), "yours": h(ZERO)})


def test_claim_some_skips_tasks_bound_to_another_class(env: Env, app: int) -> None:
    a1, _, b1, _ = env.workers[:4]
    job = env.post(app, numTasks=2, replication=2, maxRunSeconds=100, archMask=ARCH_HOMOGENEOUS)
    t0, t1 = task_id(job, 0), task_id(job, 1)
    claim(env, t0, a1)
    receipt = env.tx(env.market.functions.claimSome([t0, t1], 2), b1)
    assert [(e["taskId"], e["worker"]) for e in env.events(receipt, "ReplicaClaimed")] == [(t1, b1.address)]
    assert env.market.functions.taskPlatformClass(t1).call() == B


def test_the_binding_outlives_a_class_change_and_an_expired_claim(env: Env, app: int) -> None:
    a1, a2, b1, _ = env.workers[:4]
    job = env.post(app, replication=2, maxRunSeconds=100, archMask=ARCH_HOMOGENEOUS)
    tid = task_id(job, 0)
    claim(env, tid, a1)
    env.tx(env.market.functions.setPlatformClass(B), a2)  # a worker changing class cannot carry a bound task with it
    reverts(env, env.market.functions.claim(tid), a2, "MarketplacePlatformClassMismatch",
            {"jobId": job, "taskIndex": 0, "bound": h(A), "yours": h(B)})
    env.warp(100 + env.params()["claimGrace"] + 1)
    env.tx(env.market.functions.reopenExpired(tid), b1)  # a1's claim expired: the slot is free, the class stays
    assert env.market.functions.taskPlatformClass(tid).call() == A
    reverts(env, env.market.functions.claim(tid), b1, "MarketplacePlatformClassMismatch",
            {"jobId": job, "taskIndex": 0, "bound": h(A), "yours": h(B)})


def test_credibility_mode_adds_replicas_of_the_bound_class_only(env: Env, app: int) -> None:
    a1, a2, b1, _ = env.workers[:4]
    job = env.post_credible(app, 990_000_000, 1000, numTasks=1, replication=4, maxRunSeconds=100,
                            archMask=ARCH_HOMOGENEOUS | ARCH_AMD64)
    tid = task_id(job, 0)
    claim(env, tid, b1)
    assert env.market.functions.taskPlatformClass(tid).call() == B
    receipt = env.tx(env.market.functions.commit(tid, commitment(tid, b"\x60" * 32, SALT, b1.address)), b1)
    assert env.events(receipt, "ReplicaWanted")  # a new worker alone is not credible: one more replica
    reverts(env, env.market.functions.claim(tid), a1, "MarketplacePlatformClassMismatch",
            {"jobId": job, "taskIndex": 0, "bound": h(B), "yours": h(A)})
    claim(env, tid, env.workers[3])  # the same class joins
    del a2


def test_jobs_without_the_bit_are_unaffected(env: Env, app: int) -> None:
    a1, _, b1, _ = env.workers[:4]
    plain = env.workers[4]
    env.enroll(plain)  # no class declared
    job = env.post(app, replication=3, maxRunSeconds=100)
    tid = task_id(job, 0)
    for w in (a1, b1, plain):
        receipt = claim(env, tid, w)
        assert env.events(receipt, "TaskPlatformClassBound") == []
    assert env.market.functions.taskPlatformClass(tid).call() == ZERO


def test_bit_7_is_no_architecture_and_r1_range_claims_ignore_it(env: Env, app: int) -> None:
    plain = env.workers[4]
    env.enroll(plain, arch=ARCH_AMD64)  # no class: R = 1 has one replica per task, nothing to keep homogeneous
    job = env.post(app, numTasks=4, replication=1, maxRunSeconds=100, archMask=ARCH_HOMOGENEOUS | ARCH_AMD64)
    receipt = env.tx(env.market.functions.claimRange(task_id(job, 0), 4), plain)
    assert len(env.events(receipt, "TasksClaimed")) == 1 and env.events(receipt, "TaskPlatformClassBound") == []
    # an arm64-only worker still fails the architecture bits, whatever bit 7 says
    arm = plain
    env.tx(env.market.functions.registerWorker(8, 16_000, 0, 2), arm)
    job2 = env.post(app, replication=2, maxRunSeconds=100, archMask=ARCH_HOMOGENEOUS | ARCH_AMD64)
    env.tx(env.market.functions.setPlatformClass(A), arm)
    reverts(env, env.market.functions.claim(task_id(job2, 0)), arm, "MarketplaceCapabilityMismatch",
            {"worker": arm.address, "jobId": job2})
    # bit 7 alone means any architecture
    job3 = env.post(app, replication=2, maxRunSeconds=100, archMask=ARCH_HOMOGENEOUS)
    claim(env, task_id(job3, 0), arm)


def test_gas_of_a_homogeneous_claim(env: Env, app: int) -> None:
    """The extra gas of HR claims (PROTOCOL.md quotes these): first replica binds (one SSTORE), later ones read."""
    a1, a2, _, _ = env.workers[:4]
    hr = env.post(app, numTasks=1, replication=2, maxRunSeconds=100, archMask=ARCH_HOMOGENEOUS)
    plain = env.post(app, numTasks=1, replication=2, maxRunSeconds=100)
    gas = {}
    for name, job in (("hr", hr), ("plain", plain)):
        gas[name] = [claim(env, task_id(job, 0), w)["gasUsed"] for w in (a1, a2)]
    first, later = gas["hr"][0] - gas["plain"][0], gas["hr"][1] - gas["plain"][1]
    print(f"HR claim extra gas: first replica {first}, later replica {later}")
    assert 20_000 < first < 30_000 and 0 < later < 6_000
