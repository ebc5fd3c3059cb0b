"""State proofs, node side: ``eth_getProof`` (EIP-1186) answers from the node's state database.

The account trie and every contract's storage trie are stored node by node under their keccak256
(py-evm's layout, kept by :mod:`shancheng.chain.storage_trie`), for every committed block: a proof
for an old block walks the same database from that block's state root. The answer is built from the
trie walk itself (the account fields come from the leaf the proof ends in), so it can never claim
something its proof does not prove; ``shancheng.sdk.chainproof.verify_eip1186`` checks it.

>>> state_proof(ledger.db, header.state_root, address, [slot_key(0)])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import rlp  # type: ignore[import-untyped]
from eth.constants import BLANK_ROOT_HASH, EMPTY_SHA3
from eth_hash.auto import keccak

from shancheng.sdk.errors import ShanchengError

from .trie import key_nibbles, node_path

__all__ = ["StateProofBuildError", "state_proof", "trie_path"]


class StateProofBuildError(ShanchengError, ValueError):
    """The state the proof needs is not in the database (a node is missing)."""


class NodeSource(Protocol):
    def __getitem__(self, key: bytes) -> bytes: ...


def trie_path(nodes: NodeSource, root: bytes, key: bytes) -> tuple[list[bytes], bytes | None]:
    """The hashed nodes (RLP) from ``root`` along ``key``, and the value there (None when absent).

    The nodes prove the value or its absence: the walk stops at the node where the key's path ends,
    leaves the trie (a branch without that child) or diverges (a leaf or extension off the path).
    The empty trie gives no nodes."""
    if root == BLANK_ROOT_HASH:
        return [], None
    path, pos = key_nibbles(key), 0
    proof: list[bytes] = []
    ref: Any = root
    while True:
        if isinstance(ref, bytes):
            try:
                raw = bytes(nodes[ref])
            except KeyError:
                raise StateProofBuildError(f"trie node 0x{ref.hex()} is not in the database") from None
            proof.append(raw)
            node = rlp.decode(raw)
        else:
            node = ref
        if len(node) == 17:
            if pos == len(path):
                return proof, bytes(node[16]) or None
            ref = node[path[pos]]
            pos += 1
            if ref == b"":
                return proof, None
        else:
            nibbles, is_leaf = node_path(node)
            if path[pos : pos + len(nibbles)] != nibbles:
                return proof, None
            pos += len(nibbles)
            if is_leaf:
                return (proof, bytes(node[1])) if pos == len(path) else (proof, None)
            ref = node[1]


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def state_proof(nodes: NodeSource, state_root: bytes, address: bytes, slots: Sequence[bytes]) -> dict[str, Any]:
    """The ``eth_getProof`` answer for ``address`` and the 32-byte ``slots`` under ``state_root``, in geth's
    JSON form (an absent account has nonce 0, balance 0, the empty code hash and the empty storage root)."""
    account_proof, raw = trie_path(nodes, state_root, keccak(address))
    nonce, balance, storage_root, code_hash = 0, 0, bytes(BLANK_ROOT_HASH), bytes(EMPTY_SHA3)
    if raw is not None:
        fields = rlp.decode(raw)
        nonce, balance = rlp.sedes.big_endian_int.deserialize(fields[0]), rlp.sedes.big_endian_int.deserialize(fields[1])
        storage_root, code_hash = bytes(fields[2]), bytes(fields[3])
    storage = []
    for slot in slots:
        proof, value = trie_path(nodes, storage_root, keccak(slot))
        number = 0 if value is None else rlp.decode(value, sedes=rlp.sedes.big_endian_int)
        storage.append({"key": _hex(slot), "value": hex(number), "proof": [_hex(n) for n in proof]})
    return {
        "address": _hex(address),
        "accountProof": [_hex(n) for n in account_proof],
        "balance": hex(balance),
        "codeHash": _hex(code_hash),
        "nonce": hex(nonce),
        "storageHash": _hex(storage_root),
        "storageProof": storage,
    }
