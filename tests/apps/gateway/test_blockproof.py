"""A block's transaction count is proven, or not shown as proven: for counts around every boundary of the
transactions trie's keys (RLP(0) = 0x80, 1..127 one byte, 128.. two bytes), the true count is proven from at most two
transaction proofs, and a node that lists one transaction fewer, one more, or none is never believed. The trie and
its proofs are built by the node's own code (``shancheng.chain``), independent of the gateway's walk."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import rlp  # type: ignore[import-untyped]
from eth_hash.auto import keccak

from shancheng.apps.gateway.blockproof import proven_count
from shancheng.chain.receipt_proofs import trie_proof
from shancheng.chain.trie import ordered_trie_root_and_nodes
from shancheng.sdk.chainproof import BlockHeader
from shancheng.sdk.chainproof.mpt import EMPTY_TRIE_ROOT

HEADER = BlockHeader(hash=b"\x11" * 32, parent_hash=b"\0" * 32, coinbase=b"\0" * 20, state_root=b"\0" * 32,
                     transactions_root=EMPTY_TRIE_ROOT, receipts_root=b"\0" * 32, number=7, gas_limit=30_000_000,
                     gas_used=0, timestamp=1_700_000_000, extra_data=b"", base_fee_per_gas=0, field_count=20)


class Node:
    """Answers ``shancheng_getTransactionProof`` for a block of ``count`` transactions, as a node does."""

    def __init__(self, count: int) -> None:
        self.raw = [rlp.encode([i.to_bytes(2, "big"), b"payload" * 6]) for i in range(count)]
        self.hashes = ["0x" + keccak(tx).hex() for tx in self.raw]
        self.root, self.nodes = ordered_trie_root_and_nodes(self.raw) if count else (EMPTY_TRIE_ROOT, {})
        self.asked = 0

    def header(self) -> BlockHeader:
        return replace(HEADER, transactions_root=self.root)

    def call(self, method: str, params: list[Any]) -> Any:
        assert method == "shancheng_getTransactionProof"
        self.asked += 1
        if params[0] not in self.hashes:
            return None
        index = self.hashes.index(params[0])
        return {"block_hash": "0x" + HEADER.hash.hex(), "block_number": HEADER.number, "transaction_index": index,
                "transaction": "0x" + self.raw[index].hex(),
                "proof": ["0x" + n.hex() for n in trie_proof(self.nodes, self.root, rlp.encode(index))]}


@pytest.mark.parametrize("count", [0, 1, 2, 3, 15, 16, 17, 127, 128, 129, 255, 256, 257, 300])
def test_the_true_count_is_proven_and_no_other(count: int) -> None:
    node = Node(count)
    assert proven_count(node.header(), node.hashes, node.call)
    assert node.asked <= 2
    if count:
        assert not proven_count(node.header(), node.hashes[:-1], node.call)  # the last one hidden
        assert not proven_count(node.header(), [], node.call)  # all hidden
    assert not proven_count(node.header(), [*node.hashes, "0x" + "ab" * 32], node.call)  # one made up
    if count > 1:
        swapped = [*node.hashes[:-2], node.hashes[-1], node.hashes[-2]]  # the last two listed in another order
        assert not proven_count(node.header(), swapped, node.call)


def test_a_count_is_not_proven_under_another_blocks_root() -> None:
    node, other = Node(5), Node(6)
    assert not proven_count(other.header(), node.hashes, node.call)
    assert not proven_count(node.header(), other.hashes[:5], other.call)
