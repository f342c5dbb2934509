// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IMarketplace, ITaskCallback} from "../IMarketplace.sol";
import {MarketStorage} from "./MarketStorage.sol";
import {RangeBitmap} from "./RangeBitmap.sol";

/// @title AccountLogic
/// @notice Workers (registration, stake, unstake, bans), parameters, and the job bookkeeping that needs no
/// signature: cancelling unclaimed tasks, closing jobs after their deadline, reopening expired leases.
/// @dev A linked library: {Marketplace} DELEGATECALLs these `external` functions on its own storage (only value
/// arguments cross, so the calls are cheap), keeping the marketplace under the 24 KiB code-size limit.
library AccountLogic {
    using SafeCast for uint256;
    using RangeBitmap for mapping(uint256 => uint256);

    /// @notice See {IMarketplace-registerWorker}.
    function registerWorker(MarketStorage.State storage s, uint16 cores, uint32 memoryMB, uint8 gpus, uint8 archMask) external {
        IMarketplace.Worker storage w = s.workers[msg.sender];
        w.flags |= MarketStorage.REGISTERED;
        w.cores = cores;
        w.memoryMB = memoryMB;
        w.gpus = gpus;
        w.archMask = archMask;
        emit IMarketplace.WorkerRegistered(msg.sender, cores, memoryMB, gpus, archMask);
    }

    /// @notice See {IMarketplace-setPlatformClass}.
    function setPlatformClass(MarketStorage.State storage s, bytes32 platformClass) external {
        if (s.workers[msg.sender].flags & MarketStorage.REGISTERED == 0) revert IMarketplace.MarketplaceNotWorker(msg.sender);
        s.platformClass[msg.sender] = platformClass;
        emit IMarketplace.WorkerPlatformClassSet(msg.sender, platformClass);
    }

    /// @notice See {IMarketplace-stake}.
    function stake(MarketStorage.State storage s, uint256 amount) external {
        IMarketplace.Worker storage w = s.workers[msg.sender];
        if (w.flags & MarketStorage.REGISTERED == 0) revert IMarketplace.MarketplaceNotWorker(msg.sender);
        if (amount == 0) revert IMarketplace.MarketplaceZeroAmount();
        MarketStorage.debit(s, msg.sender, amount);
        uint256 total = w.stake + amount;
        w.stake = total.toUint96();
        emit IMarketplace.Staked(msg.sender, amount, total);
    }

    /// @notice See {IMarketplace-requestUnstake}.
    function requestUnstake(MarketStorage.State storage s, uint256 amount) external {
        IMarketplace.Worker storage w = s.workers[msg.sender];
        if (amount == 0) revert IMarketplace.MarketplaceZeroAmount();
        uint256 free = w.stake - w.locked;
        if (amount > free) revert IMarketplace.MarketplaceInsufficientStake(msg.sender, free, amount);
        uint256 readyAt = block.timestamp + s.params.unstakeDelay;
        if (uint256(w.unstaking) + amount > type(uint96).max) {
            revert IMarketplace.MarketplaceUnstakePending(msg.sender, w.unstaking, amount);
        }
        w.stake -= uint96(amount);
        w.unstaking += uint96(amount);
        w.unstakeAt = uint40(readyAt);
        emit IMarketplace.UnstakeRequested(msg.sender, amount, readyAt);
    }

    /// @notice See {IMarketplace-withdrawUnstaked}.
    function withdrawUnstaked(MarketStorage.State storage s) external {
        IMarketplace.Worker storage w = s.workers[msg.sender];
        uint256 amount = w.unstaking;
        if (amount == 0) revert IMarketplace.MarketplaceZeroAmount();
        if (block.timestamp < w.unstakeAt) revert IMarketplace.MarketplaceUnstakeNotReady(msg.sender, w.unstakeAt);
        w.unstaking = 0;
        s.balances[msg.sender] += amount;
        emit IMarketplace.Unstaked(msg.sender, amount);
    }

    /// @notice See {IMarketplace-setWorkerBanned}.
    function setWorkerBanned(MarketStorage.State storage s, address worker, bool banned) external {
        IMarketplace.Worker storage w = s.workers[worker];
        if (w.flags & MarketStorage.REGISTERED == 0) revert IMarketplace.MarketplaceNotWorker(worker);
        w.flags = banned ? w.flags | MarketStorage.BANNED : w.flags & ~MarketStorage.BANNED;
        if (!banned) w.slashes = 0;
        emit IMarketplace.WorkerBanned(worker, banned);
    }

    /// @notice See {IMarketplace-postCredibilityJob}: the checks of {IMarketplace-postJob} plus the credibility
    /// settings' (the marketplace has no room for this entry point's code; a fixed-R posting stays there, inline).
    function postCredibilityJob(
        MarketStorage.State storage s,
        IMarketplace.JobParams calldata p,
        IMarketplace.Credibility memory c
    ) external returns (uint256 jobId) {
        if (
            c.confidencePpb == 0 || c.confidencePpb >= 1e9 || c.faultBps < 100 || c.faultBps > 5000
                || c.spotCheckBps > 10_000 || p.replication < 2
        ) revert IMarketplace.MarketplaceInvalidCredibility(c.confidencePpb, c.faultBps, c.spotCheckBps, p.replication);
        jobId = MarketStorage.storeJob(s, p, MarketStorage.JOB_CREDIBILITY);
        s.credibility[jobId] = c;
        emit IMarketplace.JobCredibility(jobId, c.confidencePpb, c.faultBps, c.spotCheckBps);
    }

    /// @notice See {IMarketplace-cancelTasks}.
    function cancelTasks(MarketStorage.State storage s, uint256 jobId, uint256 first, uint256 count) external {
        IMarketplace.Job storage job = MarketStorage.knownJob(s, jobId);
        if (job.requester != msg.sender) revert IMarketplace.MarketplaceNotRequester(jobId, msg.sender);
        if (job.flags & MarketStorage.JOB_CLOSED != 0) revert IMarketplace.MarketplaceJobClosed(jobId);
        if (count == 0) revert IMarketplace.MarketplaceInvalidRange(0, job.numTasks);
        if (first + count > job.numTasks) revert IMarketplace.MarketplaceTaskOutOfRange(jobId, first + count - 1, job.numTasks);
        uint256 conflict = s.taken[jobId].trySetRange(first, count);
        if (conflict != type(uint256).max) revert IMarketplace.MarketplaceTaskTaken((jobId << 32) | conflict);
        uint256 refund = count * MarketStorage.taskCost(job);
        uint256 settled = job.settled + count;
        job.settled = uint32(settled); // <= numTasks: every counted task had its bit clear
        s.balances[msg.sender] += refund;
        emit IMarketplace.TasksCancelled(jobId, first, count, refund);
        if (settled == job.numTasks) MarketStorage.close(s, jobId, job);
        MarketStorage.deliverEnded(s, job, jobId, first, count, ITaskCallback.FailureReason.Cancelled);
    }

    /// @notice See {IMarketplace-closeJob}.
    function closeJob(MarketStorage.State storage s, uint256 jobId) external {
        IMarketplace.Job storage job = MarketStorage.knownJob(s, jobId);
        if (job.flags & MarketStorage.JOB_CLOSED != 0) revert IMarketplace.MarketplaceJobClosed(jobId);
        if (block.timestamp <= job.deadline) revert IMarketplace.MarketplaceDeadlineNotReached(jobId, job.deadline);
        bool unsettled = job.settled != job.numTasks;
        MarketStorage.close(s, jobId, job);
        if (unsettled) MarketStorage.deliverEnded(s, job, jobId, 0, job.numTasks, ITaskCallback.FailureReason.Expired);
    }

    /// @notice See {IMarketplace-reopenLease}.
    function reopenLease(MarketStorage.State storage s, uint256 startTaskId) external {
        IMarketplace.Lease memory lease = s.leases[startTaskId];
        if (lease.worker == address(0)) revert IMarketplace.MarketplaceUnknownLease(startTaskId);
        if (block.timestamp <= lease.expiry) revert IMarketplace.MarketplaceLeaseNotExpired(startTaskId, lease.expiry);
        uint256 undone = lease.count - lease.done;
        delete s.leases[startTaskId];
        delete s.rangeCommits[startTaskId]; // a credibility-mode lease committed but never revealed
        uint256 jobId = startTaskId >> 32;
        IMarketplace.Job storage job = s.jobs[jobId];
        if (job.flags & MarketStorage.JOB_CLOSED == 0) {
            s.taken[jobId].clearRange((startTaskId & type(uint32).max) + lease.done, undone);
        }
        emit IMarketplace.LeaseExpired(startTaskId, lease.worker, undone);
        MarketStorage.slash(s, lease.worker, startTaskId, undone * job.replicaStake);
    }

    /// @notice See {IMarketplace-abandon}.
    function abandon(MarketStorage.State storage s, uint256 taskId) external {
        uint256 jobId = taskId >> 32;
        IMarketplace.Job storage job = MarketStorage.openJob(s, jobId);
        uint256 tasks = 1;
        if (job.replication == 1 || s.leases[taskId].worker != address(0)) { // R = 1, or a credibility-mode lease
            IMarketplace.Lease memory lease = s.leases[taskId];
            if (lease.worker == address(0)) revert IMarketplace.MarketplaceUnknownLease(taskId);
            if (lease.worker != msg.sender) revert IMarketplace.MarketplaceNotLeaseHolder(taskId, msg.sender);
            if (block.timestamp > lease.expiry) revert IMarketplace.MarketplaceLeaseExpired(taskId, lease.expiry);
            tasks = lease.count - lease.done;
            delete s.leases[taskId];
            delete s.rangeCommits[taskId];
            s.taken[jobId].clearRange((taskId & type(uint32).max) + lease.done, tasks);
        } else {
            (, IMarketplace.Task memory t, uint256 slot) = MarketStorage.heldReplica(s, taskId, msg.sender);
            uint16 bit = uint16(1 << slot);
            if (t.committed & bit != 0) revert IMarketplace.MarketplaceCannotAbandonCommitted(taskId, msg.sender);
            uint256 expiry = s.replicas[taskId][slot].expiry;
            if (block.timestamp > expiry) revert IMarketplace.MarketplaceClaimExpired(taskId, msg.sender, expiry);
            t.occupied &= ~bit;
            s.tasks[taskId] = t;
        }
        uint256 locked = tasks * job.replicaStake;
        uint256 fee = locked * s.params.abandonBps / 10_000; // abandonBps <= 10,000: fee <= locked <= stake
        IMarketplace.Worker storage w = s.workers[msg.sender];
        w.locked -= uint96(locked);
        w.stake -= uint96(fee);
        if (fee != 0) s.balances[s.treasury] += fee;
        emit IMarketplace.ClaimAbandoned(taskId, msg.sender, tasks, fee);
    }

    /// @notice See {IMarketplace-reportFailure}.
    function reportFailure(MarketStorage.State storage s, uint256 startTaskId, bytes32 digest, string calldata cid)
        external
    {
        uint256 jobId = startTaskId >> 32;
        IMarketplace.Job storage job = MarketStorage.openJob(s, jobId);
        // a credibility-mode lease's failure archive goes through commitRange and revealRange like any result
        if (job.replication != 1) revert IMarketplace.MarketplaceWrongReplication(jobId, job.replication);
        IMarketplace.Lease memory lease = s.leases[startTaskId];
        if (lease.worker == address(0)) revert IMarketplace.MarketplaceUnknownLease(startTaskId);
        if (lease.worker != msg.sender) revert IMarketplace.MarketplaceNotLeaseHolder(startTaskId, msg.sender);
        if (block.timestamp > lease.expiry) revert IMarketplace.MarketplaceLeaseExpired(startTaskId, lease.expiry);
        uint256 taskId = startTaskId + lease.done;
        IMarketplace.Failure memory f = s.failures[taskId];
        if (f.worker == msg.sender) revert IMarketplace.MarketplaceSelfConfirmation(taskId, msg.sender);
        if (lease.done + 1 == lease.count) delete s.leases[startTaskId];
        else s.leases[startTaskId].done = lease.done + 1; // done + 1 < count < 2^16
        s.workers[msg.sender].locked -= uint96(job.replicaStake); // this lease locked it for this task
        uint256 reports = uint256(f.reports) + 1;
        emit IMarketplace.FailureReported(taskId, msg.sender, digest, cid, reports);
        if (f.worker != address(0) && f.digest == digest) {
            delete s.failures[taskId];
            _confirmFailure(s, taskId, job, f.worker, digest);
        } else if (reports >= s.params.maxReplicas) {
            delete s.failures[taskId]; // the task stays taken: nobody claims it again
            uint256 refund = MarketStorage.taskCost(job);
            job.settled += 1;
            s.balances[job.requester] += refund;
            emit IMarketplace.TaskFailed(taskId, refund);
            MarketStorage.closeIfSettled(s, jobId, job);
            MarketStorage.deliverFailure(s, job, taskId, ITaskCallback.FailureReason.FailureReports);
        } else {
            s.failures[taskId] = IMarketplace.Failure({worker: msg.sender, reports: uint8(reports), digest: digest});
            s.taken[jobId].clearRange(taskId & type(uint32).max, 1); // open again, for a second worker
        }
    }

    /// @dev Two workers reached the same failure: they share the reward, the task settles with that result.
    function _confirmFailure(
        MarketStorage.State storage s,
        uint256 taskId,
        IMarketplace.Job storage job,
        address first,
        bytes32 digest
    ) private {
        uint256 reward = job.reward;
        uint256 fee = reward * job.feeBps / 10_000;
        uint256 share = (reward - fee) / 2;
        s.balances[first] += share;
        s.balances[msg.sender] += share;
        s.balances[s.treasury] += reward - 2 * share; // the fee plus the division dust
        s.workers[first].reputation += 1;
        s.workers[msg.sender].reputation += 1;
        job.settled += 1;
        job.finished += 1;
        uint256 jobId = taskId >> 32;
        emit IMarketplace.FailureConfirmed(taskId, digest, first, msg.sender, share);
        MarketStorage.closeIfSettled(s, jobId, job);
        if (job.flags & MarketStorage.JOB_CALLBACK != 0) {
            MarketStorage.deliverCallback(s, s.jobExtras[jobId].callback, taskId, digest, "");
        }
    }

    /// @notice Checks every bound and stores `p` (see {IMarketplace-setParams}).
    function setParams(MarketStorage.State storage s, IMarketplace.Params memory p) external {
        _bound("claimGrace", p.claimGrace, 60, 7 days);
        _bound("commitWindow", p.commitWindow, 60, 7 days);
        _bound("revealWindow", p.revealWindow, 60, 7 days);
        _bound("unstakeDelay", p.unstakeDelay, 0, 30 days);
        _bound("callbackGas", p.callbackGas, 10_000, 2_000_000);
        _bound("feeBps", p.feeBps, 0, 1_000);
        _bound("maxReplicas", p.maxReplicas, 1, 16);
        _bound("maxSlashes", p.maxSlashes, 1, 100);
        _bound("minStake", p.minStake, 0, 1e27);
        _bound("abandonBps", p.abandonBps, 0, 10_000);
        s.params = p;
        emit IMarketplace.ParamsUpdated(p);
    }

    function _bound(string memory name, uint256 value, uint256 min, uint256 max) private pure {
        if (value < min || value > max) revert IMarketplace.MarketplaceParamOutOfBounds(name, value, min, max);
    }
}
