"""Offline verification of evidence packages.

A package is only ever valid against a trust root the auditor supplies; nothing is trusted because the
package says so.  Two modes:

- **chain** (``genesis=``, the chain's genesis file, optionally pinned by ``genesis_fingerprint=``): the package
  must prove its anchoring on that chain (:mod:`shancheng.sdk.evidence.chain`): the log's owner, its registered
  key, the author's membership, the block and its commit certificate.  A package without chain proofs is invalid.
  When the genesis file is another chain's, where a light client of the package's chain stored the anchoring
  block's checkpoint, the package's ``crosschain`` part proves that instead (:mod:`shancheng.sdk.evidence.crosschain`).
- **pinned checkpoint key** (``checkpoint_keys=``, obtained out of band): the checkpoint must be signed by one of
  them; nothing about a chain is claimed.

Without either, verification fails (:class:`UntrustedPackage`).  ``unsafe_trust_embedded_checkpoint_key=True``
takes the checkpoint key from the package itself — for debugging only: anyone can make such a package.

Checks, in order, each failing with its own one-line reason: the package is well-formed v2; the author's SM2
signature over the record statement; the statement's source is the log's origin and its sequence its leaf index;
the checkpoint verifies under the trusted key; its size equals the proof's; the RFC 9162 inclusion proof of the
leaf (statement and author key) leads to the checkpoint root; in chain mode, the chain part; optionally the record
itself (with its salt or HMAC key) reproduces the commitment.

Every refusal names the check that failed: the error's ``check`` is one of :data:`CHECKS`, set by the stage that
raised it (not guessed from its type), so a user interface can say which checks passed and which one did not.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..chainproof import GenesisFile
from ..crypto import SM2PublicKey
from ..errors import InvalidInput, InvalidKey, InvalidProof, RootMismatchError, ShanchengError, VerificationError
from ..merkle import Checkpoint, CheckpointError, NoteVerifier, verify_checkpoint, verify_inclusion
from .chain import ChainProofError, GenesisRequired, VerifiedAnchor, verify_chain_part
from .crosschain import VerifiedCrossChain, anchored_elsewhere, verify_crosschain_part
from .package import EvidencePackage, PackageError, leaf_data

__all__ = ["CHECKS", "UntrustedPackage", "VerifiedEvidence", "verify_package"]

#: The verifier's checks in the order it makes them; a refusal's ``check`` is one of these.
CHECKS = ("package", "record signature", "checkpoint signature", "inclusion proof", "chain anchor", "record content")

_log = logging.getLogger("shancheng.sdk.evidence")


class UntrustedPackage(VerificationError):
    """No trust root was given: neither the chain's genesis file nor a pinned checkpoint key."""


@dataclass(frozen=True)
class VerifiedEvidence:
    """What a successful verification established."""

    package: EvidencePackage
    checkpoint: Checkpoint
    checkpoint_key: NoteVerifier
    trust_root: str  # "genesis", "checkpoint-key" or "unsafe-embedded-key"
    author_pinned: bool
    record_checked: bool
    anchor: VerifiedAnchor | None = None
    not_checked: tuple[str, ...] = field(default=())
    crosschain: VerifiedCrossChain | None = None  # the anchoring proven on the genesis file's chain, a light client's
    unpinned_light_client: bool = False  # the cross-chain light client's address was taken from the package (unsafe)

    @property
    def checkpoint_key_pinned(self) -> bool:
        return self.trust_root == "checkpoint-key"

    @property
    def unsafe(self) -> bool:
        return self.trust_root == "unsafe-embedded-key" or self.unpinned_light_client

    def summary(self) -> str:
        st = self.package.record.statement
        inc = self.package.inclusion
        if self.trust_root == "unsafe-embedded-key":
            verdict = "UNSAFE (checkpoint key taken from the package itself, not pinned) "
        elif self.unpinned_light_client:
            verdict = "UNSAFE (light client address taken from the package itself, not pinned) "
        else:
            verdict = "OK "
        parts = [
            verdict + f"{st.kind} {st.source}#{st.sequence} commitment {st.commitment.value.hex()[:16]}…",
            f"leaf {inc.leaf_index} of {inc.tree_size} in {self.checkpoint.origin}",
        ]
        if self.anchor is not None:
            parts.append(self.anchor.author_summary())
            parts.append(self.anchor.summary())
        elif self.crosschain is not None:
            parts.append(f"author key {self.package.record.author.sm3_address().hex()} (attested by the checkpoint "
                         "signer)")
            parts.append(self.crosschain.summary())
        else:
            parts.append(
                f"checkpoint signed by the pinned key {self.checkpoint_key.name} ({self.checkpoint_key.key_id.hex()})"
                if self.checkpoint_key_pinned
                else f"checkpoint signed by {self.checkpoint_key.name} (key from the package)"
            )
            parts.append(
                f"author key {self.package.record.author.sm3_address().hex()}"
                + (" (pinned)" if self.author_pinned else " (attested by the checkpoint signer)")
            )
        if self.record_checked:
            parts.append("record content matches")
        if self.not_checked:
            parts.append("not checked: " + "; ".join(self.not_checked))
        return "; ".join(parts)


@contextmanager
def _check(name: str) -> Iterator[None]:
    """Name ``name`` as the failed check of any refusal raised inside (the innermost stage wins)."""
    try:
        yield
    except ShanchengError as exc:
        if exc.check is None:
            exc.check = name
        raise
    except ValueError as exc:  # a malformed value met by a library: still a refusal of this check
        refusal = InvalidInput(f"{name}: {exc}")
        refusal.check = name
        raise refusal from exc


def _trusted_keys(
    pkg: EvidencePackage, checkpoint_keys: list[NoteVerifier] | None, unsafe: bool, chain_mode: bool
) -> tuple[list[NoteVerifier], str]:
    if checkpoint_keys is not None:
        if not checkpoint_keys:
            raise InvalidInput("an empty list of pinned checkpoint keys trusts nothing")
        return list(checkpoint_keys), "genesis" if chain_mode else "checkpoint-key"
    try:
        embedded = NoteVerifier.from_vkey(pkg.checkpoint_signer)
    except (InvalidKey, InvalidInput) as exc:
        raise PackageError(f"$.checkpoint.signer: {exc}") from exc
    if chain_mode:
        return [embedded], "genesis"  # the chain part proves this key is the anchoring org's registered key
    if unsafe:
        _log.warning("UNSAFE: trusting the checkpoint key carried by the package itself")
        return [embedded], "unsafe-embedded-key"
    raise UntrustedPackage(
        "no trust root: pass --genesis FILE for a chain-anchored package, or pin the log's --checkpoint-key"
    )


def verify_package(
    package: EvidencePackage | str | bytes,
    *,
    record: Any = None,
    salt: bytes | None = None,
    hmac_key: bytes | None = None,
    checkpoint_keys: list[NoteVerifier] | None = None,
    authors: list[SM2PublicKey] | None = None,
    genesis: GenesisFile | None = None,
    genesis_fingerprint: bytes | None = None,
    unsafe_trust_embedded_checkpoint_key: bool = False,
    light_client: bytes | None = None,
    unsafe_unpinned_light_client: bool = False,
) -> VerifiedEvidence:
    """Verify an evidence package offline; raises a :class:`VerificationError` subclass on failure, whose
    ``check`` names the failed one of :data:`CHECKS`.  ``light_client`` pins the address of the light client a
    cross-chain package must name (:mod:`.crosschain`), as the target chain's governance publishes it: a cross-chain
    package is refused without it (:class:`UntrustedPackage`), unless ``unsafe_unpinned_light_client`` takes the
    address from the package itself — its code and storage are proven, but not how it was deployed: a genuine light
    client deployed with made-up genesis validators would pass."""
    with _check("package"):
        pkg = package if isinstance(package, EvidencePackage) else EvidencePackage.loads(package)
        if genesis_fingerprint is not None:
            if genesis is None:
                raise InvalidInput("a pinned genesis fingerprint needs the genesis file")
            if not hmac.compare_digest(genesis.fingerprint, genesis_fingerprint):
                raise ChainProofError(
                    f"the genesis file's fingerprint is 0x{genesis.fingerprint.hex()}, "
                    f"not the pinned 0x{genesis_fingerprint.hex()}"
                )
        chain_mode = genesis is not None
        if pkg.chain is not None and not chain_mode:
            raise GenesisRequired(
                "$.chain: cannot check chain proofs without the chain's genesis file: pass --genesis FILE"
            )
        trusted, trust_root = _trusted_keys(pkg, checkpoint_keys, unsafe_trust_embedded_checkpoint_key, chain_mode)

    signed = pkg.record
    with _check("record signature"):
        if authors is not None and signed.author not in authors:
            raise VerificationError("author key is not one of the pinned author keys")
        signed.verify()  # raises InvalidSignature naming the record statement

    with _check("checkpoint signature"):
        opened = verify_checkpoint(pkg.checkpoint_note, trusted)
        checkpoint, signer = opened.checkpoint, opened.signers[0]
        if not any(v.to_vkey() == pkg.checkpoint_signer for v in opened.signers):
            raise CheckpointError("$.checkpoint.signer is not the key that signed the checkpoint")
    st, inc = signed.statement, pkg.inclusion
    with _check("inclusion proof"):  # the record is the leaf at its sequence in the signed tree of its log
        if st.source != checkpoint.origin:
            raise VerificationError(f"record source {st.source!r} is not the checkpoint's log {checkpoint.origin!r}")
        if st.sequence != inc.leaf_index:
            raise VerificationError(f"record sequence {st.sequence} is not its leaf index {inc.leaf_index} in the log")
        if checkpoint.size != inc.tree_size:
            raise CheckpointError(
                f"checkpoint tree size {checkpoint.size} differs from the inclusion proof's tree size {inc.tree_size}"
            )
        try:
            verify_inclusion(leaf_data(signed), inc.leaf_index, inc.tree_size, list(inc.hashes), checkpoint.root)
        except RootMismatchError as exc:
            raise RootMismatchError(
                size=exc.size, computed=exc.computed, expected=exc.expected, what="inclusion proof: root"
            ) from exc
        except InvalidProof as exc:
            raise InvalidProof(f"inclusion proof: {exc}") from exc

    anchor = crosschain = None
    not_checked: list[str] = []
    if genesis is not None:
        with _check("chain anchor"):
            if anchored_elsewhere(pkg, genesis):  # the genesis file is the target chain's, not the source's
                if light_client is None and not unsafe_unpinned_light_client:
                    raise UntrustedPackage(
                        "this package is anchored on another chain through a light client: pin the light client's "
                        "address as the target chain's governance publishes it (--light-client ADDRESS)")
                crosschain = verify_crosschain_part(pkg, opened, genesis, light_client=light_client)
                if light_client is None:
                    not_checked.append(f"the light client's address 0x{crosschain.light_client.hex()} against the "
                                       "one the target chain's governance published (pin it: --light-client)")
                not_checked.append("the organisation's name and the author's membership on the source chain "
                                   "(its Governance: verify with the source genesis file for them)")
            else:
                if light_client is not None:
                    raise InvalidInput("a pinned light client applies to a cross-chain package only: this package "
                                       "is verified on the genesis file's own chain")
                anchor = verify_chain_part(pkg, opened, genesis)
    record_checked = False
    if record is not None:
        with _check("record content"):
            st.commitment.verify(record, salt=salt, key=hmac_key)
        record_checked = True
    else:
        not_checked.append("record content (no record given)")
    return VerifiedEvidence(
        package=pkg,
        checkpoint=checkpoint,
        checkpoint_key=signer,
        trust_root=trust_root,
        author_pinned=authors is not None,
        record_checked=record_checked,
        anchor=anchor,
        not_checked=tuple(not_checked),
        unpinned_light_client=crosschain is not None and light_client is None,
        crosschain=crosschain,
    )
