"""Environmental monitoring: HJ 212 station protocol (:mod:`.hj212`), the HJ 633 AQI (:mod:`.aqi`) and which
values an hour summary and the AQI take (:mod:`.values`)."""

from shancheng.sdk.envmon.aqi import AQIError, AQIResult, Band, compute_aqi, hourly_aqi, iaqi
from shancheng.sdk.envmon.hj212 import (
    CP,
    FrameReader,
    HJ212Error,
    Packet,
    QnRtn,
    SplitAssembler,
    ack_9014,
    crc16,
    parse_frame,
    qn_rtn_9011,
)

__all__ = [
    "CP",
    "AQIError",
    "AQIResult",
    "Band",
    "FrameReader",
    "HJ212Error",
    "Packet",
    "QnRtn",
    "SplitAssembler",
    "ack_9014",
    "compute_aqi",
    "crc16",
    "hourly_aqi",
    "iaqi",
    "parse_frame",
    "qn_rtn_9011",
]
