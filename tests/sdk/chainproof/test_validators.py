"""Validator sets (SM2 key, ed25519 consensus key, power), their updates and the header commitment to them."""

from __future__ import annotations

import copy
import hashlib
import struct

import pytest

from shancheng.sdk.chainproof import (
    HEADER_COMMITMENT_DOMAIN,
    VALIDATOR_SET_DOMAIN,
    GenesisFile,
    Validator,
    ValidatorSet,
    ValidatorSetError,
    ValidatorUpdate,
    header_commitment,
)
from shancheng.sdk.crypto import SM2PrivateKey, sm3
from shancheng.sdk.errors import InvalidInput

KEYS = [SM2PrivateKey.generate().public_key() for _ in range(5)]
CONSENSUS = [hashlib.sha256(b"consensus %d" % i).digest() for i in range(5)]


def _set(*indexes: int, power: int = 1) -> ValidatorSet:
    return ValidatorSet(tuple(Validator(KEYS[i], CONSENSUS[i], power, f"node-{i}") for i in indexes))


def _update(i: int, power: int) -> ValidatorUpdate:
    return ValidatorUpdate(KEYS[i].to_bytes()[1:], CONSENSUS[i], power)


def test_encoding_is_the_documented_layout_and_the_hash_is_its_sm3():
    vs = ValidatorSet((Validator(KEYS[0], CONSENSUS[0], 3), Validator(KEYS[1], CONSENSUS[1], 1 << 40)))
    expected = (
        b"shancheng/validator-set/v1" + struct.pack(">I", 2)
        + KEYS[0].to_bytes()[1:] + CONSENSUS[0] + (3).to_bytes(8, "big")
        + KEYS[1].to_bytes()[1:] + CONSENSUS[1] + (1 << 40).to_bytes(8, "big")
    )
    assert VALIDATOR_SET_DOMAIN == b"shancheng/validator-set/v1"
    assert vs.encode() == expected and vs.hash() == sm3(expected)
    assert vs.total_power() == 3 + (1 << 40) and vs.powers() == [3, 1 << 40] and vs.sm2_keys() == KEYS[:2]


def test_order_power_and_keys_change_the_hash_and_names_do_not():
    base = _set(0, 1, 2)
    assert _set(1, 0, 2).hash() != base.hash()
    assert _set(0, 1, 2, power=2).hash() != base.hash()
    renamed = ValidatorSet(tuple(Validator(v.sm2_key, v.consensus_key, v.power, "x") for v in base.validators))
    assert renamed.hash() == base.hash() and renamed == base
    other_consensus = ValidatorSet((Validator(KEYS[0], CONSENSUS[3], 1), *base.validators[1:]))
    assert other_consensus.hash() != base.hash()


def test_header_commitment_binds_the_current_and_the_after_next_set():
    a, b = _set(0, 1, 2, 3), _set(0, 1, 2, 3, 4)
    assert header_commitment(a, b) == sm3(b"shancheng/validators/v1" + a.hash() + b.hash())
    assert HEADER_COMMITMENT_DOMAIN == b"shancheng/validators/v1"
    assert len({header_commitment(a, a), header_commitment(a, b), header_commitment(b, a)}) == 3


def test_consensus_address_is_cometbfts_sha256_prefix():
    vs = _set(0, 1, 2)
    assert vs.validators[1].consensus_address() == hashlib.sha256(CONSENSUS[1]).digest()[:20]
    assert vs.index_by_consensus_address(hashlib.sha256(CONSENSUS[2]).digest()[:20]) == 2
    assert vs.index_by_consensus_address(b"\0" * 20) is None


def test_from_genesis_keeps_the_genesis_order_keys_and_powers():
    genesis = GenesisFile.from_json({
        "format": "shancheng-genesis", "version": 1, "chain_id": 7, "timestamp": 1, "gas_limit": 30_000_000,
        "validators": [
            {"name": f"node-{i}", "public_key": KEYS[i].to_bytes().hex(), "consensus_key": "0x" + CONSENSUS[i].hex(),
             **({"power": i} if i else {})}
            for i in (3, 0, 2)
        ],
        "organisations": [], "deployer": "0x" + "22" * 20,
        "system_contracts": {"Governance": "0x" + "33" * 20, "EvidenceRegistry": "0x" + "44" * 20},
        "artifacts_hash": "ab" * 32, "genesis_hash": "0x" + "55" * 32,
    })
    vs = ValidatorSet.from_genesis(genesis)
    assert vs.sm2_keys() == [KEYS[3], KEYS[0], KEYS[2]]
    assert [(v.consensus_key, v.power, v.name) for v in vs.validators] == [
        (CONSENSUS[3], 3, "node-3"), (CONSENSUS[0], 1, "node-0"), (CONSENSUS[2], 2, "node-2")
    ]


def test_apply_removes_updates_and_appends_in_order():
    base = _set(0, 1, 2, 3)
    after = base.apply([_update(1, 0), _update(4, 5), _update(3, 9)])
    assert after.sm2_keys() == [KEYS[0], KEYS[2], KEYS[3], KEYS[4]]
    assert after.powers() == [1, 1, 9, 5]
    assert after.validators[2].name == "node-3"  # a power change keeps the entry
    assert base.apply([]) == base
    # a removed key may come back (appended at the end)
    assert base.apply([_update(0, 0), _update(0, 2)]).sm2_keys() == [KEYS[1], KEYS[2], KEYS[3], KEYS[0]]


@pytest.mark.parametrize(
    ("updates", "reason"),
    [
        ([_update(4, 0)], "not in the set"),
        ([_update(0, 0), _update(1, 0)], "would leave the set empty"),
        ([ValidatorUpdate(KEYS[0].to_bytes()[1:], CONSENSUS[4], 2)], "changes a validator's consensus key"),
        ([ValidatorUpdate(KEYS[0].to_bytes()[1:], CONSENSUS[4], 0)], "under another consensus key"),
        ([ValidatorUpdate(KEYS[4].to_bytes()[1:], CONSENSUS[1], 1)], "consensus key another validator holds"),
        ([ValidatorUpdate(b"\x01" * 64, CONSENSUS[4], 1)], "validator update"),
    ],
    ids=["remove-absent", "remove-all", "change-consensus-key", "remove-with-other-key", "reuse-consensus-key",
         "off-curve-key"],
)
def test_apply_refuses_what_cannot_be_applied(updates, reason):
    with pytest.raises(ValidatorSetError, match=reason):
        _set(0, 1).apply(updates)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"sm2_key": b"\x01" * 63}, "64 bytes"),
        ({"consensus_key": b"\x01" * 31}, "32-byte"),
        ({"consensus_key": bytes(32)}, "must not be zero"),
        ({"power": -1}, "power must be"),
        ({"power": (1 << 40) + 1}, "power must be"),
        ({"power": True}, "power must be"),
    ],
)
def test_malformed_updates_are_refused(kwargs, reason):
    fields = {"sm2_key": KEYS[0].to_bytes()[1:], "consensus_key": CONSENSUS[0], "power": 1, **kwargs}
    with pytest.raises(ValidatorSetError, match=reason):
        ValidatorUpdate(**fields)


def test_a_set_is_never_empty_oversized_or_with_a_key_twice():
    with pytest.raises(ValidatorSetError, match="1 .. 1024"):
        ValidatorSet(())
    with pytest.raises(ValidatorSetError, match="same SM2 key twice"):
        ValidatorSet((Validator(KEYS[0], CONSENSUS[0], 1), Validator(KEYS[0], CONSENSUS[1], 1)))
    with pytest.raises(ValidatorSetError, match="same consensus key twice"):
        ValidatorSet((Validator(KEYS[0], CONSENSUS[0], 1), Validator(KEYS[1], CONSENSUS[0], 1)))
    with pytest.raises(ValidatorSetError, match="power must be"):
        Validator(KEYS[0], CONSENSUS[0], 0)
    one = Validator(KEYS[0], CONSENSUS[0], 1)
    with pytest.raises(ValidatorSetError, match="1 .. 1024"):
        ValidatorSet((one,) * 1025)
    assert issubclass(ValidatorSetError, InvalidInput)


def test_json_round_trip():
    vs = _set(0, 1, 2, power=7)
    doc = vs.to_json()
    assert doc[0] == {"public_key": KEYS[0].to_bytes().hex(), "consensus_key": "0x" + CONSENSUS[0].hex(),
                      "power": 7, "name": "node-0"}
    assert ValidatorSet.from_json(doc) == vs and ValidatorSet.from_json(doc).hash() == vs.hash()
    unnamed = [{k: v for k, v in e.items() if k != "name"} for e in doc]
    assert ValidatorSet.from_json(unnamed).hash() == vs.hash()


def _with(index: int, field: str, value: object) -> list[dict]:
    doc = copy.deepcopy(_set(0, 1, 2).to_json())
    if value is KeyError:
        del doc[index][field]
    else:
        doc[index][field] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({}, "validators: must be a list of 1 .. 1024"),
        ([], "validators: must be a list of 1 .. 1024"),
        ([_set(0).to_json()[0]] * 1025, "validators: must be a list of 1 .. 1024"),
        (["x"], r"validators\[0\]: must be an object"),
        (_with(1, "extra", 1), r"validators\[1\]: unknown field 'extra'"),
        (_with(1, "power", KeyError), r"validators\[1\]: missing field 'power'"),
        (_with(1, "power", 0), r"validators\[1\]: validator: power must be"),
        (_with(1, "power", (1 << 40) + 1), r"validators\[1\]: validator: power must be"),
        (_with(1, "power", 1 << 41), r"validators\[1\].power"),
        (_with(1, "power", "1"), r"validators\[1\].power"),
        (_with(1, "public_key", "04" + "00" * 64), r"validators\[1\].public_key"),
        (_with(1, "public_key", KEYS[1].to_bytes()[1:].hex()), r"validators\[1\].public_key: must be an uncomp"),
        (_with(1, "public_key", KEYS[1].to_bytes().hex() + "\n"), r"validators\[1\].public_key: must be an uncomp"),
        (_with(1, "consensus_key", "0x" + "01" * 33), r"validators\[1\].consensus_key must be 0x and 64"),
        (_with(1, "consensus_key", "0x" + "00" * 32), "must not be zero"),
        (_with(1, "consensus_key", "0x" + CONSENSUS[0].hex()), "same consensus key twice"),
        (_with(1, "public_key", KEYS[0].to_bytes().hex()), "same SM2 key twice"),
        (_with(1, "name", "n" * 257), r"validators\[1\].name"),
    ],
)
def test_from_json_is_strict(doc, reason):
    with pytest.raises(ValidatorSetError, match=reason):
        ValidatorSet.from_json(doc)
