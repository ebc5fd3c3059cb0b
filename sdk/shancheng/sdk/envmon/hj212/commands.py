"""The HJ 212-2017 command table: what each command's CP carries, who sends it, and the answer flows.

A platform commands a station with a request (Flag bit0 asks for answers); the station answers at once with a
request answer (CN 9011, :class:`~shancheng.sdk.envmon.hj212.QnRtn`: 1 ready, or why not), then, for a command
that asks for data, uploads it with the command's own CN (``answer`` fields), and ends with an execution result
(CN 9012, :class:`ExeRtn`). A notification is answered with CN 9013; an upload with CN 9014.

>>> packet = command("1062", qn="20240615103000123", st="22", pw="123456", mn="AB12", fields={"RtdInterval": "60"})
>>> packet.data().decode()
'QN=20240615103000123;ST=22;CN=1062;PW=123456;MN=AB12;Flag=5;CP=&&RtdInterval=60&&'
>>> command_fields(packet)
{'RtdInterval': '60'}
>>> exe_rtn_9012(packet, ExeRtn.SUCCESS).cp.get("ExeRtn")
'1'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Literal

from shancheng.sdk.envmon.hj212.codes import CN_CODES, FLAG_REPLY, HJ212Error, QnRtn
from shancheng.sdk.envmon.hj212.segment import CP, Packet

__all__ = [
    "COMMANDS",
    "Command",
    "ExeRtn",
    "command",
    "command_fields",
    "exe_rtn_9012",
    "notice_9013",
    "set_time_1012",
]

VERSION_2017 = 1 << 2


class ExeRtn:
    """ExeRtn codes of HJ 212 (the 9012 execution result)."""

    SUCCESS = 1
    FAILED = 2  # failed, reason unknown
    BAD_CONDITION = 3  # the command's conditions are wrong
    TIMEOUT = 4  # communication timed out
    BUSY = 5
    FAULT = 6  # system fault
    NO_DATA = 100


_EXE_RTN = (1, 2, 3, 4, 5, 6, 100)


def _time(text: str) -> bool:
    if not re.fullmatch(r"[0-9]{14}", text):
        return False
    try:
        datetime.strptime(text, "%Y%m%d%H%M%S")
    except ValueError:
        return False
    return True


def _int(low: int, high: int) -> Callable[[str], bool]:
    return lambda text: bool(re.fullmatch(r"0|[1-9][0-9]{0,8}", text)) and low <= int(text) <= high


def _id(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9A-Za-z]{1,24}", text))


#: the format of each CP field a command carries
FIELD_FORMATS: dict[str, Callable[[str], bool]] = {
    "SystemTime": _time, "BeginTime": _time, "EndTime": _time, "DataTime": _time, "CstartTime": _time,
    "RestartTime": _time, "Stime": _int(0, 10**6),
    "OverTime": _int(1, 3600), "ReCount": _int(0, 99),
    "RtdInterval": _int(30, 3600), "MinInterval": _int(1, 60), "CTime": _int(1, 24),
    "NewPW": lambda text: bool(re.fullmatch(r"[0-9A-Za-z]{1,9}", text)),
    "PolId": _id, "InfoId": _id, "VaseNo": _int(0, 999),
    "QnRtn": lambda text: text in {"1", "2", "3", "4", "5", "6", "7", "8", "9", "100"},
    "ExeRtn": lambda text: text in {str(c) for c in _EXE_RTN},
}


@dataclass(frozen=True)
class Command:
    """One row of the command table: ``fields`` the request must carry, ``optional`` ones it may, ``answer``
    the fields a station uploads with the same CN when the command asks for data."""

    cn: str
    sender: Literal["platform", "station"]
    fields: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    answer: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return CN_CODES[self.cn]


_T = ("BeginTime", "EndTime")
COMMANDS: dict[str, Command] = {c.cn: c for c in (
    Command("1000", "platform", ("OverTime", "ReCount")),
    Command("1011", "platform", optional=("PolId",), answer=("SystemTime",)),
    Command("1012", "platform", ("SystemTime",), optional=("PolId",)),
    Command("1013", "station", optional=("PolId",)),
    Command("1061", "platform", answer=("RtdInterval",)),
    Command("1062", "platform", ("RtdInterval",)),
    Command("1063", "platform", answer=("MinInterval",)),
    Command("1064", "platform", ("MinInterval",)),
    Command("1072", "platform", ("NewPW",)),
    Command("2012", "platform"),
    Command("2022", "platform"),
    Command("2031", "platform", _T),
    Command("2041", "platform", _T),
    Command("2051", "platform", _T),
    Command("2061", "platform", _T),
    Command("2081", "station", ("RestartTime",)),
    Command("3011", "platform", ("PolId",)),
    Command("3012", "platform", ("PolId",)),
    Command("3013", "platform", ("PolId",)),
    Command("3014", "platform", ("PolId",)),
    Command("3015", "platform", ("DataTime", "VaseNo")),
    Command("3016", "platform", ("PolId", "CstartTime", "CTime")),
    Command("3017", "platform", ("PolId",), answer=("CstartTime", "CTime")),
    Command("3018", "platform", ("PolId",), answer=("Stime",)),
    Command("3019", "platform", ("PolId",)),
    Command("3020", "platform", ("PolId", "InfoId")),
    Command("3021", "platform", ("PolId", "InfoId")),
    Command("9011", "station", ("QnRtn",)),
    Command("9012", "station", ("ExeRtn",)),
    Command("9013", "platform"),
    Command("9014", "platform"),
)}


def command_fields(packet: Packet) -> dict[str, str]:
    """The CP of a command request (or an answer 9011/9012) ``packet`` checked against the table: every required field present and
    well formed; refused with QnRtn 2 otherwise (QnRtn 8 for a CN without a table row). 3020/3021 carry the
    named info item (``<PolId>-<InfoId>=value``) besides their fields; those items pass unchecked."""
    row = COMMANDS.get(packet.cn)
    if row is None:
        raise HJ212Error(f"CN {packet.cn} is not a command of the table", QnRtn.WRONG_CN, packet._fields())
    fields = dict(packet.cp.items())
    missing = [f for f in row.fields if f not in fields]
    if missing:
        raise HJ212Error(f"CN {packet.cn} ({row.name}) needs {', '.join(missing)}", QnRtn.REJECTED,
                         packet._fields())
    for key, value in fields.items():
        check = FIELD_FORMATS.get(key)
        if check is not None and not check(value):
            raise HJ212Error(f"CN {packet.cn}: {key}={value[:20]!r} is malformed", QnRtn.REJECTED, packet._fields())
    if "BeginTime" in row.fields and fields["BeginTime"] > fields["EndTime"]:
        raise HJ212Error(f"CN {packet.cn}: BeginTime is after EndTime", QnRtn.REJECTED, packet._fields())
    return fields


def command(cn: str, *, qn: str, st: str, pw: str, mn: str, fields: Mapping[str, str] | None = None,
            reply: bool = True, flag: int = VERSION_2017) -> Packet:
    """A command packet (checked with :func:`command_fields`); ``reply`` sets Flag bit0 (ask for answers)."""
    items = tuple((k, v) for k, v in (fields or {}).items())
    packet = Packet(qn, st, cn, pw, mn, (flag & ~0x03) | (FLAG_REPLY if reply else 0), CP((items,) if items else ()))
    command_fields(packet)
    return packet


def _answer(request: Packet, cn: str, items: tuple[tuple[str, str], ...]) -> Packet:
    return Packet(request.qn, "91", cn, request.pw, request.mn, request.flag & 0xFC, CP((items,) if items else ()))


def exe_rtn_9012(request: Packet, code: int) -> Packet:
    """The execution result (CN 9012) of ``request``: same QN/PW/MN, ``CP=&&ExeRtn=<code>&&``."""
    if code not in _EXE_RTN:
        raise HJ212Error(f"{code} is not an ExeRtn code", QnRtn.UNKNOWN)
    return _answer(request, "9012", (("ExeRtn", str(code)),))


def notice_9013(request: Packet) -> Packet:
    """The notification answer (CN 9013) to ``request``: same QN/PW/MN, empty CP."""
    return _answer(request, "9013", ())


def set_time_1012(request: Packet, moment: float, tz: tzinfo, *, qn: str) -> Packet:
    """The platform's answer to a time calibration request (CN 1013): set the station's time (CN 1012) to
    ``moment`` (unix seconds) in the station's time zone ``tz``, for the same pollutant (``PolId``) if named."""
    fields = {"SystemTime": datetime.fromtimestamp(moment, tz).strftime("%Y%m%d%H%M%S")}
    pol_id = request.cp.get("PolId")
    if pol_id is not None:
        fields = {"PolId": pol_id, **fields}
    return command("1012", qn=qn, st=request.st, pw=request.pw, mn=request.mn, fields=fields,
                   flag=request.flag)
