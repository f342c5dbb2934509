"""``tasknet indexer …`` and ``tasknet audit …``: the auditor's mirror, API, dashboard and verifier."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from oracle.devnet import tasknet_home

console = Console(stderr=True)
out = Console()

HELP_INDEXER = """Mirror the marketplace into SQL and serve the read-only API and the public dashboard."""
HELP_RUN = """Ingest every marketplace event into the database (SQLite file by default, PostgreSQL by URL) and serve
the API, Prometheus metrics and the dashboard at http://HOST:PORT/. Options left out come from the devnet file.
Stops cleanly on SIGTERM/Ctrl-C; a restart resumes exactly where the last committed batch ended.

\b
Example:
  tasknet indexer run                                   # devnet, ~/.tasknet/indexer/<chain>-<market>.db
  tasknet indexer run --db postgresql://u@127.0.0.1/tasknet --confirmations 2 --port 8700
"""
HELP_SERVE = """Serve the API and dashboard over an existing mirror without ingesting (e.g. a read replica).

\b
Example:
  tasknet indexer serve --db ~/.tasknet/indexer/31337-0x5fbdb231.db --port 8701
"""
HELP_AUDIT = """Re-derive task outcomes from public data: events, calldata, signatures and IPFS content."""
HELP_AUDIT_TASK = """Audit one task: commitments, relayed signatures, the majority, rewards, slashes and the result
archive's digest (with --rerun-steps, a canonicalising app's step is run again on the raw output). Exits 1 if any
check fails.

\b
Example:
  tasknet audit task 4294967296 --json
"""
HELP_AUDIT_JOB = """Audit every claimed task of a job and the job's closing payments, a few tasks at a time
(--parallel), with a progress bar. Reads the node and IPFS from here, or with --indexer URL has that indexer run
the audit in the background and follows it. Exits 1 if any check fails.

\b
Example:
  tasknet audit job 1
  tasknet audit job 1 --json > report.json
  tasknet audit job 1 --indexer http://127.0.0.1:8700
"""

devnet_option = click.option("--devnet-file", type=click.Path(path_type=Path), default=None,
                             envvar="TASKNET_DEVNET_FILE", help="devnet file (default ~/.tasknet/devnet/devnet.json)")


def _chain_options(f: Any) -> Any:
    for opt in reversed([
        click.option("--network", default=None, help="network profile (env TASKNET_NETWORK; 'tasknet network list')"),
        devnet_option,
        click.option("--rpc-url", default=None, help="JSON-RPC URL (default: the devnet's)"),
        click.option("--marketplace", default=None, help="Marketplace address (default: the devnet's)"),
        click.option("--from-block", type=int, default=None, help="first block to read (default: the deploy block)"),
    ]):
        f = opt(f)
    return f


def _resolve(devnet_file: Path | None, rpc_url: str | None, marketplace: str | None, from_block: int | None,
             ipfs_api: str | None = None, network: str | None = None) -> tuple[str, str, int, str | None]:
    """RPC URL, marketplace, first block and IPFS API: the options, then TASKNET_* variables, then the network
    profile (oracle.settings)."""
    from oracle.settings import resolve

    s = resolve({"network": network, "devnet_file": devnet_file, "rpc_url": rpc_url, "marketplace": marketplace,
                 "deploy_block": from_block, "ipfs_api": ipfs_api})
    if not s.marketplace:
        raise click.UsageError("no marketplace: name a network (--network NAME) or give --rpc-url and --marketplace")
    return s.rpc_url, s.marketplace, s.deploy_block, s.ipfs_api


def _default_db(chain_id: int, market: str) -> str:
    folder = tasknet_home() / "indexer"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"{chain_id}-{market.lower()[:10]}.db")


def _serve_in_thread(app: Any, host: str, port: int) -> tuple[Any, threading.Thread]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="indexer-api", daemon=True)
    thread.start()
    return server, thread


@click.group(help=HELP_INDEXER)
def indexer() -> None:
    pass

@indexer.command(help=HELP_RUN)
@_chain_options
@click.option("--db", default=None, help="SQLite path or SQLAlchemy URL (default: a file under ~/.tasknet/indexer)")
@click.option("--confirmations", type=int, default=0, show_default=True, help="blocks held back from the head")
@click.option("--finality", type=int, default=64, show_default=True,
              help="blocks of hashes kept to detect reorgs; a deeper reorg stops the indexer")
@click.option("--batch-blocks", type=int, default=2000, show_default=True, help="blocks per eth_getLogs")
@click.option("--ipfs-api", default=None, help="kubo RPC API for /audit (default: the devnet's)")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8700, show_default=True)
@click.option("--no-api", is_flag=True, help="ingest only")
def run(network: str | None, devnet_file: Path | None, rpc_url: str | None, marketplace: str | None,
        from_block: int | None, db: str | None, confirmations: int, finality: int, batch_blocks: int,
        ipfs_api: str | None, host: str, port: int, no_api: bool) -> None:
    from indexer import Indexer, Verifier, create_app, make_engine
    from oracle import IpfsClient, connect

    from .cli import daemon_logging

    daemon_logging()

    rpc, market, start, ipfs_url = _resolve(devnet_file, rpc_url, marketplace, from_block, ipfs_api, network)
    w3 = connect(rpc)
    engine = make_engine(db or _default_db(int(w3.eth.chain_id), market))
    ix = Indexer(engine, w3, market, from_block=start, confirmations=confirmations, batch_blocks=batch_blocks,
                 finality=finality)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = None
    if not no_api:
        verifier = Verifier(w3, market, IpfsClient(ipfs_url) if ipfs_url else None, from_block=start)
        app = create_app(engine, chain_head=lambda: int(w3.eth.block_number), max_lag=confirmations + 10,
                         verifier=verifier)
        server, _ = _serve_in_thread(app, host, port)
        console.print(f"indexer: dashboard and API on http://{host}:{port}/ (db {engine.url.render_as_string()})",
                      highlight=False)
    try:
        ix.run(stop.is_set)
    finally:
        if server is not None:
            server.should_exit = True

@indexer.command(help=HELP_SERVE)
@click.option("--db", required=True, help="SQLite path or SQLAlchemy URL")
@click.option("--rpc-url", default=None, help="JSON-RPC URL, for /ready's live lag")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8700, show_default=True)
def serve(db: str, rpc_url: str | None, host: str, port: int) -> None:
    import uvicorn

    from indexer import create_app, make_engine

    head = None
    if rpc_url:
        from oracle import connect

        w3 = connect(rpc_url)
        head = lambda: int(w3.eth.block_number)
    app = create_app(make_engine(db), chain_head=head)
    console.print(f"indexer: serving http://{host}:{port}/ (read-only)", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning")

@click.group(help=HELP_AUDIT)
def audit() -> None:
    pass

def _audit(kind: str, ident: int, network: str | None, devnet_file: Path | None, rpc_url: str | None,
           marketplace: str | None, from_block: int | None, ipfs_api: str | None, key: str | None,
           as_json: bool, parallel: int = 4, indexer_url: str | None = None, rerun_steps: bool = False) -> None:
    from indexer import Verifier
    from oracle import IpfsClient, connect

    if kind == "job" and indexer_url:
        report = _audit_by_indexer(indexer_url, ident)
    else:
        rpc, market, start, ipfs_url = _resolve(devnet_file, rpc_url, marketplace, from_block, ipfs_api, network)
        docker_client = None
        if rerun_steps:
            import docker

            docker_client = docker.from_env()
        verifier = Verifier(connect(rpc), market, IpfsClient(ipfs_url) if ipfs_url else None, from_block=start,
                            decryption_key=key, docker_client=docker_client)
        if kind == "task":
            report = verifier.task(ident)
        else:
            with _audit_progress(ident) as progress:
                report = verifier.job(ident, parallel=parallel, progress=progress)
    if as_json:
        out.print_json(json.dumps(report.model_dump(), default=str))
    else:
        _print_report(report)
    if not report.passed:
        names = sorted({c.name for c in report.failed}) or ["job_exists"]
        console.print(f"[bold red]AuditFailed:[/] {kind} {ident}: failed check(s): {', '.join(names)}",
                      highlight=False)
        sys.exit(1)

audit_options = [
    _chain_options,
    click.option("--ipfs-api", default=None, help="kubo RPC API (default: the devnet's)"),
    click.option("--key", default=None, help="requester's X25519 private key (hex) to check encrypted results"),
    click.option("--json", "as_json", is_flag=True, help="print the report as JSON"),
    click.option("--rerun-steps", is_flag=True, help="re-run each canonicalising app's step (confined, on this "
                 "machine's Docker engine) on the published raw output; without it that check is skipped"),
]

def with_audit_options(f: Any) -> Any:
    for opt in reversed(audit_options):
        f = opt(f)
    return f

@audit.command("task", help=HELP_AUDIT_TASK)
@click.argument("task_id", type=int)
@with_audit_options
def audit_task(task_id: int, **kw: Any) -> None:
    _audit("task", task_id, **kw)

@audit.command("job", help=HELP_AUDIT_JOB)
@click.argument("job_id", type=int)
@with_audit_options
@click.option("--parallel", type=click.IntRange(1, 32), default=4, show_default=True,
              help="tasks checked at once (their results fetched from IPFS meanwhile)")
@click.option("--indexer", "indexer_url", default=None, metavar="URL", envvar="TASKNET_INDEXER_URL",
              help="have this indexer's API run the audit (POST /audit/jobs/ID/runs) and follow it")
def audit_job(job_id: int, **kw: Any) -> None:
    _audit("job", job_id, **kw)


def register(cli: click.Group) -> None:
    """Add the ``indexer`` and ``audit`` groups to the ``tasknet`` CLI."""
    cli.add_command(indexer)
    cli.add_command(audit)


@contextmanager
def _audit_progress(job_id: int) -> Iterator[Callable[[int, int], None]]:
    """A progress bar of tasks audited (on a terminal, on stderr: --json output stays clean)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(f"auditing job {job_id}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as p:
        bar = p.add_task("audit", total=None)
        yield lambda done, total: p.update(bar, completed=done, total=total)


def _audit_by_indexer(url: str, job_id: int, poll: float = 0.5) -> Any:
    """Start the job's audit on the indexer's API, follow its progress, then read its findings page by page:
    the same report as a local audit."""
    import time

    import httpx

    from indexer import Report

    base = url.rstrip("/")
    with httpx.Client(base_url=base, timeout=30) as http, _audit_progress(job_id) as progress:
        try:
            r = http.post(f"/audit/jobs/{job_id}/runs")
            if r.status_code == 503:
                raise click.ClickException(f"the indexer at {base} cannot audit: {r.json().get('detail')}")
            r.raise_for_status()
            run = r.json()
            while run["state"] == "running":
                progress(run["done"], run["total"] or 0)
                time.sleep(poll)
                run = http.get(run["links"]["self"]).raise_for_status().json()
            if run["state"] == "error":
                raise click.ClickException(f"the indexer's audit of job {job_id} failed: {run['error']}")
            tasks: list[Any] = []
            while True:
                page = http.get(run["links"]["findings"], params={"limit": 500, "offset": len(tasks)}
                                ).raise_for_status().json()
                tasks += page["items"]
                if not page["items"] or len(tasks) >= page["total"]:
                    break
        except httpx.HTTPError as exc:
            raise click.ClickException(f"the indexer at {base} does not answer ({exc}); start it with 'tasknet "
                                       "indexer run', or leave out --indexer to audit from the node") from exc
    return Report.model_validate({"kind": "job", "id": job_id, "status": run["status"], "passed": run["passed"],
                                  "checks": run["checks"], "tasks": tasks, "counts": run["counts"]})


#: a job's audit prints every task's checks up to this many tasks; beyond, only the tasks with a failed check
MAX_TASK_TABLES = 20


def _print_report(report: Any) -> None:
    shown = report.tasks if len(report.tasks) <= MAX_TASK_TABLES else [t for t in report.tasks if not t.passed]
    reports = [report, *shown]
    for r in reports:
        if not r.checks and r.kind == "job":
            continue
        table = Table(title=f"{r.kind} {r.id}: {r.status}", title_justify="left")
        for col in ("check", "subject", "result", "detail"):
            table.add_column(col)
        for c in r.checks:
            result = "[green]pass[/]" if c.passed else ("[yellow]skipped[/]" if c.passed is None else "[red]FAIL[/]")
            table.add_row(c.name, c.subject, result, c.detail)
        out.print(table)
    if report.counts:
        c = report.counts
        runs = [f"task {t.id & 0xFFFFFFFF}: {t.run}" for t in report.tasks if t.run not in (None, "ok")]
        out.print(f"tasks: {c['succeeded']} succeeded, {c['failed_runs']} finalized with a failed run, "
                  f"{c['failed']} failed on chain, {c['cancelled']} cancelled, {c['unsettled']} unsettled"
                  + (f" ({'; '.join(runs)})" if runs else ""))
    if len(shown) < len(report.tasks):
        out.print(f"{len(report.tasks) - len(shown)} task(s) passed every check (not listed; --json lists every "
                  "check of every task)")
    out.print("[green]all checks passed[/]" if report.passed else "[red]some checks failed[/]")
