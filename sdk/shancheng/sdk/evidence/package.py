"""Evidence package v2: a portable JSON document an auditor verifies offline.

See ``docs/evidence-package.md`` for the format and
``docs/evidence-package-v2.schema.json`` for its JSON Schema.  Parsing is
strict: unknown fields, duplicate keys, wrong types, deep nesting and oversized
values are refused with the JSON path of the problem.  Version 1 packages are
refused: their commit certificates do not bind the chain identity and their
Merkle leaves do not bind the author.

The Merkle leaf of a record (:func:`leaf_data`) binds the signed statement *and*
its author's key and distinguishing ID, so the log owner's checkpoint attests
who authored each record, not only what was recorded.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from dataclasses import dataclass
from typing import Any

from .. import strict_json
from ..crypto import DEFAULT_UID, SM2PublicKey
from ..errors import InvalidInput, InvalidKey, VerificationError
from ..records import RecordStatement, SignedRecord

__all__ = [
    "FORMAT",
    "MAX_PACKAGE_SIZE",
    "VERSION",
    "EvidencePackage",
    "InclusionProof",
    "PackageError",
    "leaf_data",
]

FORMAT = "shancheng-evidence-package"
VERSION = 2
MAX_PACKAGE_SIZE = 1 << 20
MAX_PACKAGE_DEPTH = 16
LEAF_PREFIX = b"shancheng/leaf/v2\n"
_HEX32 = re.compile(r"^[0-9a-f]{64}$")
_HEX_POINT = re.compile(r"^04[0-9a-f]{128}$")
_TOP_FIELDS = {"format", "version", "record", "author", "inclusion", "checkpoint", "chain"}
_OPTIONAL_FIELDS = frozenset({"chain", "crosschain"})


class PackageError(VerificationError, InvalidInput):
    """The package is not a well-formed v1 evidence package."""


def _need(obj: Any, path: str, required: set[str], optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    return strict_json.fields(obj, path, required, optional=optional, error=PackageError)


def _int(value: Any, path: str) -> int:
    return strict_json.uint(value, path, error=PackageError)


def _str(value: Any, path: str, *, max_len: int) -> str:
    if not isinstance(value, str) or len(value) > max_len:
        raise PackageError(f"{path}: must be a string of at most {max_len} characters")
    return value


def leaf_data(record: SignedRecord) -> bytes:
    """The Merkle leaf data of a signed record: ``"shancheng/leaf/v2\\n" ‖ author key (65) ‖ u16(len uid) ‖ uid ‖
    statement bytes``.  The author's signature is not in the leaf (it is checked against the key that is)."""
    uid = record.uid
    return LEAF_PREFIX + record.author.to_bytes() + struct.pack(">H", len(uid)) + uid + record.statement.to_bytes()


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    hashes: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {"leaf_index": self.leaf_index, "tree_size": self.tree_size, "hashes": [h.hex() for h in self.hashes]}


@dataclass(frozen=True)
class EvidencePackage:
    """The parts of a v2 package; ``chain`` holds the chain proofs (see :mod:`shancheng.sdk.evidence.chain`),
    ``crosschain`` (optional) their anchoring on another chain (:mod:`shancheng.sdk.evidence.crosschain`)."""

    record: SignedRecord
    inclusion: InclusionProof
    checkpoint_note: str
    checkpoint_signer: str  # C2SP verifier key string
    chain: dict[str, Any] | None = None
    crosschain: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "record": self.record.statement.to_json(),
            "author": {
                "public_key": self.record.author.to_bytes().hex(),
                "uid": self.record.uid.decode("utf-8"),
                "signature": base64.b64encode(self.record.signature).decode(),
            },
            "inclusion": self.inclusion.to_json(),
            "checkpoint": {"note": self.checkpoint_note, "signer": self.checkpoint_signer},
            "chain": self.chain,
        }
        if self.crosschain is not None:  # absent, not null: packages without it stay as they were
            doc["crosschain"] = self.crosschain
        return doc

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"

    @classmethod
    def loads(cls, text: str | bytes) -> EvidencePackage:
        obj = strict_json.loads(text, what="package", error=PackageError, max_size=MAX_PACKAGE_SIZE,
                          max_depth=MAX_PACKAGE_DEPTH)
        return cls.from_json(obj)

    @classmethod
    def from_json(cls, obj: Any) -> EvidencePackage:
        _need(obj, "$", _TOP_FIELDS - _OPTIONAL_FIELDS, _OPTIONAL_FIELDS)
        if obj["format"] != FORMAT:
            raise PackageError(f"$.format: expected {FORMAT!r}")
        version = obj["version"]
        if type(version) is not int:  # not a bool, not a float such as 2.0
            raise PackageError(f"$.version: must be the integer {VERSION}, not {version!r}")
        if version == 1:
            raise PackageError(
                "$.version: evidence package format v1 is no longer accepted (its commit certificates do not bind "
                "the chain identity); export the package again from the node"
            )
        if version != VERSION or type(version) is not int:  # not true, not 2.0
            raise PackageError(f"$.version: this verifier reads version {VERSION}, not {version!r}")
        try:
            statement = RecordStatement.from_json(obj["record"])
        except InvalidInput as exc:
            raise PackageError(f"$.record: {exc}") from exc

        author = _need(obj["author"], "$.author", {"public_key", "uid", "signature"})
        if not isinstance(author["public_key"], str) or not _HEX_POINT.match(author["public_key"]):
            raise PackageError("$.author.public_key: must be 130 hex digits of an uncompressed point (04...)")
        try:
            public_key = SM2PublicKey.from_bytes(bytes.fromhex(author["public_key"]))
        except InvalidKey as exc:
            raise PackageError(f"$.author.public_key: {exc}") from exc
        uid = _str(author["uid"], "$.author.uid", max_len=256).encode("utf-8")
        try:
            signature = base64.b64decode(_str(author["signature"], "$.author.signature", max_len=200), validate=True)
        except binascii.Error as exc:
            raise PackageError("$.author.signature: must be base64") from exc

        inc = _need(obj["inclusion"], "$.inclusion", {"leaf_index", "tree_size", "hashes"})
        hashes = inc["hashes"]
        if not isinstance(hashes, list) or len(hashes) > 64:
            raise PackageError("$.inclusion.hashes: must be a list of at most 64 hashes")
        for i, h in enumerate(hashes):
            if not isinstance(h, str) or not _HEX32.match(h):
                raise PackageError(f"$.inclusion.hashes[{i}]: must be 64 lowercase hex digits")
        inclusion = InclusionProof(
            leaf_index=_int(inc["leaf_index"], "$.inclusion.leaf_index"),
            tree_size=_int(inc["tree_size"], "$.inclusion.tree_size"),
            hashes=tuple(bytes.fromhex(h) for h in hashes),
        )

        cp = _need(obj["checkpoint"], "$.checkpoint", {"note", "signer"})
        chain = obj.get("chain")
        if chain is not None and not isinstance(chain, dict):
            raise PackageError("$.chain: must be null or an object")
        crosschain = obj.get("crosschain")
        if crosschain is not None and not isinstance(crosschain, dict):
            raise PackageError("$.crosschain: must be an object")
        return cls(
            record=SignedRecord(statement, public_key, signature, uid or DEFAULT_UID),
            inclusion=inclusion,
            checkpoint_note=_str(cp["note"], "$.checkpoint.note", max_len=65536),
            checkpoint_signer=_str(cp["signer"], "$.checkpoint.signer", max_len=1024),
            chain=chain,
            crosschain=crosschain,
        )
