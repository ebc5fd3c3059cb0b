"""Environmental monitoring API: the HJ 212 stations of this gateway, their readings, hours (AQI per HJ 633,
level and colour band, anchored or not, tx hash, a verify link) and exceedance alerts.

Reads: station_operator, regulator, auditor, admin. ``POST /api/v1/stations`` (admin) registers a station in the
listener's registry AND on chain (``EnvMonitoring.registerStation``) with a new SM2 key the gateway keeps for it.
``POST .../hours/{hour}/anchor`` (admin, station_operator) anchors an hour at once; ``GET .../verify`` rebuilds the
hour from the stored packets and checks it against the chain (``EnvMonitoring.verify_hour``).
``POST .../commands`` (admin, station_operator) sends an HJ 212-2017 command to a connected station (audited).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from shancheng.apps.gateway.audit import AUDIT_DETAIL
from shancheng.apps.gateway.deps import Principal, ServicesDep, require
from shancheng.apps.gateway.pagination import Cursor, Limit, Page, paginate_query
from shancheng.apps.gateway.problems import Problem
from shancheng.apps.gateway.services import Services
from shancheng.apps.hj212.anchoring import HourAnchorer, hour_packets
from shancheng.apps.hj212.control import SentCommand
from shancheng.apps.hj212.listener import ListenerHandle, StationNotConnected
from shancheng.apps.hj212.registry import Station, generate_password
from shancheng.apps.hj212.store import alerts, readings, station_hours
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.domain.envmon import EnvMonitoring, HourBatch, StationSpec
from shancheng.sdk.envmon.aqi import band_for
from shancheng.sdk.errors import InvalidInput, ShanchengError, VerificationError
from shancheng.sdk.strict_json import to_hex

router = APIRouter(prefix="/api/v1", tags=["env"])

READERS = ("station_operator", "regulator", "auditor", "admin")
Reader = Annotated[Principal, Depends(require(*READERS))]
Admin = Annotated[Principal, Depends(require("admin"))]
Operator = Annotated[Principal, Depends(require("admin", "station_operator"))]
MN = Annotated[str, Path(pattern=r"^[0-9A-Za-z]{1,24}$", description="the station's HJ 212 MN")]
Hour = Annotated[int, Path(ge=0, le=1 << 40, description="unix hour (seconds // 3600)")]
Time = Annotated[int | None, Query(ge=0, le=1 << 40, description="unix seconds")]
Code = Annotated[str | None, Query(pattern=r"^[0-9A-Za-z]{1,8}$", description="HJ 212 pollutant code")]


class StationOut(BaseModel):
    mn: str
    st: str
    name: str
    org: str
    pollutants: list[str]
    public_key: str
    latitude: float
    longitude: float
    active: bool
    registered_at: float
    tx_hash: str | None


class StationCreated(StationOut):
    #: the station's HJ 212 PW when the gateway generated it (shown this once: only its HMAC is kept)
    password: str | None = None


class StationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mn: str = Field(pattern=r"^[0-9A-Za-z]{1,24}$")
    password: str | None = Field(default=None, pattern=r"^[0-9A-Za-z]{1,9}$",
                                 description="the station's HJ 212 PW; omitted: the gateway generates 9 random "
                                             "letters and digits and answers it once")
    st: str = Field(pattern=r"^(21|22|23|31|32)$")
    name: str = Field(default="", max_length=200)
    pollutants: list[Annotated[str, Field(pattern=r"^[0-9A-Za-z]{1,8}$")]] = Field(min_length=1, max_length=32)
    latitude: Decimal = Field(default=Decimal(0), ge=-90, le=90, max_digits=12)
    longitude: Decimal = Field(default=Decimal(0), ge=-180, le=180, max_digits=12)


class ReadingOut(BaseModel):
    id: int
    mn: str
    qn: str
    cn: str
    data_time: int
    received_at: float
    values: dict[str, dict[str, Any]]


class HourOut(BaseModel):
    mn: str
    hour: int
    start: int
    reading_count: int
    aqi: int | None
    level: int | None
    band: str | None
    band_en: str | None
    colour: str | None
    primary_pollutants: list[str]
    iaqi: dict[str, int] | None
    status: str
    anchored: bool
    anchored_count: int | None
    tx_hash: str | None
    block_number: int | None
    merkle_root: str | None
    error: str | None
    #: what an anchored hour lacks after its backfill attempt (None: complete)
    gaps: str | None
    verify: str


class AlertOut(BaseModel):
    id: int
    mn: str
    data_time: int
    code: str
    kind: str
    value: float | None
    iaqi: int | None
    threshold: float
    created_at: float


def _listener(services: Services) -> ListenerHandle:
    handle = services.hj212
    if handle is None:
        raise Problem(status=404, detail="this gateway runs no HJ 212 listener", type_suffix="no-hj212")
    return handle


def _station_out(s: Station) -> StationOut:
    return StationOut(mn=s.mn, st=s.st, name=s.name, org=s.org, pollutants=list(s.pollutants),
                      public_key=s.public_key.hex(), latitude=s.lat_e6 / 1e6, longitude=s.lon_e6 / 1e6,
                      active=s.active, registered_at=s.registered_at, tx_hash=s.tx_hash)


def _station(services: Services, mn: str) -> Station:
    station = _listener(services).listener.registry.get(mn)
    if station is None:
        raise Problem(status=404, detail=f"no station {mn} on this gateway", type_suffix="no-station")
    return station


@router.get("/stations", response_model=list[StationOut])
def list_stations(_: Reader, services: ServicesDep) -> list[StationOut]:
    return [_station_out(s) for s in _listener(services).listener.registry.all()]


@router.post("/stations", response_model=StationCreated, status_code=201)
def register_station(body: StationIn, principal: Admin, services: ServicesDep) -> StationCreated:
    """Register a station: a new SM2 key (kept by the gateway), ``EnvMonitoring.registerStation``, the registry.
    Without a ``password`` the gateway generates one and answers it in this response only."""
    registry = _listener(services).listener.registry
    if registry.get(body.mn) is not None:
        raise Problem(status=409, detail=f"station {body.mn} is already registered", type_suffix="station-exists")
    key = SM2PrivateKey.generate()
    env = EnvMonitoring(services.client)
    spec = StationSpec.model_validate({"mn": body.mn, "st_type": int(body.st), "latitude": body.latitude,
                                       "longitude": body.longitude, "public_key": key.public_key().to_bytes()})
    if env.station(body.mn) is not None:
        raise Problem(status=409, detail=f"station {body.mn} is already registered on chain", type_suffix="station-exists")
    registry.store_key(body.mn, key)
    env.register_station(spec, station_key=key)  # the new key proves possession on chain
    password = body.password if body.password is not None else generate_password()
    station = registry.add(mn=body.mn, password=password, st=body.st, org=principal.org,
                           pollutants=body.pollutants, public_key=key.public_key(), name=body.name,
                           lat_e6=int(body.latitude * 1_000_000), lon_e6=int(body.longitude * 1_000_000))
    return StationCreated(**_station_out(station).model_dump(),
                          password=password if body.password is None else None)


@router.get("/stations/{mn}", response_model=StationOut)
def get_station(mn: MN, _: Reader, services: ServicesDep) -> StationOut:
    return _station_out(_station(services, mn))


@router.get("/stations/{mn}/readings", response_model=Page[ReadingOut])
def list_readings(mn: MN, _: Reader, services: ServicesDep, limit: Limit = 50, cursor: Cursor = None,
                  from_: Annotated[int | None, Query(alias="from", ge=0, le=1 << 40)] = None, to: Time = None,
                  code: Code = None) -> Page[ReadingOut]:
    """Readings of the station in [from, to) (unix seconds), newest first, optionally only those with ``code``."""
    _station(services, mn)
    query = select(readings.c.id, readings.c.mn, readings.c.qn, readings.c.cn, readings.c.data_time,
                   readings.c.received_at, readings.c["values"]).where(readings.c.mn == mn)
    if from_ is not None:
        query = query.where(readings.c.data_time >= from_)
    if to is not None:
        query = query.where(readings.c.data_time < to)
    if code is not None:
        query = query.where(readings.c.codes.contains(f",{code},"))

    def item(row: Any) -> ReadingOut:
        values = _finite(row["values"])
        if code is not None:
            values = {code: values[code]} if code in values else {}
        return ReadingOut(id=row["id"], mn=row["mn"], qn=row["qn"], cn=row["cn"], data_time=row["data_time"],
                          received_at=row["received_at"], values=values)

    return paginate_query(services.engine, query, readings.c.id, limit=limit, cursor=cursor, item=item,
                          descending=True)


def _finite_number(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _finite(values: Any) -> dict[str, dict[str, Any]]:
    """Stored values as JSON can carry them: a non-finite number (stored before values were checked) is null."""
    if not isinstance(values, dict):
        return {}
    return {str(code): {k: _finite_number(v) for k, v in entry.items()}
            for code, entry in values.items() if isinstance(entry, dict)}


def _hour_out(row: Any, services: Services, tz: Any) -> HourOut:
    mn, hour = row["mn"], row["hour"]
    aqi, iaqi, count = row["aqi"], row["iaqi"], row["reading_count"]
    primary = [p for p in (row["primary_pollutants"] or "").split(",") if p]
    if row["status"] != "anchored":  # the hour's AQI so far, from the stored packets
        try:
            packets, _ = hour_packets(services.engine, mn, hour)
            count = len(packets)
            batch = HourBatch.from_packets(mn, hour, packets, tz=tz)
        except (ShanchengError, ValueError):  # no AQI so far (no scored value, or a stored packet is unreadable)
            batch = None
        if batch is not None:
            aqi, iaqi = batch.aqi, {p.code: p.iaqi for p in batch.pollutants}
            primary = [p.code for p in batch.pollutants if aqi > 50 and p.iaqi == aqi]
    band = band_for(min(aqi, 500)) if aqi is not None else None
    return HourOut(mn=mn, hour=hour, start=hour * 3600, reading_count=count, aqi=aqi,
                   level=band.level if band else None, band=band.name_zh if band else None,
                   band_en=band.name_en if band else None, colour=band.colour if band else None,
                   primary_pollutants=primary, iaqi=iaqi, status=row["status"], anchored=row["status"] == "anchored",
                   anchored_count=row["anchored_count"], tx_hash=row["tx_hash"], block_number=row["block_number"],
                   merkle_root=row["merkle_root"], error=row["error"], gaps=row["gaps"],
                   verify=f"/api/v1/stations/{mn}/hours/{hour}/verify")


@router.get("/stations/{mn}/hours", response_model=Page[HourOut])
def list_hours(mn: MN, _: Reader, services: ServicesDep, limit: Limit = 50, cursor: Cursor = None,
               from_: Annotated[int | None, Query(alias="from", ge=0, le=1 << 40)] = None, to: Time = None) -> Page[HourOut]:
    """The station's hours (newest first) in [from, to) (unix seconds) with AQI, band and anchoring status."""
    _station(services, mn)
    handle = _listener(services)
    query = select(station_hours).where(station_hours.c.mn == mn)
    if from_ is not None:
        query = query.where(station_hours.c.hour >= from_ // 3600)
    if to is not None:
        query = query.where(station_hours.c.hour * 3600 < to)
    tz = handle.listener.tz
    return paginate_query(services.engine, query, station_hours.c.hour, limit=limit, cursor=cursor,
                          item=lambda row: _hour_out(row, services, tz), descending=True)


def _anchorer(services: Services) -> HourAnchorer:
    anchorer = _listener(services).listener.anchorer
    if anchorer is None:
        raise Problem(status=404, detail="this gateway's listener does not anchor", type_suffix="no-anchoring")
    return anchorer


@router.post("/stations/{mn}/hours/{hour}/anchor", response_model=HourOut)
def anchor_hour(mn: MN, hour: Hour, _: Operator, services: ServicesDep) -> HourOut:
    """Anchor the hour now (an open current hour is closed early); 409 when the chain refuses it."""
    _station(services, mn)
    row = _anchorer(services).anchor_hour(mn, hour)
    if row.get("already_anchored"):
        raise Problem(status=409, detail=f"hour {hour} of station {mn} is already anchored (tx {row['tx_hash']})",
                      type_suffix="already-anchored")
    if row.get("status") != "anchored":
        raise Problem(status=409, detail=row.get("error") or f"hour {hour} of {mn} could not be anchored",
                      type_suffix="anchor-refused")
    return _hour_out(row, services, _listener(services).listener.tz)


@router.get("/stations/{mn}/hours/{hour}/verify")
def verify_hour(mn: MN, hour: Hour, _: Reader, services: ServicesDep) -> dict[str, Any]:
    """Rebuild the anchored hour from the stored packets it covers and check it against the chain and the
    station's signature: ``{verified, ...}`` (always 200 once the hour is anchored)."""
    _station(services, mn)
    with services.engine.connect() as conn:
        row = conn.execute(select(station_hours).where(station_hours.c.mn == mn, station_hours.c.hour == hour)
                           ).mappings().first()
    if row is None or row["status"] != "anchored":
        raise Problem(status=404, detail=f"hour {hour} of station {mn} is not anchored", type_suffix="not-anchored")
    handle = _listener(services)
    try:
        packets, _last = hour_packets(services.engine, mn, hour, up_to_id=row["last_reading_id"])
        result = EnvMonitoring(services.client).verify_hour(mn, hour, packets, tz=handle.listener.tz)
    except (VerificationError, InvalidInput, ValueError) as exc:  # ValueError: a stored packet is unreadable
        return {"verified": False, "mn": mn, "hour": hour, "reason": str(exc).splitlines()[0][:500]}
    return {"verified": True, "mn": mn, "hour": hour, "reading_count": result.reading_count,
            "merkle_root": to_hex(result.merkle_root), "aqi": result.aqi, "block_number": result.block_number,
            "signature_checked_on_chain": result.signature_checked_on_chain}


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cn: str = Field(pattern=r"^[0-9]{4}$", description="an HJ 212-2017 command a platform sends, e.g. 1062")
    fields: dict[Annotated[str, Field(pattern=r"^[0-9A-Za-z-]{1,24}$")],
                 Annotated[str, Field(pattern=r"^[0-9A-Za-z.:-]{0,64}$")]] = Field(default_factory=dict, max_length=16)


def _snapshot(sent: SentCommand | None) -> SentCommand | None:
    return None if sent is None else sent.snapshot()


@router.post("/stations/{mn}/commands", response_model=SentCommand, status_code=202)
def send_command(mn: MN, body: CommandIn, request: Request, _: Operator, services: ServicesDep) -> SentCommand:
    """Send a command of the HJ 212-2017 table to the connected station (reverse control: set the real-time
    interval, calibrate, sample now, ...); its answers (9011 QnRtn, uploads, 9012 ExeRtn) show at
    ``GET .../commands/{qn}``. 409 when the station is not connected."""
    _station(services, mn)
    handle = _listener(services)
    try:
        sent: SentCommand = handle.call(lambda: handle.listener.send_command(mn, body.cn, dict(body.fields)).snapshot())
    except StationNotConnected as exc:
        raise Problem(status=409, detail=str(exc), type_suffix="station-not-connected") from None
    setattr(request.state, AUDIT_DETAIL, f"HJ 212 command CN {sent.cn} QN {sent.qn} to station {mn}: "
            + (";".join(f"{k}={v}" for k, v in sent.fields.items()) or "no fields"))
    return sent


@router.get("/stations/{mn}/commands/{qn}", response_model=SentCommand)
def get_command(mn: MN, qn: Annotated[str, Path(pattern=r"^[0-9]{17}$")], _: Reader, services: ServicesDep) -> SentCommand:
    """A command sent to the station and what it answered so far (kept in the listener's memory)."""
    _station(services, mn)
    handle = _listener(services)
    sent: SentCommand | None = handle.call(lambda: _snapshot(handle.listener.commands.get(mn, qn)))
    if sent is None:
        raise Problem(status=404, detail=f"no command {qn} was sent to station {mn} (since the listener started)",
                      type_suffix="no-command")
    return sent


@router.get("/alerts", response_model=Page[AlertOut])
def list_alerts(_: Reader, services: ServicesDep, limit: Limit = 50, cursor: Cursor = None,
                mn: Annotated[str | None, Query(pattern=r"^[0-9A-Za-z]{1,24}$")] = None) -> Page[AlertOut]:
    """Exceedance alerts, newest first (optionally of one station)."""
    query = select(alerts)
    if mn is not None:
        query = query.where(alerts.c.mn == mn)
    return paginate_query(services.engine, query, alerts.c.id, limit=limit, cursor=cursor,
                          item=lambda row: AlertOut(**{**row, "value": _finite_number(row["value"])}),
                          descending=True)
