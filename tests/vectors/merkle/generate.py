#!/usr/bin/env python3
"""Generate the RFC 9162 / SM3 Merkle proof vectors in this folder.

Run from the repository root:  .venv/bin/python tests/vectors/merkle/generate.py

Each JSON file holds one good proof and its mutations (after
transparency-dev/merkle's proofgen): wrong index, wrong size, truncated,
extended, each element with one bit flipped, wrong leaf, wrong root.  Every
case has ``desc`` and ``want_error`` (null, or the error class name the
Python verifier raises: ``InvalidProof`` for malformed proofs,
``RootMismatchError`` for well-formed proofs that compute another root).
Other verifiers (Solidity, CLI) only need error vs. no error.

A proof does not bind the tree size by itself — the signed checkpoint does —
and some neighbouring sizes share a path shape (PATH(2, D[5]) and PATH(2, D[6])
are the same walk), so a "wrong size" mutation that still verifies against
the original root is dropped rather than recorded as an error.

Leaf ``i`` of every tree is the ASCII bytes ``"leaf-<i>"``.  The output is
deterministic; tests fail if the committed files differ from a fresh run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from shancheng.sdk.errors import InvalidProof, RootMismatchError
from shancheng.sdk.merkle import MerkleTree, verify_consistency, verify_inclusion

HERE = Path(__file__).resolve().parent
INCLUSION_CASES = [(1, 0), (2, 1), (3, 2), (5, 2), (7, 6), (8, 3), (13, 0), (13, 12), (16, 9), (31, 17), (100, 64)]
CONSISTENCY_CASES = [(1, 2), (2, 3), (3, 7), (4, 8), (6, 8), (7, 13), (8, 13), (15, 31), (32, 100)]


def leaf(i: int) -> bytes:
    return f"leaf-{i}".encode()


def flip(h: str, bit: int = 0) -> str:
    b = bytearray(bytes.fromhex(h))
    b[bit // 8] ^= 1 << (bit % 8)
    return b.hex()


def _error_name(fn: Any, *args: Any) -> str | None:
    try:
        fn(*args)
    except RootMismatchError:
        return "RootMismatchError"
    except InvalidProof:
        return "InvalidProof"
    return None


def inclusion_file(tree: MerkleTree, size: int, index: int) -> dict[str, Any]:
    proof = [h.hex() for h in tree.inclusion_proof(index, size)]
    root = tree.root(size).hex()
    good = {"leaf_hex": leaf(index).hex(), "index": index, "size": size, "proof": proof, "root": root}
    cases = [("valid proof", good)]
    cases.append(("wrong index", {**good, "index": (index + 1) % size} if size > 1 else {**good, "index": 1}))
    cases.append(("wrong size (one more)", {**good, "size": size + 1}))
    if size > 1:
        cases.append(("wrong size (one less)", {**good, "size": size - 1}))
    cases.append(("index equal to size", {**good, "index": size}))
    if proof:
        cases.append(("truncated proof", {**good, "proof": proof[:-1]}))
    cases.append(("extended proof", {**good, "proof": proof + [root]}))
    cases.append(("wrong leaf", {**good, "leaf_hex": leaf(index + 1000).hex()}))
    cases.append(("wrong root", {**good, "root": flip(root)}))
    for i in range(len(proof)):
        mutated = list(proof)
        mutated[i] = flip(mutated[i], 7 + 8 * i)
        cases.append((f"bit flipped in proof element {i}", {**good, "proof": mutated}))
    out = []
    for desc, inp in cases:
        err = _error_name(
            verify_inclusion,
            bytes.fromhex(inp["leaf_hex"]),
            inp["index"],
            inp["size"],
            [bytes.fromhex(h) for h in inp["proof"]],
            bytes.fromhex(inp["root"]),
        )
        if desc == "valid proof" and err is not None:
            raise SystemExit(f"generator bug: good inclusion proof fails ({size}, {index})")
        if desc != "valid proof" and err is None:
            if desc.startswith("wrong size"):
                continue
            raise SystemExit(f"generator bug: mutation {desc!r} verifies ({size}, {index})")
        out.append({"desc": desc, "input": inp, "want_error": err})
    return {"kind": "inclusion", "hash": "SM3", "leaf_rule": "leaf i = ASCII 'leaf-<i>'", "cases": out}


def consistency_file(tree: MerkleTree, old: int, new: int) -> dict[str, Any]:
    proof = [h.hex() for h in tree.consistency_proof(old, new)]
    old_root, new_root = tree.root(old).hex(), tree.root(new).hex()
    good = {"old_size": old, "new_size": new, "old_root": old_root, "new_root": new_root, "proof": proof}
    cases = [("valid proof", good)]
    cases.append(("wrong old size", {**good, "old_size": old + 1}))
    cases.append(("wrong new size", {**good, "new_size": new + 1}))
    cases.append(("sizes swapped", {**good, "old_size": new, "new_size": old}))
    if proof:
        cases.append(("truncated proof", {**good, "proof": proof[:-1]}))
        cases.append(("empty proof", {**good, "proof": []}))
    cases.append(("extended proof", {**good, "proof": proof + [new_root]}))
    cases.append(("wrong old root", {**good, "old_root": flip(old_root)}))
    cases.append(("wrong new root", {**good, "new_root": flip(new_root)}))
    for i in range(len(proof)):
        mutated = list(proof)
        mutated[i] = flip(mutated[i], 3 + 8 * i)
        cases.append((f"bit flipped in proof element {i}", {**good, "proof": mutated}))
    out = []
    for desc, inp in cases:
        err = _error_name(
            verify_consistency,
            inp["old_size"],
            inp["new_size"],
            bytes.fromhex(inp["old_root"]),
            bytes.fromhex(inp["new_root"]),
            [bytes.fromhex(h) for h in inp["proof"]],
        )
        if desc == "valid proof" and err is not None:
            raise SystemExit(f"generator bug: good consistency proof fails ({old}, {new})")
        if desc != "valid proof" and err is None:
            if desc.startswith("wrong new size"):
                continue
            raise SystemExit(f"generator bug: mutation {desc!r} verifies ({old}, {new})")
        out.append({"desc": desc, "input": inp, "want_error": err})
    return {"kind": "consistency", "hash": "SM3", "leaf_rule": "leaf i = ASCII 'leaf-<i>'", "cases": out}


def generate() -> dict[str, str]:
    """Relative path -> file text, for every vector file."""
    biggest = max(max(s for s, _ in INCLUSION_CASES), max(n for _, n in CONSISTENCY_CASES))
    tree = MerkleTree.from_leaves(leaf(i) for i in range(biggest))
    files = {}
    for size, index in INCLUSION_CASES:
        doc = inclusion_file(tree, size, index)
        files[f"inclusion/size-{size:04d}-index-{index:04d}.json"] = json.dumps(doc, indent=1) + "\n"
    for old, new in CONSISTENCY_CASES:
        doc = consistency_file(tree, old, new)
        files[f"consistency/old-{old:04d}-new-{new:04d}.json"] = json.dumps(doc, indent=1) + "\n"
    return files


def main() -> int:
    files = generate()
    for rel, text in files.items():
        path = HERE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {len(files)} vector files under {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
