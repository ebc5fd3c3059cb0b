// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {RlpReader} from "./RlpReader.sol";

/// @title AnchorReceipt — the one BatchAnchored log of an EvidenceRegistry in a receipt, as
///   sdk/shancheng/sdk/evidence/chain.py reads it.
/// @notice The receipt is as stored in the receipts trie: legacy RLP, or a type byte (1 .. 0x7f) and RLP of
///   [status, cumulative gas, bloom, logs]. The transaction must have succeeded (status 1) and hold exactly one
///   log from `registry` whose topics are exactly (BatchAnchored, source, sequence) and whose data is six words
///   (root, tree size, previous root, org id, r, s).
library AnchorReceipt {
    error ReceiptMalformed(string reason);
    error AnchorTransactionFailed();
    error NoAnchorLog(bytes32 source, uint64 sequence);
    error SeveralAnchorLogs(bytes32 source, uint64 sequence);

    bytes32 internal constant BATCH_ANCHORED =
        keccak256("BatchAnchored(bytes32,uint64,bytes32,uint64,bytes32,uint64,bytes32,bytes32)");

    struct Anchored {
        bytes32 root;
        uint64 treeSize;
        uint64 orgId;
    }

    struct Query {
        address registry;
        bytes32 source;
        uint64 sequence;
    }

    function find(bytes calldata receipt, address registry, bytes32 source, uint64 sequence)
        internal
        pure
        returns (Anchored memory found)
    {
        Query memory q = Query(registry, source, sequence);
        bytes calldata body = _body(receipt);
        (uint256 at, uint256 stop) = _logs(body);
        bool seen;
        while (at < stop) {
            (bool isList, uint256 start, uint256 next) = RlpReader.read(body, at);
            if (!isList || next > stop) revert ReceiptMalformed("a log is not a list");
            if (_matches(body, start, next, q)) {
                if (seen) revert SeveralAnchorLogs(source, sequence);
                seen = true;
                found = _words(body, start);
            }
            at = next;
        }
        if (!seen) revert NoAnchorLog(source, sequence);
    }

    function _body(bytes calldata receipt) private pure returns (bytes calldata) {
        if (receipt.length == 0) revert ReceiptMalformed("empty receipt");
        uint256 first = uint8(receipt[0]);
        if (first >= 0xc0) return receipt;
        if (first == 0 || first >= 0x80) revert ReceiptMalformed("bad type byte");
        return receipt[1:];
    }

    /// @dev The span of the logs list; reverts unless the receipt is [status 1, gas, bloom, logs].
    function _logs(bytes calldata body) private pure returns (uint256 at, uint256 stop) {
        (bool isList, uint256 start, uint256 end) = RlpReader.read(body, 0);
        if (!isList || end != body.length) revert ReceiptMalformed("not one RLP list");
        (isList, start, stop) = RlpReader.read(body, start); // status
        if (isList || stop - start != 1 || uint8(body[start]) != 1) revert AnchorTransactionFailed();
        (,, at) = RlpReader.read(body, stop); // cumulative gas used
        (,, at) = RlpReader.read(body, at); // bloom
        (isList, at, stop) = RlpReader.read(body, at); // logs
        if (!isList || stop != end) revert ReceiptMalformed("receipt must be [status, gas, bloom, logs]");
    }

    function _matches(bytes calldata body, uint256 at, uint256 end, Query memory q) private pure returns (bool) {
        (bool nested, uint256 start, uint256 stop) = RlpReader.read(body, at);
        if (nested || stop - start != 20) revert ReceiptMalformed("a log address is not 20 bytes");
        if (address(bytes20(body[start:stop])) != q.registry) return false;
        (nested, start, stop) = RlpReader.read(body, stop);
        if (!nested || stop > end) revert ReceiptMalformed("log topics are not a list");
        bytes32[3] memory wanted = [BATCH_ANCHORED, q.source, bytes32(uint256(q.sequence))];
        uint256 n;
        for (uint256 t = start; t < stop; n++) {
            (bool list, uint256 s, uint256 e) = RlpReader.read(body, t);
            if (list || e - s != 32) revert ReceiptMalformed("a topic is not 32 bytes");
            if (n >= 3 || bytes32(body[s:e]) != wanted[n]) return false;
            t = e;
        }
        return n == 3;
    }

    function _words(bytes calldata body, uint256 at) private pure returns (Anchored memory found) {
        (,, uint256 next) = RlpReader.read(body, at); // address
        (,, next) = RlpReader.read(body, next); // topics
        (bool nested, uint256 start, uint256 stop) = RlpReader.read(body, next);
        if (nested || stop - start != 192) revert ReceiptMalformed("BatchAnchored data is not six words");
        found.root = bytes32(body[start:start + 32]);
        uint256 size = uint256(bytes32(body[start + 32:start + 64]));
        uint256 org = uint256(bytes32(body[start + 96:start + 128]));
        if (size >= 1 << 64 || org >= 1 << 64) revert ReceiptMalformed("tree size or org id out of range");
        found.treeSize = uint64(size);
        found.orgId = uint64(org);
    }
}
