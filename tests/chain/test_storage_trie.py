"""Storage tries updated a block at a time (chain.storage_trie) against py-trie's HexaryTrie."""

from __future__ import annotations

import random

import pytest
from eth.constants import BLANK_ROOT_HASH
from hypothesis import given, settings
from hypothesis import strategies as st
from trie import HexaryTrie

from shancheng.chain.trie import NodeStore as _Nodes
from shancheng.chain.trie import TrieUpdate, trie_get


def _hexary(pairs: dict[bytes, bytes]) -> tuple[dict[bytes, bytes], bytes]:
    db: dict[bytes, bytes] = {}
    trie = HexaryTrie(db)
    for key, value in pairs.items():
        trie[key] = value
    return db, trie.root_hash


def _check(initial: dict[bytes, bytes], changes: dict[bytes, bytes | None]) -> None:
    db, root = _hexary(initial)
    old_db = dict(db)
    expected = HexaryTrie(db, root)
    for key, value in changes.items():
        if value:
            expected[key] = value
        else:
            del expected[key]
    update = TrieUpdate(_Nodes(old_db.__getitem__, {}))
    new_root = update.apply(root, changes)
    assert new_root == expected.root_hash
    # every key reads back through the old nodes plus the new ones, by HexaryTrie and by trie_get
    merged = {**old_db, **update.new_nodes}
    final = {k: v for k, v in {**initial, **changes}.items() if v}
    reader = HexaryTrie(merged, new_root)
    nodes = _Nodes(merged.__getitem__, {})
    for key in {*initial, *changes}:
        assert reader[key] == final.get(key, b"")
        assert trie_get(nodes, new_root, key) == final.get(key, b"")


def _key(rnd: random.Random) -> bytes:
    return rnd.randbytes(32)


@pytest.mark.parametrize("seed", range(40))
def test_random_tries_and_changes(seed: int) -> None:
    rnd = random.Random(seed)
    size = rnd.choice([0, 1, 2, 3, 10, 50, 300])
    initial = {_key(rnd): rnd.randbytes(rnd.choice([1, 2, 10, 33])) for _ in range(size)}
    keys = list(initial)
    changes: dict[bytes, bytes | None] = {}
    for _ in range(rnd.choice([1, 2, 5, 40, 200])):
        roll = rnd.random()
        if keys and roll < 0.3:
            changes[rnd.choice(keys)] = None  # delete an existing key
        elif keys and roll < 0.5:
            changes[rnd.choice(keys)] = rnd.randbytes(rnd.choice([1, 5, 40]))  # overwrite
        elif roll < 0.6:
            changes[_key(rnd)] = None  # delete a key that is not there
        else:
            changes[_key(rnd)] = rnd.randbytes(rnd.choice([1, 3, 33]))  # insert
    _check(initial, changes)


def test_deleting_everything_gives_the_blank_root() -> None:
    rnd = random.Random(7)
    initial = {_key(rnd): b"\x01" for _ in range(20)}
    _check(initial, dict.fromkeys(initial))
    update = TrieUpdate(_Nodes({}.__getitem__, {}))
    assert update.apply(BLANK_ROOT_HASH, {_key(rnd): None}) == BLANK_ROOT_HASH


def test_keys_sharing_long_prefixes() -> None:
    # extensions split and merge: keys that differ only in their last nibbles
    base = bytes(31)
    initial = {base + bytes([i]): bytes([i % 200 + 1]) for i in range(0, 256, 17)}
    _check(initial, {base + b"\x00": None, base + b"\x01": b"\x09", bytes(30) + b"\x01\x00": b"\x05"})
    _check({base + b"\x10": b"\x01", base + b"\x20": b"\x02"}, {base + b"\x10": None})


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(st.binary(min_size=32, max_size=32), st.binary(min_size=1, max_size=40), max_size=40),
    st.dictionaries(st.binary(min_size=32, max_size=32), st.one_of(st.none(), st.binary(min_size=1, max_size=40)),
                    max_size=20),
    st.data(),
)
def test_any_tries_and_changes(initial: dict[bytes, bytes], changes: dict[bytes, bytes | None], data) -> None:
    if initial:  # also touch existing keys
        for key in data.draw(st.lists(st.sampled_from(sorted(initial)), max_size=10)):
            changes[key] = data.draw(st.one_of(st.none(), st.binary(min_size=1, max_size=40)))
    _check(initial, changes)


def test_keys_must_be_prefix_free() -> None:
    # a key that starts another would need a value in a branch node, which this code never writes
    with pytest.raises(ValueError, match="prefix-free: 0xab starts 0xabcd"):
        TrieUpdate(_Nodes({}.__getitem__, {})).apply(BLANK_ROOT_HASH, {b"\xab": b"\x01", b"\xab\xcd": b"\x02"})


def test_a_missing_node_is_reported_as_py_evm_does() -> None:
    from eth.db.atomic import AtomicDB
    from eth.vm.interrupt import MissingStorageTrieNode

    from shancheng.chain.storage_trie import BufferedStorageLookup

    absent_root = b"\x42" * 32
    lookup = BufferedStorageLookup(AtomicDB(), absent_root, b"\x11" * 20)
    with pytest.raises(MissingStorageTrieNode) as err:
        lookup[b"\x01"]
    assert err.value.missing_node_hash == absent_root and err.value.account_address == b"\x11" * 20
    lookup[b"\x01"] = b"\x05"  # pending writes read back before any node is needed
    assert lookup[b"\x01"] == b"\x05"


def test_set_aside_and_rolled_back_tries_behave_as_py_evm_s() -> None:
    # an account's storage deleted (new_trie) and the deletion reverted (rollback_trie): same reads, same roots
    from eth.db.atomic import AtomicDB
    from eth.db.storage import StorageLookup

    from shancheng.chain.storage_trie import BufferedStorageLookup

    def run(cls: type) -> list[object]:
        db = AtomicDB()
        lookup = cls(db, BLANK_ROOT_HASH, b"\x22" * 20)
        seen: list[object] = []
        for i in range(20):
            lookup[i.to_bytes(2, "big")] = bytes([i + 1])
        lookup.commit_to(db)
        seen.append(lookup.get_changed_root() if lookup.has_changed_root else lookup._starting_root_hash)
        lookup[b"\x00\x01"] = b"\x63"  # pending in the old trie when it is set aside
        index = lookup.new_trie()
        seen.append([lookup[i.to_bytes(2, "big")] for i in range(3)])  # the fresh trie is empty
        lookup[b"\x00\x02"] = b"\x07"  # a write to the fresh trie, abandoned by the rollback
        lookup.rollback_trie(index - 1)
        seen.append([lookup[i.to_bytes(2, "big")] for i in range(3)])
        seen.append(lookup.get_changed_root())
        lookup.commit_to(db)
        seen.append(lookup[b"\x00\x02"])
        return seen

    ours, theirs = run(BufferedStorageLookup), run(StorageLookup)
    assert ours == theirs
    assert ours[2] == [b"\x01", b"\x63", b"\x03"]
