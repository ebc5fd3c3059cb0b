"""Which logs a subscription follows: :class:`LogFilter`, the filter object of ``eth_getLogs`` (addresses and topic
positions), built by hand or from a contract's events, which it then decodes.

>>> from shancheng.sdk.client import Contract
>>> registry = Contract.load("EvidenceRegistry", address="0x" + "00" * 19 + "02")
>>> LogFilter.for_event(registry, "BatchAnchored").to_rpc()["address"]
['0x0000000000000000000000000000000000000002']
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from eth_abi.abi import encode

from ..errors import InvalidInput
from ..strict_json import hexbytes, to_hex
from .contracts import Contract, events_of

__all__ = ["MAX_ADDRESSES", "MAX_TOPIC_ALTERNATIVES", "MAX_TOPIC_POSITIONS", "LogFilter"]

MAX_ADDRESSES = 256  # the node's own limits on one filter (eth_getLogs)
MAX_TOPIC_POSITIONS = 4
MAX_TOPIC_ALTERNATIVES = 64


def _fixed(value: Any, size: int) -> bytes | None:
    """``value`` as ``size`` bytes (bytes of that length, or ``0x`` and ``2 * size`` hex digits), else None."""
    if isinstance(value, str):
        with contextlib.suppress(InvalidInput):
            return hexbytes(value, "a filter value", error=InvalidInput, size=size)
    return value if isinstance(value, bytes) and len(value) == size else None


def _address(value: Any) -> bytes:
    if isinstance(value, Contract):
        return value.address
    if (address := _fixed(value, 20)) is None:
        raise InvalidInput(f"a filter address must be 20 bytes, 0x and 40 hex digits, or a Contract: "
                           f"{str(value)[:50]!r}")
    return address


def _topic(value: Any) -> bytes:
    if (topic := _fixed(value, 32)) is None:
        raise InvalidInput(f"a filter topic must be 32 bytes or 0x and 64 hex digits: {str(value)[:70]!r}")
    return topic


class LogFilter:
    """Which logs to follow, as ``eth_getLogs`` takes them: one or several addresses (none: any contract) and up to
    four topic positions, each None (any), one topic or a list of alternatives.

    >>> f = LogFilter(address="0x" + "00" * 19 + "02", topics=[None, "0x" + "11" * 32])
    >>> f.to_rpc()["topics"]
    [None, '0x1111111111111111111111111111111111111111111111111111111111111111']
    """

    def __init__(self, *, address: Any = None, topics: Sequence[Any] = (),
                 events: Sequence[tuple[Contract, str]] = ()) -> None:
        if address is None:
            addresses: tuple[bytes, ...] = ()
        elif isinstance(address, (str, bytes, Contract)):
            addresses = (_address(address),)
        elif isinstance(address, Sequence) and 0 < len(address) <= MAX_ADDRESSES:
            addresses = tuple(_address(a) for a in address)
        else:
            raise InvalidInput(f"a filter takes one address or a list of 1 to {MAX_ADDRESSES}")
        if isinstance(topics, (str, bytes)) or not isinstance(topics, Sequence) \
                or len(topics) > MAX_TOPIC_POSITIONS:
            raise InvalidInput(f"filter topics must be a list of at most {MAX_TOPIC_POSITIONS} positions")
        positions: list[tuple[bytes, ...] | None] = []
        for item in topics:
            if item is None:
                positions.append(None)
            elif isinstance(item, (str, bytes)):
                positions.append((_topic(item),))
            elif isinstance(item, Sequence) and 0 < len(item) <= MAX_TOPIC_ALTERNATIVES:
                positions.append(tuple(_topic(t) for t in item))
            else:
                raise InvalidInput(f"a topic position is None, a topic or a list of 1 to {MAX_TOPIC_ALTERNATIVES}")
        while positions and positions[-1] is None:
            positions.pop()
        self.addresses = addresses
        self.topics: tuple[tuple[bytes, ...] | None, ...] = tuple(positions)
        self._decoders = {contract.event_topic(name): (contract, name) for contract, name in events}

    @classmethod
    def for_event(cls, contract: Contract, *events: str, indexed: Sequence[Any] = ()) -> LogFilter:
        """Logs of ``contract``'s event(s) ``events`` (several: any of them), decoded into ``event.decoded``;
        ``indexed`` pins the first indexed arguments (None: any) of a single event.

        >>> registry = Contract.load("EvidenceRegistry", address="0x" + "00" * 19 + "02")
        >>> len(LogFilter.for_event(registry, "BatchAnchored", indexed=[b"\\x01" * 32]).topics)
        2
        """
        if not events or len(events) > MAX_TOPIC_ALTERNATIVES:
            raise InvalidInput(f"name 1 to {MAX_TOPIC_ALTERNATIVES} events of {contract.name}")
        known = events_of(contract.name)
        for name in events:
            if name not in known:
                raise InvalidInput(f"{contract.name} has no event {name!r} in the SDK's ABI")
        topics: list[Any] = [[known[name].topic for name in events]]
        if indexed:
            if len(events) != 1:
                raise InvalidInput("indexed arguments pin a single event")
            types = known[events[0]].indexed
            if len(indexed) > len(types):
                raise InvalidInput(f"{contract.name}.{events[0]} has {len(types)} indexed arguments")
            topics += [None if v is None else encode([typ], [v]) for (_, typ), v in zip(types, indexed, strict=False)]
        return cls(address=contract, topics=topics, events=[(contract, name) for name in events])

    def to_rpc(self) -> dict[str, Any]:
        """The filter object of ``eth_getLogs`` (without the block range)."""
        out: dict[str, Any] = {}
        if self.addresses:
            out["address"] = [to_hex(a) for a in self.addresses]
        if self.topics:
            out["topics"] = [None if p is None else (to_hex(p[0]) if len(p) == 1 else [to_hex(t) for t in p])
                             for p in self.topics]
        return out

    @property
    def fingerprint(self) -> bytes:
        """SHA-256 of the canonical filter: a checkpoint is only resumed with the filter it was written for."""
        canonical = {"address": sorted(a.hex() for a in self.addresses),
                     "topics": [None if p is None else sorted(t.hex() for t in p) for p in self.topics]}
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).digest()

    def decode(self, topics: Sequence[bytes], data: bytes) -> tuple[str | None, dict[str, Any] | None]:
        """``(event name, arguments)`` when the log is one of the filter's events, else ``(None, None)``."""
        if not topics or topics[0] not in self._decoders:
            return None, None
        contract, name = self._decoders[topics[0]]
        return name, contract.decode_event(name, list(topics), data)

    def __repr__(self) -> str:
        return f"LogFilter(address={[to_hex(a) for a in self.addresses]}, topics={len(self.topics)} positions)"
