"""Environmental monitoring on chain (``EnvMonitoring``): stations, SM2-signed hourly batches, gaps, exceedances.

A monitoring operator registers its HJ 212 stations, builds one :class:`HourBatch` per station and hour from the
station's packets (per-pollutant min/max/avg, IAQI per HJ 633 with a named breakpoint table, an RFC 9162 SM3
Merkle root over the raw readings) and anchors it with the station's SM2 signature. An auditor holding the raw
packets checks them against the chain with :meth:`EnvMonitoring.verify_hour`.

>>> IAQI_TABLES["HJ633_2012"], CHINA_STANDARD_TIME.tzname(None)   # building a batch from packets: see .hours
(1, 'CST')
>>> env = EnvMonitoring(client)                                                   # doctest: +SKIP
>>> env.anchor_hour(batch.mn, batch, station_key=station_key)                    # doctest: +SKIP

The package: :mod:`.hours` (the hourly batch built from packets), :mod:`.messages` (what a station signs),
:mod:`.models` (stations, anchored hours, gaps, exceedances, audit results) and :mod:`.client`
(:class:`EnvMonitoring`).

Recipes (what is signed, what is committed):

- **Stations** live in their operator organisation's namespace (reads default to the client's own); registration,
  anchor and key-rotation messages: :mod:`shancheng.sdk.domain.envmon.messages`.
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

from ..staff import verify_preimage_signature
from .client import EnvMonitoring
from .hours import (
    CHINA_STANDARD_TIME,
    HOUR,
    IAQI_TABLES,
    MAX_POLLUTANTS,
    MAX_READINGS,
    HourBatch,
    PollutantSummary,
    hour_of,
    readings_root,
)
from .messages import (
    ANCHOR_TAG,
    HOURLY_BATCH_TYPE,
    KEY_ROTATION_TAG,
    POLLUTANT_TYPE,
    STATION_POP_TAG,
    anchor_preimage,
    code8,
    key_rotation_preimage,
    mn_bytes,
    mn_text,
    public_key64,
    station_pop_preimage,
)
from .models import (
    AnchorResult,
    Exceedance,
    Gap,
    HourAnchor,
    HourAnchored,
    HourMismatch,
    HourVerification,
    Station,
    StationSpec,
)

__all__ = [
    "ANCHOR_TAG",
    "CHINA_STANDARD_TIME",
    "HOUR",
    "HOURLY_BATCH_TYPE",
    "IAQI_TABLES",
    "KEY_ROTATION_TAG",
    "MAX_POLLUTANTS",
    "MAX_READINGS",
    "POLLUTANT_TYPE",
    "STATION_POP_TAG",
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
    "mn_text",
    "public_key64",
    "readings_root",
    "station_pop_preimage",
    "verify_preimage_signature",
]
