"""Commit certificates: SM2 precommit signatures of more than two thirds of the validators."""

from __future__ import annotations

import json

import pytest

from shancheng.sdk.chainproof import CommitCertificate, CommitError, quorum
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import InvalidInput

CHAIN = 20251124
BLOCK = bytes(range(32))
KEYS = [SM2PrivateKey.generate() for _ in range(4)]
PUBS = [k.public_key() for k in KEYS]


def _cert(signers, *, chain_id=CHAIN, height=12, block=BLOCK) -> CommitCertificate:
    return CommitCertificate.sign(chain_id=chain_id, height=height, round_=0, block_hash=block,
                                  signers=signers, timestamp_ms=1_764_000_012_345)


def test_quorum_is_more_than_two_thirds():
    assert [quorum(n) for n in (1, 2, 3, 4, 7, 10)] == [1, 2, 3, 3, 5, 7]
    with pytest.raises(InvalidInput):
        quorum(0)


def test_one_validator_signs_alone():
    cert = _cert([(0, KEYS[0])])
    cert.verify(PUBS[:1], chain_id=CHAIN)
    with pytest.raises(CommitError, match="does not verify"):
        _cert([(0, KEYS[1])]).verify(PUBS[:1], chain_id=CHAIN)


def test_three_of_four_pass_and_two_of_four_fail():
    _cert([(0, KEYS[0]), (1, KEYS[1]), (3, KEYS[3])]).verify(PUBS, chain_id=CHAIN)
    _cert([(i, KEYS[i]) for i in range(4)]).verify(PUBS, chain_id=CHAIN)
    with pytest.raises(CommitError, match="commit has 2 of 4 validator signatures; 3 are needed"):
        _cert([(0, KEYS[0]), (2, KEYS[2])]).verify(PUBS, chain_id=CHAIN)


def test_a_duplicate_signer_does_not_count_twice():
    with pytest.raises(CommitError, match="validator 1 signed the commit twice"):
        _cert([(0, KEYS[0]), (1, KEYS[1]), (1, KEYS[1])]).verify(PUBS, chain_id=CHAIN)


def test_wrong_chain_id_and_unknown_index_fail():
    cert = _cert([(i, KEYS[i]) for i in range(3)])
    with pytest.raises(CommitError, match=f"is for chain {CHAIN}, not 7"):
        cert.verify(PUBS, chain_id=7)
    # a certificate relabelled to another chain no longer verifies its signatures
    forged = CommitCertificate.from_json({**cert.to_json(), "chain_id": 7})
    with pytest.raises(CommitError, match="does not verify"):
        forged.verify(PUBS, chain_id=7)
    with pytest.raises(CommitError, match="unknown validator index 4"):
        _cert([(0, KEYS[0]), (1, KEYS[1]), (4, KEYS[2])]).verify(PUBS, chain_id=CHAIN)


def test_signatures_bind_height_and_block():
    cert = _cert([(i, KEYS[i]) for i in range(3)])
    for change in ({"height": 13}, {"block_hash": "0x" + "ee" * 32}, {"round": 1}):
        with pytest.raises(CommitError, match="does not verify"):
            CommitCertificate.from_json({**cert.to_json(), **change}).verify(PUBS, chain_id=CHAIN)


def test_json_round_trip_and_strict_parsing():
    cert = _cert([(i, KEYS[i]) for i in range(3)])
    again = CommitCertificate.from_json(json.loads(json.dumps(cert.to_json())))
    assert again == cert
    again.verify(PUBS, chain_id=CHAIN)
    with pytest.raises(InvalidInput):
        CommitCertificate.from_json({**cert.to_json(), "extra": 1})
    with pytest.raises(InvalidInput, match="needs 1..1024 signatures"):
        CommitCertificate.from_json({**cert.to_json(), "signatures": []})
