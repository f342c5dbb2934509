"""What the ``tasknet`` command groups share: the consoles, the exit codes, the connection options and the
:class:`oracle.Client` they open, JSON and token output, progress bars, the failed-task report, the chain options
of ``indexer`` and ``audit``, and the daemons' logging.

Exit codes: 0 success, 1 a Tasknet error (printed as ``Type: message``), 2 bad usage, 3 a watched job ended with
tasks that did not finish (failed, cancelled or refunded), 4 the watch timed out, 5 the job is over but some tasks
failed.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from oracle import configure_logging
from oracle.client import Client, TaskFailure, format_amount, parse_amount
from oracle.exceptions import InvalidJobSpec, IpfsError
from oracle.protocol import TASK_INDEX_BITS, JobId, TaskId
from oracle.settings import KeystoreError, Settings, resolve

err = Console(stderr=True)
out = Console(soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

EXIT_UNFINISHED = 3
EXIT_TIMEOUT = 4
EXIT_FAILED = 5  # the job is over, but some tasks failed (their app failed, or the chain failed or refunded them)

IdT = TypeVar("IdT", JobId, TaskId)


class _IdParam(click.ParamType[IdT, object]):
    """A job or task id on the command line: a whole number (decimal, or 0x-hex as events show task ids) that fits
    the protocol's id, typed as :data:`oracle.protocol.JobId` / :data:`~oracle.protocol.TaskId`."""

    def __init__(self, name: str, bits: int, make: Callable[[int], IdT], example: str) -> None:
        self.name, self.bits, self.example = name, bits, example
        self.make: Callable[[int], IdT] = make

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> IdT:
        if isinstance(value, int):
            n = value
        else:
            try:
                n = int(str(value).strip(), 0)
            except ValueError:
                self.fail(f"{value!r} is not a {self.name}: give a whole number, like {self.example}", param, ctx)
        if not 0 <= n < 1 << self.bits:
            self.fail(f"{value} is not a {self.name}: {self.name}s run from 0 to 2**{self.bits} - 1", param, ctx)
        return self.make(n)


JOB_ID = _IdParam("job id", 256 - TASK_INDEX_BITS, JobId, "1")
TASK_ID = _IdParam("task id", 256, TaskId, "4294967296 (job 1's task 0: the job id times 2**32, plus the task's index)")

devnet_option = click.option("--devnet-file", type=click.Path(path_type=Path), default=None,
                             envvar="TASKNET_DEVNET_FILE", help="devnet file (default ~/.tasknet/devnet/devnet.json)")


# -- logging -----------------------------------------------------------------------------------------
class LogOptions:
    """The logging flags given before the command, kept for the daemons to reconfigure with."""

    def __init__(self, verbose: int, json_logs: bool) -> None:
        self.verbose, self.json_logs = verbose, json_logs


def daemon_logging() -> None:
    """Called first by a daemon command (``worker run``, ``indexer run``, ``relayer run``): info-level logs, as
    console lines on a terminal and JSON lines otherwise or with ``--json-logs``."""
    ctx = click.get_current_context(silent=True)
    opts = ctx.find_object(LogOptions) if ctx is not None else None
    opts = opts or LogOptions(0, False)
    configure_logging(verbose=opts.verbose, json=opts.json_logs or None, kind="daemon")


# -- shared options ------------------------------------------------------------------------------------
def connection(default_role: str) -> Callable[[F], F]:
    """Options choosing the network, the account and the endpoints. Each falls back on its TASKNET_* variable,
    then the network profile, then defaults (oracle.settings; 'tasknet config show' prints the result)."""
    def deco(f: F) -> F:
        f = connection_options(f)
        return click.option("--as", "role", default=default_role, show_default=True,
                            help="devnet account role (requester, app-owner, dataset-owner, worker-N...); "
                                 "dev chains only (env TASKNET_ROLE)")(f)
    return deco


def connection_options(f: F) -> F:
    """The connection options every role shares (but ``--as``, whose default depends on the command)."""
    options = [
        click.option("--network", default=None, help="network profile (env TASKNET_NETWORK; 'tasknet network list')"),
        click.option("--devnet-file", type=click.Path(path_type=Path), default=None,
                     help="devnet file (env TASKNET_DEVNET_FILE; default $TASKNET_HOME/devnet/devnet.json)"),
        click.option("--rpc-url", default=None, help="JSON-RPC endpoint (env TASKNET_RPC_URL; default: the network's)"),
        click.option("--marketplace", default=None, help="Marketplace address (env TASKNET_MARKETPLACE)"),
        click.option("--ipfs-api", default=None,
                     help="your kubo's RPC API (env TASKNET_IPFS_API; default: the devnet's, else 127.0.0.1:5001)"),
        click.option("--keystore", type=click.Path(path_type=Path), default=None,
                     help="encrypted JSON keystore (env TASKNET_KEYSTORE; password in TASKNET_PASSWORD or asked)"),
        click.option("--private-key", default=None, help="raw key, dev chains only (prefer env TASKNET_PRIVATE_KEY)"),
        click.option("--image-registry", default=None,
                     help="host:port of the image registry apps are pushed to (env TASKNET_IMAGE_REGISTRY)"),
        click.option("--keyring", type=click.Path(path_type=Path), default=None,
                     help="keyring of result keys (env TASKNET_KEYRING; default $TASKNET_HOME/keyring.json)"),
        click.option("--deploy-block", type=int, default=None,
                     help="first block to read events from (env TASKNET_DEPLOY_BLOCK; default: the network's)"),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


CONN_KEYS = ("network", "devnet_file", "role", "rpc_url", "marketplace", "ipfs_api", "keystore", "private_key",
             "image_registry", "keyring", "deploy_block", "indexer_url")


def conn_settings(kw: dict[str, Any]) -> Settings:
    """Pop the connection options out of ``kw`` and resolve them into the effective settings."""
    flags = {k: kw.pop(k, None) for k in CONN_KEYS}
    if flags["role"] is not None and os.environ.get("TASKNET_ROLE") and click.get_current_context().get_parameter_source(
            "role") == click.core.ParameterSource.DEFAULT:
        flags["role"] = None  # the command's default role yields to TASKNET_ROLE
    return resolve(flags)


def make_client(kw: dict[str, Any]) -> Client:
    return Client.from_settings(conn_settings(kw), prompt=_ask_password)


def _ask_password(what: str) -> str:
    """A keystore's password, asked at a terminal (never echoed); not asked in scripts."""
    if not sys.stdin.isatty():
        raise KeystoreError(f"{what}: set TASKNET_PASSWORD (no terminal to ask on)")
    return str(click.prompt(what.capitalize(), hide_input=True, err=True))


def with_client(default_role: str) -> Callable[[F], F]:
    """Decorator: connection options, and a ``client`` argument instead of them."""
    def deco(f: F) -> F:
        @functools.wraps(f)
        def wrapper(**kw: Any) -> Any:
            with make_client(kw) as client:
                return f(client=client, **kw)
        return connection(default_role)(wrapper)  # type: ignore[return-value]
    return deco


json_option = click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")


def amount_arg(value: str) -> int:
    try:
        return parse_amount(value)
    except InvalidJobSpec as exc:
        raise click.BadParameter(str(exc)) from None


def emit_json(value: Any) -> None:
    def plain(v: Any) -> Any:
        if isinstance(v, BaseModel):
            return v.model_dump(mode="json")
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    click.echo(json.dumps(plain(value), indent=2, default=str))


def tokens(wei: int) -> str:
    return f"{format_amount(wei)} TNT"


# -- progress and failed tasks ------------------------------------------------------------------------
@contextmanager
def upload_progress(what: str) -> Iterator[Callable[[str, int], None]]:
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[n]} files"),
                  DownloadColumn(), console=err, transient=True, disable=not err.is_terminal) as p:
        task = p.add_task(what, total=None, n=0)

        def step(name: str, size: int) -> None:
            t = p.tasks[0]
            p.update(task, advance=size, n=t.fields["n"] + 1, description=f"{what}: {name}")
        yield step


@contextmanager
def download_progress() -> Iterator[Callable[[int], None]]:
    with Progress(TextColumn("downloading"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err,
                  transient=True, disable=not err.is_terminal) as p:
        task = p.add_task("download", total=None)
        yield lambda n: p.update(task, advance=n)


def _failures(client: Client, job_id: int, results: list[Any], indexes: tuple[int, ...]) -> list[TaskFailure]:
    """Tasks whose app failed (a verified result whose status is not ok), then those the chain failed or
    refunded (no result at all), in task order; limited to ``indexes`` when given."""
    out = [TaskFailure(index=r.index, state="finalized", reason=r.reason, exit_code=r.exit_code, error=r.error)
           for r in results if r.outcome != "ok"]
    out += [f for f in client.jobs.failures(job_id) if not indexes or f.index in indexes]
    return sorted(out, key=lambda f: f.index)


def _print_failures(failures: list[TaskFailure]) -> None:
    if not failures:
        return
    table = Table("task", "state", "reason", "exit code", "error", title="failed tasks", title_style="bold red")
    for f in failures:
        table.add_row(str(f.index), f.state, printable(f.reason), "" if f.exit_code is None else str(f.exit_code),
                      printable(f.error or ""))
    out.print(table)
    out.print(f"[red]{len(failures)} task(s) failed[/] (exit code {EXIT_FAILED})")


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters (escape sequences, bells, carriage returns) shown as
    escapes instead of acted on, and rich markup disarmed."""
    from rich.markup import escape

    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return escape(safe)


# -- the chain options of 'indexer' and 'audit' --------------------------------------------------------
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
    s = resolve({"network": network, "devnet_file": devnet_file, "rpc_url": rpc_url, "marketplace": marketplace,
                 "deploy_block": from_block, "ipfs_api": ipfs_api})
    if not s.marketplace:
        raise click.UsageError("no marketplace: name a network (--network NAME) or give --rpc-url and --marketplace")
    if s.ipfs_api and s.ipfs_peers:  # the verifier fetches results: its node joins the network first
        from oracle.ipfs import COMMAND_DIAL_TIMEOUT_S

        from ._kubo import dial_peers

        try:
            dial_peers(s.ipfs_api, s.ipfs_peers, timeout=COMMAND_DIAL_TIMEOUT_S)
        except IpfsError:
            pass  # a node that is down: the verifier says so for each result it cannot fetch
    return s.rpc_url, s.marketplace, s.deploy_block, s.ipfs_api
