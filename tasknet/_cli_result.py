"""``tasknet result …``: download, decrypt, check against the chain's digest and unpack a job's results."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from oracle.client import Client
from oracle.protocol import JobId

from ._cli_common import (
    EXIT_FAILED,
    JOB_ID,
    _failures,
    _print_failures,
    download_progress,
    emit_json,
    err,
    json_option,
    out,
    printable,
    with_client,
)

HELP_RESULT = "Results: download, decrypt, check against the chain's digest, unpack."
HELP_GET = """Download the finished tasks' results (or --task ones) from IPFS, decrypt them with your
keyring, check each against the digest the chain finalized, and unpack them to OUT/<index>/ (output/ and logs/).
A few are fetched at a time (--parallel). Each verified result is noted in OUT/.tasknet-results.jsonl: run the
command again after an interruption and it fetches only what is missing. Exit 1 if any result does not match.

\b
Example:
  tasknet result get 7 results/
  tasknet result get 7 --task 0 --out results/
"""
HELP_VERIFY = """Download and check results against the chain's digests without keeping them. Exit 1 on a
mismatch.

\b
Example:
  tasknet result verify 7 --task 0 --task 1
"""

#: tasks listed one per line by 'result get' (beyond, its summary line only: --json lists every one)
MAX_ROWS = 50


@click.group(help=HELP_RESULT)
def result() -> None:
    pass


@contextmanager
def results_progress() -> Iterator[tuple[Callable[[int], None], Callable[[Any], None], Callable[[int], None]]]:
    """A bar of tasks done (resumed ones included) with the bytes downloaded: (bytes, task done, set total)."""
    with Progress(TextColumn("results"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[resumed]}"),
                  DownloadColumn(), TransferSpeedColumn(), console=err, transient=True,
                  disable=not err.is_terminal) as p:
        bar = p.add_task("results", total=None, resumed="")
        downloaded = p.add_task("bytes", total=None, visible=False)
        resumed = 0

        def task_done(r: Any) -> None:
            nonlocal resumed
            resumed += 1 if r.resumed else 0
            p.update(bar, advance=1, resumed=f"({resumed} already here)" if resumed else "")

        yield (lambda n: p.update(downloaded, advance=n)), task_done, (lambda n: p.update(bar, total=n))


@result.command("get", help=HELP_GET)
@click.argument("job_id", type=JOB_ID)
@click.argument("out_dir", metavar="OUT", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--task", "indexes", type=int, multiple=True, help="task index (repeatable; default all finished)")
@click.option("--out", "out_option", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="the folder to unpack into (the same as OUT)")
@click.option("--parallel", type=click.IntRange(1, 32), default=4, show_default=True,
              help="results downloaded at once")
@json_option
@with_client("requester")
def result_get(client: Client, job_id: JobId, out_dir: Path | None, indexes: tuple[int, ...], out_option: Path | None,
               parallel: int, as_json: bool) -> None:
    if out_dir is not None and out_option is not None and out_dir != out_option:
        raise click.UsageError(f"two output folders given ({out_dir} and --out {out_option}); give one")
    dest = out_dir or out_option
    if dest is None:
        raise click.UsageError("where should the results go? give a folder: 'tasknet result get JOB_ID OUT'")
    with results_progress() as (step, done, total):
        results = client.results.download(job_id, dest, indexes=list(indexes) or None, progress=step, on_task=done,
                                 on_total=total, parallel=parallel)
    failures = _failures(client, job_id, results, indexes)
    resumed = sum(1 for r in results if r.resumed)
    if as_json:
        emit_json({"results": [r for r in results if r.outcome == "ok"], "failed": failures, "resumed": resumed})
    else:
        ok = [r for r in results if r.outcome == "ok"]
        if 0 < len(ok) <= MAX_ROWS:
            table = Table("task", "digest", "checked against", "files", "bytes", "folder")
            for r in ok:
                table.add_row(str(r.index), r.digest[:16] + "…", r.digest_source, str(r.files), str(r.bytes),
                              str(r.path))
            out.print(table)
        _print_skipped(results)
        out.print(f"{len(ok)} result(s) verified and unpacked under {dest}"
                  + (f" ({resumed} already there from an earlier run)" if resumed else ""))
        _print_failures(failures)
    if failures:
        sys.exit(EXIT_FAILED)


def _print_skipped(results: list[Any], shown: int = 3) -> None:
    """One warning line per task whose worker left entries out of its output (links, sockets...): how many, the
    first few, and where the full list is. Names are escaped (a hostile worker may write anything there)."""
    for r in results:
        if not r.skipped:
            continue
        names = ", ".join(printable(entry) for entry in r.skipped[:shown])
        more = f" and {len(r.skipped) - shown} more" if len(r.skipped) > shown else ""
        where = f" (all in {printable(str(r.path / 'logs' / 'skipped.txt'))})" if r.path is not None else ""
        err.print(f"[yellow]warning: task {r.index}: {len(r.skipped)} output "
                  f"entr{'y' if len(r.skipped) == 1 else 'ies'} left out:[/] {names}{more}{where}", highlight=False)


@result.command("verify", help=HELP_VERIFY)
@click.argument("job_id", type=JOB_ID)
@click.option("--task", "indexes", type=int, multiple=True)
@json_option
@with_client("requester")
def result_verify(client: Client, job_id: JobId, indexes: tuple[int, ...], as_json: bool) -> None:
    with download_progress() as step:
        results = client.results.download(job_id, None, indexes=list(indexes) or None, progress=step)
    if as_json:
        emit_json(results)
    else:
        for r in results:
            out.print(f"task {r.index}: ok, {r.cid} matches {r.digest} ({r.digest_source})")


def register(cli: click.Group) -> None:
    """Add the ``result`` group to the ``tasknet`` CLI."""
    cli.add_command(result)
