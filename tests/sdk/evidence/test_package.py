"""Evidence packages: build, verify, and refuse every kind of tampering with the right reason."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import (
    CommitmentMismatch,
    InvalidInput,
    InvalidProof,
    InvalidSignature,
    RootMismatchError,
    VerificationError,
)
from shancheng.sdk.evidence import EvidenceBatch, EvidencePackage, PackageError, UntrustedPackage, verify_package
from shancheng.sdk.merkle import CheckpointError, NoteSigner
from shancheng.sdk.records import RecordStatement, commit_hmac, commit_salted

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "docs" / "evidence-package-v2.schema.json").read_text())
AUTHOR = SM2PrivateKey.generate()
GATEWAY = NoteSigner("district.example/gw-1", SM2PrivateKey.generate())
RECORDS = [{"hosp_rxno": f"RX{i:04d}", "valid_days": 3} for i in range(5)]
ORIGIN = "district.example/log/hosp-001"
PINNED = [GATEWAY.verifier]


@pytest.fixture(scope="module")
def built():
    batch = EvidenceBatch(origin=ORIGIN, signer=GATEWAY)
    salts = []
    for i, record in enumerate(RECORDS):
        commitment, salt = commit_salted(record)
        salts.append(salt)
        assert batch.add(RecordStatement("prescription", ORIGIN, i, commitment).sign(AUTHOR)) == i
    return batch, salts


@pytest.fixture()
def good(built):
    batch, _ = built
    return json.loads(batch.package(3).dumps())


def test_every_package_verifies_with_pinned_keys(built):
    batch, salts = built
    for i in range(len(RECORDS)):
        text = batch.package(i).dumps()
        result = verify_package(
            text, record=RECORDS[i], salt=salts[i], checkpoint_keys=[GATEWAY.verifier], authors=[AUTHOR.public_key()]
        )
        assert result.checkpoint_key_pinned and result.author_pinned and result.record_checked
        assert result.checkpoint.size == len(RECORDS)
        assert "record content matches" in result.summary()


def test_packages_match_the_published_schema(good):
    jsonschema.validate(good, SCHEMA)
    bad = copy.deepcopy(good)
    bad["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)


def test_without_a_trust_root_nothing_is_valid(good):
    """Neither a genesis file nor a pinned checkpoint key: refused, however consistent the package is."""
    with pytest.raises(UntrustedPackage, match="no trust root"):
        verify_package(json.dumps(good))
    with pytest.raises(InvalidInput, match="trusts nothing"):
        verify_package(json.dumps(good), checkpoint_keys=[])


def test_the_unsafe_escape_hatch_says_so(good):
    result = verify_package(json.dumps(good), unsafe_trust_embedded_checkpoint_key=True)
    assert result.unsafe and result.summary().startswith("UNSAFE")
    assert "record content (no record given)" in result.not_checked


def test_a_batch_refuses_records_of_another_log_or_out_of_sequence():
    batch = EvidenceBatch(origin=ORIGIN, signer=GATEWAY)
    commitment = commit_salted({"x": 1})[0]
    with pytest.raises(InvalidInput, match="is not this log's origin"):
        batch.add(RecordStatement("prescription", "hosp-001", 0, commitment).sign(AUTHOR))
    with pytest.raises(InvalidInput, match="is not the next leaf index 0"):
        batch.add(RecordStatement("prescription", ORIGIN, 1, commitment).sign(AUTHOR))
    assert batch.add(RecordStatement("prescription", ORIGIN, 0, commitment).sign(AUTHOR)) == 0


def test_package_round_trips(built):
    batch, _ = built
    pkg = batch.package(1)
    assert EvidencePackage.loads(pkg.dumps()) == pkg


def _mutate(good, path, value):
    doc = copy.deepcopy(good)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value(target[path[-1]]) if callable(value) else value
    return json.dumps(doc)


def _flip_hex(h: str) -> str:
    return ("1" if h[0] == "0" else "0") + h[1:]


@pytest.mark.parametrize(
    "path, value, error, reason",
    [
        (("record", "sequence"), lambda s: s + 1, InvalidSignature, "author signature"),
        (("record", "kind"), "hj212-reading", InvalidSignature, "author signature"),
        (("record", "commitment", "value"), _flip_hex, InvalidSignature, "author signature"),
        (("author", "signature"), lambda s: s[:-4] + ("AAA=" if s[-4:] != "AAA=" else "BBB="), InvalidSignature, ""),
        (("author", "public_key"), SM2PrivateKey.generate().public_key().to_bytes().hex(), InvalidSignature, ""),
        (("author", "uid"), "another-uid", InvalidSignature, ""),
        (("inclusion", "hashes", 0), _flip_hex, RootMismatchError, "inclusion proof: root mismatch"),
        (("inclusion", "leaf_index"), 2, VerificationError, "record sequence 3 is not its leaf index 2"),
        (("inclusion", "leaf_index"), 5, VerificationError, "is not its leaf index 5"),
        (("inclusion", "tree_size"), 4, CheckpointError, "differs from the inclusion proof's tree size"),
        (("inclusion", "hashes"), lambda h: h[:-1], InvalidProof, "inclusion proof"),
        (("checkpoint", "note"), lambda n: n.replace("\n5\n", "\n6\n"), CheckpointError, "does not verify"),
        (
            ("checkpoint", "signer"),
            NoteSigner("district.example/gw-1", SM2PrivateKey.generate()).verifier.to_vkey(),
            CheckpointError,
            "$.checkpoint.signer is not the key that signed",
        ),
        (("version",), 3, PackageError, "version"),
        (("version",), 1, PackageError, "format v1 is no longer accepted"),
        (("version",), True, PackageError, "version"),
        (("inclusion", "hashes", 0), "XYZ", PackageError, "$.inclusion.hashes[0]"),
        (("author",), {"public_key": "04"}, PackageError, "$.author"),
        (("chain",), {"anchor_tx": {}}, PackageError, "cannot check chain proofs"),
    ],
)
def test_tampering_fails_with_the_right_reason(good, path, value, error, reason):
    with pytest.raises(error) as err:
        verify_package(_mutate(good, path, value), checkpoint_keys=PINNED)
    assert reason in str(err.value)


def test_pinned_checkpoint_key_refuses_a_self_consistent_forgery(built):
    # An attacker rebuilds a whole batch with their own gateway key: valid on its own terms,
    # refused once the auditor pins the real gateway key.
    forger = NoteSigner("district.example/gw-1", SM2PrivateKey.generate())
    fake = EvidenceBatch(origin=ORIGIN, signer=forger)
    commitment, _ = commit_salted({"hosp_rxno": "FORGED"})
    fake.add(RecordStatement("prescription", ORIGIN, 0, commitment).sign(AUTHOR))
    text = fake.package(0).dumps()
    verify_package(text, unsafe_trust_embedded_checkpoint_key=True)  # self-consistent
    with pytest.raises(CheckpointError, match="not signed by a trusted key"):
        verify_package(text, checkpoint_keys=[GATEWAY.verifier])
    with pytest.raises(VerificationError, match="pinned author"):
        verify_package(text, checkpoint_keys=[forger.verifier], authors=[SM2PrivateKey.generate().public_key()])


def test_record_and_salt_must_reproduce_the_commitment(built, good):
    _, salts = built
    text = json.dumps(good)
    verify_package(text, record=RECORDS[3], salt=salts[3], checkpoint_keys=PINNED)
    with pytest.raises(CommitmentMismatch):
        verify_package(text, record=RECORDS[2], salt=salts[3], checkpoint_keys=PINNED)
    with pytest.raises(CommitmentMismatch):
        verify_package(text, record=RECORDS[3], salt=salts[2], checkpoint_keys=PINNED)


def test_hmac_commitments_verify_with_the_org_key():
    key = b"org secret key 0123456789"
    batch = EvidenceBatch(origin="district.example/log/dept-7", signer=GATEWAY)
    statement = RecordStatement("data-sharing-event", batch.origin, 0, commit_hmac({"step": "share"}, key=key))
    batch.add(statement.sign(AUTHOR))
    text = batch.package(0).dumps()
    verify_package(text, record={"step": "share"}, hmac_key=key, checkpoint_keys=PINNED)
    with pytest.raises(CommitmentMismatch):
        verify_package(text, record={"step": "share"}, hmac_key=b"another secret key 012345", checkpoint_keys=PINNED)


def test_garbage_is_a_package_error_not_a_crash():
    for text in ["", "[]", "null", "{", '{"format": "x"}', "\x00\x01", "9" * 100, '"string"']:
        with pytest.raises(PackageError):
            verify_package(text, checkpoint_keys=PINNED)
    with pytest.raises(PackageError, match="larger than"):
        verify_package("{" + " " * (1 << 20) + "}", checkpoint_keys=PINNED)


def test_packages_of_older_checkpoints_stay_valid(built):
    batch = EvidenceBatch(origin="district.example/log/lab", signer=GATEWAY)
    for i in range(3):
        batch.add(RecordStatement("evidence", batch.origin, i, commit_salted({"i": i})[0]).sign(AUTHOR))
    batch.checkpoint()
    for i in range(3, 7):
        batch.add(RecordStatement("evidence", batch.origin, i, commit_salted({"i": i})[0]).sign(AUTHOR))
    old = batch.package(1, size=3)
    new = batch.package(1)
    assert old.inclusion.tree_size == 3 and new.inclusion.tree_size == 7
    verify_package(old.dumps(), checkpoint_keys=[GATEWAY.verifier])
    verify_package(new.dumps(), checkpoint_keys=[GATEWAY.verifier])
