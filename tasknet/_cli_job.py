"""``tasknet job …``: the requester's jobs (submit, watch, status, explain, cancel, close, list).

Exit codes of ``job watch`` (and ``job submit --watch``): 0 every task succeeded, 3 a watched job ended with tasks
that did not finish (cancelled; or, with --no-check, failed), 4 the watch timed out, 5 some tasks failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import JsonValue
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from oracle.client import Client, JobSpec, TaskFailure, TaskInput, load_tasks, parse_duration
from oracle.exceptions import InvalidJobSpec, WaitTimeout
from oracle.protocol import JobId

from ._cli_common import (
    EXIT_FAILED,
    EXIT_TIMEOUT,
    EXIT_UNFINISHED,
    JOB_ID,
    _failures,
    _print_failures,
    amount_arg,
    download_progress,
    emit_json,
    err,
    json_option,
    out,
    tokens,
    upload_progress,
    with_client,
)

HELP_JOB = "Jobs: submit a task or a bag of tasks, watch it, cancel it, explain why a task waits."
HELP_SUBMIT = """Submit a job: one task, COUNT tasks from --arg templates ({index} is replaced), or one task
per entry of --args-file (.json list, .csv with args/in:PATH/env:NAME columns, or .txt lines). Local input
files are uploaded to IPFS; an inputs document is written; the escrow is locked. Prints the job id.

\b
Example:
  tasknet job submit --app 1 --count 24 --arg '{index}' --arg 24 --input scene.pov=./scene.pov --reward 0.1
  tasknet job submit --app 1 --args-file tasks.csv --replication 3 --encrypt --watch
"""
HELP_WATCH = """Follow a job live until every task settled: progress bars (claimed, running, finalized,
failed), or one JSON event per line with --json. Then (unless --no-check) read each result's status and list
the failed tasks with their reasons, apart from the successes: runs whose app failed (non-zero exit, timeout,
an output the worker refused...) and tasks the chain failed or refunded. Exit 0 when every task succeeded, 5
when some failed, 3 when some have no result otherwise (cancelled; or, with --no-check, failed), 4 on --timeout.

\b
Example:
  tasknet job watch 7 --timeout 600
"""
HELP_CANCEL = """Cancel the job's unclaimed tasks (all, or --first/--count) and get their escrow back now.

\b
Example:
  tasknet job cancel 7
"""
HELP_CLOSE = """After the deadline: refund every unfinished task of the job (and pay the owners).

\b
Example:
  tasknet job close 7
"""
HELP_EXPLAIN = """Say why a task (default: the first open one) is not running: deadline, workers'
capabilities and stake, app access, and what the chain cannot tell (workers' minimum reward).

\b
Example:
  tasknet job explain 7 --task 3
"""
HELP_JOB_LIST = """List jobs posted by this account (or --requester ADDRESS).

\b
Example:
  tasknet job list --json
"""
HELP_STATUS = """Show where a job stands: tasks finalized, failed (with the reason), cancelled, refunded and
still to settle, its escrow and progress. The summary reads the chain's counters (or an indexer's job row with
--indexer), so it takes the same time for ten tasks or ten thousand. Per-task rows come a page at a time:
--tasks (every task, in order), --state STATE (those in one state), --page N.

\b
Example:
  tasknet job status 7
  tasknet job status 7 --state failed
  tasknet job status 7 --tasks --page 3 --json
  tasknet job status 7 --indexer http://127.0.0.1:8700
"""

TASK_STATES = ("open", "claimed", "committing", "finalized", "failed", "cancelled", "refunded")


@click.group(help=HELP_JOB)
def job() -> None:
    pass


@job.command("submit", help=HELP_SUBMIT)
@click.option("--app", "app_id", type=int, required=True, help="app id")
@click.option("--dataset", "dataset_id", type=int, default=0, help="dataset id (seen at /in/dataset)")
@click.option("--args-file", type=click.Path(path_type=Path), default=None, help="one task per entry")
@click.option("--count", type=int, default=None, help="COUNT tasks from the --arg templates")
@click.option("--arg", "args", multiple=True, help="argument (repeatable; {index} = task index with --count)")
@click.option("--input", "inputs", multiple=True, metavar="PATH=FILE",
              help="input for every task at /in/PATH: a local file, ipfs://CID or https://...#sha256=HEX")
@click.option("--reward", type=amount_arg, required=True, help="per replica, in tokens")
@click.option("--replication", type=int, default=None,
              help="replicas per task (consensus if > 1; default 1); with --confidence, the replica cap (default 6)")
@click.option("--confidence", type=float, default=None,
              help="credibility mode: replicate each task only until its result is right with this probability "
                   "(e.g. 0.99), from the workers' verified records")
@click.option("--assume-faulty", type=float, default=0.1, show_default=True,
              help="credibility mode: the share of faulty workers to assume")
@click.option("--spot-check", type=float, default=0.1, show_default=True,
              help="credibility mode: share of tasks a trusted worker alone would finish that get a check replica")
@click.option("--deadline", default="1h", show_default=True, help="from now: 90s, 10m, 2h, 1d")
@click.option("--max-run", default="10m", show_default=True, help="per task")
@click.option("--cores", type=int, default=1, show_default=True)
@click.option("--memory", "memory_mb", type=int, default=256, show_default=True, help="MB")
@click.option("--gpus", type=int, default=0, show_default=True,
              help="NVIDIA GPUs given to each task (only workers with as many free GPUs claim it)")
@click.option("--arch", "archs", multiple=True, help="amd64, arm64, ... (default any)")
@click.option("--homogeneous", is_flag=True,
              help="homogeneous redundancy: all replicas of a task on the platform class of its first (R >= 2)")
@click.option("--min-reputation", type=int, default=0, show_default=True)
@click.option("--callback", default=None, help="ITaskCallback contract receiving each result")
@click.option("--encrypt", is_flag=True, help="seal results to a new key kept in your keyring")
@click.option("--watch", "then_watch", is_flag=True, help="then watch it to the end (exit codes of 'job watch')")
@json_option
@with_client("requester")
def job_submit(client: Client, app_id: int, dataset_id: int, args_file: Path | None, count: int | None,
               args: tuple[str, ...], inputs: tuple[str, ...], reward: int, replication: int | None,
               confidence: float | None, assume_faulty: float, spot_check: float, deadline: str,
               max_run: str, cores: int, memory_mb: int, gpus: int, archs: tuple[str, ...], homogeneous: bool,
               min_reputation: int, callback: str | None, encrypt: bool, then_watch: bool, as_json: bool) -> None:
    if args_file is not None and count is not None:
        raise click.UsageError("give --args-file or --count, not both")
    common: dict[str, str] = {}
    for item in inputs:
        dest, sep, source = item.partition("=")
        if not sep or not dest or not source:
            raise click.BadParameter(f"{item!r} is not PATH=FILE (e.g. scene.pov=./scene.pov)", param_hint="--input")
        common[dest] = source
    tasks: list[TaskInput] | None = None
    if args_file is not None:
        if args:
            raise click.UsageError("--arg goes with --count or a single task, not with --args-file")
        tasks = load_tasks(args_file)
    elif count is None:
        tasks = [TaskInput(args=list(args))]
    try:
        spec = JobSpec(app_id=app_id, dataset_id=dataset_id, tasks=tasks, count=count, args=list(args),
                       common_inputs=common, replication=replication or (6 if confidence else 1), reward=reward,
                       confidence=confidence, assume_faulty=assume_faulty, spot_check=spot_check,
                       deadline_in=parse_duration(deadline), max_run_seconds=parse_duration(max_run), cores=cores,
                       memory_mb=memory_mb, gpus=gpus, arch=list(archs), homogeneous=homogeneous,
                       min_reputation=min_reputation, callback=callback, encrypt=encrypt)
    except ValueError as exc:  # pydantic's ValidationError
        raise InvalidJobSpec(str(exc).replace("\n", " ")) from None
    with upload_progress("uploading inputs") as step:
        submitted = client.jobs.submit(spec, progress=step)
    if as_json and not then_watch:
        emit_json(submitted)
    elif not as_json:
        out.print(f"job {submitted.job_id} posted: {submitted.num_tasks} task(s), escrow {tokens(submitted.escrow)}, "
                  f"inputs {submitted.inputs_cid}" + (", results encrypted" if submitted.encryption_key else ""))
    if then_watch:
        _watch(client, submitted.job_id, None, as_json)


@job.command("watch", help=HELP_WATCH)
@click.argument("job_id", type=JOB_ID)
@click.option("--timeout", type=float, default=None, help="seconds")
@click.option("--check/--no-check", default=True, show_default=True,
              help="when the job is done, read each result's status to report the tasks whose app failed")
@click.option("--pin/--no-pin", default=True, show_default=True,
              help="pin each result on your IPFS node as it lands, so it outlives the worker that made it (and ask "
                   "the network's pinning service to pin it too, when the profile names one)")
@json_option
@with_client("requester")
def job_watch(client: Client, job_id: JobId, timeout: float | None, check: bool, pin: bool, as_json: bool) -> None:
    _watch(client, job_id, timeout, as_json, check=check, pin=pin)


def _watch(client: Client, job_id: int, timeout: float | None, as_json: bool, *, check: bool = True,
           pin: bool = True) -> None:
    last = None
    try:
        if as_json:
            for ev in client.jobs.watch(job_id, timeout=timeout, pin=pin):
                click.echo(ev.model_dump_json())
                last = ev.progress
        else:
            with Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(), console=err,
                          disable=not err.is_terminal) as p:
                total = client.jobs.get(job_id).num_tasks
                bars = {k: p.add_task(k, total=total) for k in ("claimed", "running", "finalized", "failed")}
                for ev in client.jobs.watch(job_id, timeout=timeout, pin=pin):
                    last = ev.progress
                    for k, bar in bars.items():
                        p.update(bar, completed=getattr(last, k))
    except WaitTimeout as exc:
        err.print(f"[yellow]WaitTimeout:[/] {exc}", highlight=False)
        sys.exit(EXIT_TIMEOUT)
    if last is None:
        last = client.jobs.get(job_id).progress
    failures: list[TaskFailure] = []
    if check and last.done:
        # a finalized task's result says whether its app succeeded: read each status (downloads the results)
        with download_progress() as step:
            results = client.results.download(job_id, None, progress=step)
        failures = _failures(client, job_id, results, ())
    if not as_json:
        app_failed = sum(1 for f in failures if f.state == "finalized")
        out.print(f"job {job_id}: {last.finalized}/{last.total} finalized"
                  + (f" ({app_failed} of them failed runs)" if app_failed else "")
                  + f", {last.failed} failed, {last.cancelled} cancelled" + (", closed" if last.closed else ""))
        pinned, unpinned = client.jobs.pinned
        if pin and (pinned or unpinned):
            out.print(f"{pinned} result(s) pinned on your IPFS node" + (
                f"; [yellow]{unpinned} could not be pinned[/] (their provider was unreachable: see the log)"
                if unpinned else ""))
        if pin and client.jobs.remote_pins is not None:
            remote = client.jobs.remote_pins
            colour = "red" if remote.failed else "yellow" if remote.pending else "green"
            out.print(f"[{colour}]{remote.summary()}[/]", highlight=False)
        _print_failures(failures)
    else:
        for f in failures:
            click.echo(json.dumps({"failed": f.model_dump()}))
    if last.finalized < last.total and not failures:
        sys.exit(EXIT_UNFINISHED)
    if failures:
        sys.exit(EXIT_FAILED)


@job.command("cancel", help=HELP_CANCEL)
@click.argument("job_id", type=JOB_ID)
@click.option("--first", type=int, default=0, show_default=True)
@click.option("--count", type=int, default=None, help="default: up to the last task")
@json_option
@with_client("requester")
def job_cancel(client: Client, job_id: JobId, first: int, count: int | None, as_json: bool) -> None:
    n, refund = client.jobs.cancel(job_id, first, count)
    if as_json:
        emit_json({"job_id": job_id, "cancelled": n, "refund": refund})
    else:
        out.print(f"job {job_id}: {n} unclaimed task(s) cancelled, {tokens(refund)} refunded")


@job.command("close", help=HELP_CLOSE)
@click.argument("job_id", type=JOB_ID)
@with_client("requester")
def job_close(client: Client, job_id: JobId) -> None:
    refund = client.jobs.close(job_id)
    out.print(f"job {job_id} closed, {tokens(refund)} refunded")


@job.command("explain", help=HELP_EXPLAIN)
@click.argument("job_id", type=JOB_ID)
@click.option("--task", "index", type=int, default=None, help="task index (default: the first open task)")
@json_option
@with_client("requester")
def job_explain(client: Client, job_id: JobId, index: int | None, as_json: bool) -> None:
    e = client.jobs.explain(job_id, index)
    if as_json:
        emit_json(e)
        return
    out.print(f"job {job_id} task {e.task_index}: {e.summary}")
    if e.reasons:
        out.print(f"workers: {e.workers_registered} registered, {e.workers_capable} capable, {e.workers_ready} "
                  "ready")
    colour = {"blocking": "red", "warning": "yellow", "info": "cyan"}
    for r in e.reasons:
        out.print(f"  [{colour[r.severity]}]{r.severity}[/] {r.message}" + (f"\n      → {r.fix}" if r.fix else ""),
                  highlight=False)


@job.command("list", help=HELP_JOB_LIST)
@click.option("--requester", default=None, help="address (default: this account)")
@json_option
@with_client("requester")
def job_list(client: Client, requester: str | None, as_json: bool) -> None:
    jobs = client.jobs.list(requester)
    if as_json:
        emit_json(jobs)
        return
    table = Table("job", "app", "tasks", "R", "reward", "finalized", "running", "failed", "escrow left", "state")
    for j in jobs:
        p = j.progress
        table.add_row(str(j.job_id), str(j.app_id), str(j.num_tasks), str(j.replication), tokens(j.reward),
                      str(p.finalized), str(p.running), str(p.failed), tokens(j.escrow_left),
                      "closed" if j.closed else "open")
    out.print(table)


@job.command("status", help=HELP_STATUS)
@click.argument("job_id", type=JOB_ID)
@click.option("--tasks", "show_tasks", is_flag=True, help="also list the tasks, a page at a time")
@click.option("--state", type=click.Choice(TASK_STATES), default=None, help="list the tasks in this state")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True, help="page of task rows")
@click.option("--per-page", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--indexer", "indexer_url", default=None, metavar="URL",
              help="read the job from this indexer's API (env TASKNET_INDEXER_URL) instead of the chain's counters")
@json_option
@with_client("requester")
def job_status(client: Client, job_id: JobId, show_tasks: bool, state: str | None, page: int, per_page: int,
               as_json: bool) -> None:
    summary = client.jobs.summary(job_id)
    rows = client.jobs.task_page(job_id, state=state, page=page, per_page=per_page) \
        if show_tasks or state is not None else None
    if as_json:
        doc: dict[str, JsonValue] = {"job": summary.model_dump(mode="json") | {"progress": round(summary.progress, 4)}}
        if rows is not None:
            doc["tasks"] = [t.model_dump(mode="json") for t in rows.items]
            doc["page"] = rows.model_dump(mode="json", exclude={"items"})
        emit_json(doc)
        return
    _print_summary(summary)
    if rows is not None:
        pages = max(1, -(-rows.total // rows.per_page))
        table = Table("task", "state", "workers", "digest", "cid",
                      title=f"tasks{f' ({state})' if state else ''}: page {rows.page} of {pages}, {rows.total} row(s)",
                      title_justify="left")
        for t in rows.items:
            table.add_row(str(t.index), t.state, ", ".join(t.workers) or "-", t.digest or "-", t.cid or "-")
        out.print(table)
        if rows.page < pages:
            out.print(f"next: --page {rows.page + 1}", highlight=False)


def _print_summary(s: Any) -> None:
    out.print(f"job {s.job_id}: app {s.app_id}, {s.total} task(s) × {s.replication}, reward {tokens(s.reward)}, "
              f"deadline {s.deadline}, escrow left {tokens(s.escrow_left)}, {'closed' if s.closed else 'open'} "
              f"(from the {s.source})", highlight=False)
    width = 30
    done = round(width * s.progress)
    counts = [f"{s.finalized} finalized", f"{s.failed} failed", f"{s.cancelled} cancelled"]
    if s.refunded:
        counts.append(f"{s.refunded} refunded")
    counts.append(f"{s.unsettled} to settle")
    if s.running is not None:
        counts.append(f"{s.running} running")
    out.print(f"[green]{'█' * done}[/][dim]{'░' * (width - done)}[/] {100 * s.progress:.1f}% settled: "
              + ", ".join(counts), highlight=False)
    for g in s.failures:
        first = f" (tasks {', '.join(map(str, g.first))}{', …' if g.count > len(g.first) else ''})" if g.first else ""
        out.print(f"  [red]{g.count} {g.state}[/]: {g.reason}{first}", highlight=False)
    if s.failures:
        out.print(f"  list them with --state {s.failures[0].state}", highlight=False)


def register(cli: click.Group) -> None:
    """Add the ``job`` group to the ``tasknet`` CLI."""
    cli.add_command(job)
