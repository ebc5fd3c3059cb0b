"""One reading never hurts another: values a summary or the AQI cannot take are refused with QnRtn 2 (not numbers)
or stored and flagged (-9999, negative concentrations), and a packet the database refuses does not lose the other
stations' packets committed with it. Real sockets, real SQLite."""

from __future__ import annotations

import asyncio
import math
import time

from _hj212_support import GOOD, make_listener, packet_with, qn_rtn, run, station
from sqlalchemy import Engine, select, text

from shancheng.apps.hj212.anchoring import hour_packets
from shancheng.apps.hj212.listener import ListenerHandle
from shancheng.apps.hj212.registry import StationRegistry
from shancheng.apps.hj212.store import alerts, readings
from shancheng.sdk.domain.envmon import HourBatch, hour_of
from shancheng.sdk.envmon.hj212 import QnRtn

NOT_NUMBERS = ["NaN", "nan", "inf", "-Infinity", "1e20", "1E3", "abc", "", "12.5.1", "0x10", " 1",
               "100000000000000000000", "--1"]
UNSCORED = {"a34004": "-9999", "a34002": "-3.5"}  # the missing mark; zero drift of a concentration


def test_values_that_are_not_numbers_are_refused_with_qnrtn_2_and_others_stored(listener: ListenerHandle,
                                                                                engine: Engine) -> None:
    sim = station(0)
    bad = [packet_with(sim, {"a34004": value, "a34002": "40.0"}) for value in NOT_NUMBERS]
    good = packet_with(sim, {"a34004": "35.0", "a34002": "40.0"})

    async def go() -> list[int | str]:
        out: list[int | str] = []
        for packet in [*bad[:4], good, *bad[4:]]:  # a connection each: refusals count against a connection
            conn = await sim.connect("127.0.0.1", listener.port)
            await conn.send(packet)
            answer = await conn.reply()
            out.append("ack" if answer is not None and answer.cn == "9014" else qn_rtn(answer))
            await conn.close()
        return out

    answers = run(go())
    assert answers.count("ack") == 1 and answers[4] == "ack"
    assert [a for a in answers if a != "ack"] == [QnRtn.REJECTED] * len(NOT_NUMBERS)
    with engine.connect() as conn:
        assert conn.execute(select(readings.c.qn)).scalars().all() == [good.qn]


def test_missing_and_negative_values_are_stored_flagged_and_left_out_of_the_summary(
        listener: ListenerHandle, engine: Engine) -> None:
    sim = station(0)
    hour_start = time.time() // 3600 * 3600
    at = max(hour_start, time.time() - 60)
    flagged = packet_with(sim, {**UNSCORED, "a01001": "-12.5"}, at=at)  # a temperature below zero is a value
    normal = packet_with(sim, {"a34004": "30.0", "a34002": "50.0"}, at=at + 1)

    async def go() -> list[str]:
        conn = await sim.connect("127.0.0.1", listener.port)
        cns = []
        for packet in (flagged, normal):
            await conn.send(packet)
            answer = await conn.reply()
            cns.append(answer.cn if answer is not None else "closed")
        await conn.close()
        return cns

    assert run(go()) == ["9014", "9014"]
    with engine.connect() as conn:
        row = conn.execute(select(readings).where(readings.c.qn == flagged.qn)).mappings().one()
        assert conn.execute(select(alerts)).all() == []
    assert row["data"].encode() == flagged.data()  # stored byte for byte: committed in the hour's Merkle root
    assert row["values"]["a34004"] == {"Rtd": -9999.0, "Flag": "N", "value": -9999.0, "unscored": "missing (-9999)"}
    assert row["values"]["a34002"]["unscored"] == "negative concentration"
    assert "unscored" not in row["values"]["a01001"] and row["values"]["a01001"]["value"] == -12.5

    packets, _ = hour_packets(engine, GOOD[0], hour_of(flagged))
    batch = HourBatch.from_packets(GOOD[0], hour_of(flagged), packets)
    summary = {p.code: p for p in batch.pollutants}
    assert batch.reading_count == 2
    assert (summary["a34004"].min_milli, summary["a34004"].max_milli) == (30_000, 30_000)  # -9999 left out
    assert (summary["a34002"].min_milli, summary["a34002"].avg_milli) == (50_000, 50_000)  # -3.5 left out
    assert summary["a01001"].avg_milli == -12_500 and summary["a34004"].iaqi == 43


def test_a_packet_the_database_refuses_loses_no_other_packet_of_its_group(engine: Engine,
                                                                            registry: StationRegistry) -> None:
    s0, s1 = station(0), station(1)
    poisoned = packet_with(s1, {"a34004": "20.0", "a34002": "30.0"})
    with engine.begin() as conn:  # the database refuses exactly this packet (a constraint, a full column...)
        conn.execute(text("CREATE TRIGGER poison BEFORE INSERT ON readings WHEN NEW.qn = :qn "
                          "BEGIN SELECT RAISE(ABORT, 'poisoned reading'); END".replace(":qn", f"'{poisoned.qn}'")))
    handle = make_listener(engine, registry, flush_interval=0.5)  # every packet below shares one group commit

    async def go() -> tuple[int, list[str]]:
        first = await s0.connect("127.0.0.1", handle.port)
        second = await s1.connect("127.0.0.1", handle.port)
        others = [s1.realtime(at=time.time() - 5) for _ in range(3)]
        await asyncio.gather(first.send(s0.realtime()), second.send(poisoned),
                             *(second.send(p) for p in others))
        result = await first.run(rate=0, count=10, window=10)
        answers = [await second.reply() for _ in range(4)]
        await first.close()
        await second.close()
        return result.acked, sorted(f"{a.qn}:{a.cn}:{a.cp.get('QnRtn')}" for a in answers if a is not None)

    try:
        acked, answers = run(go())
    finally:
        handle.stop()
    assert acked >= 10
    assert f"{poisoned.qn}:9011:{QnRtn.REJECTED}" in answers
    assert sum(a.endswith(":9014:None") for a in answers) == 3
    with engine.connect() as conn:
        stored = conn.execute(select(readings.c.mn, readings.c.qn)).all()
    assert poisoned.qn not in {qn for _, qn in stored}
    assert sum(mn == GOOD[1] for mn, _ in stored) == 3 and sum(mn == GOOD[0] for mn, _ in stored) >= 11
    assert handle.listener.stats.store_errors == 1


def test_a_reading_stored_with_a_non_finite_value_is_summarised_without_it(engine: Engine,
                                                                             listener: ListenerHandle) -> None:
    """Rows an older listener stored (NaN, inf, 1e20, text as values) never break the hour's summary."""
    sim = station(0)
    at = time.time() - 5
    legacy = [packet_with(sim, {"a34004": v, "a34002": "40.0"}, at=at) for v in ("NaN", "inf", "1e20", "abc")]
    good = packet_with(sim, {"a34004": "10.0", "a34002": "40.0"}, at=at)
    with engine.begin() as conn:
        for p in [*legacy, good]:
            conn.execute(readings.insert().values(mn=p.mn, qn=p.qn, cn=p.cn, data_time=int(at), received_at=at,
                                                  codes=",a34004,a34002,", values={"a34004": {"value": math.nan}},
                                                  data=p.data().decode()))
    packets, _ = hour_packets(engine, GOOD[0], int(at) // 3600)
    batch = HourBatch.from_packets(GOOD[0], int(at) // 3600, packets)
    assert batch.reading_count == 5
    assert {p.code: (p.min_milli, p.max_milli) for p in batch.pollutants} == {"a34002": (40_000, 40_000),
                                                                              "a34004": (10_000, 10_000)}
