// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title TestToken
/// @notice The devnet's payment token: an ERC-20 with EIP-2612 permit and a rate-limited faucet.
/// @dev Never deploy this on a real network: anyone can mint through {faucet}.
contract TestToken is ERC20, ERC20Permit {
    /// @notice Largest amount one {faucet} call may mint (1,000,000 tokens of 18 decimals).
    uint256 public constant FAUCET_MAX = 1_000_000 ether;

    /// @notice A faucet request asked for more than {FAUCET_MAX}.
    error TestTokenFaucetTooLarge(uint256 requested, uint256 max);

    /// @notice Emitted when the faucet mints `amount` tokens to `to`.
    event FaucetUsed(address indexed to, uint256 amount);

    constructor() ERC20("Tasknet Test Token", "TNT") ERC20Permit("Tasknet Test Token") {}

    /// @notice Mints `amount` tokens to `to`.
    /// Requirements: `amount` is at most {FAUCET_MAX}.
    /// Emits a {FaucetUsed} event (and ERC-20 {Transfer}).
    function faucet(address to, uint256 amount) external {
        if (amount > FAUCET_MAX) revert TestTokenFaucetTooLarge(amount, FAUCET_MAX);
        _mint(to, amount);
        emit FaucetUsed(to, amount);
    }
}
