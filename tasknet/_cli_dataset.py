"""``tasknet dataset …``: the dataset owner's commands (upload and register, list)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from oracle.client import Client
from oracle.exceptions import ClientError

from ._cli_common import amount_arg, emit_json, json_option, out, tokens, upload_progress, with_client

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


def register(cli: click.Group) -> None:
    """Add the ``dataset`` group to the ``tasknet`` CLI."""
    cli.add_command(dataset)
