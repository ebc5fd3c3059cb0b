"""The HJ 212 listener over real sockets: good stations acknowledged and stored while bad clients are answered
with the right QnRtn, closed, timed out or capped — and never disturb the good ones."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from _hj212_support import GOOD, PASSWORD, closed_within, make_listener, qn_rtn, run, station
from sqlalchemy import Engine, func, select

from shancheng.apps.hj212.frames import StreamFramer, fast_crc16, frame_bytes, parse_checked
from shancheng.apps.hj212.listener import ListenerHandle
from shancheng.apps.hj212.registry import StationRegistry
from shancheng.apps.hj212.simulator import Station, StationConnection
from shancheng.apps.hj212.store import alerts, readings
from shancheng.sdk.envmon.hj212 import Packet, QnRtn, command, command_fields, crc16, parse_frame

EXAMPLE = (b"##0289QN=20240615103000123;ST=22;CN=2011;PW=123456;MN=3034257BF400B7800004A7B1;Flag=5;CP=&&DataTime="
           b"20240615103000;a34004-Rtd=38.2,a34004-Flag=N;a34002-Rtd=61.0,a34002-Flag=N;a21026-Rtd=8.0,a21026-Flag=N;"
           b"a21004-Rtd=42.5,a21004-Flag=N;a05024-Rtd=96.0,a05024-Flag=N;a21005-Rtd=0.72,a21005-Flag=N&&EF41\r\n")


def stored(engine: Engine, mn: str | None = None) -> int:
    query = select(func.count()).select_from(readings)
    if mn is not None:
        query = query.where(readings.c.mn == mn)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` (e.g. the listener's state, read on its loop) until it holds; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.02)


def settled(handle: ListenerHandle, mn: str, qn: str) -> Callable[[], bool]:
    """Whether station ``mn`` has answered command ``qn`` and every packet it sent before is stored."""
    return lambda: handle.call(lambda: handle.listener.history_outcome(mn, qn)) is not None


def test_table_crc_equals_the_sdk_crc_and_the_domain_example() -> None:
    rng = random.Random(7)
    for n in range(500):
        data = bytes(rng.randrange(256) for _ in range(n % 97))
        assert fast_crc16(data) == crc16(data)
    assert parse_checked(EXAMPLE) == parse_frame(EXAMPLE)


def test_two_stations_acknowledged_and_stored(listener: ListenerHandle, engine: Engine) -> None:
    async def go() -> list[int]:
        conns = [await station(n).connect("127.0.0.1", listener.port) for n in (0, 1)]
        results = await asyncio.gather(*(c.run(rate=0, count=150, window=10) for c in conns))
        for c in conns:
            await c.close()
        return [r.acked for r in results]

    assert run(go()) == [150, 150]
    assert stored(engine, GOOD[0]) == 150 and stored(engine, GOOD[1]) == 150
    stats = listener.call(lambda: listener.listener.stats)
    assert stats.acks == 300 and not stats.refusals


def test_frames_cut_anywhere_and_split_packets_are_reassembled(listener: ListenerHandle, engine: Engine) -> None:
    sim = station(0)
    packets = [sim.realtime() for _ in range(5)]
    whole = sim.realtime(values={"a34004": 12.5, "a34002": 30.0})
    parts = Station.split(whole, 2)
    stream = b"".join(frame_bytes(p) for p in [*packets, *parts])
    rng = random.Random(3)

    async def go() -> list[str]:
        conn = await sim.connect("127.0.0.1", listener.port)
        pos = 0
        while pos < len(stream):  # arbitrary TCP segmentation, 1 to 40 bytes at a time
            step = rng.randint(1, 40)
            await conn.send_raw(stream[pos : pos + step])
            pos += step
        answers = [await conn.reply() for _ in range(6)]
        await conn.close()
        return [a.qn for a in answers if a is not None and a.cn == "9014"]

    assert sorted(run(go())) == sorted(p.qn for p in [*packets, whole])
    with engine.connect() as conn:
        row = conn.execute(select(readings).where(readings.c.qn == whole.qn)).mappings().one()
    assert row["values"]["a34004"]["value"] == 12.5 and row["values"]["a34002"]["value"] == 30.0
    assert row["data"].encode() == whole.data()  # stored as one packet, byte for byte


def test_bad_packets_get_their_qnrtn_while_good_stations_are_served(listener: ListenerHandle, engine: Engine) -> None:
    good = station(0)
    wrong_pw = Station(mn=GOOD[1], password="999999")
    unknown = Station(mn="UNKNOWN0000000000000001", password=PASSWORD)
    wrong_st = Station(mn=GOOD[1], password=PASSWORD, st="32")
    frame = frame_bytes(station(1).realtime())
    bad_crc = frame[:-6] + (b"0000" if frame[-6:-2] != b"0000" else b"1111") + b"\r\n"

    async def bad_client() -> list[int]:
        conn = await station(1).connect("127.0.0.1", listener.port)
        codes = []
        for raw in (bad_crc, frame_bytes(wrong_pw.realtime()), frame_bytes(unknown.realtime()),
                    frame_bytes(wrong_st.realtime())):
            await conn.send_raw(raw)
            codes.append(qn_rtn(await conn.reply()))
        await conn.close()
        return codes

    async def go() -> tuple[list[int], int]:
        conn = await good.connect("127.0.0.1", listener.port)
        codes, result = await asyncio.gather(bad_client(), conn.run(rate=200, count=100, window=4))
        await conn.close()
        return codes, result.acked

    codes, acked = run(go())
    assert codes == [QnRtn.WRONG_CRC, QnRtn.WRONG_PW, QnRtn.WRONG_MN, QnRtn.WRONG_ST]
    assert acked == 100 and stored(engine, GOOD[0]) == 100 and stored(engine, GOOD[1]) == 0


def test_garbage_oversized_and_truncated_frames_close_the_connection(listener: ListenerHandle,
                                                                      engine: Engine) -> None:
    good_frame = frame_bytes(station(1).realtime())
    truncated = good_frame[:100] + b"\r\n"

    async def abuser(payloads: list[bytes]) -> bool:
        conn = await station(1).connect("127.0.0.1", listener.port)
        try:
            for p in payloads:
                await conn.send_raw(p)
        except ConnectionError:  # the platform closed it while we were still sending: closed
            await conn.close()
            return True
        closed = await closed_within(conn, 5)
        await conn.close()
        return closed

    async def go() -> tuple[list[bool], int]:
        conn = await station(0).connect("127.0.0.1", listener.port)
        garbage = [b"GET / HTTP/1.1\r\n\r\n##", b"\x00\xff" * 50 + b"##", b"hello##", b"##zzzz", b"####"]
        oversized = [b"##9999" + b"A" * 20 + b"##9000" for _ in range(5)]  # declared sizes above the limit
        truncations = [truncated + b"x##0001" for _ in range(5)]
        closed, result = await asyncio.gather(
            asyncio.gather(abuser(garbage), abuser(oversized), abuser(truncations)),
            conn.run(rate=100, count=60, window=2))
        await conn.close()
        return list(closed), result.acked

    listener.listener.settings = listener.listener.settings.model_copy(update={"max_frame_bytes": 2048})
    closed, acked = run(go())
    assert closed == [True, True, True]
    assert acked == 60 and stored(engine) == 60
    stats = listener.call(lambda: listener.listener.stats)
    assert stats.closed_bad == 3 and stats.refusals[QnRtn.UNKNOWN] >= 15


def test_a_slow_client_times_out_without_slowing_others(listener: ListenerHandle) -> None:
    frame = frame_bytes(station(1).realtime())

    async def slowloris() -> tuple[bool, bool]:
        conn = await station(1).connect("127.0.0.1", listener.port)
        unsent = frame[:-2]  # never a whole frame
        while unsent:  # a byte every 50 ms (15 s in all): the idle and auth timeouts (30 s) never fire meanwhile
            if conn.writer.is_closing() or conn.reader.at_eof():
                break
            try:
                await conn.send_raw(unsent[:1])
            except ConnectionError:
                break
            unsent = unsent[1:]
            await asyncio.sleep(0.05)
        closed = await closed_within(conn, 5)
        await conn.close()
        return closed, bool(unsent)

    async def go() -> tuple[tuple[bool, bool], int]:
        conn = await station(0).connect("127.0.0.1", listener.port)
        slow, result = await asyncio.gather(slowloris(), conn.run(rate=50, count=50, window=1))
        await conn.close()
        return slow, result.acked

    (closed, cut_while_sending), acked = run(go())
    # closed while it was still sending, byte by byte: by the frame timeout (1 s), the only one shorter than that
    assert closed and cut_while_sending
    assert acked == 50
    assert listener.call(lambda: listener.listener.stats.closed_timeout) == 1


def test_connection_caps_per_address_and_in_total_for_authenticated_stations(listener: ListenerHandle) -> None:
    async def connect(host: str) -> StationConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port, local_addr=(host, 0))
        return StationConnection(station(0), reader, writer)

    async def authenticated(host: str) -> StationConnection:
        conn = await connect(host)
        await conn.send(station(0).realtime())
        answer = await conn.reply()
        assert answer is not None and answer.cn == "9014"
        return conn

    async def go() -> tuple[bool, bool, bool, int]:
        held = [await authenticated("127.0.0.1") for _ in range(8)]
        ninth = await connect("127.0.0.1")
        per_address_refused = await closed_within(ninth, 3)
        held += [await authenticated("127.0.0.2") for _ in range(4)]
        other = await connect("127.0.0.3")
        total_refused = await closed_within(other, 3)
        # a held connection is still served
        await held[0].send(station(0).realtime())
        answer = await held[0].reply()
        for c in held:
            await c.close()
        wait_until(lambda: not listener.call(lambda: listener.listener._conns), 10, "the closed slots were not freed")
        fresh = await connect("127.0.0.3")  # after they close, new connections are accepted (and served) again
        await fresh.send(station(0).realtime())
        served = await fresh.reply()
        fresh_open = served is not None and served.cn == "9014"
        await fresh.close()
        return per_address_refused, total_refused, fresh_open, int(answer is not None and answer.cn == "9014")

    assert run(go()) == (True, True, True, 1)
    assert listener.call(lambda: listener.listener.stats.refused_connections) == 2


def test_duplicates_stored_once_alerts_raised_future_refused(listener: ListenerHandle, engine: Engine) -> None:
    sim = station(0)
    high = sim.realtime(values={"a34004": 180.0, "a34002": 40.0})  # PM2.5 180 µg/m³: IAQI 230 and above 150
    future = sim.realtime(at=time.time() + 3600)

    async def go() -> tuple[list[str], int]:
        conn = await sim.connect("127.0.0.1", listener.port)
        await conn.send(high)
        await conn.send(high)  # re-sent (say, the ack was lost): acknowledged again, stored once
        answers = [await conn.reply(), await conn.reply()]
        await conn.send(future)
        code = qn_rtn(await conn.reply())
        await conn.close()
        return [a.cn for a in answers if a is not None], code

    cns, code = run(go())
    assert cns == ["9014", "9014"] and code == QnRtn.REJECTED
    assert stored(engine, GOOD[0]) == 1
    with engine.connect() as conn:
        rows = conn.execute(select(alerts).order_by(alerts.c.kind)).mappings().all()
    assert [(r["code"], r["kind"]) for r in rows] == [("a34004", "iaqi"), ("a34004", "limit")]
    assert rows[0]["iaqi"] > 100 and rows[1]["threshold"] == 150.0


def test_stop_flushes_what_was_accepted(engine: Engine, registry: StationRegistry) -> None:
    handle = make_listener(engine, registry, flush_interval=0.5)
    sim = station(0)

    async def go() -> None:
        conn = await sim.connect("127.0.0.1", handle.port)
        for _ in range(20):
            await conn.send(sim.realtime())
        wait_until(lambda: handle.call(lambda: handle.listener.stats.accepted + handle.listener._queue.qsize())  # type: ignore[union-attr]
                   >= 20, 5, "the listener did not take the 20 packets")  # (flush_interval keeps them unstored)
        await conn.close()

    run(go())
    handle.stop()
    assert stored(engine, GOOD[0]) == 20


def test_stream_framer_bounds_its_buffer() -> None:
    framer = StreamFramer(max_frame_bytes=512)
    out = framer.feed(b"x" * 100_000)
    assert len(out) == 1 and framer.buffered == 0
    out = framer.feed(b"##0600" + b"A" * 1000)
    assert len(out) == 1 and framer.buffered < 512


def test_a_time_calibration_request_is_answered_with_the_gateways_time(listener: ListenerHandle,
                                                                       engine: Engine) -> None:
    sim = station(0)
    request = command("1013", qn=sim.realtime().qn, st="22", pw=PASSWORD, mn=GOOD[0], fields={"PolId": "a34004"})

    async def go() -> list[Packet]:
        conn = await sim.connect("127.0.0.1", listener.port)
        await conn.send(request)
        answers = [await conn.reply(), await conn.reply()]
        await conn.close()
        return [a for a in answers if a is not None]

    before = time.time()
    ready, set_time = run(go())
    assert (ready.cn, ready.qn, qn_rtn(ready)) == ("9011", request.qn, QnRtn.READY)
    assert set_time.cn == "1012" and set_time.mn == GOOD[0] and set_time.reply_requested
    fields = command_fields(set_time)
    told = datetime.strptime(fields["SystemTime"], "%Y%m%d%H%M%S").replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    assert before - 1 <= told.timestamp() <= time.time() + 1 and fields["PolId"] == "a34004"
    assert stored(engine) == 0


def test_history_uploads_sharing_their_requests_qn_are_each_stored_once(listener: ListenerHandle,
                                                                         engine: Engine) -> None:
    """A station answers a history request with one packet per hour, all with the request's QN: each is stored
    (one row per MN, QN, CN and DataTime), and an upload sent again is stored once."""
    sim = station(0)
    hour = int(time.time() // 3600 * 3600)
    for start in (hour - 7200, hour - 3600, hour):
        sim.hourly(start, {"a34004": [30.0, 33.0], "a34002": [50.0, 52.0]})
    tz = ZoneInfo("Asia/Shanghai")
    fields = {"BeginTime": datetime.fromtimestamp(hour - 7200, tz).strftime("%Y%m%d%H%M%S"),
              "EndTime": datetime.fromtimestamp(hour - 1, tz).strftime("%Y%m%d%H%M%S")}

    async def go() -> tuple[Packet, int]:
        conn = await sim.connect("127.0.0.1", listener.port)
        await conn.send(sim.realtime())  # authenticates the connection
        assert (await conn.reply()).cn == "9014"  # type: ignore[union-attr]
        await asyncio.to_thread(listener.call, lambda: listener.listener.send_command(GOOD[0], "2061", fields))
        request = await conn.reply()
        assert request is not None
        uploaded = await conn.answer_history(request)
        await conn.answer_history(request)  # the whole answer again (say, its 9014s were lost)
        await asyncio.to_thread(wait_until, settled(listener, GOOD[0], request.qn), 10, "no ExeRtn recorded")
        await conn.close()
        return request, uploaded

    request, uploaded = run(go())
    assert request.cn == "2061" and command_fields(request) == fields and uploaded == 2
    with engine.connect() as conn:
        rows = conn.execute(select(readings.c.qn, readings.c.data_time).where(readings.c.cn == "2061")
                            .order_by(readings.c.data_time)).all()
    assert [tuple(r) for r in rows] == [(request.qn, hour - 7200), (request.qn, hour - 3600)]
    sent = listener.call(lambda: listener.listener.commands.get(GOOD[0], request.qn))
    assert sent.settled == "ExeRtn 1"
    assert listener.call(lambda: listener.listener.history_outcome(GOOD[0], request.qn)) == "ExeRtn 1"


def test_a_running_simulated_station_answers_a_history_request_from_its_samples(listener: ListenerHandle,
                                                                                engine: Engine) -> None:
    """The simulator's sending loop answers the platform's CN 2061 request meanwhile, with the hourly record it
    builds from the real-time samples it kept (as a data logger does); its own packets are all acknowledged."""
    sim = station(0)
    hour = int(time.time() // 3600 * 3600)
    if time.time() - hour < 3:  # every sample in one hour
        time.sleep(max(0.0, hour + 3 - time.time()))
    tz = ZoneInfo("Asia/Shanghai")
    fields = {"BeginTime": datetime.fromtimestamp(hour, tz).strftime("%Y%m%d%H%M%S"),
              "EndTime": datetime.fromtimestamp(hour + 3599, tz).strftime("%Y%m%d%H%M%S")}

    async def go() -> tuple[int, str]:
        conn = await sim.connect("127.0.0.1", listener.port)
        assert (await conn.run(rate=0, count=3)).acked == 3
        sent = await asyncio.to_thread(listener.call,
                                       lambda: listener.listener.send_command(GOOD[0], "2061", fields))
        acked = (await conn.run(rate=20, count=5)).acked
        await asyncio.to_thread(wait_until, settled(listener, GOOD[0], sent.qn), 10, "no ExeRtn recorded")
        await conn.close()
        return acked, sent.qn

    acked, qn = run(go())
    assert acked == 5
    with engine.connect() as conn:
        row = conn.execute(select(readings).where(readings.c.cn == "2061")).mappings().one()
    recorded = list(sim.recorded)
    built = next(n for n, p in enumerate(recorded) if p.cn == "2061")  # when the request was answered
    samples = [float(p.cp.values("Rtd")["a34004"]) for p in recorded[:built]]
    assert (row["qn"], row["data_time"]) == (qn, hour) and len(samples) >= 3
    assert row["values"]["a34004"]["Avg"] == round(sum(samples) / len(samples), 1)
    assert listener.call(lambda: listener.listener.history_outcome(GOOD[0], qn)) == "ExeRtn 1"
