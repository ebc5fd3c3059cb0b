"""The HJ 212 station listener: an asyncio TCP server that accepts stations' packets, stores them and answers.

Per connection, frames are cut out of the byte stream whatever the TCP segmentation (:mod:`.frames`), split
packets (PNUM/PNO) are reassembled, the length, CRC and header are validated, then MN, PW and ST against the
station registry. A refused frame is answered with CN 9011 and its QnRtn (9 wrong CRC, 4 unknown MN, 3 wrong PW,
...) when its QN/PW/MN can be read, and counts against the connection: after ``max_bad_frames`` it is closed. An
accepted data packet (CN 2011/2051/2061/2031) is queued to a single writer that commits batches of packets
(readings, station hours, alerts) in one transaction each; only then is the 9014 data answer sent, when the
packet's Flag asks for it — an acknowledged packet is stored.

Limits that keep one bad client from disturbing the others: idle timeout, a deadline for completing a frame
(slowloris), the maximum frame size, connections in total and per address, and a bounded queue to the writer
(a producer faster than the disk is slowed down by TCP back-pressure, not by memory).

>>> handle = start(services)            # doctest: +SKIP  (the gateway does this when settings.hj212 is set)
>>> handle.listener.port               # doctest: +SKIP
9212
>>> handle.stop()                      # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from shancheng.apps.db import insert_ignoring_duplicates
from shancheng.apps.hj212.frames import StreamFramer, frame_bytes, parse_checked
from shancheng.apps.hj212.registry import StationRegistry
from shancheng.apps.hj212.settings import Hj212Settings
from shancheng.apps.hj212.store import alerts, readings, station_hours
from shancheng.sdk.envmon.aqi import HJ212_POLLUTANTS, AQIError, iaqi
from shancheng.sdk.envmon.hj212 import HJ212Error, Packet, QnRtn, SplitAssembler, ack_9014, qn_rtn_9011

if TYPE_CHECKING:
    from shancheng.apps.hj212.anchoring import HourAnchorer

__all__ = ["DATA_CNS", "Hj212Listener", "ListenerHandle", "ListenerStats", "start"]

log = logging.getLogger("shancheng.hj212")

#: the commands whose packets carry readings
DATA_CNS = frozenset({"2011", "2051", "2061", "2031"})
_VALUE_KIND = {"2011": "Rtd", "2051": "Avg", "2061": "Avg", "2031": "Avg"}
_NUMERIC_KINDS = ("Rtd", "Avg", "Min", "Max", "Cou")
_QUEUE_LIMIT = 20_000


@dataclass
class ListenerStats:
    """Counters of a running listener (read them from the loop thread or accept a torn read)."""

    connections: int = 0
    refused_connections: int = 0
    accepted: int = 0
    stored: int = 0
    duplicates: int = 0
    acks: int = 0
    refusals: Counter[int] = field(default_factory=Counter)
    closed_bad: int = 0
    closed_timeout: int = 0
    alerts: int = 0


@dataclass
class _Accepted:
    packet: Packet
    data: str
    data_time: int
    values: dict[str, dict[str, Any]]
    writer: asyncio.StreamWriter | None
    reply: bytes | None


class _Refused(Exception):
    def __init__(self, error: HJ212Error) -> None:
        self.error = error


class Hj212Listener:
    """The TCP server. ``await start()`` binds, ``await stop()`` closes connections and flushes the writer."""

    def __init__(self, *, settings: Hj212Settings, engine: Engine, registry: StationRegistry,
                 anchorer: HourAnchorer | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = registry
        self.anchorer = anchorer
        self.clock = clock
        self.stats = ListenerStats()
        self.tz = ZoneInfo(settings.timezone)
        self._server: asyncio.Server | None = None
        self._queue: asyncio.Queue[_Accepted] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._conns: set[asyncio.Task[None]] = set()
        self._per_address: Counter[str] = Counter()
        self._db = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="hj212-writer")
        self._anchor_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="hj212-anchor")
        self.port = settings.port

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._queue = asyncio.Queue(_QUEUE_LIMIT)
        self._server = await asyncio.start_server(self._serve, self.settings.host, self.settings.port,
                                                  limit=self.settings.max_frame_bytes)
        self.port = self._server.sockets[0].getsockname()[1]
        self._tasks.append(asyncio.create_task(self._writer(), name="hj212-writer"))
        if self.anchorer is not None and self.settings.anchor_check_interval > 0:
            self._tasks.append(asyncio.create_task(self._anchor_job(), name="hj212-anchor"))
        log.info("HJ 212 listener on %s:%d", self.settings.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        if self._queue is not None:
            await self._queue.join()  # everything accepted is stored before the writer stops
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self._db.shutdown(wait=True)
        self._anchor_pool.shutdown(wait=True)

    # ------------------------------------------------------------------ connections

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else "?"
        if (len(self._conns) >= self.settings.max_connections
                or self._per_address[address] >= self.settings.max_connections_per_address):
            self.stats.refused_connections += 1
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        self._per_address[address] += 1
        self.stats.connections += 1
        try:
            await self._connection(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._conns.discard(task)
            self._per_address[address] -= 1
            if self._per_address[address] <= 0:
                del self._per_address[address]
            writer.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = self.settings
        framer = StreamFramer(max_frame_bytes=s.max_frame_bytes)
        splits = SplitAssembler(max_messages=s.max_split_messages, max_parts=s.max_split_messages * 64)
        assert self._queue is not None
        bad = 0
        partial_since: float | None = None
        while True:
            timeout = s.idle_timeout
            if partial_since is not None:
                timeout = min(timeout, max(0.0, partial_since + s.frame_timeout - time.monotonic()))
            try:
                chunk = await asyncio.wait_for(reader.read(65536), timeout)
            except TimeoutError:
                self.stats.closed_timeout += 1
                return
            if not chunk:
                return
            for item in framer.feed(chunk):
                try:
                    if isinstance(item, HJ212Error):
                        raise _Refused(item)
                    accepted = self._accept(item, splits, writer)
                except _Refused as refused:
                    bad += 1
                    self._refuse(refused.error, writer)
                    if bad >= s.max_bad_frames:
                        self.stats.closed_bad += 1
                        await _drain(writer)
                        return
                    continue
                if accepted is not None:
                    await self._queue.put(accepted)
            partial_since = (partial_since or time.monotonic()) if framer.buffered else None

    def _accept(self, frame: bytes, splits: SplitAssembler, writer: asyncio.StreamWriter) -> _Accepted | None:
        try:
            packet = parse_checked(frame)
            code = self.registry.check(packet.mn, packet.pw, packet.st)
            if code != QnRtn.READY:
                what = {QnRtn.WRONG_MN: "unknown MN", QnRtn.WRONG_PW: "wrong PW", QnRtn.WRONG_ST: "wrong ST"}
                raise HJ212Error(what.get(code, "refused"), code, packet._fields())
            whole = splits.add(packet)
        except HJ212Error as exc:
            raise _Refused(exc) from None
        if whole is None:
            return None
        if whole.cn not in DATA_CNS:
            # equipment status and the like: answered, not stored as readings
            if whole.reply_requested:
                self._write(writer, frame_bytes(ack_9014(whole)))
            return None
        data_time = self._data_time(whole)
        return _Accepted(whole, whole.data().decode("ascii"), data_time, _values(whole), writer,
                         frame_bytes(ack_9014(whole)) if whole.reply_requested else None)

    def _data_time(self, packet: Packet) -> int:
        text = packet.cp.data_time
        fields = packet._fields()
        if text is None or len(text) != 14 or not text.isdigit():
            raise _Refused(HJ212Error("CP has no DataTime=YYYYMMDDhhmmss", QnRtn.REJECTED, fields))
        try:
            moment = datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=self.tz).timestamp()
        except ValueError:
            raise _Refused(HJ212Error(f"DataTime {text} is not a date", QnRtn.REJECTED, fields)) from None
        if moment > self.clock() + self.settings.max_clock_skew:
            raise _Refused(HJ212Error(f"DataTime {text} is in the future", QnRtn.REJECTED, fields))
        return int(moment)

    def _refuse(self, error: HJ212Error, writer: asyncio.StreamWriter) -> None:
        self.stats.refusals[error.qn_rtn] += 1
        log.info("HJ 212 refusal from %s: %s", writer.get_extra_info("peername"), error)
        if {"QN", "PW", "MN"} <= error.fields.keys():
            try:
                self._write(writer, frame_bytes(qn_rtn_9011(error.fields, error.qn_rtn)))
            except HJ212Error:
                pass  # fields too malformed to address an answer

    @staticmethod
    def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
        if not writer.is_closing():
            writer.write(data)

    # ------------------------------------------------------------------ the writer

    async def _writer(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.settings.flush_interval
            while len(batch) < self.settings.flush_max:
                try:
                    batch.append(queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    break
            try:
                await loop.run_in_executor(self._db, self._store, batch)
            except Exception:
                log.exception("HJ 212: storing %d packets failed; they are not acknowledged", len(batch))
            else:
                for item in batch:
                    if item.reply is not None and item.writer is not None:
                        self._write(item.writer, item.reply)
                        self.stats.acks += 1
            finally:
                for _ in batch:
                    queue.task_done()

    def _store(self, batch: list[_Accepted]) -> None:
        now = self.clock()
        seen: set[tuple[str, str, str]] = set()
        rows = []
        hours = set()
        alert_rows: list[dict[str, Any]] = []
        for item in batch:
            p = item.packet
            key = (p.mn, p.qn, p.cn)
            if key in seen:
                self.stats.duplicates += 1
                continue
            seen.add(key)
            rows.append({"mn": p.mn, "qn": p.qn, "cn": p.cn, "data_time": item.data_time, "received_at": now,
                         "codes": "," + ",".join(item.values) + ",", "values": item.values, "data": item.data})
            hours.add((p.mn, item.data_time // 3600))
            alert_rows += self._alerts(p.mn, item.data_time, item.values, now)
        with self.engine.begin() as conn:
            result = conn.execute(insert_ignoring_duplicates(self.engine, readings), rows)
            conn.execute(insert_ignoring_duplicates(self.engine, station_hours),
                         [{"mn": mn, "hour": hour, "reading_count": 0, "status": "open", "updated_at": now}
                          for mn, hour in sorted(hours)])
            if alert_rows:
                conn.execute(insert_ignoring_duplicates(self.engine, alerts), alert_rows)
        inserted = result.rowcount if result.rowcount is not None and result.rowcount >= 0 else len(rows)
        self.stats.duplicates += len(rows) - inserted
        self.stats.stored += inserted
        self.stats.accepted += len(batch)
        self.stats.alerts += len(alert_rows)
        for a in alert_rows:
            log.warning("HJ 212 alert: station %s %s=%s at %s (%s above %s)", a["mn"], a["code"], a["value"],
                        a["data_time"], a["kind"], a["threshold"])

    def _alerts(self, mn: str, data_time: int, values: dict[str, dict[str, Any]], now: float) -> list[dict[str, Any]]:
        out = []
        for code, entry in values.items():
            value = entry.get("value")
            if not isinstance(value, float) or entry.get("Flag", "N") != "N":
                continue
            pollutant = HJ212_POLLUTANTS.get(code)
            if pollutant is not None:
                try:
                    score = iaqi(pollutant, "1h", value)
                except AQIError:
                    score = iaqi(pollutant, "24h", value)  # SO2 1h above 800: scored on 24h breakpoints
                if score > 100:
                    out.append({"mn": mn, "data_time": data_time, "code": code, "kind": "iaqi", "value": value,
                                "iaqi": score, "threshold": 100.0, "created_at": now})
            limit = self.settings.limits.get(code)
            if limit is not None and value > limit:
                out.append({"mn": mn, "data_time": data_time, "code": code, "kind": "limit", "value": value,
                            "iaqi": None, "threshold": limit, "created_at": now})
        return out

    # ------------------------------------------------------------------ hourly anchoring

    async def _anchor_job(self) -> None:
        assert self.anchorer is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(self._anchor_pool, self.anchorer.anchor_closed_hours)
            except Exception:
                log.exception("HJ 212: the hourly anchoring job failed; it retries at the next interval")
            await asyncio.sleep(self.settings.anchor_check_interval)


def _values(packet: Packet) -> dict[str, dict[str, Any]]:
    """Per pollutant code: its numeric items (Rtd/Avg/Min/Max/Cou as floats), Flag, and ``value`` (the Rtd of
    a real-time packet, the Avg otherwise)."""
    out: dict[str, dict[str, Any]] = {}
    for key, text in packet.cp.items():
        code, sep, kind = key.rpartition("-")
        if not sep or not code:
            continue
        entry = out.setdefault(code, {})
        if kind in _NUMERIC_KINDS:
            try:
                entry[kind] = float(text)
            except ValueError:
                entry[kind] = None
        else:
            entry[kind] = text
    main = _VALUE_KIND[packet.cn]
    for entry in out.values():
        entry["value"] = entry.get(main)
    return out


async def _drain(writer: asyncio.StreamWriter) -> None:
    try:
        await asyncio.wait_for(writer.drain(), 1.0)
    except (TimeoutError, ConnectionError):
        pass


class ListenerHandle:
    """A listener running on its own event loop in a background thread; ``stop()`` flushes and joins it."""

    def __init__(self, listener: Hj212Listener) -> None:
        self.listener = listener
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="hj212-listener", daemon=True)
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.listener.start())
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.listener.stop())
        self._loop.close()

    @property
    def port(self) -> int:
        return self.listener.port

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the listener's loop and return its result (e.g. to read consistent stats)."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(30)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(60)


def start(services: Any) -> ListenerHandle:
    """Start the listener of a gateway (``services.settings.hj212`` set): registry and station keys under the
    gateway's data folder, the anchorer on the gateway's client; ``services.extras["hj212"]`` is the handle."""
    from shancheng.apps.hj212.anchoring import HourAnchorer
    from shancheng.apps.hj212.registry import load_pepper
    from shancheng.sdk.files import read_password

    settings = services.settings
    hj212 = settings.hj212 if isinstance(settings.hj212, Hj212Settings) else Hj212Settings.model_validate(settings.hj212)
    data_dir = Path(settings.data_dir)
    password = read_password(str(settings.password_file), required=True)
    registry = StationRegistry(services.engine, pepper=load_pepper(data_dir / "hj212.pepper"),
                               keys_dir=data_dir / "stations", key_password=password)
    anchorer = HourAnchorer(engine=services.engine, client=services.client, registry=registry,
                            delay=hj212.anchor_delay)
    handle = ListenerHandle(Hj212Listener(settings=hj212, engine=services.engine, registry=registry,
                                          anchorer=anchorer))
    services.extras["hj212"] = handle
    return handle
