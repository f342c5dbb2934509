"""The SDK's namespaces that no other test drives: ``client.workers`` (the workers' records) against a real
anvil, and the client facade's own attributes (``signer``, ``address``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import test_client_helpers as helpers
from test_client_helpers import E18, client, enroll
from web3 import Web3

from oracle.client import Account, WorkerInfo
from oracle.exceptions import ClientError

devnet_file = helpers.devnet_file
image_registry = helpers.image_registry


def test_workers_get_and_list_read_the_records_the_chain_holds(devnet_file: Path, w3: Web3,
                                                               accounts: list[Any]) -> None:
    with client(devnet_file) as c:
        worker = accounts[7]
        before = c.workers.get(worker.address)
        enroll(w3, c.market, worker, stake=3 * E18, cores=6, memory=12000)
        w = c.workers.get(worker.address.lower())  # any spelling of the address
        assert isinstance(w, WorkerInfo) and w.address == worker.address
        assert w.registered and not w.banned and w.stake == before.stake + 3 * E18 and w.locked == 0
        assert (w.cores, w.memory_mb, w.slashes) == (6, 12000, 0)
        assert w.reputation == int(c.market.worker_record(worker.address).reputation)
        assert worker.address in {x.address for x in c.workers.list()}
        assert c.workers.list() == sorted(c.workers.list(), key=lambda x: x.address)
        stranger = c.workers.get("0x" + "ab" * 20)  # never registered: a zero record
        assert not stranger.registered and stranger.stake == 0
        with pytest.raises(ClientError, match="is not an Ethereum address"):
            c.workers.get("0x1234")


def test_the_facade_keeps_the_signer_and_the_address_and_routes_to_its_namespaces(devnet_file: Path) -> None:
    with client(devnet_file, fund=2 * E18) as c:
        money = c.account
        assert isinstance(money, Account)
        assert c.signer.address == c.address == c.account.address
        assert c.account.balance().deposited == 2 * E18
        assert c.jobs.pinned == (0, 0) and c.jobs.remote_pins is None
