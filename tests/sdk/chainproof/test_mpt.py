"""The SDK's Merkle-Patricia proof walk and strict RLP, against py-trie and the rlp package."""

from __future__ import annotations

import pytest
import rlp
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from trie import HexaryTrie

from shancheng.chain.receipt_proofs import trie_proof
from shancheng.sdk.chainproof import TrieProofError, _rlp, verify_trie_proof


def _build(items: dict[bytes, bytes]) -> tuple[bytes, dict[bytes, bytes]]:
    db: dict[bytes, bytes] = {}
    t = HexaryTrie(db)
    for k, v in items.items():
        t[k] = v
    return t.root_hash, db


def _has_embedded(nodes: list[bytes]) -> bool:
    def walk(item: object) -> bool:
        return isinstance(item, list) and any(isinstance(c, list) or walk(c) for c in item)

    return any(walk(rlp.decode(n)) for n in nodes)


keys_st = st.binary(min_size=1, max_size=4)
values_st = st.binary(min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(keys_st, values_st, min_size=1, max_size=40))
def test_every_key_proves_its_value_including_embedded_nodes(items):
    root, db = _build(items)
    for key, value in items.items():
        assert verify_trie_proof(root, key, trie_proof(db, root, key)) == value


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(keys_st, values_st, min_size=2, max_size=30), keys_st)
def test_a_proof_never_proves_another_key(items, other):
    root, db = _build(items)
    key = next(iter(items))
    if other == key:
        return
    try:
        got = verify_trie_proof(root, other, trie_proof(db, root, key))
    except TrieProofError:
        return
    # only a key stored on the very same path (inside the same nodes) can be proven by it, and then truly
    assert other in items and got == items[other]


def test_small_tries_do_embed_nodes_and_they_verify():
    items = {bytes([i]): bytes([i]) for i in range(1, 40)}
    root, db = _build(items)
    proofs = {k: trie_proof(db, root, k) for k in items}
    assert any(_has_embedded(p) for p in proofs.values())
    for k, p in proofs.items():
        assert verify_trie_proof(root, k, p) == items[k]


def test_extension_and_branch_value_nodes():
    items = {b"\x01\x23\x45": b"a" * 40, b"\x01\x23\x46": b"b" * 40, b"\x01\x23": b"c" * 40}
    root, db = _build(items)
    kinds = set()
    for k, v in items.items():
        proof = trie_proof(db, root, k)
        kinds |= {len(rlp.decode(n)) for n in proof}
        assert verify_trie_proof(root, k, proof) == v
    assert kinds == {2, 17}


def _one_node_root(node: list) -> tuple[bytes, bytes]:
    raw = rlp.encode(node)
    return keccak(raw), raw


def test_crafted_bad_nodes_are_refused():
    # an "embedded" child of 32 bytes or more must have been referenced by hash
    big_leaf = [b"\x3f", b"x" * 40]
    branch = [b""] * 17
    branch[1] = big_leaf
    root, raw = _one_node_root(branch)
    with pytest.raises(TrieProofError, match="32 bytes or longer and must be referenced by hash"):
        verify_trie_proof(root, b"\x1f", [raw])
    # a three-item node
    root, raw = _one_node_root([b"\x20", b"v", b"w"])
    with pytest.raises(TrieProofError, match="has 3 items"):
        verify_trie_proof(root, b"\x01", [raw])
    # an extension with an empty path
    root, raw = _one_node_root([b"\x00", b"\x11" * 32])
    with pytest.raises(TrieProofError, match="extension with an empty path"):
        verify_trie_proof(root, b"\x01", [raw])
    # a bad hex-prefix flag and a non-zero padding nibble
    root, raw = _one_node_root([b"\x40\x01", b"v"])
    with pytest.raises(TrieProofError, match="invalid hex-prefix flag"):
        verify_trie_proof(root, b"\x01", [raw])
    root, raw = _one_node_root([b"\x21\x01", b"v"])
    with pytest.raises(TrieProofError, match="non-zero padding nibble"):
        verify_trie_proof(root, b"\x01", [raw])
    # a leaf with an empty value proves nothing
    root, raw = _one_node_root([b"\x20\x01", b""])
    with pytest.raises(TrieProofError, match="holds no value"):
        verify_trie_proof(root, b"\x01", [raw])
    # a leaf for a longer key, and for a shorter one
    root, raw = _one_node_root([b"\x20\x01\x02", b"v"])
    with pytest.raises(TrieProofError, match="leaves the path"):
        verify_trie_proof(root, b"\x01", [raw])
    root, raw = _one_node_root([b"\x20\x01", b"v"])
    with pytest.raises(TrieProofError, match="leaf for a shorter key"):
        verify_trie_proof(root, b"\x01\x02", [raw])
    # a string where a node should be; a child reference of the wrong size
    root, raw = _one_node_root(b"v" * 40)  # type: ignore[arg-type]
    with pytest.raises(TrieProofError, match="is a string, not a trie node"):
        verify_trie_proof(root, b"\x01", [raw])
    branch = [b""] * 17
    branch[0] = b"\x11" * 31
    root, raw = _one_node_root(branch)
    with pytest.raises(TrieProofError, match="refers to a child of 31 bytes"):
        verify_trie_proof(root, b"\x01", [raw])
    with pytest.raises(TrieProofError, match="trie proof is empty"):
        verify_trie_proof(root, b"\x01", [])
    with pytest.raises(TrieProofError, match="not RLP"):
        verify_trie_proof(keccak(b"\xc1"), b"\x01", [b"\xc1"])


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.binary(max_size=80), lambda c: st.lists(c, max_size=6), max_leaves=30))
def test_rlp_round_trips_with_the_rlp_package(item):
    encoded = rlp.encode(item)
    assert _rlp.encode(item) == encoded
    assert _rlp.decode(encoded) == item


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x81\x05", "single byte below 0x80"),
        (b"\xb8\x01a", "long form used for a length below 56"),
        (b"\xb9\x00\x40" + b"a" * 64, "leading zero byte"),
        (b"\x83ab", "runs past the end"),
        (b"\xc3\x01\x02", "runs past the end"),
        (b"\x01\x02", "1 trailing bytes"),
        (b"", "runs past the end"),
        (b"\xc1" * 20 + b"\xc0", "nesting deeper"),
    ],
)
def test_rlp_refuses_non_canonical_input(data, reason):
    with pytest.raises(_rlp.RLPError, match=reason):
        _rlp.decode(data)


@pytest.mark.parametrize("n", [0, 1, 127, 128, 255, 256, 2**64 - 1])
def test_rlp_integers_match(n):
    assert _rlp.encode_uint(n) == rlp.encode(n)
    assert _rlp.decode_uint(_rlp.decode(_rlp.encode_uint(n)), "n") == n
