"""The hash-chained audit table of one gateway: group-committed appends, reading, verification against the chain,
anchoring of heads into the organisation's audit-heads log, and the export for auditors."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from shancheng.sdk.client import Batcher, Client, NotAnchoredYet, SourceHead
from shancheng.sdk.errors import InvalidInput, ShanchengError
from shancheng.sdk.merkle import MerkleTree

from .entries import (
    ENTRY_VERSION,
    MAX_CREDENTIAL,
    MAX_DETAIL,
    MAX_TARGET,
    ZERO_HASH,
    Actor,
    AuditChainBroken,
    AuditEntry,
    audit_entries,
    audit_heads,
    walk,
)
from .heads import HEAD_KIND, head_leaf_hash, head_record, heads_origin

__all__ = ["EXPORT_FORMAT", "AnchoringJob", "AuditHead", "AuditLog", "AuditVerified"]

_log = logging.getLogger("shancheng.apps.audit")

EXPORT_FORMAT = "shancheng/audit-export/v2"
_PAGE = 1000


@dataclass(frozen=True)
class AuditHead:
    """Head ``n`` of the audit-heads log: the entry ``seq`` with hash ``hash``, committed with ``salt``."""

    n: int
    seq: int
    hash: str
    salt: str
    created_ms: int
    package: str | None  # its evidence package, once its checkpoint is anchored and final

    def record(self, org: str) -> dict[str, Any]:
        return head_record(org, self.n, self.seq, self.hash)


@dataclass(frozen=True)
class AuditVerified:
    """What :meth:`AuditLog.verify` established."""

    entries: int
    head_seq: int
    head_hash: str
    anchored_seq: int | None  # the newest head the chain holds, found intact
    anchored_heads: int = 0  # heads the chain's checkpoint of the audit-heads log covers


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
    """The hash-chained audit table of one gateway.

    Appends are group-committed: a caller that finds no append under way writes every entry waiting at that moment
    (its own and those of requests that arrived meanwhile) in one transaction that reads the head (``FOR UPDATE``
    on PostgreSQL), chains the entries and inserts them; each caller returns once its entry is committed. Another
    process writing the same table makes the insert fail on the sequence primary key: the batch is chained again
    on the new head and retried.

    ``heads`` is the batcher of the organisation's audit-heads log (origin :func:`heads_origin`), used by nothing
    else; without it the log is not anchored (and :meth:`verify` checks the links only)."""

    #: retries of a batch whose head another writer took (or while SQLite's write lock is held elsewhere)
    ATTEMPTS = 40
    #: entries written in one transaction at most
    MAX_BATCH = 256

    def __init__(self, engine: Engine, *, org: str, heads: Batcher | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if heads is not None and heads.origin != heads_origin(org):
            raise InvalidInput(f"the audit heads of {org!r} go to the log {heads_origin(org)!r}, not {heads.origin!r}")
        self.engine = engine
        self.org = org
        self.heads = heads
        self.clock = clock
        self._cond = threading.Condition()
        self._waiting: list[_Pending] = []
        self._writing = False
        self._anchor_lock = threading.Lock()

    @classmethod
    def open(cls, engine: Engine, *, org: str, client: Client, store: str, max_age: float = 1.0) -> AuditLog:
        """The audit log of ``org`` with its own audit-heads batcher (``client.batcher`` on ``store``); close it with
        :meth:`close`."""
        return cls(engine, org=org, heads=client.batcher(store=store, origin=heads_origin(org), max_age=max_age))

    def close(self) -> None:
        """Close the audit-heads batcher (the table needs no closing)."""
        if self.heads is not None:
            self.heads.close()

    # -- writing -----------------------------------------------------------------------------------
    def record(self, actor: Actor | None, action: str, target: str | None, outcome: str, *, status: int,
               detail: str | None = None, remote: str | None = None) -> AuditEntry:
        """Append one entry (who = ``actor`` and the credential it used, None when unauthenticated) and return it
        once committed."""
        if not isinstance(action, str) or not action:
            raise InvalidInput("an audit action is a non-empty string")
        pending = _Pending({
            "org": actor.org if actor is not None else None,
            "org_id": actor.org_id if actor is not None else None,
            "subject": _clip(actor.subject, 256) if actor is not None else None,
            "role": actor.role if actor is not None else None,
            "via": actor.via if actor is not None else None,
            "credential": _clip(actor.credential, MAX_CREDENTIAL) if actor is not None else None,
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
                            entry = AuditEntry(seq=seq, ts_ms=ts_ms, prev_hash=prev, hash="", v=ENTRY_VERSION,
                                               **pending.fields)
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

    def anchored_heads(self) -> list[AuditHead]:
        """The heads added to the audit-heads log, in order (the gateway's copy: :meth:`verify` checks it against
        the chain)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(audit_heads).order_by(audit_heads.c.n)).mappings().all()
        return [_head(r) for r in rows]

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
        """Walk the whole chain, then check it against what the chain holds: the checkpoint of the audit-heads log
        (how many heads, and their Merkle root) must be reproduced from this table's entries; raises
        :class:`AuditChainBroken` naming the first broken sequence (edited, deleted, reordered entry; tail truncated
        below an anchored head; an anchored head that is not this chain's)."""
        # the chain first: entries only grow, so every head it holds now lies within the entries walked next
        on_chain = self.heads.client.source_head(self.heads.origin) if self.heads is not None else None
        count, last_seq, last_hash = walk(self._iter(), first_seq=1, prev=ZERO_HASH, later_seq=self._seq_of_hash)
        anchored, covered = self._check_against_chain(on_chain, last_seq) if on_chain is not None else (None, 0)
        return AuditVerified(entries=count, head_seq=last_seq, head_hash=last_hash, anchored_seq=anchored,
                             anchored_heads=covered)

    def _check_against_chain(self, on_chain: SourceHead, last_seq: int) -> tuple[int | None, int]:
        assert self.heads is not None
        client = self.heads.client
        if on_chain.sequence == 0:
            return None, 0
        size = on_chain.tree_size
        heads = [h for h in self.anchored_heads() if h.n < size]
        if [h.n for h in heads] != list(range(size)):
            missing = next(n for n in range(size) if n >= len(heads) or heads[n].n != n)
            raise AuditChainBroken(f"the chain holds {size} audit heads but the gateway's database lost head "
                                   f"{missing}", sequence=heads[missing - 1].seq + 1 if missing else 1, kind="anchor")
        org_key = client.identity.sm2_public_key
        leaves: list[bytes] = []
        previous = 0
        for head in heads:
            if head.seq <= previous:
                raise AuditChainBroken(f"head {head.n} anchors entry {head.seq}, not after entry {previous}",
                                       sequence=head.seq, kind="anchor")
            if head.seq > last_seq:
                raise AuditChainBroken(
                    f"the audit log ends at sequence {last_seq} but sequence {head.seq} was anchored: entries from "
                    f"{last_seq + 1} were removed", sequence=last_seq + 1, kind="truncated")
            entry_hash = self._hash_at(head.seq) or ZERO_HASH
            leaves.append(head_leaf_hash(self.org, head.n, head.seq, entry_hash, salt=bytes.fromhex(head.salt),
                                         org_key=org_key))
            previous = head.seq
        if MerkleTree.from_leaf_hashes(leaves).root() != on_chain.root:
            stored = self.heads.store.leaf_hashes(self.heads.origin, 0, size)
            bad = next((h for h, leaf, kept in zip(heads, leaves, stored, strict=False) if leaf != kept), heads[-1])
            raise AuditChainBroken(f"entry {bad.seq} is not the head anchored on chain as head {bad.n}: the entries "
                                   "it covers were changed", sequence=bad.seq, kind="anchor")
        return heads[-1].seq, size

    # -- anchoring ---------------------------------------------------------------------------------
    def anchor(self, *, wait: bool = False, timeout: float = 120.0) -> AuditHead | None:
        """Add the current head ``(seq, hash)`` as the next record of the audit-heads log (a no-op when that head is
        already there; None for an empty log). ``wait``: return once its checkpoint is anchored and final, with its
        evidence package."""
        heads = self.heads
        if heads is None:
            raise ShanchengError("this audit log has no audit-heads log to anchor its head in")
        with self._anchor_lock:
            head = self.head()
            if head is None:
                return None
            seq, head_hash = head
            known = self.anchored_heads()
            if len(known) < heads.size:
                raise ShanchengError(f"the audit-heads log holds {heads.size} heads but the gateway's database only "
                                     f"{len(known)}: run GET /api/v1/audit/verify")
            last = known[-1] if known else None
            if last is not None and last.n == heads.size - 1 and last.seq == seq:
                current = last
            elif last is not None and last.n == heads.size:  # written here, not yet added (a crash in between)
                current = last
                self._add_head(current)
            else:
                if last is not None and last.seq >= seq:
                    raise ShanchengError(f"the audit log's head {seq} is not after the anchored head {last.seq}")
                current = AuditHead(n=heads.size, seq=seq, hash=head_hash, salt=os.urandom(32).hex(),
                                    created_ms=int(self.clock() * 1000), package=None)
                with self.engine.begin() as conn:  # the opening first: a crash before the add repeats the same add
                    conn.execute(insert(audit_heads).values(**current.__dict__))
                self._add_head(current)
        if wait:
            heads.flush(timeout=timeout)
            return self._with_package(current)
        return current

    def _add_head(self, head: AuditHead) -> None:
        assert self.heads is not None
        record_id = self.heads.add(head.record(self.org), kind=HEAD_KIND, salt=bytes.fromhex(head.salt))
        if record_id != head.n:
            raise ShanchengError(f"the audit-heads log gave head {head.n} the record id {record_id}")

    def _with_package(self, head: AuditHead) -> AuditHead:
        """``head`` with its evidence package (cached once built); unchanged while it is not anchored yet."""
        if head.package is not None or self.heads is None:
            return head
        try:
            package = self.heads.evidence_package(head.n).dumps()
        except NotAnchoredYet:
            return head
        with self.engine.begin() as conn:
            conn.execute(update(audit_heads).where(audit_heads.c.n == head.n).values(package=package))
        return AuditHead(**{**head.__dict__, "package": package})

    def start_anchoring(self, interval: float) -> AnchoringJob:
        """Anchor the head every ``interval`` seconds in a daemon thread (skipped when it did not move)."""
        return AnchoringJob(self, interval)

    # -- exporting ---------------------------------------------------------------------------------
    def export(self, since: int | None = None, until: int | None = None) -> Iterator[str]:
        """JSON lines for an auditor: a header (org, first sequence, the hash before it), the entries, the heads that
        cover the range (from the last head before it; consecutive, each with its record, salt and evidence
        package; a head not final yet ends them), and an end line."""
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
        heads = self.anchored_heads()
        start = max((i for i, h in enumerate(heads) if h.seq < first), default=0)
        for head in heads[start:]:
            if last is None or head.seq > last:
                break
            head = self._with_package(head)
            if head.package is None:
                break
            yield _line({"type": "anchor", "n": head.n, "seq": head.seq, "hash": head.hash,
                         "record": head.record(self.org), "salt": head.salt, "package": json.loads(head.package)})
        yield _line({"type": "end", "entries": count, "last_seq": last})


def _head(row: Mapping[Any, Any]) -> AuditHead:
    return AuditHead(n=int(row["n"]), seq=int(row["seq"]), hash=str(row["hash"]), salt=str(row["salt"]),
                     created_ms=int(row["created_ms"]), package=row["package"])


def _line(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


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
                for head in self.audit.anchored_heads()[-3:]:  # cache the packages of recent heads as they become final
                    self.audit._with_package(head)
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - a node outage must not end the job; the next tick retries
                self.last_error = f"{type(exc).__name__}: {exc}"
                _log.warning("audit anchoring failed (retrying in %.0f s): %s", self.interval, self.last_error)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
