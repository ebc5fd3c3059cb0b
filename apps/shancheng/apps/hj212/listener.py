"""The HJ 212 station listener: an asyncio TCP server that accepts stations' packets, stores them and answers.

Per connection, frames are cut out of the byte stream whatever the TCP segmentation (:mod:`.frames`), split
packets (PNUM/PNO) are reassembled, the length, CRC and header are validated, then MN, PW and ST against the
station registry. A refused frame is answered with CN 9011 and its QnRtn (9 wrong CRC, 4 unknown MN, 3 wrong PW,
2 a numeric item that is not a number, ...) when its QN/PW/MN can be read, and counts against the connection:
after ``max_bad_frames`` it is closed. An accepted data packet (CN 2011/2051/2061/2031) is queued to a single
writer that commits groups of packets (:mod:`.ingest`); only then is the 9014 data answer sent, when the packet's
Flag asks for it — an acknowledged packet is stored. A time calibration request (CN 1013) is answered with the
gateway's time (CN 1012); an operator's commands go to a connected station with ``Hj212Listener.send_command``
(:mod:`.control`).

Limits that keep one bad client from disturbing the others: idle timeout, a deadline for completing a frame
(slowloris), a deadline for the first packet that authenticates, the maximum frame size, connections in total and
per address (when full, the oldest connection that never authenticated makes room), failed passwords across
connections (:mod:`.guard`), pending split bytes per connection and in all with a deadline per split message,
and a bounded queue to the writer (a producer faster than the disk is slowed down by TCP back-pressure).

>>> handle = start(settings.hj212, engine=engine, client=client, data_dir=data_dir,  # doctest: +SKIP
...               password_file=password_file)   # the gateway does this when its settings.hj212 is set
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
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from shancheng.apps.hj212.anchoring import HourAnchorer
from shancheng.apps.hj212.backfill import LoopHistory, call_on_loop
from shancheng.apps.hj212.control import CommandLog, SentCommand, StationNotConnected, operator_commands
from shancheng.apps.hj212.frames import StreamFramer, frame_bytes, parse_checked
from shancheng.apps.hj212.guard import AuthGuard, address_key
from shancheng.apps.hj212.ingest import Accepted, ListenerStats, PacketStore, value_problem, values_of
from shancheng.apps.hj212.registry import StationRegistry, load_pepper
from shancheng.apps.hj212.settings import Hj212Settings
from shancheng.sdk import Client
from shancheng.sdk.envmon.hj212 import (
    HJ212Error,
    Packet,
    QnRtn,
    SplitAssembler,
    ack_9014,
    command,
    command_fields,
    qn_rtn_9011,
    set_time_1012,
)
from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.files import read_password

__all__ = ["DATA_CNS", "Hj212Listener", "ListenerHandle", "ListenerStats", "StationNotConnected", "start"]

log = logging.getLogger("shancheng.hj212")

#: the commands whose packets carry readings
DATA_CNS = frozenset({"2011", "2051", "2061", "2031"})
_QUEUE_LIMIT = 20_000
_REFUSED_AS = {QnRtn.WRONG_MN: "unknown MN", QnRtn.WRONG_PW: "wrong PW", QnRtn.WRONG_ST: "wrong ST"}


@dataclass(eq=False)
class _Conn:
    """One station connection: where from, since when, as which stations it has authenticated."""

    address: str
    key: str
    task: asyncio.Task[None]
    writer: asyncio.StreamWriter
    opened: float
    authenticated: set[str] = field(default_factory=set)
    #: the PW each station authenticated with (the platform's commands to it carry it back)
    passwords: dict[str, str] = field(default_factory=dict)
    close_now: bool = False


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
        self.guard = AuthGuard(max_per_address=settings.max_auth_failures_per_address,
                               max_per_station=settings.max_auth_failures_per_station, window=settings.auth_window,
                               lockout=settings.lockout, max_lockout=settings.max_lockout,
                               trust_ttl=settings.trust_ttl)
        self._server: asyncio.Server | None = None
        self._queue: asyncio.Queue[Accepted] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._conns: dict[asyncio.Task[None], _Conn] = {}
        self._per_address: Counter[str] = Counter()
        self._split_bytes = 0  # pending split parts of all connections
        self.commands = CommandLog()
        self._queued = 0  # packets queued for the writer so far ...
        self._written = 0  # ... and handled by it (stored or refused)
        self._last_qn_ms = 0
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
        if self.anchorer is not None:  # the job asks stations for the history of hours with gaps
            self.anchorer.history = LoopHistory(asyncio.get_running_loop(), self._send_history, self.history_outcome)
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

    def _admit(self, key: str) -> bool:
        """Room for one more connection from ``key``: when the listener or the address is full, the oldest
        connection that never authenticated (of that address, when the address is full) is closed for it."""
        s = self.settings
        for full, candidates in ((self._per_address[key] >= s.max_connections_per_address,
                                  [c for c in self._conns.values() if c.key == key]),
                                 (len(self._conns) >= s.max_connections, list(self._conns.values()))):
            if not full:
                continue
            idle = [c for c in candidates if not c.authenticated]
            if not idle:
                return False
            self._release(min(idle, key=lambda c: c.opened))
            self.stats.evicted += 1
        return True

    def _release(self, conn: _Conn) -> None:
        """Forget ``conn`` (at once, so its slot is free) and close it."""
        if self._conns.pop(conn.task, None) is None:
            return
        self._per_address[conn.key] -= 1
        if self._per_address[conn.key] <= 0:
            del self._per_address[conn.key]
        conn.writer.close()
        if conn.task is not asyncio.current_task():
            conn.task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else "?"
        key = address_key(address)
        task = asyncio.current_task()
        assert task is not None
        if not self._admit(key):
            self.stats.refused_connections += 1
            writer.close()
            return
        conn = _Conn(address=address, key=key, task=task, writer=writer, opened=time.monotonic())
        self._conns[task] = conn
        self._per_address[key] += 1
        self.stats.connections += 1
        splits = SplitAssembler(max_messages=self.settings.max_split_messages,
                                max_parts=self.settings.max_split_messages * 64,
                                max_bytes=self.settings.max_split_bytes)
        try:
            await self._connection(reader, conn, splits)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._split_bytes -= splits.pending_bytes
            self._release(conn)

    async def _connection(self, reader: asyncio.StreamReader, conn: _Conn, splits: SplitAssembler) -> None:
        s = self.settings
        framer = StreamFramer(max_frame_bytes=s.max_frame_bytes)
        assert self._queue is not None
        bad = 0
        partial_since: float | None = None
        while True:
            now = time.monotonic()
            deadlines = [now + s.idle_timeout]
            if partial_since is not None:
                deadlines.append(partial_since + s.frame_timeout)
            if not conn.authenticated:
                deadlines.append(conn.opened + s.auth_timeout)
            if splits.oldest is not None:
                deadlines.append(splits.oldest + s.split_timeout)
            try:
                chunk = await asyncio.wait_for(reader.read(65536), max(0.0, min(deadlines) - now))
            except TimeoutError:
                chunk = None
            for part in self._expire_splits(splits):
                bad += 1
                self._refuse(HJ212Error(f"split message not complete within {s.split_timeout:g} s",
                                        QnRtn.REJECTED, part._fields()), conn.writer)
            if chunk is None:
                if not conn.authenticated and time.monotonic() >= conn.opened + s.auth_timeout:
                    self.stats.closed_unauthenticated += 1
                    return
                if (partial_since is not None and time.monotonic() >= partial_since + s.frame_timeout) or (
                        time.monotonic() >= now + s.idle_timeout):
                    self.stats.closed_timeout += 1
                    return
                continue  # a split message expired: answered above
            if not chunk:
                return
            for item in framer.feed(chunk):
                try:
                    if isinstance(item, HJ212Error):
                        raise _Refused(item)
                    accepted = self._accept(item, splits, conn)
                except _Refused as refused:
                    bad += 1
                    self._refuse(refused.error, conn.writer)
                    if bad >= s.max_bad_frames or conn.close_now:
                        if not conn.close_now:
                            self.stats.closed_bad += 1
                        await _drain(conn.writer)
                        return
                    continue
                if accepted is not None:
                    await self._queue.put(accepted)
                    self._queued += 1
            partial_since = (partial_since or time.monotonic()) if framer.buffered else None

    def _expire_splits(self, splits: SplitAssembler) -> list[Packet]:
        before = splits.pending_bytes
        dropped = splits.expire(self.settings.split_timeout)
        self._split_bytes += splits.pending_bytes - before
        return dropped

    def _accept(self, frame: bytes, splits: SplitAssembler, conn: _Conn) -> Accepted | None:
        try:
            packet = parse_checked(frame)
            self._authenticate(packet, conn)
            whole = self._reassemble(packet, splits)
        except HJ212Error as exc:
            raise _Refused(exc) from None
        except Exception as exc:  # one packet's bug must not stall the station: refused, logged
            log.exception("HJ 212: accepting a frame from %s failed", conn.address)
            raise _Refused(HJ212Error(f"internal error: {type(exc).__name__}", QnRtn.UNKNOWN)) from None
        if whole is None:
            return None
        if whole.cn == "1013":
            self._calibrate_time(whole, conn)
            return None
        if self.commands.answer(whole, self.clock(), self._queued):
            log.info("HJ 212: station %s answered command %s with CN %s", whole.mn, whole.qn, whole.cn)
        if whole.cn not in DATA_CNS:
            # equipment status, answers to the platform's commands and the like: answered, not stored as readings
            if whole.reply_requested:
                self._write(conn.writer, frame_bytes(ack_9014(whole)))
            return None
        problem = value_problem(whole)
        if problem is not None:
            raise _Refused(HJ212Error(f"{problem} (HJ 212 numbers are decimals)", QnRtn.REJECTED, whole._fields()))
        data_time = self._data_time(whole)
        return Accepted(whole, whole.data().decode("ascii"), data_time, values_of(whole), conn.writer,
                        frame_bytes(ack_9014(whole)) if whole.reply_requested else None)

    def send_command(self, mn: str, cn: str, fields: dict[str, str]) -> SentCommand:
        """Send command ``cn`` (an operator's: :data:`.control.operator_commands`) to station ``mn`` on its newest
        authenticated connection (call on the listener's loop: ``ListenerHandle.call``); refused when the command
        or its fields are not the table's, or the station is not connected."""
        if cn not in operator_commands:
            raise InvalidInput(f"CN {cn} is not a command a platform sends to a station")
        station = self.registry.get(mn)
        connected = self._connections_of(mn)
        if station is None or not connected:
            raise StationNotConnected(f"station {mn} is not connected to this gateway's listener")
        conn = max(connected, key=lambda c: c.opened)
        packet = command(cn, qn=self._new_qn(), st=station.st, pw=conn.passwords[mn], mn=mn, fields=fields)
        sent = SentCommand(mn=mn, qn=packet.qn, cn=cn, fields=dict(fields), sent_at=self.clock())
        self.commands.add(sent)
        self._write(conn.writer, frame_bytes(packet))
        log.info("HJ 212: sent command %s (%s) QN %s to station %s", cn, packet.cp.text(), packet.qn, mn)
        return sent

    def _connections_of(self, mn: str) -> list[_Conn]:
        return [c for c in self._conns.values() if mn in c.authenticated and not c.writer.is_closing()]

    def is_connected(self, mn: str) -> bool:
        """Whether station ``mn`` has an authenticated connection open (call on the listener's loop)."""
        return bool(self._connections_of(mn))

    def _send_history(self, mn: str, cn: str, fields: dict[str, str]) -> str:
        return self.send_command(mn, cn, fields).qn

    def history_outcome(self, mn: str, qn: str) -> str | None:
        """How station ``mn`` ended command ``qn`` (``"ExeRtn 100"``, ...), once every packet it sent before that
        answer is stored; ``None`` while it has not (on the listener's loop)."""
        sent = self.commands.get(mn, qn)
        if sent is None:
            return "no answer recorded (the listener restarted, or forgot the command)"
        if sent.settled is None or self._written < sent.settled_seq:
            return None
        return sent.settled

    def _new_qn(self) -> str:
        """A QN for a command of the platform: the gateway's time in the stations' zone, unique per listener."""
        ms = max(int(self.clock() * 1000), self._last_qn_ms + 1)
        self._last_qn_ms = ms
        return datetime.fromtimestamp(ms / 1000, self.tz).strftime("%Y%m%d%H%M%S") + f"{ms % 1000:03d}"

    def _calibrate_time(self, request: Packet, conn: _Conn) -> None:
        """A station asks for the time (CN 1013): request answer (9011 QnRtn 1) when asked, then set its clock to
        the gateway's (CN 1012, in the station's time zone)."""
        try:
            command_fields(request)
        except HJ212Error as exc:
            raise _Refused(exc) from None
        if request.reply_requested:
            self._write(conn.writer, frame_bytes(qn_rtn_9011(request, QnRtn.READY)))
        self._write(conn.writer, frame_bytes(set_time_1012(request, self.clock(), self.tz, qn=self._new_qn())))
        self.stats.time_calibrations += 1

    def _authenticate(self, packet: Packet, conn: _Conn) -> None:
        """MN, PW and ST against the registry, through the guard unless this connection already authenticated as
        this station (its packets are then always checked: an attack never cuts off a connected station)."""
        mn = packet.mn
        if mn not in conn.authenticated and not self.guard.admit(conn.address, mn):
            conn.close_now = True
            wait = self.guard.locked_for(conn.address, mn)
            raise HJ212Error(f"too many failed passwords; try again in {wait:.0f} s", QnRtn.REJECTED,
                             packet._fields())
        code = self.registry.check(mn, packet.pw, packet.st, cn=packet.cn)
        if code == QnRtn.READY:
            if mn not in conn.authenticated:
                self.guard.succeeded(conn.address, mn)
                conn.authenticated.add(mn)
            conn.passwords[mn] = packet.pw
            return
        if code in (QnRtn.WRONG_PW, QnRtn.WRONG_MN):
            self.stats.auth_failures += 1
            locked = self.guard.failed(conn.address, mn, registered=code == QnRtn.WRONG_PW)
            if locked is not None:
                self.stats.lockouts += 1
                log.warning("HJ 212 alert: too many failed passwords (last: station %s from %s); %s locked out "
                            "for %.0f s", mn, conn.address, locked, self.guard.locked_for(conn.address, mn))
        raise HJ212Error(_REFUSED_AS.get(code, "refused"), code, packet._fields())

    def _reassemble(self, packet: Packet, splits: SplitAssembler) -> Packet | None:
        size = len(packet.data()) if packet.split else 0
        if size and self._split_bytes + size > self.settings.max_split_bytes_total:
            raise HJ212Error("the listener holds too many pending split parts; send the message again later",
                             QnRtn.REJECTED, packet._fields())
        before = splits.pending_bytes
        try:
            return splits.add(packet)
        finally:
            self._split_bytes += splits.pending_bytes - before

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
        store = PacketStore(engine=self.engine, stats=self.stats, limits=self.settings.limits, clock=self.clock)
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
                outcome = await loop.run_in_executor(self._db, store.store, batch)
                for item in outcome.stored:
                    if item.reply is not None and item.writer is not None:
                        self._write(item.writer, item.reply)
                        self.stats.acks += 1
                for item in outcome.refused:
                    if item.writer is not None:
                        self._refuse(HJ212Error("the platform could not store this packet", QnRtn.REJECTED,
                                                item.packet._fields()), item.writer)
            except Exception:  # the writer never dies: these packets stay unanswered (resent)
                log.exception("HJ 212: storing %d packets failed; they are not acknowledged", len(batch))
            finally:
                self._written += len(batch)
                for _ in batch:
                    queue.task_done()

    # ------------------------------------------------------------------ hourly anchoring

    async def _anchor_job(self) -> None:
        assert self.anchorer is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(self._anchor_pool, self.anchorer.anchor_closed_hours)
            except Exception:  # the job goes on at the next interval
                log.exception("HJ 212: the hourly anchoring job failed; it retries at the next interval")
            await asyncio.sleep(self.settings.anchor_check_interval)


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
        return call_on_loop(self._loop, fn)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(60)


def start(settings: Hj212Settings, *, engine: Engine, client: Client, data_dir: Path,
          password_file: Path) -> ListenerHandle:
    """Start the listener of a gateway: the station registry and the stations' keys under the gateway's
    ``data_dir`` (the keys sealed with the organisation's password from ``password_file``), the anchorer on the
    gateway's ``client``, packets in the gateway's database (``engine``)."""
    password = read_password(str(password_file), required=True)
    registry = StationRegistry(engine, pepper=load_pepper(data_dir / "hj212.pepper"),
                               keys_dir=data_dir / "stations", key_password=password)
    anchorer = HourAnchorer(engine=engine, client=client, registry=registry, delay=settings.anchor_delay,
                            backfill_timeout=settings.backfill_timeout, timezone=settings.timezone)
    return ListenerHandle(Hj212Listener(settings=settings, engine=engine, registry=registry, anchorer=anchorer))
