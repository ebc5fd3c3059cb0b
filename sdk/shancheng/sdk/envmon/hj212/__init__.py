"""HJ 212 (2017 / 2025) frames: parse, serialise, CRC, a stream reader, split-packet reassembly, the command
table and the answers. Modules by idea: :mod:`.codes` (QnRtn, ST/CN tables, the error), :mod:`.crc`,
:mod:`.segment` (the data segment), :mod:`.framing`, :mod:`.split`, :mod:`.replies` (9011/9014),
:mod:`.commands` (each command's CP, 9012 ExeRtn, 9013); every public name is importable from this package.

A frame is ``##`` + 4-digit length of the data segment + data segment + 4 uppercase hex CRC + ``\\r\\n``; the
CRC (HJ 212 "CRC16", not Modbus) covers the data segment only. The data segment is
``QN=..;ST=..;CN=..;PW=..;MN=..;Flag=..;[PNUM=..;PNO=..;]CP=&&...&&`` in exactly this order.

Every refusal raises :class:`HJ212Error` whose ``qn_rtn`` is the QnRtn code a platform would answer with:

=====================================================================  ======
problem                                                                QnRtn
=====================================================================  ======
CRC not matching, or not 4 uppercase hex digits                          9
CN not 4 digits or not in the HJ 212-2017 command table                  8
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

from shancheng.sdk.envmon.hj212.codes import (
    CN_CODES,
    FLAG_REPLY,
    FLAG_SPLIT,
    MAX_DATA_LENGTH,
    MAX_FRAME_LENGTH,
    PROTOCOL_VERSIONS,
    ST_CODES,
    HJ212Error,
    QnRtn,
)
from shancheng.sdk.envmon.hj212.commands import (
    COMMANDS,
    Command,
    ExeRtn,
    command,
    command_fields,
    exe_rtn_9012,
    notice_9013,
    set_time_1012,
)
from shancheng.sdk.envmon.hj212.crc import crc16
from shancheng.sdk.envmon.hj212.framing import FrameReader, parse_frame
from shancheng.sdk.envmon.hj212.replies import ack_9014, qn_rtn_9011
from shancheng.sdk.envmon.hj212.segment import CP, Packet, parse_data, reply_fields
from shancheng.sdk.envmon.hj212.split import SplitAssembler

__all__ = [
    "CN_CODES",
    "COMMANDS",
    "CP",
    "FLAG_REPLY",
    "FLAG_SPLIT",
    "MAX_DATA_LENGTH",
    "MAX_FRAME_LENGTH",
    "PROTOCOL_VERSIONS",
    "ST_CODES",
    "Command",
    "ExeRtn",
    "FrameReader",
    "HJ212Error",
    "Packet",
    "QnRtn",
    "SplitAssembler",
    "ack_9014",
    "command",
    "command_fields",
    "crc16",
    "exe_rtn_9012",
    "notice_9013",
    "parse_data",
    "parse_frame",
    "qn_rtn_9011",
    "reply_fields",
    "set_time_1012",
]
