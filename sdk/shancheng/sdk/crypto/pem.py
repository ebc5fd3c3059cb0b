"""PEM armour and password-protected PKCS#8 for SM2 keys.

Encrypted private keys are PKCS#8 ``EncryptedPrivateKeyInfo`` with PBES2
(RFC 8018), the key derived by **scrypt** (RFC 7914) and the key wrapped with
**SM4-CBC** — byte-for-byte the structure ``openssl pkcs8 -topk8 -v2 sm4-cbc
-scrypt`` writes, so OpenSSL 3 reads our files and we read its files.

Parameters we write (recorded inside every file, so they can be raised later
without breaking old files): scrypt N = 2**14, r = 8, p = 1 (16 MiB, about
50 ms here; N = 2**15 exceeds OpenSSL 3's default 32 MiB scrypt memory cap
and OpenSSL could no longer read the file), a 16-byte random salt, a 16-byte
random IV, 128-bit SM4 key.

On reading we also accept PBES2 with PBKDF2 (HMAC-SHA256/SHA1/SM3) and AES-CBC,
which other tools produce; work factors are bounded so a hostile file cannot
make us spend minutes or gigabytes.
"""

from __future__ import annotations

import base64
import binascii
import os
import re

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import InvalidInput, InvalidKey, WrongPassword
from . import _der

__all__ = [
    "MAX_PBKDF2_ITERATIONS",
    "MAX_SCRYPT_MEMORY",
    "MIN_PASSWORD_LEN",
    "SCRYPT_N",
    "SCRYPT_P",
    "SCRYPT_R",
    "check_pbkdf2_cost",
    "check_scrypt_cost",
    "decrypt_pkcs8",
    "encrypt_pkcs8",
    "load_private_pkcs8",
    "pem_decode",
    "pem_encode",
    "unsafe_unencrypted_private_pem",
]

SCRYPT_N = 1 << 14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_LEN = 16
MIN_PASSWORD_LEN = 8  # bytes, for keys we encrypt (reading accepts any non-empty password other tools used)

MAX_PEM_LEN = 64 * 1024
MAX_SCRYPT_MEMORY = 256 * 1024 * 1024  # 128 * r * N * p bytes (geth's standard keystore: N = 2**18, r = 8, p = 1)
MAX_PBKDF2_ITERATIONS = 10_000_000


def check_scrypt_cost(n: int, r: int, p: int) -> None:
    """Refuse scrypt parameters that are malformed or cost more than :data:`MAX_SCRYPT_MEMORY`, before any
    derivation (a key file's parameters are the attacker's to choose: values from JSON are checked to be integers)."""
    if any(type(v) is not int for v in (n, r, p)) or n < 2 or n & (n - 1) or r < 1 or p < 1 \
            or 128 * r * n * p > MAX_SCRYPT_MEMORY:
        raise InvalidKey(f"scrypt parameters out of bounds (N={str(n)[:20]}, r={str(r)[:20]}, p={str(p)[:20]})")


def check_pbkdf2_cost(iterations: int) -> None:
    """Refuse a PBKDF2 iteration count that is not 1 .. :data:`MAX_PBKDF2_ITERATIONS`, before any derivation."""
    if type(iterations) is not int or not 1 <= iterations <= MAX_PBKDF2_ITERATIONS:
        raise InvalidKey(f"PBKDF2 iteration count out of bounds ({str(iterations)[:20]})")

_OID_PBES2 = "1.2.840.113549.1.5.13"
_OID_SCRYPT = "1.3.6.1.4.1.11591.4.11"
_OID_PBKDF2 = "1.2.840.113549.1.5.12"
_PRFS: dict[str, type[hashes.HashAlgorithm]] = {
    "1.2.840.113549.2.7": hashes.SHA1,
    "1.2.840.113549.2.9": hashes.SHA256,
    "1.2.156.10197.1.401.2": hashes.SM3,
}
_CIPHERS = {  # OID -> (algorithm factory, key length)
    "1.2.156.10197.1.104.2": (algorithms.SM4, 16),
    "2.16.840.1.101.3.4.1.2": (algorithms.AES, 16),
    "2.16.840.1.101.3.4.1.42": (algorithms.AES, 32),
}
_OID_SM4_CBC = "1.2.156.10197.1.104.2"

_PEM_RE = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]*?)-----END \1-----", re.DOTALL
)


def pem_encode(der: bytes, label: str) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"".join(
        [f"-----BEGIN {label}-----\n".encode(), *(line + b"\n" for line in lines), f"-----END {label}-----\n".encode()]
    )


def pem_blocks(data: bytes | str) -> list[tuple[str, bytes]]:
    """All (label, DER) blocks in ``data``."""
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    if len(data) > MAX_PEM_LEN:
        raise InvalidInput(f"PEM data is larger than {MAX_PEM_LEN} bytes")
    out = []
    for m in _PEM_RE.finditer(data):
        try:
            der = base64.b64decode(b"".join(m.group(2).split()), validate=True)
        except binascii.Error as exc:
            raise InvalidKey("PEM body is not valid base64") from exc
        out.append((m.group(1).decode(), der))
    return out


def pem_decode(data: bytes | str, label: str) -> bytes:
    blocks = pem_blocks(data)
    for got, der in blocks:
        if got == label:
            return der
    found = ", ".join(sorted({g for g, _ in blocks})) or "no PEM block"
    raise InvalidKey(f"expected a PEM '{label}' block, found {found}")


def _alg_id(oid: str, params: bytes) -> bytes:
    return _der.sequence(_der.oid(oid), params)


def encrypt_pkcs8(pkcs8_der: bytes, password: bytes) -> bytes:
    """PBES2/scrypt/SM4-CBC ``EncryptedPrivateKeyInfo`` DER; the password must be at least 8 bytes."""
    password = _check_password(password)
    if len(password) < MIN_PASSWORD_LEN:
        raise InvalidInput(f"the key password must be at least {MIN_PASSWORD_LEN} bytes")
    salt = os.urandom(_SALT_LEN)
    iv = os.urandom(16)
    key = Scrypt(salt=salt, length=16, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(password)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(pkcs8_der) + padder.finalize()
    enc = Cipher(algorithms.SM4(key), modes.CBC(iv)).encryptor()
    ciphertext = enc.update(padded) + enc.finalize()
    kdf = _alg_id(
        _OID_SCRYPT,
        _der.sequence(
            _der.octet_string(salt), _der.integer(SCRYPT_N), _der.integer(SCRYPT_R), _der.integer(SCRYPT_P)
        ),
    )
    scheme = _alg_id(_OID_SM4_CBC, _der.octet_string(iv))
    return _der.sequence(_alg_id(_OID_PBES2, _der.sequence(kdf, scheme)), _der.octet_string(ciphertext))


def unsafe_unencrypted_private_pem(pkcs8_der: bytes) -> bytes:
    """A plaintext ``PRIVATE KEY`` PEM: anyone who reads the file holds the key.  Development and tests only."""
    return pem_encode(pkcs8_der, "PRIVATE KEY")


def _check_password(password: bytes) -> bytes:
    if password is None:
        raise InvalidInput("a key password is required (an unencrypted key needs the explicitly unsafe call)")
    if isinstance(password, str):
        password = password.encode("utf-8")
    if not isinstance(password, (bytes, bytearray)) or not password:
        raise InvalidInput("key password must be non-empty")
    if len(password) > 1024:
        raise InvalidInput("key password is longer than 1024 bytes")
    return bytes(password)


def _derive(kdf_oid: str, kdf_params: bytes, password: bytes, key_len: int) -> bytes:
    items = _der.parse_sequence(kdf_params)
    if kdf_oid == _OID_SCRYPT:
        if len(items) < 4 or items[0][0] != _der.OCTET_STRING:
            raise InvalidKey("malformed scrypt parameters")
        salt = items[0][1]
        n, r, p = (_der.parse_integer(v) for _, v in items[1:4])
        check_scrypt_cost(n, r, p)
        return Scrypt(salt=salt, length=key_len, n=n, r=r, p=p).derive(password)
    if kdf_oid == _OID_PBKDF2:
        if len(items) < 2 or items[0][0] != _der.OCTET_STRING or items[1][0] != _der.INTEGER:
            raise InvalidKey("malformed PBKDF2 parameters")
        salt = items[0][1]
        iterations = _der.parse_integer(items[1][1])
        prf: type[hashes.HashAlgorithm] = hashes.SHA1
        for tag, value in items[2:]:
            if tag == _der.SEQUENCE:
                prf_oid = _der.decode_oid(_der.expect(value, _der.OID)[0])
                if prf_oid not in _PRFS:
                    raise InvalidKey(f"unsupported PBKDF2 PRF {prf_oid}")
                prf = _PRFS[prf_oid]
        check_pbkdf2_cost(iterations)
        return PBKDF2HMAC(algorithm=prf(), length=key_len, salt=salt, iterations=iterations).derive(password)
    raise InvalidKey(f"unsupported key derivation function {kdf_oid}")


def decrypt_pkcs8(encrypted_der: bytes, password: bytes) -> bytes:
    """Decrypt an ``EncryptedPrivateKeyInfo``; raises :class:`WrongPassword`."""
    password = _check_password(password)
    try:
        outer = _der.parse_sequence(encrypted_der)
        if len(outer) != 2 or outer[0][0] != _der.SEQUENCE or outer[1][0] != _der.OCTET_STRING:
            raise InvalidKey("malformed EncryptedPrivateKeyInfo")
        alg_oid_v, pos = _der.expect(outer[0][1], _der.OID)
        if _der.decode_oid(alg_oid_v) != _OID_PBES2:
            raise InvalidKey("only PBES2-encrypted private keys are supported")
        _, pbes2_params, _ = _der.read_tlv(outer[0][1], pos)
        kdf, scheme = _der.parse_sequence(_der.tlv(_der.SEQUENCE, pbes2_params))
        kdf_oid_v, kpos = _der.expect(kdf[1], _der.OID)
        _, kdf_params, _ = _der.read_tlv(kdf[1], kpos)
        cipher_oid_v, cpos = _der.expect(scheme[1], _der.OID)
        iv, _ = _der.expect(scheme[1], _der.OCTET_STRING, cpos)
        cipher_oid = _der.decode_oid(cipher_oid_v)
        if cipher_oid not in _CIPHERS:
            raise InvalidKey(f"unsupported key-file cipher {cipher_oid}")
        algorithm, key_len = _CIPHERS[cipher_oid]
        if len(iv) != 16:
            raise InvalidKey("key-file cipher IV must be 16 bytes")
        key = _derive(_der.decode_oid(kdf_oid_v), _der.tlv(_der.SEQUENCE, kdf_params), password, key_len)
    except ValueError as exc:  # _der errors and bad parameter values
        if isinstance(exc, InvalidKey):
            raise
        raise InvalidKey(f"malformed encrypted private key: {exc}") from exc
    dec = Cipher(algorithm(key), modes.CBC(iv)).decryptor()
    ciphertext = outer[1][1]
    if not ciphertext or len(ciphertext) % 16:
        raise InvalidKey("encrypted private key has a truncated ciphertext")
    padded = dec.update(ciphertext) + dec.finalize()
    try:
        unpadder = padding.PKCS7(128).unpadder()
        plain = unpadder.update(padded) + unpadder.finalize()
        _der.parse_sequence(plain)
    except ValueError as exc:
        raise WrongPassword("wrong password for the encrypted private key") from exc
    return plain


def load_private_pkcs8(data: bytes | str, password: bytes | None) -> bytes:
    """PKCS#8 DER from a PEM that holds either an encrypted or a plain private key."""
    blocks = dict(pem_blocks(data))
    if "ENCRYPTED PRIVATE KEY" in blocks:
        if password is None:
            raise WrongPassword("the private key is encrypted: a password is required")
        return decrypt_pkcs8(blocks["ENCRYPTED PRIVATE KEY"], password)
    if "PRIVATE KEY" in blocks:
        return blocks["PRIVATE KEY"]
    if "EC PRIVATE KEY" in blocks:
        raise InvalidKey("legacy 'EC PRIVATE KEY' files are not supported; convert with `openssl pkcs8 -topk8`")
    raise InvalidKey("no PKCS#8 private key PEM block found")
