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
    audit_heads,
    check_general_origin,
    heads_origin,
    outcome_of,
)
from shancheng.apps.gateway.deps import Principal
from shancheng.apps.gateway.tables import api_tokens
from shancheng.sdk.errors import InvalidInput
from shancheng.testing.postgres import postgres_fixture

DOCTOR = Principal(subject="dr-li", org="hospital", org_id=1, role="doctor", via="token", token_id="t1",
                   credential="token:t1")
ADMIN_AS_DOCTOR = Principal(subject="dr-li", org="hospital", org_id=1, role="doctor", via="token",
                            token_id="0123456789abcdef", credential="token:0123456789abcdef", delegated_by="ops")


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


def test_rows_written_into_the_local_anchor_tables_anchor_nothing(audit: AuditLog) -> None:
    """What is anchored is read from the chain only: a database insider's rows in the side tables prove nothing."""
    fill(audit, 10)
    head = audit.head()
    assert head is not None
    with audit.engine.begin() as conn:
        conn.execute(audit_anchors.insert().values(seq=head[0], hash=head[1], origin="o", record_id=0, salt="00" * 16,
                                                   created_ms=0, package=None))
        conn.execute(audit_heads.insert().values(n=0, seq=head[0], hash=head[1], salt="00" * 32, created_ms=0,
                                                 package=None))
    assert audit.verify().anchored_seq is None


def test_the_credential_is_in_the_chained_bytes(audit: AuditLog) -> None:
    entry = audit.record(ADMIN_AS_DOCTOR, "POST /api/v1/prescriptions", None, "ok", status=201)
    assert (entry.v, entry.credential) == (2, "token:0123456789abcdef")
    assert entry.body()["credential"] == "token:0123456789abcdef"
    fill(audit, 2)
    with audit.engine.begin() as conn:  # make the admin's request look like the doctor's own sign-in
        conn.execute(update(audit_entries).where(audit_entries.c.seq == 1).values(credential="oidc:https://idp dr-li"))
    err = broken(audit)
    assert (err.kind, err.sequence) == ("edited", 1)


def test_entries_written_before_credentials_were_recorded_still_verify(audit: AuditLog) -> None:
    """Version 1 entries (no credential in their hashed body) chain on as before; newer entries follow them."""
    v1 = AuditEntry(seq=1, ts_ms=1, org="hospital", org_id=1, subject="dr-li", role="doctor", via="token",
                    remote=None, action="GET /api/v1/audit", target=None, outcome="ok", status=200, detail=None,
                    prev_hash=ZERO_HASH, hash="", v=1, credential=None)
    assert "credential" not in v1.body()
    v1 = AuditEntry(**{**v1.__dict__, "hash": v1.computed_hash()})
    with audit.engine.begin() as conn:
        conn.execute(audit_entries.insert().values(**v1.__dict__))
    second = audit.record(DOCTOR, "GET /api/v1/audit", None, "ok", status=200)
    assert (second.seq, second.prev_hash, second.v) == (2, v1.hash, 2)
    assert audit.verify().entries == 2
    with audit.engine.begin() as conn:  # a credential slipped into a version 1 entry is an edit
        conn.execute(update(audit_entries).where(audit_entries.c.seq == 1).values(credential="token:forged"))
    assert (broken(audit).kind, broken(audit).sequence) == ("edited", 1)


def test_outcomes() -> None:
    assert [outcome_of(s) for s in (200, 201, 302, 401, 403, 404, 409, 422, 500, 503)] == [
        "ok", "ok", "ok", "refused", "refused", "rejected", "rejected", "rejected", "error", "error"]


def test_the_upgrade_keeps_old_entries_verifiable_and_tells_api_minted_tokens_apart(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate(engine, "0005_rx_summary")
    old = AuditEntry(seq=1, ts_ms=1, org="hospital", org_id=1, subject="dr-li", role="doctor", via="token",
                     remote=None, action="GET /api/v1/audit", target=None, outcome="ok", status=200, detail=None,
                     prev_hash=ZERO_HASH, hash="", v=1)
    old = AuditEntry(**{**old.__dict__, "hash": old.computed_hash()})
    columns = {k: v for k, v in old.__dict__.items() if k not in ("v", "credential")}
    tokens = {"ops-made": "ops", "cli-made": "cli:root", "district-made": "shancheng district run", "unknown": None}
    with engine.begin() as conn:
        conn.execute(audit_entries.insert().values(**columns))
        for token_id, creator in tokens.items():
            conn.execute(api_tokens.insert().values(id=token_id, secret_hash=b"\0" * 32, subject="dr-li",
                                                    org="hospital", role="doctor", created_by=creator, created_at=0))
    migrate(engine)
    log = AuditLog(engine, org="hospital")
    log.record(DOCTOR, "GET /api/v1/audit", None, "ok", status=200)
    assert [(e.v, e.credential) for e in log.entries()] == [(1, None), (2, "token:t1")]
    assert log.verify().entries == 2
    with engine.connect() as conn:
        rows = conn.execute(select(api_tokens.c.id, api_tokens.c.issued_via)).all()
    assert dict(rows) == {"ops-made": "api", "cli-made": "host", "district-made": "host", "unknown": "host"}


def test_a_general_evidence_log_may_not_take_an_audit_heads_origin() -> None:
    assert check_general_origin("district.example/log/hospital") == "district.example/log/hospital"
    with pytest.raises(InvalidInput, match="reserved for audit heads"):
        check_general_origin(heads_origin("hospital"))
