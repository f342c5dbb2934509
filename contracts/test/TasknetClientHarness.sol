// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;
// solhint-disable use-natspec
// (a test helper of tests/contracts/test_client.py, not an API: NatSpec is not required here)

import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IMarketplace} from "../IMarketplace.sol";
import {TasknetClient} from "../client/TasknetClient.sol";

/// @notice Test helper: a bare {TasknetClient} whose hooks record what they get (events), or revert, or burn all
/// their gas, as set by {setMode}; its deposit, withdraw, post and cancel are open to anyone.
contract TasknetClientHarness is TasknetClient {
    using SafeERC20 for *;

    enum Mode {
        Record,
        Revert,
        BurnGas
    }

    Mode public mode;
    uint256 public burnt;

    error TasknetClientHarnessHookReverted(uint256 requestId);

    event ResultHook(uint256 indexed requestId, uint256 taskId, bytes32 resultDigest, bytes callbackData);
    event FailureHook(uint256 indexed requestId, uint256 firstTaskId, uint256 count, FailureReason reason);

    constructor(IMarketplace marketplace_) TasknetClient(marketplace_) {}

    function setMode(Mode mode_) external {
        mode = mode_;
    }

    function deposit(uint256 amount) external {
        _paymentToken().safeTransferFrom(msg.sender, address(this), amount);
        _depositToMarketplace(amount);
    }

    function withdraw(uint256 amount) external {
        _withdrawFromMarketplace(amount);
        _paymentToken().safeTransfer(msg.sender, amount);
    }

    function post(uint256 requestId, IMarketplace.JobParams memory p) external returns (uint256 jobId) {
        (jobId,) = _postJob(requestId, p);
    }

    function cancel(uint256 jobId, uint256 first, uint256 count) external {
        _cancelTasks(jobId, first, count);
    }

    function _onResult(uint256 requestId, uint256 taskId, bytes32 resultDigest, bytes calldata callbackData)
        internal
        override
    {
        _misbehave(requestId);
        emit ResultHook(requestId, taskId, resultDigest, callbackData);
    }

    function _onFailure(uint256 requestId, uint256 firstTaskId, uint256 count, FailureReason reason)
        internal
        override
    {
        _misbehave(requestId);
        emit FailureHook(requestId, firstTaskId, count, reason);
    }

    function _misbehave(uint256 requestId) private {
        if (mode == Mode.Revert) revert TasknetClientHarnessHookReverted(requestId);
        if (mode == Mode.BurnGas) {
            while (true) {
                ++burnt;
            }
        }
    }
}
