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

- **Anchor message**: the station's SM2 key (default user ID) signs M = SM3(``anchor_preimage``) with
  ``anchor_preimage = abi.encode(ANCHOR_TAG, chain id, contract, mn, batch)``, ``ANCHOR_TAG =
  keccak256("shancheng.env.HourlyBatch.v1")`` (as the contract's ``anchorPreimage`` view).
- **Key rotation**: the new key signs M = SM3(abi.encode(KEY_ROTATION_TAG, chain id, contract, mn, old key)).
- **Readings commitment** (``merkleRoot``): one leaf per distinct reading, the HJ 212 data segment exactly as
  received (``Packet.data()``: what the frame's CRC covers), leaves ordered by (DataTime, QN, bytes), identical
  re-sent packets counted once; the root is the RFC 9162 tree over SM3 (:mod:`shancheng.sdk.merkle`).
- **Times**: HJ 212 ``DataTime`` is station-local time; China Standard Time (UTC+8) unless ``tz`` says otherwise.
- **Summaries**: per pollutant over the readings whose flag is ``N`` (or absent): CN 2011 uses ``-Rtd``, CN
  2051/2061 ``-Avg`` (and ``-Min``/``-Max`` where given); values x 1000 as integers (min rounded down, max up,
  average half-even). IAQI of the hour's average on the HJ 633 1 h breakpoints (PM on 24 h), table
  ``HJ633_2012`` (contract table 1) by default; other codes (temperature, noise...) have IAQI 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Literal

from eth_abi.abi import encode
from eth_hash.auto import keccak
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..client import Client, Contract, JsonRpcError, Receipt
from ..crypto import SM2PublicKey, sm3
from ..envmon.aqi import HJ212_POLLUTANTS, AQIError, iaqi
from ..envmon.hj212 import HJ212Error, Packet, parse_frame
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

__all__ = [
    "ANCHOR_TAG",
    "CHINA_STANDARD_TIME",
    "HOURLY_BATCH_TYPE",
    "IAQI_TABLES",
    "KEY_ROTATION_TAG",
    "POLLUTANT_TYPE",
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
    "anchor_preimage",
    "code8",
    "hour_of",
    "key_rotation_preimage",
    "mn_bytes",
    "public_key64",
    "readings_root",
    "verify_preimage_signature",
]

ANCHOR_TAG = keccak(b"shancheng.env.HourlyBatch.v1")
KEY_ROTATION_TAG = keccak(b"shancheng.env.station-key-rotation.v1")
POLLUTANT_TYPE = "(bytes8,int64,int64,int64,uint16)"
HOURLY_BATCH_TYPE = f"(uint64,bytes32,uint32,uint64,uint64,uint8,{POLLUTANT_TYPE}[])"
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


# ------------------------------------------------------------------------------------------------ recipes


def mn_bytes(mn: str) -> bytes:
    """The ``bytes24`` station key of an HJ 212 MN: 1-24 ASCII letters/digits, zero-padded on the right."""
    if not isinstance(mn, str) or not 1 <= len(mn) <= 24 or not mn.isascii() or not mn.isalnum():
        raise InvalidInput(f"MN {str(mn)[:40]!r} is not 1-24 ASCII letters or digits (HJ 212)")
    return mn.encode("ascii").ljust(24, b"\0")


def _mn_text(raw: bytes) -> str:
    return bytes(raw).rstrip(b"\0").decode("ascii", "replace")


def code8(code: str) -> bytes:
    """The ``bytes8`` form of an HJ 212 pollutant code such as ``a34004`` (ASCII, zero-padded)."""
    if not isinstance(code, str) or not 1 <= len(code) <= 8 or not code.isascii() or not code.isprintable():
        raise InvalidInput(f"pollutant code {str(code)[:20]!r} is not 1-8 printable ASCII characters")
    return code.encode("ascii").ljust(8, b"\0")


def _address(contract: bytes | str) -> bytes:
    if isinstance(contract, str):
        try:
            contract = bytes.fromhex(contract.removeprefix("0x"))
        except ValueError:
            raise InvalidInput("a contract address must be 0x and 40 hex digits") from None
    if len(contract) != 20:
        raise InvalidInput("a contract address must be 20 bytes")
    return bytes(contract)


def anchor_preimage(chain_id: int, contract: bytes | str, mn: bytes, batch: tuple[Any, ...]) -> bytes:
    """abi.encode(ANCHOR_TAG, chain id, contract, mn, batch): the station signs M = SM3 of these bytes."""
    return encode(["bytes32", "uint256", "address", "bytes24", HOURLY_BATCH_TYPE],
                  [ANCHOR_TAG, chain_id, _address(contract), mn, batch])


def key_rotation_preimage(chain_id: int, contract: bytes | str, mn: bytes, old_public_key: bytes) -> bytes:
    """What a new station key signs (M = SM3 of these bytes) to replace ``old_public_key`` (64 bytes x||y)."""
    return encode(["bytes32", "uint256", "address", "bytes24", "bytes"],
                  [KEY_ROTATION_TAG, chain_id, _address(contract), mn, old_public_key])


def public_key64(key: StaffSigner | SM2PublicKey | bytes) -> bytes:
    """A station key as the contract stores it: 64 bytes x||y (from a signer, a public key, or 64/65 bytes)."""
    if isinstance(key, bytes | bytearray):
        return SM2PublicKey.from_bytes(bytes(key) if len(key) != 64 else b"\x04" + bytes(key)).to_bytes()[1:]
    pub = key if isinstance(key, SM2PublicKey) else key.public_key()
    return pub.to_bytes()[1:]


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


def _milli(value: str, what: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise InvalidInput(f"{what}: {value[:20]!r} is not a number") from None
    if not number.is_finite():
        raise InvalidInput(f"{what}: {value[:20]!r} is not a finite number")
    return number * 1000


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
            if flags.get(code, "N") != "N":
                continue  # maintenance, fault, calibration...: committed in the root, not scored
            what = f"packet {packet.qn} {code}-{kind}"
            value = _milli(text, what)
            values.setdefault(code, []).append(value)
            lows.setdefault(code, []).append(_milli(mins[code], what) if code in mins else value)
            highs.setdefault(code, []).append(_milli(maxs[code], what) if code in maxs else value)
    if not values:
        raise InvalidInput("no reading with a normal (N) flag to summarise")
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
                score = iaqi(name, "1h", avg / 1000, version=table,
                             fallback=so2_24h if name == "SO2" else None)
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
    mn = _mn_text(a["mn"])
    return HourAnchored(mn=mn, hour=a["hour"], batch=HourBatch.from_abi(mn, a["batch"]), aqi=a["aqi"],
                        r=bytes(a["r"]), s=bytes(a["s"]), signature_verified=a["signatureVerified"],
                        block_number=event.block_number, transaction_hash=event.transaction_hash)


def _gap(event: ChainEvent) -> Gap:
    a = event.args
    return Gap(mn=_mn_text(a["mn"]), from_hour=a["fromHour"], to_hour=a["toHour"], block_number=event.block_number)


def _exceedance(event: ChainEvent) -> Exceedance:
    a = event.args
    return Exceedance(mn=_mn_text(a["mn"]), hour=a["hour"], code=bytes(a["code"]).rstrip(b"\0").decode("ascii"),
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

    # -- registry --------------------------------------------------------------------------------
    def register_station(self, spec: StationSpec) -> Station:
        """Register a station (operator org: ``spec.operator_org`` or the client's); returns it as stored."""
        operator = spec.operator_org or self.client.org_id
        send_checked(self.client, self.contract.call("registerStation", spec.to_abi(operator)))
        station = self.station(spec.mn)
        assert station is not None  # the transaction succeeded
        return station

    def deactivate_station(self, mn: str) -> Receipt:
        """Deactivate a station for good (no further anchors)."""
        return send_checked(self.client, self.contract.call("deactivateStation", mn_bytes(mn)))

    def rotate_station_key(self, mn: str, *, new_key: StaffSigner) -> Receipt:
        """Replace the station's SM2 key by ``new_key``, which signs its proof of possession (the rotation message
        names the key it replaces, so the proof serves this rotation only)."""
        current = self.station(mn)
        if current is None:
            raise DomainError(f"station {mn} is not registered")
        preimage = key_rotation_preimage(self.client.chain_id, self.contract.address, mn_bytes(mn),
                                         current.public_key)
        _, r, s = sign_staff_message(new_key, sm3(preimage))
        return send_checked(self.client, self.contract.call("rotateStationKey", mn_bytes(mn), public_key64(new_key),
                                                            r, s))

    # -- anchors ---------------------------------------------------------------------------------
    def anchor_preimage(self, batch: HourBatch) -> bytes:
        return anchor_preimage(self.client.chain_id, self.contract.address, mn_bytes(batch.mn), batch.to_abi())

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
    def station(self, mn: str) -> Station | None:
        """The station, or None when ``mn`` was never registered."""
        (t,) = self.client.view(self.contract, "station", mn_bytes(mn))
        return Station.from_abi(mn, t) if t[6] else None

    def stations(self) -> list[str]:
        """Every registered MN, in registration order."""
        (count,) = self.client.view(self.contract, "stationCount")
        return [_mn_text(self.client.view(self.contract, "stationAt", i)[0]) for i in range(int(count))]

    def anchor_of(self, mn: str, hour: int) -> HourAnchor | None:
        """The anchor of ``hour``, or None when that hour was never anchored."""
        (t,) = self.client.view(self.contract, "anchorOf", mn_bytes(mn), hour)
        if not t[5]:
            return None
        return HourAnchor(merkle_root=bytes(t[0]), reading_count=t[1], first_reading_at=t[2], last_reading_at=t[3],
                          aqi=t[4], anchored_at=t[5])

    def last_anchored_hour(self, mn: str) -> int | None:
        hour, anything = self.client.view(self.contract, "lastAnchoredHour", mn_bytes(mn))
        return int(hour) if anything else None

    def missing_hours(self, mn: str) -> int:
        """Hours never anchored from registration to the current hour (counted gaps plus the silence since)."""
        try:
            (n,) = self.client.view(self.contract, "missingHoursNow", mn_bytes(mn))
        except JsonRpcError as exc:
            raise DomainError(f"station {mn}: {exc.message.removeprefix('execution reverted: ')}") from None
        return int(n)

    def anchors(self, mn: str, *, from_block: int = 0) -> list[HourAnchored]:
        """The station's ``HourAnchored`` events, in chain order."""
        return [_anchored(e) for e in self._events("HourAnchored", mn, from_block)]

    def gaps(self, mn: str, *, from_block: int = 0) -> list[Gap]:
        return [_gap(e) for e in self._events("Gap", mn, from_block)]

    def exceedances(self, mn: str, *, from_block: int = 0) -> list[Exceedance]:
        return [_exceedance(e) for e in self._events("Exceedance", mn, from_block)]

    def _events(self, name: str, mn: str, from_block: int) -> list[ChainEvent]:
        return fetch_events(self.client, self.contract, (name,), topics=(mn_bytes(mn).ljust(32, b"\0"),),
                            from_block=from_block)

    # -- audit -----------------------------------------------------------------------------------
    def verify_hour(self, mn: str, hour: int, packets: Iterable[Packet | bytes], *, from_block: int = 0,
                    tz: tzinfo = CHINA_STANDARD_TIME, so2_24h: Decimal | str | None = None) -> HourVerification:
        """Check raw packets against the anchored hour: the batch rebuilt from them (readings root, count,
        times, every pollutant summary and IAQI, with the anchored IAQI table) must equal the signed batch of the
        ``HourAnchored`` event, and the recorded station signature must verify with the station's key at that
        block. Raises :class:`HourMismatch` (or :class:`InvalidSignature`); never returns False."""
        found = [a for a in self._events("HourAnchored", mn, from_block) if a.args["hour"] == hour]
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
        (station,) = self.client.view(self.contract, "station", mn_bytes(mn), block=event.block_number)
        try:
            verify_preimage_signature(bytes(station[14]), self.anchor_preimage(anchored), event.r, event.s)
        except InvalidSignature:
            raise InvalidSignature(f"the station signature of {mn} hour {hour} does not verify with the station "
                                   f"key at block {event.block_number}") from None
        return HourVerification(mn=mn, hour=hour, merkle_root=anchored.merkle_root,
                                reading_count=anchored.reading_count, aqi=event.aqi,
                                signature_checked_on_chain=event.signature_verified, block_number=event.block_number)
