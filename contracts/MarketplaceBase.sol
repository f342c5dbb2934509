// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {MarketStorage} from "./libraries/MarketStorage.sol";

/// @title MarketplaceBase
/// @notice The storage layout, EIP-712 domain and reentrancy guard shared by {Marketplace} and
/// {MarketplaceExtension}, which runs by DELEGATECALL on the marketplace's storage.
/// @dev Both contracts derive from this one and declare no storage of their own, so `_s` sits at the same slot in
/// both by construction (scripts/compile.js checks the two storage layouts are equal). Under the DELEGATECALL the
/// extension's EIP-712 domain is rebuilt from `address(this)`, the marketplace, so both sign the same domain.
abstract contract MarketplaceBase is Ownable, EIP712, ReentrancyGuardTransient {
    bytes32 internal constant _RESULTS_TYPEHASH = keccak256(
        "Results(uint256 startTaskId,uint256 firstTaskId,bytes32[] resultDigests,string[] resultCIDs,bytes[] callbackData)"
    );

    /// @dev The whole state (layout in {MarketStorage-State}); the linked libraries work on it by DELEGATECALL.
    MarketStorage.State internal _s;

    constructor() Ownable(msg.sender) EIP712("Tasknet Marketplace", "1") {}

    function _hashResults(
        uint256 startTaskId,
        uint256 firstTaskId,
        bytes32[] calldata digests,
        string[] calldata cids,
        bytes[] calldata cbs
    ) internal view returns (bytes32) {
        bytes32[] memory cidHashes = new bytes32[](cids.length);
        for (uint256 i = 0; i < cids.length; ++i) {
            cidHashes[i] = keccak256(bytes(cids[i]));
        }
        bytes32[] memory cbHashes = new bytes32[](cbs.length);
        for (uint256 i = 0; i < cbs.length; ++i) {
            cbHashes[i] = keccak256(cbs[i]);
        }
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    _RESULTS_TYPEHASH,
                    startTaskId,
                    firstTaskId,
                    keccak256(abi.encodePacked(digests)),
                    keccak256(abi.encodePacked(cidHashes)),
                    keccak256(abi.encodePacked(cbHashes))
                )
            )
        );
    }
}
