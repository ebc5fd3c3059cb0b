"""Verification of RFC 9162 inclusion and consistency proofs (SM3).

Both functions raise; they never return a boolean.  Malformed proofs
(index out of range, wrong length, wrong element size) raise
:class:`InvalidProof`; well-formed proofs that compute another root raise
:class:`RootMismatchError` carrying ``size``, ``computed`` and ``expected``.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from ..errors import InvalidProof, RootMismatchError
from ._hashing import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash

__all__ = [
    "MAX_PROOF_LENGTH",
    "MAX_TREE_SIZE",
    "inclusion_proof_length",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

MAX_TREE_SIZE = 1 << 63  # tree sizes are unsigned 64-bit
MAX_PROOF_LENGTH = 2 * 64  # consistency proofs are at most ~2 log2(n) long


def _check_sizes_and_hashes(size: int, proof: Sequence[bytes], *hashes: bytes) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < MAX_TREE_SIZE:
        raise InvalidProof(f"tree size {size!r} is not an unsigned 64-bit integer")
    if not isinstance(proof, (list, tuple)) or len(proof) > MAX_PROOF_LENGTH:
        raise InvalidProof("proof must be a list of at most 128 hashes")
    for h in (*proof, *hashes):
        if not isinstance(h, (bytes, bytearray)) or len(h) != HASH_SIZE:
            raise InvalidProof("every proof element and root must be a 32-byte SM3 hash")


def inclusion_proof_length(index: int, size: int) -> int:
    """The exact number of hashes in PATH(index, D[size])."""
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner + border


def root_from_inclusion_proof(leaf_digest: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` implies for a leaf *hash* at ``index`` (RFC 9162 §2.1.3.2)."""
    _check_sizes_and_hashes(size, proof, leaf_digest)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
        raise InvalidProof(f"leaf index {index!r} is not below tree size {size}")
    want = inclusion_proof_length(index, size)
    if len(proof) != want:
        raise InvalidProof(f"inclusion proof has {len(proof)} hashes; index {index} in size {size} needs {want}")
    fn, sn, r = index, size - 1, bytes(leaf_digest)
    for p in proof:
        if sn == 0:  # unreachable after the length check; kept as the RFC's guard
            raise InvalidProof("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("inclusion proof is too short")
    return r


def verify_inclusion(leaf_data: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_data`` is leaf ``index`` of the tree of ``size`` leaves with ``root``."""
    if not isinstance(leaf_data, (bytes, bytearray)):
        raise InvalidProof("leaf data must be bytes")
    _check_sizes_and_hashes(size, proof, root)
    computed = root_from_inclusion_proof(leaf_hash(bytes(leaf_data)), index, size, proof)
    if not hmac.compare_digest(computed, root):
        raise RootMismatchError(size=size, computed=computed, expected=bytes(root))


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (new_size, new_root) extends (old_size, old_root) (RFC 9162 §2.1.4.2)."""
    _check_sizes_and_hashes(new_size, proof, old_root, new_root)
    _check_sizes_and_hashes(old_size, [])
    if old_size > new_size:
        raise InvalidProof(f"old size {old_size} is larger than new size {new_size}")
    if old_size == new_size:
        if proof:
            raise InvalidProof("consistency proof between equal sizes must be empty")
        if not hmac.compare_digest(old_root, new_root):
            raise RootMismatchError(size=new_size, computed=bytes(old_root), expected=bytes(new_root))
        return
    if old_size == 0:
        # Every tree extends the empty tree; the old root must be the empty root.
        if proof:
            raise InvalidProof("consistency proof from the empty tree must be empty")
        if not hmac.compare_digest(old_root, EMPTY_ROOT):
            raise RootMismatchError(size=0, computed=EMPTY_ROOT, expected=bytes(old_root), what="old root")
        return
    if not proof:
        raise InvalidProof("consistency proof is empty")

    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node of the new tree
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise InvalidProof("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("consistency proof is too short")
    if not hmac.compare_digest(fr, old_root):
        raise RootMismatchError(size=old_size, computed=fr, expected=bytes(old_root), what="old root")
    if not hmac.compare_digest(sr, new_root):
        raise RootMismatchError(size=new_size, computed=sr, expected=bytes(new_root), what="new root")
