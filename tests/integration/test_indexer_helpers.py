"""Helpers for the indexer tests: real marketplace traffic on the session anvil, and mirror-vs-chain checks.

Imported by tests/integration/test_indexer_*.py and tests/e2e/test_dashboard.py (no tests here).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, select
from web3 import Web3
from web3.contract import Contract

from indexer import _db
from oracle import send
from oracle.archive import pack_result
from oracle.protocol import (
    Eip712Domain,
    commitment,
    results_batch,
    sign_commit,
    sign_reveal,
    task_id,
)

E18 = 10**18
FAR = 10**8
SALT = b"\x5a" * 32
GOOD = b"\x60" * 32
BAD = b"\xba" * 32


@dataclasses.dataclass
class Traffic:
    """Drives the real contracts from test accounts: the roles of a small Tasknet run."""

    w3: Web3
    market: Contract
    registry: Contract
    token: Contract
    accounts: list[LocalAccount]

    @property
    def owner(self) -> LocalAccount:
        return self.accounts[0]

    @property
    def requester(self) -> LocalAccount:
        return self.accounts[1]

    @property
    def app_owner(self) -> LocalAccount:
        return self.accounts[2]

    @property
    def workers(self) -> list[LocalAccount]:
        return self.accounts[4:9]

    @property
    def relayer(self) -> LocalAccount:
        return self.accounts[9]

    @property
    def domain(self) -> Eip712Domain:
        return Eip712Domain(chain_id=self.w3.eth.chain_id, verifying_contract=self.market.address)

    def tx(self, fn: Any, sender: LocalAccount) -> Any:
        return send(self.w3, fn, sender, extra_abis=[self.registry.abi, self.token.abi])

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def fund(self, who: LocalAccount, amount: int) -> None:
        self.tx(self.token.functions.faucet(who.address, amount), who)
        self.tx(self.token.functions.approve(self.market.address, amount), who)
        self.tx(self.market.functions.deposit(amount), who)

    def app(self, price: int = E18 // 10, deterministic_file: str = "") -> int:
        self.tx(self.registry.functions.registerApp("registry.local/app:1", b"\x11" * 32, "ipfs://meta", price,
                                                    True, deterministic_file), self.app_owner)
        return int(self.registry.functions.appCount().call())

    def dataset(self, price: int = E18 // 20) -> int:
        self.tx(self.registry.functions.registerDataset("bafydataset", b"\x22" * 32, 1000, price, True, True),
                self.accounts[3])
        return int(self.registry.functions.datasetCount().call())

    def enroll(self, who: LocalAccount, stake: int = 10 * E18, cores: int = 8, memory: int = 16_000) -> None:
        self.tx(self.market.functions.registerWorker(cores, memory, 0, 1), who)
        self.fund(who, stake)
        self.tx(self.market.functions.stake(stake), who)

    def post(self, app_id: int, *, n: int = 1, r: int = 1, dataset: int = 0, reward: int = E18,
             max_run: int = 3600, key: bytes = b"") -> int:
        p = (app_id, dataset, n, r, reward, self.now() + FAR, max_run, 1, 512, 0, 0, 0, "0x" + "00" * 20,
             "bafyinputs", key)
        self.tx(self.market.functions.postJob(p), self.requester)
        return int(self.market.functions.jobCount().call())

    # R = 1 ---------------------------------------------------------------------------------------
    def claim(self, tid: int, w: LocalAccount) -> Any:
        return self.tx(self.market.functions.claim(tid), w)

    def submit(self, tid: int, w: LocalAccount, digest: bytes = GOOD, cid: str = "bafyresult") -> Any:
        return self.tx(self.market.functions.submit(tid, digest, cid, b""), w)

    def claim_range(self, start: int, count: int, w: LocalAccount) -> Any:
        return self.tx(self.market.functions.claimRange(start, count), w)

    def relay_results(self, start: int, first: int, w: LocalAccount, digests: list[bytes], cids: list[str]) -> Any:
        batch = results_batch(w, self.domain, start, first, digests, cids)
        return self.tx(self.market.functions.relayResults([batch]), self.relayer)

    # R > 1 ---------------------------------------------------------------------------------------
    def commit(self, tid: int, w: LocalAccount, digest: bytes, *, relayed: bool = False) -> Any:
        c = commitment(tid, digest, SALT, w.address)
        if relayed:
            sig = sign_commit(w, self.domain, tid, c)
            return self.tx(self.market.functions.relayCommits([(tid, c, sig)]), self.relayer)
        return self.tx(self.market.functions.commit(tid, c), w)

    def reveal(self, tid: int, w: LocalAccount, digest: bytes, cid: str = "bafyR", *, relayed: bool = False) -> Any:
        if relayed:
            sig = sign_reveal(w, self.domain, tid, digest, SALT, cid, b"")
            return self.tx(self.market.functions.relayReveals([(tid, digest, SALT, cid, b"", sig)]), self.relayer)
        return self.tx(self.market.functions.reveal(tid, digest, SALT, cid, b""), w)

    def replicated(self, tid: int, workers: list[LocalAccount], digests: list[bytes], cids: list[str] | None = None,
                   relayed: tuple[bool, ...] = ()) -> None:
        """Claim, commit and reveal one replica per worker (the last reveal finalizes)."""
        cids = cids or ["bafyR"] * len(workers)
        relay = list(relayed) + [False] * (len(workers) - len(relayed))
        for w in workers:
            self.claim(tid, w)
        for w, d, rl in zip(workers, digests, relay, strict=True):
            self.commit(tid, w, d, relayed=rl)
        for w, d, c, rl in zip(workers, digests, cids, relay, strict=True):
            self.reveal(tid, w, d, c, relayed=rl)

    # credibility mode ---------------------------------------------------------------------------
    def post_credible(self, app_id: int, confidence_ppb: int, fault_bps: int, spot_bps: int, *, n: int = 1,
                      cap: int = 6, reward: int = E18) -> int:
        p = (app_id, 0, n, cap, reward, self.now() + FAR, 3600, 1, 512, 0, 0, 0, "0x" + "00" * 20, "bafyinputs", b"")
        self.tx(self.market.functions.postCredibilityJob(p, (confidence_ppb, fault_bps, spot_bps)), self.requester)
        return int(self.market.functions.jobCount().call())

    def claim_commit(self, tid: int, w: LocalAccount, digest: bytes) -> None:
        self.claim(tid, w)
        self.commit(tid, w, digest)

    def credibility_scenario(self) -> dict[str, int]:
        """Credibility mode with its three reasons for another replica. Workers vet, partner, h2, h3, h4: vet and
        partner agree on the two tasks of an R = 2 job (2 verified results each). Job ``checked`` (confidence 0.9,
        f = 20 %, every lone result spot-checked, cap 6): on task 0 vet, credible alone, commits a wrong digest, a
        spot check picks it, partner disputes it, h2 and h3 join until 3 honest results outweigh it (64/69), vet is
        slashed; on task 1 partner (3 verified) is spot-checked by h4 and both agree. Job ``alone`` (no spot checks,
        cap 4): partner finalizes alone. Job ``capped`` (confidence 0.99, f = 10 %, cap 2): h2 and h3 (1 verified
        each) agree, 81/82 is not enough, the task fails at its cap."""
        vet, partner, h2, h3, h4 = self.workers
        app = self.app()
        self.fund(self.requester, 200 * E18)
        for w in self.workers:
            self.enroll(w)
        warm = self.post(app, n=2, r=2)
        for i in range(2):
            self.replicated(task_id(warm, i), [vet, partner], [GOOD, GOOD])
        checked = self.post_credible(app, 900_000_000, 2000, 10_000, n=2, cap=6)
        lie, check = task_id(checked, 0), task_id(checked, 1)
        self.claim_commit(lie, vet, BAD)
        self.tx(self.market.functions.startSpotCheck(lie), self.relayer)
        self.claim_commit(lie, partner, GOOD)
        self.reveal(lie, vet, BAD)
        self.reveal(lie, partner, GOOD)  # 1 against 1: a dispute
        for w in (h2, h3):
            self.claim_commit(lie, w, GOOD)
            self.reveal(lie, w, GOOD)
        self.claim_commit(check, partner, GOOD)
        self.tx(self.market.functions.startSpotCheck(check), self.relayer)
        self.claim_commit(check, h4, GOOD)
        self.reveal(check, partner, GOOD)
        self.reveal(check, h4, GOOD)
        alone = self.post_credible(app, 900_000_000, 2000, 0, n=1, cap=4)
        self.claim_commit(task_id(alone, 0), partner, GOOD)
        self.reveal(task_id(alone, 0), partner, GOOD)
        capped = self.post_credible(app, 990_000_000, 1000, 0, n=1, cap=2)
        for w in (h2, h3):
            self.claim_commit(task_id(capped, 0), w, GOOD)
        for w in (h2, h3):
            self.reveal(task_id(capped, 0), w, GOOD)
        return {"app": app, "warm": warm, "checked": checked, "alone": alone, "capped": capped}

    def scenario(self) -> dict[str, int]:
        """A small but complete run: registry, workers, an R=1 job (direct + relayed results), an R=3 job with
        a dissenting (slashed) replica and relayed commit/reveal, and a cancelled job."""
        app = self.app()
        ds = self.dataset()
        self.fund(self.requester, 200 * E18)
        for w in self.workers[:4]:
            self.enroll(w)
        single = self.post(app, n=4, dataset=ds)
        self.claim(task_id(single, 0), self.workers[0])
        self.submit(task_id(single, 0), self.workers[0])
        self.claim_range(task_id(single, 1), 2, self.workers[1])
        self.relay_results(task_id(single, 1), task_id(single, 1), self.workers[1], [GOOD, BAD], ["bafyA", "bafyB"])
        triple = self.post(app, n=2, r=3)
        self.replicated(task_id(triple, 0), self.workers[:3], [GOOD, BAD, GOOD], relayed=(True, False, False))
        self.claim(task_id(triple, 1), self.workers[3])  # still running
        cancelled = self.post(app, n=3)
        self.tx(self.market.functions.cancelTasks(cancelled, 0, 3), self.requester)
        return {"app": app, "dataset": ds, "single": single, "triple": triple, "cancelled": cancelled}


def traffic(w3: Web3, accounts: list[LocalAccount], deployment: dict[str, Contract]) -> Traffic:
    return Traffic(w3=w3, market=deployment["Marketplace"], registry=deployment["MarketplaceRegistry"],
                   token=deployment["TestToken"], accounts=accounts)


# -- mirror vs chain ------------------------------------------------------------------------------
def current(engine: Engine, table: Any, **where: Any) -> list[dict[str, Any]]:
    q = select(table).where(table.c.is_current.is_(True))
    for k, v in where.items():
        q = q.where(table.c[k] == v)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(table)).all())


def assert_mirror_matches_chain(engine: Engine, t: Traffic) -> None:
    """Workers, jobs (escrow included) and replicated tasks in the mirror equal the contract's views."""
    for row in current(engine, _db.workers):
        w = t.market.functions.getWorker(row["address"]).call()
        stake, locked, reputation, slashes, flags, verified = w[0], w[1], w[2], w[3], w[4], w[11]
        assert (row["stake"], row["locked"], row["reputation"], row["slashes"], row["banned"], row["verified"]) == \
            (stake, locked, reputation, slashes, bool(flags & 2), verified), row["address"]
        assert (row["cores"], row["memory_mb"]) == (w[7], w[8])
    jobs = current(engine, _db.jobs)
    assert len(jobs) == t.market.functions.jobCount().call()
    for row in jobs:
        j = t.market.functions.getJob(row["job_id"]).call()
        assert row["escrow_held"] == t.market.functions.jobEscrow(row["job_id"]).call(), row["job_id"]
        assert (row["num_tasks"], row["settled"], row["finished"], row["closed"]) == \
            (j[6], j[7], j[8], bool(j[14] & 1)), row["job_id"]
        credible = t.market.functions.getCredibility(row["job_id"]).call()
        assert (row["confidence_ppb"], row["fault_bps"], row["spot_check_bps"]) == \
            ((None, None, None) if credible[0] == 0 else tuple(credible)), row["job_id"]
    for row in current(engine, _db.tasks):
        if row["target"] <= 1:
            continue
        task = t.market.functions.getTask(row["task_id"]).call()
        status = {1: ("running", "revealing"), 2: ("finalized",), 3: ("failed",)}[task[0]]
        assert row["status"] in status and row["target"] == task[1], row
        if task[0] == 1:  # active: the live replicas are the occupied slots
            assert row["occupied"] == task[2].bit_count(), row
            assert row["committed"] == task[3].bit_count(), row
    apps = current(engine, _db.apps)
    assert len(apps) == t.registry.functions.appCount().call()


def assert_aggregates_match(engine: Engine) -> None:
    """The ``counters`` and ``series`` rows the ingester maintains equal the same figures counted from the rows
    (the API serves totals and stats from them)."""
    want: Counter[str] = Counter()
    points: dict[int, list[int]] = {}
    for row in current(engine, _db.tasks):
        want["tasks"] += 1
        want[f"tasks:{row['status']}"] += 1
        if row["status"] == "finalized":
            want["gas:finalized"] += row["gas_used"]
        if row["finished_at"] is not None:
            point = points.setdefault(row["finished_at"], [0, 0, 0, 0])
            point[0] += 1
            point[1] += row["status"] == "finalized"
            point[2] += row["status"] == "failed"
            point[3] += row["gas_used"] if row["status"] == "finalized" else 0
    for row in current(engine, _db.jobs):
        want["jobs"] += 1
        if not row["closed"]:
            want["jobs:open"] += 1
            want["escrow:open"] += row["escrow_held"]
    for table in (_db.workers, _db.apps, _db.datasets):
        want[table.name] += len(current(engine, table))
    with engine.connect() as conn:
        for table, column in ((_db.events, "name"), (_db.payments, "kind")):
            for (value,) in conn.execute(select(table.c[column])):
                want[table.name] += 1
                want[f"{table.name}:{value}"] += 1
        want["slashes"] += len(conn.execute(select(_db.slashes)).all())
    got = {r["name"]: r["value"] for r in current(engine, _db.counters)}
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in want.items() if v}
    got_points = {r["t"]: [r["settled"], r["finalized"], r["failed"], r["gas"]] for r in current(engine, _db.series)}
    assert {t: v for t, v in got_points.items() if any(v)} == points


def chain_event_count(t: Traffic, from_block: int = 0) -> int:
    """Logs of the marketplace and registry whose event the interfaces declare (Ownable's are not)."""
    from eth_utils import event_abi_to_log_topic

    from oracle import abi

    topics = {bytes(event_abi_to_log_topic(e)) for name in ("IMarketplace", "IMarketplaceExtension", "IMarketplaceRegistry")
              for e in abi(name) if e.get("type") == "event"}
    logs = t.w3.eth.get_logs({"fromBlock": from_block, "toBlock": "latest",
                              "address": [t.market.address, t.registry.address]})
    return sum(1 for log in logs if bytes(log["topics"][0]) in topics)


# -- a throwaway PostgreSQL server ----------------------------------------------------------------
PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclasses.dataclass
class Postgres:
    url: str
    folder: Path
    port: int

    def fresh_database(self, name: str) -> str:
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p",
                        str(self.port), name], check=True, capture_output=True)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


def start_postgres() -> Iterator[Postgres]:
    """initdb into a temp folder and pg_ctl start on a free loopback port, as the postgres OS user."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL binaries not found under {PG_BIN}; install Debian's postgresql-15")
    from tasknet._devnet import free_port

    folder = Path(tempfile.mkdtemp(prefix="tasknet-pg-"))
    os.chmod(folder, 0o755)
    data = folder / "data"
    subprocess.run(["chown", "postgres:postgres", str(folder)], check=True)
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*as_pg, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                    "--no-sync"], check=True, capture_output=True)
    port = free_port()
    opts = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    subprocess.run([*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(folder / "log"),
                    "-w", "-t", "60", "start"], check=True, capture_output=True)
    try:
        yield Postgres(url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", folder=folder, port=port)
    finally:
        subprocess.run([*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def wait_for(check: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def make_result(tmp: Path, content: bytes, det_file: str | None = None) -> Any:
    """Pack an output folder holding ``out.txt`` (and a deterministic ``digest.txt``) canonically."""
    out = tmp / f"out-{content.hex()[:8]}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "out.txt").write_bytes(content)
    (out / "digest.txt").write_bytes(b"stable")
    return pack_result(out, tmp / f"{out.name}.tar", deterministic_file=det_file)


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every derived table (all versions), sorted: equal dumps mean equal mirrors."""
    out = {}
    with engine.connect() as conn:
        for table in (*_db.VERSIONED, *_db.FACTS):
            out[table.name] = sorted(tuple(str(v) for v in r) for r in conn.execute(select(table)))
    return out
