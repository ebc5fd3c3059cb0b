"""The ``chain`` part of an evidence package: the checkpoint's anchoring on chain, proven offline.

Format (``docs/evidence-package.md``, "The chain part")::

    "chain": {"chain_identity": "0x…",
              "anchor": {"source_id": "0x…", "sequence": 3, "transaction_hash": "0x…"},
              "transaction_proof": {…}, "receipt_proof": {…}, "state_proof": {…EIP-1186 of Governance…},
              "commit_certificate": {…},
              "validator_changes": [{"height": h, "header": "0x…", "certificate": {…}, "validators": […]}, …]}

:func:`verify_chain_part` proves, with the genesis file alone, every claim the verifier prints:

- the chain: the package's ``chain_identity`` is the genesis file's fingerprint, and the commit certificate —
  which binds that identity — is signed by more than two thirds of the voting power of the validator set of the
  block, followed from the genesis set through ``validator_changes`` (:func:`verify_validator_changes`), and the
  block's header commits to that set and the one two heights later (``extra_data``);
- the anchor: the receipt of the transaction at ``transaction_index`` in that block (receipt proof), whose hash is
  ``transaction_hash`` (transaction proof), succeeded and holds exactly one ``BatchAnchored`` log of the genesis
  ``EvidenceRegistry`` for ``(source_id, sequence)`` whose root and size are the checkpoint's;
- the log's owner: ``source_id`` is derived from the anchoring organisation and the checkpoint's origin exactly as
  the registry derives it, so no organisation can anchor another's log;
- the signer: the anchor's SM2 signature ``(r, s)`` and the checkpoint note both verify under the organisation's
  SM2 key as Governance held it at that block (state proof against the block's ``stateRoot``);
- the author: the author key is the organisation's own key, or an active staff key of that organisation at that
  block (state proof).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_hash.auto import keccak

from .. import strict_json
from ..chainproof import (
    CommitCertificate,
    GenesisFile,
    TrieProofError,
    ValidatorSet,
    VerifiedReceipt,
    header_commitment,
)
from ..chainproof.receipt import (
    MAX_HEADER_SIZE,
    BlockHeader,
    Log,
    decode_header,
    parse_receipt_proof,
    verify_parsed_receipt_proof,
)
from ..chainproof.state import verify_eip1186
from ..chainproof.transaction import ParsedTransactionProof, parse_transaction_proof, verify_transaction_proof
from ..crypto import SM2PublicKey, signature_from_raw, sm3
from ..errors import InvalidInput, InvalidSignature, VerificationError
from ..merkle import Checkpoint, VerifiedCheckpoint
from ..records import SignedRecord
from ..strict_json import to_hex
from .governance import ProvenOrg, ProvenStaff, read_org, read_staff
from .package import EvidencePackage, PackageError

__all__ = [
    "BATCH_ANCHORED_TOPIC",
    "CHECKPOINT_TAG",
    "MAX_VALIDATOR_CHANGES",
    "SOURCE_TAG",
    "ChainProofError",
    "GenesisRequired",
    "ProvenBatch",
    "ValidatorChange",
    "ValidatorHistory",
    "VerifiedAnchor",
    "attach_chain_proof",
    "check_certified",
    "checkpoint_anchor_message",
    "origin_hash",
    "parse_chain_part",
    "parse_validator_changes",
    "source_id_of",
    "verify_anchor_receipt",
    "verify_chain_part",
    "verify_validator_changes",
]

BATCH_ANCHORED_TOPIC = keccak(b"BatchAnchored(bytes32,uint64,bytes32,uint64,bytes32,uint64,bytes32,bytes32)")
SOURCE_TAG = keccak(b"shancheng.evidence.source.v1")
CHECKPOINT_TAG = keccak(b"shancheng.evidence.checkpoint.v1")
_HASH = re.compile(r"^0x[0-9a-f]{64}$")
_CHAIN_FIELDS = {
    "chain_identity", "anchor", "transaction_proof", "receipt_proof", "state_proof", "commit_certificate",
    "validator_changes",
}
_ANCHOR_FIELDS = {"source_id", "sequence", "transaction_hash"}
_CHANGE_FIELDS = {"height", "header", "certificate", "validators"}
MAX_VALIDATOR_CHANGES = 1024


class ChainProofError(VerificationError):
    """The package's chain part does not prove that its checkpoint was anchored in a final block."""


class GenesisRequired(PackageError):
    """A package with chain proofs was given to the verifier without the genesis file."""


def _word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def origin_hash(origin: str) -> bytes:
    """``keccak256(bytes(origin))``: what ``EvidenceRegistry.anchorBatch`` takes for a log's origin."""
    return keccak(origin.encode("utf-8"))


def source_id_of(org_id: int, origin: str) -> bytes:
    """The registry's source id of ``origin`` owned by ``org_id``:
    ``keccak256(abi.encode(SOURCE_TAG, uint64 orgId, keccak256(origin)))``."""
    return keccak(SOURCE_TAG + _word(org_id) + origin_hash(origin))


def checkpoint_anchor_message(
    *, chain_id: int, registry: bytes, source_id: bytes, sequence: int, tree_size: int, root: bytes, prev_root: bytes
) -> bytes:
    """M that the organisation signs (SM2, default uid) for ``anchorBatch``:
    ``SM3(abi.encode(CHECKPOINT_TAG, chainid, registry, sourceId, sequence, treeSize, root, prevRoot))``."""
    return sm3(
        CHECKPOINT_TAG + _word(chain_id) + registry.rjust(32, b"\0") + source_id + _word(sequence) + _word(tree_size)
        + root + prev_root
    )


@dataclass(frozen=True)
class VerifiedAnchor:
    """What the chain part established."""

    chain_id: int
    chain_identity: bytes
    source_id: bytes
    sequence: int
    org: ProvenOrg
    author: ProvenStaff | None  # None: the author key is the organisation's own key
    transaction_hash: bytes
    receipt: VerifiedReceipt
    signers: int
    validators: int
    validator_changes: int = 0

    @property
    def org_id(self) -> int:
        return self.org.org_id

    def author_summary(self) -> str:
        if self.author is None:
            return f"author: the organisation key of {self.org.name!r}"
        return f"author: staff 0x{self.author.address.hex()} of {self.org.name!r}, active at the anchoring block"

    def _changes_note(self) -> str:
        if not self.validator_changes:
            return " (the genesis validator set)"
        return f" (the validator set followed from genesis through {self.validator_changes} change(s))"

    def summary(self) -> str:
        return (
            f"log owned by {self.org.name!r} (org {self.org.org_id}), checkpoint signed with its registered key; "
            f"anchored as batch {self.sequence} in block {self.receipt.block_number} "
            f"(0x{self.receipt.block_hash.hex()[:16]}…, time {self.receipt.timestamp}, "
            f"tx 0x{self.transaction_hash.hex()[:16]}…), final with {self.signers} of {self.validators} validator "
            f"signatures{self._changes_note()}; chain 0x{self.chain_identity.hex()}"
        )


def _hash(value: Any, path: str) -> bytes:
    if not isinstance(value, str) or not _HASH.match(value):
        raise PackageError(f"{path}: must be 0x and 64 lowercase hex digits")
    return strict_json.hexbytes(value, path, size=32, error=PackageError)


@dataclass(frozen=True)
class ValidatorChange:
    """A change of the validator set made by block ``height``: the block's header, its commit certificate (signed by
    the set that certifies ``height``) and the set that certifies ``height + 2`` (the header's ``extra_data``
    commits to both)."""

    height: int
    header: BlockHeader
    header_rlp: bytes
    certificate: CommitCertificate
    validators: ValidatorSet

    def to_json(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "header": to_hex(self.header_rlp),
            "certificate": self.certificate.to_json(),
            "validators": self.validators.to_json(),
        }


def _parse_change(obj: Any, path: str) -> ValidatorChange:
    strict_json.fields(obj, path, _CHANGE_FIELDS, error=PackageError)
    height = strict_json.uint(obj["height"], f"{path}.height", bits=63, error=PackageError)
    raw = strict_json.hexbytes(obj["header"], f"{path}.header", limit=MAX_HEADER_SIZE, error=PackageError)
    try:
        header = decode_header(raw)
    except VerificationError as exc:
        raise PackageError(f"{path}.header: {exc}") from exc
    try:
        certificate = CommitCertificate.from_json(obj["certificate"])
    except (InvalidInput, VerificationError) as exc:
        raise PackageError(f"{path}.certificate: {exc}") from exc
    try:
        validators = ValidatorSet.from_json(obj["validators"], path=f"{path}.validators")
    except InvalidInput as exc:
        raise PackageError(str(exc)) from exc
    return ValidatorChange(height, header, raw, certificate, validators)


def parse_validator_changes(obj: Any, path: str = "$.chain.validator_changes") -> list[ValidatorChange]:
    """Strictly parse a list of at most :data:`MAX_VALIDATOR_CHANGES` changes (their shape only; the proofs are
    :func:`verify_validator_changes`')."""
    if not isinstance(obj, list) or len(obj) > MAX_VALIDATOR_CHANGES:
        raise PackageError(f"{path}: must be a list of at most {MAX_VALIDATOR_CHANGES} changes")
    return [_parse_change(item, f"{path}[{i}]") for i, item in enumerate(obj)]


@dataclass(frozen=True)
class ValidatorHistory:
    """The validator sets proven from the genesis file: ``entries`` are (first height, set), ascending."""

    entries: tuple[tuple[int, ValidatorSet], ...]

    def at(self, height: int) -> ValidatorSet:
        """The set that certifies block ``height`` (as far as the changes followed go)."""
        found = self.entries[0][1]
        for first, validators in self.entries:
            if first > height:
                break
            found = validators
        return found

    @property
    def changes(self) -> int:
        return len(self.entries) - 1


def check_certified(
    what: str, header: BlockHeader, certificate: CommitCertificate, current: ValidatorSet, after_next: ValidatorSet,
    genesis: GenesisFile,
) -> None:
    """``certificate`` is ``current``'s for ``header``, whose extra_data commits to ``current`` and ``after_next``."""
    if certificate.block_hash != header.hash:
        raise ChainProofError(
            f"{what}: the commit certificate is for block 0x{certificate.block_hash.hex()}, "
            f"not the block 0x{header.hash.hex()}"
        )
    if certificate.height != header.number:
        raise ChainProofError(f"{what}: the commit certificate is for height {certificate.height}, not {header.number}")
    try:
        certificate.verify(current.sm2_keys(), powers=current.powers(), chain_id=genesis.chain_id,
                           chain_identity=genesis.fingerprint)
    except VerificationError as exc:
        raise ChainProofError(f"{what}: {exc}") from exc
    if header.extra_data != header_commitment(current, after_next):
        raise ChainProofError(
            f"{what}: the header's extra_data does not commit to the validator set of height {header.number} and the "
            f"set of height {header.number + 2} that the package gives (a validator-set change is missing or forged)"
        )


def verify_validator_changes(
    genesis: GenesisFile, changes: Sequence[ValidatorChange], *, up_to: int | None = None
) -> ValidatorHistory:
    """Follow ``changes`` (ascending heights, each at most ``up_to``) from the genesis set: the change of block h is
    certified by set(h) (known from the changes before it: a change of block c takes effect at c + 2), header h
    hashes to the certificate's block and commits (``extra_data``) to set(h) and the change's set, which becomes
    set(h + 2).  Raises :class:`ChainProofError`."""
    history = [(0, ValidatorSet.from_genesis(genesis))]
    previous = 0
    for i, change in enumerate(changes):
        h, what = change.height, f"validator change {i} (height {change.height})"
        if h < 1:
            raise ChainProofError(f"{what}: the genesis block makes no validator change")
        if h <= previous:
            raise ChainProofError(
                f"{what}: validator changes must be in ascending height order without repeats (the previous one is "
                f"at height {previous})"
            )
        if up_to is not None and h > up_to:
            raise ChainProofError(f"{what}: the change is after block {up_to}")
        if change.header.number != h:
            raise ChainProofError(f"{what}: the header is of block {change.header.number}")
        current = ValidatorHistory(tuple(history)).at(h)
        check_certified(what, change.header, change.certificate, current, change.validators, genesis)
        history.append((h + 2, change.validators))
        previous = h
    return ValidatorHistory(tuple(history))


def attach_chain_proof(
    package: EvidencePackage,
    *,
    chain_identity: bytes,
    source_id: bytes,
    sequence: int,
    tx_hash: bytes,
    transaction_proof: dict[str, Any],
    receipt_proof: dict[str, Any],
    state_proof: dict[str, Any],
    commit_certificate: CommitCertificate | dict[str, Any],
    validator_changes: Sequence[dict[str, Any] | ValidatorChange] = (),
) -> EvidencePackage:
    """A copy of ``package`` carrying the chain part (its shape is checked; verification is the verifier's).
    ``validator_changes``: every validator-set change of a block up to the anchoring block, ascending (e.g. from
    :func:`~shancheng.sdk.client.validator_history.fetch_validator_changes`)."""
    if len(chain_identity) != 32 or len(source_id) != 32 or len(tx_hash) != 32:
        raise InvalidInput("chain_identity, source_id and tx_hash must be 32 bytes each")
    cert = commit_certificate.to_json() if isinstance(commit_certificate, CommitCertificate) else commit_certificate
    chain = {
        "chain_identity": to_hex(chain_identity),
        "anchor": {"source_id": to_hex(source_id), "sequence": sequence, "transaction_hash": to_hex(tx_hash)},
        "transaction_proof": dict(transaction_proof),
        "receipt_proof": dict(receipt_proof),
        "state_proof": dict(state_proof),
        "commit_certificate": dict(cert),
        "validator_changes": [c.to_json() if isinstance(c, ValidatorChange) else dict(c) for c in validator_changes],
    }
    parse_chain_part(chain)
    return dataclasses.replace(package, chain=chain)


@dataclass(frozen=True)
class _Parsed:
    chain_identity: bytes
    source_id: bytes
    sequence: int
    tx_hash: bytes
    cert: CommitCertificate
    receipt: tuple[bytes, int, int, bytes, bytes, list[bytes]]
    transaction: ParsedTransactionProof
    validator_changes: list[ValidatorChange]


def parse_chain_part(chain: Any) -> _Parsed:
    """Strictly parse a chain part's shape (its proofs are verified by the callers)."""
    strict_json.fields(chain, "$.chain", _CHAIN_FIELDS, error=PackageError)
    anchor = strict_json.fields(chain["anchor"], "$.chain.anchor", _ANCHOR_FIELDS, error=PackageError)
    validator_changes = parse_validator_changes(chain["validator_changes"])
    try:
        receipt = parse_receipt_proof(chain["receipt_proof"])
    except VerificationError as exc:
        raise PackageError(f"$.chain.receipt_proof: {exc}") from exc
    try:
        transaction = parse_transaction_proof(chain["transaction_proof"])
    except VerificationError as exc:
        raise PackageError(f"$.chain.transaction_proof: {exc}") from exc
    if not isinstance(chain["state_proof"], dict):
        raise PackageError("$.chain.state_proof: must be an object (an eth_getProof result)")
    try:
        cert = CommitCertificate.from_json(chain["commit_certificate"])
    except (InvalidInput, VerificationError) as exc:
        raise PackageError(f"$.chain.commit_certificate: {exc}") from exc
    return _Parsed(
        chain_identity=_hash(chain["chain_identity"], "$.chain.chain_identity"),
        source_id=_hash(anchor["source_id"], "$.chain.anchor.source_id"),
        sequence=strict_json.uint(anchor["sequence"], "$.chain.anchor.sequence", bits=64, error=PackageError),
        tx_hash=_hash(anchor["transaction_hash"], "$.chain.anchor.transaction_hash"),
        cert=cert,
        receipt=receipt,
        transaction=transaction,
        validator_changes=validator_changes,
    )


def _batch_anchored(logs: Sequence[Log], registry: bytes, source_id: bytes, sequence: int) -> Log:
    topics = (BATCH_ANCHORED_TOPIC, source_id, _word(sequence))
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


@dataclass(frozen=True)
class ProvenBatch:
    """What the anchoring transaction's receipt proves: its ``BatchAnchored`` log of ``(source_id, sequence)``
    from the registry, for the checkpoint's root and size, by organisation ``org_id`` (the anchor's ``(r, s)`` is
    checked against a key by :meth:`signed_by`)."""

    receipt: VerifiedReceipt
    transaction_hash: bytes
    source_id: bytes
    sequence: int
    org_id: int
    root: bytes
    tree_size: int
    prev_root: bytes
    signature: bytes  # r ‖ s

    def signed_by(self, key: SM2PublicKey, *, chain_id: int, registry: bytes) -> bool:
        """Whether the anchor's SM2 signature verifies under ``key`` (:func:`checkpoint_anchor_message`)."""
        message = checkpoint_anchor_message(
            chain_id=chain_id, registry=registry, source_id=self.source_id, sequence=self.sequence,
            tree_size=self.tree_size, root=self.root, prev_root=self.prev_root,
        )
        try:
            key.verify(signature_from_raw(self.signature), message)
        except (InvalidSignature, InvalidInput):
            return False
        return True


def verify_anchor_receipt(
    chain: dict[str, Any], checkpoint: Checkpoint, registry: bytes, *, proven: VerifiedReceipt
) -> ProvenBatch:
    """The anchor of a chain part (``chain``) under its block, whose receipt proof ``proven`` the caller verified
    (against the header's hash, or a block hash it trusts): the transaction proof gives the claimed hash, the
    receipt succeeded and holds exactly one ``BatchAnchored`` log of ``registry`` for the claimed source and
    sequence, the source is the checkpoint's log of the anchoring organisation, the root and size are the
    checkpoint's.  Raises :class:`ChainProofError`."""
    parsed = parse_chain_part(chain)
    tx = parsed.transaction
    if (tx.block_hash, tx.block_number, tx.transaction_index) != (
        proven.block_hash, proven.block_number, proven.transaction_index
    ):
        raise ChainProofError("the transaction proof is for another block or index than the receipt proof")
    try:
        tx_hash = verify_transaction_proof(proven.header.transactions_root, tx.transaction_index, tx.transaction,
                                           tx.proof)
    except TrieProofError as exc:
        raise ChainProofError(f"transaction proof: {exc}") from exc
    if tx_hash != parsed.tx_hash:
        raise ChainProofError(
            f"the anchoring transaction at index {tx.transaction_index} has hash 0x{tx_hash.hex()}, "
            f"not 0x{parsed.tx_hash.hex()} as the package claims"
        )
    if proven.status != 1:
        raise ChainProofError(f"the anchoring transaction failed (receipt status {proven.status})")
    log = _batch_anchored(proven.logs, registry, parsed.source_id, parsed.sequence)
    words = [log.data[i : i + 32] for i in range(0, 192, 32)]
    root, tree_size, prev_root = words[0], int.from_bytes(words[1], "big"), words[2]
    org_id = int.from_bytes(words[3], "big")
    if parsed.source_id != source_id_of(org_id, checkpoint.origin):
        raise ChainProofError(
            f"the anchored source 0x{parsed.source_id.hex()} is not the log {checkpoint.origin!r} of org {org_id}: "
            "the log belongs to another organisation"
        )
    if root != checkpoint.root:
        raise ChainProofError(f"the anchored root {root.hex()} is not the checkpoint's root {checkpoint.root.hex()}")
    if tree_size != checkpoint.size:
        raise ChainProofError(f"the anchored tree size {tree_size} is not the checkpoint's size {checkpoint.size}")
    return ProvenBatch(proven, tx_hash, parsed.source_id, parsed.sequence, org_id, root, tree_size, prev_root,
                       words[4] + words[5])


def _check_signer(org: ProvenOrg, opened: VerifiedCheckpoint) -> None:
    """The key that signed the checkpoint note (already verified by the caller) must be the organisation's
    registered key: the note is not verified a second time here."""
    if not any(v.public_key == org.public_key for v in opened.signers):
        raise ChainProofError(
            f"the checkpoint signer's key is not the registered SM2 key of {org.name!r} (org {org.org_id}), "
            "which anchored the log"
        )


def _check_author(record: SignedRecord, org: ProvenOrg, values: Any) -> ProvenStaff | None:
    if record.author == org.public_key:
        return None
    staff = read_staff(values, record.author)
    address = f"0x{staff.address.hex()}"
    if staff.org_id == 0:
        raise ChainProofError(
            f"the author key (address {address}) is neither the key of {org.name!r} nor a staff key registered in "
            "Governance at the anchoring block"
        )
    if staff.org_id != org.org_id:
        raise ChainProofError(
            f"the author key (address {address}) is a staff key of org {staff.org_id}, not of {org.name!r} "
            f"(org {org.org_id}), which anchored the log"
        )
    if staff.public_key != record.author.to_bytes()[1:]:
        raise ChainProofError(f"the staff entry of {address} holds another key than the author's")
    if not staff.active:
        raise ChainProofError(f"the author key (staff {address} of {org.name!r}) was not active at the anchoring block")
    return staff


def verify_chain_part(package: EvidencePackage, opened: VerifiedCheckpoint, genesis: GenesisFile) -> VerifiedAnchor:
    """Verify ``package``'s chain part for its checkpoint, ``opened`` (verified) by the caller; raise a
    :class:`VerificationError` subclass."""
    checkpoint = opened.checkpoint
    if package.chain is None:
        raise ChainProofError(
            "the package has no chain proofs: with --genesis a package must prove its anchoring on that chain"
        )
    parsed = parse_chain_part(package.chain)
    if parsed.chain_identity != genesis.fingerprint:
        raise ChainProofError(
            f"the package is for the chain 0x{parsed.chain_identity.hex()}, "
            f"but the genesis file's fingerprint is 0x{genesis.fingerprint.hex()}: this package carries no anchoring "
            f"on chain 0x{genesis.fingerprint.hex()} (no cross-chain part)"
        )
    registry = genesis.evidence_registry
    batch = verify_anchor_receipt(package.chain, checkpoint, registry,
                                  proven=verify_parsed_receipt_proof(*parsed.receipt))
    proven, tx_hash, org_id = batch.receipt, batch.transaction_hash, batch.org_id

    try:
        account = verify_eip1186(package.chain["state_proof"], proven.header.state_root)
    except InvalidInput as exc:
        raise PackageError(f"$.chain.state_proof: {exc}") from exc
    if account.address != genesis.governance:
        raise ChainProofError(
            f"the state proof is for 0x{account.address.hex()}, not the genesis Governance 0x{genesis.governance.hex()}"
        )
    org = read_org(account.storage, org_id)
    if not org.active:
        raise ChainProofError(f"{org.name!r} (org {org_id}) was not an active member at the anchoring block")
    if not batch.signed_by(org.public_key, chain_id=genesis.chain_id, registry=registry):
        raise ChainProofError(
            f"the anchor's SM2 signature (r, s) does not verify under the registered key of {org.name!r}"
        )
    _check_signer(org, opened)
    author = _check_author(package.record, org, account.storage)

    cert = parsed.cert
    if cert.block_hash != proven.block_hash:
        raise ChainProofError(
            f"the commit certificate is for block 0x{cert.block_hash.hex()}, "
            f"not the anchoring block 0x{proven.block_hash.hex()}"
        )
    if cert.height != proven.block_number:
        raise ChainProofError(
            f"the commit certificate is for height {cert.height}, not the anchoring block's {proven.block_number}"
        )
    history = verify_validator_changes(genesis, parsed.validator_changes, up_to=proven.block_number)
    validators = history.at(proven.block_number)
    cert.verify(validators.sm2_keys(), powers=validators.powers(), chain_id=genesis.chain_id,
                chain_identity=genesis.fingerprint)
    if proven.header.extra_data != header_commitment(validators, history.at(proven.block_number + 2)):
        raise ChainProofError(
            f"the anchoring block's extra_data does not commit to the validator sets of heights {proven.block_number}"
            f" and {proven.block_number + 2} that the package's validator changes give: a change up to the anchoring"
            " block is missing or forged"
        )
    return VerifiedAnchor(
        chain_id=genesis.chain_id,
        chain_identity=genesis.fingerprint,
        source_id=parsed.source_id,
        sequence=parsed.sequence,
        org=org,
        author=author,
        transaction_hash=tx_hash,
        receipt=proven,
        signers=len(cert.signatures),
        validators=len(validators.validators),
        validator_changes=history.changes,
    )

