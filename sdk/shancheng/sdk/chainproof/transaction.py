"""Transaction proofs: a signed transaction proven at its index in a block's transactions trie.

The JSON form (``shancheng_getTransactionProof``, see ``docs/chain-formats.md``, "Transaction proof")::

    {"block_hash": "0x…", "block_number": 12, "transaction_index": 0,
     "transaction": "0x<the transaction as stored in the transactions trie>", "proof": ["0x…", …]}

It carries no header: the header comes from a receipt proof of the same block (or anything else the
caller has verified).  :func:`verify_transaction_proof` walks the proof from ``transactionsRoot``
along ``RLP(index)`` to exactly the given bytes and returns their keccak256, the transaction hash as
Ethereum defines it (of the EIP-2718 typed envelope, or of the legacy RLP list).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_hash.auto import keccak

from .. import strict_json
from ..errors import VerificationError
from . import _rlp
from .mpt import MAX_PROOF_NODES, TrieProofError, verify_trie_proof
from .receipt import BlockHeader

__all__ = [
    "MAX_TRANSACTION_SIZE",
    "ParsedTransactionProof",
    "TransactionProofError",
    "parse_transaction_proof",
    "verify_transaction_proof",
    "verify_transaction_proof_json",
]

MAX_TRANSACTION_SIZE = 128 * 1024  # the node admits no larger transaction
_FIELDS = {"block_hash", "block_number", "transaction_index", "transaction", "proof"}


class TransactionProofError(VerificationError):
    """A transaction proof is malformed or does not prove its transaction in its block."""


@dataclass(frozen=True)
class ParsedTransactionProof:
    block_hash: bytes
    block_number: int
    transaction_index: int
    transaction: bytes
    proof: list[bytes]


def _check_envelope(raw: bytes) -> None:
    """A legacy RLP list, or a type byte (0x01..0x7f) followed by an RLP list (EIP-2718)."""
    if not raw:
        raise TransactionProofError("transaction is empty")
    if len(raw) > MAX_TRANSACTION_SIZE:
        raise TransactionProofError(f"transaction is larger than {MAX_TRANSACTION_SIZE} bytes")
    body = raw if raw[0] >= 0xC0 else raw[1:]
    if raw[0] < 0xC0 and not 0 < raw[0] < 0x80:
        raise TransactionProofError(f"transaction has an invalid type byte 0x{raw[0]:02x}")
    try:
        item = _rlp.decode(body)
    except _rlp.RLPError as exc:
        raise TransactionProofError(f"transaction is not valid RLP: {exc}") from exc
    if not isinstance(item, list):
        raise TransactionProofError("transaction must be an RLP list")


def verify_transaction_proof(transactions_root: bytes, index: int, raw_tx: bytes, proof: Sequence[bytes]) -> bytes:
    """keccak256(raw_tx), after proving that ``raw_tx`` is the value at ``RLP(index)`` under ``transactions_root``.

    Raises :class:`TransactionProofError` (or :class:`TrieProofError` for a proof that proves nothing)."""
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 1 << 63:
        raise TransactionProofError("transaction index must be a non-negative integer")
    _check_envelope(raw_tx)
    if len(proof) > MAX_PROOF_NODES:
        raise TransactionProofError(f"transaction proof has more than {MAX_PROOF_NODES} nodes")
    value = verify_trie_proof(transactions_root, _rlp.encode_uint(index), proof)
    if value != raw_tx:
        raise TransactionProofError(
            f"the transactions trie holds a different transaction at index {index} than the one given"
        )
    return keccak(raw_tx)


def parse_transaction_proof(obj: Any) -> ParsedTransactionProof:
    """Strictly parse the JSON form."""
    strict_json.fields(obj, "transaction proof", _FIELDS, error=TransactionProofError)
    block_hash = strict_json.hexbytes(obj["block_hash"], "transaction proof block_hash", size=32,
                                      error=TransactionProofError)
    nodes = obj["proof"]
    if not isinstance(nodes, list) or not 0 < len(nodes) <= MAX_PROOF_NODES:
        raise TransactionProofError(f"transaction proof needs 1..{MAX_PROOF_NODES} proof nodes")
    return ParsedTransactionProof(
        block_hash=block_hash,
        block_number=strict_json.uint(obj["block_number"], "transaction proof block_number", error=TransactionProofError),
        transaction_index=strict_json.uint(obj["transaction_index"], "transaction proof transaction_index",
                                     error=TransactionProofError),
        transaction=strict_json.hexbytes(obj["transaction"], "transaction proof transaction",
                                         limit=MAX_TRANSACTION_SIZE, error=TransactionProofError),
        proof=[strict_json.hexbytes(n, f"transaction proof proof node {i}", limit=MAX_TRANSACTION_SIZE + 64,
                                    error=TransactionProofError) for i, n in enumerate(nodes)],
    )


def verify_transaction_proof_json(obj: Any, header: BlockHeader) -> bytes:
    """Verify the JSON form against a verified ``header`` of the same block; returns the transaction hash."""
    parsed = parse_transaction_proof(obj)
    if parsed.block_hash != header.hash:
        raise TransactionProofError(
            f"transaction proof is for block 0x{parsed.block_hash.hex()}, not 0x{header.hash.hex()}"
        )
    if parsed.block_number != header.number:
        raise TransactionProofError(f"transaction proof is for block {parsed.block_number}, not {header.number}")
    try:
        return verify_transaction_proof(header.transactions_root, parsed.transaction_index, parsed.transaction,
                                        parsed.proof)
    except TrieProofError as exc:
        raise TransactionProofError(f"transaction proof: {exc}") from exc
