"""The audit log's hash chain on a real SQLite store (migrated with Alembic): appends from many threads stay one
chain; every kind of tampering behind the gateway's back is named with its first broken sequence."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, event, select, update

from shancheng.apps.db import make_engine, migrate
from shancheng.apps.gateway.audit import (
    ZERO_HASH,
    AuditChainBroken,
    AuditEntry,
    AuditLog,
    audit_anchors,
    audit_entries,
    outcome_of,
)
from shancheng.apps.gateway.deps import Principal
from shancheng.testing.postgres import postgres_fixture

DOCTOR = Principal(subject="dr-li", org="hospital", org_id=1, role="doctor", via="token", token_id="t1")


postgres = postgres_fixture(scope="module")


@pytest.fixture(params=["sqlite", "postgresql"])
def audit(request: pytest.FixtureRequest, tmp_path: Path) -> AuditLog:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gateway.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database()
    engine = make_engine(url)
    migrate(engine)
    clock = iter(range(1_700_000_000, 1_800_000_000))
    return AuditLog(engine, org="hospital", clock=lambda: float(next(clock)))


def fill(audit: AuditLog, n: int) -> None:
    for i in range(n):
        audit.record(DOCTOR if i % 3 else None, "GET /api/v1/prescriptions/{rx_id}", f"rx_id=0x{i:02x}",
                     outcome_of(200 if i % 3 else 401), status=200 if i % 3 else 401)


def broken(audit: AuditLog) -> AuditChainBroken:
    with pytest.raises(AuditChainBroken) as info:
        audit.verify()
    return info.value


def test_entries_form_one_chain_with_who_what_when_and_result(audit: AuditLog) -> None:
    first = audit.record(DOCTOR, "POST /api/v1/prescriptions", "rx_id=0x01", "ok", status=201, remote="127.0.0.1")
    second = audit.record(None, "GET /api/v1/audit", None, "refused", status=401)
    assert (first.seq, first.prev_hash) == (1, ZERO_HASH)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert (first.subject, first.role, first.org, first.via, first.status) == ("dr-li", "doctor", "hospital", "token",
                                                                               201)
    assert second.subject is None and second.outcome == "refused"
    assert first.ts_ms == 1_700_000_000_000
    result = audit.verify()
    assert (result.entries, result.head_seq, result.head_hash, result.anchored_seq) == (2, 2, second.hash, None)
    assert [e.seq for e in audit.entries(after=1)] == [2]


def test_concurrent_appends_stay_one_gapless_chain(audit: AuditLog) -> None:
    # two logs on one database (as two gateway processes would be): their locks do not serialise each other
    other = AuditLog(audit.engine, org="hospital", clock=audit.clock)
    threads = [threading.Thread(target=fill, args=(log, 25)) for log in (audit, other) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert audit.verify().entries == 200
    assert [e.seq for e in audit.entries(limit=500)] == list(range(1, 201))


def test_waiting_appends_are_committed_together_each_caller_getting_its_own_entry(audit: AuditLog) -> None:
    callers = 12
    first_write = threading.Event()
    ticks = iter(range(1_700_000_000, 1_800_000_000))

    def clock() -> float:  # read once per written batch: the first writer waits until every other caller queued
        if not first_write.is_set():
            first_write.set()
            deadline = time.monotonic() + 30
            while len(log._waiting) < callers - 1:
                assert time.monotonic() < deadline, "the other callers never queued"
                time.sleep(0.001)
        return float(next(ticks))

    log = AuditLog(audit.engine, org="hospital", clock=clock)
    commits = []
    event.listen(log.engine, "commit", lambda _conn: commits.append(1))
    got: dict[int, AuditEntry] = {}

    def one(i: int) -> None:
        got[i] = log.record(DOCTOR, f"POST /api/v1/evidence/records#{i}", f"caller={i}", "ok", status=201)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(callers))
    assert all(entry.action.endswith(f"#{i}") and entry.target == f"caller={i}" for i, entry in got.items())
    assert sorted(entry.seq for entry in got.values()) == list(range(1, callers + 1))
    assert len(commits) == 2  # the first caller's entry alone, then the 11 that queued behind it in one transaction
    assert log.verify().entries == callers


def test_a_failed_batch_fails_every_caller_in_it_and_the_next_append_works(audit: AuditLog) -> None:
    fail = threading.Event()
    fail.set()

    def clock() -> float:
        if fail.is_set():
            raise OSError("clock unavailable")
        return 1_700_000_000.0

    log = AuditLog(audit.engine, org="hospital", clock=clock)
    with pytest.raises(OSError, match="clock unavailable"):
        log.record(DOCTOR, "GET /api/v1/audit", None, "ok", status=200)
    assert log.head() is None and not log._writing and not log._waiting
    fail.clear()
    assert log.record(DOCTOR, "GET /api/v1/audit", None, "ok", status=200).seq == 1


def test_an_edited_entry_is_named(audit: AuditLog) -> None:
    fill(audit, 10)
    with audit.engine.begin() as conn:
        conn.execute(update(audit_entries).where(audit_entries.c.seq == 6).values(status=200, subject="someone-else"))
    err = broken(audit)
    assert (err.kind, err.sequence) == ("edited", 6)
    assert "entry 6 was changed" in str(err)


def test_an_entry_edited_with_a_recomputed_hash_breaks_the_next_link(audit: AuditLog) -> None:
    fill(audit, 10)
    row = audit.entries(after=3, limit=1)[0]
    forged = AuditEntry(**{**row.__dict__, "subject": "forger"})
    forged = AuditEntry(**{**forged.__dict__, "hash": forged.computed_hash()})
    with audit.engine.begin() as conn:
        conn.execute(update(audit_entries).where(audit_entries.c.seq == 4).values(subject="forger", hash=forged.hash))
    err = broken(audit)
    assert (err.kind, err.sequence) == ("deleted", 5)  # entry 5 no longer follows what is stored as entry 4


def test_a_deleted_entry_is_named(audit: AuditLog) -> None:
    fill(audit, 10)
    with audit.engine.begin() as conn:
        conn.execute(delete(audit_entries).where(audit_entries.c.seq == 7))
    err = broken(audit)
    assert (err.kind, err.sequence) == ("deleted", 7)


def test_reordered_entries_are_named(audit: AuditLog) -> None:
    fill(audit, 10)
    a, b = audit.entries(after=3, limit=2)
    columns = [c for c in AuditEntry.__dataclass_fields__ if c != "seq"]
    with audit.engine.begin() as conn:  # swap the contents of 4 and 5 (hashes included), keeping the sequences
        conn.execute(update(audit_entries).where(audit_entries.c.seq == 4)
                     .values(**{c: getattr(b, c) for c in columns if c != "hash"}, hash="ff" * 32))
        conn.execute(update(audit_entries).where(audit_entries.c.seq == 5).values(**{c: getattr(a, c) for c in columns}))
        conn.execute(update(audit_entries).where(audit_entries.c.seq == 4).values(hash=b.hash))
    err = broken(audit)
    assert (err.kind, err.sequence) == ("reordered", 4)


def test_a_truncated_tail_is_named_against_the_anchored_head(audit: AuditLog) -> None:
    fill(audit, 10)
    head = audit.head()
    assert head is not None
    with audit.engine.begin() as conn:  # as AuditLog.anchor() stores it (the chain part is tested with the node)
        conn.execute(audit_anchors.insert().values(seq=head[0], hash=head[1], origin="o", record_id=0, salt="00" * 16,
                                                   created_ms=0, package=None))
    assert audit.verify().anchored_seq == 10
    fill(audit, 2)
    with audit.engine.begin() as conn:
        conn.execute(delete(audit_entries).where(audit_entries.c.seq >= 9))
    err = broken(audit)
    assert (err.kind, err.sequence) == ("truncated", 9)


def test_a_replaced_anchored_head_is_named(audit: AuditLog) -> None:
    fill(audit, 3)
    with audit.engine.begin() as conn:
        conn.execute(audit_anchors.insert().values(seq=3, hash="ab" * 32, origin="o", record_id=0, salt="00" * 16,
                                                   created_ms=0, package=None))
        assert conn.execute(select(audit_anchors.c.seq)).scalar() == 3
    err = broken(audit)
    assert (err.kind, err.sequence) == ("anchor", 3)


def test_outcomes() -> None:
    assert [outcome_of(s) for s in (200, 201, 302, 401, 403, 404, 409, 422, 500, 503)] == [
        "ok", "ok", "ok", "refused", "refused", "rejected", "rejected", "rejected", "error", "error"]
