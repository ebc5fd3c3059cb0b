"""Batching signed records into an SM3 Merkle tree and cutting evidence packages.

An :class:`EvidenceBatch` is one source's append-only log: signed records are
appended as leaves (:func:`~shancheng.sdk.evidence.package.leaf_data`: the
statement and its author's key), a signed checkpoint commits to the tree head,
and each record gets a package proving its inclusion under that checkpoint.

A statement's ``source`` is the log's origin and its ``sequence`` is its leaf
index, so a record number can never appear twice in one log: the verifier
checks both.
"""

from __future__ import annotations

from ..errors import InvalidInput, InvalidSignature
from ..merkle import Checkpoint, MerkleTree, NoteSigner
from ..records import SignedRecord
from .package import EvidencePackage, InclusionProof, leaf_data

__all__ = ["EvidenceBatch"]


class EvidenceBatch:
    """>>> batch = EvidenceBatch(origin="shancheng.example/log/hosp-001", signer=signer)
    >>> i = batch.add(statement.sign(author_key))
    >>> note = batch.checkpoint()
    >>> package = batch.package(i)
    """

    def __init__(self, *, origin: str, signer: NoteSigner) -> None:
        self._origin = origin
        self._signer = signer
        self._tree = MerkleTree()
        self._records: list[SignedRecord] = []
        self._notes: dict[int, str] = {}
        Checkpoint(origin=origin, size=0, root=self._tree.root())  # validates the origin early

    @property
    def origin(self) -> str:
        return self._origin

    @property
    def size(self) -> int:
        return self._tree.size

    @property
    def tree(self) -> MerkleTree:
        return self._tree

    def add(self, record: SignedRecord) -> int:
        """Append a signed record (its signature is checked first); returns its leaf index.

        The statement's source must be this log's origin and its sequence the next leaf index."""
        if not isinstance(record, SignedRecord):
            raise InvalidInput("only SignedRecord values can be batched")
        st = record.statement
        if st.source != self._origin:
            raise InvalidInput(f"record source {st.source!r} is not this log's origin {self._origin!r}")
        if st.sequence != self._tree.size:
            raise InvalidInput(f"record sequence {st.sequence} is not the next leaf index {self._tree.size}")
        try:
            record.verify()
        except InvalidSignature as exc:
            raise InvalidInput(f"refusing to batch a record whose signature fails: {exc}") from exc
        index = self._tree.append(leaf_data(record))
        self._records.append(record)
        return index

    def checkpoint(self) -> str:
        """Sign (once per size) and return the checkpoint for the current tree."""
        size = self._tree.size
        if size not in self._notes:
            self._notes[size] = Checkpoint(origin=self._origin, size=size, root=self._tree.root()).sign(self._signer)
        return self._notes[size]

    def package(self, index: int, *, size: int | None = None) -> EvidencePackage:
        """An evidence package for leaf ``index`` under the checkpoint of ``size`` (default: current)."""
        size = self._tree.size if size is None else size
        if size not in self._notes:
            if size != self._tree.size:
                raise InvalidInput(f"no checkpoint was signed at tree size {size}")
            self.checkpoint()
        proof = self._tree.inclusion_proof(index, size)
        return EvidencePackage(
            record=self._records[index],
            inclusion=InclusionProof(leaf_index=index, tree_size=size, hashes=tuple(proof)),
            checkpoint_note=self._notes[size],
            checkpoint_signer=self._signer.verifier.to_vkey(),
        )
