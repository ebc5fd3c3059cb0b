"""The HJ 212 CRC16 (not the Modbus CRC), table-driven."""

from __future__ import annotations

__all__ = ["crc16"]


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
