"""The gateway's central audit log: every /api/ request that reads or writes evidence or domain data, in an
append-only SM3 hash chain whose head is anchored on chain, exportable for auditors who verify it offline.

>>> audit = AuditLog(engine, org="hospital", batcher=services.batcher)              # doctest: +SKIP
>>> entry = audit.record(principal, "POST /api/v1/prescriptions", "rx_id=0x12…", "ok", status=201)
>>> audit.verify()                                 # raises AuditChainBroken naming the first broken sequence
AuditVerified(entries=1, head_seq=1, ...)
>>> anchor = audit.anchor(wait=True)               # the head (seq, hash) becomes a record of the org's evidence log
>>> lines = list(audit.export())                   # JSON lines: header, entries, anchors (with evidence packages), end
>>> verify_export(lines, genesis=GenesisFile.load("genesis.json")).summary()            # offline, SDK only
'OK 1 entries of hospital (seq 1..1); anchored through seq 1 in block 7 ...'

An entry's hash is ``SM3("shancheng/audit/v1" || 0x00 || JCS(entry))`` where the entry (RFC 8785 canonical JSON)
includes its sequence number and the previous entry's hash, so an edited, deleted or reordered entry breaks the
chain at a sequence that :meth:`AuditLog.verify` and :func:`verify_export` name; an anchored head makes a truncated
tail show, and proves the exported entries to anyone holding the chain's genesis file.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shancheng.sdk import strict_json
from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.crypto import sm3
from shancheng.sdk.errors import InvalidInput, ShanchengError, VerificationError
from shancheng.sdk.evidence import EvidencePackage, verify_package
from shancheng.sdk.evidence.package import MAX_PACKAGE_SIZE
from shancheng.sdk.records import canonical_json

from ..db import metadata

if TYPE_CHECKING:
    from fastapi import FastAPI

    from shancheng.sdk.client.batcher import Batcher

    from .deps import Principal

__all__ = [
    "ANCHOR_KIND",
    "AuditAnchor",
    "AuditChainBroken",
    "AuditEntry",
    "AuditLog",
    "AuditVerified",
    "ExportVerified",
    "add_cli",
    "install",
    "verify_export",
]

_log = logging.getLogger("shancheng.apps.audit")

HASH_DOMAIN = b"shancheng/audit/v1\x00"
ZERO_HASH = "00" * 32
ANCHOR_KIND = "audit-head"
ANCHOR_RECORD_TYPE = "shancheng/audit-head/v1"
EXPORT_FORMAT = "shancheng/audit-export/v1"
MAX_TARGET = 512
MAX_DETAIL = 2000
MAX_LINE = MAX_PACKAGE_SIZE + 4096  # an anchor line carries an evidence package
MAX_EXPORT_LINES = 10_000_000
_PAGE = 1000

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
)

audit_anchors = Table(
    "audit_anchors", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),  # the anchored head's sequence
    Column("hash", String(64), nullable=False),
    Column("origin", String(128), nullable=False),  # the evidence log that holds the head record
    Column("record_id", BigInteger, nullable=False),
    Column("salt", String(128), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("package", Text, nullable=True),  # the evidence package, once the head record is anchored and final
)


class AuditChainBroken(VerificationError):
    """The audit chain does not verify: ``kind`` (edited, deleted, reordered, truncated, anchor, malformed) at
    ``sequence``, the first broken one."""

    def __init__(self, message: str, *, sequence: int, kind: str) -> None:
        super().__init__(message)
        self.sequence = sequence
        self.kind = kind

    def diagnostics(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "kind": self.kind}


@dataclass(frozen=True)
class AuditEntry:
    """One request as recorded: who (subject, role, org, via), what (action, target), when, result."""

    seq: int
    ts_ms: int
    org: str | None
    org_id: int | None
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

    def body(self) -> dict[str, Any]:
        """The hashed object (everything but the entry's own hash)."""
        return {
            "v": 1, "seq": self.seq, "ts_ms": self.ts_ms, "org": self.org, "org_id": self.org_id,
            "subject": self.subject, "role": self.role, "via": self.via, "remote": self.remote,
            "action": self.action, "target": self.target, "outcome": self.outcome, "status": self.status,
            "detail": self.detail, "prev": self.prev_hash,
        }

    def computed_hash(self) -> str:
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
        strict_json.fields(obj, where, required=set(_JSON_FIELDS), error=InvalidInput)
        values = {name: obj[name] for name in _JSON_FIELDS if name not in ("type", "v", "prev")}
        values["prev_hash"] = obj["prev"]
        for name in ("seq", "ts_ms", "status"):
            strict_json.uint(values[name], f"{where}.{name}", error=InvalidInput)
        for name in ("action", "outcome", "prev_hash", "hash"):
            if not isinstance(values[name], str):
                raise InvalidInput(f"{where}.{name}: expected a string")
        if obj["v"] != 1:
            raise InvalidInput(f"{where}.v: unknown entry version {obj['v']!r}")
        return cls(**values)


_ENTRY_FIELDS = ("seq", "ts_ms", "org", "org_id", "subject", "role", "via", "remote", "action", "target", "outcome",
                 "status", "detail", "prev_hash", "hash")
_JSON_FIELDS = ("type", "v", "seq", "ts_ms", "org", "org_id", "subject", "role", "via", "remote", "action", "target",
                "outcome", "status", "detail", "prev", "hash")


@dataclass(frozen=True)
class AuditAnchor:
    """An audit head ``(seq, hash)`` added as a record of the organisation's evidence log."""

    seq: int
    hash: str
    origin: str
    record_id: int
    salt: str
    created_ms: int
    package: str | None

    def record(self, org: str) -> dict[str, Any]:
        """The evidence record whose commitment the log holds."""
        return anchor_record(org, self.seq, self.hash)


def anchor_record(org: str, seq: int, head_hash: str) -> dict[str, Any]:
    return {"type": ANCHOR_RECORD_TYPE, "org": org, "seq": seq, "hash": head_hash}


@dataclass(frozen=True)
class AuditVerified:
    """What :meth:`AuditLog.verify` established."""

    entries: int
    head_seq: int
    head_hash: str
    anchored_seq: int | None  # the highest anchored head, found intact in the chain


@dataclass(frozen=True)
class ExportVerified:
    """What :func:`verify_export` established: the entries ``first_seq..last_seq`` are linked, and those up to
    ``anchored_seq`` are proven by an anchor on the chain of the genesis file."""

    org: str
    entries: int
    first_seq: int | None
    last_seq: int | None
    anchored_seq: int | None
    anchors: int
    anchor_block: int | None
    anchor_summary: str | None

    @property
    def unanchored(self) -> int:
        if self.last_seq is None:
            return 0
        return self.last_seq - (self.anchored_seq if self.anchored_seq is not None else (self.first_seq or 1) - 1)

    def summary(self) -> str:
        span = f"seq {self.first_seq}..{self.last_seq}" if self.entries else "no entries"
        text = f"OK {self.entries} entries of {self.org} ({span})"
        if self.anchored_seq is not None:
            text += f"; anchored through seq {self.anchored_seq} in block {self.anchor_block} ({self.anchors} anchor(s))"
        if self.unanchored:
            text += f"; {self.unanchored} entries after the last anchor are linked but not anchored yet"
        return text


def outcome_of(status: int) -> str:
    """``ok`` (2xx/3xx), ``refused`` (401/403), ``rejected`` (other 4xx), ``error`` (5xx)."""
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "refused"
    return "rejected" if status < 500 else "error"


def _clip(text: str | None, size: int) -> str | None:
    return None if text is None else text[:size]


#: built once (each request appends an entry: building a statement costs more than running it)
_HEAD_FOR_UPDATE = (select(audit_entries.c.seq, audit_entries.c.hash).order_by(audit_entries.c.seq.desc()).limit(1)
                    .with_for_update())
_INSERT_ENTRY = insert(audit_entries)


class _Pending:
    """One entry waiting to be appended, and how its append ended."""

    __slots__ = ("entry", "error", "fields")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self.entry: AuditEntry | None = None
        self.error: BaseException | None = None


class AuditLog:
    """The hash-chained audit table of one gateway (see the module docstring).

    Appends are group-committed: a caller that finds no append under way writes every entry waiting at that moment
    (its own and those of requests that arrived meanwhile) in one transaction that reads the head (``FOR UPDATE``
    on PostgreSQL), chains the entries and inserts them; each caller returns once its entry is committed. Another
    process writing the same table makes the insert fail on the sequence primary key: the batch is chained again
    on the new head and retried."""

    #: retries of a batch whose head another writer took (or while SQLite's write lock is held elsewhere)
    ATTEMPTS = 40
    #: entries written in one transaction at most
    MAX_BATCH = 256

    def __init__(self, engine: Engine, *, org: str, batcher: Batcher | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.org = org
        self.batcher = batcher
        self.clock = clock
        self._cond = threading.Condition()
        self._waiting: list[_Pending] = []
        self._writing = False
        self._anchor_lock = threading.Lock()

    # -- writing -----------------------------------------------------------------------------------
    def record(self, principal: Principal | None, action: str, target: str | None, outcome: str, *, status: int,
               detail: str | None = None, remote: str | None = None) -> AuditEntry:
        """Append one entry (who = ``principal``, None when unauthenticated) and return it once committed."""
        if not isinstance(action, str) or not action:
            raise InvalidInput("an audit action is a non-empty string")
        pending = _Pending({
            "org": principal.org if principal is not None else None,
            "org_id": principal.org_id if principal is not None else None,
            "subject": _clip(principal.subject, 256) if principal is not None else None,
            "role": principal.role if principal is not None else None,
            "via": principal.via if principal is not None else None,
            "remote": _clip(remote, 64), "action": action[:300], "target": _clip(target, MAX_TARGET),
            "outcome": outcome[:16], "status": int(status), "detail": _clip(detail, MAX_DETAIL),
        })
        with self._cond:
            self._waiting.append(pending)
        while True:
            with self._cond:
                while self._writing and pending.entry is None and pending.error is None:
                    self._cond.wait()
                if pending.entry is not None or pending.error is not None:
                    break
                self._writing = True  # this caller writes what is waiting now (the oldest first)
                batch, self._waiting = self._waiting[:self.MAX_BATCH], self._waiting[self.MAX_BATCH:]
            try:
                self._append(batch)
            finally:
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()
        if pending.error is not None:
            raise pending.error
        assert pending.entry is not None
        return pending.entry

    def _append(self, batch: list[_Pending]) -> None:
        """Chain ``batch`` on the head and insert it in one transaction; every pending entry ends with its entry
        or the error."""
        try:
            for attempt in range(self.ATTEMPTS):
                try:
                    with self.engine.begin() as conn:
                        head = conn.execute(_HEAD_FOR_UPDATE).first()
                        seq, prev = (0, ZERO_HASH) if head is None else (int(head[0]), str(head[1]))
                        entries = []
                        ts_ms = int(self.clock() * 1000)
                        for pending in batch:
                            seq += 1
                            entry = AuditEntry(seq=seq, ts_ms=ts_ms, prev_hash=prev, hash="", **pending.fields)
                            entry = AuditEntry(**{**entry.__dict__, "hash": entry.computed_hash()})
                            entries.append(entry)
                            prev = entry.hash
                        conn.execute(_INSERT_ENTRY, [e.__dict__ for e in entries])
                except (IntegrityError, OperationalError):  # another writer took these sequences (or holds
                    time.sleep(0.005 * (1 + attempt))      # SQLite's write lock): read the head again
                    continue
                for pending, entry in zip(batch, entries, strict=True):
                    pending.entry = entry
                return
            error: BaseException = ShanchengError(
                "the audit log could not append an entry: too much contention on its head")
        except Exception as exc:  # noqa: BLE001 - every waiting request learns why its entry was not written
            error = exc
        for pending in batch:
            pending.error = error

    # -- reading -----------------------------------------------------------------------------------
    def head(self) -> tuple[int, str] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(audit_entries.c.seq, audit_entries.c.hash)
                               .order_by(audit_entries.c.seq.desc()).limit(1)).first()
        return None if row is None else (int(row[0]), str(row[1]))

    def entries(self, *, after: int = 0, limit: int = 100, until: int | None = None) -> list[AuditEntry]:
        """Entries with ``after < seq (<= until)`` in order, at most ``limit``."""
        query = select(audit_entries).where(audit_entries.c.seq > after)
        if until is not None:
            query = query.where(audit_entries.c.seq <= until)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(audit_entries.c.seq).limit(limit)).mappings().all()
        return [AuditEntry.from_row(r) for r in rows]

    def _iter(self, after: int = 0, until: int | None = None) -> Iterator[AuditEntry]:
        while True:
            page = self.entries(after=after, limit=_PAGE, until=until)
            yield from page
            if len(page) < _PAGE:
                return
            after = page[-1].seq

    def anchors(self) -> list[AuditAnchor]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(audit_anchors).order_by(audit_anchors.c.seq)).mappings().all()
        return [AuditAnchor(**dict(r)) for r in rows]

    def _hash_at(self, seq: int) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(audit_entries.c.hash).where(audit_entries.c.seq == seq)).scalar()
        return None if value is None else str(value)

    def _seq_of_hash(self, value: str) -> int | None:
        with self.engine.connect() as conn:
            seq = conn.execute(select(audit_entries.c.seq).where(audit_entries.c.hash == value)).scalar()
        return None if seq is None else int(seq)

    # -- verifying ---------------------------------------------------------------------------------
    def verify(self) -> AuditVerified:
        """Walk the whole chain and check it against the anchored heads; raises :class:`AuditChainBroken` naming
        the first broken sequence (edited, deleted, reordered entry; tail truncated below an anchored head)."""
        count, last_seq, last_hash = _walk(self._iter(), first_seq=1, prev=ZERO_HASH, later_seq=self._seq_of_hash)
        anchored = None
        for anchor in self.anchors():
            if anchor.seq > last_seq:
                raise AuditChainBroken(
                    f"the audit log ends at sequence {last_seq} but sequence {anchor.seq} was anchored: entries from "
                    f"{last_seq + 1} were removed", sequence=last_seq + 1, kind="truncated")
            if self._hash_at(anchor.seq) != anchor.hash:
                raise AuditChainBroken(f"entry {anchor.seq} is not the anchored head (its hash differs)",
                                       sequence=anchor.seq, kind="anchor")
            anchored = anchor.seq
        return AuditVerified(entries=count, head_seq=last_seq, head_hash=last_hash, anchored_seq=anchored)

    # -- anchoring ---------------------------------------------------------------------------------
    def anchor(self, *, wait: bool = False, timeout: float = 120.0) -> AuditAnchor | None:
        """Add the current head ``(seq, hash)`` as an ``audit-head`` record of the organisation's evidence log (a
        no-op when that head is already anchored; None for an empty log). ``wait``: return once the record's
        checkpoint is anchored and final, with its evidence package."""
        if self.batcher is None:
            raise ShanchengError("this audit log has no evidence batcher to anchor its head with")
        with self._anchor_lock:
            head = self.head()
            if head is None:
                return None
            seq, head_hash = head
            existing = self._anchor_at(seq)
            if existing is None:
                record_id = self.batcher.add(anchor_record(self.org, seq, head_hash), kind=ANCHOR_KIND)
                salt = self.batcher.salt(record_id)
                assert salt is not None
                existing = AuditAnchor(seq=seq, hash=head_hash, origin=self.batcher.origin, record_id=record_id,
                                       salt=salt.hex(), created_ms=int(self.clock() * 1000), package=None)
                with self.engine.begin() as conn:
                    conn.execute(insert(audit_anchors).values(**existing.__dict__))
        if wait:
            self.batcher.flush(timeout=timeout)
            return self._with_package(existing)
        return existing

    def _anchor_at(self, seq: int) -> AuditAnchor | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(audit_anchors).where(audit_anchors.c.seq == seq)).mappings().first()
        return None if row is None else AuditAnchor(**dict(row))

    def _with_package(self, anchor: AuditAnchor) -> AuditAnchor:
        """``anchor`` with its evidence package (cached once built); unchanged while it is not anchored yet."""
        if anchor.package is not None or self.batcher is None or anchor.origin != self.batcher.origin:
            return anchor
        from shancheng.sdk.client.batcher import NotAnchoredYet

        try:
            package = self.batcher.evidence_package(anchor.record_id).dumps()
        except NotAnchoredYet:
            return anchor
        with self.engine.begin() as conn:
            conn.execute(update(audit_anchors).where(audit_anchors.c.seq == anchor.seq).values(package=package))
        return AuditAnchor(**{**anchor.__dict__, "package": package})

    def start_anchoring(self, interval: float) -> AnchoringJob:
        """Anchor the head every ``interval`` seconds in a daemon thread (skipped when it did not move)."""
        return AnchoringJob(self, interval)

    # -- exporting ---------------------------------------------------------------------------------
    def export(self, since: int | None = None, until: int | None = None) -> Iterator[str]:
        """JSON lines for an auditor: a header (org, first sequence, the hash before it), the entries, every anchor
        of a head in the range whose package is final (record, salt, evidence package), and an end line."""
        first = max(1, since or 1)
        prev = ZERO_HASH if first == 1 else self._hash_at(first - 1)
        if prev is None:
            raise InvalidInput(f"the audit log has no entry {first - 1} to start an export after")
        yield _line({"type": "header", "format": EXPORT_FORMAT, "org": self.org, "first_seq": first,
                     "prev_hash": prev, "exported_ms": int(self.clock() * 1000)})
        count, last = 0, None
        for entry in self._iter(after=first - 1, until=until):
            count, last = count + 1, entry.seq
            yield _line(entry.to_json())
        for anchor in self.anchors():
            if anchor.seq < first or (last is None or anchor.seq > last):
                continue
            anchor = self._with_package(anchor)
            if anchor.package is None:
                continue
            yield _line({"type": "anchor", "seq": anchor.seq, "hash": anchor.hash,
                         "record": anchor.record(self.org), "salt": anchor.salt,
                         "package": json.loads(anchor.package)})
        yield _line({"type": "end", "entries": count, "last_seq": last})


def _line(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _walk(entries: Iterable[AuditEntry], *, first_seq: int, prev: str, later_seq: Callable[[str], int | None],
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


class AnchoringJob:
    """The background anchoring of :meth:`AuditLog.start_anchoring`; :meth:`stop` ends it."""

    def __init__(self, audit: AuditLog, interval: float) -> None:
        if not 0 < interval <= 7 * 86400:
            raise InvalidInput("the audit anchoring interval must be between 0 and 7 days (in seconds)")
        self.audit = audit
        self.interval = float(interval)
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-anchoring", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.audit.anchor()
                for anchor in self.audit.anchors()[-3:]:  # cache the packages of recent heads as they become final
                    self.audit._with_package(anchor)
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - a node outage must not end the job; the next tick retries
                self.last_error = f"{type(exc).__name__}: {exc}"
                _log.warning("audit anchoring failed (retrying in %.0f s): %s", self.interval, self.last_error)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


# -- offline verification of an export ------------------------------------------------------------------

def _parse_line(text: str, number: int) -> dict[str, Any]:
    obj = strict_json.loads(text, what=f"line {number}", error=InvalidInput, max_size=MAX_LINE)
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise InvalidInput(f"line {number}: expected an object with a type")
    return obj


def verify_export(lines: Iterable[str], *, genesis: GenesisFile) -> ExportVerified:
    """Verify an audit export offline (the SDK alone and the chain's genesis file): the entries are linked from
    the header's previous hash, each anchor's evidence package verifies on that chain with its record and salt, the
    record names this organisation and a (sequence, hash) found in the entries, and the package's anchoring
    organisation is the export's. Raises :class:`AuditChainBroken` (or another VerificationError) otherwise."""
    header: dict[str, Any] | None = None
    entries: list[AuditEntry] = []
    anchors: list[dict[str, Any]] = []
    end: dict[str, Any] | None = None
    number = 0
    for number, raw in enumerate(lines, 1):
        if number > MAX_EXPORT_LINES:
            raise InvalidInput(f"an audit export has at most {MAX_EXPORT_LINES} lines")
        text = raw.strip()
        if not text:
            continue
        obj = _parse_line(text, number)
        if end is not None:
            raise AuditChainBroken(f"line {number} follows the end line", sequence=0, kind="malformed")
        kind = obj["type"]
        if header is None:
            if kind != "header" or obj.get("format") != EXPORT_FORMAT:
                raise InvalidInput(f"line {number}: an audit export starts with a {EXPORT_FORMAT} header")
            strict_json.fields(obj, "header", required={"type", "format", "org", "first_seq", "prev_hash",
                                                        "exported_ms"}, error=InvalidInput)
            header = obj
        elif kind == "entry":
            entries.append(AuditEntry.from_json(obj, f"line {number}"))
        elif kind == "anchor":
            strict_json.fields(obj, f"line {number}", required={"type", "seq", "hash", "record", "salt", "package"},
                               error=InvalidInput)
            anchors.append(obj)
        elif kind == "end":
            end = obj
        else:
            raise InvalidInput(f"line {number}: unknown line type {kind!r}")
    if header is None:
        raise InvalidInput("the audit export is empty")
    org = str(header["org"])
    first = strict_json.uint(header["first_seq"], "header.first_seq", error=InvalidInput)
    by_seq = {e.seq: e for e in entries}
    by_hash = {e.hash: e.seq for e in entries}
    count, last, _ = _walk(entries, first_seq=first, prev=str(header["prev_hash"]), later_seq=by_hash.get,
                           elsewhere=by_seq.__contains__)
    if end is None or end.get("entries") != count:
        raise AuditChainBroken("the export was cut short (its end line is missing or counts other entries)",
                               sequence=last + 1, kind="truncated")
    anchored: int | None = None
    block: int | None = None
    anchor_summary: str | None = None
    for obj in anchors:
        seq = strict_json.uint(obj["seq"], "anchor.seq", error=InvalidInput)
        record = obj["record"]
        if record != anchor_record(org, seq, str(obj["hash"])):
            raise AuditChainBroken(f"the anchor of sequence {seq} carries another record", sequence=seq,
                                   kind="anchor")
        if seq > last:
            raise AuditChainBroken(f"sequence {seq} was anchored but the export ends at {last}: entries from "
                                   f"{last + 1} were removed", sequence=last + 1, kind="truncated")
        entry = by_seq.get(seq)
        if entry is None or entry.hash != obj["hash"]:
            raise AuditChainBroken(f"entry {seq} is not the anchored head", sequence=seq, kind="anchor")
        salt = strict_json.hexbytes("0x" + str(obj["salt"]), "anchor.salt", error=InvalidInput, limit=255)
        try:
            package = EvidencePackage.loads(json.dumps(obj["package"]))
            result = verify_package(package, record=record, salt=salt, genesis=genesis)
        except VerificationError as exc:
            raise AuditChainBroken(f"the anchor of sequence {seq} does not verify: {exc}", sequence=seq,
                                   kind="anchor") from exc
        statement = package.record.statement
        if statement.kind != ANCHOR_KIND:
            raise AuditChainBroken(f"the anchor of sequence {seq} is a {statement.kind!r} record", sequence=seq,
                                   kind="anchor")
        if result.anchor is None or result.anchor.org.name != org:
            raise AuditChainBroken(f"the anchor of sequence {seq} was not anchored by {org!r}", sequence=seq,
                                   kind="anchor")
        if anchored is None or seq > anchored:
            anchored, block, anchor_summary = seq, result.anchor.receipt.block_number, result.summary()
    return ExportVerified(org=org, entries=count, first_seq=first if count else None, last_seq=last if count else None,
                          anchored_seq=anchored, anchors=len(anchors), anchor_block=block,
                          anchor_summary=anchor_summary)


# -- the auditor's command --------------------------------------------------------------------------------

def add_cli(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``audit verify EXPORT --genesis FILE`` to a command's sub-commands (``shancheng gateway audit ...``)."""
    audit = subparsers.add_parser("audit", help="the gateway's audit log")
    sub = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    v = sub.add_parser("verify", help="verify an audit export offline (exit 0 valid and anchored, 1 invalid)")
    v.add_argument("export", metavar="EXPORT", help="the JSON lines of GET /api/v1/audit/export")
    v.add_argument("--genesis", metavar="FILE", required=True, help="the chain's genesis.json: the trust root")
    v.add_argument("--unsafe-allow-unanchored", action="store_true",
                   help="accept an export none of whose entries is covered by an anchor (proves nothing on chain)")
    v.set_defaults(func=cmd_verify)


def main(argv: list[str] | None = None) -> int:
    """``python -m shancheng.apps.gateway.audit verify EXPORT --genesis FILE`` (the same as ``shancheng gateway audit
    verify``), for an auditor who installed the apps without the gateway's command."""
    parser = argparse.ArgumentParser(prog="python -m shancheng.apps.gateway.audit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_cli(sub)
    args = parser.parse_args(["audit", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except ShanchengError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def cmd_verify(args: argparse.Namespace) -> int:
    from shancheng.sdk.chainproof.genesis import MAX_GENESIS_SIZE
    from shancheng.sdk.files import read_small_file

    genesis = GenesisFile.load(read_small_file(args.genesis, limit=MAX_GENESIS_SIZE, what="genesis file"))
    path = Path(args.export)
    try:
        with path.open(encoding="utf-8") as fh:
            result = verify_export(_bounded_lines(fh), genesis=genesis)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    except (VerificationError, InvalidInput) as exc:
        print(f"INVALID: {exc}", file=sys.stderr)
        return 1
    if result.anchored_seq is None and not args.unsafe_allow_unanchored:
        print(f"NOT ANCHORED: {result.summary()}; no entry is covered by an anchor", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


def _bounded_lines(fh: Any) -> Iterator[str]:
    while True:
        line = fh.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE:
            raise InvalidInput(f"a line of the export is longer than {MAX_LINE} characters")
        yield line


# -- the middleware ----------------------------------------------------------------------------------------

#: /api/ paths not recorded: they read nothing of an organisation's evidence or domain data
UNAUDITED = frozenset({"/api/v1/csrf", "/api/v1/me", "/api/v1/network", "/api/v1/network/blocks"})


class AuditMiddleware:
    """Records every /api/ request (except :data:`UNAUDITED`) before its response starts: who (the principal the
    auth dependency left in ``request.state.principal``, or nobody), method and route template, target (path
    parameters), status and outcome. If the entry cannot be written the response becomes a 503 problem (fail
    closed: nothing is answered that the audit log does not hold)."""

    def __init__(self, app: ASGIApp, *, audit: Callable[[Scope], AuditLog | None]) -> None:
        self.app = app
        self.audit_of = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/api/") or path in UNAUDITED or scope.get("method") in ("OPTIONS", "HEAD"):
            await self.app(scope, receive, send)
            return
        done = False

        async def record(status: int) -> bool:
            nonlocal done
            done = True
            try:
                log = self.audit_of(scope)
                if log is None:
                    raise ShanchengError("the audit log is not running")
                principal, action, target, remote = _describe(scope)
                from anyio import to_thread

                await to_thread.run_sync(lambda: log.record(principal, action, target, outcome_of(status),
                                                            status=status, remote=remote))
                return True
            except Exception as exc:  # noqa: BLE001 - fail closed, and say why in the log
                _log.error("audit entry not written (%s: %s): the response is refused", type(exc).__name__, exc)
                return False

        async def audited_send(message: Message) -> None:
            if (message["type"] == "http.response.start" and not done
                    and not await record(int(message["status"]))):
                await _unavailable(send)
                raise _AuditFailed
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except _AuditFailed:
            return
        except Exception:
            if not done:
                await record(500)
            raise


class _AuditFailed(Exception):
    pass


async def _unavailable(send: Send) -> None:
    body = json.dumps({"type": "about:blank", "title": "Service Unavailable", "status": 503,
                       "detail": "the audit log is unavailable; the request was not answered"}).encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _describe(scope: Scope) -> tuple[Any, str, str | None, str | None]:
    state = scope.get("state") or {}
    principal = state.get("principal") if isinstance(state, dict) else getattr(state, "principal", None)
    route = scope.get("route")
    template = getattr(route, "path", None) or "(no route)"
    action = f"{scope.get('method', '?')} {template}"
    params = scope.get("path_params") or {}
    target = ",".join(f"{k}={v}" for k, v in sorted(params.items())) or None
    client = scope.get("client")
    remote = client[0] if client else None
    return principal, action, target, remote


def _services_audit(scope: Scope) -> AuditLog | None:
    from .deps import get_services

    try:
        services = get_services(Request(scope))
    except Exception:  # noqa: BLE001 - not started: the middleware fails closed
        return None
    audit = getattr(services, "audit", None)
    return audit if isinstance(audit, AuditLog) else None


def install(app: FastAPI) -> None:
    """Add the audit middleware to the gateway's app (it finds the AuditLog in the app's Services)."""
    app.add_middleware(AuditMiddleware, audit=_services_audit)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
