// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IMarketplace, ITaskCallback} from "../IMarketplace.sol";
import {IMarketplaceRegistry} from "../IMarketplaceRegistry.sol";

/// @title TasknetClient
/// @notice Base contract for a Dapp that buys computations on the Tasknet marketplace. The Dapp is the requester:
/// it posts jobs from its own marketplace balance ({_postJob}; fund it with {_depositToMarketplace}, take money
/// back with {_withdrawFromMarketplace}), names itself as each job's callback, and maps each job it posted to one
/// of its own request ids. The marketplace's three callbacks arrive here; they are accepted only from the
/// marketplace and only for jobs this contract posted, and become two hooks to implement:
/// {_onResult} (a task finished) and {_onFailure} (tasks ended without a result: failed, cancelled or refunded
/// after the deadline). Every escrow a failure frees is already back in this contract's marketplace balance when
/// {_onFailure} runs.
///
/// A hook that reverts or needs more gas than the callback allows does not lose its outcome: the hooks run in an
/// inner call that keeps {HOOK_RESERVE} gas back; when it fails, the outcome is recorded ({TasknetHookFailed},
/// {isStalled}) and anyone may replay it later with as much gas as it needs ({retryResult}, {retryFailure}). An
/// outcome is replayed at most once and only if the marketplace delivered it.
///
/// Example:
/// ```solidity
/// contract Renderer is TasknetClient {
///     constructor(IMarketplace m) TasknetClient(m) {}
///     function render(string calldata inputsCID) external returns (uint256 jobId) {
///         IMarketplace.JobParams memory p;   // appId, numTasks 1, replication, reward, deadline, maxRunSeconds...
///         p.inputsCID = inputsCID;
///         (jobId,) = _postJob(++lastRequest, p);
///     }
///     function _onResult(uint256 requestId, uint256, bytes32 digest, bytes calldata) internal override {...}
///     function _onFailure(uint256 requestId, uint256, uint256, FailureReason) internal override {...}
/// }
/// ```
/// @dev The hooks run in a call of this contract to itself ({runResultHook}, {runFailureHook}): inside them
/// `msg.sender` is this contract. With the marketplace's default `callbackGas` (200,000), a hook gets about
/// 150,000 gas. The marketplace calls back while its reentrancy guard is held: a hook cannot call the marketplace
/// (no deposit, withdraw or post from a hook); do that later, e.g. when the user claims.
abstract contract TasknetClient is ITaskCallback {
    using SafeERC20 for IERC20;

    /// @notice Gas kept back from a hook's inner call to record its failure (one storage slot and one event).
    uint256 public constant HOOK_RESERVE = 40_000;

    uint8 private constant _DEPRECATED = 2; // IMarketplaceRegistry App/Dataset flag

    IMarketplace private immutable _marketplace;
    IMarketplaceRegistry private immutable _registry;
    IERC20 private immutable _token;

    mapping(uint256 jobId => uint256 requestId) private _requestOfJob;
    mapping(bytes32 outcome => bool) private _stalled;

    /// @notice Only the marketplace `marketplace` may call the callbacks; `caller` tried.
    error TasknetClientNotMarketplace(address caller, address marketplace);
    /// @notice Only this contract may call its hook runners; `caller` tried.
    error TasknetClientNotSelf(address caller);
    /// @notice Job `jobId` was not posted by this contract (anyone may name any contract as a job's callback).
    error TasknetClientUnknownJob(uint256 jobId);
    /// @notice Request ids start at 1 (0 marks a job this contract did not post).
    error TasknetClientZeroRequestId();
    /// @notice The contract can spend `available` of its marketplace balance; the job needs `needed`.
    error TasknetClientInsufficientBalance(uint256 available, uint256 needed);
    /// @notice App `appId` is deprecated: the marketplace accepts no new job for it.
    error TasknetClientAppDeprecated(uint256 appId);
    /// @notice Dataset `datasetId` is deprecated: the marketplace accepts no new job using it.
    error TasknetClientDatasetDeprecated(uint256 datasetId);
    /// @notice No delivered outcome with hash `outcome` is waiting for a replay (never delivered, or replayed).
    error TasknetClientNothingToRetry(bytes32 outcome);

    /// @notice Request `requestId` posted job `jobId` of `numTasks` tasks, locking `escrow` of this contract's
    /// marketplace balance.
    event TasknetJobPosted(uint256 indexed requestId, uint256 indexed jobId, uint256 numTasks, uint256 escrow);
    /// @notice The hook for tasks `firstTaskId .. firstTaskId + count - 1` of request `requestId` reverted or ran
    /// out of gas; the outcome (hash `outcome`) waits for {retryResult} or {retryFailure}.
    event TasknetHookFailed(uint256 indexed requestId, uint256 indexed firstTaskId, uint256 count, bytes32 outcome);
    /// @notice The stalled outcome `outcome` of request `requestId` was replayed successfully.
    event TasknetHookRetried(uint256 indexed requestId, bytes32 indexed outcome);

    /// @dev Accepts a call only from the marketplace.
    modifier onlyMarketplace() {
        if (msg.sender != address(_marketplace)) revert TasknetClientNotMarketplace(msg.sender, address(_marketplace));
        _;
    }

    /// @dev Accepts a call only from this contract itself (the hook runners).
    modifier onlySelf() {
        if (msg.sender != address(this)) revert TasknetClientNotSelf(msg.sender);
        _;
    }

    /// @notice Binds the client to `marketplace_` (its registry and payment token are read from it once).
    constructor(IMarketplace marketplace_) {
        _marketplace = marketplace_;
        _registry = IMarketplaceRegistry(marketplace_.registry());
        _token = IERC20(marketplace_.token());
    }

    // =============================================================================================
    // Callbacks (marketplace only)
    // =============================================================================================

    /// @inheritdoc ITaskCallback
    function onTaskResult(uint256 taskId, bytes32 resultDigest, bytes calldata callbackData)
        external
        onlyMarketplace
    {
        uint256 requestId = _knownRequest(taskId >> 32);
        try this.runResultHook{gas: _hookGas()}(requestId, taskId, resultDigest, callbackData) {}
        catch {
            bytes32 outcome = resultOutcome(taskId, resultDigest, callbackData);
            _stalled[outcome] = true;
            emit TasknetHookFailed(requestId, taskId, 1, outcome);
        }
    }

    /// @inheritdoc ITaskCallback
    function onTaskFailed(uint256 taskId, FailureReason reason) external onlyMarketplace {
        _deliverFailure(_knownRequest(taskId >> 32), taskId, 1, reason);
    }

    /// @inheritdoc ITaskCallback
    function onTasksEnded(uint256 jobId, uint256 firstIndex, uint256 count, FailureReason reason)
        external
        onlyMarketplace
    {
        _deliverFailure(_knownRequest(jobId), (jobId << 32) | firstIndex, count, reason);
    }

    // =============================================================================================
    // Replays of stalled outcomes (anyone)
    // =============================================================================================

    /// @notice Runs {_onResult} again for a result whose hook failed when the marketplace delivered it, with the
    /// gas of this transaction. `resultDigest` and `callbackData` must be those delivered (the `ResultSubmitted` /
    /// `TaskFinalized` event and the worker's transaction hold them).
    /// Requirements: the outcome is stalled ({isStalled}). Emits a {TasknetHookRetried} event.
    function retryResult(uint256 taskId, bytes32 resultDigest, bytes calldata callbackData) external {
        bytes32 outcome = resultOutcome(taskId, resultDigest, callbackData);
        _takeStalled(outcome);
        uint256 requestId = _knownRequest(taskId >> 32);
        _onResult(requestId, taskId, resultDigest, callbackData);
        emit TasknetHookRetried(requestId, outcome);
    }

    /// @notice Runs {_onFailure} again for a failure notice whose hook failed when the marketplace delivered it.
    /// Requirements: the outcome is stalled ({isStalled}). Emits a {TasknetHookRetried} event.
    function retryFailure(uint256 firstTaskId, uint256 count, FailureReason reason) external {
        bytes32 outcome = failureOutcome(firstTaskId, count, reason);
        _takeStalled(outcome);
        uint256 requestId = _knownRequest(firstTaskId >> 32);
        _onFailure(requestId, firstTaskId, count, reason);
        emit TasknetHookRetried(requestId, outcome);
    }

    // =============================================================================================
    // Hook runners (this contract only)
    // =============================================================================================

    /// @notice Runs {_onResult} in an inner call so that its failure can be caught and recorded. Only this
    /// contract may call it.
    function runResultHook(uint256 requestId, uint256 taskId, bytes32 resultDigest, bytes calldata callbackData)
        external
        onlySelf
    {
        _onResult(requestId, taskId, resultDigest, callbackData);
    }

    /// @notice Runs {_onFailure} in an inner call so that its failure can be caught and recorded. Only this
    /// contract may call it.
    function runFailureHook(uint256 requestId, uint256 firstTaskId, uint256 count, FailureReason reason)
        external
        onlySelf
    {
        _onFailure(requestId, firstTaskId, count, reason);
    }

    // =============================================================================================
    // Views
    // =============================================================================================

    /// @notice The marketplace this client buys from.
    function marketplace() public view returns (IMarketplace) {
        return _marketplace;
    }

    /// @notice The request id of task `taskId` (its job's). Reverts with {TasknetClientUnknownJob} for a job this
    /// contract did not post.
    function requestOf(uint256 taskId) public view returns (uint256) {
        return _knownRequest(taskId >> 32);
    }

    /// @notice Whether the outcome with hash `outcome` was delivered, its hook failed, and it was not replayed yet.
    function isStalled(bytes32 outcome) public view returns (bool) {
        return _stalled[outcome];
    }

    /// @notice The hash identifying a delivered result ({retryResult}).
    function resultOutcome(uint256 taskId, bytes32 resultDigest, bytes calldata callbackData)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(uint8(0), taskId, resultDigest, keccak256(callbackData)));
    }

    /// @notice The hash identifying a delivered failure notice ({retryFailure}).
    function failureOutcome(uint256 firstTaskId, uint256 count, FailureReason reason) public pure returns (bytes32) {
        return keccak256(abi.encode(uint8(1), firstTaskId, count, reason));
    }

    // =============================================================================================
    // For the Dapp
    // =============================================================================================

    /// @dev Posts `p` as request `requestId` from this contract's marketplace balance, with this contract as the
    /// callback (whatever `p.callback` says); returns the job id (its tasks are `(jobId << 32) | index`) and the
    /// escrow it locked. Requirements: `requestId` != 0; the app (and dataset) not deprecated; {_spendable} covers
    /// the escrow ({_jobCost}). The marketplace's own checks still apply (access lists, deadline, replication...).
    /// Emits {TasknetJobPosted} (and the marketplace's {IMarketplace-JobPosted}).
    function _postJob(uint256 requestId, IMarketplace.JobParams memory p)
        internal
        returns (uint256 jobId, uint256 escrow)
    {
        if (requestId == 0) revert TasknetClientZeroRequestId();
        p.callback = address(this);
        escrow = _jobCost(p);
        uint256 available = _spendable();
        if (available < escrow) revert TasknetClientInsufficientBalance(available, escrow);
        jobId = _marketplace.postJob(p);
        _requestOfJob[jobId] = requestId;
        emit TasknetJobPosted(requestId, jobId, p.numTasks, escrow);
    }

    /// @dev The escrow posting `p` locks now: numTasks * (replication * reward + app price + dataset price).
    /// Reverts with {TasknetClientAppDeprecated} / {TasknetClientDatasetDeprecated}, or the registry's error
    /// for an unknown app or dataset or one that does not admit this contract.
    function _jobCost(IMarketplace.JobParams memory p) internal view returns (uint256) {
        if (_registry.getApp(p.appId).flags & _DEPRECATED != 0) revert TasknetClientAppDeprecated(p.appId);
        if (p.datasetId != 0 && _registry.getDataset(p.datasetId).flags & _DEPRECATED != 0) {
            revert TasknetClientDatasetDeprecated(p.datasetId);
        }
        (uint88 appPrice, uint88 datasetPrice) = _registry.checkJob(p.appId, p.datasetId, address(this));
        return uint256(p.numTasks) * (uint256(p.replication) * p.reward + appPrice + datasetPrice);
    }

    /// @dev What {_postJob} may spend: the contract's whole marketplace balance. Override it to keep part of the
    /// balance aside (e.g. refunds owed to users).
    function _spendable() internal view virtual returns (uint256) {
        return _marketplace.balanceOf(address(this));
    }

    /// @dev Moves `amount` of this contract's own tokens into its marketplace balance (approve + deposit).
    /// Emits the marketplace's {IMarketplace-Deposited}.
    function _depositToMarketplace(uint256 amount) internal {
        _token.forceApprove(address(_marketplace), amount);
        _marketplace.deposit(amount);
    }

    /// @dev Moves `amount` of this contract's marketplace balance back to its own token balance.
    /// Emits the marketplace's {IMarketplace-Withdrawn}.
    function _withdrawFromMarketplace(uint256 amount) internal {
        _marketplace.withdraw(amount);
    }

    /// @dev Cancels never-claimed tasks `first .. first + count - 1` of job `jobId` (posted by this contract). The
    /// marketplace refunds them and calls {onTasksEnded} during this call: {_onFailure} runs before it returns.
    function _cancelTasks(uint256 jobId, uint256 first, uint256 count) internal {
        _marketplace.cancelTasks(jobId, first, count);
    }

    /// @dev The payment token (the marketplace's).
    function _paymentToken() internal view returns (IERC20) {
        return _token;
    }

    /// @dev Task `taskId` of request `requestId` finished with `resultDigest` (the sha256 of the result archive, or
    /// of the app's declared deterministic file; the archive's CID is in the marketplace's `ResultSubmitted` /
    /// `ResultRevealed` events) and the worker's small `callbackData`. A confirmed failure (R = 1) arrives here
    /// too, with the digest of the failure archive.
    function _onResult(uint256 requestId, uint256 taskId, bytes32 resultDigest, bytes calldata callbackData)
        internal
        virtual;

    /// @dev Tasks `firstTaskId .. firstTaskId + count - 1` of request `requestId` ended without a result for
    /// `reason`; their escrow is back in this contract's marketplace balance. `count` is 1 for a failed task
    /// (`NoConsensus`, `FailureReports`); a cancel names its range; `Expired` names the whole job and concerns the
    /// tasks of it that had no outcome yet.
    function _onFailure(uint256 requestId, uint256 firstTaskId, uint256 count, FailureReason reason)
        internal
        virtual;

    // =============================================================================================
    // Private
    // =============================================================================================

    function _deliverFailure(uint256 requestId, uint256 firstTaskId, uint256 count, FailureReason reason) private {
        try this.runFailureHook{gas: _hookGas()}(requestId, firstTaskId, count, reason) {}
        catch {
            bytes32 outcome = failureOutcome(firstTaskId, count, reason);
            _stalled[outcome] = true;
            emit TasknetHookFailed(requestId, firstTaskId, count, outcome);
        }
    }

    function _takeStalled(bytes32 outcome) private {
        if (!_stalled[outcome]) revert TasknetClientNothingToRetry(outcome);
        delete _stalled[outcome];
    }

    function _knownRequest(uint256 jobId) private view returns (uint256 requestId) {
        requestId = _requestOfJob[jobId];
        if (requestId == 0) revert TasknetClientUnknownJob(jobId);
    }

    /// @dev All the gas left but {HOOK_RESERVE} (0 if there is not even that: the outcome is then recorded).
    function _hookGas() private view returns (uint256) {
        uint256 left = gasleft();
        return left > HOOK_RESERVE ? left - HOOK_RESERVE : 0;
    }
}
