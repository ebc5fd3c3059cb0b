"""Air quality index per HJ 633, with a versioned breakpoint table.

``iaqi("PM2.5", "24h", 38.2)`` is one pollutant's index, ``compute_aqi({...}, period="1h")`` the AQI of a set
of concentrations (µg/m³; CO in mg/m³) and ``hourly_aqi(packet)`` the AQI of one HJ 212 hourly packet.

Rules implemented (HJ 633-2012):

- IAQI = (I_hi - I_lo) / (BP_hi - BP_lo) x (C - BP_lo) + I_lo, computed exactly and rounded up.
- AQI is the highest IAQI; the primary pollutants are those with that IAQI when AQI > 50; a pollutant with
  IAQI > 100 exceeds the standard.
- Hourly PM10 and PM2.5 values are scored on the 24h breakpoints.
- SO2 1h above 800 µg/m³ is scored on the 24h breakpoints with the 24h average (which must be given);
  O3 8h above 800 µg/m³ is scored on the 1h breakpoints with the 1h value (which must be given).
- A concentration above the top breakpoint (IAQI 500) scores 500: the index is capped, not extrapolated.

HJ 633-2026 changes only the PM2.5 and PM10 breakpoints; its values are not in this SDK's sources, so the
version exists as a named slot that refuses with a clear error instead of inventing numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Literal

from shancheng.sdk.envmon.hj212 import Packet
from shancheng.sdk.errors import InvalidInput

__all__ = [
    "BANDS",
    "BREAKPOINTS",
    "DEFAULT_VERSION",
    "HJ212_POLLUTANTS",
    "IAQI_LEVELS",
    "AQIError",
    "AQIResult",
    "Band",
    "band_for",
    "compute_aqi",
    "hourly_aqi",
    "iaqi",
]

Pollutant = Literal["SO2", "NO2", "PM10", "CO", "O3", "PM2.5"]
Period = Literal["1h", "8h", "24h"]
Concentration = int | float | str | Decimal | Fraction

IAQI_LEVELS = (0, 50, 100, 150, 200, 300, 400, 500)
DEFAULT_VERSION = "HJ633_2012"

_HJ633_2012: dict[tuple[str, str], tuple[int, ...]] = {
    ("SO2", "24h"): (0, 50, 150, 475, 800, 1600, 2100, 2620),
    ("SO2", "1h"): (0, 150, 500, 650, 800),
    ("NO2", "24h"): (0, 40, 80, 180, 280, 565, 750, 940),
    ("NO2", "1h"): (0, 100, 200, 700, 1200, 2340, 3090, 3840),
    ("PM10", "24h"): (0, 50, 150, 250, 350, 420, 500, 600),
    ("CO", "24h"): (0, 2, 4, 14, 24, 36, 48, 60),
    ("CO", "1h"): (0, 5, 10, 35, 60, 90, 120, 150),
    ("O3", "1h"): (0, 160, 200, 300, 400, 800, 1000, 1200),
    ("O3", "8h"): (0, 100, 160, 215, 265, 800),
    ("PM2.5", "24h"): (0, 35, 75, 115, 150, 250, 350, 500),
}

#: Breakpoint tables by version; ``None`` marks a known version whose values this SDK does not have.
BREAKPOINTS: dict[str, dict[tuple[str, str], tuple[int, ...]] | None] = {
    "HJ633_2012": _HJ633_2012,
    "HJ633_2026": None,
}

#: HJ 212 pollutant codes scored by the AQI.
HJ212_POLLUTANTS: dict[str, Pollutant] = {
    "a34004": "PM2.5",
    "a34002": "PM10",
    "a21026": "SO2",
    "a21004": "NO2",
    "a05024": "O3",
    "a21005": "CO",
}


class AQIError(InvalidInput):
    """A concentration, pollutant, period or breakpoint version that cannot be scored."""


@dataclass(frozen=True)
class Band:
    level: int
    low: int
    high: int
    name_zh: str
    name_en: str
    colour: str


BANDS = (
    Band(1, 0, 50, "优", "Excellent", "#00E400"),
    Band(2, 51, 100, "良", "Good", "#FFFF00"),
    Band(3, 101, 150, "轻度污染", "Lightly polluted", "#FF7E00"),
    Band(4, 151, 200, "中度污染", "Moderately polluted", "#FF0000"),
    Band(5, 201, 300, "重度污染", "Heavily polluted", "#99004C"),
    Band(6, 301, 500, "严重污染", "Severely polluted", "#7E0023"),
)


def band_for(aqi: int) -> Band:
    """The band of an AQI value (0-500)."""
    if isinstance(aqi, bool) or not isinstance(aqi, int) or not 0 <= aqi <= 500:
        raise AQIError(f"AQI {aqi!r} is not an integer 0-500")
    for band in BANDS:
        if aqi <= band.high:
            return band
    raise AssertionError("unreachable")  # pragma: no cover


def _table(version: str) -> dict[tuple[str, str], tuple[int, ...]]:
    if version not in BREAKPOINTS:
        raise AQIError(f"unknown AQI breakpoint version {version!r}; known: {', '.join(BREAKPOINTS)}")
    table = BREAKPOINTS[version]
    if table is None:
        raise AQIError(
            f"{version} changes the PM2.5 and PM10 breakpoints and its values are not in this SDK; use {DEFAULT_VERSION}"
        )
    return table


def _exact(value: Concentration, what: str) -> Fraction:
    if isinstance(value, bool):
        raise AQIError(f"{what} concentration {value!r} is not a number")
    try:
        number = Fraction(Decimal(str(value))) if not isinstance(value, Fraction) else value
    except (InvalidOperation, ValueError, TypeError):
        raise AQIError(f"{what} concentration {value!r} is not a number") from None
    if number < 0:
        raise AQIError(f"{what} concentration {value!r} is negative")
    return number


def _interpolate(points: tuple[int, ...], c: Fraction) -> int:
    if c > points[-1]:
        return 500  # above the top breakpoint: capped (short tables are handled by the special rules first)
    for i in range(1, len(points)):
        if c <= points[i]:
            lo, hi = points[i - 1], points[i]
            i_lo, i_hi = IAQI_LEVELS[i - 1], IAQI_LEVELS[i]
            return math.ceil(Fraction(i_hi - i_lo, hi - lo) * (c - lo) + i_lo)
    raise AssertionError("unreachable")  # pragma: no cover


def iaqi(
    pollutant: str,
    period: str,
    concentration: Concentration,
    *,
    version: str = DEFAULT_VERSION,
    fallback: Concentration | None = None,
) -> int:
    """The IAQI of one pollutant for one averaging period (``"1h"``, ``"8h"`` or ``"24h"``).

    ``fallback`` is the SO2 24h average (needed when SO2 1h is above 800) or the O3 1h value (needed when O3 8h
    is above 800).
    """
    table = _table(version)
    what = f"{pollutant} {period}"
    c = _exact(concentration, what)
    if pollutant in ("PM10", "PM2.5") and period == "1h":
        period = "24h"
    points = table.get((pollutant, period))
    if points is None:
        raise AQIError(f"no {version} breakpoints for {what}")
    if (pollutant, period) in (("SO2", "1h"), ("O3", "8h")) and c > points[-1]:
        other = "24h" if pollutant == "SO2" else "1h"
        if fallback is None:
            raise AQIError(f"{what} above {points[-1]} is scored on the {other} value; give it as fallback")
        return iaqi(pollutant, other, fallback, version=version)
    return _interpolate(points, c)


@dataclass(frozen=True)
class AQIResult:
    aqi: int
    iaqi: dict[str, int]
    primary: tuple[str, ...]
    exceeding: tuple[str, ...]
    band: Band
    data_time: str | None = None
    excluded: dict[str, str] = field(default_factory=dict)


_PERIODS: dict[str, dict[str, str]] = {
    "1h": {"SO2": "1h", "NO2": "1h", "PM10": "1h", "CO": "1h", "O3": "1h", "PM2.5": "1h"},
    "24h": {"SO2": "24h", "NO2": "24h", "PM10": "24h", "CO": "24h", "O3": "8h", "PM2.5": "24h"},
}


def compute_aqi(
    concentrations: Mapping[str, Concentration],
    *,
    period: Literal["1h", "24h"],
    version: str = DEFAULT_VERSION,
    so2_24h: Concentration | None = None,
    o3_1h: Concentration | None = None,
) -> AQIResult:
    """The AQI of concentrations keyed by pollutant (SO2, NO2, PM10, CO, O3, PM2.5).

    ``period="1h"`` scores hourly values (PM on 24h breakpoints); ``period="24h"`` scores daily values (O3 is the
    daily maximum 8h average). ``so2_24h`` / ``o3_1h`` are used only by the special rules.
    """
    if period not in _PERIODS:
        raise AQIError(f"AQI period {period!r} is not 1h or 24h")
    if not concentrations:
        raise AQIError("no pollutant concentration to score")
    scores: dict[str, int] = {}
    for pollutant, value in concentrations.items():
        if pollutant not in _PERIODS[period]:
            raise AQIError(f"{pollutant!r} is not an AQI pollutant (SO2, NO2, PM10, CO, O3, PM2.5)")
        p = _PERIODS[period][pollutant]
        fallback = so2_24h if pollutant == "SO2" else o3_1h if pollutant == "O3" else None
        scores[pollutant] = iaqi(pollutant, p, value, version=version, fallback=fallback)
    top = max(scores.values())
    primary = tuple(p for p, s in scores.items() if s == top) if top > 50 else ()
    exceeding = tuple(p for p, s in scores.items() if s > 100)
    return AQIResult(top, scores, primary, exceeding, band_for(top))


def hourly_aqi(packet: Packet, *, version: str = DEFAULT_VERSION, so2_24h: Concentration | None = None) -> AQIResult:
    """The AQI of the hour an HJ 212 packet reports: CN 2061 (``-Avg`` values) or CN 2011 (``-Rtd`` values).

    Only values whose data flag is ``N`` (normal, or absent) are scored; the others are listed in ``excluded``
    with their flag.
    """
    kinds = {"2061": "Avg", "2011": "Rtd"}
    if packet.cn not in kinds:
        raise AQIError(f"CN {packet.cn} is not hourly (2061) or real-time (2011) data")
    values = packet.cp.values(kinds[packet.cn])
    flags = packet.cp.values("Flag")
    concentrations: dict[str, Concentration] = {}
    excluded: dict[str, str] = {}
    for code, name in HJ212_POLLUTANTS.items():
        if code not in values:
            continue
        flag = flags.get(code, "N")
        if flag != "N":
            excluded[name] = flag
            continue
        concentrations[name] = values[code]
    if not concentrations:
        raise AQIError(f"packet {packet.qn} from {packet.mn} has no valid AQI pollutant value")
    result = compute_aqi(concentrations, period="1h", version=version, so2_24h=so2_24h)
    return AQIResult(
        result.aqi, result.iaqi, result.primary, result.exceeding, result.band, packet.cp.data_time, excluded
    )
