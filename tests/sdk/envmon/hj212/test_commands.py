"""The HJ 212-2017 command table: every command parses and builds, malformed command fields are refused with
QnRtn 2, and the answer flows (9011 QnRtn, 9012 ExeRtn, 9013, the 1013 -> 1012 time calibration) round-trip."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from shancheng.sdk.envmon.hj212 import (
    CN_CODES,
    COMMANDS,
    ExeRtn,
    HJ212Error,
    Packet,
    QnRtn,
    command,
    command_fields,
    exe_rtn_9012,
    notice_9013,
    parse_frame,
    qn_rtn_9011,
    set_time_1012,
)

CST = timezone(timedelta(hours=8))
HEAD = {"qn": "20240615103000123", "st": "22", "pw": "123456", "mn": "3034257BF400B7800004A7B1"}
SAMPLE = {"SystemTime": "20240615103000", "BeginTime": "20240615090000", "EndTime": "20240615100000",
          "DataTime": "20240615100000", "CstartTime": "20240615000000", "RestartTime": "20240615080000",
          "OverTime": "5", "ReCount": "3", "RtdInterval": "60", "MinInterval": "10", "CTime": "2", "NewPW": "Ab3dE6gh9",
          "PolId": "w01018", "InfoId": "i13001", "VaseNo": "1", "QnRtn": "1", "ExeRtn": "1"}


def test_a_set_realtime_interval_command_with_a_right_crc_is_accepted() -> None:
    frame = command("1062", **HEAD, fields={"RtdInterval": "60"}).to_frame()
    packet = parse_frame(frame)  # refused as "not a known command" (QnRtn 8) before the table was complete
    assert packet.cn == "1062" and command_fields(packet) == {"RtdInterval": "60"}


@pytest.mark.parametrize("cn", sorted(COMMANDS))
def test_every_command_of_the_table_builds_parses_and_round_trips(cn: str) -> None:
    row = COMMANDS[cn]
    fields = {f: SAMPLE[f] for f in (*row.fields, *row.optional)}
    packet = command(cn, **HEAD, fields=fields)
    again = parse_frame(packet.to_frame())
    assert again == packet and command_fields(again) == fields and row.name == CN_CODES[cn]
    if row.fields:
        bare = Packet(packet.qn, packet.st, cn, packet.pw, packet.mn, packet.flag)
        with pytest.raises(HJ212Error, match="needs") as caught:
            command_fields(bare)
        assert caught.value.qn_rtn == QnRtn.REJECTED


def test_the_table_covers_the_standards_command_groups() -> None:
    assert {"1000", "1011", "1012", "1013", "1061", "1062", "1063", "1064", "1072"} <= COMMANDS.keys()
    assert {"2012", "2022", "2031", "2041", "2051", "2061", "2081"} <= COMMANDS.keys()
    assert {f"30{n:02d}" for n in range(11, 22)} <= COMMANDS.keys()
    assert set(COMMANDS) | {"2011", "2021"} == set(CN_CODES)


@pytest.mark.parametrize(("cn", "fields"), [
    ("1062", {"RtdInterval": "10"}),  # below 30 s
    ("1062", {"RtdInterval": "sixty"}),
    ("1012", {"SystemTime": "20240230103000"}),  # 30 February
    ("1072", {"NewPW": "toolongpassword"}),
    ("2061", {"BeginTime": "20240615100000", "EndTime": "20240615090000"}),  # the window runs backwards
    ("3011", {"PolId": "a3400!"}),
])
def test_malformed_command_fields_are_refused_with_qnrtn_2(cn: str, fields: dict[str, str]) -> None:
    with pytest.raises(HJ212Error) as caught:
        command(cn, **HEAD, fields=fields)
    assert caught.value.qn_rtn == QnRtn.REJECTED


def test_a_command_outside_the_table_is_refused_with_qnrtn_8() -> None:
    with pytest.raises(HJ212Error) as caught:
        command_fields(Packet(HEAD["qn"], "22", "2011", HEAD["pw"], HEAD["mn"], 4))
    assert caught.value.qn_rtn == QnRtn.WRONG_CN


def test_the_answer_flow_of_a_history_request() -> None:
    request = command("2061", **HEAD, fields={"BeginTime": "20240615090000", "EndTime": "20240615100000"})
    assert request.reply_requested
    ready = parse_frame(qn_rtn_9011(request, QnRtn.READY).to_frame())
    done = parse_frame(exe_rtn_9012(request, ExeRtn.SUCCESS).to_frame())
    none = parse_frame(exe_rtn_9012(request, ExeRtn.NO_DATA).to_frame())
    notified = parse_frame(notice_9013(request).to_frame())
    assert [(p.cn, p.qn, p.st, p.reply_requested) for p in (ready, done, notified)] == [
        ("9011", request.qn, "91", False), ("9012", request.qn, "91", False), ("9013", request.qn, "91", False)]
    assert command_fields(ready) == {"QnRtn": "1"} and command_fields(none) == {"ExeRtn": "100"}
    with pytest.raises(HJ212Error):
        exe_rtn_9012(request, 7)


def test_a_time_calibration_request_is_answered_with_the_platforms_time() -> None:
    request = command("1013", **HEAD, fields={"PolId": "a34004"})
    answer = set_time_1012(request, 1718418600.0, CST, qn="20240615103000999")
    assert answer.cn == "1012" and answer.mn == request.mn and answer.reply_requested
    assert command_fields(answer) == {"PolId": "a34004", "SystemTime": "20240615103000"}
