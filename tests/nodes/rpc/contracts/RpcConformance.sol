// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// A tiny contract for the JSON-RPC conformance suite: storage, events, reverts with reasons and custom errors.
contract RpcConformance {
    uint256 public value;
    mapping(uint256 => uint256) public seenAt;

    event Stored(address indexed sender, uint256 indexed value, bytes note);
    event Ping(uint256 n);

    error Custom(uint256 code);

    constructor(uint256 initial) {
        value = initial;
        emit Stored(msg.sender, initial, "");
    }

    function store(uint256 v, bytes calldata note) external {
        require(v != 13, "unlucky number");
        value = v;
        seenAt[v] = v + 1;
        emit Stored(msg.sender, v, note);
        emit Ping(v);
    }

    function fail(uint256 code) external pure {
        revert Custom(code);
    }

    function echo(bytes calldata data) external pure returns (bytes memory) {
        return data;
    }

    function add(uint256 a, uint256 b) external pure returns (uint256) {
        return a + b;
    }
}
