"""National cryptography for Shancheng Chain: SM2, SM3 and SM4.

The native path (Tongsuo/OpenSSL) is used for every SM2 operation; SM3 comes
from OpenSSL through :mod:`hashlib`; SM4 from ``cryptography``.

>>> from shancheng.sdk.crypto import SM2PrivateKey, sm3
>>> key = SM2PrivateKey.generate()
>>> sig = key.sign(b"record")
>>> key.public_key().verify(sig, b"record")   # raises InvalidSignature if not
>>> len(sm3(b"abc"))
32
"""

from ..errors import DecryptionError, InvalidKey, InvalidSignature, WrongPassword
from .sm2 import (
    DEFAULT_UID,
    SM2PrivateKey,
    SM2PublicKey,
    signature_from_raw,
    signature_to_raw,
    sm2_ciphertext_from_asn1,
    sm2_ciphertext_to_asn1,
    sm2_message_digest,
    sm2_z_digest,
)
from .sm3 import hmac_sm3, new_sm3, sm3
from .sm4 import SM4GCM, open_sealed, seal

__all__ = [
    "DEFAULT_UID",
    "SM4GCM",
    "DecryptionError",
    "InvalidKey",
    "InvalidSignature",
    "SM2PrivateKey",
    "SM2PublicKey",
    "WrongPassword",
    "hmac_sm3",
    "new_sm3",
    "open_sealed",
    "seal",
    "signature_from_raw",
    "signature_to_raw",
    "sm2_ciphertext_from_asn1",
    "sm2_ciphertext_to_asn1",
    "sm2_message_digest",
    "sm2_z_digest",
    "sm3",
]
