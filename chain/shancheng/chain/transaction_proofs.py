"""Transaction proofs, node side: a transaction with its Merkle-Patricia proof to the block's transactionsRoot.

The JSON form is in ``docs/chain-formats.md`` ("Transaction proof"; served by
``shancheng_getTransactionProof``); ``shancheng.sdk.chainproof.verify_transaction_proof`` checks it
against a header the verifier already trusts (e.g. from a receipt proof of the same block). The
trie is rebuilt from the block's transaction encodings (the EIP-2718 envelope, or the legacy RLP)
and refused unless its root equals the header's.

>>> transaction_proof(chain.get_canonical_block_by_number(n), 0)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import rlp  # type: ignore[import-untyped]
from eth.abc import BlockAPI

from shancheng.sdk.errors import ShanchengError

from .receipt_proofs import trie_proof
from .trie import ordered_trie_root_and_nodes

__all__ = ["TransactionProofBuildError", "transaction_proof"]


class TransactionProofBuildError(ShanchengError, ValueError):
    """The block cannot yield a proof (index out of range, or its transactions do not give its root)."""


def transaction_proof(block: BlockAPI, index: int) -> dict[str, Any]:
    """The transaction proof (JSON form) of the transaction at ``index`` in ``block``."""
    encoded = [bytes(tx.encode()) for tx in block.transactions]
    if not 0 <= index < len(encoded):
        raise TransactionProofBuildError(f"block {block.number} has no transaction at index {index}")
    root, nodes = ordered_trie_root_and_nodes(encoded)
    header = block.header
    if root != header.transaction_root:
        raise TransactionProofBuildError(
            f"the transactions of block {header.block_number} give root 0x{root.hex()}, "
            f"not the header's 0x{header.transaction_root.hex()}"
        )
    return {
        "block_hash": "0x" + header.hash.hex(),
        "block_number": int(header.block_number),
        "transaction_index": index,
        "transaction": "0x" + encoded[index].hex(),
        "proof": ["0x" + n.hex() for n in trie_proof(nodes, root, rlp.encode(index))],
    }
