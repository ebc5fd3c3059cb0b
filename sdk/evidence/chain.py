"""The ``chain`` part of an evidence package: the checkpoint's anchoring on chain, proven offline.

Format (``docs/chain-formats.md``, "Evidence package, chain part")::

    "chain": {"genesis_hash": "0x…",
              "anchor": {"source_id": "0x…", "sequence": 3, "transaction_hash": "0x…"},
              "receipt_proof": {…}, "commit_certificate": {…}, "validator_changes": []}

:func:`verify_chain_part` checks, with the genesis file alone: the genesis hash; the receipt proof
against its header; status 1; an ``EvidenceRegistry.BatchAnchored`` log from the genesis registry
address for ``(source_id, sequence)`` whose root and tree size are the checkpoint's; and a commit
certificate for that block, chain id and height signed by more than two thirds of the validators.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_hash.auto import keccak

from .. import _json
from ..chainproof import CommitCertificate, GenesisFile, VerifiedReceipt
from ..chainproof.receipt import Log, parse_receipt_proof, verify_parsed_receipt_proof
from ..errors import InvalidInput, VerificationError
from ..merkle import Checkpoint
from .package import EvidencePackage, PackageError

__all__ = [
    "BATCH_ANCHORED_TOPIC",
    "ChainProofError",
    "GenesisRequired",
    "VerifiedAnchor",
    "attach_chain_proof",
    "verify_chain_part",
]

BATCH_ANCHORED_TOPIC = keccak(b"BatchAnchored(bytes32,uint64,bytes32,uint64,bytes32,uint64,bytes32,bytes32)")
_HASH = re.compile(r"^0x[0-9a-f]{64}$")
_CHAIN_FIELDS = {"genesis_hash", "anchor", "receipt_proof", "commit_certificate", "validator_changes"}
_ANCHOR_FIELDS = {"source_id", "sequence", "transaction_hash"}


class ChainProofError(VerificationError):
    """The package's chain part does not prove that its checkpoint was anchored in a final block."""


class GenesisRequired(PackageError):
    """A package with chain proofs was given to the verifier without the genesis file."""


@dataclass(frozen=True)
class VerifiedAnchor:
    """What the chain part established."""

    chain_id: int
    source_id: bytes
    sequence: int
    org_id: int
    transaction_hash: bytes  # as claimed by the package; the receipt, not the hash, is proven
    receipt: VerifiedReceipt
    signers: int
    validators: int

    def summary(self) -> str:
        return (
            f"anchored as {self.source_id.hex()[:16]}…#{self.sequence} by org {self.org_id} "
            f"in block {self.receipt.block_number} (0x{self.receipt.block_hash.hex()[:16]}…, "
            f"time {self.receipt.timestamp}), final with {self.signers} of {self.validators} validator signatures"
        )


def _hash(value: Any, path: str) -> bytes:
    if not isinstance(value, str) or not _HASH.match(value):
        raise PackageError(f"{path}: must be 0x and 64 lowercase hex digits")
    return bytes.fromhex(value[2:])


def _fields(obj: Any, path: str, required: set[str]) -> dict[str, Any]:
    return _json.fields(obj, path, required, error=PackageError)


def _sequence(value: Any, path: str) -> int:
    return _json.uint(value, path, bits=64, error=PackageError)


def attach_chain_proof(
    package: EvidencePackage,
    *,
    genesis_hash: bytes,
    source_id: bytes,
    sequence: int,
    tx_hash: bytes,
    receipt_proof: dict[str, Any],
    commit_certificate: CommitCertificate | dict[str, Any],
    validator_changes: Sequence[dict[str, Any]] = (),
) -> EvidencePackage:
    """A copy of ``package`` carrying the chain part (its shape is checked; verification is the verifier's)."""
    if len(genesis_hash) != 32 or len(source_id) != 32 or len(tx_hash) != 32:
        raise InvalidInput("genesis_hash, source_id and tx_hash must be 32 bytes each")
    cert = commit_certificate.to_json() if isinstance(commit_certificate, CommitCertificate) else commit_certificate
    chain = {
        "genesis_hash": "0x" + genesis_hash.hex(),
        "anchor": {"source_id": "0x" + source_id.hex(), "sequence": sequence, "transaction_hash": "0x" + tx_hash.hex()},
        "receipt_proof": dict(receipt_proof),
        "commit_certificate": dict(cert),
        "validator_changes": [dict(c) for c in validator_changes],
    }
    _parse(chain)
    return dataclasses.replace(package, chain=chain)


_ParsedProof = tuple[bytes, int, int, bytes, bytes, list[bytes]]


def _parse(chain: Any) -> tuple[bytes, bytes, int, bytes, CommitCertificate, _ParsedProof]:
    _fields(chain, "$.chain", _CHAIN_FIELDS)
    anchor = _fields(chain["anchor"], "$.chain.anchor", _ANCHOR_FIELDS)
    if not isinstance(chain["validator_changes"], list) or len(chain["validator_changes"]) > 1024:
        raise PackageError("$.chain.validator_changes: must be a list of at most 1024 changes")
    try:
        proof = parse_receipt_proof(chain["receipt_proof"])
    except VerificationError as exc:
        raise PackageError(f"$.chain.receipt_proof: {exc}") from exc
    try:
        cert = CommitCertificate.from_json(chain["commit_certificate"])
    except InvalidInput as exc:
        raise PackageError(f"$.chain.commit_certificate: {exc}") from exc
    return (
        _hash(chain["genesis_hash"], "$.chain.genesis_hash"),
        _hash(anchor["source_id"], "$.chain.anchor.source_id"),
        _sequence(anchor["sequence"], "$.chain.anchor.sequence"),
        _hash(anchor["transaction_hash"], "$.chain.anchor.transaction_hash"),
        cert,
        proof,
    )


def _batch_anchored(logs: Sequence[Log], registry: bytes, source_id: bytes, sequence: int) -> Log:
    topics = (BATCH_ANCHORED_TOPIC, source_id, sequence.to_bytes(32, "big"))
    found = [log for log in logs if log.address == registry and log.topics == topics]
    if not found:
        raise ChainProofError(
            f"the receipt has no BatchAnchored log for source 0x{source_id.hex()} sequence {sequence} "
            f"from the EvidenceRegistry 0x{registry.hex()} of the genesis file"
        )
    if len(found) > 1:
        raise ChainProofError("the receipt has more than one BatchAnchored log for this source and sequence")
    if len(found[0].data) != 6 * 32:
        raise ChainProofError("the BatchAnchored log's data is not six 32-byte words")
    return found[0]


def verify_chain_part(chain: Any, checkpoint: Checkpoint, genesis: GenesisFile) -> VerifiedAnchor:
    """Verify a package's ``chain`` part for ``checkpoint``; raise a :class:`VerificationError` subclass."""
    genesis_hash, source_id, sequence, tx_hash, cert, proof = _parse(chain)
    if genesis_hash != genesis.genesis_hash:
        raise ChainProofError(
            f"package is for the chain with genesis 0x{genesis_hash.hex()}, "
            f"but the genesis file is 0x{genesis.genesis_hash.hex()}"
        )
    if chain["validator_changes"]:
        raise ChainProofError(
            "validator set changes in chain proofs are not supported by this verifier yet; refusing to half-verify"
        )
    proven = verify_parsed_receipt_proof(*proof)
    if proven.status != 1:
        raise ChainProofError(f"the anchoring transaction failed (receipt status {proven.status})")
    log = _batch_anchored(proven.logs, genesis.evidence_registry, source_id, sequence)
    words = [log.data[i : i + 32] for i in range(0, 192, 32)]
    root, tree_size, org_id = words[0], int.from_bytes(words[1], "big"), int.from_bytes(words[3], "big")
    if root != checkpoint.root:
        raise ChainProofError(
            f"the anchored root {root.hex()} is not the checkpoint's root {checkpoint.root.hex()}"
        )
    if tree_size != checkpoint.size:
        raise ChainProofError(f"the anchored tree size {tree_size} is not the checkpoint's size {checkpoint.size}")
    if cert.block_hash != proven.block_hash:
        raise ChainProofError(
            f"the commit certificate is for block 0x{cert.block_hash.hex()}, "
            f"not the anchoring block 0x{proven.block_hash.hex()}"
        )
    if cert.height != proven.block_number:
        raise ChainProofError(
            f"the commit certificate is for height {cert.height}, not the anchoring block's {proven.block_number}"
        )
    validators = genesis.validator_keys
    cert.verify(validators, chain_id=genesis.chain_id)
    return VerifiedAnchor(
        chain_id=genesis.chain_id,
        source_id=source_id,
        sequence=sequence,
        org_id=org_id,
        transaction_hash=tx_hash,
        receipt=proven,
        signers=len(cert.signatures),
        validators=len(validators),
    )


