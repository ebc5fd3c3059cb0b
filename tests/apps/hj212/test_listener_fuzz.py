"""The listener fuzzed over a real socket: random values, fields, split parts and TCP segmentation. Every packet is
acknowledged (9014) or refused with the QnRtn its fault calls for, an acknowledged packet is stored, and every
hour's summary is computed or refused with a reason (never another error). The same traffic against a real node,
where every hour is anchored or failed with its reason: test_anchoring_env_api.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _hj212_fuzzing import TZ, Spec, build, check_answers, exchange, specs
from _hj212_support import GOOD, PASSWORD, make_listener, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from shancheng.apps.hj212.anchoring import hour_packets
from shancheng.apps.hj212.listener import ListenerHandle
from shancheng.apps.hj212.registry import StationRegistry
from shancheng.apps.hj212.store import readings
from shancheng.sdk.domain.envmon import HourBatch, hour_of
from shancheng.sdk.errors import InvalidInput


@pytest.fixture
def fuzzed_listener(engine: Engine, registry: StationRegistry) -> Iterator[ListenerHandle]:
    handle = make_listener(engine, registry, max_bad_frames=10_000, max_auth_failures_per_address=10**6,
                           max_auth_failures_per_station=10**6)
    yield handle
    handle.stop()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=specs, seed=st.integers(0, 2**32 - 1))
def test_every_packet_is_acknowledged_or_refused_with_its_qnrtn(fuzzed_listener: ListenerHandle, engine: Engine,
                                                                 drawn: list[Spec], seed: int) -> None:
    fuzzed = build(drawn, [(GOOD[0], PASSWORD), (GOOD[1], PASSWORD)])
    acked = check_answers(fuzzed, run(exchange(fuzzed_listener.port, fuzzed, seed)))
    for packet in acked:
        with engine.connect() as conn:
            assert conn.execute(select(readings.c.id).where(readings.c.qn == packet.qn,
                                                            readings.c.mn == packet.mn)).first() is not None
    for mn, hour in {(p.mn, hour_of(p, tz=TZ)) for p in acked}:  # what the anchoring job computes
        stored, _ = hour_packets(engine, mn, hour)
        try:
            HourBatch.from_packets(mn, hour, stored, tz=TZ)
        except InvalidInput as exc:  # a refusal with its reason; any other error fails the test
            assert str(exc)
