"""``tasknet account …``: money (the wallet and marketplace balance, deposits, withdrawals, the devnet faucet)
and keys (``new``, ``import``, ``keys``: encrypted keystores under $TASKNET_HOME/keys)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from oracle.client import Client

from ._cli_common import amount_arg, emit_json, json_option, out, tokens, with_client

#: the keystore commands print here: a console that wraps long lines (theirs when they lived beside 'network')
keys_out = Console()

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
HELP_ACCOUNT_NEW = """Create a new key and store it encrypted under $TASKNET_HOME/keys/NAME.json (the password comes from
TASKNET_PASSWORD, or is asked twice at a terminal). Prints its address and the keystore's path.

\b
Example:
  tasknet account new --name worker
"""
HELP_ACCOUNT_IMPORT = """Encrypt an existing private key (read from standard input, or from --key-file) into
$TASKNET_HOME/keys/NAME.json.

\b
Example:
  tasknet account import --name owner < owner.key
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


# -- keys -------------------------------------------------------------------------------------------
def _new_password() -> str:
    import os

    pw = os.environ.get("TASKNET_PASSWORD")
    if pw:
        return pw
    if not sys.stdin.isatty():
        raise click.UsageError("set TASKNET_PASSWORD to the keystore's password (no terminal to ask on)")
    return str(click.prompt("Password for the new keystore", hide_input=True, confirmation_prompt=True, err=True))


@account.command("new", help=HELP_ACCOUNT_NEW)
@click.option("--name", required=True, help="the keystore's name under $TASKNET_HOME/keys")
@click.option("--json", "as_json", is_flag=True)
def account_new(name: str, as_json: bool) -> None:
    from eth_account import Account

    from oracle.settings import save_keystore

    acct = Account.create()
    path = save_keystore(acct, _new_password(), name)
    _print_key(acct.address, path, as_json)


@account.command("import", help=HELP_ACCOUNT_IMPORT)
@click.option("--name", required=True, help="the keystore's name under $TASKNET_HOME/keys")
@click.option("--key-file", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="a file holding the hex private key (default: standard input)")
@click.option("--json", "as_json", is_flag=True)
def account_import(name: str, key_file: Path | None, as_json: bool) -> None:
    from eth_account import Account

    from oracle.settings import KeystoreError, save_keystore

    text = (key_file.read_text() if key_file else sys.stdin.read()).strip()
    try:
        acct = Account.from_key(text)
    except (ValueError, TypeError) as exc:
        raise KeystoreError("that is not a private key (expected 64 hex digits, with or without 0x)") from exc
    path = save_keystore(acct, _new_password(), name)
    _print_key(acct.address, path, as_json)


def _print_key(address: str, path: Path, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"address": address, "keystore": str(path)}))
    else:
        keys_out.print(f"{address}: keystore {path} (use it with --keystore {path})")


@account.command("keys", help="""The keystores under $TASKNET_HOME/keys and their addresses.

\b
Example:
  tasknet account keys --json
""")
@click.option("--json", "as_json", is_flag=True)
def account_keys(as_json: bool) -> None:
    from oracle.settings import keys_dir

    rows: list[dict[str, str]] = []
    for path in sorted(keys_dir().glob("*.json")) if keys_dir().is_dir() else []:
        try:
            address = "0x" + str(json.loads(path.read_text()).get("address", "")).removeprefix("0x")
        except (OSError, ValueError):
            address = "(unreadable)"
        rows.append({"name": path.stem, "address": address, "keystore": str(path)})
    if as_json:
        click.echo(json.dumps(rows))
        return
    table = Table("name", "address", "keystore")
    for r in rows:
        table.add_row(r["name"], r["address"], r["keystore"])
    keys_out.print(table)


def register(cli: click.Group) -> None:
    """Add the ``account`` group (money and keys) to the ``tasknet`` CLI."""
    cli.add_command(account)
