"""SM2-signed C2SP checkpoints."""

from __future__ import annotations

import base64
import hashlib

import pytest

from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import InvalidInput, InvalidKey
from shancheng.sdk.merkle import Checkpoint, CheckpointError, MerkleTree, NoteSigner, NoteVerifier, open_checkpoint
from shancheng.sdk.merkle.checkpoint import SIGNATURE_TYPE_SM2

SIGNER = NoteSigner("district.example/gw-1", SM2PrivateKey.generate())
OTHER = NoteSigner("district.example/gw-2", SM2PrivateKey.generate())
TREE = MerkleTree.from_leaves([b"a", b"b", b"c"])
CP = Checkpoint("district.example/log/hosp-001", 3, TREE.root(), ("anchored-at 12",))


def test_note_layout_is_c2sp():
    note = CP.sign(SIGNER)
    body, sigs = note.split("\n\n")
    assert body.split("\n") == ["district.example/log/hosp-001", "3", base64.b64encode(TREE.root()).decode(),
                                "anchored-at 12"]
    line = sigs.rstrip("\n")
    assert line.startswith("\u2014 district.example/gw-1 ")
    blob = base64.b64decode(line.split(" ")[2])
    expected_id = hashlib.sha256(
        b"district.example/gw-1\n" + bytes([SIGNATURE_TYPE_SM2]) + SIGNER.private_key.public_key().to_bytes()
    ).digest()[:4]
    assert blob[:4] == expected_id == SIGNER.verifier.key_id
    SIGNER.private_key.public_key().verify(blob[4:], CP.body())  # SM2 over the body incl. its final newline


def test_open_verifies_and_parses():
    assert open_checkpoint(CP.sign(SIGNER), [SIGNER.verifier]) == CP
    cosigned = CP.sign(SIGNER, OTHER)
    assert open_checkpoint(cosigned, [OTHER.verifier]) == CP


def test_tampering_is_detected():
    note = CP.sign(SIGNER)
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(note.replace("\n3\n", "\n4\n", 1), [SIGNER.verifier])
    with pytest.raises(CheckpointError, match="not signed by a trusted key"):
        open_checkpoint(note, [OTHER.verifier])
    impostor = NoteVerifier(SIGNER.name, OTHER.private_key.public_key())
    with pytest.raises(CheckpointError, match="not signed by a trusted key"):
        open_checkpoint(note, [impostor])
    with pytest.raises(CheckpointError):
        open_checkpoint(note, [])


@pytest.mark.parametrize(
    "mangle, reason",
    [
        (lambda n: n.replace("\n\n", "\n"), "no blank line"),
        (lambda n: n.replace("\u2014", "--"), "em dash"),
        (lambda n: n.rstrip("\n"), "end with a newline"),
        (lambda n: n.replace("\n3\n", "\n03\n"), "does not verify"),
        (lambda n: n + "\u2014 x !!!\n", "not base64"),
        (lambda n: n.replace("district", "dis\x01trict"), "control characters"),
        (lambda n: n + ("\u2014 k AAAAAAAA\n" * 101), "more than 100"),
    ],
)
def test_malformed_notes_are_refused(mangle, reason):
    with pytest.raises(CheckpointError, match=reason):
        open_checkpoint(mangle(CP.sign(SIGNER)), [SIGNER.verifier])


def test_verifier_keys_round_trip_and_are_checked():
    vkey = SIGNER.verifier.to_vkey()
    assert NoteVerifier.from_vkey(vkey) == SIGNER.verifier
    name, key_id, blob = vkey.split("+", 2)
    with pytest.raises(InvalidKey, match="key ID"):
        NoteVerifier.from_vkey(f"{name}+00000000+{blob}")
    with pytest.raises(InvalidKey):
        NoteVerifier.from_vkey("only-a-name")
    ed25519_blob = base64.b64encode(bytes([1]) + bytes(32)).decode()
    with pytest.raises(InvalidKey, match="type 0xFF"):
        NoteVerifier.from_vkey(f"{name}+{key_id}+{ed25519_blob}")


def test_checkpoint_fields_are_validated():
    with pytest.raises(InvalidInput):
        Checkpoint("", 1, TREE.root())
    with pytest.raises(InvalidInput):
        Checkpoint("o", -1, TREE.root())
    with pytest.raises(InvalidInput):
        Checkpoint("o", 1, b"short")
    with pytest.raises(InvalidInput):
        NoteSigner("has space", SIGNER.private_key)
