"""The district's simulated HJ 212 stations: real-time packets over TCP to the monitoring gateway's listener.

    feed = StationFeed(host="127.0.0.1", port=9212, stations=[{"mn": "SC500103AIR0001", "password": "..."}],
                       rate=2.0)
    feed.start()   # a thread with its own event loop
    ...
    feed.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from typing import Any

from shancheng.sdk.errors import ShanchengError

from ..hj212.simulator import Station

__all__ = ["StationFeed"]

log = logging.getLogger("shancheng.district")


class StationFeed:
    """Simulated HJ 212 stations sending real-time packets over TCP at ``rate`` per second each, in a thread with
    its own event loop; a station reconnects after a refused or lost connection."""

    def __init__(self, *, host: str, port: int, stations: Sequence[dict[str, Any]], rate: float) -> None:
        self.host, self.port, self.rate = host, port, rate
        self.stations = list(stations)
        self.sent = 0
        self.acked = 0
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="district-stations", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        await asyncio.gather(*(self._station(s) for s in self.stations))

    async def _station(self, spec: dict[str, Any]) -> None:
        assert self._stop is not None
        station = Station(mn=spec["mn"], password=spec["password"])
        while not self._stop.is_set():
            try:
                conn = await station.connect(self.host, self.port)
            except OSError:
                await self._pause(2.0)
                continue
            try:
                while not self._stop.is_set():
                    result = await conn.run(rate=0, count=1)
                    self.sent += result.sent
                    self.acked += result.acked
                    await self._pause(1.0 / self.rate)
            except (OSError, ConnectionError, TimeoutError, ShanchengError) as exc:
                log.warning("simulated station %s: %s; reconnecting", spec["mn"], exc)
                await self._pause(1.0)
            finally:
                await conn.close()

    async def _pause(self, seconds: float) -> None:
        assert self._stop is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
