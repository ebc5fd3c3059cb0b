"""The genesis file is parsed strictly: it is the offline verifier's trust anchor."""

from __future__ import annotations

import copy
import json

import pytest

from shancheng.sdk.chainproof import GenesisError, GenesisFile
from shancheng.sdk.crypto import SM2PrivateKey

VALIDATORS = [SM2PrivateKey.generate().public_key() for _ in range(4)]
CONSENSUS = [bytes([0xA1 + i]) * 32 for i in range(4)]
ORG_KEY = SM2PrivateKey.generate().public_key()
GOOD = {
    "format": "shancheng-genesis",
    "version": 1,
    "chain_id": 20251124,
    "timestamp": 1764000000,
    "gas_limit": 30000000,
    "validators": [
        {"name": f"node-{i}", "public_key": v.to_bytes().hex(), "consensus_key": "0x" + CONSENSUS[i].hex(), "power": i + 1}
        for i, v in enumerate(VALIDATORS)
    ],
    "organisations": [{"name": "Hospital A", "roles": 1, "public_key": ORG_KEY.to_bytes().hex(),
                       "accounts": ["0x" + "11" * 20]}],
    "peers": ["aa" * 20, "0123456789abcdef0123456789abcdef01234567"],
    "deployer": "0x" + "22" * 20,
    "system_contracts": {"Governance": "0x" + "33" * 20, "EvidenceRegistry": "0x" + "44" * 20},
    "artifacts_hash": "ab" * 32,
    "genesis_hash": "0x" + "55" * 32,
}


def test_a_good_genesis_loads_from_text_path_and_bytes(tmp_path):
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(GOOD))
    for source in (json.dumps(GOOD), path, str(path), path.read_bytes()):
        g = GenesisFile.load(source)
        assert g.chain_id == 20251124 and g.validator_keys == tuple(VALIDATORS)
        assert [(v.consensus_key, v.power) for v in g.validators] == [(CONSENSUS[i], i + 1) for i in range(4)]
        assert g.evidence_registry == b"\x44" * 20 and g.governance == b"\x33" * 20
        assert g.genesis_hash == b"\x55" * 32 and g.organisations[0].accounts == (b"\x11" * 20,)


def _set(path, value):
    doc = copy.deepcopy(GOOD)
    target = doc
    for p in path[:-1]:
        target = target[p]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (("format",), "x", "$.format"),
        (("version",), 2, "genesis version 1"),
        (("chain_id",), -1, "$.chain_id"),
        (("chain_id",), "1", "$.chain_id"),
        (("validators",), [], "$.validators: must be a list of 1.."),
        (("validators", 1, "public_key"), "04" + "00" * 64, "$.validators[1].public_key"),
        (("validators", 1, "public_key"), VALIDATORS[0].to_bytes().hex(), "listed twice"),
        (("validators", 0, "extra"), 1, "$.validators[0]: unknown field 'extra'"),
        (("validators", 0, "consensus_key"), KeyError, "$.validators[0]: missing field 'consensus_key'"),
        (("validators", 0, "consensus_key"), "0x" + "01" * 31, "$.validators[0].consensus_key must be 0x and 64"),
        (("validators", 0, "consensus_key"), "01" * 32, "$.validators[0].consensus_key must be 0x and 64"),
        (("validators", 0, "consensus_key"), "0x" + "00" * 32, "$.validators[0].consensus_key: must not be zero"),
        (("validators", 2, "consensus_key"), "0x" + CONSENSUS[0].hex(), "$.validators[2].consensus_key: the same consensus"),
        (("validators", 0, "power"), 0, "$.validators[0].power: must be 1 .. 2^40"),
        (("validators", 0, "power"), (1 << 40) + 1, "$.validators[0].power"),
        (("validators", 0, "power"), True, "$.validators[0].power"),
        (("validators", 0, "power"), 1.0, "$.validators[0].power"),
        (("validators", 0, "node_id"), "AA" * 20, "$.validators[0].node_id: must be a CometBFT node id"),
        (("validators", 0, "node_id"), "00" * 20, "$.validators[0].node_id: must not be zero"),
        (("organisations", 0, "accounts", 0), "0x12", "$.organisations[0].accounts[0]"),
        (("organisations", 0, "roles"), True, "$.organisations[0].roles"),
        (("system_contracts",), {"Governance": "0x" + "33" * 20}, "missing 'EvidenceRegistry'"),
        (("system_contracts", "EvidenceRegistry"), "0x44", "$.system_contracts.EvidenceRegistry"),
        (("genesis_hash",), "55" * 32, "$.genesis_hash"),
        (("artifacts_hash",), "zz", "$.artifacts_hash"),
        (("deployer",), KeyError, "missing field 'deployer'"),
        (("surprise",), 1, "unknown field 'surprise'"),
        (("peers",), "aa" * 20, "$.peers: must be a list of 0..1024"),
        (("peers",), ["aa" * 20] * 1025, "$.peers: must be a list of 0..1024"),
        (("peers", 1), "AA" * 20, "$.peers[1]: must be a CometBFT node id, 40 lowercase hex digits"),
        (("peers", 1), "0x" + "bb" * 19, "$.peers[1]: must be a CometBFT node id"),
        (("peers", 1), "bb" * 19, "$.peers[1]: must be a CometBFT node id"),
        (("peers", 1), "bb" * 20 + "\n", "$.peers[1]: must be a CometBFT node id"),
        (("peers", 1), 1, "$.peers[1]: must be a CometBFT node id"),
        (("peers", 1), "aa" * 20, "$.peers[1]: the same node id is listed twice"),
        (("peers", 1), "00" * 20, "$.peers[1]: must not be zero"),
    ],
)
def test_every_bad_field_is_refused_with_its_path(path, value, reason):
    with pytest.raises(GenesisError) as err:
        GenesisFile.from_json(_set(path, value))
    assert reason in str(err.value)


def test_validator_power_defaults_to_one_and_is_in_the_fingerprint():
    implicit = _set(("validators", 0, "power"), KeyError)
    parsed = GenesisFile.from_json(implicit)
    assert parsed.validators[0].power == 1
    assert parsed.canonical_json()["validators"][0]["power"] == 1
    assert parsed.fingerprint == _fingerprint(GOOD)  # GOOD lists power 1 for node-0 explicitly
    assert GenesisFile.from_json(_set(("validators", 0, "power"), 1 << 40)).validators[0].power == 1 << 40


def test_peers_default_to_none_and_are_in_the_fingerprint():
    parsed = GenesisFile.from_json(GOOD)
    assert parsed.peers == (b"\xaa" * 20, bytes.fromhex("0123456789abcdef0123456789abcdef01234567"))
    absent = GenesisFile.from_json(_set(("peers",), KeyError))
    assert absent.peers == () and absent.canonical_json()["peers"] == []
    assert absent.fingerprint == _fingerprint(_set(("peers",), []))  # an absent list is the empty list
    assert absent.fingerprint != parsed.fingerprint


def test_unreadable_and_oversized_files(tmp_path):
    with pytest.raises(GenesisError, match="cannot read genesis file"):
        GenesisFile.load(tmp_path / "missing.json")
    with pytest.raises(GenesisError, match="not valid JSON"):
        GenesisFile.load("{nope")
    with pytest.raises(GenesisError, match="larger than"):
        GenesisFile.load(b"{" + b" " * (1 << 20) + b"}")


def test_the_nodes_genesis_writer_and_the_sdk_reader_agree():
    # the node writes genesis.json (shancheng.chain.genesis); the offline verifier reads it with the SDK alone
    from shancheng.chain.genesis import Genesis, GenesisOrganisation, GenesisValidator

    written = Genesis.create(
        chain_id=20251124, timestamp=1764000000,
        validators=[GenesisValidator("node-1", VALIDATORS[0], CONSENSUS[0], 5, b"\xbb" * 20)],
        organisations=[GenesisOrganisation("Hospital A", 1, ORG_KEY, (b"\x11" * 20,))],
        peers=[b"\xaa" * 20],
    )
    read = GenesisFile.load(written.dumps())
    assert read.peers == written.peers == (b"\xaa" * 20,)
    assert read.genesis_hash == written.genesis_hash and read.validator_keys == (VALIDATORS[0],)
    assert (read.validators[0].consensus_key, read.validators[0].power) == (CONSENSUS[0], 5)
    assert read.validators[0].node_id == b"\xbb" * 20
    assert read.evidence_registry == written.system_contracts["EvidenceRegistry"]
    assert read.governance == written.system_contracts["Governance"]
    assert read.fingerprint == written.fingerprint == GenesisFile.load(json.dumps(written.to_json())).fingerprint


# -- the fingerprint: the chain's identity (hole 9) ----------------------------------------------------------

def _fingerprint(doc) -> bytes:
    return GenesisFile.from_json(doc).fingerprint


def test_fingerprint_is_sm3_over_the_jcs_canonical_document():
    import rfc8785

    from shancheng.sdk.crypto import sm3

    canonical = copy.deepcopy(GOOD)
    g = GenesisFile.from_json(GOOD)
    assert g.canonical_json() == canonical  # GOOD is already in normal form
    expected = sm3(b"shancheng/genesis-fingerprint/v1\n" + rfc8785.dumps(canonical))
    assert g.fingerprint == expected and len(expected) == 32
    assert g.fingerprint_hex == "0x" + expected.hex()


def test_fingerprint_ignores_formatting_key_order_and_hex_case(tmp_path):
    base = _fingerprint(GOOD)
    shuffled = json.loads(json.dumps(GOOD), object_pairs_hook=lambda pairs: dict(reversed(pairs)))
    upper = copy.deepcopy(GOOD)
    upper["validators"][0]["public_key"] = upper["validators"][0]["public_key"].upper()
    upper["validators"][1]["consensus_key"] = "0x" + CONSENSUS[1].hex().upper()
    upper["organisations"][0]["accounts"][0] = "0x" + "AB" * 20
    lower = copy.deepcopy(GOOD)
    lower["organisations"][0]["accounts"][0] = "0x" + "ab" * 20
    upper["deployer"] = "0x" + "2A" * 20
    lower["deployer"] = "0x" + "2a" * 20
    upper["genesis_hash"] = "0x" + "5F" * 32
    lower["genesis_hash"] = "0x" + "5f" * 32
    upper["artifacts_hash"] = "0x" + "AB" * 32  # with or without 0x
    upper["system_contracts"]["Governance"] = "0x" + "3C" * 20
    lower["system_contracts"]["Governance"] = "0x" + "3c" * 20
    assert _fingerprint(shuffled) == base
    assert _fingerprint(upper) == _fingerprint(lower) != base
    path = tmp_path / "g.json"
    path.write_text(json.dumps(GOOD, indent=7, sort_keys=True).replace("\n", "\r\n  "))
    assert GenesisFile.load(path).fingerprint == base
    assert GenesisFile.load(json.dumps(GOOD, separators=(",", ":"))).fingerprint == base


ATTACKER_KEY = SM2PrivateKey.generate().public_key()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("validators", 0, "public_key"), ATTACKER_KEY.to_bytes().hex()),  # the attacker's validator key
        (("validators", 0, "name"), "node-x"),
        (("validators", 0, "consensus_key"), "0x" + "09" * 32),
        (("validators", 0, "power"), 2),
        (("timestamp",), 1764000001),
        (("chain_id",), 20251125),
        (("gas_limit",), 30000001),
        (("organisations", 0, "name"), "Hospital B"),
        (("organisations", 0, "roles"), 3),
        (("organisations", 0, "public_key"), ATTACKER_KEY.to_bytes().hex()),
        (("organisations", 0, "accounts", 0), "0x" + "12" * 20),
        (("organisations", 0, "accounts"), ["0x" + "11" * 20, "0x" + "12" * 20]),
        (("organisations",), []),
        (("deployer",), "0x" + "23" * 20),
        (("system_contracts", "EvidenceRegistry"), "0x" + "45" * 20),
        (("system_contracts", "DrugTrace"), "0x" + "46" * 20),
        (("artifacts_hash",), "ac" * 32),
        (("genesis_hash",), "0x" + "56" * 32),
        (("peers", 0), "ab" * 20),  # an attacker's node let in
        (("peers",), ["aa" * 20]),
        (("peers",), ["0123456789abcdef0123456789abcdef01234567", "aa" * 20]),  # order
    ],
)
def test_every_genesis_field_changes_the_fingerprint(path, value):
    """Hole 9: a genesis file with a replaced field (e.g. the attacker's validator key) and the original
    genesis_hash kept must not pass as the same chain: its fingerprint differs."""
    assert _fingerprint(_set(path, value)) != _fingerprint(GOOD)


def test_validator_and_organisation_order_change_the_fingerprint():
    """Hole 9: the validator index is a position in the list, so reordering is a different chain."""
    doc = copy.deepcopy(GOOD)
    doc["validators"][0], doc["validators"][1] = doc["validators"][1], doc["validators"][0]
    assert _fingerprint(doc) != _fingerprint(GOOD)
    two = _set(("organisations",), GOOD["organisations"] + [
        {"name": "Pharmacy", "roles": 2, "public_key": ATTACKER_KEY.to_bytes().hex(), "accounts": []}])
    swapped = _set(("organisations",), list(reversed(two["organisations"])))
    assert _fingerprint(two) != _fingerprint(swapped)


def test_fingerprint_of_integers_beyond_the_exact_json_range():
    # RFC 8785 writes numbers as doubles; 63-bit chain ids and 256-bit role masks still have one canonical form
    big = _set(("chain_id",), (1 << 62) + 1)
    assert GenesisFile.from_json(big).canonical_json()["chain_id"] == str((1 << 62) + 1)
    assert _fingerprint(big) != _fingerprint(_set(("chain_id",), (1 << 62) + 2))
    roles = _set(("organisations", 0, "roles"), (1 << 255) | 1)
    assert _fingerprint(roles) != _fingerprint(_set(("organisations", 0, "roles"), (1 << 255) | 2))


def test_duplicate_keys_in_a_genesis_file_are_refused():
    text = json.dumps(GOOD)[:-1] + ', "chain_id": 7}'
    with pytest.raises(GenesisError, match="duplicate key 'chain_id'"):
        GenesisFile.load(text)


def test_certificate_resigned_for_a_genesis_with_a_replaced_validator_key_is_refused():
    """Hole 9: an attacker swaps the validator key in genesis.json (keeping genesis_hash) and re-signs the
    commit certificate with their key.  Against the published genesis the certificate fails whichever identity
    it claims; with the doctored file the fingerprint is not the published one, which the auditor compares."""
    from shancheng.sdk.chainproof import CommitCertificate, CommitError

    real, attacker = SM2PrivateKey.generate(), SM2PrivateKey.generate()
    published = GenesisFile.from_json(_set(("validators",), [{"name": "node-1", "consensus_key": "0x" + "01" * 32,
                                                               "public_key": real.public_key().to_bytes().hex()}]))
    doctored = GenesisFile.from_json(_set(("validators",), [{"name": "node-1", "consensus_key": "0x" + "01" * 32,
                                                              "public_key": attacker.public_key().to_bytes().hex()}]))
    assert doctored.genesis_hash == published.genesis_hash
    assert doctored.fingerprint_hex != published.fingerprint_hex
    for claimed in (doctored.fingerprint, published.fingerprint):
        forged = CommitCertificate.sign(chain_identity=claimed, chain_id=published.chain_id, height=3, round_=0,
                                        block_hash=b"\x07" * 32, signers=[(0, attacker)], timestamp_ms=1)
        with pytest.raises(CommitError):
            forged.verify(published.validator_keys, chain_id=published.chain_id,
                          chain_identity=published.fingerprint)
    genuine = CommitCertificate.sign(chain_identity=published.fingerprint, chain_id=published.chain_id, height=3,
                                     round_=0, block_hash=b"\x07" * 32, signers=[(0, real)], timestamp_ms=1)
    genuine.verify(published.validator_keys, chain_id=published.chain_id, chain_identity=published.fingerprint)
