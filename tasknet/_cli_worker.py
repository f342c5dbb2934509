"""``tasknet worker …``: the resource provider's commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

import click
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.table import Table

from oracle.client import WorkerStanding

out = Console()

HELP_RUN = """Run the worker daemon: watch the marketplace, claim what the policy allows, run tasks confined in Docker,
publish results to IPFS and submit or commit-reveal them. SIGTERM stops claiming and drains running tasks.

\b
Settings come from --config (JSON or TOML), then TASKNET_WORKER_* environment variables, then options.
Example (devnet):
  tasknet worker run --devnet-role worker-1 --stake 10
Example (any chain):
  TASKNET_PASSWORD=... tasknet worker run --config worker.toml
Example (a Slurm cluster as one worker: each task a job, its folder on storage the nodes share):
  tasknet worker run --config worker.toml --executor slurm --slurm-shared-dir /shared/tasknet
"""
HELP_STATUS = """Show the worker's stake, reputation, balance, earnings, running and finished tasks and cache use
(earnings and tasks are read from the journal in the worker's state folder). A worker on a Slurm cluster shows the
Slurm job (and node) of each running task. Paused tasks (stopped by the policy or a drain, kept with their
checkpoint folder to resume on this worker) are listed with why.

\b
Example:
  tasknet worker status --devnet-role worker-1 --json
"""
HELP_REGISTER = """Register this machine as a worker, or update what it advertises: the cores the policy lends, memory,
GPUs and architecture, detected here, and the platform class (--platform-class: the architecture plus a tag such as
amd64-avx2; jobs asking for homogeneous redundancy give all replicas of a task to one class). Refuses when Docker is
unusable (every task runs in a container). Staking is separate: 'tasknet worker stake'.

\b
Example:
  tasknet worker register --devnet-role worker-1 --json
"""
HELP_STAKE = """Register (advertising this machine's capabilities) and top the stake up to AMOUNT tokens.

\b
Example:
  tasknet worker stake 10 --devnet-role worker-1
"""
HELP_UNSTAKE = """Request to unstake AMOUNT tokens (withdrawable after the unstake delay), or --withdraw once ready.

\b
Example:
  tasknet worker unstake 5 --devnet-role worker-1
"""

ETHER = 10**18


def _settings(config: Path | None, devnet_role: str | None, devnet_file: Path | None,
              conn: Conn | None = None, **overrides: Any) -> Any:
    """The worker's settings: a settings file when given (its values, then the options); else the network's
    (flags, TASKNET_* variables, the network profile: see oracle.settings) with the worker's own knobs
    (TASKNET_WORKER_* variables, options)."""
    from oracle.settings import resolve
    from worker import WorkerSettings

    overrides = {k: v for k, v in overrides.items() if v is not None}
    if config is not None:
        return WorkerSettings.from_file(config, **overrides)
    common_settings = resolve({**(conn or {}), "role": devnet_role, "devnet_file": devnet_file})
    return WorkerSettings.from_common(common_settings, **overrides)


def common(f: Any) -> Any:
    f = click.option("--config", type=click.Path(path_type=Path, exists=True), help="JSON or TOML settings file")(f)
    f = click.option("--as", "--devnet-role", "devnet_role", envvar="TASKNET_ROLE",
                     help="a devnet dev account (e.g. worker-1): dev chains only")(f)
    f = click.option("--devnet-file", type=click.Path(path_type=Path), envvar="TASKNET_DEVNET_FILE",
                     help="devnet file (default $TASKNET_HOME/devnet/devnet.json)")(f)
    f = click.option("--network", default=None,
                     help="network profile (env TASKNET_NETWORK; default: the one 'tasknet network use' chose)")(f)
    f = click.option("--rpc-url", default=None, help="JSON-RPC endpoint (env TASKNET_RPC_URL; default: the network's)")(f)
    f = click.option("--ipfs-api", default=None, help="this machine's kubo RPC API (env TASKNET_IPFS_API)")(f)
    return click.option("--keystore", type=click.Path(path_type=Path), default=None,
                        help="the worker's encrypted keystore (env TASKNET_KEYSTORE; password: TASKNET_PASSWORD)")(f)


class Conn(TypedDict):
    """The connection options every worker command takes (None: not given; see :func:`common`)."""

    network: str | None
    rpc_url: str | None
    ipfs_api: str | None
    keystore: Path | None


def _conn(kw: dict[str, Any]) -> Conn:
    """Take the connection options out of a command's click keyword arguments (the CLI's edge)."""
    return Conn(network=kw.pop("network", None), rpc_url=kw.pop("rpc_url", None), ipfs_api=kw.pop("ipfs_api", None),
                keystore=kw.pop("keystore", None))


@click.group()
def worker() -> None:
    """Resource provider: run the worker daemon and manage its stake."""


@worker.command(help=HELP_RUN)
@common
@click.option("--stake", "stake_tokens", type=float, default=None, help="top the stake up to this many tokens")
@click.option("--max-concurrent", type=int, default=None,
              help="tasks run at once, whatever their size (default: as many as the cores and memory lent hold)")
@click.option("--state-dir", type=click.Path(path_type=Path), default=None, help="journal, cache, task folders")
@click.option("--relay", "relay_url", default=None, metavar="URL",
              help="hand signed results, commits and reveals to this relayer (tasknet relayer run)")
@click.option("--executor", type=click.Choice(["local", "slurm"]), default=None,
              help="where tasks run: this machine's Docker (local, the default) or a Slurm cluster (slurm)")
@click.option("--slurm-shared-dir", type=click.Path(path_type=Path), default=None,
              help="executor slurm: a folder on storage every node mounts (task folders, images)")
@click.option("--slurm-partition", default=None, help="executor slurm: the partition (default: the cluster's)")
@click.option("--fault", default=None, hidden=True, help="fault injection for demos and tests")
@click.option("--platform-class", default=None, metavar="TAG",
              help="platform class for homogeneous redundancy, e.g. amd64-avx2 (default: the architecture)")
def run(config: Path | None, devnet_role: str | None, devnet_file: Path | None, stake_tokens: float | None,
        max_concurrent: int | None, state_dir: Path | None, relay_url: str | None, executor: str | None,
        slurm_shared_dir: Path | None, slurm_partition: str | None, fault: str | None, platform_class: str | None,
        **kw: Any) -> None:
    from worker import Worker

    from ._cli_common import daemon_logging

    daemon_logging()
    settings = _settings(config, devnet_role, devnet_file, _conn(kw), state_dir=state_dir, fault=fault,
                         relay_url=relay_url, platform_class=platform_class,
                         stake=int(stake_tokens * ETHER) if stake_tokens is not None else None)
    if max_concurrent is not None:
        settings.policy.max_concurrent = max_concurrent
    slurm = {k: v for k, v in {"shared_dir": slurm_shared_dir, "partition": slurm_partition}.items() if v is not None}
    if executor is not None or slurm:
        from worker import WorkerSettings

        settings = WorkerSettings.model_validate({
            **settings.model_dump(), "executor": executor or settings.executor,
            "slurm": {**settings.slurm.model_dump(), **slurm}})
    Worker(settings).run()


@worker.command("register", help=HELP_REGISTER)
@common
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.option("--platform-class", default=None, metavar="TAG",
              help="platform class for homogeneous redundancy, e.g. amd64-avx2 (default: the architecture)")
def register_(config: Path | None, devnet_role: str | None, devnet_file: Path | None, as_json: bool,
              platform_class: str | None, **kw: Any) -> None:
    from worker import Worker

    w = Worker(_settings(config, devnet_role, devnet_file, _conn(kw), platform_class=platform_class))
    sent = w.register()
    doc = {"address": w.account.address, "changed": sent, **w.advertised(), "platformClass": w.platform_class}
    if as_json:
        out.print_json(json.dumps(doc))
        return
    what = "registered" if sent else "already registered with these capabilities"
    out.print(f"{w.account.address} {what}: {doc['cores']} cores, {doc['memoryMB']} MB, {doc['gpus']} GPUs, "
              f"architecture {w.caps.arch}, platform class {w.platform_class}")


@worker.command(help=HELP_STAKE)
@click.argument("amount", type=float)
@common
def stake(amount: float, config: Path | None, devnet_role: str | None, devnet_file: Path | None,
          **kw: Any) -> None:
    from worker import Worker

    w = Worker(_settings(config, devnet_role, devnet_file, _conn(kw), stake=int(amount * ETHER)))
    w.ensure_registered()
    out.print(f"stake of {w.account.address}: {w.market.worker_record(w.account.address).stake / ETHER:g} tokens")


@worker.command(help=HELP_UNSTAKE)
@click.argument("amount", type=float, required=False)
@click.option("--withdraw", is_flag=True, help="withdraw a pending unstake whose delay is over")
@common
def unstake(amount: float | None, withdraw: bool, config: Path | None, devnet_role: str | None,
            devnet_file: Path | None, **kw: Any) -> None:
    from oracle import connect
    from oracle.market import Market
    from oracle.tx import TxSender

    s = _settings(config, devnet_role, devnet_file, _conn(kw))
    w3 = connect(s.rpc_url)
    market = Market(w3, s.marketplace)
    sender = TxSender(w3, s.account(int(w3.eth.chain_id)), extra_abis=market.error_abis)
    if withdraw:
        sender.transact(market.contract.functions.withdrawUnstaked())
        out.print("unstaked tokens moved to your marketplace balance")
    else:
        if amount is None:
            raise click.UsageError("give an AMOUNT to unstake, or --withdraw")
        sender.transact(market.contract.functions.requestUnstake(int(amount * ETHER)))
        ready = market.worker_record(sender.address).unstake_at
        out.print(f"unstake of {amount:g} tokens requested; withdraw with --withdraw after unix time {ready}")


class SlurmJobRef(BaseModel):
    """The Slurm job (and node) a task runs in, under executor 'slurm'."""

    job: str | None
    node: str | None


class JournalGpus(BaseModel):
    """What the daemon journals it lends in GPUs at its start (the journal's ``gpus`` value, JSON)."""

    model_config = ConfigDict(extra="ignore")

    gpu_devices: list[str] = Field(default_factory=list)
    gpu_note: str = ""


class GpuLending(BaseModel):
    advertised: int
    devices: list[str]
    note: str


class RecordCounts(BaseModel):
    finished_kept: int
    finished_dropped: int


class WorkerStatus(WorkerStanding):
    """The worker's status as ``tasknet worker status --json`` prints it (fields in this order: its standing on
    the marketplace first, then what the journal and the state folder tell)."""

    balance: int
    earned: int
    tasks: dict[str, int]
    running: list[str]
    records: RecordCounts
    slurm_jobs: dict[str, SlurmJobRef]
    gpus: GpuLending
    paused: dict[str, str]
    cache_bytes: int


def _journal_view(state_dir: Path) -> tuple[Any, dict[str, SlurmJobRef], JournalGpus, dict[str, str]]:
    """From the journal in the worker's state folder (when there is one): the summary, the Slurm jobs of running
    tasks, the GPUs the daemon lends and the paused tasks."""
    from worker import Journal, Step

    if not (state_dir / "journal.db").exists():
        return None, {}, JournalGpus(), {}
    journal = Journal(state_dir / "journal.db")
    summary = journal.summary()  # totals and live tasks: no finished record is read
    # what the daemon lends, as it detected it at its start
    gpus = JournalGpus.model_validate(journal.get_value("gpus") or {})
    # executor 'slurm': the Slurm job (and node) of each task still running on the cluster
    slurm_jobs = {r.task_key: SlurmJobRef(job=r.data.get("slurm_job"), node=r.data.get("slurm_node"))
                  for r in journal.unfinished() if r.step < Step.UPLOADED and r.data.get("slurm_job")}
    # tasks stopped by the policy or a drain, kept with their checkpoint folder to resume here
    paused = {r.task_key: str(r.data["paused"]) for r in journal.unfinished() if r.data.get("paused")}
    journal.close()
    return summary, slurm_jobs, gpus, paused


def _status_doc(s: Any) -> WorkerStatus:
    """The worker's status as ``tasknet worker status --json`` prints it."""
    from oracle import connect
    from oracle.client.workers import worker_info
    from oracle.market import Market
    from worker import Step

    w3 = connect(s.rpc_url)
    market = Market(w3, s.marketplace)
    me = s.account(int(w3.eth.chain_id)).address
    info = worker_info(me, market.worker_record(me))
    summary, slurm_jobs, gpus, paused = _journal_view(s.state_dir)
    cache_bytes = sum(p.stat().st_size for p in (s.state_dir / "cache").rglob("*") if p.is_file()) \
        if (s.state_dir / "cache").exists() else 0
    return WorkerStatus(
        **info.model_dump(include=set(WorkerStanding.model_fields)), balance=market.balance(me),
        earned=summary.earned if summary else 0,
        tasks={step.name.lower(): summary.steps[step] if summary else 0 for step in Step},
        running=summary.live if summary else [],
        records=RecordCounts(finished_kept=summary.finished_kept if summary else 0,
                             finished_dropped=summary.dropped if summary else 0),
        slurm_jobs=slurm_jobs,
        gpus=GpuLending(advertised=info.gpus, devices=gpus.gpu_devices, note=gpus.gpu_note),
        paused=paused,
        cache_bytes=cache_bytes,
    )


def _status_table(doc: WorkerStatus) -> Table:
    """The worker's status as ``tasknet worker status`` prints it: one row per field."""
    table = Table("field", "value", title=f"worker {doc.address}")
    for key, value in (("registered", doc.registered), ("banned", doc.banned), ("reputation", doc.reputation),
                      ("slashes", doc.slashes)):
        table.add_row(key, str(value))
    for key, wei in (("stake", doc.stake), ("locked", doc.locked), ("balance", doc.balance), ("earned", doc.earned)):
        table.add_row(key, f"{wei / ETHER:g} tokens")
    table.add_row("tasks", ", ".join(f"{k} {v}" for k, v in doc.tasks.items() if v) or "none")
    jobs = doc.slurm_jobs
    table.add_row("running", ", ".join(
        k + (f" (Slurm job {jobs[k].job}" + (f" on {jobs[k].node})" if jobs[k].node else ")")
             if k in jobs else "") for k in doc.running) or "none")
    g = doc.gpus
    table.add_row("gpus", f"{g.advertised} advertised" + "".join(f"; {d}" for d in g.devices)
                  + (f" ({g.note})" if g.note else ""))
    if doc.paused:
        table.add_row("paused", ", ".join(f"{k} ({why})" for k, why in doc.paused.items()))
    table.add_row("cache", f"{doc.cache_bytes / 1e6:.1f} MB")
    return table


@worker.command(help=HELP_STATUS)
@common
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def status(config: Path | None, devnet_role: str | None, devnet_file: Path | None, as_json: bool,
           **kw: Any) -> None:
    doc = _status_doc(_settings(config, devnet_role, devnet_file, _conn(kw)))
    if as_json:
        out.print_json(doc.model_dump_json())
        return
    out.print(_status_table(doc))


def register(cli: click.Group) -> None:
    """Add the ``worker`` group to the CLI."""
    cli.add_command(worker)
