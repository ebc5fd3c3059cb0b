"""What an accepted HJ 212 data packet becomes in the gateway store: a ``readings`` row (its data segment byte for
byte, its values, each value that cannot be scored flagged with why), its ``station_hours`` row and its alerts.

Packets are committed in groups (one transaction for all that arrived during the previous commit). A group whose
commit fails is committed again one packet at a time, so one packet the database refuses never loses the others:
each is then stored, or refused (the database refused its data: the station is answered QnRtn 2 instead of being
left to resend it forever); once the database itself fails, the rest are left unanswered (the stations resend
them later).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from shancheng.apps.db import insert_ignoring_duplicates
from shancheng.apps.hj212.store import alerts, readings, station_hours
from shancheng.sdk.envmon.aqi import HJ212_POLLUTANTS, AQIError, iaqi
from shancheng.sdk.envmon.hj212 import Packet
from shancheng.sdk.envmon.values import NUMERIC_KINDS, number_problem, scored_value, unscored_reason

__all__ = ["Accepted", "ListenerStats", "PacketStore", "Stored", "value_problem", "values_of"]

log = logging.getLogger("shancheng.hj212")
#: the item kind whose value is the reading's value, per data command
VALUE_KIND = {"2011": "Rtd", "2051": "Avg", "2061": "Avg", "2031": "Avg"}


@dataclass
class ListenerStats:
    """Counters of a running listener (read them from the loop thread or accept a torn read)."""

    connections: int = 0
    refused_connections: int = 0
    evicted: int = 0
    accepted: int = 0
    stored: int = 0
    duplicates: int = 0
    acks: int = 0
    refusals: Counter[int] = field(default_factory=Counter)
    closed_bad: int = 0
    closed_timeout: int = 0
    closed_unauthenticated: int = 0
    auth_failures: int = 0
    lockouts: int = 0
    alerts: int = 0
    store_errors: int = 0
    time_calibrations: int = 0


@dataclass
class Accepted:
    """A data packet accepted by the listener, waiting for the writer; ``reply`` is sent once it is stored."""

    packet: Packet
    data: str
    data_time: int
    values: dict[str, dict[str, Any]]
    writer: asyncio.StreamWriter | None
    reply: bytes | None


@dataclass
class Stored:
    """The outcome of a group: packets stored (answer them), refused by the database (refuse them), and left
    unanswered because the database failed (the station resends them)."""

    stored: list[Accepted] = field(default_factory=list)
    refused: list[Accepted] = field(default_factory=list)
    unanswered: list[Accepted] = field(default_factory=list)


def value_problem(packet: Packet) -> str | None:
    """The first numeric item of ``packet`` that is not an HJ 212 number, as ``"a34004-Rtd='NaN': why"``."""
    for key, text in packet.cp.items():
        code, sep, kind = key.rpartition("-")
        if sep and code and kind in NUMERIC_KINDS:
            problem = number_problem(text)
            if problem is not None:
                return f"{key}={text[:20]!r}: {problem}"
    return None


def values_of(packet: Packet) -> dict[str, dict[str, Any]]:
    """Per pollutant code: its numeric items (Rtd/Avg/Min/Max/Cou as floats), other items as text, ``value`` (the
    Rtd of a real-time packet, the Avg otherwise) and, when the value is not scored (-9999, a negative
    concentration), ``unscored`` with why. The numbers were checked at accept time (:func:`value_problem`)."""
    out: dict[str, dict[str, Any]] = {}
    texts: dict[str, str] = {}
    main = VALUE_KIND[packet.cn]
    for key, text in packet.cp.items():
        code, sep, kind = key.rpartition("-")
        if not sep or not code:
            continue
        entry = out.setdefault(code, {})
        if kind in NUMERIC_KINDS:
            number = float(text) if number_problem(text) is None else None
            entry[kind] = number if number is not None and math.isfinite(number) else None
            if kind == main:
                texts[code] = text
        else:
            entry[kind] = text
    for code, entry in out.items():
        entry["value"] = entry.get(main)
        reason = unscored_reason(code, texts[code]) if code in texts else None
        if reason is not None:
            entry["unscored"] = reason
    return out


class PacketStore:
    """Commits groups of accepted packets (called on the listener's single writer thread)."""

    def __init__(self, *, engine: Engine, stats: ListenerStats, limits: Mapping[str, float],
                 clock: Callable[[], float]) -> None:
        self.engine = engine
        self.stats = stats
        self.limits = limits
        self.clock = clock

    def store(self, batch: list[Accepted]) -> Stored:
        """Commit ``batch`` in one transaction, or, if that fails, each packet in its own."""
        try:
            self._commit(batch)
            return Stored(stored=list(batch))
        except Exception:  # whatever failed, the packets are retried one by one
            log.exception("HJ 212: storing a group of %d packets failed; storing them one by one", len(batch))
        outcome = Stored()
        for n, item in enumerate(batch):
            try:
                self._commit([item])
            except OperationalError as exc:  # the database itself failed: the rest would fail alike
                log.error("HJ 212: the database failed storing %s/%s; %d packets left unanswered: %s",
                          item.packet.mn, item.packet.qn, len(batch) - n, str(exc).splitlines()[0][:200])
                outcome.unanswered += batch[n:]
                break
            except Exception as exc:  # noqa: BLE001 - this packet's data is refused; the others go on
                log.error("HJ 212: the database refused packet %s/%s: %s", item.packet.mn, item.packet.qn,
                          str(exc).splitlines()[0][:200])
                outcome.refused.append(item)
            else:
                outcome.stored.append(item)
        self.stats.store_errors += len(outcome.refused) + len(outcome.unanswered)
        return outcome

    def _commit(self, batch: list[Accepted]) -> None:
        now = self.clock()
        seen: set[tuple[str, str, str, int]] = set()
        rows = []
        hours = set()
        alert_rows: list[dict[str, Any]] = []
        duplicates = 0
        for item in batch:
            p = item.packet
            key = (p.mn, p.qn, p.cn, item.data_time)  # history uploads share their request's QN
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            rows.append({"mn": p.mn, "qn": p.qn, "cn": p.cn, "data_time": item.data_time, "received_at": now,
                         "codes": "," + ",".join(item.values) + ",", "values": item.values, "data": item.data})
            hours.add((p.mn, item.data_time // 3600))
            alert_rows += self._alerts(p.mn, item.data_time, item.packet, now)
        with self.engine.begin() as conn:
            result = conn.execute(insert_ignoring_duplicates(self.engine, readings), rows)
            conn.execute(insert_ignoring_duplicates(self.engine, station_hours),
                         [{"mn": mn, "hour": hour, "reading_count": 0, "status": "open", "updated_at": now}
                          for mn, hour in sorted(hours)])
            if alert_rows:
                conn.execute(insert_ignoring_duplicates(self.engine, alerts), alert_rows)
        inserted = result.rowcount if result.rowcount is not None and result.rowcount >= 0 else len(rows)
        self.stats.duplicates += duplicates + len(rows) - inserted
        self.stats.stored += inserted
        self.stats.accepted += len(batch)
        self.stats.alerts += len(alert_rows)
        for a in alert_rows:
            log.warning("HJ 212 alert: station %s %s=%s at %s (%s above %s)", a["mn"], a["code"], a["value"],
                        a["data_time"], a["kind"], a["threshold"])

    def _alerts(self, mn: str, data_time: int, packet: Packet, now: float) -> list[dict[str, Any]]:
        """IAQI > 100 (HJ 633) and configured limits, over the values that are scored (flag N, a usable number)."""
        out = []
        kind = VALUE_KIND[packet.cn]
        flags = packet.cp.values("Flag")
        for code, text in packet.cp.values(kind).items():
            number = scored_value(code, text) if flags.get(code, "N") == "N" else None
            if number is None:
                continue
            value = float(number)
            pollutant = HJ212_POLLUTANTS.get(code)
            if pollutant is not None:
                try:
                    score = iaqi(pollutant, "1h", number)
                except AQIError:
                    score = iaqi(pollutant, "24h", number)  # SO2 1h above 800: scored on 24h breakpoints
                if score > 100:
                    out.append({"mn": mn, "data_time": data_time, "code": code, "kind": "iaqi", "value": value,
                                "iaqi": score, "threshold": 100.0, "created_at": now})
            limit = self.limits.get(code)
            if limit is not None and value > limit:
                out.append({"mn": mn, "data_time": data_time, "code": code, "kind": "limit", "value": value,
                            "iaqi": None, "threshold": limit, "created_at": now})
        return out
