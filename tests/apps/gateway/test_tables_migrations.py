"""The gateway's store: migrations from empty on SQLite and on a real PostgreSQL server, no drift between the
migrations and the tables the code declares, and the gateway working on PostgreSQL end to end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

import shancheng.apps.gateway.audit
import shancheng.apps.gateway.indexer
import shancheng.apps.gateway.tables
import shancheng.apps.hj212.store  # noqa: F401 - every table module: the metadata holds all the apps' tables
from shancheng.apps.db import include_name, make_engine, metadata, migrate
from shancheng.sdk.errors import InvalidInput
from shancheng.testing.gateway import GatewayWorld
from shancheng.testing.postgres import PostgresServer
from shancheng.testing.solo import SoloNode

pytestmark = [pytest.mark.network, pytest.mark.slow]


def drift(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include_name, "compare_type": True})
        return list(compare_metadata(context, metadata))


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer.start() as server:
        yield server


def test_sqlite_migrates_from_empty_without_drift(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    migrate(engine)
    assert {"api_tokens", "sm2_keys", "sm2_nonces", "idempotency"} <= set(inspect(engine).get_table_names())
    assert drift(engine) == []
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        heads = {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}
        assert heads == {"0008_idempotency_sealed"}  # one head: 0006_audit_credentials follows 0006_browser_sessions
    migrate(engine)  # again: nothing to do
    assert drift(engine) == []


def test_postgres_migrates_from_empty_without_drift(postgres: PostgresServer) -> None:
    engine = make_engine(postgres.create_database())
    migrate(engine)
    assert drift(engine) == []
    assert {"api_tokens", "idempotency"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_gateway_on_postgres(tmp_path: Path, postgres: PostgresServer) -> None:
    url = postgres.create_database()
    with GatewayWorld.start(tmp_path, database_url=url) as world:
        assert world.services.engine.dialect.name == "postgresql"
        http = world.client(token=world.token("doctor", subject="dr.pg"))
        assert http.get("/api/v1/me").json()["subject"] == "dr.pg"
        body = {"record": {"rx": "PG-1"}, "kind": "prescription"}
        first = http.post("/api/v1/evidence/records", json=body, headers={"Idempotency-Key": "pg-1"})
        again = http.post("/api/v1/evidence/records", json=body, headers={"Idempotency-Key": "pg-1"})
        assert first.status_code == 201 and again.json() == first.json()
        deadline = time.monotonic() + 60
        while http.get(f"/api/v1/evidence/records/{first.json()['id']}").json()["status"] != "anchored":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        pkg = http.get(f"/api/v1/evidence/records/{first.json()['id']}/package").json()
        assert http.post("/api/v1/evidence/verify", json={"package": pkg}).json()["verified"] is True
        key = world.sm2_client("doctor")
        headers = world.signed(key, "GET", "/api/v1/me")
        assert http.get("/api/v1/me", headers=headers).status_code == 200
        assert http.get("/api/v1/me", headers=headers).status_code == 401  # the nonce is in PostgreSQL
        assert isinstance(world.node, SoloNode)


@pytest.mark.parametrize("url", ["mysql://u@127.0.0.1/db", "oracle://u@127.0.0.1/db", "not a url"])
def test_a_store_other_than_sqlite_or_postgres_is_refused_in_one_line(url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        make_engine(url)
    assert "\n" not in str(refused.value)
