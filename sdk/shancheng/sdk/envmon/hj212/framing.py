"""HJ 212 framing: ``##`` + 4-digit length + data segment + CRC + CR LF, one frame (:func:`parse_frame`) or a
byte stream cut anywhere (:class:`FrameReader`)."""

from __future__ import annotations

import re

from shancheng.sdk.envmon.hj212.codes import MAX_FRAME_LENGTH, HJ212Error, QnRtn
from shancheng.sdk.envmon.hj212.crc import crc16
from shancheng.sdk.envmon.hj212.segment import Packet, parse_data, reply_fields
from shancheng.sdk.errors import InvalidInput

__all__ = ["FrameReader", "parse_frame"]

_DIGITS4 = re.compile(rb"[0-9]{4}")
_CRC_HEX = re.compile(rb"[0-9A-F]{4}")


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
