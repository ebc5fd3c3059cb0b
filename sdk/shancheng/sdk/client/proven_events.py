"""Logs of a range of final blocks, proven complete: what a subscription delivers on Shancheng.

>>> logs, last_hash = read_proven_range(client, 10, 20, addresses=(registry,), topics=((topic,),))  # doctest: +SKIP

For blocks ``first .. last``, from one node (:meth:`RpcClient.pinned`):

1. The commit certificate of ``last`` is verified (the genesis file is the trust root) and its header is the one the
   certificate signs; every header of the range is rebuilt from the node's block object and hashed, and each one's
   hash is its child's ``parentHash`` — so one certificate proves the whole range.
2. A block whose header's logs bloom cannot hold a matching log has none (a bloom has no false negatives).
3. For the other blocks every receipt is proven against the header's receipts root, and the receipts are proven
   complete: their indices are ``0 .. k-1`` and the cumulative gas of the last one is the header's ``gasUsed`` (each
   transaction uses gas, so no receipt can follow it). The matching logs are taken from these receipts, so a node can
   neither add an event nor hide one; the transaction hash of each receipt with a matching log is proven by a
   transaction proof.

A node whose answer fails is marked bad and :class:`~shancheng.sdk.client.proofs.ProofFailed` raised: the caller
asks another node. The cost is one certificate per range, one block object per block, and the receipts of the blocks
whose bloom matches (``docs/sdk-subscriptions.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from eth_hash.auto import keccak

from ..chainproof import CommitCertificate, TrieProofError, VerifiedReceipt
from ..chainproof import _rlp as rlp
from ..chainproof.receipt import BlockHeader, decode_header, verify_receipt_proof
from ..chainproof.transaction import parse_transaction_proof, verify_transaction_proof
from ..errors import InvalidInput, VerificationError
from .proofs import ChainView, ProofFailed, verify_certified_header
from .rpc import MalformedReply

__all__ = ["ProvenLog", "bloom_may_match", "header_rlp", "read_proven_range"]

MAX_BLOCKS_PER_CALL = 100  # block objects (or proofs) asked in one JSON-RPC batch
_HASH_FIELDS = ("parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot", "receiptsRoot", "logsBloom")
_INT_FIELDS = ("difficulty", "number", "gasLimit", "gasUsed", "timestamp")
_TAIL = (("baseFeePerGas", int), ("withdrawalsRoot", bytes), ("blobGasUsed", int), ("excessBlobGas", int),
         ("parentBeaconBlockRoot", bytes), ("requestsHash", bytes))


@dataclass(frozen=True)
class ProvenLog:
    """A log of a proven receipt; ``log_index`` counts the logs of the block, as ``eth_getLogs`` does."""

    block_number: int
    block_hash: bytes
    tx_hash: bytes
    tx_index: int
    log_index: int
    address: bytes
    topics: tuple[bytes, ...]
    data: bytes


def _hexbytes(block: dict[str, Any], key: str) -> bytes:
    value = block.get(key)
    if not isinstance(value, str) or not value.startswith("0x") or len(value) % 2 or len(value) > 4098:
        raise VerificationError(f"block field {key} is not 0x-prefixed hex")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise VerificationError(f"block field {key} is not 0x-prefixed hex") from None


def _uint(block: dict[str, Any], key: str) -> bytes:
    value = block.get(key)
    if not isinstance(value, str) or not value.startswith("0x") or not 2 < len(value) <= 66:
        raise VerificationError(f"block field {key} is not a hex quantity")
    try:
        n = int(value, 16)
    except ValueError:
        raise VerificationError(f"block field {key} is not a hex quantity") from None
    return n.to_bytes((n.bit_length() + 7) // 8, "big")  # an RLP integer: big-endian, no leading zero


def header_rlp(block: dict[str, Any]) -> bytes:
    """The RLP header of an ``eth_getBlockByNumber`` object (London .. Prague fields, in consensus order); its
    keccak256 is the block hash when every field is what the node says."""
    fields: list[rlp.Item] = [_hexbytes(block, k) for k in _HASH_FIELDS]
    fields += [_uint(block, k) for k in _INT_FIELDS]
    fields += [_hexbytes(block, "extraData"), _hexbytes(block, "mixHash"), _hexbytes(block, "nonce")]
    for key, kind in _TAIL:
        if key not in block:
            break
        fields.append(_uint(block, key) if kind is int else _hexbytes(block, key))
    return rlp.encode(fields)


def _bloom_bits(value: bytes) -> list[tuple[int, int]]:
    h = keccak(value)
    out = []
    for i in (0, 2, 4):
        bit = ((h[i] << 8) | h[i + 1]) & 2047
        out.append((255 - bit // 8, 1 << (bit % 8)))
    return out


def _in_bloom(bloom: bytes, value: bytes) -> bool:
    return all(bloom[byte] & mask for byte, mask in _bloom_bits(value))


def bloom_may_match(bloom: bytes, addresses: Sequence[bytes], topics: Sequence[Sequence[bytes] | None]) -> bool:
    """False when no log of a block with this logs bloom can match the filter (no false negatives)."""
    if addresses and not any(_in_bloom(bloom, a) for a in addresses):
        return False
    return all(p is None or any(_in_bloom(bloom, t) for t in p) for p in topics)


def _matches(address: bytes, topics: Sequence[bytes], addresses: Sequence[bytes],
             wanted: Sequence[Sequence[bytes] | None]) -> bool:
    if addresses and address not in addresses:
        return False
    if len(wanted) > len(topics):
        return False
    return all(p is None or topics[i] in p for i, p in enumerate(wanted))


@dataclass
class _Block:
    number: int
    header: BlockHeader
    bloom: bytes
    tx_hashes: list[bytes]


def _blocks(chain: ChainView, first: int, last: int) -> list[_Block]:
    out: list[_Block] = []
    for lo in range(first, last + 1, MAX_BLOCKS_PER_CALL):
        hi = min(last, lo + MAX_BLOCKS_PER_CALL - 1)
        replies = chain.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(lo, hi + 1)])
        for n, block in zip(range(lo, hi + 1), replies, strict=True):
            if not isinstance(block, dict):
                raise VerificationError(f"the node has no block {n} although block {last} is final")
            raw = header_rlp(block)
            header = decode_header(raw)
            if header.number != n:
                raise VerificationError(f"the block object of {n} is of block {header.number}")
            txs = block.get("transactions")
            if not isinstance(txs, list) or len(txs) > 1 << 16 or not all(isinstance(t, str) for t in txs):
                raise VerificationError(f"block {n}'s transactions are not a list of hashes")
            out.append(_Block(n, header, _hexbytes(block, "logsBloom"), [_hexbytes({"h": t}, "h") for t in txs]))
    for parent, child in pairwise(out):
        if child.header.parent_hash != parent.header.hash:
            raise VerificationError(f"block {child.number}'s parent hash is not the hash of block {parent.number}")
    return out


def _receipts(chain: ChainView, block: _Block) -> list[VerifiedReceipt]:
    """Every receipt of ``block``, proven under its header and proven complete."""
    proofs: list[Any] = []
    for lo in range(0, len(block.tx_hashes), MAX_BLOCKS_PER_CALL):
        part = block.tx_hashes[lo:lo + MAX_BLOCKS_PER_CALL]
        proofs += chain.rpc.batch([("shancheng_getReceiptProof", ["0x" + h.hex()]) for h in part])
    receipts = []
    for i, proof in enumerate(proofs):
        if proof is None:
            raise VerificationError(f"no receipt proof of a transaction the node lists in block {block.number}")
        proven = verify_receipt_proof(proof)
        if proven.block_hash != block.header.hash or proven.transaction_index != i:
            raise VerificationError(f"the receipt proof of transaction {i} of block {block.number} is of another "
                                    "block or index")
        receipts.append(proven)
    gas = receipts[-1].cumulative_gas_used if receipts else 0
    if gas != block.header.gas_used:
        raise VerificationError(f"the receipts the node gives for block {block.number} use {gas} gas, the header "
                                f"{block.header.gas_used}: a transaction is missing")
    return receipts


def _transaction_hashes(chain: ChainView, block: _Block, indices: list[int]) -> dict[int, bytes]:
    """The proven hashes of the transactions at ``indices`` of ``block``."""
    replies = chain.rpc.batch([("shancheng_getTransactionProof", ["0x" + block.tx_hashes[i].hex()]) for i in indices])
    out = {}
    for i, reply in zip(indices, replies, strict=True):
        parsed = parse_transaction_proof(reply)
        if parsed.block_hash != block.header.hash or parsed.transaction_index != i:
            raise VerificationError(f"the transaction proof of index {i} of block {block.number} is of another "
                                    "block or index")
        try:
            out[i] = verify_transaction_proof(block.header.transactions_root, i, parsed.transaction, parsed.proof)
        except TrieProofError as exc:
            raise VerificationError(f"transaction proof: {exc}") from exc
    return out


def _block_logs(chain: ChainView, block: _Block, addresses: Sequence[bytes],
                topics: Sequence[Sequence[bytes] | None]) -> list[ProvenLog]:
    if not bloom_may_match(block.bloom, addresses, topics):
        return []
    receipts = _receipts(chain, block)
    found: list[tuple[int, int, Any]] = []
    log_index = 0
    for i, receipt in enumerate(receipts):
        for log in receipt.logs:
            if _matches(log.address, log.topics, addresses, topics):
                found.append((i, log_index, log))
            log_index += 1
    hashes = _transaction_hashes(chain, block, sorted({i for i, _, _ in found})) if found else {}
    return [ProvenLog(block.number, block.header.hash, hashes[i], i, index, log.address, log.topics, log.data)
            for i, index, log in found]


def read_proven_range(chain: ChainView, first: int, last: int, *, addresses: Sequence[bytes],
                      topics: Sequence[Sequence[bytes] | None], up_to: int | None = None,
                      ) -> tuple[list[ProvenLog], int, bytes] | None:
    """Every log of blocks ``first .. end`` matching the filter, proven (see the module docstring), ``end`` and the
    hash of block ``end``: ``end`` is ``last``, or the next certified block up to ``up_to`` when ``last`` has no
    certificate of its own (the genesis block); None when there is none. A failed proof marks the node bad and raises
    :class:`ProofFailed`."""
    with chain.rpc.pinned() as url:
        for end in range(last, max(last, up_to or last) + 1):
            commit = chain.rpc.call("shancheng_getCommit", [hex(end)])
            if commit is not None:
                break
        else:
            return None
        try:
            certificate = CommitCertificate.from_json(commit)
            blocks = _blocks(chain, first, end)
            verify_certified_header(chain, blocks[-1].header, certificate)
            logs = [log for block in blocks for log in _block_logs(chain, block, addresses, topics)]
        except (VerificationError, InvalidInput, MalformedReply) as exc:
            chain.rpc.mark_bad(url, f"blocks {first}..{end}: {exc}")
            raise ProofFailed(f"{url} failed the proof of blocks {first}..{end}: {exc}", url=url) from None
    return logs, end, blocks[-1].header.hash
