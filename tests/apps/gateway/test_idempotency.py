"""The idempotency store keeps no secret at rest: rows are found by an HMAC of (principal, key) and the answers are
sealed, so the database alone shows neither a pickup code nor a client's key; replays still answer the same status,
body and content type; another principal's same key is its own request; an altered row is a clear 500 problem and
the request is not run again; a database of the format before (answers in clear) opens and serves."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert, text
from sqlalchemy.engine import Engine

from shancheng.apps.db import make_engine, migrate
from shancheng.apps.gateway.idempotency import IdempotencyStore, Stored, request_hash
from shancheng.apps.gateway.problems import Problem
from shancheng.testing.gateway import GatewayWorld

SECRET = b"0123456789abcdef" * 4
CODE = "4821-7730-1954-0062"
KEY = "client-key-7f3a9c"
PRINCIPAL = "token:abcdef0123456789"
_rx = itertools.count(1)


def raw_bytes(database: Path) -> bytes:
    """Every byte SQLite keeps for the database (the file and its write-ahead log)."""
    return b"".join(p.read_bytes() for p in (database, Path(f"{database}-wal")) if p.exists())


@pytest.fixture()
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    migrate(engine)
    return engine


def test_a_stored_answer_is_sealed_and_replayed_to_its_principal_only(engine: Engine, tmp_path: Path) -> None:
    store = IdempotencyStore(engine, secret=SECRET)
    digest = request_hash("POST", "/api/v1/prescriptions/0x01/circulate", b"{}")
    body = json.dumps({"state": "CIRCULATED", "pickup_code": CODE}).encode()
    assert store.begin(PRINCIPAL, KEY, digest) is None
    with pytest.raises(Problem) as running:
        store.begin(PRINCIPAL, KEY, digest)
    assert running.value.status == 409 and running.value.type_suffix == "idempotency-in-progress"
    store.finish(PRINCIPAL, KEY, status_code=200, content_type="application/json", body=body, submitted=True)

    assert store.begin(PRINCIPAL, KEY, digest) == Stored(200, "application/json", body)
    engine.dispose()  # the WAL is checkpointed into the file: both are read anyway
    on_disk = raw_bytes(tmp_path / "g.db")
    for secret in (CODE.encode(), CODE.replace("-", "").encode(), KEY.encode(), PRINCIPAL.encode(), b"CIRCULATED"):
        assert secret not in on_disk
    # another principal with the same key claims a row of its own; the same key with another body is refused
    assert store.begin("token:someone-else", KEY, digest) is None
    with pytest.raises(Problem) as reused:
        store.begin(PRINCIPAL, KEY, request_hash("POST", "/api/v1/prescriptions/0x02/circulate", b"{}"))
    assert reused.value.status == 422
    # rows are found through the gateway's secret: under another secret the key is new (nothing is learned)
    assert IdempotencyStore(engine, secret=b"another secret of 32 characters!").begin(PRINCIPAL, KEY, digest) is None


def test_an_altered_row_is_a_clear_problem_and_the_request_is_not_run_again(engine: Engine) -> None:
    store = IdempotencyStore(engine, secret=SECRET)
    digest = request_hash("POST", "/api/v1/evidence/records", b'{"record": 1}')
    assert store.begin(PRINCIPAL, KEY, digest) is None
    store.finish(PRINCIPAL, KEY, status_code=201, content_type="application/json", body=b'{"id": "r1"}',
                 submitted=False)
    with engine.begin() as conn:
        sealed = bytes(conn.execute(text("SELECT sealed FROM idempotency")).scalar_one())
        altered = sealed[:-1] + bytes([sealed[-1] ^ 1])
        conn.execute(text("UPDATE idempotency SET sealed = :s"), {"s": altered})
    with pytest.raises(Problem) as refused:
        store.begin(PRINCIPAL, KEY, digest)
    problem = refused.value.to_json()
    assert problem["status"] == 500 and problem["type"].endswith("/idempotency-unreadable")
    assert "not run again" in problem["detail"] and "Traceback" not in problem["detail"]


def test_a_server_error_before_any_send_is_not_stored_so_the_retry_runs(engine: Engine) -> None:
    store = IdempotencyStore(engine, secret=SECRET)
    digest = request_hash("POST", "/api/v1/evidence/records", b"{}")
    assert store.begin(PRINCIPAL, KEY, digest) is None
    store.finish(PRINCIPAL, KEY, status_code=503, content_type="application/problem+json", body=b"{}", submitted=False)
    assert store.begin(PRINCIPAL, KEY, digest) is None


def test_a_server_error_after_a_send_is_the_keys_answer(engine: Engine) -> None:
    store = IdempotencyStore(engine, secret=SECRET)
    digest = request_hash("POST", "/api/v1/prescriptions", b"{}")
    assert store.begin(PRINCIPAL, KEY, digest) is None
    problem = b'{"type": "urn:shancheng:problem/not-final"}'
    store.finish(PRINCIPAL, KEY, status_code=503, content_type="application/problem+json", body=problem,
                 submitted=True)
    assert store.begin(PRINCIPAL, KEY, digest) == Stored(503, "application/problem+json", problem)


def test_an_old_format_database_is_migrated_and_serves(world: GatewayWorld, tmp_path: Path) -> None:
    database = tmp_path / "old.db"
    old = make_engine(f"sqlite:///{database}")
    # a SQLite built without SECURE_DELETE by default (this one has it): the migration must zero the old rows itself
    event.listen(old, "connect", lambda dbapi, _record: dbapi.execute("PRAGMA secure_delete = OFF"))
    migrate(old, "0007_hj212_backfill")
    with old.begin() as conn:  # answers stored in clear by the gateway before 0008 (more pages than 0008 reuses)
        conn.execute(insert(_old_table()), [
            {"principal": PRINCIPAL, "key": f"{KEY}-{n}", "request_hash": b"\0" * 32, "status_code": 200,
             "content_type": "application/json", "created_at": time.time(),
             "body": json.dumps({"pickup_code": CODE, "rx": f"RX-{n:04d}", "drugs": "阿莫西林胶囊 " * 20}).encode()}
            for n in range(200)])
    migrate(old)
    with old.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM idempotency")).scalar_one() == 0  # the old cache dropped
        assert conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).one()[0] == 0  # into the file, not blocked
    old.dispose()
    assert CODE.encode() not in raw_bytes(database)  # the dropped rows were zeroed, not left in free pages
    with GatewayWorld.start(tmp_path / "gw", node=world.node, database_url=f"sqlite:///{database}") as again:
        http = again.client(token=again.token("doctor", subject="dr.migrated"))
        body = {"record": {"note": "after the upgrade"}, "kind": "note"}
        first = http.post("/api/v1/evidence/records", json=body, headers={"Idempotency-Key": KEY})
        replay = http.post("/api/v1/evidence/records", json=body, headers={"Idempotency-Key": KEY})
        assert first.status_code == replay.status_code == 201, first.text
        assert replay.content == first.content and replay.headers["idempotent-replayed"] == "true"


def _old_table() -> Any:
    from sqlalchemy import Column, Float, Integer, LargeBinary, MetaData, String, Table

    return Table("idempotency", MetaData(), Column("principal", String(300), primary_key=True),
                 Column("key", String(200), primary_key=True), Column("request_hash", LargeBinary(32)),
                 Column("status_code", Integer), Column("content_type", String(200)), Column("body", LargeBinary),
                 Column("created_at", Float))


# -- through the gateway ----------------------------------------------------------------------------------------

REVIEW = {"phar_prac_cert_no": "PHA2024001", "rx_chk_stas_codg": "1", "rx_chk_opnn": "合理"}


def _prescription() -> dict[str, Any]:
    return {"prescription": {
        "hosp_rxno": f"ID{time.time_ns() % 10**9}{next(_rx):04d}", "rx_type_code": "1",
        "prsc_time": "2024-06-15T09:00:00+08:00", "valid_days": 1,
        "drugs": [{"med_list_codg": "XJ01CAA040A001010100028", "drug_genname": "阿莫西林胶囊", "drug_dosform": "胶囊剂",
                   "drug_spec": "0.25g*24粒", "drug_cnt": "2", "drug_cnt_unit": "盒", "medc_days": 5}]}}


def test_a_pickup_code_answered_under_a_key_is_not_kept_readable(world: GatewayWorld) -> None:
    world.staff("dr-idem", "doctor")
    world.staff("ph-idem", "pharmacist")
    doctor = world.client(token=world.token("doctor", subject="dr-idem"))
    pharmacist = world.client(token=world.token("pharmacist", subject="ph-idem"))
    key = "rx-circulate-5d41402abc4b2a76"
    issued = doctor.post("/api/v1/prescriptions", json=_prescription(), headers={"Idempotency-Key": key + "-issue"})
    assert issued.status_code == 201, issued.text
    steps = f"/api/v1/prescriptions/{issued.json()['rx_id']}"
    assert pharmacist.post(f"{steps}/approve", json={"review": REVIEW}).status_code == 200
    circulated = doctor.post(f"{steps}/circulate", json={}, headers={"Idempotency-Key": key})
    assert circulated.status_code == 200, circulated.text
    code = circulated.json()["pickup_code"]

    replay = doctor.post(f"{steps}/circulate", json={}, headers={"Idempotency-Key": key})
    assert replay.status_code == 200 and replay.content == circulated.content
    assert replay.headers["content-type"] == circulated.headers["content-type"]
    assert replay.headers["idempotent-replayed"] == "true"

    database = Path(str(world.services.engine.url.database))
    on_disk = raw_bytes(database)
    assert code.encode() not in on_disk and code.replace("-", "").encode() not in on_disk
    assert key.encode() not in on_disk
    with world.services.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM idempotency")).all()
    assert rows and not any(code.encode() in repr(row).encode() or key in repr(row) for row in rows)

    # another doctor's same key is a request of their own: it runs (and is refused), it does not get the code
    other = world.client(token=world.token("doctor", subject="dr-other-idem"))
    theirs = other.post(f"{steps}/circulate", json={}, headers={"Idempotency-Key": key})
    assert "idempotent-replayed" not in theirs.headers and code not in theirs.text

    with world.services.engine.begin() as conn:  # alter every stored answer
        conn.execute(text("UPDATE idempotency SET sealed = substr(sealed, 1, length(sealed) - 1) "
                          "WHERE sealed IS NOT NULL"))
    altered = doctor.post(f"{steps}/circulate", json={}, headers={"Idempotency-Key": key})
    assert altered.status_code == 500 and altered.headers["content-type"] == "application/problem+json"
    assert altered.json()["type"].endswith("/idempotency-unreadable") and code not in altered.text
