"""What the network view may show of a block as verified, proven from a node's answers against the block hash a
verified commit certificate signs (the node itself is not trusted).

- **Header fields** (:func:`verified_header`): the header is encoded from the node's block object in RLP, as
  Ethereum encodes it, and hashed (keccak-256); only if the hash is the certified one are the height, timestamp and
  gas used the block's own.
- **Transaction count** (:func:`proven_count`): ``N`` transactions are proven when the verified header's
  transactions root is the empty trie's (``N = 0``), or when the transactions trie holds the block's last listed
  transaction at index ``N - 1`` (a transaction proof) and holds nothing at index ``N`` (the same proof's nodes, and
  if needed those of index 0, show the key's path ends; the walk is :func:`verify_trie_proof_or_absent`'s). A count
  that cannot be proven so is the node's word.

>>> header = header_of(block)                                 # doctest: +SKIP
>>> "0x" + header.hash.hex() == block["hash"]                 # doctest: +SKIP
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import rlp  # type: ignore[import-untyped]
from eth_hash.auto import keccak

from shancheng.sdk.chainproof import BlockHeader, CommitCertificate, TrieProofError
from shancheng.sdk.chainproof.mpt import EMPTY_TRIE_ROOT, verify_trie_proof_or_absent
from shancheng.sdk.chainproof.receipt import decode_header
from shancheng.sdk.chainproof.transaction import parse_transaction_proof, verify_transaction_proof_json
from shancheng.sdk.errors import InvalidInput, ShanchengError
from shancheng.sdk.strict_json import to_hex

__all__ = ["header_of", "proven_count", "verified_header"]

#: the header fields of a block object in RLP order: (JSON key, is a quantity); those after baseFeePerGas exist from
#: a fork on (Shanghai, Cancun, Prague) and are encoded while present
_HEADER_FIELDS = (("parentHash", False), ("sha3Uncles", False), ("miner", False), ("stateRoot", False),
                  ("transactionsRoot", False), ("receiptsRoot", False), ("logsBloom", False), ("difficulty", True),
                  ("number", True), ("gasLimit", True), ("gasUsed", True), ("timestamp", True), ("extraData", False),
                  ("mixHash", False), ("nonce", False), ("baseFeePerGas", True), ("withdrawalsRoot", False),
                  ("blobGasUsed", True), ("excessBlobGas", True), ("parentBeaconBlockRoot", False),
                  ("requestsHash", False))
_REQUIRED_FIELDS = 15  # up to the nonce: every header has them
#: transaction proofs fetched at most per block (the last listed transaction's, then the first's)
MAX_PROOFS_PER_BLOCK = 2

#: ``call(method, params)``: one JSON-RPC call to the node (its answer is checked, never believed)
Rpc = Callable[[str, list[Any]], Any]


def _hex_field(block: dict[str, Any], key: str, quantity: bool) -> bytes:
    value = block.get(key)
    if not isinstance(value, str) or not value.startswith("0x") or len(value) > 2 + 2 * 512:
        raise InvalidInput(f"the block's {key} is not a hex string")
    try:
        return bytes.fromhex(value[2:]) if not quantity else int(value, 16).to_bytes(32, "big").lstrip(b"\0")
    except (ValueError, OverflowError):
        raise InvalidInput(f"the block's {key} is not valid hex") from None


def header_of(block: dict[str, Any]) -> BlockHeader:
    """The header a node's block object describes: its fields encoded in RLP as Ethereum does, decoded again (the
    result's ``hash`` is keccak-256 of that encoding; it equals the block's hash only if every field is the
    block's own)."""
    fields: list[bytes] = []
    for i, (key, quantity) in enumerate(_HEADER_FIELDS):
        if i >= _REQUIRED_FIELDS and key not in block:
            break
        fields.append(_hex_field(block, key, quantity))
    return decode_header(rlp.encode(fields))


def verified_header(block: dict[str, Any], certificate: CommitCertificate | None) -> tuple[BlockHeader | None,
                                                                                           str | None]:
    """The header of ``block`` when it hashes to the hash ``certificate`` (already verified) signs; else None and
    why."""
    if certificate is None:
        return None, "the block has no verified certificate"
    try:
        header = header_of(block)
    except (ShanchengError, ValueError) as exc:
        return None, " ".join(str(exc).split())[:300]
    if header.hash != certificate.block_hash or header.number != certificate.height:
        return None, (f"the node's header fields hash to 0x{header.hash.hex()}, not to the certified block hash "
                      f"0x{certificate.block_hash.hex()}")
    return header, None


def proven_count(header: BlockHeader, listed: list[Any], rpc: Rpc) -> bool:
    """Whether the block of the verified ``header`` holds exactly ``len(listed)`` transactions, ``listed`` being
    the node's transaction hashes in block order (see the module docstring). Never raises for a node's answer."""
    count = len(listed)
    if count == 0:
        return header.transactions_root == EMPTY_TRIE_ROOT
    pool: dict[bytes, bytes] = {}
    asks = [(count - 1, listed[-1])] + ([(0, listed[0])] if count > 1 else [])
    for index, tx_hash in asks[:MAX_PROOFS_PER_BLOCK]:
        if not _proves_at(header, tx_hash, index, rpc, pool):
            return False
        if (absent := _absent(header.transactions_root, rlp.encode(count), pool)) is not None:
            return absent
    return False


def _proves_at(header: BlockHeader, tx_hash: Any, index: int, rpc: Rpc, pool: dict[bytes, bytes]) -> bool:
    """Whether the node proves the transaction ``tx_hash`` at ``index`` under ``header``; its proof's nodes go to
    ``pool``."""
    try:
        answer = rpc("shancheng_getTransactionProof", [tx_hash])
        proven = verify_transaction_proof_json(answer, header)
        parsed = parse_transaction_proof(answer)
    except (ShanchengError, ValueError, TypeError):
        return False
    if to_hex(proven) != str(tx_hash).lower() or parsed.transaction_index != index:
        return False
    pool.update((keccak(node), node) for node in parsed.proof)
    return True


def _absent(root: bytes, key: bytes, pool: dict[bytes, bytes]) -> bool | None:
    """True when the nodes in ``pool`` prove ``key`` absent under ``root``, False when they show it present, None
    when they do not reach far enough along its path."""
    path = _path(root, key, pool)
    if path is None:
        return None
    try:
        return verify_trie_proof_or_absent(root, key, path) is None
    except TrieProofError:
        return None


def _path(root: bytes, key: bytes, pool: dict[bytes, bytes]) -> list[bytes] | None:
    """The hashed nodes of ``pool`` along ``key``'s path from ``root``, in order (the candidate proof the SDK's walk
    then checks), or None when a node on the way is not in ``pool``."""
    nibbles = [n for b in key for n in (b >> 4, b & 0x0F)]
    path: list[bytes] = []
    ref: Any = root
    pos = 0
    while True:
        if isinstance(ref, bytes):
            if ref == b"":
                return path
            raw = pool.get(ref)
            if raw is None:
                return None
            path.append(raw)
            try:
                node = rlp.decode(raw)
            except rlp.exceptions.DecodingError:
                return None
        else:
            node = ref  # a node shorter than 32 bytes, embedded in its parent
        if not isinstance(node, list):
            return None
        if len(node) == 17:
            if pos == len(nibbles):
                return path
            ref, pos = node[nibbles[pos]], pos + 1
        elif len(node) == 2 and isinstance(node[0], bytes) and node[0]:
            flag, first = node[0][0] >> 4, node[0][0] & 0x0F
            partial = ([first] if flag & 1 else []) + [n for b in node[0][1:] for n in (b >> 4, b & 0x0F)]
            if nibbles[pos:pos + len(partial)] != partial or flag & 2:
                return path  # the key leaves this node's path, or the node is a leaf: the walk ends here
            ref, pos = node[1], pos + len(partial)
        else:
            return None
