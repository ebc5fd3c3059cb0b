"""The strict JSON parser every untrusted document goes through (issue 8, holes 3 and 10).

Hole 3: py-evm lifts Python's recursion limit to 100,000 on import, so ``json.loads`` of a deep document
overflowed the C stack (the process died with SIGSEGV) before any ``RecursionError``. Hole 10: ``json``
lets duplicate keys through (the last wins), reads 5,000-digit integers into an uncaught ``ValueError``
and accepts NaN. ``strict_json.loads`` refuses all of these, before the text reaches the recursive scanner,
and raises nothing but the caller's error class.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shancheng.sdk import strict_json
from shancheng.sdk.errors import InvalidInput, ShanchengError


class DocError(ShanchengError):
    """The error class the tests hand to the parser."""


def parse(data: str | bytes, *, max_size: int = 1 << 20, max_depth: int = 8) -> object:
    return strict_json.loads(data, what="doc", error=DocError, max_size=max_size, max_depth=max_depth)


def refused(data: str | bytes, *, max_size: int = 1 << 20, max_depth: int = 8) -> str:
    with pytest.raises(DocError) as err:
        parse(data, max_size=max_size, max_depth=max_depth)
    message = str(err.value)
    assert message.startswith("doc: ") and "\n" not in message
    return message


# -- depth -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("open_, close", [("[", "]"), ('{"k":', "}")])
def test_exactly_max_depth_parses_and_one_more_is_refused(open_: str, close: str) -> None:
    assert parse(open_ * 8 + "1" + close * 8) is not None
    assert "nested deeper than 8 levels" in refused(open_ * 9 + "1" + close * 9)


def test_mixed_arrays_and_objects_count_together() -> None:
    doc = '{"a": [{"b": [{"c": [{"d": [1]}]}]}]}'  # 8 levels
    assert parse(doc, max_depth=8) == json.loads(doc)
    assert "nested deeper than 7" in refused(doc, max_depth=7)


def test_siblings_do_not_add_up() -> None:
    doc = "[" + ",".join(["[[[]]]"] * 10_000) + "]"  # 40,000 brackets, 4 levels
    assert len(parse(doc, max_depth=4)) == 10_000  # type: ignore[arg-type]


def test_brackets_inside_strings_do_not_count() -> None:
    doc = json.dumps(["[[[[[[[[[[{{{{{{{{{{", {"]]]]": "}}}}[[[["}])
    assert parse(doc, max_depth=2) == json.loads(doc)


def test_escaped_quotes_do_not_end_a_string() -> None:
    doc = r'["a\"[[[[[[[[[[\\", "\\\"{{{{{{{{{{{{\""]'
    assert parse(doc, max_depth=1) == ['a"[[[[[[[[[[\\', '\\"{{{{{{{{{{{{"']


def test_an_escaped_backslash_before_a_quote_does_end_the_string() -> None:
    # "\\" is a complete string: the brackets after it are real nesting
    assert "nested deeper" in refused(r'["\\", ' + "[" * 9 + "]" * 9 + "]", max_depth=8)


def test_deep_text_after_an_unterminated_string_cannot_hide_nesting() -> None:
    """An unterminated string swallows the rest of the text, but the brackets before it still count."""
    assert "nested deeper" in refused("[" * 100_000 + '"abc')
    assert "not valid JSON" in refused('["abc' + "[" * 100_000)  # the scanner never goes past the open string


def test_a_200kb_body_of_brackets_is_refused_with_py_evm_loaded() -> None:
    """The attack ran in a process that had imported py-evm (recursion limit 100,000): SIGSEGV, exit 139."""
    code = (
        "import sys, eth  # py-evm: lifts the recursion limit\n"
        "from shancheng.sdk import strict_json\n"
        "from shancheng.sdk.errors import InvalidInput\n"
        "assert sys.getrecursionlimit() >= 100_000\n"
        "for body in ('[' * 200_000, '{\"a\":' * 100_000, '[' * 800_000):\n"
        "    try:\n"
        "        strict_json.loads(body, what='body', error=InvalidInput, max_size=1 << 20)\n"
        "    except InvalidInput as exc:\n"
        "        print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["body: nested deeper than 64 levels"] * 3


def test_the_depth_check_is_linear_time() -> None:
    worst = [
        "[" * 1_000_000,
        '"\\"' * 300_000,  # one long unterminated string full of escaped quotes
        '"' * 1_000_000,
        "[]" * 500_000,
        '["' + "\\" * 999_991 + '"]',  # the last backslash escapes the closing quote
    ]
    for text in worst:
        start = time.monotonic()
        with pytest.raises(DocError):
            parse(text, max_size=2 << 20, max_depth=2)
        assert time.monotonic() - start < 5, text[:20]


# -- hole 10: what json lets through --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc, key",
    [
        ('{"chain": {"a": 1}, "chain": null}', "chain"),
        ('{"a": 1, "b": {"c": 1, "d": 2, "c": 1}}', "c"),
        ('[[[{"x": 1, "x": 1}]]]', "x"),
        ('{"\\u0061": 1, "a": 2}', "a"),  # an escape spells the same key
    ],
)
def test_duplicate_keys_are_refused_at_any_depth(doc: str, key: str) -> None:
    assert refused(doc) == f"doc: duplicate key {key!r}"


def test_booleans_stay_booleans() -> None:
    value = parse('{"version": true, "n": 1, "f": false}')
    assert value == {"version": True, "n": 1, "f": False}
    assert type(value["version"]) is bool and type(value["n"]) is int  # type: ignore[index]


def test_a_5000_digit_integer_is_refused_not_an_uncaught_error() -> None:
    assert "more than 80 digits" in refused("1" * 5000)
    assert "more than 80 digits" in refused('{"version": ' + "9" * 5000 + "}")
    assert "more than 80 digits" in refused("-" + "1" * 81)
    assert parse("-" + "9" * 80) == -int("9" * 80)


@pytest.mark.parametrize("doc", ["NaN", "[Infinity]", '{"a": -Infinity}', "1e400", "-1e999", "[1E+309]"])
def test_non_finite_numbers_are_refused(doc: str) -> None:
    refused(doc)


def test_long_float_literals_are_refused() -> None:
    assert "longer than 64 characters" in refused("0." + "1" * 63)
    assert parse("0." + "1" * 62) == pytest.approx(1 / 9)
    assert parse("[1.5e-3, -2.0]") == [0.0015, -2.0]


def test_size_is_measured_in_utf8_bytes_before_parsing() -> None:
    assert parse('"' + "a" * 98 + '"', max_size=100) == "a" * 98
    assert "larger than 100 bytes" in refused('"' + "a" * 99 + '"', max_size=100)
    assert "larger than 100 bytes" in refused('"' + "\u5c71" * 40 + '"', max_size=100)  # 40 chars, 122 bytes
    assert "larger than 100 bytes" in refused(b"[" * 101, max_size=100)


@pytest.mark.parametrize("data", [b"\xff", b'"\xc3"', b"\xef\xbb\xbf[]", b'"\xed\xa0\x80"'])
def test_invalid_utf8_is_refused(data: bytes) -> None:
    refused(data)


def test_lone_surrogates_are_refused() -> None:
    assert "lone surrogate" in refused('["\\ud800"]')
    assert "lone surrogate" in refused('{"\\udfff": 1}')
    assert "lone surrogate" in refused("\"\ud800\"")
    assert parse('"\\ud83d\\ude00"') == "\U0001f600"


@pytest.mark.parametrize("data", ["", " ", "{", "[1,]", "{'a': 1}", "01", "[1] [2]", "tru", '{"a" 1}', "]"])
def test_malformed_json_is_one_line(data: str) -> None:
    assert "not valid JSON" in refused(data)


def test_wrong_argument_types_are_refused_with_the_error_class() -> None:
    with pytest.raises(InvalidInput, match="^x: expected JSON text, not int$"):
        strict_json.loads(5, what="x", error=InvalidInput, max_size=10)  # type: ignore[arg-type]


_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)
)
_VALUES = st.recursive(_LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                                          max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_VALUES)
def test_fuzz_well_formed_documents_round_trip(value: object) -> None:
    text = json.dumps(value)
    if len(text) <= 1 << 20 and all(len(t.lstrip("-")) <= 80 for t in _ints(value)):
        assert parse(text, max_depth=64) == json.loads(text)


def _ints(value: object) -> list[str]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [str(value)]
    if isinstance(value, list):
        return [t for v in value for t in _ints(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _ints(v)]
    return []


_PIECES = st.sampled_from(
    ["[", "]", "{", "}", '"', "\\", ",", ":", "1", "-", "e", ".", "0", "true", "NaN", "Infinity", " ", '"a"',
     '"a":', "\\u", "d800", "9" * 90, "\x00", "\u5c71", "null"]
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=60), st.integers(min_value=0, max_value=20_000), st.sampled_from(["[", '{"a":']),
       st.booleans())
def test_fuzz_garbage_is_parsed_or_refused_with_the_error_class_only(pieces: list[str], depth: int, opener: str,
                                                                      as_bytes: bool) -> None:
    text = opener * depth + "".join(pieces)
    data: str | bytes = text.encode("utf-8", "surrogatepass") if as_bytes else text
    try:
        value = parse(data, max_size=1 << 20, max_depth=16)
    except DocError as exc:
        assert str(exc).startswith("doc: ") and "\n" not in str(exc)
        return
    # accepted: it was shallow, and plain json agrees on the value
    assert depth <= 16
    assert json.dumps(value, sort_keys=True) == json.dumps(json.loads(text), sort_keys=True)
