"""Random HJ 212 traffic for the fuzz tests (a module of its own: test modules never import each other): packets
with random values, fields, flags and split parts from stations, wrong passwords and unknown MNs, sent with random
TCP segmentation; the answer each one calls for."""

from __future__ import annotations

import itertools
import random
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from shancheng.apps.hj212.frames import frame_bytes
from shancheng.apps.hj212.simulator import Station
from shancheng.sdk.envmon.hj212 import CP, FLAG_REPLY, Packet, QnRtn
from shancheng.sdk.envmon.values import NUMERIC_KINDS, number_problem

TZ = ZoneInfo("Asia/Shanghai")
CODES = ("a34004", "a34002", "a21026", "a05024", "a01001", "LA")
SPECIAL = ["-9999", "NaN", "nan", "inf", "-inf", "1e20", "1E-3", "abc", "-0", ".5", "1.", "-", "", "0.000",
           "99999999999999.9", "1000000000000000", "1000.0", "-3.5"]
_QN_MS = itertools.count(int(time.time() * 1000))

Spec = tuple[str, str, dict[str, tuple[str, str]], list[tuple[str, str]], int]
values = st.one_of(
    st.sampled_from(SPECIAL),
    st.decimals(min_value=-10_000, max_value=10**6, allow_nan=False, places=3).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=string.ascii_letters + string.digits + ".-+ ", max_size=12),
)
_readings = st.dictionaries(st.sampled_from(CODES), st.tuples(values, st.sampled_from("NNNNFMDCTB")),
                            min_size=1, max_size=5)
_extra = st.lists(st.tuples(st.sampled_from(["x01-Info", "a34004-EFlag", "SampleTime"]),
                            st.text(alphabet=string.ascii_letters + string.digits, max_size=8)), max_size=2)
_who = st.sampled_from(["station 0", "station 0", "station 1", "wrong PW", "unknown MN"])
#: what a test draws: (who sends, CN, {code: (value text, flag)}, extra items, split parts)
specs = st.lists(st.tuples(_who, st.sampled_from(["2011", "2011", "2051", "2061"]), _readings, _extra,
                           st.integers(1, 3)), min_size=1, max_size=6)


@dataclass
class Fuzzed:
    packet: Packet
    who: str
    frames: list[bytes]
    #: the QnRtn the packet's fault calls for; None: acknowledged (9014)
    expected: int | None

    @property
    def answers(self) -> int:
        """A refused credential answers each part; anything else answers the whole message once."""
        return len(self.frames) if self.who in ("wrong PW", "unknown MN") else 1


def build(drawn: Sequence[Spec], stations: Sequence[tuple[str, str]]) -> list[Fuzzed]:
    """The packets of ``drawn``: ``stations`` are (MN, PW) of "station 0" and "station 1"."""
    out = []
    for who, cn, items, extra, parts in drawn:
        mn, pw = {"station 1": stations[1], "unknown MN": ("NOSUCHSTATION0001", "123456")}.get(who, stations[0])
        if who == "wrong PW":
            pw = "WRONGPW0"
        ms = next(_QN_MS)
        qn = datetime.fromtimestamp(ms / 1000, TZ).strftime("%Y%m%d%H%M%S") + f"{ms % 1000:03d}"
        at = datetime.fromtimestamp(time.time() - 5, TZ).strftime("%Y%m%d%H%M%S")
        kind = "Rtd" if cn == "2011" else "Avg"
        groups: list[tuple[tuple[str, str], ...]] = [(("DataTime", at),)]
        groups += [((f"{code}-{kind}", value), (f"{code}-Flag", flag)) for code, (value, flag) in items.items()]
        groups += [((key, value or "0"),) for key, value in extra]
        packet = Packet(qn, "22", cn, pw, mn, 4 | FLAG_REPLY, CP(tuple(groups)))
        pieces = Station.split(packet, min(parts, len(groups) - 1)) if parts > 1 else [packet]
        out.append(Fuzzed(packet, who, [frame_bytes(p) for p in pieces], _expected(packet, who)))
    return out


def _expected(packet: Packet, who: str) -> int | None:
    if who == "unknown MN":
        return QnRtn.WRONG_MN
    if who == "wrong PW":
        return QnRtn.WRONG_PW
    for key, text in packet.cp.items():
        if key.rpartition("-")[2] in NUMERIC_KINDS and number_problem(text) is not None:
            return QnRtn.REJECTED
    return None


async def exchange(port: int, fuzzed: Sequence[Fuzzed], seed: int) -> dict[str, Packet]:
    """Send every frame over one connection, cut into random TCP segments; the answers by QN."""
    stream = b"".join(frame for f in fuzzed for frame in f.frames)
    rng = random.Random(seed)
    conn = await Station(mn="FUZZ", password="0").connect("127.0.0.1", port)
    pos = 0
    while pos < len(stream):
        step = rng.randint(1, 600)
        await conn.send_raw(stream[pos : pos + step])
        pos += step
    answers = {}
    for _ in range(sum(f.answers for f in fuzzed)):
        answer = await conn.reply(timeout=10)
        assert answer is not None, "the platform closed the connection"
        answers[answer.qn] = answer
    await conn.close()
    return answers


def check_answers(fuzzed: Sequence[Fuzzed], answers: dict[str, Packet]) -> list[Packet]:
    """Each packet got the answer its fault calls for; returns the acknowledged packets."""
    acked = []
    for f in fuzzed:
        answer = answers[f.packet.qn]
        if f.expected is None:
            assert answer.cn == "9014", (f.packet.data(), answer.data())
            acked.append(f.packet)
        else:
            assert answer.cn == "9011" and answer.cp.get("QnRtn") == str(f.expected), (f.packet.data(), answer.data())
    return acked
