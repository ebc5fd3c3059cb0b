"""HJ 212 codes and the one refusal error: QnRtn, the system (ST) and command (CN) tables, Flag bits, bounds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shancheng.sdk.errors import InvalidInput

__all__ = [
    "CN_CODES",
    "FLAG_REPLY",
    "FLAG_SPLIT",
    "MAX_DATA_LENGTH",
    "MAX_FRAME_LENGTH",
    "PROTOCOL_VERSIONS",
    "ST_CODES",
    "HJ212Error",
    "QnRtn",
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
#: the HJ 212-2017 command table (what each command carries: :mod:`.commands`)
CN_CODES: dict[str, str] = {
    "1000": "set timeout and retry count",
    "1011": "get station time",
    "1012": "set station time",
    "1013": "station time calibration request",
    "1061": "get real-time data interval",
    "1062": "set real-time data interval",
    "1063": "get minute data interval",
    "1064": "set minute data interval",
    "1072": "set station access password",
    "2011": "real-time data",
    "2012": "stop real-time data",
    "2021": "equipment status",
    "2022": "stop equipment status",
    "2031": "daily data",
    "2041": "equipment running time, daily",
    "2051": "minute data",
    "2061": "hourly data",
    "2081": "data logger restart time",
    "3011": "zero and span calibration",
    "3012": "sample now",
    "3013": "start cleaning / back-flushing",
    "3014": "comparison sampling",
    "3015": "keep a sample of an exceedance",
    "3016": "set sampling period",
    "3017": "get sampling period",
    "3018": "get sampling time",
    "3019": "get equipment unique id",
    "3020": "get station information",
    "3021": "set station parameters",
    "9011": "request answer (QnRtn)",
    "9012": "execution result (ExeRtn)",
    "9013": "notification answer",
    "9014": "data answer",
}


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
