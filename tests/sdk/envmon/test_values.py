"""Which HJ 212 values an hour summary and the AQI take: numbers as HJ 212 writes them, never -9999 or a negative
concentration; an hour's summary leaves those out instead of failing, so one reading never fails its hour."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shancheng.sdk.domain.envmon import HourBatch, hour_of
from shancheng.sdk.envmon.hj212 import CP, Packet
from shancheng.sdk.envmon.values import number_problem, parse_number, scored_value, unscored_reason
from shancheng.sdk.errors import InvalidInput

MN = "VALUES0000000000000001"


def packet(n: int, values: dict[str, str], *, cn: str = "2011", extra: tuple[tuple[str, str], ...] = ()) -> Packet:
    kind = "Rtd" if cn == "2011" else "Avg"
    groups = [(("DataTime", f"20240615103{n:03d}"[:14]),),
              *(((f"{code}-{kind}", text), (f"{code}-Flag", "N"), *extra) for code, text in values.items())]
    return Packet(f"20240615103000{n:03d}", "22", cn, "123456", MN, 4, CP(tuple(groups)))


@pytest.mark.parametrize("text", ["0", "38.2", "-12.5", ".5", "1.", "999999999999999", "-0.000"])
def test_decimals_as_hj212_writes_them_are_numbers(text: str) -> None:
    assert number_problem(text) is None and parse_number(text) == Decimal(text)


@pytest.mark.parametrize("text", ["NaN", "nan", "inf", "-Infinity", "1e20", "1E-3", "", "-", "abc", "12.5.1",
                                  "0x10", " 1", "+1", "1000000000000000", "100000000000000000000"])
def test_nan_infinities_exponents_text_and_huge_numbers_are_not(text: str) -> None:
    assert number_problem(text) is not None and parse_number(text) is None and scored_value("a34004", text) is None


def test_missing_marks_and_negative_concentrations_are_not_scored_but_negative_temperatures_are() -> None:
    assert unscored_reason("a01001", "-9999") == "missing (-9999)"
    assert unscored_reason("a34004", "-9999.0") == "missing (-9999)"
    assert unscored_reason("a21005", "-0.01") == "negative concentration"
    assert unscored_reason("a01001", "-12.5") is None and scored_value("a01001", "-12.5") == Decimal("-12.5")
    assert unscored_reason("a340040001", "1") == "pollutant code not 1-8 characters"


@given(st.text(max_size=30))
def test_any_text_is_either_a_number_that_fits_the_contract_or_refused_with_a_reason(text: str) -> None:
    number = parse_number(text)
    if number is None:
        assert number_problem(text)
    else:
        assert number.is_finite() and abs(number * 1000) < 2**63


def test_an_hour_summary_leaves_out_what_it_cannot_score_instead_of_failing() -> None:
    packets = [packet(1, {"a34004": "-9999", "a34002": "60", "a01001": "-9999"}),
               packet(2, {"a34004": "-2.0", "a34002": "abc", "a01001": "-4.0"}),
               packet(3, {"a34004": "NaN", "a34002": "1e20", "a01001": "-2.0"}),
               packet(4, {"a34004": "35.0", "a34002": "40"})]
    batch = HourBatch.from_packets(MN, hour_of(packets[0]), packets)
    summary = {p.code: (p.min_milli, p.avg_milli, p.max_milli, p.iaqi) for p in batch.pollutants}
    assert batch.reading_count == 4  # every packet is committed in the Merkle root
    assert summary == {"a01001": (-4000, -3000, -2000, 0), "a34002": (40000, 50000, 60000, 50),
                       "a34004": (35000, 35000, 35000, 50)}


def test_min_and_max_that_cannot_be_scored_fall_back_to_the_value() -> None:
    p = packet(1, {"a34004": "30"}, cn="2061", extra=(("a34004-Min", "-9999"), ("a34004-Max", "NaN")))
    (summary,) = HourBatch.from_packets(MN, hour_of(p), [p]).pollutants
    assert (summary.min_milli, summary.avg_milli, summary.max_milli) == (30000, 30000, 30000)


def test_an_hour_with_no_value_to_score_fails_with_its_reason() -> None:
    p = packet(1, {"a34004": "-9999", "a34002": "-1"})
    with pytest.raises(InvalidInput, match="no value to summarise"):
        HourBatch.from_packets(MN, hour_of(p), [p])


def test_so2_above_800_without_a_24h_average_is_scored_on_the_24h_breakpoints() -> None:
    p = packet(1, {"a21026": "1000"})
    (summary,) = HourBatch.from_packets(MN, hour_of(p), [p]).pollutants
    assert summary.iaqi == 225  # 24 h breakpoints: 800 -> 200, 1600 -> 300
