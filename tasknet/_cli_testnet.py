"""``tasknet testnet up/status/down/add-worker``: a multi-host network on this machine (see tasknet/_testnet.py)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

out = Console()
err = Console(stderr=True)

HELP_TESTNET = """A multi-host Tasknet network on this machine: one Linux network namespace per host (chain, requester,
dataset owner, indexer, workers) joined by veth pairs to one bridge, each host with its own kubo and processes.
Root only."""
HELP_UP = """Build the testnet: namespaces and links (addresses from --subnet, only inside them), anvil on the chain
host with the contracts deployed, a kubo on every host, the indexer and one worker daemon per worker host; write
the network profile (--profile, default 'testnet') and the state file $TASKNET_HOME/testnet/testnet.json.

\b
Example:
  tasknet testnet up --hosts 3
  ip netns exec tn-req tasknet job submit --network testnet --ipfs-api http://10.77.0.2:5001 ...
"""
HELP_STATUS = """Show each host, its address and whether its link, its kubo and its processes answer; exit 1 if any
does not.

\b
Example:
  tasknet testnet status --json
"""
HELP_DOWN = """Stop every process the testnet started and remove every namespace, link and the bridge it made (and
nothing else), its profile and its state file. Safe to repeat, and after a crash.

\b
Example:
  tasknet testnet down
"""
HELP_ADD_WORKER = """Add a worker host to the running testnet: a namespace and link, a kubo whose only bootstrap is the
profile's IPFS peers, and a worker daemon.

\b
Example:
  tasknet testnet add-worker
"""

state_option = click.option("--state-file", type=click.Path(path_type=Path), default=None,
                            envvar="TASKNET_TESTNET_FILE",
                            help="state file (env TASKNET_TESTNET_FILE; default $TASKNET_HOME/testnet/testnet.json)")


@click.group(help=HELP_TESTNET)
def testnet() -> None:
    pass


@testnet.command("up", help=HELP_UP)
@state_option
@click.option("--hosts", type=click.IntRange(0, 20), default=2, show_default=True,
              help="worker hosts (more join later with add-worker)")
@click.option("--indexer/--no-indexer", default=True, show_default=True, help="an indexer host")
@click.option("--subnet", default="10.77.0.0/24", show_default=True, help="a /24 inside 10.77.0.0/16")
@click.option("--prefix", default="tn", show_default=True, help="first part of every namespace and interface name")
@click.option("--profile", default="testnet", show_default=True, help="the network profile's name")
@click.option("--block-time", type=float, default=None, help="seconds per block (default: automine)")
@click.option("--stake", "stake_tokens", type=float, default=10.0, show_default=True, help="each worker's stake")
@click.option("--swarm-key", default=None, help="a private IPFS network: every host's kubo gets this key (64 hex "
              "digits, e.g. from 'openssl rand -hex 32') and the profile names it")
def up(state_file: Path | None, hosts: int, indexer: bool, subnet: str, prefix: str, profile: str,
       block_time: float | None, stake_tokens: float, swarm_key: str | None) -> None:
    from pydantic import ValidationError

    from ._testnet import TestnetError, UpOptions
    from ._testnet import up as testnet_up

    try:
        opts = UpOptions(hosts=hosts, indexer=indexer, subnet=subnet, prefix=prefix, profile=profile,
                         block_time=block_time, stake_tokens=stake_tokens, swarm_key=swarm_key)
    except ValidationError as exc:
        raise TestnetError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
    t0 = time.monotonic()
    with err.status("building the testnet") as st:
        tn = testnet_up(opts, state_file, progress=lambda s: st.update(f"building the testnet: {s}"))
    info = tn.info
    out.print(f"testnet up in {time.monotonic() - t0:.1f} s: chain {info.rpc_url} (id {info.chain_id}), profile "
              f"{info.profile!r}, bridge {info.bridge} ({info.bridge_address} here)")
    _hosts_table(tn)
    req = info.host("requester")
    out.print(f"Use it from a host, e.g.: ip netns exec {req.netns} tasknet job list --network {info.profile} "
              f"--ipfs-api {req.ipfs_api} --private-key <the requester's key in {tn.path}>", highlight=False)


def _hosts_table(tn: object) -> None:
    from ._testnet import Testnet

    assert isinstance(tn, Testnet)
    table = Table("host", "namespace", "address", "account", "processes")
    for h in tn.info.hosts.values():
        account = tn.info.account(h.account).address if h.account and tn.info.accounts else "-"
        table.add_row(h.name, h.netns, h.address, account, ", ".join(h.processes) or "-")
    out.print(table)


@testnet.command("status", help=HELP_STATUS)
@state_option
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def status(state_file: Path | None, as_json: bool) -> None:
    from ._testnet import status as testnet_status

    rows = testnet_status(state_file)
    if as_json:
        out.print_json(json.dumps([r.model_dump() for r in rows]))
    else:
        table = Table("host", "namespace", "address", "component", "health", "detail")
        for r in rows:
            table.add_row(r.host, r.netns, r.address, r.component,
                          "[green]healthy[/]" if r.healthy else "[red]unhealthy[/]", r.detail)
        out.print(table)
    if not all(r.healthy for r in rows):
        sys.exit(1)


@testnet.command("down", help=HELP_DOWN)
@state_option
def down(state_file: Path | None) -> None:
    from ._testnet import down as testnet_down

    removed = testnet_down(state_file)
    out.print(f"removed {len(removed)}: " + ", ".join(removed) if removed else "nothing to remove (no testnet state "
              "file)")


@testnet.command("add-worker", help=HELP_ADD_WORKER)
@state_option
def add_worker(state_file: Path | None) -> None:
    from ._testnet import Testnet, require_root

    require_root()
    tn = Testnet.load(state_file)
    host = tn.add_worker()
    out.print(f"{host.name} joined: namespace {host.netns}, address {host.address}, IPFS peers from the profile "
              f"{tn.info.profile!r}")


def register(cli: click.Group) -> None:
    cli.add_command(testnet)
