"""The marketplace's extension (contracts/MarketplaceExtension.sol): the relays and hash helpers run by the
marketplace's fallback, by DELEGATECALL on the marketplace's own storage, at the marketplace's address and in its
EIP-712 domain; called at its own address the extension refuses. Real contracts on anvil."""

from __future__ import annotations

import pytest
from market_helpers import Env, reverts
from web3.exceptions import ContractLogicError

from oracle.protocol import commitment, sign_commit, sign_reveal, task_id

GOOD = b"\x60" * 32
SALT = b"\x5a" * 32


@pytest.fixture
def job(env: Env) -> int:
    """Two tasks, R = 2; five enrolled workers."""
    return env.replicated_job(2)


def test_the_extension_is_the_marketplaces_own_and_refuses_direct_calls(env: Env, job: int) -> None:
    ext = env.market.functions.extension().call()
    assert len(env.w3.eth.get_code(ext)) > 0
    # the marketplace created it (its first CREATE, nonce 1), so nobody can swap it
    assert ext == env.w3.to_checksum_address(
        env.w3.keccak(bytes.fromhex("d694") + bytes.fromhex(env.market.address[2:]) + b"\x01")[12:])
    direct = env.w3.eth.contract(address=ext, abi=env.market.abi)
    tid = task_id(job, 0)
    w = env.workers[0]
    env.tx(env.market.functions.claim(tid), w)
    c = commitment(tid, GOOD, SALT, w.address)
    signed = (tid, c, sign_commit(w, env.domain, tid, c))
    # relayed at the extension's own address, the signed commit would act on empty storage: refused
    reverts(env, direct.functions.relayCommits([signed]), env.outsider, "MarketplaceNotDelegated", {"extension": ext})
    with pytest.raises(ContractLogicError):
        direct.functions.hashCommit(tid, c).call()
    assert env.market.functions.getReplica(tid, 0).call()[2] == b"\0" * 32  # nothing was committed
    # the same message at the marketplace's address commits it, in the marketplace's storage
    env.tx(env.market.functions.relayCommits([signed]), env.outsider)
    assert env.market.functions.getReplica(tid, 0).call()[2] == c


def test_relays_batch_through_multicall(env: Env, job: int) -> None:
    """multicall DELEGATECALLs the marketplace itself, whose fallback then DELEGATECALLs the extension."""
    tid = task_id(job, 1)
    ws = env.workers[:2]
    for w in ws:
        env.tx(env.market.functions.claim(tid), w)
    commits = [(tid, commitment(tid, GOOD, SALT, w.address),
                sign_commit(w, env.domain, tid, commitment(tid, GOOD, SALT, w.address))) for w in ws]
    reveals = [(tid, GOOD, SALT, "bafyR", b"", sign_reveal(w, env.domain, tid, GOOD, SALT, "bafyR")) for w in ws]
    calls = [env.market.encode_abi("relayCommits", [commits[:1]]), env.market.encode_abi("relayCommits", [commits[1:]])]
    env.tx(env.market.functions.multicall(calls), env.outsider)
    receipt = env.tx(env.market.functions.multicall([env.market.encode_abi("relayReveals", [reveals])]), env.outsider)
    assert [e["taskId"] for e in env.events(receipt, "TaskFinalized")] == [tid]


def test_an_unknown_selector_still_reverts(env: Env) -> None:
    with pytest.raises(ContractLogicError):
        env.w3.eth.call({"to": env.market.address, "data": "0xdeadbeef" + "00" * 32})
    with pytest.raises(ContractLogicError):
        env.w3.eth.call({"to": env.market.address, "data": "0x"})
