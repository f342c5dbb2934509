"""``client.account``: the account's money — wallet, marketplace balance, deposits and withdrawals, the devnet
faucet.

::

    c.account.faucet(10 * 10**18)              # devnet only
    c.account.deposit(10 * 10**18)
    print(c.account.balance().deposited)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eth_account.messages import encode_typed_data
from web3 import Web3

from ..exceptions import ClientError, InsufficientBalance
from ._models import Balance, TxInfo, format_amount
from ._reads import tx_info

if TYPE_CHECKING:
    from ._client import Client

#: chain ids where a raw private key is accepted and the faucet exists (public dev chains)
DEV_CHAIN_IDS = {31337, 1337}


class Account:
    """The money of the client's account (:attr:`address`)."""

    def __init__(self, client: Client) -> None:
        self._c = client

    @property
    def address(self) -> str:
        """The account's address (checksummed); the same as ``client.address``."""
        return self._c.address

    def balance(self, address: str | None = None) -> Balance:
        """The wallet's tokens, the marketplace balance, the stake and the allowance given to the marketplace of
        ``address`` (default: this account)."""
        c = self._c
        who = Web3.to_checksum_address(address or c.address)
        token = c.market.token
        return Balance(address=who, wallet=int(token.functions.balanceOf(who).call()),
                       deposited=c.market.balance(who), staked=c.market.worker_record(who).stake,
                       allowance=int(token.functions.allowance(who, c.market.address).call()))

    def deposit(self, amount: int, *, permit: bool = False) -> TxInfo:
        """Move ``amount`` wei of tokens from the wallet into the marketplace: ``approve`` + ``deposit`` (two
        transactions, the approval skipped when the allowance suffices), or with ``permit`` one transaction
        carrying an EIP-2612 signature.

        Raises :class:`ClientError` for a non-positive amount and :class:`InsufficientBalance` when the wallet
        holds less (nothing is sent)."""
        c = self._c
        if amount <= 0:
            raise ClientError(f"deposit amount must be positive, got {amount}")
        token = c.market.token
        wallet = int(token.functions.balanceOf(c.address).call())
        if wallet < amount:
            raise InsufficientBalance(
                f"the wallet of {c.address} holds {format_amount(wallet)} tokens, the deposit needs "
                f"{format_amount(amount)}; get tokens first (on the devnet: 'tasknet account faucet')")
        if permit:
            deadline = c.chain_time() + 3600
            v, r, s = self._sign_permit(amount, deadline)
            return tx_info(c._send(c.market.contract.functions.depositWithPermit(amount, deadline, v, r, s)))
        if int(token.functions.allowance(c.address, c.market.address).call()) < amount:
            c._send(token.functions.approve(c.market.address, amount))
        return tx_info(c._send(c.market.contract.functions.deposit(amount)))

    def _sign_permit(self, amount: int, deadline: int) -> tuple[int, bytes, bytes]:
        c = self._c
        token = c.market.token
        _fields, name, version, chain_id, verifying, _salt, _ext = token.functions.eip712Domain().call()
        nonce = int(token.functions.nonces(c.address).call())
        msg = encode_typed_data(full_message={
            "types": {
                "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                 {"name": "chainId", "type": "uint256"},
                                 {"name": "verifyingContract", "type": "address"}],
                "Permit": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                           {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                           {"name": "deadline", "type": "uint256"}],
            },
            "primaryType": "Permit",
            "domain": {"name": name, "version": version, "chainId": chain_id, "verifyingContract": verifying},
            "message": {"owner": c.address, "spender": c.market.address, "value": amount, "nonce": nonce,
                        "deadline": deadline},
        })
        sig = c.signer.sign_message(msg)
        return int(sig.v), int(sig.r).to_bytes(32, "big"), int(sig.s).to_bytes(32, "big")

    def withdraw(self, amount: int) -> TxInfo:
        """Send ``amount`` wei of the marketplace balance back to the wallet.

        Raises :class:`InsufficientBalance` when the balance (escrow excluded) is smaller (nothing is sent)."""
        c = self._c
        if amount <= 0:
            raise ClientError(f"withdraw amount must be positive, got {amount}")
        have = c.market.balance(c.address)
        if have < amount:
            raise InsufficientBalance(f"the marketplace balance of {c.address} is {format_amount(have)} tokens, "
                                      f"less than the {format_amount(amount)} asked; withdraw at most that (escrow "
                                      "locked by jobs comes back when they finish or are closed)")
        return tx_info(c._send(c.market.contract.functions.withdraw(amount)))

    def faucet(self, amount: int) -> TxInfo:
        """Devnet only: mint ``amount`` wei of the test token to this account's wallet.

        Raises :class:`ClientError` on any other chain."""
        c = self._c
        if c.market.chain_id not in DEV_CHAIN_IDS:
            raise ClientError(f"the faucet exists only on dev chains; chain {c.market.chain_id} has real tokens")
        return tx_info(c._send(c.market.token.functions.faucet(c.address, amount)))
