"""RFC 9162 hashing with SM3: leaf = SM3(0x00 || d), node = SM3(0x01 || l || r)."""

from __future__ import annotations

from ..crypto.sm3 import SM3_DIGEST_SIZE, new_sm3, sm3

HASH_SIZE = SM3_DIGEST_SIZE
EMPTY_ROOT = sm3(b"")  # MTH({}) = HASH() for the empty tree

_LEAF_BASE = new_sm3(b"\x00")
_NODE_BASE = new_sm3(b"\x01")


def leaf_hash(data: bytes) -> bytes:
    h = _LEAF_BASE.copy()
    h.update(data)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    h = _NODE_BASE.copy()
    h.update(left)
    h.update(right)
    return h.digest()


def hash_leaves(items: list[bytes]) -> list[bytes]:
    """Leaf hashes of many items; the loop is inlined because it is the hot path."""
    base = _LEAF_BASE
    out: list[bytes] = []
    append = out.append
    for data in items:
        h = base.copy()
        h.update(data)
        append(h.digest())
    return out


def hash_pairs(level: list[bytes], start: int, stop: int) -> list[bytes]:
    """Parents of the complete pairs level[start:stop] (start even, stop - start even)."""
    base = _NODE_BASE
    out: list[bytes] = []
    append = out.append
    for i in range(start, stop, 2):
        h = base.copy()
        h.update(level[i])
        h.update(level[i + 1])
        append(h.digest())
    return out


def largest_power_of_two_below(n: int) -> int:
    """k with k < n <= 2k (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)
