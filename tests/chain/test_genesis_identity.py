"""Hole 9 on the node: a genesis file whose contents were changed while its ``genesis_hash`` was kept is
refused by ``Ledger.open`` on a real LevelDB, whether the database is fresh, already initialised, or was
initialised before fingerprints were stored; blocks are certified with the genesis fingerprint (hole 5)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from shancheng.chain.committed import _META_FINGERPRINT
from shancheng.chain.genesis import Genesis, GenesisError, GenesisOrganisation, GenesisValidator
from shancheng.chain.ledger import Ledger
from shancheng.chain.storage import LevelDB
from shancheng.nodes.producer import SoloProducer
from shancheng.sdk.chainproof import CommitError, GenesisFile
from shancheng.sdk.crypto import SM2PrivateKey

NODE = SM2PrivateKey.generate()
ATTACKER = SM2PrivateKey.generate()


@pytest.fixture(scope="module")
def genesis() -> Genesis:
    return Genesis.create(
        chain_id=4243,
        timestamp=int(time.time()) - 1000,
        validators=[GenesisValidator("node-1", NODE.public_key(), b"\x01" * 32)],
        organisations=[GenesisOrganisation("Hospital A", 1, SM2PrivateKey.generate().public_key(), (b"\x11" * 20,))],
    )


def _validator_key(doc: dict[str, Any]) -> None:
    doc["validators"][0]["public_key"] = ATTACKER.public_key().to_bytes().hex()


def _timestamp(doc: dict[str, Any]) -> None:
    doc["timestamp"] += 1


def _org_name(doc: dict[str, Any]) -> None:
    doc["organisations"][0]["name"] = "Hospital A (forged)"


TAMPERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "validator-key": _validator_key, "timestamp": _timestamp, "org-name": _org_name,
}


def _tampered(genesis: Genesis, tamper: Callable[[dict[str, Any]], None]) -> Genesis:
    doc = genesis.to_json()
    tamper(doc)
    assert doc["genesis_hash"] == "0x" + genesis.genesis_hash.hex()  # the attacker keeps the original hash
    forged = Genesis.from_json(doc)  # well-formed: only the node's checks can catch it
    assert forged.fingerprint != genesis.fingerprint
    return forged


@pytest.mark.parametrize("tamper", TAMPERS.values(), ids=TAMPERS.keys())
def test_fresh_database_refuses_a_tampered_genesis_with_the_original_hash(genesis, tamper, tmp_path):
    """Hole 9: the genesis hash the node recomputes from the file's contents differs from the file's."""
    with pytest.raises(GenesisError, match="computes genesis hash 0x[0-9a-f]{64} from the genesis file"):
        Ledger.open(tmp_path / "db", _tampered(genesis, tamper))
    ledger = Ledger.open(tmp_path / "db", genesis)  # nothing was written by the refused attempt
    assert ledger.head.hash == genesis.genesis_hash
    ledger.close()


@pytest.mark.parametrize("tamper", TAMPERS.values(), ids=TAMPERS.keys())
def test_existing_database_refuses_a_tampered_genesis_by_its_fingerprint(genesis, tamper, tmp_path):
    """Hole 9: a database initialised from the real file pins its fingerprint; a doctored file is refused."""
    Ledger.open(tmp_path / "db", genesis).close()
    forged = _tampered(genesis, tamper)
    with pytest.raises(GenesisError) as err:
        Ledger.open(tmp_path / "db", forged)
    assert str(err.value) == (
        "this node's database was initialised from another genesis file "
        f"(fingerprint 0x{genesis.fingerprint.hex()} ≠ 0x{forged.fingerprint.hex()})"
    )
    Ledger.open(tmp_path / "db", genesis).close()


def test_a_renamed_validator_is_another_genesis_file_for_an_existing_database(genesis, tmp_path):
    """Hole 9: fields outside the genesis state (a validator's name) are pinned by the fingerprint too."""
    Ledger.open(tmp_path / "db", genesis).close()
    doc = genesis.to_json()
    doc["validators"][0]["name"] = "node-evil"
    with pytest.raises(GenesisError, match="initialised from another genesis file"):
        Ledger.open(tmp_path / "db", Genesis.from_json(doc))


@pytest.mark.parametrize("tamper", TAMPERS.values(), ids=TAMPERS.keys())
def test_database_without_a_stored_fingerprint_checks_the_file_then_pins_it(genesis, tamper, tmp_path):
    """Hole 9: a database initialised before fingerprints were stored only knew the genesis hash; the node
    rebuilds the state the file implies before pinning the file's fingerprint."""
    Ledger.open(tmp_path / "db", genesis).close()
    with LevelDB(tmp_path / "db") as db:
        del db[_META_FINGERPRINT]
    with pytest.raises(GenesisError, match="computes genesis hash"):
        Ledger.open(tmp_path / "db", _tampered(genesis, tamper))
    Ledger.open(tmp_path / "db", genesis).close()  # the genuine file passes and is pinned
    with LevelDB(tmp_path / "db") as db:
        assert db.get(_META_FINGERPRINT) == genesis.fingerprint
    with pytest.raises(GenesisError, match="initialised from another genesis file"):
        Ledger.open(tmp_path / "db", _tampered(genesis, tamper))


def test_blocks_are_certified_for_this_genesis_only(genesis, tmp_path):
    """Hole 5: the node signs its genesis fingerprint; the certificate fails for another chain that has the
    same chain id and the same validator."""
    other = Genesis.create(
        chain_id=genesis.chain_id, timestamp=genesis.timestamp + 5, validators=list(genesis.validators),
        organisations=list(genesis.organisations),
    )
    ledger = Ledger.open(tmp_path / "db", genesis)
    try:
        SoloProducer(ledger, NODE).build_block([])
        cert = ledger.commit_certificate(1)
    finally:
        ledger.close()
    assert cert is not None and cert.to_json()["version"] == 2
    sdk_view = GenesisFile.load(genesis.dumps())
    assert cert.chain_identity == sdk_view.fingerprint == genesis.fingerprint
    cert.verify(sdk_view.validator_keys, chain_id=sdk_view.chain_id, chain_identity=sdk_view.fingerprint)
    assert other.validators == genesis.validators and other.chain_id == genesis.chain_id
    with pytest.raises(CommitError, match="is for another chain"):
        cert.verify(sdk_view.validator_keys, chain_id=other.chain_id, chain_identity=other.fingerprint)
