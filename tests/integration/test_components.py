"""The real components the fixtures start: anvil, kubo, Docker; and the deployed contracts."""

from __future__ import annotations

import pytest
from web3 import Web3

from oracle import send
from oracle.exceptions import ContentNotFound, IpfsError, TransactionReverted


def test_anvil_snapshot_isolates_tests_part1(w3: Web3, accounts, deployment) -> None:
    token = deployment["TestToken"]
    send(w3, token.functions.faucet(accounts[5].address, 123), accounts[0])
    assert token.functions.balanceOf(accounts[5].address).call() == 123


def test_anvil_snapshot_isolates_tests_part2(w3: Web3, accounts, deployment) -> None:
    """Runs after part 1: the faucet mint there was reverted by the snapshot."""
    assert deployment["TestToken"].functions.balanceOf(accounts[5].address).call() == 0


def test_revert_is_decoded_with_custom_error_name_and_arguments(w3: Web3, accounts, deployment) -> None:
    token = deployment["TestToken"]
    with pytest.raises(TransactionReverted) as err:
        send(w3, token.functions.faucet(accounts[1].address, 10**30), accounts[1])
    assert err.value.error_name == "TestTokenFaucetTooLarge"
    assert err.value.error_args == {"requested": 10**30, "max": 10**24}
    assert "TestTokenFaucetTooLarge(requested=" in str(err.value)


def test_ipfs_roundtrip_and_cid_is_content_addressed(ipfs) -> None:
    cid = ipfs.add_bytes(b"hello tasknet")
    assert ipfs.cat(cid) == b"hello tasknet"
    assert ipfs.add_bytes(b"hello tasknet") == cid
    assert ipfs.add_bytes(b"hello tasknet!") != cid


def test_ipfs_unknown_cid_is_not_found_quickly(ipfs) -> None:
    missing = ipfs.add_bytes(b"x", pin=False)  # a real CID ...
    unknown = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"  # ... and one nobody has
    assert missing
    with pytest.raises(ContentNotFound):
        ipfs.cat(unknown, timeout=1.5)


def test_ipfs_invalid_cid_is_a_clear_error(ipfs) -> None:
    with pytest.raises(IpfsError, match="not a valid CID|failed"):
        ipfs.cat("not-a-cid")


def test_docker_engine_answers(docker_client) -> None:
    assert docker_client.ping() is True
