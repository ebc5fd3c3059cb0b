"""The ledger keeps, in each block's batch, which committed heights have no commit certificate yet, so a network
node finds the lowest ones to sign late with one short range read: a block committed without its certificate is
listed until a later commit (or ``store_certificate``) stores it; a solo block, certified in its own batch, never
is."""

from __future__ import annotations

import time

import pytest

from shancheng.chain.genesis import Genesis, GenesisOrganisation, GenesisValidator
from shancheng.nodes.producer import SoloProducer
from shancheng.sdk.chainproof import CommitCertificate
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import InvalidInput

CHAIN_ID = 4343
NODE = SM2PrivateKey.generate()


@pytest.fixture(scope="module")
def genesis() -> Genesis:
    return Genesis.create(chain_id=CHAIN_ID, timestamp=int(time.time()) - 1000,
                          validators=[GenesisValidator("node-1", NODE.public_key(), b"\x01" * 32)],
                          organisations=[GenesisOrganisation("Hospital", 1, SM2PrivateKey.generate().public_key(),
                                                             (b"\x03" * 20,))])


def certificate_of(ledger, height: int) -> CommitCertificate:
    return CommitCertificate.sign(chain_identity=ledger.fingerprint, chain_id=CHAIN_ID, height=height, round_=0,
                                  block_hash=bytes(ledger.header_by_number(height).hash), signers=[(0, NODE)],
                                  timestamp_ms=int(time.time() * 1000))


def commit_empty(ledger, certificates=None):
    height = ledger.latest_number() + 1
    outcome = ledger.apply_block([], height=height, timestamp=int(time.time()) + height, proposer=b"\x02" * 20)
    ledger.commit(outcome, certificates=certificates or {})


def test_heights_committed_without_a_certificate_are_listed_until_one_is_stored(ledger):
    SoloProducer(ledger, NODE).build_block([])  # solo: certified in the block's own batch
    assert ledger.uncertified_heights(10) == []
    for _ in range(4):
        commit_empty(ledger)  # blocks 2..5, none certified yet
    assert ledger.uncertified_heights(10) == [2, 3, 4, 5]
    assert ledger.uncertified_heights(2) == [2, 3]  # the lowest first
    assert ledger.uncertified_heights(0) == []
    commit_empty(ledger, {5: certificate_of(ledger, 5), 3: certificate_of(ledger, 3)})  # block 6 carries two
    assert ledger.uncertified_heights(10) == [2, 4, 6]
    ledger.store_certificate(4, certificate_of(ledger, 4))
    assert ledger.uncertified_heights(10) == [2, 6]
    with pytest.raises(InvalidInput):
        ledger.commit(ledger.apply_block([], height=7, timestamp=int(time.time()) + 7, proposer=b"\x02" * 20),
                      certificates={2: certificate_of(ledger, 3)})  # a certificate of another block
    assert ledger.uncertified_heights(10) == [2, 6] and ledger.latest_number() == 6
