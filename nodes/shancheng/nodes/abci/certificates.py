"""SM2 commit certificates from CometBFT vote extensions (see ``docs/network.md``).

Each validator's vote extension for height H carries its SM2 precommit over our Ethereum block hash of H::

    extension = eth_block_hash(32) || u64 timestamp_ms || DER SM2 signature
    signature = SM2(precommit_message(chain_id, H, 0, eth_block_hash, timestamp_ms, chain_identity=fingerprint))

(the round is always 0: an extension is signed before the application knows CometBFT's round, and the
certificate binds the Ethereum block, which is the same in every round that decides it). The proposer of H+1
collects the extensions of the commit of H that sign *its own* execution's hash of H and puts them, as a
:class:`~shancheng.sdk.chainproof.CommitCertificate` (v2), into the first transaction of block H+1::

    certificate_tx = b"\\x00SCCERT1" || JSON(certificate)

The leading zero byte is not an Ethereum transaction type, so the certificate transaction can never be
mistaken for (or replayed as) an Ethereum transaction. Every validator checks it against its own execution of
H and the validator set that certified H before accepting block H+1.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from shancheng.sdk import strict_json
from shancheng.sdk.chainproof import CommitCertificate, precommit_message
from shancheng.sdk.chainproof.commit import MAX_VALIDATORS, PrecommitSignature
from shancheng.sdk.chainproof.validators import ValidatorSet
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import InvalidInput, InvalidSignature, ShanchengError, VerificationError

__all__ = [
    "CERTIFICATE_TX_PREFIX",
    "MAX_CERTIFICATE_TX_BYTES",
    "MAX_EXTENSION_BYTES",
    "CertificateInvalid",
    "ExtensionInvalid",
    "VoteExtension",
    "assemble_certificate",
    "check_certificate",
    "decode_certificate_tx",
    "encode_certificate_tx",
    "is_certificate_tx",
    "sign_extension",
]

CERTIFICATE_TX_PREFIX = b"\x00SCCERT1"
CERTIFICATE_ROUND = 0
_MAX_DER = 72  # SEQUENCE { INTEGER r, INTEGER s } with 32-byte r, s (each possibly with a leading zero)
MAX_EXTENSION_BYTES = 32 + 8 + _MAX_DER
_SIGNATURE_JSON = 160  # {"validator_index":1023,"timestamp_ms":...,"signature":"<96 base64 chars>"},
MAX_CERTIFICATE_TX_BYTES = len(CERTIFICATE_TX_PREFIX) + 512 + MAX_VALIDATORS * _SIGNATURE_JSON


class ExtensionInvalid(VerificationError):
    """A vote extension that is malformed, from an unknown signer, or whose SM2 signature does not verify."""


class CertificateInvalid(VerificationError):
    """A certificate transaction that is malformed or does not prove the block it names."""


@dataclass(frozen=True)
class VoteExtension:
    """One validator's SM2 precommit, as carried in its CometBFT vote extension."""

    block_hash: bytes  # our Ethereum block hash of the height voted on
    timestamp_ms: int
    signature: bytes  # DER

    def encode(self) -> bytes:
        return self.block_hash + struct.pack(">Q", self.timestamp_ms) + self.signature

    @classmethod
    def decode(cls, raw: bytes) -> VoteExtension:
        """Parse an extension (sizes only; :meth:`verify` checks the signature)."""
        if not isinstance(raw, (bytes, bytearray)):
            raise ExtensionInvalid("vote extension must be bytes")
        if not raw:
            raise ExtensionInvalid("vote extension is empty: a validator must sign the block with its SM2 key")
        if not 32 + 8 + 8 <= len(raw) <= MAX_EXTENSION_BYTES:
            raise ExtensionInvalid(f"vote extension is {len(raw)} bytes; it must be 48..{MAX_EXTENSION_BYTES}")
        raw = bytes(raw)
        (timestamp_ms,) = struct.unpack(">Q", raw[32:40])
        if timestamp_ms >= 1 << 63:
            raise ExtensionInvalid("vote extension timestamp is out of range")
        return cls(raw[:32], timestamp_ms, raw[40:])

    def message(self, *, chain_identity: bytes, chain_id: int, height: int) -> bytes:
        return precommit_message(chain_id, height, CERTIFICATE_ROUND, self.block_hash, self.timestamp_ms,
                                 chain_identity=chain_identity)

    def verify(self, validators: ValidatorSet, index: int, *, chain_identity: bytes, chain_id: int,
               height: int) -> None:
        """Raise :class:`ExtensionInvalid` unless validator ``index`` of ``validators`` signed this extension."""
        if not 0 <= index < len(validators.validators):
            raise ExtensionInvalid(f"vote extension from unknown validator index {index}")
        key = validators.validators[index].sm2_key
        try:
            key.verify(self.signature, self.message(chain_identity=chain_identity, chain_id=chain_id, height=height))
        except (InvalidSignature, InvalidInput) as exc:
            raise ExtensionInvalid(
                f"the SM2 signature in validator {index}'s vote extension at height {height} does not verify"
            ) from exc


def sign_extension(key: SM2PrivateKey, *, chain_identity: bytes, chain_id: int, height: int, block_hash: bytes,
                   timestamp_ms: int) -> bytes:
    """The vote extension of a validator with SM2 key ``key`` for our block ``block_hash`` at ``height``."""
    unsigned = VoteExtension(bytes(block_hash), timestamp_ms, b"")
    signature = key.sign(unsigned.message(chain_identity=chain_identity, chain_id=chain_id, height=height))
    return VoteExtension(bytes(block_hash), timestamp_ms, signature).encode()


# -- the certificate transaction ----------------------------------------------------------------------------
def is_certificate_tx(raw: bytes) -> bool:
    return bytes(raw[: len(CERTIFICATE_TX_PREFIX)]) == CERTIFICATE_TX_PREFIX


def encode_certificate_tx(certificate: CommitCertificate) -> bytes:
    return CERTIFICATE_TX_PREFIX + json.dumps(certificate.to_json(), separators=(",", ":"), sort_keys=True).encode()


def decode_certificate_tx(raw: bytes) -> CommitCertificate:
    """Parse a certificate transaction strictly (size, depth and fields); raises :class:`CertificateInvalid`."""
    if not is_certificate_tx(raw):
        raise CertificateInvalid("not a commit certificate transaction")
    if len(raw) > MAX_CERTIFICATE_TX_BYTES:
        raise CertificateInvalid(
            f"commit certificate transaction is {len(raw)} bytes; the limit is {MAX_CERTIFICATE_TX_BYTES}")
    try:
        obj = strict_json.loads(bytes(raw[len(CERTIFICATE_TX_PREFIX):]), what="commit certificate",
                                error=CertificateInvalid, max_size=MAX_CERTIFICATE_TX_BYTES, max_depth=4)
        return CommitCertificate.from_json(obj)
    except CertificateInvalid:
        raise
    except ShanchengError as exc:
        raise CertificateInvalid(f"malformed commit certificate: {exc}") from exc


def check_certificate(certificate: CommitCertificate, *, validators: ValidatorSet, chain_identity: bytes,
                      chain_id: int, height: int, block_hash: bytes) -> None:
    """Raise :class:`CertificateInvalid` unless ``certificate`` proves block ``block_hash`` at ``height``:
    round 0, distinct signers of ``validators`` with more than two thirds of its power, every signature valid,
    this chain's identity and id."""
    if certificate.height != height:
        raise CertificateInvalid(f"the commit certificate is for height {certificate.height}, not {height}")
    if certificate.block_hash != block_hash:
        raise CertificateInvalid(
            f"the commit certificate is for block 0x{certificate.block_hash.hex()}, this node's block {height} is "
            f"0x{bytes(block_hash).hex()}")
    if certificate.round != CERTIFICATE_ROUND:
        raise CertificateInvalid(f"the commit certificate has round {certificate.round}; certificates use round 0")
    try:
        certificate.verify(validators.sm2_keys(), chain_id=chain_id, chain_identity=chain_identity,
                           powers=validators.powers())
    except ShanchengError as exc:
        raise CertificateInvalid(f"the commit certificate of height {height} does not verify: {exc}") from exc


def assemble_certificate(votes: Iterable[tuple[bytes, bytes]], *, validators: ValidatorSet, chain_identity: bytes,
                         chain_id: int, height: int, block_hash: bytes) -> CommitCertificate | None:
    """The certificate of block ``block_hash`` at ``height`` from ``votes`` (consensus address, vote extension):
    every extension that signs this hash by a distinct member of ``validators`` with a valid signature, in
    validator order; None when they hold two thirds of the power or less."""
    found: dict[int, PrecommitSignature] = {}
    for address, raw in votes:
        index = validators.index_by_consensus_address(bytes(address))
        if index is None or index in found or not raw:
            continue
        try:
            extension = VoteExtension.decode(raw)
            if extension.block_hash != block_hash:
                continue
            extension.verify(validators, index, chain_identity=chain_identity, chain_id=chain_id, height=height)
        except ExtensionInvalid:
            continue
        found[index] = PrecommitSignature(index, extension.timestamp_ms, extension.signature)
    powers = validators.powers()
    if 3 * sum(powers[i] for i in found) <= 2 * sum(powers):
        return None
    return CommitCertificate(bytes(chain_identity), chain_id, height, CERTIFICATE_ROUND, bytes(block_hash),
                             tuple(found[i] for i in sorted(found)))
