// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IMarketplace
/// @notice The Tasknet marketplace: one ERC-20 escrow, app/dataset/worker registries, bag-of-tasks jobs,
/// replicated commit-reveal consensus, single-replica range leases, signed relays and result callbacks.
/// @dev Task ids are `(uint256(jobId) << 32) | index`: a job of N tasks owns ids `jobId<<32 .. jobId<<32 + N-1`
/// and nothing is stored for a task until it is claimed (a bag of 10,000 tasks costs one posting).
/// See contracts/PROTOCOL.md for the lifecycle, the storage layout and the gas figures.
interface IMarketplace {
    // ---------------------------------------------------------------------------------------------
    // Types
    // ---------------------------------------------------------------------------------------------

    /// @notice Owner-tunable parameters (each bounded, see {setParams}). Two slots, grouped by reader:
    /// slot 0 (claims, commits) = minStake(96) | claimGrace(32) | commitWindow(32) | revealWindow(32) |
    ///                            unstakeDelay(32) | callbackGas(32);
    /// slot 1 (postings) = replicaStake(80) | feeBps(16) | maxReplicas(8) | maxSlashes(8) | abandonBps(16).
    struct Params {
        uint96 minStake; // total stake a worker must hold to claim
        uint32 claimGrace; // seconds added to a job's maxRunSeconds to get a claim's expiry
        uint32 commitWindow; // seconds after a task's first commit during which the others may commit
        uint32 revealWindow; // seconds reveals stay open once the reveal phase started
        uint32 unstakeDelay; // seconds between requestUnstake and withdrawUnstaked
        uint32 callbackGas; // gas handed to a job's callback contract
        uint80 replicaStake; // stake locked per claimed replica (snapshotted into each job at posting)
        uint16 feeBps; // protocol fee on rewards, in basis points (snapshotted per job)
        uint8 maxReplicas; // replica cap of a task, extra replicas included (<= 16)
        uint8 maxSlashes; // a worker slashed this many times is banned
        uint16 abandonBps; // what giving a claim back costs, in basis points of the stake it locked (< a slash)
    }

    /// @notice (R = 1) A failure reported for a task and not confirmed yet (see {reportFailure}). Two slots:
    /// worker(160) | reports(8); digest.
    struct Failure {
        address worker; // the last worker that reported it
        uint8 reports; // failure reports so far (the task fails for good at maxReplicas)
        bytes32 digest; // the digest of that worker's failure archive
    }

    /// @notice What a requester posts. Everything here is emitted in {JobPosted}; only what claims and
    /// settlement need is stored.
    struct JobParams {
        uint32 appId;
        uint32 datasetId; // 0 = no dataset
        uint32 numTasks; // N >= 1
        uint8 replication; // R >= 1: replicas per task
        uint96 reward; // paid per replica (a task's pool is R * reward, shared by the winners)
        uint32 deadline; // unix seconds; after it every unfinished task is refunded by {closeJob}
        uint32 maxRunSeconds; // per task; a claim expires after maxRunSeconds + claimGrace
        uint16 cores; // minimum worker capabilities ...
        uint32 memoryMB;
        uint8 gpus;
        uint8 archMask; // bit set of accepted architectures (0 = any); bit 7 asks for homogeneous redundancy (PROTOCOL.md)
        uint32 minReputation;
        address callback; // 0 = none; else an {ITaskCallback} contract
        string inputsCID; // IPFS document listing each task's arguments and input URIs
        bytes encryptionKey; // optional requester public key results are encrypted to
    }

    /// @notice A worker. Two slots:
    /// slot 0 = stake(96) | locked(96) | reputation(32) | slashes(16) | flags(8) (bit 0 registered, bit 1 banned);
    /// slot 1 = unstaking(96) | unstakeAt(40) | cores(16) | memoryMB(32) | gpus(8) | archMask(8) | verified(32).
    struct Worker {
        uint96 stake; // staked, including `locked`
        uint96 locked; // part of `stake` locked by live claims; never leaves except by slashing
        uint32 reputation;
        uint16 slashes;
        uint8 flags;
        uint96 unstaking; // requested out of the stake, withdrawable at `unstakeAt`
        uint40 unstakeAt;
        uint16 cores;
        uint32 memoryMB;
        uint8 gpus;
        uint8 archMask;
        uint32 verified; // results confirmed by another worker's matching replica since its last slash (credibility)
    }

    /// @notice A job. Three slots, grouped so a result submission reads only slots 1 and 2:
    /// slot 0 = requester(160) | deadline(32) | maxRunSeconds(32) | replication(8) | cores(16) | gpus(8);
    /// slot 1 = numTasks | settled | finished | appId | datasetId | minReputation | memoryMB (32 each) |
    ///          feeBps(16) | flags(8) | archMask(8);
    /// slot 2 = reward(96) | replicaStake(80) | ownersPrice(80).
    /// A job with a callback or a dataset has a fourth slot, {JobExtras}, written only then.
    struct Job {
        address requester;
        uint32 deadline;
        uint32 maxRunSeconds;
        uint8 replication;
        uint16 cores;
        uint8 gpus;
        uint32 numTasks;
        uint32 settled; // tasks finished, failed or cancelled (their escrow left the job)
        uint32 finished; // tasks finished with a result (app and dataset owners are paid for these)
        uint32 appId;
        uint32 datasetId;
        uint32 minReputation;
        uint32 memoryMB;
        uint16 feeBps;
        uint8 flags; // bit 0 closed, bit 1 has a callback
        uint8 archMask;
        uint96 reward;
        uint80 replicaStake; // locked per claimed replica (snapshot of the parameter at posting)
        uint80 ownersPrice; // appPrice + datasetPrice, paid per finished task
    }

    /// @notice The optional part of a job (one slot): callback(160) | datasetPrice(88).
    struct JobExtras {
        address callback;
        uint88 datasetPrice;
    }

    /// @notice Status of a task of a replicated job (R > 1).
    enum TaskStatus {
        None, // never claimed (or R = 1: see {isTaken})
        Active,
        Finalized,
        Failed
    }

    /// @notice Consensus state of a task of a replicated job (R > 1). One slot:
    /// status(8) | target(8) | occupied(16) | committed(16) | revealed(16) | commitDeadline(40) | revealDeadline(40) |
    /// commitBlock(40).
    /// The three masks have bit i set when replica slot i is claimed / committed / revealed.
    struct Task {
        TaskStatus status;
        uint8 target; // replicas wanted: R, plus 2 per extra round
        uint16 occupied;
        uint16 committed;
        uint16 revealed;
        uint40 commitDeadline; // 0 until the round's first commit
        uint40 revealDeadline; // 0 until the round's first commit
        uint40 commitBlock; // block of the round's first commit: its hash seeds the spot check (credibility mode)
    }

    /// @notice A job in credibility mode ({postCredibilityJob}). One slot, written only for such jobs.
    /// The job's `replication` is then the replica cap: a task starts with one replica and gets one more at a
    /// time until a group of matching results is credible enough (see PROTOCOL.md, "Credibility mode").
    struct Credibility {
        uint32 confidencePpb; // target probability that an accepted result is right, in parts per billion
        uint16 faultBps; // assumed share of faulty workers f, in basis points (100 .. 5000)
        uint16 spotCheckBps; // share of tasks one trusted worker would finalize alone that get a check replica
    }

    /// @notice Why a task in credibility mode wants one more replica ({ReplicaWanted}).
    enum MoreReason {
        NotCredible, // the best group of matching results is below the job's confidence
        SpotCheck, // a random spot check picked a task one replica would have finalized
        Dispute // revealed results disagree: every replica now weighs as a new worker
    }

    /// @notice One replica of a task (R > 1). Two slots: worker(160) | expiry(40); hash.
    struct Replica {
        address worker;
        uint40 expiry; // the claim must be committed by then
        bytes32 hash; // the commitment, replaced by the result digest at reveal
    }

    /// @notice A lease on a contiguous range of tasks of a single-replica job (R = 1). One slot:
    /// worker(160) | expiry(40) | count(16) | done(16). Keyed by its first task id.
    struct Lease {
        address worker;
        uint40 expiry;
        uint16 count;
        uint16 done; // results are submitted in index order: tasks start .. start+done-1 are finished
    }

    /// @notice A commit signed by its worker (EIP-712 `Commit`) for {IMarketplaceExtension-relayCommits}.
    struct SignedCommit {
        uint256 taskId;
        bytes32 commitment;
        bytes signature;
    }

    /// @notice A reveal signed by its worker (EIP-712 `Reveal`) for {IMarketplaceExtension-relayReveals}.
    struct SignedReveal {
        uint256 taskId;
        bytes32 resultDigest;
        bytes32 salt;
        string resultCID;
        bytes callbackData;
        bytes signature;
    }

    /// @notice Results for the next tasks of a lease, signed by its worker (EIP-712 `Results`), for {relayResults}.
    struct ResultBatch {
        uint256 startTaskId; // the lease
        uint256 firstTaskId; // must equal startTaskId + lease.done
        bytes32[] resultDigests;
        string[] resultCIDs;
        bytes[] callbackData; // empty, or one entry per result
        bytes signature;
    }

    // ---------------------------------------------------------------------------------------------
    // Errors
    // ---------------------------------------------------------------------------------------------

    /// @notice An amount of 0 was given to {deposit}, {withdraw}, {stake} or {requestUnstake}, or
    /// {withdrawUnstaked} was called with nothing pending.
    error MarketplaceZeroAmount();
    /// @notice `account`'s marketplace balance is `balance`, less than the `needed` a {withdraw}, a {stake} or the
    /// escrow of a {postJob} takes.
    error MarketplaceInsufficientBalance(address account, uint256 balance, uint256 needed);
    /// @notice There is no app `appId` (raised by the registry; here when {postJob} names one).
    error MarketplaceUnknownApp(uint256 appId);
    /// @notice `caller` is not the owner of app `appId` (raised by the registry).
    error MarketplaceNotAppOwner(uint256 appId, address caller);
    /// @notice App `appId` is deprecated: {postJob} takes no new job for it (raised by the registry).
    error MarketplaceAppDeprecated(uint256 appId);
    /// @notice App `appId` is private and does not admit `requester` (raised by the registry during {postJob}).
    error MarketplaceAppAccessDenied(uint256 appId, address requester);
    /// @notice There is no dataset `datasetId` (raised by the registry; here when {postJob} names one).
    error MarketplaceUnknownDataset(uint256 datasetId);
    /// @notice `caller` is not the owner of dataset `datasetId` (raised by the registry).
    error MarketplaceNotDatasetOwner(uint256 datasetId, address caller);
    /// @notice Dataset `datasetId` is deprecated: {postJob} takes no new job on it (raised by the registry).
    error MarketplaceDatasetDeprecated(uint256 datasetId);
    /// @notice Dataset `datasetId` admits neither `requester` nor every requester, or neither app `appId` nor every
    /// app (raised by the registry during {postJob}).
    error MarketplaceDatasetAccessDenied(uint256 datasetId, uint256 appId, address requester);
    /// @notice The zero address was given where an account or a contract is needed: the token, registry or
    /// treasury at deployment, {setTreasury}, or a new owner in the registry's transfers.
    error MarketplaceZeroAddress();
    /// @notice `account` never called {registerWorker}: it cannot stake, claim or be banned.
    error MarketplaceNotWorker(address account);
    /// @notice `worker` is banned (automatically after too many slashes, or by {setWorkerBanned}): it cannot claim.
    error MarketplaceWorkerBanned(address worker);
    /// @notice `worker` has `available` stake where `required` is needed: at a claim, its stake below `minStake`
    /// (`available` = its stake, `required` = `minStake`) or its unlocked stake below what the claim locks; at
    /// {requestUnstake}, its unlocked stake below the amount asked.
    error MarketplaceInsufficientStake(address worker, uint256 available, uint256 required);
    /// @notice `worker`'s pending unstake can be withdrawn from `readyAt` (unix seconds) only.
    error MarketplaceUnstakeNotReady(address worker, uint256 readyAt);
    /// @notice {postJob} with `numTasks` = 0: a job has at least one task.
    error MarketplaceInvalidTaskCount(uint256 numTasks);
    /// @notice {postJob} with `replication` 0 or above `max` (the `maxReplicas` parameter).
    error MarketplaceInvalidReplication(uint256 replication, uint256 max);
    /// @notice {postJob} with a `deadline` not after `nowTime`, the block's timestamp.
    error MarketplaceInvalidDeadline(uint256 deadline, uint256 nowTime);
    /// @notice {postJob} with `maxRunSeconds` = 0.
    error MarketplaceInvalidMaxRun(uint256 maxRunSeconds);
    /// @notice {postJob} names a `callback` address that holds no code.
    error MarketplaceCallbackNotContract(address callback);
    /// @notice There is no job `jobId` (the id part of a task id, `taskId >> 32`).
    error MarketplaceUnknownJob(uint256 jobId);
    /// @notice Job `jobId` is closed ({closeJob} ran after its deadline, or every task settled): it takes no claim,
    /// result, failure report, commit, reveal, {finalize}, {abandon}, {cancelTasks} or second {closeJob}.
    error MarketplaceJobClosed(uint256 jobId);
    /// @notice `caller` is not the requester of job `jobId` (only the requester may {cancelTasks}).
    error MarketplaceNotRequester(uint256 jobId, address caller);
    /// @notice Job `jobId`'s `deadline` has not passed yet, so {closeJob} cannot run; or {releaseReplicas} was
    /// called before the job was closed.
    error MarketplaceDeadlineNotReached(uint256 jobId, uint256 deadline);
    /// @notice Job `jobId` is past its `deadline`: it takes no claim, result, failure report, commit, reveal,
    /// {finalize} or {abandon} (what is left is for {closeJob}, {reopenLease}, {reopenExpired}, {releaseReplicas}).
    error MarketplaceDeadlinePassed(uint256 jobId, uint256 deadline);
    /// @notice Task `index` of job `jobId` does not exist: the job has `numTasks` tasks (for a range, `index` is
    /// the last one asked for).
    error MarketplaceTaskOutOfRange(uint256 jobId, uint256 index, uint256 numTasks);
    /// @notice Task `taskId` is taken: claimed, settled or cancelled already (for a range, the first such task), or
    /// an R = 1 lease still starts there.
    error MarketplaceTaskTaken(uint256 taskId);
    /// @notice `worker`'s registered cores, memory or GPUs are below job `jobId`'s, or its architectures do not
    /// meet the job's `archMask`.
    error MarketplaceCapabilityMismatch(address worker, uint256 jobId);
    /// @notice Task `taskIndex` of job `jobId` asks for homogeneous redundancy and its first replica bound it to
    /// platform class `bound`; the claiming worker's class is `yours` (0 = it never called {setPlatformClass}).
    error MarketplacePlatformClassMismatch(uint256 jobId, uint256 taskIndex, bytes32 bound, bytes32 yours);
    /// @notice `worker`'s `reputation` is below the `required` minimum of the job it claims.
    error MarketplaceReputationTooLow(address worker, uint256 reputation, uint256 required);
    /// @notice The claim would expire at `expiry` (now + run time + `claimGrace`), after the job's `deadline`.
    error MarketplaceClaimPastDeadline(uint256 expiry, uint256 deadline);
    /// @notice {claimRange} on job `jobId`, whose `replication` is not 1 (claim its tasks one by one).
    error MarketplaceWrongReplication(uint256 jobId, uint256 replication);
    /// @notice (R > 1) Every replica slot of task `taskId` is held.
    error MarketplaceNoFreeReplica(uint256 taskId);
    /// @notice (R > 1) `worker` already holds a replica slot of task `taskId` (one per worker).
    error MarketplaceAlreadyClaimed(uint256 taskId, address worker);
    /// @notice (R > 1) `worker` holds no replica slot of task `taskId` (for a relayed commit or reveal, `worker` is
    /// the signer recovered from the signature).
    error MarketplaceNotClaimant(uint256 taskId, address worker);
    /// @notice (R > 1) `worker`'s claim on task `taskId` expired at `expiry`: it can no longer commit or abandon.
    error MarketplaceClaimExpired(uint256 taskId, address worker, uint256 expiry);
    /// @notice (R > 1) `worker` already committed to its result of task `taskId`.
    error MarketplaceAlreadyCommitted(uint256 taskId, address worker);
    /// @notice (R > 1) Task `taskId`'s commit window closed at `commitDeadline`: no more claims or commits in this
    /// round (a late commit could copy a digest already revealed).
    error MarketplaceCommitClosed(uint256 taskId, uint256 commitDeadline);
    /// @notice `worker` has `pending` stake waiting to be unstaked and `amount` more would overflow it: withdraw it
    /// first ({withdrawUnstaked}).
    error MarketplaceUnstakePending(address worker, uint256 pending, uint256 amount);
    /// @notice (R > 1) `worker` reveals for task `taskId` without having committed.
    error MarketplaceNotCommitted(uint256 taskId, address worker);
    /// @notice (R > 1) `worker` already revealed its result of task `taskId`.
    error MarketplaceAlreadyRevealed(uint256 taskId, address worker);
    /// @notice (R > 1) Reveals of task `taskId` open at `opensAt` (unix seconds), or as soon as every replica has
    /// committed.
    error MarketplaceRevealNotOpen(uint256 taskId, uint256 opensAt);
    /// @notice (R > 1) Task `taskId`'s reveal window closed at `closedAt` (unix seconds).
    error MarketplaceRevealClosed(uint256 taskId, uint256 closedAt);
    /// @notice (R > 1) The revealed digest and salt of `worker` for task `taskId` do not hash to its commitment
    /// (`keccak256(abi.encode(taskId, resultDigest, salt, worker))`).
    error MarketplaceCommitmentMismatch(uint256 taskId, address worker);
    /// @notice (R > 1) Task `taskId` is not active: never claimed, or already finalized or failed.
    error MarketplaceTaskNotActive(uint256 taskId);
    /// @notice (R > 1) Task `taskId` cannot be finalized yet: not every replica revealed and its reveal window,
    /// closing at `revealDeadline`, is still open (0: nobody committed yet).
    error MarketplaceNotFinalizable(uint256 taskId, uint256 revealDeadline);
    /// @notice (R > 1) {reopenExpired}: no claim on task `taskId` is past its expiry without a commit.
    error MarketplaceNothingExpired(uint256 taskId);
    /// @notice (R = 1) No lease starts at task `startTaskId` (never claimed, finished, given back or reopened).
    error MarketplaceUnknownLease(uint256 startTaskId);
    /// @notice (R = 1) `caller` does not hold the lease starting at `startTaskId` (for {relayResults}, see
    /// {MarketplaceInvalidSignature}).
    error MarketplaceNotLeaseHolder(uint256 startTaskId, address caller);
    /// @notice (R = 1) The lease starting at `startTaskId` expired at `expiry`: it takes no result, failure report
    /// or abandon; {reopenLease} reopens its tasks.
    error MarketplaceLeaseExpired(uint256 startTaskId, uint256 expiry);
    /// @notice (R = 1) {reopenLease} before the lease starting at `startTaskId` expires at `expiry`.
    error MarketplaceLeaseNotExpired(uint256 startTaskId, uint256 expiry);
    /// @notice A range of `count` tasks outside 1 ..`max`: {claimRange} (`max` = `MAX_RANGE`, 1024) or
    /// {cancelTasks} with `count` 0 (`max` = the job's number of tasks).
    error MarketplaceInvalidRange(uint256 count, uint256 max);
    /// @notice (R = 1) Results for the lease starting at `startTaskId` must begin at `expectedFirst`, its next
    /// unfinished task, not at `first`.
    error MarketplaceResultsOutOfOrder(uint256 startTaskId, uint256 expectedFirst, uint256 first);
    /// @notice (R = 1) `given` results (0, or more than the `remaining` tasks) for the lease starting at
    /// `startTaskId`; {submit} takes only a fresh one-task lease (`given` 1).
    error MarketplaceTooManyResults(uint256 startTaskId, uint256 remaining, uint256 given);
    /// @notice Parallel arrays of a result batch differ: `expected` digests, `actual` CIDs or callback entries
    /// (callback data may also be empty).
    error MarketplaceLengthMismatch(uint256 expected, uint256 actual);
    /// @notice Callback data of `length` bytes, more than `max` (`MAX_CALLBACK_DATA`, 1024).
    error MarketplaceCallbackDataTooLarge(uint256 length, uint256 max);
    /// @notice A relayed signature is malformed (both values 0), or {relayResults} recovered `signer` while the
    /// lease is held by `expected` (0 when there is no such lease).
    error MarketplaceInvalidSignature(address signer, address expected);
    /// @notice The transaction that settles a task of a job with a callback has `available` gas left where the
    /// callback needs `required` (`callbackGas + callbackGas / 63 + 10,000`): nobody can starve a callback.
    error MarketplaceInsufficientGas(uint256 available, uint256 required);
    /// @notice {postJob}: the app's and the dataset's prices add up to `price`, more than `max` (2^80 - 1).
    error MarketplacePriceTooHigh(uint256 price, uint256 max);
    /// @notice {setParams}: parameter `name` set to `value`, outside its bounds `min` ..`max`.
    error MarketplaceParamOutOfBounds(string name, uint256 value, uint256 min, uint256 max);
    /// @notice (R > 1) `worker` committed its replica of `taskId`: it can no longer give it back (it would dodge the
    /// vote).
    error MarketplaceCannotAbandonCommitted(uint256 taskId, address worker);
    /// @notice (R = 1) `worker` reported the pending failure of `taskId` itself: another worker must confirm it.
    error MarketplaceSelfConfirmation(uint256 taskId, address worker);
    /// @notice A credibility-mode job's parameters are out of range: `confidencePpb` must be in (0, 1e9), `faultBps`
    /// in [100, 5000], `spotCheckBps` at most 10,000, and the replica `cap` (the job's replication) at least 2.
    error MarketplaceInvalidCredibility(uint256 confidencePpb, uint256 faultBps, uint256 spotCheckBps, uint256 cap);
    /// @notice The single replica of `taskId` may not reveal yet: its spot check is decided by the hash of its
    /// commit block, readable from block `decidableAt` on.
    error MarketplaceSpotCheckUndecided(uint256 taskId, uint256 decidableAt);
    /// @notice The single replica of `taskId` was picked for a spot check: call {startSpotCheck} (the reveal waits
    /// for the check replica's commit).
    error MarketplaceSpotCheckDue(uint256 taskId);
    /// @notice {startSpotCheck} on `taskId`, which is not a credibility-mode task with one committed, unrevealed
    /// replica picked for a check.
    error MarketplaceNoSpotCheck(uint256 taskId);
    /// @notice (credibility mode) `worker`'s credibility alone (`credibilityPpb`) is below the job's confidence
    /// (`confidencePpb`): it may not lease a range, nor reveal a lease's result without a second replica. It claims
    /// tasks one by one ({claim}, {claimSome}) until other workers' matching results raise its credibility.
    error MarketplaceNotCredibleAlone(address worker, uint256 credibilityPpb, uint256 confidencePpb);

    // ---------------------------------------------------------------------------------------------
    // Events
    // ---------------------------------------------------------------------------------------------

    /// @notice `amount` tokens arrived in `account`'s marketplace balance.
    event Deposited(address indexed account, uint256 amount);
    /// @notice `amount` tokens left `account`'s marketplace balance for its wallet.
    event Withdrawn(address indexed account, uint256 amount);

    /// @notice `worker` registered or updated the capabilities it advertises.
    event WorkerRegistered(address indexed worker, uint16 cores, uint32 memoryMB, uint8 gpus, uint8 archMask);
    /// @notice `worker` declared its platform class (see {setPlatformClass}).
    event WorkerPlatformClassSet(address indexed worker, bytes32 platformClass);
    /// @notice The first replica of task `taskId` (a job asking for homogeneous redundancy) bound it to
    /// `platformClass`: every later replica must come from a worker of that class.
    event TaskPlatformClassBound(uint256 indexed taskId, bytes32 platformClass);
    /// @notice `worker` moved `amount` from its balance to its stake, now `totalStake`.
    event Staked(address indexed worker, uint256 amount, uint256 totalStake);
    /// @notice `worker` asked to unstake `amount`; it can be withdrawn from `readyAt`.
    event UnstakeRequested(address indexed worker, uint256 amount, uint256 readyAt);
    /// @notice `worker`'s pending unstake of `amount` went back to its balance.
    event Unstaked(address indexed worker, uint256 amount);
    /// @notice `worker` was banned (it can no longer claim) or unbanned.
    event WorkerBanned(address indexed worker, bool banned);
    /// @notice `amount` of `worker`'s locked stake went to the treasury; `reputation` is the new score.
    event WorkerSlashed(address indexed worker, uint256 indexed taskId, uint256 amount, uint256 reputation);

    /// @notice A job was posted; `escrow` = N * (R * reward + appPrice + datasetPrice) left the requester's balance.
    event JobPosted(
        uint256 indexed jobId, address indexed requester, uint256 indexed appId, JobParams params, uint256 escrow
    );
    /// @notice The requester cancelled `count` never-claimed tasks from index `firstIndex`; `refund` went back.
    event TasksCancelled(uint256 indexed jobId, uint256 firstIndex, uint256 count, uint256 refund);
    /// @notice The job is over: `refund` went back to the requester, the owners got `appPaid` and `datasetPaid`.
    event JobClosed(uint256 indexed jobId, uint256 refund, uint256 appPaid, uint256 datasetPaid);

    /// @notice (R = 1) `worker` leased tasks `startTaskId .. startTaskId + count - 1` until `expiry`.
    event TasksClaimed(uint256 indexed startTaskId, address indexed worker, uint256 count, uint256 expiry);
    /// @notice (R = 1) The final result of `taskId`: the worker was paid, the task is finished.
    event ResultSubmitted(uint256 indexed taskId, address indexed worker, bytes32 resultDigest, string resultCID);
    /// @notice (R = 1) A lease expired with `undone` tasks unfinished; those tasks are open again.
    event LeaseExpired(uint256 indexed startTaskId, address indexed worker, uint256 undone);

    /// @notice (credibility mode) `worker` committed to the results of its lease `startTaskId` (`count` tasks):
    /// `root` hashes their per-task commitments; the hash of this event's block decides their spot checks.
    event RangeCommitted(uint256 indexed startTaskId, address indexed worker, bytes32 root, uint256 count);

    /// @notice (R > 1) `worker` holds replica slot `replica` of `taskId` until `expiry`.
    event ReplicaClaimed(uint256 indexed taskId, address indexed worker, uint256 replica, uint256 expiry);
    /// @notice (R > 1) `worker` committed to its result of `taskId` (the digest stays hidden until the reveal).
    event ResultCommitted(uint256 indexed taskId, address indexed worker, bytes32 commitment);
    /// @notice (R > 1) `worker` revealed its result of `taskId`.
    event ResultRevealed(
        uint256 indexed taskId, address indexed worker, bytes32 resultDigest, string resultCID, bytes callbackData
    );
    /// @notice (R > 1) `winners` replicas agreed on `resultDigest`; each got `rewardEach`.
    event TaskFinalized(uint256 indexed taskId, bytes32 resultDigest, uint256 winners, uint256 rewardEach);
    /// @notice (R > 1) No strict majority: the task now wants `target` replicas.
    event ReplicasAdded(uint256 indexed taskId, uint256 target);
    /// @notice (credibility mode) `taskId` wants replica number `target` because of `reason`; `credibilityPpb` is
    /// the credibility of its best group of matching results so far.
    event ReplicaWanted(uint256 indexed taskId, MoreReason reason, uint256 target, uint256 credibilityPpb);
    /// @notice `jobId` runs in credibility mode (its `replication` is the replica cap).
    event JobCredibility(uint256 indexed jobId, uint256 confidencePpb, uint256 faultBps, uint256 spotCheckBps);
    /// @notice (R > 1) No majority at the replica cap: the task failed and `refund` went to the requester.
    event TaskFailed(uint256 indexed taskId, uint256 refund);
    /// @notice (R > 1) An expired claim was reopened (its worker slashed).
    event ClaimExpired(uint256 indexed taskId, address indexed worker);
    /// @notice (R > 1) A replica of a closed job left the task; `slashed` tells whether its stake was taken.
    event ReplicaReleased(uint256 indexed taskId, address indexed worker, bool slashed);
    /// @notice (R > 1) An unfinished task of a closed job was released: it is failed now, `replicas` replicas left
    /// it (each with its {ReplicaReleased}); its escrow already went back to the requester when the job closed.
    event TaskReleased(uint256 indexed taskId, uint256 replicas);

    /// @notice `worker` gave back its claim on `tasks` task(s) from `taskId` (a lease's start id for R = 1) before it
    /// expired: they are open again; `fee` of its stake went to the treasury.
    event ClaimAbandoned(uint256 indexed taskId, address indexed worker, uint256 tasks, uint256 fee);
    /// @notice (R = 1) `worker` reported `taskId` as failed, with the digest and CID of its failure archive; the task
    /// is open again for a second worker to confirm (`reports` so far).
    event FailureReported(
        uint256 indexed taskId, address indexed worker, bytes32 resultDigest, string resultCID, uint256 reports
    );
    /// @notice (R = 1) A second worker reached the same failure digest: the task is settled with that result;
    /// `firstWorker` and `confirmer` got `rewardEach`.
    event FailureConfirmed(
        uint256 indexed taskId, bytes32 resultDigest, address firstWorker, address confirmer, uint256 rewardEach
    );
    /// @notice The job's callback was called for `taskId` ({ITaskCallback-onTaskResult} when the task finished,
    /// {ITaskCallback-onTaskFailed} when it failed); `success` is false if it reverted or ran out of gas.
    event CallbackDelivered(uint256 indexed taskId, address indexed callback, bool success);
    /// @notice The job's callback was told ({ITaskCallback-onTasksEnded}) that tasks `firstIndex .. firstIndex +
    /// count - 1` of `jobId` ended without a result for `reason` (cancelled, or refunded when the job closed after
    /// its deadline); `success` is false if it reverted or ran out of gas.
    event TasksEndedDelivered(
        uint256 indexed jobId,
        address indexed callback,
        uint256 firstIndex,
        uint256 count,
        ITaskCallback.FailureReason reason,
        bool success
    );

    /// @notice The owner set new protocol parameters.
    event ParamsUpdated(Params params);
    /// @notice Slashed stake and fees now go to `newTreasury`.
    event TreasuryUpdated(address indexed previousTreasury, address indexed newTreasury);

    // ---------------------------------------------------------------------------------------------
    // Money
    // ---------------------------------------------------------------------------------------------

    /// @notice Pulls `amount` tokens from the caller (after `approve`) and credits what arrived to its balance.
    /// Requirements: `amount` > 0. Emits a {Deposited} event.
    function deposit(uint256 amount) external;

    /// @notice Single-transaction deposit: applies an EIP-2612 permit for `amount`, then deposits it.
    /// A permit already used (e.g. front-run) is ignored if the allowance suffices.
    /// Emits a {Deposited} event.
    function depositWithPermit(uint256 amount, uint256 permitDeadline, uint8 v, bytes32 r, bytes32 s) external;

    /// @notice Sends `amount` of the caller's balance to the caller (pull payment).
    /// Requirements: `amount` > 0 and at most the balance. Emits a {Withdrawn} event.
    function withdraw(uint256 amount) external;

    // ---------------------------------------------------------------------------------------------
    // Workers
    // ---------------------------------------------------------------------------------------------

    /// @notice Registers the caller as a worker, or updates its capabilities. `archMask` is a bit set of
    /// architectures (bit 0 amd64, bit 1 arm64, bit 2 riscv64, ...). Emits a {WorkerRegistered} event.
    function registerWorker(uint16 cores, uint32 memoryMB, uint8 gpus, uint8 archMask) external;

    /// @notice Declares the caller's platform class for homogeneous redundancy: a tag such as `amd64-avx2` or
    /// `cuda-sm90` (ASCII, left-aligned, zero-padded; 0 clears it). Replicas of a task of a job whose `archMask`
    /// has bit 7 set all come from one class (see PROTOCOL.md). Emits a {WorkerPlatformClassSet} event.
    /// @param platformClass the class tag; a task already bound keeps its class
    function setPlatformClass(bytes32 platformClass) external;

    /// @notice Moves `amount` from the caller's balance into its stake.
    /// Requirements: registered worker, `amount` > 0 and at most the balance. Emits a {Staked} event.
    function stake(uint256 amount) external;

    /// @notice Starts the unstake delay for `amount` of the caller's unlocked stake (it stops counting as stake).
    /// Requirements: `amount` > 0 and at most stake - locked. Emits an {UnstakeRequested} event.
    function requestUnstake(uint256 amount) external;

    /// @notice After the delay, moves the caller's pending unstake back to its balance.
    /// Requirements: something pending and the delay over. Emits an {Unstaked} event.
    function withdrawUnstaked() external;

    // ---------------------------------------------------------------------------------------------
    // Jobs
    // ---------------------------------------------------------------------------------------------

    /// @notice Posts a bag of `p.numTasks` tasks; locks N * (R * reward + appPrice + datasetPrice) from the
    /// caller's balance; returns the job id (from 1). Task `i` has id `(jobId << 32) | i`.
    /// Requirements: the app (and dataset) exist, are not deprecated and admit the caller (and the app);
    /// 1 <= R <= maxReplicas; deadline in the future; maxRunSeconds > 0; callback empty or a contract;
    /// enough balance. Emits a {JobPosted} event.
    function postJob(JobParams calldata p) external returns (uint256 jobId);

    /// @notice Posts a job in credibility mode: like {postJob}, with `p.replication` (>= 2) as the replica cap,
    /// and escrow for the cap. A task starts with one replica and is final once a group of matching results
    /// reaches `c.confidencePpb` (credibility from each worker's {Worker-verified} count and `c.faultBps`); a
    /// `c.spotCheckBps` share of the tasks one worker would finalize alone gets a check replica. Unused replicas'
    /// rewards go back to the requester when the task finalizes. Emits {JobPosted} and {JobCredibility}.
    function postCredibilityJob(JobParams calldata p, Credibility calldata c) external returns (uint256 jobId);

    /// @notice Opens the check replica of a credibility-mode task whose single committed replica was picked for a
    /// spot check (by the hash of its commit block). Anyone may call it. Emits {ReplicasAdded} and {ReplicaWanted}.
    function startSpotCheck(uint256 taskId) external;

    /// @notice Cancels tasks `first .. first + count - 1` of the caller's job; none may have been claimed.
    /// Refunds their escrow at once; a job callback hears it once for the range ({ITaskCallback-onTasksEnded}).
    /// Emits a {TasksCancelled} event (and {JobClosed} if nothing is left, {TasksEndedDelivered} with a callback).
    function cancelTasks(uint256 jobId, uint256 first, uint256 count) external;

    /// @notice After the deadline (anyone): refunds every unfinished task to the requester and pays the app
    /// and dataset owners for the finished ones; a job callback hears it once when tasks were refunded
    /// ({ITaskCallback-onTasksEnded}, `Expired`). Emits a {JobClosed} event (and {TasksEndedDelivered}).
    function closeJob(uint256 jobId) external;

    // ---------------------------------------------------------------------------------------------
    // Tasks
    // ---------------------------------------------------------------------------------------------

    /// @notice Claims task `taskId`: for R = 1 a lease of that one task, for R > 1 one free replica slot.
    /// Locks the job's replicaStake. The claim expires after maxRunSeconds + claimGrace (before the deadline).
    /// Requirements: registered, unbanned worker with enough stake, capabilities and reputation; the task is
    /// open; for R > 1 the caller holds no other replica of it and the round's commit window is still open.
    /// Emits {TasksClaimed} (R = 1) or {ReplicaClaimed} (R > 1).
    function claim(uint256 taskId) external;

    /// @notice Claims, in order, each of `taskIds` that is still free, up to `max` of them, and skips the others:
    /// a task another worker took first (R = 1), a replicated task with no free slot, one the caller already holds,
    /// one whose commit window closed, or a job that closed or passed its deadline. Each claim is the one {claim}
    /// makes. Listing more candidates than it wants lets a worker lose a race without a reverted transaction.
    /// Requirements: as {claim} for what concerns the caller (registered, unbanned, stake, capabilities,
    /// reputation): those still revert. Returns how many tasks were claimed (possibly 0).
    /// Emits {TasksClaimed} or {ReplicaClaimed} for each task claimed.
    function claimSome(uint256[] calldata taskIds, uint256 max) external returns (uint256 claimed);

    /// @notice (R = 1) Leases `count` consecutive tasks from `startTaskId`, locking count * replicaStake.
    /// The lease expires after count * maxRunSeconds + claimGrace. Emits a {TasksClaimed} event.
    /// A credibility-mode job may be leased too, by a worker whose credibility alone reaches its confidence
    /// (else {MarketplaceNotCredibleAlone}): its results then go through {commitRange} and {revealRange}.
    function claimRange(uint256 startTaskId, uint256 count) external;

    /// @notice (R = 1) Leases the free tasks in a row from `startTaskId`, at most `count` of them and as many as the
    /// job's deadline leaves room for (the expiry is count * maxRunSeconds + claimGrace), and skips what a race
    /// explains: it returns 0, claiming nothing, when `startTaskId` is taken or keys a live lease, or the job closed
    /// or passed its deadline; a task taken further on ends the lease before it. A worker claiming ahead thus loses
    /// a race without a reverted transaction. Requirements: as {claimRange} for what concerns the caller
    /// (registered, unbanned, stake, capabilities, reputation) and for the arguments (`1 <= count <= MAX_RANGE`, a
    /// task of the job, an R = 1 job): those revert. Returns how many tasks were leased.
    /// Emits a {TasksClaimed} event when it leases any.
    function claimFreeRange(uint256 startTaskId, uint256 count) external returns (uint256 claimed);

    /// @notice (R = 1) One-step result of a single-task lease: pays the worker, finishes the task, calls back.
    /// Emits a {ResultSubmitted} event (and {CallbackDelivered}, {JobClosed} when applicable).
    function submit(uint256 taskId, bytes32 resultDigest, string calldata resultCID, bytes calldata callbackData)
        external;

    /// @notice (R = 1) Results for the next tasks of the caller's lease `startTaskId`, in index order
    /// from `firstTaskId` (= startTaskId + done). `callbackData` is empty or has one entry per result.
    /// Emits one {ResultSubmitted} per task.
    function submitRange(
        uint256 startTaskId,
        uint256 firstTaskId,
        bytes32[] calldata resultDigests,
        string[] calldata resultCIDs,
        bytes[] calldata callbackData
    ) external;

    /// @notice Gives back the caller's live claim: for R = 1 the rest of the lease starting at `taskId`, for
    /// R > 1 its replica slot of `taskId` (not yet committed). The tasks reopen at once; the caller's stake for them
    /// is unlocked less `abandonBps` of it, which goes to the treasury (never to the requester). No reputation is
    /// lost and nothing counts towards a ban: for a worker whose own environment failed (an input its node cannot
    /// reach, its engine down, its own caps), instead of letting the claim expire and be slashed.
    /// Requirements: the job is open; the claim is the caller's and not expired; for R > 1 not committed.
    /// Emits a {ClaimAbandoned} event.
    function abandon(uint256 taskId) external;

    /// @notice (R = 1) Reports the next unfinished task of the caller's lease `startTaskId` as failed, with the
    /// digest and CID of the worker's failure archive. A failure is final only when a second worker confirms it:
    /// the task reopens (the caller's stake for it unlocked, no reward, no slash); when another worker reports the
    /// same digest the task settles, the reward is split between the two (reputation +1 each) and the callback
    /// gets the digest; a different digest replaces the pending one; at `maxReplicas` reports the task fails and is
    /// refunded. A successful result from any worker settles it normally meanwhile.
    /// Requirements: the lease is the caller's and live; the caller did not report the pending failure itself.
    /// Emits {FailureReported}, then {FailureConfirmed} or {TaskFailed} when it settles (and {JobClosed},
    /// {CallbackDelivered} when applicable).
    function reportFailure(uint256 startTaskId, bytes32 resultDigest, string calldata resultCID) external;

    /// @notice (R = 1) Anyone: ends an expired lease; its unfinished tasks reopen and the worker loses
    /// replicaStake per unfinished task. Emits {LeaseExpired} and {WorkerSlashed}.
    function reopenLease(uint256 startTaskId) external;

    /// @notice (credibility mode) Commits the caller's results for its whole lease `startTaskId`, leased by
    /// {claimRange} or {claimFreeRange} while its credibility alone reached the job's confidence. `root` =
    /// keccak256(abi.encodePacked(c_0, .., c_{count-1})), c_i = keccak256(abi.encode(taskId_i, resultDigest_i,
    /// salt_i, worker)) (the per-task commitment of {commit}). The lease gets at least a reveal window more.
    /// Requirements: the lease is the caller's and live, not committed yet. Emits a {RangeCommitted} event.
    function commitRange(uint256 startTaskId, bytes32 root) external;

    /// @notice (credibility mode) Reveals the caller's committed lease `startTaskId`, from the block after its
    /// commit, `commitBlock` (the block of its {RangeCommitted} event: the contract keeps only the seal of the root
    /// and that block, {getRangeCommit}): one entry per task, in order. An open entry (salt != 0) gives the task's
    /// digest and salt: the task is final at once, its result {ResultSubmitted}, the worker paid one replica's reward
    /// (the rest of the cap's escrow goes back to the requester), reputation +1. A sealed entry (salt == 0) gives
    /// only the task's commitment c_i as `resultDigests[i]`: the task becomes a replicated task whose first replica
    /// is the caller's, committed, and it wants a second replica ({ReplicaWanted}): the caller reveals it with
    /// {reveal} once that replica committed. A task picked for a spot check (the hash of the commit block, as
    /// {spotCheckDue}) must be sealed; every task must be sealed when the caller's credibility alone no longer
    /// reaches the confidence. Emits {ResultSubmitted} per open task; {ReplicaClaimed}, {ResultCommitted},
    /// {ReplicasAdded} and {ReplicaWanted} per sealed task (and {CallbackDelivered}, {JobClosed} when applicable).
    function revealRange(
        uint256 startTaskId,
        uint256 commitBlock,
        bytes32[] calldata resultDigests,
        bytes32[] calldata salts,
        string[] calldata resultCIDs,
        bytes[] calldata callbackData
    ) external;

    /// @notice (R > 1) Commits `commitment` = keccak256(abi.encode(taskId, resultDigest, salt, worker))
    /// for the caller's replica, before its claim expires and before the round's commit window closes (so no
    /// commit can copy a digest already revealed). The round's first commit opens that window: max(commitWindow,
    /// the job's maxRunSeconds). Emits a {ResultCommitted} event.
    function commit(uint256 taskId, bytes32 commitment) external;

    /// @notice (R > 1) Reveals the committed result. Open once every replica committed or the commit window
    /// passed, until the reveal window ends. The last reveal finalizes the task.
    /// Emits {ResultRevealed} (and the {finalize} events when it is the last).
    function reveal(
        uint256 taskId,
        bytes32 resultDigest,
        bytes32 salt,
        string calldata resultCID,
        bytes calldata callbackData
    ) external;

    /// @notice (R > 1) Anyone, once every replica revealed or the reveal window passed: the digest held by a
    /// strict majority of the target wins; winners share R * reward and gain reputation; the others lose their
    /// replicaStake (to the treasury) and reputation. Without a majority the task gets 2 more replicas, or
    /// fails and is refunded at the cap. Emits {TaskFinalized} | {ReplicasAdded} | {TaskFailed}, {WorkerSlashed}.
    function finalize(uint256 taskId) external;

    /// @notice (R > 1) Anyone: reopens every replica of `taskId` whose claim expired uncommitted (slashing it).
    /// Emits {ClaimExpired} and {WorkerSlashed} per replica.
    function reopenExpired(uint256 taskId) external;

    /// @notice (R > 1) Anyone, once the job is closed: unlocks the replicas still held on `taskId`; a claim
    /// that never committed is slashed. Emits {ReplicaReleased} per replica, then {TaskReleased} (also when no
    /// replica was left).
    function releaseReplicas(uint256 taskId) external;

    // ---------------------------------------------------------------------------------------------
    // Relays (EIP-712, domain "Tasknet Marketplace" version "1"). `relayCommits` and `relayReveals` are in
    // {IMarketplaceExtension}: the marketplace runs them by DELEGATECALL of its extension, at the same address.
    // ---------------------------------------------------------------------------------------------

    /// @notice Submits worker-signed `Results(uint256 startTaskId,uint256 firstTaskId,bytes32[] resultDigests,
    /// string[] resultCIDs,bytes[] callbackData)` batches, each signed by its lease's worker.
    function relayResults(ResultBatch[] calldata batches) external;

    // ---------------------------------------------------------------------------------------------
    // Admin
    // ---------------------------------------------------------------------------------------------

    /// @notice Owner only: sets every parameter; each must be within its bounds (see PROTOCOL.md).
    /// Emits a {ParamsUpdated} event.
    function setParams(Params calldata p) external;

    /// @notice Owner only: where slashed stake and fees are credited. Emits a {TreasuryUpdated} event.
    function setTreasury(address treasury) external;

    /// @notice Owner only: bans or unbans a worker (blacklisting). Emits a {WorkerBanned} event.
    function setWorkerBanned(address worker, bool banned) external;

    // ---------------------------------------------------------------------------------------------
    // Views
    // ---------------------------------------------------------------------------------------------

    /// @notice The payment token (fixed at deployment).
    function token() external view returns (address);
    /// @notice Where slashed stake and protocol fees are credited.
    function treasury() external view returns (address);
    /// @notice The current parameters.
    function params() external view returns (Params memory);
    /// @notice `account`'s free (withdrawable) balance in the marketplace.
    function balanceOf(address account) external view returns (uint256);
    /// @notice The app and dataset registry ({IMarketplaceRegistry}).
    function registry() external view returns (address);
    /// @notice A worker's stake, locks, reputation, flags and capabilities.
    function getWorker(address worker) external view returns (Worker memory);
    /// @notice A worker's platform class (0 = none declared), see {setPlatformClass}.
    function platformClassOf(address worker) external view returns (bytes32);
    /// @notice The platform class task `taskId` is bound to (0 = unbound: not claimed yet, or its job does not ask
    /// for homogeneous redundancy).
    function taskPlatformClass(uint256 taskId) external view returns (bytes32);
    /// @notice A job's stored part (the rest is in {JobPosted}).
    function getJob(uint256 jobId) external view returns (Job memory);
    /// @notice The callback and dataset price of a job (zero when it has neither).
    function getJobExtras(uint256 jobId) external view returns (JobExtras memory);
    /// @notice Tokens the job still holds: unsettled tasks' escrow plus what its app/dataset owners are owed.
    function jobEscrow(uint256 jobId) external view returns (uint256);
    /// @notice Consensus state of a task of an R > 1 job.
    function getTask(uint256 taskId) external view returns (Task memory);
    /// @notice Replica slot `replica` of an R > 1 task.
    function getReplica(uint256 taskId, uint256 replica) external view returns (Replica memory);
    /// @notice The live lease starting at `startTaskId` (zero when none).
    function getLease(uint256 startTaskId) external view returns (Lease memory);
    /// @notice (R = 1) The failure pending on `taskId`, not confirmed yet (zero when none).
    function getFailure(uint256 taskId) external view returns (Failure memory);
    /// @notice (credibility mode) The seal of the lease `startTaskId`'s pending commitment:
    /// keccak256(abi.encode(root, commitBlock)), the root of {commitRange} and the block it landed in (whose hash
    /// decides the lease's spot checks); zero when none is pending.
    function getRangeCommit(uint256 startTaskId) external view returns (bytes32);
    /// @notice Whether task `taskId` was ever claimed or cancelled.
    function isTaken(uint256 taskId) external view returns (bool);
    /// @notice A credibility-mode job's parameters (zero for other jobs).
    function getCredibility(uint256 jobId) external view returns (Credibility memory);
    /// @notice Whether the single committed replica of credibility-mode task `taskId` is picked for a spot check
    /// (false until its commit block's hash is readable; true once it is no longer readable, after 256 blocks).
    function spotCheckDue(uint256 taskId) external view returns (bool);
    /// @notice The credibility of `worker`, in parts per billion, under an assumed faulty share of `faultBps`:
    /// 1 - f / max(verified, 1) (Sarmenta 2002, without blacklisting).
    function credibilityOf(address worker, uint256 faultBps) external view returns (uint256);
    /// @notice Number of jobs posted (ids are 1 .. jobCount).
    function jobCount() external view returns (uint256);
    /// @notice The extension contract this marketplace deployed and runs by DELEGATECALL for the functions of
    /// {IMarketplaceExtension} (call those on the marketplace's address, not on this one).
    function extension() external view returns (address);
    // commitmentOf, hashCommit, hashReveal and hashResults: see {IMarketplaceExtension}.
}

/// @title ITaskCallback
/// @notice Implemented by a job's callback contract. The marketplace calls it once for every terminal outcome of the
/// job's tasks: {onTaskResult} when a task finished, {onTaskFailed} when one failed, {onTasksEnded} once per
/// cancelled range and once when the job closes after its deadline with tasks unsettled. Every call gets exactly the
/// marketplace's `callbackGas`, comes after every state change of the transaction, and its return data is ignored;
/// a revert, running out of gas or an attempt to re-enter the marketplace (its guard refuses it) is recorded in
/// {IMarketplace-CallbackDelivered} / {IMarketplace-TasksEndedDelivered} and changes nothing else.
/// WARNING: anyone may post a job naming your contract as its callback. Accept calls only from the marketplace and
/// only for jobs you posted (see contracts/client/TasknetClient.sol).
interface ITaskCallback {
    /// @notice Why tasks ended without a result.
    enum FailureReason {
        NoConsensus, // R > 1: no strict majority at the replica cap; the task's escrow went back to the requester
        FailureReports, // R = 1: failure reports reached the replica cap without two matching; refunded
        Cancelled, // the requester cancelled never-claimed tasks; refunded
        Expired // the job closed after its deadline; its unsettled tasks were refunded
    }

    /// @notice `taskId` finished with `resultDigest`; `callbackData` is the (small) data its worker attached.
    /// A task whose failure two workers confirmed (R = 1) finishes too, with the digest of their failure archive.
    function onTaskResult(uint256 taskId, bytes32 resultDigest, bytes calldata callbackData) external;

    /// @notice `taskId` failed for `reason` (`NoConsensus` or `FailureReports`); its escrow went back to the
    /// requester's balance.
    function onTaskFailed(uint256 taskId, FailureReason reason) external;

    /// @notice Tasks `firstIndex .. firstIndex + count - 1` of `jobId` ended without a result for `reason`; their
    /// escrow went back to the requester's balance. `Cancelled`: exactly that range (never claimed). `Expired`: the
    /// whole job (`firstIndex` 0, `count` = its task count), and the tasks concerned are those of the range that
    /// had not ended before (no earlier {onTaskResult}, {onTaskFailed} or {onTasksEnded} for them). One call per
    /// range keeps the gas of a cancel or a close independent of the number of tasks.
    function onTasksEnded(uint256 jobId, uint256 firstIndex, uint256 count, FailureReason reason) external;
}
