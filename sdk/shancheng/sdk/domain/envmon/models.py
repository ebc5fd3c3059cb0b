"""What EnvMonitoring holds and says: stations (:class:`StationSpec` to register, :class:`Station` as held), anchored
hours, gaps and exceedances read from its events, and what an audit of an hour found."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...client import Receipt
from ...errors import VerificationError
from ..events import ChainEvent
from .hours import HourBatch
from .messages import (
    mn_bytes,
    mn_text,
    public_key64,
)

__all__ = [
    "AnchorResult",
    "Exceedance",
    "Gap",
    "HourAnchor",
    "HourAnchored",
    "HourMismatch",
    "HourVerification",
    "Station",
    "StationSpec",
    "anchored_of",
    "exceedance_of",
    "gap_of",
]

_ST_TYPES = (21, 22, 23, 31, 32)
_GEOHASH = set("0123456789bcdefghjkmnpqrstuvwxyz")


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


# ------------------------------------------------------------------------------------------------ from events


def anchored_of(event: ChainEvent) -> HourAnchored:
    """The anchored hour an ``HourAnchored`` event carries."""
    a = event.args
    mn = mn_text(a["mn"])
    return HourAnchored(mn=mn, hour=a["hour"], batch=HourBatch.from_abi(mn, a["batch"]), aqi=a["aqi"],
                        r=bytes(a["r"]), s=bytes(a["s"]), signature_verified=a["signatureVerified"],
                        block_number=event.block_number, transaction_hash=event.transaction_hash)


def gap_of(event: ChainEvent) -> Gap:
    """The unanchored hours a ``Gap`` event reports."""
    a = event.args
    return Gap(mn=mn_text(a["mn"]), from_hour=a["fromHour"], to_hour=a["toHour"], block_number=event.block_number)


def exceedance_of(event: ChainEvent) -> Exceedance:
    """The exceedance an ``Exceedance`` event reports."""
    a = event.args
    return Exceedance(mn=mn_text(a["mn"]), hour=a["hour"], code=bytes(a["code"]).rstrip(b"\0").decode("ascii"),
                      iaqi=a["iaqi"], max_milli=a["max"], block_number=event.block_number)
