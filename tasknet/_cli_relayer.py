"""``tasknet relayer run``: land worker-signed results, commits and reveals in batched transactions."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

import click

from ._cli_common import with_client

HELP_RUN = """Serve a relayer (the relayer package) on HOST:PORT: workers started with --relay URL (or relay_url in their settings) hand it
their EIP-712 signed results, commits and reveals; it checks each against the chain, then lands them together in
one relayResults / relayCommits / relayReveals transaction every --interval seconds, paying the gas.

\b
Settings: options, then TASKNET_RELAYER_HOST, _PORT, _INTERVAL, _MAX_BATCH, then the defaults.
API: POST /v1/results, /v1/commits, /v1/reveals (202, or 422 with the contract's error name);
     GET /v1/messages/ID, GET /health.
Example (devnet, the deployer account pays):
  tasknet relayer run --port 8600
  tasknet worker run --devnet-role worker-1 --relay http://127.0.0.1:8600
"""


def register(cli: click.Group) -> None:
    @cli.group(help="Relay worker-signed messages in batches (gas paid by the relayer's account).")
    def relayer() -> None:
        pass

    @relayer.command(help=HELP_RUN)
    @click.option("--host", default=None, help="listen address  [default: 127.0.0.1]")
    @click.option("--port", type=int, default=None, help="listen port  [default: 8600]")
    @click.option("--interval", type=float, default=None, help="seconds between batches  [default: 1]")
    @click.option("--max-batch", type=click.IntRange(1, 256), default=None,
                  help="messages per transaction  [default: 50]")
    @with_client("deployer")
    def run(client: Any, host: str | None, port: int | None, interval: float | None, max_batch: int | None) -> None:
        import uvicorn

        from ._cli_common import daemon_logging

        daemon_logging()

        from relayer import Relayer, RelayerSettings, create_app

        given: dict[str, Any] = {"host": host, "port": port, "interval": interval, "max_batch": max_batch}
        settings = RelayerSettings(**{k: v for k, v in given.items() if v is not None})
        relayer = Relayer.from_settings(client.w3, client.market, client.signer, settings)
        relayer.start()
        click.echo(f"relayer {client.account.address} on http://{settings.host}:{settings.port} "
                   f"(batches every {settings.interval:g} s)", err=True)
        # uvicorn re-raises the SIGTERM it shut down on: exit cleanly instead, after flushing the queue below
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            uvicorn.run(create_app(relayer), host=settings.host, port=settings.port, log_level="warning")
        finally:
            relayer.stop()
            relayer.flush()


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
