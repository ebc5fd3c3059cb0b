"""SM2 signatures, keys and encryption: standard vectors, OpenSSL 3 and gmssl interoperability."""

from __future__ import annotations

import secrets
import subprocess

import pytest
from gmssl import sm2 as gmssl_sm2
from hypothesis import given, settings
from hypothesis import strategies as st

from shancheng.sdk.crypto import (
    DEFAULT_UID,
    SM2PrivateKey,
    SM2PublicKey,
    signature_from_raw,
    signature_to_raw,
    sm2_ciphertext_from_asn1,
    sm2_ciphertext_to_asn1,
)
from shancheng.sdk.crypto.pem import SCRYPT_N, encrypt_pkcs8, pem_blocks
from shancheng.sdk.errors import DecryptionError, InvalidInput, InvalidKey, InvalidSignature, WrongPassword

KEY = SM2PrivateKey.generate()


def _gmssl(key: SM2PrivateKey) -> gmssl_sm2.CryptSM2:
    public = key.public_key().to_bytes()[1:].hex()  # x || y, 128 hex digits
    crypt = gmssl_sm2.CryptSM2(private_key=f"{key.to_int():064x}", public_key=public, mode=1)
    # gmssl drops an "04" point prefix with public_key.lstrip("04"), which also eats an x coordinate's own leading
    # "0"/"4" digits: a key whose x began with "04" (1 in 256) failed both cross-checks in CI. Set it unmangled.
    crypt.public_key = public
    return crypt


def test_the_gmssl_reference_gets_the_public_key_unmangled():
    x_starting_04 = next(k for k in iter(SM2PrivateKey.generate, None)
                         if k.public_key().to_bytes()[1:].hex().startswith("04"))
    g = _gmssl(x_starting_04)
    assert g.public_key == x_starting_04.public_key().to_bytes()[1:].hex()
    data = b"a key gmssl would have mangled"
    x_starting_04.public_key().verify(
        signature_from_raw(bytes.fromhex(g.sign_with_sm3(data, secrets.token_hex(32)))), data)
    assert x_starting_04.decrypt(b"\x04" + g.encrypt(b"from gmssl")) == b"from gmssl"


def test_standard_signature_vector_verifies(vectors):
    for v in vectors("gm/sm2.json")["signatures"]:
        key = SM2PrivateKey.from_int(int(v["private_key"], 16))
        assert key.public_key().to_bytes().hex() == v["public_key"]
        sig = signature_from_raw(bytes.fromhex(v["r"] + v["s"]))
        msg, uid = bytes.fromhex(v["message_hex"]), bytes.fromhex(v["uid"])
        key.public_key().verify(sig, msg, uid=uid)
        with pytest.raises(InvalidSignature):
            key.public_key().verify(sig, msg + b".", uid=uid)


def test_sign_verify_round_trip_and_rejections():
    pub = KEY.public_key()
    sig = KEY.sign(b"record")
    pub.verify(sig, b"record")
    with pytest.raises(InvalidSignature):
        pub.verify(sig, b"recorD")
    with pytest.raises(InvalidSignature):
        pub.verify(sig, b"record", uid=b"another id")
    with pytest.raises(InvalidSignature):
        SM2PrivateKey.generate().public_key().verify(sig, b"record")
    with pytest.raises(InvalidSignature):
        pub.verify(b"\x30\x00", b"record")
    with pytest.raises(InvalidSignature):
        pub.verify(b"\x00" * 100, b"record")


def test_nonces_are_fresh():
    sigs = {KEY.sign(b"same message") for _ in range(20)}
    assert len(sigs) == 20


def test_explicit_uid_is_part_of_the_signature():
    sig = KEY.sign(b"m", uid=b"ALICE123@YAHOO.COM")
    KEY.public_key().verify(sig, b"m", uid=b"ALICE123@YAHOO.COM")
    with pytest.raises(InvalidSignature):
        KEY.public_key().verify(sig, b"m")


@pytest.mark.parametrize("uid", [DEFAULT_UID, b"ALICE123@YAHOO.COM"])
def test_our_signature_verifies_with_openssl(openssl, tmp_path, uid):
    (tmp_path / "pub.pem").write_bytes(KEY.public_key().to_pem())
    (tmp_path / "msg").write_bytes(b"evidence bytes")
    (tmp_path / "sig").write_bytes(KEY.sign(b"evidence bytes", uid=uid))
    args = ["pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"), "-rawin", "-digest", "sm3"]
    args += ["-in", str(tmp_path / "msg"), "-sigfile", str(tmp_path / "sig"), "-pkeyopt", f"distid:{uid.decode()}"]
    out = openssl(*args)
    assert out.returncode == 0 and b"Verified Successfully" in out.stdout, out.stderr
    (tmp_path / "msg").write_bytes(b"evidence bytez")
    assert openssl(*args).returncode != 0


@pytest.mark.parametrize("uid", [DEFAULT_UID, b"ALICE123@YAHOO.COM"])
def test_openssl_signature_verifies_here(openssl, tmp_path, uid):
    key_pem = tmp_path / "key.pem"
    assert openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2", "-out", str(key_pem)).returncode == 0
    (tmp_path / "msg").write_bytes(b"signed by openssl")
    out = openssl(
        "pkeyutl", "-sign", "-inkey", str(key_pem), "-rawin", "-digest", "sm3", "-in", str(tmp_path / "msg"),
        "-pkeyopt", f"distid:{uid.decode()}",
    )
    assert out.returncode == 0, out.stderr
    key = SM2PrivateKey.from_pem(key_pem.read_bytes())
    key.public_key().verify(out.stdout, b"signed by openssl", uid=uid)
    with pytest.raises(InvalidSignature):
        key.public_key().verify(out.stdout, b"signed by openssl", uid=b"x" + uid)


def test_gmssl_cross_check_both_directions():
    g = _gmssl(KEY)
    data = b"cross-check with an independent implementation"
    raw_hex = g.sign_with_sm3(data, secrets.token_hex(32))  # explicit CSPRNG nonce: gmssl's default is not
    KEY.public_key().verify(signature_from_raw(bytes.fromhex(raw_hex)), data)
    ours = signature_to_raw(KEY.sign(data)).hex()
    assert g.verify_with_sm3(ours, data)
    assert not g.verify_with_sm3(ours, data + b"!")


def test_encryption_interoperates_with_gmssl():
    g = _gmssl(KEY)
    salt = b"salt: 00112233445566778899aabbccddeeff"
    ct = KEY.public_key().encrypt(salt)
    assert len(ct) == 97 + len(salt) and ct[0] == 4  # C1 (65) || C3 (32) || C2
    assert g.decrypt(ct[1:]) == salt
    theirs = g.encrypt(b"from gmssl")
    assert KEY.decrypt(b"\x04" + theirs) == b"from gmssl"


def test_encryption_interoperates_with_openssl(openssl, tmp_path):
    (tmp_path / "key.pem").write_bytes(KEY.to_pem_unsafe_unencrypted())
    (tmp_path / "pub.pem").write_bytes(KEY.public_key().to_pem())
    (tmp_path / "ct").write_bytes(sm2_ciphertext_to_asn1(KEY.public_key().encrypt(b"to openssl")))
    out = openssl("pkeyutl", "-decrypt", "-inkey", str(tmp_path / "key.pem"), "-in", str(tmp_path / "ct"))
    assert out.returncode == 0 and out.stdout == b"to openssl", out.stderr
    out = openssl("pkeyutl", "-encrypt", "-pubin", "-inkey", str(tmp_path / "pub.pem"), input=b"from openssl")
    assert out.returncode == 0, out.stderr
    assert KEY.decrypt(sm2_ciphertext_from_asn1(out.stdout)) == b"from openssl"


def test_tampered_ciphertext_is_refused():
    ct = bytearray(KEY.public_key().encrypt(b"secret salt"))
    ct[70] ^= 1  # inside C3
    with pytest.raises(DecryptionError):
        KEY.decrypt(bytes(ct))
    with pytest.raises(DecryptionError):
        KEY.decrypt(b"\x04" + b"\x00" * 10)
    with pytest.raises(DecryptionError):
        SM2PrivateKey.generate().decrypt(KEY.public_key().encrypt(b"secret salt"))


def test_unencrypted_keys_round_trip_through_openssl(openssl, tmp_path):
    (tmp_path / "k.pem").write_bytes(KEY.to_pem_unsafe_unencrypted())
    out = openssl("pkey", "-in", str(tmp_path / "k.pem"), "-pubout")
    assert out.returncode == 0, out.stderr
    assert SM2PublicKey.from_pem(out.stdout) == KEY.public_key()
    assert out.stdout == KEY.public_key().to_pem()
    again = openssl("pkey", "-in", str(tmp_path / "k.pem"))
    assert SM2PrivateKey.from_pem(again.stdout).to_int() == KEY.to_int()


def test_encrypted_key_is_scrypt_sm4_and_openssl_reads_it(openssl, tmp_path):
    pem = KEY.to_pem(b"correct horse battery")
    assert [label for label, _ in pem_blocks(pem)] == ["ENCRYPTED PRIVATE KEY"]
    (tmp_path / "k.pem").write_bytes(pem)
    (tmp_path / "pw").write_bytes(b"correct horse battery")
    parsed = openssl("asn1parse", "-in", str(tmp_path / "k.pem")).stdout.decode()
    assert ":scrypt" in parsed and ":sm4-cbc" in parsed and f":{SCRYPT_N:X}" in parsed
    out = openssl("pkey", "-in", str(tmp_path / "k.pem"), "-passin", f"file:{tmp_path / 'pw'}", "-pubout")
    assert out.returncode == 0, out.stderr
    assert SM2PublicKey.from_pem(out.stdout) == KEY.public_key()
    (tmp_path / "pw").write_bytes(b"wrong horse battery")
    assert openssl("pkey", "-in", str(tmp_path / "k.pem"), "-passin", f"file:{tmp_path / 'pw'}").returncode != 0


@pytest.mark.parametrize(
    "pkcs8_args",
    [["-v2", "sm4-cbc", "-scrypt"], ["-v2", "aes-256-cbc"], ["-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA256"]],
)
def test_openssl_encrypted_keys_load_here(openssl, tmp_path, pkcs8_args):
    (tmp_path / "plain.pem").write_bytes(KEY.to_pem_unsafe_unencrypted())
    (tmp_path / "pw").write_bytes(b"openssl password")
    out = openssl(
        "pkcs8", "-topk8", "-in", str(tmp_path / "plain.pem"), *pkcs8_args, "-passout", f"file:{tmp_path / 'pw'}"
    )
    assert out.returncode == 0, out.stderr
    assert SM2PrivateKey.from_pem(out.stdout, b"openssl password").to_int() == KEY.to_int()
    with pytest.raises(WrongPassword):
        SM2PrivateKey.from_pem(out.stdout, b"not the password")


def test_key_file_errors_are_precise():
    pem = KEY.to_pem(b"password1")
    with pytest.raises(WrongPassword, match="password is required"):
        SM2PrivateKey.from_pem(pem)
    with pytest.raises(WrongPassword, match="wrong password"):
        SM2PrivateKey.from_pem(pem, b"password2")
    with pytest.raises(InvalidKey, match="no PKCS#8"):
        SM2PrivateKey.from_pem(b"not a key")
    with pytest.raises(InvalidKey):
        SM2PrivateKey.from_pem(KEY.public_key().to_pem())
    with pytest.raises(InvalidInput):
        SM2PrivateKey.from_pem(b"-----BEGIN PRIVATE KEY-----\n" + b"A" * 70000 + b"\n-----END PRIVATE KEY-----\n")


@pytest.mark.parametrize("password", [b"x", b"1234567", "short", b""])
def test_to_pem_refuses_a_short_password(password):
    """Hole 8: `to_pem()` encrypted a key under a 1-byte password (only `keys new` enforced 8)."""
    with pytest.raises(InvalidInput, match="password"):
        KEY.to_pem(password)
    with pytest.raises(InvalidInput, match="at least 8 bytes"):
        encrypt_pkcs8(KEY.to_der(), b"x")
    assert SM2PrivateKey.from_pem(KEY.to_pem(b"12345678"), b"12345678").to_int() == KEY.to_int()


def test_to_pem_never_writes_plaintext_without_the_unsafe_call():
    """Hole 8: `to_pem()` without a password returned a plaintext key; that now needs the unsafe-named method."""
    with pytest.raises(InvalidInput, match="password is required"):
        KEY.to_pem(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        KEY.to_pem()  # type: ignore[call-arg]
    plain = KEY.to_pem_unsafe_unencrypted()
    assert [label for label, _ in pem_blocks(plain)] == ["PRIVATE KEY"]
    assert SM2PrivateKey.from_pem(plain).to_int() == KEY.to_int()


def test_non_sm2_keys_are_refused(openssl, tmp_path):
    out = openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
    assert out.returncode == 0
    with pytest.raises(InvalidKey):
        SM2PrivateKey.from_pem(out.stdout)


def test_public_key_encodings():
    pub = KEY.public_key()
    raw = pub.to_bytes()
    assert len(raw) == 65 and raw[0] == 4
    assert SM2PublicKey.from_bytes(raw) == pub == SM2PublicKey.from_bytes(raw[1:])
    assert SM2PublicKey.from_der(pub.to_der()) == pub
    assert SM2PublicKey.from_pem(pub.to_pem()) == pub
    off_curve = raw[:-1] + bytes([raw[-1] ^ 1])
    with pytest.raises(InvalidKey):
        SM2PublicKey.from_bytes(off_curve)
    with pytest.raises(InvalidKey):
        SM2PublicKey.from_bytes(b"\x02" + raw[1:33])
    with pytest.raises(InvalidKey):
        SM2PublicKey.from_bytes(b"")


def test_private_key_never_prints_its_secret():
    text = repr(KEY) + str(KEY)
    assert f"{KEY.to_int():x}"[:16] not in text
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(KEY)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 2**256 - 1), st.integers(1, 2**256 - 1))
def test_der_raw_conversion_round_trips(r, s):
    from shancheng.sdk.crypto.sm2 import SM2_CURVE_ORDER

    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if r < SM2_CURVE_ORDER and s < SM2_CURVE_ORDER:
        assert signature_to_raw(signature_from_raw(raw)) == raw
    else:
        with pytest.raises(InvalidInput):
            signature_from_raw(raw)


def test_der_parser_is_strict():
    good = KEY.sign(b"x")
    assert signature_to_raw(good)
    for bad in [
        good + b"\x00",  # trailing bytes
        b"\x30\x81" + good[1:],  # non-minimal length
        b"\x31" + good[1:],  # SET, not SEQUENCE
        b"\x30\x06\x02\x01\x00\x02\x01\x01",  # r = 0
        b"\x30\x08\x02\x02\x00\x01\x02\x02\x00\x01",  # non-minimal INTEGERs
    ]:
        with pytest.raises(InvalidInput):
            signature_to_raw(bad)


def test_openssl_speed_reference_is_available():
    """The benchmark's reference must exist on this machine (bench/sm2_speed.py)."""
    out = subprocess.run(["openssl", "speed", "-help"], capture_output=True, text=True, check=False)
    assert "-seconds" in out.stdout + out.stderr
