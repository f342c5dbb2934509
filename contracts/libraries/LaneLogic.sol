// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IMarketplace} from "../IMarketplace.sol";
import {IMarketplaceExtension} from "../IMarketplaceExtension.sol";
import {Consensus} from "./Consensus.sol";
import {CredibilityMath} from "./CredibilityMath.sol";
import {MarketStorage} from "./MarketStorage.sol";
import {RangeBitmap} from "./RangeBitmap.sol";
import {ReplicaLogic} from "./ReplicaLogic.sol";

/// @title LaneLogic
/// @notice Replicated ranges ("lanes", PROTOCOL.md): a chunk of `count` consecutive tasks of a fixed-R job is
/// leased R times by R distinct workers. Each lane commits one root over its per-task commitments and reveals its
/// whole list; when every lane reveals the same list the chunk's tasks are final at once, otherwise the chunk
/// splits into per-task rounds that {ReplicaLogic} settles exactly as it settles any task.
/// @dev Internal functions, compiled into {MarketplaceExtension}, which runs by DELEGATECALL on the marketplace's
/// storage. A chunk is a round of the marketplace's `tasks` map under its own key ({key}): its `target` is the
/// job's R, its `occupied`, `committed` and `revealed` masks count lanes, its windows are the lanes' windows; each
/// lane is a `replicas` entry under that key (worker, expiry; hash = the root, then the hash of the revealed list).
library LaneLogic {
    using MarketStorage for MarketStorage.State;
    using RangeBitmap for mapping(uint256 => uint256);

    /// @dev The most tasks in one chunk: a split of a whole chunk must fit in one transaction.
    uint256 internal constant MAX_LANE = MarketStorage.MAX_LANE;

    /// @dev A chunk's key in `tasks` and `replicas`: no task id has bit 255 set (task ids are below 2^64), and the
    /// count is part of the key, so a lane can only join the chunk it names.
    function key(uint256 startTaskId, uint256 count) internal pure returns (uint256) {
        return (1 << 255) | (count << 64) | (startTaskId & type(uint64).max);
    }

    /// @dev See {IMarketplaceExtension-claimLane}.
    function claim(MarketStorage.State storage s, uint256 startTaskId, uint256 count, address worker) internal {
        uint256 jobId = startTaskId >> 32;
        IMarketplace.Job storage job = s.openJob(jobId);
        if (count == 0 || count > MAX_LANE) revert IMarketplace.MarketplaceInvalidRange(count, MAX_LANE);
        uint256 index = startTaskId & type(uint32).max;
        if (index + count > job.numTasks) {
            revert IMarketplace.MarketplaceTaskOutOfRange(jobId, index + count - 1, job.numTasks);
        }
        uint256 k = key(startTaskId, count);
        IMarketplace.Task memory t = s.tasks[k];
        if (t.status == IMarketplace.TaskStatus.None) {
            _laneJob(job, jobId); // a check chunk of a credibility-mode job exists already ({checkLease})
            // The first lane fixes the chunk: its tasks leave the free pool (per-task claims and other chunks).
            uint256 conflict = s.taken[jobId].trySetRange(index, count);
            if (conflict != type(uint256).max) revert IMarketplace.MarketplaceTaskTaken((jobId << 32) | conflict);
            t.status = IMarketplace.TaskStatus.Active;
            t.target = job.replication;
        } else if (t.status != IMarketplace.TaskStatus.Active) {
            revert IMarketplace.MarketplaceTaskNotActive(startTaskId);
        } else if (t.commitDeadline != 0 && block.timestamp > t.commitDeadline) {
            revert IMarketplace.MarketplaceCommitClosed(startTaskId, t.commitDeadline);
        }
        uint256 free = type(uint256).max;
        for (uint256 i = 0; i < t.target; ++i) {
            if (t.occupied & (1 << i) != 0) {
                if (s.replicas[k][i].worker == worker) revert IMarketplace.MarketplaceAlreadyClaimed(startTaskId, worker);
            } else if (free == type(uint256).max) {
                free = i;
            }
        }
        if (free == type(uint256).max) revert IMarketplace.MarketplaceNoFreeReplica(startTaskId);
        if (job.archMask & MarketStorage.ARCH_HOMOGENEOUS != 0) {
            // Homogeneous redundancy: the first lane's platform class binds the chunk (and, at a split, its tasks).
            bytes32 yours = s.platformClass[worker];
            bytes32 bound = s.taskClass[k];
            if (bound == 0 && yours != 0) {
                s.taskClass[k] = yours;
                emit IMarketplace.TaskPlatformClassBound(startTaskId, yours);
            } else if (bound != yours || yours == 0) {
                revert IMarketplace.MarketplacePlatformClassMismatch(jobId, index, bound, yours);
            }
        }
        uint256 expiry = block.timestamp + count * job.maxRunSeconds + s.params.claimGrace;
        if (expiry > job.deadline) revert IMarketplace.MarketplaceClaimPastDeadline(expiry, job.deadline);
        s.lockStake(worker, jobId, job, count * job.replicaStake);
        t.occupied |= uint16(1 << free);
        s.tasks[k] = t;
        IMarketplace.Replica storage lane = s.replicas[k][free];
        lane.worker = worker;
        lane.expiry = uint40(expiry);
        emit IMarketplaceExtension.LaneClaimed(startTaskId, worker, free, count, expiry);
    }

    /// @dev See {IMarketplaceExtension-commitLane}.
    function commit(MarketStorage.State storage s, uint256 startTaskId, uint256 count, bytes32 root, address worker)
        internal
    {
        (IMarketplace.Job storage job, IMarketplace.Task memory t, uint256 k, uint256 slot) =
            _held(s, startTaskId, count, worker);
        uint16 bit = uint16(1 << slot);
        if (t.committed & bit != 0) revert IMarketplace.MarketplaceAlreadyCommitted(startTaskId, worker);
        IMarketplace.Replica storage lane = s.replicas[k][slot];
        if (block.timestamp > lane.expiry) revert IMarketplace.MarketplaceClaimExpired(startTaskId, worker, lane.expiry);
        if (t.commitDeadline != 0 && block.timestamp > t.commitDeadline) {
            revert IMarketplace.MarketplaceCommitClosed(startTaskId, t.commitDeadline);
        }
        if (root == 0) revert IMarketplace.MarketplaceCommitmentMismatch(startTaskId, worker);
        lane.hash = root;
        t.committed |= bit;
        IMarketplace.Params storage cfg = s.params;
        if (t.commitDeadline == 0) {
            // the other lanes may have claimed just now: they get a whole run of the chunk to commit
            uint256 run = count * job.maxRunSeconds;
            uint256 window = cfg.commitWindow > run ? cfg.commitWindow : run;
            t.commitDeadline = uint40(block.timestamp + window);
            t.revealDeadline = uint40(t.commitDeadline + cfg.revealWindow);
            t.commitBlock = uint40(block.number);
        }
        if (Consensus.popcount(t.committed) == t.target) t.revealDeadline = uint40(block.timestamp + cfg.revealWindow);
        s.tasks[k] = t;
        emit IMarketplaceExtension.LaneCommitted(startTaskId, worker, root);
    }

    /// @dev See {IMarketplaceExtension-revealLane}.
    function reveal(
        MarketStorage.State storage s,
        uint256 startTaskId,
        bytes32[] calldata digests,
        bytes32[] calldata salts,
        string[] calldata cids,
        address worker
    ) internal {
        uint256 count = digests.length;
        (IMarketplace.Job storage job, IMarketplace.Task memory t, uint256 k, uint256 slot) =
            _held(s, startTaskId, count, worker);
        uint16 bit = uint16(1 << slot);
        if (t.committed & bit == 0) revert IMarketplace.MarketplaceNotCommitted(startTaskId, worker);
        if (t.revealed & bit != 0) revert IMarketplace.MarketplaceAlreadyRevealed(startTaskId, worker);
        if (Consensus.popcount(t.committed) != t.target && block.timestamp <= t.commitDeadline) {
            revert IMarketplace.MarketplaceRevealNotOpen(startTaskId, t.commitDeadline + 1);
        }
        if (block.timestamp > t.revealDeadline) revert IMarketplace.MarketplaceRevealClosed(startTaskId, t.revealDeadline);
        if (salts.length != count) revert IMarketplace.MarketplaceLengthMismatch(count, salts.length);
        if (cids.length != count) revert IMarketplace.MarketplaceLengthMismatch(count, cids.length);
        IMarketplace.Replica storage lane = s.replicas[k][slot];
        if (rootOf(startTaskId, digests, salts, worker) != lane.hash) {
            revert IMarketplace.MarketplaceCommitmentMismatch(startTaskId, worker);
        }
        bytes32 listHash = keccak256(abi.encode(digests));
        lane.hash = listHash;
        t.revealed |= bit;
        emit IMarketplaceExtension.LaneRevealed(startTaskId, worker, listHash);
        for (uint256 i = 0; i < count; ++i) {
            emit IMarketplace.ResultRevealed(startTaskId + i, worker, digests[i], cids[i], "");
        }
        if (Consensus.popcount(t.revealed) == t.target && _unanimous(s, k, t, listHash) && _credible(s, job, startTaskId >> 32, k, t)) {
            return _settle(s, startTaskId, job, t, k, digests);
        }
        s.tasks[k] = t;
    }

    /// @dev The root a lane commits: keccak256 of its per-task commitments, packed in task order.
    function rootOf(uint256 startTaskId, bytes32[] calldata digests, bytes32[] calldata salts, address worker)
        internal
        pure
        returns (bytes32)
    {
        uint256 n = digests.length;
        bytes32[] memory leaves = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            leaves[i] = keccak256(abi.encode(startTaskId + i, digests[i], salts[i], worker));
        }
        return keccak256(abi.encodePacked(leaves));
    }

    /// @dev See {IMarketplaceExtension-splitLanes}.
    function split(MarketStorage.State storage s, uint256 startTaskId, uint256 count, bytes32[][] calldata lists)
        internal
    {
        s.openJob(startTaskId >> 32);
        uint256 k = key(startTaskId, count);
        IMarketplace.Task memory t = s.tasks[k];
        if (t.status != IMarketplace.TaskStatus.Active) revert IMarketplace.MarketplaceTaskNotActive(startTaskId);
        uint256 target = t.target;
        // All lanes revealed (and disagree: an agreeing set settled at its last reveal), or the reveals are over.
        if (
            Consensus.popcount(t.revealed) != target
                && (t.revealDeadline == 0 || block.timestamp <= t.revealDeadline)
        ) revert IMarketplace.MarketplaceNotFinalizable(startTaskId, t.revealDeadline);
        IMarketplace.Replica[] memory lanes = new IMarketplace.Replica[](target);
        uint256 listed;
        for (uint256 i = 0; i < target; ++i) {
            if (t.occupied & (1 << i) == 0) continue;
            lanes[i] = s.replicas[k][i];
            if (t.revealed & (1 << i) == 0) continue;
            if (listed >= lists.length) revert IMarketplace.MarketplaceLengthMismatch(Consensus.popcount(t.revealed), lists.length);
            bytes32[] calldata list = lists[listed++];
            if (list.length != count || keccak256(abi.encode(list)) != lanes[i].hash) {
                revert IMarketplaceExtension.MarketplaceLaneListMismatch(startTaskId, lanes[i].worker);
            }
        }
        if (listed != lists.length) revert IMarketplace.MarketplaceLengthMismatch(listed, lists.length);
        s.tasks[k].status = IMarketplace.TaskStatus.Finalized; // the chunk ends; its tasks go on as rounds of their own
        emit IMarketplaceExtension.LanesSplit(startTaskId, count);
        bytes32 class = s.taskClass[k];
        for (uint256 j = 0; j < count; ++j) {
            uint256 taskId = startTaskId + j;
            s.tasks[taskId] = t; // the chunk's lanes, masks and windows: each task's round as it stood
            if (class != 0) s.taskClass[taskId] = class;
            listed = 0;
            for (uint256 i = 0; i < target; ++i) {
                if (t.occupied & (1 << i) == 0) continue;
                IMarketplace.Replica storage r = s.replicas[taskId][i];
                r.worker = lanes[i].worker;
                r.expiry = lanes[i].expiry;
                if (t.revealed & (1 << i) != 0) r.hash = lists[listed++][j];
            }
            // strict majority per task, exactly as for any task: losers and silent lanes slashed for it alone
            ReplicaLogic.finalize(s, taskId);
        }
    }

    /// @dev See {IMarketplaceExtension-reopenLanes}.
    function reopen(MarketStorage.State storage s, uint256 startTaskId, uint256 count) internal {
        IMarketplace.Job storage job = s.knownJob(startTaskId >> 32);
        uint256 k = key(startTaskId, count);
        IMarketplace.Task memory t = s.tasks[k];
        if (t.status != IMarketplace.TaskStatus.Active) revert IMarketplace.MarketplaceTaskNotActive(startTaskId);
        uint256 amount = count * job.replicaStake;
        bool any;
        for (uint256 i = 0; i < t.target; ++i) {
            uint16 bit = uint16(1 << i);
            if (t.occupied & bit == 0 || t.committed & bit != 0) continue;
            IMarketplace.Replica storage lane = s.replicas[k][i];
            if (block.timestamp <= lane.expiry) continue;
            any = true;
            t.occupied &= ~bit;
            address worker = lane.worker;
            emit IMarketplaceExtension.LaneExpired(startTaskId, worker);
            s.slash(worker, startTaskId, amount);
        }
        if (!any) revert IMarketplace.MarketplaceNothingExpired(startTaskId);
        s.tasks[k] = t;
    }

    /// @dev See {IMarketplaceExtension-releaseLanes}.
    function release(MarketStorage.State storage s, uint256 startTaskId, uint256 count) internal {
        uint256 jobId = startTaskId >> 32;
        IMarketplace.Job storage job = s.knownJob(jobId);
        if (job.flags & MarketStorage.JOB_CLOSED == 0) revert IMarketplace.MarketplaceDeadlineNotReached(jobId, job.deadline);
        uint256 k = key(startTaskId, count);
        IMarketplace.Task memory t = s.tasks[k];
        if (t.status != IMarketplace.TaskStatus.Active) revert IMarketplace.MarketplaceTaskNotActive(startTaskId);
        uint256 amount = count * job.replicaStake;
        for (uint256 i = 0; i < t.target; ++i) {
            uint16 bit = uint16(1 << i);
            if (t.occupied & bit == 0) continue;
            address worker = s.replicas[k][i].worker;
            bool slashed = t.committed & bit == 0;
            emit IMarketplaceExtension.LaneReleased(startTaskId, worker, slashed);
            if (slashed) s.slash(worker, startTaskId, amount);
            else s.workers[worker].locked -= uint96(amount);
        }
        t.occupied = 0;
        t.status = IMarketplace.TaskStatus.Failed;
        s.tasks[k] = t;
    }

    /// @dev See {IMarketplaceExtension-dissolveLanes}. The join window ends at the earliest lane's claim plus the
    /// claim grace: a lane's expiry is its claim + `count * maxRunSeconds` + the claim grace, so that is the earliest
    /// expiry less `count * maxRunSeconds` (no storage of its own). A chunk left with no lane (each expired and was
    /// reopened) may be dissolved at once.
    function dissolve(MarketStorage.State storage s, uint256 startTaskId, uint256 count) internal {
        uint256 jobId = startTaskId >> 32;
        IMarketplace.Job storage job = s.openJob(jobId);
        // a check chunk holds a committed lease: it ends by its lanes' reveals or a split, never back in the pool
        if (job.flags & MarketStorage.JOB_CREDIBILITY != 0) revert IMarketplaceExtension.MarketplaceLanesUnsupported(jobId);
        uint256 k = key(startTaskId, count);
        IMarketplace.Task memory t = s.tasks[k];
        if (t.status != IMarketplace.TaskStatus.Active) revert IMarketplace.MarketplaceTaskNotActive(startTaskId);
        uint256 lanes = Consensus.popcount(t.occupied);
        if (lanes == t.target || t.revealed != 0) {
            revert IMarketplaceExtension.MarketplaceLanesNotDissolvable(
                startTaskId, lanes, t.target, Consensus.popcount(t.revealed)
            );
        }
        uint256 earliest = type(uint256).max;
        for (uint256 i = 0; i < t.target; ++i) {
            if (t.occupied & (1 << i) == 0) continue;
            uint256 expiry = s.replicas[k][i].expiry;
            if (expiry < earliest) earliest = expiry;
        }
        uint256 joinUntil = lanes == 0 ? 0 : earliest - count * job.maxRunSeconds;
        if (block.timestamp <= joinUntil) revert IMarketplaceExtension.MarketplaceLanesJoinOpen(startTaskId, joinUntil);
        uint96 amount = uint96(count * job.replicaStake);
        delete s.tasks[k];
        for (uint256 i = 0; i < t.target; ++i) {
            if (t.occupied & (1 << i) == 0) continue;
            s.workers[s.replicas[k][i].worker].locked -= amount;
            delete s.replicas[k][i];
        }
        if (s.taskClass[k] != 0) delete s.taskClass[k];
        s.taken[jobId].clearRange(startTaskId & type(uint32).max, count);
        emit IMarketplaceExtension.LanesDissolved(startTaskId, count);
    }

    /// @dev See {IMarketplaceExtension-checkLease}. The chunk takes the lease's place: the lease's tasks stay taken,
    /// its stake stays locked (a lane locks as much), its commitment becomes lane 0's root (the same format) and its
    /// commit block stays the chunk's. The check lane gets a whole run of the chunk plus the claim grace to commit.
    function checkLease(MarketStorage.State storage s, uint256 startTaskId, bytes32 root, uint256 commitBlock)
        internal
    {
        uint256 jobId = startTaskId >> 32;
        IMarketplace.Job storage job = s.openJob(jobId);
        if (job.flags & MarketStorage.JOB_CREDIBILITY == 0) {
            revert IMarketplace.MarketplaceWrongReplication(jobId, job.replication);
        }
        IMarketplace.Lease memory lease = s.leases[startTaskId];
        if (lease.worker == address(0)) revert IMarketplace.MarketplaceUnknownLease(startTaskId);
        if (block.timestamp > lease.expiry) revert IMarketplace.MarketplaceLeaseExpired(startTaskId, lease.expiry);
        bytes32 seal = s.rangeCommits[startTaskId];
        if (seal == 0) revert IMarketplace.MarketplaceNotCommitted(startTaskId, lease.worker);
        if (MarketStorage.rangeSeal(root, commitBlock) != seal) {
            revert IMarketplace.MarketplaceCommitmentMismatch(startTaskId, lease.worker);
        }
        if (block.number <= commitBlock) revert IMarketplace.MarketplaceSpotCheckUndecided(startTaskId, commitBlock + 1);
        if (
            !MarketStorage.checkedAsLane(job, lease.count)
                || !CredibilityMath.spotChecked(startTaskId, commitBlock, s.credibility[jobId].spotCheckBps)
        ) revert IMarketplace.MarketplaceNoSpotCheck(startTaskId);
        uint256 k = key(startTaskId, lease.count);
        s.openCheckRound(k, uint256(lease.count) * job.maxRunSeconds, commitBlock);
        IMarketplace.Replica storage lane = s.replicas[k][0];
        lane.worker = lease.worker;
        lane.expiry = lease.expiry;
        lane.hash = root;
        delete s.leases[startTaskId];
        delete s.rangeCommits[startTaskId];
        emit IMarketplaceExtension.LeaseChecked(startTaskId, lease.worker, lease.count);
        emit IMarketplaceExtension.LaneClaimed(startTaskId, lease.worker, 0, lease.count, lease.expiry);
        emit IMarketplaceExtension.LaneCommitted(startTaskId, lease.worker, root);
    }

    /// @dev Whether the lanes of chunk `k` (all revealed, the same list) are credible enough to settle it: always
    /// for a fixed-R job; in credibility mode when their credibility as one group reaches the job's confidence
    /// (ReplicaLogic's rule for agreeing replicas), else the chunk is split and its tasks want more replicas.
    function _credible(
        MarketStorage.State storage s,
        IMarketplace.Job storage job,
        uint256 jobId,
        uint256 k,
        IMarketplace.Task memory t
    ) private view returns (bool) {
        if (job.flags & MarketStorage.JOB_CREDIBILITY == 0) return true;
        IMarketplace.Credibility memory c = s.credibility[jobId];
        // every lane counts: all of them revealed (and so committed) the same list
        return MarketStorage.groupPpb(s, k, t.target, type(uint256).max, c.faultBps) >= c.confidencePpb;
    }

    /// @dev Reverts unless a lane may start a new chunk of open job `job`: R > 1, not credibility mode (its chunks
    /// are check chunks only, {checkLease}), no callback.
    function _laneJob(IMarketplace.Job storage job, uint256 jobId) private view {
        if (
            job.replication == 1
                || job.flags & (MarketStorage.JOB_CREDIBILITY | MarketStorage.JOB_CALLBACK) != 0
        ) revert IMarketplaceExtension.MarketplaceLanesUnsupported(jobId);
    }

    /// @dev `worker`'s lane of the active chunk (`startTaskId`, `count`) of an open job: the job, the chunk round,
    /// its key and the lane's slot.
    function _held(MarketStorage.State storage s, uint256 startTaskId, uint256 count, address worker)
        private
        view
        returns (IMarketplace.Job storage job, IMarketplace.Task memory t, uint256 k, uint256 slot)
    {
        job = s.openJob(startTaskId >> 32);
        k = key(startTaskId, count);
        t = s.tasks[k];
        if (t.status != IMarketplace.TaskStatus.Active) revert IMarketplace.MarketplaceTaskNotActive(startTaskId);
        for (uint256 i = 0; i < t.target; ++i) {
            if (t.occupied & (1 << i) != 0 && s.replicas[k][i].worker == worker) return (job, t, k, i);
        }
        revert IMarketplace.MarketplaceNotClaimant(startTaskId, worker);
    }

    /// @dev Whether every lane of the chunk revealed the list hashed `listHash` (all have revealed).
    function _unanimous(MarketStorage.State storage s, uint256 k, IMarketplace.Task memory t, bytes32 listHash)
        private
        view
        returns (bool)
    {
        for (uint256 i = 0; i < t.target; ++i) {
            if (s.replicas[k][i].hash != listHash) return false;
        }
        return true;
    }

    /// @dev Every lane revealed the same list: its `count` tasks are final at once. Each lane is paid a winner's
    /// share of each task, gets its stake back and counts `count` more results (verified: they matched).
    function _settle(
        MarketStorage.State storage s,
        uint256 startTaskId,
        IMarketplace.Job storage job,
        IMarketplace.Task memory t,
        uint256 k,
        bytes32[] calldata digests
    ) private {
        uint256 count = digests.length;
        uint256 votes = t.target;
        uint256 pool = votes * job.reward; // votes == R: a chunk never adds lanes
        uint256 share = (pool - pool * job.feeBps / 10_000) / votes;
        for (uint256 i = 0; i < votes; ++i) {
            address worker = s.replicas[k][i].worker;
            IMarketplace.Worker storage w = s.workers[worker];
            w.locked -= uint96(count * job.replicaStake);
            w.reputation += uint32(count);
            w.verified += uint32(count);
            s.balances[worker] += count * share;
        }
        uint256 toTreasury = count * (pool - share * votes);
        if (toTreasury != 0) s.balances[s.treasury] += toTreasury;
        // credibility mode: the job escrowed its cap of replicas per task; the two lanes used two
        uint256 unused = job.flags & MarketStorage.JOB_CREDIBILITY != 0 ? uint256(job.replication) - votes : 0;
        if (unused != 0) s.balances[job.requester] += count * unused * job.reward;
        t.status = IMarketplace.TaskStatus.Finalized;
        s.tasks[k] = t;
        job.settled += uint32(count);
        job.finished += uint32(count);
        for (uint256 i = 0; i < count; ++i) {
            emit IMarketplace.TaskFinalized(startTaskId + i, digests[i], votes, share);
        }
        s.closeIfSettled(startTaskId >> 32, job);
    }
}
