"""Hourly anchoring of the stations' readings: one SM2-signed ``EnvMonitoring.anchorHour`` batch per station and
hour (:class:`shancheng.sdk.domain.envmon.HourBatch`: Merkle root of the hour's packets, per-pollutant summaries,
IAQI per HJ 633-2012), signed with the station's key that the gateway holds for it (see :mod:`.registry`).

An hour is anchored once it is over (its end + ``delay``), by the listener's background job, or on demand
(``anchor_hour``, e.g. an operator closing the current hour early: readings of that hour that arrive afterwards
are stored but not covered by the anchor — ``anchored_count`` says how many are). The result lands in
``station_hours``: the hour's AQI, level and primary pollutants, status ``anchored`` with tx hash, block and the
last reading id covered, or ``failed`` with the reason. Each hour stands alone: whatever one hour raises, it is
``failed`` with that reason and the job goes on with the next. A node that cannot be reached leaves the hour
``open`` so the next run retries it (that station's later hours wait: the contract takes its hours in order). A
``failed`` hour is not retried by the job; an operator may retry it (``anchor_hour``) as long as no later hour of
the station is anchored.

Before the job anchors an hour that is not complete (no hourly record), it asks the station for the hour's history
and waits for it up to ``backfill_timeout`` (:mod:`.backfill`); the hour is then anchored complete, or with its
gaps named in ``station_hours.gaps``. An hour in which a station sent nothing at all (its link was down) is found
as a hole between two of its hours with readings, within the last :data:`MISSED_HOURS_WINDOW` hours: the job opens
it and asks for its history like any other; if nothing arrives it fails with that reason.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, select, update

from shancheng.apps.db import insert_ignoring_duplicates
from shancheng.apps.hj212.backfill import HOURLY_CN, HistorySource, history_fields, missing_records
from shancheng.apps.hj212.control import StationNotConnected
from shancheng.apps.hj212.registry import StationRegistry
from shancheng.apps.hj212.store import readings, station_hours
from shancheng.sdk.client import Client, NodeUnavailable
from shancheng.sdk.domain.envmon import EnvMonitoring, HourBatch
from shancheng.sdk.envmon.aqi import band_for
from shancheng.sdk.envmon.hj212 import Packet, parse_data
from shancheng.sdk.errors import ShanchengError

__all__ = ["ANCHORED_CNS", "MISSED_HOURS_WINDOW", "HourAnchorer", "hour_packets"]

log = logging.getLogger("shancheng.hj212")
#: the commands whose packets an hourly batch covers (what HourBatch.from_packets accepts)
ANCHORED_CNS = ("2011", "2051", "2061")
HOUR = 3600
#: the job's answer for an hour whose history request is pending
_WAIT = object()
#: how far back (hours) the job looks for hours in which a station sent nothing (bounds its work per run)
MISSED_HOURS_WINDOW = 7 * 24


def hour_packets(engine: Engine, mn: str, hour: int, *, up_to_id: int | None = None,
                 until: float | None = None) -> tuple[list[Packet], int | None]:
    """The stored packets of station ``mn`` in unix hour ``hour`` (optionally only ids <= ``up_to_id`` and
    DataTime <= ``until``) and the highest reading id among them."""
    query = select(readings.c.id, readings.c.data).where(
        readings.c.mn == mn, readings.c.data_time >= hour * HOUR, readings.c.data_time < (hour + 1) * HOUR,
        readings.c.cn.in_(ANCHORED_CNS)).order_by(readings.c.id)
    if up_to_id is not None:
        query = query.where(readings.c.id <= up_to_id)
    if until is not None:
        query = query.where(readings.c.data_time <= until)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [parse_data(r.data.encode("ascii")) for r in rows], (rows[-1].id if rows else None)


class HourAnchorer:
    """Anchors station hours through the gateway's client (the organisation that operates the stations)."""

    def __init__(self, *, engine: Engine, client: Client, registry: StationRegistry, delay: float = 120.0,
                 backfill_timeout: float = 600.0, timezone: str = "Asia/Shanghai",
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.env = EnvMonitoring(client)
        self.registry = registry
        self.delay = delay
        self.backfill_timeout = backfill_timeout
        #: where history requests go (set by the listener when it starts; None: hours are anchored as they are)
        self.history: HistorySource | None = None
        self.tz = ZoneInfo(timezone)
        self.clock = clock

    def anchor_closed_hours(self) -> int:
        """Anchor every open hour that is over (end + delay), oldest first; returns how many were anchored."""
        limit = (self.clock() - self.delay) // HOUR  # hours whose end + delay has passed: hour + 1 <= limit
        self._open_missed_hours(int(limit))
        with self.engine.connect() as conn:
            due = conn.execute(select(station_hours.c.mn, station_hours.c.hour).where(
                station_hours.c.status == "open", station_hours.c.hour + 1 <= limit,
            ).order_by(station_hours.c.mn, station_hours.c.hour)).all()
        done = 0
        waiting: set[str] = set()  # stations whose hour waits for the node: their later hours wait too
        for mn, hour in due:
            if mn in waiting:
                continue
            try:
                note = self._backfill(mn, hour)
                if note is _WAIT:
                    waiting.add(mn)  # its later hours wait too; other stations go on
                    continue
                status = self.anchor_hour(mn, hour, backfill=note if isinstance(note, str) else None).get("status")
            except Exception:  # the database failed: this hour stays open, the others go on
                log.exception("HJ 212: anchoring %s hour %d could not be recorded; retried at the next run", mn, hour)
                waiting.add(mn)
                continue
            if status == "anchored":
                done += 1
            elif status == "open":
                waiting.add(mn)  # the contract takes a station's hours in order: never skip past this one
        return done

    def _open_missed_hours(self, limit: int) -> None:
        """Open a ``station_hours`` row for every hour, within the window, that lies between two hours of a station
        with readings but has none itself: an hour the station missed entirely, so the job asks for its history
        before it anchors the later hours (the contract takes a station's hours in order)."""
        with self.engine.connect() as conn:
            known = conn.execute(select(station_hours.c.mn, station_hours.c.hour, station_hours.c.status).where(
                station_hours.c.hour >= limit - MISSED_HOURS_WINDOW, station_hours.c.hour < limit,
            ).order_by(station_hours.c.mn, station_hours.c.hour)).all()
        settled: dict[str, int] = {}  # per station its latest anchored or failed hour: no hole opens before it
        for mn, hour, status in known:
            if status != "open":
                settled[mn] = hour
        holes: list[dict[str, Any]] = []
        now = self.clock()
        for (mn, hour, _), (next_mn, next_hour, _) in itertools.pairwise(known):
            if mn == next_mn:
                holes += [{"mn": mn, "hour": h, "reading_count": 0, "status": "open", "updated_at": now}
                          for h in range(max(hour, settled.get(mn, hour)) + 1, next_hour)]
        if holes:
            with self.engine.begin() as conn:
                conn.execute(insert_ignoring_duplicates(self.engine, station_hours), holes)
            log.info("HJ 212: %d hour(s) without any reading opened for backfill", len(holes))

    def _backfill(self, mn: str, hour: int) -> object:
        """For the job: ``None`` when the hour is complete (or there is no listener to ask), :data:`_WAIT` while
        its history request is pending, else how the backfill attempt ended (named with the hour's gaps)."""
        if self.history is None or not missing_records(self.engine, mn, hour):
            return None
        row = self._row(mn, hour)
        now = self.clock()
        qn = row.get("backfill_qn")
        if qn is None:
            try:
                qn = self.history.request(mn, HOURLY_CN, history_fields(hour, self.tz))
            except StationNotConnected:
                return "no backfill: the station is not connected"
            except (ShanchengError, TimeoutError, RuntimeError) as exc:  # not sent (the listener stopping, ...)
                log.warning("HJ 212: asking %s for hour %d's history failed: %s", mn, hour, exc)
                return f"no backfill: the request could not be sent ({type(exc).__name__})"
            self._save(mn, hour, (station_hours.c.mn == mn, station_hours.c.hour == hour), backfill_qn=qn,
                       backfill_at=now, updated_at=now)
            log.info("HJ 212: hour %d of %s has gaps; asked the station for its history (QN %s)", hour, mn, qn)
            return _WAIT
        ended = self.history.outcome(mn, qn)
        if ended is not None:
            return f"backfill QN {qn}: the station answered {ended}"
        if now >= (row.get("backfill_at") or 0.0) + self.backfill_timeout:
            return f"backfill QN {qn}: no answer within {self.backfill_timeout:g} s"
        return _WAIT

    def anchor_hour(self, mn: str, hour: int, *, backfill: str | None = None) -> dict[str, Any]:
        """Anchor station ``mn``'s ``hour`` now; returns its ``station_hours`` row (refused: status failed; an hour
        anchored before: unchanged, with ``already_anchored``). An hour that is not complete is anchored with its
        gaps named, and ``backfill`` (how its backfill attempt ended; none: none was made)."""
        key = (station_hours.c.mn == mn, station_hours.c.hour == hour)
        current = self._row(mn, hour)
        if current.get("status") == "anchored":  # never downgraded by a repeated request
            return {**current, "already_anchored": True}
        now = self.clock()
        try:
            missing = missing_records(self.engine, mn, hour)  # before reading the packets: what is read is covered
            packets, last_id = hour_packets(self.engine, mn, hour, until=now - 2)
            if not packets:
                raise ShanchengError(f"station {mn} has no stored reading in hour {hour}"
                                     + (f" ({backfill})" if backfill else ""))
            batch = HourBatch.from_packets(mn, hour, packets, tz=self.tz)
            result = self.env.anchor_hour(mn, batch, station_key=self.registry.station_key(mn))
        except NodeUnavailable as exc:
            log.warning("HJ 212: anchoring %s hour %d waits for the node: %s", mn, hour, exc)
            return self._row(mn, hour)
        except ShanchengError as exc:
            reason = str(exc).splitlines()[0][:500]
            log.warning("HJ 212: anchoring %s hour %d failed: %s", mn, hour, reason)
            self._save(mn, hour, key, status="failed", error=reason, updated_at=now)
            return self._row(mn, hour)
        except Exception as exc:  # a bug must not stop the job: this hour fails with its reason, the next goes on
            log.exception("HJ 212: anchoring %s hour %d failed", mn, hour)
            reason = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500]
            self._save(mn, hour, key, status="failed", error=reason, updated_at=now)
            return self._row(mn, hour)
        gaps = "; ".join([*missing, backfill or "no backfill attempted"])[:500] if missing else None
        top = batch.aqi
        primary = [p.code for p in batch.pollutants if top > 50 and p.iaqi == top]
        self._save(mn, hour, key, status="anchored", error=None, updated_at=now, aqi=top,
                   level=band_for(min(top, 500)).level, primary_pollutants=",".join(primary) or None,
                   iaqi={p.code: p.iaqi for p in batch.pollutants}, reading_count=len(packets),
                   anchored_count=batch.reading_count, last_reading_id=last_id,
                   tx_hash="0x" + result.receipt.transaction_hash.hex(), block_number=result.receipt.block_number,
                   merkle_root="0x" + batch.merkle_root.hex(), gaps=gaps)
        log.info("HJ 212: anchored %s hour %d (%d readings, AQI %d) in block %d", mn, hour, batch.reading_count,
                 top, result.receipt.block_number)
        return self._row(mn, hour)

    def _save(self, mn: str, hour: int, key: tuple[Any, ...], **values: Any) -> None:
        with self.engine.begin() as conn:
            if conn.execute(update(station_hours).where(and_(*key)).values(**values)).rowcount == 0:
                conn.execute(station_hours.insert().values(mn=mn, hour=hour, **{"reading_count": 0, **values}))

    def _row(self, mn: str, hour: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(station_hours).where(station_hours.c.mn == mn,
                                                           station_hours.c.hour == hour)).mappings().first()
        return dict(row) if row else {"mn": mn, "hour": hour, "status": "open"}
