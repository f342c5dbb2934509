// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Consensus
/// @notice Strict-majority vote over the result digests revealed for a task.
library Consensus {
    /// @notice The digest held by more than half of `target` replicas among `digests` (the revealed ones),
    /// and how many hold it; `(0, 0)` when no digest has a strict majority.
    /// @dev O(n^2) over at most 16 digests: cheaper than any storage-backed tally.
    function strictMajority(bytes32[] memory digests, uint256 target)
        internal
        pure
        returns (bytes32 winner, uint256 votes)
    {
        uint256 n = digests.length;
        for (uint256 i = 0; i < n; ++i) {
            uint256 count = 1;
            for (uint256 j = i + 1; j < n; ++j) {
                if (digests[j] == digests[i]) ++count;
            }
            if (count * 2 > target) return (digests[i], count);
        }
        return (bytes32(0), 0);
    }

    /// @notice Number of set bits of a replica mask.
    function popcount(uint256 mask) internal pure returns (uint256 n) {
        while (mask != 0) {
            mask &= mask - 1;
            ++n;
        }
    }
}
