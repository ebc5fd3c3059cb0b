"""Environmental monitoring on chain (``EnvMonitoring``): stations, SM2-signed hourly batches, gaps, exceedances.

A monitoring operator registers its HJ 212 stations, builds one :class:`HourBatch` per station and hour from the
station's packets (per-pollutant min/max/avg, IAQI per HJ 633 with a named breakpoint table, an RFC 9162 SM3
Merkle root over the raw readings) and anchors it with the station's SM2 signature. An auditor holding the raw
packets checks them against the chain with :meth:`EnvMonitoring.verify_hour`.

>>> from shancheng.sdk.envmon.hj212 import parse_frame
>>> packet = parse_frame(b"##0132QN=20240615103000456;ST=23;CN=2011;PW=123456;MN=3034257BF400B7800004A7B2;"
...                      b"Flag=4;CP=&&DataTime=20240615103000;LA-Rtd=58.6,LA-Flag=N&&A501\\r\\n")
>>> batch = HourBatch.from_packets("3034257BF400B7800004A7B2", hour_of(packet), [packet])
>>> (batch.reading_count, batch.pollutants[0].code, batch.pollutants[0].avg_milli, batch.aqi)
(1, 'LA', 58600, 0)
>>> env = EnvMonitoring(client)                                                   # doctest: +SKIP
>>> env.anchor_hour(batch.mn, batch, station_key=station_key)                    # doctest: +SKIP

Recipes (what is signed, what is committed):

- **Stations** live in their operator organisation's namespace (reads default to the client's own); registration,
  anchor and key-rotation messages: :mod:`shancheng.sdk.domain.env_messages`.
- **Readings commitment** (``merkleRoot``): one leaf per distinct reading, the HJ 212 data segment exactly as
  received (``Packet.data()``: what the frame's CRC covers), leaves ordered by (DataTime, QN, bytes), identical
  re-sent packets counted once; the root is the RFC 9162 tree over SM3 (:mod:`shancheng.sdk.merkle`).
- **Times**: HJ 212 ``DataTime`` is station-local time; China Standard Time (UTC+8) unless ``tz`` says otherwise.
- **Summaries**: per pollutant over the readings whose flag is ``N`` (or absent): CN 2011 uses ``-Rtd``, CN
  2051/2061 ``-Avg`` (and ``-Min``/``-Max`` where given); values x 1000 as integers (min rounded down, max up,
  average half-even). IAQI of the hour's average on the HJ 633 1 h breakpoints (PM on 24 h), table
  ``HJ633_2012`` (contract table 1) by default; other codes (temperature, noise...) have IAQI 0. Values that
  cannot be scored (``-9999``, a negative concentration, a non-number: :mod:`shancheng.sdk.envmon.values`) are
  left out like flagged ones; SO2 above 800 µg/m³ with no 24 h average given scores the hour's average on the
  24 h breakpoints.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..client import Client, Contract, JsonRpcError, Receipt
from ..crypto import sm3
from ..envmon.aqi import HJ212_POLLUTANTS, AQIError, iaqi
from ..envmon.hj212 import HJ212Error, Packet, parse_frame
from ..envmon.values import scored_value
from ..errors import InvalidInput, InvalidSignature, VerificationError
from ..merkle import MerkleTree
from ._common import (
    ChainEvent,
    DomainError,
    StaffSigner,
    fetch_events,
    receipt_events,
    send_checked,
    sign_staff_message,
    verify_preimage_signature,
)
from .env_messages import (
    anchor_preimage,
    code8,
    key_rotation_preimage,
    mn_bytes,
    mn_text,
    public_key64,
    station_pop_preimage,
)

__all__ = [
    "CHINA_STANDARD_TIME",
    "IAQI_TABLES",
    "AnchorResult",
    "EnvMonitoring",
    "Exceedance",
    "Gap",
    "HourAnchor",
    "HourAnchored",
    "HourBatch",
    "HourMismatch",
    "HourVerification",
    "PollutantSummary",
    "Station",
    "StationSpec",
    "hour_of",
    "readings_root",
    "verify_preimage_signature",
]

#: HJ 633 breakpoint tables by name (:mod:`shancheng.sdk.envmon.aqi`) and their number in the contract
IAQI_TABLES: dict[str, int] = {"HJ633_2012": 1, "HJ633_2026": 2}
CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
HOUR = 3600
MAX_POLLUTANTS = 32  # EnvMonitoring.MAX_POLLUTANTS
MAX_READINGS = 100_000  # per station-hour: one reading a second is 3,600
_DATA_CNS = {"2011": "Rtd", "2051": "Avg", "2061": "Avg"}
_INT64 = (-(1 << 63), (1 << 63) - 1)
_ST_TYPES = (21, 22, 23, 31, 32)
_GEOHASH = set("0123456789bcdefghjkmnpqrstuvwxyz")


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


class StationSpec(_Model):
    """A station to register: HJ 212 MN, station type (ST), WGS-84 location, optional geohash and GB/T 2260
    area code, the operator organisation (default: the client's) and the station's SM2 public key."""

    mn: str = Field(min_length=1, max_length=24, pattern=r"^[0-9A-Za-z]+$")
    st_type: Literal[21, 22, 23, 31, 32]
    latitude: Decimal = Field(ge=-90, le=90)
    longitude: Decimal = Field(ge=-180, le=180)
    public_key: bytes
    geohash: str = Field(default="", max_length=12)
    area_code: int = Field(default=0, ge=0, lt=1 << 32)
    operator_org: int | None = Field(default=None, gt=0, lt=1 << 64)

    @field_validator("public_key", mode="before")
    @classmethod
    def _key(cls, value: Any) -> bytes:
        return public_key64(value)

    @field_validator("geohash")
    @classmethod
    def _geohash(cls, value: str) -> str:
        if not set(value) <= _GEOHASH:
            raise ValueError("a geohash uses the base-32 alphabet 0-9 b-h j k m n p-z")
        return value

    def to_abi(self, operator_org: int) -> tuple[Any, ...]:
        def micro(d: Decimal) -> int:
            return int((d * 1_000_000).to_integral_value(ROUND_HALF_EVEN))

        return (mn_bytes(self.mn), self.st_type, micro(self.latitude), micro(self.longitude),
                self.geohash.encode("ascii").ljust(12, b"\0"), self.area_code, operator_org, self.public_key)


class Station(_Model):
    """A registered station as the contract holds it (``registered_at`` etc. in unix seconds, hours as
    unix hour indexes)."""

    mn: str
    operator_org: int
    st_type: int
    active: bool
    latitude: Decimal
    longitude: Decimal
    area_code: int
    registered_at: int
    geohash: str
    first_hour: int
    next_hour: int
    anchor_count: int
    missing_hours: int
    exceedances: int
    deactivated_at: int
    public_key: bytes

    @classmethod
    def from_abi(cls, mn: str, t: Sequence[Any]) -> Station:
        return cls(mn=mn, operator_org=t[0], st_type=t[1], active=t[2], latitude=Decimal(t[3]) / 1_000_000,
                   longitude=Decimal(t[4]) / 1_000_000, area_code=t[5], registered_at=t[6],
                   geohash=bytes(t[7]).rstrip(b"\0").decode("ascii", "replace"), first_hour=t[8], next_hour=t[9],
                   anchor_count=t[10], missing_hours=t[11], exceedances=t[12], deactivated_at=t[13],
                   public_key=bytes(t[14]))


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


class HourAnchor(_Model):
    """What the contract keeps of an anchored hour (``anchorOf``)."""

    merkle_root: bytes
    reading_count: int
    first_reading_at: int
    last_reading_at: int
    aqi: int
    anchored_at: int


class HourAnchored(_Model):
    """An ``HourAnchored`` event: the batch as signed, its AQI, the station signature and whether the chain
    checked it (False on a chain without the GM precompile: check it off chain)."""

    mn: str
    hour: int
    batch: HourBatch
    aqi: int
    r: bytes
    s: bytes
    signature_verified: bool
    block_number: int
    transaction_hash: bytes


class Gap(_Model):
    """Hours ``from_hour``..``to_hour`` (inclusive) of station ``mn`` were never anchored."""

    mn: str
    from_hour: int
    to_hour: int
    block_number: int


class Exceedance(_Model):
    """Pollutant ``code`` of station ``mn`` passed IAQI 100 in ``hour`` (``max_milli`` is its hourly max x 1000)."""

    mn: str
    hour: int
    code: str
    iaqi: int
    max_milli: int
    block_number: int


@dataclass(frozen=True)
class AnchorResult:
    """The final receipt of an anchor and the events it raised."""

    receipt: Receipt
    anchored: HourAnchored
    gaps: tuple[Gap, ...]
    exceedances: tuple[Exceedance, ...]


class HourVerification(_Model):
    """What :meth:`EnvMonitoring.verify_hour` checked and found equal."""

    mn: str
    hour: int
    merkle_root: bytes
    reading_count: int
    aqi: int
    signature_checked_on_chain: bool
    block_number: int


class HourMismatch(VerificationError):
    """Raw packets do not reproduce an anchored hour; ``field`` names the first difference."""

    def __init__(self, message: str, *, field: str, computed: Any, anchored: Any) -> None:
        super().__init__(message)
        self.field = field
        self.computed = computed
        self.anchored = anchored

    def diagnostics(self) -> dict[str, Any]:
        return {"field": self.field, "computed": self.computed, "anchored": self.anchored}


# ------------------------------------------------------------------------------------------------ the client


def _anchored(event: ChainEvent) -> HourAnchored:
    a = event.args
    mn = mn_text(a["mn"])
    return HourAnchored(mn=mn, hour=a["hour"], batch=HourBatch.from_abi(mn, a["batch"]), aqi=a["aqi"],
                        r=bytes(a["r"]), s=bytes(a["s"]), signature_verified=a["signatureVerified"],
                        block_number=event.block_number, transaction_hash=event.transaction_hash)


def _gap(event: ChainEvent) -> Gap:
    a = event.args
    return Gap(mn=mn_text(a["mn"]), from_hour=a["fromHour"], to_hour=a["toHour"], block_number=event.block_number)


def _exceedance(event: ChainEvent) -> Exceedance:
    a = event.args
    return Exceedance(mn=mn_text(a["mn"]), hour=a["hour"], code=bytes(a["code"]).rstrip(b"\0").decode("ascii"),
                      iaqi=a["iaqi"], max_milli=a["max"], block_number=event.block_number)


class EnvMonitoring:
    """The ``EnvMonitoring`` contract for one organisation's client (see the module docstring).

    Writes need an account of the station's operator organisation (registration and deactivation also of a
    regulator); reads and :meth:`verify_hour` work for any member.
    """

    def __init__(self, client: Client) -> None:
        if not isinstance(client, Client):
            raise InvalidInput("EnvMonitoring needs a shancheng.sdk.Client")
        self.client = client
        self.contract: Contract = client.contract("EnvMonitoring")

    def _org(self, operator_org: int | None) -> int:
        return self.client.org_id if operator_org is None else operator_org

    # -- registry --------------------------------------------------------------------------------
    def register_station(self, spec: StationSpec, *, station_key: StaffSigner) -> Station:
        """Register a station (operator org: ``spec.operator_org`` or the client's) with ``station_key``'s proof
        of possession (its public key must be ``spec.public_key``); returns it as stored."""
        operator = self._org(spec.operator_org)
        if public_key64(station_key) != spec.public_key:
            raise InvalidInput(f"station {spec.mn}: the signing key is not the key being registered")
        preimage = station_pop_preimage(self.client.chain_id, self.contract.address, operator, mn_bytes(spec.mn),
                                        spec.public_key)
        _, r, s = sign_staff_message(station_key, sm3(preimage))
        send_checked(self.client, self.contract.call("registerStation", spec.to_abi(operator), (r, s)))
        station = self.station(spec.mn, operator_org=operator)
        assert station is not None  # the transaction succeeded
        return station

    def deactivate_station(self, mn: str, *, operator_org: int | None = None) -> Receipt:
        """Deactivate a station for good (no further anchors): the operator's own, or any as a regulator."""
        return send_checked(self.client, self.contract.call("deactivateStation", self._org(operator_org),
                                                            mn_bytes(mn)))

    def rotate_station_key(self, mn: str, *, old_key: StaffSigner, new_key: StaffSigner) -> Receipt:
        """Replace the station's SM2 key by ``new_key``: both keys sign the rotation (the old key consents, the
        new key proves possession; the message names both, so the signatures serve this rotation only)."""
        r1, s1, r2, s2, new = self._rotation(self.client.org_id, mn, new_key, old_key)
        return send_checked(self.client, self.contract.call("rotateStationKey", mn_bytes(mn), new, (r1, s1),
                                                            (r2, s2)))

    def replace_station_key(self, operator_org: int, mn: str, *, new_key: StaffSigner) -> Receipt:
        """As a regulator, replace a lost or compromised station key by ``new_key`` (its proof of possession)."""
        r, s, _, _, new = self._rotation(operator_org, mn, new_key, None)
        return send_checked(self.client, self.contract.call("replaceStationKey", operator_org, mn_bytes(mn), new,
                                                            (r, s)))

    def _rotation(self, operator_org: int, mn: str, new_key: StaffSigner,
                  old_key: StaffSigner | None) -> tuple[bytes, bytes, bytes, bytes, bytes]:
        current = self.station(mn, operator_org=operator_org)
        if current is None:
            raise DomainError(f"station {mn} of organisation {operator_org} is not registered")
        new = public_key64(new_key)
        message = sm3(key_rotation_preimage(self.client.chain_id, self.contract.address, operator_org, mn_bytes(mn),
                                            current.public_key, new))
        _, r1, s1 = sign_staff_message(new_key, message)
        if old_key is None:
            return r1, s1, bytes(32), bytes(32), new
        _, r2, s2 = sign_staff_message(old_key, message)
        return r1, s1, r2, s2, new

    # -- anchors ---------------------------------------------------------------------------------
    def anchor_preimage(self, batch: HourBatch, *, operator_org: int | None = None) -> bytes:
        return anchor_preimage(self.client.chain_id, self.contract.address, self._org(operator_org),
                               mn_bytes(batch.mn), batch.to_abi())

    def anchor_hour(self, mn: str, batch: HourBatch, *, station_key: StaffSigner) -> AnchorResult:
        """Sign ``batch`` with the station's SM2 key and anchor it; returns the receipt and the decoded events."""
        if batch.mn != mn:
            raise InvalidInput(f"the batch is of station {batch.mn}, not {mn}")
        _, r, s = sign_staff_message(station_key, sm3(self.anchor_preimage(batch)))
        receipt = send_checked(self.client, self.contract.call("anchorHour", mn_bytes(mn), batch.to_abi(), r, s))
        events = receipt_events(self.contract, receipt, ("HourAnchored", "Gap", "Exceedance"))
        (anchored,) = (_anchored(e) for e in events if e.name == "HourAnchored")
        return AnchorResult(receipt=receipt, anchored=anchored,
                            gaps=tuple(_gap(e) for e in events if e.name == "Gap"),
                            exceedances=tuple(_exceedance(e) for e in events if e.name == "Exceedance"))

    # -- reads -----------------------------------------------------------------------------------
    def station(self, mn: str, *, operator_org: int | None = None) -> Station | None:
        """The station ``mn`` of ``operator_org`` (default: the client's organisation), or None when that
        operator never registered it."""
        (t,) = self.client.view(self.contract, "station", self._org(operator_org), mn_bytes(mn))
        return Station.from_abi(mn, t) if t[6] else None

    def stations(self) -> list[tuple[int, str]]:
        """Every registered station as (operator org, MN), in registration order."""
        (count,) = self.client.view(self.contract, "stationCount")
        refs = [self.client.view(self.contract, "stationAt", i)[0] for i in range(int(count))]
        return [(int(ref[0]), mn_text(ref[1])) for ref in refs]

    def anchor_of(self, mn: str, hour: int, *, operator_org: int | None = None) -> HourAnchor | None:
        """The anchor of ``hour``, or None when that hour was never anchored."""
        (t,) = self.client.view(self.contract, "anchorOf", self._org(operator_org), mn_bytes(mn), hour)
        if not t[5]:
            return None
        return HourAnchor(merkle_root=bytes(t[0]), reading_count=t[1], first_reading_at=t[2], last_reading_at=t[3],
                          aqi=t[4], anchored_at=t[5])

    def last_anchored_hour(self, mn: str, *, operator_org: int | None = None) -> int | None:
        hour, anything = self.client.view(self.contract, "lastAnchoredHour", self._org(operator_org), mn_bytes(mn))
        return int(hour) if anything else None

    def missing_hours(self, mn: str, *, operator_org: int | None = None) -> int:
        """Hours never anchored from registration to the current hour (counted gaps plus the silence since)."""
        try:
            (n,) = self.client.view(self.contract, "missingHoursNow", self._org(operator_org), mn_bytes(mn))
        except JsonRpcError as exc:
            raise DomainError(f"station {mn}: {exc.message.removeprefix('execution reverted: ')}") from None
        return int(n)

    def anchors(self, mn: str, *, operator_org: int | None = None, from_block: int = 0) -> list[HourAnchored]:
        """The station's ``HourAnchored`` events, in chain order."""
        return [_anchored(e) for e in self._events("HourAnchored", mn, operator_org, from_block)]

    def gaps(self, mn: str, *, operator_org: int | None = None, from_block: int = 0) -> list[Gap]:
        return [_gap(e) for e in self._events("Gap", mn, operator_org, from_block)]

    def exceedances(self, mn: str, *, operator_org: int | None = None, from_block: int = 0) -> list[Exceedance]:
        return [_exceedance(e) for e in self._events("Exceedance", mn, operator_org, from_block)]

    def _events(self, name: str, mn: str, operator_org: int | None, from_block: int) -> list[ChainEvent]:
        org = self._org(operator_org)
        events = fetch_events(self.client, self.contract, (name,), topics=(mn_bytes(mn).ljust(32, b"\0"),),
                              from_block=from_block)
        return [e for e in events if e.args["operatorOrg"] == org]

    # -- audit -----------------------------------------------------------------------------------
    def verify_hour(self, mn: str, hour: int, packets: Iterable[Packet | bytes], *, operator_org: int | None = None,
                    from_block: int = 0, tz: tzinfo = CHINA_STANDARD_TIME,
                    so2_24h: Decimal | str | None = None) -> HourVerification:
        """Check raw packets against the anchored hour: the batch rebuilt from them (readings root, count,
        times, every pollutant summary and IAQI, with the anchored IAQI table) must equal the signed batch of the
        ``HourAnchored`` event, and the recorded station signature must verify with the station's key at that
        block. Raises :class:`HourMismatch` (or :class:`InvalidSignature`); never returns False."""
        org = self._org(operator_org)
        found = [a for a in self._events("HourAnchored", mn, org, from_block) if a.args["hour"] == hour]
        if not found:
            raise DomainError(f"hour {hour} of station {mn} is not anchored")
        event = _anchored(found[0])
        anchored = event.batch
        rebuilt = HourBatch.from_packets(mn, hour, packets, table=anchored.iaqi_table, tz=tz, so2_24h=so2_24h)
        for field in ("merkle_root", "reading_count", "first_reading_at", "last_reading_at", "pollutants"):
            mine, theirs = getattr(rebuilt, field), getattr(anchored, field)
            if mine != theirs:
                show = (lambda v: v.hex()) if field == "merkle_root" else repr
                raise HourMismatch(f"station {mn} hour {hour}: the packets give {field} {show(mine)[:120]}, the "
                                   f"anchor holds {show(theirs)[:120]}", field=field, computed=mine, anchored=theirs)
        (station,) = self.client.view(self.contract, "station", org, mn_bytes(mn), block=event.block_number)
        try:
            verify_preimage_signature(bytes(station[14]), self.anchor_preimage(anchored, operator_org=org), event.r,
                                      event.s)
        except InvalidSignature:
            raise InvalidSignature(f"the station signature of {mn} hour {hour} does not verify with the station "
                                   f"key at block {event.block_number}") from None
        return HourVerification(mn=mn, hour=hour, merkle_root=anchored.merkle_root,
                                reading_count=anchored.reading_count, aqi=event.aqi,
                                signature_checked_on_chain=event.signature_verified, block_number=event.block_number)
