"""The SQL mirror against a real anvil with real marketplace traffic, on SQLite and on PostgreSQL:
rows equal the contract's views, confirmations hold blocks back, reorgs roll back and re-ingest, a reorg past
finality halts, the schema version is checked."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from test_indexer_helpers import (
    BAD,
    E18,
    GOOD,
    Postgres,
    Traffic,
    assert_aggregates_match,
    assert_mirror_matches_chain,
    chain_event_count,
    count,
    current,
    start_postgres,
    traffic,
)

from indexer import Indexer, IndexerHalted, SchemaMismatch, _db, create_app, make_engine
from indexer._ingest import FastEventStream
from oracle.credibility import of_worker
from oracle.events import EventStream, StreamCursor
from oracle.market import Market
from oracle.protocol import task_id


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    yield from start_postgres()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "mirror.db")
    pg: Postgres = request.getfixturevalue("postgres")
    return pg.fresh_database("t" + uuid.uuid4().hex[:12])


@pytest.fixture
def t(w3, accounts, deployment) -> Traffic:
    return traffic(w3, accounts, deployment)


def _indexer(db_url: str, t: Traffic, **kw) -> Indexer:
    return Indexer(make_engine(db_url), t.w3, t.market.address, **kw)


def test_mirror_equals_the_contract_views_after_a_real_run(db_url: str, t: Traffic) -> None:
    ids = t.scenario()
    ix = _indexer(db_url, t)
    assert ix.sync() == chain_event_count(t)
    engine = ix.engine
    assert_mirror_matches_chain(engine, t)
    assert_aggregates_match(engine)
    assert count(engine, _db.events) == chain_event_count(t)

    single = {r["idx"]: r for r in current(engine, _db.tasks, job_id=ids["single"])}
    assert sorted(single) == [0, 1, 2] and all(r["status"] == "finalized" for r in single.values())
    assert single[2]["result_digest"] == "0x" + BAD.hex() and single[1]["result_cid"] == "bafyA"
    assert single[1]["worker"] == t.workers[1].address and single[1]["lease_start"] == task_id(ids["single"], 1)

    reps = current(engine, _db.replicas, task_id=task_id(ids["triple"], 0))
    assert sorted((r["worker"], r["status"]) for r in reps) == sorted(
        [(t.workers[0].address, "won"), (t.workers[1].address, "lost"), (t.workers[2].address, "won")])
    assert {r["reward"] for r in reps if r["status"] == "won"} == {3 * E18 // 2}
    with engine.connect() as conn:
        slashes = conn.execute(select(_db.slashes)).mappings().all()
        rewards = conn.execute(select(_db.payments).where(_db.payments.c.kind == "reward")).mappings().all()
    assert [(s["worker"], s["amount"]) for s in slashes] == [(t.workers[1].address, E18)]
    assert sum(r["amount"] for r in rewards) == 3 * E18 + 3 * E18  # three R=1 results + one R=3 pool

    cancelled = current(engine, _db.jobs, job_id=ids["cancelled"])[0]
    assert cancelled["closed"] and cancelled["cancelled"] == 3 and cancelled["escrow_held"] == 0
    workers = {w["address"]: w for w in current(engine, _db.workers)}
    assert workers[t.workers[3].address]["active_claims"] == 1
    assert workers[t.workers[1].address]["tasks_failed"] == 1
    # gas per task comes from the receipts: every task touched by a transaction was charged a share
    assert all(r["gas_used"] > 20_000 and r["txs"] >= 1 for r in current(engine, _db.tasks))


def test_credibility_mode_is_mirrored_and_served(db_url: str, t: Traffic) -> None:
    """Jobs keep their confidence, f and spot-check share; tasks start at one replica and record why they wanted
    each other one; workers' verified counts follow the chain (up at each confirmed win, 0 at a slash); the unused
    replicas' rewards are refunded; the API serves all of it (worker credibility under a job's f)."""
    ids = t.credibility_scenario()
    ix = _indexer(db_url, t)
    ix.sync()
    engine = ix.engine
    assert_mirror_matches_chain(engine, t)  # verified counts and credibility settings included
    assert_aggregates_match(engine)
    jobs = {r["job_id"]: r for r in current(engine, _db.jobs)}
    assert (jobs[ids["checked"]]["confidence_ppb"], jobs[ids["checked"]]["fault_bps"],
            jobs[ids["checked"]]["spot_check_bps"]) == (900_000_000, 2000, 10_000)
    assert jobs[ids["warm"]]["confidence_ppb"] is None
    tasks = {r["task_id"]: r for r in current(engine, _db.tasks)}
    lie, check = task_id(ids["checked"], 0), task_id(ids["checked"], 1)
    alone, capped = task_id(ids["alone"], 0), task_id(ids["capped"], 0)
    assert {k: (tasks[k]["status"], tasks[k]["target"], tasks[k]["wanted"], tasks[k]["winners"], tasks[k]["refund"])
            for k in (lie, check, alone, capped)} == {
        lie: ("finalized", 4, "spot-check,dispute,dispute", 3, 2 * E18),  # 4 of 6 replicas used
        check: ("finalized", 2, "spot-check", 2, 4 * E18),
        alone: ("finalized", 1, "", 1, 3 * E18),
        capped: ("failed", 2, "not-credible", 0, 2 * E18 + E18 // 10)}  # the cap's escrow and the app's price
    verified = {r["address"]: r["verified"] for r in current(engine, _db.workers)}
    assert [verified[w.address] for w in t.workers] == [0, 4, 1, 1, 1]
    with engine.connect() as conn:
        refunds = conn.execute(select(_db.payments.c.task_id, _db.payments.c.amount).where(
            _db.payments.c.kind == "refund", _db.payments.c.task_id.is_not(None))).all()
    assert sorted(refunds) == sorted([(lie, 2 * E18), (check, 4 * E18), (alone, 3 * E18),
                                      (capped, 2 * E18 + E18 // 10)])

    client = TestClient(create_app(engine))
    job = client.get(f"/api/jobs/{ids['checked']}").json()
    assert (job["mode"], job["confidence_ppb"], job["fault_bps"], job["spot_check_bps"], job["replication"]) == \
        ("credibility", 900_000_000, 2000, 10_000, 6)
    assert client.get(f"/api/jobs/{ids['warm']}").json()["mode"] == "fixed"
    listed = client.get("/api/jobs", params={"mode": "credibility", "limit": 2}).json()
    assert listed["total"] == 3 and [j["job_id"] for j in listed["items"]] == [ids["capped"], ids["alone"]]
    assert client.get("/api/jobs", params={"mode": "fixed"}).json()["total"] == 1
    detail = client.get(f"/api/tasks/{lie}").json()
    assert detail["task"]["wanted"] == ["spot-check", "dispute", "dispute"]
    assert [(x["reason"], x["target"], x["credibility_ppb"]) for x in detail["wanted"]] == [
        ("spot-check", 2, 900_000_000), ("dispute", 3, 4 * 10**9 // 9), ("dispute", 4, 16 * 10**9 // 21)]
    partner = t.workers[1].address
    body = client.get(f"/api/workers/{partner.lower()}", params={"job_id": ids["capped"]}).json()
    assert body["worker"]["verified"] == 4
    assert body["credibility"] == {"fault_bps": 1000, "job_id": ids["capped"], "credibility_ppb": of_worker(4, 1000)}
    assert client.get(f"/api/workers/{partner}").json()["credibility"]["fault_bps"] == 1000
    assert client.get(f"/api/workers/{partner}", params={"fault_bps": 2000}).json()["credibility"][
        "credibility_ppb"] == 950_000_000
    assert client.get(f"/api/workers/{partner}", params={"job_id": ids["warm"]}).status_code == 422
    assert client.get(f"/api/workers/{partner}", params={"job_id": 999}).status_code == 404


def _plain(value: Any) -> Any:
    """web3's decoded values as the ingester keeps them (tuples as dicts, bytes as 0x-hex)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return value


def test_the_fast_log_decoder_agrees_with_web3s_on_every_event_of_a_real_run(t: Traffic) -> None:
    """The ingester slices log data itself (eth_abi only for tuples and arrays); web3's decoding is the reference."""
    t.scenario()
    t.tx(t.registry.functions.updateApp(1, "ipfs://meta-2", 7, False), t.app_owner)  # more strings and bools
    market = Market(t.w3, t.market.address)
    streams = [cls(t.w3, market.addresses, market.event_abis, StreamCursor(next_block=0), batch=10**9)
               for cls in (EventStream, FastEventStream)]
    want, got = ([(e.name, _plain(e.args), e.address, e.block_number, e.block_hash.lower(), e.tx_hash.lower(),
                   e.log_index) for e in stream.poll()[1]] for stream in streams)
    assert got == want
    assert {"ParamsUpdated", "JobPosted", "AppRegistered", "AppUpdated", "ResultRevealed", "TasksClaimed",
            "WorkerSlashed"} <= {e[0] for e in got}


def test_ingesting_block_by_block_gives_the_same_rows_as_one_pass(tmp_path: Path, t: Traffic) -> None:
    slow = _indexer(str(tmp_path / "slow.db"), t, batch_blocks=1)
    t.scenario()
    slow.sync()
    fast = _indexer(str(tmp_path / "fast.db"), t, batch_blocks=10_000)
    fast.sync()
    for table in _db.VERSIONED:
        a = {tuple(sorted((k, v) for k, v in r.items() if k not in ("block_number", "log_index")))
             for r in current(slow.engine, table)}
        b = {tuple(sorted((k, v) for k, v in r.items() if k not in ("block_number", "log_index")))
             for r in current(fast.engine, table)}
        assert a == b, table.name
    assert count(slow.engine, _db.events) == count(fast.engine, _db.events)


def test_confirmations_hold_back_the_newest_blocks(tmp_path: Path, t: Traffic) -> None:
    app = t.app()
    ix = _indexer(str(tmp_path / "c.db"), t, confirmations=3)
    ix.sync()
    assert current(ix.engine, _db.apps) == []  # the registration is not 3 blocks deep yet
    t.w3.provider.make_request("anvil_mine", [3])
    ix.sync()
    assert [a["app_id"] for a in current(ix.engine, _db.apps)] == [app]


def _replicated_setup(t: Traffic) -> int:
    app = t.app()
    t.fund(t.requester, 50 * E18)
    for w in t.workers[:4]:
        t.enroll(w)
    job = t.post(app, n=2, r=3)
    tid = task_id(job, 0)
    for w in t.workers[:3]:
        t.claim(tid, w)
    for w in t.workers[:3]:
        t.commit(tid, w, GOOD)
    return job


def test_reorg_dropping_reveals_and_a_claim_rolls_back_and_reingests(db_url: str, t: Traffic) -> None:
    job = _replicated_setup(t)
    tid, other = task_id(job, 0), task_id(job, 1)
    ix = _indexer(db_url, t)
    ix.sync()
    before = {r["address"]: r for r in current(ix.engine, _db.workers)}
    events_before = count(ix.engine, _db.events)

    snap = t.w3.provider.make_request("evm_snapshot", [])["result"]
    for w in t.workers[:3]:
        t.reveal(tid, w, GOOD)  # the third reveal finalizes: rewards, reputation, job counters
    t.claim(other, t.workers[3])
    ix.sync()
    assert current(ix.engine, _db.tasks, task_id=tid)[0]["status"] == "finalized"
    assert len(current(ix.engine, _db.tasks)) == 2
    assert_aggregates_match(ix.engine)

    # The branch holding the reveals and the claim is replaced by one where a single reveal happened.
    t.w3.provider.make_request("evm_revert", [snap])
    t.w3.provider.make_request("anvil_mine", [1])
    t.reveal(tid, t.workers[0], GOOD)
    result = ix.step()
    assert result.reorg is not None
    ix.sync()

    task = current(ix.engine, _db.tasks, task_id=tid)[0]
    assert (task["status"], task["revealed"], task["winners"]) == ("revealing", 1, 0)
    assert current(ix.engine, _db.tasks, task_id=other) == []  # the dropped claim is gone
    reps = {r["worker"]: r["status"] for r in current(ix.engine, _db.replicas, task_id=tid)}
    assert sorted(reps.values()) == ["committed", "committed", "revealed"]
    after = {r["address"]: r for r in current(ix.engine, _db.workers)}
    for w in t.workers[1:4]:
        assert (after[w.address]["reputation"], after[w.address]["earned"], after[w.address]["locked"]) == \
            (before[w.address]["reputation"], before[w.address]["earned"], before[w.address]["locked"])
    assert count(ix.engine, _db.events) == events_before + 1
    with ix.engine.connect() as conn:
        assert conn.execute(select(_db.payments).where(_db.payments.c.kind == "reward")).all() == []
        # exactly one current version per key survives the rollback
        for table in (_db.tasks, _db.replicas, _db.workers, _db.jobs, _db.counters, _db.series):
            keys = [r[0] for r in conn.execute(select(table.c[table.info["key"]])
                                               .where(table.c.is_current.is_(True)))]
            assert len(keys) == len(set(keys)), table.name
        assert conn.execute(select(_db.cursor.c.events_total)).scalar_one() == events_before + 1
    assert_mirror_matches_chain(ix.engine, t)
    assert_aggregates_match(ix.engine)  # the counters rolled back with the rows they count

    # the new branch goes on and is mirrored as usual
    for w in t.workers[1:3]:
        t.reveal(tid, w, GOOD)
    ix.sync()
    assert current(ix.engine, _db.tasks, task_id=tid)[0]["status"] == "finalized"
    assert_mirror_matches_chain(ix.engine, t)
    assert_aggregates_match(ix.engine)


def test_anvil_reorg_replacing_the_newest_blocks_is_followed(tmp_path: Path, t: Traffic) -> None:
    app = t.app()
    ix = _indexer(str(tmp_path / "r.db"), t)
    ix.sync()
    t.app()  # app 2 in the newest block ...
    ix.sync()
    assert len(current(ix.engine, _db.apps)) == 2
    t.w3.provider.make_request("anvil_reorg", [1, []])  # ... which anvil replaces by an empty one
    ix.sync()
    assert [a["app_id"] for a in current(ix.engine, _db.apps)] == [app]


def test_reorg_deeper_than_finality_halts_without_touching_the_database(tmp_path: Path, t: Traffic) -> None:
    snap = t.w3.provider.make_request("evm_snapshot", [])["result"]
    t.app()
    t.app()
    ix = _indexer(str(tmp_path / "deep.db"), t, finality=1, batch_blocks=1)
    ix.sync()
    apps_before = current(ix.engine, _db.apps)
    t.w3.provider.make_request("evm_revert", [snap])
    t.w3.provider.make_request("anvil_mine", [5])
    with pytest.raises(IndexerHalted, match="deeper than the finality depth"):
        ix.step()
    assert current(ix.engine, _db.apps) == apps_before


def test_a_database_of_another_schema_version_or_deployment_is_refused(tmp_path: Path, t: Traffic) -> None:
    url = str(tmp_path / "v.db")
    _indexer(url, t).sync()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(update(_db.meta).where(_db.meta.c.key == "schema_version").values(value="0"))
    with pytest.raises(SchemaMismatch, match="schema version 0"):
        _indexer(url, t)
    with engine.begin() as conn:
        conn.execute(update(_db.meta).where(_db.meta.c.key == "schema_version").values(value=str(_db.SCHEMA_VERSION)))
    with pytest.raises(SchemaMismatch, match="marketplace"):
        Indexer(engine, t.w3, t.token.address)
