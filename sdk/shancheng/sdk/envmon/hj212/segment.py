"""The HJ 212 data segment: ``QN=..;ST=..;CN=..;PW=..;MN=..;Flag=..;[PNUM=..;PNO=..;]CP=&&...&&`` as a
:class:`Packet` with its :class:`CP`, parsed strictly (:func:`parse_data`) or read leniently to address an answer
(:func:`reply_fields`)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from shancheng.sdk.envmon.hj212.codes import (
    CN_CODES,
    FLAG_REPLY,
    FLAG_SPLIT,
    MAX_DATA_LENGTH,
    PROTOCOL_VERSIONS,
    ST_CODES,
    HJ212Error,
    QnRtn,
)
from shancheng.sdk.envmon.hj212.crc import crc16

__all__ = ["CP", "Packet", "parse_data", "reply_fields"]

_QN = re.compile(r"[0-9]{17}")
_ID = re.compile(r"[0-9A-Za-z]+")
_INT = re.compile(r"0|[1-9][0-9]*")
_CP_TOKEN = re.compile(r"[^;,=&]+")
_CP_VALUE = re.compile(r"[^;,=&]*")
_PRINTABLE_BYTES = re.compile(rb"[\x20-\x7e]*")


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
