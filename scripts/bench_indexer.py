"""Indexer benchmark (not a test): ingestion rate into SQLite and PostgreSQL, API latency on a big mirror.

Starts its own anvil on loopback, deploys the contracts, and makes real traffic: R = 1 jobs whose tasks are
leased in ranges (``claimRange``) and finished in one ``submitRange`` each, so ``--tasks`` tasks produce about
as many events. It then times ``--runs`` full cold ``Indexer.sync()`` runs, each into a fresh SQLite file (and
as many into fresh databases of a throwaway PostgreSQL server when Debian's binaries are present), and reports
the median rate with the min and max. Then it measures the latency of a fixed mix of API requests against a
real uvicorn on 127.0.0.1 (after one warm-up request per route), ``--runs`` rounds of ``--requests`` each:
the reported p50 and p95 are the medians of the rounds' figures, and each route gets its p50 and p95 over all
rounds. The last line printed is JSON::

    {"sqlite_events_per_s": ..., "postgres_events_per_s": ..., "api_p50_ms": ..., "api_p95_ms": ..., ...}

Usage: ``python scripts/bench_indexer.py [--tasks 100000] [--range 512] [--requests 400] [--runs 3]
[--no-postgres]``
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _bench_rows import ApiLatency, IndexerRow, IngestRuns, dump_row
from pydantic import TypeAdapter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

E18 = 10**18
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _traffic(w3: Any, contracts: dict[str, str], accounts: list[Any], tasks: int, span: int) -> int:
    """Post jobs and finish every task through leased ranges; return the number of tasks."""
    from oracle import contract_at
    from oracle.protocol import task_id
    from oracle.tx import TxSender

    market = contract_at(w3, "Marketplace", contracts["Marketplace"])
    registry = contract_at(w3, "MarketplaceRegistry", contracts["MarketplaceRegistry"])
    token = contract_at(w3, "TestToken", contracts["TestToken"])
    senders = {a.address: TxSender(w3, a, extra_abis=[registry.abi, token.abi]) for a in accounts}

    def tx(fn: Any, who: Any) -> Any:
        return senders[who.address].transact(fn)

    requester, workers = accounts[1], accounts[4:8]
    tx(registry.functions.registerApp("bench/app:1", b"\x11" * 32, "ipfs://bench", 0, True, ""), accounts[2])
    budget = tasks * E18 // 1000 + E18
    for who, amount in [(requester, budget)] + [(w, span * E18 * 2) for w in workers]:
        tx(token.functions.faucet(who.address, amount), who)
        tx(token.functions.approve(market.address, amount), who)
        tx(market.functions.deposit(amount), who)
    for w in workers:
        tx(market.functions.registerWorker(8, 16_000, 0, 1), w)
        tx(market.functions.stake(span * E18 * 2), w)
    per_job = span * 8
    done, k = 0, 0
    now = int(w3.eth.get_block("latest")["timestamp"])
    while done < tasks:
        n = min(per_job, tasks - done)
        tx(market.functions.postJob((1, 0, n, 1, E18 // 1000, now + 10**7, 60, 1, 512, 0, 0, 0, "0x" + "00" * 20,
                                     "bafybench", b"")), requester)
        job = int(market.functions.jobCount().call())
        for first in range(0, n, span):
            count = min(span, n - first)
            w = workers[k % len(workers)]
            k += 1
            start = task_id(job, first)
            tx(market.functions.claimRange(start, count), w)
            tx(market.functions.submitRange(start, start, [bytes([i % 256]) * 32 for i in range(count)],
                                            [f"bafy{job}x{first + i}" for i in range(count)], []), w)
        done += n
        _log(f"  traffic: {done}/{tasks} tasks")
    return done


@contextmanager
def _postgres() -> Iterator[str | None]:
    """A throwaway PostgreSQL 15 server (fsync off, as in the tests); yields the URL of its ``postgres`` db."""
    if not (PG_BIN / "initdb").exists():
        yield None
        return
    from tasknet._devnet import free_port

    folder = Path(tempfile.mkdtemp(prefix="tasknet-bench-pg-"))
    os.chmod(folder, 0o755)
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_pg:
        subprocess.run(["chown", "postgres:postgres", str(folder)], check=True)
    data = folder / "data"
    port = free_port()
    try:
        subprocess.run([*as_pg, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                        "--no-sync"], check=True, capture_output=True)
        subprocess.run([*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                       check=True, capture_output=True)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def _fresh_pg_database(server: str, name: str) -> str:
    from sqlalchemy import create_engine

    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return server.rsplit("/", 1)[0] + "/" + name


def _ingest(url: str, w3: Any, market: str, start: int) -> tuple[float, int, Any]:
    from indexer import Indexer, make_engine

    engine = make_engine(url)
    ix = Indexer(engine, w3, market, from_block=start, batch_blocks=500)
    t0 = time.perf_counter()
    events = ix.sync()
    return time.perf_counter() - t0, events, engine


def _ingest_runs(urls: list[str], w3: Any, market: str, start: int, label: str,
                 cleanup: Any = None) -> tuple[IngestRuns, Any]:
    """Cold ingestions into each of ``urls`` (fresh databases); the median rate with min and max, and the
    engine of the last database (kept for the latency runs)."""
    rates: list[float] = []
    engine: Any = None
    events = 0
    for i, url in enumerate(urls):
        if engine is not None:
            engine.dispose()
            if cleanup is not None:
                cleanup(urls[i - 1])
        seconds, events, engine = _ingest(url, w3, market, start)
        rates.append(events / seconds)
        _log(f"bench: {label} run {i + 1}/{len(urls)}: {events} events in {seconds:.2f} s = {events / seconds:.0f}/s "
             f"(load {_load()})")
    return {"median": round(statistics.median(rates)), "min": round(min(rates)), "max": round(max(rates)),
            "runs": [round(r) for r in rates], "events": events}, engine


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


ROUTES = [
    ("/api/tasks?limit=50", "latest tasks"),
    ("/api/stats", "stats"),
    ("/api/workers", "workers"),
    ("/api/jobs?limit=20", "latest jobs"),
    ("/api/tasks?job_id={job}&status=finalized&limit=50&offset=200", "a job's finalized tasks, page 5"),
    ("/api/tasks/{tid}", "task detail (history, versions, transactions)"),
    ("/api/events?name=ResultSubmitted&limit=50", "events by name"),
    ("/api/stats/series?minutes=60", "stats series, 60 min"),
]


def _latency(engine: Any, requests: int, rounds: int, job_ids: list[int]) -> ApiLatency:
    import httpx
    import uvicorn

    from indexer import create_app
    from tasknet._devnet import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(engine), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    per_round: list[tuple[float, float]] = []
    per_route: dict[str, list[float]] = {path: [] for path, _ in ROUTES}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for path, _ in ROUTES:  # warm-up: one request per route, not measured
                client.get(path.format(job=job_ids[0], tid=job_ids[0] << 32)).raise_for_status()
            for _ in range(rounds):
                samples: list[float] = []
                for i in range(requests):
                    job = job_ids[i % len(job_ids)]
                    route = ROUTES[i % len(ROUTES)][0]
                    path = route.format(job=job, tid=(job << 32) | (i % 100))
                    t0 = time.perf_counter()
                    r = client.get(path)
                    ms = (time.perf_counter() - t0) * 1000
                    if r.status_code != 200:
                        raise RuntimeError(f"{path}: HTTP {r.status_code} {r.text[:200]}")
                    samples.append(ms)
                    per_route[route].append(ms)
                per_round.append((_pct(samples, 50), _pct(samples, 95)))
    finally:
        server.should_exit = True
        thread.join(10)
    return {
        "p50": round(statistics.median(p for p, _ in per_round), 2),
        "p95": round(statistics.median(p for _, p in per_round), 2),
        "rounds": [[round(a, 2), round(b, 2)] for a, b in per_round],
        "routes": [{"route": route, "what": what, "p50": round(_pct(per_route[route], 50), 2),
                    "p95": round(_pct(per_route[route], 95), 2), "n": len(per_route[route])}
                   for route, what in ROUTES],
    }


def _pct(samples: list[float], q: int) -> float:
    """The ``q``-th percentile, nearest rank."""
    ordered = sorted(samples)
    return ordered[max(0, -(-len(ordered) * q // 100) - 1)]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks (≈ events) to create")
    parser.add_argument("--range", type=int, default=512, help="tasks per leased range / submitRange")
    parser.add_argument("--requests", type=int, default=400, help="API requests per latency round")
    parser.add_argument("--runs", type=int, default=3, help="ingestions per database, and latency rounds")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL runs")
    parser.add_argument("--json", action="store_true", help="accepted for symmetry: the last line is always JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)

    from web3 import Web3

    from oracle import connect, deploy_all, dev_accounts
    from tasknet import _devnet

    work = Path(tempfile.mkdtemp(prefix="tasknet-bench-indexer-"))
    info, url = _devnet.start_anvil(work / "anvil", _devnet.free_port())
    load_before = _load()
    postgres: IngestRuns | None = None
    pg_api: ApiLatency | None = None
    try:
        os.environ.setdefault("TASKNET_HOME", str(work / "home"))
        w3 = connect(url)
        w3.provider.make_request("anvil_setBlockGasLimit", [hex(300_000_000)])  # type: ignore[arg-type]
        accounts = dev_accounts(10)
        dep = deploy_all(w3, accounts[0])
        _log(f"bench: making {args.tasks} tasks of traffic on {url}")
        t0 = time.perf_counter()
        tasks = _traffic(w3, dep.contracts, accounts, args.tasks, args.range)
        _log(f"bench: traffic made in {time.perf_counter() - t0:.1f} s")
        market = dep.contracts["Marketplace"]
        job_ids = list(range(1, int(w3.eth.contract(address=Web3.to_checksum_address(market), abi=[{
            "type": "function", "name": "jobCount", "inputs": [], "outputs": [{"type": "uint256", "name": ""}],
            "stateMutability": "view"}]).functions.jobCount().call()) + 1))

        def drop_file(path: str) -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(path + suffix).unlink(missing_ok=True)

        sqlite, engine = _ingest_runs([str(work / f"bench-{i}.db") for i in range(args.runs)], w3, market,
                                      dep.deploy_block, "SQLite", drop_file)
        if not args.no_postgres:
            with _postgres() as pg:
                if pg is not None:
                    urls = [_fresh_pg_database(pg, f"bench{i}") for i in range(args.runs)]
                    postgres, pg_engine = _ingest_runs(urls, w3, market, dep.deploy_block, "PostgreSQL")
                    _log(f"bench: PostgreSQL API latency (load {_load()})")
                    pg_api = _latency(pg_engine, args.requests, args.runs, job_ids)
                    pg_engine.dispose()
        _log(f"bench: SQLite API latency (load {_load()})")
        api = _latency(engine, args.requests, args.runs, job_ids)
        engine.dispose()
        load_after = _load()
    finally:
        _devnet.stop(info)
        shutil.rmtree(work, ignore_errors=True)
    # the four headline figures first, then the rest in the order they were measured (dump_row puts PostgreSQL's
    # where they belong)
    row: IndexerRow = {"sqlite_events_per_s": sqlite["median"],
                       "postgres_events_per_s": postgres["median"] if postgres is not None else None,
                       "api_p50_ms": api["p50"], "api_p95_ms": api["p95"], "load_before": load_before,
                       "sqlite_ingestion": sqlite, "events": sqlite["events"], "api": api, "tasks": tasks,
                       "api_requests": args.requests, "runs": args.runs, "load_after": load_after,
                       "python": platform.python_version()}
    if postgres is not None and pg_api is not None:
        row["postgres_ingestion"], row["postgres_api"] = postgres, pg_api
    print(dump_row(TypeAdapter(IndexerRow), row))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
