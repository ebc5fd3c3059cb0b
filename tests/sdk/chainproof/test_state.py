"""State proofs (EIP-1186): the SDK's offline checks against proofs built from real py-evm state.

A contract compiled by solc holds a counter, a short string, a long bytes value and a mapping to a
struct with a string; solc's own storage layout says where they live, py-evm executes the deployment,
and the node's builder (``shancheng.chain.state_proofs``, the ``eth_getProof`` code) reads the proofs
from py-evm's database. The verifier must prove every value, prove absent slots and accounts absent,
and refuse any tampered proof or claimed field: a forged answer must never read as Governance's state
(issue 8, hole 4: an author's key is proven active from a state proof, so a state proof must not lie).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import rlp
import solcx
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from trie import HexaryTrie

from shancheng.chain.state_proofs import state_proof, trie_path
from shancheng.contracts.build import SETTINGS, find_solc
from shancheng.sdk.chainproof import (
    StateProofError,
    TrieProofError,
    bytes_slots,
    dynamic_data_slot,
    mapping_slot,
    read_bytes,
    slot_key,
    verify_account_proof,
    verify_eip1186,
    verify_storage_proof,
    verify_trie_proof,
    verify_trie_proof_or_absent,
)
from shancheng.sdk.chainproof.mpt import EMPTY_TRIE_ROOT
from shancheng.sdk.errors import ShanchengError, VerificationError
from shancheng.testing import make_pyevm

SOURCE = """
// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;
contract Layout {
    struct Org { string name; bytes key; bool active; }
    uint256 public counter;
    string public shortName;
    bytes public longKey;
    mapping(bytes32 => Org) public orgs;
    mapping(address => uint256) public staff;
    constructor(bytes memory key, address member) {
        counter = 0x2a;
        shortName = "district hospital";
        longKey = key;
        orgs[bytes32(uint256(7))] = Org("Pharmacy No. 3 of the district, dispensing", key, true);
        staff[member] = 5;
    }
}
"""
KEY = bytes.fromhex("04") + bytes(range(1, 65))  # 65 bytes, like an uncompressed SM2 key: the long form
MEMBER = "0x" + "ab" * 20
ABSENT = bytes.fromhex("77" * 20)


def _compile() -> dict[str, Any]:
    settings_ = copy.deepcopy(SETTINGS)
    settings_["outputSelection"]["*"]["*"].append("storageLayout")
    out = solcx.compile_standard({"language": "Solidity", "sources": {"Layout.sol": {"content": SOURCE}},
                                  "settings": settings_}, solc_binary=find_solc())
    assert not [e for e in out.get("errors", []) if e["severity"] == "error"]
    return out["contracts"]["Layout.sol"]["Layout"]


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    """The contract deployed on py-evm, with solc's storage layout and the chain's database."""
    artifact = _compile()
    w3 = make_pyevm()
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["evm"]["bytecode"]["object"])
    tx = factory.constructor(KEY, w3.to_checksum_address(MEMBER)).transact({"from": w3.eth.accounts[0]})
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    assert receipt["status"] == 1
    chain = w3.provider.ethereum_tester.backend.chain  # type: ignore[union-attr]
    header = chain.get_canonical_block_header_by_number(receipt["blockNumber"])
    layout = {e["label"]: int(e["slot"]) for e in artifact["storageLayout"]["storage"]}
    return {"w3": w3, "db": chain.chaindb.db, "root": header.state_root, "layout": layout,
            "address": bytes.fromhex(receipt["contractAddress"][2:]), "eoa": bytes.fromhex(w3.eth.accounts[0][2:])}


def _proof(world: dict[str, Any], address: bytes, slots: list[bytes]) -> dict[str, Any]:
    return state_proof(world["db"], world["root"], address, slots)


def _slots(world: dict[str, Any]) -> dict[str, bytes]:
    lay = world["layout"]
    org = int.from_bytes(mapping_slot(slot_key(7), lay["orgs"]), "big")
    return {
        "counter": slot_key(lay["counter"]),
        "shortName": slot_key(lay["shortName"]),
        "longKey": slot_key(lay["longKey"]),
        "org.name": slot_key(org),
        "org.key": slot_key(org + 1),
        "org.active": slot_key(org + 2),
        "staff": mapping_slot(bytes(12) + bytes.fromhex(MEMBER[2:]), lay["staff"]),
        "absent": slot_key(10**6),
    }


def test_contract_storage_is_proven_and_reads_back_as_solidity_wrote_it(world):
    w3, address = world["w3"], world["address"]
    slots = _slots(world)
    proven = verify_eip1186(_proof(world, address, list(slots.values())), world["root"])
    assert proven.exists and proven.address == address
    assert proven.account is not None and proven.account.code_hash == keccak(w3.eth.get_code(w3.to_checksum_address(
        "0x" + address.hex())))
    for name, slot in slots.items():  # the proven values are what the EVM reads
        assert proven.value(slot) == int.from_bytes(w3.eth.get_storage_at(w3.to_checksum_address(
            "0x" + address.hex()), int.from_bytes(slot, "big")), "big"), name
    assert proven.value(slots["counter"]) == 0x2A and proven.value(slots["absent"]) == 0
    assert proven.value(slots["staff"]) == 5 and proven.value(slots["org.active"]) == 1
    assert read_bytes(proven.storage, slots["shortName"]) == b"district hospital"
    assert bytes_slots(slots["shortName"], proven.value(slots["shortName"])) == []
    # the long forms need their data slots: ask for them, then they read back exactly
    assert read_bytes(proven.storage, slots["longKey"]) is None
    extra = bytes_slots(slots["longKey"], proven.value(slots["longKey"])) + \
        bytes_slots(slots["org.name"], proven.value(slots["org.name"])) + \
        bytes_slots(slots["org.key"], proven.value(slots["org.key"]))
    assert extra[0] == dynamic_data_slot(slots["longKey"]) and len(extra) == 3 + 2 + 3
    full = verify_eip1186(_proof(world, address, list(slots.values()) + [slot_key(s) for s in extra]), world["root"])
    assert read_bytes(full.storage, slots["longKey"]) == KEY
    assert read_bytes(full.storage, slots["org.key"]) == KEY
    assert read_bytes(full.storage, slots["org.name"]) == b"Pharmacy No. 3 of the district, dispensing"
    with pytest.raises(StateProofError, match="does not cover storage slot"):
        full.value(slot_key(12345))


def test_absent_slot_and_absent_account_are_proven_absent(world):
    proven = verify_eip1186(_proof(world, ABSENT, [slot_key(0), slot_key(1)]), world["root"])
    assert not proven.exists and proven.account is None and proven.storage == {0: 0, 1: 0}
    answer = _proof(world, ABSENT, [])
    assert answer["accountProof"] and answer["balance"] == "0x0" and answer["storageHash"] == "0x" + \
        EMPTY_TRIE_ROOT.hex()
    # geth writes an absent account's hashes as zero: that answer proves the same
    zeroed = {**answer, "codeHash": "0x" + "00" * 32, "storageHash": "0x" + "00" * 32}
    assert verify_eip1186(zeroed, world["root"]).account is None
    # the funded EOA is present, with its balance and nonce
    eoa = verify_eip1186(_proof(world, world["eoa"], []), world["root"])
    assert eoa.account is not None and eoa.account.balance > 0 and eoa.account.nonce == 1
    assert eoa.account.code_hash == keccak(b"") and eoa.account.storage_root == EMPTY_TRIE_ROOT


def test_a_forged_claim_about_governance_state_is_refused(world):
    """Each claimed field must be the proven one: an attacker who edits an honest answer (to make a
    revoked staff key read as active, or to swap an org's key) gets a refusal, never other values."""
    slots = _slots(world)
    honest = _proof(world, world["address"], [slots["counter"], slots["staff"], slots["absent"]])
    verify_eip1186(honest, world["root"])
    forged: list[tuple[str, dict[str, Any], str]] = []
    for i in range(3):
        value = int(honest["storageProof"][i]["value"], 16)
        f = copy.deepcopy(honest)
        f["storageProof"][i]["value"] = hex(value + 1)
        forged.append((f"value {i}", f, "claims slot"))
    f = copy.deepcopy(honest)
    f["storageProof"][0]["key"] = "0x" + slots["org.active"].hex()  # the counter's proof for another slot
    forged.append(("wrong slot", f, "storage proof of slot"))
    for name, value in (("balance", "0x1"), ("nonce", "0x2"), ("codeHash", "0x" + keccak(b"x").hex()),
                        ("storageHash", "0x" + EMPTY_TRIE_ROOT.hex())):
        f = copy.deepcopy(honest)
        f[name] = value
        forged.append((name, f, "claims"))
    f = copy.deepcopy(honest)
    f["address"] = "0x" + ABSENT.hex()  # the contract's proof passed off as another account's
    forged.append(("address", f, "account proof of"))
    for name, f, reason in forged:
        with pytest.raises(StateProofError, match=reason):
            verify_eip1186(f, world["root"])
    with pytest.raises(StateProofError, match="does not hash"):  # a different (e.g. another block's) state root
        verify_eip1186(honest, keccak(b"another state root"))
    # a forged absence: the absent account's answer claiming a balance
    absent = _proof(world, ABSENT, [])
    with pytest.raises(StateProofError, match="claims balance 1, but the account \\(absent\\)"):
        verify_eip1186({**absent, "balance": "0x1"}, world["root"])


def _mutations(nodes: list[str]) -> list[tuple[str, list[str]]]:
    """Every node with one flipped byte, each node dropped, a node added, the order changed."""
    out = []
    for i, node in enumerate(nodes):
        raw = bytearray.fromhex(node[2:])
        for pos in {0, len(raw) // 2, len(raw) - 1}:
            flipped = bytearray(raw)
            flipped[pos] ^= 0x01
            out.append((f"flip node {i} byte {pos}", nodes[:i] + ["0x" + flipped.hex()] + nodes[i + 1:]))
        out.append((f"drop node {i}", nodes[:i] + nodes[i + 1:]))
    out.append(("extra node", nodes + [nodes[-1]]))
    out.append(("extra junk", nodes + ["0xc0"]))
    if len(nodes) > 1:
        out.append(("swapped", [nodes[1], nodes[0], *nodes[2:]]))
    return out


@pytest.mark.parametrize("target", ["contract", "absent-account"])
def test_every_mutated_proof_node_is_refused(world, target):
    slots = _slots(world)
    address = world["address"] if target == "contract" else ABSENT
    keys = [slots["counter"], slots["longKey"], slots["absent"]] if target == "contract" else []
    honest = _proof(world, address, keys)
    tried = 0
    for name, nodes in _mutations(honest["accountProof"]):
        with pytest.raises(VerificationError):
            verify_eip1186({**honest, "accountProof": nodes}, world["root"])
            pytest.fail(f"accepted account proof mutation: {name}")
        tried += 1
    for i, entry in enumerate(honest["storageProof"]):
        for name, nodes in _mutations(entry["proof"]):
            forged = copy.deepcopy(honest)
            forged["storageProof"][i]["proof"] = nodes
            with pytest.raises(VerificationError):
                verify_eip1186(forged, world["root"])
                pytest.fail(f"accepted storage proof {i} mutation: {name}")
            tried += 1
    assert tried >= (30 if target == "contract" else 4)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda p: p.pop("nonce"), "missing field 'nonce'"),
        (lambda p: p.update(extra=1), "unknown field 'extra'"),
        (lambda p: p.update(balance="0x00"), "without leading zeros"),
        (lambda p: p.update(balance=0), "hex quantity"),
        (lambda p: p.update(nonce="0x" + "f" * 17), "exceeds 64 bits"),
        (lambda p: p.update(address="0x" + "ab" * 19), "address must be 20 bytes"),
        (lambda p: p.update(codeHash="0xzz" + "00" * 31), "codeHash must be 0x-prefixed hex"),
        (lambda p: p.update(accountProof=["0x" + "00" * 5000]), "0x-prefixed hex"),
        (lambda p: p.update(accountProof=["0xc0"] * 65), "at most 64 nodes"),
        (lambda p: p.update(storageProof=[{"key": "0x" + "00" * 32, "value": "0x0", "proof": []}] * 65),
         "at most 64 entries"),
        (lambda p: p.update(storageProof=[{"key": "0x00", "value": "0x0", "proof": []}]), "key must be 32 bytes"),
        (lambda p: p.update(storageProof=[{"key": "0x" + "00" * 32, "value": "0x0", "proof": []}] * 2),
         "listed twice"),
        (lambda p: p.update(storageProof=[{"key": "0x" + "00" * 32, "value": "0x0"}]), "missing field 'proof'"),
        (lambda p: p.update(storageProof=[{"key": "0x" + "00" * 32, "value": True, "proof": []}]), "hex quantity"),
    ],
)
def test_malformed_answers_are_refused_with_one_line_reasons(world, edit, reason):
    answer = _proof(world, world["address"], [])
    edit(answer)
    with pytest.raises(StateProofError, match=reason) as info:
        verify_eip1186(answer, world["root"])
    assert "\n" not in str(info.value) and isinstance(info.value, ShanchengError)


def test_a_storage_trie_never_proves_a_stored_zero_and_bytes_encodings_solidity_refuses_are_refused():
    db: dict[bytes, bytes] = {}
    t = HexaryTrie(db)
    t[keccak(slot_key(1))] = rlp.encode(b"")  # a "stored zero": no honest trie holds one
    t[keccak(slot_key(2))] = rlp.encode(5)
    proof, _ = trie_path(db, t.root_hash, keccak(slot_key(1)))
    with pytest.raises(StateProofError, match="stores a zero"):
        verify_storage_proof(t.root_hash, slot_key(1), proof)
    with pytest.raises(StateProofError, match="long form with a length of 3"):
        read_bytes({0: 3 * 2 + 1}, 0)
    with pytest.raises(StateProofError, match="short form with a length of 40"):
        read_bytes({0: 80}, 0)
    assert read_bytes({}, 0) is None and read_bytes({0: 0}, 0) == b""
    with pytest.raises(StateProofError, match="must be padded to 32 bytes"):
        mapping_slot(b"\x01", 0)


def test_the_empty_trie_proves_every_key_absent():
    assert verify_trie_proof_or_absent(EMPTY_TRIE_ROOT, b"k", []) is None
    assert verify_trie_proof_or_absent(EMPTY_TRIE_ROOT, b"k", [b"\x80"]) is None
    assert verify_storage_proof(EMPTY_TRIE_ROOT, slot_key(3), []) == 0
    assert verify_account_proof(EMPTY_TRIE_ROOT, ABSENT, []) is None
    with pytest.raises(TrieProofError):
        verify_trie_proof_or_absent(EMPTY_TRIE_ROOT, b"k", [b"\x80", b"\x80"])
    with pytest.raises(TrieProofError, match="trie proof is empty"):
        verify_trie_proof_or_absent(keccak(b"not empty"), b"k", [])
    with pytest.raises(TrieProofError, match="trie proof is empty"):  # inclusion proofs never accept absence
        verify_trie_proof(EMPTY_TRIE_ROOT, b"k", [])


# -- random tries: proofs from py-trie (an independent implementation) and from the node's walk ----------------
def _hashed_nodes(trie: HexaryTrie, key: bytes) -> list[bytes]:
    """py-trie's proof (decoded nodes, embedded ones included) in the eth_getProof shape."""
    encoded = [rlp.encode(n) for n in trie.get_proof(key)]
    return [e for i, e in enumerate(encoded) if i == 0 or len(e) >= 32]


slot_keys = st.integers(0, 300).map(lambda n: keccak(slot_key(n)))


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(slot_keys, st.integers(1, 2**256 - 1).map(rlp.encode), max_size=40), slot_keys)
def test_random_tries_prove_present_keys_and_absent_keys(items, probe):
    db: dict[bytes, bytes] = {}
    t = HexaryTrie(db)
    for k, v in items.items():
        t[k] = v
    root = t.root_hash
    for key in [*items, probe]:
        ours, value = trie_path(db, root, key)
        assert value == items.get(key)
        assert verify_trie_proof_or_absent(root, key, ours) == items.get(key)
        if items:
            assert ours == _hashed_nodes(t, key)  # the node's walk gives py-trie's proof
        if key in items:
            assert verify_trie_proof(root, key, ours) == items[key]
        else:
            with pytest.raises(TrieProofError, match="key is not in the trie|trie proof is empty"):
                verify_trie_proof(root, key, ours)
        if ours:
            with pytest.raises(TrieProofError, match="unused node"):
                verify_trie_proof_or_absent(root, key, [*ours, ours[-1]])
            with pytest.raises(TrieProofError):
                verify_trie_proof_or_absent(root, key, ours[:-1])


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(slot_keys, st.binary(min_size=1, max_size=40), min_size=2, max_size=30), slot_keys)
def test_a_proof_of_one_key_never_proves_another_absent_falsely(items, other):
    db: dict[bytes, bytes] = {}
    t = HexaryTrie(db)
    for k, v in items.items():
        t[k] = v
    key = next(iter(items))
    proof, _ = trie_path(db, t.root_hash, key)
    try:
        got = verify_trie_proof_or_absent(t.root_hash, other, proof)
    except TrieProofError:
        return
    assert got == items.get(other)  # whatever it proves about ``other`` is the truth
