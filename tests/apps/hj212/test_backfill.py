"""Backfill of missed hours on a real solo node: when an hour closes without the station's hourly record (CN 2061),
the anchoring job asks the connected station for the hour's history over its real TCP connection; the hour is
anchored complete once the record arrives, or anchored with its gaps named after the attempt (the station could not
answer, never answered within the deadline, or was not connected) — and a silent station never holds up another."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from _hj212_support import run
from sqlalchemy import select

from shancheng.apps.hj212.anchoring import HourAnchorer
from shancheng.apps.hj212.settings import Hj212Settings
from shancheng.apps.hj212.simulator import Station, StationConnection
from shancheng.apps.hj212.store import readings
from shancheng.sdk.envmon.hj212 import Packet, command_fields
from shancheng.testing.gateway import GatewayWorld

pytestmark = [pytest.mark.network, pytest.mark.slow]
BACKFILL_TIMEOUT = 30.0
TZ = ZoneInfo("Asia/Shanghai")  # the stations' and the listener's time zone (the defaults)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayWorld]:
    hj212 = Hj212Settings(port=0, anchor_check_interval=0, backfill_timeout=BACKFILL_TIMEOUT)
    with GatewayWorld.start(tmp_path_factory.mktemp("backfill"), org="monitoring", hj212=hj212) as w:
        yield w


def _station(world: GatewayWorld, mn: str) -> Station:
    admin = world.client(token=world.token("admin"))
    created = admin.post("/api/v1/stations", json={"mn": mn, "password": "246810", "st": "22",
                                                    "pollutants": ["a34004"]})
    assert created.status_code == 201, created.text
    return Station(mn=mn, password="246810", pollutants={"a34004": (30.0, 3.0)})


def _into_the_hour(seconds: float = 10, *, room: float = 150) -> int:
    """Wait until ``seconds`` into an hour that has at least ``room`` seconds left (every reading of a test in one
    hour, even when the test starts just before the hour turns); that hour's start."""
    start = int(time.time() // 3600 * 3600)
    if start + 3600 - time.time() < room:
        start += 3600
    time.sleep(max(0.0, start + seconds - time.time()))
    return start


@contextmanager
def _later(anchorer: HourAnchorer, seconds: float) -> Iterator[None]:
    """The anchorer's clock ``seconds`` ahead (the current hour over, a deadline passed)."""
    real = anchorer.clock
    anchorer.clock = lambda: real() + seconds
    try:
        yield
    finally:
        anchorer.clock = real


def _anchorer(world: GatewayWorld) -> HourAnchorer:
    anchorer = world.services.hj212.listener.anchorer
    assert anchorer is not None
    return anchorer


async def _realtime(conn: StationConnection, count: int) -> None:
    for _ in range(count):
        await conn.send(conn.station.realtime(at=time.time() - 5))
        answer = await conn.reply()
        assert answer is not None and answer.cn == "9014"


async def _job_until(anchorer: HourAnchorer, mn: str, hour: int, status: str) -> dict[str, Any]:
    """Run the anchoring job until station ``mn``'s ``hour`` has ``status`` (the writer stores the uploads)."""
    deadline = time.monotonic() + 20
    while True:
        await asyncio.to_thread(anchorer.anchor_closed_hours)
        row = anchorer._row(mn, hour)
        if row["status"] == status or time.monotonic() > deadline:
            return row
        await asyncio.sleep(0.2)


def _until_disconnected(world: GatewayWorld, mn: str, timeout: float = 10.0) -> None:
    """Wait until the listener holds no connection of station ``mn`` (it has seen the station hang up)."""
    handle = world.services.hj212
    deadline = time.monotonic() + timeout
    while handle.call(lambda: any(mn in c.authenticated for c in handle.listener._conns.values())):
        assert time.monotonic() < deadline, f"the listener still holds station {mn}'s connection"
        time.sleep(0.02)


def _hour_view(world: GatewayWorld, mn: str) -> dict[str, Any]:
    items = world.client(token=world.token("auditor")).get(f"/api/v1/stations/{mn}/hours").json()["items"]
    assert len(items) == 1
    item: dict[str, Any] = items[0]
    return item


def test_an_hour_without_its_hourly_record_is_backfilled_and_anchored_complete(world: GatewayWorld) -> None:
    mn = "ENVBACKFILL0000000000001"
    sim = _station(world, mn)
    anchorer = _anchorer(world)
    start = _into_the_hour()
    hour = start // 3600

    async def go() -> tuple[Packet, int]:
        conn = await sim.connect("127.0.0.1", world.services.hj212.port)
        await _realtime(conn, 2)
        sim.hourly(start, {"a34004": [30.0, 34.0]})  # recorded by the station, never sent (its link was down)
        with _later(anchorer, 3600 + anchorer.delay):
            await asyncio.to_thread(anchorer.anchor_closed_hours)
            assert anchorer._row(mn, hour)["status"] == "open"  # waits for the history it asked for
            request = await conn.reply()
            assert request is not None
            uploaded = await conn.answer_history(request)
            row = await _job_until(anchorer, mn, hour, "anchored")
        await conn.close()
        assert row["status"] == "anchored", row
        return request, uploaded

    request, uploaded = run(go())
    begin, end = (datetime.fromtimestamp(t, TZ).strftime("%Y%m%d%H%M%S") for t in (start, start + 3599))
    assert (request.cn, request.mn, command_fields(request)) == ("2061", mn, {"BeginTime": begin, "EndTime": end})
    assert uploaded == 1
    view = _hour_view(world, mn)
    assert view["anchored"] and view["gaps"] is None and view["anchored_count"] == 3
    with world.services.engine.connect() as db:
        stored = db.execute(select(readings.c.qn, readings.c.data_time).where(
            readings.c.mn == mn, readings.c.cn == "2061")).all()
    assert [tuple(r) for r in stored] == [(request.qn, start)]  # stored under the request's QN


def test_a_station_that_cannot_answer_gets_its_hour_anchored_with_its_gaps_named(world: GatewayWorld) -> None:
    mn = "ENVBACKFILL0000000000002"
    sim = _station(world, mn)
    anchorer = _anchorer(world)
    hour = _into_the_hour() // 3600

    async def go() -> dict[str, Any]:
        conn = await sim.connect("127.0.0.1", world.services.hj212.port)
        await _realtime(conn, 2)
        with _later(anchorer, 3600 + anchorer.delay):
            await asyncio.to_thread(anchorer.anchor_closed_hours)
            request = await conn.reply()
            assert request is not None and request.cn == "2061"
            sim.recorded.clear()  # the data logger lost what it kept
            assert await conn.answer_history(request) == 0  # nothing recorded: ExeRtn 100
            row = await _job_until(anchorer, mn, hour, "anchored")
        await conn.close()
        return row

    row = run(go())
    assert row["status"] == "anchored" and row["backfill_qn"] is not None
    view = _hour_view(world, mn)
    assert view["anchored"] and view["anchored_count"] == 2
    assert view["gaps"] == (f"hourly record (CN 2061) missing; backfill QN {row['backfill_qn']}: "
                            "the station answered ExeRtn 100")


def test_a_silent_station_does_not_hold_up_other_stations(world: GatewayWorld) -> None:
    silent, complete, gone = "ENVBACKFILL0000000000003", "ENVBACKFILL0000000000004", "ENVBACKFILL0000000000005"
    sims = {mn: _station(world, mn) for mn in (silent, complete, gone)}
    anchorer = _anchorer(world)
    start = _into_the_hour()
    hour = start // 3600
    port = world.services.hj212.port

    async def go() -> None:
        conns = {mn: await sim.connect("127.0.0.1", port) for mn, sim in sims.items()}
        for conn in conns.values():
            await _realtime(conn, 2)
        await conns[complete].send(sims[complete].hourly(start, {"a34004": [30.0, 31.0]}))
        assert (await conns[complete].reply()).cn == "9014"  # type: ignore[union-attr]
        await conns.pop(gone).close()
        await asyncio.to_thread(_until_disconnected, world, gone)
        with _later(anchorer, 3600 + anchorer.delay):
            await asyncio.to_thread(anchorer.anchor_closed_hours)
            request = await conns[silent].reply()  # asked, and never answers
            assert request is not None and request.cn == "2061"
            assert anchorer._row(silent, hour)["status"] == "open"
            assert anchorer._row(complete, hour)["status"] == "anchored"
            assert anchorer._row(gone, hour)["status"] == "anchored"
        with _later(anchorer, 3600 + anchorer.delay + BACKFILL_TIMEOUT):
            await asyncio.to_thread(anchorer.anchor_closed_hours)
        for conn in conns.values():
            await conn.close()

    run(go())
    views = {mn: _hour_view(world, mn) for mn in sims}
    assert all(v["anchored"] for v in views.values()), views
    assert views[complete]["gaps"] is None and views[complete]["anchored_count"] == 3
    assert views[gone]["gaps"] == "hourly record (CN 2061) missing; no backfill: the station is not connected"
    qn = anchorer._row(silent, hour)["backfill_qn"]
    assert views[silent]["gaps"] == (f"hourly record (CN 2061) missing; backfill QN {qn}: no answer within "
                                     f"{BACKFILL_TIMEOUT:g} s")



def test_an_hour_a_station_missed_entirely_is_asked_for_once_it_is_back_before_its_later_hours(
        world: GatewayWorld) -> None:
    """The station's link was down for a whole hour (nothing stored for it, so no row of its own): once the station
    is back, the job finds the hole between its hours and asks for that hour's history before it anchors the later
    hour; what the station uploads is stored under the request; an hour whose history is lost too fails with both
    reasons named, and the later hour is anchored after it. (The earlier hours predate the stations' registration,
    which the contract refuses to anchor: anchoring a backfilled hour is shown by the first test of this module.)"""
    mn, lost = "ENVBACKFILL0000000000006", "ENVBACKFILL0000000000007"
    sims = {m: _station(world, m) for m in (mn, lost)}
    anchorer = _anchorer(world)
    start = _into_the_hour()
    hour = start // 3600
    port = world.services.hj212.port
    requests: dict[str, Packet] = {}

    async def go() -> None:
        for m, sim in sims.items():
            conn = await sim.connect("127.0.0.1", port)
            for packet in (sim.hourly(start - 2 * 3600, {"a34004": [20.0, 22.0]}),  # two hours ago: complete
                           sim.hourly(start, {"a34004": [30.0, 31.0]})):              # this hour: complete
                await conn.send(packet)
                assert (await conn.reply()).cn == "9014"  # type: ignore[union-attr]
            sim.hourly(start - 3600, {"a34004": [25.0, 26.0]})  # the hour between: recorded, never sent
            if m == lost:
                sim.recorded.clear()  # ... and then lost by the data logger as well
            with _later(anchorer, 3600 + anchorer.delay):
                await asyncio.to_thread(anchorer.anchor_closed_hours)
                request = await conn.reply()  # the hole is asked for before the later hour is anchored
                assert request is not None
                requests[m] = request
                assert anchorer._row(m, hour)["status"] == "open"
                await conn.answer_history(request)
                await _job_until(anchorer, m, hour, "anchored")
            await conn.close()

    run(go())
    begin, end = (datetime.fromtimestamp(t, TZ).strftime("%Y%m%d%H%M%S") for t in (start - 3600, start - 1))
    for m in sims:
        assert command_fields(requests[m]) == {"BeginTime": begin, "EndTime": end}
        assert anchorer._row(m, hour - 1)["backfill_qn"] == requests[m].qn
        assert anchorer._row(m, hour)["status"] == "anchored"
    with world.services.engine.connect() as db:
        stored = db.execute(select(readings.c.qn, readings.c.data_time).where(
            readings.c.mn == mn, readings.c.cn == "2061", readings.c.data_time == start - 3600)).all()
    assert [tuple(r) for r in stored] == [(requests[mn].qn, start - 3600)]  # the missed hour's record, backfilled
    hole = anchorer._row(lost, hour - 1)
    assert hole["status"] == "failed" and hole["error"] == (
        f"station {lost} has no stored reading in hour {hour - 1} (backfill QN {requests[lost].qn}: the station "
        "answered ExeRtn 100)")
