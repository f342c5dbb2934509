// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Multicall} from "@openzeppelin/contracts/utils/Multicall.sol";

import {IMarketplace} from "./IMarketplace.sol";
import {IMarketplaceRegistry} from "./IMarketplaceRegistry.sol";
import {MarketplaceBase} from "./MarketplaceBase.sol";
import {MarketplaceExtension} from "./MarketplaceExtension.sol";
import {CredibilityMath} from "./libraries/CredibilityMath.sol";
import {MarketStorage} from "./libraries/MarketStorage.sol";
import {RangeBitmap} from "./libraries/RangeBitmap.sol";
import {ReplicaLogic} from "./libraries/ReplicaLogic.sol";
import {AccountLogic} from "./libraries/AccountLogic.sol";

/// @title Marketplace
/// @notice The Tasknet marketplace (see {IMarketplace} and contracts/PROTOCOL.md).
/// @dev Money never leaves except through {withdraw}: every payment credits `_s.balances` (pull payments).
/// The state is one {MarketStorage-State}; the R > 1 consensus ({ReplicaLogic}) and the worker/parameter/job
/// bookkeeping ({AccountLogic}) are linked libraries DELEGATECALLed on it, to stay under the 24 KiB limit.
/// Invariant: token.balanceOf(this) == sum(_s.balances) + sum(worker stake + unstaking) + sum(jobEscrow).
/// Every state-changing entry point is `nonReentrant` (transient storage) and follows checks-effects-interactions;
/// the only external calls are the token (SafeERC20) and job callbacks (gas-capped, result ignored, made last),
/// besides the DELEGATECALLs of the linked libraries and of the marketplace's own extension (below).
/// {Multicall} lets a worker or requester batch its own calls in one transaction.
/// The relays of signed commits and reveals and the hash helpers ({IMarketplaceExtension}) live in a
/// {MarketplaceExtension} deployed by the constructor; the `fallback` runs it by DELEGATECALL on this storage.
contract Marketplace is IMarketplace, MarketplaceBase, Multicall {
    using SafeERC20 for IERC20;
    using RangeBitmap for mapping(uint256 => uint256);
    using MarketStorage for MarketStorage.State;

    // =============================================================================================
    // Constants and immutables
    // =============================================================================================

    /// @notice Most tasks one lease ({claimRange}) may cover.
    uint256 public constant MAX_RANGE = 1024;
    /// @notice Largest callback data a result may carry, in bytes.
    uint256 public constant MAX_CALLBACK_DATA = MarketStorage.MAX_CALLBACK_DATA;

    IERC20 private immutable _token;
    /// @dev The {MarketplaceExtension} this marketplace deployed; the `fallback` DELEGATECALLs it.
    address private immutable _extension;

    // =============================================================================================
    // Constructor
    // =============================================================================================

    /// @notice Deploys the marketplace with its default parameters (see {IMarketplace-Params}).
    /// @param token_ the payment token (fixed forever)
    /// @param registry_ the app and dataset registry (fixed forever)
    /// @param treasury_ where slashed stake and protocol fees are credited
    constructor(IERC20 token_, IMarketplaceRegistry registry_, address treasury_) {
        if (address(token_) == address(0) || address(registry_) == address(0) || treasury_ == address(0)) {
            revert MarketplaceZeroAddress();
        }
        _token = token_;
        _extension = address(new MarketplaceExtension());
        _s.registry = registry_;
        _s.treasury = treasury_;
        Params memory p = Params({
            minStake: 1 ether,
            claimGrace: 300,
            commitWindow: 600,
            revealWindow: 600,
            unstakeDelay: 1 days,
            callbackGas: 200_000,
            replicaStake: 1 ether,
            feeBps: 0,
            maxReplicas: 9,
            maxSlashes: 3,
            abandonBps: 1000
        });
        AccountLogic.setParams(_s, p);
        emit TreasuryUpdated(address(0), treasury_);
    }

    // =============================================================================================
    // Money
    // =============================================================================================

    /// @inheritdoc IMarketplace
    function deposit(uint256 amount) external nonReentrant {
        _deposit(amount);
    }

    /// @inheritdoc IMarketplace
    function depositWithPermit(uint256 amount, uint256 permitDeadline, uint8 v, bytes32 r, bytes32 s)
        external
        nonReentrant
    {
        // A front-runner may have used the permit already: then the allowance is there and we go on.
        try IERC20Permit(address(_token)).permit(msg.sender, address(this), amount, permitDeadline, v, r, s) {} catch {}
        _deposit(amount);
    }

    /// @inheritdoc IMarketplace
    function withdraw(uint256 amount) external nonReentrant {
        if (amount == 0) revert MarketplaceZeroAmount();
        _s.debit(msg.sender, amount);
        _token.safeTransfer(msg.sender, amount);
        emit Withdrawn(msg.sender, amount);
    }

    // =============================================================================================
    // Workers
    // =============================================================================================

    /// @inheritdoc IMarketplace
    function registerWorker(uint16 cores, uint32 memoryMB, uint8 gpus, uint8 archMask) external {
        AccountLogic.registerWorker(_s, cores, memoryMB, gpus, archMask);
    }

    /// @inheritdoc IMarketplace
    function setPlatformClass(bytes32 platformClass) external {
        AccountLogic.setPlatformClass(_s, platformClass);
    }

    /// @inheritdoc IMarketplace
    function stake(uint256 amount) external nonReentrant {
        AccountLogic.stake(_s, amount);
    }

    /// @inheritdoc IMarketplace
    function requestUnstake(uint256 amount) external nonReentrant {
        AccountLogic.requestUnstake(_s, amount);
    }

    /// @inheritdoc IMarketplace
    function withdrawUnstaked() external nonReentrant {
        AccountLogic.withdrawUnstaked(_s);
    }

    // =============================================================================================
    // Jobs
    // =============================================================================================

    /// @inheritdoc IMarketplace
    function postJob(JobParams calldata p) external nonReentrant returns (uint256 jobId) {
        jobId = _s.storeJob(p, 0);
    }

    /// @inheritdoc IMarketplace
    function postCredibilityJob(JobParams calldata p, Credibility calldata c) external nonReentrant returns (uint256 jobId) {
        jobId = AccountLogic.postCredibilityJob(_s, p, c);
    }

    /// @inheritdoc IMarketplace
    function startSpotCheck(uint256 taskId) external nonReentrant {
        ReplicaLogic.startSpotCheck(_s, taskId);
    }

    /// @inheritdoc IMarketplace
    function cancelTasks(uint256 jobId, uint256 first, uint256 count) external nonReentrant {
        AccountLogic.cancelTasks(_s, jobId, first, count);
    }

    /// @inheritdoc IMarketplace
    function closeJob(uint256 jobId) external nonReentrant {
        AccountLogic.closeJob(_s, jobId);
    }

    // =============================================================================================
    // Tasks: claims
    // =============================================================================================

    /// @inheritdoc IMarketplace
    function claim(uint256 taskId) external nonReentrant {
        Job storage job = _s.openJob(taskId >> 32);
        if (job.replication == 1) _claimRange(taskId, 1, job);
        else ReplicaLogic.claim(_s, taskId, msg.sender);
    }

    /// @inheritdoc IMarketplace
    function claimSome(uint256[] calldata taskIds, uint256 max) external nonReentrant returns (uint256 claimed) {
        for (uint256 i = 0; i < taskIds.length && claimed < max; ++i) {
            uint256 taskId = taskIds[i];
            uint256 jobId = taskId >> 32;
            Job storage job = _s.jobs[jobId];
            if (job.flags & MarketStorage.JOB_CLOSED != 0 || block.timestamp > job.deadline) continue;
            if (job.replication == 1) {
                if (_s.taken[jobId].get(taskId & type(uint32).max)) continue; // taken first by another worker
                if (_s.leases[taskId].worker != address(0)) continue; // reported failed, but still keys a live lease
                _claimRange(taskId, 1, job);
                ++claimed;
            } else if (ReplicaLogic.tryClaim(_s, taskId, msg.sender)) {
                ++claimed;
            }
        }
    }

    /// @inheritdoc IMarketplace
    function claimRange(uint256 startTaskId, uint256 count) external nonReentrant {
        Job storage job = _s.openJob(startTaskId >> 32);
        if (job.replication != 1) ReplicaLogic.checkCredibleAlone(_s, startTaskId >> 32, msg.sender);
        _claimRange(startTaskId, count, job);
    }

    /// @inheritdoc IMarketplace
    function claimFreeRange(uint256 startTaskId, uint256 count) external nonReentrant returns (uint256 claimed) {
        uint256 jobId = startTaskId >> 32;
        Job storage job = _s.jobs[jobId];
        if (job.flags & MarketStorage.JOB_CLOSED != 0 || block.timestamp > job.deadline) return 0;
        if (job.replication != 1) ReplicaLogic.checkCredibleAlone(_s, jobId, msg.sender);
        if (count == 0 || count > MAX_RANGE) revert MarketplaceInvalidRange(count, MAX_RANGE);
        uint256 index = startTaskId & type(uint32).max;
        if (index >= job.numTasks) revert MarketplaceTaskOutOfRange(jobId, index, job.numTasks);
        if (_s.leases[startTaskId].worker != address(0)) return 0; // keys a live lease (a failure was reported)
        uint256 left = job.numTasks - index;
        claimed = _s.taken[jobId].freeRun(index, count < left ? count : left);
        uint256 grace = block.timestamp + _s.params.claimGrace;
        uint256 fit = job.deadline > grace ? (job.deadline - grace) / job.maxRunSeconds : 0;
        if (claimed > fit) claimed = fit;
        if (claimed != 0) _claimRange(startTaskId, claimed, job);
    }

    function _claimRange(uint256 startTaskId, uint256 count, Job storage job) private {
        if (count == 0 || count > MAX_RANGE) revert MarketplaceInvalidRange(count, MAX_RANGE);
        uint256 jobId = startTaskId >> 32;
        uint256 index = startTaskId & type(uint32).max;
        if (index + count > job.numTasks) revert MarketplaceTaskOutOfRange(jobId, index + count - 1, job.numTasks);
        uint256 expiry = block.timestamp + count * job.maxRunSeconds + _s.params.claimGrace;
        if (expiry > job.deadline) revert MarketplaceClaimPastDeadline(expiry, job.deadline);
        _s.lockStake(msg.sender, jobId, job, count * job.replicaStake);
        uint256 conflict = _s.taken[jobId].trySetRange(index, count);
        if (conflict != type(uint256).max) revert MarketplaceTaskTaken((jobId << 32) | conflict);
        Lease storage lease = _s.leases[startTaskId];
        uint256 held;
        assembly ("memory-safe") {
            held := sload(lease.slot)
        }
        // A lease's first task reopens when its worker reports it failed ({reportFailure}) while its id still keys
        // that lease: no new lease may start there before that one ends (it would overwrite it).
        if (held != 0) revert MarketplaceTaskTaken(startTaskId);
        // The slot is empty (a lease is only ever deleted whole): one SSTORE of worker(160) | expiry(40) |
        // count(16) | done(16), without the read-modify-write a struct assignment compiles to. expiry <= deadline
        // < 2^32 and count <= MAX_RANGE fit their fields.
        uint256 packed = uint256(uint160(msg.sender)) | (expiry << 160) | (count << 200);
        assembly ("memory-safe") {
            sstore(lease.slot, packed)
        }
        emit TasksClaimed(startTaskId, msg.sender, count, expiry);
    }

    // =============================================================================================
    // Tasks: single-replica results (R = 1)
    // =============================================================================================

    /// @inheritdoc IMarketplace
    function submit(uint256 taskId, bytes32 resultDigest, string calldata resultCID, bytes calldata callbackData)
        external
        nonReentrant
    {
        Lease memory lease = _heldLease(taskId, msg.sender);
        if (lease.done != 0 || lease.count != 1) revert MarketplaceTooManyResults(taskId, lease.count - lease.done, 1);
        if (callbackData.length > MAX_CALLBACK_DATA) {
            revert MarketplaceCallbackDataTooLarge(callbackData.length, MAX_CALLBACK_DATA);
        }
        delete _s.leases[taskId];
        uint256 jobId = taskId >> 32;
        Job storage job = _s.jobs[jobId];
        _payResults(job, msg.sender, 1);
        emit ResultSubmitted(taskId, msg.sender, resultDigest, resultCID);
        _s.closeIfSettled(jobId, job);
        if (job.flags & MarketStorage.JOB_CALLBACK != 0) {
            _s.deliverCallback(_s.jobExtras[jobId].callback, taskId, resultDigest, callbackData);
        }
    }

    /// @inheritdoc IMarketplace
    function submitRange(
        uint256 startTaskId,
        uint256 firstTaskId,
        bytes32[] calldata resultDigests,
        string[] calldata resultCIDs,
        bytes[] calldata callbackData
    ) external nonReentrant {
        _submitRange(startTaskId, firstTaskId, msg.sender, resultDigests, resultCIDs, callbackData);
    }

    function _submitRange(
        uint256 startTaskId,
        uint256 firstTaskId,
        address worker,
        bytes32[] calldata digests,
        string[] calldata cids,
        bytes[] calldata cbs
    ) private {
        Lease memory lease = _heldLease(startTaskId, worker);
        uint256 n = digests.length;
        if (cids.length != n) revert MarketplaceLengthMismatch(n, cids.length);
        if (cbs.length != 0 && cbs.length != n) revert MarketplaceLengthMismatch(n, cbs.length);
        if (firstTaskId != startTaskId + lease.done) {
            revert MarketplaceResultsOutOfOrder(startTaskId, startTaskId + lease.done, firstTaskId);
        }
        uint256 remaining = lease.count - lease.done;
        if (n == 0 || n > remaining) revert MarketplaceTooManyResults(startTaskId, remaining, n);
        for (uint256 i = 0; i < cbs.length; ++i) {
            if (cbs[i].length > MAX_CALLBACK_DATA) revert MarketplaceCallbackDataTooLarge(cbs[i].length, MAX_CALLBACK_DATA);
        }
        if (n == remaining) delete _s.leases[startTaskId];
        else _s.leases[startTaskId].done = uint16(lease.done + n); // n < remaining <= count < 2^16
        uint256 jobId = startTaskId >> 32;
        Job storage job = _s.jobs[jobId];
        _payResults(job, worker, n);
        for (uint256 i = 0; i < n; ++i) {
            emit ResultSubmitted(firstTaskId + i, worker, digests[i], cids[i]);
        }
        _s.closeIfSettled(jobId, job);
        if (job.flags & MarketStorage.JOB_CALLBACK != 0) {
            address callback = _s.jobExtras[jobId].callback;
            for (uint256 i = 0; i < n; ++i) {
                _s.deliverCallback(callback, firstTaskId + i, digests[i], cbs.length == 0 ? bytes("") : cbs[i]);
            }
        }
    }

    /// @dev Effects of `n` accepted single-replica results: reward, stake unlock, reputation, job counters.
    function _payResults(Job storage job, address worker, uint256 n) private {
        uint256 reward = job.reward;
        uint256 fee = reward * job.feeBps / 10_000;
        Worker storage w = _s.workers[worker];
        w.locked -= uint96(n * job.replicaStake); // this lease locked at least that much
        w.reputation += uint32(n);
        _s.balances[worker] += n * (reward - fee);
        if (fee != 0) _s.balances[_s.treasury] += n * fee;
        job.settled += uint32(n); // n unsettled tasks of the lease
        job.finished += uint32(n);
    }

    /// @inheritdoc IMarketplace
    function abandon(uint256 taskId) external nonReentrant {
        AccountLogic.abandon(_s, taskId);
    }

    /// @inheritdoc IMarketplace
    function reportFailure(uint256 startTaskId, bytes32 resultDigest, string calldata resultCID) external nonReentrant {
        AccountLogic.reportFailure(_s, startTaskId, resultDigest, resultCID);
    }

    /// @inheritdoc IMarketplace
    function reopenLease(uint256 startTaskId) external nonReentrant {
        AccountLogic.reopenLease(_s, startTaskId);
    }

    // =============================================================================================
    // Tasks: replicated consensus (R > 1)
    // =============================================================================================

    /// @inheritdoc IMarketplace
    function commitRange(uint256 startTaskId, bytes32 root) external nonReentrant {
        ReplicaLogic.commitRange(_s, startTaskId, root, msg.sender);
    }

    /// @inheritdoc IMarketplace
    function revealRange(
        uint256 startTaskId,
        uint256 commitBlock,
        bytes32[] calldata resultDigests,
        bytes32[] calldata salts,
        string[] calldata resultCIDs,
        bytes[] calldata callbackData
    ) external nonReentrant {
        ReplicaLogic.revealRange(
            _s, startTaskId, commitBlock, resultDigests, salts, resultCIDs, callbackData, msg.sender
        );
    }

    /// @inheritdoc IMarketplace
    function commit(uint256 taskId, bytes32 commitment) external nonReentrant {
        ReplicaLogic.commit(_s, taskId, commitment, msg.sender);
    }

    /// @inheritdoc IMarketplace
    function reveal(
        uint256 taskId,
        bytes32 resultDigest,
        bytes32 salt,
        string calldata resultCID,
        bytes calldata callbackData
    ) external nonReentrant {
        ReplicaLogic.reveal(_s, taskId, resultDigest, salt, resultCID, callbackData, msg.sender);
    }

    /// @inheritdoc IMarketplace
    function finalize(uint256 taskId) external nonReentrant {
        ReplicaLogic.finalize(_s, taskId);
    }

    /// @inheritdoc IMarketplace
    function reopenExpired(uint256 taskId) external nonReentrant {
        ReplicaLogic.reopenExpired(_s, taskId);
    }

    /// @inheritdoc IMarketplace
    function releaseReplicas(uint256 taskId) external nonReentrant {
        ReplicaLogic.releaseReplicas(_s, taskId);
    }

    // =============================================================================================
    // Relays
    // =============================================================================================

    /// @inheritdoc IMarketplace
    function relayResults(ResultBatch[] calldata batches) external nonReentrant {
        for (uint256 i = 0; i < batches.length; ++i) {
            ResultBatch calldata b = batches[i];
            bytes32 digest = _hashResults(b.startTaskId, b.firstTaskId, b.resultDigests, b.resultCIDs, b.callbackData);
            address signer = MarketStorage.recover(digest, b.signature);
            address holder = _s.leases[b.startTaskId].worker;
            if (signer != holder) revert MarketplaceInvalidSignature(signer, holder);
            _submitRange(b.startTaskId, b.firstTaskId, signer, b.resultDigests, b.resultCIDs, b.callbackData);
        }
    }

    // =============================================================================================
    // Admin
    // =============================================================================================

    /// @inheritdoc IMarketplace
    function setParams(Params calldata p) external onlyOwner {
        AccountLogic.setParams(_s, p);
    }

    /// @inheritdoc IMarketplace
    function setTreasury(address treasury_) external onlyOwner {
        if (treasury_ == address(0)) revert MarketplaceZeroAddress();
        emit TreasuryUpdated(_s.treasury, treasury_);
        _s.treasury = treasury_;
    }

    /// @inheritdoc IMarketplace
    function setWorkerBanned(address worker, bool banned) external onlyOwner {
        AccountLogic.setWorkerBanned(_s, worker, banned);
    }

    // =============================================================================================
    // Views
    // =============================================================================================

    /// @inheritdoc IMarketplace
    function token() external view returns (address) {
        return address(_token);
    }

    /// @inheritdoc IMarketplace
    function treasury() external view returns (address) {
        return _s.treasury;
    }

    /// @inheritdoc IMarketplace
    function params() external view returns (Params memory) {
        return _s.params;
    }

    /// @inheritdoc IMarketplace
    function balanceOf(address account) external view returns (uint256) {
        return _s.balances[account];
    }

    /// @inheritdoc IMarketplace
    function registry() external view returns (address) {
        return address(_s.registry);
    }

    /// @inheritdoc IMarketplace
    function getWorker(address worker) external view returns (Worker memory) {
        return _s.workers[worker];
    }

    /// @inheritdoc IMarketplace
    function platformClassOf(address worker) external view returns (bytes32) {
        return _s.platformClass[worker];
    }

    /// @inheritdoc IMarketplace
    function taskPlatformClass(uint256 taskId) external view returns (bytes32) {
        return _s.taskClass[taskId];
    }

    /// @inheritdoc IMarketplace
    function getJob(uint256 jobId) external view returns (Job memory) {
        return _s.jobs[jobId];
    }

    /// @inheritdoc IMarketplace
    function getJobExtras(uint256 jobId) external view returns (JobExtras memory) {
        return _s.jobExtras[jobId];
    }

    /// @inheritdoc IMarketplace
    function jobEscrow(uint256 jobId) external view returns (uint256) {
        Job storage job = _s.jobs[jobId];
        if (job.flags & MarketStorage.JOB_CLOSED != 0) return 0;
        return (uint256(job.numTasks) - job.settled) * MarketStorage.taskCost(job)
            + uint256(job.finished) * job.ownersPrice;
    }

    /// @inheritdoc IMarketplace
    function getCredibility(uint256 jobId) external view returns (Credibility memory) {
        return _s.credibility[jobId];
    }

    /// @inheritdoc IMarketplace
    function spotCheckDue(uint256 taskId) external view returns (bool) {
        return ReplicaLogic.spotCheckDue(_s, taskId);
    }

    /// @inheritdoc IMarketplace
    function credibilityOf(address worker, uint256 faultBps) external view returns (uint256) {
        return CredibilityMath.ofWorker(_s.workers[worker].verified, faultBps);
    }

    /// @inheritdoc IMarketplace
    function getTask(uint256 taskId) external view returns (Task memory) {
        return _s.tasks[taskId];
    }

    /// @inheritdoc IMarketplace
    function getReplica(uint256 taskId, uint256 replica) external view returns (Replica memory) {
        return _s.replicas[taskId][replica];
    }

    /// @inheritdoc IMarketplace
    function getLease(uint256 startTaskId) external view returns (Lease memory) {
        return _s.leases[startTaskId];
    }

    /// @inheritdoc IMarketplace
    function getFailure(uint256 taskId) external view returns (Failure memory) {
        return _s.failures[taskId];
    }

    /// @inheritdoc IMarketplace
    function getRangeCommit(uint256 startTaskId) external view returns (bytes32) {
        return _s.rangeCommits[startTaskId];
    }

    /// @inheritdoc IMarketplace
    function isTaken(uint256 taskId) external view returns (bool) {
        return _s.taken[taskId >> 32].get(taskId & type(uint32).max);
    }

    /// @inheritdoc IMarketplace
    function jobCount() external view returns (uint256) {
        return _s.jobCount;
    }

    /// @inheritdoc IMarketplace
    function extension() external view returns (address) {
        return _extension;
    }

    /// @notice Runs the functions of {IMarketplaceExtension} (and answers any unknown selector with its revert)
    /// by DELEGATECALL of the extension, on this contract's storage, returning or reverting with its data.
    fallback() external {
        _delegateToExtension();
    }

    // =============================================================================================
    // Internal
    // =============================================================================================

    function _deposit(uint256 amount) private {
        if (amount == 0) revert MarketplaceZeroAmount();
        // Credit what actually arrived (a fee-on-transfer token delivers less than `amount`).
        uint256 before = _token.balanceOf(address(this));
        _token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = _token.balanceOf(address(this)) - before;
        _s.balances[msg.sender] += received;
        emit Deposited(msg.sender, received);
    }

    /// @dev Like OpenZeppelin's `Proxy._delegate`: the call's data to the extension, its return data or revert back.
    function _delegateToExtension() private {
        address ext = _extension;
        assembly ("memory-safe") {
            // memory from the free pointer on is free to use: execution ends in this block
            let ptr := mload(0x40)
            calldatacopy(ptr, 0, calldatasize())
            let ok := delegatecall(gas(), ext, ptr, calldatasize(), 0, 0)
            returndatacopy(ptr, 0, returndatasize())
            if iszero(ok) { revert(ptr, returndatasize()) }
            return(ptr, returndatasize())
        }
    }

    function _heldLease(uint256 startTaskId, address worker) private view returns (Lease memory lease) {
        Job storage job = _s.jobs[startTaskId >> 32];
        // a credibility-mode lease is settled by commitRange and revealRange, never by a plain result (flags share
        // the job's slot 1 with the counters a result updates: no extra cold read)
        if (job.flags & MarketStorage.JOB_CREDIBILITY != 0) {
            revert MarketplaceWrongReplication(startTaskId >> 32, job.replication);
        }
        lease = _s.leases[startTaskId];
        if (lease.worker == address(0)) revert MarketplaceUnknownLease(startTaskId);
        if (lease.worker != worker) revert MarketplaceNotLeaseHolder(startTaskId, worker);
        if (block.timestamp > lease.expiry) revert MarketplaceLeaseExpired(startTaskId, lease.expiry);
    }
}
