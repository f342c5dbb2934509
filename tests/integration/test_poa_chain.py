"""Chains whose block headers carry more than 32 bytes of extra data (proof of authority: geth clique, BSC,
Polygon PoS) work: ``oracle.connect`` sees it and adds web3's proof-of-authority middleware.

What this isolates: no proof-of-authority client is available here, so a small JSON-RPC proxy in front of the
session's real anvil rewrites each block's ``extraData`` to 97 bytes (a clique seal's size). Everything else is
the real chain: the transactions are mined by anvil, the blocks and events are anvil's.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ExtraDataLengthError

from oracle import connect
from oracle.events import EventStream, StreamCursor
from oracle.market import Market
from oracle.tx import TxSender

SEAL = "0x" + "ab" * 97


def _seal(payload: Any) -> Any:
    if isinstance(payload, list):
        return [_seal(p) for p in payload]
    result = payload.get("result") if isinstance(payload, dict) else None
    if isinstance(result, dict) and "extraData" in result:
        result["extraData"] = SEAL
    return payload


@pytest.fixture
def poa_url(anvil: Any) -> Iterator[str]:
    upstream = httpx.Client(timeout=30)

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            answer = upstream.post(anvil.rpc_url, content=body, headers={"Content-Type": "application/json"})
            data = json.dumps(_seal(answer.json())).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        upstream.close()


def test_a_proof_of_authority_chain_is_detected_and_read(poa_url: str, market: Market,
                                                         accounts: list[LocalAccount]) -> None:
    plain = Web3(Web3.HTTPProvider(poa_url))
    with pytest.raises(ExtraDataLengthError):  # the proxy really serves proof-of-authority blocks
        plain.eth.get_block("latest")

    w3 = connect(poa_url)
    head = w3.eth.get_block("latest")
    assert bytes(head["proofOfAuthorityData"]) == bytes.fromhex(SEAL[2:])

    poa_market = Market(w3, market.address)
    sender = TxSender(w3, accounts[3], extra_abis=poa_market.error_abis)
    start = w3.eth.block_number + 1
    sender.transact(poa_market.token.functions.faucet(accounts[3].address, 10**18))
    sender.transact(poa_market.token.functions.approve(poa_market.address, 10**18))
    sender.transact(poa_market.contract.functions.deposit(10**18))
    stream = EventStream(w3, poa_market.addresses, poa_market.event_abis, StreamCursor(next_block=start))
    reorg, events = stream.poll()
    assert reorg is None and [e.name for e in events if e.name == "Deposited"] == ["Deposited"]
