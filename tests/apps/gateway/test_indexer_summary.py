"""The prescription summaries behind the list endpoint, on SQLite and a real PostgreSQL server: a prescription's
latest state only moves forward (an event delivered again after a crash, or an older one, changes nothing), the
acting organisations are kept once each, pages filter by organisation and state in rx id order, and the migration
fills the summaries from the events a gateway had indexed before it existed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from shancheng.apps.db import make_engine, migrate
from shancheng.apps.gateway.indexer import rx_events, rx_latest, rx_orgs, rx_summaries, summarise_transition
from shancheng.sdk.errors import InvalidInput
from shancheng.testing.postgres import PostgresServer

pytestmark = [pytest.mark.slow]

RX = ["0x" + f"{i:02x}" * 32 for i in (0xA1, 0xB2, 0xC3)]


def transition(rx: str, block: int, index: int, to: int, org: int | None) -> dict[str, Any]:
    return {"block_number": block, "log_index": index, "tx_hash": "0x" + "00" * 32, "block_time": None,
            "event": "RxTransition", "key": rx, "key2": None, "org": org,
            "detail": json.dumps({"rxId": rx, "to": to, "actingOrg": org})}


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer.start() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        made = make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    else:
        made = make_engine(request.getfixturevalue("postgres").create_database())
    yield made
    made.dispose()


def apply(engine: Engine, *rows: dict[str, Any]) -> None:
    for row in rows:
        with engine.begin() as conn:
            summarise_transition(engine, conn, row)


def summaries(engine: Engine) -> tuple[dict[str, tuple[int, int, int]], set[tuple[str, int]]]:
    with engine.connect() as conn:
        latest = {k: (s, b, i) for k, s, b, i in conn.execute(
            select(rx_latest.c.key, rx_latest.c.state, rx_latest.c.block_number, rx_latest.c.log_index))}
        orgs = {(k, int(o)) for k, o in conn.execute(select(rx_orgs.c.key, rx_orgs.c.org))}
    return latest, orgs


def test_the_latest_state_moves_forward_only(engine: Engine) -> None:
    migrate(engine)
    apply(engine, transition(RX[0], 5, 1, 2, 1))
    apply(engine, transition(RX[0], 3, 0, 1, 1), transition(RX[0], 5, 1, 2, 1))  # older, then the same again
    assert summaries(engine)[0] == {RX[0]: (2, 5, 1)}
    apply(engine, transition(RX[0], 5, 2, 4, 2))  # later in the same block
    apply(engine, transition(RX[0], 4, 9, 3, 2))  # an earlier block with a larger log index
    latest, orgs = summaries(engine)
    assert latest == {RX[0]: (4, 5, 2)}
    assert orgs == {(RX[0], 1), (RX[0], 2)}


def test_pages_filter_by_organisation_and_state_in_rx_order(engine: Engine) -> None:
    migrate(engine)
    apply(engine, transition(RX[2], 1, 0, 1, 1), transition(RX[0], 1, 1, 1, 1), transition(RX[1], 2, 0, 1, 1),
          transition(RX[0], 3, 0, 4, 2), transition(RX[2], 4, 0, 4, 3))
    assert rx_summaries(engine) == [(RX[0], 4, 3), (RX[1], 1, 2), (RX[2], 4, 4)]
    assert rx_summaries(engine, org=2) == [(RX[0], 4, 3)]
    assert rx_summaries(engine, org=1, state=4) == [(RX[0], 4, 3), (RX[2], 4, 4)]
    assert rx_summaries(engine, state=4, after=RX[0]) == [(RX[2], 4, 4)]
    assert rx_summaries(engine, limit=2) == [(RX[0], 4, 3), (RX[1], 1, 2)]
    assert rx_summaries(engine, org=9) == []
    with pytest.raises(InvalidInput, match="limit"):
        rx_summaries(engine, limit=0)


def test_the_migration_fills_the_summaries_from_indexed_events(engine: Engine) -> None:
    migrate(engine, "0004_index")
    rows = [transition(RX[1], 7, 0, 3, 2), transition(RX[0], 2, 0, 1, 1), transition(RX[1], 2, 1, 1, 1),
            transition(RX[0], 6, 3, 2, None), transition(RX[1], 7, 2, 5, 3)]
    terms = {**transition(RX[2], 1, 0, 0, None), "event": "RxTerms", "detail": json.dumps({"rxId": RX[2]})}
    with engine.begin() as conn:
        conn.execute(rx_events.insert(), [*rows, terms])
    migrate(engine)
    migrated = summaries(engine)
    assert migrated == ({RX[0]: (2, 6, 3), RX[1]: (5, 7, 2)}, {(RX[0], 1), (RX[1], 1), (RX[1], 2), (RX[1], 3)})

    # the handler's summaries of the same events are the same
    with engine.begin() as conn:
        conn.execute(rx_latest.delete())
        conn.execute(rx_orgs.delete())
    apply(engine, *rows)
    assert summaries(engine) == migrated
