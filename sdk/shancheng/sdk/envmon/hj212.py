"""HJ 212 (2017 / 2025) frames: parse, serialise, CRC, a stream reader, split-packet reassembly and replies.

A frame is ``##`` + 4-digit length of the data segment + data segment + 4 uppercase hex CRC + ``\\r\\n``; the
CRC (HJ 212 "CRC16", not Modbus) covers the data segment only. The data segment is
``QN=..;ST=..;CN=..;PW=..;MN=..;Flag=..;[PNUM=..;PNO=..;]CP=&&...&&`` in exactly this order.

Every refusal raises :class:`HJ212Error` whose ``qn_rtn`` is the QnRtn code a platform would answer with:

=====================================================================  ======
problem                                                                QnRtn
=====================================================================  ======
CRC not matching, or not 4 uppercase hex digits                          9
CN not 4 digits or not a known command                                   8
QN not ``YYYYMMDDhhmmsszzz`` (17 digits, a real date and time)            7
Flag not a canonical integer 0-255, unknown version bits, or bit1        6
(split) not matching the presence of PNUM/PNO
ST not a known system code                                               5
MN empty, longer than 24 or not letters/digits                           4
PW empty, longer than 9 or not letters/digits                            3
split part refused (PNUM/PNO out of range, conflicting duplicate,        2
reassembly bound reached)
framing: no ``##``, length not 4 digits or not the data length,          100
truncated frame, missing ``\\r\\n``, non-ASCII or control bytes,
garbage between frames, missing/misordered header fields, malformed CP
=====================================================================  ======

Protocol version (Flag bits 2-7): ``000001`` is HJ 212-2017; HJ 212-2025 is taken as the next version number
``000010`` (an assumption: the project's domain notes do not state the 2025 bits).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from shancheng.sdk.errors import InvalidInput

__all__ = [
    "CN_CODES",
    "CP",
    "FLAG_REPLY",
    "FLAG_SPLIT",
    "MAX_DATA_LENGTH",
    "MAX_FRAME_LENGTH",
    "PROTOCOL_VERSIONS",
    "ST_CODES",
    "FrameReader",
    "HJ212Error",
    "Packet",
    "QnRtn",
    "SplitAssembler",
    "ack_9014",
    "crc16",
    "parse_data",
    "parse_frame",
    "qn_rtn_9011",
    "reply_fields",
]


class QnRtn:
    """QnRtn codes of HJ 212 (the 9011 request answer)."""

    READY = 1
    REJECTED = 2
    WRONG_PW = 3
    WRONG_MN = 4
    WRONG_ST = 5
    WRONG_FLAG = 6
    WRONG_QN = 7
    WRONG_CN = 8
    WRONG_CRC = 9
    UNKNOWN = 100


MAX_DATA_LENGTH = 9999
MAX_FRAME_LENGTH = 2 + 4 + MAX_DATA_LENGTH + 4 + 2
FLAG_REPLY = 0x01
FLAG_SPLIT = 0x02
PROTOCOL_VERSIONS: dict[int, str] = {1: "HJ 212-2017", 2: "HJ 212-2025"}
ST_CODES: dict[str, str] = {
    "21": "surface water",
    "22": "ambient air",
    "23": "acoustic environment",
    "31": "air pollution source",
    "32": "water pollution source",
    "91": "system",
}
CN_CODES: dict[str, str] = {
    "2011": "real-time data",
    "2051": "minute data",
    "2061": "hourly data",
    "2031": "daily data",
    "2021": "equipment status",
    "9011": "request answer (QnRtn)",
    "9012": "execution result (ExeRtn)",
    "9013": "notification answer",
    "9014": "data answer",
}

_DIGITS4 = re.compile(rb"[0-9]{4}")
_CRC_HEX = re.compile(rb"[0-9A-F]{4}")
_QN = re.compile(r"[0-9]{17}")
_ID = re.compile(r"[0-9A-Za-z]+")
_INT = re.compile(r"0|[1-9][0-9]*")
_CP_TOKEN = re.compile(r"[^;,=&]+")
_CP_VALUE = re.compile(r"[^;,=&]*")
_PRINTABLE_BYTES = re.compile(rb"[\x20-\x7e]*")


class HJ212Error(InvalidInput):
    """An HJ 212 frame or packet was refused; ``qn_rtn`` is the code to answer with.

    ``fields`` holds the header fields (QN, PW, MN, ...) that could be read before the refusal — for a frame
    whose CRC does not match, read leniently from its data segment — so a platform can still address its 9011
    answer. ``frame`` is the raw bytes refused (the whole frame, or the garbage dropped), when known.
    """

    def __init__(self, message: str, qn_rtn: int, fields: Mapping[str, str] | None = None, *,
                 frame: bytes | None = None) -> None:
        self.qn_rtn = qn_rtn
        self.fields: dict[str, str] = dict(fields or {})
        self.frame = frame
        super().__init__(f"HJ 212: {message} (QnRtn {qn_rtn})")

    def diagnostics(self) -> dict[str, Any]:
        return {"qn_rtn": self.qn_rtn, "fields": dict(self.fields)}


def _crc_table() -> tuple[int, ...]:
    table = []
    for value in range(256):
        for _ in range(8):
            value = (value >> 1) ^ 0xA001 if value & 1 else value >> 1
        table.append(value)
    return tuple(table)


#: the 8 shift rounds of HJ 212's CRC16 act on ``(crc >> 8) ^ byte``, a value below 256: one lookup per byte
_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """The HJ 212 CRC16 of ``data`` (the data segment): not the Modbus CRC (HJ 212 shifts the register right
    by 8 before each byte).

    >>> f"{crc16(b'QN=20240615103000123;ST=91;CN=9014;PW=123456;MN=3034257BF400B7800004A7B1;Flag=4;CP=&&&&'):04X}"
    '5000'
    """
    crc = 0xFFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc >> 8) ^ b]
    return crc


@dataclass(frozen=True)
class CP:
    """The CP of a packet: ``;``-separated groups of ``,``-separated ``key=value`` items, order and text kept.

    ``CP.parse("DataTime=20240615103000;a34004-Rtd=38.2,a34004-Flag=N")`` has two groups; :meth:`get` finds
    an item by key (``cp.get("a34004-Rtd") == "38.2"``).
    """

    groups: tuple[tuple[tuple[str, str], ...], ...] = ()

    def __post_init__(self) -> None:
        for group in self.groups:
            if not group:
                raise HJ212Error("empty CP group", QnRtn.UNKNOWN)
            for key, value in group:
                if not _CP_TOKEN.fullmatch(key) or not _CP_VALUE.fullmatch(value) or not _printable(key + value):
                    raise HJ212Error(f"CP item {key!r}={value!r} has a forbidden character", QnRtn.UNKNOWN)

    @classmethod
    def parse(cls, text: str) -> CP:
        if text == "":
            return cls(())
        groups = []
        for group_text in text.split(";"):
            items = []
            for item in group_text.split(","):
                key, sep, value = item.partition("=")
                if not sep or not key:
                    raise HJ212Error(f"CP item {item!r} is not key=value", QnRtn.UNKNOWN)
                items.append((key, value))
            groups.append(tuple(items))
        return cls(tuple(groups))

    def text(self) -> str:
        return ";".join(",".join(f"{k}={v}" for k, v in group) for group in self.groups)

    def items(self) -> Iterator[tuple[str, str]]:
        for group in self.groups:
            yield from group

    def get(self, key: str) -> str | None:
        """The first value stored under ``key`` (``None`` when absent)."""
        for k, v in self.items():
            if k == key:
                return v
        return None

    @property
    def data_time(self) -> str | None:
        return self.get("DataTime")

    def values(self, kind: str) -> dict[str, str]:
        """Per pollutant code, the text value of ``<code>-<kind>`` (``kind`` is Rtd, Avg, Min, Max, Cou, Flag)."""
        suffix = "-" + kind
        return {k[: -len(suffix)]: v for k, v in self.items() if k.endswith(suffix) and len(k) > len(suffix)}


def _printable(text: str) -> bool:
    """Only printable ASCII (0x20-0x7E): ``isprintable`` of an ASCII string excludes exactly the controls."""
    return text.isascii() and text.isprintable()


@dataclass(frozen=True)
class Packet:
    """One HJ 212 data segment. ``to_frame()`` re-serialises it byte for byte as parsed."""

    qn: str
    st: str
    cn: str
    pw: str
    mn: str
    flag: int
    cp: CP = field(default_factory=CP)
    pnum: int | None = None
    pno: int | None = None

    def __post_init__(self) -> None:
        _validate_header(self.qn, self.st, self.cn, self.pw, self.mn, self.flag, self.pnum, self.pno, self._fields())

    def _fields(self) -> dict[str, str]:
        return {"QN": self.qn, "ST": self.st, "CN": self.cn, "PW": self.pw, "MN": self.mn, "Flag": str(self.flag)}

    @property
    def reply_requested(self) -> bool:
        return bool(self.flag & FLAG_REPLY)

    @property
    def split(self) -> bool:
        return bool(self.flag & FLAG_SPLIT)

    @property
    def version(self) -> str:
        return PROTOCOL_VERSIONS[self.flag >> 2]

    def data(self) -> bytes:
        """The data segment (what the length and the CRC cover)."""
        parts = [f"QN={self.qn}", f"ST={self.st}", f"CN={self.cn}", f"PW={self.pw}", f"MN={self.mn}"]
        parts.append(f"Flag={self.flag}")
        if self.pnum is not None:
            parts += [f"PNUM={self.pnum}", f"PNO={self.pno}"]
        parts.append(f"CP=&&{self.cp.text()}&&")
        return ";".join(parts).encode("ascii")

    def to_frame(self) -> bytes:
        data = self.data()
        if len(data) > MAX_DATA_LENGTH:
            raise HJ212Error(f"data segment of {len(data)} bytes exceeds {MAX_DATA_LENGTH}", QnRtn.UNKNOWN)
        return b"##%04d%s%04X\r\n" % (len(data), data, crc16(data))


def _validate_header(
    qn: str, st: str, cn: str, pw: str, mn: str, flag: int, pnum: int | None, pno: int | None, fields: dict[str, str]
) -> None:
    if not _QN.fullmatch(qn) or not _real_time(qn):
        raise HJ212Error(f"QN {qn!r} is not YYYYMMDDhhmmsszzz", QnRtn.WRONG_QN, fields)
    if st not in ST_CODES:
        raise HJ212Error(f"ST {st!r} is not a known system code", QnRtn.WRONG_ST, fields)
    if cn not in CN_CODES:
        raise HJ212Error(f"CN {cn!r} is not a known command", QnRtn.WRONG_CN, fields)
    if not _ID.fullmatch(pw) or len(pw) > 9:
        raise HJ212Error(f"PW {pw!r} is not 1-9 letters or digits", QnRtn.WRONG_PW, fields)
    if not _ID.fullmatch(mn) or len(mn) > 24:
        raise HJ212Error(f"MN {mn!r} is not 1-24 letters or digits", QnRtn.WRONG_MN, fields)
    if isinstance(flag, bool) or not isinstance(flag, int) or not 0 <= flag <= 255:
        raise HJ212Error(f"Flag {flag!r} is not an integer 0-255", QnRtn.WRONG_FLAG, fields)
    if flag >> 2 not in PROTOCOL_VERSIONS:
        raise HJ212Error(f"Flag {flag} has unknown protocol version bits {flag >> 2:06b}", QnRtn.WRONG_FLAG, fields)
    if bool(flag & FLAG_SPLIT) != (pnum is not None or pno is not None):
        raise HJ212Error(f"Flag {flag} split bit does not match the presence of PNUM/PNO", QnRtn.WRONG_FLAG, fields)
    if (pnum is not None or pno is not None) and (pnum is None or pno is None or not 1 <= pno <= pnum <= 9999):
        raise HJ212Error(f"PNUM={pnum} PNO={pno} is not 1 <= PNO <= PNUM <= 9999", QnRtn.REJECTED, fields)


def _real_time(qn: str) -> bool:
    return _real_second(qn[:14])


@functools.lru_cache(maxsize=4096)
def _real_second(text: str) -> bool:
    """``YYYYMMDDhhmmss`` is a real date and time (cached: a stream's packets share their seconds)."""
    try:
        datetime.strptime(text, "%Y%m%d%H%M%S")
    except ValueError:
        return False
    return True


_HEADER = ("QN", "ST", "CN", "PW", "MN", "Flag")


def parse_data(data: bytes) -> Packet:
    """Parse a data segment (no framing)."""
    if not _PRINTABLE_BYTES.fullmatch(data):
        raise HJ212Error("data segment has non-ASCII or control bytes", QnRtn.UNKNOWN)
    text = data.decode("ascii")
    head, sep, rest = text.partition("CP=&&")
    if not sep or not rest.endswith("&&") or (head and not head.endswith(";")):
        raise HJ212Error("data segment does not end with CP=&&...&&", QnRtn.UNKNOWN)
    cp_text = rest[:-2]
    fields: dict[str, str] = {}
    pairs = []
    for part in head[:-1].split(";") if head else []:
        key, eq, value = part.partition("=")
        if not eq:
            raise HJ212Error(f"header field {part!r} is not key=value", QnRtn.UNKNOWN, fields)
        pairs.append((key, value))
        fields.setdefault(key, value)
    keys = [k for k, _ in pairs]
    if keys not in (list(_HEADER), [*_HEADER, "PNUM", "PNO"]):
        raise HJ212Error(
            f"header fields {';'.join(keys)} are not QN;ST;CN;PW;MN;Flag[;PNUM;PNO]", QnRtn.UNKNOWN, fields
        )
    flag_text = fields["Flag"]
    if not _INT.fullmatch(flag_text) or len(flag_text) > 3:
        raise HJ212Error(f"Flag {flag_text!r} is not a canonical integer", QnRtn.WRONG_FLAG, fields)
    pnum = pno = None
    if "PNUM" in fields:
        if not _INT.fullmatch(fields["PNUM"]) or not _INT.fullmatch(fields["PNO"]):
            raise HJ212Error("PNUM/PNO are not canonical integers", QnRtn.REJECTED, fields)
        if len(fields["PNUM"]) > 4 or len(fields["PNO"]) > 4:
            raise HJ212Error("PNUM/PNO exceed 9999", QnRtn.REJECTED, fields)
        pnum, pno = int(fields["PNUM"]), int(fields["PNO"])
    _validate_header(
        fields["QN"], fields["ST"], fields["CN"], fields["PW"], fields["MN"], int(flag_text), pnum, pno, fields
    )
    try:
        cp = CP.parse(cp_text)
    except HJ212Error as exc:
        raise HJ212Error(str(exc).removeprefix("HJ 212: ").rsplit(" (QnRtn", 1)[0], exc.qn_rtn, fields) from None
    return Packet(fields["QN"], fields["ST"], fields["CN"], fields["PW"], fields["MN"], int(flag_text), cp, pnum, pno)


_LENIENT_HEAD = re.compile(
    rb"QN=([0-9]{17});ST=[0-9]{2};CN=[0-9]{4};PW=([0-9A-Za-z]{1,9});MN=([0-9A-Za-z]{1,24});Flag=([0-9]{1,3});")


def reply_fields(data: bytes) -> dict[str, str]:
    """QN/PW/MN/Flag of a data segment that was refused (a wrong CRC), read leniently to address the 9011 answer;
    empty when its header is not well formed.

    >>> reply_fields(b"QN=20240615103000123;ST=22;CN=2011;PW=123456;MN=AB12;Flag=5;CP=&&&&")["MN"]
    'AB12'
    """
    m = _LENIENT_HEAD.match(data)
    if m is None:
        return {}
    return {"QN": m[1].decode(), "PW": m[2].decode(), "MN": m[3].decode(), "Flag": m[4].decode()}


def parse_frame(raw: bytes) -> Packet:
    """Parse one complete frame (``##`` ... ``\\r\\n``) into a :class:`Packet`; a refusal carries the frame
    (``HJ212Error.frame``)."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise HJ212Error("a frame must be bytes", QnRtn.UNKNOWN)
    raw = bytes(raw)
    try:
        return _parse_frame(raw)
    except HJ212Error as exc:
        if exc.frame is None:
            exc.frame = raw
        raise


def _parse_frame(raw: bytes) -> Packet:
    if len(raw) > MAX_FRAME_LENGTH:
        raise HJ212Error(f"frame of {len(raw)} bytes exceeds {MAX_FRAME_LENGTH}", QnRtn.UNKNOWN)
    if not raw.startswith(b"##"):
        raise HJ212Error("frame does not start with ##", QnRtn.UNKNOWN)
    if len(raw) < 12:
        raise HJ212Error(f"frame of {len(raw)} bytes is truncated", QnRtn.UNKNOWN)
    if not _DIGITS4.fullmatch(raw[2:6]):
        raise HJ212Error("length field is not 4 decimal digits", QnRtn.UNKNOWN)
    length = int(raw[2:6])
    if not raw.endswith(b"\r\n"):
        raise HJ212Error("frame is truncated or does not end with CR LF", QnRtn.UNKNOWN)
    if len(raw) != length + 12:
        raise HJ212Error(f"length field says {length} but the data segment is {len(raw) - 12} bytes", QnRtn.UNKNOWN)
    data, crc_text = raw[6 : 6 + length], raw[6 + length : 10 + length]
    if not _CRC_HEX.fullmatch(crc_text):
        raise HJ212Error("CRC is not 4 uppercase hex digits", QnRtn.WRONG_CRC, reply_fields(data))
    if int(crc_text, 16) != crc16(data):
        raise HJ212Error(f"CRC {crc_text.decode()} does not match the data ({crc16(data):04X})", QnRtn.WRONG_CRC,
                         reply_fields(data))
    return parse_data(data)


class FrameReader:
    """Frames from a byte stream: ``feed(chunk)`` returns the packets and refusals completed by that chunk
    (:meth:`frames` returns the raw frames instead, for a server that parses them later).

    Bytes may arrive split anywhere, several frames per chunk, garbage between frames; each run of garbage
    yields one :class:`HJ212Error` (QnRtn 100). With ``strict`` (a server counting refusals to close abusive
    clients) each chunk that holds garbage and each ``##`` without a 4-digit length is a refusal of its own,
    however TCP cut or joined the bytes. A length field above ``max_frame_bytes``
    is refused at once. At most one frame (``max_frame_bytes``) plus one chunk piece of that size is ever kept.
    Every refusal carries the bytes refused (``HJ212Error.frame``). ``close()`` reports a frame left incomplete
    at the end of the stream.

    >>> reader = FrameReader()
    >>> [type(x).__name__ for x in reader.feed(b"noise##0008QN=1;CP=")]
    ['HJ212Error']
    """

    def __init__(self, *, max_frame_bytes: int = MAX_FRAME_LENGTH, strict: bool = False) -> None:
        if max_frame_bytes <= 12:
            raise InvalidInput("max_frame_bytes must be above 12 (an empty frame)")
        self.max_frame_bytes = min(max_frame_bytes, MAX_FRAME_LENGTH)  # no frame is longer than the protocol's
        self.strict = strict
        self._buf = bytearray()
        self._in_garbage = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def _garbage(self, out: list[bytes | HJ212Error], count: int) -> None:
        if count and not self._in_garbage:
            out.append(HJ212Error("garbage between frames", QnRtn.UNKNOWN, frame=bytes(self._buf[:count])))
            self._in_garbage = True

    def feed(self, chunk: bytes) -> list[Packet | HJ212Error]:
        out: list[Packet | HJ212Error] = []
        for item in self.frames(chunk):
            if isinstance(item, HJ212Error):
                out.append(item)
                continue
            try:
                out.append(parse_frame(item))
            except HJ212Error as exc:
                out.append(exc)
        return out

    def frames(self, chunk: bytes) -> list[bytes | HJ212Error]:
        """The complete frames (raw bytes, CRC not yet checked: :func:`parse_frame` them) and the framing
        refusals that ``chunk`` completes, in stream order."""
        out: list[bytes | HJ212Error] = []
        if self.strict:
            self._in_garbage = False
        view = memoryview(chunk)
        step = self.max_frame_bytes
        for start in range(0, len(view), step):  # keep the buffer bounded even for huge chunks
            self._buf += view[start : start + step]
            self._drain(out)
        return out

    def _refuse(self, out: list[bytes | HJ212Error], message: str, drop: int, frame: bytes) -> None:
        fields = reply_fields(frame[6:]) if frame.startswith(b"##") else {}
        out.append(HJ212Error(message, QnRtn.UNKNOWN, fields, frame=frame))
        self._in_garbage = True
        del self._buf[:drop]

    def _drain(self, out: list[bytes | HJ212Error]) -> None:
        buf = self._buf
        while buf:
            i = buf.find(b"##")
            if i < 0:
                keep = 1 if buf.endswith(b"#") else 0
                self._garbage(out, len(buf) - keep)
                del buf[: len(buf) - keep]
                return
            self._garbage(out, i)
            del buf[:i]
            if (not _DIGITS4.fullmatch(buf[2:6])) if len(buf) >= 6 else (len(buf) > 2 and not buf[2:].isdigit()):
                if self.strict:
                    self._refuse(out, "length field is not 4 decimal digits", 2, bytes(buf[:6]))
                else:
                    self._garbage(out, 1)
                    del buf[:1]
                continue
            if len(buf) < 6:
                return
            total = int(buf[2:6]) + 12
            if total > self.max_frame_bytes:
                self._refuse(out, f"frame of {total} bytes exceeds {self.max_frame_bytes}", 2, bytes(buf[:6]))
                continue
            if len(buf) < total:
                return
            if buf[total - 2 : total] != b"\r\n":
                self._refuse(out, "frame length does not match its data or the frame is truncated", 1,
                             bytes(buf[:total]))
                continue
            frame = bytes(buf[:total])
            del buf[:total]
            self._in_garbage = False
            out.append(frame)

    def close(self) -> list[HJ212Error]:
        """End of stream: a refusal for any incomplete frame still buffered."""
        leftover = bytes(self._buf)
        self._buf.clear()
        if leftover.startswith(b"##"):
            return [HJ212Error(f"stream ended inside a frame ({len(leftover)} bytes)", QnRtn.UNKNOWN,
                               frame=leftover)]
        if leftover and not self._in_garbage:
            return [HJ212Error("garbage between frames", QnRtn.UNKNOWN, frame=leftover)]
        return []


class SplitAssembler:
    """Reassembles split packets (Flag bit1, PNUM/PNO) keyed by (QN, MN).

    ``add(packet)`` returns a whole packet (unsplit ones at once; split ones when the last part arrives, CP
    groups concatenated in PNO order with a repeated identical ``DataTime`` group kept once) or ``None``.
    Identical duplicate parts are ignored; a conflicting one, or parts disagreeing on ST/CN/PW/Flag/PNUM, are
    refused. At most ``max_messages`` messages and ``max_parts`` parts are pending; beyond that the new part is
    refused (QnRtn 2) until :meth:`discard` or completions make room.
    """

    def __init__(self, *, max_messages: int = 64, max_parts: int = 1024) -> None:
        self.max_messages = max_messages
        self.max_parts = max_parts
        self._pending: dict[tuple[str, str], dict[int, Packet]] = {}

    @property
    def pending_parts(self) -> int:
        return sum(len(parts) for parts in self._pending.values())

    @property
    def pending_messages(self) -> int:
        return len(self._pending)

    def discard(self, qn: str, mn: str) -> None:
        self._pending.pop((qn, mn), None)

    def add(self, packet: Packet) -> Packet | None:
        if not packet.split:
            return packet
        assert packet.pnum is not None and packet.pno is not None  # guaranteed by Packet validation
        key = (packet.qn, packet.mn)
        fields = packet._fields()
        parts = self._pending.get(key)
        if parts is None:
            if len(self._pending) >= self.max_messages:
                raise HJ212Error(f"{self.max_messages} split messages already pending", QnRtn.REJECTED, fields)
            parts = {}
        else:
            first = next(iter(parts.values()))
            if (first.st, first.cn, first.pw, first.flag, first.pnum) != (
                packet.st,
                packet.cn,
                packet.pw,
                packet.flag,
                packet.pnum,
            ):
                raise HJ212Error(f"part {packet.pno} disagrees with earlier parts", QnRtn.REJECTED, fields)
        known = parts.get(packet.pno)
        if known is not None:
            if known != packet:
                raise HJ212Error(f"part {packet.pno} repeated with other content", QnRtn.REJECTED, fields)
            return None
        if self.pending_parts >= self.max_parts:
            raise HJ212Error(f"{self.max_parts} split parts already pending", QnRtn.REJECTED, fields)
        parts[packet.pno] = packet
        self._pending[key] = parts
        if len(parts) < packet.pnum:
            return None
        del self._pending[key]
        groups: list[tuple[tuple[str, str], ...]] = []
        for pno in range(1, packet.pnum + 1):
            for group in parts[pno].cp.groups:
                if group and group[0][0] == "DataTime" and group in groups:
                    continue
                groups.append(group)
        return replace(packet, flag=packet.flag & ~FLAG_SPLIT, pnum=None, pno=None, cp=CP(tuple(groups)))


def _reply_fields(source: Packet | Mapping[str, str]) -> tuple[str, str, str, int]:
    if isinstance(source, Packet):
        return source.qn, source.pw, source.mn, source.flag & 0xFC
    try:
        flag_text = source.get("Flag", "4")
        flag = int(flag_text) & 0xFC if _INT.fullmatch(flag_text) and int(flag_text) <= 255 else 4
        if flag >> 2 not in PROTOCOL_VERSIONS:
            flag = 4
        return source["QN"], source["PW"], source["MN"], flag
    except KeyError as exc:
        raise HJ212Error(f"cannot answer without field {exc.args[0]}", QnRtn.UNKNOWN) from None


def ack_9014(packet: Packet | Mapping[str, str]) -> Packet:
    """The platform's data answer (CN 9014) to ``packet``: same QN/PW/MN and version, no reply, empty CP."""
    qn, pw, mn, flag = _reply_fields(packet)
    return Packet(qn, "91", "9014", pw, mn, flag)


def qn_rtn_9011(packet: Packet | Mapping[str, str], code: int) -> Packet:
    """The platform's request answer (CN 9011, ``CP=&&QnRtn=<code>&&``); fields may be ``HJ212Error.fields``."""
    if code not in (1, 2, 3, 4, 5, 6, 7, 8, 9, 100):
        raise HJ212Error(f"{code} is not a QnRtn code", QnRtn.UNKNOWN)
    qn, pw, mn, flag = _reply_fields(packet)
    return Packet(qn, "91", "9011", pw, mn, flag, CP(((("QnRtn", str(code)),),)))
