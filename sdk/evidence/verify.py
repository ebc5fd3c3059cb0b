"""Offline verification of evidence packages.

Checks, in order, each failing with its own one-line reason:

1. the package is well-formed v1 (:class:`PackageError`);
2. the author's SM2 signature over the record statement (``author signature ...``);
3. the checkpoint is signed by the trusted key — the pinned one, or else the
   signer named in the package (``checkpoint ...``);
4. the checkpoint's tree size equals the proof's tree size;
5. the RFC 9162 inclusion proof of the statement leads to the checkpoint root
   (``inclusion proof ...``);
6. with a ``chain`` part (which needs ``genesis=``): the checkpoint was
   anchored in a final block (``shancheng.sdk.evidence.chain``: receipt proof,
   ``BatchAnchored`` log from the genesis registry, commit certificate);
7. optionally, the record itself (with its salt or the HMAC key) reproduces
   the commitment (``record does not match ...``).

A package with a chain part is refused without the genesis file rather than
half-checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..chainproof import GenesisFile
from ..crypto import SM2PublicKey
from ..errors import InvalidInput, InvalidKey, InvalidProof, RootMismatchError, VerificationError
from ..merkle import Checkpoint, CheckpointError, NoteVerifier, verify_checkpoint, verify_inclusion
from .chain import GenesisRequired, VerifiedAnchor, verify_chain_part
from .package import EvidencePackage, PackageError

__all__ = ["VerifiedEvidence", "verify_package"]


@dataclass(frozen=True)
class VerifiedEvidence:
    """What a successful verification established, and what it did not."""

    package: EvidencePackage
    checkpoint: Checkpoint
    checkpoint_key: NoteVerifier
    checkpoint_key_pinned: bool
    author_pinned: bool
    record_checked: bool
    not_checked: tuple[str, ...] = field(default=())
    anchor: VerifiedAnchor | None = None

    def summary(self) -> str:
        st = self.package.record.statement
        inc = self.package.inclusion
        parts = [
            f"OK {st.kind} {st.source}#{st.sequence} commitment {st.commitment.value.hex()[:16]}…",
            f"leaf {inc.leaf_index} of {inc.tree_size} in {self.checkpoint.origin}",
            f"checkpoint signed by {self.checkpoint_key.name} ({self.checkpoint_key.key_id.hex()})"
            + ("" if self.checkpoint_key_pinned else " [key taken from the package, not pinned]"),
            f"author {self.package.record.author.sm3_address().hex()}"
            + ("" if self.author_pinned else " [not pinned]"),
        ]
        if self.anchor is not None:
            parts.append(self.anchor.summary())
        if self.record_checked:
            parts.append("record content matches")
        if self.not_checked:
            parts.append("not checked: " + "; ".join(self.not_checked))
        return "; ".join(parts)


def verify_package(
    package: EvidencePackage | str | bytes,
    *,
    record: Any = None,
    salt: bytes | None = None,
    hmac_key: bytes | None = None,
    checkpoint_keys: list[NoteVerifier] | None = None,
    authors: list[SM2PublicKey] | None = None,
    genesis: GenesisFile | None = None,
) -> VerifiedEvidence:
    """Verify an evidence package offline; raises a :class:`VerificationError` subclass on failure.

    A package with a ``chain`` part needs ``genesis`` (the chain's genesis file) to be verified.
    """
    pkg = package if isinstance(package, EvidencePackage) else EvidencePackage.loads(package)
    if pkg.chain is not None and genesis is None:
        raise GenesisRequired(
            "$.chain: cannot check chain proofs without the chain's genesis file: pass --genesis FILE"
        )

    signed = pkg.record
    if authors is not None and signed.author not in authors:
        raise VerificationError("author key is not one of the pinned author keys")
    signed.verify()  # raises InvalidSignature naming the record statement

    try:
        embedded = NoteVerifier.from_vkey(pkg.checkpoint_signer)
    except (InvalidKey, InvalidInput) as exc:
        raise PackageError(f"$.checkpoint.signer: {exc}") from exc
    pinned = checkpoint_keys is not None
    trusted = checkpoint_keys if checkpoint_keys is not None else [embedded]
    opened = verify_checkpoint(pkg.checkpoint_note, trusted)
    checkpoint, signer = opened.checkpoint, opened.signers[0]

    inc = pkg.inclusion
    if checkpoint.size != inc.tree_size:
        raise CheckpointError(
            f"checkpoint tree size {checkpoint.size} differs from the inclusion proof's tree size {inc.tree_size}"
        )
    try:
        verify_inclusion(signed.statement.to_bytes(), inc.leaf_index, inc.tree_size, list(inc.hashes), checkpoint.root)
    except RootMismatchError as exc:
        raise RootMismatchError(
            size=exc.size, computed=exc.computed, expected=exc.expected, what="inclusion proof: root"
        ) from exc
    except InvalidProof as exc:
        raise InvalidProof(f"inclusion proof: {exc}") from exc

    anchor = None
    not_checked = []
    if pkg.chain is not None and genesis is not None:
        anchor = verify_chain_part(pkg.chain, checkpoint, genesis)
    else:
        not_checked.append("chain anchoring (no chain proofs in this package)")
    record_checked = False
    if record is not None:
        signed.statement.commitment.verify(record, salt=salt, key=hmac_key)
        record_checked = True
    else:
        not_checked.insert(0, "record content (no record given)")
    return VerifiedEvidence(
        package=pkg,
        checkpoint=checkpoint,
        checkpoint_key=signer,
        checkpoint_key_pinned=pinned,
        author_pinned=authors is not None,
        record_checked=record_checked,
        not_checked=tuple(not_checked),
        anchor=anchor,
    )
