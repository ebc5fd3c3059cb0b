"""Issue 8's evidence attacks, each written as the attacker would try it, against a real node process (LevelDB,
commit certificates bound to the genesis fingerprint) and the offline verifier with the genesis file alone.

Holes closed here: 1 (a forged package verifies), 2 (one org passes off anchors as another's log),
4 (authors and sequences never checked), 5 (a package from another chain verifies), 9 (the genesis file does not
pin its contents; the transaction hash is never checked)."""

from __future__ import annotations

import base64
import copy
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak
from web3 import Web3

from shancheng.nodes.devnet import anchor_batch, dev_client, wait_for_rpc
from shancheng.sdk.chainproof import CommitCertificate, GenesisFile
from shancheng.sdk.client import Client
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.domain import StaffRole, register_staff
from shancheng.sdk.errors import InvalidInput, VerificationError
from shancheng.sdk.evidence import (
    ChainProofError,
    EvidenceBatch,
    EvidencePackage,
    UntrustedPackage,
    verify_package,
)
from shancheng.sdk.merkle import NoteSigner
from shancheng.sdk.records import RecordStatement, commit_salted
from shancheng.testing import free_port

pytestmark = pytest.mark.network

ORIGIN = "district.example/log/hosp-001"


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "shancheng.sdk.cli", *args], capture_output=True, text=True,
                         timeout=timeout, check=False)
    assert "Traceback" not in out.stderr, out.stderr
    return out


class World:
    """A dev node with a hospital log anchored; builds packages for the attacks. Each organisation is an SDK
    client, as the gateway and ``shancheng dev`` are."""

    def __init__(self, home: Path, url: str) -> None:
        self.home = home
        self.genesis = GenesisFile.load(home / "genesis.json")
        self.hospital = dev_client(url, home, "hospital")
        self.pharmacy = dev_client(url, home, "pharmacy")

    def register_staff(self, org: Client, key: SM2PrivateKey, roles: int = StaffRole.DOCTOR) -> None:
        assert register_staff(org, key, roles).status == 1

    def deactivate_staff(self, org: Client, key: SM2PrivateKey) -> None:
        staff = key.public_key().sm3_address()
        assert org.send(org.governance.call("deactivateStaff", staff), check=False).status == 1

    def log(self, org: Client, origin: str, authors: list[SM2PrivateKey]) -> EvidenceBatch:
        batch = EvidenceBatch(origin=origin, signer=NoteSigner("district.example/gw", org.identity.sm2_key))
        for author in authors:
            commitment, _ = commit_salted({"hosp_rxno": f"RX{batch.size:04d}"})
            batch.add(RecordStatement("prescription", origin, batch.size, commitment).sign(author))
        batch.checkpoint()
        return batch

    def anchored_package(self, org: Client, batch: EvidenceBatch, index: int) -> dict[str, Any]:
        """``org`` anchors ``batch`` now; package ``index`` of it with that chain part (the state proof covers
        ``org`` and the package's author)."""
        return json.loads(org.attach_chain_proof(batch.package(index), anchor_batch(org, batch)).dumps())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    home = tmp_path_factory.mktemp("trust") / "node"
    assert cli("node", "init", "--dev", "--home", str(home)).returncode == 0
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shancheng.sdk.cli", "node", "start", "--home", str(home), "--rpc-port", str(port),
         "--ws-port", str(free_port()), "--block-interval", "0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_rpc(f"http://127.0.0.1:{port}", proc)
        world = World(home, f"http://127.0.0.1:{port}")
        yield world
        world.hospital.close()
        world.pharmacy.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def good(world):
    """A genuine package: the hospital's log, a record by one of its active doctors."""
    doctor = SM2PrivateKey.generate()
    world.register_staff(world.hospital, doctor)
    batch = world.log(world.hospital, ORIGIN, [doctor, world.hospital.identity.sm2_key, doctor])
    return {"package": world.anchored_package(world.hospital, batch, 0), "batch": batch, "doctor": doctor}


def _verify(world: World, package: dict[str, Any], **kw: Any) -> Any:
    return verify_package(json.dumps(package), genesis=kw.pop("genesis", world.genesis), **kw)


def test_a_genuine_package_names_the_org_author_block_and_chain(world, good):
    result = _verify(world, good["package"])
    assert result.anchor is not None and result.trust_root == "genesis"
    summary = result.summary()
    assert summary.startswith("OK prescription " + ORIGIN + "#0")
    assert "log owned by 'hospital' (org 1)" in summary
    assert f"author: staff 0x{good['doctor'].public_key().sm3_address().hex()} of 'hospital'" in summary
    assert f"chain 0x{world.genesis.fingerprint.hex()}" in summary


# ----------------------------------------------------------------------------------------------- hole 1
def test_a_package_without_chain_proofs_is_invalid_with_the_genesis(world, tmp_path):
    """An attacker's own author and checkpoint keys under the real gateway's name, `chain: null`."""
    attacker = SM2PrivateKey.generate()
    batch = EvidenceBatch(origin=ORIGIN, signer=NoteSigner("district.example/gw", attacker))
    batch.add(RecordStatement("prescription", ORIGIN, 0, commit_salted({"x": 1})[0]).sign(attacker))
    forged = batch.package(0).dumps()
    with pytest.raises(ChainProofError, match="has no chain proofs"):
        verify_package(forged, genesis=world.genesis)
    with pytest.raises(UntrustedPackage, match="no trust root"):
        verify_package(forged)
    path = tmp_path / "forged.json"
    path.write_text(forged)
    out = cli("evidence", "verify", str(path), "--genesis", str(world.home / "genesis.json"), "--json")
    assert out.returncode == 1 and json.loads(out.stdout)["valid"] is False
    assert cli("evidence", "verify", str(path)).returncode == 2
    # the debugging escape hatch says what it is
    unsafe = cli("evidence", "verify", str(path), "--unsafe-trust-package-checkpoint-key", "--json")
    assert unsafe.returncode == 0 and json.loads(unsafe.stdout)["unsafe"] is True
    assert json.loads(unsafe.stdout)["summary"].startswith("UNSAFE")
    # a pinned key that is not the attacker's refuses it
    real = NoteSigner("district.example/gw", world.hospital.identity.sm2_key).verifier.to_vkey()
    pinned = cli("evidence", "verify", str(path), "--checkpoint-key", real)
    assert pinned.returncode == 1 and "not signed by a trusted key" in pinned.stderr


# ----------------------------------------------------------------------------------------------- hole 2
def test_another_org_anchoring_the_same_origin_gets_its_own_source(world, good):
    """The pharmacy anchors a batch claiming the hospital's log name: it is the pharmacy's log, named as such,
    and the hospital's next anchor still works (no squatting)."""
    fake = world.log(world.pharmacy, ORIGIN, [world.pharmacy.identity.sm2_key])
    package = world.anchored_package(world.pharmacy, fake, 0)
    assert package["chain"]["anchor"]["source_id"] != good["package"]["chain"]["anchor"]["source_id"]
    summary = _verify(world, package).summary()
    assert "log owned by 'pharmacy'" in summary and "'hospital'" not in summary
    more = world.log(world.hospital, ORIGIN, [good["doctor"]] * 4)
    assert anchor_batch(world.hospital, more).sequence >= 1


def test_a_package_cannot_borrow_another_orgs_anchor(world, good):
    """The pharmacy anchors the hospital's own checkpoint root under the hospital's origin and grafts that chain
    part onto the hospital's package: the checkpoint signer is not the pharmacy's registered key."""
    batch = good["batch"]
    grafted = world.anchored_package(world.pharmacy, batch, 0)  # the doctor's record, the pharmacy's anchor
    with pytest.raises(ChainProofError, match="checkpoint signer's key is not the registered SM2 key of 'pharmacy'"):
        _verify(world, grafted)


def test_a_claimed_source_id_must_be_the_anchoring_orgs(world, good):
    pkg = copy.deepcopy(good["package"])
    pkg["chain"]["anchor"]["source_id"] = "0x" + keccak(b"another source").hex()
    with pytest.raises(ChainProofError, match="no BatchAnchored log for source"):
        _verify(world, pkg)


# ----------------------------------------------------------------------------------------------- hole 4
def test_a_made_up_author_key_is_refused(world):
    stranger = SM2PrivateKey.generate()
    batch = world.log(world.hospital, "district.example/log/hosp-002", [stranger])
    with pytest.raises(ChainProofError, match="neither the key of 'hospital' nor a staff key"):
        _verify(world, world.anchored_package(world.hospital, batch, 0))


def test_a_deactivated_staff_key_is_refused(world):
    nurse = SM2PrivateKey.generate()
    world.register_staff(world.hospital, nurse)
    world.deactivate_staff(world.hospital, nurse)
    batch = world.log(world.hospital, "district.example/log/hosp-003", [nurse])
    with pytest.raises(ChainProofError, match="was not active at the anchoring block"):
        _verify(world, world.anchored_package(world.hospital, batch, 0))


def test_another_orgs_staff_key_is_refused(world):
    pharmacist = SM2PrivateKey.generate()
    world.register_staff(world.pharmacy, pharmacist)
    batch = world.log(world.hospital, "district.example/log/hosp-004", [pharmacist])
    with pytest.raises(ChainProofError, match=f"staff key of org {world.pharmacy.org_id}, not of 'hospital'"):
        _verify(world, world.anchored_package(world.hospital, batch, 0))


def _resign(statement: dict[str, Any], key: SM2PrivateKey) -> str:
    return base64.b64encode(RecordStatement.from_json(statement).sign(key).signature).decode()


def test_two_records_with_one_number_cannot_both_verify(world, good):
    """A log with two statements numbered #7: the batcher refuses it, and a hand-built tree is refused by the
    verifier (the sequence must be the leaf index)."""
    batch = EvidenceBatch(origin=ORIGIN, signer=NoteSigner("gw", world.hospital.identity.sm2_key))
    commitment = commit_salted({"x": 1})[0]
    with pytest.raises(InvalidInput, match="is not the next leaf index"):
        batch.add(RecordStatement("prescription", ORIGIN, 7, commitment).sign(good["doctor"]))
    pkg = copy.deepcopy(good["package"])
    pkg["record"]["sequence"] = 7  # re-signed by the author, but the leaf index is 0
    pkg["author"]["signature"] = _resign(pkg["record"], good["doctor"])
    with pytest.raises(VerificationError, match="record sequence 7 is not its leaf index 0"):
        _verify(world, pkg)


def test_a_record_of_another_log_is_refused(world, good):
    pkg = copy.deepcopy(good["package"])
    pkg["record"]["source"] = "district.example/log/other"
    pkg["author"]["signature"] = _resign(pkg["record"], good["doctor"])
    with pytest.raises(VerificationError, match="is not the checkpoint's log"):
        _verify(world, pkg)


def test_another_staff_member_cannot_claim_authorship(world, good):
    """A second active doctor of the same hospital re-signs the first doctor's statement: the leaf binds the
    author key, so the inclusion proof fails."""
    other = SM2PrivateKey.generate()
    world.register_staff(world.hospital, other)
    pkg = copy.deepcopy(good["package"])
    statement = RecordStatement.from_json(pkg["record"])
    stolen = EvidencePackage(record=statement.sign(other), inclusion=EvidencePackage.from_json(pkg).inclusion,
                             checkpoint_note=pkg["checkpoint"]["note"], checkpoint_signer=pkg["checkpoint"]["signer"],
                             chain=pkg["chain"])
    with pytest.raises(VerificationError, match="inclusion proof: root mismatch"):
        _verify(world, json.loads(stolen.dumps()))


# ----------------------------------------------------------------------------------------------- hole 5
def _other_chain(world: World, **changes: Any) -> GenesisFile:
    doc = json.loads((world.home / "genesis.json").read_text())
    doc.update(changes)
    return GenesisFile.from_json(doc)


def test_a_package_from_another_chain_with_the_same_validators_is_refused(world, good):
    other = _other_chain(world, timestamp=world.genesis.timestamp + 1)  # same chain id and validators
    assert other.chain_id == world.genesis.chain_id and other.validator_keys == world.genesis.validator_keys
    with pytest.raises(ChainProofError, match="the package is for the chain 0x"):
        _verify(world, good["package"], genesis=other)
    relabelled = copy.deepcopy(good["package"])
    relabelled["chain"]["chain_identity"] = "0x" + other.fingerprint.hex()
    with pytest.raises(VerificationError, match="commit certificate is for another chain"):
        _verify(world, relabelled, genesis=other)


# ----------------------------------------------------------------------------------------------- hole 9
@pytest.mark.parametrize("field", ["validator key", "timestamp", "organisation name"])
def test_a_genesis_file_edited_with_its_hash_kept_is_refused(world, good, field):
    doc = json.loads((world.home / "genesis.json").read_text())
    attacker = SM2PrivateKey.generate()
    if field == "validator key":
        doc["validators"][0]["public_key"] = attacker.public_key().to_bytes().hex()
    elif field == "timestamp":
        doc["timestamp"] += 60
    else:
        doc["organisations"][0]["name"] = "Hospital of the attacker"
    edited = GenesisFile.from_json(doc)
    assert edited.genesis_hash == world.genesis.genesis_hash and edited.fingerprint != world.genesis.fingerprint
    with pytest.raises(ChainProofError, match="the package is for the chain"):
        _verify(world, good["package"], genesis=edited)
    if field == "validator key":
        # the attacker re-signs the certificate with their key, over the edited file's fingerprint
        pkg = copy.deepcopy(good["package"])
        cert = CommitCertificate.from_json(pkg["chain"]["commit_certificate"])
        pkg["chain"]["chain_identity"] = "0x" + edited.fingerprint.hex()
        pkg["chain"]["commit_certificate"] = CommitCertificate.sign(
            chain_identity=edited.fingerprint, chain_id=cert.chain_id, height=cert.height, round_=cert.round,
            block_hash=cert.block_hash, signers=[(0, attacker)], timestamp_ms=cert.signatures[0].timestamp_ms,
        ).to_json()
        # the block's header commits to the validator set that really certified it, not the edited file's
        with pytest.raises(ChainProofError, match="extra_data does not commit to the validator sets"):
            _verify(world, pkg, genesis=edited)
        # and the fingerprint is not the published one: pinning it refuses the file first
        with pytest.raises(ChainProofError, match="not the pinned"):
            _verify(world, pkg, genesis=edited, genesis_fingerprint=world.genesis.fingerprint)


def test_the_anchoring_transaction_hash_is_proven(world, good):
    pkg = copy.deepcopy(good["package"])
    tx = bytearray(bytes.fromhex(pkg["chain"]["anchor"]["transaction_hash"][2:]))
    tx[5] ^= 1
    pkg["chain"]["anchor"]["transaction_hash"] = "0x" + tx.hex()
    with pytest.raises(ChainProofError, match="as the package claims"):
        _verify(world, pkg)


def test_the_cli_prints_and_pins_the_fingerprint(world, good, tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(good["package"]))
    genesis = str(world.home / "genesis.json")
    ok = cli("evidence", "verify", str(path), "--genesis", genesis, "--genesis-fingerprint",
             world.genesis.fingerprint.hex(), "--json")
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["anchor"]["chain_identity"] == "0x" + world.genesis.fingerprint.hex()
    assert out["anchor"]["organisation"] == {"id": world.hospital.org_id, "name": "hospital"}
    wrong = cli("evidence", "verify", str(path), "--genesis", genesis, "--genesis-fingerprint", "ab" * 32)
    assert wrong.returncode == 1 and "not the pinned" in wrong.stderr


# --------------------------------------------------------------------------------- other tampering
def _flip(hex_str: str, byte: int) -> str:
    raw = bytearray(bytes.fromhex(hex_str[2:]))
    raw[byte] ^= 1
    return "0x" + raw.hex()


def _mutations(world: World, good: dict[str, Any]) -> list[tuple[str, Any, str]]:
    def chain(f: Any) -> Any:
        def apply(pkg: dict[str, Any]) -> None:
            f(pkg["chain"])
        return apply

    def drop_slot(c: dict[str, Any]) -> None:
        c["state_proof"]["storageProof"].pop()

    def wrong_value(c: dict[str, Any]) -> None:
        c["state_proof"]["storageProof"][0]["value"] = "0x1"

    return [
        ("transaction byte", chain(lambda c: c["transaction_proof"].update(
            transaction=_flip(c["transaction_proof"]["transaction"], 3))), "transaction"),
        ("state proof slot missing", chain(drop_slot), "does not cover"),
        ("state proof wrong value", chain(wrong_value), "holds"),
        ("state proof node", chain(lambda c: c["state_proof"]["accountProof"].__setitem__(
            0, _flip(c["state_proof"]["accountProof"][0], 5))), "account proof"),
        ("state proof of another account", chain(lambda c: c["state_proof"].update(
            address=Web3.to_checksum_address(world.genesis.evidence_registry))), "account proof"),
        ("validator changes", chain(lambda c: c.update(validator_changes=[{}])), "missing field 'certificate'"),
        ("commit certificate v1", chain(lambda c: c["commit_certificate"].pop("version")), "format v1"),
        ("header byte", chain(lambda c: c["receipt_proof"].update(header=_flip(c["receipt_proof"]["header"], 9))),
         "header hashes to"),
    ]


def test_tampering_with_any_proof_is_refused(world, good):
    for name, mutate, reason in _mutations(world, good):
        pkg = copy.deepcopy(good["package"])
        mutate(pkg)
        with pytest.raises(VerificationError) as err:
            _verify(world, pkg)
        assert reason in str(err.value), (name, str(err.value))


def test_a_v1_package_is_refused_with_a_clear_reason(world, good):
    pkg = copy.deepcopy(good["package"])
    pkg["version"] = 1
    with pytest.raises(VerificationError, match="format v1 is no longer accepted"):
        _verify(world, pkg)
