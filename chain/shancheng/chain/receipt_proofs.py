"""Receipt proofs, node side: a receipt with its Merkle-Patricia proof to the block's receiptsRoot.

The JSON form is the one in ``docs/chain-formats.md`` (served by ``shancheng_getReceiptProof``
and carried in evidence packages); ``shancheng.sdk.chainproof.verify_receipt_proof`` checks it.
The receipts trie is rebuilt from py-evm's receipt encodings (``shancheng.chain.trie``), and the
result is refused unless its root equals the header's, so a proof never disagrees with the block.

>>> block = chain.get_canonical_block_by_number(n)
>>> proof = receipt_proof(block, list(block.get_receipts(chain.chaindb)), 0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import rlp  # type: ignore[import-untyped]
from eth.abc import BlockAPI, ReceiptAPI

from shancheng.sdk.errors import ShanchengError

from .state_proofs import trie_path
from .trie import ordered_trie_root_and_nodes

__all__ = ["ReceiptProofBuildError", "receipt_proof", "trie_proof"]


class ReceiptProofBuildError(ShanchengError, ValueError):
    """The block and receipts given cannot yield a proof (wrong receipts, index out of range)."""


def trie_proof(nodes: Mapping[bytes, bytes], root: bytes, key: bytes) -> list[bytes]:
    """The hashed nodes (RLP) from ``root`` along ``key`` to its value; embedded nodes stay inline
    (:func:`shancheng.chain.state_proofs.trie_path`, refusing a key that is not in the trie)."""
    proof, value = trie_path(nodes, root, key)
    if value is None:
        raise ReceiptProofBuildError("key is not in the trie")
    return proof


def receipt_proof(block: BlockAPI, receipts: Sequence[ReceiptAPI], index: int) -> dict[str, Any]:
    """The receipt proof (JSON form) of the transaction at ``index`` in ``block``."""
    if not 0 <= index < len(receipts):
        raise ReceiptProofBuildError(f"block {block.number} has no transaction at index {index}")
    root, nodes = ordered_trie_root_and_nodes([r.encode() for r in receipts])
    header = block.header
    if root != header.receipt_root:
        raise ReceiptProofBuildError(
            f"these receipts give root 0x{root.hex()}, but block {header.block_number} has 0x{header.receipt_root.hex()}"
        )
    key = rlp.encode(index)
    return {
        "block_hash": "0x" + header.hash.hex(),
        "block_number": header.block_number,
        "transaction_index": index,
        "header": "0x" + rlp.encode(header).hex(),
        "receipt": "0x" + receipts[index].encode().hex(),
        "proof": ["0x" + n.hex() for n in trie_proof(nodes, root, key)],
    }
