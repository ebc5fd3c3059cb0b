"""Canonical records, commitments and author signatures.

A record (any JSON object: a prescription, an HJ 212 reading, a drug-trace
event...) never goes on chain.  What goes on chain — inside a Merkle batch —
is a **commitment** to its RFC 8785 canonical JSON bytes:

``sm3-salted/v1``
    ``SM3("shancheng/commitment/sm3-salted/v1" || 0x00 || len(salt) || salt || JCS(record))``
    with a fresh random salt of at least 16 bytes, kept off chain.  Deleting
    the salt crypto-shreds the link between the chain and the record.

``hmac-sm3/v1``
    ``HMAC-SM3(org_secret, "shancheng/commitment/hmac-sm3/v1" || 0x00 || JCS(record))``
    for organisations that prefer one managed secret to per-record salts.

A **record statement** binds the commitment to its context — kind, source and
per-source sequence — and is what the author signs with SM2 and what becomes
a Merkle leaf::

    "shancheng/record/v1\\n" || JCS({"commitment": {"scheme", "value"}, "kind", "sequence", "source"})
"""

from __future__ import annotations

import hmac
import json
import math
import os
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import rfc8785

from .crypto import DEFAULT_UID, SM2PrivateKey, SM2PublicKey, hmac_sm3, new_sm3
from .errors import CommitmentMismatch, InvalidInput, InvalidSignature

__all__ = [
    "MAX_RECORD_SIZE",
    "MIN_SALT_LEN",
    "SCHEME_HMAC",
    "SCHEME_SALTED",
    "Commitment",
    "RecordStatement",
    "SignedRecord",
    "canonical_json",
    "commit_hmac",
    "commit_salted",
]

SCHEME_SALTED = "sm3-salted/v1"
SCHEME_HMAC = "hmac-sm3/v1"
SCHEMES = (SCHEME_SALTED, SCHEME_HMAC)
MIN_SALT_LEN = 16
MAX_SALT_LEN = 255
MIN_HMAC_KEY_LEN = 16
MAX_RECORD_SIZE = 1 << 20
STATEMENT_PREFIX = b"shancheng/record/v1\n"
_KIND_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_MAX_SOURCE_LEN = 128
_MAX_SEQUENCE = (1 << 63) - 1


def _domain(scheme: str) -> bytes:
    return b"shancheng/commitment/" + scheme.encode() + b"\x00"


def _reject_non_finite(value: Any, path: str = "$") -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"record value at {path} is not a finite number")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInput(f"record key at {path} is not a string")
            _reject_non_finite(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _reject_non_finite(v, f"{path}[{i}]")


# json's C encoder writes RFC 8785 for the values _plain_json accepts (a fast path: rfc8785 is pure Python, about
# 4x slower on a typical record, and canonicalisation dominated the batcher's cost per record)
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"))
_SAFE_INT = (1 << 53) - 1
_PLAIN_DEPTH = 64


def _plain_json(value: Any, depth: int = 0) -> bool:
    """True if json.dumps(sort_keys=True) of ``value`` is its RFC 8785 form: exact dict/list/str/int/bool/None
    types; keys without characters above U+FFFF (code-point order is then UTF-16 order); integers within the
    IEEE double's exact range; floats that both write as the same shortest digits in fixed notation (not integral,
    1e-4 <= |f| < 1e16). Anything else takes the rfc8785 path."""
    t = type(value)
    if t is dict:
        if depth >= _PLAIN_DEPTH:
            return False
        for k, v in value.items():
            if type(k) is not str or not (k.isascii() or max(k) < "\ud800"):
                return False
            if type(v) is not str and not _plain_json(v, depth + 1):
                return False
        return True
    if t is list:
        if depth >= _PLAIN_DEPTH:
            return False
        for v in value:
            if type(v) is not str and not _plain_json(v, depth + 1):
                return False
        return True
    if t is str or t is bool or value is None:
        return True
    if t is int:
        return bool(-_SAFE_INT <= value <= _SAFE_INT)
    if t is float:
        return bool(1e-4 <= abs(value) < 1e16 and not value.is_integer())
    return False


def canonical_json(record: Any) -> bytes:
    """RFC 8785 (JCS) bytes of a JSON value; at most :data:`MAX_RECORD_SIZE` bytes."""
    data = None
    if _plain_json(record):
        try:
            data = _JSON_ENCODER.encode(record).encode()
        except UnicodeEncodeError:  # a lone surrogate: rfc8785 says what is wrong
            data = None
    if data is None:
        _reject_non_finite(record)
        try:
            data = rfc8785.dumps(record)
        except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
            raise InvalidInput(f"record is not canonicalisable JSON: {exc}") from exc
    if len(data) > MAX_RECORD_SIZE:
        raise InvalidInput(f"canonical record is larger than {MAX_RECORD_SIZE} bytes")
    return data


@dataclass(frozen=True)
class Commitment:
    """A versioned commitment: ``scheme`` names the recipe, ``value`` is 32 bytes."""

    scheme: str
    value: bytes

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise InvalidInput(f"unknown commitment scheme {self.scheme!r} (known: {', '.join(SCHEMES)})")
        if not isinstance(self.value, bytes) or len(self.value) != 32:
            raise InvalidInput("commitment value must be 32 bytes")

    def to_json(self) -> dict[str, str]:
        return {"scheme": self.scheme, "value": self.value.hex()}

    @classmethod
    def from_json(cls, obj: Any) -> Commitment:
        if not isinstance(obj, dict) or set(obj) != {"scheme", "value"}:
            raise InvalidInput("commitment must be an object with exactly 'scheme' and 'value'")
        value = obj["value"]
        if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
            raise InvalidInput("commitment value must be 64 lowercase hex digits")
        return cls(scheme=obj["scheme"], value=bytes.fromhex(value))

    def verify(self, record: Any, *, salt: bytes | None = None, key: bytes | None = None) -> None:
        """Raise :class:`CommitmentMismatch` unless ``record`` (with salt or key) reproduces this commitment."""
        if self.scheme == SCHEME_SALTED:
            if salt is None:
                raise InvalidInput("a salted commitment needs the record's salt to verify")
            computed = commit_salted(record, salt=salt)[0]
        else:
            if key is None:
                raise InvalidInput("an HMAC commitment needs the organisation's key to verify")
            computed = commit_hmac(record, key=key)
        if not hmac.compare_digest(computed.value, self.value):
            raise CommitmentMismatch("record does not match the commitment (wrong record, salt or key)")


def commit_salted(record: Any, *, salt: bytes | None = None) -> tuple[Commitment, bytes]:
    """Salted SM3 commitment; returns (commitment, salt).  A fresh 32-byte salt by default."""
    if salt is None:
        salt = os.urandom(32)
    if not isinstance(salt, (bytes, bytearray)) or not MIN_SALT_LEN <= len(salt) <= MAX_SALT_LEN:
        raise InvalidInput(f"salt must be {MIN_SALT_LEN}..{MAX_SALT_LEN} bytes")
    h = new_sm3(_domain(SCHEME_SALTED) + bytes([len(salt)]) + bytes(salt))
    h.update(canonical_json(record))
    return Commitment(SCHEME_SALTED, h.digest()), bytes(salt)


def commit_hmac(record: Any, *, key: bytes) -> Commitment:
    """HMAC-SM3 commitment under an organisation secret (at least 16 bytes)."""
    if not isinstance(key, (bytes, bytearray)) or len(key) < MIN_HMAC_KEY_LEN:
        raise InvalidInput(f"HMAC commitment key must be at least {MIN_HMAC_KEY_LEN} bytes")
    return Commitment(SCHEME_HMAC, hmac_sm3(bytes(key), _domain(SCHEME_HMAC) + canonical_json(record)))


@dataclass(frozen=True)
class RecordStatement:
    """A commitment in context: what an author signs and what a Merkle leaf holds."""

    kind: str
    source: str
    sequence: int
    commitment: Commitment

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not _KIND_RE.match(self.kind):
            raise InvalidInput("record kind must be 1-64 chars of a-z, 0-9, '.', '_' or '-', starting alphanumeric")
        if not isinstance(self.source, str) or not 0 < len(self.source) <= _MAX_SOURCE_LEN:
            raise InvalidInput(f"record source must be 1-{_MAX_SOURCE_LEN} characters")
        if any(ord(c) < 0x20 for c in self.source):
            raise InvalidInput("record source must not contain control characters")
        if not isinstance(self.sequence, int) or isinstance(self.sequence, bool) or not 0 <= self.sequence <= _MAX_SEQUENCE:
            raise InvalidInput("record sequence must be a non-negative 63-bit integer")
        if not isinstance(self.commitment, Commitment):
            raise InvalidInput("record commitment must be a Commitment")

    def to_json(self) -> dict[str, Any]:
        return {
            "commitment": self.commitment.to_json(),
            "kind": self.kind,
            "sequence": self.sequence,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, obj: Any) -> RecordStatement:
        if not isinstance(obj, dict) or set(obj) != {"commitment", "kind", "sequence", "source"}:
            raise InvalidInput("record must be an object with exactly commitment, kind, sequence and source")
        return cls(
            kind=obj["kind"],
            source=obj["source"],
            sequence=obj["sequence"],
            commitment=Commitment.from_json(obj["commitment"]),
        )

    @cached_property
    def _encoded(self) -> bytes:  # the statement is frozen: canonicalise it once, not per signature and leaf
        return STATEMENT_PREFIX + rfc8785.dumps(self.to_json())

    def to_bytes(self) -> bytes:
        """The signed bytes (the Merkle leaf data holds them after the author's key)."""
        return self._encoded

    def sign(self, key: SM2PrivateKey, *, uid: bytes = DEFAULT_UID) -> SignedRecord:
        return SignedRecord(self, key.public_key(), key.sign(self.to_bytes(), uid=uid), uid)


@dataclass(frozen=True)
class SignedRecord:
    """A record statement with its author's SM2 public key and signature."""

    statement: RecordStatement
    author: SM2PublicKey
    signature: bytes
    uid: bytes = DEFAULT_UID

    def verify(self) -> None:
        """Raise :class:`InvalidSignature` unless the author signed this statement."""
        try:
            self.author.verify(self.signature, self.statement.to_bytes(), uid=self.uid)
        except InvalidSignature as exc:
            raise InvalidSignature("author signature does not verify over the record statement") from exc
