"""Lanes (replicated ranges of fixed-R jobs) in the SQL mirror and the verifier, on a real anvil: a unanimous
chunk settles at its last reveal, a disagreeing chunk splits into per-task rounds, an expired lane is reopened and
slashed; the rows equal the contract's views, the verifier passes every honest task and fails a lane whose reveal
does not rebuild its committed root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from test_indexer_helpers import BAD, E18, GOOD, Traffic, assert_aggregates_match, current, traffic

from indexer import Indexer, Verifier, _db, make_engine
from indexer._report import as_bytes
from indexer._verify_lanes import lane_root, list_hash
from oracle.protocol import task_id


@pytest.fixture
def t(w3, accounts, deployment) -> Traffic:
    return traffic(w3, accounts, deployment)


def _salts(n: int, worker: int) -> list[bytes]:
    return [bytes([16 * worker + i + 1]) * 32 for i in range(n)]


class Lanes:
    """Lane calls on the marketplace, each its own transaction from the lane's worker."""

    def __init__(self, t: Traffic) -> None:
        self.t = t
        self.reveal_txs: dict[str, Any] = {}

    def claim(self, start: int, count: int, w: LocalAccount) -> None:
        self.t.tx(self.t.market.functions.claimLane(start, count), w)

    def commit(self, start: int, digests: list[bytes], w: LocalAccount, root: bytes | None = None) -> None:
        computed, _ = lane_root(start, digests, _salts(len(digests), self.t.workers.index(w)), w.address)
        self.t.tx(self.t.market.functions.commitLane(start, len(digests), root or computed), w)

    def reveal(self, start: int, digests: list[bytes], w: LocalAccount) -> None:
        salts = _salts(len(digests), self.t.workers.index(w))
        cids = [f"bafy{w.address[2:8]}{i}" for i in range(len(digests))]
        receipt = self.t.tx(self.t.market.functions.revealLane(start, digests, salts, cids), w)
        self.reveal_txs[w.address] = receipt

    def run(self, start: int, lists: dict[int, list[bytes]]) -> None:
        """Every listed worker (by index) claims, commits, then reveals its lane of the chunk."""
        workers = [self.t.workers[i] for i in lists]
        for w in workers:
            self.claim(start, len(next(iter(lists.values()))), w)
        for i, w in zip(lists, workers, strict=True):
            self.commit(start, lists[i], w)
        for i, w in zip(lists, workers, strict=True):
            self.reveal(start, lists[i], w)


def _setup(t: Traffic, workers: int) -> int:
    app = t.app()
    t.fund(t.requester, 100 * E18)
    for w in t.workers[:workers]:
        t.enroll(w)
    return app


def _warp(t: Traffic, seconds: int) -> None:
    t.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    t.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def _sync(t: Traffic, tmp_path: Path) -> Any:
    ix = Indexer(make_engine(str(tmp_path / "lanes.db")), t.w3, t.market.address)
    ix.sync()
    return ix.engine


def _assert_rows_match_chain(engine: Any, t: Traffic, chunks: dict[int, int]) -> None:
    """Workers (stake, locked, reputation, slashes, verified, earned = marketplace balance), jobs (counts and
    escrow) and tasks (a chunk's unsplit tasks against the chunk's round, the others against their own) equal the
    contract's views."""
    for row in current(engine, _db.workers):
        if row["address"] not in {w.address for w in t.workers}:
            continue
        w = t.market.functions.getWorker(row["address"]).call()
        assert (row["stake"], row["locked"], row["reputation"], row["slashes"], row["verified"]) == \
            (w[0], w[1], w[2], w[3], w[11]), row["address"]
        assert row["earned"] == t.market.functions.balanceOf(row["address"]).call(), row["address"]
    for row in current(engine, _db.jobs):
        j = t.market.functions.getJob(row["job_id"]).call()
        assert row["escrow_held"] == t.market.functions.jobEscrow(row["job_id"]).call()
        assert (row["settled"], row["finished"], row["closed"]) == (j[7], j[8], bool(j[14] & 1))
    for row in current(engine, _db.tasks):
        start = row["lease_start"]
        own = t.market.functions.getTask(row["task_id"]).call()
        if own[0] == 0 and row["status"] == "open":  # free again (its chunk dissolved): no round anywhere
            assert start is None and row["occupied"] == 0, row
            continue
        if own[0] == 0:  # never a round of its own: the chunk's round stands for it
            assert start in chunks, row
            own = t.market.functions.getTask(t.market.functions.laneKey(start, chunks[start]).call()).call()
        status = {1: ("running", "revealing"), 2: ("finalized",), 3: ("failed",)}[own[0]]
        assert row["status"] in status, row
        if own[0] == 1:
            assert (row["target"], row["occupied"], row["committed"]) == \
                (own[1], own[2].bit_count(), own[3].bit_count()), row
    assert_aggregates_match(engine)


def test_a_unanimous_chunk_settles_at_once_in_the_mirror_and_verifies(t: Traffic, tmp_path: Path) -> None:
    app = _setup(t, 2)
    job = t.post(app, n=3, r=2)
    start = task_id(job, 0)
    lanes = Lanes(t)
    lanes.run(start, {0: [GOOD, BAD, GOOD], 1: [GOOD, BAD, GOOD]})
    assert t.market.functions.getJob(job).call()[8] == 3  # finished: the last reveal settled the chunk

    engine = _sync(t, tmp_path)
    _assert_rows_match_chain(engine, t, {start: 3})
    tasks = sorted(current(engine, _db.tasks, job_id=job), key=lambda r: r["task_id"])
    assert [(r["status"], r["winners"], r["lease_start"]) for r in tasks] == [("finalized", 2, start)] * 3
    assert [r["result_digest"] for r in tasks] == ["0x" + d.hex() for d in (GOOD, BAD, GOOD)]
    reps = current(engine, _db.replicas, job_id=job)
    assert len(reps) == 6 and {r["status"] for r in reps} == {"won"}
    assert sorted((r["task_id"], r["slot"]) for r in reps) == [(start + i, s) for i in range(3) for s in (0, 1)]
    pool = 2 * E18
    share = (pool - pool * t.market.functions.params().call()[7] // 10_000) // 2
    assert {r["reward_each"] for r in tasks} == {share}
    assert {r["reward"] for r in reps} == {share}
    for w in t.workers[:2]:
        row = current(engine, _db.workers, address=w.address)[0]
        assert (row["locked"], row["reputation"], row["verified"], row["earned"], row["tasks_done"]) == \
            (0, 3, 3, 3 * share, 3)
    assert current(engine, _db.jobs, job_id=job)[0]["closed"] is True

    v = Verifier(t.w3, t.market.address, None)
    for i in range(3):
        report = v.task(start + i)
        assert report.status == "finalized" and report.passed, [c for c in report.checks if not c.passed]
        names = [c.name for c in report.checks]
        for name in ("commit_authorized", "reveal_authorized", "lane_root", "lane_entry", "lane_settle", "majority",
                     "reward", "slashes"):
            assert name in names, (name, names)
        assert names.count("lane_root") == 2
    audit = v.job(job)
    assert audit.passed, [(r.id, r.failed) for r in audit.tasks if not r.passed] + [audit.checks]
    assert [r.id for r in audit.tasks] == [start, start + 1, start + 2]
    assert [c.name for c in audit.checks] == ["job_close"]
    assert audit.counts["succeeded"] == 3 and audit.counts["unsettled"] == 0


def test_a_disagreeing_chunk_splits_into_per_task_rounds(t: Traffic, tmp_path: Path) -> None:
    app = _setup(t, 3)
    job = t.post(app, n=4, r=3)  # one task stays out of the chunk: the job stays open
    start = task_id(job, 0)
    lanes = Lanes(t)
    honest = [GOOD, GOOD, BAD]
    liar = [GOOD, BAD, BAD]  # lies on the chunk's second task
    lanes.run(start, {0: honest, 1: honest, 2: liar})
    assert t.market.functions.getJob(job).call()[8] == 0  # disagreement: nothing settled
    t.tx(t.market.functions.splitLanes(start, 3, [honest, honest, liar]), t.relayer)
    stake = t.market.functions.params().call()[6]

    engine = _sync(t, tmp_path)
    _assert_rows_match_chain(engine, t, {start: 3})
    tasks = {r["idx"]: r for r in current(engine, _db.tasks, job_id=job)}
    assert sorted(tasks) == [0, 1, 2]
    assert [(tasks[i]["status"], tasks[i]["winners"]) for i in range(3)] == [("finalized", 3), ("finalized", 2),
                                                                             ("finalized", 3)]
    lost = [r for r in current(engine, _db.replicas, job_id=job) if r["status"] == "lost"]
    assert [(r["task_id"], r["worker"], r["slashed"]) for r in lost] == [(start + 1, t.workers[2].address, stake)]
    slashes = current(engine, _db.workers, address=t.workers[2].address)[0]
    assert (slashes["slashes"], slashes["slashed"], slashes["locked"]) == (1, stake, 0)

    v = Verifier(t.w3, t.market.address, None)
    report = v.task(start + 1)
    assert report.status == "finalized" and report.passed, [c for c in report.checks if not c.passed]
    names = [c.name for c in report.checks]
    assert "lane_split" in names and "lane_settle" not in names
    slash = next(c for c in report.checks if c.name == "slashes")
    assert slash.evidence["actual"] == [t.workers[2].address]
    audit = v.job(job)
    assert audit.passed, [(r.id, r.failed) for r in audit.tasks if not r.passed]
    assert [r.id for r in audit.tasks] == [start, start + 1, start + 2]


def test_an_expired_lane_is_reopened_slashed_once_and_the_chunk_settles(t: Traffic, tmp_path: Path) -> None:
    app = _setup(t, 3)
    job = t.post(app, n=2, r=2, max_run=600)
    start = task_id(job, 0)
    lanes = Lanes(t)
    late = t.workers[2]
    lanes.claim(start, 2, late)
    grace = t.market.functions.params().call()[1]
    _warp(t, 2 * 600 + grace + 5)
    t.tx(t.market.functions.reopenLanes(start, 2), t.relayer)
    lanes.run(start, {0: [GOOD, BAD], 1: [GOOD, BAD]})
    stake = t.market.functions.params().call()[6]

    engine = _sync(t, tmp_path)
    _assert_rows_match_chain(engine, t, {start: 2})
    expired = [r for r in current(engine, _db.replicas, job_id=job) if r["worker"] == late.address]
    assert sorted((r["task_id"], r["status"], r["slashed"]) for r in expired) == \
        [(start, "expired", stake), (start + 1, "expired", stake)]
    with engine.connect() as conn:
        rows = conn.execute(_db.slashes.select()).mappings().all()
    assert [(r["worker"], r["task_id"], r["amount"]) for r in rows] == [(late.address, start, 2 * stake)]
    row = current(engine, _db.workers, address=late.address)[0]
    assert (row["locked"], row["slashes"], row["slashed"], row["active_claims"]) == (0, 1, 2 * stake, 0)
    tasks = current(engine, _db.tasks, job_id=job)
    assert {(r["status"], r["claims"], r["occupied"]) for r in tasks} == {("finalized", 3, 0)}

    v = Verifier(t.w3, t.market.address, None)
    for tid in (start, start + 1):
        report = v.task(tid)
        assert report.passed, [c for c in report.checks if not c.passed]
        lane_slash = next(c for c in report.checks if c.name == "lane_slashes")
        assert lane_slash.evidence["actual"] == [late.address] and lane_slash.evidence["amounts"] == [str(2 * stake)]
    assert v.job(job).passed


def test_the_verifier_fails_a_lane_reveal_that_does_not_rebuild_its_root(t: Traffic, tmp_path: Path) -> None:
    """The contract refuses a reveal that does not open the committed root (a tampered root cannot reach the
    chain), so the negative is the verifier's own recomputation: the honest calldata rebuilds the root of the
    LaneCommitted event, and the same reveal with one salt or one digest altered (as a lying node or a forged
    transaction would serve it) fails ``lane_root``."""
    app = _setup(t, 2)
    job = t.post(app, n=2, r=2)
    start = task_id(job, 0)
    lanes = Lanes(t)
    lanes.run(start, {0: [GOOD, BAD], 1: [GOOD, BAD]})
    w = t.workers[1]
    salts = _salts(2, 1)
    root, _ = lane_root(start, [GOOD, BAD], salts, w.address)
    committed = t.market.events.LaneCommitted().get_logs(from_block=0, argument_filters={"worker": w.address})
    assert bytes(committed[0]["args"]["root"]) == root
    assert lane_root(start, [GOOD, GOOD], salts, w.address)[0] != root
    assert lane_root(start, [GOOD, BAD], salts[::-1], w.address)[0] != root
    assert lane_root(start, [GOOD, BAD], salts, t.workers[0].address)[0] != root
    revealed = t.market.events.LaneRevealed().get_logs(from_block=0, argument_filters={"worker": w.address})
    assert bytes(revealed[0]["args"]["listHash"]) == list_hash([GOOD, BAD])

    v = Verifier(t.w3, t.market.address, None)
    assert v.task(start + 1).passed
    tx = "0x" + bytes(lanes.reveal_txs[w.address]["transactionHash"]).hex()
    sender, calls = v._calls(tx)
    args = dict(calls[0].args)
    for tampered in ({"salts": [salts[0], b"\x00" * 32]}, {"resultDigests": [GOOD, GOOD]}):
        v._tx_cache[tx] = (sender, [calls[0]._replace(args={**args, **tampered})])
        report = v.task(start + 1)
        assert not report.passed
        failed = {c.name for c in report.failed}
        assert "lane_root" in failed, failed
        check = next(c for c in report.failed if c.name == "lane_root")
        assert check.subject == w.address and check.evidence["committed"] == "0x" + root.hex()
        assert as_bytes(check.evidence["recomputed"]) != root
    # a reveal's entry that differs from the task's ResultRevealed fails lane_entry even when the root holds
    v._tx_cache[tx] = (sender, [calls[0]._replace(args={**args, "resultCIDs": ["bafyX", "bafyY"]})])
    assert {c.name for c in v.task(start + 1).failed} == {"lane_entry"}


def test_lanes_left_when_the_job_closes_are_released_or_slashed(t: Traffic, tmp_path: Path) -> None:
    app = _setup(t, 2)
    job = t.post(app, n=2, r=2)
    start = task_id(job, 0)
    lanes = Lanes(t)
    done, silent = t.workers[0], t.workers[1]
    lanes.claim(start, 2, done)
    lanes.claim(start, 2, silent)
    lanes.commit(start, [GOOD, GOOD], done)
    _warp(t, 10**8 + 10)  # past the job's deadline
    t.tx(t.market.functions.closeJob(job), t.relayer)
    t.tx(t.market.functions.releaseLanes(start, 2), t.relayer)
    stake = t.market.functions.params().call()[6]

    engine = _sync(t, tmp_path)
    _assert_rows_match_chain(engine, t, {start: 2})
    reps = current(engine, _db.replicas, job_id=job)
    assert sorted((r["task_id"], r["worker"], r["status"], r["slashed"]) for r in reps) == sorted(
        [(start + i, w.address, "released", s) for i in range(2) for w, s in ((done, 0), (silent, stake))])
    assert {r["status"] for r in current(engine, _db.tasks, job_id=job)} == {"failed"}
    assert current(engine, _db.workers, address=silent.address)[0]["slashed"] == 2 * stake

    v = Verifier(t.w3, t.market.address, None)
    report = v.task(start + 1)
    assert report.status == "failed" and report.passed, [c for c in report.checks if not c.passed]
    assert next(c for c in report.checks if c.name == "lane_slashes").evidence["actual"] == [silent.address]
    audit = v.job(job)
    assert audit.passed and audit.status == "closed", [audit.checks, [r.failed for r in audit.tasks]]
    assert [c.name for c in audit.checks] == ["job_close"]


def test_a_split_task_without_a_majority_gets_replicas_claimed_per_task(t: Traffic, tmp_path: Path) -> None:
    app = _setup(t, 4)
    assert t.market.functions.params().call()[8] >= 4  # maxReplicas: room for two more
    job = t.post(app, n=2, r=2)
    start, disputed = task_id(job, 0), task_id(job, 1)
    lanes = Lanes(t)
    lanes.run(start, {0: [GOOD, GOOD], 1: [GOOD, BAD]})
    t.tx(t.market.functions.splitLanes(start, 2, [[GOOD, GOOD], [GOOD, BAD]]), t.relayer)
    assert t.market.functions.getTask(disputed).call()[1] == 4  # 1 against 1: two replicas added
    for w in t.workers[2:4]:
        t.claim(disputed, w)
    for w in t.workers[2:4]:
        t.commit(disputed, w, GOOD)
    for w in t.workers[2:4]:
        t.reveal(disputed, w, GOOD)
    stake = t.market.functions.params().call()[6]

    engine = _sync(t, tmp_path)
    _assert_rows_match_chain(engine, t, {start: 2})
    task = current(engine, _db.tasks, task_id=disputed)[0]
    assert (task["status"], task["winners"], task["target"], task["claims"]) == ("finalized", 3, 4, 4)
    reps = sorted((r["slot"], r["worker"], r["status"], r["slashed"])
                  for r in current(engine, _db.replicas, task_id=disputed))
    assert reps == [(0, t.workers[0].address, "won", 0), (1, t.workers[1].address, "lost", stake),
                    (2, t.workers[2].address, "won", 0), (3, t.workers[3].address, "won", 0)]

    v = Verifier(t.w3, t.market.address, None)
    report = v.task(disputed)
    assert report.passed, [c for c in report.checks if not c.passed]
    majority = [c for c in report.checks if c.name == "majority"]
    assert len(majority) == 2 and majority[0].detail.startswith("no strict majority")
    assert [c.name for c in report.checks].count("commitment") == 2  # the per-task replicas' own commitments
    assert v.job(job).passed


def test_a_dissolved_chunk_frees_its_tasks_in_the_mirror_and_they_verify_per_task(t: Traffic, tmp_path: Path) -> None:
    app = _setup(t, 3)
    job = t.post(app, n=3, r=2)
    start = task_id(job, 0)
    lanes = Lanes(t)
    lone = t.workers[0]
    lanes.claim(start, 3, lone)
    lanes.commit(start, [GOOD, GOOD, GOOD], lone)  # committed, but its other lane never comes
    grace = t.market.functions.params().call()[1]
    _warp(t, grace + 1)
    t.tx(t.market.functions.dissolveLanes(start, 3), t.relayer)
    # the tasks go on per task: the lone lane's worker and another claim, commit and reveal one of them
    tid = start + 1
    for w in (lone, t.workers[1]):
        t.claim(tid, w)
    for w in (lone, t.workers[1]):
        t.commit(tid, w, GOOD)
    for w in (lone, t.workers[1]):
        t.reveal(tid, w, GOOD)

    engine = _sync(t, tmp_path)
    _assert_rows_match_chain(engine, t, {})
    tasks = {r["task_id"]: r for r in current(engine, _db.tasks, job_id=job)}
    assert [(tasks[s + start]["status"], tasks[s + start]["lease_start"], tasks[s + start]["occupied"])
            for s in (0, 2)] == [("open", None, 0)] * 2
    assert (tasks[tid]["status"], tasks[tid]["winners"]) == ("finalized", 2)
    dissolved = [r for r in current(engine, _db.replicas, job_id=job) if r["status"] == "dissolved"]
    assert sorted((r["task_id"], r["worker"], r["slashed"]) for r in dissolved) == \
        [(start + i, lone.address, 0) for i in range(3)]
    row = current(engine, _db.workers, address=lone.address)[0]
    assert (row["locked"], row["slashes"], row["active_claims"]) == (0, 0, 0)

    report = Verifier(t.w3, t.market.address, None).task(tid)
    assert report.status == "finalized" and report.passed, [c for c in report.checks if not c.passed]
    names = [c.name for c in report.checks]
    assert "lane_dissolve" in names and "lane_settle" not in names and "majority" in names


def _checked_lease(t: Traffic, lists: dict[int, list[bytes]]) -> tuple[int, int, Lanes]:
    """Credibility mode, check lanes: worker 0 and worker 1 earn 2 verified results each on an R = 2 job (credible
    alone at confidence 0.9 assuming 20 % faulty); worker 0 leases the 3 tasks of a job whose spot checks are always
    on and commits ``lists[0]``; the lease is checked whole (``checkLease``, by a third party); worker 1 runs the
    check lane with ``lists[1]``; both reveal. Returns (job, first task, the lanes helper)."""
    app = _setup(t, 4)
    vet, partner = t.workers[:2]
    warm = t.post(app, n=2, r=2)
    for i in range(2):
        t.replicated(task_id(warm, i), [vet, partner], [GOOD, GOOD])
    job = t.post_credible(app, 900_000_000, 2000, 10_000, n=3, cap=4)
    start = task_id(job, 0)
    t.claim_range(start, 3, vet)
    root, _ = lane_root(start, lists[0], _salts(3, 0), vet.address)
    committed = t.tx(t.market.functions.commitRange(start, root), vet)
    t.tx(t.market.functions.checkLease(start, root, committed["blockNumber"]), t.relayer)
    lanes = Lanes(t)
    lanes.claim(start, 3, partner)
    lanes.commit(start, lists[1], partner)
    lanes.reveal(start, lists[0], vet)
    lanes.reveal(start, lists[1], partner)
    return job, start, lanes


def test_a_lease_checked_whole_settles_as_a_chunk_in_the_mirror_and_verifies(t: Traffic, tmp_path: Path) -> None:
    job, start, _ = _checked_lease(t, {0: [GOOD, BAD, GOOD], 1: [GOOD, BAD, GOOD]})
    assert t.market.functions.getJob(job).call()[8] == 3  # the check lane's reveal settled the lease's tasks

    engine = _sync(t, tmp_path)
    _assert_rows_match_chain(engine, t, {start: 3})
    tasks = sorted(current(engine, _db.tasks, job_id=job), key=lambda r: r["task_id"])
    assert [(r["status"], r["target"], r["winners"], r["wanted"]) for r in tasks] == \
        [("finalized", 2, 2, "spot-check")] * 3
    reps = current(engine, _db.replicas, job_id=job)
    assert sorted((r["task_id"], r["status"]) for r in reps) == sorted(
        [(start + i, "checked") for i in range(3)] + [(start + i, "won") for i in range(3) for _ in range(2)])
    for w in t.workers[:2]:
        row = current(engine, _db.workers, address=w.address)[0]
        assert (row["locked"], row["verified"]) == (0, 5)  # 2 from the warm-up job, 3 from the check

    v = Verifier(t.w3, t.market.address, None)
    report = v.task(start + 1)
    assert report.status == "finalized" and report.passed, [c for c in report.checks if not c.passed]
    names = [c.name for c in report.checks]
    for name in ("lease_check", "commit_authorized", "reveal_authorized", "lane_root", "lane_entry", "lane_settle",
                 "credibility", "reward", "unused_refund"):
        assert name in names, (name, names)
    check = next(c for c in report.checks if c.name == "lease_check")
    assert check.evidence["lane_sized"] is True and check.evidence["spot_check_bps"] == 10_000
    audit = v.job(job)
    assert audit.passed, [(r.id, r.failed) for r in audit.tasks if not r.passed] + [audit.checks]


def test_a_liar_caught_by_a_check_lane_is_split_disputed_and_slashed(t: Traffic, tmp_path: Path) -> None:
    lie, truth = [GOOD, BAD, GOOD], [GOOD, GOOD, GOOD]
    job, start, _ = _checked_lease(t, {0: lie, 1: truth})
    assert t.market.functions.getJob(job).call()[8] == 0  # the lists differ: nothing settled
    t.tx(t.market.functions.splitLanes(start, 3, [lie, truth]), t.relayer)
    disputed = start + 1
    for w in t.workers[2:4]:  # every replica weighs as new in the dispute: 3 honest ones outweigh the liar
        t.claim_commit(disputed, w, GOOD)
        t.reveal(disputed, w, GOOD)
    assert t.market.functions.getJob(job).call()[8] == 3

    engine = _sync(t, tmp_path)
    _assert_rows_match_chain(engine, t, {start: 3})
    tasks = {r["idx"]: r for r in current(engine, _db.tasks, job_id=job)}
    assert [(tasks[i]["status"], tasks[i]["winners"]) for i in range(3)] == [("finalized", 2), ("finalized", 3),
                                                                             ("finalized", 2)]
    liar = current(engine, _db.workers, address=t.workers[0].address)[0]
    assert (liar["slashes"], liar["verified"], liar["locked"]) == (1, 0, 0)

    v = Verifier(t.w3, t.market.address, None)
    report = v.task(disputed)
    assert report.status == "finalized" and report.passed, [c for c in report.checks if not c.passed]
    names = [c.name for c in report.checks]
    assert "lane_split" in names and "lane_settle" not in names and "lease_check" in names
    assert [c.evidence["moment"] for c in report.checks if c.name == "replica_wanted"] == ["settlement"] * 2
    slash = next(c for c in report.checks if c.name == "slashes")
    assert slash.evidence["actual"] == [t.workers[0].address]
    audit = v.job(job)
    assert audit.passed, [(r.id, r.failed) for r in audit.tasks if not r.passed] + [audit.checks]
