"""The listener under attack over real sockets: password guessing across reconnects and addresses is locked out
while the real station keeps working, idle connections cannot lock registered stations out, split messages are
capped in bytes and time."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from _hj212_support import GOOD, PASSWORD, closed_within, connect_from, make_listener, qn_rtn, run, station
from sqlalchemy import Engine

from shancheng.apps.hj212.registry import StationRegistry
from shancheng.apps.hj212.simulator import Station, StationConnection
from shancheng.sdk.envmon.hj212 import CP, FLAG_SPLIT, Packet, QnRtn


async def answer_to(conn: StationConnection, packet: Packet) -> str:
    """``"ack"`` for a 9014, the QnRtn of a 9011, ``"closed"`` when the connection was closed without answer."""
    try:
        await conn.send(packet)
        answer = await conn.reply(timeout=5)
    except ConnectionError:
        return "closed"
    if answer is None:
        return "closed"
    return "ack" if answer.cn == "9014" else str(qn_rtn(answer))


def test_guessing_across_reconnects_is_locked_out_while_the_real_station_works(
        engine: Engine, registry: StationRegistry, caplog: pytest.LogCaptureFixture) -> None:
    handle = make_listener(engine, registry, max_auth_failures_per_address=5, max_auth_failures_per_station=8,
                           lockout=60, max_bad_frames=100)
    real = station(0)
    mn = GOOD[0]

    async def guess(host: str, password: str) -> str:
        conn = await connect_from(host, handle.port, real)
        try:
            return await answer_to(conn, Station(mn=mn, password=password).realtime())
        finally:
            await conn.close()

    async def go() -> dict[str, object]:
        online = await connect_from("127.0.0.1", handle.port, real)  # the station, connected before the attack
        assert await answer_to(online, real.realtime()) == "ack"
        out: dict[str, object] = {}
        # one address reconnecting for every guess: five wrong passwords, then even the right one is refused
        out["one address"] = [await guess("127.0.0.2", f"{n:06d}") for n in range(5)]
        out["right password from it"] = await guess("127.0.0.2", PASSWORD)
        # more addresses: the station's MN locks for addresses it never authenticated from
        out["spread"] = [await guess(f"127.0.0.{3 + n // 4}", f"{100 + n:06d}") for n in range(8)]
        out["right password, new address"] = await guess("127.0.0.20", PASSWORD)
        # the real station: its open connection and a new connection from its own address both still work
        out["station connected"] = await answer_to(online, real.realtime())
        again = await connect_from("127.0.0.1", handle.port, real)
        out["station reconnected"] = await answer_to(again, real.realtime())
        await again.close()
        await online.close()
        return out

    with caplog.at_level(logging.WARNING, logger="shancheng.hj212"):
        try:
            out = run(go())
        finally:
            handle.stop()
    wrong, rejected = str(QnRtn.WRONG_PW), str(QnRtn.REJECTED)
    assert out["one address"] == [wrong] * 5
    assert out["right password from it"] in (rejected, "closed")  # unheard: a right guess is not told apart
    spread = out["spread"]
    assert isinstance(spread, list) and spread[0] == wrong and rejected in spread  # the MN locked on the way
    assert out["right password, new address"] in (rejected, "closed")
    assert out["station connected"] == "ack" and out["station reconnected"] == "ack"
    assert handle.listener.stats.lockouts >= 2
    assert any("HJ 212 alert: too many failed passwords" in r.getMessage() for r in caplog.records)


def test_idle_connections_from_many_addresses_do_not_lock_out_a_registered_station(
        engine: Engine, registry: StationRegistry) -> None:
    handle = make_listener(engine, registry, max_connections=1024, max_connections_per_address=32,
                           auth_timeout=60)  # eviction, not the deadline, makes room here

    async def go() -> tuple[int, str, str]:
        idle = []
        for n in range(33 * 32):  # 1,056 connections that never send a frame, 32 from each of 33 addresses
            reader, writer = await asyncio.open_connection("127.0.0.1", handle.port,
                                                           local_addr=(f"127.0.1.{1 + n // 32}", 0))
            idle.append((reader, writer))
        await asyncio.sleep(0.5)
        sim = station(0)
        conn = await connect_from("127.0.0.1", handle.port, sim)
        first = await answer_to(conn, sim.realtime())
        # once authenticated, the station is not evicted by more idle connections
        more = [await asyncio.open_connection("127.0.0.1", handle.port, local_addr=("127.0.2.1", 0))
                for _ in range(32)]
        second = await answer_to(conn, sim.realtime())
        await conn.close()
        for _, writer in idle + more:
            writer.close()
        return handle.call(lambda: handle.listener.stats.evicted), first, second

    try:
        evicted, first, second = run(go())
    finally:
        handle.stop()
    assert (first, second) == ("ack", "ack")
    assert evicted >= 33


def test_a_connection_that_never_authenticates_is_closed_at_the_deadline(engine: Engine,
                                                                       registry: StationRegistry) -> None:
    handle = make_listener(engine, registry, auth_timeout=0.5, idle_timeout=30)
    sim = station(0)

    async def go() -> tuple[bool, bool, str]:
        idle = await connect_from("127.0.0.1", handle.port, sim)
        wrong = await connect_from("127.0.0.1", handle.port, sim)
        await wrong.send(Station(mn=GOOD[0], password="999999").realtime())  # frames, but never authenticates
        good = await connect_from("127.0.0.1", handle.port, sim)
        assert await answer_to(good, sim.realtime()) == "ack"
        idle_closed, wrong_closed = await asyncio.gather(closed_within(idle, 3), closed_within(wrong, 3))
        await asyncio.sleep(0.5)
        after = await answer_to(good, sim.realtime())  # the authenticated one outlives the deadline
        for c in (idle, wrong, good):
            await c.close()
        return idle_closed, wrong_closed, after

    try:
        assert run(go()) == (True, True, "ack")
        assert handle.listener.stats.closed_unauthenticated == 2
    finally:
        handle.stop()


def _big_parts(sim: Station, pnum: int, count: int) -> list[Packet]:
    """The first ``count`` parts of a ``pnum``-part split message, each about 8 KB."""
    head = sim.realtime()
    groups = tuple(((f"x{i:03d}-Info", "A" * 60),) for i in range(110))
    return [Packet(head.qn, head.st, head.cn, head.pw, head.mn, head.flag | FLAG_SPLIT,
                   CP((head.cp.groups[0], *groups)), pnum, pno) for pno in range(1, count + 1)]


async def answer_or_pending(conn: StationConnection, packet: Packet) -> str:
    """As :func:`answer_to`, ``"pending"`` when no answer comes (a split part is answered with its message)."""
    try:
        await conn.send(packet)
        answer = await conn.reply(timeout=0.3)
    except TimeoutError:
        return "pending"
    return "closed" if answer is None else str(qn_rtn(answer))


def test_split_messages_are_capped_in_bytes_per_connection_and_in_all(engine: Engine,
                                                                      registry: StationRegistry) -> None:
    handle = make_listener(engine, registry, max_split_bytes=64 * 1024, max_split_bytes_total=96 * 1024,
                           max_bad_frames=10)
    s0, s1 = station(0), station(1)
    first_parts, second_parts = _big_parts(s0, 9999, 9), _big_parts(s1, 9999, 8)
    size = len(first_parts[0].data())

    async def go() -> tuple[list[str], list[str], int, str, int]:
        first = await connect_from("127.0.0.1", handle.port, s0)
        second = await connect_from("127.0.0.2", handle.port, s1)
        held_by_first = [await answer_or_pending(first, p) for p in first_parts[:8]]
        refused_to_second = [await answer_or_pending(second, p) for p in second_parts]
        held = handle.call(lambda: handle.listener._split_bytes)
        over_own_cap = await answer_or_pending(first, first_parts[8])
        await first.close()
        await second.close()
        deadline = time.monotonic() + 5
        while handle.call(lambda: handle.listener._split_bytes) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return held_by_first, refused_to_second, held, over_own_cap, handle.call(
            lambda: handle.listener._split_bytes)

    try:
        held_by_first, refused_to_second, held, over_own_cap, released = run(go())
    finally:
        handle.stop()
    assert 7000 < size < 9999 and 8 * size < 64 * 1024 < 9 * size
    assert held_by_first == ["pending"] * 8
    fits = (96 * 1024 - 8 * size) // size  # what is left of the listener's total for the second connection
    assert refused_to_second == ["pending"] * fits + [str(QnRtn.REJECTED)] * (8 - fits)
    assert held == (8 + fits) * size <= 96 * 1024
    assert over_own_cap == str(QnRtn.REJECTED)
    assert released == 0  # closed connections give back what they held


def test_a_split_message_not_completed_in_time_is_refused_and_released(engine: Engine,
                                                                       registry: StationRegistry) -> None:
    handle = make_listener(engine, registry, split_timeout=1.5)  # long enough to see the parts held under load
    sim = station(0)

    async def go() -> tuple[str, int, str]:
        conn = await connect_from("127.0.0.1", handle.port, sim)
        parts = _big_parts(sim, 3, 2)
        for part in parts:
            await conn.send(part)
        deadline, held = time.monotonic() + 2, 0
        while held <= 14_000 and time.monotonic() < deadline:  # until every part sent is held (the most seen)
            held = max(held, handle.call(lambda: handle.listener._split_bytes))
            await asyncio.sleep(0.01)
        answer = await conn.reply(timeout=15)  # without the deadline no answer would ever come
        assert answer is not None and answer.qn == parts[0].qn
        late = await answer_to(conn, sim.realtime())
        await conn.close()
        return str(qn_rtn(answer)), held, late

    try:
        code, held, late = run(go())
        assert handle.call(lambda: handle.listener._split_bytes) == 0
    finally:
        handle.stop()
    assert code == str(QnRtn.REJECTED) and held > 14_000 and late == "ack"
