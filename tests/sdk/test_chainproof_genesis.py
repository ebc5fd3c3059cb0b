"""The genesis file is parsed strictly: it is the offline verifier's trust anchor."""

from __future__ import annotations

import copy
import json

import pytest

from shancheng.sdk.chainproof import GenesisError, GenesisFile
from shancheng.sdk.crypto import SM2PrivateKey

VALIDATORS = [SM2PrivateKey.generate().public_key() for _ in range(4)]
ORG_KEY = SM2PrivateKey.generate().public_key()
GOOD = {
    "format": "shancheng-genesis",
    "version": 1,
    "chain_id": 20251124,
    "timestamp": 1764000000,
    "gas_limit": 30000000,
    "validators": [{"name": f"node-{i}", "public_key": v.to_bytes().hex()} for i, v in enumerate(VALIDATORS)],
    "organisations": [{"name": "Hospital A", "roles": 1, "public_key": ORG_KEY.to_bytes().hex(),
                       "accounts": ["0x" + "11" * 20]}],
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
        (("organisations", 0, "accounts", 0), "0x12", "$.organisations[0].accounts[0]"),
        (("organisations", 0, "roles"), True, "$.organisations[0].roles"),
        (("system_contracts",), {"Governance": "0x" + "33" * 20}, "missing 'EvidenceRegistry'"),
        (("system_contracts", "EvidenceRegistry"), "0x44", "$.system_contracts.EvidenceRegistry"),
        (("genesis_hash",), "55" * 32, "$.genesis_hash"),
        (("artifacts_hash",), "zz", "$.artifacts_hash"),
        (("deployer",), KeyError, "missing field 'deployer'"),
        (("surprise",), 1, "unknown field 'surprise'"),
    ],
)
def test_every_bad_field_is_refused_with_its_path(path, value, reason):
    with pytest.raises(GenesisError) as err:
        GenesisFile.from_json(_set(path, value))
    assert reason in str(err.value)


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
        validators=[GenesisValidator("node-1", VALIDATORS[0])],
        organisations=[GenesisOrganisation("Hospital A", 1, ORG_KEY, (b"\x11" * 20,))],
    )
    read = GenesisFile.load(written.dumps())
    assert read.genesis_hash == written.genesis_hash and read.validator_keys == (VALIDATORS[0],)
    assert read.evidence_registry == written.system_contracts["EvidenceRegistry"]
    assert read.governance == written.system_contracts["Governance"]
