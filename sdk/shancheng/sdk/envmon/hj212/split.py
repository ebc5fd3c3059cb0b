"""Reassembly of split HJ 212 packets (Flag bit1, PNUM/PNO), bounded in messages, parts, bytes and time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from shancheng.sdk.envmon.hj212.codes import FLAG_SPLIT, HJ212Error, QnRtn
from shancheng.sdk.envmon.hj212.segment import CP, Packet

__all__ = ["SplitAssembler"]


class SplitAssembler:
    """Reassembles split packets (Flag bit1, PNUM/PNO) keyed by (QN, MN).

    ``add(packet)`` returns a whole packet (unsplit ones at once; split ones when the last part arrives, CP
    groups concatenated in PNO order with a repeated identical ``DataTime`` group kept once) or ``None``.
    Identical duplicate parts are ignored; a conflicting one, or parts disagreeing on ST/CN/PW/Flag/PNUM, are
    refused. At most ``max_messages`` messages, ``max_parts`` parts and ``max_bytes`` bytes of data segments are
    pending; beyond that the new part is refused (QnRtn 2) until :meth:`discard`, :meth:`expire` or completions
    make room. ``expire(max_age)`` drops the messages begun more than ``max_age`` seconds ago (``clock``).
    """

    def __init__(self, *, max_messages: int = 64, max_parts: int = 1024, max_bytes: int = 1 << 20,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_messages = max_messages
        self.max_parts = max_parts
        self.max_bytes = max_bytes
        self.clock = clock
        self._pending: dict[tuple[str, str], dict[int, Packet]] = {}
        self._begun: dict[tuple[str, str], float] = {}
        self._bytes = 0

    @property
    def pending_parts(self) -> int:
        return sum(len(parts) for parts in self._pending.values())

    @property
    def pending_messages(self) -> int:
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        """The data segments of the pending parts, in bytes."""
        return self._bytes

    @property
    def oldest(self) -> float | None:
        """When the oldest pending message began (``clock`` time), ``None`` when none is pending."""
        return min(self._begun.values(), default=None)

    def discard(self, qn: str, mn: str) -> None:
        parts = self._pending.pop((qn, mn), None)
        self._begun.pop((qn, mn), None)
        self._bytes -= sum(len(p.data()) for p in (parts or {}).values())

    def expire(self, max_age: float) -> list[Packet]:
        """Drop the messages begun more than ``max_age`` seconds ago; returns one part of each (to answer it)."""
        limit = self.clock() - max_age
        dropped = []
        for key, begun in list(self._begun.items()):
            if begun <= limit:
                dropped.append(next(iter(self._pending[key].values())))
                self.discard(*key)
        return dropped

    def add(self, packet: Packet) -> Packet | None:
        if not packet.split:
            return packet
        assert packet.pnum is not None and packet.pno is not None  # guaranteed by Packet validation
        key = (packet.qn, packet.mn)
        fields = packet._fields()
        parts = self._pending.get(key)
        if parts is None:
            if len(self._pending) >= self.max_messages:
                raise HJ212Error(f"{self.max_messages} split messages already pending", QnRtn.REJECTED, fields)
            parts = {}
        else:
            first = next(iter(parts.values()))
            if (first.st, first.cn, first.pw, first.flag, first.pnum) != (
                packet.st,
                packet.cn,
                packet.pw,
                packet.flag,
                packet.pnum,
            ):
                raise HJ212Error(f"part {packet.pno} disagrees with earlier parts", QnRtn.REJECTED, fields)
        known = parts.get(packet.pno)
        if known is not None:
            if known != packet:
                raise HJ212Error(f"part {packet.pno} repeated with other content", QnRtn.REJECTED, fields)
            return None
        if self.pending_parts >= self.max_parts:
            raise HJ212Error(f"{self.max_parts} split parts already pending", QnRtn.REJECTED, fields)
        size = len(packet.data())
        if self._bytes + size > self.max_bytes:
            raise HJ212Error(f"{self.max_bytes} bytes of split parts already pending", QnRtn.REJECTED, fields)
        parts[packet.pno] = packet
        self._bytes += size
        self._pending[key] = parts
        self._begun.setdefault(key, self.clock())
        if len(parts) < packet.pnum:
            return None
        self.discard(*key)
        groups: list[tuple[tuple[str, str], ...]] = []
        for pno in range(1, packet.pnum + 1):
            for group in parts[pno].cp.groups:
                if group and group[0][0] == "DataTime" and group in groups:
                    continue
                groups.append(group)
        return replace(packet, flag=packet.flag & ~FLAG_SPLIT, pnum=None, pno=None, cp=CP(tuple(groups)))
