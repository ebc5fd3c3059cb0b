// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// eth_estimateGas conformance (issue 10, point 8): calls that write storage in a loop, fresh slots, overwrites
/// and deletes (refunds), whose smallest sufficient gas limit every endpoint must agree on.
contract GasEstimate {
    mapping(uint256 => uint256) public slots;
    uint256 public total;

    function fill(uint256 start, uint256 n) external {
        for (uint256 i = start; i < start + n; i++) {
            slots[i] = i + 1;
            total += i;
        }
    }

    function clear(uint256 start, uint256 n) external {
        for (uint256 i = start; i < start + n; i++) {
            delete slots[i];
        }
    }
}
