// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {IMarketplace} from "../IMarketplace.sol";
import {TasknetClient} from "../client/TasknetClient.sol";

/// @title FileHasher
/// @notice An example Dapp on {TasknetClient}: an end user pays `price` tokens to have a file on IPFS hashed by a
/// Tasknet app (examples/dapp/app: `sha256sum`, size and line count of `/in/file`); the contract posts the task
/// from its own marketplace balance, stores the result digest when the marketplace delivers it, and lets the user
/// take the price back when the task ends without a result (failed, cancelled, or not done by the deadline).
/// The page in examples/dapp/ drives it from a browser.
///
/// Money: user payments are deposited into the contract's marketplace balance and each request's escrow is taken
/// from it, so the operator may charge more than the escrow (the difference is its earnings) or less (it then
/// sponsors the difference from a balance funded with {fund}). What a failed request must give back is never
/// spendable: `reserved` = for each pending request the part of its price its escrow does not cover, plus the price
/// of each request waiting for its refund. Hence `balance >= reserved` always, and every refund is payable.
contract FileHasher is TasknetClient, Ownable {
    using SafeERC20 for IERC20;

    /// @notice Life of a request.
    enum Status {
        None,
        Pending, // posted, no outcome yet
        Done, // the marketplace delivered the result digest
        Refundable, // ended without a result: the user may claim its price back
        Refunded
    }

    /// @notice What every request posts (set by the owner). One slot:
    /// appId(32) | replication(8) | reward(96) | maxRunSeconds(32) | ttl(32) (seconds from request to deadline).
    struct Settings {
        uint32 appId;
        uint8 replication;
        uint96 reward;
        uint32 maxRunSeconds;
        uint32 ttl;
    }

    /// @notice A request. Three slots: user(160) | status(8) | jobId(64); paid(96) | escrow(96); digest.
    struct Request {
        address user;
        Status status;
        uint64 jobId;
        uint96 paid; // what the user paid (and gets back if the task ends without a result)
        uint96 escrow; // what the job locked in the marketplace
        bytes32 digest; // the result digest, once Done
    }

    Settings private _settings;
    uint96 private _price;
    uint256 private _requestCount;
    uint256 private _reserved;
    mapping(uint256 requestId => Request) private _requests;

    /// @notice A request needs the CID of its inputs document.
    error FileHasherEmptyInputs();
    /// @notice No request `requestId`.
    error FileHasherUnknownRequest(uint256 requestId);
    /// @notice Only `user`, who made request `requestId`, may do this; `caller` tried.
    error FileHasherNotRequester(uint256 requestId, address caller, address user);
    /// @notice Request `requestId` is `status`: no refund to claim (it must have ended without a result).
    error FileHasherNotRefundable(uint256 requestId, Status status);
    /// @notice Request `requestId` is `status`, not pending.
    error FileHasherNotPending(uint256 requestId, Status status);
    /// @notice The owner may withdraw `available` (what no refund may need); `amount` was asked.
    error FileHasherInsufficientEarnings(uint256 available, uint256 amount);

    /// @notice `user` paid `paid` for request `requestId`: task `taskId` hashes the file its `inputsCID` names.
    event HashRequested(
        uint256 indexed requestId, address indexed user, uint256 indexed taskId, string inputsCID, uint256 paid
    );
    /// @notice Request `requestId`'s task `taskId` finished: `resultDigest` is the sha256 of its result archive.
    event HashComputed(uint256 indexed requestId, uint256 indexed taskId, bytes32 resultDigest);
    /// @notice Request `requestId` ended without a result for `reason`: its user may claim a refund.
    event HashFailed(uint256 indexed requestId, FailureReason reason);
    /// @notice `user` took back `amount`, the price of request `requestId`.
    event RefundClaimed(uint256 indexed requestId, address indexed user, uint256 amount);
    /// @notice The owner changed what requests post and cost.
    event SettingsUpdated(Settings settings, uint256 price);
    /// @notice `from` added `amount` to the contract's marketplace balance.
    event Funded(address indexed from, uint256 amount);
    /// @notice The owner withdrew `amount` of earnings to `to`.
    event EarningsWithdrawn(address indexed to, uint256 amount);

    /// @notice A hasher buying from `marketplace_`, posting `settings_` for each request and charging `price_`.
    constructor(IMarketplace marketplace_, Settings memory settings_, uint96 price_)
        TasknetClient(marketplace_)
        Ownable(msg.sender)
    {
        _settings = settings_;
        _price = price_;
        emit SettingsUpdated(settings_, price_);
    }

    // =============================================================================================
    // Users
    // =============================================================================================

    /// @notice Pays `price` (approve it first) and posts one task hashing what the inputs document `inputsCID`
    /// names (e.g. `{"count": 1, "template": {"args": []}, "common_inputs": [{"uri": "ipfs://<file CID>",
    /// "path": "file"}]}`). Returns the request id.
    /// Requirements: a non-empty CID; the app not deprecated; the contract's spendable balance plus the price covers
    /// the escrow. Emits {HashRequested} (and {TasknetJobPosted}).
    function request(string calldata inputsCID) external returns (uint256 requestId) {
        if (bytes(inputsCID).length == 0) revert FileHasherEmptyInputs();
        uint96 paid = _price;
        requestId = ++_requestCount;
        if (paid != 0) {
            _paymentToken().safeTransferFrom(msg.sender, address(this), paid);
            _depositToMarketplace(paid);
        }
        Settings memory s = _settings;
        IMarketplace.JobParams memory p;
        p.appId = s.appId;
        p.numTasks = 1;
        p.replication = s.replication;
        p.reward = s.reward;
        p.deadline = uint32(block.timestamp + s.ttl);
        p.maxRunSeconds = s.maxRunSeconds;
        p.cores = 1;
        p.inputsCID = inputsCID;
        (uint256 jobId, uint256 escrow) = _postJob(requestId, p);
        _reserved += _margin(paid, escrow);
        // escrow <= the contract's balance < 2^96 (the token's supply fits, as the marketplace's stake fields do)
        _requests[requestId] = Request({
            user: msg.sender,
            status: Status.Pending,
            jobId: uint64(jobId),
            paid: paid,
            escrow: uint96(escrow),
            digest: bytes32(0)
        });
        emit HashRequested(requestId, msg.sender, jobId << 32, inputsCID, paid);
    }

    /// @notice Cancels the caller's pending request while no worker has claimed its task; the refund is then
    /// claimable at once ({claimRefund}).
    /// Requirements: the caller's request, pending, not claimed (else the marketplace's MarketplaceTaskTaken).
    function cancel(uint256 requestId) external {
        Request storage r = _own(requestId);
        if (r.status != Status.Pending) revert FileHasherNotPending(requestId, r.status);
        _cancelTasks(r.jobId, 0, 1); // the marketplace calls {onTasksEnded} back before this returns
    }

    /// @notice Sends the caller the price of its request that ended without a result. A request still pending past
    /// its job's deadline is expired first (the marketplace closes the job and refunds it), in the same call.
    /// Requirements: the caller's request; ended without a result (or past its deadline), not refunded yet.
    /// Emits a {RefundClaimed} event.
    function claimRefund(uint256 requestId) external {
        Request storage r = _own(requestId);
        if (r.status == Status.Pending) marketplace().closeJob(r.jobId); // reverts before the deadline, naming it
        if (r.status != Status.Refundable) revert FileHasherNotRefundable(requestId, r.status);
        uint256 amount = r.paid;
        r.status = Status.Refunded;
        _reserved -= amount;
        if (amount != 0) {
            _withdrawFromMarketplace(amount);
            _paymentToken().safeTransfer(msg.sender, amount);
        }
        emit RefundClaimed(requestId, msg.sender, amount);
    }

    /// @notice Adds `amount` of the caller's tokens (approve them first) to the contract's marketplace balance, to
    /// sponsor requests priced below their escrow. Emits a {Funded} event.
    function fund(uint256 amount) external {
        _paymentToken().safeTransferFrom(msg.sender, address(this), amount);
        _depositToMarketplace(amount);
        emit Funded(msg.sender, amount);
    }

    // =============================================================================================
    // Owner
    // =============================================================================================

    /// @notice Owner only: what new requests post and cost. Emits a {SettingsUpdated} event.
    function setSettings(Settings calldata settings_, uint96 price_) external onlyOwner {
        _settings = settings_;
        _price = price_;
        emit SettingsUpdated(settings_, price_);
    }

    /// @notice Owner only: sends `amount` of the earnings (the balance no refund may need) to `to`.
    /// Emits an {EarningsWithdrawn} event.
    function withdrawEarnings(address to, uint256 amount) external onlyOwner {
        uint256 available = _spendable();
        if (amount > available) revert FileHasherInsufficientEarnings(available, amount);
        _withdrawFromMarketplace(amount);
        _paymentToken().safeTransfer(to, amount);
        emit EarningsWithdrawn(to, amount);
    }

    // =============================================================================================
    // Views
    // =============================================================================================

    /// @notice Request `requestId` (status None when it does not exist).
    function getRequest(uint256 requestId) external view returns (Request memory) {
        return _requests[requestId];
    }

    /// @notice Number of requests made (ids are 1 .. requestCount).
    function requestCount() external view returns (uint256) {
        return _requestCount;
    }

    /// @notice What each request posts.
    function settings() external view returns (Settings memory) {
        return _settings;
    }

    /// @notice What a request costs its user.
    function price() external view returns (uint256) {
        return _price;
    }

    /// @notice The escrow a request would lock now (replication * reward + the app's price).
    function quote() external view returns (uint256) {
        IMarketplace.JobParams memory p;
        p.appId = _settings.appId;
        p.numTasks = 1;
        p.replication = _settings.replication;
        p.reward = _settings.reward;
        return _jobCost(p);
    }

    /// @notice What refunds may still need: the part of the contract's marketplace balance it cannot spend.
    function reserved() external view returns (uint256) {
        return _reserved;
    }

    /// @notice The marketplace balance new requests and the owner's earnings may use.
    function spendable() external view returns (uint256) {
        return _spendable();
    }

    // =============================================================================================
    // Hooks and internals
    // =============================================================================================

    /// @notice Stores the digest of a pending request's result; its margin becomes earnings.
    /// @dev See {TasknetClient-_onResult}.
    function _onResult(uint256 requestId, uint256 taskId, bytes32 resultDigest, bytes calldata)
        internal
        override
    {
        Request storage r = _requests[requestId];
        if (r.status != Status.Pending) return;
        r.status = Status.Done;
        r.digest = resultDigest;
        _reserved -= _margin(r.paid, r.escrow); // the margin is earnings now
        emit HashComputed(requestId, taskId, resultDigest);
    }

    /// @notice Makes a pending request refundable (its escrow is back: the whole price is reserved for the user).
    /// @dev See {TasknetClient-_onFailure}.
    function _onFailure(uint256 requestId, uint256, uint256, FailureReason reason) internal override {
        Request storage r = _requests[requestId];
        if (r.status != Status.Pending) return; // e.g. the deadline notice of a job whose task already ended
        r.status = Status.Refundable;
        // the escrow came back: keep the whole price aside (the margin was already reserved)
        _reserved += r.paid - _margin(r.paid, r.escrow);
        emit HashFailed(requestId, reason);
    }

    /// @dev The balance minus what refunds may need.
    function _spendable() internal view override returns (uint256) {
        uint256 balance = marketplace().balanceOf(address(this));
        return balance > _reserved ? balance - _reserved : 0;
    }

    function _own(uint256 requestId) private view returns (Request storage r) {
        r = _requests[requestId];
        if (r.status == Status.None) revert FileHasherUnknownRequest(requestId);
        if (r.user != msg.sender) revert FileHasherNotRequester(requestId, msg.sender, r.user);
    }

    /// @dev The part of `paid` that `escrow` does not cover (what stays in the balance while a request is pending).
    function _margin(uint256 paid, uint256 escrow) private pure returns (uint256) {
        return paid > escrow ? paid - escrow : 0;
    }
}
