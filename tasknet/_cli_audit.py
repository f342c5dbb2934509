"""``tasknet audit …``: re-derive task outcomes from public data (here, or on an indexer's API)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from oracle.protocol import JobId, TaskId

from ._cli_common import JOB_ID, TASK_ID, _chain_options, _resolve

console = Console(stderr=True)
out = Console()

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
@click.argument("task_id", type=TASK_ID)
@with_audit_options
def audit_task(task_id: TaskId, **kw: Any) -> None:
    _audit("task", task_id, **kw)


@audit.command("job", help=HELP_AUDIT_JOB)
@click.argument("job_id", type=JOB_ID)
@with_audit_options
@click.option("--parallel", type=click.IntRange(1, 32), default=4, show_default=True,
              help="tasks checked at once (their results fetched from IPFS meanwhile)")
@click.option("--indexer", "indexer_url", default=None, metavar="URL", envvar="TASKNET_INDEXER_URL",
              help="have this indexer's API run the audit (POST /audit/jobs/ID/runs) and follow it")
def audit_job(job_id: JobId, **kw: Any) -> None:
    _audit("job", job_id, **kw)


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


def register(cli: click.Group) -> None:
    """Add the ``audit`` group to the ``tasknet`` CLI."""
    cli.add_command(audit)
