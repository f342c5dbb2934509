// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ITaskCallback} from "../IMarketplace.sol";

/// @title ExampleConsumer
/// @notice A requester's contract that receives task outcomes from the marketplace (the "bridge to the
/// requester's own contract"): it records each task's result digest and callback data, and counts the tasks that
/// ended without a result. For a full Dapp base (posting from its own balance, request ids, checks) see
/// contracts/client/TasknetClient.sol.
/// @dev Set it as a job's `callback`. Keep each hook well under the marketplace's `callbackGas`.
contract ExampleConsumer is ITaskCallback {
    /// @notice The marketplace allowed to deliver results.
    address public immutable marketplace;

    /// @notice Result digest of each delivered task (0 if none yet).
    mapping(uint256 taskId => bytes32) public digestOf;
    /// @notice Callback data of each delivered task.
    mapping(uint256 taskId => bytes) public dataOf;
    /// @notice Number of results delivered.
    uint256 public delivered;
    /// @notice Number of tasks reported failed one by one ({onTaskFailed}).
    uint256 public failed;
    /// @notice Number of range notices ({onTasksEnded}) received.
    uint256 public ranges;

    /// @notice Only the marketplace may deliver results.
    error ExampleConsumerNotMarketplace(address caller);

    /// @notice A task's result arrived.
    event ResultReceived(uint256 indexed taskId, bytes32 resultDigest, bytes callbackData);
    /// @notice A task failed, or (count > 1 or a range notice) a range of tasks ended without a result.
    event FailureReceived(uint256 indexed jobId, uint256 firstIndex, uint256 count, FailureReason reason);

    /// @notice Accept results from `marketplace_` only.
    constructor(address marketplace_) {
        marketplace = marketplace_;
    }

    /// @inheritdoc ITaskCallback
    function onTaskResult(uint256 taskId, bytes32 resultDigest, bytes calldata callbackData) external {
        if (msg.sender != marketplace) revert ExampleConsumerNotMarketplace(msg.sender);
        digestOf[taskId] = resultDigest;
        dataOf[taskId] = callbackData;
        ++delivered;
        emit ResultReceived(taskId, resultDigest, callbackData);
    }

    /// @inheritdoc ITaskCallback
    function onTaskFailed(uint256 taskId, FailureReason reason) external {
        if (msg.sender != marketplace) revert ExampleConsumerNotMarketplace(msg.sender);
        ++failed;
        emit FailureReceived(taskId >> 32, taskId & type(uint32).max, 1, reason);
    }

    /// @inheritdoc ITaskCallback
    function onTasksEnded(uint256 jobId, uint256 firstIndex, uint256 count, FailureReason reason) external {
        if (msg.sender != marketplace) revert ExampleConsumerNotMarketplace(msg.sender);
        ++ranges;
        emit FailureReceived(jobId, firstIndex, count, reason);
    }
}
