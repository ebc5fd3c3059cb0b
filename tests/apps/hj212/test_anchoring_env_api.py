"""The env API and hourly anchoring on a real solo node: the monitoring organisation's gateway registers a station
in its registry and on chain, a simulated station feeds it over TCP, an hour is anchored as one SM2-signed batch
whose anchor matches the stored readings (and stops matching when a stored reading is altered), alerts show up,
role refusals and bad input never give a 500."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _hj212_fuzzing import TZ, Spec, build, check_answers, exchange, specs
from _hj212_support import run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from shancheng.apps.hj212.listener import ListenerHandle
from shancheng.apps.hj212.settings import Hj212Settings
from shancheng.apps.hj212.simulator import Station
from shancheng.apps.hj212.store import readings, station_hours
from shancheng.sdk.domain.envmon import EnvMonitoring, hour_of
from shancheng.sdk.envmon.hj212 import ExeRtn, Packet, QnRtn, command_fields, exe_rtn_9012, qn_rtn_9011
from shancheng.testing.gateway import GatewayWorld

pytestmark = [pytest.mark.network, pytest.mark.slow]
MN = "ENVAPI000000000000000001"
POLLUTANTS = ["a34004", "a34002", "a21026", "a21004", "a05024", "a21005"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayWorld]:
    hj212 = Hj212Settings(port=0, anchor_check_interval=0, limits={"a34004": 150.0},
                          # fuzzed traffic: refusals keep the connection open, wrong passwords never lock out
                          max_bad_frames=10**4, max_auth_failures_per_address=10**6,
                          max_auth_failures_per_station=10**6)
    with GatewayWorld.start(tmp_path_factory.mktemp("env"), org="monitoring", hj212=hj212) as w:
        yield w


def feed(world: GatewayWorld, count: int, *, high: bool = False) -> list[str]:
    """``count`` real-time packets (the last one with PM2.5 at 180 when ``high``), acknowledged; their QNs."""
    port = world.services.hj212.port
    sim = Station(mn=MN, password="654321", pollutants={c: (0.7, 0.1) if c == "a21005" else (20.0, 2.0) for c in POLLUTANTS})
    _wait_into_the_hour(20)  # keep every reading inside this hour, a few seconds in the past
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
    handle = world.services.hj212
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

    _wait_into_the_hour(10)
    run(go())
    _wait_disconnected(handle, second)
    real_clock = anchorer.clock
    anchorer.clock = lambda: real_clock() + 3600 + anchorer.delay  # as if the hour were over
    try:
        assert anchorer.anchor_closed_hours() >= 1
    finally:
        anchorer.clock = real_clock
    hours = admin.get(f"/api/v1/stations/{second}/hours").json()["items"]
    assert hours[0]["anchored"] and hours[0]["anchored_count"] == 3
    asyncio.set_event_loop_policy(None)


def _wait_disconnected(handle: ListenerHandle, mn: str) -> None:
    """Wait until the listener has seen station ``mn``'s connection close, so that the job does not ask the
    station for the hour's history and wait for its answer."""
    deadline = time.monotonic() + 30
    while handle.call(lambda: handle.listener.is_connected(mn)):
        assert time.monotonic() < deadline, f"the listener never saw {mn}'s connection close"
        time.sleep(0.05)


def _wait_into_the_hour(seconds: float) -> None:
    """Keep every reading of a test inside one hour: wait until ``seconds`` into the current hour."""
    hour_start = time.time() // 3600 * 3600
    time.sleep(max(0.0, hour_start + seconds - time.time()))


def test_every_hour_is_anchored_or_failed_with_its_reason_and_no_endpoint_answers_500(world: GatewayWorld) -> None:
    handle = world.services.hj212
    anchorer = handle.listener.anchorer
    admin = world.client(token=world.token("admin"))
    operator = world.client(token=world.token("station_operator"))
    corrupt, legacy, odd = (f"ENVPOISON00000000000000{n}" for n in (1, 2, 3))  # anchored in this order
    _wait_into_the_hour(10)
    passwords = {}
    for mn in (corrupt, legacy, odd):
        created = admin.post("/api/v1/stations", json={"mn": mn, "st": "22", "pollutants": POLLUTANTS})
        assert created.status_code == 201, created.text
        passwords[mn] = created.json()["password"]
        assert len(passwords[mn]) == 9 and passwords[mn].isalnum()
    assert "password" not in admin.get(f"/api/v1/stations/{odd}").json()  # shown once, never again

    # a station sending the values the field sends: -9999, a negative concentration, SO2 above 800 µg/m³
    sim = Station(mn=odd, password=passwords[odd], pollutants={"a34004": (30.0, 3.0), "a21026": (10.0, 1.0)})

    async def go() -> list[str]:
        conn = await sim.connect("127.0.0.1", handle.port)
        cns = []
        for values in ({"a34004": -9999.0}, {"a34004": -3.5}, {"a21026": 1000.0}, {}):
            await conn.send(sim.realtime(at=time.time() - 5, values=values))
            answer = await conn.reply()
            cns.append(answer.cn if answer is not None else "closed")
        await conn.close()
        return cns

    assert run(go()) == ["9014"] * 4
    # readings stored by an older listener (NaN, 1e20, text) and one a database insider garbled
    at = int(time.time()) - 5
    hour = at // 3600
    rows = []
    for mn, values in ((legacy, ("NaN", "1e20", "abc", "25.0")), (corrupt, ("20.0",))):
        feeder = Station(mn=mn, password=passwords[mn], pollutants={"a34004": (20.0, 1.0)})
        for value in values:
            packet = feeder.realtime(at=at)
            data = packet.data().decode().replace("a34004-Rtd=20.0", f"a34004-Rtd={value}")
            rows.append({"mn": mn, "qn": packet.qn, "cn": "2011", "data_time": at, "received_at": at,
                         "codes": ",a34004,", "values": {"a34004": {"value": float("nan")}}, "data": data})
    rows[-1]["data"] = rows[-1]["data"].replace("CP=&&", "CP=&&\x00")  # not HJ 212 any more
    engine = world.services.engine
    with engine.begin() as conn:
        conn.execute(readings.insert(), rows)
        conn.execute(station_hours.insert(), [{"mn": mn, "hour": hour, "reading_count": 0, "status": "open",
                                               "updated_at": at} for mn in (legacy, corrupt)])

    def no_500(mn: str) -> dict[str, Any]:
        for path in (f"/api/v1/stations/{mn}/readings", f"/api/v1/stations/{mn}/hours",
                     f"/api/v1/alerts?mn={mn}"):
            response = operator.get(path)
            assert response.status_code == 200, (path, response.status_code, response.text[:300])
        hours = operator.get(f"/api/v1/stations/{mn}/hours").json()["items"]
        (row,) = [h for h in hours if h["hour"] == hour]
        if row["anchored"]:
            verdict = operator.get(row["verify"])
            assert verdict.status_code == 200 and "verified" in verdict.json()
        return dict(row)

    for mn in (corrupt, legacy, odd):
        no_500(mn)
    _wait_disconnected(handle, odd)
    real_clock = anchorer.clock
    anchorer.clock = lambda: real_clock() + 3600 + anchorer.delay  # as if the hour were over
    try:
        anchorer.anchor_closed_hours()
    finally:
        anchorer.clock = real_clock
    failed, kept, flagged = (no_500(mn) for mn in (corrupt, legacy, odd))
    assert failed["status"] == "failed" and failed["error"]  # this hour alone fails, with its reason
    assert kept["anchored"] and kept["anchored_count"] == 4  # the unusable values are committed, not scored
    assert flagged["anchored"] and flagged["anchored_count"] == 4
    assert flagged["iaqi"]["a21026"] > 0 and flagged["iaqi"]["a34004"] <= 50
    for mn in (legacy, odd):
        verdict = operator.get(f"/api/v1/stations/{mn}/hours/{hour}/verify").json()
        assert verdict["verified"] is True, verdict


_FUZZED_MN = itertools.count(1)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=specs, seed=st.integers(0, 2**32 - 1))
def test_fuzzed_traffic_is_answered_and_every_hour_is_anchored_or_failed_with_its_reason(
        world: GatewayWorld, drawn: list[Spec], seed: int) -> None:
    handle = world.services.hj212
    admin = world.client(token=world.token("admin"))
    mn = f"FUZZ{next(_FUZZED_MN):020d}"
    created = admin.post("/api/v1/stations", json={"mn": mn, "st": "22", "pollutants": POLLUTANTS})
    assert created.status_code == 201, created.text
    fuzzed = build(drawn, [(mn, created.json()["password"])] * 2)
    acked = check_answers(fuzzed, run(exchange(handle.port, fuzzed, seed)))
    for hour in sorted({hour_of(p, tz=TZ) for p in acked}):
        row = handle.listener.anchorer.anchor_hour(mn, hour)
        assert row["status"] == "anchored" or (row["status"] == "failed" and row["error"]), row
    listed = admin.get(f"/api/v1/stations/{mn}/hours")
    assert listed.status_code == 200
    assert all(h["status"] in ("anchored", "failed") for h in listed.json()["items"])


def test_an_operator_commands_a_connected_station_and_the_command_is_audited(world: GatewayWorld) -> None:
    handle = world.services.hj212
    admin = world.client(token=world.token("admin"))
    operator = world.client(token=world.token("station_operator"))
    mn = "ENVCOMMAND00000000000001"
    created = admin.post("/api/v1/stations", json={"mn": mn, "st": "22", "pollutants": ["a34004"]})
    assert created.status_code == 201, created.text
    password = created.json()["password"]
    sim = Station(mn=mn, password=password, pollutants={"a34004": (30.0, 3.0)})
    body = {"cn": "1062", "fields": {"RtdInterval": "60"}}
    not_connected = operator.post(f"/api/v1/stations/{mn}/commands", json=body)
    assert not_connected.status_code == 409 and "not connected" in not_connected.json()["detail"]

    def both_answers_recorded(qn: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(getattr(handle.call(lambda: handle.listener.commands.get(mn, qn)), "answers", ())) < 2:
            assert time.monotonic() < deadline, f"the station's answers to command {qn} were not recorded"
            time.sleep(0.02)

    async def go() -> tuple[Packet, dict[str, Any]]:
        conn = await sim.connect("127.0.0.1", handle.port)
        await conn.send(sim.realtime(at=time.time() - 5))
        assert (await conn.reply()).cn == "9014"  # type: ignore[union-attr]
        sent = await asyncio.to_thread(operator.post, f"/api/v1/stations/{mn}/commands", json=body)
        assert sent.status_code == 202, sent.text
        received = await conn.reply()
        assert received is not None
        for answer in (qn_rtn_9011(received, QnRtn.READY), exe_rtn_9012(received, ExeRtn.SUCCESS)):
            await conn.send(answer)
        await asyncio.to_thread(both_answers_recorded, sent.json()["qn"])  # the listener has recorded both answers
        await conn.close()
        return received, sent.json()

    received, sent = run(go())
    assert (received.cn, received.mn, received.pw, received.qn) == ("1062", mn, password, sent["qn"])
    assert command_fields(received) == {"RtdInterval": "60"} and received.reply_requested
    answered = operator.get(f"/api/v1/stations/{mn}/commands/{sent['qn']}").json()
    assert [(a["cn"], a.get("QnRtn"), a.get("ExeRtn")) for a in answered["answers"]] == [
        ("9011", "1", None), ("9012", None, "1")]
    for bad in ({"cn": "2011"}, {"cn": "1062", "fields": {"RtdInterval": "5"}}, {"cn": "9014"}):
        refused = operator.post(f"/api/v1/stations/{mn}/commands", json=bad)
        assert refused.status_code in (400, 409, 422), (bad, refused.status_code)
    assert world.client(token=world.token("auditor")).post(f"/api/v1/stations/{mn}/commands",
                                                           json=body).status_code == 403
    entries = admin.get("/api/v1/audit", params={"order": "desc", "limit": 50}).json()["items"]
    assert any(f"HJ 212 command CN 1062 QN {sent['qn']} to station {mn}: RtdInterval=60" == e["detail"]
               for e in entries)
