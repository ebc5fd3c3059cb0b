"""The ``crosschain`` part of an evidence package: its Shancheng anchoring proven on ANOTHER chain (the target),
through the ``ShanchengLightClient`` there, verified with the target chain's genesis file alone.

Format (``docs/cross-chain.md``, "Offline, across chains")::

    "crosschain": {"chain_identity": "0x…",            the target chain's genesis fingerprint
                   "light_client": "0x…",              the light client's address on the target
                   "code": "0x…",                      its runtime code (hashes to the proven code hash)
                   "source": {"chain_identity": "0x…", "chain_id": n, "registry": "0x…"},
                   "source_height": h,                 the source block that anchors the record
                   "header": "0x…", "commit_certificate": {…}, "validator_changes": […],   target block T
                   "state_proof": {…}}                 eth_getProof of the light client at T: checkpoint h

:func:`verify_crosschain_part` checks, each layer failing with :class:`CrossChainProofError` naming it
(:data:`LAYERS`): the **target certificate** (header T certified by more than 2/3 of the target's validator power,
its set followed from the target genesis file); the **light client** (its account under T's state root; its code is
the SDK's ``ShanchengLightClient`` with the source chain's identity, chain id and registry as its immutables, and
that source is the one the package's chain part names); the **stored checkpoint** (the storage proof of
``_checkpoints[h]``: block hash, state root, receipts root, time); the **source header** (it hashes to the stored
block hash and holds the stored roots); the **anchor receipt** (the chain part's receipt proof under the stored
receipts root, its transaction proof, the registry's ``BatchAnchored`` log of the checkpoint's root and size by
the log's organisation, the anchor's SM2 signature by the checkpoint's signer).  Everything below the source header
reuses :mod:`.chain`; the tries and state proofs are :mod:`shancheng.sdk.chainproof`'s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from eth_hash.auto import keccak

from .. import strict_json
from ..chainproof import CommitCertificate, GenesisFile
from ..chainproof.receipt import MAX_HEADER_SIZE, BlockHeader, decode_header, verify_parsed_receipt_proof
from ..chainproof.state import mapping_slot, verify_eip1186
from ..errors import InvalidInput, VerificationError
from ..merkle import VerifiedCheckpoint
from ..strict_json import to_hex
from .chain import (
    ChainProofError,
    ProvenBatch,
    ValidatorChange,
    check_certified,
    parse_chain_part,
    parse_validator_changes,
    verify_anchor_receipt,
    verify_validator_changes,
)
from .package import EvidencePackage, PackageError

__all__ = [
    "CHECKPOINTS_SLOT",
    "LAYERS",
    "CrossChainProofError",
    "VerifiedCrossChain",
    "anchored_elsewhere",
    "checkpoint_slots",
    "light_client_template",
    "parse_crosschain_part",
    "verify_crosschain_part",
]

#: The layers of a cross-chain proof in the order they are checked; a refusal's ``layer`` is one of these.
LAYERS = ("target certificate", "light client", "stored checkpoint", "source header", "anchor receipt")
#: ``ShanchengLightClient._checkpoints`` (mapping(uint64 => Checkpoint)): solc's storage layout, slot 2; a checkpoint
#: is four slots (blockHash, stateRoot, receiptsRoot, timestamp).
CHECKPOINTS_SLOT = 2
MAX_CODE_SIZE = 24_576  # EIP-170
_FIELDS = {"chain_identity", "light_client", "code", "source", "source_height", "header", "commit_certificate",
           "validator_changes", "state_proof"}
_SOURCE_FIELDS = {"chain_id", "chain_identity", "registry"}
_PUSH32 = 0x7F
_RUNTIME_START = bytes.fromhex("6080604052")  # solc's runtime prelude: mstore(0x40, 0x80)
_CODECOPY = re.compile(rb"\x61(..)\x61(..)\x5f\x39", re.DOTALL)  # PUSH2 length PUSH2 offset PUSH0 CODECOPY


class CrossChainProofError(ChainProofError):
    """A layer of the package's cross-chain proof does not hold; ``layer`` is one of :data:`LAYERS`."""

    def __init__(self, layer: str, message: str) -> None:
        super().__init__(f"cross-chain {layer}: {message}")
        self.layer = layer


@contextmanager
def _layer(name: str) -> Iterator[None]:
    """Any refusal raised inside is a refusal of layer ``name``."""
    try:
        yield
    except CrossChainProofError:
        raise
    except (VerificationError, InvalidInput, ValueError) as exc:
        raise CrossChainProofError(name, str(exc)) from exc


@dataclass(frozen=True)
class _Section:
    chain_identity: bytes
    light_client: bytes
    code: bytes
    source_identity: bytes
    source_chain_id: int
    registry: bytes
    source_height: int
    header: BlockHeader
    certificate: CommitCertificate
    validator_changes: list[ValidatorChange]
    state_proof: dict[str, Any]


def parse_crosschain_part(obj: Any) -> _Section:
    """Strictly parse a ``crosschain`` section's shape (:class:`PackageError`); its proofs are the verifier's."""
    path = "$.crosschain"
    strict_json.fields(obj, path, _FIELDS, error=PackageError)
    source = strict_json.fields(obj["source"], f"{path}.source", _SOURCE_FIELDS, error=PackageError)
    raw = strict_json.hexbytes(obj["header"], f"{path}.header", limit=MAX_HEADER_SIZE, error=PackageError)
    try:
        header = decode_header(raw)
        certificate = CommitCertificate.from_json(obj["commit_certificate"])
    except (InvalidInput, VerificationError) as exc:
        raise PackageError(f"{path}: {exc}") from exc
    if not isinstance(obj["state_proof"], dict):
        raise PackageError(f"{path}.state_proof: must be an object (an eth_getProof result)")
    return _Section(
        chain_identity=strict_json.hexbytes(obj["chain_identity"], f"{path}.chain_identity", size=32,
                                            error=PackageError),
        light_client=strict_json.hexbytes(obj["light_client"], f"{path}.light_client", size=20, error=PackageError),
        code=strict_json.hexbytes(obj["code"], f"{path}.code", limit=MAX_CODE_SIZE, error=PackageError),
        source_identity=strict_json.hexbytes(source["chain_identity"], f"{path}.source.chain_identity", size=32,
                                             error=PackageError),
        source_chain_id=strict_json.uint(source["chain_id"], f"{path}.source.chain_id", bits=64, error=PackageError),
        registry=strict_json.hexbytes(source["registry"], f"{path}.source.registry", size=20, error=PackageError),
        source_height=strict_json.uint(obj["source_height"], f"{path}.source_height", bits=64, error=PackageError),
        header=header,
        certificate=certificate,
        validator_changes=parse_validator_changes(obj["validator_changes"], f"{path}.validator_changes"),
        state_proof=obj["state_proof"],
    )


def checkpoint_slots(height: int) -> list[int]:
    """The four storage slots of ``_checkpoints[height]`` in the light client."""
    base = int.from_bytes(mapping_slot(height.to_bytes(32, "big"), CHECKPOINTS_SLOT), "big")
    return [base, base + 1, base + 2, base + 3]


@cache
def light_client_creation_code() -> bytes:
    """The light client's creation code as the SDK ships it (``shancheng/sdk/abi``): what ``deploy_light_client``
    sends, constructor arguments appended."""
    text = resources.files("shancheng.sdk.abi").joinpath("ShanchengLightClient.bytecode.json").read_text("utf-8")
    return strict_json.hexbytes(json.loads(text)["bytecode"], "light client bytecode", error=InvalidInput,
                                limit=1 << 20)


@cache
def light_client_template() -> bytes:
    """The light client's runtime code as the SDK ships it, its immutables zero: the part of the creation code
    that the constructor copies (``PUSH2 length PUSH2 offset PUSH0 CODECOPY``) and returns."""
    creation = light_client_creation_code()
    found = {(int.from_bytes(m[2], "big"), int.from_bytes(m[1], "big")) for m in _CODECOPY.finditer(creation)}
    runtimes = [creation[o:o + n] for o, n in found if o + n <= len(creation) and creation.startswith(_RUNTIME_START, o)]
    if len(runtimes) != 1:
        raise InvalidInput("the SDK's light client bytecode does not hold one runtime code")
    return runtimes[0]


@cache
def _immutable_windows() -> tuple[int, ...]:
    """Where the template holds solc's immutable placeholders: 32 zero bytes pushed by ``PUSH32``."""
    template = light_client_template()
    return tuple(p for p in range(1, len(template) - 31) if template[p - 1] == _PUSH32 and not any(template[p:p + 32]))


def _check_code(code: bytes, section: _Section, target_governance: bytes) -> None:
    """``code`` is the SDK's light client with the section's source identity, chain id and registry as immutables
    (solc's zero ``PUSH32`` placeholders); the fourth immutable, the recovery authority (``recover`` installs any
    validator set), must be the target chain's Governance, as ``deploy_light_client`` makes it, or the zero address
    (no recovery)."""
    template, windows = light_client_template(), _immutable_windows()
    if len(code) != len(template):
        raise CrossChainProofError("light client", f"the code at 0x{section.light_client.hex()} is not a "
                                   f"ShanchengLightClient ({len(code)} bytes, not {len(template)})")
    covered = bytearray(code)
    words: set[bytes] = set()
    for p in windows:
        words.add(code[p:p + 32])
        covered[p:p + 32] = bytes(32)
    if bytes(covered) != template:
        raise CrossChainProofError("light client", f"the code at 0x{section.light_client.hex()} is not the "
                                   "ShanchengLightClient the SDK ships")
    source = {section.source_identity, section.source_chain_id.to_bytes(32, "big"), section.registry.rjust(32, b"\0")}
    others = words - source
    if not source <= words or len(others) > 1 or any(w[:12] != bytes(12) for w in others):
        raise CrossChainProofError(
            "light client", f"the light client at 0x{section.light_client.hex()} was not built for the source "
            f"chain 0x{section.source_identity.hex()} (chain id {section.source_chain_id}, registry "
            f"0x{section.registry.hex()}) the package names")
    authorities = {target_governance.rjust(32, b"\0"), bytes(32)}
    if not others <= authorities:
        raise CrossChainProofError(
            "light client", f"the light client at 0x{section.light_client.hex()} may be recovered (its validator set "
            f"replaced) by 0x{next(iter(others))[12:].hex()}, not by the target chain's Governance "
            f"0x{target_governance.hex()} (nor by nobody)")


@dataclass(frozen=True)
class VerifiedCrossChain:
    """What a cross-chain proof established."""

    target_identity: bytes
    target_height: int
    target_block_hash: bytes
    target_signers: int
    target_validators: int
    target_changes: int
    light_client: bytes
    source_identity: bytes
    source_chain_id: int
    source_height: int
    source_block_hash: bytes
    batch: ProvenBatch

    def summary(self) -> str:
        return (
            f"log of org {self.batch.org_id} anchored as batch {self.batch.sequence} in source block "
            f"{self.source_height} (0x{self.source_block_hash.hex()[:16]}…) of chain 0x{self.source_identity.hex()}, "
            f"checkpoint signed with the key the registry accepted for that anchor; the source block is the "
            f"checkpoint stored by the light client 0x{self.light_client.hex()} on chain 0x{self.target_identity.hex()}"
            f" at target block {self.target_height} (0x{self.target_block_hash.hex()[:16]}…), final with "
            f"{self.target_signers} of {self.target_validators} target validator signatures"
            + (f" (the target set followed through {self.target_changes} change(s))" if self.target_changes else "")
            + "; layers verified: " + ", ".join(LAYERS)
        )


def anchored_elsewhere(package: EvidencePackage, genesis: GenesisFile) -> bool:
    """Whether ``package`` is to be verified through its cross-chain part: its chain part is for another chain than
    ``genesis``'s and it carries a cross-chain part."""
    chain = package.chain
    identity = chain.get("chain_identity") if isinstance(chain, dict) else None
    return package.crosschain is not None and identity != to_hex(genesis.fingerprint)


def verify_crosschain_part(package: EvidencePackage, opened: VerifiedCheckpoint, genesis: GenesisFile, *,
                           light_client: bytes | None = None) -> VerifiedCrossChain:
    """Verify ``package``'s cross-chain part for its checkpoint ``opened`` (verified by the caller) with the target
    chain's ``genesis`` alone (and ``light_client``, the light client's address if the auditor pins it); raise :class:`CrossChainProofError` naming the layer (:class:`PackageError` for a
    malformed section)."""
    if package.crosschain is None or package.chain is None:
        raise ChainProofError(f"this package carries no anchoring on chain {to_hex(genesis.fingerprint)}")
    section = parse_crosschain_part(package.crosschain)
    chain = parse_chain_part(package.chain)
    if section.chain_identity != genesis.fingerprint:
        raise ChainProofError(
            f"this package carries no anchoring on chain {to_hex(genesis.fingerprint)}: its cross-chain part is for "
            f"chain {to_hex(section.chain_identity)}")
    header, cert = section.header, section.certificate
    with _layer("target certificate"):
        history = verify_validator_changes(genesis, section.validator_changes, up_to=header.number)
        validators = history.at(header.number)
        check_certified("the target block", header, cert, validators, history.at(header.number + 2), genesis)

    with _layer("light client"):
        if light_client is not None and light_client != section.light_client:
            raise CrossChainProofError("light client", f"the package names the light client "
                                       f"0x{section.light_client.hex()}, not the pinned 0x{light_client.hex()}")
        account = verify_eip1186({**section.state_proof, "storageProof": []}, header.state_root)
        if account.address != section.light_client:
            raise CrossChainProofError("light client", f"the state proof is for 0x{account.address.hex()}, not the "
                                       f"light client 0x{section.light_client.hex()} the package names")
        if account.account is None or account.account.code_hash != keccak(section.code):
            raise CrossChainProofError("light client", f"the package's code is not the code of "
                                       f"0x{section.light_client.hex()} at target block {header.number}")
        _check_code(section.code, section, genesis.governance)
        if section.source_identity != chain.chain_identity:
            raise CrossChainProofError(
                "light client", f"the light client tracks chain 0x{section.source_identity.hex()}, not the chain "
                f"0x{chain.chain_identity.hex()} the package is anchored on")

    with _layer("stored checkpoint"):
        values = verify_eip1186(section.state_proof, header.state_root).storage
        slots = checkpoint_slots(section.source_height)
        missing = [s for s in slots if s not in values]
        if missing:
            raise CrossChainProofError("stored checkpoint", f"the state proof does not cover slot 0x{missing[0]:064x}"
                                       f" of the checkpoint of source height {section.source_height}")
        block_hash, state_root, receipts_root, timestamp = (values[s] for s in slots)
        if block_hash == 0:
            raise CrossChainProofError("stored checkpoint", f"the light client holds no checkpoint of source height "
                                       f"{section.source_height} at target block {header.number}")

    with _layer("source header"):
        stored = (block_hash.to_bytes(32, "big"), state_root.to_bytes(32, "big"), receipts_root.to_bytes(32, "big"))
        raw = chain.receipt[3]
        source = decode_header(raw, hash_=keccak(raw))
        if (source.hash, source.number) != (stored[0], section.source_height):
            raise CrossChainProofError(
                "source header", f"the anchoring block's header (block {source.number}, 0x{source.hash.hex()}) is "
                f"not the stored checkpoint of source height {section.source_height} (0x{stored[0].hex()})")
        if (source.state_root, source.receipts_root, source.timestamp) != (*stored[1:], timestamp):
            raise CrossChainProofError("source header", "the header's roots or time are not the stored checkpoint's")

    with _layer("anchor receipt"):
        proven = verify_parsed_receipt_proof(*chain.receipt)
        batch = verify_anchor_receipt(package.chain, opened.checkpoint, section.registry, proven=proven)
        if not any(batch.signed_by(v.public_key, chain_id=section.source_chain_id, registry=section.registry)
                   for v in opened.signers):
            raise CrossChainProofError(
                "anchor receipt", f"the anchor's SM2 signature (r, s) is not by the checkpoint's signer: the "
                f"registry accepted another key for org {batch.org_id}'s anchor")
    return VerifiedCrossChain(
        target_identity=genesis.fingerprint, target_height=header.number, target_block_hash=header.hash,
        target_signers=len(cert.signatures), target_validators=len(validators.validators),
        target_changes=history.changes, light_client=section.light_client, source_identity=section.source_identity,
        source_chain_id=section.source_chain_id, source_height=section.source_height, source_block_hash=stored[0],
        batch=batch,
    )
