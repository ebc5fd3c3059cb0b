"""Key stores bounded: an Ethereum keystore's KDF cost is checked before anything is derived, as the SM2 key files'
are, so a key file cannot make ``Identity.from_key_files`` hang or exhaust memory."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from shancheng.sdk.cli.keys import write_key_file
from shancheng.sdk.client import Identity, write_eth_keystore
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import InvalidKey

PASSWORD = b"correct horse battery"
KEY = "0x" + "11" * 32


@pytest.fixture
def sm2_file(tmp_path: Path) -> Path:
    path = tmp_path / "org.pem"
    write_key_file(path, SM2PrivateKey.generate(), PASSWORD)
    return path


def _keystore(tmp_path: Path, kdf: str, **params: Any) -> Path:
    keystore = Account.encrypt(KEY, PASSWORD.decode(), kdf=kdf, iterations=2)
    keystore["crypto"]["kdfparams"].update(params)
    path = tmp_path / "eth.json"
    path.write_text(json.dumps(keystore))
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(("kdf", "params", "message"), [
    ("pbkdf2", {"c": 50_000_000}, "PBKDF2 iteration count out of bounds"),
    ("pbkdf2", {"c": 0}, "PBKDF2 iteration count out of bounds"),
    ("pbkdf2", {"c": True}, "PBKDF2 iteration count out of bounds"),
    ("pbkdf2", {"prf": "hmac-md5"}, "unsupported PBKDF2 PRF"),
    ("scrypt", {"n": 1 << 22, "r": 8, "p": 1}, "scrypt parameters out of bounds"),
    ("scrypt", {"n": 1 << 14, "r": 8, "p": 1 << 20}, "scrypt parameters out of bounds"),
    ("scrypt", {"n": 3, "r": 8, "p": 1}, "scrypt parameters out of bounds"),
    ("scrypt", {"n": "16384", "r": 8, "p": 1}, "scrypt parameters out of bounds"),
    ("scrypt", {"dklen": 1 << 30}, "dklen must be 32"),
])
def test_a_keystore_whose_kdf_cost_is_out_of_bounds_is_refused_before_deriving(
        tmp_path: Path, sm2_file: Path, kdf: str, params: dict[str, Any], message: str) -> None:
    path = _keystore(tmp_path, kdf, **params)
    started = time.monotonic()
    with pytest.raises(InvalidKey, match=message):
        Identity.from_key_files(sm2_key=sm2_file, eth_key=path, password=PASSWORD)
    assert time.monotonic() - started < 2.0, "refused before any derivation"


def test_an_unknown_kdf_is_refused(tmp_path: Path, sm2_file: Path) -> None:
    path = _keystore(tmp_path, "scrypt")
    keystore = json.loads(path.read_text())
    keystore["crypto"]["kdf"] = "argon2id"
    path.write_text(json.dumps(keystore))
    with pytest.raises(InvalidKey, match="unsupported key derivation function 'argon2id'"):
        Identity.from_key_files(sm2_key=sm2_file, eth_key=path, password=PASSWORD)


def test_keystores_within_the_bounds_still_open(tmp_path: Path, sm2_file: Path) -> None:
    written = tmp_path / "written.json"
    address = write_eth_keystore(written, KEY, PASSWORD)
    assert Identity.from_key_files(sm2_key=sm2_file, eth_key=written, password=PASSWORD).address == address
    pbkdf2 = tmp_path / "pbkdf2.json"
    pbkdf2.write_text(json.dumps(Account.encrypt(KEY, PASSWORD.decode(), kdf="pbkdf2", iterations=1000)))
    pbkdf2.chmod(0o600)
    assert Identity.from_key_files(sm2_key=sm2_file, eth_key=pbkdf2, password=PASSWORD).address == address
