"""SM2 (GB/T 32918-2016) signatures and public-key encryption.

Signatures are DER ``SEQUENCE { r INTEGER, s INTEGER }`` over
``e = SM3(Z_A || M)`` where ``Z_A = SM3(ENTL_A || ID_A || a || b || x_G || y_G
|| x_A || y_A)``; the distinguishing ID defaults to
:data:`DEFAULT_UID` (GM/T 0009-2012), exactly as ``openssl pkeyutl -digest sm3
-pkeyopt distid:1234567812345678`` computes it.

Encryption follows GB/T 32918.4 with the ciphertext laid out as
``C1 || C3 || C2`` (``C1 = 04 || x1 || y1``, ``C3 = SM3(x2 || M || y2)``).
"""

from __future__ import annotations

import functools
from typing import Final

from ..errors import DecryptionError, InvalidInput, InvalidKey, InvalidSignature
from . import _der, _native
from .pem import encrypt_pkcs8, load_private_pkcs8, pem_decode, pem_encode, unsafe_unencrypted_private_pem
from .sm3 import new_sm3, sm3

__all__ = [
    "DEFAULT_UID",
    "SM2_CURVE_ORDER",
    "SM2PrivateKey",
    "SM2PublicKey",
    "signature_from_raw",
    "signature_to_raw",
    "sm2_message_digest",
    "sm2_z_digest",
]

DEFAULT_UID: Final = b"1234567812345678"
MAX_UID_LEN: Final = 8191  # ENTL is a 16-bit count of bits
MAX_PLAINTEXT_LEN: Final = 1 << 20

# GB/T 32918.5 recommended curve parameters.
_A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
_B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
_GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
_GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0
SM2_CURVE_ORDER: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
_CURVE_BYTES: Final = b"".join(v.to_bytes(32, "big") for v in (_A, _B, _GX, _GY))


def _check_uid(uid: bytes) -> bytes:
    if not isinstance(uid, (bytes, bytearray)):
        raise InvalidInput("SM2 user ID must be bytes")
    if len(uid) > MAX_UID_LEN:
        raise InvalidInput(f"SM2 user ID is longer than {MAX_UID_LEN} bytes")
    return bytes(uid)


@functools.lru_cache(maxsize=4096)
def sm2_z_digest(public_point: bytes, uid: bytes = DEFAULT_UID) -> bytes:
    """Z_A for an uncompressed public point ``04 || x || y`` and user ID."""
    uid = _check_uid(uid)
    if len(public_point) != 65 or public_point[0] != 4:
        raise InvalidKey("SM2 public point must be 65 bytes, 04 || x || y")
    entl = (len(uid) * 8).to_bytes(2, "big")
    return sm3(entl + uid + _CURVE_BYTES + public_point[1:])


def sm2_message_digest(public_point: bytes, data: bytes, uid: bytes = DEFAULT_UID) -> bytes:
    """e = SM3(Z_A || M): the value an SM2 signature actually signs."""
    h = new_sm3(sm2_z_digest(public_point, uid))
    h.update(data)
    return h.digest()


def signature_to_raw(der: bytes) -> bytes:
    """Strict DER ``SEQUENCE { r, s }`` to 64-byte ``r || s``."""
    items = _der.parse_sequence(der)
    if len(items) != 2 or any(tag != _der.INTEGER for tag, _ in items):
        raise InvalidInput("SM2 signature must be a DER SEQUENCE of two INTEGERs")
    r, s = (_der.parse_integer(v) for _, v in items)
    if not (0 < r < SM2_CURVE_ORDER and 0 < s < SM2_CURVE_ORDER):
        raise InvalidInput("SM2 signature r or s is out of range [1, n-1]")
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def signature_from_raw(raw: bytes) -> bytes:
    """64-byte ``r || s`` to DER."""
    if len(raw) != 64:
        raise InvalidInput("raw SM2 signature must be 64 bytes, r || s")
    r = int.from_bytes(raw[:32], "big")
    s = int.from_bytes(raw[32:], "big")
    if not (0 < r < SM2_CURVE_ORDER and 0 < s < SM2_CURVE_ORDER):
        raise InvalidInput("SM2 signature r or s is out of range [1, n-1]")
    return _der.sequence(_der.integer(r), _der.integer(s))


class SM2PublicKey:
    """An SM2 public key.  Construct with :meth:`from_bytes` or :meth:`from_pem`."""

    __slots__ = ("_native", "_point")

    def __init__(self, _native_key: _native.NativePublicKey) -> None:
        self._native = _native_key
        self._point = _native.public_point(_native_key)

    # -- encodings -------------------------------------------------------
    @classmethod
    def from_bytes(cls, data: bytes) -> SM2PublicKey:
        """From the uncompressed point ``04 || x || y`` (65 bytes) or raw ``x || y`` (64)."""
        if not isinstance(data, (bytes, bytearray)):
            raise InvalidKey("SM2 public key must be bytes")
        data = bytes(data)
        if len(data) == 64:
            data = b"\x04" + data
        if len(data) != 65 or data[0] != 4:
            raise InvalidKey("SM2 public key must be 65 bytes (04 || x || y) or 64 bytes (x || y)")
        return cls(_native.public_from_point(data))

    def to_bytes(self) -> bytes:
        """The uncompressed point ``04 || x || y``."""
        return self._point

    @classmethod
    def from_der(cls, data: bytes) -> SM2PublicKey:
        return cls(_native.public_from_spki_der(data))

    def to_der(self) -> bytes:
        """DER SubjectPublicKeyInfo (id-ecPublicKey with the SM2 curve OID)."""
        return _native.public_spki_der(self._native)

    @classmethod
    def from_pem(cls, data: bytes | str) -> SM2PublicKey:
        return cls.from_der(pem_decode(data, "PUBLIC KEY"))

    def to_pem(self) -> bytes:
        return pem_encode(self.to_der(), "PUBLIC KEY")

    # -- operations ------------------------------------------------------
    def verify(self, signature: bytes, data: bytes, *, uid: bytes = DEFAULT_UID) -> None:
        """Raise :class:`InvalidSignature` unless ``signature`` (DER) signs ``data``."""
        if not isinstance(signature, (bytes, bytearray)) or not isinstance(data, (bytes, bytearray)):
            raise InvalidSignature("SM2 signature and data must be bytes")
        _native.verify_digest(self._native, bytes(signature), sm2_message_digest(self._point, data, uid))

    def verify_digest(self, signature: bytes, e: bytes) -> None:
        """Verify against a precomputed ``e = SM3(Z_A || M)`` (the counterpart of ``sign_digest``)."""
        if len(e) != 32:
            raise InvalidSignature("SM2 digest must be 32 bytes")
        _native.verify_digest(self._native, bytes(signature), bytes(e))

    def encrypt(self, plaintext: bytes) -> bytes:
        """GB/T 32918.4 encryption; returns ``C1 || C3 || C2`` (97 + len bytes)."""
        if not isinstance(plaintext, (bytes, bytearray)) or not plaintext:
            raise InvalidInput("SM2 plaintext must be non-empty bytes")
        if len(plaintext) > MAX_PLAINTEXT_LEN:
            raise InvalidInput(f"SM2 plaintext is longer than {MAX_PLAINTEXT_LEN} bytes")
        return sm2_ciphertext_from_asn1(_native.encrypt_asn1(self._native, bytes(plaintext)))

    def sm3_address(self) -> bytes:
        """The last 20 bytes of SM3(x || y): the account the GM precompile returns."""
        return sm3(self._point[1:])[-20:]

    # -- value semantics ---------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, SM2PublicKey) and other._point == self._point

    def __hash__(self) -> int:
        return hash(self._point)

    def __repr__(self) -> str:
        return f"SM2PublicKey({self._point.hex()[:18]}…)"


class SM2PrivateKey:
    """An SM2 private key.  Its value never appears in ``repr`` or logs."""

    __slots__ = ("_native", "_public")

    def __init__(self, _native_key: _native.NativePrivateKey) -> None:
        self._native = _native_key
        self._public = SM2PublicKey(_native.public_key(_native_key))

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        """A new key from OpenSSL's CSPRNG."""
        return cls(_native.generate())

    @classmethod
    def from_int(cls, value: int) -> SM2PrivateKey:
        """From the private scalar ``d`` (1 <= d <= n-2); for test vectors and imports."""
        if not isinstance(value, int) or not 1 <= value <= SM2_CURVE_ORDER - 2:
            raise InvalidKey("SM2 private scalar must be in [1, n-2]")
        return cls(_native.private_from_int(value))

    def to_int(self) -> int:
        return _native.private_value(self._native)

    def public_key(self) -> SM2PublicKey:
        return self._public

    def sign(self, data: bytes, *, uid: bytes = DEFAULT_UID) -> bytes:
        """DER SM2 signature over ``data`` (e = SM3(Z_A || data)), random nonce."""
        if not isinstance(data, (bytes, bytearray)):
            raise InvalidInput("data to sign must be bytes")
        return _native.sign_digest(self._native, sm2_message_digest(self._public._point, bytes(data), uid))

    def sign_digest(self, e: bytes) -> bytes:
        """Sign a precomputed ``e = SM3(Z_A || M)``.  Only for callers that computed Z_A themselves."""
        if len(e) != 32:
            raise InvalidInput("SM2 digest must be 32 bytes")
        return _native.sign_digest(self._native, bytes(e))

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Decrypt ``C1 || C3 || C2``; raises :class:`DecryptionError` on any failure."""
        if not isinstance(ciphertext, (bytes, bytearray)) or len(ciphertext) < 98:
            raise DecryptionError("SM2 ciphertext is too short")
        if len(ciphertext) > 97 + MAX_PLAINTEXT_LEN:
            raise DecryptionError("SM2 ciphertext is too long")
        try:
            asn1 = sm2_ciphertext_to_asn1(bytes(ciphertext))
        except InvalidInput as exc:
            raise DecryptionError("SM2 ciphertext is malformed") from exc
        return _native.decrypt_asn1(self._native, asn1)

    # -- files -------------------------------------------------------------
    def to_der(self) -> bytes:
        """Unencrypted PKCS#8 DER.  Prefer :meth:`to_pem` with a password."""
        return _native.private_pkcs8_der(self._native)

    @classmethod
    def from_der(cls, data: bytes) -> SM2PrivateKey:
        return cls(_native.private_from_pkcs8_der(data))

    def to_pem(self, password: bytes) -> bytes:
        """Encrypted PKCS#8 PEM (PBES2 + scrypt + SM4-CBC); the password must be at least 8 bytes.

        See :mod:`shancheng.sdk.crypto.pem` for the exact parameters.  A plaintext key is only written by
        :meth:`to_pem_unsafe_unencrypted`.
        """
        return pem_encode(encrypt_pkcs8(self.to_der(), password), "ENCRYPTED PRIVATE KEY")

    def to_pem_unsafe_unencrypted(self) -> bytes:
        """Plaintext PKCS#8 PEM: whoever reads it holds the key (development and tests only)."""
        return unsafe_unencrypted_private_pem(self.to_der())

    @classmethod
    def from_pem(cls, data: bytes | str, password: bytes | None = None) -> SM2PrivateKey:
        return cls.from_der(load_private_pkcs8(data, password))

    def __repr__(self) -> str:
        return f"SM2PrivateKey(public={self._public.to_bytes().hex()[:18]}…)"

    def __reduce__(self) -> str:
        raise TypeError("SM2PrivateKey cannot be pickled; use to_pem(password)")


def sm2_ciphertext_from_asn1(asn1: bytes) -> bytes:
    """GM/T 0009 ASN.1 (as ``openssl pkeyutl -encrypt`` writes) to ``C1 || C3 || C2``."""
    items = _der.parse_sequence(asn1)
    if [t for t, _ in items] != [_der.INTEGER, _der.INTEGER, _der.OCTET_STRING, _der.OCTET_STRING]:
        raise DecryptionError("unexpected SM2 ciphertext structure from the backend")
    x = _der.parse_integer(items[0][1])
    y = _der.parse_integer(items[1][1])
    c3, c2 = items[2][1], items[3][1]
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big") + c3 + c2


def sm2_ciphertext_to_asn1(ct: bytes) -> bytes:
    """Raw ``C1 || C3 || C2`` to the GM/T 0009 ASN.1 form that OpenSSL reads."""
    if ct[0] != 4:
        raise InvalidInput("SM2 ciphertext C1 must be an uncompressed point")
    x = int.from_bytes(ct[1:33], "big")
    y = int.from_bytes(ct[33:65], "big")
    c3, c2 = ct[65:97], ct[97:]
    return _der.sequence(_der.integer(x), _der.integer(y), _der.octet_string(c3), _der.octet_string(c2))

