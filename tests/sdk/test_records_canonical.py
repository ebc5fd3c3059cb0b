"""canonical_json's fast path (json's C encoder for plain values) writes exactly what the rfc8785 library writes, or
hands the value to it: checked on generated JSON values, including the edges where the two differ (keys above
U+FFFF, integral and tiny or huge floats, integers beyond 2^53, lone surrogates, deep nesting)."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.records import _plain_json, canonical_json

texts = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["", "\U0001f600", "\ufffd", "\ue000", "a\nb\t\"\\/\x00\x1f\x7f", "阿莫西林胶囊", "\u2028"])
scalars = (st.none() | st.booleans() | texts | st.integers(min_value=-(2**60), max_value=2**60)
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from([0.0, -0.0, 1.0, 1e-4, 9.9999e-5, 1e16, 1e16 - 2, 1e21, 5e-324, 0.1, 2**53 - 1, 2**53]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=5),
                      max_leaves=30)


def _reference(value: Any) -> bytes | None:
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError):
        return None


@settings(max_examples=1500, deadline=None)
@given(values)
def test_the_fast_path_writes_what_rfc8785_writes(value: Any) -> None:
    expected = _reference(value)
    if expected is None:
        with pytest.raises(InvalidInput):
            canonical_json(value)
    else:
        assert canonical_json(value) == expected


@pytest.mark.parametrize("value", [
    {"\U0001f600": 1, "\ufffd": 2},  # UTF-16 order differs from code-point order
    1.0, -0.0, 1e16, 1e-5, 1e21,  # ES6 number formatting differs from repr
    2**53,  # past the double's exact range
    [{"a": True, "b": 1.0}],  # nested
])
def test_values_where_json_and_jcs_differ_take_the_rfc8785_path(value: Any) -> None:
    assert not _plain_json(value)
    expected = _reference(value)
    if expected is None:
        with pytest.raises(InvalidInput):
            canonical_json(value)
    else:
        assert canonical_json(value) == expected


def test_lone_surrogates_and_non_string_keys_are_refused() -> None:
    with pytest.raises(InvalidInput):
        canonical_json({"a": "\ud800"})
    with pytest.raises(InvalidInput, match="key"):
        canonical_json({1: "x"})


def test_deep_nesting_leaves_the_fast_path_and_gives_the_same_bytes() -> None:
    deep: Any = "x"
    for _ in range(80):
        deep = [deep]
    assert not _plain_json(deep)
    assert canonical_json(deep) == rfc8785.dumps(deep)
