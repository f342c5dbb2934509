// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;
// solhint-disable use-natspec
// (test helpers of the reliability suite, not an API: NatSpec is not required here)

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

import {IMarketplace, ITaskCallback} from "../IMarketplace.sol";
import {IMarketplaceExtension} from "../IMarketplaceExtension.sol";

/// @title HostileToken
/// @notice Test helper (reliability suite): an ERC-20 with an unlimited faucet (for uint-edge amounts) that can
/// (a) call back into a target contract from inside `transfer`, `transferFrom` and `permit` with a configured
/// calldata, recording how that re-entry ended, and (b) refuse transfers to "blocked" addresses (like a
/// token with a deny list), to show that pull payments keep one blocked account from affecting others.
contract HostileToken is ERC20 {
    address public hookTarget;
    bytes public hookCall;
    /// @notice Re-entries attempted, how many succeeded, and the 4-byte selector of the last revert.
    uint256 public attempts;
    uint256 public successes;
    bytes4 public lastError;
    mapping(address account => bool) public blocked;
    bool private _inHook;

    error HostileTokenBlocked(address to);
    error HostileTokenNoPermit();

    constructor() ERC20("Hostile Token", "HOST") {}

    function faucet(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function setHook(address target, bytes calldata data) external {
        hookTarget = target;
        hookCall = data;
    }

    function setBlocked(address account, bool value) external {
        blocked[account] = value;
    }

    function transfer(address to, uint256 amount) public override returns (bool) {
        _hook();
        if (blocked[to]) revert HostileTokenBlocked(to);
        return super.transfer(to, amount);
    }

    function transferFrom(address from, address to, uint256 amount) public override returns (bool) {
        _hook();
        return super.transferFrom(from, to, amount);
    }

    /// @notice EIP-2612-shaped entry point: only re-enters (and then fails, so the marketplace's try/catch skips it).
    function permit(address, address, uint256, uint256, uint8, bytes32, bytes32) external {
        _hook();
        revert HostileTokenNoPermit();
    }

    function _hook() private {
        if (hookTarget == address(0) || _inHook) return;
        _inHook = true;
        attempts += 1;
        (bool ok, bytes memory ret) = hookTarget.call(hookCall);
        if (ok) {
            successes += 1;
        } else if (ret.length >= 4) {
            lastError = bytes4(ret);
        }
        _inHook = false;
    }
}

/// @title ReentrancyProbe
/// @notice Test helper (reliability suite): a job callback that, on every hook the marketplace calls (a result, a
/// failed task, a cancelled range or a closed job), tries to call back every state-changing function of the
/// marketplace (dummy but well-formed arguments) and records how each attempt ended: `results(i)` is 0x00000000
/// for a success, otherwise the 4-byte selector of the revert. The order of the attempts is {names}; `lastHook`
/// names the hook that ran them.
contract ReentrancyProbe is ITaskCallback {
    IMarketplace public immutable market;
    bytes4[] private _results;
    uint256 public deliveries;
    string public lastHook;

    constructor(IMarketplace market_) {
        market = market_;
    }

    function names() external pure returns (string[] memory n) {
        n = new string[](46);
        n[0] = "deposit";
        n[1] = "depositWithPermit";
        n[2] = "withdraw";
        n[3] = "stake";
        n[4] = "requestUnstake";
        n[5] = "withdrawUnstaked";
        n[6] = "postJob";
        n[7] = "cancelTasks";
        n[8] = "closeJob";
        n[9] = "claim";
        n[10] = "claimRange";
        n[11] = "submit";
        n[12] = "submitRange";
        n[13] = "reopenLease";
        n[14] = "commit";
        n[15] = "reveal";
        n[16] = "finalize";
        n[17] = "reopenExpired";
        n[18] = "releaseReplicas";
        n[19] = "relayCommits";
        n[20] = "relayReveals";
        n[21] = "relayResults";
        n[22] = "multicall";
        n[23] = "registerWorker";
        n[24] = "setParams";
        n[25] = "setTreasury";
        n[26] = "setWorkerBanned";
        n[27] = "transferOwnership";
        n[28] = "renounceOwnership";
        n[29] = "claimSome";
        n[30] = "abandon";
        n[31] = "reportFailure";
        n[32] = "postCredibilityJob";
        n[33] = "startSpotCheck";
        n[34] = "setPlatformClass";
        n[35] = "claimFreeRange";
        n[36] = "commitRange";
        n[37] = "revealRange";
        n[38] = "claimLane";
        n[39] = "commitLane";
        n[40] = "revealLane";
        n[41] = "splitLanes";
        n[42] = "reopenLanes";
        n[43] = "releaseLanes";
        n[44] = "dissolveLanes";
        n[45] = "checkLease";
    }

    function results() external view returns (bytes4[] memory) {
        return _results;
    }

    function onTaskResult(uint256 taskId, bytes32 digest, bytes calldata) external {
        _probe("onTaskResult", taskId, digest);
    }

    function onTaskFailed(uint256 taskId, FailureReason) external {
        _probe("onTaskFailed", taskId, keccak256("failed"));
    }

    function onTasksEnded(uint256 jobId, uint256 firstIndex, uint256, FailureReason) external {
        _probe("onTasksEnded", (jobId << 32) | firstIndex, keccak256("ended"));
    }

    function _probe(string memory hook, uint256 taskId, bytes32 digest) private {
        deliveries += 1;
        lastHook = hook;
        delete _results;
        uint256 jobId = taskId >> 32;
        IMarketplace.JobParams memory p;
        bytes[] memory inner = new bytes[](1);
        inner[0] = abi.encodeCall(IMarketplace.withdraw, (1));
        bytes[] memory calls = new bytes[](46);
        calls[0] = abi.encodeCall(IMarketplace.deposit, (1));
        calls[1] = abi.encodeCall(IMarketplace.depositWithPermit, (1, 0, 0, bytes32(0), bytes32(0)));
        calls[2] = abi.encodeCall(IMarketplace.withdraw, (1));
        calls[3] = abi.encodeCall(IMarketplace.stake, (1));
        calls[4] = abi.encodeCall(IMarketplace.requestUnstake, (1));
        calls[5] = abi.encodeCall(IMarketplace.withdrawUnstaked, ());
        calls[6] = abi.encodeCall(IMarketplace.postJob, (p));
        calls[7] = abi.encodeCall(IMarketplace.cancelTasks, (jobId, 0, 1));
        calls[8] = abi.encodeCall(IMarketplace.closeJob, (jobId));
        calls[9] = abi.encodeCall(IMarketplace.claim, (taskId));
        calls[10] = abi.encodeCall(IMarketplace.claimRange, (taskId, 1));
        calls[11] = abi.encodeCall(IMarketplace.submit, (taskId, digest, "", ""));
        calls[12] = abi.encodeCall(
            IMarketplace.submitRange, (taskId, taskId, new bytes32[](0), new string[](0), new bytes[](0))
        );
        calls[13] = abi.encodeCall(IMarketplace.reopenLease, (taskId));
        calls[14] = abi.encodeCall(IMarketplace.commit, (taskId, digest));
        calls[15] = abi.encodeCall(IMarketplace.reveal, (taskId, digest, bytes32(0), "", ""));
        calls[16] = abi.encodeCall(IMarketplace.finalize, (taskId));
        calls[17] = abi.encodeCall(IMarketplace.reopenExpired, (taskId));
        calls[18] = abi.encodeCall(IMarketplace.releaseReplicas, (taskId));
        calls[19] = abi.encodeCall(IMarketplaceExtension.relayCommits, (new IMarketplace.SignedCommit[](0)));
        calls[20] = abi.encodeCall(IMarketplaceExtension.relayReveals, (new IMarketplace.SignedReveal[](0)));
        calls[21] = abi.encodeCall(IMarketplace.relayResults, (new IMarketplace.ResultBatch[](0)));
        calls[22] = abi.encodeWithSignature("multicall(bytes[])", inner);
        calls[23] = abi.encodeCall(IMarketplace.registerWorker, (1, 1, 0, 1));
        calls[24] = abi.encodeCall(IMarketplace.setParams, (market.params()));
        calls[25] = abi.encodeCall(IMarketplace.setTreasury, (address(this)));
        calls[26] = abi.encodeCall(IMarketplace.setWorkerBanned, (address(this), true));
        calls[27] = abi.encodeWithSignature("transferOwnership(address)", address(this));
        calls[28] = abi.encodeWithSignature("renounceOwnership()");
        calls[29] = abi.encodeCall(IMarketplace.claimSome, (new uint256[](0), 1));
        calls[30] = abi.encodeCall(IMarketplace.abandon, (taskId));
        calls[31] = abi.encodeCall(IMarketplace.reportFailure, (taskId, digest, ""));
        calls[32] = abi.encodeCall(IMarketplace.postCredibilityJob, (p, IMarketplace.Credibility(990_000_000, 1000, 0)));
        calls[33] = abi.encodeCall(IMarketplace.startSpotCheck, (taskId));
        calls[34] = abi.encodeCall(IMarketplace.setPlatformClass, (bytes32("probe")));
        calls[35] = abi.encodeCall(IMarketplace.claimFreeRange, (taskId, 1));
        calls[36] = abi.encodeCall(IMarketplace.commitRange, (taskId, digest));
        calls[37] = abi.encodeCall(
            IMarketplace.revealRange, (taskId, 0, new bytes32[](0), new bytes32[](0), new string[](0), new bytes[](0))
        );
        calls[38] = abi.encodeCall(IMarketplaceExtension.claimLane, (taskId, 1));
        calls[39] = abi.encodeCall(IMarketplaceExtension.commitLane, (taskId, 1, digest));
        calls[40] = abi.encodeCall(
            IMarketplaceExtension.revealLane, (taskId, new bytes32[](0), new bytes32[](0), new string[](0))
        );
        calls[41] = abi.encodeCall(IMarketplaceExtension.splitLanes, (taskId, 1, new bytes32[][](0)));
        calls[42] = abi.encodeCall(IMarketplaceExtension.reopenLanes, (taskId, 1));
        calls[43] = abi.encodeCall(IMarketplaceExtension.releaseLanes, (taskId, 1));
        calls[44] = abi.encodeCall(IMarketplaceExtension.dissolveLanes, (taskId, 1));
        calls[45] = abi.encodeCall(IMarketplaceExtension.checkLease, (taskId, bytes32(0), 0));
        for (uint256 i = 0; i < calls.length; ++i) {
            (bool ok, bytes memory ret) = address(market).call(calls[i]);
            bytes4 sel = 0x00000000;
            if (!ok) sel = ret.length >= 4 ? bytes4(ret) : bytes4(0xffffffff);
            _results.push(sel);
        }
    }
}
