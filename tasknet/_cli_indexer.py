"""``tasknet indexer …``: the auditor's mirror of the marketplace, its API and its dashboard."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from oracle.devnet import tasknet_home

from ._cli_common import _chain_options, _resolve

console = Console(stderr=True)

HELP_INDEXER = """Mirror the marketplace into SQL and serve the read-only API and the public dashboard."""
HELP_RUN = """Ingest every marketplace event into the database (SQLite file by default, PostgreSQL by URL) and serve
the API, Prometheus metrics and the dashboard at http://HOST:PORT/. Options left out come from the devnet file.
Stops cleanly on SIGTERM/Ctrl-C; a restart resumes exactly where the last committed batch ended.

\b
Example:
  tasknet indexer run                                   # devnet, ~/.tasknet/indexer/<chain>-<market>.db
  tasknet indexer run --db postgresql://u@127.0.0.1/tasknet --confirmations 2 --port 8700
"""
HELP_SERVE = """Serve the API and dashboard over an existing mirror without ingesting (e.g. a read replica).

\b
Example:
  tasknet indexer serve --db ~/.tasknet/indexer/31337-0x5fbdb231.db --port 8701
"""


def _default_db(chain_id: int, market: str) -> str:
    folder = tasknet_home() / "indexer"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"{chain_id}-{market.lower()[:10]}.db")


def _serve_in_thread(app: Any, host: str, port: int) -> tuple[Any, threading.Thread]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="indexer-api", daemon=True)
    thread.start()
    return server, thread


@click.group(help=HELP_INDEXER)
def indexer() -> None:
    pass


@indexer.command(help=HELP_RUN)
@_chain_options
@click.option("--db", default=None, help="SQLite path or SQLAlchemy URL (default: a file under ~/.tasknet/indexer)")
@click.option("--confirmations", type=int, default=0, show_default=True, help="blocks held back from the head")
@click.option("--finality", type=int, default=64, show_default=True,
              help="blocks of hashes kept to detect reorgs; a deeper reorg stops the indexer")
@click.option("--batch-blocks", type=int, default=2000, show_default=True, help="blocks per eth_getLogs")
@click.option("--ipfs-api", default=None, help="kubo RPC API for /audit (default: the devnet's)")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8700, show_default=True)
@click.option("--no-api", is_flag=True, help="ingest only")
def run(network: str | None, devnet_file: Path | None, rpc_url: str | None, marketplace: str | None,
        from_block: int | None, db: str | None, confirmations: int, finality: int, batch_blocks: int,
        ipfs_api: str | None, host: str, port: int, no_api: bool) -> None:
    from indexer import Indexer, Verifier, create_app, make_engine
    from oracle import IpfsClient, connect

    from ._cli_common import daemon_logging

    daemon_logging()

    rpc, market, start, ipfs_url = _resolve(devnet_file, rpc_url, marketplace, from_block, ipfs_api, network)
    w3 = connect(rpc)
    engine = make_engine(db or _default_db(int(w3.eth.chain_id), market))
    ix = Indexer(engine, w3, market, from_block=start, confirmations=confirmations, batch_blocks=batch_blocks,
                 finality=finality)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = None
    if not no_api:
        verifier = Verifier(w3, market, IpfsClient(ipfs_url) if ipfs_url else None, from_block=start)
        app = create_app(engine, chain_head=lambda: int(w3.eth.block_number), max_lag=confirmations + 10,
                         verifier=verifier)
        server, _ = _serve_in_thread(app, host, port)
        console.print(f"indexer: dashboard and API on http://{host}:{port}/ (db {engine.url.render_as_string()})",
                      highlight=False)
    try:
        ix.run(stop.is_set)
    finally:
        if server is not None:
            server.should_exit = True


@indexer.command(help=HELP_SERVE)
@click.option("--db", required=True, help="SQLite path or SQLAlchemy URL")
@click.option("--rpc-url", default=None, help="JSON-RPC URL, for /ready's live lag")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8700, show_default=True)
def serve(db: str, rpc_url: str | None, host: str, port: int) -> None:
    import uvicorn

    from indexer import create_app, make_engine

    head = None
    if rpc_url:
        from oracle import connect

        w3 = connect(rpc_url)
        head = lambda: int(w3.eth.block_number)
    app = create_app(make_engine(db), chain_head=head)
    console.print(f"indexer: serving http://{host}:{port}/ (read-only)", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(cli: click.Group) -> None:
    """Add the ``indexer`` group to the ``tasknet`` CLI."""
    cli.add_command(indexer)
