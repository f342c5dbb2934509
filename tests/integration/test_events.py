"""oracle.events.EventStream on a real anvil: confirmations, resume from a cursor, reorgs (anvil_reorg)."""

from __future__ import annotations

import pytest
from web3 import Web3

from oracle import abi, send
from oracle.events import EventStream, ReorgTooDeep, StreamCursor


def _mint(w3: Web3, token, accounts, amount: int) -> int:
    return send(w3, token.functions.faucet(accounts[3].address, amount), accounts[0])["blockNumber"]


def _stream(w3: Web3, token, start: int, **kw) -> EventStream:
    return EventStream(w3, [token.address], [abi("TestToken")], StreamCursor(next_block=start), **kw)


def _drain(stream: EventStream) -> list:
    out = []
    while True:
        reorg, events = stream.poll()
        assert reorg is None
        if not events and stream.cursor.next_block > stream.w3.eth.block_number - stream.confirmations:
            return out
        out += events


def test_stream_decodes_events_in_order_and_resumes_from_its_cursor(w3, accounts, deployment) -> None:
    token = deployment["TestToken"]
    start = w3.eth.block_number + 1
    for amount in (1, 2, 3):
        _mint(w3, token, accounts, amount)
    stream = _stream(w3, token, start, batch=2)
    first = _drain(stream)
    assert [e.args["amount"] for e in first if e.name == "FaucetUsed"] == [1, 2, 3]
    assert [e.name for e in first][:2] == ["Transfer", "FaucetUsed"]
    saved = stream.cursor.model_dump_json()

    _mint(w3, token, accounts, 4)
    resumed = EventStream(w3, [token.address], [abi("TestToken")], StreamCursor.model_validate_json(saved))
    again = _drain(resumed)
    assert [e.args["amount"] for e in again if e.name == "FaucetUsed"] == [4]  # nothing missed, nothing twice


def test_confirmations_hold_back_the_newest_blocks(w3, accounts, deployment) -> None:
    token = deployment["TestToken"]
    start = w3.eth.block_number + 1
    _mint(w3, token, accounts, 7)
    stream = _stream(w3, token, start, confirmations=2)
    assert stream.poll()[1] == []
    w3.provider.make_request("anvil_mine", [2])
    assert [e.args["amount"] for e in stream.poll()[1] if e.name == "FaucetUsed"] == [7]


def test_reorg_is_reported_and_events_of_the_new_branch_are_read(w3, accounts, deployment) -> None:
    token = deployment["TestToken"]
    start = w3.eth.block_number + 1
    _mint(w3, token, accounts, 10)
    snap = w3.provider.make_request("evm_snapshot", [])["result"]
    _mint(w3, token, accounts, 11)  # this block will be dropped
    stream = _stream(w3, token, start)
    assert [e.args["amount"] for e in _drain(stream) if e.name == "FaucetUsed"] == [10, 11]

    w3.provider.make_request("evm_revert", [snap])  # a competing branch from the same parent ...
    w3.provider.make_request("anvil_mine", [1])     # ... with an empty block,
    _mint(w3, token, accounts, 12)                  # then another event
    reorg, events = stream.poll()
    assert reorg is not None and reorg.common_ancestor == start
    assert [e.args["amount"] for e in events if e.name == "FaucetUsed"] == [12]


def test_anvil_reorg_rpc_replaces_blocks_and_stream_follows(w3, accounts, deployment) -> None:
    token = deployment["TestToken"]
    start = w3.eth.block_number + 1
    _mint(w3, token, accounts, 20)                  # block start: survives
    w3.provider.make_request("anvil_mine", [1])     # start+1: survives
    _mint(w3, token, accounts, 21)                  # start+2: its transaction is dropped by the reorg
    w3.provider.make_request("anvil_mine", [1])     # start+3
    stream = _stream(w3, token, start)
    assert [e.args["amount"] for e in _drain(stream) if e.name == "FaucetUsed"] == [20, 21]
    before = w3.eth.get_block(start + 2)["hash"]
    w3.provider.make_request("anvil_reorg", [2, []])  # replace the 2 newest blocks (start+2, start+3) by empty ones
    assert w3.eth.get_block(start + 2)["hash"] != before
    reorg, events = stream.poll()
    assert reorg is not None
    assert reorg.common_ancestor == start and reorg.dropped == [start + 2, start + 3]
    assert [e.args["amount"] for e in events if e.name == "FaucetUsed"] == []  # the dropped mint is gone


def test_reorg_deeper_than_finality_fails_loudly(w3, accounts, deployment) -> None:
    token = deployment["TestToken"]
    snap = w3.provider.make_request("evm_snapshot", [])["result"]
    start = w3.eth.block_number + 1
    _mint(w3, token, accounts, 30)
    stream = _stream(w3, token, start)
    _drain(stream)
    w3.provider.make_request("evm_revert", [snap])
    w3.provider.make_request("anvil_mine", [3])
    with pytest.raises(ReorgTooDeep, match="deeper than the finality depth"):
        stream.poll()
