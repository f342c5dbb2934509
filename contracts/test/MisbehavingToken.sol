// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;
// solhint-disable use-natspec
// (test helpers of the reliability suite, not an API: NatSpec is not required here)

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title MisbehavingToken
/// @notice Test helper: an ERC-20 that can return false instead of reverting, or skim a fee on every transfer.
contract MisbehavingToken is ERC20 {
    /// @notice 0 = honest, 1 = transfers return false (and move nothing), 2 = 1% fee burnt on transfers.
    uint8 public mode;

    constructor() ERC20("Misbehaving Token", "BAD") {}

    function setMode(uint8 mode_) external {
        mode = mode_;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function transfer(address to, uint256 amount) public override returns (bool) {
        if (mode == 1) return false;
        return super.transfer(to, _skim(msg.sender, amount));
    }

    function transferFrom(address from, address to, uint256 amount) public override returns (bool) {
        if (mode == 1) return false;
        _spendAllowance(from, msg.sender, amount);
        _transfer(from, to, _skim(from, amount));
        return true;
    }

    function _skim(address from, uint256 amount) private returns (uint256) {
        if (mode != 2) return amount;
        uint256 fee = amount / 100;
        _burn(from, fee);
        return amount - fee;
    }
}
