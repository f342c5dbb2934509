"""Gas benchmark of the marketplace: four scenarios on a private anvil, compared with iExec PoCo v6.2.

    scripts/bench gas [--json] [--no-write] [--daemon [--runs N]]

With ``--daemon`` (about 5 min more) it also measures gas as worker daemons really send it (issue #17): four
``tasknet worker run`` processes on anvil + kubo + the Docker engine (scripts/bench_adaptive.py's ``Run``) finish a
100-task R = 1 bag, a 24-task R = 2 job and a 10-task R = 3 job of the echo app, one after the other, with their
default settings (R > 1 through lanes, ``batching.lanes``); gas per task is the sum of gasUsed over every transaction
of the job, posting included, divided by the tasks, with a breakdown by kind (claims, commits, reveals, submits, each
``multicall`` named by the calls inside it, reverted) from scripts/_daemon_costs.py; then the R = 2 and R = 3 jobs
again on four daemons with lanes off (per-task rounds, what relayed, GPU, cluster, callback and homogeneous jobs
use). Keys ``daemon_r1_bag_per_task``, ``daemon_r2_per_task``, ``daemon_r3_per_task``, ``daemon_r2_rounds_per_task``,
``daemon_r3_rounds_per_task`` and ``daemon_by_kind``. Without ``--daemon`` the default stays a fast, scripted run (about a minute).
gasUsed is summed over every transaction of a scenario (posting, claims, results, finalization); deposits,
approvals, registrations and staking are setup, excluded and reported separately. The last line printed with
``--json`` is one JSON object. The Markdown table is written into BENCHMARKS.md between
``<!-- gas:start -->`` and ``<!-- gas:end -->``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _bench_rows import DaemonGas, GasRow, OpStats
from _daemon_costs import KindCost
from _gas_profile import CLASSES
from _gas_profile import total as gas_profile
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract

from oracle import connect, contract_at, deploy_all, dev_accounts, send
from oracle.protocol import Eip712Domain, commitment, results_batch, task_id
from tasknet import _devnet

E18 = 10**18
CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"  # a 59-character CIDv1, like real ones

POCO = {
    "single_task_r1": "1,776,210 (Boost: 743,663)",
    "bag100_r1_per_task": "≈ 962,600",
    "bag10_r3_per_task": "≈ 1,793,900",
    "bag100_r1_relayed_per_task": "no equivalent",
}
#: PoCo's gas for the same scenario, for the ratio column (the per-task figures are PoCo's own per-task costs)
POCO_GAS = {"single_task_r1": 1_776_210, "bag100_r1_per_task": 962_600, "bag10_r3_per_task": 1_793_900}
#: the BENCHMARKS.md subsection of the daemon rows (kept by a run without ``--daemon``)
DAEMON_HEADING = "### As the worker daemon sends it"
#: issue #17: what the daemon may send per task
DAEMON = {"daemon_r1_bag_per_task": (100, 1, 30_000, "bag100_r1_per_task"),
          "daemon_r2_per_task": (24, 2, 250_000, "bag10_r2_lanes_per_task"),
          "daemon_r3_per_task": (10, 3, 330_000, "bag10_r3_lanes_per_task")}
#: the same R > 1 jobs on daemons with lanes off (``batching.lanes`` false): per-task rounds
DAEMON_ROUNDS = {"daemon_r2_rounds_per_task": (24, 2, 250_000, None),
                 "daemon_r3_rounds_per_task": (10, 3, 330_000, "bag10_r3_per_task")}
TARGETS = {"single_task_r1": 300_000, "bag100_r1_per_task": 120_000, "bag10_r3_per_task": 450_000,
           "bag100_r1_relayed_per_task": 40_000}


class Bench:
    """One deployment; `run(tag, fn, sender)` sends and books gasUsed under an operation tag."""

    def __init__(self, w3: Web3, accounts: list[LocalAccount]) -> None:
        self.w3 = w3
        self.acc = accounts
        names = deploy_all(w3, accounts[0]).contracts
        self.market: Contract = contract_at(w3, "Marketplace", names["Marketplace"])
        self.registry: Contract = contract_at(w3, "MarketplaceRegistry", names["MarketplaceRegistry"])
        self.token: Contract = contract_at(w3, "TestToken", names["TestToken"])
        self.domain = Eip712Domain(chain_id=w3.eth.chain_id, verifying_contract=self.market.address)
        self.ops: dict[str, list[int]] = defaultdict(list)
        self.hashes: list[bytes] = []  # every transaction run() sent, for the step profile
        self.setup_gas = 0
        self.requester, self.app_owner, self.relayer = accounts[1], accounts[2], accounts[3]
        self.workers = accounts[4:10]
        self.setup(lambda: send(w3, self.registry.functions.registerApp(
            "registry.local/render:1", b"\x11" * 32, "ipfs://meta", E18 // 100, True, ""), self.app_owner))
        self.app_id = 1
        self.fund(self.requester, 10**6 * E18)
        for w in self.workers:
            self.setup(partial(send, w3, self.market.functions.registerWorker(8, 16_000, 0, 1), w))
            self.fund(w, 1_000 * E18)
            self.setup(partial(send, w3, self.market.functions.stake(500 * E18), w))

    def setup(self, call: Callable[[], Any]) -> None:
        self.setup_gas += int(call()["gasUsed"])

    def fund(self, who: LocalAccount, amount: int) -> None:
        self.setup(lambda: send(self.w3, self.token.functions.faucet(who.address, amount), who))
        self.setup(lambda: send(self.w3, self.token.functions.approve(self.market.address, amount), who))
        self.setup(lambda: send(self.w3, self.market.functions.deposit(amount), who))

    def run(self, tag: str, fn: Any, sender: LocalAccount) -> int:
        receipt = send(self.w3, fn, sender, extra_abis=[self.registry.abi])
        gas = int(receipt["gasUsed"])
        self.ops[tag].append(gas)
        self.hashes.append(bytes(receipt["transactionHash"]))
        return gas

    def post(self, n: int, r: int) -> tuple[int, int]:
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        params = (self.app_id, 0, n, r, E18, now + 30 * 86400, 3600, 1, 512, 0, 0, 0, "0x" + "00" * 20,
                  "bafyinputsdocument", b"")
        gas = self.run(f"postJob (N={n}, R={r})", self.market.functions.postJob(params), self.requester)
        return int(self.market.functions.jobCount().call()), gas


def _digest(tid: int) -> bytes:
    return tid.to_bytes(32, "big")


def single_task_r1(b: Bench) -> int:
    job, total = b.post(1, 1)
    tid = task_id(job, 0)
    w = b.workers[0]
    total += b.run("claim (R=1)", b.market.functions.claim(tid), w)
    total += b.run("submit (R=1, closes the job)", b.market.functions.submit(tid, _digest(tid), CID, b""), w)
    return total


def bag_r1(b: Bench, n: int = 100) -> int:
    job, total = b.post(n, 1)
    for i in range(n):
        tid = task_id(job, i)
        w = b.workers[i % len(b.workers)]
        total += b.run("claim (R=1)", b.market.functions.claim(tid), w)
        total += b.run("submit (R=1)", b.market.functions.submit(tid, _digest(tid), CID, b""), w)
    return total


def bag_r3(b: Bench, n: int = 10) -> int:
    job, total = b.post(n, 3)
    salt = b"\x5a" * 32
    for i in range(n):
        tid = task_id(job, i)
        trio = [b.workers[(i + k) % len(b.workers)] for k in range(3)]
        for w in trio:
            total += b.run("claim (R=3 replica)", b.market.functions.claim(tid), w)
        for w in trio:
            c = commitment(tid, _digest(tid), salt, w.address)
            total += b.run("commit", b.market.functions.commit(tid, c), w)
        for k, w in enumerate(trio):
            tag = "reveal (last: + finalize, 3 winners paid)" if k == 2 else "reveal"
            total += b.run(tag, b.market.functions.reveal(tid, _digest(tid), salt, CID, b""), w)
    return total


def bag_r3_batched(b: Bench, n: int = 10) -> int:
    """10 tasks, R = 3, as the worker daemon sends them when it holds several replicas of one job: each worker's
    claims, commits and due reveals go out as one ``multicall`` each (worker/_daemon.py ``_claim_some``,
    worker/_pipeline.py ``commit_many`` / ``reveal_many``)."""
    job, total = b.post(n, 3)
    salt = b"\x5a" * 32
    trio = b.workers[:3]
    tids = [task_id(job, i) for i in range(n)]
    m = b.market
    for w in trio:
        calls = [m.encode_abi("claim", [t]) for t in tids]
        total += b.run("multicall(claim x10)", m.functions.multicall(calls), w)
    for w in trio:
        calls = [m.encode_abi("commit", [t, commitment(t, _digest(t), salt, w.address)]) for t in tids]
        total += b.run("multicall(commit x10)", m.functions.multicall(calls), w)
    for w in trio:
        calls = [m.encode_abi("reveal", [t, _digest(t), salt, CID, b""]) for t in tids]
        total += b.run("multicall(reveal x10)", m.functions.multicall(calls), w)
    return total


def bag_r1_relayed(b: Bench, n: int = 100, ranges: int = 4) -> int:
    job, total = b.post(n, 1)
    per = n // ranges
    batches = []
    for k in range(ranges):
        w = b.workers[k]
        start = task_id(job, k * per)
        total += b.run(f"claimRange ({per} tasks)", b.market.functions.claimRange(start, per), w)
        tids = list(range(start, start + per))
        batches.append(results_batch(w, b.domain, start, start, [_digest(t) for t in tids], [CID] * per))
    total += b.run(f"relayResults ({ranges} signed batches, {n} tasks, closes the job)",
                   b.market.functions.relayResults(batches), b.relayer)
    return total


def _veteran_setup(b: Bench, n: int) -> tuple[Any, ...]:
    """Setup, not booked: an R = 2 job of ``n`` tasks on which workers 0 and 1 agree (``n`` = 10 verified results
    each: credible alone at 0.99 assuming 10 % faulty). Returns the job parameters, to post the measured job with."""
    m, (w0, w1) = b.market, b.workers[:2]
    salt = b"\x5a" * 32
    now = int(b.w3.eth.get_block("latest")["timestamp"])
    params = (b.app_id, 0, n, 2, E18, now + 30 * 86400, 3600, 1, 512, 0, 0, 0, "0x" + "00" * 20,
              "bafyinputsdocument", b"")
    b.setup(lambda: send(b.w3, m.functions.postJob(params), b.requester))
    warm = [task_id(int(m.functions.jobCount().call()), i) for i in range(n)]
    for step in ("claim", "commit", "reveal"):
        for w in (w0, w1):
            calls = [m.encode_abi(step, [t] if step == "claim" else
                                  [t, commitment(t, _digest(t), salt, w.address)] if step == "commit" else
                                  [t, _digest(t), salt, CID, b""]) for t in warm]
            b.setup(partial(send, b.w3, m.functions.multicall(calls), w))
    return params


def bag_credible(b: Bench, n: int = 10) -> int:
    """10 tasks in credibility mode (confidence 0.99, f = 10 %, cap 6) finished by one trusted worker alone, as the
    daemon sends them (claims, commits, reveals batched with ``multicall``; spot checks off, so the figure is the
    lone-replica path). Setup, not booked: an R = 2 job of 10 tasks on which the worker and another agree, which
    gives it the 10 verified results that make it credible alone at 0.99. Also booked: ``startSpotCheck`` and the
    check replica's round on a job whose spot checks are always on."""
    m, (w0, w2) = b.market, (b.workers[0], b.workers[2])
    salt = b"\x5a" * 32
    params = _veteran_setup(b, n)
    cap_params = (*params[:3], 6, *params[4:])
    total = b.run("postCredibilityJob (N=10, cap 6)", m.functions.postCredibilityJob(
        cap_params, (990_000_000, 1000, 0)), b.requester)
    tids = [task_id(int(m.functions.jobCount().call()), i) for i in range(n)]
    total += b.run("multicall(claim x10) (credibility)",
                   m.functions.multicall([m.encode_abi("claim", [t]) for t in tids]), w0)
    calls = [m.encode_abi("commit", [t, commitment(t, _digest(t), salt, w0.address)]) for t in tids]
    total += b.run("multicall(commit x10) (credibility, credible alone)", m.functions.multicall(calls), w0)
    calls = [m.encode_abi("reveal", [t, _digest(t), salt, CID, b""]) for t in tids]
    total += b.run("multicall(reveal x10) (credibility: each finalizes alone)", m.functions.multicall(calls), w0)
    send(b.w3, m.functions.postCredibilityJob(
        (*cap_params[:2], 1, *cap_params[3:]), (990_000_000, 1000, 10_000)), b.requester)
    t = task_id(int(m.functions.jobCount().call()), 0)
    send(b.w3, m.functions.claim(t), w0)
    send(b.w3, m.functions.commit(t, commitment(t, _digest(t), salt, w0.address)), w0)
    b.run("startSpotCheck", m.functions.startSpotCheck(t), w2)
    b.run("claim (check replica)", m.functions.claim(t), w2)
    b.run("commit (check replica)", m.functions.commit(t, commitment(t, _digest(t), salt, w2.address)), w2)
    b.run("reveal (credibility, first of 2)", m.functions.reveal(t, _digest(t), salt, CID, b""), w0)
    b.run("reveal (credibility, last: finalizes, 2 winners verified)",
          m.functions.reveal(t, _digest(t), salt, CID, b""), w2)
    return total


def bag_credible_lease(b: Bench, n: int = 10) -> int:
    """The same 10 credibility-mode tasks (confidence 0.99, f = 10 %, cap 6, spot checks off) finished by the same
    trusted worker through a credible lease: one ``claimFreeRange``, one ``commitRange`` (a root over the ten
    commitments), one ``revealRange`` (every entry open: each task final at once). Setup as in :func:`bag_credible`."""
    m, w0 = b.market, b.workers[0]
    salt = b"\x5a" * 32
    params = _veteran_setup(b, n)
    total = b.run("postCredibilityJob (N=10, cap 6)", m.functions.postCredibilityJob(
        (*params[:3], 6, *params[4:]), (990_000_000, 1000, 0)), b.requester)
    start = task_id(int(m.functions.jobCount().call()), 0)
    tids = [start + i for i in range(n)]
    total += b.run("claimFreeRange (credible lease, 10 tasks)", m.functions.claimFreeRange(start, n), w0)
    root = keccak(b"".join(commitment(t, _digest(t), salt, w0.address) for t in tids))
    total += b.run("commitRange (10 tasks)", m.functions.commitRange(start, root), w0)
    total += b.run("revealRange (10 tasks, all open: each final alone)", m.functions.revealRange(
        start, int(b.w3.eth.block_number), [_digest(t) for t in tids], [salt] * n, [CID] * n, []), w0)
    _check_lane(b, params, n)
    return total


def _check_lane(b: Bench, params: tuple[Any, ...], n: int) -> None:
    """Booked as operations, not in the bag's figure: a lease of ``n`` tasks a spot check picks whole (spot checks
    always on) checked as a second lane (PROTOCOL.md, "Check lanes"): ``checkLease``, the check lane's ``claimLane``
    and ``commitLane``, then both ``revealLane`` (the last settles the ``n`` tasks)."""
    m, w0, w2 = b.market, b.workers[0], b.workers[2]
    salt = b"\x5a" * 32
    send(b.w3, m.functions.postCredibilityJob((*params[:3], 6, *params[4:]), (990_000_000, 1000, 10_000)),
         b.requester)
    start = task_id(int(m.functions.jobCount().call()), 0)
    tids = [start + i for i in range(n)]
    send(b.w3, m.functions.claimFreeRange(start, n), w0)
    root = keccak(b"".join(commitment(t, _digest(t), salt, w0.address) for t in tids))
    committed = int(send(b.w3, m.functions.commitRange(start, root), w0)["blockNumber"])
    digests = [_digest(t) for t in tids]
    b.run(f"checkLease ({n}-task lease picked whole)", m.functions.checkLease(start, root, committed), w0)
    b.run(f"claimLane (check lane, {n} tasks)", m.functions.claimLane(start, n), w2)
    b.run(f"commitLane (check lane, {n} tasks)", m.functions.commitLane(start, n, keccak(b"".join(
        commitment(t, _digest(t), salt, w2.address) for t in tids))), w2)
    b.run(f"revealLane (the lease's lane, {n} tasks)", m.functions.revealLane(start, digests, [salt] * n,
                                                                              [CID] * n), w0)
    b.run(f"revealLane (check lane, {n} tasks: settles the lease)", m.functions.revealLane(
        start, digests, [salt] * n, [CID] * n), w2)


#: the lengths of the credible leases :func:`credible_lease_sizes` measures
LEASE_SIZES = (2, 3, 5, 6, 8, 10)


def credible_lease_sizes(b: Bench) -> dict[str, int]:
    """Gas per task of one credible lease of each length in :data:`LEASE_SIZES` by the trusted worker of
    :func:`bag_credible_lease`: ``claimFreeRange``, ``commitRange`` and ``revealRange`` (every entry open), each its own
    transaction, in a job of 16 tasks that the lease does not close; the posting is not counted. One lane of a
    replicated range would cost about this (contracts/RANGE-REPLICATION.md)."""
    m, w0 = b.market, b.workers[0]
    salt = b"\x5a" * 32
    params = _veteran_setup(b, 10)
    out: dict[str, int] = {}
    for n in LEASE_SIZES:
        send(b.w3, m.functions.postCredibilityJob((*params[:2], 16, 6, *params[4:]), (990_000_000, 1000, 0)),
             b.requester)
        start = task_id(int(m.functions.jobCount().call()), 0)
        tids = [start + i for i in range(n)]
        root = keccak(b"".join(commitment(t, _digest(t), salt, w0.address) for t in tids))
        claim = send(b.w3, m.functions.claimFreeRange(start, n), w0)
        commit = send(b.w3, m.functions.commitRange(start, root), w0)
        reveal = send(b.w3, m.functions.revealRange(start, int(commit["blockNumber"]), [_digest(t) for t in tids],
                                                    [salt] * n, [CID] * n, []), w0)
        out[str(n)] = round(sum(int(r["gasUsed"]) for r in (claim, commit, reveal)) / n)
    return out


def bag_r1_lease(b: Bench, n: int = 10) -> int:
    """10 R = 1 tasks through one lease, the reference for :func:`bag_credible_lease`: one ``claimFreeRange``, one
    ``submitRange`` of the ten results, plus the posting."""
    job, total = b.post(n, 1)
    start = task_id(job, 0)
    w0 = b.workers[0]
    total += b.run("claimFreeRange (R=1, 10 tasks)", b.market.functions.claimFreeRange(start, n), w0)
    tids = [start + i for i in range(n)]
    total += b.run("submitRange (R=1, 10 results)", b.market.functions.submitRange(
        start, start, [_digest(t) for t in tids], [CID] * n, []), w0)
    return total


def giving_back(b: Bench) -> int:
    """Not a scenario of the table: the per-operation cost of abandon and reportFailure (R = 1 failure results,
    BOINC-like: a second worker's matching report confirms one). Postings and claims are not booked here."""
    m, (w0, w1) = b.market, b.workers[:2]

    def quiet(fn: Any, sender: LocalAccount) -> None:
        send(b.w3, fn, sender)

    def post(n: int, r: int) -> int:
        now = int(b.w3.eth.get_block("latest")["timestamp"])
        quiet(m.functions.postJob((b.app_id, 0, n, r, E18, now + 30 * 86400, 3600, 1, 512, 0, 0, 0,
                                   "0x" + "00" * 20, "bafyinputsdocument", b"")), b.requester)
        return int(m.functions.jobCount().call())

    total = 0
    job = post(100, 1)
    t = [task_id(job, i) for i in range(100)]
    quiet(m.functions.claim(t[99]), w0)
    quiet(m.functions.abandon(t[99]), w0)  # the treasury's first credit (a fresh slot) is not what we measure
    quiet(m.functions.claim(t[0]), w0)
    total += b.run("abandon (R=1, lease of 1)", m.functions.abandon(t[0]), w0)
    quiet(m.functions.claimRange(t[50], 25), w0)
    total += b.run("abandon (R=1, lease of 25)", m.functions.abandon(t[50]), w0)
    quiet(m.functions.claim(t[1]), w0)
    total += b.run("reportFailure (first report)", m.functions.reportFailure(t[1], _digest(1), CID), w0)
    quiet(m.functions.claim(t[1]), w1)
    total += b.run("reportFailure (confirms: 2 workers paid)", m.functions.reportFailure(t[1], _digest(1), CID), w1)
    for k in range(8):  # maxReplicas (9) reports without a match fail the task
        w = (w0, w1)[k % 2]
        quiet(m.functions.claim(t[2]), w)
        tag = "reportFailure (first report)" if k == 0 else "reportFailure (no match: replaces it, task reopens)"
        total += b.run(tag, m.functions.reportFailure(t[2], _digest(100 + k), CID), w)
    quiet(m.functions.claim(t[2]), w0)
    total += b.run("reportFailure (9th without a match: TaskFailed refund)",
                   m.functions.reportFailure(t[2], _digest(99), CID), w0)
    single = task_id(post(1, 1), 0)
    quiet(m.functions.claim(single), w0)
    quiet(m.functions.reportFailure(single, _digest(1), CID), w0)
    quiet(m.functions.claim(single), w1)
    total += b.run("reportFailure (confirms, closes the job)", m.functions.reportFailure(single, _digest(1), CID), w1)
    replica = task_id(post(1, 3), 0)
    quiet(m.functions.claim(replica), w0)
    total += b.run("abandon (R=3 replica)", m.functions.abandon(replica), w0)
    return total


def homogeneous(b: Bench) -> int:
    """Not a scenario of the table: the per-operation cost of homogeneous redundancy (archMask bit 7): declaring a
    platform class, and an R = 2 task's two replica claims, the first binding the task to its class."""
    m, (w0, w1) = b.market, b.workers[:2]
    cls = b"amd64-a".ljust(32, b"\0")
    total = b.run("setPlatformClass", m.functions.setPlatformClass(cls), w0)
    send(b.w3, m.functions.setPlatformClass(cls), w1)
    now = int(b.w3.eth.get_block("latest")["timestamp"])
    send(b.w3, m.functions.postJob((b.app_id, 0, 2, 2, E18, now + 30 * 86400, 3600, 1, 512, 0, 0x80, 0,
                                    "0x" + "00" * 20, "bafyinputsdocument", b"")), b.requester)
    t = task_id(int(m.functions.jobCount().call()), 1)  # index 1: the job's bitmap word is warm for neither task
    total += b.run("claim (R=2, homogeneous, first replica: binds)", m.functions.claim(t), w0)
    total += b.run("claim (R=2, homogeneous, later replica)", m.functions.claim(t), w1)
    return total


def bag_lanes(b: Bench, n: int = 10, r: int = 3) -> int:
    """``n`` tasks at R = ``r`` through lanes: one chunk of all ``n`` tasks, each of ``r`` workers sending its
    ``claimLane``, ``commitLane`` and ``revealLane`` as one transaction each (the last reveal settles all ``n``
    tasks); PROTOCOL.md, "Lanes"."""
    job, total = b.post(n, r)
    salt = b"\x5a" * 32
    start = task_id(job, 0)
    lanes = b.workers[:r]
    m = b.market
    digests = [_digest(start + i) for i in range(n)]
    for w in lanes:
        total += b.run(f"claimLane ({n} tasks)", m.functions.claimLane(start, n), w)
    for w in lanes:
        root = Web3.keccak(b"".join(commitment(start + i, d, salt, w.address) for i, d in enumerate(digests)))
        total += b.run("commitLane", m.functions.commitLane(start, n, root), w)
    for k, w in enumerate(lanes):
        tag = f"revealLane ({n} tasks{', last: settles the chunk' if k == r - 1 else ''})"
        total += b.run(tag, m.functions.revealLane(start, digests, [salt] * n, [CID] * n), w)
    return total


def bag_lanes_r2(b: Bench) -> int:
    return bag_lanes(b, r=2)


def measure() -> GasRow:
    with tempfile.TemporaryDirectory() as tmp:
        # steps recorded: the R = 3 scenario's gas is split by kind of work (scripts/_gas_profile.py)
        info, url = _devnet.start_anvil(Path(tmp), _devnet.free_port(), extra_args=["--steps-tracing"])
        try:
            w3 = connect(url)
            accounts = dev_accounts(10)
            r3_profile: dict[str, int] = {}
            snap = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
            results: dict[str, int] = {}
            ops: dict[str, list[int]] = defaultdict(list)
            setup = 0
            for key, fn, div in [("single_task_r1", single_task_r1, 1), ("bag100_r1_per_task", bag_r1, 100),
                                 ("bag10_r3_per_task", bag_r3_batched, 10),
                                 ("bag10_r3_unbatched_per_task", bag_r3, 10),
                                 ("bag100_r1_relayed_per_task", bag_r1_relayed, 100),
                                 ("bag10_credible_alone_per_task", bag_credible, 10),
                                 ("bag10_credible_lease_per_task", bag_credible_lease, 10),
                                 ("bag10_r1_lease_per_task", bag_r1_lease, 10),
                                 ("bag10_r2_lanes_per_task", bag_lanes_r2, 10),
                                 ("bag10_r3_lanes_per_task", bag_lanes, 10),
                                 ("giving_back", giving_back, 1), ("homogeneous", homogeneous, 1)]:
                w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]
                snap = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
                bench = Bench(w3, accounts)
                total = fn(bench)
                results[key] = round(total / div)
                if key == "bag10_r3_per_task":
                    by_class = gas_profile(w3, bench.hashes)
                    r3_profile = {c: round(by_class[c] / div) for c in CLASSES}
                for tag, gases in bench.ops.items():
                    ops[tag].extend(gases)
                setup = max(setup, bench.setup_gas)
            w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]
            by_size = credible_lease_sizes(Bench(w3, accounts))
        finally:
            _devnet.stop(info)
    per_op: dict[str, OpStats] = {tag: {"mean": round(sum(g) / len(g)), "min": min(g), "max": max(g),
                                        "count": len(g)} for tag, g in sorted(ops.items())}
    return {"single_task_r1": results["single_task_r1"], "bag100_r1_per_task": results["bag100_r1_per_task"],
            "bag10_r3_per_task": results["bag10_r3_per_task"],
            "bag10_r3_unbatched_per_task": results["bag10_r3_unbatched_per_task"],
            "bag100_r1_relayed_per_task": results["bag100_r1_relayed_per_task"],
            "bag10_credible_alone_per_task": results["bag10_credible_alone_per_task"],
            "bag10_credible_lease_per_task": results["bag10_credible_lease_per_task"],
            "bag10_r1_lease_per_task": results["bag10_r1_lease_per_task"],
            "bag10_r2_lanes_per_task": results["bag10_r2_lanes_per_task"],
            "bag10_r3_lanes_per_task": results["bag10_r3_lanes_per_task"],
            "giving_back": results["giving_back"], "homogeneous": results["homogeneous"], "operations": per_op,
            "setup_gas_excluded": setup, "r3_profile_per_task": r3_profile, "credible_lease_by_size": by_size}


def measure_daemon(workers: int = 4) -> DaemonGas:
    """The daemon rows: real worker processes, the jobs of ``DAEMON`` one after the other on the same workers."""
    from bench_adaptive import daemons

    per_task: dict[str, int] = {}
    by_kind: dict[str, dict[str, KindCost]] = {}
    wall: dict[str, float] = {}
    for jobs, batching in ((DAEMON, None), (DAEMON_ROUNDS, {"lanes": False})):
        with daemons("tasknet-bench-gas-daemon-", workers, batching=batching) as run:
            for key, (tasks, r, _, _) in jobs.items():
                print(f"bench gas: daemon, {tasks} tasks at R = {r}, {workers} workers"
                      + (" with lanes off" if batching else ""), file=sys.stderr, flush=True)
                job = run.job(tasks, r, False)
                per_task[key], by_kind[key], wall[key] = job["gas_per_task"], job["by_kind"], job["wall_s"]
    return {"daemon_by_kind": by_kind, "daemon_wall_s": wall,
            "daemon_r1_bag_per_task": per_task["daemon_r1_bag_per_task"],
            "daemon_r2_per_task": per_task["daemon_r2_per_task"], "daemon_r3_per_task": per_task["daemon_r3_per_task"],
            "daemon_r2_rounds_per_task": per_task["daemon_r2_rounds_per_task"],
            "daemon_r3_rounds_per_task": per_task["daemon_r3_rounds_per_task"]}


def daemon_medians(runs: list[DaemonGas]) -> DaemonGas:
    """Each daemon figure's median over ``runs``; the by-kind breakdown and wall times of the run with the median
    R = 1 figure (``daemon_runs`` keeps every run's figures)."""
    if len(runs) == 1:
        return runs[0]
    r1 = sorted(runs, key=lambda r: r["daemon_r1_bag_per_task"])[len(runs) // 2]
    keys = (*DAEMON, *DAEMON_ROUNDS)
    out: DaemonGas = {**r1, "daemon_runs": [{k: r[k] for k in keys} for r in runs]}  # type: ignore[literal-required]
    for k in keys:
        out[k] = round(statistics.median(r[k] for r in runs))  # type: ignore[literal-required]
    return out


def _per_task(res: GasRow) -> dict[str, int]:
    """The row's gas figures by key (scenarios and daemon jobs), for the tables that loop over keys."""
    return {k: v for k, v in res.items() if isinstance(v, int)}


def daemon_markdown(res: GasRow) -> list[str]:
    lines = ["", f"{DAEMON_HEADING} (`scripts/bench gas --daemon`, issue #17)", "",
             ("Four `tasknet worker run` processes (echo app, `max_concurrent` 2) finish each job on a private anvil "
              "with their default settings (R > 1 through lanes; the `_rounds_` rows: four more, with `batching.lanes` "
              "off);"),
             "gasUsed summed over every transaction of the job, posting included, divided by the tasks.", "",
             "| job | Tasknet (daemon) | target | scripted row | iExec PoCo v6.2 |", "| --- | ---: | ---: | ---: | ---: |"]
    gas = _per_task(res)
    for key, (tasks, r, target, scripted) in {**DAEMON, **DAEMON_ROUNDS}.items():
        if key not in gas:  # a run from before the lane rows
            continue
        ok = "✓" if gas[key] <= target else "✗"
        poco = POCO.get(scripted, "—") if scripted else "—"
        ref = f"{gas[scripted]:,}" if scripted and scripted in gas else "—"
        lanes = ", lanes off: per-task rounds" if key in DAEMON_ROUNDS else ""
        lines.append(f"| `{key}` ({tasks} tasks, R = {r}{lanes}) | {gas[key]:,} {ok} | ≤ {target:,} | {ref} | {poco} |")
    if runs := res.get("daemon_runs"):
        lines += ["", f"Medians of {len(runs)} runs, one after the other; each run's figures: " + "; ".join(
            f"`{key}` " + " / ".join(f"{r[key]:,}" for r in runs if key in r) for key in (*DAEMON, *DAEMON_ROUNDS))
            + ". The by-kind rows below are the run with the median R = 1 figure."]
    if "bag10_r3_per_task" in gas:
        per_replica = gas["bag10_r3_per_task"] / 3
        lane_floors = " and ".join(f"`{k}` {gas[k]:,}" for k in ("bag10_r2_lanes_per_task", "bag10_r3_lanes_per_task")
                                   if k in gas)
        floor = ("Which path the daemon takes: a fixed-R job without a callback (not GPU, not homogeneous, not "
                 "through a relayer or a cluster) goes through lanes (`batching.lanes`, on by default; PROTOCOL.md, "
                 "\"Lanes\"): each worker claims, commits and reveals a chunk of consecutive tasks in three "
                 "transactions, and equal lists settle the whole chunk at once" + (f"; the scripted rows {lane_floors} "
                 "are that path's floor" if lane_floors else "") + ". Lanes are as safe as per-task rounds (lists that "
                 "differ split the chunk into per-task rounds decided by the same strict majority, and a lane is "
                 "slashed only for the tasks where it was outvoted or silent) but slower to get over a dead "
                 "worker: its lane holds the whole chunk until `tasks × maxRunSeconds` plus the claim grace, "
                 "where a replica holds one task. A chunk whose other lanes do not come within the claim grace (its "
                 "job's other workers do not lease lanes) is dissolved, nothing slashed, and its tasks go on per task. "
                 "Per-task rounds (every job lanes do not serve, and workers with lanes off) batch claims, commits "
                 "and reveals to a `multicall`; their floor is the scripted "
                 f"`bag10_r3_per_task` row, {per_replica:,.0f} gas per replica, mostly storage each replica "
                 "writes (its claim, its commitment, its revealed result), which batching cannot remove.")
        lines += ["", floor]
    lines += ["", "By kind (transactions, gas per task of the job):", "", "| job | kind | txs | gas per task |",
              "| --- | --- | ---: | ---: |"]
    for key, kinds in res.get("daemon_by_kind", {}).items():
        for kind, v in kinds.items():
            lines.append(f"| `{key}` | {kind} | {v['txs']} | {v['gas_per_task']:,} |")
    return lines


def profile_markdown(prof: dict[str, int]) -> list[str]:
    """Where `bag10_r3_per_task`'s gas goes, by kind of work, and what that says of the R > 1 targets."""
    whole = sum(prof.values())
    lines = ["", ("Where `bag10_r3_per_task`'s gas goes, per task (anvil's step trace of its 10 transactions, each "
                  "step charged its own cost: scripts/_gas_profile.py):"), "", "| kind of work | gas per task | share |",
             "| --- | ---: | ---: |"]
    lines += [f"| {c} | {v:,} | {100 * v / whole:.0f} % |" for c, v in prof.items() if v]
    lines.append(f"| total | {whole:,} | |")
    new, cold = prof["storage: new slots"], prof["reads: cold"]
    target = DAEMON["daemon_r3_per_task"][2]
    rest = whole - new - cold
    lines += ["", (f"New storage slots take {new:,} gas per task ({new / 20_000:.1f} slots of 20,000: each replica's "
                   "claim record and its commitment, the task's record, a share of the job's) and cold reads "
                   f"{cold:,} ({cold / 2_100:.0f} first reads of a slot in a transaction: each of the 9 transactions "
                   "reads afresh the task and the replicas it touches). Both follow from the storage layout: "
                   f"together {new + cold:,}, which leaves {target - new - cold:,} of the {target:,} an R = 3 task may "
                   f"cost as the daemon sends it (issue #17) for everything else, which takes {rest:,} now. Cheaper "
                   "code would have to cut all the rest by "
                   f"{100 * (1 - (target - new - cold) / rest):.0f} %. Fewer slots and first reads per replica have "
                   "to close most of the gap: a worker id and the commitment packed into the claim's slot would save "
                   "one new slot per replica (about 60,000 per R = 3 task); the rest would still take fewer reads "
                   "and cheaper code.")]
    return lines


def markdown(res: GasRow) -> str:
    lines = [
        "## Gas (marketplace contracts)",
        "",
        "Measured by `scripts/bench gas` on anvil (solc 0.8.37, via-IR, 200 runs). gasUsed summed over every",
        "transaction of a scenario; deposits, approvals, registrations and staking are excluded. Each scenario starts",
        "from a fresh deployment: workers already hold a balance (they deposited to stake), the app owner (price",
        "0.01 token) holds nothing, results carry a 59-character CIDv1, no callback. R = 1 scenarios send one",
        "`claim` and one `submit` per task. `bag10_r3_per_task` is what three workers running `tasknet worker run`",
        "send when each holds replicas of all ten tasks: the worker batches the claims, commits and due reveals",
        "it holds into one `multicall` transaction each (3 + 3 + 3 transactions; the last reveal of a task",
        "finalizes it). The same job sent one transaction per claim, commit and reveal (90 transactions) is the",
        "`bag10_r3_unbatched_per_task` row, kept as a reference. The `abandon` and `reportFailure` rows come from",
        "a run of their own (claims given back; R = 1 failures reported, confirmed, or failed at the cap).",
        "",
        "| scenario | Tasknet | target | iExec PoCo v6.2 | PoCo ÷ Tasknet |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]

    def ratio(key: str, value: int) -> str:
        return f"{POCO_GAS[key] / value:.1f}×" if key in POCO_GAS else "—"

    gas = _per_task(res)
    for key in ("single_task_r1", "bag100_r1_per_task", "bag10_r3_per_task", "bag100_r1_relayed_per_task"):
        ok = "✓" if gas[key] <= TARGETS[key] else "✗"
        lines.append(f"| `{key}` | {gas[key]:,} {ok} | ≤ {TARGETS[key]:,} | {POCO[key]} | {ratio(key, gas[key])} |")
    unbatched = res["bag10_r3_unbatched_per_task"]
    lines.append(f"| `bag10_r3_unbatched_per_task` (reference: the same job, one transaction per claim, commit "
                 f"and reveal) | {unbatched:,} | — | ≈ 1,793,900 | {ratio('bag10_r3_per_task', unbatched)} |")
    lines.append(f"| `bag10_credible_alone_per_task` (credibility mode, a trusted worker finishing each task alone, "
                 f"batched; issue #16) | {res['bag10_credible_alone_per_task']:,} | ≤ 1.5 × R = 1 "
                 f"({round(1.5 * res['bag100_r1_per_task']):,}) | — | — |")
    lease, r1_lease = res["bag10_credible_lease_per_task"], res["bag10_r1_lease_per_task"]
    lines.append(f"| `bag10_credible_lease_per_task` (the same tasks and worker through a credible lease: claimFreeRange, "
                 f"commitRange, revealRange) | {lease:,} {'✓' if lease <= 1.5 * r1_lease else '✗'} | ≤ 1.5 × an R = 1 "
                 f"lease ({round(1.5 * r1_lease):,}) | — | — |")
    lines.append(f"| `bag10_r1_lease_per_task` (reference: 10 R = 1 tasks, one claimFreeRange and one submitRange) | "
                 f"{r1_lease:,} | — | — | — |")
    for r, lane_gas in ((2, res.get("bag10_r2_lanes_per_task")), (3, res.get("bag10_r3_lanes_per_task"))):
        if lane_gas is not None:
            target = DAEMON[f"daemon_r{r}_per_task"][2]
            lines.append(f"| `bag10_r{r}_lanes_per_task` (10 tasks, R = {r}, one chunk: each lane's claimLane, "
                         f"commitLane and revealLane its own transaction; daemons lease lanes with batching.lanes) | "
                         f"{lane_gas:,} {'✓' if lane_gas <= target else '✗'} | ≤ {target:,} as the daemon sends it "
                         "(#17) | — | — |")
    if sizes := res.get("credible_lease_by_size"):
        lines += ["", ("One credible lease of `c` tasks, gas per task (`claimFreeRange`, `commitRange`, `revealRange`, "
                       "each its own transaction, in a job the lease does not close): about one lane of a replicated "
                       "range (contracts/RANGE-REPLICATION.md)."), "", "| `c` | " + " | ".join(sizes) + " |",
                  "| --- | " + " | ".join("---:" for _ in sizes) + " |",
                  "| gas per task | " + " | ".join(f"{g:,}" for g in sizes.values()) + " |"]
    lines += ["", "Per operation (gasUsed per transaction):", "", "| operation | mean | min | max | n |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for tag, s in res["operations"].items():
        lines.append(f"| {tag} | {s['mean']:,} | {s['min']:,} | {s['max']:,} | {s['count']} |")
    lines += ["", f"Setup excluded from the figures (largest scenario): {res['setup_gas_excluded']:,} gas."]
    if prof := res.get("r3_profile_per_task"):
        lines += profile_markdown(prof)
    if "daemon_by_kind" in res:
        lines += daemon_markdown(res)
    return "\n".join(lines)


def write_benchmarks(md: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    start, end = "<!-- gas:start -->", "<!-- gas:end -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{md}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        old, after = rest.split(end, 1)
        if DAEMON_HEADING not in md and DAEMON_HEADING in old:  # a run without --daemon keeps the last daemon rows
            block = f"{start}\n{md.rstrip()}\n\n{old[old.index(DAEMON_HEADING):].strip()}\n{end}"
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench gas", description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    ap.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    ap.add_argument("--daemon", action="store_true",
                    help="also measure what 4 real worker daemons send (R = 1 bag, R = 2, R = 3; ~5 min)")
    ap.add_argument("--runs", type=int, default=1, help="with --daemon: this many runs, medians reported")
    args = ap.parse_args(argv)
    res = measure()
    if args.daemon:
        res = {**res, **daemon_medians([measure_daemon() for _ in range(max(1, args.runs))])}
    md = markdown(res)
    if not args.no_write:
        write_benchmarks(md)
    print(md)
    if args.json:
        print(json.dumps(res, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
