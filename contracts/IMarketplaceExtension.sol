// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IMarketplace} from "./IMarketplace.sol";

/// @title IMarketplaceExtension
/// @notice The marketplace's functions that its extension contract carries (the relays of signed commits and
/// reveals, the hash helpers and replicated ranges, "lanes"): call them on the marketplace's own address, as any other function. The
/// marketplace's `fallback` runs them by DELEGATECALL on its storage, so they read and write the marketplace's
/// state, emit its events and revert with its errors ({IMarketplace}); the deployed ABI of `Marketplace` lists
/// them with the rest. Calling the extension's own address directly reverts ({MarketplaceNotDelegated}).
interface IMarketplaceExtension {
    /// @notice An extension function was called on the extension's own address; call it on the marketplace.
    /// `extension` is the address called.
    error MarketplaceNotDelegated(address extension);
    /// @notice Lanes serve open fixed-R jobs (R > 1) without a callback, and the check chunks of credibility-mode jobs
    /// ({checkLease}, which are never dissolved); job `jobId` is R = 1, in credibility mode
    /// (its credible leases are its ranges) or has a callback: claim its tasks with `claim` or `claimRange`.
    error MarketplaceLanesUnsupported(uint256 jobId);
    /// @notice A list given to {splitLanes} does not hash to what `worker`'s lane of chunk `startTaskId` revealed.
    error MarketplaceLaneListMismatch(uint256 startTaskId, address worker);
    /// @notice Chunk `startTaskId` still takes lanes until `joinUntil` (its first lane's claim plus the claim grace):
    /// {dissolveLanes} only after that.
    error MarketplaceLanesJoinOpen(uint256 startTaskId, uint256 joinUntil);
    /// @notice Chunk `startTaskId` cannot be dissolved: it holds `lanes` of its `target` lanes (all of them: it runs
    /// as lanes) or `revealed` lanes revealed (their results are public: the chunk ends by {splitLanes}).
    error MarketplaceLanesNotDissolvable(uint256 startTaskId, uint256 lanes, uint256 target, uint256 revealed);

    /// @notice `worker` leased lane `lane` of the chunk of `count` tasks from `startTaskId`, locking `count` replica
    /// stakes; it must commit by `expiry`.
    event LaneClaimed(
        uint256 indexed startTaskId, address indexed worker, uint256 lane, uint256 count, uint256 expiry
    );
    /// @notice `worker` committed its lane's `root` (keccak256 of its per-task commitments, packed in task order).
    event LaneCommitted(uint256 indexed startTaskId, address indexed worker, bytes32 root);
    /// @notice `worker` revealed its lane: `listHash` = keccak256(abi.encode(resultDigests)); one
    /// {IMarketplace-ResultRevealed} per task follows.
    event LaneRevealed(uint256 indexed startTaskId, address indexed worker, bytes32 listHash);
    /// @notice The chunk's lanes did not all reveal one list: each of its `count` tasks is now a round of its own,
    /// whose replicas are the lanes (settled, extended or failed by strict majority as any task).
    event LanesSplit(uint256 indexed startTaskId, uint256 count);
    /// @notice `worker`'s lane passed its expiry without a commit: its `count` replica stakes were slashed and the
    /// lane is free again.
    event LaneExpired(uint256 indexed startTaskId, address indexed worker);
    /// @notice The job closed with `worker`'s lane unsettled: its stake is back (`slashed` false: it had committed)
    /// or taken (it had not).
    event LaneReleased(uint256 indexed startTaskId, address indexed worker, bool slashed);
    /// @notice The chunk of `count` tasks from `startTaskId` did not get all its lanes within the claim grace of its
    /// first one: its lanes left it with their stakes unlocked (nothing slashed) and its tasks are free again, for
    /// per-task claims or another chunk.
    event LanesDissolved(uint256 indexed startTaskId, uint256 count);
    /// @notice A spot check picked credible lease `startTaskId` of `worker` ({checkLease}): its `count` tasks are now a
    /// check chunk of two lanes, `worker`'s committed lane 0 and a check lane any other worker may claim.
    event LeaseChecked(uint256 indexed startTaskId, address indexed worker, uint256 count);

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

    // ---------------------------------------------------------------------------------------------
    // Lanes: replicated ranges of fixed-R jobs (PROTOCOL.md, "Lanes")
    // ---------------------------------------------------------------------------------------------

    /// @notice Leases one lane of the chunk of `count` tasks from `startTaskId` (the first lane creates the chunk and
    /// takes its tasks; the others name the same start and count), locking `count` replica stakes.
    /// @param startTaskId the chunk's first task
    /// @param count the chunk's tasks, 1 .. 32
    function claimLane(uint256 startTaskId, uint256 count) external;

    /// @notice Commits the caller's lane: `root` = keccak256(abi.encodePacked(c_0, .., c_{count-1})), c_i the
    /// per-task commitment keccak256(abi.encode(startTaskId + i, digest_i, salt_i, worker)).
    /// @param startTaskId the chunk's first task
    /// @param count the chunk's tasks
    /// @param root the lane's root
    function commitLane(uint256 startTaskId, uint256 count, bytes32 root) external;

    /// @notice Reveals the caller's committed lane, once every lane committed or the commit window passed. The
    /// reveal that completes a set of equal lists finalizes the chunk's tasks at once.
    /// @param startTaskId the chunk's first task
    /// @param resultDigests one per task of the chunk (their number is the chunk's count)
    /// @param salts the per-task salts of the commitments
    /// @param resultCIDs one per task
    function revealLane(
        uint256 startTaskId,
        bytes32[] calldata resultDigests,
        bytes32[] calldata salts,
        string[] calldata resultCIDs
    ) external;

    /// @notice Splits a chunk whose lanes disagree (all revealed) or whose reveal window passed into per-task rounds,
    /// settled at once by strict majority; anyone may call it.
    /// @param startTaskId the chunk's first task
    /// @param count the chunk's tasks
    /// @param lists every revealed lane's digests, in lane order
    function splitLanes(uint256 startTaskId, uint256 count, bytes32[][] calldata lists) external;

    /// @notice Frees the chunk's lanes that passed their expiry without a commit, slashing `count` replica stakes
    /// each; anyone may call it.
    /// @param startTaskId the chunk's first task
    /// @param count the chunk's tasks
    function reopenLanes(uint256 startTaskId, uint256 count) external;

    /// @notice Releases the lanes of a chunk left unsettled when its job closed: committed lanes get their stake
    /// back, the others are slashed; anyone may call it.
    /// @param startTaskId the chunk's first task
    /// @param count the chunk's tasks
    function releaseLanes(uint256 startTaskId, uint256 count) external;

    /// @notice Dissolves a chunk that did not get all its lanes within the claim grace of its first one (and none of
    /// whose lanes revealed): its lanes' stakes are unlocked, nothing is slashed, and its tasks return to the free
    /// pool for per-task claims (workers that do not lease lanes) or another chunk; anyone may call it.
    /// @param startTaskId the chunk's first task
    /// @param count the chunk's tasks
    function dissolveLanes(uint256 startTaskId, uint256 count) external;

    /// @notice Turns a committed credible lease that its spot check picked (the hash of its commit block, as for a
    /// task: PROTOCOL.md, "Check lanes") into a check chunk: the lease's commitment becomes lane 0's, and a second
    /// lane, the check, is open to any other worker ({claimLane}, {commitLane}); both then reveal ({revealLane}).
    /// Equal lists that are credible together settle the chunk; otherwise it splits into per-task rounds. Its holder's
    /// {IMarketplace-revealRange} is refused for such a lease; anyone may call this, with the lease's commitment as
    /// its {IMarketplace-RangeCommitted} event gives it.
    /// @param startTaskId the lease's first task
    /// @param root the lease's committed root
    /// @param commitBlock the block of the lease's commit
    function checkLease(uint256 startTaskId, bytes32 root, uint256 commitBlock) external;

    /// @notice The key of the chunk (`startTaskId`, `count`) in {IMarketplace-getTask} (its round: lanes wanted,
    /// occupied, committed and revealed masks, windows) and {IMarketplace-getReplica} (each lane).
    /// @return the chunk's key: 2^255 | count << 64 | startTaskId
    function laneKey(uint256 startTaskId, uint256 count) external pure returns (uint256);
}
