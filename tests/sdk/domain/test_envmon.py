"""EnvMonitoring domain client: hourly batches built from real HJ 212 packets, anchored on a real solo node."""

from __future__ import annotations

import secrets
import time
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from eth_abi.abi import encode

from shancheng.sdk.client import Contract, Receipt
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.domain import DomainError, DomainRefused
from shancheng.sdk.domain.envmon import (
    CHINA_STANDARD_TIME,
    EnvMonitoring,
    HourBatch,
    HourMismatch,
    StationSpec,
    hour_of,
    readings_root,
)
from shancheng.sdk.domain.envmon.messages import mn_bytes
from shancheng.sdk.domain.envmon.models import gap_of
from shancheng.sdk.domain.events import receipt_events
from shancheng.sdk.envmon.hj212 import CP, Packet, parse_frame
from shancheng.sdk.errors import InvalidInput

# the example packets of domain/env-monitoring.md (CRC as printed there)
AIR = (b"##0289QN=20240615103000123;ST=22;CN=2011;PW=123456;MN=3034257BF400B7800004A7B1;Flag=5;CP=&&DataTime="
       b"20240615103000;a34004-Rtd=38.2,a34004-Flag=N;a34002-Rtd=61.0,a34002-Flag=N;a21026-Rtd=8.0,a21026-Flag=N;"
       b"a21004-Rtd=42.5,a21004-Flag=N;a05024-Rtd=96.0,a05024-Flag=N;a21005-Rtd=0.72,a21005-Flag=N&&EF41\r\n")
NOISE = (b"##0132QN=20240615103000456;ST=23;CN=2011;PW=123456;MN=3034257BF400B7800004A7B2;Flag=4;CP=&&DataTime="
         b"20240615103000;LA-Rtd=58.6,LA-Flag=N&&A501\r\n")
HOUR = 3600


def with_rtd(packet: Packet, **values: str) -> Packet:
    """``packet`` with some ``<code>-Rtd`` values replaced (same QN and DataTime)."""
    groups = tuple(tuple((k, values.get(k[:-4], v) if k.endswith("-Rtd") else v) for k, v in g)
                   for g in packet.cp.groups)
    return replace(packet, cp=CP(groups))


def at(packet: Packet, unix: int, *, mn: str | None = None, **values: str) -> Packet:
    """``packet`` re-dated to ``unix`` (QN and DataTime in China Standard Time), optionally for another MN and
    with some ``<code>-Rtd`` values replaced."""
    moment = datetime.fromtimestamp(unix, CHINA_STANDARD_TIME)
    stamp = moment.strftime("%Y%m%d%H%M%S")
    groups = tuple(tuple((k, stamp if k == "DataTime" else v) for k, v in g) for g in packet.cp.groups)
    dated = replace(packet, qn=stamp + f"{secrets.randbelow(1000):03d}", mn=mn or packet.mn, cp=CP(groups))
    return with_rtd(dated, **values)


def new_mn() -> str:
    return "3034257BF" + secrets.token_hex(8).upper()[:15]


# ------------------------------------------------------------------------------------ batches, off chain
def test_the_domain_notes_example_packets_summarise_as_hj633_says() -> None:
    air = parse_frame(AIR)
    hour = hour_of(air)
    assert datetime.fromtimestamp(hour * HOUR, CHINA_STANDARD_TIME).strftime("%Y%m%d%H") == "2024061510"
    batch = HourBatch.from_packets(air.mn, hour, [AIR])  # raw frames are parsed
    by_code = {p.code: p for p in batch.pollutants}
    assert [p.code for p in batch.pollutants] == sorted(by_code)  # strictly increasing bytes8 codes
    # PM2.5 38.2 -> 54 (24 h breakpoints), PM10 61 -> 56, SO2 8 (1 h) -> 3, NO2 42.5 (1 h) -> 22, O3 96 -> 30,
    # CO 0.72 mg/m3 (1 h) -> 8
    assert {c: p.iaqi for c, p in by_code.items()} == {"a34004": 54, "a34002": 56, "a21026": 3, "a21004": 22,
                                                        "a05024": 30, "a21005": 8}
    assert (by_code["a21005"].min_milli, by_code["a21005"].avg_milli, by_code["a21005"].max_milli) == (720, 720, 720)
    assert batch.aqi == 56 and batch.exceeding == () and batch.iaqi_table == "HJ633_2012"
    assert batch.reading_count == 1 and batch.first_reading_at == batch.last_reading_at == hour * HOUR + 1800
    assert batch.to_abi()[5] == 1  # the contract's table number
    noise = HourBatch.from_packets("3034257BF400B7800004A7B2", hour, [parse_frame(NOISE)])
    assert [(p.code, p.avg_milli, p.iaqi) for p in noise.pollutants] == [("LA", 58600, 0)]


def test_summaries_root_and_refusals_of_an_hour() -> None:
    air = parse_frame(AIR)
    start = hour_of(air) * HOUR
    packets = [at(air, start + 60, a34004="30.0"), at(air, start + 1200, a34004="45.25"), at(air, start + 3599)]
    batch = HourBatch.from_packets(air.mn, start // HOUR, packets)
    pm25 = next(p for p in batch.pollutants if p.code == "a34004")
    # avg of 30.0, 45.25, 38.2 = 37.81666... -> 37817 (x 1000, half-even); IAQI of the average
    assert (pm25.min_milli, pm25.max_milli, pm25.avg_milli, pm25.iaqi) == (30000, 45250, 37817, 54)
    assert (batch.first_reading_at, batch.last_reading_at, batch.reading_count) == (start + 60, start + 3599, 3)
    # the commitment does not depend on arrival order, and a re-sent identical packet counts once
    again = HourBatch.from_packets(air.mn, start // HOUR, [packets[2], packets[0], packets[1], packets[0]])
    assert again == batch
    assert readings_root(packets)[0] != readings_root(packets[:2])[0]
    # a reading flagged for maintenance is committed but not scored
    flagged = replace(packets[0], cp=CP(tuple(
        tuple((k, "M" if k == "a34004-Flag" else v) for k, v in g) for g in packets[0].cp.groups)))
    scored = HourBatch.from_packets(air.mn, start // HOUR, [flagged, *packets[1:]])
    assert next(p for p in scored.pollutants if p.code == "a34004").min_milli == 38200
    assert scored.merkle_root != batch.merkle_root
    with pytest.raises(InvalidInput, match="outside hour"):
        HourBatch.from_packets(air.mn, start // HOUR, [at(air, start + 3600)])
    with pytest.raises(InvalidInput, match="is from station"):
        HourBatch.from_packets("OTHERSTATION1", start // HOUR, packets)
    with pytest.raises(InvalidInput, match="not data"):
        HourBatch.from_packets(air.mn, start // HOUR, [replace(packets[0], cn="2021")])
    with pytest.raises(InvalidInput, match="no packet"):
        HourBatch.from_packets(air.mn, start // HOUR, [])
    with pytest.raises(InvalidInput, match="not valid HJ 212"):
        HourBatch.from_packets(air.mn, start // HOUR, [AIR[:-6] + b"0000\r\n"])  # wrong CRC
    with pytest.raises(InvalidInput, match="HJ633_2026"):
        HourBatch.from_packets(air.mn, start // HOUR, packets, table="HJ633_2026")  # no invented breakpoints


# ------------------------------------------------------------------------------------ on the solo node
@pytest.fixture(scope="module")
def env(domain_node: Any) -> EnvMonitoring:
    return EnvMonitoring(domain_node.client("monitoring"))


def register(env: EnvMonitoring, key: SM2PrivateKey, st_type: int = 22) -> tuple[str, int]:
    """A fresh station of the monitoring operator; returns its MN and registration hour."""
    mn = new_mn()
    station = env.register_station(StationSpec(mn=mn, st_type=st_type, latitude=Decimal("29.557"),
                                               longitude=Decimal("106.577"), geohash="wm7b2", area_code=500103,
                                               public_key=key.public_key().to_bytes()), station_key=key)
    assert (station.mn, station.operator_org, station.active, station.area_code) == (
        mn, env.client.org_id, True, 500103)
    assert (station.latitude, station.longitude, station.geohash) == (Decimal("29.557"), Decimal("106.577"), "wm7b2")
    assert station.public_key == key.public_key().to_bytes()[1:]
    return mn, station.first_hour


def hour_packets(mn: str, hour: int, **values: str) -> list[Packet]:
    """Three readings of the example air packet inside ``hour``, none after now."""
    air = parse_frame(AIR)
    now = int(time.time())
    start = hour * HOUR
    latest = min(now - 1, start + HOUR - 1)
    times = sorted({start, max(start, latest - 20), max(start, latest)})
    return [at(air, t, mn=mn, **values) for t in times]


def test_an_hour_of_hj212_packets_is_anchored_read_back_and_verified(env: EnvMonitoring) -> None:
    key = SM2PrivateKey.generate()
    mn, hour = register(env, key)
    packets = hour_packets(mn, hour)
    frames = [p.to_frame() for p in packets]  # what the station sent
    batch = HourBatch.from_packets(mn, hour, frames)
    result = env.anchor_hour(mn, batch, station_key=key)
    assert result.receipt.status == 1
    assert result.anchored.batch == batch and result.anchored.aqi == batch.aqi == 56
    assert result.anchored.signature_verified is True  # the solo node has the GM precompile
    assert result.gaps == () and result.exceedances == ()
    anchor = env.anchor_of(mn, hour)
    assert anchor is not None
    assert (anchor.merkle_root, anchor.reading_count, anchor.aqi) == (batch.merkle_root, len(packets), 56)
    assert (anchor.first_reading_at, anchor.last_reading_at) == (batch.first_reading_at, batch.last_reading_at)
    assert env.anchor_of(mn, hour + 1) is None
    assert env.last_anchored_hour(mn) == hour
    assert env.missing_hours(mn) == 0  # registered and anchored within this hour (or the one before)
    assert [a.hour for a in env.anchors(mn)] == [hour]
    station = env.station(mn)
    assert station is not None and station.anchor_count == 1 and station.next_hour == hour + 1

    checked = env.verify_hour(mn, hour, frames)
    assert (checked.merkle_root, checked.reading_count, checked.signature_checked_on_chain) == (
        batch.merkle_root, len(packets), True)
    altered = [*frames[:-1], with_rtd(packets[-1], a34004="38.3").to_frame()]  # one reading changed
    with pytest.raises(HourMismatch) as mismatch:
        env.verify_hour(mn, hour, altered)
    assert mismatch.value.field == "merkle_root"
    assert mismatch.value.diagnostics()["anchored"] == batch.merkle_root
    with pytest.raises(HourMismatch, match="merkle_root"):
        env.verify_hour(mn, hour, frames[:-1])  # one reading withheld

    with pytest.raises(DomainRefused, match="Env: hour not after last anchored hour") as again:
        env.anchor_hour(mn, batch, station_key=key)
    assert again.value.reason == "Env: hour not after last anchored hour"


def test_an_exceeding_hour_raises_decoded_exceedance_events(env: EnvMonitoring) -> None:
    key = SM2PrivateKey.generate()
    mn, hour = register(env, key)
    # PM2.5 120 µg/m3 -> IAQI 158, PM10 300 -> 175: both exceed; NO2 42.5 -> 22 does not
    batch = HourBatch.from_packets(mn, hour, hour_packets(mn, hour, a34004="120", a34002="300"))
    assert batch.exceeding == ("a34002", "a34004")
    result = env.anchor_hour(mn, batch, station_key=key)
    assert [(e.mn, e.hour, e.code, e.iaqi, e.max_milli) for e in result.exceedances] == [
        (mn, hour, "a34002", 175, 300_000), (mn, hour, "a34004", 158, 120_000)]
    assert env.exceedances(mn) == list(result.exceedances)
    assert env.anchor_of(mn, hour).aqi == 175  # type: ignore[union-attr]
    station = env.station(mn)
    assert station is not None and station.exceedances == 2
    assert env.gaps(mn) == []


def test_a_wrong_station_key_is_refused_readably_and_rotation_moves_the_key(env: EnvMonitoring) -> None:
    key, other, rotated = SM2PrivateKey.generate(), SM2PrivateKey.generate(), SM2PrivateKey.generate()
    mn, hour = register(env, key)
    packets = hour_packets(mn, hour)
    batch = HourBatch.from_packets(mn, hour, packets)
    with pytest.raises(DomainRefused) as refused:
        env.anchor_hour(mn, batch, station_key=other)
    assert refused.value.reason == "Env: invalid station signature"
    assert "\n" not in str(refused.value) and "Env: invalid station signature" in str(refused.value)
    with pytest.raises(DomainRefused, match="Env: invalid old key consent"):
        env.rotate_station_key(mn, old_key=other, new_key=rotated)  # the operator alone cannot swap the device key
    env.rotate_station_key(mn, old_key=key, new_key=rotated)
    assert env.station(mn).public_key == rotated.public_key().to_bytes()[1:]  # type: ignore[union-attr]
    with pytest.raises(DomainRefused, match="invalid station signature"):
        env.anchor_hour(mn, batch, station_key=key)  # the old key no longer signs
    assert env.anchor_hour(mn, batch, station_key=rotated).anchored.signature_verified is True
    assert env.verify_hour(mn, hour, packets).signature_checked_on_chain is True  # checked with the new key
    with pytest.raises(DomainError, match="not anchored"):
        env.verify_hour(mn, hour + 1, packets)


def test_deactivated_and_unknown_stations(env: EnvMonitoring) -> None:
    key = SM2PrivateKey.generate()
    mn, hour = register(env, key)
    env.deactivate_station(mn)
    station = env.station(mn)
    assert station is not None and station.active is False and station.deactivated_at > 0
    with pytest.raises(DomainRefused, match="Env: station deactivated"):
        env.anchor_hour(mn, HourBatch.from_packets(mn, hour, hour_packets(mn, hour)), station_key=key)
    with pytest.raises(DomainRefused, match="Env: station already registered"):
        env.register_station(StationSpec(mn=mn, st_type=22, latitude=Decimal(0), longitude=Decimal(0),
                                         public_key=key.public_key().to_bytes()), station_key=key)
    unknown = new_mn()
    assert env.station(unknown) is None and env.anchor_of(unknown, hour) is None
    assert env.last_anchored_hour(unknown) is None
    with pytest.raises(DomainError, match="unknown station"):
        env.missing_hours(unknown)
    assert (env.client.org_id, mn) in env.stations()
    with pytest.raises(InvalidInput, match="not the key being registered"):
        env.register_station(StationSpec(mn=new_mn(), st_type=22, latitude=Decimal(0), longitude=Decimal(0),
                                          public_key=key.public_key().to_bytes()), station_key=SM2PrivateKey.generate())


def test_gap_logs_decode_as_typed_events() -> None:
    """A Gap needs an hour of silence, which a real-time solo node cannot show in a test: its log, encoded with
    the contract's ABI, goes through the same decoding as the chain's."""
    contract = Contract.load("EnvMonitoring", address="0x" + "00" * 19 + "07")
    mn = new_mn()
    log = {"address": contract.address_hex, "topics": ["0x" + contract.event_topic("Gap").hex(),
                                                       "0x" + mn_bytes(mn).ljust(32, b"\0").hex(),
                                                       "0x" + (7).to_bytes(32, "big").hex()],  # the operator org
           "data": "0x" + encode(["uint64", "uint64"], [480_000, 480_002]).hex(), "blockNumber": "0x2a",
           "logIndex": "0x0", "transactionHash": "0x" + "ab" * 32}
    receipt = Receipt(bytes(32), 42, bytes(32), 0, 1, 21000, (log,), None)
    (event,) = receipt_events(contract, receipt, ("Gap",))
    gap = gap_of(event)
    assert (gap.mn, gap.from_hour, gap.to_hour, gap.block_number) == (mn, 480_000, 480_002, 42)
