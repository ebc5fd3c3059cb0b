"""Commit certificates: validators' SM2 precommit signatures that make a block final.

See ``docs/chain-formats.md``.  The signed message is::

    M = SM3("shancheng/precommit/v1" || u64(chain_id) || u64(height) || u32(round) || block_hash || u64(timestamp_ms))

and a certificate for a validator set of n keys needs distinct signers, every
signature valid, and at least ``floor(2n/3) + 1`` of them.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..crypto import SM2PrivateKey, SM2PublicKey, sm3
from ..errors import InvalidInput, InvalidSignature, VerificationError

__all__ = [
    "PRECOMMIT_DOMAIN",
    "CommitCertificate",
    "CommitError",
    "PrecommitSignature",
    "precommit_message",
    "quorum",
]

PRECOMMIT_DOMAIN = b"shancheng/precommit/v1"
MAX_VALIDATORS = 1024
_HASH_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")


class CommitError(VerificationError):
    """A commit certificate does not prove finality for the claimed block."""


def quorum(n: int) -> int:
    """Signatures needed from a set of n validators: more than two thirds (n = 3f + 1 -> 2f + 1)."""
    if n < 1:
        raise InvalidInput("a validator set cannot be empty")
    return (2 * n) // 3 + 1


def precommit_message(chain_id: int, height: int, round_: int, block_hash: bytes, timestamp_ms: int) -> bytes:
    """The 32-byte message M a validator signs with SM2 for its precommit."""
    if len(block_hash) != 32:
        raise InvalidInput("block hash must be 32 bytes")
    try:
        packed = struct.pack(">QQI", chain_id, height, round_) + block_hash + struct.pack(">Q", timestamp_ms)
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
    chain_id: int
    height: int
    round: int
    block_hash: bytes
    signatures: tuple[PrecommitSignature, ...]

    @classmethod
    def sign(
        cls,
        *,
        chain_id: int,
        height: int,
        round_: int,
        block_hash: bytes,
        signers: Sequence[tuple[int, SM2PrivateKey]],
        timestamp_ms: int,
    ) -> CommitCertificate:
        """A certificate signed by each (validator index, key) — for nodes and tests."""
        sigs = tuple(
            PrecommitSignature(
                index, timestamp_ms, key.sign(precommit_message(chain_id, height, round_, block_hash, timestamp_ms))
            )
            for index, key in signers
        )
        return cls(chain_id, height, round_, block_hash, sigs)

    def verify(self, validators: Sequence[SM2PublicKey], *, chain_id: int | None = None) -> None:
        """Raise :class:`CommitError` unless > 2/3 of ``validators`` signed this block."""
        if chain_id is not None and chain_id != self.chain_id:
            raise CommitError(f"commit certificate is for chain {self.chain_id}, not {chain_id}")
        n = len(validators)
        if n == 0:
            raise CommitError("cannot verify a commit against an empty validator set")
        seen: set[int] = set()
        for sig in self.signatures:
            if not 0 <= sig.validator_index < n:
                raise CommitError(f"commit signature from unknown validator index {sig.validator_index}")
            if sig.validator_index in seen:
                raise CommitError(f"validator {sig.validator_index} signed the commit twice")
            seen.add(sig.validator_index)
            message = precommit_message(self.chain_id, self.height, self.round, self.block_hash, sig.timestamp_ms)
            try:
                validators[sig.validator_index].verify(sig.signature, message)
            except InvalidSignature as exc:
                raise CommitError(
                    f"precommit signature of validator {sig.validator_index} at height {self.height} does not verify"
                ) from exc
        if len(seen) < quorum(n):
            raise CommitError(f"commit has {len(seen)} of {n} validator signatures; {quorum(n)} are needed")

    # -- JSON ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "height": self.height,
            "round": self.round,
            "block_hash": "0x" + self.block_hash.hex(),
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
        if not isinstance(obj, dict) or set(obj) != {"chain_id", "height", "round", "block_hash", "signatures"}:
            raise InvalidInput("commit certificate must have chain_id, height, round, block_hash, signatures")
        for field in ("chain_id", "height", "round"):
            v = obj[field]
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << 63:
                raise InvalidInput(f"commit certificate {field} must be a non-negative integer")
        if not isinstance(obj["block_hash"], str) or not _HASH_RE.match(obj["block_hash"]):
            raise InvalidInput("commit certificate block_hash must be 0x and 64 hex digits")
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
        return cls(obj["chain_id"], obj["height"], obj["round"], bytes.fromhex(obj["block_hash"][2:]), tuple(parsed))
