"""Minimal strict DER (X.690) for the few structures SM2 needs.

Private module.  Only definite lengths, minimal length encodings and
minimal INTEGER encodings are accepted, so every value has exactly one
encoding (signatures cannot be re-encoded into a second valid form).
"""

from __future__ import annotations

from ..errors import InvalidInput

INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
SEQUENCE = 0x30


class DERError(InvalidInput):
    """Bytes that are not the strict DER this module expects."""


def _encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _encode_length(len(value)) + value


def integer(n: int) -> bytes:
    if n < 0:
        raise ValueError("negative INTEGER not supported")
    body = n.to_bytes(n.bit_length() // 8 + 1, "big")  # leading 0x00 when the top bit is set
    return tlv(INTEGER, body)


def octet_string(b: bytes) -> bytes:
    return tlv(OCTET_STRING, b)


def sequence(*items: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(items))


def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return tlv(OID, bytes(out))


def read_tlv(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """Read one TLV at ``pos``; return (tag, value, next position)."""
    if pos + 2 > len(data):
        raise DERError("truncated DER element")
    tag = data[pos]
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        nbytes = first & 0x7F
        if nbytes == 0 or nbytes > 4 or pos + nbytes > len(data):
            raise DERError("bad DER length")
        length = int.from_bytes(data[pos : pos + nbytes], "big")
        if length < 0x80 or data[pos] == 0:
            raise DERError("non-minimal DER length")
        pos += nbytes
    end = pos + length
    if end > len(data):
        raise DERError("truncated DER element")
    return tag, data[pos:end], end


def expect(data: bytes, tag: int, pos: int = 0) -> tuple[bytes, int]:
    got, value, end = read_tlv(data, pos)
    if got != tag:
        raise DERError(f"expected DER tag 0x{tag:02x}, found 0x{got:02x}")
    return value, end


def parse_integer(value: bytes) -> int:
    if not value:
        raise DERError("empty INTEGER")
    if value[0] & 0x80:
        raise DERError("negative INTEGER")
    if len(value) > 1 and value[0] == 0 and not value[1] & 0x80:
        raise DERError("non-minimal INTEGER")
    return int.from_bytes(value, "big")


def parse_sequence(data: bytes, *, whole: bool = True) -> list[tuple[int, bytes]]:
    """Parse a SEQUENCE into its (tag, value) children."""
    body, end = expect(data, SEQUENCE)
    if whole and end != len(data):
        raise DERError("trailing bytes after DER SEQUENCE")
    items = []
    pos = 0
    while pos < len(body):
        tag, value, pos = read_tlv(body, pos)
        items.append((tag, value))
    return items


def decode_oid(value: bytes) -> str:
    if not value:
        raise DERError("empty OBJECT IDENTIFIER")
    first = value[0]
    arcs = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    n = 0
    for i, b in enumerate(value[1:]):
        if n == 0 and b == 0x80:
            raise DERError("non-minimal OBJECT IDENTIFIER arc")
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(n)
            n = 0
        elif i == len(value) - 2:
            raise DERError("truncated OBJECT IDENTIFIER")
    return ".".join(str(a) for a in arcs)
