"""The env API and hourly anchoring on a real solo node: the monitoring organisation's gateway registers a station
in its registry and on chain, a simulated station feeds it over TCP, an hour is anchored as one SM2-signed batch
whose anchor matches the stored readings (and stops matching when a stored reading is altered), alerts show up,
role refusals and bad input never give a 500."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _hj212_support import run
from sqlalchemy import select, update

from shancheng.apps.hj212.settings import Hj212Settings
from shancheng.apps.hj212.simulator import Station
from shancheng.apps.hj212.store import readings
from shancheng.sdk.domain.envmon import EnvMonitoring
from shancheng.testing.gateway import GatewayWorld

pytestmark = [pytest.mark.network, pytest.mark.slow]
MN = "ENVAPI000000000000000001"
POLLUTANTS = ["a34004", "a34002", "a21026", "a21004", "a05024", "a21005"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayWorld]:
    hj212 = Hj212Settings(port=0, anchor_check_interval=0, limits={"a34004": 150.0})
    with GatewayWorld.start(tmp_path_factory.mktemp("env"), org="monitoring", hj212=hj212) as w:
        yield w


def feed(world: GatewayWorld, count: int, *, high: bool = False) -> list[str]:
    """``count`` real-time packets (the last one with PM2.5 at 180 when ``high``), acknowledged; their QNs."""
    port = world.services.extras["hj212"].port
    sim = Station(mn=MN, password="654321", pollutants={c: (0.7, 0.1) if c == "a21005" else (20.0, 2.0) for c in POLLUTANTS})
    hour_start = time.time() // 3600 * 3600
    while time.time() - hour_start < 20:  # keep every reading inside this hour, a few seconds in the past
        time.sleep(1)
    qns = []

    async def go() -> None:
        conn = await sim.connect("127.0.0.1", port)
        for n in range(count):
            packet = sim.realtime(at=time.time() - 10, values={"a34004": 180.0} if high and n == count - 1 else None)
            await conn.send(packet)
            answer = await conn.reply()
            assert answer is not None and answer.cn == "9014" and answer.qn == packet.qn
            qns.append(packet.qn)
        await conn.close()

    run(go())
    return qns


def test_station_registration_roles_and_bad_input(world: GatewayWorld) -> None:
    admin = world.client(token=world.token("admin"))
    body = {"mn": MN, "password": "654321", "st": "22", "name": "Shancheng No. 1 air station",
            "pollutants": POLLUTANTS, "latitude": "29.5630", "longitude": "106.5516"}
    created = admin.post("/api/v1/stations", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["mn"] == MN and created.json()["pollutants"] == POLLUTANTS
    on_chain = EnvMonitoring(world.services.client).station(MN)
    assert on_chain is not None and on_chain.public_key.hex() == created.json()["public_key"]
    assert admin.post("/api/v1/stations", json=body).status_code == 409

    operator = world.client(token=world.token("station_operator"))
    assert [s["mn"] for s in operator.get("/api/v1/stations").json()] == [MN]
    assert world.client(token=world.token("regulator")).get(f"/api/v1/stations/{MN}").status_code == 200
    assert world.client(token=world.token("doctor")).get("/api/v1/stations").status_code == 403
    assert operator.post("/api/v1/stations", json={**body, "mn": "OTHER1"}).status_code == 403
    assert world.client().get("/api/v1/stations").status_code == 401
    for bad in ({**body, "mn": "bad mn!"}, {**body, "st": "91"}, {**body, "pollutants": []},
                {**body, "password": "x" * 10}, {**body, "latitude": "91"}, {**body, "extra": 1}):
        response = admin.post("/api/v1/stations", json=bad)
        assert response.status_code in (400, 422), (bad, response.status_code)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert operator.get("/api/v1/stations/NOSUCHSTATION").status_code == 404
    assert operator.get("/api/v1/stations/bad%20mn/readings").status_code in (400, 404, 422)
    assert operator.get(f"/api/v1/stations/{MN}/readings?limit=0").status_code in (400, 422)
    assert operator.get(f"/api/v1/stations/{MN}/readings?cursor=!!").status_code in (400, 422)
    assert operator.get(f"/api/v1/stations/{MN}/readings?cursor=abc").status_code == 400


def test_readings_hours_anchor_verify_and_alerts(world: GatewayWorld) -> None:
    qns = feed(world, 7, high=True)
    operator = world.client(token=world.token("station_operator"))

    seen, cursor = [], None
    while True:  # walk the pages, newest first
        page = operator.get(f"/api/v1/stations/{MN}/readings", params={"limit": 3, **({"cursor": cursor} if cursor
                                                                                     else {})}).json()
        seen += [r["qn"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(qns))
    only = operator.get(f"/api/v1/stations/{MN}/readings", params={"code": "a34004", "limit": 1}).json()
    assert list(only["items"][0]["values"]) == ["a34004"] and only["items"][0]["values"]["a34004"]["value"] == 180.0
    assert operator.get(f"/api/v1/stations/{MN}/readings", params={"code": "w01001"}).json()["items"] == []

    (hour,) = [h for h in operator.get(f"/api/v1/stations/{MN}/hours").json()["items"]]
    assert hour["status"] == "open" and hour["anchored"] is False and hour["reading_count"] == 7
    assert hour["aqi"] is not None and hour["colour"].startswith("#")

    assert world.client(token=world.token("auditor")).post(
        f"/api/v1/stations/{MN}/hours/{hour['hour']}/anchor").status_code == 403
    anchored = operator.post(f"/api/v1/stations/{MN}/hours/{hour['hour']}/anchor")
    assert anchored.status_code == 200, anchored.text
    a = anchored.json()
    assert a["anchored"] and a["tx_hash"].startswith("0x") and a["anchored_count"] == 7
    on_chain = EnvMonitoring(world.services.client).anchor_of(MN, hour["hour"])
    assert on_chain is not None and "0x" + on_chain.merkle_root.hex() == a["merkle_root"]
    assert on_chain.reading_count == 7 and on_chain.aqi == a["aqi"] > 50  # PM2.5 (6 x 20 + 180) / 7 -> IAQI 62
    listed = operator.get(f"/api/v1/stations/{MN}/hours").json()["items"][0]
    assert listed["anchored"] and listed["band"] == "良" and listed["level"] == 2 and listed["colour"] == "#FFFF00"

    auditor = world.client(token=world.token("auditor"))
    verdict = auditor.get(a["verify"]).json()
    assert "verified" in verdict, verdict
    assert verdict["verified"] is True and verdict["reading_count"] == 7
    # a second anchor of the same hour is refused by the contract: a readable 409, not a 500
    again = operator.post(f"/api/v1/stations/{MN}/hours/{hour['hour']}/anchor")
    assert again.status_code == 409 and "hour" in again.json()["detail"]

    engine = world.services.engine
    with engine.begin() as conn:  # someone edits a stored reading: the anchor no longer matches
        row = conn.execute(select(readings.c.id, readings.c.data).where(readings.c.qn == qns[0])).one()
        conn.execute(update(readings).where(readings.c.id == row.id).values(data=row.data.replace("N&&", "M&&")))
    tampered = auditor.get(a["verify"]).json()
    assert tampered["verified"] is False and tampered["reason"]

    alert_page = auditor.get("/api/v1/alerts", params={"mn": MN}).json()
    kinds = sorted((x["code"], x["kind"]) for x in alert_page["items"])
    assert kinds == [("a34004", "iaqi"), ("a34004", "limit")]
    assert world.client(token=world.token("pharmacist")).get("/api/v1/alerts").status_code == 403


def test_the_background_job_anchors_closed_hours(world: GatewayWorld, tmp_path: Path) -> None:
    """An hour that is over is anchored by the job without anyone asking (clock moved on by the anchorer)."""
    handle = world.services.extras["hj212"]
    anchorer = handle.listener.anchorer
    second = "ENVAPI000000000000000002"
    admin = world.client(token=world.token("admin"))
    assert admin.post("/api/v1/stations", json={"mn": second, "password": "111111", "st": "22",
                                                "pollutants": ["a34004"]}).status_code == 201
    sim = Station(mn=second, password="111111", pollutants={"a34004": (30.0, 3.0)})

    async def go() -> None:
        conn = await sim.connect("127.0.0.1", handle.port)
        for _ in range(3):
            await conn.send(sim.realtime(at=time.time() - 5))
            assert (await conn.reply()).cn == "9014"  # type: ignore[union-attr]
        await conn.close()

    hour_start = time.time() // 3600 * 3600
    while time.time() - hour_start < 10:
        time.sleep(1)
    run(go())
    real_clock = anchorer.clock
    anchorer.clock = lambda: real_clock() + 3600 + anchorer.delay  # as if the hour were over
    try:
        assert anchorer.anchor_closed_hours() >= 1
    finally:
        anchorer.clock = real_clock
    hours = admin.get(f"/api/v1/stations/{second}/hours").json()["items"]
    assert hours[0]["anchored"] and hours[0]["anchored_count"] == 3
    asyncio.set_event_loop_policy(None)
