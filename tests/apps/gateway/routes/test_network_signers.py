"""The network view reads each block's certificate against that block's own validator set: after a validator is
added and another removed, signer indexes name the right validators (genesis names; a validator added later by its
key's address, never by a name the node's answer carries), an index beyond the set is shown as such and counts no power."""

from __future__ import annotations

from shancheng.apps.gateway.routes.network import _verified, signed_by, validators_out
from shancheng.chain.genesis import Genesis, GenesisOrganisation, GenesisValidator
from shancheng.sdk.chainproof import CommitCertificate, GenesisFile, Validator, ValidatorSet
from shancheng.sdk.evidence.chain import ValidatorHistory
from shancheng.testing import CHAIN_ID, deterministic_consensus_key, deterministic_sm2_key

KEYS = [deterministic_sm2_key(f"netview:{i}") for i in range(6)]
CONSENSUS = [deterministic_consensus_key(f"netview:{i}") for i in range(6)]


def genesis() -> GenesisFile:
    hospital = GenesisOrganisation("hospital", 1, deterministic_sm2_key("netview:org").public_key(), (b"\x01" * 20,))
    made = Genesis.create(chain_id=CHAIN_ID, timestamp=1_700_000_000, organisations=[hospital],
                          validators=[GenesisValidator(f"node-{i}", KEYS[i].public_key(), CONSENSUS[i])
                                      for i in range(4)])
    return GenesisFile.from_json(made.to_json())


def certificate(g: GenesisFile, height: int, signers: list[int], keys: list[int]) -> CommitCertificate:
    return CommitCertificate.sign(chain_identity=g.fingerprint, chain_id=g.chain_id, height=height, round_=0,
                                  block_hash=bytes([height]) * 32, timestamp_ms=height * 1000,
                                  signers=[(i, KEYS[k]) for i, k in zip(signers, keys, strict=True)])


def test_signers_are_named_against_their_own_blocks_set() -> None:
    g = genesis()
    first = ValidatorSet.from_genesis(g)
    later = ValidatorSet((*first.validators[1:], Validator(KEYS[4].public_key(), CONSENSUS[4], 2),
                          Validator(KEYS[5].public_key(), CONSENSUS[5], 1, "lab-node")))
    history = ValidatorHistory(((0, first), (6, later)))

    before = validators_out(history.at(5), g)
    assert [v.name for v in before] == ["node-0", "node-1", "node-2", "node-3"]
    assert signed_by(certificate(g, 5, [0, 1, 2], [0, 1, 2]), before) == ([0, 1, 2], ["node-0", "node-1", "node-2"],
                                                                          3, 4)
    after = validators_out(history.at(6), g)
    address = KEYS[4].public_key().sm3_address().hex()[:12]
    other = KEYS[5].public_key().sm3_address().hex()[:12]  # the set's own name for it is not certified: not shown
    assert [v.name for v in after] == ["node-1", "node-2", "node-3", f"validator 0x{address}", f"validator 0x{other}"]
    assert [v.power for v in after] == [1, 1, 1, 2, 1]
    # index 0 is node-1 now (node-0 was removed): read against the genesis set it would be named node-0
    assert signed_by(certificate(g, 6, [0, 3, 4], [1, 4, 5]), after) == (
        [0, 3, 4], ["node-1", f"validator 0x{address}", f"validator 0x{other}"], 4, 6)
    assert signed_by(certificate(g, 6, [0, 7], [1, 2]), after) == ([0, 7], ["node-1", "#7"], 1, 6)
    assert signed_by(None, after) == ([], [], 0, 6)


def test_a_nodes_certificate_is_verified_before_its_signers_are_shown() -> None:
    g = genesis()
    validators = ValidatorSet.from_genesis(g)
    good = certificate(g, 9, [0, 1, 2], [0, 1, 2])
    block_hash = "0x" + good.block_hash.hex()
    assert _verified(good.to_json(), 9, block_hash, validators, g) == (good, None)
    assert _verified(None, 9, block_hash, validators, g) == (None, None)  # not stored yet: pending, no error

    forged = certificate(g, 9, [0, 1, 2], [3, 4, 5])  # indexes of node-0..2, keys of others
    cert, error = _verified(forged.to_json(), 9, block_hash, validators, g)
    assert cert is None and error is not None and "signature" in error
    too_few = certificate(g, 9, [0, 1], [0, 1])
    cert, error = _verified(too_few.to_json(), 9, block_hash, validators, g)
    assert cert is None and error is not None and "2 of 4" in error
    cert, error = _verified(good.to_json(), 10, "0x" + "ab" * 32, validators, g)  # another block's certificate
    assert cert is None and error is not None and "not block 10" in error
    cert, error = _verified({"height": "x"}, 9, block_hash, validators, g)
    assert cert is None and error
