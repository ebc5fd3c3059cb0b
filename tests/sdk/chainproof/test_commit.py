"""Commit certificates (format v2): SM2 precommit signatures of more than two thirds of the validators,
bound to the chain's identity (the genesis fingerprint)."""

from __future__ import annotations

import json

import pytest

from shancheng.sdk.chainproof import CommitCertificate, CommitError, precommit_message, quorum
from shancheng.sdk.crypto import SM2PrivateKey, sm3
from shancheng.sdk.errors import InvalidInput

CHAIN = 20251124
IDENTITY = sm3(b"genesis A")  # the genesis fingerprint of chain A
OTHER = sm3(b"genesis B")  # another chain's, same chain id and validators
BLOCK = bytes(range(32))
KEYS = [SM2PrivateKey.generate() for _ in range(4)]
PUBS = [k.public_key() for k in KEYS]


def _cert(signers, *, chain_id=CHAIN, height=12, block=BLOCK, identity=IDENTITY) -> CommitCertificate:
    return CommitCertificate.sign(chain_identity=identity, chain_id=chain_id, height=height, round_=0,
                                  block_hash=block, signers=signers, timestamp_ms=1_764_000_012_345)


def _verify(cert: CommitCertificate, pubs=PUBS, *, chain_id=CHAIN, identity=IDENTITY) -> None:
    cert.verify(pubs, chain_id=chain_id, chain_identity=identity)


def test_quorum_is_more_than_two_thirds():
    assert [quorum(n) for n in (1, 2, 3, 4, 7, 10)] == [1, 2, 3, 3, 5, 7]
    with pytest.raises(InvalidInput):
        quorum(0)


def test_one_validator_signs_alone():
    _verify(_cert([(0, KEYS[0])]), PUBS[:1])
    with pytest.raises(CommitError, match="does not verify"):
        _verify(_cert([(0, KEYS[1])]), PUBS[:1])


def test_three_of_four_pass_and_two_of_four_fail():
    _verify(_cert([(0, KEYS[0]), (1, KEYS[1]), (3, KEYS[3])]))
    _verify(_cert([(i, KEYS[i]) for i in range(4)]))
    with pytest.raises(CommitError, match="commit has 2 of 4 validator signatures; 3 are needed"):
        _verify(_cert([(0, KEYS[0]), (2, KEYS[2])]))


def test_a_duplicate_signer_does_not_count_twice():
    with pytest.raises(CommitError, match="validator 1 signed the commit twice"):
        _verify(_cert([(0, KEYS[0]), (1, KEYS[1]), (1, KEYS[1])]))


def test_wrong_chain_id_and_unknown_index_fail():
    cert = _cert([(i, KEYS[i]) for i in range(3)])
    with pytest.raises(CommitError, match=f"is for chain {CHAIN}, not 7"):
        _verify(cert, chain_id=7)
    # a certificate relabelled to another chain no longer verifies its signatures
    forged = CommitCertificate.from_json({**cert.to_json(), "chain_id": 7})
    with pytest.raises(CommitError, match="does not verify"):
        _verify(forged, chain_id=7)
    with pytest.raises(CommitError, match="unknown validator index 4"):
        _verify(_cert([(0, KEYS[0]), (1, KEYS[1]), (4, KEYS[2])]))


def test_signatures_bind_height_and_block():
    cert = _cert([(i, KEYS[i]) for i in range(3)])
    for change in ({"height": 13}, {"block_hash": "0x" + "ee" * 32}, {"round": 1}):
        with pytest.raises(CommitError, match="does not verify"):
            _verify(CommitCertificate.from_json({**cert.to_json(), **change}))


def test_certificate_of_chain_a_does_not_verify_for_chain_b_with_same_id_and_validators():
    """Hole 5: validators did not sign the chain's identity, so chain A's certificate passed for chain B."""
    cert_a = _cert([(i, KEYS[i]) for i in range(4)])
    _verify(cert_a)  # genuine on chain A
    with pytest.raises(CommitError, match="is for another chain: it binds genesis fingerprint 0x"):
        _verify(cert_a, identity=OTHER)
    # relabelling the certificate with chain B's identity breaks every signature: the identity is signed
    relabelled = CommitCertificate.from_json({**cert_a.to_json(), "chain_identity": "0x" + OTHER.hex()})
    with pytest.raises(CommitError, match="precommit signature of validator 0 at height 12 does not verify"):
        _verify(relabelled, identity=OTHER)


def test_the_signed_message_binds_the_chain_identity():
    """Hole 5: M must change with the chain identity and nothing else may stand in for it."""
    args = (CHAIN, 12, 0, BLOCK, 1_764_000_012_345)
    m_a = precommit_message(*args, chain_identity=IDENTITY)
    assert m_a != precommit_message(*args, chain_identity=OTHER)
    packed = (IDENTITY + CHAIN.to_bytes(8, "big") + (12).to_bytes(8, "big") + (0).to_bytes(4, "big") + BLOCK
              + (1_764_000_012_345).to_bytes(8, "big"))
    assert m_a == sm3(b"shancheng/precommit/v2" + packed)
    with pytest.raises(InvalidInput, match="32 bytes"):
        precommit_message(*args, chain_identity=IDENTITY[:31])
    with pytest.raises(TypeError):
        precommit_message(*args)  # type: ignore[call-arg]  # the identity is required


def test_verify_requires_chain_id_and_chain_identity():
    cert = _cert([(i, KEYS[i]) for i in range(3)])
    with pytest.raises(TypeError):
        cert.verify(PUBS, chain_id=CHAIN)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        cert.verify(PUBS, chain_identity=IDENTITY)  # type: ignore[call-arg]


def test_v1_certificate_json_is_refused():
    """Hole 5: a v1 certificate (no chain identity signed) must not be accepted in any form."""
    v2 = _cert([(i, KEYS[i]) for i in range(3)]).to_json()
    v1 = {k: v for k, v in v2.items() if k not in ("version", "chain_identity")}
    message = "commit certificate format v1 is no longer accepted (it does not bind the chain identity)"
    for old in (v1, {**v1, "version": 1}, {**v2, "version": 1}):
        with pytest.raises(CommitError) as err:
            CommitCertificate.from_json(old)
        assert str(err.value) == message
    for bad in (True, 3, "2", 2.0):
        with pytest.raises(InvalidInput, match="is not supported"):
            CommitCertificate.from_json({**v2, "version": bad})


def test_json_round_trip_and_strict_parsing():
    cert = _cert([(i, KEYS[i]) for i in range(3)])
    doc = cert.to_json()
    assert doc["version"] == 2 and doc["chain_identity"] == "0x" + IDENTITY.hex()
    assert list(doc) == ["version", "chain_identity", "chain_id", "height", "round", "block_hash", "signatures"]
    again = CommitCertificate.from_json(json.loads(json.dumps(doc)))
    assert again == cert
    _verify(again)
    with pytest.raises(InvalidInput):
        CommitCertificate.from_json({**doc, "extra": 1})
    with pytest.raises(InvalidInput, match="needs 1..1024 signatures"):
        CommitCertificate.from_json({**doc, "signatures": []})
    for bad in ("0x" + "ab" * 31, IDENTITY.hex(), "0x" + IDENTITY.hex() + "\n", 5):
        with pytest.raises(InvalidInput, match="chain_identity must be 0x and 64 hex digits"):
            CommitCertificate.from_json({**doc, "chain_identity": bad})
    with pytest.raises(InvalidInput, match="round must be below 2"):
        CommitCertificate.from_json({**doc, "round": 1 << 32})


# -- voting power ----------------------------------------------------------------------------------------------

def _verify_powers(cert: CommitCertificate, powers, pubs=PUBS) -> None:
    cert.verify(pubs, chain_id=CHAIN, chain_identity=IDENTITY, powers=powers)


def test_with_powers_more_than_two_thirds_of_the_power_is_needed():
    heavy = [10, 1, 1, 1]  # total 13: 3 * signed > 26 needs 9 or more
    _verify_powers(_cert([(0, KEYS[0])]), heavy)  # one heavy signer: 10 of 13
    with pytest.raises(CommitError, match="signed by 3 of 4 validators with 3 of 13 voting power"):
        _verify_powers(_cert([(1, KEYS[1]), (2, KEYS[2]), (3, KEYS[3])]), heavy)  # three of four by count
    exact = [2, 1, 1, 2]  # total 6: 4 of 6 is exactly two thirds, not more
    with pytest.raises(CommitError, match="4 of 6 voting power; more than two thirds"):
        _verify_powers(_cert([(0, KEYS[0]), (1, KEYS[1]), (2, KEYS[2])]), exact)
    _verify_powers(_cert([(0, KEYS[0]), (1, KEYS[1]), (3, KEYS[3])]), exact)  # 5 of 6


def test_equal_powers_give_the_count_rule():
    for n in range(1, 5):
        for signed in range(1, n + 1):
            cert = _cert([(i, KEYS[i]) for i in range(signed)])
            for power in (1, 7):
                if signed >= quorum(n):
                    _verify_powers(cert, [power] * n, PUBS[:n])
                else:
                    with pytest.raises(CommitError, match=f"{quorum(n)} are needed"):
                        _verify_powers(cert, [power] * n, PUBS[:n])


def test_a_duplicate_signer_does_not_add_power_twice():
    with pytest.raises(CommitError, match="validator 0 signed the commit twice"):
        _verify_powers(_cert([(0, KEYS[0]), (0, KEYS[0])]), [3, 1, 1, 1])


@pytest.mark.parametrize("powers", [[1, 1, 1], [1, 1, 1, 0], [1, 1, 1, -1], [1, 1, 1, True], [1, 1, 1, 1.0]])
def test_powers_must_match_the_validators(powers):
    with pytest.raises(InvalidInput, match="powers must give a positive integer power"):
        _verify_powers(_cert([(i, KEYS[i]) for i in range(4)]), powers)
