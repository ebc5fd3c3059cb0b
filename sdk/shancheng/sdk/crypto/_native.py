"""The native SM2 path: Tongsuo (an OpenSSL fork) through ``tongsuopy``.

Private module.  Everything that touches ``tongsuopy`` lives here so the
backend can be swapped (for example for OpenSSL 3 through its own binding)
without touching the public API in :mod:`shancheng.sdk.crypto`.

Signing and verifying work on the SM2 digest ``e = SM3(Z_A || M)`` which the
caller computes (see :func:`shancheng.sdk.crypto.sm2.sm2_message_digest`);
``EVP_PKEY_sign`` on an SM2 key treats its input as ``e``.  That gives us an
explicit distinguishing ID on a binding that does not expose
``EVP_PKEY_CTX_set1_id``, at full native speed.  Nonces are drawn by
OpenSSL's ``RAND_priv_bytes`` DRBG (a CSPRNG) inside ``sm2_sign``.
"""

from __future__ import annotations

from typing import Any

from tongsuopy.backends.tongsuo.backend import backend as _backend
from tongsuopy.crypto import serialization as _ser
from tongsuopy.crypto.asymciphers import ec as _ec
from tongsuopy.crypto.exceptions import UnsupportedAlgorithm as _Unsupported

from ..errors import DecryptionError, InvalidKey, InvalidSignature

_lib = _backend._lib
_ffi = _backend._ffi

NativePrivateKey = Any  # tongsuopy _EllipticCurvePrivateKey
NativePublicKey = Any  # tongsuopy _EllipticCurvePublicKey

# Upper bound of a DER SM2 signature: SEQUENCE(2 + 2 * (2 + 33)) = 72 bytes.
_MAX_SIG_LEN = 72


def _as_sm2(evp_pkey: Any) -> None:
    """Make sure OpenSSL treats the key as SM2, not as ECDSA on the SM2 curve."""
    if _lib.EVP_PKEY_is_sm2(evp_pkey) != 1:
        raise InvalidKey("not an SM2 key (the curve is not SM2 / 1.2.156.10197.1.301)")
    if _lib.EVP_PKEY_id(evp_pkey) != _lib.EVP_PKEY_SM2:
        _lib.EVP_PKEY_set_alias_type(evp_pkey, _lib.EVP_PKEY_SM2)


def _check_private(key: Any) -> NativePrivateKey:
    if not isinstance(key, _ec.EllipticCurvePrivateKey) or not isinstance(key.curve, _ec.SM2):
        raise InvalidKey("not an SM2 private key")
    _as_sm2(key._evp_pkey)
    return key


def _check_public(key: Any) -> NativePublicKey:
    if not isinstance(key, _ec.EllipticCurvePublicKey) or not isinstance(key.curve, _ec.SM2):
        raise InvalidKey("not an SM2 public key")
    _as_sm2(key._evp_pkey)
    return key


def generate() -> NativePrivateKey:
    return _check_private(_ec.generate_private_key(_ec.SM2()))


def private_from_int(value: int) -> NativePrivateKey:
    return _check_private(_ec.derive_private_key(value, _ec.SM2()))


def private_value(key: NativePrivateKey) -> int:
    return int(key.private_numbers().private_value)


def public_key(key: NativePrivateKey) -> NativePublicKey:
    return _check_public(key.public_key())


def public_from_point(point: bytes) -> NativePublicKey:
    try:
        pub = _ec.EllipticCurvePublicKey.from_encoded_point(_ec.SM2(), point)
    except ValueError as exc:
        raise InvalidKey("not a point on the SM2 curve") from exc
    return _check_public(pub)


def public_point(key: NativePublicKey) -> bytes:
    return bytes(key.public_bytes(_ser.Encoding.X962, _ser.PublicFormat.UncompressedPoint))


def private_pkcs8_der(key: NativePrivateKey) -> bytes:
    return bytes(key.private_bytes(_ser.Encoding.DER, _ser.PrivateFormat.PKCS8, _ser.NoEncryption()))


def private_from_pkcs8_der(der: bytes) -> NativePrivateKey:
    try:
        key = _ser.load_der_private_key(der, password=None)
    except (ValueError, TypeError, _Unsupported) as exc:
        raise InvalidKey("not a PKCS#8 private key") from exc
    return _check_private(key)


def public_spki_der(key: NativePublicKey) -> bytes:
    return bytes(key.public_bytes(_ser.Encoding.DER, _ser.PublicFormat.SubjectPublicKeyInfo))


def public_from_spki_der(der: bytes) -> NativePublicKey:
    try:
        key = _ser.load_der_public_key(der)
    except (ValueError, TypeError, _Unsupported) as exc:
        raise InvalidKey("not a SubjectPublicKeyInfo public key") from exc
    return _check_public(key)


def _pkey_ctx(key: Any) -> Any:
    ctx = _lib.EVP_PKEY_CTX_new(key._evp_pkey, _ffi.NULL)
    _backend.openssl_assert(ctx != _ffi.NULL)
    return _ffi.gc(ctx, _lib.EVP_PKEY_CTX_free)


def sign_digest(key: NativePrivateKey, e: bytes) -> bytes:
    """SM2-sign the 32-byte digest ``e``; returns a DER signature."""
    ctx = _pkey_ctx(key)
    _backend.openssl_assert(_lib.EVP_PKEY_sign_init(ctx) == 1)
    siglen = _ffi.new("size_t *", _MAX_SIG_LEN)
    buf = _ffi.new("unsigned char[]", _MAX_SIG_LEN)
    res = _lib.EVP_PKEY_sign(ctx, buf, siglen, e, len(e))
    _backend.openssl_assert(res == 1)
    return bytes(_ffi.buffer(buf)[: siglen[0]])


def verify_digest(key: NativePublicKey, signature: bytes, e: bytes) -> None:
    """Raise :class:`InvalidSignature` unless ``signature`` is valid for ``e``."""
    if len(signature) > _MAX_SIG_LEN:
        raise InvalidSignature("SM2 signature is longer than a DER signature can be")
    ctx = _pkey_ctx(key)
    _backend.openssl_assert(_lib.EVP_PKEY_verify_init(ctx) == 1)
    res = _lib.EVP_PKEY_verify(ctx, signature, len(signature), e, len(e))
    if res != 1:
        _backend._consume_errors()
        raise InvalidSignature("SM2 signature does not verify")


def encrypt_asn1(key: NativePublicKey, plaintext: bytes) -> bytes:
    """GB/T 32918.4 encryption; OpenSSL's output is the ASN.1 C1C3C2 form."""
    ctx = _pkey_ctx(key)
    _backend.openssl_assert(_lib.EVP_PKEY_encrypt_init(ctx) == 1)
    outlen = _ffi.new("size_t *")
    _backend.openssl_assert(_lib.EVP_PKEY_encrypt(ctx, _ffi.NULL, outlen, plaintext, len(plaintext)) == 1)
    buf = _ffi.new("unsigned char[]", outlen[0])
    _backend.openssl_assert(_lib.EVP_PKEY_encrypt(ctx, buf, outlen, plaintext, len(plaintext)) == 1)
    return bytes(_ffi.buffer(buf)[: outlen[0]])


def decrypt_asn1(key: NativePrivateKey, ciphertext: bytes) -> bytes:
    ctx = _pkey_ctx(key)
    _backend.openssl_assert(_lib.EVP_PKEY_decrypt_init(ctx) == 1)
    outlen = _ffi.new("size_t *")
    if _lib.EVP_PKEY_decrypt(ctx, _ffi.NULL, outlen, ciphertext, len(ciphertext)) != 1:
        _backend._consume_errors()
        raise DecryptionError("SM2 ciphertext could not be decrypted")
    buf = _ffi.new("unsigned char[]", max(outlen[0], 1))
    if _lib.EVP_PKEY_decrypt(ctx, buf, outlen, ciphertext, len(ciphertext)) != 1:
        _backend._consume_errors()
        raise DecryptionError("SM2 ciphertext could not be decrypted")
    return bytes(_ffi.buffer(buf)[: outlen[0]])
