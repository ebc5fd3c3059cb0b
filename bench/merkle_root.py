"""Merkle root of 262,144 leaves vs the raw hashlib SM3 rate for the same hash calls, same run.

The reference hashes exactly the inputs the tree hashes (262,144 leaf inputs
0x00||d and 262,143 node inputs 0x01||l||r of 65 bytes) with the fastest raw
hashlib loop we know (copying a prototype SM3 object), and, for context, with
``hashlib.new('sm3', x)``.  Target (issue 2): ratio >= 0.7.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _reference import best_of

from shancheng.sdk.merkle import MerkleTree

N = 262_144


def main() -> int:
    leaves = [os.urandom(100) for _ in range(N)]
    leaf_inputs = [b"\x00" + d for d in leaves]
    node_inputs = [b"\x01" + os.urandom(64) for _ in range(N - 1)]
    inputs = leaf_inputs + node_inputs

    proto = hashlib.new("sm3")

    def raw_copy() -> None:
        for x in inputs:
            h = proto.copy()
            h.update(x)
            h.digest()

    def raw_new() -> None:
        for x in inputs:
            hashlib.new("sm3", x).digest()

    root = None

    def tree() -> None:
        nonlocal root
        root = MerkleTree.from_leaves(leaves).root()

    t_copy = best_of(raw_copy)
    t_new = best_of(raw_new)
    t_tree = best_of(tree)

    def appends() -> None:
        t = MerkleTree()
        for d in leaves:
            t.append(d)
        assert t.root() == root

    t_append = best_of(appends, repeat=1)
    calls = len(inputs)
    print(f"Merkle root of {N:,} leaves ({calls:,} SM3 calls)")
    print(f"  raw hashlib, copied prototype  {t_copy:6.3f} s  {calls / t_copy / 1e6:5.2f} M hash/s   (reference)")
    print(f"  raw hashlib.new('sm3', x)      {t_new:6.3f} s  {calls / t_new / 1e6:5.2f} M hash/s")
    print(f"  MerkleTree.from_leaves().root  {t_tree:6.3f} s  ratio vs reference {t_copy / t_tree:5.2f}")
    print(f"  MerkleTree.append() x {N:,}   {t_append:6.3f} s  ratio vs reference {t_copy / t_append:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
