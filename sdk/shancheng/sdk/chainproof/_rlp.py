"""A strict RLP codec for the verifier (canonical encodings only, bounded depth).

The ``rlp`` package is untyped and lenient about some non-canonical forms; an
offline verifier wants neither, so this is the Yellow Paper's appendix B in a
page.  Decoded items are ``bytes`` or lists of items.
"""

from __future__ import annotations

from typing import TypeAlias

from ..errors import InvalidInput

__all__ = ["Item", "RLPError", "decode", "decode_uint", "encode", "encode_uint"]

Item: TypeAlias = bytes | list["Item"]
MAX_DEPTH = 16


class RLPError(InvalidInput):
    """Bytes that are not one canonical RLP item."""


def _length(data: bytes, pos: int, size_len: int) -> int:
    raw = data[pos : pos + size_len]
    if len(raw) != size_len:
        raise RLPError("RLP length runs past the end of the data")
    if raw[0] == 0:
        raise RLPError("RLP length has a leading zero byte")
    n = int.from_bytes(raw, "big")
    if n < 56:
        raise RLPError("RLP long form used for a length below 56")
    return n


def _item(data: bytes, pos: int, depth: int) -> tuple[Item, int]:
    if depth > MAX_DEPTH:
        raise RLPError(f"RLP nesting deeper than {MAX_DEPTH}")
    if pos >= len(data):
        raise RLPError("RLP item runs past the end of the data")
    b = data[pos]
    if b < 0x80:
        return data[pos : pos + 1], pos + 1
    if b < 0xB8:
        n, start = b - 0x80, pos + 1
        if n == 1 and start < len(data) and data[start] < 0x80:
            raise RLPError("RLP single byte below 0x80 must encode itself")
    elif b < 0xC0:
        n = _length(data, pos + 1, b - 0xB7)
        start = pos + 1 + (b - 0xB7)
    else:
        if b < 0xF8:
            n, start = b - 0xC0, pos + 1
        else:
            n = _length(data, pos + 1, b - 0xF7)
            start = pos + 1 + (b - 0xF7)
        end = start + n
        if end > len(data):
            raise RLPError("RLP list runs past the end of the data")
        items: list[Item] = []
        p = start
        while p < end:
            child, p = _item(data, p, depth + 1)
            items.append(child)
        if p != end:
            raise RLPError("RLP list payload does not end on an item boundary")
        return items, end
    end = start + n
    if end > len(data):
        raise RLPError("RLP string runs past the end of the data")
    return data[start:end], end


def decode(data: bytes) -> Item:
    """Decode exactly one canonical RLP item (trailing bytes are refused)."""
    item, end = _item(data, 0, 0)
    if end != len(data):
        raise RLPError(f"{len(data) - end} trailing bytes after the RLP item")
    return item


def _prefix(n: int, short: int) -> bytes:
    if n < 56:
        return bytes([short + n])
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([short + 55 + len(size)]) + size


def encode(item: Item) -> bytes:
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _prefix(len(item), 0x80) + item
    payload = b"".join(encode(i) for i in item)
    return _prefix(len(payload), 0xC0) + payload


def encode_uint(n: int) -> bytes:
    """RLP of a non-negative integer (big-endian, no leading zeros; 0 is the empty string)."""
    if n < 0:
        raise RLPError("RLP integers are non-negative")
    return encode(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def decode_uint(raw: Item, what: str, *, max_bytes: int = 32) -> int:
    """A canonical RLP integer field (no leading zeros, at most ``max_bytes`` bytes)."""
    if not isinstance(raw, bytes):
        raise RLPError(f"{what} must be an RLP string, not a list")
    if len(raw) > max_bytes:
        raise RLPError(f"{what} is longer than {max_bytes} bytes")
    if raw[:1] == b"\x00":
        raise RLPError(f"{what} has a leading zero byte")
    return int.from_bytes(raw, "big")
