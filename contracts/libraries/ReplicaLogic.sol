// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IMarketplace, ITaskCallback} from "../IMarketplace.sol";
import {Consensus} from "./Consensus.sol";
import {MarketStorage} from "./MarketStorage.sol";
import {RangeBitmap} from "./RangeBitmap.sol";

/// @title ReplicaLogic
/// @notice The replicated commit-reveal state machine (jobs with R > 1): claim a replica slot, commit,
/// reveal, finalize by strict majority, reopen expired claims, release replicas of closed jobs.
/// @dev A linked library: {Marketplace} DELEGATECALLs these `external` functions on its own storage, so the
/// marketplace stays under the 24 KiB code-size limit. Events and errors are those of {IMarketplace}.
library ReplicaLogic {
    using MarketStorage for MarketStorage.State;
    using RangeBitmap for mapping(uint256 => uint256);


    /// @notice See {IMarketplace}.
    function finalize(MarketStorage.State storage s, uint256 taskId) external {
        IMarketplace.Job storage job = s.openJob(taskId >> 32);
        IMarketplace.Task memory t = s.tasks[taskId];
        if (t.status != IMarketplace.TaskStatus.Active) revert IMarketplace.MarketplaceTaskNotActive(taskId);
        if (
            Consensus.popcount(t.revealed) != t.target
                && (t.revealDeadline == 0 || block.timestamp <= t.revealDeadline)
        ) revert IMarketplace.MarketplaceNotFinalizable(taskId, t.revealDeadline);
        _finalize(s, taskId, job, t);
    }

    /// @notice See {IMarketplace}.
    function reopenExpired(MarketStorage.State storage s, uint256 taskId) external {
        IMarketplace.Job storage job = s.knownJob(taskId >> 32);
        IMarketplace.Task memory t = s.tasks[taskId];
        if (t.status != IMarketplace.TaskStatus.Active) revert IMarketplace.MarketplaceTaskNotActive(taskId);
        uint256 stakeAmount = job.replicaStake;
        bool any;
        for (uint256 i = 0; i < t.target; ++i) {
            uint16 bit = uint16(1 << i);
            if (t.occupied & bit == 0 || t.committed & bit != 0) continue;
            IMarketplace.Replica storage r = s.replicas[taskId][i];
            if (block.timestamp <= r.expiry) continue;
            any = true;
            t.occupied &= ~bit;
            address worker = r.worker;
            emit IMarketplace.ClaimExpired(taskId, worker);
            s.slash(worker, taskId, stakeAmount);
        }
        if (!any) revert IMarketplace.MarketplaceNothingExpired(taskId);
        s.tasks[taskId] = t;
    }

    /// @notice See {IMarketplace}.
    function releaseReplicas(MarketStorage.State storage s, uint256 taskId) external {
        IMarketplace.Job storage job = s.knownJob(taskId >> 32);
        if (job.flags & MarketStorage.JOB_CLOSED == 0) revert IMarketplace.MarketplaceDeadlineNotReached(taskId >> 32, job.deadline);
        IMarketplace.Task memory t = s.tasks[taskId];
        if (t.status != IMarketplace.TaskStatus.Active) revert IMarketplace.MarketplaceTaskNotActive(taskId);
        uint256 stakeAmount = job.replicaStake;
        uint256 released;
        for (uint256 i = 0; i < t.target; ++i) {
            uint16 bit = uint16(1 << i);
            if (t.occupied & bit == 0) continue;
            address worker = s.replicas[taskId][i].worker;
            bool slashed = t.committed & bit == 0;
            ++released;
            emit IMarketplace.ReplicaReleased(taskId, worker, slashed);
            if (slashed) s.slash(worker, taskId, stakeAmount);
            else s.workers[worker].locked -= uint96(stakeAmount);
        }
        t.occupied = 0;
        t.status = IMarketplace.TaskStatus.Failed;
        s.tasks[taskId] = t;
        emit IMarketplace.TaskReleased(taskId, released);
    }

    /// @notice Claims a free replica slot of `taskId` for `worker` (see {IMarketplace-claim}).
    function claim(MarketStorage.State storage s, uint256 taskId, address worker) external {
        _claim(s, taskId, worker, true);
    }

    /// @notice Like {claim}, but returns false instead of reverting when the task cannot be joined because of what
    /// others did first (cancelled or settled, no free slot, commit window closed) or because `worker` already
    /// holds a slot (see {IMarketplace-claimSome}).
    function tryClaim(MarketStorage.State storage s, uint256 taskId, address worker) external returns (bool) {
        return _claim(s, taskId, worker, false);
    }

    /// @dev With `strict`, every refusal reverts; otherwise the refusals a race explains return false.
    function _claim(MarketStorage.State storage s, uint256 taskId, address worker, bool strict) private returns (bool) {
        uint256 jobId = taskId >> 32;
        IMarketplace.Job storage job = s.openJob(jobId);
        uint256 index = taskId & type(uint32).max;
        if (index >= job.numTasks) revert IMarketplace.MarketplaceTaskOutOfRange(jobId, index, job.numTasks);
        IMarketplace.Task memory t = s.tasks[taskId];
        if (t.status == IMarketplace.TaskStatus.None) {
            // First claim: the task comes to life (fails if the requester cancelled it).
            if (s.taken[jobId].trySetRange(index, 1) != type(uint256).max) {
                if (!strict) return false;
                revert IMarketplace.MarketplaceTaskTaken(taskId);
            }
            t.status = IMarketplace.TaskStatus.Active;
            t.target = job.replication;
        } else if (t.status != IMarketplace.TaskStatus.Active) {
            if (!strict) return false;
            revert IMarketplace.MarketplaceTaskNotActive(taskId);
        } else if (t.commitDeadline != 0 && block.timestamp > t.commitDeadline) {
            if (!strict) return false;
            revert IMarketplace.MarketplaceCommitClosed(taskId, t.commitDeadline);
        }
        uint256 free = type(uint256).max;
        for (uint256 i = 0; i < t.target; ++i) {
            if (t.occupied & (1 << i) != 0) {
                if (s.replicas[taskId][i].worker == worker) {
                    if (!strict) return false;
                    revert IMarketplace.MarketplaceAlreadyClaimed(taskId, worker);
                }
            } else if (free == type(uint256).max) {
                free = i;
            }
        }
        if (free == type(uint256).max) {
            if (!strict) return false;
            revert IMarketplace.MarketplaceNoFreeReplica(taskId);
        }
        uint256 expiry = block.timestamp + job.maxRunSeconds + s.params.claimGrace;
        if (expiry > job.deadline) revert IMarketplace.MarketplaceClaimPastDeadline(expiry, job.deadline);
        s.lockStake(worker, jobId, job, job.replicaStake);
        t.occupied |= uint16(1 << free);
        s.tasks[taskId] = t;
        IMarketplace.Replica storage r = s.replicas[taskId][free];
        r.worker = worker;
        r.expiry = uint40(expiry);
        emit IMarketplace.ReplicaClaimed(taskId, worker, free, expiry);
        return true;
    }

    /// @notice Commits for `worker` (see {IMarketplace-commit}).
    function commit(MarketStorage.State storage s, uint256 taskId, bytes32 commitment, address worker) public {
        (IMarketplace.Job storage job, IMarketplace.Task memory t, uint256 slot) = s.heldReplica(taskId, worker);
        uint16 bit = uint16(1 << slot);
        if (t.committed & bit != 0) revert IMarketplace.MarketplaceAlreadyCommitted(taskId, worker);
        IMarketplace.Replica storage r = s.replicas[taskId][slot];
        if (block.timestamp > r.expiry) revert IMarketplace.MarketplaceClaimExpired(taskId, worker, r.expiry);
        if (t.commitDeadline != 0 && block.timestamp > t.commitDeadline) {
            revert IMarketplace.MarketplaceCommitClosed(taskId, t.commitDeadline);
        }
        r.hash = commitment;
        t.committed |= bit;
        IMarketplace.Params storage cfg = s.params;
        if (t.commitDeadline == 0) {
            // the others may have claimed just now: give them a whole run to commit, never less than the window
            uint256 window = cfg.commitWindow > job.maxRunSeconds ? cfg.commitWindow : job.maxRunSeconds;
            t.commitDeadline = uint40(block.timestamp + window);
            t.revealDeadline = uint40(t.commitDeadline + cfg.revealWindow);
        }
        if (Consensus.popcount(t.committed) == t.target) {
            t.revealDeadline = uint40(block.timestamp + cfg.revealWindow); // everyone committed: reveal now
        }
        s.tasks[taskId] = t;
        emit IMarketplace.ResultCommitted(taskId, worker, commitment);
    }

    /// @notice Reveals for `worker` (see {IMarketplace-reveal}).
    function reveal(
        MarketStorage.State storage s,
        uint256 taskId,
        bytes32 digest,
        bytes32 salt,
        string calldata cid,
        bytes calldata callbackData,
        address worker
    ) public {
        (IMarketplace.Job storage job, IMarketplace.Task memory t, uint256 slot) = s.heldReplica(taskId, worker);
        uint16 bit = uint16(1 << slot);
        if (t.committed & bit == 0) revert IMarketplace.MarketplaceNotCommitted(taskId, worker);
        if (t.revealed & bit != 0) revert IMarketplace.MarketplaceAlreadyRevealed(taskId, worker);
        if (Consensus.popcount(t.committed) != t.target && block.timestamp <= t.commitDeadline) {
            revert IMarketplace.MarketplaceRevealNotOpen(taskId, t.commitDeadline + 1);
        }
        if (block.timestamp > t.revealDeadline) revert IMarketplace.MarketplaceRevealClosed(taskId, t.revealDeadline);
        if (callbackData.length > MarketStorage.MAX_CALLBACK_DATA) {
            revert IMarketplace.MarketplaceCallbackDataTooLarge(callbackData.length, MarketStorage.MAX_CALLBACK_DATA);
        }
        IMarketplace.Replica storage r = s.replicas[taskId][slot];
        if (keccak256(abi.encode(taskId, digest, salt, worker)) != r.hash) {
            revert IMarketplace.MarketplaceCommitmentMismatch(taskId, worker);
        }
        r.hash = digest;
        t.revealed |= bit;
        if (callbackData.length != 0 && job.flags & MarketStorage.JOB_CALLBACK != 0) {
            s.callbackData[taskId][slot] = callbackData;
        }
        emit IMarketplace.ResultRevealed(taskId, worker, digest, cid, callbackData);
        if (Consensus.popcount(t.revealed) == t.target) _finalize(s, taskId, job, t);
        else s.tasks[taskId] = t;
    }

    /// @dev Strict-majority settlement of an active task whose reveal phase is over (see {finalize}).
    function _finalize(MarketStorage.State storage s, uint256 taskId, IMarketplace.Job storage job, IMarketplace.Task memory t) private {
        uint256 target = t.target;
        bytes32[] memory digests = new bytes32[](Consensus.popcount(t.revealed));
        uint256 k;
        for (uint256 i = 0; i < target; ++i) {
            if (t.revealed & (1 << i) != 0) digests[k++] = s.replicas[taskId][i].hash;
        }
        (bytes32 winner, uint256 votes) = Consensus.strictMajority(digests, target);
        uint256 stakeAmount = job.replicaStake;
        uint256 jobId = taskId >> 32;
        if (votes != 0) {
            uint256 pool = uint256(job.replication) * job.reward;
            uint256 fee = pool * job.feeBps / 10_000;
            uint256 share = (pool - fee) / votes;
            uint256 firstWinner = type(uint256).max;
            for (uint256 i = 0; i < target; ++i) {
                if (t.occupied & (1 << i) == 0) continue;
                IMarketplace.Replica storage r = s.replicas[taskId][i];
                address worker = r.worker;
                if (t.revealed & (1 << i) != 0 && r.hash == winner) {
                    if (firstWinner == type(uint256).max) firstWinner = i;
                    IMarketplace.Worker storage w = s.workers[worker];
                    w.locked -= uint96(stakeAmount);
                    w.reputation += 1;
                    s.balances[worker] += share;
                } else {
                    s.slash(worker, taskId, stakeAmount);
                }
            }
            uint256 toTreasury = pool - share * votes; // the fee plus the division dust
            if (toTreasury != 0) s.balances[s.treasury] += toTreasury;
            t.status = IMarketplace.TaskStatus.Finalized;
            s.tasks[taskId] = t;
            job.settled += 1;
            job.finished += 1;
            emit IMarketplace.TaskFinalized(taskId, winner, votes, share);
            s.closeIfSettled(jobId, job);
            if (job.flags & MarketStorage.JOB_CALLBACK != 0) {
                bytes memory data = s.callbackData[taskId][firstWinner];
                s.deliverCallback(s.jobExtras[jobId].callback, taskId, winner, data);
            }
            return;
        }
        // No strict majority: the silent replicas are slashed and leave; the revealed ones stay.
        for (uint256 i = 0; i < target; ++i) {
            uint16 bit = uint16(1 << i);
            if (t.occupied & bit == 0 || t.revealed & bit != 0) continue;
            t.occupied &= ~bit;
            t.committed &= ~bit;
            s.slash(s.replicas[taskId][i].worker, taskId, stakeAmount);
        }
        if (target + 2 <= s.params.maxReplicas) {
            t.target = uint8(target + 2);
            t.commitDeadline = 0;
            t.revealDeadline = 0;
            s.tasks[taskId] = t;
            emit IMarketplace.ReplicasAdded(taskId, target + 2);
            return;
        }
        for (uint256 i = 0; i < target; ++i) {
            if (t.revealed & (1 << i) != 0) s.workers[s.replicas[taskId][i].worker].locked -= uint96(stakeAmount);
        }
        t.status = IMarketplace.TaskStatus.Failed;
        t.occupied = 0;
        s.tasks[taskId] = t;
        uint256 refund = MarketStorage.taskCost(job);
        job.settled += 1;
        s.balances[job.requester] += refund;
        emit IMarketplace.TaskFailed(taskId, refund);
        s.closeIfSettled(jobId, job);
        s.deliverFailure(job, taskId, ITaskCallback.FailureReason.NoConsensus);
    }
}
