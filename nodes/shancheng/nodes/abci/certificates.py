"""SM2 commit certificates from CometBFT vote extensions (see ``docs/network.md``).

Each validator's vote extension for height H carries its SM2 precommit over our Ethereum block hash of H, and
*late* precommits over committed blocks that have no certificate yet (at most :data:`MAX_LATE_SIGNATURES`, the
lowest first)::

    extension = eth_block_hash(32) || u64 timestamp_ms || sig || u8 n || n x (u64 height || sig)
    sig       = u8 length || DER SM2 signature
    main sig  = SM2(precommit_message(chain_id, H, 0, eth_block_hash, timestamp_ms, chain_identity=fingerprint))
    late sig  = SM2(precommit_message(chain_id, h, 0, hash of committed block h, timestamp_ms, chain_identity=…))

(the round is always 0: an extension is signed before the application knows CometBFT's round, and the
certificate binds the Ethereum block, which is the same in every round that decides it). The proposer of H+1
collects the extensions of the commit of H that sign *its own* execution's hash of H, and the late signatures,
and puts each certificate it can complete — a :class:`~shancheng.sdk.chainproof.CommitCertificate` (v2) of one
height — into the leading transactions of block H+1, in ascending heights::

    certificate_tx = b"\\x00SCCERT1" || JSON(certificate)

The leading zero byte is not an Ethereum transaction type, so the certificate transaction can never be
mistaken for (or replayed as) an Ethereum transaction. Every validator checks each certificate against its own
committed block of that height and the validator set that certifies it before accepting block H+1.

Why late signatures: ``VerifyVoteExtension`` is given CometBFT's block hash, not ours, and may run before this
node has seen the block (ABCI++ ``VerifyVoteExtension`` usage), so it cannot tell whether the hash an extension
signs for H is the right one; a Byzantine validator's precommit over a wrong hash still counts for CometBFT, and
a height can be decided with too few usable SM2 signatures (also without any fault, when an honest precommit
arrives after ``timeout_commit``). Such a height is certified by the late signatures of a later height, which a
node *can* check deterministically: they sign blocks it has committed.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from shancheng.sdk import strict_json
from shancheng.sdk.chainproof import CommitCertificate, precommit_message
from shancheng.sdk.chainproof.commit import MAX_VALIDATORS, PrecommitSignature
from shancheng.sdk.chainproof.validators import ValidatorSet
from shancheng.sdk.crypto import SM2PrivateKey, SM2PublicKey
from shancheng.sdk.errors import InvalidInput, InvalidSignature, ShanchengError, VerificationError

__all__ = [
    "CERTIFICATE_TX_PREFIX",
    "CLOCK_TOLERANCE_MS",
    "MAX_CERTIFICATES_PER_BLOCK",
    "MAX_CERTIFICATE_TX_BYTES",
    "MAX_EXTENSION_BYTES",
    "MAX_LATE_SIGNATURES",
    "MAX_TIMESTAMP_MS",
    "CertificateInvalid",
    "ExtensionInvalid",
    "LateSignature",
    "VoteExtension",
    "assemble_certificates",
    "check_certificate",
    "decode_certificate_tx",
    "encode_certificate_tx",
    "is_certificate_tx",
    "sign_extension",
]

CERTIFICATE_TX_PREFIX = b"\x00SCCERT1"
CERTIFICATE_ROUND = 0
_MIN_DER = 8  # SEQUENCE { INTEGER, INTEGER } with one-byte integers
_MAX_DER = 72  # SEQUENCE { INTEGER r, INTEGER s } with 32-byte r, s (each possibly with a leading zero)
#: committed heights without a certificate that one extension signs late (the lowest first)
MAX_LATE_SIGNATURES = 16
#: certificate transactions one block may carry: the previous height's and the late ones
MAX_CERTIFICATES_PER_BLOCK = MAX_LATE_SIGNATURES + 1
MAX_EXTENSION_BYTES = 32 + 8 + (1 + _MAX_DER) + 1 + MAX_LATE_SIGNATURES * (8 + 1 + _MAX_DER)
#: the latest timestamp an extension may carry: 9999-12-31T23:59:59.999Z
MAX_TIMESTAMP_MS = 253_402_300_799_999
#: how far a signature's timestamp may be from the time of the block that carries its certificate (BFT time)
CLOCK_TOLERANCE_MS = 60_000
_SIGNATURE_JSON = 160  # {"validator_index":1023,"timestamp_ms":...,"signature":"<96 base64 chars>"},
MAX_CERTIFICATE_TX_BYTES = len(CERTIFICATE_TX_PREFIX) + 512 + MAX_VALIDATORS * _SIGNATURE_JSON


class ExtensionInvalid(VerificationError):
    """A vote extension that is malformed, from an unknown signer, or whose SM2 signature does not verify."""


class CertificateInvalid(VerificationError):
    """A certificate transaction that is malformed or does not prove the block it names."""


@dataclass(frozen=True)
class LateSignature:
    """A validator's SM2 precommit over committed block ``height`` (its hash is the verifier's own)."""

    height: int
    signature: bytes  # DER


def _take_signature(raw: bytes, at: int, what: str) -> tuple[bytes, int]:
    if at >= len(raw):
        raise ExtensionInvalid(f"vote extension is truncated before {what}")
    size = raw[at]
    if not _MIN_DER <= size <= _MAX_DER or at + 1 + size > len(raw):
        raise ExtensionInvalid(f"vote extension: {what} has a bad length")
    return raw[at + 1 : at + 1 + size], at + 1 + size


def _signature_field(signature: bytes) -> bytes:
    if not _MIN_DER <= len(signature) <= _MAX_DER:
        raise InvalidInput(f"an SM2 DER signature is {_MIN_DER}..{_MAX_DER} bytes, not {len(signature)}")
    return bytes([len(signature)]) + signature


@dataclass(frozen=True)
class VoteExtension:
    """One validator's SM2 precommit, as carried in its CometBFT vote extension, with its late precommits."""

    block_hash: bytes  # our Ethereum block hash of the height voted on
    timestamp_ms: int  # the signer's clock; every signature of the extension signs it
    signature: bytes  # DER
    late: tuple[LateSignature, ...] = ()

    def encode(self) -> bytes:
        out = [self.block_hash, struct.pack(">Q", self.timestamp_ms), _signature_field(self.signature),
               bytes([len(self.late)])]
        for late in self.late:
            out += [struct.pack(">Q", late.height), _signature_field(late.signature)]
        return b"".join(out)

    @classmethod
    def decode(cls, raw: bytes) -> VoteExtension:
        """Parse an extension (sizes, order and the timestamp's range; :meth:`verify` checks the signatures)."""
        if not isinstance(raw, (bytes, bytearray)):
            raise ExtensionInvalid("vote extension must be bytes")
        if not raw:
            raise ExtensionInvalid("vote extension is empty: a validator must sign the block with its SM2 key")
        if not 32 + 8 + 1 + _MIN_DER + 1 <= len(raw) <= MAX_EXTENSION_BYTES:
            raise ExtensionInvalid(f"vote extension is {len(raw)} bytes; it must be 50..{MAX_EXTENSION_BYTES}")
        raw = bytes(raw)
        (timestamp_ms,) = struct.unpack(">Q", raw[32:40])
        if timestamp_ms > MAX_TIMESTAMP_MS:
            raise ExtensionInvalid(f"vote extension timestamp {timestamp_ms} ms is after the year 9999")
        signature, at = _take_signature(raw, 40, "the signature")
        if at >= len(raw):
            raise ExtensionInvalid("vote extension is truncated before the count of late signatures")
        count, at = raw[at], at + 1
        if count > MAX_LATE_SIGNATURES:
            raise ExtensionInvalid(f"vote extension has {count} late signatures; at most {MAX_LATE_SIGNATURES}")
        late: list[LateSignature] = []
        for i in range(count):
            if at + 8 > len(raw):
                raise ExtensionInvalid(f"vote extension is truncated in late signature {i}")
            (height,) = struct.unpack(">Q", raw[at : at + 8])
            if late and height <= late[-1].height:
                raise ExtensionInvalid("vote extension: late signatures must be for ascending heights")
            sig, at = _take_signature(raw, at + 8, f"late signature {i}")
            late.append(LateSignature(height, sig))
        if at != len(raw):
            raise ExtensionInvalid(f"vote extension has {len(raw) - at} bytes after its last signature")
        return cls(raw[:32], timestamp_ms, signature, tuple(late))

    def message(self, *, chain_identity: bytes, chain_id: int, height: int) -> bytes:
        return precommit_message(chain_id, height, CERTIFICATE_ROUND, self.block_hash, self.timestamp_ms,
                                 chain_identity=chain_identity)

    def verify(self, validators: ValidatorSet, index: int, *, chain_identity: bytes, chain_id: int, height: int,
               committed_hash: Callable[[int], bytes | None], not_before_ms: int) -> None:
        """Raise :class:`ExtensionInvalid` unless validator ``index`` of ``validators`` (the set of ``height``)
        signed this extension: the main signature over the hash it carries (which may be any block: the verifier
        cannot know the hash of a block it may not have seen), each late signature over
        ``committed_hash(h)``, a block below ``height`` that the verifier has committed, and a timestamp from
        ``not_before_ms`` (the genesis time) to :data:`MAX_TIMESTAMP_MS`."""
        if not 0 <= index < len(validators.validators):
            raise ExtensionInvalid(f"vote extension from unknown validator index {index}")
        if not not_before_ms <= self.timestamp_ms <= MAX_TIMESTAMP_MS:
            raise ExtensionInvalid(f"validator {index}'s vote extension at height {height} has timestamp "
                                   f"{self.timestamp_ms} ms, before the genesis time")
        key = validators.validators[index].sm2_key
        _verify(key, self.signature, self.message(chain_identity=chain_identity, chain_id=chain_id, height=height),
                f"the SM2 signature in validator {index}'s vote extension at height {height} does not verify")
        for late in self.late:
            block_hash = committed_hash(late.height) if 1 <= late.height < height else None
            if block_hash is None:
                raise ExtensionInvalid(f"validator {index}'s vote extension at height {height} signs block "
                                       f"{late.height} late, which is not a committed block below {height}")
            _verify(key, late.signature,
                    precommit_message(chain_id, late.height, CERTIFICATE_ROUND, block_hash, self.timestamp_ms,
                                      chain_identity=chain_identity),
                    f"validator {index}'s late signature of block {late.height} (in its vote extension at height "
                    f"{height}) does not sign the committed block 0x{block_hash.hex()}")


def _verify(key: SM2PublicKey, signature: bytes, message: bytes, failure: str) -> None:
    if not _valid(key, signature, message):
        raise ExtensionInvalid(failure)


def sign_extension(key: SM2PrivateKey, *, chain_identity: bytes, chain_id: int, height: int, block_hash: bytes,
                   timestamp_ms: int, late: Sequence[tuple[int, bytes]] = ()) -> bytes:
    """The vote extension of a validator with SM2 key ``key`` for our block ``block_hash`` at ``height``, with late
    precommits over the committed blocks ``late`` ((height, block hash), ascending heights)."""
    unsigned = VoteExtension(bytes(block_hash), timestamp_ms, b"")
    signature = key.sign(unsigned.message(chain_identity=chain_identity, chain_id=chain_id, height=height))
    late_signatures = tuple(
        LateSignature(h, key.sign(precommit_message(chain_id, h, CERTIFICATE_ROUND, bytes(hash_), timestamp_ms,
                                                    chain_identity=chain_identity)))
        for h, hash_ in late
    )
    return VoteExtension(bytes(block_hash), timestamp_ms, signature, late_signatures).encode()


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
                      chain_id: int, height: int, block_hash: bytes, time_ms: int | None = None) -> None:
    """Raise :class:`CertificateInvalid` unless ``certificate`` proves block ``block_hash`` at ``height``:
    round 0, distinct signers of ``validators`` with more than two thirds of its power, every signature valid,
    this chain's identity and id; with ``time_ms`` (the time of the block that carries it), every signature's
    timestamp within :data:`CLOCK_TOLERANCE_MS` of it."""
    if certificate.height != height:
        raise CertificateInvalid(f"the commit certificate is for height {certificate.height}, not {height}")
    if certificate.block_hash != block_hash:
        raise CertificateInvalid(
            f"the commit certificate is for block 0x{certificate.block_hash.hex()}, this node's block {height} is "
            f"0x{bytes(block_hash).hex()}")
    if certificate.round != CERTIFICATE_ROUND:
        raise CertificateInvalid(f"the commit certificate has round {certificate.round}; certificates use round 0")
    if time_ms is not None:
        for sig in certificate.signatures:
            if abs(sig.timestamp_ms - time_ms) > CLOCK_TOLERANCE_MS:
                raise CertificateInvalid(
                    f"validator {sig.validator_index}'s signature in the commit certificate of height {height} has "
                    f"timestamp {sig.timestamp_ms} ms, more than {CLOCK_TOLERANCE_MS // 1000} s from the block time "
                    f"{time_ms} ms")
    try:
        certificate.verify(validators.sm2_keys(), chain_id=chain_id, chain_identity=chain_identity,
                           powers=validators.powers())
    except ShanchengError as exc:
        raise CertificateInvalid(f"the commit certificate of height {height} does not verify: {exc}") from exc


def assemble_certificates(
    votes: Iterable[tuple[bytes, bytes]], *, voters: ValidatorSet, height: int, block_hash: bytes,
    late_heights: Sequence[int], validators_of: Callable[[int], ValidatorSet],
    committed_hash: Callable[[int], bytes | None], chain_identity: bytes, chain_id: int, time_ms: int,
) -> list[CommitCertificate]:
    """The certificates that ``votes`` (consensus address, vote extension) of the commit of ``height`` complete,
    ascending: of block ``block_hash`` at ``height`` (this node's), and of each committed block of
    ``late_heights`` from the late signatures. A signature counts when it is valid, by a distinct member of the
    set of its height (``voters`` is the set of ``height``) and its timestamp is within
    :data:`CLOCK_TOLERANCE_MS` of ``time_ms`` (the time of the block that will carry the certificates); a
    certificate needs more than two thirds of its set's power."""
    wanted = {h: validators_of(h) for h in late_heights if 1 <= h < height}
    found: dict[int, dict[int, PrecommitSignature]] = {height: {}, **{h: {} for h in wanted}}
    for address, raw in votes:
        index = voters.index_by_consensus_address(bytes(address))
        if index is None or index in found[height] or not raw:
            continue
        try:
            extension = VoteExtension.decode(raw)
        except ExtensionInvalid:
            continue
        if abs(extension.timestamp_ms - time_ms) > CLOCK_TOLERANCE_MS:
            continue
        key = voters.validators[index].sm2_key
        message = extension.message(chain_identity=chain_identity, chain_id=chain_id, height=height)
        if extension.block_hash == block_hash and _valid(key, extension.signature, message):
            found[height][index] = PrecommitSignature(index, extension.timestamp_ms, extension.signature)
        for late in extension.late:
            validators = wanted.get(late.height)
            position = _position(validators, key) if validators is not None else None
            late_hash = committed_hash(late.height) if position is not None else None
            if position is None or late_hash is None or position in found[late.height]:
                continue
            message = precommit_message(chain_id, late.height, CERTIFICATE_ROUND, late_hash, extension.timestamp_ms,
                                        chain_identity=chain_identity)
            if _valid(key, late.signature, message):
                found[late.height][position] = PrecommitSignature(position, extension.timestamp_ms, late.signature)
    certificates = []
    for h in sorted(found):
        validators = voters if h == height else wanted[h]
        hash_ = block_hash if h == height else committed_hash(h)
        powers = validators.powers()
        if hash_ is None or 3 * sum(powers[i] for i in found[h]) <= 2 * sum(powers):
            continue
        certificates.append(CommitCertificate(bytes(chain_identity), chain_id, h, CERTIFICATE_ROUND, bytes(hash_),
                                              tuple(found[h][i] for i in sorted(found[h]))))
    return certificates


def _position(validators: ValidatorSet, key: SM2PublicKey) -> int | None:
    for i, validator in enumerate(validators.validators):
        if validator.sm2_key == key:
            return i
    return None


def _valid(key: SM2PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except (InvalidSignature, InvalidInput):
        return False
    return True
