"""AQI per HJ 633-2012: IAQI at and between breakpoints (hand-computed), the special rules, bands, primary
pollutant, the versioned table and the AQI of an HJ 212 hourly packet."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shancheng.sdk.envmon.aqi import AQIError, band_for, compute_aqi, hourly_aqi, iaqi
from shancheng.sdk.envmon.hj212 import CP, Packet, crc16, parse_frame
from shancheng.sdk.errors import InvalidInput

LEVELS = (0, 50, 100, 150, 200, 300, 400, 500)
# HJ 633-2012 breakpoints copied from the standard (µg/m³; CO mg/m³), independent of the module's table.
TABLE = {
    ("SO2", "24h"): (0, 50, 150, 475, 800, 1600, 2100, 2620),
    ("SO2", "1h"): (0, 150, 500, 650, 800),
    ("NO2", "24h"): (0, 40, 80, 180, 280, 565, 750, 940),
    ("NO2", "1h"): (0, 100, 200, 700, 1200, 2340, 3090, 3840),
    ("PM10", "24h"): (0, 50, 150, 250, 350, 420, 500, 600),
    ("CO", "24h"): (0, 2, 4, 14, 24, 36, 48, 60),
    ("CO", "1h"): (0, 5, 10, 35, 60, 90, 120, 150),
    ("O3", "1h"): (0, 160, 200, 300, 400, 800, 1000, 1200),
    ("O3", "8h"): (0, 100, 160, 215, 265, 800),
    ("PM2.5", "24h"): (0, 35, 75, 115, 150, 250, 350, 500),
}


@pytest.mark.parametrize(
    ("pollutant", "period", "bp", "level"),
    [(p, period, bp, LEVELS[i]) for (p, period), bps in TABLE.items() for i, bp in enumerate(bps)],
)
def test_iaqi_at_every_breakpoint_is_the_level(pollutant, period, bp, level):
    assert iaqi(pollutant, period, bp) == level


@pytest.mark.parametrize(
    ("pollutant", "period", "c", "expected"),
    [
        ("SO2", "24h", 100, 75),  # 50 + 50 * 50/100
        ("SO2", "24h", 1000, 225),  # 200 + 100 * 200/800
        ("SO2", "1h", 575, 125),  # 100 + 50 * 75/150
        ("SO2", "1h", 8.0, 3),  # 50 * 8/150 = 2.67 -> 3
        ("NO2", "24h", 130, 125),  # 100 + 50 * 50/100
        ("NO2", "24h", 1, 2),  # 50 * 1/40 = 1.25 -> 2
        ("NO2", "1h", 150, 75),
        ("NO2", "1h", 42.5, 22),  # 21.25 -> 22
        ("PM10", "24h", 385, 250),  # 200 + 100 * 35/70
        ("PM10", "24h", 61.0, 56),  # 50 + 50 * 11/100 = 55.5 -> 56
        ("CO", "24h", 3, 75),
        ("CO", "24h", 50, 417),  # 400 + 100 * 2/12 = 416.67 -> 417
        ("CO", "1h", 0.72, 8),  # 7.2 -> 8
        ("CO", "1h", 47.5, 175),  # 150 + 50 * 12.5/25
        ("O3", "1h", 180, 75),
        ("O3", "1h", 96.0, 30),  # exactly 30
        ("O3", "8h", 240, 175),  # 150 + 50 * 25/50
        ("O3", "8h", 500, 244),  # 200 + 100 * 235/535 = 243.93 -> 244
        ("PM2.5", "24h", 38.2, 54),  # 50 + 50 * 3.2/40 = 54 exactly (no float drift)
        ("PM2.5", "24h", 35.1, 51),  # 50.125 -> 51
        ("PM2.5", "24h", 0.1, 1),  # 0.14 -> 1
        ("PM2.5", "24h", 200, 250),
    ],
)
def test_iaqi_between_breakpoints_is_interpolated_and_rounded_up(pollutant, period, c, expected):
    assert iaqi(pollutant, period, c) == expected


def test_exact_arithmetic_accepts_text_and_decimal():
    assert iaqi("PM2.5", "24h", "38.2") == iaqi("PM2.5", "24h", Decimal("38.2")) == 54
    assert iaqi("PM2.5", "24h", 0) == 0


def test_hourly_pm_is_scored_on_the_24h_breakpoints():
    assert iaqi("PM2.5", "1h", 75) == 100 == iaqi("PM2.5", "24h", 75)
    assert iaqi("PM10", "1h", 385) == 250


def test_so2_1h_above_800_is_scored_on_the_24h_average():
    assert iaqi("SO2", "1h", 800) == 200
    assert iaqi("SO2", "1h", 801, fallback=100) == 75  # the 24h average 100 scores 75
    with pytest.raises(AQIError, match="SO2 1h above 800 is scored on the 24h value"):
        iaqi("SO2", "1h", 801)


def test_o3_8h_above_800_is_scored_on_the_1h_value():
    assert iaqi("O3", "8h", 800) == 300
    assert iaqi("O3", "8h", 900, fallback=300) == 150
    with pytest.raises(AQIError, match="O3 8h above 800 is scored on the 1h value"):
        iaqi("O3", "8h", 900)


@pytest.mark.parametrize(
    ("pollutant", "period", "c"),
    [("PM2.5", "24h", 600), ("PM10", "24h", 601), ("CO", "1h", 1000), ("NO2", "1h", 3841), ("SO2", "24h", 9999)],
)
def test_concentration_above_the_top_breakpoint_scores_500(pollutant, period, c):
    assert iaqi(pollutant, period, c) == 500


@pytest.mark.parametrize(
    ("aqi", "zh", "en", "colour"),
    [
        (0, "优", "Excellent", "#00E400"),
        (50, "优", "Excellent", "#00E400"),
        (51, "良", "Good", "#FFFF00"),
        (100, "良", "Good", "#FFFF00"),
        (101, "轻度污染", "Lightly polluted", "#FF7E00"),
        (150, "轻度污染", "Lightly polluted", "#FF7E00"),
        (151, "中度污染", "Moderately polluted", "#FF0000"),
        (200, "中度污染", "Moderately polluted", "#FF0000"),
        (201, "重度污染", "Heavily polluted", "#99004C"),
        (300, "重度污染", "Heavily polluted", "#99004C"),
        (301, "严重污染", "Severely polluted", "#7E0023"),
        (500, "严重污染", "Severely polluted", "#7E0023"),
    ],
)
def test_bands(aqi, zh, en, colour):
    band = band_for(aqi)
    assert (band.name_zh, band.name_en, band.colour) == (zh, en, colour)


def test_band_out_of_range_is_refused():
    for bad in (-1, 501):
        with pytest.raises(AQIError):
            band_for(bad)


def test_aqi_is_the_max_with_primary_pollutant_and_exceedance():
    result = compute_aqi({"PM2.5": 120, "PM10": 200, "O3": 100, "NO2": 40}, period="1h")
    # PM2.5 150 + 50*5/35 = 157.1 -> 158; PM10 100 + 50*50/100 = 125; O3 1h 31.25 -> 32; NO2 1h 20
    assert result.iaqi == {"PM2.5": 158, "PM10": 125, "O3": 32, "NO2": 20}
    assert result.aqi == 158 and result.primary == ("PM2.5",) and result.band.name_en == "Moderately polluted"
    assert result.exceeding == ("PM2.5", "PM10")


def test_no_primary_pollutant_when_aqi_is_50_or_less_and_ties_share_it():
    clean = compute_aqi({"PM2.5": 35, "PM10": 50}, period="24h")
    assert clean.aqi == 50 and clean.primary == () and clean.exceeding == ()
    tie = compute_aqi({"PM2.5": 75, "PM10": 150, "SO2": 10}, period="24h")
    assert tie.aqi == 100 and tie.primary == ("PM2.5", "PM10") and tie.exceeding == ()


def test_daily_aqi_uses_o3_8h_and_24h_breakpoints():
    result = compute_aqi({"O3": 240, "SO2": 100, "CO": 3}, period="24h")
    assert result.iaqi == {"O3": 175, "SO2": 75, "CO": 75}
    assert compute_aqi({"O3": 900}, period="24h", o3_1h=300).aqi == 150
    assert compute_aqi({"SO2": 900}, period="1h", so2_24h=100).aqi == 75


def test_breakpoint_versions():
    with pytest.raises(AQIError, match="HJ633_2026 changes the PM2.5 and PM10 breakpoints"):
        iaqi("PM2.5", "24h", 38.2, version="HJ633_2026")
    with pytest.raises(AQIError, match="unknown AQI breakpoint version 'HJ633_1999'"):
        compute_aqi({"PM2.5": 38.2}, period="1h", version="HJ633_1999")
    assert iaqi("PM2.5", "24h", 38.2, version="HJ633_2012") == 54


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("PM2.5", "24h", -1), "negative"),
        (("PM2.5", "24h", "abc"), "not a number"),
        (("PM2.5", "24h", True), "not a number"),
        (("PM2.5", "24h", float("nan")), "not a number"),
        (("PM2.5", "8h", 1), "no HJ633_2012 breakpoints for PM2.5 8h"),
        (("NH3", "1h", 1), "no HJ633_2012 breakpoints"),
    ],
)
def test_bad_input_is_refused_with_one_line(args, message):
    with pytest.raises(AQIError, match=message) as caught:
        iaqi(*args)
    assert isinstance(caught.value, InvalidInput) and "\n" not in str(caught.value)


def test_compute_aqi_refuses_unknown_pollutants_and_empty_input():
    with pytest.raises(AQIError, match="not an AQI pollutant"):
        compute_aqi({"LA": 58.6}, period="1h")
    with pytest.raises(AQIError, match="no pollutant"):
        compute_aqi({}, period="1h")
    with pytest.raises(AQIError, match="not 1h or 24h"):
        compute_aqi({"PM2.5": 1}, period="8h")  # type: ignore[arg-type]


AIR = (
    b"##0289QN=20240615103000123;ST=22;CN=2011;PW=123456;MN=3034257BF400B7800004A7B1;Flag=5;CP=&&"
    b"DataTime=20240615103000;a34004-Rtd=38.2,a34004-Flag=N;a34002-Rtd=61.0,a34002-Flag=N;"
    b"a21026-Rtd=8.0,a21026-Flag=N;a21004-Rtd=42.5,a21004-Flag=N;a05024-Rtd=96.0,a05024-Flag=N;"
    b"a21005-Rtd=0.72,a21005-Flag=N&&EF41\r\n"
)


def test_hourly_aqi_of_the_example_real_time_packet():
    result = hourly_aqi(parse_frame(AIR))
    assert result.iaqi == {"PM2.5": 54, "PM10": 56, "SO2": 3, "NO2": 22, "O3": 30, "CO": 8}
    assert result.aqi == 56 and result.primary == ("PM10",) and result.band.name_zh == "良"
    assert result.data_time == "20240615103000" and result.excluded == {}


def test_hourly_aqi_of_a_2061_packet_uses_avg_values_and_skips_flagged_ones():
    cp = CP.parse(
        "DataTime=20240615100000;a34004-Avg=120,a34004-Max=180,a34004-Flag=N;a34002-Avg=999,a34002-Flag=D;"
        "a05024-Avg=100,a05024-Flag=N;a01001-Avg=25.1,a01001-Flag=N"
    )
    packet = Packet("20240615110000001", "22", "2061", "123456", "MN01", 4, cp)
    frame = packet.to_frame()
    assert frame[-6:-2] == b"%04X" % crc16(frame[6:-6])
    result = hourly_aqi(parse_frame(frame))
    assert result.iaqi == {"PM2.5": 158, "O3": 32}
    assert result.excluded == {"PM10": "D"}  # a fault-flagged value is not scored
    assert result.aqi == 158 and result.exceeding == ("PM2.5",)


def test_hourly_aqi_refuses_other_commands_and_packets_without_values():
    ack = Packet("20240615110000001", "91", "9014", "123456", "MN01", 4)
    with pytest.raises(AQIError, match="CN 9014 is not hourly"):
        hourly_aqi(ack)
    noise = Packet("20240615110000001", "23", "2061", "123456", "MN01", 4, CP.parse("LA-Avg=58.6,LA-Flag=N"))
    with pytest.raises(AQIError, match="no valid AQI pollutant value"):
        hourly_aqi(noise)
