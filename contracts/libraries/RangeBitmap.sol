// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title RangeBitmap
/// @notice A packed bit set over `uint256` indexes (256 per storage word) with range operations, used to
/// mark the tasks of a job that were claimed or cancelled: one bit per task, so a range of k tasks costs
/// about k/256 storage writes.
library RangeBitmap {
    /// @notice Sets bits `from .. from + count - 1`; returns `type(uint256).max` on success, or the first index
    /// already set (in which case nothing was written).
    function trySetRange(mapping(uint256 word => uint256 bits) storage self, uint256 from, uint256 count)
        internal
        returns (uint256 conflict)
    {
        uint256 end = from + count;
        // Two passes keep the write all-or-nothing: check every word, then write.
        for (uint256 i = from; i < end;) {
            (uint256 word, uint256 mask, uint256 next) = _span(i, end);
            uint256 hit = self[word] & mask;
            if (hit != 0) return (word << 8) + _lowestBit(hit);
            i = next;
        }
        for (uint256 i = from; i < end;) {
            (uint256 word, uint256 mask, uint256 next) = _span(i, end);
            self[word] |= mask;
            i = next;
        }
        return type(uint256).max;
    }

    /// @notice Clears bits `from .. from + count - 1`.
    function clearRange(mapping(uint256 word => uint256 bits) storage self, uint256 from, uint256 count) internal {
        uint256 end = from + count;
        for (uint256 i = from; i < end;) {
            (uint256 word, uint256 mask, uint256 next) = _span(i, end);
            self[word] &= ~mask;
            i = next;
        }
    }

    /// @notice How many bits from `from` on are clear in a row, at most `max`: the free tasks a lease may take
    /// there. One storage read per 256-bit word it looks at.
    function freeRun(mapping(uint256 word => uint256 bits) storage self, uint256 from, uint256 max)
        internal
        view
        returns (uint256)
    {
        uint256 end = from + max;
        uint256 i = from;
        while (i < end) {
            (uint256 word, uint256 mask, uint256 next) = _span(i, end);
            uint256 set = self[word] & mask;
            if (set != 0) return (word << 8) + _lowestBit(set) - from;
            i = next;
        }
        return max;
    }

    /// @notice Whether bit `index` is set.
    function get(mapping(uint256 word => uint256 bits) storage self, uint256 index) internal view returns (bool) {
        return (self[index >> 8] >> (index & 255)) & 1 == 1;
    }

    /// @dev The word holding `i`, the mask of the bits of `[i, end)` inside it, and the first index after them.
    function _span(uint256 i, uint256 end) private pure returns (uint256 word, uint256 mask, uint256 next) {
        word = i >> 8;
        uint256 bit = i & 255;
        uint256 wordEnd = (word + 1) << 8;
        next = end < wordEnd ? end : wordEnd;
        uint256 n = next - i; // 1 .. 256
        mask = (n == 256 ? type(uint256).max : (uint256(1) << n) - 1) << bit;
    }

    function _lowestBit(uint256 x) private pure returns (uint256 n) {
        while (x & 1 == 0) {
            x >>= 1;
            ++n;
        }
    }
}
