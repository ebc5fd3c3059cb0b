"""HJ 212 frames: the protocol's example packets byte for byte, refusals with their QnRtn codes, the stream
reader, split-packet reassembly and replies."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shancheng.sdk.envmon.hj212 import (
    CP,
    FrameReader,
    HJ212Error,
    Packet,
    QnRtn,
    SplitAssembler,
    ack_9014,
    crc16,
    parse_frame,
    qn_rtn_9011,
)
from shancheng.sdk.errors import InvalidInput, ShanchengError

# The three example packets of the HJ 212 domain notes (facts of the protocol, copied as literals).
AIR = (
    b"##0289QN=20240615103000123;ST=22;CN=2011;PW=123456;MN=3034257BF400B7800004A7B1;Flag=5;CP=&&"
    b"DataTime=20240615103000;a34004-Rtd=38.2,a34004-Flag=N;a34002-Rtd=61.0,a34002-Flag=N;"
    b"a21026-Rtd=8.0,a21026-Flag=N;a21004-Rtd=42.5,a21004-Flag=N;a05024-Rtd=96.0,a05024-Flag=N;"
    b"a21005-Rtd=0.72,a21005-Flag=N&&EF41\r\n"
)
NOISE = (
    b"##0132QN=20240615103000456;ST=23;CN=2011;PW=123456;MN=3034257BF400B7800004A7B2;Flag=4;CP=&&"
    b"DataTime=20240615103000;LA-Rtd=58.6,LA-Flag=N&&A501\r\n"
)
ACK = b"##0087QN=20240615103000123;ST=91;CN=9014;PW=123456;MN=3034257BF400B7800004A7B1;Flag=4;CP=&&&&5000\r\n"
EXAMPLES = [AIR, NOISE, ACK]


def frame_of(data: bytes) -> bytes:
    """A correctly framed data segment (right length and CRC), to test the data-segment checks."""
    return b"##%04d%s%04X\r\n" % (len(data), data, crc16(data))


def data_of(frame: bytes) -> bytes:
    return frame[6:-6]


@pytest.mark.parametrize(("frame", "crc"), [(AIR, 0xEF41), (NOISE, 0xA501), (ACK, 0x5000)])
def test_example_packets_parse_and_reserialise_byte_for_byte(frame, crc):
    assert crc16(data_of(frame)) == crc
    packet = parse_frame(frame)
    assert packet.to_frame() == frame
    assert parse_frame(packet.to_frame()) == packet


def test_example_fields_are_read():
    air = parse_frame(AIR)
    assert (air.qn, air.st, air.cn, air.pw, air.mn, air.flag) == (
        "20240615103000123",
        "22",
        "2011",
        "123456",
        "3034257BF400B7800004A7B1",
        5,
    )
    assert air.reply_requested and not air.split and air.version == "HJ 212-2017"
    assert air.cp.data_time == "20240615103000"
    assert air.cp.values("Rtd") == {
        "a34004": "38.2",
        "a34002": "61.0",
        "a21026": "8.0",
        "a21004": "42.5",
        "a05024": "96.0",
        "a21005": "0.72",
    }
    assert air.cp.get("a21005-Flag") == "N"
    assert parse_frame(ACK).cp == CP(())
    assert not parse_frame(NOISE).reply_requested


def test_crc_is_hj212_not_modbus():
    # Modbus CRC16 of the same bytes, printed low byte first, would differ; HJ 212 prints the register as is.
    data = data_of(AIR)
    assert f"{crc16(data):04X}" == "EF41"
    assert crc16(b"") == 0xFFFF


def test_ack_9014_for_the_first_example_is_the_third_example_byte_for_byte():
    assert ack_9014(parse_frame(AIR)).to_frame() == ACK


def test_qn_rtn_9011_answers_with_the_code():
    reply = qn_rtn_9011(parse_frame(AIR), QnRtn.WRONG_CRC)
    data = b"QN=20240615103000123;ST=91;CN=9011;PW=123456;MN=3034257BF400B7800004A7B1;Flag=4;CP=&&QnRtn=9&&"
    assert reply.to_frame() == frame_of(data)
    with pytest.raises(HJ212Error, match="not a QnRtn code"):
        qn_rtn_9011(parse_frame(AIR), 42)


def test_qn_rtn_9011_can_be_built_from_the_fields_of_a_refusal():
    bad = data_of(AIR).replace(b"ST=22", b"ST=99")
    with pytest.raises(HJ212Error) as caught:
        parse_frame(frame_of(bad))
    reply = qn_rtn_9011(caught.value.fields, caught.value.qn_rtn)
    assert (reply.qn, reply.mn, reply.pw, reply.cn) == (
        "20240615103000123",
        "3034257BF400B7800004A7B1",
        "123456",
        "9011",
    )
    assert reply.cp.get("QnRtn") == "5"


def refusal(frame: bytes) -> HJ212Error:
    with pytest.raises(HJ212Error) as caught:
        parse_frame(frame)
    err = caught.value
    assert isinstance(err, InvalidInput) and isinstance(err, ShanchengError)
    assert "\n" not in str(err) and f"QnRtn {err.qn_rtn}" in str(err)
    assert err.diagnostics()["qn_rtn"] == err.qn_rtn
    return err


def test_wrong_crc_is_refused_with_qnrtn_9():
    assert refusal(AIR.replace(b"EF41", b"EF42")).qn_rtn == QnRtn.WRONG_CRC
    assert refusal(AIR.replace(b"EF41", b"ef41")).qn_rtn == QnRtn.WRONG_CRC  # uppercase hex only
    tampered = AIR.replace(b"a34004-Rtd=38.2", b"a34004-Rtd=18.2")  # same length, data changed, CRC kept
    assert refusal(tampered).qn_rtn == QnRtn.WRONG_CRC


def test_a_wrong_crc_refusal_carries_the_frame_and_the_header_fields_to_answer_it():
    bad = AIR.replace(b"EF41", b"0000")
    error = refusal(bad)
    assert error.frame == bad
    assert error.fields["MN"] == "3034257BF400B7800004A7B1" and error.fields["QN"]  # enough to address the 9011


def test_a_strict_frame_reader_counts_each_garbage_chunk_as_a_refusal():
    def refusals(reader: FrameReader, *chunks: bytes) -> list[HJ212Error]:
        return [x for c in chunks for x in reader.feed(c) if isinstance(x, HJ212Error)]

    assert len(refusals(FrameReader(strict=True), b"##zz", b"##yy")) == 2
    assert len(refusals(FrameReader(), b"##zz", b"##yy")) == 1  # one run of garbage, however it arrived
    good = [x for x in FrameReader(strict=True).feed(b"noise" + AIR) if not isinstance(x, HJ212Error)]
    assert len(good) == 1  # a frame after garbage is still read


@pytest.mark.parametrize(
    "frame",
    [
        AIR.replace(b"##0289", b"##0288"),  # length says one byte less
        AIR.replace(b"##0289", b"##0290"),  # length says one byte more
        AIR.replace(b"##0289", b"##02a9"),  # length not digits
        AIR[:-1],  # truncated: no LF
        AIR[:-7] + b"EF41\r\n",  # truncated inside the data
        AIR[:100],  # truncated far inside
        AIR[:-2],  # missing CR LF
        b"$" + AIR[1:],  # no ##
        b"GET / HTTP/1.1\r\n",  # garbage
        b"",
        b"##",
        frame_of(data_of(AIR).replace(b"38.2", b"38\xb02")),  # non-ASCII byte
        frame_of(data_of(AIR).replace(b"38.2", b"38\t2")),  # control byte
        frame_of(data_of(AIR).replace(b";ST=22", b"")),  # missing header field
        frame_of(data_of(AIR).replace(b"ST=22;CN=2011", b"CN=2011;ST=22")),  # misordered header
        frame_of(data_of(AIR)[:-2]),  # CP not closed
        frame_of(data_of(AIR).replace(b"a34004-Flag=N", b"a34004-Flag")),  # CP item without '='
        b"##" + b"0" * 10020 + b"\r\n",  # oversized
    ],
)
def test_wrong_length_truncated_and_garbage_frames_are_refused_with_qnrtn_100(frame):
    assert refusal(frame).qn_rtn == QnRtn.UNKNOWN


@pytest.mark.parametrize(
    ("old", "new", "code"),
    [
        (b"ST=22", b"ST=99", QnRtn.WRONG_ST),
        (b"ST=22", b"ST=2", QnRtn.WRONG_ST),
        (b"CN=2011", b"CN=1234", QnRtn.WRONG_CN),
        (b"CN=2011", b"CN=20110", QnRtn.WRONG_CN),
        (b"QN=20240615103000123", b"QN=2024061510300012", QnRtn.WRONG_QN),
        (b"QN=20240615103000123", b"QN=20241315103000123", QnRtn.WRONG_QN),  # month 13
        (b"QN=20240615103000123", b"QN=2024061510300012X", QnRtn.WRONG_QN),
        (b"Flag=5", b"Flag=1", QnRtn.WRONG_FLAG),  # version bits 000000
        (b"Flag=5", b"Flag=13", QnRtn.WRONG_FLAG),  # version bits 000011: unknown
        (b"Flag=5", b"Flag=7", QnRtn.WRONG_FLAG),  # split bit without PNUM/PNO
        (b"Flag=5", b"Flag=05", QnRtn.WRONG_FLAG),  # not canonical: would not re-serialise
        (b"Flag=5", b"Flag=x", QnRtn.WRONG_FLAG),
        (b"Flag=5", b"Flag=5;PNUM=2;PNO=1", QnRtn.WRONG_FLAG),  # PNUM/PNO without the split bit
        (b"Flag=5", b"Flag=7;PNUM=2;PNO=3", QnRtn.REJECTED),  # PNO > PNUM
        (b"Flag=5", b"Flag=7;PNUM=0;PNO=0", QnRtn.REJECTED),
        (b"PW=123456", b"PW=", QnRtn.WRONG_PW),
        (b"PW=123456", b"PW=12 456", QnRtn.WRONG_PW),
        (b"MN=3034257BF400B7800004A7B1", b"MN=", QnRtn.WRONG_MN),
        (b"MN=3034257BF400B7800004A7B1", b"MN=3034257BF400B7800004A7B1X", QnRtn.WRONG_MN),  # 25 characters
    ],
)
def test_bad_header_fields_are_refused_with_their_qnrtn_code(old, new, code):
    data = data_of(AIR)
    assert old in data
    assert refusal(frame_of(data.replace(old, new))).qn_rtn == code


def test_both_protocol_versions_are_accepted():
    v2025 = parse_frame(frame_of(data_of(AIR).replace(b"Flag=5", b"Flag=9")))
    assert v2025.version == "HJ 212-2025" and v2025.reply_requested
    assert ack_9014(v2025).flag == 8  # the answer keeps the station's version


# ---- stream reader -------------------------------------------------------------------------------------------


def read_all(chunks: list[bytes]) -> tuple[list[Packet], list[HJ212Error]]:
    reader = FrameReader()
    out: list[Packet | HJ212Error] = []
    for chunk in chunks:
        out += reader.feed(chunk)
    out += reader.close()
    assert reader.buffered == 0
    return [p for p in out if isinstance(p, Packet)], [e for e in out if isinstance(e, HJ212Error)]


@pytest.mark.parametrize("frame", EXAMPLES)
def test_frame_reader_joins_each_example_split_at_every_byte(frame):
    expected = parse_frame(frame)
    for cut in range(len(frame) + 1):
        packets, errors = read_all([frame[:cut], frame[cut:]])
        assert packets == [expected] and errors == [], cut
    packets, errors = read_all([frame[i : i + 1] for i in range(len(frame))])
    assert packets == [expected] and errors == []


def test_frame_reader_finds_frames_among_garbage_however_the_bytes_arrive():
    stream = b"xx" + AIR + b"garbage\r\n#" + NOISE + b"##ab" + ACK + AIR
    expected = [parse_frame(f) for f in (AIR, NOISE, ACK, AIR)]
    for cut in range(len(stream) + 1):
        packets, errors = read_all([stream[:cut], stream[cut:]])
        assert packets == expected, cut
        assert len(errors) == 3 and all(e.qn_rtn == QnRtn.UNKNOWN for e in errors), cut
    packets, errors = read_all([stream[i : i + 7] for i in range(0, len(stream), 7)])
    assert packets == expected and len(errors) == 3
    packets, errors = read_all([stream])
    assert packets == expected and len(errors) == 3


def test_frame_reader_reports_bad_frames_with_their_code_and_recovers():
    bad_crc = AIR.replace(b"EF41", b"0000")
    truncated = NOISE[:80]  # cut mid-frame, the next frame follows at once
    packets, errors = read_all([bad_crc + truncated + ACK])
    assert packets == [parse_frame(ACK)]
    assert [e.qn_rtn for e in errors] == [QnRtn.WRONG_CRC, QnRtn.UNKNOWN]


def test_frame_reader_reports_a_frame_cut_by_the_end_of_the_stream():
    packets, errors = read_all([AIR, NOISE[:50]])
    assert packets == [parse_frame(AIR)]
    assert [e.qn_rtn for e in errors] == [QnRtn.UNKNOWN] and "ended inside a frame" in str(errors[0])


def test_frame_reader_buffer_is_bounded():
    reader = FrameReader()
    out = reader.feed(b"z" * 50_000)
    assert len(out) == 1 and reader.buffered == 0
    reader.feed(b"##9999" + b"y" * 30_000)  # claims the largest frame then never ends it
    assert reader.buffered <= 2 + 4 + 9999 + 4 + 2
    out = reader.feed(AIR * 3)
    assert [p for p in out if isinstance(p, Packet)] == [parse_frame(AIR)] * 3


# ---- split packets -------------------------------------------------------------------------------------------


def part(pno: int, cp: str, *, pnum: int = 3, qn: str = "20240615110000001", mn: str = "MN01") -> Packet:
    return Packet(qn, "22", "2061", "123456", mn, 4 | 2, CP.parse(cp), pnum, pno)


PARTS = [
    part(1, "DataTime=20240615100000;a34004-Avg=38.2,a34004-Flag=N"),
    part(2, "DataTime=20240615100000;a34002-Avg=61.0,a34002-Flag=N"),
    part(3, "DataTime=20240615100000;a21026-Avg=8.0,a21026-Flag=N"),
]
WHOLE_CP = (
    "DataTime=20240615100000;a34004-Avg=38.2,a34004-Flag=N;a34002-Avg=61.0,a34002-Flag=N;a21026-Avg=8.0,a21026-Flag=N"
)


def test_split_parts_round_trip_as_frames():
    for p in PARTS:
        assert b";Flag=6;PNUM=3;PNO=" in p.to_frame()
        assert parse_frame(p.to_frame()) == p


def test_split_packets_reassemble_out_of_order_and_ignore_identical_duplicates():
    asm = SplitAssembler()
    assert asm.add(PARTS[2]) is None
    assert asm.add(PARTS[0]) is None
    assert asm.add(PARTS[0]) is None  # duplicate
    assert asm.pending_parts == 2
    whole = asm.add(PARTS[1])
    assert whole is not None
    assert whole.cp.text() == WHOLE_CP
    assert (whole.flag, whole.pnum, whole.pno, whole.split) == (4, None, None, False)
    assert asm.pending_messages == 0
    unsplit = parse_frame(AIR)
    assert asm.add(unsplit) is unsplit


def test_split_packet_conflicting_duplicate_or_mismatched_part_is_refused():
    asm = SplitAssembler()
    asm.add(PARTS[0])
    with pytest.raises(HJ212Error, match="repeated with other content") as caught:
        asm.add(part(1, "DataTime=20240615100000;a34004-Avg=99.9,a34004-Flag=N"))
    assert caught.value.qn_rtn == QnRtn.REJECTED
    with pytest.raises(HJ212Error, match="disagrees") as caught:
        asm.add(part(2, "DataTime=20240615100000", pnum=4))
    assert caught.value.qn_rtn == QnRtn.REJECTED


def test_split_packets_are_keyed_by_qn_and_mn():
    asm = SplitAssembler()
    asm.add(PARTS[0])
    asm.add(PARTS[1])
    assert asm.add(part(3, "DataTime=20240615100000", mn="MN02")) is None  # another station's part
    assert asm.pending_messages == 2
    assert asm.add(PARTS[2]) is not None


def test_split_reassembly_bounds_pending_bytes_and_releases_them():
    cap = sum(len(p.data()) for p in PARTS)
    asm = SplitAssembler(max_bytes=cap)
    asm.add(PARTS[0])
    asm.add(PARTS[1])
    assert asm.pending_bytes == len(PARTS[0].data()) + len(PARTS[1].data())
    other = part(1, "DataTime=20240615100000;x01-Info=" + "A" * 200, qn="20240615110000009")
    with pytest.raises(HJ212Error, match=f"{cap} bytes of split parts already pending") as caught:
        asm.add(other)
    assert caught.value.qn_rtn == QnRtn.REJECTED and asm.pending_parts == 2
    assert asm.add(PARTS[2]) is not None  # the completed message gives its bytes back ...
    assert asm.pending_bytes == 0
    asm.add(other)
    asm.discard(other.qn, other.mn)  # ... and so does a discarded one
    assert asm.pending_bytes == 0 and asm.oldest is None


def test_split_messages_older_than_the_deadline_expire():
    now = [100.0]
    asm = SplitAssembler(clock=lambda: now[0])
    asm.add(PARTS[0])
    now[0] = 130.0
    late = part(1, "DataTime=20240615100000", qn="20240615110000009")
    asm.add(late)
    assert asm.oldest == 100.0 and asm.expire(60) == []
    now[0] = 161.0
    assert asm.expire(60) == [PARTS[0]]  # one part of each expired message, to address the answer
    assert asm.pending_messages == 1 and asm.oldest == 130.0
    assert asm.pending_bytes == len(late.data())


def test_split_reassembly_bounds_pending_messages_and_parts():
    asm = SplitAssembler(max_messages=2, max_parts=3)
    asm.add(part(1, "DataTime=20240615100000", qn="20240615110000001"))
    asm.add(part(1, "DataTime=20240615100000", qn="20240615110000002"))
    with pytest.raises(HJ212Error, match="2 split messages already pending") as caught:
        asm.add(part(1, "DataTime=20240615100000", qn="20240615110000003"))
    assert caught.value.qn_rtn == QnRtn.REJECTED
    asm.add(part(2, "DataTime=20240615100000", qn="20240615110000001"))
    with pytest.raises(HJ212Error, match="3 split parts already pending"):
        asm.add(part(2, "DataTime=20240615100000", qn="20240615110000002"))
    asm.discard("20240615110000002", "MN01")
    assert asm.pending_messages == 1 and asm.pending_parts == 2
    assert asm.add(part(1, "DataTime=20240615100000", qn="20240615110000003")) is None


# ---- property ------------------------------------------------------------------------------------------------

_ALNUM = string.ascii_letters + string.digits
_CP_CHARS = "".join(c for c in map(chr, range(0x20, 0x7F)) if c not in ";,=&")


@st.composite
def packets(draw: st.DrawFn) -> Packet:
    when = draw(st.datetimes(min_value=__import__("datetime").datetime(2000, 1, 1)))
    qn = when.strftime("%Y%m%d%H%M%S") + f"{draw(st.integers(0, 999)):03d}"
    split = draw(st.booleans())
    flag = draw(st.sampled_from([1, 2])) << 2 | draw(st.integers(0, 1)) | (2 if split else 0)
    pnum = draw(st.integers(1, 9999)) if split else None
    pno = draw(st.integers(1, pnum)) if pnum else None
    key = st.text(_CP_CHARS, min_size=1, max_size=12)
    value = st.text(_CP_CHARS, max_size=12)
    groups = draw(st.lists(st.lists(st.tuples(key, value), min_size=1, max_size=4).map(tuple), max_size=6))
    return Packet(
        qn,
        draw(st.sampled_from(["21", "22", "23", "31", "32", "91"])),
        draw(st.sampled_from(["2011", "2051", "2061", "2031", "2021", "9011", "9012", "9013", "9014"])),
        draw(st.text(_ALNUM, min_size=1, max_size=9)),
        draw(st.text(_ALNUM, min_size=1, max_size=24)),
        flag,
        CP(tuple(groups)),
        pnum,
        pno,
    )


@settings(max_examples=300, deadline=None)
@given(packets(), st.data())
def test_random_packets_round_trip_through_frames_and_the_reader(packet, data):
    frame = packet.to_frame()
    again = parse_frame(frame)
    assert again == packet and again.to_frame() == frame
    cut = data.draw(st.integers(0, len(frame)))
    packets_, errors = read_all([b"noise" + frame[:cut], frame[cut:]])
    assert packets_ == [packet] and len(errors) == 1
