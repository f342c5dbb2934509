// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {IMarketplace, ITaskCallback} from "../IMarketplace.sol";
import {IMarketplaceRegistry} from "../IMarketplaceRegistry.sol";
import {CredibilityMath} from "./CredibilityMath.sol";

/// @title MarketStorage
/// @notice The marketplace's whole state as one storage struct, and the internal rules shared by
/// {Marketplace} and {ReplicaLogic} (which runs by DELEGATECALL on the same storage): job lookups,
/// stake locking and slashing, job closing and callbacks. Slot layouts of each struct: see {IMarketplace}.
library MarketStorage {
    uint8 internal constant REGISTERED = 1; // worker flag
    uint8 internal constant BANNED = 2; // worker flag
    uint8 internal constant JOB_CLOSED = 1; // job flag
    uint8 internal constant JOB_CALLBACK = 2; // job flag: JobExtras.callback is set
    uint8 internal constant JOB_CREDIBILITY = 4; // job flag: credibility mode (State.credibility holds its settings)
    /// @dev Bit 7 of a job's archMask is no architecture: it asks for homogeneous redundancy (R > 1 replicas of a
    /// task all come from one platform class). The architecture bits are the others.
    uint8 internal constant ARCH_HOMOGENEOUS = 0x80;
    /// @dev Gas kept for the code after a callback returns, on top of the callback's cap.
    uint256 internal constant CALLBACK_OVERHEAD = 10_000;
    uint256 internal constant MAX_CALLBACK_DATA = 1024;
    /// @dev The most tasks in one lane chunk (PROTOCOL.md, "Lanes"): a split of a whole chunk must fit in one
    /// transaction.
    uint256 internal constant MAX_LANE = 32;

    struct State {
        IMarketplace.Params params; // slots 0-1
        address treasury; // slot 2: treasury(160) | jobCount(32)
        uint32 jobCount;
        IMarketplaceRegistry registry; // slot 3
        mapping(address account => uint256) balances;
        mapping(address worker => IMarketplace.Worker) workers;
        mapping(uint256 jobId => IMarketplace.Job) jobs;
        mapping(uint256 jobId => IMarketplace.JobExtras) jobExtras;
        mapping(uint256 jobId => mapping(uint256 word => uint256 bits)) taken;
        mapping(uint256 startTaskId => IMarketplace.Lease) leases;
        mapping(uint256 taskId => IMarketplace.Task) tasks;
        mapping(uint256 taskId => mapping(uint256 replica => IMarketplace.Replica)) replicas;
        mapping(uint256 taskId => mapping(uint256 replica => bytes)) callbackData;
        mapping(uint256 taskId => IMarketplace.Failure) failures;
        mapping(uint256 jobId => IMarketplace.Credibility) credibility;
        mapping(address worker => bytes32) platformClass; // declared by {IMarketplace-setPlatformClass}
        mapping(uint256 taskId => bytes32) taskClass; // a homogeneous task's class, set by its first replica
        // credibility-mode leases committed: keccak256(abi.encode(root, commitBlock)) ({rangeSeal}), one slot
        mapping(uint256 startTaskId => bytes32) rangeCommits;
    }

    /// @dev Whether a spot check of a credible lease of `count` tasks of credibility-mode `job` checks the whole lease
    /// as a second lane ({LaneLogic-checkLease}; PROTOCOL.md, "Check lanes") rather than task by task: a job without a
    /// callback (a chunk settles without callback data) and a lease a chunk can hold.
    function checkedAsLane(IMarketplace.Job storage job, uint256 count) internal view returns (bool) {
        return job.flags & JOB_CALLBACK == 0 && count <= MAX_LANE;
    }

    /// @dev The credibility, in ppb, of the replicas in the slots `mask` of round `key` (those below `target`) as one
    /// group of agreeing results ({CredibilityMath}: the product of their odds): a task's committed replicas, or the
    /// lanes of a check chunk.
    function groupPpb(State storage s, uint256 key, uint256 target, uint256 mask, uint256 faultBps)
        internal
        view
        returns (uint256)
    {
        uint256 o = CredibilityMath.ONE;
        for (uint256 i = 0; i < target; ++i) {
            if (mask & (1 << i) == 0) continue;
            o = CredibilityMath.times(o, CredibilityMath.odds(s.workers[s.replicas[key][i].worker].verified, faultBps));
        }
        return CredibilityMath.ppb(o, o);
    }

    /// @dev How a credible lease's commitment is kept ({IMarketplace-getRangeCommit}): its root and the block of its
    /// commit in one slot. Its reveal and its check give both back, and a wrong one does not rebuild the seal.
    function rangeSeal(bytes32 root, uint256 commitBlock) internal pure returns (bytes32) {
        return keccak256(abi.encode(root, commitBlock));
    }

    /// @dev Opens the check round of a sealed result under `key` (a task, or a check chunk of lanes): its first replica
    /// (slot 0) committed in block `commitBlock`, a second one wanted within `run` seconds (at least the commit
    /// window) plus the claim grace, then the reveal window. The caller writes slot 0 and emits the events.
    function openCheckRound(State storage s, uint256 key, uint256 run, uint256 commitBlock) internal {
        IMarketplace.Params storage cfg = s.params;
        uint256 commitDeadline = block.timestamp + (cfg.commitWindow > run ? cfg.commitWindow : run) + cfg.claimGrace;
        s.tasks[key] = IMarketplace.Task({
            status: IMarketplace.TaskStatus.Active,
            target: 2,
            occupied: 1,
            committed: 1,
            revealed: 0,
            commitDeadline: uint40(commitDeadline),
            revealDeadline: uint40(commitDeadline + cfg.revealWindow),
            commitBlock: uint40(commitBlock)
        });
    }

    /// @dev Takes `amount` from `account`'s free balance; reverts with the balance and the amount when short.
    function debit(State storage s, address account, uint256 amount) internal {
        uint256 balance = s.balances[account];
        if (balance < amount) revert IMarketplace.MarketplaceInsufficientBalance(account, balance, amount);
        unchecked {
            s.balances[account] = balance - amount; // checked just above
        }
    }

    /// @dev The checks and bookkeeping of posting a job (see {IMarketplace-postJob}): locks the escrow, stores the
    /// job with `flags`, emits {IMarketplace-JobPosted}. Internal, so {Marketplace-postJob} runs it inline (no
    /// DELEGATECALL re-encoding the calldata struct: ~6,800 gas a posting) and {AccountLogic} inlines its own copy.
    function storeJob(State storage s, IMarketplace.JobParams calldata p, uint8 flags) internal returns (uint256 jobId) {
        if (p.numTasks == 0) revert IMarketplace.MarketplaceInvalidTaskCount(0);
        uint256 maxReplicas = s.params.maxReplicas;
        if (p.replication == 0 || p.replication > maxReplicas) {
            revert IMarketplace.MarketplaceInvalidReplication(p.replication, maxReplicas);
        }
        if (p.deadline <= block.timestamp) revert IMarketplace.MarketplaceInvalidDeadline(p.deadline, block.timestamp);
        if (p.maxRunSeconds == 0) revert IMarketplace.MarketplaceInvalidMaxRun(0);
        if (p.callback != address(0) && p.callback.code.length == 0) {
            revert IMarketplace.MarketplaceCallbackNotContract(p.callback);
        }
        (uint88 appPrice, uint88 datasetPrice) = s.registry.checkJob(p.appId, p.datasetId, msg.sender);
        uint256 ownersPrice = uint256(appPrice) + datasetPrice;
        if (ownersPrice > type(uint80).max) revert IMarketplace.MarketplacePriceTooHigh(ownersPrice, type(uint80).max);
        uint256 escrow = (uint256(p.replication) * p.reward + ownersPrice) * p.numTasks;
        debit(s, msg.sender, escrow);
        jobId = ++s.jobCount;
        s.jobs[jobId] = IMarketplace.Job({
            requester: msg.sender,
            deadline: p.deadline,
            maxRunSeconds: p.maxRunSeconds,
            replication: p.replication,
            cores: p.cores,
            gpus: p.gpus,
            numTasks: p.numTasks,
            settled: 0,
            finished: 0,
            appId: p.appId,
            datasetId: p.datasetId,
            minReputation: p.minReputation,
            memoryMB: p.memoryMB,
            feeBps: s.params.feeBps,
            flags: p.callback == address(0) ? flags : flags | JOB_CALLBACK,
            archMask: p.archMask,
            reward: p.reward,
            replicaStake: s.params.replicaStake,
            ownersPrice: uint80(ownersPrice)
        });
        if (p.callback != address(0) || datasetPrice != 0) {
            s.jobExtras[jobId] = IMarketplace.JobExtras({callback: p.callback, datasetPrice: datasetPrice});
        }
        emit IMarketplace.JobPosted(jobId, msg.sender, p.appId, p, escrow);
    }

    function knownJob(State storage s, uint256 jobId) internal view returns (IMarketplace.Job storage job) {
        job = s.jobs[jobId];
        if (job.requester == address(0)) revert IMarketplace.MarketplaceUnknownJob(jobId);
    }

    /// @dev A job that still accepts claims and results: known, not closed, deadline not passed.
    function openJob(State storage s, uint256 jobId) internal view returns (IMarketplace.Job storage job) {
        job = knownJob(s, jobId);
        if (job.flags & JOB_CLOSED != 0) revert IMarketplace.MarketplaceJobClosed(jobId);
        if (block.timestamp > job.deadline) revert IMarketplace.MarketplaceDeadlinePassed(jobId, job.deadline);
    }

    function taskCost(IMarketplace.Job storage job) internal view returns (uint256) {
        return uint256(job.replication) * job.reward + job.ownersPrice;
    }

    /// @dev Checks that `worker` may work on `job` and locks `amount` of its stake.
    function lockStake(State storage s, address worker, uint256 jobId, IMarketplace.Job storage job, uint256 amount) internal {
        IMarketplace.Worker storage w = s.workers[worker];
        uint8 flags = w.flags;
        if (flags & REGISTERED == 0) revert IMarketplace.MarketplaceNotWorker(worker);
        if (flags & BANNED != 0) revert IMarketplace.MarketplaceWorkerBanned(worker);
        uint8 arch = job.archMask & ~ARCH_HOMOGENEOUS;
        if (
            w.cores < job.cores || w.memoryMB < job.memoryMB || w.gpus < job.gpus
                || (arch != 0 && w.archMask & arch == 0)
        ) revert IMarketplace.MarketplaceCapabilityMismatch(worker, jobId);
        if (w.reputation < job.minReputation) {
            revert IMarketplace.MarketplaceReputationTooLow(worker, w.reputation, job.minReputation);
        }
        uint256 staked = w.stake;
        uint256 locked = w.locked;
        uint256 minStake = s.params.minStake;
        if (staked < minStake) revert IMarketplace.MarketplaceInsufficientStake(worker, staked, minStake);
        if (staked - locked < amount) revert IMarketplace.MarketplaceInsufficientStake(worker, staked - locked, amount);
        w.locked = uint96(locked + amount); // <= staked < 2^96
    }

    /// @dev Takes `amount` of `worker`'s locked stake to the treasury, halves its reputation, resets its credibility
    /// (its count of verified results), bans it after
    /// `maxSlashes` slashes or when its stake falls below `minStake`.
    function slash(State storage s, address worker, uint256 taskId, uint256 amount) internal {
        IMarketplace.Worker storage w = s.workers[worker];
        w.stake -= uint96(amount); // amount <= locked <= stake
        w.locked -= uint96(amount);
        uint32 reputation = w.reputation / 2;
        w.reputation = reputation;
        uint16 slashes = w.slashes + 1;
        w.slashes = slashes;
        if (w.verified != 0) w.verified = 0;
        s.balances[s.treasury] += amount;
        emit IMarketplace.WorkerSlashed(worker, taskId, amount, reputation);
        if (w.flags & BANNED == 0 && (slashes >= s.params.maxSlashes || w.stake < s.params.minStake)) {
            w.flags |= BANNED;
            emit IMarketplace.WorkerBanned(worker, true);
        }
    }

    function closeIfSettled(State storage s, uint256 jobId, IMarketplace.Job storage job) internal {
        if (job.settled == job.numTasks) close(s, jobId, job);
    }

    /// @dev Refunds the unsettled tasks to the requester and pays the owners for the finished ones.
    function close(State storage s, uint256 jobId, IMarketplace.Job storage job) internal {
        uint256 refund = (uint256(job.numTasks) - job.settled) * taskCost(job);
        uint256 finished = job.finished;
        uint256 datasetPaid = job.datasetId == 0 ? 0 : finished * s.jobExtras[jobId].datasetPrice;
        uint256 appPaid = finished * job.ownersPrice - datasetPaid;
        job.settled = job.numTasks;
        job.flags |= JOB_CLOSED;
        if (refund != 0) s.balances[job.requester] += refund;
        if (appPaid != 0 || datasetPaid != 0) {
            (address appOwner, address datasetOwner) = s.registry.owners(job.appId, job.datasetId);
            if (appPaid != 0) s.balances[appOwner] += appPaid;
            if (datasetPaid != 0) s.balances[datasetOwner] += datasetPaid;
        }
        emit IMarketplace.JobClosed(jobId, refund, appPaid, datasetPaid);
    }

    /// @dev Tells the job's callback that `taskId` finished with `digest` ({ITaskCallback-onTaskResult}).
    function deliverCallback(State storage s, address callback, uint256 taskId, bytes32 digest, bytes memory data) internal {
        bool ok = callCapped(s, callback, abi.encodeCall(ITaskCallback.onTaskResult, (taskId, digest, data)));
        emit IMarketplace.CallbackDelivered(taskId, callback, ok);
    }

    /// @dev If `job` has a callback, tells it that `taskId` failed ({ITaskCallback-onTaskFailed}).
    function deliverFailure(State storage s, IMarketplace.Job storage job, uint256 taskId, ITaskCallback.FailureReason reason)
        internal
    {
        if (job.flags & JOB_CALLBACK == 0) return;
        address callback = s.jobExtras[taskId >> 32].callback;
        bool ok = callCapped(s, callback, abi.encodeCall(ITaskCallback.onTaskFailed, (taskId, reason)));
        emit IMarketplace.CallbackDelivered(taskId, callback, ok);
    }

    /// @dev If `job` has a callback, tells it once that tasks `first .. first + count - 1` ended without a result
    /// ({ITaskCallback-onTasksEnded}): one call per cancelled range or closed job, whatever the number of tasks.
    function deliverEnded(
        State storage s,
        IMarketplace.Job storage job,
        uint256 jobId,
        uint256 first,
        uint256 count,
        ITaskCallback.FailureReason reason
    ) internal {
        if (job.flags & JOB_CALLBACK == 0) return;
        address callback = s.jobExtras[jobId].callback;
        bool ok = callCapped(s, callback, abi.encodeCall(ITaskCallback.onTasksEnded, (jobId, first, count, reason)));
        emit IMarketplace.TasksEndedDelivered(jobId, callback, first, count, reason, ok);
    }

    /// @dev Calls `callback` with `payload` and exactly `callbackGas` gas, ignoring its result and its return data
    /// (no return bomb: nothing is copied back). The caller must leave enough gas for the full cap (plus the 1/64
    /// EIP-150 keeps and {CALLBACK_OVERHEAD} for the code after it), so a finalizer cannot starve a callback into
    /// failing. A callback re-entering the marketplace hits its reentrancy guard (every entry point that reaches
    /// here is `nonReentrant`).
    function callCapped(State storage s, address callback, bytes memory payload) internal returns (bool ok) {
        uint256 cap = s.params.callbackGas;
        uint256 required = cap + cap / 63 + CALLBACK_OVERHEAD;
        if (gasleft() < required) revert IMarketplace.MarketplaceInsufficientGas(gasleft(), required);
        assembly ("memory-safe") {
            ok := call(cap, callback, 0, add(payload, 0x20), mload(payload), 0, 0)
        }
    }

    /// @dev The signer of `digest`; reverts with {IMarketplace-MarketplaceInvalidSignature} on a malformed signature.
    function recover(bytes32 digest, bytes calldata signature) internal pure returns (address) {
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        if (err != ECDSA.RecoverError.NoError) revert IMarketplace.MarketplaceInvalidSignature(address(0), address(0));
        return recovered;
    }

    /// @dev The open job, active task and replica slot `worker` holds on `taskId`.
    function heldReplica(State storage s, uint256 taskId, address worker)
        internal
        view
        returns (IMarketplace.Job storage job, IMarketplace.Task memory t, uint256 slot)
    {
        job = openJob(s, taskId >> 32);
        t = s.tasks[taskId];
        if (t.status != IMarketplace.TaskStatus.Active) revert IMarketplace.MarketplaceTaskNotActive(taskId);
        for (uint256 i = 0; i < t.target; ++i) {
            if (t.occupied & (1 << i) != 0 && s.replicas[taskId][i].worker == worker) return (job, t, i);
        }
        revert IMarketplace.MarketplaceNotClaimant(taskId, worker);
    }
}
