// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {RlpReader} from "./RlpReader.sol";

/// @title MptProof — walk an Ethereum Merkle-Patricia trie proof (Yellow Paper appendix D) to the value it proves.
/// @notice As sdk/shancheng/sdk/chainproof/mpt.py walks one: the proof lists the hashed nodes from the root along the
///   key; each must hash to its parent's reference; the walk must end exactly at a value with no node unused.
///   Nodes embedded in their parent (shorter than 32 bytes) are refused here: receipt and transaction tries, whose
///   leaves hold whole receipts or transactions, do not have them.
library MptProof {
    /// @notice The proof does not prove a value for the key under the root; `node` is the failing node's index.
    error TrieProofInvalid(uint256 node, string reason);

    uint256 internal constant MAX_PROOF_NODES = 64;

    /// @notice The value stored under `root` at `key` (a calldata slice of the last proof node).
    function value(bytes32 root, bytes memory key, bytes[] calldata proof) internal pure returns (bytes calldata) {
        if (proof.length == 0 || proof.length > MAX_PROOF_NODES) revert TrieProofInvalid(0, "1 .. 64 nodes needed");
        Step memory step = Step(root, 0, false, 0, 0);
        for (uint256 i; i < proof.length; i++) {
            bytes calldata node = proof[i];
            if (keccak256(node) != step.next) revert TrieProofInvalid(i, "node does not hash to its reference");
            _step(i, node, key, step);
            if (step.done) {
                if (step.stop == step.start) revert TrieProofInvalid(i, "key is not in the trie");
                if (i + 1 != proof.length) revert TrieProofInvalid(i + 1, "unused nodes after the value");
                return node[step.start:step.stop];
            }
        }
        revert TrieProofInvalid(proof.length, "proof ends before the value");
    }

    struct Step {
        bytes32 next; // the hash the next node must have
        uint256 pos; // nibbles of the key consumed
        bool done; // the value is [start, stop) of this node
        uint256 start;
        uint256 stop;
    }

    function _step(uint256 i, bytes calldata node, bytes memory key, Step memory step) private pure {
        (bool isList, uint256 at, uint256 end) = RlpReader.read(node, 0);
        if (!isList || end != node.length) revert TrieProofInvalid(i, "node is not one RLP list");
        uint256 count = _count(node, at, end);
        bool nested;
        uint256 start;
        uint256 stop;
        if (count == 17) {
            bool atEnd = step.pos == key.length * 2;
            (nested, start, stop) = _nth(node, at, atEnd ? 16 : _nibble(key, step.pos));
            if (nested) revert TrieProofInvalid(i, "embedded nodes are not supported");
            if (atEnd) {
                (step.done, step.start, step.stop) = (true, start, stop);
                return;
            }
            step.pos++;
        } else if (count == 2) {
            (nested, start, stop) = RlpReader.read(node, at);
            if (nested || stop == start) revert TrieProofInvalid(i, "bad node path");
            bool leaf;
            (step.pos, leaf) = _follow(i, node[start:stop], key, step.pos);
            (nested, start, stop) = RlpReader.read(node, stop);
            if (nested) revert TrieProofInvalid(i, "embedded nodes are not supported");
            if (leaf) {
                if (step.pos != key.length * 2) revert TrieProofInvalid(i, "leaf of a longer or shorter key");
                (step.done, step.start, step.stop) = (true, start, stop);
                return;
            }
        } else {
            revert TrieProofInvalid(i, "trie nodes have 2 or 17 items");
        }
        if (stop - start != 32) revert TrieProofInvalid(i, "key is not in the trie");
        step.next = bytes32(node[start:stop]);
    }

    /// @dev Matches a leaf's or extension's hex-prefix path against the key from `pos`; returns the new position.
    function _follow(uint256 i, bytes calldata path, bytes memory key, uint256 pos)
        private
        pure
        returns (uint256, bool leaf)
    {
        uint256 flag = uint8(path[0]) >> 4;
        if (flag > 3) revert TrieProofInvalid(i, "bad hex-prefix flag");
        leaf = flag >= 2;
        uint256 length = (path.length - 1) * 2;
        bool odd = flag & 1 == 1;
        if (odd) length++;
        else if (uint8(path[0]) & 0x0f != 0) revert TrieProofInvalid(i, "bad hex-prefix padding");
        if (!leaf && length == 0) revert TrieProofInvalid(i, "extension with an empty path");
        if (pos + length > key.length * 2) revert TrieProofInvalid(i, "key is not in the trie");
        for (uint256 k; k < length; k++) {
            uint256 n = odd ? k + 1 : k + 2; // nibble index within path, counting the flag byte's two nibbles
            uint256 b = uint8(path[n / 2]);
            uint256 nib = n % 2 == 0 ? b >> 4 : b & 0x0f;
            if (nib != _nibble(key, pos + k)) revert TrieProofInvalid(i, "key is not in the trie");
        }
        return (pos + length, leaf);
    }

    function _count(bytes calldata node, uint256 at, uint256 end) private pure returns (uint256 count) {
        while (at < end) {
            (,, uint256 stop) = RlpReader.read(node, at);
            if (stop > end) revert TrieProofInvalid(0, "node item overruns");
            at = stop;
            count++;
        }
    }

    function _nth(bytes calldata node, uint256 at, uint256 index)
        private
        pure
        returns (bool nested, uint256 start, uint256 stop)
    {
        for (uint256 k; k <= index; k++) {
            (nested, start, stop) = RlpReader.read(node, at);
            at = stop;
        }
    }

    function _nibble(bytes memory key, uint256 pos) private pure returns (uint256) {
        uint256 b = uint8(key[pos / 2]);
        return pos % 2 == 0 ? b >> 4 : b & 0x0f;
    }

    /// @notice RLP(index): the key of a transaction's or receipt's entry in its block's trie.
    function indexKey(uint256 index) internal pure returns (bytes memory) {
        if (index == 0) return hex"80";
        if (index < 0x80) return abi.encodePacked(uint8(index));
        uint256 size;
        for (uint256 v = index; v > 0; v >>= 8) size++;
        bytes memory out = new bytes(size + 1);
        out[0] = bytes1(uint8(0x80 + size));
        for (uint256 k; k < size; k++) {
            out[size - k] = bytes1(uint8(index >> (8 * k)));
        }
        return out;
    }
}
