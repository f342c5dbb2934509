"""``tasknet account …``: money (the wallet and marketplace balance, deposits, withdrawals, the devnet faucet);
``tasknet network`` adds the keystore commands to this group."""

from __future__ import annotations

import click
from rich.table import Table

from oracle.client import Client

from ._cli_common import amount_arg, emit_json, json_option, out, tokens, with_client

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
    b = client.balance()
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
    tx = client.deposit(amount, permit=permit)
    out.print(f"deposited {tokens(amount)} (tx {tx.tx_hash}); marketplace balance "
              f"{tokens(client.balance().deposited)}")


@account.command(help=HELP_WITHDRAW)
@click.argument("amount", type=amount_arg)
@with_client("requester")
def withdraw(client: Client, amount: int) -> None:
    tx = client.withdraw(amount)
    out.print(f"withdrew {tokens(amount)} (tx {tx.tx_hash}); marketplace balance "
              f"{tokens(client.balance().deposited)}")


@account.command(help=HELP_FAUCET)
@click.argument("amount", type=amount_arg, default="1000")
@with_client("requester")
def faucet(client: Client, amount: int) -> None:
    client.faucet(amount)
    out.print(f"minted {tokens(amount)} to {client.address}; wallet {tokens(client.balance().wallet)}")



def register(cli: click.Group) -> None:
    """Add the ``account`` group (money and keys) to the ``tasknet`` CLI."""
    cli.add_command(account)
