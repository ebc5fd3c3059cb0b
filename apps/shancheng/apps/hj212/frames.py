"""The listener's names for the SDK's HJ 212 framing (:mod:`shancheng.sdk.envmon.hj212` does the work: the
table-driven CRC16, the stream reader with its frame bound, refusals that carry the raw frame and, for a wrong CRC,
the leniently read QN/PW/MN to address the 9011 answer).

>>> framer = StreamFramer(max_frame_bytes=512)
>>> [type(x).__name__ for x in framer.feed(b"##0600" + b"A" * 10)]
['HJ212Error']
"""

from __future__ import annotations

from shancheng.sdk.envmon.hj212 import FrameReader, HJ212Error, Packet, crc16, parse_frame, reply_fields

__all__ = ["StreamFramer", "fast_crc16", "frame_bytes", "parse_checked", "reply_fields"]

#: the SDK's CRC16 (table-driven)
fast_crc16 = crc16
#: parse a complete frame cut by :class:`StreamFramer`: CRC, then the data segment
parse_checked = parse_frame


def frame_bytes(packet: Packet) -> bytes:
    """``packet`` as a frame (``Packet.to_frame``)."""
    return packet.to_frame()


class StreamFramer:
    """``feed(chunk)`` -> complete frames (bytes) and framing refusals (:class:`HJ212Error`), in stream order:
    the SDK's :class:`FrameReader` bounded by ``max_frame_bytes``, in its strict mode (garbage counted per chunk,
    each bad length field a refusal: an abusive client soon reaches the listener's ``max_bad_frames``)."""

    def __init__(self, *, max_frame_bytes: int) -> None:
        self._reader = FrameReader(max_frame_bytes=max_frame_bytes, strict=True)

    @property
    def buffered(self) -> int:
        return self._reader.buffered

    def feed(self, chunk: bytes) -> list[bytes | HJ212Error]:
        return self._reader.frames(chunk)
