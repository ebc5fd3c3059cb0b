"""The platform's answers: the data answer (CN 9014) and the request answer (CN 9011 with its QnRtn)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from shancheng.sdk.envmon.hj212.codes import PROTOCOL_VERSIONS, HJ212Error, QnRtn
from shancheng.sdk.envmon.hj212.segment import CP, Packet

__all__ = ["ack_9014", "qn_rtn_9011"]

_INT = re.compile(r"0|[1-9][0-9]*")


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
