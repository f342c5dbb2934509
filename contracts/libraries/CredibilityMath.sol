// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title CredibilityMath
/// @notice Credibility-based fault tolerance (Sarmenta, "Sabotage-tolerance mechanisms for volunteer computing
/// systems", FGCS 18(4), 2002, sections 4-5) in integer arithmetic, for jobs in credibility mode.
/// @dev A worker that passed `k` checks (results confirmed by another worker's matching replica since its last
/// slash) has credibility Cr = 1 - f / max(k, 1), f being the assumed share of faulty workers (Sarmenta's bound
/// without blacklisting: the marketplace bans, but a slashed worker can come back under a new address). Work is
/// done in odds, Cr / (1 - Cr) = max(k, 1) / f - 1, fixed point 1e18, so a group's odds are the product of its
/// members' and the credibility of group `a` among groups `G` is O_a / (1 + sum over G of O_g) (Bayes, with
/// independent faults). Odds saturate at {MAX_ODDS}: a group there is credible at any confidence below 1 - 1e-22.
library CredibilityMath {
    uint256 internal constant ONE = 1e18;
    uint256 internal constant MAX_ODDS = 1e40;
    uint256 internal constant PPB = 1e9;

    /// @notice The odds (fixed point 1e18) that a result of a worker with `verified` checks passed is right,
    /// under an assumed faulty share of `faultBps` (100 .. 5000).
    function odds(uint256 verified, uint256 faultBps) internal pure returns (uint256) {
        uint256 k = verified == 0 ? 1 : verified;
        return (k * 10_000 - faultBps) * ONE / faultBps;
    }

    /// @notice `groupOdds * workerOdds`, both fixed point 1e18, saturated at {MAX_ODDS}.
    function times(uint256 groupOdds, uint256 workerOdds) internal pure returns (uint256) {
        uint256 product = groupOdds * workerOdds / ONE; // <= 1e40 * ~4.3e31: no overflow
        return product > MAX_ODDS ? MAX_ODDS : product;
    }

    /// @notice Credibility, in parts per billion, of the group with odds `groupOdds` among groups whose odds sum
    /// to `sumOdds` (that group included).
    function ppb(uint256 groupOdds, uint256 sumOdds) internal pure returns (uint256) {
        return groupOdds * PPB / (ONE + sumOdds);
    }

    /// @notice Credibility of a single worker with `verified` checks passed, in parts per billion.
    function ofWorker(uint256 verified, uint256 faultBps) internal pure returns (uint256) {
        uint256 k = verified == 0 ? 1 : verified;
        return PPB - faultBps * (PPB / 10_000) / k;
    }

    /// @notice Whether a task whose round started at block `commitBlock` is picked for a spot check, at rate
    /// `spotCheckBps`. The seed is the hash of `commitBlock`, unknown when the replica committed its result; when
    /// the hash is no longer readable (256 blocks later) the task is checked, so waiting cannot dodge a check.
    /// @dev Callers make sure `block.number > commitBlock`.
    function spotChecked(uint256 taskId, uint256 commitBlock, uint256 spotCheckBps) internal view returns (bool) {
        if (spotCheckBps == 0) return false;
        bytes32 seed = blockhash(commitBlock);
        if (seed == bytes32(0)) return true;
        return uint256(keccak256(abi.encode(seed, taskId))) % 10_000 < spotCheckBps;
    }
}
