"""Helpers of the HJ 212 listener tests (a module with its own name: test modules never import conftest)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from sqlalchemy import Engine

from shancheng.apps.hj212.listener import Hj212Listener, ListenerHandle
from shancheng.apps.hj212.registry import StationRegistry
from shancheng.apps.hj212.settings import Hj212Settings
from shancheng.apps.hj212.simulator import Station, StationConnection
from shancheng.sdk.envmon.hj212 import CP, Packet

T = TypeVar("T")
GOOD = ("GOODSTATION0000000000001", "GOODSTATION0000000000002")
PASSWORD = "123456"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a station's coroutine to completion (the listener has its own loop in another thread)."""
    return asyncio.run(coro)


def make_listener(engine: Engine, registry: StationRegistry, **overrides: Any) -> ListenerHandle:
    settings = Hj212Settings(**{"port": 0, "anchor_check_interval": 0, **overrides})
    return ListenerHandle(Hj212Listener(settings=settings, engine=engine, registry=registry))


def station(n: int = 0, **kwargs: Any) -> Station:
    return Station(mn=GOOD[n], password=PASSWORD, **kwargs)


def packet_with(sim: Station, values: Mapping[str, str], *, at: float | None = None, cn: str = "2011") -> Packet:
    """A packet of ``sim`` whose value items (Rtd for 2011, Avg otherwise) carry the given texts verbatim."""
    at = time.time() - 5 if at is None else at
    kind = "Rtd" if cn == "2011" else "Avg"
    template = sim.realtime(at=at)
    groups = [template.cp.groups[0], *(((f"{code}-{kind}", text), (f"{code}-Flag", "N")) for code, text in
                                       values.items())]
    return Packet(template.qn, template.st, cn, template.pw, template.mn, template.flag, CP(tuple(groups)))


def qn_rtn(answer: Packet | None) -> int:
    """The QnRtn of a 9011 answer (fails on anything else)."""
    assert answer is not None and answer.cn == "9011", answer
    return int(answer.cp.get("QnRtn") or 0)


async def connect_from(host: str, port: int, sim: Station) -> StationConnection:
    """A connection of ``sim`` from the loopback address ``host`` (127.0.0.x: one machine, many sources)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(host, 0))
    return StationConnection(sim, reader, writer)


async def closed_within(conn: StationConnection, seconds: float) -> bool:
    """True when the platform closes the connection (EOF) within ``seconds``; answers before it are skipped."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = await asyncio.wait_for(conn.reader.read(65536), deadline - time.monotonic())
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        if not chunk:
            return True
    return False
