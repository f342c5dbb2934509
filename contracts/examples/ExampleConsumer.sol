// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ITaskCallback} from "../IMarketplace.sol";

/// @title ExampleConsumer
/// @notice A requester's contract that receives task results from the marketplace (the "bridge to the
/// requester's own contract"): it records each task's result digest and callback data.
/// @dev Set it as a job's `callback`. Keep `onTaskResult` well under the marketplace's `callbackGas`.
contract ExampleConsumer is ITaskCallback {
    /// @notice The marketplace allowed to deliver results.
    address public immutable marketplace;

    /// @notice Result digest of each delivered task (0 if none yet).
    mapping(uint256 taskId => bytes32) public digestOf;
    /// @notice Callback data of each delivered task.
    mapping(uint256 taskId => bytes) public dataOf;
    /// @notice Number of results delivered.
    uint256 public delivered;

    /// @notice Only the marketplace may deliver results.
    error ExampleConsumerNotMarketplace(address caller);

    /// @notice A task's result arrived.
    event ResultReceived(uint256 indexed taskId, bytes32 resultDigest, bytes callbackData);

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
}
