"""``tasknet account|app|dataset|job|result|image``: the requester's and app owner's commands.

Thin: every command builds an :class:`oracle.Client` and prints what it returns. Exit codes: 0 success,
1 a Tasknet error (printed as ``Type: message``), 2 bad usage, 3 a watched job ended with tasks that did not
finish (failed, cancelled or refunded), 4 the watch timed out.
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
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from oracle.canonical import step_from_options as canonical_step
from oracle.client import (
    Client,
    JobSpec,
    TaskFailure,
    TaskInput,
    format_amount,
    load_tasks,
    parse_amount,
    parse_duration,
)
from oracle.exceptions import ClientError, InvalidJobSpec, WaitTimeout
from oracle.settings import KeystoreError, Settings, resolve

err = Console(stderr=True)
out = Console(soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

EXIT_UNFINISHED = 3
EXIT_TIMEOUT = 4
EXIT_FAILED = 5  # the job is over, but some tasks failed (their app failed, or the chain failed or refunded them)


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


@contextmanager
def upload_progress(what: str) -> Iterator[Callable[[str, int], None]]:
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[n]} files"),
                  DownloadColumn(), console=err, transient=True, disable=not err.is_terminal) as p:
        task = p.add_task(what, total=None, n=0)

        def step(name: str, size: int) -> None:
            t = p.tasks[0]
            p.update(task, advance=size, n=t.fields["n"] + 1, description=f"{what}: {name}")
        yield step


# -- account -------------------------------------------------------------------------------------------
HELP_ACCOUNT = "Money: wallet and marketplace balance, deposits, withdrawals, the devnet faucet."
HELP_BALANCE = """Show the wallet, the marketplace balance (deposits not locked by jobs) and the stake.

\b
Example:
  tasknet account balance --json
"""
HELP_DEPOSIT = """Deposit AMOUNT tokens from the wallet into the marketplace (approve + deposit, or one
transaction with --permit). AMOUNT is in tokens ('2.5') or wei ('1000wei').

\b
Example:
  tasknet account deposit 100
  tasknet account deposit 100 --permit
"""
HELP_WITHDRAW = """Withdraw AMOUNT tokens of the marketplace balance back to the wallet.

\b
Example:
  tasknet account withdraw 10
"""
HELP_FAUCET = """Devnet only: mint test tokens to the wallet (default 1000).

\b
Example:
  tasknet account faucet 500 --as requester
"""


@click.group(help=HELP_ACCOUNT)
def account() -> None:
    pass


@account.command(help=HELP_BALANCE)
@with_client("requester")
@json_option
def balance(client: Client, as_json: bool) -> None:
    b = client.account.balance()
    if as_json:
        emit_json(b)
        return
    table = Table("account", "wallet", "marketplace", "staked", "allowance")
    table.add_row(b.address, tokens(b.wallet), tokens(b.deposited), tokens(b.staked), tokens(b.allowance))
    out.print(table)


@account.command(help=HELP_DEPOSIT)
@click.argument("amount", type=amount_arg)
@click.option("--permit", is_flag=True, help="one transaction with an EIP-2612 permit signature")
@with_client("requester")
def deposit(client: Client, amount: int, permit: bool) -> None:
    tx = client.account.deposit(amount, permit=permit)
    out.print(f"deposited {tokens(amount)} (tx {tx.tx_hash}); marketplace balance "
              f"{tokens(client.account.balance().deposited)}")


@account.command(help=HELP_WITHDRAW)
@click.argument("amount", type=amount_arg)
@with_client("requester")
def withdraw(client: Client, amount: int) -> None:
    tx = client.account.withdraw(amount)
    out.print(f"withdrew {tokens(amount)} (tx {tx.tx_hash}); marketplace balance "
              f"{tokens(client.account.balance().deposited)}")


@account.command(help=HELP_FAUCET)
@click.argument("amount", type=amount_arg, default="1000")
@with_client("requester")
def faucet(client: Client, amount: int) -> None:
    client.account.faucet(amount)
    out.print(f"minted {tokens(amount)} to {client.address}; wallet {tokens(client.account.balance().wallet)}")


# -- app -----------------------------------------------------------------------------------------------
HELP_APP = "Apps: build a Docker image, push it, register it on chain, list apps."
HELP_APP_BUILD = """Build an app image from CONTEXT (a folder with a Dockerfile FROM a local base image; no
network during the build) and print its image id. With --push, push it to the registry too.

\b
Example:
  tasknet image base && tasknet app build examples/povray --tag tasknet/povray:1 --push
"""
HELP_APP_REGISTER = """Register IMAGE (a local image tag) as an app: pushed to the registry, pinned by image id,
metadata on IPFS. Prints the app id.

\b
Example:
  tasknet app register tasknet/povray:1 --name povray --price 0.01 --deterministic-file frame.bmp
  tasknet app register my/app:2 --name private-app --private --allow 0x7099...79C8
  tasknet app register my/app:3 --name no-registry --no-push --ipfs-archive
  tasknet app register tasknet-examples/montecarlo:1 --name pi --canonicalize 'python3 /app/canon.py 2'

--canonicalize CMD declares the app's canonicalise step (results that are not bit-identical: the step's output is
digested and voted on; see the README). The step is bound to the app by labels of its image: when IMAGE does not
already declare exactly this step, a thin image adding the labels is built on top of it, tagged IMAGE-canonicalize,
and that image is the one registered (its id is the app's digest).
"""
HELP_APP_LIST = """List registered apps (--mine: only this account's).

\b
Example:
  tasknet app list --json
"""
HELP_APP_DEPRECATE = """Deprecate an app you own: no new job may use it.

\b
Example:
  tasknet app deprecate 3 --as app-owner
"""
HELP_APP_ALLOW = """Allow (or with --revoke, disallow) requesters to use a private app you own.

\b
Example:
  tasknet app allow 3 0x70997970C51812dc3A010C7d01b50e0d17dc79C8
"""


@click.group(help=HELP_APP)
def app() -> None:
    pass


@app.command("build", help=HELP_APP_BUILD)
@click.argument("context", type=click.Path(path_type=Path, file_okay=False))
@click.option("--tag", required=True, help="image tag, e.g. tasknet/povray:1")
@click.option("--dockerfile", default="Dockerfile", show_default=True)
@click.option("--push", is_flag=True, help="push to the image registry and print the pinned reference")
@json_option
@with_client("app-owner")
def app_build(client: Client, context: Path, tag: str, dockerfile: str, push: bool, as_json: bool) -> None:
    with err.status(f"building {tag}"):
        image_id = client.apps.build(context, tag, dockerfile=dockerfile)
    ref = None
    if push:
        with err.status(f"pushing {tag}"):
            ref = client.apps.push(tag)
    if as_json:
        emit_json({"tag": tag, "image_id": image_id, "ref": ref})
    else:
        out.print(f"built {tag}: {image_id}" + (f"\npushed: {ref}" if ref else ""))


@app.command("register", help=HELP_APP_REGISTER)
@click.argument("image")
@click.option("--name", required=True, help="app name (in its metadata)")
@click.option("--description", default="")
@click.option("--category", default=None, help="category workers may filter on")
@click.option("--price", type=amount_arg, default="0", show_default=True, help="paid to you per finished task")
@click.option("--private", is_flag=True, help="only --allow'ed requesters may use it")
@click.option("--allow", "allowed", multiple=True, help="requester address (repeatable)")
@click.option("--deterministic-file", default=None, help="output file the result digest covers")
@click.option("--canonicalize", "canonicalize", default=None, metavar="CMD",
              help="canonicalise step: the whole argv, as a JSON array or words ('/app/canon 2'); it reads the raw "
                   "output at /in and writes the canonical output to /out")
@click.option("--canonicalize-image", default=None, metavar="REF@sha256:…",
              help="run the step in this second image, pinned by digest (default: the app's own image)")
@click.option("--canonicalize-timeout", type=click.FloatRange(min=0.001, max=3600), default=None,
              help="the step's wall clock in seconds (default 60)")
@click.option("--no-push", is_flag=True, help="register the local tag as is (workers need the image locally, "
              "or --ipfs-archive)")
@click.option("--ipfs-archive", is_flag=True, help="also put a 'docker save' archive on IPFS for workers to load "
              "(with --no-push, the app's image reference is ipfs://CID)")
@json_option
@with_client("app-owner")
def app_register(client: Client, image: str, name: str, description: str, category: str | None, price: int,
                 private: bool, allowed: tuple[str, ...], deterministic_file: str | None, canonicalize: str | None,
                 canonicalize_image: str | None, canonicalize_timeout: float | None, no_push: bool,
                 ipfs_archive: bool, as_json: bool) -> None:
    step = None
    if canonicalize is not None:
        step = canonical_step(canonicalize, canonicalize_image, canonicalize_timeout)
    elif canonicalize_image is not None or canonicalize_timeout is not None:
        raise click.UsageError("--canonicalize-image and --canonicalize-timeout need --canonicalize CMD")
    with err.status(f"registering {image}"):
        info = client.apps.register(image, name=name, description=description, category=category, price=price,
                                   public=not private, requesters=allowed, deterministic_file=deterministic_file,
                                   push=not no_push, ipfs_archive=ipfs_archive, canonicalize=step)
    if as_json:
        emit_json(info)
    else:
        out.print(f"app {info.app_id} registered: {info.image_ref} ({info.image_digest}), price {tokens(info.price)}")


@app.command("list", help=HELP_APP_LIST)
@click.option("--mine", is_flag=True, help="only apps owned by this account")
@json_option
@with_client("app-owner")
def app_list(client: Client, mine: bool, as_json: bool) -> None:
    apps = client.apps.list(owner=client.address if mine else None)
    if as_json:
        emit_json(apps)
        return
    table = Table("id", "owner", "image", "price", "access", "deterministic file", "status")
    for a in apps:
        table.add_row(str(a.app_id), a.owner, a.image_ref, tokens(a.price), "public" if a.public else "private",
                      a.deterministic_file or "-", "deprecated" if a.deprecated else "active")
    out.print(table)


@app.command("deprecate", help=HELP_APP_DEPRECATE)
@click.argument("app_id", type=int)
@with_client("app-owner")
def app_deprecate(client: Client, app_id: int) -> None:
    client.apps.deprecate(app_id)
    out.print(f"app {app_id} deprecated")


@app.command("allow", help=HELP_APP_ALLOW)
@click.argument("app_id", type=int)
@click.argument("requesters", nargs=-1, required=True)
@click.option("--revoke", is_flag=True, help="remove them instead")
@with_client("app-owner")
def app_allow(client: Client, app_id: int, requesters: tuple[str, ...], revoke: bool) -> None:
    client.apps.allow(app_id, requesters, allowed=not revoke)
    out.print(f"app {app_id}: {len(requesters)} requester(s) {'removed' if revoke else 'allowed'}")


# -- dataset -------------------------------------------------------------------------------------------
HELP_DATASET = "Datasets: upload a file or folder to IPFS, register it with a price and access rules."
HELP_DATASET_ADD = """Upload PATH (a file, or a folder stored as a canonical tar) to IPFS, checksum it and
register it. Jobs using it see it at /in/dataset. Without --allow-requester anyone may use it; without
--allow-app any app may. When the network profile names a pinning service, it is asked to pin the dataset too
(before anything is sent to the chain; its token comes from the variable the profile names).

\b
Example:
  tasknet dataset add ./scenes --price 0.001 --allow-app 1
"""
HELP_DATASET_LIST = """List registered datasets.

\b
Example:
  tasknet dataset list --json
"""


@click.group(help=HELP_DATASET)
def dataset() -> None:
    pass


@dataset.command("add", help=HELP_DATASET_ADD)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--price", type=amount_arg, default="0", show_default=True, help="paid to you per finished task")
@click.option("--allow-requester", "requesters", multiple=True, help="only these requesters (repeatable)")
@click.option("--allow-app", "apps", multiple=True, type=int, help="only these apps (repeatable)")
@json_option
@with_client("dataset-owner")
def dataset_add(client: Client, path: Path, price: int, requesters: tuple[str, ...], apps: tuple[int, ...],
                as_json: bool) -> None:
    if not path.exists():
        raise ClientError(f"dataset {path} does not exist; give a file or a folder")
    with upload_progress("uploading") as step:
        info = client.datasets.add(path, price=price, any_requester=not requesters, any_app=not apps,
                                  requesters=requesters, apps=apps, progress=step)
    if as_json:
        emit_json(info)
    else:
        out.print(f"dataset {info.dataset_id} registered: {info.cid} ({info.kind}, {info.size} bytes, sha256 "
                  f"{info.checksum})")
        if info.remote_pin is not None and client.pinning is not None:
            state = info.remote_pin.status
            colour = "green" if state == "pinned" else "red" if state == "failed" else "yellow"
            out.print(f"pinning service {client.pinning.endpoint}: [{colour}]{state}[/] (request "
                      f"{info.remote_pin.requestid})" + ("" if info.remote_pin.done else
                                                         "; it keeps working on it"), highlight=False)


@dataset.command("list", help=HELP_DATASET_LIST)
@click.option("--mine", is_flag=True)
@json_option
@with_client("dataset-owner")
def dataset_list(client: Client, mine: bool, as_json: bool) -> None:
    items = client.datasets.list(owner=client.address if mine else None)
    if as_json:
        emit_json(items)
        return
    table = Table("id", "owner", "cid", "price", "requesters", "apps", "status")
    for d in items:
        table.add_row(str(d.dataset_id), d.owner, d.cid, tokens(d.price), "any" if d.any_requester else "listed",
                      "any" if d.any_app else "listed", "deprecated" if d.deprecated else "active")
    out.print(table)


# -- job -----------------------------------------------------------------------------------------------
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
@click.argument("job_id", type=int)
@click.option("--timeout", type=float, default=None, help="seconds")
@click.option("--check/--no-check", default=True, show_default=True,
              help="when the job is done, read each result's status to report the tasks whose app failed")
@click.option("--pin/--no-pin", default=True, show_default=True,
              help="pin each result on your IPFS node as it lands, so it outlives the worker that made it (and ask "
                   "the network's pinning service to pin it too, when the profile names one)")
@json_option
@with_client("requester")
def job_watch(client: Client, job_id: int, timeout: float | None, check: bool, pin: bool, as_json: bool) -> None:
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
@click.argument("job_id", type=int)
@click.option("--first", type=int, default=0, show_default=True)
@click.option("--count", type=int, default=None, help="default: up to the last task")
@json_option
@with_client("requester")
def job_cancel(client: Client, job_id: int, first: int, count: int | None, as_json: bool) -> None:
    n, refund = client.jobs.cancel(job_id, first, count)
    if as_json:
        emit_json({"job_id": job_id, "cancelled": n, "refund": refund})
    else:
        out.print(f"job {job_id}: {n} unclaimed task(s) cancelled, {tokens(refund)} refunded")


@job.command("close", help=HELP_CLOSE)
@click.argument("job_id", type=int)
@with_client("requester")
def job_close(client: Client, job_id: int) -> None:
    refund = client.jobs.close(job_id)
    out.print(f"job {job_id} closed, {tokens(refund)} refunded")


@job.command("explain", help=HELP_EXPLAIN)
@click.argument("job_id", type=int)
@click.option("--task", "index", type=int, default=None, help="task index (default: the first open task)")
@json_option
@with_client("requester")
def job_explain(client: Client, job_id: int, index: int | None, as_json: bool) -> None:
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


#: tasks listed one per line by 'result get' (beyond, its summary line only: --json lists every one)
MAX_ROWS = 50
TASK_STATES = ("open", "claimed", "committing", "finalized", "failed", "cancelled", "refunded")


@job.command("status", help=HELP_STATUS)
@click.argument("job_id", type=int)
@click.option("--tasks", "show_tasks", is_flag=True, help="also list the tasks, a page at a time")
@click.option("--state", type=click.Choice(TASK_STATES), default=None, help="list the tasks in this state")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True, help="page of task rows")
@click.option("--per-page", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--indexer", "indexer_url", default=None, metavar="URL",
              help="read the job from this indexer's API (env TASKNET_INDEXER_URL) instead of the chain's counters")
@json_option
@with_client("requester")
def job_status(client: Client, job_id: int, show_tasks: bool, state: str | None, page: int, per_page: int,
               as_json: bool) -> None:
    summary = client.jobs.summary(job_id)
    rows = client.jobs.task_page(job_id, state=state, page=page, per_page=per_page) \
        if show_tasks or state is not None else None
    if as_json:
        doc: dict[str, Any] = {"job": summary.model_dump(mode="json") | {"progress": round(summary.progress, 4)}}
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


# -- result --------------------------------------------------------------------------------------------
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


@click.group(help=HELP_RESULT)
def result() -> None:
    pass


@contextmanager
def download_progress() -> Iterator[Callable[[int], None]]:
    with Progress(TextColumn("downloading"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err,
                  transient=True, disable=not err.is_terminal) as p:
        task = p.add_task("download", total=None)
        yield lambda n: p.update(task, advance=n)


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
@click.argument("job_id", type=int)
@click.argument("out_dir", metavar="OUT", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--task", "indexes", type=int, multiple=True, help="task index (repeatable; default all finished)")
@click.option("--out", "out_option", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="the folder to unpack into (the same as OUT)")
@click.option("--parallel", type=click.IntRange(1, 32), default=4, show_default=True,
              help="results downloaded at once")
@json_option
@with_client("requester")
def result_get(client: Client, job_id: int, out_dir: Path | None, indexes: tuple[int, ...], out_option: Path | None,
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


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters (escape sequences, bells, carriage returns) shown as
    escapes instead of acted on, and rich markup disarmed."""
    from rich.markup import escape

    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return escape(safe)


@result.command("verify", help=HELP_VERIFY)
@click.argument("job_id", type=int)
@click.option("--task", "indexes", type=int, multiple=True)
@json_option
@with_client("requester")
def result_verify(client: Client, job_id: int, indexes: tuple[int, ...], as_json: bool) -> None:
    with download_progress() as step:
        results = client.results.download(job_id, None, indexes=list(indexes) or None, progress=step)
    if as_json:
        emit_json(results)
    else:
        for r in results:
            out.print(f"task {r.index}: ok, {r.cid} matches {r.digest} ({r.digest_source})")


# -- image ---------------------------------------------------------------------------------------------
HELP_IMAGE = "Local base images (no public registry is reachable: they are built on this machine)."
HELP_IMAGE_BASE = """Build the local base images apps are built FROM, once (cached; --force rebuilds):
busybox (~1 s), python3 (debootstrap, ~35 s, needs root and a Debian mirror) and, with --povray, POV-Ray.

\b
Example:
  tasknet image base
  tasknet image base --no-python --povray
"""


@click.group(help=HELP_IMAGE)
def image() -> None:
    pass


@image.command("base", help=HELP_IMAGE_BASE)
@click.option("--python/--no-python", default=True, show_default=True)
@click.option("--povray", is_flag=True, help="also tasknet/base-povray:bookworm (for examples/povray)")
@click.option("--force", is_flag=True)
@click.option("--mirror", default=None, help="Debian mirror for debootstrap")
@json_option
def image_base(python: bool, povray: bool, force: bool, mirror: str | None, as_json: bool) -> None:
    import docker as docker_sdk

    from oracle.images import BUSYBOX_BASE, PYTHON_BASE, build_base, build_busybox_base, build_python_base

    try:
        client = docker_sdk.from_env()
        client.ping()
    except Exception as exc:  # the SDK raises many types for "no engine"
        raise ClientError(f"no Docker engine answers ({exc}); start Docker ('tasknet up' does) or set DOCKER_HOST"
                          ) from exc
    built: dict[str, str] = {}
    with err.status("building tasknet/base-busybox"):
        built[BUSYBOX_BASE] = build_busybox_base(client, force=force)
    if python:
        with err.status("building tasknet/base-python (debootstrap, ~35 s the first time)"):
            built[PYTHON_BASE] = build_python_base(client, force=force, mirror=mirror)
    if povray:
        tag = "tasknet/base-povray:bookworm"
        with err.status("building tasknet/base-povray (debootstrap, ~30 s the first time)"):
            built[tag] = build_base(client, tag, ["povray", "povray-includes"], force=force, mirror=mirror)
    if as_json:
        emit_json(built)
    else:
        for tag, image_id in built.items():
            out.print(f"{tag}: {image_id}")


def register(cli: click.Group) -> None:
    """Add the requester and app-owner command groups to the ``tasknet`` CLI."""
    for group in (account, app, dataset, job, result, image):
        cli.add_command(group)
