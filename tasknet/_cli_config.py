"""``tasknet config show``: the effective settings of a command and where each value came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

out = Console()

HELP_CONFIG = """Print the effective settings of a command (flags, then TASKNET_* variables, then the network profile,
then defaults) and where each value came from.

\b
Example:
  TASKNET_IPFS_API=http://127.0.0.1:5002 tasknet config show --network lab
"""


@click.group(help="The settings every command resolves.")
def config() -> None:
    pass


@config.command("show", help=HELP_CONFIG)
@click.option("--network", default=None)
@click.option("--as", "role", default=None)
@click.option("--rpc-url", default=None)
@click.option("--marketplace", default=None)
@click.option("--ipfs-api", default=None)
@click.option("--keystore", type=click.Path(path_type=Path), default=None)
@click.option("--devnet-file", type=click.Path(path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True)
def config_show(as_json: bool, **flags: Any) -> None:
    from oracle.settings import resolve

    rows = resolve(flags).describe()
    if as_json:
        click.echo(json.dumps({name: {"value": value, "source": source} for name, value, source in rows}))
        return
    table = Table("setting", "value", "from")
    for name, value, source in rows:
        table.add_row(name, value, source)
    out.print(table)


def register(cli: click.Group) -> None:
    """Add the ``config`` group to the ``tasknet`` CLI."""
    cli.add_command(config)
