"""The one-pass ordered trie against py-evm's HexaryTrie-based builder, and the VM that uses it."""

from __future__ import annotations

import random

import pytest
from eth.db.trie import _make_trie_root_and_nodes
from hypothesis import given, settings
from hypothesis import strategies as st

from shancheng.chain.trie import ordered_trie_root_and_nodes

# value lengths around the 32-byte inline/hash boundary and the 56-byte RLP long-form boundary
_LENGTHS = [1, 2, 5, 20, 27, 28, 29, 30, 31, 32, 40, 54, 55, 56, 57, 100, 300]


def _values(n: int, seed: int) -> tuple[bytes, ...]:
    rnd = random.Random(seed)
    return tuple(rnd.randbytes(rnd.choice(_LENGTHS)) for _ in range(n))


@pytest.mark.parametrize("n", [*range(135), 255, 256, 257, 1000])  # rlp(index) grows at 128 and 256
def test_same_root_and_nodes_as_py_evm(n: int) -> None:
    values = _values(n, seed=n)
    root, nodes = ordered_trie_root_and_nodes(values)
    expected_root, expected_nodes = _make_trie_root_and_nodes(values)
    assert root == expected_root
    assert nodes == expected_nodes


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=80), max_size=140))
def test_same_root_and_nodes_for_any_values(values: list[bytes]) -> None:
    assert ordered_trie_root_and_nodes(values) == _make_trie_root_and_nodes(tuple(values))


def test_an_empty_value_is_refused() -> None:
    with pytest.raises(ValueError, match="item 2 is empty"):
        ordered_trie_root_and_nodes([b"a", b"b", b""])
