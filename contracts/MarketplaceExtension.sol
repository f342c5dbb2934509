// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

import {IMarketplace} from "./IMarketplace.sol";
import {IMarketplaceExtension} from "./IMarketplaceExtension.sol";
import {MarketplaceBase} from "./MarketplaceBase.sol";
import {MarketStorage} from "./libraries/MarketStorage.sol";
import {LaneLogic} from "./libraries/LaneLogic.sol";
import {ReplicaLogic} from "./libraries/ReplicaLogic.sol";

/// @title MarketplaceExtension
/// @notice The marketplace's relays of signed commits and reveals, its hash helpers and its lanes
/// ({IMarketplaceExtension}).
/// The marketplace deploys it in its constructor and runs it by DELEGATECALL from its `fallback`, so it works on
/// the marketplace's storage, balance, events and EIP-712 domain; called at its own address it reverts.
/// @dev It keeps the marketplace under the 24 KiB code limit: these functions leave the marketplace's dispatch.
/// The relays run the same {ReplicaLogic} code as `commit` and `reveal`, with the signer as the worker.
contract MarketplaceExtension is IMarketplaceExtension, MarketplaceBase {
    bytes32 private constant _COMMIT_TYPEHASH = keccak256("Commit(uint256 taskId,bytes32 commitment)");
    bytes32 private constant _REVEAL_TYPEHASH =
        keccak256("Reveal(uint256 taskId,bytes32 resultDigest,bytes32 salt,string resultCID,bytes callbackData)");

    /// @dev The extension's own address: a call that is not a DELEGATECALL runs with `address(this) == _self`.
    address private immutable _self = address(this);

    modifier onlyDelegated() {
        if (address(this) == _self) revert MarketplaceNotDelegated(_self);
        _;
    }

    /// @inheritdoc IMarketplaceExtension
    function relayCommits(IMarketplace.SignedCommit[] calldata commits) external onlyDelegated nonReentrant {
        bytes32 domainSeparator = _domainSeparatorV4(); // rebuilt under the DELEGATECALL: once per batch
        for (uint256 i = 0; i < commits.length; ++i) {
            IMarketplace.SignedCommit calldata c = commits[i];
            bytes32 digest = _commitDigest(domainSeparator, c.taskId, c.commitment);
            ReplicaLogic.commit(_s, c.taskId, c.commitment, MarketStorage.recover(digest, c.signature));
        }
    }

    /// @inheritdoc IMarketplaceExtension
    function relayReveals(IMarketplace.SignedReveal[] calldata reveals) external onlyDelegated nonReentrant {
        bytes32 domainSeparator = _domainSeparatorV4();
        for (uint256 i = 0; i < reveals.length; ++i) {
            IMarketplace.SignedReveal calldata r = reveals[i];
            bytes32 digest =
                _revealDigest(domainSeparator, r.taskId, r.resultDigest, r.salt, r.resultCID, r.callbackData);
            address signer = MarketStorage.recover(digest, r.signature);
            ReplicaLogic.reveal(_s, r.taskId, r.resultDigest, r.salt, r.resultCID, r.callbackData, signer);
        }
    }

    /// @inheritdoc IMarketplaceExtension
    function commitmentOf(uint256 taskId, bytes32 resultDigest, bytes32 salt, address worker)
        external
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(taskId, resultDigest, salt, worker));
    }

    /// @inheritdoc IMarketplaceExtension
    function hashCommit(uint256 taskId, bytes32 commitment) external view onlyDelegated returns (bytes32) {
        return _commitDigest(_domainSeparatorV4(), taskId, commitment);
    }

    /// @inheritdoc IMarketplaceExtension
    function hashReveal(
        uint256 taskId,
        bytes32 resultDigest,
        bytes32 salt,
        string calldata resultCID,
        bytes calldata callbackData
    ) external view onlyDelegated returns (bytes32) {
        return _revealDigest(_domainSeparatorV4(), taskId, resultDigest, salt, resultCID, callbackData);
    }

    /// @inheritdoc IMarketplaceExtension
    function hashResults(
        uint256 startTaskId,
        uint256 firstTaskId,
        bytes32[] calldata resultDigests,
        string[] calldata resultCIDs,
        bytes[] calldata callbackData
    ) external view onlyDelegated returns (bytes32) {
        return _hashResults(startTaskId, firstTaskId, resultDigests, resultCIDs, callbackData);
    }

    /// @inheritdoc IMarketplaceExtension
    function claimLane(uint256 startTaskId, uint256 count) external onlyDelegated nonReentrant {
        LaneLogic.claim(_s, startTaskId, count, msg.sender);
    }

    /// @inheritdoc IMarketplaceExtension
    function commitLane(uint256 startTaskId, uint256 count, bytes32 root) external onlyDelegated nonReentrant {
        LaneLogic.commit(_s, startTaskId, count, root, msg.sender);
    }

    /// @inheritdoc IMarketplaceExtension
    function revealLane(
        uint256 startTaskId,
        bytes32[] calldata resultDigests,
        bytes32[] calldata salts,
        string[] calldata resultCIDs
    ) external onlyDelegated nonReentrant {
        LaneLogic.reveal(_s, startTaskId, resultDigests, salts, resultCIDs, msg.sender);
    }

    /// @inheritdoc IMarketplaceExtension
    function splitLanes(uint256 startTaskId, uint256 count, bytes32[][] calldata lists)
        external
        onlyDelegated
        nonReentrant
    {
        LaneLogic.split(_s, startTaskId, count, lists);
    }

    /// @inheritdoc IMarketplaceExtension
    function reopenLanes(uint256 startTaskId, uint256 count) external onlyDelegated nonReentrant {
        LaneLogic.reopen(_s, startTaskId, count);
    }

    /// @inheritdoc IMarketplaceExtension
    function releaseLanes(uint256 startTaskId, uint256 count) external onlyDelegated nonReentrant {
        LaneLogic.release(_s, startTaskId, count);
    }

    /// @inheritdoc IMarketplaceExtension
    function dissolveLanes(uint256 startTaskId, uint256 count) external onlyDelegated nonReentrant {
        LaneLogic.dissolve(_s, startTaskId, count);
    }

    /// @inheritdoc IMarketplaceExtension
    function checkLease(uint256 startTaskId, bytes32 root, uint256 commitBlock) external onlyDelegated nonReentrant {
        LaneLogic.checkLease(_s, startTaskId, root, commitBlock);
    }

    /// @inheritdoc IMarketplaceExtension
    function laneKey(uint256 startTaskId, uint256 count) external pure returns (uint256) {
        return LaneLogic.key(startTaskId, count);
    }

    /// @dev The EIP-712 digest of `Commit(taskId, commitment)` in `domainSeparator`.
    function _commitDigest(bytes32 domainSeparator, uint256 taskId, bytes32 commitment) private pure returns (bytes32) {
        return MessageHashUtils.toTypedDataHash(
            domainSeparator, keccak256(abi.encode(_COMMIT_TYPEHASH, taskId, commitment))
        );
    }

    /// @dev The EIP-712 digest of `Reveal(taskId, resultDigest, salt, resultCID, callbackData)` in `domainSeparator`.
    function _revealDigest(
        bytes32 domainSeparator,
        uint256 taskId,
        bytes32 resultDigest,
        bytes32 salt,
        string calldata resultCID,
        bytes calldata callbackData
    ) private pure returns (bytes32) {
        return MessageHashUtils.toTypedDataHash(
            domainSeparator,
            keccak256(
                abi.encode(
                    _REVEAL_TYPEHASH, taskId, resultDigest, salt, keccak256(bytes(resultCID)), keccak256(callbackData)
                )
            )
        );
    }
}
