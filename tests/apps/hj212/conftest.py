"""Fixtures of the HJ 212 listener tests: a real migrated SQLite store, a registry with two stations and a
listener on a free loopback port (its own event loop thread), stations simulated over real sockets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _hj212_support import GOOD, PASSWORD, make_listener
from sqlalchemy import Engine

from shancheng.apps.db import make_engine, migrate
from shancheng.apps.hj212.listener import ListenerHandle
from shancheng.apps.hj212.registry import StationRegistry, load_pepper
from shancheng.sdk.crypto import SM2PrivateKey


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def registry(engine: Engine, tmp_path: Path) -> StationRegistry:
    registry = StationRegistry(engine, pepper=load_pepper(tmp_path / "hj212.pepper"), keys_dir=tmp_path / "stations",
                               key_password=b"station key password")
    for mn in GOOD:
        registry.add(mn=mn, password=PASSWORD, st="22", org="monitoring", pollutants=["a34004", "a34002"],
                     public_key=SM2PrivateKey.generate().public_key())
    return registry


@pytest.fixture
def listener(engine: Engine, registry: StationRegistry) -> Iterator[ListenerHandle]:
    handle = make_listener(engine, registry, frame_timeout=1.0, idle_timeout=30.0, max_connections_per_address=8,
                           max_connections=12, limits={"a34004": 150.0})
    yield handle
    handle.stop()


