// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Sm2Key — on-chain validation of SM2 public keys (GB/T 32918.5 curve sm2p256v1).
/// @notice A valid key is 64 bytes x||y with x, y < p and y^2 = x^3 + a*x + b (mod p). Runs on any EVM.
library Sm2Key {
    uint256 internal constant P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF;
    uint256 internal constant A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC;
    uint256 internal constant B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93;

    function isValid(bytes memory key) internal pure returns (bool) {
        if (key.length != 64) {
            return false;
        }
        uint256 x;
        uint256 y;
        assembly {
            x := mload(add(key, 32))
            y := mload(add(key, 64))
        }
        if (x >= P || y >= P) {
            return false;
        }
        uint256 lhs = mulmod(y, y, P);
        uint256 rhs = addmod(addmod(mulmod(mulmod(x, x, P), x, P), mulmod(A, x, P), P), B, P);
        return lhs == rhs;
    }
}
