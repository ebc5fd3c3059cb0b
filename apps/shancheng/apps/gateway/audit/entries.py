"""The audit log's entries and their SM3 hash chain: the tables, one entry, and the walk that names the first broken
sequence.

An entry's hash is ``SM3("shancheng/audit/v1" || 0x00 || JCS(body))`` where the body (RFC 8785 canonical JSON) holds
every field but the hash, its sequence number and the previous entry's hash. Version 1 bodies (written before the
credential was recorded) have no ``credential`` member; version 2 bodies have it (null for an anonymous request), so
old entries keep their hashes and new ones chain the credential too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from pydantic import ConfigDict, Field, with_config
from sqlalchemy import BigInteger, Column, Integer, SmallInteger, String, Table, Text

from shancheng.sdk import strict_json
from shancheng.sdk.crypto import sm3
from shancheng.sdk.errors import InvalidInput, VerificationError
from shancheng.sdk.records import canonical_json

from ...db import metadata

__all__ = ["ENTRY_VERSION", "ZERO_HASH", "Actor", "AuditChainBroken", "AuditEntry", "audit_anchors",
           "audit_entries", "audit_heads", "outcome_of", "walk"]

HASH_DOMAIN = b"shancheng/audit/v1\x00"
ZERO_HASH = "00" * 32
#: the body version of entries written now (1: before the credential was recorded)
ENTRY_VERSION = 2
MAX_TARGET = 512
MAX_DETAIL = 2000
MAX_CREDENTIAL = 300

audit_entries = Table(
    "audit_entries", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("org", String(128), nullable=True),
    Column("org_id", Integer, nullable=True),
    Column("subject", String(256), nullable=True),
    Column("role", String(64), nullable=True),
    Column("via", String(16), nullable=True),
    Column("remote", String(64), nullable=True),
    Column("action", String(300), nullable=False),
    Column("target", String(MAX_TARGET), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("status", Integer, nullable=False),
    Column("detail", Text, nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    Column("v", SmallInteger, nullable=False, server_default="1"),
    Column("credential", String(MAX_CREDENTIAL), nullable=True),
)

#: heads anchored before migration 0006, as records of the organisation's general evidence log (which any writer
#: role could also write): kept for the record, never read to verify anything
audit_anchors = Table(
    "audit_anchors", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("origin", String(128), nullable=False),
    Column("record_id", BigInteger, nullable=False),
    Column("salt", String(128), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("package", Text, nullable=True),
)

#: the openings of the audit-heads log's records (head ``n`` = record ``n`` of the dedicated log): what the chain's
#: checkpoint of that log is checked against; a row deleted or edited here no longer matches the chain
audit_heads = Table(
    "audit_heads", metadata,
    Column("n", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("hash", String(64), nullable=False),
    Column("salt", String(128), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("package", Text, nullable=True),  # the evidence package, once the head's checkpoint is final
)


class Actor(Protocol):
    """Who acted, as the gateway authenticated them (the gateway's ``Principal``)."""

    @property
    def subject(self) -> str: ...
    @property
    def org(self) -> str: ...
    @property
    def org_id(self) -> int: ...
    @property
    def role(self) -> str: ...
    @property
    def via(self) -> str: ...
    @property
    def credential(self) -> str | None: ...


class AuditChainBroken(VerificationError):
    """The audit chain does not verify: ``kind`` (edited, deleted, reordered, truncated, anchor, equivocation, stale,
    malformed) at ``sequence``, the first broken one."""

    def __init__(self, message: str, *, sequence: int, kind: str) -> None:
        super().__init__(message)
        self.sequence = sequence
        self.kind = kind

    def diagnostics(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "kind": self.kind}


@with_config(ConfigDict(json_schema_serialization_defaults_required=True))
@dataclass(frozen=True)
class AuditEntry:
    """One request as recorded: who (subject, role, org, via, the credential used), what (action, target), when
    (ms since the epoch), result, and its place in the hash chain (the API leaves out org_id: every entry of a
    gateway's log is of its organisation)."""

    seq: int
    ts_ms: int
    org: str | None
    org_id: Annotated[int | None, Field(exclude=True)]
    subject: str | None
    role: str | None
    via: str | None
    remote: str | None
    action: str
    target: str | None
    outcome: str
    status: int
    detail: str | None
    prev_hash: str
    hash: str
    v: Annotated[int, Field(description="the entry's hashed body version (1: written before credentials were "
                                        "recorded)")] = ENTRY_VERSION
    credential: Annotated[str | None, Field(description="the credential used: token:<id>, sm2:<key id>, "
                                                        "session:token:<id> or oidc:<issuer> <subject> (null before "
                                                        "it was recorded)")] = None

    def body(self) -> dict[str, Any]:
        """The hashed object (everything but the entry's own hash)."""
        body = {
            "v": self.v, "seq": self.seq, "ts_ms": self.ts_ms, "org": self.org, "org_id": self.org_id,
            "subject": self.subject, "role": self.role, "via": self.via, "remote": self.remote,
            "action": self.action, "target": self.target, "outcome": self.outcome, "status": self.status,
            "detail": self.detail, "prev": self.prev_hash,
        }
        if self.v >= 2:
            body["credential"] = self.credential
        return body

    def computed_hash(self) -> str:
        if self.v == 1 and self.credential is not None:
            return ""  # a version 1 body cannot hold a credential: never the stored hash
        return sm3(HASH_DOMAIN + canonical_json(self.body())).hex()

    def to_json(self) -> dict[str, Any]:
        return {"type": "entry", **self.body(), "hash": self.hash}

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> AuditEntry:
        return cls(**{name: row[name] for name in _ENTRY_FIELDS})

    @classmethod
    def from_json(cls, obj: Any, where: str) -> AuditEntry:
        if not isinstance(obj, dict):
            raise InvalidInput(f"{where}: an entry must be an object")
        version = obj.get("v")
        if version not in (1, 2) or isinstance(version, bool):
            raise InvalidInput(f"{where}.v: unknown entry version {version!r}")
        names = _JSON_FIELDS if version == 2 else _JSON_FIELDS_V1
        strict_json.fields(obj, where, required=set(names), error=InvalidInput)
        values = {name: obj[name] for name in names if name not in ("type", "prev")}
        values["prev_hash"] = obj["prev"]
        for name in ("seq", "ts_ms", "status"):
            strict_json.uint(values[name], f"{where}.{name}", error=InvalidInput)
        for name in ("action", "outcome", "prev_hash", "hash"):
            if not isinstance(values[name], str):
                raise InvalidInput(f"{where}.{name}: expected a string")
        if values.get("credential") is not None and not isinstance(values["credential"], str):
            raise InvalidInput(f"{where}.credential: expected a string or null")
        return cls(**values)


_ENTRY_FIELDS = ("seq", "ts_ms", "org", "org_id", "subject", "role", "via", "remote", "action", "target", "outcome",
                 "status", "detail", "prev_hash", "hash", "v", "credential")
_JSON_FIELDS_V1 = ("type", "v", "seq", "ts_ms", "org", "org_id", "subject", "role", "via", "remote", "action",
                   "target", "outcome", "status", "detail", "prev", "hash")
_JSON_FIELDS = (*_JSON_FIELDS_V1, "credential")


def outcome_of(status: int) -> str:
    """``ok`` (2xx/3xx), ``refused`` (401/403), ``rejected`` (other 4xx), ``error`` (5xx)."""
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "refused"
    return "rejected" if status < 500 else "error"


def walk(entries: Iterable[AuditEntry], *, first_seq: int, prev: str, later_seq: Callable[[str], int | None],
         elsewhere: Callable[[int], bool] = lambda _seq: False) -> tuple[int, int, str]:
    """Check that ``entries`` continue the chain from ``prev`` at ``first_seq``; returns (count, last seq, last
    hash). ``later_seq`` finds the sequence of the entry that holds a given hash, ``elsewhere`` whether an entry of
    a sequence exists out of place (both to tell a reordering from a deletion)."""
    expected, count = first_seq, 0
    for entry in entries:
        if entry.seq > expected and elsewhere(expected):
            raise AuditChainBroken(f"entry {expected} is out of order (entry {entry.seq} comes before it)",
                                   sequence=expected, kind="reordered")
        if entry.seq > expected:
            raise AuditChainBroken(f"entry {expected} is missing (the next entry is {entry.seq})", sequence=expected,
                                   kind="deleted")
        if entry.seq < expected:
            raise AuditChainBroken(f"entry {entry.seq} appears again after entry {expected - 1}", sequence=entry.seq,
                                   kind="reordered")
        intact = entry.computed_hash() == entry.hash
        if not intact or entry.prev_hash != prev:
            moved = later_seq(entry.prev_hash) if entry.prev_hash != prev else None
            if moved is not None and moved > entry.seq:
                raise AuditChainBroken(f"entry {entry.seq} is out of order: it follows entry {moved}",
                                       sequence=entry.seq, kind="reordered")
            if not intact:
                raise AuditChainBroken(f"entry {entry.seq} was changed after it was written (its hash does not match)",
                                       sequence=entry.seq, kind="edited")
            raise AuditChainBroken(f"entry {entry.seq} does not follow entry {entry.seq - 1} (previous hash differs)",
                                   sequence=entry.seq, kind="deleted")
        prev, expected, count = entry.hash, expected + 1, count + 1
    return count, expected - 1, prev
