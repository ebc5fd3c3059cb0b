"""Walk an Ethereum Merkle-Patricia trie proof (Yellow Paper appendix D) to the one value it proves.

A proof is the list of hashed trie nodes from the root along the key, in order (the
``eth_getProof`` shape).  Nodes shorter than 32 bytes are embedded in their parent and
are not listed.  The walk refuses anything that does not lead exactly to a value: a node
that does not hash to its parent's reference, a key that leaves the trie, a proof that ends
early or carries nodes it never used.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_hash.auto import keccak

from ..errors import VerificationError
from . import _rlp

__all__ = ["EMPTY_TRIE_ROOT", "TrieProofError", "verify_trie_proof", "verify_trie_proof_or_absent"]

MAX_PROOF_NODES = 64
EMPTY_TRIE_ROOT = keccak(b"\x80")  # the root of the empty trie: keccak256(rlp(b""))


class TrieProofError(VerificationError):
    """A Merkle-Patricia proof does not prove a value for the key under the root."""


def _nibbles(key: bytes) -> list[int]:
    out = []
    for b in key:
        out += [b >> 4, b & 0x0F]
    return out


def _hex_prefix(path: _rlp.Item, where: str) -> tuple[list[int], bool]:
    """Decode a leaf/extension path: (nibbles, is_leaf)."""
    if not isinstance(path, bytes) or not path:
        raise TrieProofError(f"{where}: node path must be a non-empty string")
    flag = path[0] >> 4
    if flag > 3:
        raise TrieProofError(f"{where}: node path has an invalid hex-prefix flag {flag}")
    nibbles = _nibbles(path[1:])
    if flag & 1:
        nibbles.insert(0, path[0] & 0x0F)
    elif path[0] & 0x0F:
        raise TrieProofError(f"{where}: even node path has a non-zero padding nibble")
    return nibbles, bool(flag & 2)


def verify_trie_proof(root: bytes, key: bytes, proof: Sequence[bytes]) -> bytes:
    """Return the value stored at ``key`` under ``root``; raise :class:`TrieProofError` otherwise."""
    value = _walk(root, key, proof, absent_ok=False)
    assert value is not None  # _walk raises rather than returning None when absence is not allowed
    return value


def verify_trie_proof_or_absent(root: bytes, key: bytes, proof: Sequence[bytes]) -> bytes | None:
    """The value stored at ``key`` under ``root``, or None when the proof shows that ``key`` is absent.

    Absence is proven by a branch with no child where the key's path continues, by a leaf or an
    extension whose path the key leaves, or by the empty trie's root (``keccak256(rlp(b""))``) with an
    empty proof (or the one node ``0x80``).  Everything :func:`verify_trie_proof` refuses apart from
    those is refused here too: nodes that do not hash to their reference, a proof that ends early or
    carries unused nodes, non-canonical RLP."""
    return _walk(root, key, proof, absent_ok=True)


def _absent(absent_ok: bool, reason: str) -> None:
    if not absent_ok:
        raise TrieProofError(f"key is not in the trie: {reason}")


def _walk(root: bytes, key: bytes, proof: Sequence[bytes], *, absent_ok: bool) -> bytes | None:
    if len(root) != 32:
        raise TrieProofError("trie root must be 32 bytes")
    if absent_ok and root == EMPTY_TRIE_ROOT and (not proof or list(proof) == [b"\x80"]):
        return None
    if not proof:
        raise TrieProofError("trie proof is empty")
    if len(proof) > MAX_PROOF_NODES:
        raise TrieProofError(f"trie proof has more than {MAX_PROOF_NODES} nodes")
    path = _nibbles(key)
    ref: _rlp.Item = root
    used = pos = 0
    value: _rlp.Item | None
    while True:
        if isinstance(ref, bytes):
            parent = "the root" if used == 0 else f"proof node {used - 1}"
            if len(ref) != 32:
                raise TrieProofError(f"{parent} refers to a child of {len(ref)} bytes (neither a hash nor a node)")
            if used >= len(proof):
                raise TrieProofError(f"trie proof ends after {used} nodes before reaching the value")
            where = f"proof node {used}"
            if keccak(proof[used]) != ref:
                raise TrieProofError(f"{where} does not hash to the reference in {parent}")
            try:
                node = _rlp.decode(proof[used])
            except _rlp.RLPError as exc:
                raise TrieProofError(f"{where} is not RLP: {exc}") from exc
            used += 1
        else:
            where = f"node embedded in proof node {used - 1}"
            if len(_rlp.encode(ref)) >= 32:
                raise TrieProofError(f"{where} is 32 bytes or longer and must be referenced by hash")
            node = ref
        if isinstance(node, bytes):
            raise TrieProofError(f"{where} is a string, not a trie node")
        if len(node) == 17:
            if pos == len(path):
                value = node[16]
                break
            ref = node[path[pos]]
            pos += 1
            if ref == b"":
                _absent(absent_ok, f"{where} has no child at nibble {pos - 1}")
                value = None
                break
        elif len(node) == 2:
            nibbles, is_leaf = _hex_prefix(node[0], where)
            if not is_leaf and not nibbles:
                raise TrieProofError(f"{where} is an extension with an empty path")
            if path[pos : pos + len(nibbles)] != nibbles:
                _absent(absent_ok, f"it leaves the path of {where} at nibble {pos}")
                value = None
                break
            pos += len(nibbles)
            if is_leaf:
                if pos != len(path):
                    _absent(absent_ok, f"{where} is a leaf for a shorter key")
                    value = None
                    break
                value = node[1]
                if value == b"":  # tries never store an empty value: a leaf holding one is not canonical
                    raise TrieProofError(f"key is not in the trie: {where} holds no value for it")
                break
            ref = node[1]
        else:
            raise TrieProofError(f"{where} has {len(node)} items; trie nodes have 2 or 17")
    if value is not None and (not isinstance(value, bytes) or not value):
        if not absent_ok or not isinstance(value, bytes):
            raise TrieProofError(f"key is not in the trie: {where} holds no value for it")
        value = None
    if used != len(proof):
        raise TrieProofError(f"trie proof has {len(proof) - used} unused node(s) after the value")
    return value
