"""Receipt proofs: a transaction's receipt, proven against a block header by its receipts trie.

The JSON form (``shancheng_getReceiptProof``, evidence packages) is in ``docs/chain-formats.md``::

    {"block_hash": "0x…", "block_number": 12, "transaction_index": 0,
     "header": "0x…", "receipt": "0x…", "proof": ["0x…", …]}

:func:`verify_receipt_proof` checks ``keccak256(header) == block_hash``, walks the proof from
the header's ``receiptsRoot`` along ``RLP(transaction_index)`` to exactly the given receipt, and
decodes it.  It says nothing about finality: check the block's commit certificate as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_hash.auto import keccak

from .. import strict_json
from ..errors import VerificationError
from . import _rlp
from .mpt import verify_trie_proof

__all__ = [
    "BlockHeader",
    "Log",
    "Receipt",
    "ReceiptProofError",
    "VerifiedReceipt",
    "decode_header",
    "decode_receipt",
    "verify_parsed_receipt_proof",
    "verify_receipt_proof",
]

MAX_HEADER_SIZE = 4096
MAX_RECEIPT_SIZE = 512 * 1024
MAX_PROOF_NODES = 64
_PROOF_FIELDS = {"block_hash", "block_number", "transaction_index", "header", "receipt", "proof"}


class ReceiptProofError(VerificationError):
    """A receipt proof is malformed or does not prove its receipt in its block."""


@dataclass(frozen=True)
class BlockHeader:
    """The fields of an Ethereum header the verifier uses (Frontier .. Prague shapes)."""

    hash: bytes
    parent_hash: bytes
    coinbase: bytes
    state_root: bytes
    transactions_root: bytes
    receipts_root: bytes
    number: int
    gas_limit: int
    gas_used: int
    timestamp: int
    extra_data: bytes
    base_fee_per_gas: int | None
    field_count: int


@dataclass(frozen=True)
class Log:
    address: bytes  # 20 bytes
    topics: tuple[bytes, ...]  # 32 bytes each
    data: bytes


@dataclass(frozen=True)
class Receipt:
    type: int  # 0 legacy, else the EIP-2718 type byte
    status: int | None  # None for pre-Byzantium receipts (they carry a state root instead)
    cumulative_gas_used: int
    logs: tuple[Log, ...]


@dataclass(frozen=True)
class VerifiedReceipt:
    """A receipt proven to be at ``transaction_index`` in the block ``block_hash``."""

    receipt: Receipt
    header: BlockHeader
    transaction_index: int

    @property
    def status(self) -> int | None:
        return self.receipt.status

    @property
    def cumulative_gas_used(self) -> int:
        return self.receipt.cumulative_gas_used

    @property
    def logs(self) -> tuple[Log, ...]:
        return self.receipt.logs

    @property
    def block_number(self) -> int:
        return self.header.number

    @property
    def block_hash(self) -> bytes:
        return self.header.hash

    @property
    def timestamp(self) -> int:
        return self.header.timestamp

    @property
    def receipts_root(self) -> bytes:
        return self.header.receipts_root


def _fixed(item: _rlp.Item, size: int, what: str) -> bytes:
    if not isinstance(item, bytes) or len(item) != size:
        raise ReceiptProofError(f"{what} must be {size} bytes")
    return item


def _extra_data(item: _rlp.Item) -> bytes:
    if not isinstance(item, bytes) or len(item) > 32:
        raise ReceiptProofError("header extra data must be at most 32 bytes")
    return item


def decode_header(raw: bytes, *, hash_: bytes | None = None) -> BlockHeader:
    """Decode an RLP block header; 15 fields (Frontier) up to 21 (Prague) are accepted.
    ``hash_`` is keccak256(raw) when the caller has computed it already."""
    if len(raw) > MAX_HEADER_SIZE:
        raise ReceiptProofError(f"header is larger than {MAX_HEADER_SIZE} bytes")
    try:
        fields = _rlp.decode(raw)
        if not isinstance(fields, list) or not 15 <= len(fields) <= 21:
            raise ReceiptProofError("header must be an RLP list of 15 to 21 fields")
        if any(not isinstance(f, bytes) for f in fields):
            raise ReceiptProofError("header fields must be RLP strings")
        _fixed(fields[1], 32, "header uncles hash")
        _fixed(fields[6], 256, "header logs bloom")
        _fixed(fields[13], 32, "header mix hash")
        _fixed(fields[14], 8, "header nonce")
        return BlockHeader(
            hash=keccak(raw) if hash_ is None else hash_,
            parent_hash=_fixed(fields[0], 32, "header parent hash"),
            coinbase=_fixed(fields[2], 20, "header coinbase"),
            state_root=_fixed(fields[3], 32, "header state root"),
            transactions_root=_fixed(fields[4], 32, "header transactions root"),
            receipts_root=_fixed(fields[5], 32, "header receipts root"),
            number=_rlp.decode_uint(fields[8], "header number", max_bytes=8),
            gas_limit=_rlp.decode_uint(fields[9], "header gas limit", max_bytes=8),
            gas_used=_rlp.decode_uint(fields[10], "header gas used", max_bytes=8),
            timestamp=_rlp.decode_uint(fields[11], "header timestamp", max_bytes=8),
            extra_data=_extra_data(fields[12]),
            base_fee_per_gas=_rlp.decode_uint(fields[15], "header base fee") if len(fields) > 15 else None,
            field_count=len(fields),
        )
    except _rlp.RLPError as exc:
        raise ReceiptProofError(f"header is not a valid RLP header: {exc}") from exc


def _log(item: _rlp.Item, i: int) -> Log:
    if not isinstance(item, list) or len(item) != 3:
        raise ReceiptProofError(f"receipt log {i} must be [address, topics, data]")
    address, topics, data = item
    if not isinstance(topics, list) or len(topics) > 4:
        raise ReceiptProofError(f"receipt log {i} topics must be a list of at most 4")
    if not isinstance(data, bytes):
        raise ReceiptProofError(f"receipt log {i} data must be a string")
    return Log(
        address=_fixed(address, 20, f"receipt log {i} address"),
        topics=tuple(_fixed(t, 32, f"receipt log {i} topic") for t in topics),
        data=data,
    )


def decode_receipt(raw: bytes) -> Receipt:
    """Decode a receipt as stored in the receipts trie: legacy RLP, or type byte ‖ RLP (EIP-2718)."""
    if not raw:
        raise ReceiptProofError("receipt is empty")
    if len(raw) > MAX_RECEIPT_SIZE:
        raise ReceiptProofError(f"receipt is larger than {MAX_RECEIPT_SIZE} bytes")
    type_, body = (0, raw) if raw[0] >= 0xC0 else (raw[0], raw[1:])
    if type_ >= 0x80 or (raw[0] < 0xC0 and type_ == 0):
        raise ReceiptProofError(f"receipt has an invalid type byte 0x{raw[0]:02x}")
    try:
        fields = _rlp.decode(body)
        if not isinstance(fields, list) or len(fields) != 4:
            raise ReceiptProofError("receipt must be [status, cumulative gas, bloom, logs]")
        status_raw, gas, bloom, logs = fields
        _fixed(bloom, 256, "receipt logs bloom")
        if not isinstance(logs, list):
            raise ReceiptProofError("receipt logs must be a list")
        if isinstance(status_raw, bytes) and len(status_raw) == 32:
            status = None
        else:
            status = _rlp.decode_uint(status_raw, "receipt status", max_bytes=1)
            if status > 1:
                raise ReceiptProofError(f"receipt status must be 0 or 1, not {status}")
        return Receipt(
            type=type_,
            status=status,
            cumulative_gas_used=_rlp.decode_uint(gas, "receipt cumulative gas", max_bytes=8),
            logs=tuple(_log(item, i) for i, item in enumerate(logs)),
        )
    except _rlp.RLPError as exc:
        raise ReceiptProofError(f"receipt is not valid RLP: {exc}") from exc


def _index(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 63:
        raise ReceiptProofError(f"receipt proof {what} must be a non-negative integer")
    return value


def parse_receipt_proof(obj: Any) -> tuple[bytes, int, int, bytes, bytes, list[bytes]]:
    """Strictly parse the JSON form: (block_hash, block_number, index, header, receipt, proof)."""
    strict_json.fields(obj, "receipt proof", _PROOF_FIELDS, error=ReceiptProofError)
    block_hash = strict_json.hexbytes(obj["block_hash"], "receipt proof block_hash", size=32, error=ReceiptProofError)
    nodes = obj["proof"]
    if not isinstance(nodes, list) or not 0 < len(nodes) <= MAX_PROOF_NODES:
        raise ReceiptProofError(f"receipt proof needs 1..{MAX_PROOF_NODES} proof nodes")
    return (
        block_hash,
        _index(obj["block_number"], "block_number"),
        _index(obj["transaction_index"], "transaction_index"),
        strict_json.hexbytes(obj["header"], "receipt proof header", limit=MAX_HEADER_SIZE, error=ReceiptProofError),
        strict_json.hexbytes(obj["receipt"], "receipt proof receipt", limit=MAX_RECEIPT_SIZE, error=ReceiptProofError),
        [strict_json.hexbytes(n, f"receipt proof proof node {i}", limit=MAX_RECEIPT_SIZE + 64, error=ReceiptProofError)
         for i, n in enumerate(nodes)],
    )


def verify_receipt_proof(proof: Any) -> VerifiedReceipt:
    """Verify a receipt proof (JSON form); raise a :class:`VerificationError` subclass on failure."""
    return verify_parsed_receipt_proof(*parse_receipt_proof(proof))


def verify_parsed_receipt_proof(
    block_hash: bytes, number: int, index: int, header_raw: bytes, receipt_raw: bytes, nodes: list[bytes]
) -> VerifiedReceipt:
    """:func:`verify_receipt_proof` for what :func:`parse_receipt_proof` returned."""
    computed = keccak(header_raw)
    if computed != block_hash:
        raise ReceiptProofError(
            f"header hashes to 0x{computed.hex()}, not to the block hash 0x{block_hash.hex()}"
        )
    header = decode_header(header_raw, hash_=computed)
    if header.number != number:
        raise ReceiptProofError(f"header is block {header.number}, not block {number}")
    value = verify_trie_proof(header.receipts_root, _rlp.encode_uint(index), nodes)
    if value != receipt_raw:
        raise ReceiptProofError(
            f"the receipts trie holds a different receipt at index {index} than the one given"
        )
    return VerifiedReceipt(receipt=decode_receipt(receipt_raw), header=header, transaction_index=index)

