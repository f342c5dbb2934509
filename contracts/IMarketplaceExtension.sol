// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IMarketplace} from "./IMarketplace.sol";

/// @title IMarketplaceExtension
/// @notice The marketplace's functions that its extension contract carries (the relays of signed commits and
/// reveals, and the hash helpers): call them on the marketplace's own address, as any other function. The
/// marketplace's `fallback` runs them by DELEGATECALL on its storage, so they read and write the marketplace's
/// state, emit its events and revert with its errors ({IMarketplace}); the deployed ABI of `Marketplace` lists
/// them with the rest. Calling the extension's own address directly reverts ({MarketplaceNotDelegated}).
interface IMarketplaceExtension {
    /// @notice An extension function was called on the extension's own address; call it on the marketplace.
    /// `extension` is the address called.
    error MarketplaceNotDelegated(address extension);

    // ---------------------------------------------------------------------------------------------
    // Relays (EIP-712, domain "Tasknet Marketplace" version "1", verifying contract the marketplace)
    // ---------------------------------------------------------------------------------------------

    /// @notice Submits worker-signed `Commit(uint256 taskId,bytes32 commitment)` messages.
    /// @param commits each a task, its commitment and its worker's signature; the signer must hold a replica
    function relayCommits(IMarketplace.SignedCommit[] calldata commits) external;

    /// @notice Submits worker-signed
    /// `Reveal(uint256 taskId,bytes32 resultDigest,bytes32 salt,string resultCID,bytes callbackData)` messages.
    /// @param reveals each a task, its revealed result and its worker's signature; the signer must have committed
    function relayReveals(IMarketplace.SignedReveal[] calldata reveals) external;

    // ---------------------------------------------------------------------------------------------
    // Hash helpers (the contract-side check of oracle.protocol)
    // ---------------------------------------------------------------------------------------------

    /// @notice keccak256(abi.encode(taskId, resultDigest, salt, worker)).
    /// @return the per-task commitment a worker commits ({IMarketplace-commit})
    function commitmentOf(uint256 taskId, bytes32 resultDigest, bytes32 salt, address worker)
        external
        pure
        returns (bytes32);

    /// @notice The EIP-712 digest a worker signs for a relayed commit.
    /// @return the digest of `Commit(taskId, commitment)` in the marketplace's domain
    function hashCommit(uint256 taskId, bytes32 commitment) external view returns (bytes32);

    /// @notice The EIP-712 digest a worker signs for a relayed reveal.
    /// @return the digest of `Reveal(taskId, resultDigest, salt, resultCID, callbackData)` in the marketplace's domain
    function hashReveal(
        uint256 taskId,
        bytes32 resultDigest,
        bytes32 salt,
        string calldata resultCID,
        bytes calldata callbackData
    ) external view returns (bytes32);

    /// @notice The EIP-712 digest a worker signs for relayed results ({IMarketplace-relayResults}).
    /// @return the digest of `Results(startTaskId, firstTaskId, resultDigests, resultCIDs, callbackData)`
    function hashResults(
        uint256 startTaskId,
        uint256 firstTaskId,
        bytes32[] calldata resultDigests,
        string[] calldata resultCIDs,
        bytes[] calldata callbackData
    ) external view returns (bytes32);
}
