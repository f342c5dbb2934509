"""oracle._chain.reverted_error: what a revert says, as the node reports it (exceptions built as web3 raises them
for an eth_call or an eth_estimateGas; no chain: only the message is under test)."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from eth_utils.abi import function_signature_to_4byte_selector
from web3.exceptions import ContractLogicError, Web3RPCError

from oracle import abi
from oracle._chain import reverted_error

pytestmark = pytest.mark.unit


def test_a_custom_error_is_named_with_its_values() -> None:
    data = "0x" + (function_signature_to_4byte_selector("MarketplaceNoFreeReplica(uint256)")
                   + encode(["uint256"], [42])).hex()
    exc = reverted_error(ContractLogicError("execution reverted", data=data), [abi("IMarketplace")], "claimLane from 0xa")
    assert str(exc) == "claimLane from 0xa reverted with MarketplaceNoFreeReplica(taskId=42)"
    assert exc.error_name == "MarketplaceNoFreeReplica" and exc.error_args == {"taskId": 42}


@pytest.mark.parametrize("exc", [
    ContractLogicError("execution reverted", data="0x"),
    Web3RPCError("out of gas", rpc_response={"jsonrpc": "2.0", "id": 1, "error": {"code": -32000,
                                                                                   "message": "out of gas"}}),
])
def test_a_revert_without_data_carries_the_nodes_own_words(exc: Exception) -> None:
    got = reverted_error(exc, [abi("IMarketplace")], "claimLane from 0xa")
    assert got.error_name == "unknown" and "no error data (the node said: " in str(got)
    assert str(got).endswith(f"{getattr(exc, 'message', None) or exc})") and "data=0x" not in str(got)
