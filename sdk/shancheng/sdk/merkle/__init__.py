"""RFC 9162 Merkle trees and proofs over SM3, and SM2-signed checkpoints.

>>> from shancheng.sdk.merkle import MerkleTree, verify_inclusion, verify_consistency
>>> tree = MerkleTree.from_leaves([b"a", b"b", b"c"])
>>> verify_inclusion(b"c", 2, 3, tree.inclusion_proof(2), tree.root())
>>> old = tree.root(2)
>>> verify_consistency(2, 3, old, tree.root(), tree.consistency_proof(2))
"""

from ._hashing import EMPTY_ROOT, leaf_hash, node_hash
from .checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteSigner,
    NoteVerifier,
    VerifiedCheckpoint,
    open_checkpoint,
    verify_checkpoint,
)
from .proofs import root_from_inclusion_proof, verify_consistency, verify_inclusion
from .tree import MerkleTree

__all__ = [
    "EMPTY_ROOT",
    "Checkpoint",
    "CheckpointError",
    "MerkleTree",
    "NoteSigner",
    "NoteVerifier",
    "VerifiedCheckpoint",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "root_from_inclusion_proof",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
]
