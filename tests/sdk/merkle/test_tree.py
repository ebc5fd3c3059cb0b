"""RFC 9162 Merkle tree over SM3: properties against a reference recursion, and mutations."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shancheng.sdk.crypto import sm3
from shancheng.sdk.errors import InvalidInput, InvalidProof, RootMismatchError, VerificationError
from shancheng.sdk.merkle import EMPTY_ROOT, MerkleTree, leaf_hash, node_hash, verify_consistency, verify_inclusion
from shancheng.sdk.merkle.proofs import MAX_PROOF_LENGTH, inclusion_proof_length

MAX_SIZE = 300
LEAVES = [f"leaf-{i}".encode() for i in range(MAX_SIZE)]
TREE = MerkleTree.from_leaves(LEAVES)


def reference_mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 written as literally as possible."""
    n = len(leaves)
    if n == 0:
        return sm3(b"")
    if n == 1:
        return sm3(b"\x00" + leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return sm3(b"\x01" + reference_mth(leaves[:k]) + reference_mth(leaves[k:]))


def test_hashing_uses_rfc_9162_prefixes():
    assert leaf_hash(b"x") == sm3(b"\x00x")
    assert node_hash(b"a" * 32, b"b" * 32) == sm3(b"\x01" + b"a" * 32 + b"b" * 32)
    assert EMPTY_ROOT == sm3(b"") == MerkleTree().root()


def test_roots_match_the_reference_for_every_size():
    for n in range(70):
        assert TREE.root(n) == reference_mth(LEAVES[:n]), n
    for n in (127, 128, 129, 255, 256, 257, MAX_SIZE):
        assert TREE.root(n) == reference_mth(LEAVES[:n]), n


def test_no_duplicated_last_node():
    # Bitcoin-style trees duplicate the last node; RFC 9162 must not.
    three = MerkleTree.from_leaves(LEAVES[:3]).root()
    four_with_dup = MerkleTree.from_leaves(LEAVES[:3] + [LEAVES[2]]).root()
    assert three != four_with_dup
    assert three == node_hash(node_hash(leaf_hash(LEAVES[0]), leaf_hash(LEAVES[1])), leaf_hash(LEAVES[2]))


def test_append_and_extend_build_the_same_tree():
    one_by_one = MerkleTree()
    for i, leaf in enumerate(LEAVES[:77]):
        assert one_by_one.append(leaf) == i
    batched = MerkleTree()
    batched.extend(LEAVES[:30])
    batched.extend(LEAVES[30:31])
    batched.extend(LEAVES[31:77])
    for n in range(78):
        assert one_by_one.root(n) == batched.root(n)
    rebuilt = MerkleTree.from_leaf_hashes(batched.leaf_hash(i) for i in range(77))
    assert rebuilt.root() == batched.root()


def test_every_leaf_of_every_size_verifies():
    for size in range(1, MAX_SIZE + 1):
        root = TREE.root(size)
        for index in range(size):
            proof = TREE.inclusion_proof(index, size)
            assert len(proof) == inclusion_proof_length(index, size)
            verify_inclusion(LEAVES[index], index, size, proof, root)


def test_consistency_holds_for_all_old_up_to_new():
    for new in range(130):
        new_root = TREE.root(new)
        for old in range(new + 1):
            verify_consistency(old, new, TREE.root(old), new_root, TREE.consistency_proof(old, new))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_consistency_for_random_sizes(data):
    new = data.draw(st.integers(1, MAX_SIZE))
    old = data.draw(st.integers(0, new))
    verify_consistency(old, new, TREE.root(old), TREE.root(new), TREE.consistency_proof(old, new))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_any_single_mutation_of_an_inclusion_proof_fails(data):
    size = data.draw(st.integers(2, MAX_SIZE))
    index = data.draw(st.integers(0, size - 1))
    proof = TREE.inclusion_proof(index, size)
    root = TREE.root(size)
    i = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 255))
    mutated = list(proof)
    b = bytearray(mutated[i])
    b[bit // 8] ^= 1 << (bit % 8)
    mutated[i] = bytes(b)
    with pytest.raises(RootMismatchError) as err:
        verify_inclusion(LEAVES[index], index, size, mutated, root)
    assert err.value.size == size and err.value.expected == root and err.value.computed != root
    other = data.draw(st.integers(0, size - 1).filter(lambda j: j != index))
    with pytest.raises(VerificationError):
        verify_inclusion(LEAVES[index], other, size, proof, root)
    with pytest.raises(VerificationError):
        verify_inclusion(LEAVES[index] + b"!", index, size, proof, root)
    with pytest.raises(InvalidProof):
        verify_inclusion(LEAVES[index], index, size, proof[:-1], root)
    with pytest.raises(InvalidProof):
        verify_inclusion(LEAVES[index], index, size, proof + [root], root)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_single_mutation_of_a_consistency_proof_fails(data):
    new = data.draw(st.integers(2, MAX_SIZE))
    old = data.draw(st.integers(1, new - 1))
    proof = TREE.consistency_proof(old, new)
    old_root, new_root = TREE.root(old), TREE.root(new)
    i = data.draw(st.integers(0, len(proof) - 1))
    mutated = list(proof)
    b = bytearray(mutated[i])
    b[data.draw(st.integers(0, 31))] ^= 1 << data.draw(st.integers(0, 7))
    mutated[i] = bytes(b)
    with pytest.raises(VerificationError):
        verify_consistency(old, new, old_root, new_root, mutated)
    with pytest.raises(VerificationError):
        verify_consistency(old, new, old_root, new_root, proof[:-1])
    with pytest.raises(VerificationError):
        verify_consistency(old, new, old_root, new_root, proof + [new_root])
    with pytest.raises(VerificationError):
        verify_consistency(old, new, new_root, old_root, proof)


def test_degenerate_inputs_are_rejected_not_accepted():
    root = TREE.root(5)
    with pytest.raises(InvalidProof, match="not below tree size"):
        verify_inclusion(LEAVES[5], 5, 5, TREE.inclusion_proof(4, 5), root)
    with pytest.raises(InvalidProof):
        verify_inclusion(LEAVES[0], 0, 0, [], EMPTY_ROOT)  # nothing is in the empty tree
    with pytest.raises(InvalidProof):
        verify_inclusion(LEAVES[0], -1, 5, [], root)
    with pytest.raises(InvalidProof):
        verify_inclusion(LEAVES[0], 0, 5, [b"short"] * 3, root)
    with pytest.raises(InvalidProof):
        verify_inclusion(LEAVES[0], 0, 2**70, [root] * 3, root)
    with pytest.raises(InvalidProof):
        verify_inclusion(LEAVES[0], 0, 5, [root] * (MAX_PROOF_LENGTH + 1), root)
    with pytest.raises(InvalidProof, match="empty"):
        verify_consistency(3, 5, TREE.root(3), root, [])
    with pytest.raises(InvalidProof):
        verify_consistency(6, 5, TREE.root(6), root, [])
    with pytest.raises(RootMismatchError):
        verify_consistency(0, 5, TREE.root(1), root, [])
    with pytest.raises(RootMismatchError):
        verify_consistency(5, 5, TREE.root(4), root, [])
    verify_consistency(0, 5, EMPTY_ROOT, root, [])
    verify_consistency(5, 5, root, root, [])


def test_tree_rejects_bad_arguments():
    with pytest.raises(InvalidInput):
        TREE.root(MAX_SIZE + 1)
    with pytest.raises(InvalidInput):
        TREE.inclusion_proof(10, 10)
    with pytest.raises(InvalidInput):
        TREE.consistency_proof(11, 10)
    with pytest.raises(InvalidInput):
        MerkleTree().append("text")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        MerkleTree.from_leaf_hashes([b"short"])
