// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;
// solhint-disable use-natspec
// (test helpers of the reliability suite, not an API: NatSpec is not required here)

import {IMarketplace, ITaskCallback} from "../IMarketplace.sol";

/// @notice Test helper: a callback that always reverts (with a large revert payload).
contract RevertingCallback is ITaskCallback {
    error RevertingCallbackAlways(uint256 taskId);

    function onTaskResult(uint256 taskId, bytes32, bytes calldata) external pure {
        revert RevertingCallbackAlways(taskId);
    }

    function onTaskFailed(uint256 taskId, FailureReason) external pure {
        revert RevertingCallbackAlways(taskId);
    }

    function onTasksEnded(uint256 jobId, uint256 firstIndex, uint256, FailureReason) external pure {
        revert RevertingCallbackAlways((jobId << 32) | firstIndex);
    }
}

/// @notice Test helper: a callback that burns all the gas it is given.
contract GasBurningCallback is ITaskCallback {
    uint256 public counter;

    function onTaskResult(uint256, bytes32, bytes calldata) external {
        _burn();
    }

    function onTaskFailed(uint256, FailureReason) external {
        _burn();
    }

    function onTasksEnded(uint256, uint256, uint256, FailureReason) external {
        _burn();
    }

    function _burn() private {
        while (true) {
            ++counter;
        }
    }
}

/// @notice Test helper: a callback that returns a huge return-data buffer (a "return bomb").
contract ReturnBombCallback is ITaskCallback {
    function onTaskResult(uint256, bytes32, bytes calldata) external pure {
        _bomb();
    }

    function onTaskFailed(uint256, FailureReason) external pure {
        _bomb();
    }

    function onTasksEnded(uint256, uint256, uint256, FailureReason) external pure {
        _bomb();
    }

    function _bomb() private pure {
        assembly {
            return(0, 1000000)
        }
    }
}

/// @notice Test helper: a callback that tries to re-enter the marketplace (finalize, closeJob) from inside the
/// callback; the reentrancy guard makes the callback fail, which the delivering transaction records and survives.
contract ReenteringCallback is ITaskCallback {
    IMarketplace public immutable market;
    bool public reentered;

    constructor(IMarketplace market_) {
        market = market_;
    }

    function onTaskResult(uint256 taskId, bytes32, bytes calldata) external {
        market.finalize(taskId);
        reentered = true; // never reached: the guard reverts the call above
    }

    function onTaskFailed(uint256 taskId, FailureReason) external {
        market.finalize(taskId);
        reentered = true; // never reached
    }

    function onTasksEnded(uint256 jobId, uint256, uint256, FailureReason) external {
        market.closeJob(jobId);
        reentered = true; // never reached
    }
}
