// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {GmCrypto} from "./GmCrypto.sol";

/// @title InclusionProof — RFC 9162 inclusion proofs of a transparency log with SM3, as
///   sdk/shancheng/sdk/merkle/proofs.py verifies them.
/// @notice Leaf hash SM3(0x00 || leaf data), node hash SM3(0x01 || left || right), both through the GM precompile
///   at 0x100a (sm3(bytes), FISCO BCOS's ABI). The audit path must have exactly the length RFC 9162 gives for the
///   leaf index and tree size (§2.1.3.2): a longer or shorter path is refused, never truncated or padded.
library InclusionProof {
    /// @notice The proof is malformed for its index and size (before any hashing).
    error InclusionProofInvalid(string reason);
    /// @notice The audit path has the wrong number of hashes for the leaf index and tree size.
    error InclusionProofLength(uint256 given, uint256 needed);
    /// @notice The GM precompile did not answer an SM3 call.
    error Sm3Unavailable();

    uint256 internal constant MAX_TREE_SIZE = 1 << 63; // tree sizes are unsigned 63-bit, as the SDK's
    bytes4 private constant SM3_SELECTOR = bytes4(keccak256("sm3(bytes)"));

    /// @notice SM3(0x00 || leaf): the hash of a leaf whose data is `leaf`.
    function leafHash(bytes memory leaf) internal view returns (bytes32) {
        return GmCrypto.sm3(abi.encodePacked(bytes1(0x00), leaf));
    }

    /// @notice The exact number of hashes in the audit path of leaf `index` in a tree of `size` leaves.
    function pathLength(uint256 index, uint256 size) internal pure returns (uint256 n) {
        unchecked {
            uint256 inner = _bitLength(index ^ (size - 1));
            for (uint256 border = index >> inner; border != 0; border >>= 1) {
                n += border & 1;
            }
            n += inner;
        }
    }

    /// @notice The root the audit `path` implies for the leaf hash `leaf` at `index` in a tree of `size` leaves;
    ///   reverts InclusionProofInvalid / InclusionProofLength on a malformed proof.
    function rootOf(bytes32 leaf, uint256 index, uint256 size, bytes32[] calldata path)
        internal
        view
        returns (bytes32 r)
    {
        if (size == 0 || size >= MAX_TREE_SIZE) revert InclusionProofInvalid("tree size must be 1 .. 2^63 - 1");
        if (index >= size) revert InclusionProofInvalid("leaf index is not below the tree size");
        uint256 needed = pathLength(index, size);
        if (path.length != needed) revert InclusionProofLength(path.length, needed);
        r = leaf;
        // unchecked: fn <= sn < 2^63 only shrink; i < path.length <= 64 (the exact length was checked)
        unchecked {
            uint256 fn = index;
            uint256 sn = size - 1;
            for (uint256 i; i < needed; i++) {
                bytes32 p = path[i];
                if (fn & 1 == 1 || fn == sn) {
                    r = nodeHash(p, r);
                    while (fn != 0 && fn & 1 == 0) {
                        fn >>= 1;
                        sn >>= 1;
                    }
                } else {
                    r = nodeHash(r, p);
                }
                fn >>= 1;
                sn >>= 1;
            }
        }
    }

    /// @notice SM3(0x01 || left || right), calling the precompile from one reused buffer (no memory growth per
    ///   node: a path of 20 nodes costs 20 precompile calls and nothing more).
    function nodeHash(bytes32 left, bytes32 right) internal view returns (bytes32 h) {
        bytes4 selector = SM3_SELECTOR;
        bool ok;
        assembly ("memory-safe") {
            // sm3(bytes) with the 65 bytes 0x01 || left || right, canonically encoded (zero padding to 96 bytes):
            // selector (4) | offset 0x20 (32) | length 65 (32) | data (96) = 164 bytes past the free pointer
            let p := mload(0x40)
            mstore(p, selector)
            mstore(add(p, 4), 0x20)
            mstore(add(p, 36), 65)
            mstore(add(p, 68), shl(248, 1))
            mstore(add(p, 69), left)
            mstore(add(p, 101), right)
            mstore(add(p, 133), 0)
            ok := staticcall(gas(), 0x100a, p, 164, p, 32)
            ok := and(ok, eq(returndatasize(), 32))
            h := mload(p)
        }
        if (!ok) revert Sm3Unavailable();
    }

    function _bitLength(uint256 x) private pure returns (uint256 n) {
        unchecked {
            while (x != 0) {
                x >>= 1;
                n++;
            }
        }
    }
}
