"""Canonical JSON, commitments and record statements."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shancheng.sdk.crypto import SM2PrivateKey, sm3
from shancheng.sdk.errors import CommitmentMismatch, InvalidInput, InvalidSignature
from shancheng.sdk.records import (
    MAX_RECORD_SIZE,
    SCHEME_HMAC,
    SCHEME_SALTED,
    Commitment,
    RecordStatement,
    canonical_json,
    commit_hmac,
    commit_salted,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def test_canonical_json_follows_rfc_8785():
    # RFC 8785 §3.2.2/3.2.3: keys sorted by UTF-16 code units, no whitespace, ES6 number forms.
    assert canonical_json({"b": 1, "a": [1.0, 1e21, 0.000001, "\u20ac"]}) == '{"a":[1,1e+21,0.000001,"€"],"b":1}'.encode()
    # U+20AC sorts before U+1F600, whose UTF-16 form starts with the surrogate 0xD83D.
    assert canonical_json({"\U0001f600": 2, "\u20ac": 1, "a": 3}) == '{"a":3,"€":1,"😀":2}'.encode()
    assert canonical_json({"z": {"y": None, "x": True}}) == b'{"z":{"x":true,"y":null}}'


@given(json_values)
def test_canonical_json_is_independent_of_key_order(value):
    if isinstance(value, dict):
        reordered = dict(reversed(list(value.items())))
        assert canonical_json(value) == canonical_json(reordered)


def test_canonical_json_refuses_what_json_cannot_say():
    for bad in (float("nan"), {"x": float("inf")}, {1: "int key"}, {"b": b"bytes"}):
        with pytest.raises(InvalidInput):
            canonical_json(bad)
    with pytest.raises(InvalidInput, match="larger than"):
        canonical_json({"blob": "x" * MAX_RECORD_SIZE})


def test_salted_commitment_is_the_documented_recipe():
    record = {"rx": "RX1", "days": 3}
    salt = bytes(range(16))
    commitment, returned_salt = commit_salted(record, salt=salt)
    expected = sm3(b"shancheng/commitment/sm3-salted/v1\x00" + bytes([16]) + salt + canonical_json(record))
    assert returned_salt == salt and commitment == Commitment(SCHEME_SALTED, expected)


def test_salted_commitments_hide_equal_records_and_verify():
    record = {"patient": "张三", "rx": "RX1"}
    a, salt_a = commit_salted(record)
    b, salt_b = commit_salted(record)
    assert len(salt_a) >= 16 and salt_a != salt_b and a.value != b.value
    a.verify({"rx": "RX1", "patient": "张三"}, salt=salt_a)
    with pytest.raises(CommitmentMismatch):
        a.verify(record, salt=salt_b)
    with pytest.raises(CommitmentMismatch):
        a.verify({**record, "rx": "RX2"}, salt=salt_a)
    with pytest.raises(InvalidInput, match="needs the record's salt"):
        a.verify(record)
    with pytest.raises(InvalidInput):
        commit_salted(record, salt=b"short")


def test_hmac_commitment_needs_the_org_key():
    key = b"k" * 32
    c = commit_hmac({"x": 1}, key=key)
    assert c.scheme == SCHEME_HMAC
    c.verify({"x": 1}, key=key)
    with pytest.raises(CommitmentMismatch):
        c.verify({"x": 1}, key=b"j" * 32)
    with pytest.raises(InvalidInput):
        commit_hmac({"x": 1}, key=b"short")


def test_commitment_json_round_trip_and_validation():
    c, _ = commit_salted({"x": 1})
    assert Commitment.from_json(c.to_json()) == c
    for bad in ({"scheme": "md5", "value": "00" * 32}, {"scheme": SCHEME_SALTED, "value": "AB" * 32},
                {"scheme": SCHEME_SALTED}, {"scheme": SCHEME_SALTED, "value": "00" * 32, "x": 1}):
        with pytest.raises(InvalidInput):
            Commitment.from_json(bad)


def test_record_statement_signature_binds_context():
    key = SM2PrivateKey.generate()
    c, _ = commit_salted({"reading": 38.2})
    st_ = RecordStatement(kind="hj212-reading", source="MN-1", sequence=7, commitment=c)
    assert st_.to_bytes().startswith(b"shancheng/record/v1\n")
    signed = st_.sign(key)
    signed.verify()
    for other in (
        RecordStatement(kind="hj212-reading", source="MN-1", sequence=8, commitment=c),
        RecordStatement(kind="hj212-reading", source="MN-2", sequence=7, commitment=c),
        RecordStatement(kind="prescription", source="MN-1", sequence=7, commitment=c),
    ):
        forged = type(signed)(other, signed.author, signed.signature)
        with pytest.raises(InvalidSignature):
            forged.verify()
    assert RecordStatement.from_json(st_.to_json()) == st_


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "Bad Kind"},
        {"kind": ""},
        {"source": ""},
        {"source": "x" * 200},
        {"source": "tab\there"},
        {"sequence": -1},
        {"sequence": True},
        {"sequence": 2**63},
    ],
)
def test_record_statement_rejects_bad_context(kwargs):
    c, _ = commit_salted({"x": 1})
    base = {"kind": "prescription", "source": "hosp-1", "sequence": 0, "commitment": c}
    with pytest.raises(InvalidInput):
        RecordStatement(**{**base, **kwargs})
