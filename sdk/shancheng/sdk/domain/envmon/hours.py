"""One station-hour of HJ 212 readings as anchored: the :class:`HourBatch` built from the station's packets.

Per-pollutant min/max/avg, IAQI per HJ 633 with a named breakpoint table, and an RFC 9162 SM3 Merkle root over
the raw readings (the recipes: :mod:`shancheng.sdk.domain.envmon`).

>>> from shancheng.sdk.envmon.hj212 import parse_frame
>>> packet = parse_frame(b"##0132QN=20240615103000456;ST=23;CN=2011;PW=123456;MN=3034257BF400B7800004A7B2;"
...                      b"Flag=4;CP=&&DataTime=20240615103000;LA-Rtd=58.6,LA-Flag=N&&A501\\r\\n")
>>> batch = HourBatch.from_packets("3034257BF400B7800004A7B2", hour_of(packet), [packet])
>>> (batch.reading_count, batch.pollutants[0].code, batch.pollutants[0].avg_milli, batch.aqi)
(1, 'LA', 58600, 0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ...envmon.aqi import HJ212_POLLUTANTS, AQIError, iaqi
from ...envmon.hj212 import HJ212Error, Packet, parse_frame
from ...envmon.values import scored_value
from ...errors import InvalidInput
from ...merkle import MerkleTree
from .messages import (
    code8,
    mn_bytes,
)

__all__ = [
    "CHINA_STANDARD_TIME",
    "HOUR",
    "IAQI_TABLES",
    "MAX_POLLUTANTS",
    "MAX_READINGS",
    "HourBatch",
    "PollutantSummary",
    "hour_of",
    "readings_root",
]

#: HJ 633 breakpoint tables by name (:mod:`shancheng.sdk.envmon.aqi`) and their number in the contract
IAQI_TABLES: dict[str, int] = {"HJ633_2012": 1, "HJ633_2026": 2}
CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
HOUR = 3600
MAX_POLLUTANTS = 32  # EnvMonitoring.MAX_POLLUTANTS
MAX_READINGS = 100_000  # per station-hour: one reading a second is 3,600
_DATA_CNS = {"2011": "Rtd", "2051": "Avg", "2061": "Avg"}
_INT64 = (-(1 << 63), (1 << 63) - 1)


def hour_of(packet: Packet, *, tz: tzinfo = CHINA_STANDARD_TIME) -> int:
    """The unix hour index (seconds // 3600) of a packet's ``DataTime`` read in ``tz``."""
    return _reading_time(packet, tz) // HOUR


def _reading_time(packet: Packet, tz: tzinfo) -> int:
    text = packet.cp.data_time
    if text is None:
        raise InvalidInput(f"packet {packet.qn} of {packet.mn} has no DataTime")
    try:
        moment = datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=tz)
    except ValueError:
        raise InvalidInput(f"packet {packet.qn}: DataTime {text[:20]!r} is not YYYYMMDDhhmmss") from None
    return int(moment.timestamp())


def readings_root(packets: Iterable[Packet]) -> tuple[bytes, int]:
    """The readings commitment of a station-hour (see the module notes) and the number of distinct readings."""
    leaves = {p.data(): p for p in packets}
    ordered = sorted(leaves, key=lambda d: (leaves[d].cp.data_time or "", leaves[d].qn, d))
    if not ordered:
        raise InvalidInput("no reading to commit")
    return MerkleTree.from_leaves(ordered).root(), len(ordered)


# ------------------------------------------------------------------------------------------------ models


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PollutantSummary(_Model):
    """One pollutant's hour: min/max/avg as the HJ 212 value x 1000 (unit of the code), and its IAQI."""

    code: str = Field(min_length=1, max_length=8)
    min_milli: int = Field(ge=_INT64[0], le=_INT64[1])
    max_milli: int = Field(ge=_INT64[0], le=_INT64[1])
    avg_milli: int = Field(ge=_INT64[0], le=_INT64[1])
    iaqi: int = Field(ge=0, le=500)

    def to_abi(self) -> tuple[Any, ...]:
        return (code8(self.code), self.min_milli, self.max_milli, self.avg_milli, self.iaqi)

    @classmethod
    def from_abi(cls, t: Sequence[Any]) -> PollutantSummary:
        return cls(code=bytes(t[0]).rstrip(b"\0").decode("ascii", "replace"), min_milli=t[1], max_milli=t[2],
                   avg_milli=t[3], iaqi=t[4])


class HourBatch(_Model):
    """One station-hour as anchored (the contract's ``HourlyBatch``), built with :meth:`from_packets`."""

    mn: str = Field(min_length=1, max_length=24, pattern=r"^[0-9A-Za-z]+$")
    hour: int = Field(ge=0, lt=1 << 64)
    merkle_root: bytes = Field(min_length=32, max_length=32)
    reading_count: int = Field(gt=0, lt=1 << 32)
    first_reading_at: int = Field(ge=0, lt=1 << 64)
    last_reading_at: int = Field(ge=0, lt=1 << 64)
    iaqi_table: str = "HJ633_2012"
    pollutants: tuple[PollutantSummary, ...] = Field(min_length=1, max_length=MAX_POLLUTANTS)

    @property
    def aqi(self) -> int:
        """The hour's AQI: the highest IAQI (what the contract stores)."""
        return max(p.iaqi for p in self.pollutants)

    @property
    def exceeding(self) -> tuple[str, ...]:
        """Codes whose IAQI passes 100 (each gives an ``Exceedance`` event)."""
        return tuple(p.code for p in self.pollutants if p.iaqi > 100)

    def to_abi(self) -> tuple[Any, ...]:
        if self.iaqi_table not in IAQI_TABLES:
            raise InvalidInput(f"IAQI table {self.iaqi_table!r} is not one of {', '.join(IAQI_TABLES)}")
        return (self.hour, self.merkle_root, self.reading_count, self.first_reading_at, self.last_reading_at,
                IAQI_TABLES[self.iaqi_table], [p.to_abi() for p in self.pollutants])

    @classmethod
    def from_abi(cls, mn: str, t: Sequence[Any] | Mapping[str, Any]) -> HourBatch:
        """The batch of an ``HourAnchored`` event (a tuple, or a dict by field name)."""
        v = list(t.values()) if isinstance(t, Mapping) else list(t)
        tables = {n: name for name, n in IAQI_TABLES.items()}
        return cls(mn=mn, hour=v[0], merkle_root=bytes(v[1]), reading_count=v[2], first_reading_at=v[3],
                   last_reading_at=v[4], iaqi_table=tables.get(v[5], str(v[5])),
                   pollutants=tuple(PollutantSummary.from_abi(
                       list(p.values()) if isinstance(p, Mapping) else p) for p in v[6]))

    @classmethod
    def from_packets(cls, mn: str, hour: int, packets: Iterable[Packet | bytes], *, table: str = "HJ633_2012",
                     tz: tzinfo = CHINA_STANDARD_TIME, so2_24h: Decimal | str | None = None) -> HourBatch:
        """Build station ``mn``'s batch of unix hour ``hour`` from its HJ 212 data packets (parsed, or raw frames
        that are parsed here): every packet must be data (CN 2011/2051/2061) of this MN with a DataTime inside
        the hour. ``table`` names the HJ 633 breakpoints; ``so2_24h`` is the SO2 24 h average HJ 633 needs when
        an hour's SO2 passes 800 µg/m³."""
        mn_bytes(mn)
        if table not in IAQI_TABLES:
            raise InvalidInput(f"IAQI table {table!r} is not one of {', '.join(IAQI_TABLES)}")
        parsed: list[Packet] = []
        for item in packets:
            if len(parsed) >= MAX_READINGS:
                raise InvalidInput(f"more than {MAX_READINGS} readings in one station-hour")
            try:
                packet = item if isinstance(item, Packet) else parse_frame(item)
            except HJ212Error as exc:
                raise InvalidInput(f"a packet of station {mn} is not valid HJ 212: {exc}") from None
            if packet.mn != mn:
                raise InvalidInput(f"packet {packet.qn} is from station {packet.mn}, not {mn}")
            if packet.cn not in _DATA_CNS:
                raise InvalidInput(f"packet {packet.qn} is CN {packet.cn}, not data (2011, 2051 or 2061)")
            parsed.append(packet)
        if not parsed:
            raise InvalidInput(f"no packet for station {mn} in hour {hour}")
        times = [_reading_time(p, tz) for p in parsed]
        start = hour * HOUR
        outside = [p.qn for p, t in zip(parsed, times, strict=True) if not start <= t < start + HOUR]
        if outside:
            raise InvalidInput(f"packet {outside[0]} has a DataTime outside hour {hour} "
                               f"({datetime.fromtimestamp(start, tz):%Y-%m-%d %H:00} {tz})")
        root, count = readings_root(parsed)
        pollutants = _summaries(parsed, table, so2_24h)
        return cls(mn=mn, hour=hour, merkle_root=root, reading_count=count, first_reading_at=min(times),
                   last_reading_at=max(times), iaqi_table=table, pollutants=pollutants)


def _summaries(packets: Sequence[Packet], table: str, so2_24h: Decimal | str | None) -> tuple[PollutantSummary, ...]:
    lows: dict[str, list[Decimal]] = {}
    highs: dict[str, list[Decimal]] = {}
    values: dict[str, list[Decimal]] = {}
    for packet in {p.data(): p for p in packets}.values():  # a re-sent packet counts once, as in the root
        kind = _DATA_CNS[packet.cn]
        flags = packet.cp.values("Flag")
        mins, maxs = packet.cp.values("Min"), packet.cp.values("Max")
        for code, text in packet.cp.values(kind).items():
            value = scored_value(code, text) if flags.get(code, "N") == "N" else None
            if value is None:
                continue  # flagged (maintenance, fault...), missing or unusable: committed in the root, not scored
            low, high = scored_value(code, mins.get(code, "")), scored_value(code, maxs.get(code, ""))
            values.setdefault(code, []).append(value * 1000)
            lows.setdefault(code, []).append((value if low is None else low) * 1000)
            highs.setdefault(code, []).append((value if high is None else high) * 1000)
    if not values:
        raise InvalidInput("no value to summarise (every value is flagged other than N, -9999 or unusable)")
    if len(values) > MAX_POLLUTANTS:
        raise InvalidInput(f"{len(values)} pollutants in one hour; the contract takes at most {MAX_POLLUTANTS}")
    out = []
    for code in sorted(values, key=code8):
        avg = sum(values[code], Decimal(0)) / len(values[code])
        lo, hi = math.floor(min(lows[code])), math.ceil(max(highs[code]))
        mean = min(max(int(avg.to_integral_value(ROUND_HALF_EVEN)), lo), hi)
        score = 0
        if code in HJ212_POLLUTANTS:
            name = HJ212_POLLUTANTS[code]
            try:
                # SO2 above 800 with no 24 h average given: the hour's average on the 24 h breakpoints
                score = iaqi(name, "1h", avg / 1000, version=table,
                             fallback=(avg / 1000 if so2_24h is None else so2_24h) if name == "SO2" else None)
            except AQIError as exc:
                raise InvalidInput(f"{code} ({name}): {exc}") from None
        out.append(PollutantSummary(code=code, min_milli=lo, max_milli=hi, avg_milli=mean, iaqi=score))
    return tuple(out)
