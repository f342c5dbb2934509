"""``tasknet admin …``: the marketplace owner's commands (protocol parameters, worker bans, the treasury).

Parameters are read and written by the names the contract's ABI gives them (the ``Params`` struct of
``setParams``), never by position: a field added to ``Params`` shows up here without a change. The owner's
transactions are simulated first, so a refusal costs nothing and reads as one sentence: a caller that is not the
owner is told who is (``OwnableUnauthorizedAccount``), a value outside the contract's bounds is told the allowed
range (``MarketplaceParamOutOfBounds``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import click
from pydantic import BaseModel, ConfigDict
from rich.table import Table
from web3 import Web3

from oracle.client import Client, parse_amount, parse_duration
from oracle.exceptions import ClientError, InvalidJobSpec, TasknetError, TransactionReverted

from ._cli_common import emit_json, json_option, out, tokens, with_client

HELP_ADMIN = "Marketplace owner: protocol parameters, worker bans, the treasury (default account: deployer)."
HELP_PARAMS = "Protocol parameters: owner-tunable, each within bounds the contract enforces."
HELP_PARAMS_SHOW = """Show every protocol parameter with its value, its meaning in units and its Solidity type
(read by name from the marketplace's ABI), and the marketplace's owner.

\b
Example:
  tasknet admin params show
  tasknet admin params show --json
"""
HELP_PARAMS_SET = """Change the named parameters and keep the others (one setParams transaction, owner only).
Stakes are token amounts ('2.5', '1000wei'); windows, graces and delays are durations ('90', '90s', '10m', '1d');
the rest are integers (fees in basis points: feeBps=50 is 0.5 %). An unknown name or a value outside the
contract's bounds is refused before anything is spent, saying what is allowed.

\b
Example:
  tasknet admin params set claimGrace=120 feeBps=50
  tasknet admin params set minStake=2 --json
"""
HELP_BAN = """Ban the registered worker ADDRESS (owner only): it can claim no more tasks.

\b
Example:
  tasknet admin ban 0x90F79bf6EB2c4f870365E785982E1f101E93b906
"""
HELP_UNBAN = """Unban the worker ADDRESS (owner only): it may claim again, and its slash count starts from zero.

\b
Example:
  tasknet admin unban 0x90F79bf6EB2c4f870365E785982E1f101E93b906
"""
HELP_TREASURY = "The treasury: the account credited with protocol fees and slashed stake."
HELP_TREASURY_SHOW = """Show the treasury's address, its marketplace balance (fees and slashes credited to it,
withdrawable) and its wallet.

\b
Example:
  tasknet admin treasury show --json
"""
HELP_TREASURY_SET = """Credit future fees and slashed stake to ADDRESS (owner only). What the old treasury holds
stays its own.

\b
Example:
  tasknet admin treasury set 0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65
"""
HELP_TREASURY_WITHDRAW = """Withdraw AMOUNT tokens ('2.5', '1000wei') or 'all' of the treasury's marketplace balance
to its wallet. Run it as the treasury account (on the devnet the deployer is the treasury until 'treasury set').

\b
Example:
  tasknet admin treasury withdraw all
  tasknet admin treasury withdraw 2.5 --as deployer
"""

Unit = Literal["tokens", "seconds", "bps", "integer"]


# -- errors ------------------------------------------------------------------------------------------------
class AdminError(ClientError):
    """An owner's command was refused; nothing was changed on chain."""


class UnknownParam(AdminError):
    """No protocol parameter has this name."""


class InvalidParam(AdminError):
    """A NAME=VALUE is malformed, or the value does not fit the parameter's type."""


class ParamOutOfBounds(AdminError):
    """The contract refused a parameter value outside its bounds."""


class NotOwner(AdminError):
    """The account is not the marketplace's owner."""


class NotTreasury(AdminError):
    """The account is not the marketplace's treasury."""


class NotWorker(AdminError):
    """The address is not a registered worker."""


# -- parameters, by the ABI's names --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ParamField:
    """One field of the contract's ``Params`` struct, as its ABI names it."""

    name: str
    type: str

    @property
    def unit(self) -> Unit:
        """What the number counts, from the name's suffix: ``…Stake`` tokens (wei), ``…Grace``/``…Window``/``…Delay``
        seconds, ``…Bps`` basis points, anything else a plain integer."""
        if self.name.endswith("Stake"):
            return "tokens"
        if self.name.endswith(("Grace", "Window", "Delay")):
            return "seconds"
        if self.name.endswith("Bps"):
            return "bps"
        return "integer"

    @property
    def max_value(self) -> int:
        """The largest value the Solidity type holds (``uintN``: 2**N - 1)."""
        if not self.type.startswith("uint"):
            raise InvalidParam(f"parameter {self.name} has type {self.type}; only unsigned integers can be set here")
        return int(2 ** int(self.type.removeprefix("uint") or 256) - 1)

    def parse(self, text: str) -> int:
        """VALUE of NAME=VALUE in the field's unit; raises :class:`InvalidParam` saying what is allowed."""
        try:
            if self.unit == "tokens":
                value = parse_amount(text)
            elif self.unit == "seconds":
                value = parse_duration(text)
            else:
                value = int(text.strip().replace("_", ""))
        except (InvalidJobSpec, ValueError) as exc:
            raise InvalidParam(f"{self.name}={text}: {self._expects()} ({exc})") from None
        if not 0 <= value <= self.max_value:
            raise InvalidParam(f"{self.name}={text} does not fit its type {self.type}: allowed 0 to "
                               f"{self.describe(self.max_value)}")
        return value

    def _expects(self) -> str:
        return {"tokens": "expected a token amount such as '2.5' or '1000wei'",
                "seconds": "expected a duration such as '90', '90s', '10m' or '1d'",
                "bps": "expected basis points, an integer (50 = 0.5 %)",
                "integer": "expected an integer"}[self.unit]

    def describe(self, value: int) -> str:
        """``value`` in words: ``1 TNT``, ``300 s (5m)``, ``50 bps (0.5 %)``, ``200000``."""
        if self.unit == "tokens":
            return tokens(value)
        if self.unit == "seconds":
            return f"{value} s" + (f" ({_duration(value)})" if value >= 60 else "")
        if self.unit == "bps":
            return f"{value} bps ({value / 100:g} %)"
        return str(value)


def _duration(seconds: int) -> str:
    for size, suffix in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds / size:g}{suffix}"
    return f"{seconds}s"


def param_fields(entries: Sequence[Mapping[str, Any]]) -> list[ParamField]:
    """The fields of ``setParams``'s struct argument, in the ABI's order (the order the contract encodes)."""
    fn = next((i for i in entries if i.get("type") == "function" and i.get("name") == "setParams"), None)
    if fn is None:
        raise AdminError("the marketplace ABI has no setParams function; is the artifact a Marketplace?")
    return [ParamField(c["name"], c["type"]) for c in fn["inputs"][0]["components"]]


def parse_assignments(items: Sequence[str], fields: Sequence[ParamField]) -> dict[str, int]:
    """``["claimGrace=120", "feeBps=50"]`` -> ``{"claimGrace": 120, "feeBps": 50}``, checked against ``fields``."""
    by_name = {f.name: f for f in fields}
    changes: dict[str, int] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name or not text.strip():
            raise InvalidParam(f"{item!r} is not NAME=VALUE (e.g. claimGrace=120)")
        field = by_name.get(name)
        if field is None:
            near = [f.name for f in fields if f.name.lower() == name.lower()]
            hint = f"did you mean {near[0]}? " if near else ""
            raise UnknownParam(f"the marketplace has no parameter {name!r}; {hint}its parameters are "
                               f"{', '.join(by_name)}")
        if name in changes:
            raise InvalidParam(f"{name} is given twice; give each parameter once")
        changes[name] = field.parse(text)
    return changes


def explain_revert(exc: TransactionReverted, owner: Callable[[], str], fields: Sequence[ParamField] = (),
                   ) -> TasknetError:
    """The owner-side reverts in one sentence each; any other revert is returned as it is."""
    args = {k: Web3.to_checksum_address(v) if isinstance(v, str) and Web3.is_address(v) else v
            for k, v in exc.error_args.items()}
    if exc.error_name == "OwnableUnauthorizedAccount":
        return NotOwner(f"{args.get('account')} is not the marketplace's owner, {owner()} is: run the command as "
                        "the owner (on the devnet: --as deployer)")
    if exc.error_name == "MarketplaceParamOutOfBounds":
        name, value, low, high = args["name"], int(args["value"]), int(args["min"]), int(args["max"])
        field = next((f for f in fields if f.name == name), ParamField(name, "uint256"))
        return ParamOutOfBounds(f"{name}={field.describe(value)} is out of bounds: the marketplace allows {name} from "
                                f"{field.describe(low)} to {field.describe(high)}; nothing was changed")
    if exc.error_name == "MarketplaceNotWorker":
        return NotWorker(f"{args.get('account')} is not a registered worker: only registered workers can be banned "
                         "or unbanned")
    if exc.error_name == "MarketplaceZeroAddress":
        return AdminError("the zero address cannot be the treasury; give the address of an account you control")
    return exc


def owner_of(client: Client) -> str:
    return str(client.market.contract.functions.owner().call())


@contextmanager
def owner_call(client: Client, fields: Sequence[ParamField] = ()) -> Iterator[None]:
    """Turn the owner-side reverts of the block's transaction into :func:`explain_revert`'s sentences."""
    try:
        yield
    except TransactionReverted as exc:
        raise explain_revert(exc, lambda: owner_of(client), fields) from exc


def read_params(client: Client) -> tuple[list[ParamField], dict[str, int]]:
    fields = param_fields(client.market.contract.abi)
    values = client.market.market_params().model_dump(by_alias=True)  # named by the ABI of the params() view
    return fields, {f.name: int(values[f.name]) for f in fields}


def address_arg(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not Web3.is_address(value):
        raise click.BadParameter(f"{value!r} is not an address (0x followed by 40 hex digits)")
    return str(Web3.to_checksum_address(value))


def withdraw_amount_arg(value: str) -> int | None:
    """``all`` -> None (the whole balance), else a token amount."""
    if value.strip().lower() == "all":
        return None
    try:
        return parse_amount(value)
    except InvalidJobSpec as exc:
        raise click.BadParameter(f"{exc}, or 'all'") from None


# -- commands ----------------------------------------------------------------------------------------------
@click.group(help=HELP_ADMIN)
def admin() -> None:
    pass


@admin.group(help=HELP_PARAMS)
def params() -> None:
    pass


@params.command("show", help=HELP_PARAMS_SHOW)
@json_option
@with_client("deployer")
def params_show(client: Client, as_json: bool) -> None:
    fields, values = read_params(client)
    owner = owner_of(client)
    if as_json:
        emit_json({"marketplace": client.market.address, "owner": owner, "params": values,
                   "types": {f.name: f.type for f in fields}})
        return
    table = Table("parameter", "value", "meaning", "type",
                  title=f"marketplace {client.market.address} (owner {owner})")
    for f in fields:
        table.add_row(f.name, str(values[f.name]), f.describe(values[f.name]), f.type)
    out.print(table)


@params.command("set", help=HELP_PARAMS_SET)
@click.argument("assignments", nargs=-1, required=True, metavar="NAME=VALUE...")
@json_option
@with_client("deployer")
def params_set(client: Client, assignments: tuple[str, ...], as_json: bool) -> None:
    fields, current = read_params(client)
    changes = {k: v for k, v in parse_assignments(assignments, fields).items() if current[k] != v}
    new = {**current, **changes}
    tx = None
    if changes:
        with owner_call(client, fields):
            receipt = client.sender.transact(
                client.market.contract.functions.setParams(tuple(new[f.name] for f in fields)))
        tx = "0x" + bytes(receipt["transactionHash"]).hex()
        _, new = read_params(client)
    if as_json:
        emit_json({"tx": tx, "changed": {k: {"from": current[k], "to": new[k]} for k in changes}, "params": new})
        return
    if not changes:
        out.print("nothing to change: every parameter given already has that value")
        return
    by_name = {f.name: f for f in fields}
    for k in changes:
        out.print(f"{k}: {by_name[k].describe(current[k])} -> {by_name[k].describe(new[k])}")
    out.print(f"(tx {tx})")


def _set_banned(client: Client, worker: str, banned: bool, as_json: bool) -> None:
    record = client.market.worker_record(worker)
    if not record.registered:
        raise NotWorker(f"{worker} is not a registered worker: only registered workers can be banned or unbanned")
    word = "banned" if banned else "unbanned"
    tx = None
    if record.banned != banned:
        with owner_call(client):
            receipt = client.sender.transact(client.market.contract.functions.setWorkerBanned(worker, banned))
        tx = "0x" + bytes(receipt["transactionHash"]).hex()
    if as_json:
        emit_json({"worker": worker, "banned": banned, "changed": tx is not None, "tx": tx})
    elif tx is None:
        out.print(f"{worker} is already {word}: nothing sent")
    else:
        what = "it can claim no more tasks" if banned else "it may claim again, its slash count reset"
        out.print(f"{word} {worker}: {what} (tx {tx})")


@admin.command(help=HELP_BAN)
@click.argument("worker", callback=address_arg, metavar="ADDRESS")
@json_option
@with_client("deployer")
def ban(client: Client, worker: str, as_json: bool) -> None:
    _set_banned(client, worker, True, as_json)


@admin.command(help=HELP_UNBAN)
@click.argument("worker", callback=address_arg, metavar="ADDRESS")
@json_option
@with_client("deployer")
def unban(client: Client, worker: str, as_json: bool) -> None:
    _set_banned(client, worker, False, as_json)


@admin.group(help=HELP_TREASURY)
def treasury() -> None:
    pass


class Treasury(BaseModel):
    """The treasury account, its marketplace balance (withdrawable) and its wallet, in wei: what ``tasknet admin
    treasury show --json`` prints."""

    model_config = ConfigDict(frozen=True)

    treasury: str
    balance: int
    wallet: int


def _treasury(client: Client) -> Treasury:
    address = str(client.market.contract.functions.treasury().call())
    wallet = int(client.market.token.functions.balanceOf(address).call())
    return Treasury(treasury=address, balance=client.market.balance(address), wallet=wallet)


@treasury.command("show", help=HELP_TREASURY_SHOW)
@json_option
@with_client("deployer")
def treasury_show(client: Client, as_json: bool) -> None:
    doc = _treasury(client)
    if as_json:
        emit_json(doc)
        return
    out.print(f"treasury {doc.treasury}: marketplace balance {tokens(doc.balance)} (withdrawable), "
              f"wallet {tokens(doc.wallet)}")


@treasury.command("set", help=HELP_TREASURY_SET)
@click.argument("address", callback=address_arg)
@json_option
@with_client("deployer")
def treasury_set(client: Client, address: str, as_json: bool) -> None:
    before = _treasury(client).treasury
    with owner_call(client):
        receipt = client.sender.transact(client.market.contract.functions.setTreasury(address))
    tx = "0x" + bytes(receipt["transactionHash"]).hex()
    if as_json:
        emit_json({"previous": before, "treasury": address, "tx": tx})
        return
    out.print(f"treasury: {before} -> {address}; fees and slashed stake are credited to it from now on (tx {tx})")


@treasury.command("withdraw", help=HELP_TREASURY_WITHDRAW)
@click.argument("amount", type=withdraw_amount_arg)
@json_option
@with_client("deployer")
def treasury_withdraw(client: Client, amount: int | None, as_json: bool) -> None:
    doc = _treasury(client)
    if Web3.to_checksum_address(doc.treasury) != Web3.to_checksum_address(client.address):
        raise NotTreasury(f"{client.address} is not the treasury, {doc.treasury} is: only the treasury account "
                          "withdraws what the marketplace credited to it; run the command as that account")
    if amount is None:
        amount = doc.balance
        if amount == 0:
            raise AdminError(f"the treasury {doc.treasury} has nothing to withdraw: its marketplace balance is 0 "
                             "(protocol fees and slashed stake are credited as tasks settle)")
    tx = client.account.withdraw(amount)
    after = _treasury(client)
    if as_json:
        emit_json({"treasury": doc.treasury, "withdrawn": amount, "tx": tx.tx_hash, "balance": after.balance,
                   "wallet": after.wallet})
        return
    out.print(f"withdrew {tokens(amount)} to the treasury's wallet (tx {tx.tx_hash}); marketplace balance "
              f"{tokens(after.balance)}, wallet {tokens(after.wallet)}")


def register(cli: click.Group) -> None:
    """Add the ``admin`` command group (the marketplace owner's) to the ``tasknet`` CLI."""
    cli.add_command(admin)

