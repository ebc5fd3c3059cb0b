"""A simulated HJ 212 station: it connects over TCP and sends real-time (CN 2011) and hourly (CN 2061) packets
of its pollutants, with Flag asking for the platform's 9014 answer, at a chosen rate, optionally split into
PNUM/PNO parts. Used by the tests, ``bench/gateway.py`` and ``shancheng district run``.

>>> station = Station(mn="SIM0001", password="123456")
>>> packet = station.realtime(at=1718418600.0)
>>> packet.cn, packet.cp.data_time, sorted(packet.cp.values("Rtd"))[:2]
('2011', '20240615103000', ['a05024', 'a21004'])

Over a socket (inside an event loop)::

    conn = await station.connect("127.0.0.1", 9212)
    result = await conn.run(rate=10, count=100)      # waits for each 9014 answer; result.latencies
    await conn.close()

The station keeps what it builds (``recorded``, the last 4,096 packets) and answers the platform's history request
(CN 2031/2051/2061 with BeginTime/EndTime) from it: ``await conn.answer_history(request)``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from shancheng.apps.hj212.frames import StreamFramer, frame_bytes, parse_checked
from shancheng.sdk.envmon.hj212 import (
    CP,
    FLAG_REPLY,
    FLAG_SPLIT,
    MAX_FRAME_LENGTH,
    ExeRtn,
    HJ212Error,
    Packet,
    QnRtn,
    command_fields,
    exe_rtn_9012,
    qn_rtn_9011,
)

__all__ = ["AIR_POLLUTANTS", "HISTORY_CNS", "RunResult", "Station", "StationConnection"]

#: typical urban values (µg/m³; CO mg/m³) and their spread
AIR_POLLUTANTS: dict[str, tuple[float, float]] = {
    "a34004": (38.0, 8.0),  # PM2.5
    "a34002": (61.0, 12.0),  # PM10
    "a21026": (8.0, 2.0),  # SO2
    "a21004": (42.0, 9.0),  # NO2
    "a05024": (96.0, 20.0),  # O3
    "a21005": (0.7, 0.15),  # CO
}
_VERSION_2017 = 1 << 2
#: the history requests a station answers (daily, minute, hourly data)
HISTORY_CNS = ("2031", "2051", "2061")


@dataclass
class Station:
    """What a station is (MN, PW, ST, pollutants, clock) and how it words its packets."""

    mn: str
    password: str
    st: str = "22"
    pollutants: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(AIR_POLLUTANTS))
    timezone: str = "Asia/Shanghai"
    reply: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        self._tz = ZoneInfo(self.timezone)
        self._rng = random.Random(self.seed)
        self._last_qn_ms = 0
        self._level = {code: base for code, (base, _) in self.pollutants.items()}
        #: the data packets the station built, sent or not (what it answers history requests from)
        self.recorded: deque[Packet] = deque(maxlen=4096)

    @property
    def flag(self) -> int:
        return _VERSION_2017 | (FLAG_REPLY if self.reply else 0)

    def _qn(self, at: float) -> str:
        ms = max(int(at * 1000), self._last_qn_ms + 1)  # unique per packet even at thousands per second
        self._last_qn_ms = ms
        moment = datetime.fromtimestamp(ms / 1000, self._tz)
        return moment.strftime("%Y%m%d%H%M%S") + f"{ms % 1000:03d}"

    def _data_time(self, at: float) -> str:
        return datetime.fromtimestamp(at, self._tz).strftime("%Y%m%d%H%M%S")

    def _next_value(self, code: str) -> float:
        base, spread = self.pollutants[code]
        level = self._level[code] + self._rng.gauss(0, spread / 4) + (base - self._level[code]) * 0.1
        self._level[code] = max(0.0, level)
        return self._level[code]

    def realtime(self, *, at: float | None = None, values: Mapping[str, float] | None = None) -> Packet:
        """A CN 2011 packet of the station's pollutants at ``at`` (now), ``values`` overriding the random walk."""
        at = time.time() if at is None else at
        groups: list[tuple[tuple[str, str], ...]] = [(("DataTime", self._data_time(at)),)]
        for code in self.pollutants:
            value = values[code] if values is not None and code in values else self._next_value(code)
            groups.append(((f"{code}-Rtd", _fmt(value, code)), (f"{code}-Flag", "N")))
        return self._record(Packet(self._qn(at), self.st, "2011", self.password, self.mn, self.flag, CP(tuple(groups))))

    def hourly(self, hour_start: float, samples: Mapping[str, Sequence[float]]) -> Packet:
        """A CN 2061 packet for the hour beginning at ``hour_start`` from per-code samples (Avg/Min/Max)."""
        groups: list[tuple[tuple[str, str], ...]] = [(("DataTime", self._data_time(hour_start)),)]
        for code, values in samples.items():
            avg = sum(values) / len(values)
            groups.append(((f"{code}-Avg", _fmt(avg, code)), (f"{code}-Min", _fmt(min(values), code)),
                           (f"{code}-Max", _fmt(max(values), code)), (f"{code}-Flag", "N")))
        return self._record(Packet(self._qn(time.time()), self.st, "2061", self.password, self.mn, self.flag,
                                   CP(tuple(groups))))

    def _record(self, packet: Packet) -> Packet:
        self.recorded.append(packet)
        return packet

    def history(self, request: Packet) -> list[Packet]:
        """The recorded packets a history request (CN 2031/2051/2061, BeginTime/EndTime) asks for, as the uploads
        answering it: the request's QN, the station's Flag. For CN 2061 the hourly record of an hour it kept
        real-time samples of is built from them, as a data logger does."""
        fields = command_fields(request)
        begin, end = fields["BeginTime"], fields["EndTime"]
        if request.cn == "2061":  # hours it kept real-time samples of but built no hourly record for: built now
            have = {p.cp.data_time for p in self.recorded if p.cn == "2061"}
            samples: dict[str, dict[str, list[float]]] = {}
            for p in list(self.recorded):
                start = (p.cp.data_time or "")[:10] + "0000"
                if p.cn == "2011" and begin <= start <= end and start not in have:
                    for code, text in p.cp.values("Rtd").items():
                        samples.setdefault(start, {}).setdefault(code, []).append(float(text))
            for start, values in sorted(samples.items()):
                moment = datetime.strptime(start, "%Y%m%d%H%M%S").replace(tzinfo=self._tz)
                self.hourly(moment.timestamp(), values)
        return [Packet(request.qn, p.st, p.cn, p.pw, p.mn, p.flag, p.cp) for p in self.recorded
                if p.cn == request.cn and begin <= (p.cp.data_time or "") <= end]

    @staticmethod
    def split(packet: Packet, parts: int) -> list[Packet]:
        """``packet`` as ``parts`` PNUM/PNO packets (each repeats the DataTime group, as stations do)."""
        head, rest = packet.cp.groups[:1], packet.cp.groups[1:]
        if not 1 <= parts <= max(1, len(rest)):
            raise ValueError(f"cannot split {len(rest)} CP groups into {parts} parts")
        size = -(-len(rest) // parts)
        chunks = [rest[i : i + size] for i in range(0, len(rest), size)]
        return [Packet(packet.qn, packet.st, packet.cn, packet.pw, packet.mn, packet.flag | FLAG_SPLIT,
                       CP(head + chunk), len(chunks), n) for n, chunk in enumerate(chunks, 1)]

    async def connect(self, host: str, port: int) -> StationConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return StationConnection(self, reader, writer)


def _fmt(value: float, code: str) -> str:
    return f"{value:.3f}" if code == "a21005" else f"{value:.1f}"


@dataclass
class RunResult:
    sent: int = 0
    acked: int = 0
    refused: int = 0
    latencies: list[float] = field(default_factory=list)


class StationConnection:
    """A station's TCP connection: send packets, read the platform's answers."""

    def __init__(self, station: Station, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.station = station
        self.reader = reader
        self.writer = writer
        self._framer = StreamFramer(max_frame_bytes=MAX_FRAME_LENGTH)
        self._replies: list[Packet] = []

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, packet: Packet, *, parts: int = 1) -> None:
        for piece in (Station.split(packet, parts) if parts > 1 else [packet]):
            self.writer.write(frame_bytes(piece))
        await self.writer.drain()

    async def reply(self, timeout: float = 10.0) -> Packet | None:
        """The platform's next answer, or ``None`` when the connection is closed."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._replies:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no answer within {timeout} s")
            chunk = await asyncio.wait_for(self.reader.read(65536), remaining)
            if not chunk:
                return None
            for item in self._framer.feed(chunk):
                if isinstance(item, HJ212Error):
                    raise item
                self._replies.append(parse_checked(item))
        return self._replies.pop(0)

    async def answer_history(self, request: Packet, *, timeout: float = 10.0, wait_acks: bool = True) -> int:
        """Answer the platform's history request as HJ 212 has it: 9011 QnRtn 1, the recorded packets in its range
        with its QN (each waiting for its 9014 when the station asks for answers and ``wait_acks``), then 9012
        ExeRtn 1, or ExeRtn 100 when it recorded none. Returns how many packets were uploaded."""
        await self.send(qn_rtn_9011(request, QnRtn.READY))
        uploads = self.station.history(request)
        for packet in uploads:
            await self.send(packet)
            if packet.reply_requested and wait_acks:
                answer = await self.reply(timeout)
                if answer is None or answer.cn != "9014":
                    raise ConnectionError(f"the platform answered the upload with {answer and answer.cn}")
        await self.send(exe_rtn_9012(request, ExeRtn.SUCCESS if uploads else ExeRtn.NO_DATA))
        return len(uploads)

    async def run(self, *, rate: float, count: int, parts: int = 1, window: int = 1) -> RunResult:
        """Send ``count`` real-time packets at ``rate`` per second (0: as fast as answers come), keeping at most
        ``window`` unanswered; every answer is matched to its packet's QN (9014 acked, 9011 refused); a history
        request of the platform met meanwhile is answered (:meth:`answer_history`)."""
        result = RunResult()
        pending: dict[str, float] = {}
        start = time.monotonic()
        while result.sent < count or pending:
            while result.sent < count and len(pending) < window:
                if rate > 0:
                    await asyncio.sleep(max(0.0, start + result.sent / rate - time.monotonic()))
                packet = self.station.realtime()
                pending[packet.qn] = time.perf_counter()
                await self.send(packet, parts=parts)
                result.sent += 1
            answer = await self.reply()
            if answer is None:
                raise ConnectionError(f"the platform closed the connection after {result.acked} answers")
            if answer.cn in HISTORY_CNS and answer.mn == self.station.mn:  # the platform asks for history
                await self.answer_history(answer, wait_acks=False)  # (the 9014s of the uploads are skipped below)
                continue
            sent_at = pending.pop(answer.qn, None)
            if sent_at is None:
                continue
            if answer.cn == "9014":
                result.acked += 1
                result.latencies.append(time.perf_counter() - sent_at)
            else:
                result.refused += 1
        return result

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass
