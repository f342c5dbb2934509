"""What the daemon logs when a call it simulated is refused (``Worker._refusal``): the custom error decoded with its
values, not the raw revert data. The worker around the method is a stand-in (its account and the market's error
ABIs are all the method reads), which is what this test isolates; the errors and the function are the real ones
web3 builds from the shipped artifacts."""

from __future__ import annotations

from types import SimpleNamespace

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector
from web3 import Web3
from web3.exceptions import ContractCustomError, Web3RPCError

from oracle._artifacts import abi
from oracle.exceptions import TransactionReverted
from worker._daemon import Worker

ME = "0x" + "ab" * 20
MARKET = SimpleNamespace(error_abis=[abi("IMarketplace"), abi("IMarketplaceExtension")])
STANDIN = SimpleNamespace(account=SimpleNamespace(address=ME), market=MARKET)
FN = Web3().eth.contract(abi=abi("Marketplace")).functions.claimLane(7, 3)


def refusal(exc: Exception) -> str:
    return Worker._refusal(STANDIN, exc, FN)  # type: ignore[arg-type]


def test_a_custom_error_is_named_with_its_values() -> None:
    data = "0x" + (function_signature_to_4byte_selector("MarketplaceTaskTaken(uint256)") + encode(["uint256"], [7])).hex()
    text = refusal(ContractCustomError(data, data=data))
    assert text == f"claimLane from {ME} reverted with MarketplaceTaskTaken(taskId=7)"


def test_a_transaction_reverted_keeps_its_own_words_and_a_node_error_its_message() -> None:
    assert refusal(TransactionReverted("claimLane reverted with X(a=1)", error_name="X")) == \
        "claimLane reverted with X(a=1)"
    assert refusal(Web3RPCError("boom", rpc_response={"error": {"message": "header not found"}})) == "boom"
