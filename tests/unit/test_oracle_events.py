"""oracle.events: real ABI-encoded logs (built with eth_abi from the shipped artifacts, as a node returns them)
decode into named, JSON-plain events; the stream's cursor, confirmations and reorg handling run on a fake chain
that isolates them from JSON-RPC (blocks, hashes and logs held in a list)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.abi import collapse_if_tuple, event_abi_to_log_topic
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3

from oracle import abi
from oracle.events import EventStream, ReorgTooDeep, StreamCursor
from oracle.market import JobView

MARKET = "0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9"
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
REQUESTER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
WORKER = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
ABIS = [abi("IMarketplace"), abi("IMarketplaceRegistry")]


def _event_abi(name: str) -> dict[str, Any]:
    return next(i for entries in ABIS for i in entries if i.get("type") == "event" and i["name"] == name)


def encode_log(name: str, *, address: str = MARKET, block: int = 1, block_hash: bytes = b"\x01" * 32,
               index: int = 0, **args: Any) -> dict[str, Any]:
    """A log as ``eth_getLogs`` returns it: topic 0 the event's signature hash, one topic per indexed argument,
    the other arguments ABI-encoded in ``data``."""
    entry = _event_abi(name)
    topics = [HexBytes(event_abi_to_log_topic(entry))]  # type: ignore[arg-type]
    types, values = [], []
    for i in entry["inputs"]:
        if i["indexed"]:
            topics.append(HexBytes(abi_encode([i["type"]], [args[i["name"]]])))
        else:
            types.append(collapse_if_tuple(i))
            values.append(args[i["name"]])
    return {"address": address, "topics": topics, "data": HexBytes(abi_encode(types, values)),
            "blockNumber": block, "blockHash": HexBytes(block_hash), "logIndex": index, "transactionIndex": 0,
            "transactionHash": HexBytes(keccak(text=f"{block}:{index}")), "removed": False}


def _decoder() -> EventStream:
    return EventStream(Web3(), [MARKET, REGISTRY], ABIS, StreamCursor(next_block=0))


JOB_PARAMS = (3, 0, 10, 2, 10**17, 2_000_000_000, 600, 2, 1024, 0, 1, 5, "0x" + "00" * 20, "bafyinputs", b"\x04key")


def test_a_job_posted_log_decodes_into_named_arguments_and_a_job_view() -> None:
    log = encode_log("JobPosted", block=12, index=3, jobId=9, requester=REQUESTER, appId=3, params=JOB_PARAMS,
                     escrow=2 * 10**18)
    e = _decoder()._decode(log)
    assert e is not None and e.name == "JobPosted" and e.key == (12, 3) and e.address == MARKET
    assert (e.args["jobId"], e.args["requester"], e.args["appId"], e.args["escrow"]) == (9, REQUESTER, 3, 2 * 10**18)
    assert e.block_hash == "0x" + "01" * 32 and e.tx_hash == "0x" + keccak(text="12:3").hex()
    job = JobView.from_event(e.args)
    assert (job.job_id, job.app_id, job.num_tasks, job.replication, job.reward) == (9, 3, 10, 2, 10**17)
    assert (job.max_run_seconds, job.cores, job.memory_mb, job.arch_mask, job.min_reputation) == (600, 2, 1024, 1, 5)
    assert (job.inputs_cid, job.encryption_key, job.escrow) == ("bafyinputs", "046b6579", 2 * 10**18)


def test_bytes_decode_to_0x_hex_and_strings_stay_text() -> None:
    digest = bytes(range(32))
    e = _decoder()._decode(encode_log("ResultRevealed", taskId=(9 << 32) | 1, worker=WORKER, resultDigest=digest,
                                      resultCID="bafkreiresult", callbackData=b"\xca\xfe"))
    assert e is not None and e.args == {"taskId": (9 << 32) | 1, "worker": WORKER, "resultDigest": "0x" + digest.hex(),
                                        "resultCID": "bafkreiresult", "callbackData": "0xcafe"}


def test_registry_events_decode_with_the_registry_abi() -> None:
    entry = _event_abi("AppRegistered")
    values = {"appId": 4, "owner": REQUESTER, "imageRef": "reg/echo:1", "imageDigest": b"\xab" * 32,
              "metadataURI": "ipfs://meta", "price": 7, "isPublic": True, "deterministicFile": "out.ppm"}
    args = {i["name"]: values[i["name"]] for i in entry["inputs"]}
    e = _decoder()._decode(encode_log("AppRegistered", address=REGISTRY, **args))
    assert e is not None and e.name == "AppRegistered" and e.args["imageDigest"] == "0x" + "ab" * 32
    assert e.args["isPublic"] is True and e.args["owner"] == REQUESTER


def test_logs_of_unknown_events_or_without_topics_are_skipped() -> None:
    log = encode_log("Deposited", account=REQUESTER, amount=5)
    assert _decoder()._decode({**log, "topics": []}) is None
    assert _decoder()._decode({**log, "topics": [HexBytes(keccak(text="Unknown(uint256)"))]}) is None


# -- the stream, on a fake chain -----------------------------------------------------------------------------
class FakeEth:
    """Blocks 0..head with a hash each and the logs in them; ``reorg`` replaces the newest blocks."""

    def __init__(self) -> None:
        self.blocks: list[dict[str, Any]] = [self._block(0, "genesis", [], HexBytes(b"\x00" * 32))]
        self.requests = 0

    @staticmethod
    def _block(number: int, fork: str, logs: list[dict[str, Any]], parent: HexBytes) -> dict[str, Any]:
        return {"number": number, "hash": HexBytes(keccak(text=f"{fork}:{number}")), "parentHash": parent,
                "logs": logs}

    def mine(self, fork: str = "a", deposits: int = 0) -> int:
        number = len(self.blocks)
        h = keccak(text=f"{fork}:{number}")
        logs = [encode_log("Deposited", block=number, block_hash=h, index=i, account=REQUESTER, amount=number * 100 + i)
                for i in range(deposits)]
        self.blocks.append(self._block(number, fork, logs, self.blocks[-1]["hash"]))
        return number

    def reorg(self, depth: int, fork: str, deposits: int = 1) -> None:
        del self.blocks[-depth:]
        for _ in range(depth):
            self.mine(fork, deposits)

    @property
    def block_number(self) -> int:
        self.requests += 1
        return len(self.blocks) - 1

    def get_block(self, ident: int | str) -> dict[str, Any] | None:
        self.requests += 1
        n = len(self.blocks) - 1 if ident == "latest" else int(ident)
        return self.blocks[n] if n < len(self.blocks) else None

    def get_logs(self, flt: dict[str, Any]) -> list[dict[str, Any]]:
        self.requests += 1
        return [log for b in self.blocks[flt["fromBlock"]:flt["toBlock"] + 1] for log in b["logs"]]


class FakeProvider:
    """The raw ``eth_getBlockByNumber`` the stream reads the tip with, answered from ``eth``'s blocks."""

    def __init__(self, eth: FakeEth) -> None:
        self.eth = eth

    def make_request(self, method: str, params: list[Any]) -> dict[str, Any]:
        if method == "eth_getLogs":
            flt = params[0]
            logs = self.eth.get_logs({"fromBlock": int(flt["fromBlock"], 16), "toBlock": int(flt["toBlock"], 16)})
            return {"result": [{**log, "topics": ["0x" + bytes(t).hex() for t in log["topics"]],
                                "data": "0x" + bytes(log["data"]).hex(), "blockNumber": hex(log["blockNumber"]),
                                "blockHash": "0x" + bytes(log["blockHash"]).hex(),
                                "transactionHash": "0x" + bytes(log["transactionHash"]).hex(),
                                "transactionIndex": hex(log["transactionIndex"]), "logIndex": hex(log["logIndex"]),
                                "address": log["address"].lower()} for log in logs]}
        assert method == "eth_getBlockByNumber" and params[1] is False
        block = self.eth.get_block(params[0] if params[0] == "latest" else int(params[0], 16))
        if block is None:
            return {"result": None}
        return {"result": {"number": hex(block["number"]), "hash": "0x" + bytes(block["hash"]).hex(),
                           "parentHash": "0x" + bytes(block["parentHash"]).hex(), "timestamp": hex(block["number"]),
                           "gasLimit": hex(30_000_000)}}


class FakeWeb3:
    def __init__(self) -> None:
        self.eth = FakeEth()
        self.provider = FakeProvider(self.eth)
        self.codec = Web3().codec  # decoding only: no provider is ever asked


def _stream(w3: FakeWeb3, cursor: StreamCursor | None = None, **kw: Any) -> EventStream:
    return EventStream(w3, [MARKET], ABIS, cursor or StreamCursor(next_block=1), **kw)  # type: ignore[arg-type]


def _amounts(events: list[Any]) -> list[int]:
    return [e.args["amount"] for e in events]


def test_poll_reads_up_to_the_confirmed_head_in_batches_and_advances_the_cursor() -> None:
    w3 = FakeWeb3()
    for _ in range(5):
        w3.eth.mine(deposits=1)
    stream = _stream(w3, confirmations=1, batch=2)
    assert _amounts(stream.poll()[1]) == [100, 200] and stream.cursor.next_block == 3 and not stream.caught_up
    assert _amounts(stream.poll()[1]) == [300, 400] and stream.cursor.next_block == 5 and stream.caught_up
    assert stream.poll() == (None, [])  # block 5 is not confirmed yet
    w3.eth.mine(deposits=0)
    assert _amounts(stream.poll()[1]) == [500]


def test_an_unchanged_tip_costs_one_request() -> None:
    w3 = FakeWeb3()
    w3.eth.mine(deposits=2)
    stream = _stream(w3)
    stream.poll()
    before = w3.eth.requests
    assert stream.poll() == (None, []) and w3.eth.requests == before + 1


def test_a_new_block_costs_two_requests_the_tip_vouching_for_its_parent_and_the_newest_block_read() -> None:
    w3 = FakeWeb3()
    w3.eth.mine(deposits=1)
    stream = _stream(w3)
    stream.poll()
    for blocks in (1, 1, 3):
        for _ in range(blocks):
            w3.eth.mine(deposits=1)
        before = w3.eth.requests
        events = stream.poll()[1]
        assert len(events) == blocks and stream.caught_up
        # the tip and the logs; a tip more than one block ahead cannot vouch for the newest block read: one more
        assert w3.eth.requests - before == (2 if blocks == 1 else 3)


def test_a_reorg_of_the_tips_parent_alone_is_seen_through_the_new_tips_parent_hash() -> None:
    w3 = FakeWeb3()
    for _ in range(3):
        w3.eth.mine("a", deposits=1)
    stream = _stream(w3)
    assert _amounts(stream.poll()[1]) == [100, 200, 300]
    w3.eth.reorg(1, "b", deposits=2)  # block 3 replaced
    w3.eth.mine("b", deposits=0)  # and one more on top: the new tip's parent is b:3, not the a:3 remembered
    reorg, events = stream.poll()
    assert reorg is not None and reorg.common_ancestor == 2 and reorg.dropped == [3]
    assert _amounts(events) == [300, 301]


def test_a_reorg_rewinds_to_the_common_ancestor_and_the_new_blocks_are_read() -> None:
    w3 = FakeWeb3()
    for _ in range(4):
        w3.eth.mine("a", deposits=1)
    stream = _stream(w3)
    assert _amounts(stream.poll()[1]) == [100, 200, 300, 400]
    w3.eth.reorg(2, "b", deposits=2)
    reorg, events = stream.poll()
    assert reorg is not None and reorg.common_ancestor == 2 and reorg.dropped == [3, 4]
    assert _amounts(events) == [300, 301, 400, 401]
    assert all(e.block_hash == "0x" + keccak(text=f"b:{e.block_number}").hex() for e in events)


def test_a_reorg_deeper_than_the_stream_keeps_raises() -> None:
    w3 = FakeWeb3()
    for _ in range(6):
        w3.eth.mine("a", deposits=1)
    stream = _stream(w3, keep=2)
    stream.poll()
    assert min(stream.cursor.recent) >= 3  # older hashes are final and forgotten
    w3.eth.reorg(5, "b")
    with pytest.raises(ReorgTooDeep, match="deeper than the finality depth of 2 blocks"):
        stream.poll()


def test_a_restart_from_the_saved_cursor_neither_misses_nor_repeats_an_event() -> None:
    w3 = FakeWeb3()
    for _ in range(3):
        w3.eth.mine(deposits=1)
    first = _stream(w3)
    seen = _amounts(first.poll()[1])
    saved = first.cursor.model_dump_json()
    for _ in range(2):
        w3.eth.mine(deposits=1)
    again = _stream(w3, StreamCursor.model_validate_json(saved))
    assert seen + _amounts(again.poll()[1]) == [100, 200, 300, 400, 500]
