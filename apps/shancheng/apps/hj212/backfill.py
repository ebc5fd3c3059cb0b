"""Backfill of the hours a station missed: what a complete hour is, and how the anchoring job asks a connected
station for an hour's history.

**Complete hour**: the hour has the station's hourly record, a CN 2061 packet whose DataTime is the hour's start
(HJ 212: the hourly data of hour ``hh`` is stamped ``hh:00:00``). That record is the station's own summary of the
hour: a station that was offline, or lost its link, during the hour has not delivered it, whatever number of
real-time packets got through. (Real-time and minute counts are not compared with the station's intervals: a
station may be configured to send none, and its hourly record already covers the hour.)

When a closed hour is not complete, the job asks the station, on its newest authenticated connection, for that
hour's history: CN 2061 with ``BeginTime`` = the hour's start and ``EndTime`` = its last second (the QnRtn/ExeRtn
flow: the station answers 9011 QnRtn, uploads the records with the request's QN, then 9012 ExeRtn). The hour waits
until its record is stored, the station has answered that it could not (QnRtn other than 1, or ExeRtn), or the
deadline (``backfill_timeout``) has passed; it is then anchored, complete or with its gaps named
(``station_hours.gaps``). A station that is not connected is not waited for. Only the waiting station's later
hours wait with it (the contract takes a station's hours in order); other stations' hours go on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from shancheng.apps.hj212.store import readings

__all__ = ["HOURLY_CN", "HistorySource", "LoopHistory", "call_on_loop", "history_fields", "missing_records"]

#: the station's hourly record, the one a complete hour has
HOURLY_CN = "2061"
HOUR = 3600
T = TypeVar("T")


class HistorySource(Protocol):
    """Where history requests go (the listener, through :class:`LoopHistory`)."""

    def request(self, mn: str, cn: str, fields: dict[str, str]) -> str:
        """Send history request ``cn`` to station ``mn``; its QN (``StationNotConnected`` when it cannot be)."""

    def outcome(self, mn: str, qn: str) -> str | None:
        """``None`` while the request is pending, else how the station ended it (``"ExeRtn 100"``, ...), once
        every packet it sent before that answer is stored."""


def missing_records(engine: Engine, mn: str, hour: int) -> list[str]:
    """What station ``mn``'s unix ``hour`` lacks to be complete (empty: complete)."""
    with engine.connect() as conn:
        hourly = conn.execute(select(func.count()).select_from(readings).where(
            readings.c.mn == mn, readings.c.cn == HOURLY_CN, readings.c.data_time == hour * HOUR)).scalar_one()
    return [] if hourly else [f"hourly record (CN {HOURLY_CN}) missing"]


def history_fields(hour: int, tz: ZoneInfo) -> dict[str, str]:
    """``BeginTime``/``EndTime`` of unix ``hour`` in the station's time zone."""
    def at(seconds: int) -> str:
        return datetime.fromtimestamp(seconds, tz).strftime("%Y%m%d%H%M%S")

    return {"BeginTime": at(hour * HOUR), "EndTime": at(hour * HOUR + HOUR - 1)}


class LoopHistory:
    """A :class:`HistorySource` for the anchoring thread: runs the listener's ``send`` and ``outcome`` on the
    listener's event loop and waits for their results."""

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Callable[[str, str, dict[str, str]], str],
                 outcome: Callable[[str, str], str | None], timeout: float = 30.0) -> None:
        self._loop = loop
        self._send = send
        self._outcome = outcome
        self._timeout = timeout

    def request(self, mn: str, cn: str, fields: dict[str, str]) -> str:
        return self._call(lambda: self._send(mn, cn, fields))

    def outcome(self, mn: str, qn: str) -> str | None:
        return self._call(lambda: self._outcome(mn, qn))

    def _call(self, fn: Callable[[], T]) -> T:
        return call_on_loop(self._loop, fn, self._timeout)


def call_on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], T], timeout: float = 30.0) -> T:
    """Run ``fn`` on ``loop`` (from another thread) and return its result; what it raises is raised here."""
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            future.set_exception(exc)

    loop.call_soon_threadsafe(run)
    result: T = future.result(timeout)
    return result
