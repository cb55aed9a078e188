// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// The credit token of a Grid-X operator: a plain OpenZeppelin ERC20 with 18 decimals.
/// The whole supply is minted once, to the treasury that pays withdrawals and receives
/// deposits; there is no owner and no further minting.
contract GridxToken is ERC20 {
    constructor(string memory name_, string memory symbol_, uint256 supply, address treasury) ERC20(name_, symbol_) {
        _mint(treasury, supply);
    }
}
