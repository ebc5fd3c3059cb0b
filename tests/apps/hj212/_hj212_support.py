"""Helpers of the HJ 212 listener tests (a module with its own name: test modules never import conftest)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from sqlalchemy import Engine

from shancheng.apps.hj212.listener import Hj212Listener, ListenerHandle
from shancheng.apps.hj212.registry import StationRegistry
from shancheng.apps.hj212.settings import Hj212Settings
from shancheng.apps.hj212.simulator import Station

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
