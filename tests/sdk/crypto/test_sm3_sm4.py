"""SM3, HMAC-SM3 and SM4 against the standards' vectors and OpenSSL."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from shancheng.sdk.crypto import SM4GCM, hmac_sm3, new_sm3, open_sealed, seal, sm3
from shancheng.sdk.errors import DecryptionError, InvalidInput


def test_sm3_matches_gbt_32905_vectors(vectors):
    for v in vectors("gm/sm3.json")["vectors"]:
        assert sm3(bytes.fromhex(v["message_hex"])).hex() == v["digest"], v["desc"]


def test_sm3_incremental_equals_one_shot():
    h = new_sm3(b"ab")
    h.update(b"c")
    assert h.digest() == sm3(b"abc")


def test_sm3_agrees_with_openssl_dgst(openssl):
    data = os.urandom(1000)
    out = openssl("dgst", "-sm3", "-r", input=data)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0].decode() == sm3(data).hex()


def test_hmac_sm3_agrees_with_openssl(openssl):
    key, data = b"k" * 20, b"the message"
    out = openssl("mac", "-digest", "SM3", "-macopt", f"hexkey:{key.hex()}", "HMAC", input=data)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().decode().lower() == hmac_sm3(key, data).hex()


@given(st.binary(max_size=200), st.binary(max_size=300))
def test_hmac_sm3_is_rfc2104_over_sm3(key, data):
    block = 64
    k = sm3(key) if len(key) > block else key
    k = k.ljust(block, b"\0")
    inner = sm3(bytes(b ^ 0x36 for b in k) + data)
    assert hmac_sm3(key, data) == sm3(bytes(b ^ 0x5C for b in k) + inner)


def test_sm4_block_vector(vectors):
    for v in vectors("gm/sm4.json")["block"]:
        enc = Cipher(algorithms.SM4(bytes.fromhex(v["key"])), modes.ECB()).encryptor()
        assert (enc.update(bytes.fromhex(v["plaintext"])) + enc.finalize()).hex() == v["ciphertext"]


def test_sm4_gcm_matches_rfc_8998(vectors):
    for v in vectors("gm/sm4.json")["gcm"]:
        aead = SM4GCM(bytes.fromhex(v["key"]))
        out = aead.encrypt(bytes.fromhex(v["nonce"]), bytes.fromhex(v["plaintext"]), bytes.fromhex(v["aad"]))
        assert out.hex() == v["ciphertext"] + v["tag"]
        assert aead.decrypt(bytes.fromhex(v["nonce"]), out, bytes.fromhex(v["aad"])) == bytes.fromhex(v["plaintext"])


def test_sealed_payload_round_trips_and_detects_tampering():
    key = SM4GCM.generate_key()
    sealed = seal(key, b"off-chain payload", b"record-42")
    assert open_sealed(key, sealed, b"record-42") == b"off-chain payload"
    assert seal(key, b"off-chain payload", b"record-42") != sealed  # fresh nonce every time
    flipped = bytearray(sealed)
    flipped[20] ^= 1
    with pytest.raises(DecryptionError):
        open_sealed(key, bytes(flipped), b"record-42")
    with pytest.raises(DecryptionError):
        open_sealed(key, sealed, b"record-43")
    with pytest.raises(DecryptionError):
        open_sealed(SM4GCM.generate_key(), sealed, b"record-42")
    with pytest.raises(DecryptionError):
        open_sealed(key, b"\x02" + sealed[1:], b"record-42")


def test_sm4_rejects_bad_keys_and_nonces():
    with pytest.raises(InvalidInput):
        SM4GCM(b"short")
    with pytest.raises(InvalidInput):
        SM4GCM(bytes(16)).encrypt(b"123", b"x")
    assert repr(SM4GCM(b"k" * 16)) == "SM4GCM(<key hidden>)"
