"""Commit certificates: validators' SM2 precommit signatures that make a block final.

See ``docs/chain-formats.md``.  Format v2: the signed message binds the chain's identity (the genesis
file's fingerprint, :attr:`shancheng.sdk.chainproof.GenesisFile.fingerprint`)::

    M = SM3("shancheng/precommit/v2" || chain_identity(32) || u64(chain_id) || u64(height) || u32(round)
            || block_hash(32) || u64(timestamp_ms))

so a certificate from one chain never verifies for another, even with the same chain id and validators.
A certificate for a validator set of n keys needs distinct signers, every signature valid, and at least
``floor(2n/3) + 1`` of them; with voting powers (``powers=``), signers whose power sum is more than two thirds of
the total (``3 * signed > 2 * total``; equal powers give the count rule).  Format v1 (no chain identity) is
refused.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import strict_json
from ..crypto import SM2PrivateKey, SM2PublicKey, sm3
from ..errors import InvalidInput, InvalidSignature, VerificationError
from ..strict_json import to_hex

__all__ = [
    "CERTIFICATE_VERSION",
    "PRECOMMIT_DOMAIN",
    "CommitCertificate",
    "CommitError",
    "PrecommitSignature",
    "precommit_message",
    "quorum",
]

PRECOMMIT_DOMAIN = b"shancheng/precommit/v2"
CERTIFICATE_VERSION = 2
MAX_VALIDATORS = 1024
_FIELDS = {"version", "chain_identity", "chain_id", "height", "round", "block_hash", "signatures"}
V1_REFUSED = "commit certificate format v1 is no longer accepted (it does not bind the chain identity)"


class CommitError(VerificationError):
    """A commit certificate does not prove finality for the claimed block."""


def quorum(n: int) -> int:
    """Signatures needed from a set of n validators: more than two thirds (n = 3f + 1 -> 2f + 1)."""
    if n < 1:
        raise InvalidInput("a validator set cannot be empty")
    return (2 * n) // 3 + 1


def precommit_message(
    chain_id: int, height: int, round_: int, block_hash: bytes, timestamp_ms: int, *, chain_identity: bytes
) -> bytes:
    """The 32-byte message M a validator signs with SM2 for its precommit (format v2).

    ``chain_identity`` is the 32-byte fingerprint of the chain's genesis file."""
    if len(chain_identity) != 32:
        raise InvalidInput("chain identity (the genesis fingerprint) must be 32 bytes")
    if len(block_hash) != 32:
        raise InvalidInput("block hash must be 32 bytes")
    try:
        packed = (
            bytes(chain_identity)
            + struct.pack(">QQI", chain_id, height, round_)
            + bytes(block_hash)
            + struct.pack(">Q", timestamp_ms)
        )
    except struct.error as exc:
        raise InvalidInput(f"precommit field out of range: {exc}") from exc
    return sm3(PRECOMMIT_DOMAIN + packed)


@dataclass(frozen=True)
class PrecommitSignature:
    validator_index: int
    timestamp_ms: int
    signature: bytes


@dataclass(frozen=True)
class CommitCertificate:
    chain_identity: bytes  # the genesis fingerprint the validators signed
    chain_id: int
    height: int
    round: int
    block_hash: bytes
    signatures: tuple[PrecommitSignature, ...]

    @classmethod
    def sign(
        cls,
        *,
        chain_identity: bytes,
        chain_id: int,
        height: int,
        round_: int,
        block_hash: bytes,
        signers: Sequence[tuple[int, SM2PrivateKey]],
        timestamp_ms: int,
    ) -> CommitCertificate:
        """A certificate signed by each (validator index, key) — for nodes and tests."""
        message = precommit_message(chain_id, height, round_, block_hash, timestamp_ms, chain_identity=chain_identity)
        sigs = tuple(PrecommitSignature(index, timestamp_ms, key.sign(message)) for index, key in signers)
        return cls(bytes(chain_identity), chain_id, height, round_, bytes(block_hash), sigs)

    def verify(
        self,
        validators: Sequence[SM2PublicKey],
        *,
        chain_id: int,
        chain_identity: bytes,
        powers: Sequence[int] | None = None,
    ) -> None:
        """Raise :class:`CommitError` unless > 2/3 of ``validators`` (by count, or by voting power when ``powers``
        gives each validator's power, in the same order) signed this block on the chain whose genesis fingerprint is
        ``chain_identity`` and whose chain id is ``chain_id``."""
        if len(chain_identity) != 32:
            raise InvalidInput("chain identity (the genesis fingerprint) must be 32 bytes")
        if chain_identity != self.chain_identity:
            raise CommitError(
                f"commit certificate is for another chain: it binds genesis fingerprint 0x{self.chain_identity.hex()},"
                f" the genesis file's is 0x{bytes(chain_identity).hex()}"
            )
        if chain_id != self.chain_id:
            raise CommitError(f"commit certificate is for chain {self.chain_id}, not {chain_id}")
        n = len(validators)
        if n == 0:
            raise CommitError("cannot verify a commit against an empty validator set")
        if powers is not None and (len(powers) != n or any(type(p) is not int or p <= 0 for p in powers)):
            raise InvalidInput("powers must give a positive integer power for each validator")
        seen: set[int] = set()
        for sig in self.signatures:
            if not 0 <= sig.validator_index < n:
                raise CommitError(f"commit signature from unknown validator index {sig.validator_index}")
            if sig.validator_index in seen:
                raise CommitError(f"validator {sig.validator_index} signed the commit twice")
            seen.add(sig.validator_index)
            message = precommit_message(
                self.chain_id, self.height, self.round, self.block_hash, sig.timestamp_ms,
                chain_identity=self.chain_identity,
            )
            try:
                validators[sig.validator_index].verify(sig.signature, message)
            except InvalidSignature as exc:
                raise CommitError(
                    f"precommit signature of validator {sig.validator_index} at height {self.height} does not verify"
                ) from exc
        if powers is None or len(set(powers)) == 1:  # equal powers: the count rule, said as a count
            if len(seen) < quorum(n):
                raise CommitError(f"commit has {len(seen)} of {n} validator signatures; {quorum(n)} are needed")
            return
        total, signed = sum(powers), sum(powers[i] for i in seen)
        if 3 * signed <= 2 * total:
            raise CommitError(
                f"commit is signed by {len(seen)} of {n} validators with {signed} of {total} voting power;"
                " more than two thirds is needed"
            )

    # -- JSON ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": CERTIFICATE_VERSION,
            "chain_identity": to_hex(self.chain_identity),
            "chain_id": self.chain_id,
            "height": self.height,
            "round": self.round,
            "block_hash": to_hex(self.block_hash),
            "signatures": [
                {
                    "validator_index": s.validator_index,
                    "timestamp_ms": s.timestamp_ms,
                    "signature": base64.b64encode(s.signature).decode(),
                }
                for s in self.signatures
            ],
        }

    @classmethod
    def from_json(cls, obj: Any) -> CommitCertificate:
        """Parse the v2 JSON form strictly; a v1 certificate (no ``version``) raises :class:`CommitError`."""
        if not isinstance(obj, dict):
            raise InvalidInput("commit certificate must be a JSON object")
        version = obj.get("version")
        if "version" not in obj or (type(version) is int and version == 1):
            raise CommitError(V1_REFUSED)
        if type(version) is not int or version != CERTIFICATE_VERSION:
            raise InvalidInput(
                f"commit certificate version {str(version)[:20]!r} is not supported (this verifier reads version 2)"
            )
        if set(obj) != _FIELDS:
            raise InvalidInput(
                "commit certificate must have exactly version, chain_identity, chain_id, height, round, block_hash,"
                " signatures"
            )
        for field in ("chain_id", "height", "round"):
            v = obj[field]
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << 63:
                raise InvalidInput(f"commit certificate {field} must be a non-negative integer")
        if obj["round"] >= 1 << 32:
            raise InvalidInput("commit certificate round must be below 2^32")
        chain_identity, block_hash = (
            strict_json.hexbytes(obj[field], f"commit certificate {field}", size=32, error=InvalidInput)
            for field in ("chain_identity", "block_hash")
        )
        sigs = obj["signatures"]
        if not isinstance(sigs, list) or not 0 < len(sigs) <= MAX_VALIDATORS:
            raise InvalidInput(f"commit certificate needs 1..{MAX_VALIDATORS} signatures")
        parsed = []
        for s in sigs:
            if not isinstance(s, dict) or set(s) != {"validator_index", "timestamp_ms", "signature"}:
                raise InvalidInput("each commit signature needs validator_index, timestamp_ms, signature")
            idx, ts, sig = s["validator_index"], s["timestamp_ms"], s["signature"]
            if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < MAX_VALIDATORS:
                raise InvalidInput("commit signature validator_index out of range")
            if not isinstance(ts, int) or isinstance(ts, bool) or not 0 <= ts < 1 << 63:
                raise InvalidInput("commit signature timestamp_ms must be a non-negative integer")
            if not isinstance(sig, str) or len(sig) > 200:
                raise InvalidInput("commit signature must be base64 DER")
            try:
                der = base64.b64decode(sig, validate=True)
            except binascii.Error as exc:
                raise InvalidInput("commit signature must be base64 DER") from exc
            parsed.append(PrecommitSignature(idx, ts, der))
        return cls(
            chain_identity,
            obj["chain_id"],
            obj["height"],
            obj["round"],
            block_hash,
            tuple(parsed),
        )
