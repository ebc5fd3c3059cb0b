// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// Access lists (EIP-2930) end to end: a caller that writes its own storage, calls another contract that
/// writes its storage, reads a third account's balance, uses a precompile, and can revert.
contract AccessTarget {
    uint256 public count;

    function bump() external returns (uint256) {
        count += 1;
        return count;
    }
}

contract AccessCaller {
    AccessTarget public immutable target;
    uint256 public calls;
    mapping(uint256 => uint256) public marks;

    constructor(AccessTarget t) {
        target = t;
    }

    function poke(uint256 mark, address watched) external returns (uint256) {
        calls += 1;
        marks[mark] = watched.balance + 1;
        sha256(abi.encode(mark)); // the precompile at 0x02: never listed
        return target.bump();
    }

    function fail() external {
        calls += 1;
        revert("refused");
    }
}
