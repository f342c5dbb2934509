// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IMarketplace, ITaskCallback} from "../IMarketplace.sol";
import {Consensus} from "./Consensus.sol";
import {CredibilityMath} from "./CredibilityMath.sol";
import {MarketStorage} from "./MarketStorage.sol";
import {RangeBitmap} from "./RangeBitmap.sol";

/// @title ReplicaLogic
/// @notice The replicated commit-reveal state machine (jobs with R > 1): claim a replica slot, commit,
/// reveal, finalize by strict majority (or, in credibility mode, by the credibility of a group of matching
/// results), reopen expired claims, release replicas of closed jobs.
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
            t.target = job.flags & MarketStorage.JOB_CREDIBILITY != 0 ? 1 : job.replication;
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
        if (job.archMask & MarketStorage.ARCH_HOMOGENEOUS != 0) {
            // Homogeneous redundancy: the first replica's platform class binds the task; a worker of another class
            // (or of none) may not join it. Another class having bound it first is a race claimSome skips.
            bytes32 yours = s.platformClass[worker];
            bytes32 bound = s.taskClass[taskId];
            if (bound == 0 && yours != 0) {
                s.taskClass[taskId] = yours;
                emit IMarketplace.TaskPlatformClassBound(taskId, yours);
            } else if (bound != yours || yours == 0) {
                if (!strict && yours != 0) return false;
                revert IMarketplace.MarketplacePlatformClassMismatch(jobId, index, bound, yours);
            }
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
            t.commitBlock = uint40(block.number);
        }
        if (Consensus.popcount(t.committed) == t.target) {
            t.revealDeadline = uint40(block.timestamp + cfg.revealWindow); // everyone committed: reveal now
            if (job.flags & MarketStorage.JOB_CREDIBILITY != 0) _wantIfNotCredible(s, taskId, job, t);
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
        if (t.target == 1 && job.flags & MarketStorage.JOB_CREDIBILITY != 0) _checkSpotCheck(s, taskId, t);
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
        if (job.flags & MarketStorage.JOB_CREDIBILITY != 0) return _finalizeCredible(s, taskId, job, t);
        uint256 target = t.target;
        bytes32[] memory digests = new bytes32[](Consensus.popcount(t.revealed));
        uint256 k;
        for (uint256 i = 0; i < target; ++i) {
            if (t.revealed & (1 << i) != 0) digests[k++] = s.replicas[taskId][i].hash;
        }
        (bytes32 winner, uint256 votes) = Consensus.strictMajority(digests, target);
        if (votes != 0) return _settle(s, taskId, job, t, winner, votes);
        // No strict majority: the silent replicas are slashed and leave; the revealed ones stay.
        _dropSilent(s, taskId, job, t);
        if (target + 2 <= s.params.maxReplicas) {
            t.target = uint8(target + 2);
            t.commitDeadline = 0;
            t.revealDeadline = 0;
            s.tasks[taskId] = t;
            emit IMarketplace.ReplicasAdded(taskId, target + 2);
            return;
        }
        _fail(s, taskId, job, t);
    }

    /// @dev Credibility-mode settlement (see PROTOCOL.md, "Credibility mode"): the revealed results form groups
    /// of equal digests. When they all agree, each worker weighs by its own credibility; when they disagree, every
    /// worker weighs as a new one (a reputation does not win a dispute). The best group is final once its
    /// credibility reaches the job's confidence; otherwise the silent replicas are slashed and the task wants one
    /// more replica, up to the job's cap, past which it fails and is refunded.
    function _finalizeCredible(
        MarketStorage.State storage s,
        uint256 taskId,
        IMarketplace.Job storage job,
        IMarketplace.Task memory t
    ) private {
        IMarketplace.Credibility memory c = s.credibility[taskId >> 32];
        (bytes32 winner, uint256 votes, uint256 ppb, bool dispute) = _bestGroup(s, taskId, t, c.faultBps);
        if (votes != 0 && ppb >= c.confidencePpb) return _settle(s, taskId, job, t, winner, votes);
        _dropSilent(s, taskId, job, t);
        if (t.target < job.replication) {
            _wantOneMore(s, taskId, t, dispute ? IMarketplace.MoreReason.Dispute : IMarketplace.MoreReason.NotCredible, ppb);
            return;
        }
        _fail(s, taskId, job, t);
    }

    /// @dev The revealed group with the highest credibility: its digest, size, credibility (ppb), and whether the
    /// revealed results disagree.
    function _bestGroup(MarketStorage.State storage s, uint256 taskId, IMarketplace.Task memory t, uint256 faultBps)
        private
        view
        returns (bytes32 winner, uint256 votes, uint256 ppb, bool dispute)
    {
        uint256 n = Consensus.popcount(t.revealed);
        bytes32[] memory digests = new bytes32[](n);
        uint256[] memory odds = new uint256[](n);
        uint256 k;
        for (uint256 i = 0; i < t.target; ++i) {
            if (t.revealed & (1 << i) == 0) continue;
            IMarketplace.Replica storage r = s.replicas[taskId][i];
            digests[k] = r.hash;
            odds[k++] = CredibilityMath.odds(s.workers[r.worker].verified, faultBps);
            if (r.hash != digests[0]) dispute = true;
        }
        uint256 base = CredibilityMath.odds(0, faultBps);
        uint256[] memory groupOdds = new uint256[](n); // per first member of each group; 0 for the others
        uint256 sum;
        uint256 best;
        for (uint256 i = 0; i < n; ++i) {
            bool first = true;
            for (uint256 j = 0; j < i; ++j) {
                if (digests[j] == digests[i]) first = false;
            }
            if (!first) continue;
            uint256 o = CredibilityMath.ONE;
            uint256 size;
            for (uint256 j = i; j < n; ++j) {
                if (digests[j] != digests[i]) continue;
                o = CredibilityMath.times(o, dispute ? base : odds[j]);
                ++size;
            }
            groupOdds[i] = o;
            sum += o;
            if (i == 0 || o > groupOdds[best]) (best, votes) = (i, size);
        }
        if (n != 0) (winner, ppb) = (digests[best], CredibilityMath.ppb(groupOdds[best], sum));
    }

    /// @dev Once every replica of a credibility-mode round committed: if all of them agreeing would still not be
    /// credible enough, the task wants one more replica before anyone reveals (so the new one cannot copy a
    /// revealed digest).
    function _wantIfNotCredible(
        MarketStorage.State storage s,
        uint256 taskId,
        IMarketplace.Job storage job,
        IMarketplace.Task memory t
    ) private {
        if (t.target >= job.replication || t.revealed != 0) return;
        IMarketplace.Credibility memory c = s.credibility[taskId >> 32];
        uint256 ppb = MarketStorage.groupPpb(s, taskId, t.target, t.committed, c.faultBps);
        if (ppb < c.confidencePpb) _wantOneMore(s, taskId, t, IMarketplace.MoreReason.NotCredible, ppb);
    }

    /// @dev Adds one replica slot to `t` (stored) and gives it a whole run to commit; reveals wait for its commit.
    function _wantOneMore(
        MarketStorage.State storage s,
        uint256 taskId,
        IMarketplace.Task memory t,
        IMarketplace.MoreReason reason,
        uint256 ppb
    ) private {
        IMarketplace.Job storage job = s.jobs[taskId >> 32];
        IMarketplace.Params storage cfg = s.params;
        uint256 window = cfg.commitWindow > job.maxRunSeconds ? cfg.commitWindow : job.maxRunSeconds;
        uint256 target = t.target + 1;
        t.target = uint8(target);
        t.commitDeadline = uint40(block.timestamp + window + cfg.claimGrace);
        t.revealDeadline = uint40(t.commitDeadline + cfg.revealWindow);
        s.tasks[taskId] = t;
        emit IMarketplace.ReplicasAdded(taskId, target);
        emit IMarketplace.ReplicaWanted(taskId, reason, target, ppb);
    }

    /// @dev Reverts the reveal of a credibility-mode task's single replica while its spot check is undecided or
    /// picked it (see {startSpotCheck}).
    function _checkSpotCheck(MarketStorage.State storage s, uint256 taskId, IMarketplace.Task memory t) private view {
        if (block.number <= t.commitBlock) {
            revert IMarketplace.MarketplaceSpotCheckUndecided(taskId, uint256(t.commitBlock) + 1);
        }
        if (CredibilityMath.spotChecked(taskId, t.commitBlock, s.credibility[taskId >> 32].spotCheckBps)) {
            revert IMarketplace.MarketplaceSpotCheckDue(taskId);
        }
    }

    /// @notice Whether `taskId`'s single committed replica is picked for a spot check (see {IMarketplace-spotCheckDue}).
    function spotCheckDue(MarketStorage.State storage s, uint256 taskId) public view returns (bool) {
        IMarketplace.Task memory t = s.tasks[taskId];
        IMarketplace.Job storage job = s.jobs[taskId >> 32];
        if (
            job.flags & MarketStorage.JOB_CREDIBILITY == 0 || t.status != IMarketplace.TaskStatus.Active
                || t.target != 1 || t.committed != 1 || t.revealed != 0 || block.number <= t.commitBlock
        ) return false;
        return CredibilityMath.spotChecked(taskId, t.commitBlock, s.credibility[taskId >> 32].spotCheckBps);
    }

    /// @notice Opens the check replica of a task picked for a spot check (see {IMarketplace-startSpotCheck}).
    function startSpotCheck(MarketStorage.State storage s, uint256 taskId) external {
        s.openJob(taskId >> 32);
        if (!spotCheckDue(s, taskId)) revert IMarketplace.MarketplaceNoSpotCheck(taskId);
        IMarketplace.Task memory t = s.tasks[taskId];
        uint256 verified = s.workers[s.replicas[taskId][0].worker].verified;
        _wantOneMore(s, taskId, t, IMarketplace.MoreReason.SpotCheck,
            CredibilityMath.ofWorker(verified, s.credibility[taskId >> 32].faultBps));
    }

    /// @notice Reverts unless `worker` may lease tasks of job `jobId` (see {IMarketplace-claimRange}): the job is in
    /// credibility mode and the worker's credibility alone reaches its confidence.
    function checkCredibleAlone(MarketStorage.State storage s, uint256 jobId, address worker) external view {
        IMarketplace.Job storage job = s.jobs[jobId];
        if (job.flags & MarketStorage.JOB_CREDIBILITY == 0) revert IMarketplace.MarketplaceWrongReplication(jobId, job.replication);
        IMarketplace.Credibility memory c = s.credibility[jobId];
        uint256 ppb = CredibilityMath.ofWorker(s.workers[worker].verified, c.faultBps);
        if (ppb < c.confidencePpb) revert IMarketplace.MarketplaceNotCredibleAlone(worker, ppb, c.confidencePpb);
    }

    /// @notice Commits `worker`'s results for its credibility-mode lease `startTaskId` (see {IMarketplace-commitRange}).
    function commitRange(MarketStorage.State storage s, uint256 startTaskId, bytes32 root, address worker) external {
        IMarketplace.Lease memory lease = _credibleLease(s, startTaskId, worker);
        if (s.rangeCommits[startTaskId] != 0) revert IMarketplace.MarketplaceAlreadyCommitted(startTaskId, worker);
        if (root == 0) revert IMarketplace.MarketplaceCommitmentMismatch(startTaskId, worker);
        s.rangeCommits[startTaskId] = MarketStorage.rangeSeal(root, block.number);
        uint256 until = block.timestamp + s.params.revealWindow;
        if (until > lease.expiry) s.leases[startTaskId].expiry = uint40(until); // room to reveal after a late commit
        emit IMarketplace.RangeCommitted(startTaskId, worker, root, lease.count);
    }

    /// @notice Reveals `worker`'s committed credibility-mode lease `startTaskId` (see {IMarketplace-revealRange}).
    function revealRange(
        MarketStorage.State storage s,
        uint256 startTaskId,
        uint256 commitBlock,
        bytes32[] calldata digests,
        bytes32[] calldata salts,
        string[] calldata cids,
        bytes[] calldata cbs,
        address worker
    ) external {
        IMarketplace.Lease memory lease = _credibleLease(s, startTaskId, worker);
        bytes32 seal = s.rangeCommits[startTaskId];
        if (seal == 0) revert IMarketplace.MarketplaceNotCommitted(startTaskId, worker);
        uint256 n = lease.count;
        if (digests.length != n) revert IMarketplace.MarketplaceLengthMismatch(n, digests.length);
        if (salts.length != n) revert IMarketplace.MarketplaceLengthMismatch(n, salts.length);
        if (cids.length != n) revert IMarketplace.MarketplaceLengthMismatch(n, cids.length);
        if (cbs.length != 0 && cbs.length != n) revert IMarketplace.MarketplaceLengthMismatch(n, cbs.length);
        bytes32[] memory leaves = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            leaves[i] = salts[i] == 0 ? digests[i] : keccak256(abi.encode(startTaskId + i, digests[i], salts[i], worker));
        }
        if (MarketStorage.rangeSeal(keccak256(abi.encodePacked(leaves)), commitBlock) != seal) {
            revert IMarketplace.MarketplaceCommitmentMismatch(startTaskId, worker);
        }
        if (block.number <= commitBlock) revert IMarketplace.MarketplaceSpotCheckUndecided(startTaskId, commitBlock + 1);
        uint256 jobId = startTaskId >> 32;
        IMarketplace.Job storage job = s.jobs[jobId];
        IMarketplace.Credibility memory c = s.credibility[jobId];
        // A lease a chunk can hold is checked whole, as a second lane ({LaneLogic-checkLease}), else task by task.
        bool asLane = MarketStorage.checkedAsLane(job, n);
        if (asLane && CredibilityMath.spotChecked(startTaskId, commitBlock, c.spotCheckBps)) {
            revert IMarketplace.MarketplaceSpotCheckDue(startTaskId);
        }
        uint256 ppb = CredibilityMath.ofWorker(s.workers[worker].verified, c.faultBps);
        delete s.leases[startTaskId];
        delete s.rangeCommits[startTaskId];
        uint256 opened;
        for (uint256 i = 0; i < n; ++i) {
            uint256 taskId = startTaskId + i;
            bool spot = !asLane && CredibilityMath.spotChecked(taskId, commitBlock, c.spotCheckBps);
            if (salts[i] == 0) {
                _seal(s, taskId, job, worker, lease.expiry, leaves[i], commitBlock);
                emit IMarketplace.ReplicaWanted(
                    taskId, spot ? IMarketplace.MoreReason.SpotCheck : IMarketplace.MoreReason.NotCredible, 2, ppb
                );
                continue;
            }
            if (ppb < c.confidencePpb) revert IMarketplace.MarketplaceNotCredibleAlone(worker, ppb, c.confidencePpb);
            if (spot) revert IMarketplace.MarketplaceSpotCheckDue(taskId);
            if (cbs.length != 0 && cbs[i].length > MarketStorage.MAX_CALLBACK_DATA) {
                revert IMarketplace.MarketplaceCallbackDataTooLarge(cbs[i].length, MarketStorage.MAX_CALLBACK_DATA);
            }
            ++opened;
            emit IMarketplace.ResultSubmitted(taskId, worker, digests[i], cids[i]);
        }
        if (opened == 0) return;
        _payAlone(s, job, worker, opened);
        s.closeIfSettled(jobId, job);
        if (job.flags & MarketStorage.JOB_CALLBACK != 0) {
            address callback = s.jobExtras[jobId].callback;
            for (uint256 i = 0; i < n; ++i) {
                if (salts[i] == 0) continue;
                s.deliverCallback(callback, startTaskId + i, digests[i], cbs.length == 0 ? bytes("") : cbs[i]);
            }
        }
    }

    /// @dev `worker`'s live lease `startTaskId` of an open credibility-mode job.
    function _credibleLease(MarketStorage.State storage s, uint256 startTaskId, address worker)
        private
        view
        returns (IMarketplace.Lease memory lease)
    {
        IMarketplace.Job storage job = s.openJob(startTaskId >> 32);
        if (job.flags & MarketStorage.JOB_CREDIBILITY == 0) {
            revert IMarketplace.MarketplaceWrongReplication(startTaskId >> 32, job.replication);
        }
        lease = s.leases[startTaskId];
        if (lease.worker == address(0)) revert IMarketplace.MarketplaceUnknownLease(startTaskId);
        if (lease.worker != worker) revert IMarketplace.MarketplaceNotLeaseHolder(startTaskId, worker);
        if (block.timestamp > lease.expiry) revert IMarketplace.MarketplaceLeaseExpired(startTaskId, lease.expiry);
    }

    /// @dev A sealed task of a revealed lease becomes a replicated task: `worker`'s replica in slot 0, committed to
    /// `commitment` in block `commitBlock` (its stake stays locked), and a second slot open for a whole run.
    function _seal(
        MarketStorage.State storage s,
        uint256 taskId,
        IMarketplace.Job storage job,
        address worker,
        uint256 expiry,
        bytes32 commitment,
        uint256 commitBlock
    ) private {
        s.openCheckRound(taskId, job.maxRunSeconds, commitBlock);
        IMarketplace.Replica storage r = s.replicas[taskId][0];
        r.worker = worker;
        r.expiry = uint40(expiry);
        r.hash = commitment;
        emit IMarketplace.ReplicaClaimed(taskId, worker, 0, expiry);
        emit IMarketplace.ResultCommitted(taskId, worker, commitment);
        emit IMarketplace.ReplicasAdded(taskId, 2);
    }

    /// @dev Effects of `n` results of a credibility-mode lease final alone: one replica's reward each (the rest of
    /// the cap's escrow back to the requester), stake unlocked, reputation, job counters.
    function _payAlone(MarketStorage.State storage s, IMarketplace.Job storage job, address worker, uint256 n) private {
        uint256 reward = job.reward;
        uint256 fee = reward * job.feeBps / 10_000;
        IMarketplace.Worker storage w = s.workers[worker];
        w.locked -= uint96(n * job.replicaStake); // the lease locked that much for these tasks
        w.reputation += uint32(n);
        s.balances[worker] += n * (reward - fee);
        if (fee != 0) s.balances[s.treasury] += n * fee;
        s.balances[job.requester] += n * (uint256(job.replication) - 1) * reward;
        job.settled += uint32(n);
        job.finished += uint32(n);
    }

    /// @dev Pays the replicas that revealed `winner` an equal share of the pool, slashes the others, finalizes.
    /// Every winner of a task with two or more matching results counts one more verified result. In credibility
    /// mode the pool is the replicas the task used and the rest of the cap's escrow goes back to the requester.
    function _settle(
        MarketStorage.State storage s,
        uint256 taskId,
        IMarketplace.Job storage job,
        IMarketplace.Task memory t,
        bytes32 winner,
        uint256 votes
    ) private {
        uint256 target = t.target;
        uint256 stakeAmount = job.replicaStake;
        uint256 jobId = taskId >> 32;
        uint256 pool = uint256(job.replication) * job.reward;
        uint256 unused;
        if (job.flags & MarketStorage.JOB_CREDIBILITY != 0) (pool, unused) = (target * job.reward, pool - target * job.reward);
        uint256 share = (pool - pool * job.feeBps / 10_000) / votes;
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
                if (votes >= 2) w.verified += 1;
                s.balances[worker] += share;
            } else {
                s.slash(worker, taskId, stakeAmount);
            }
        }
        uint256 toTreasury = pool - share * votes; // the fee plus the division dust
        if (toTreasury != 0) s.balances[s.treasury] += toTreasury;
        if (unused != 0) s.balances[job.requester] += unused;
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
    }

    /// @dev Slashes the claimed replicas that did not reveal and frees their slots (in `t`, not stored).
    function _dropSilent(MarketStorage.State storage s, uint256 taskId, IMarketplace.Job storage job, IMarketplace.Task memory t)
        private
    {
        uint256 stakeAmount = job.replicaStake;
        for (uint256 i = 0; i < t.target; ++i) {
            uint16 bit = uint16(1 << i);
            if (t.occupied & bit == 0 || t.revealed & bit != 0) continue;
            t.occupied &= ~bit;
            t.committed &= ~bit;
            s.slash(s.replicas[taskId][i].worker, taskId, stakeAmount);
        }
    }

    /// @dev The task failed: its revealed replicas get their stake back, the requester its escrow.
    function _fail(MarketStorage.State storage s, uint256 taskId, IMarketplace.Job storage job, IMarketplace.Task memory t) private {
        uint256 stakeAmount = job.replicaStake;
        for (uint256 i = 0; i < t.target; ++i) {
            if (t.revealed & (1 << i) != 0) s.workers[s.replicas[taskId][i].worker].locked -= uint96(stakeAmount);
        }
        t.status = IMarketplace.TaskStatus.Failed;
        t.occupied = 0;
        s.tasks[taskId] = t;
        uint256 refund = MarketStorage.taskCost(job);
        job.settled += 1;
        s.balances[job.requester] += refund;
        emit IMarketplace.TaskFailed(taskId, refund);
        s.closeIfSettled(taskId >> 32, job);
        s.deliverFailure(job, taskId, ITaskCallback.FailureReason.NoConsensus);
    }
}
