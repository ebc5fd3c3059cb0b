"""An append-only RFC 9162 Merkle tree over SM3.

The tree keeps, for every height h, the roots of all complete, aligned
subtrees of 2**h leaves.  Appending touches at most one node per level
(O(1) amortised, O(log n) worst case); the root of any earlier size and any
inclusion or consistency proof are assembled from O(log n) stored subtrees,
because every left subtree in the RFC 9162 recursion is complete and aligned.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import InvalidInput
from ._hashing import EMPTY_ROOT, hash_leaves, hash_pairs, largest_power_of_two_below, leaf_hash, node_hash

__all__ = ["MerkleTree"]


class MerkleTree:
    """RFC 9162 Merkle tree with SM3.

    >>> t = MerkleTree()
    >>> t.append(b"record 0"), t.append(b"record 1")
    (0, 1)
    >>> proof = t.inclusion_proof(1)
    >>> from shancheng.sdk.merkle import verify_inclusion
    >>> verify_inclusion(b"record 1", 1, 2, proof, t.root())
    """

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        # _levels[h][i] = root of leaves [i * 2**h, (i + 1) * 2**h)
        self._levels: list[list[bytes]] = [[]]

    @classmethod
    def from_leaves(cls, leaves: Iterable[bytes]) -> MerkleTree:
        tree = cls()
        tree.extend(leaves)
        return tree

    @classmethod
    def from_leaf_hashes(cls, hashes: Iterable[bytes]) -> MerkleTree:
        """Rebuild from stored leaf hashes (e.g. after a restart)."""
        tree = cls()
        hashes = list(hashes)
        if any(len(h) != 32 for h in hashes):
            raise InvalidInput("leaf hashes must be 32 bytes")
        tree._add_leaf_hashes(hashes)
        return tree

    def __len__(self) -> int:
        return len(self._levels[0])

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def leaf_hash(self, index: int) -> bytes:
        self._check_index(index, self.size)
        return self._levels[0][index]

    # -- growth ----------------------------------------------------------
    def append(self, leaf_data: bytes) -> int:
        """Append one leaf; returns its index."""
        if not isinstance(leaf_data, (bytes, bytearray)):
            raise InvalidInput("leaf data must be bytes")
        levels = self._levels
        index = len(levels[0])
        node = leaf_hash(bytes(leaf_data))
        levels[0].append(node)
        h, i = 0, index
        while i & 1:  # this leaf completed a subtree at the next height
            if h + 1 == len(levels):
                levels.append([])
            node = node_hash(levels[h][i - 1], node)
            levels[h + 1].append(node)
            h, i = h + 1, i >> 1
        return index

    def extend(self, leaves: Iterable[bytes]) -> range:
        """Append many leaves at once (the fast path); returns their indices."""
        items = list(leaves)
        if not all(isinstance(x, (bytes, bytearray)) for x in items):
            raise InvalidInput("leaf data must be bytes")
        start = self.size
        self._add_leaf_hashes(hash_leaves(items))
        return range(start, self.size)

    def _add_leaf_hashes(self, hashes: list[bytes]) -> None:
        levels = self._levels
        levels[0].extend(hashes)
        h = 0
        while len(levels[h]) >= 2:
            if h + 1 == len(levels):
                levels.append([])
            have = 2 * len(levels[h + 1])
            complete = len(levels[h]) & ~1
            if have < complete:
                levels[h + 1].extend(hash_pairs(levels[h], have, complete))
            h += 1

    # -- reads -----------------------------------------------------------
    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all)."""
        size = self._check_size(size)
        return EMPTY_ROOT if size == 0 else self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 PATH(index, D[0:size])."""
        size = self._check_size(size)
        self._check_index(index, size)
        proof: list[bytes] = []
        start, end = 0, size
        # Walk down from the root, collecting sibling subtrees; reverse at the end
        # so the proof lists siblings from the leaf upwards.
        while end - start > 1:
            k = largest_power_of_two_below(end - start)
            if index < start + k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start += k
        proof.reverse()
        return proof

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 PROOF(old_size, D[0:new_size]); empty when old_size is 0 or equals new_size."""
        new_size = self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise InvalidInput(f"old size {old_size} must be between 0 and the new size {new_size}")
        if old_size == 0 or old_size == new_size:
            return []
        proof: list[bytes] = []
        start, end, m, complete = 0, new_size, old_size, True
        while m != end:
            k = largest_power_of_two_below(end - start)
            if m - start <= k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start += k
                complete = False
        if not complete:
            proof.append(self._subtree(start, end))
        proof.reverse()
        return proof

    # -- internals ---------------------------------------------------------
    def _subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) where every left split is complete and aligned."""
        n = end - start
        if n & (n - 1) == 0:
            h = n.bit_length() - 1
            return self._levels[h][start >> h]
        k = largest_power_of_two_below(n)
        return node_hash(self._levels[k.bit_length() - 1][start // k], self._subtree(start + k, end))

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= self.size:
            raise InvalidInput(f"tree size {size!r} is out of range [0, {self.size}]")
        return size

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
            raise InvalidInput(f"leaf index {index!r} is out of range for tree size {size}")
