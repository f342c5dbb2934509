"""The ``tasknet`` command line: one verb per command, errors printed as ``Type: message`` with exit 1."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from oracle import configure_logging
from oracle.exceptions import TasknetError

from . import __version__
from ._cli_common import LogOptions, devnet_option
from ._process import die_with_parent_if_asked

console = Console(stderr=True)
out = Console()

HELP_UP = """Start the embedded devnet on loopback: anvil, kubo, an image registry and (as root) a Docker engine,
deploy the contracts, and write the devnet file.

\b
Example:
  tasknet up                   # automine chain on 127.0.0.1:8545
  tasknet up --block-time 1    # one block a second, like a real chain
  tasknet up --ipfs-api-origin http://127.0.0.1:8000   # a web page (examples/dapp) may upload to kubo
"""
HELP_STATUS = """Check every devnet component (chain, IPFS, registry, Docker, contracts); exit 1 if any is unhealthy.

\b
Example:
  tasknet status --json
"""
HELP_DOWN = """Stop every process 'tasknet up' started (and nothing else) and remove the devnet file.

\b
Example:
  tasknet down
"""
HELP_DEMO = """Run the main job end to end on the embedded devnet (starting it if needed): a POV-Ray animation rendered
frame by frame by a pool of worker processes, one of them lying and one killed mid-task; every frame is
downloaded, decrypted, verified and audited, and assembled into ./tasknet-demo/animation.gif.

With --hosts (root only) it runs on a testnet of its own instead: each worker on its own host (a network
namespace) with its own kubo, the requester and the dataset owner on theirs; the summary shows the bytes each
host fetched and served, and the testnet is removed at the end unless --keep.

\b
Example:
  tasknet demo
  tasknet demo --frames 6 --workers 4 --no-crash --keep
  sudo tasknet demo --hosts --frames 8 --workers 4 --no-crash
"""


class TasknetGroup(click.Group):
    """Turns Tasknet errors into ``Type: message`` and exit code 1 instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TasknetError as exc:
            console.print(f"[bold red]{type(exc).__name__}:[/] {exc}", highlight=False, soft_wrap=True)
            sys.exit(1)


@click.group(cls=TasknetGroup)
@click.version_option(__version__, "-V", "--version", prog_name="tasknet")
@click.option("-v", "--verbose", count=True,
              help="more logs: -v info, -vv debug (commands log warnings only by default, daemons info)")
@click.option("--json-logs", is_flag=True, help="log as JSON lines (the default when stderr is not a terminal)")
@click.pass_context
def cli(ctx: click.Context, verbose: int, json_logs: bool) -> None:
    """Tasknet: a distributed cloud whose referee is a set of smart contracts."""
    die_with_parent_if_asked()
    ctx.obj = LogOptions(verbose=verbose, json_logs=json_logs)
    configure_logging(verbose=verbose, json=json_logs or None, kind="command")


def _web_origins(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    from ._devnet import web_origin

    try:
        return tuple(web_origin(v) for v in values)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@cli.command(help=HELP_UP)
@devnet_option
@click.option("--rpc-port", type=int, default=8545, show_default=True, help="anvil JSON-RPC port")
@click.option("--ipfs-port", type=int, default=None, help="kubo RPC API port (default: a free one)")
@click.option("--ipfs-gateway-port", type=int, default=None, help="kubo gateway port (default: a free one)")
@click.option("--registry-port", type=int, default=None, help="image registry port (default: a free one)")
@click.option("--block-time", type=float, default=None, help="seconds per block (default: automine)")
@click.option("--ipfs-api-origin", "ipfs_api_origins", multiple=True, metavar="ORIGIN", callback=_web_origins,
              help="a web page allowed to call the kubo RPC API from a browser (CORS), as scheme://host[:port], "
                   "e.g. the Dapp example's http://127.0.0.1:8000; repeatable")
def up(devnet_file: Path | None, rpc_port: int, ipfs_port: int | None, ipfs_gateway_port: int | None,
       registry_port: int | None, block_time: float | None, ipfs_api_origins: tuple[str, ...]) -> None:
    from ._devnet import UpOptions
    from ._devnet import up as devnet_up

    t0 = time.monotonic()
    opts = UpOptions(rpc_port=rpc_port, ipfs_port=ipfs_port, ipfs_gateway_port=ipfs_gateway_port,
                     registry_port=registry_port, block_time=block_time, ipfs_api_origins=list(ipfs_api_origins))
    with console.status("starting the devnet") as st:
        info = devnet_up(opts, devnet_file, progress=lambda s: st.update(f"starting the devnet: {s}"))
    out.print(f"devnet up in {time.monotonic() - t0:.1f} s: chain {info.rpc_url} (id {info.chain_id}), "
              f"IPFS {info.ipfs_api}, registry {info.registry}")
    for name, addr in info.contracts.items():
        out.print(f"  {name:<16} {addr}")


@cli.command(help=HELP_STATUS)
@devnet_option
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def status(devnet_file: Path | None, as_json: bool) -> None:
    from ._devnet import status as devnet_status

    rows = devnet_status(devnet_file)
    if as_json:
        out.print_json(json.dumps([r.model_dump() for r in rows]))
    else:
        table = Table("component", "health", "detail")
        for r in rows:
            table.add_row(r.name, "[green]healthy[/]" if r.healthy else "[red]unhealthy[/]", r.detail)
        out.print(table)
    if not all(r.healthy for r in rows):
        sys.exit(1)


@cli.command(help=HELP_DOWN)
@devnet_option
def down(devnet_file: Path | None) -> None:
    from ._devnet import down as devnet_down

    stopped = devnet_down(devnet_file)
    out.print("stopped: " + (", ".join(stopped) if stopped else "nothing (no devnet file)"))


@cli.command(help=HELP_DEMO)
@devnet_option
@click.option("--keep", is_flag=True, help="leave the devnet (or the testnet) and the indexer (dashboard) running "
              "afterwards")
@click.option("--hosts", is_flag=True, help="each worker on its own host of a testnet, one kubo per host (root only)")
@click.option("--frames", type=int, default=24, show_default=True, help="frames of the animation (one task each)")
@click.option("--workers", type=int, default=6, show_default=True,
              help="worker processes, including the lying one and the one killed mid-task")
@click.option("--worker-slots", type=click.IntRange(0, 8), default=1, show_default=True,
              help="tasks each worker runs at once (its --max-concurrent): one, so that every worker, the liar "
              "included, gets a share of a small job; 0: the workers' own default, as many as the cores they lend "
              "hold (POV-Ray waits most of a frame's wall time: more at once fill the cores)")
@click.option("--no-liar", is_flag=True, help="no worker returns wrong images")
@click.option("--no-crash", is_flag=True, help="no worker is killed mid-task")
@click.option("--size", default="320x240", show_default=True, help="frame size WxH")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("tasknet-demo"), show_default=True,
              help="where the frames, the GIF and the summary go")
def demo(devnet_file: Path | None, keep: bool, hosts: bool, frames: int, workers: int, worker_slots: int,
         no_liar: bool, no_crash: bool, size: str, out_dir: Path) -> None:
    from ._demo import run_demo

    width, _, height = size.partition("x")
    run_demo(devnet_file, keep=keep, console=out, frames=frames, workers=workers, worker_slots=worker_slots or None,
             liar=not no_liar, crasher=not no_crash, width=int(width), height=int(height), out_dir=out_dir, hosts=hosts)


#: modules that each add a command group to the CLI (``register(cli)``): one per group
GROUP_MODULES = ("tasknet._cli_worker", "tasknet._cli_account", "tasknet._cli_app", "tasknet._cli_dataset",
                 "tasknet._cli_job", "tasknet._cli_result", "tasknet._cli_image", "tasknet._cli_indexer",
                 "tasknet._cli_audit", "tasknet._cli_relayer", "tasknet._cli_network", "tasknet._cli_config",
                 "tasknet._cli_admin", "tasknet._cli_testnet")


def _register_groups() -> None:
    import importlib

    for name in GROUP_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # that role's commands are not part of this build
            raise
        module.register(cli)


_register_groups()


def main() -> None:
    cli(prog_name="tasknet")


if __name__ == "__main__":
    main()
