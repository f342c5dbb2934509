"""Hypothesis stateful test: random deposits, posts, claims, commits, reveals, expiries, finalizations,
cancellations and withdrawals by several actors on the real contract, with invariants after every step.

Jobs are fixed-R (R = 1 or 3) or in credibility mode (a cap of 2-4, one replica at a time, spot checks always or
never). Fixed R = 3 jobs are served by per-task rounds and by lanes (chunks of 1-3 tasks, lanes that lie on a task or
stay silent, splits, expired and released lanes) mixed.

Invariants (checked after every step):
  * solvency: token.balanceOf(market) == sum(balances) + sum(stake + unstaking) + sum(jobEscrow)
  * every task is finalized, failed or refunded (cancelled) at most once; every job closes at most once
    (so nobody is paid twice for the same task or job)
  * a worker never loses more than the stake it had locked, and locked <= stake always
  * a worker's verified count never exceeds its reputation
  * job counters: settled <= numTasks, finished <= settled

Each example starts from the same evm snapshot and reverts to it at teardown.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from market_helpers import E18, Env

from oracle.exceptions import TransactionReverted
from oracle.protocol import commitment, task_id

SALT = b"\x5a" * 32
STEPS: Counter[str] = Counter()


def make_machine(env: Env) -> tuple[type[RuleBasedStateMachine], type[RuleBasedStateMachine]]:
    w3 = env.w3
    requesters = [env.requester, env.dataset_owner]
    workers = env.workers[:3]
    # everyone who can hold a balance in this machine (the owner is the treasury)
    everyone = {a.address for a in [env.owner, env.requester, env.app_owner, env.dataset_owner, *workers]}

    class Market(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.snap = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
            self.jobs: list[tuple[int, int, int]] = []  # (job id, numTasks, replication)
            self.settled: Counter[int] = Counter()
            self.closed: Counter[int] = Counter()
            self.leases: list[tuple[int, Any]] = []  # (start task id, worker) of leases we saw granted
            self.held: list[tuple[int, Any]] = []  # (task id, worker) of replicas we saw granted
            self.digests: dict[tuple[int, str], bytes] = {}
            self.credible: set[int] = set()  # credibility-mode jobs
            # committed credibility-mode leases: worker, digests, root, commit block
            self.ranges: dict[int, tuple[Any, list[bytes], bytes, int]] = {}
            # lane chunks we saw claimed: (start, count) -> {worker address: the digests it committed}
            self.chunks: dict[tuple[int, int], dict[str, list[bytes]]] = {}
            self.revealed_lanes: dict[tuple[int, int], list[str]] = {}  # workers that revealed, in lane order
            STEPS["examples"] += 1

        def teardown(self) -> None:
            w3.provider.make_request("evm_revert", [self.snap])  # type: ignore[arg-type]

        # --- sending, with the per-transaction checks ------------------------------------------------
        def send(self, fn: Any, sender: Any) -> Any:
            STEPS["steps"] += 1
            STEPS["fn:" + fn.fn_name] += 1
            locked = {w.address: env.worker(w)["locked"] for w in workers}
            try:
                receipt = env.tx(fn, sender)
            except TransactionReverted as exc:
                STEPS["reverted"] += 1
                STEPS["revert:" + str(exc.error_name)] += 1
                return None
            STEPS["succeeded"] += 1
            slashed: Counter[str] = Counter()
            for e in env.events(receipt, "WorkerSlashed"):
                slashed[e["worker"]] += e["amount"]
            for who, amount in slashed.items():
                assert amount <= locked[who], f"{who} lost {amount} with only {locked[who]} locked"
            for name, key in (("ResultSubmitted", "taskId"), ("TaskFinalized", "taskId"), ("TaskFailed", "taskId"),
                              ("FailureConfirmed", "taskId")):
                for e in env.events(receipt, name):
                    self.settled[e[key]] += 1
            for e in env.events(receipt, "TasksCancelled"):
                for i in range(e["firstIndex"], e["firstIndex"] + e["count"]):
                    self.settled[task_id(e["jobId"], i)] += 1
            for e in env.events(receipt, "JobClosed"):
                self.closed[e["jobId"]] += 1
            for name in ("ResultSubmitted", "TaskFinalized", "TaskFailed", "ReplicasAdded", "ReplicaWanted",
                         "JobCredibility", "TasksCancelled", "RangeCommitted",
                         "JobClosed", "LeaseExpired", "ClaimExpired", "ReplicaReleased", "WorkerSlashed",
                         "WorkerBanned", "ClaimAbandoned", "FailureReported", "FailureConfirmed", "LaneClaimed",
                         "LaneRevealed", "LanesSplit", "LaneExpired", "LaneReleased", "LanesDissolved", "LeaseChecked"):
                STEPS["event:" + name] += len(env.events(receipt, name))
            return receipt

        def task_of(self, pick: int, index: int) -> tuple[int, int, int] | None:
            if not self.jobs:
                return None
            job, n, r = self.jobs[pick % len(self.jobs)]
            return task_id(job, index % n), n, r

        @rule(who=st.sampled_from(requesters), n=st.integers(1, 4), r=st.sampled_from([1, 1, 3, 3, 0]),
              reward=st.integers(0, 3), short=st.booleans(), spot=st.sampled_from([0, 10_000]))
        def post(self, who: Any, n: int, r: int, reward: int, short: bool, spot: int) -> None:
            """R = 1, R = 3, or (r = 0) credibility mode: one replica at a time up to a cap of 3, spot checks
            always or never."""
            deadline = env.now() + (3_000 if short else 50_000)
            params = env.job_params(1, numTasks=n, replication=r or 3, reward=reward * E18, deadline=deadline,
                                    maxRunSeconds=200)
            # an odd-sized credibility job asks for 0.85 only: a new worker (0.9 at a 10 % faulty share) is credible
            # alone there and may lease a range of it (commitRange, revealRange)
            conf = (990_000_000, 850_000_000)[n % 2]
            fn = (env.market.functions.postJob(params) if r else
                  env.market.functions.postCredibilityJob(params, (conf, 1000 + 2000 * (1 - n % 2), spot)))
            if self.send(fn, who) is not None:
                self.jobs.append((int(env.market.functions.jobCount().call()), n, r or 3))
                if not r:
                    self.credible.add(self.jobs[-1][0])

        @rule(pick=st.integers(0, 20), index=st.integers(0, 3))
        def start_spot_check(self, pick: int, index: int) -> None:
            t = self.task_of(pick, index)
            if t and t[2] > 1:
                self.send(env.market.functions.startSpotCheck(t[0]), env.outsider)

        @rule(w=st.sampled_from(workers), pick=st.integers(0, 20), index=st.integers(0, 3))
        def claim(self, w: Any, pick: int, index: int) -> None:
            t = self.task_of(pick, index)
            if t and self.send(env.market.functions.claim(t[0]), w) is not None:
                if t[2] == 1:
                    self.leases.append((t[0], w))
                else:
                    self.held.append((t[0], w))

        @rule(w=st.sampled_from(workers), pick=st.integers(0, 20), count=st.integers(1, 3))
        def claim_range(self, w: Any, pick: int, count: int) -> None:
            t = self.task_of(pick, 0)
            if t and self.send(env.market.functions.claimRange(t[0], count), w) is not None:
                self.leases.append((t[0], w))

        @rule(w=st.sampled_from(workers), pick=st.integers(0, 20), index=st.integers(0, 3),
              count=st.integers(1, 4))
        def claim_free_range(self, w: Any, pick: int, index: int, count: int) -> None:
            """A lease of the free tasks in a row (a race lost claims fewer, or none, without reverting)."""
            t = self.task_of(pick, index)
            if t and t[2] == 1:
                receipt = self.send(env.market.functions.claimFreeRange(t[0], count), w)
                if receipt is not None and env.events(receipt, "TasksClaimed"):
                    self.leases.append((t[0], w))

        @rule(w=st.sampled_from(workers), pick=st.integers(0, 20), index=st.integers(0, 3))
        def claim_and_submit(self, w: Any, pick: int, index: int) -> None:
            """The R = 1 happy path in one rule: claim a task and submit its result at once."""
            t = self.task_of(pick, index)
            if t and t[2] == 1 and self.send(env.market.functions.claim(t[0]), w) is not None:
                self.send(env.market.functions.submit(t[0], b"\x01" * 32, "c", b""), w)

        @precondition(lambda self: self.leases)
        @rule(i=st.integers(0, 50), n=st.integers(1, 2))
        def submit(self, i: int, n: int) -> None:
            start, w = self.leases[i % len(self.leases)]
            lease = env.lease(start)
            if lease["worker"] != w.address:
                self.leases.remove((start, w))
                return
            if lease["count"] == 1:
                self.send(env.market.functions.submit(start, b"\x01" * 32, "c", b""), w)
            else:
                first = start + lease["done"]
                n = min(n, lease["count"] - lease["done"])
                self.send(env.market.functions.submitRange(start, first, [b"\x01" * 32] * n, ["c"] * n, []), w)

        @precondition(lambda self: self.leases or self.held)
        @rule(i=st.integers(0, 50), replica=st.booleans())
        def abandon(self, i: int, replica: bool) -> None:
            """A worker gives back a lease or an uncommitted replica (its environment failed)."""
            pool = self.held if (replica and self.held) or not self.leases else self.leases
            tid, w = pool[i % len(pool)]
            self.send(env.market.functions.abandon(tid), w)

        @precondition(lambda self: self.leases)
        @rule(i=st.integers(0, 50), digest=st.sampled_from([b"\xf1" * 32, b"\xf2" * 32]))
        def report_failure(self, i: int, digest: bytes) -> None:
            """The next task of a lease reported as failed; a second worker's same digest confirms it."""
            start, w = self.leases[i % len(self.leases)]
            self.send(env.market.functions.reportFailure(start, digest, "f"), w)

        @precondition(lambda self: self.leases)
        @rule(i=st.integers(0, 50), honest=st.booleans())
        def commit_range(self, i: int, honest: bool) -> None:
            """A credible worker commits its whole credibility-mode lease in one root (honest or not)."""
            start, w = self.leases[i % len(self.leases)]
            lease = env.lease(start)
            if lease["worker"] != w.address or lease["count"] == 0:
                return
            digest = b"\x01" * 32 if honest else w.address.encode()[:32].ljust(32, b"\0")
            digests = [digest] * lease["count"]
            root = keccak(b"".join(commitment(start + k, d, SALT, w.address) for k, d in enumerate(digests)))
            if (receipt := self.send(env.market.functions.commitRange(start, root), w)) is not None:
                self.ranges[start] = (w, digests, root, int(receipt["blockNumber"]))

        @precondition(lambda self: self.credible)
        @rule(w=st.sampled_from(workers), pick=st.integers(0, 20), index=st.integers(0, 3), count=st.integers(1, 4),
              honest=st.booleans(), sealed=st.integers(0, 15), check=st.integers(0, len(workers) - 1))
        def credible_lease_round(self, w: Any, pick: int, index: int, count: int, honest: bool, sealed: int,
                                 check: int) -> None:
            """A credibility-mode lease in one rule: lease free tasks, commit them in one root, reveal them (or, with
            ``check`` > 0, check the lease as a lane run by another worker: :meth:`check_round`)."""
            credible = sorted(self.credible)
            job = credible[pick % len(credible)]
            n = next(n for j, n, _ in self.jobs if j == job)
            start = task_id(job, index % n)
            receipt = self.send(env.market.functions.claimFreeRange(start, count), w)
            if receipt is None or not env.events(receipt, "TasksClaimed"):
                return
            self.leases.append((start, w))
            self.commit_range(len(self.leases) - 1, honest)
            if start in self.ranges and check:
                checker = workers[(workers.index(w) + check) % len(workers)]
                self.check_round(sorted(self.ranges).index(start), checker, honest=not honest)
            if start in self.ranges:
                self.reveal_range(sorted(self.ranges).index(start), sealed)

        @precondition(lambda self: self.ranges)
        @rule(i=st.integers(0, 50), sealed=st.integers(0, 15))
        def reveal_range(self, i: int, sealed: int) -> None:
            """Reveal a committed lease: the entries in the `sealed` mask stay sealed and become replicated tasks
            (a spot-checked entry given open, or any open entry of a worker no longer credible, reverts)."""
            start = sorted(self.ranges)[i % len(self.ranges)]
            w, digests, _, block = self.ranges[start]
            seal = [bool(sealed >> k & 1) for k in range(len(digests))]
            ds = [commitment(start + k, d, SALT, w.address) if seal[k] else d for k, d in enumerate(digests)]
            salts = [b"\0" * 32 if seal[k] else SALT for k in range(len(digests))]
            receipt = self.send(env.market.functions.revealRange(start, block, ds, salts, ["c"] * len(ds), []), w)
            if receipt is None:
                return
            del self.ranges[start]
            for k, d in enumerate(digests):
                if seal[k]:
                    self.held.append((start + k, w))
                    self.digests[(start + k, w.address)] = d

        def reveal_lane(self, c: tuple[int, int], w: Any, skip: bool = False) -> None:
            digests = self.chunks.get(c, {}).get(w.address)
            if digests is None or skip:
                return
            fn = env.market.functions.revealLane(c[0], digests, [SALT] * c[1], ["c"] * c[1])
            if self.send(fn, w) is not None:
                self.revealed_lanes.setdefault(c, []).append(w.address)

        def split(self, c: tuple[int, int], wrong: bool) -> None:
            lanes = [env.replica(int(env.market.functions.laneKey(*c).call()), k) for k in range(3)]
            done = self.revealed_lanes.get(c, [])
            # the revealed lanes' lists in lane order (a wrong list must be refused)
            lists = [self.chunks[c][lane["worker"]] for lane in lanes if lane["worker"] in done]
            if wrong and lists:
                lists[0] = [b"\x07" * 32] * c[1]
            self.send(env.market.functions.splitLanes(*c, lists), env.outsider)

        @precondition(lambda self: self.ranges)
        @rule(i=st.integers(0, 50), w=st.sampled_from(workers), honest=st.booleans())
        def check_round(self, i: int, w: Any, honest: bool) -> None:
            """A committed credible lease its spot check picked becomes a check chunk (``checkLease``, sent by anyone;
            refused for a lease not picked whole); another worker runs its check lane, honest or not; both reveal,
            and a split settles lists that disagree (or a reveal window that passed)."""
            start = sorted(self.ranges)[i % len(self.ranges)]
            holder, digests, root, block = self.ranges[start]
            if self.send(env.market.functions.checkLease(start, root, block), env.outsider) is None:
                return
            del self.ranges[start]
            c = (start, len(digests))
            self.chunks[c] = {holder.address: digests}
            if self.send(env.market.functions.claimLane(*c), w) is not None:
                ds = [b"\x01" * 32 if honest else w.address.encode()[:32].ljust(32, b"\0")] * c[1]
                root = keccak(b"".join(commitment(start + k, d, SALT, w.address) for k, d in enumerate(ds)))
                if self.send(env.market.functions.commitLane(*c, root), w) is not None:
                    self.chunks[c][w.address] = ds
            for x in (holder, w):
                self.reveal_lane(c, x)
            self.split(c, wrong=False)

        @precondition(lambda self: self.held)
        @rule(i=st.integers(0, 50), honest=st.booleans())
        def commit(self, i: int, honest: bool) -> None:
            tid, w = self.held[i % len(self.held)]
            digest = b"\x01" * 32 if honest else w.address.encode()[:32].ljust(32, b"\0")
            self.digests[(tid, w.address)] = digest
            self.send(env.market.functions.commit(tid, commitment(tid, digest, SALT, w.address)), w)

        @precondition(lambda self: self.held)
        @rule(i=st.integers(0, 50))
        def reveal(self, i: int) -> None:
            tid, w = self.held[i % len(self.held)]
            digest = self.digests.get((tid, w.address), b"\x01" * 32)
            self.send(env.market.functions.reveal(tid, digest, SALT, "c", b""), w)

        @rule(pick=st.integers(0, 20), index=st.integers(0, 3),
              honest=st.lists(st.booleans(), min_size=3, max_size=3), silent=st.integers(0, 3))
        def replicated_round(self, pick: int, index: int, honest: list[bool], silent: int) -> None:
            """All three workers claim, commit and reveal one task (one of them may stay silent)."""
            t = self.task_of(pick, index)
            if not t or t[2] == 1:
                return
            digests = [b"\x01" * 32 if h else w.address.encode()[:32].ljust(32, b"\0")
                       for w, h in zip(workers, honest, strict=True)]
            credible = t[0] >> 32 in self.credible
            for w in workers:
                if self.send(env.market.functions.claim(t[0]), w) is not None:
                    self.held.append((t[0], w))
                if not credible:
                    continue
                # credibility mode: the next slot opens only once this one committed (and a spot check may open it)
                self.digests[(t[0], w.address)] = digests[workers.index(w)]
                self.send(env.market.functions.commit(t[0], commitment(t[0], digests[workers.index(w)], SALT,
                                                                       w.address)), w)
                self.send(env.market.functions.startSpotCheck(t[0]), env.outsider)
            for w, d in zip(workers, digests, strict=True):
                if credible:
                    break
                self.digests[(t[0], w.address)] = d
                self.send(env.market.functions.commit(t[0], commitment(t[0], d, SALT, w.address)), w)
            for i, (w, d) in enumerate(zip(workers, digests, strict=True)):
                if i != silent:
                    self.send(env.market.functions.reveal(t[0], d, SALT, "c", b""), w)

        @rule(pick=st.integers(0, 20), index=st.integers(0, 3))
        def finalize(self, pick: int, index: int) -> None:
            t = self.task_of(pick, index)
            if t:
                self.send(env.market.functions.finalize(t[0]), env.outsider)

        @rule(seconds=st.sampled_from([150, 450, 700, 4_000]))
        def warp(self, seconds: int) -> None:
            env.warp(seconds)

        # --- invariants ----------------------------------------------------------------------------
        @invariant()
        def invariants(self) -> None:
            STEPS["invariant_checks"] += 1
            infos = [env.worker(w) for w in workers]
            # solvency: every token the market holds is someone's balance, stake or a job's escrow
            held = env.token.functions.balanceOf(env.market.address).call()
            balances = sum(env.balance(a) for a in everyone)
            stakes = sum(i["stake"] + i["unstaking"] for i in infos)
            assert held == balances + stakes + env.escrow_total()
            # nothing settles or closes twice, so nobody is paid twice
            assert all(c == 1 for c in self.settled.values()), self.settled
            assert all(c == 1 for c in self.closed.values()), self.closed
            # stake and job counters
            assert all(i["locked"] <= i["stake"] for i in infos)
            # a verified result is an accepted one, and a slash resets the count: never above the reputation
            assert all(i["verified"] <= i["reputation"] for i in infos)
            for job, _, _ in self.jobs:
                j = env.job(job)
                assert j["finished"] <= j["settled"] <= j["numTasks"]

    class LaneMarket(Market):
        """The same market, with lanes of the fixed R = 3 jobs mixed in; each example starts with one such job."""

        @initialize(long=st.booleans())
        def lane_job(self, long: bool) -> None:
            params = env.job_params(1, numTasks=4, replication=3, reward=E18,
                                    deadline=env.now() + (50_000 if long else 3_000), maxRunSeconds=200)
            if self.send(env.market.functions.postJob(params), env.requester) is not None:
                self.jobs.append((int(env.market.functions.jobCount().call()), 4, 3))

        # --- lanes (fixed R = 3 jobs) ---------------------------------------------------------------
        def chunk_of(self, pick: int, index: int, count: int) -> tuple[int, int] | None:
            t = self.task_of(pick, index)
            if not t or t[2] == 1 or t[0] >> 32 in self.credible:
                return None
            return t[0], min(count, t[1] - (t[0] & 0xFFFFFFFF))

        @rule(w=st.sampled_from(workers), pick=st.integers(0, 20), index=st.integers(0, 3), count=st.integers(1, 3))
        def claim_lane(self, w: Any, pick: int, index: int, count: int) -> None:
            c = self.chunk_of(pick, index, count)
            if c and self.send(env.market.functions.claimLane(*c), w) is not None:
                self.chunks.setdefault(c, {})

        @rule(pick=st.integers(0, 20), index=st.integers(0, 3), count=st.integers(1, 3),
              lie=st.lists(st.integers(-1, 2), min_size=3, max_size=3), silent=st.integers(0, 3))
        def lane_round(self, pick: int, index: int, count: int, lie: list[int], silent: int) -> None:
            """The three workers lease lanes of one chunk, commit (each may lie on one task) and reveal (one may
            stay silent)."""
            c = self.chunk_of(pick, index, count)
            if not c:
                return
            start, n = c
            for w, bad in zip(workers, lie, strict=True):
                if self.send(env.market.functions.claimLane(start, n), w) is None:
                    continue
                digests = [b"\x01" * 32 if k != bad else w.address.encode()[:32].ljust(32, b"\0") for k in range(n)]
                root = keccak(b"".join(commitment(start + k, d, SALT, w.address) for k, d in enumerate(digests)))
                if self.send(env.market.functions.commitLane(start, n, root), w) is not None:
                    self.chunks.setdefault(c, {})[w.address] = digests
            for i, w in enumerate(workers):
                self.reveal_lane(c, w, skip=i == silent)
            self.split(c, wrong=False)  # settles the lists that disagree; refused while a reveal is still due

        @precondition(lambda self: self.chunks)
        @rule(i=st.integers(0, 50), w=st.sampled_from(workers))
        def late_lane_reveal(self, i: int, w: Any) -> None:
            self.reveal_lane(sorted(self.chunks)[i % len(self.chunks)], w)

        @precondition(lambda self: self.chunks)
        @rule(i=st.integers(0, 50), wrong=st.booleans())
        def split_lanes(self, i: int, wrong: bool) -> None:
            self.split(sorted(self.chunks)[i % len(self.chunks)], wrong)

        @precondition(lambda self: self.chunks)
        @rule(i=st.integers(0, 50))
        def reopen_or_release_lanes(self, i: int) -> None:
            c = sorted(self.chunks)[i % len(self.chunks)]
            self.send(env.market.functions.reopenLanes(*c), env.outsider)
            self.send(env.market.functions.releaseLanes(*c), env.outsider)

        @rule(w=st.sampled_from(workers), pick=st.integers(0, 20), index=st.integers(0, 3), count=st.integers(1, 3))
        def lone_lane(self, w: Any, pick: int, index: int, count: int) -> None:
            """One worker leases a chunk's lane alone; past the claim grace the chunk is dissolved (refused if
            another lane came meanwhile, or the job ended)."""
            c = self.chunk_of(pick, index, count)
            if c and self.send(env.market.functions.claimLane(*c), w) is not None:
                self.chunks.setdefault(c, {})
                env.warp(int(env.view("params")["claimGrace"]) + 1)
                self.dissolve(c)

        @precondition(lambda self: self.chunks)
        @rule(i=st.integers(0, 50))
        def dissolve_lanes(self, i: int) -> None:
            self.dissolve(sorted(self.chunks)[i % len(self.chunks)])

        def dissolve(self, c: tuple[int, int]) -> None:
            if self.send(env.market.functions.dissolveLanes(*c), env.outsider) is not None:
                # the chunk is gone (its lanes unlocked, its tasks free): a new one may form at the same range
                del self.chunks[c]
                self.revealed_lanes.pop(c, None)

        @rule(pick=st.integers(0, 20))
        def close_job(self, pick: int) -> None:
            if self.jobs:
                self.send(env.market.functions.closeJob(self.jobs[pick % len(self.jobs)][0]), env.outsider)

    return Market, LaneMarket


SETTINGS = settings(max_examples=12, stateful_step_count=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
#: the machines' random source, pinned: derandomize alone seeds it from the machine's source code, so any edit to
#: a rule drew other paths (some of them short runs that missed the coverage asserted below). With seed 1 both
#: machines run several hundred steps, credible leases revealed and checked, lanes settled, split and dissolved.
MACHINE_SEED = 1


def _fund_machine(env: Env) -> None:
    env.app(price=E18 // 10)
    for w in env.workers[:3]:
        env.enroll(w, stake=5 * E18)
    for r in (env.requester, env.dataset_owner):
        env.fund(r, 200 * E18)
    STEPS.clear()


@pytest.mark.reliability(kind="attack", name="random adversarial sequences keep the books",
                         how="hypothesis drives random deposits, posts, claims, commits, reveals, expiries, cancels "
                             "and withdrawals by several actors; solvency and at-most-once payment checked after "
                             "every step")
def test_marketplace_state_machine(env: Env) -> None:
    _fund_machine(env)
    run_state_machine_as_test(seed(MACHINE_SEED)(make_machine(env)[0]), settings=SETTINGS)
    print(f"\nstateful: {dict(STEPS)}")
    assert STEPS["succeeded"] > 50
    assert STEPS["fn:revealRange"] > 0 and STEPS["event:RangeCommitted"] > 0  # credible leases were exercised
    assert STEPS["event:LeaseChecked"] > 0  # and leases checked whole, as check chunks


@pytest.mark.reliability(kind="attack", name="random sequences with lanes keep the books",
                         how="the same machine with lanes of fixed-R jobs mixed in: chunks claimed, committed with a "
                             "lie on a task, revealed or left silent, split (with right and wrong lists), expired, "
                             "released after the job closed, dissolved when their lanes did not all come; the same "
                             "invariants after every step")
def test_lanes_state_machine(env: Env) -> None:
    _fund_machine(env)
    run_state_machine_as_test(seed(MACHINE_SEED)(make_machine(env)[1]), settings=settings(SETTINGS, max_examples=16))
    print(f"\nstateful (lanes): {dict(STEPS)}")
    assert STEPS["succeeded"] > 50
    assert STEPS["event:LaneRevealed"] > 0 and STEPS["event:LanesSplit"] > 0  # lanes were settled and split
    assert STEPS["event:LanesDissolved"] > 0  # a chunk whose lanes did not all come went back to the free pool
