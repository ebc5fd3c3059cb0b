"""SM4 (GB/T 32907-2016) authenticated encryption for off-chain payloads.

:class:`SM4GCM` is the primitive (like ``cryptography``'s ``AESGCM``);
:func:`seal` / :func:`open_sealed` are the recipe to use: a random 96-bit
nonce from the OS CSPRNG and a version marker travel with the ciphertext::

    sealed = b"\\x01" || nonce(12) || ciphertext || tag(16)
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..errors import DecryptionError, InvalidInput

__all__ = ["SEAL_VERSION", "SM4GCM", "open_sealed", "seal"]

SEAL_VERSION = 1
_NONCE = 12
_TAG = 16
MAX_PAYLOAD = 64 * 1024 * 1024


class SM4GCM:
    """SM4 in Galois/Counter Mode with a 128-bit tag."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) != 16:
            raise InvalidInput("SM4 key must be 16 bytes")
        self._key = bytes(key)

    @staticmethod
    def generate_key() -> bytes:
        return os.urandom(16)

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None = None) -> bytes:
        """``ciphertext || tag``.  Never reuse a nonce under one key."""
        if len(nonce) != _NONCE:
            raise InvalidInput("SM4-GCM nonce must be 12 bytes")
        if len(data) > MAX_PAYLOAD:
            raise InvalidInput(f"SM4-GCM payload is larger than {MAX_PAYLOAD} bytes")
        enc = Cipher(algorithms.SM4(self._key), modes.GCM(nonce)).encryptor()
        if associated_data:
            enc.authenticate_additional_data(associated_data)
        ct = enc.update(data) + enc.finalize()
        return ct + enc.tag

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None = None) -> bytes:
        if len(nonce) != _NONCE or len(data) < _TAG:
            raise DecryptionError("SM4-GCM ciphertext or nonce is malformed")
        dec = Cipher(algorithms.SM4(self._key), modes.GCM(nonce, data[-_TAG:])).decryptor()
        if associated_data:
            dec.authenticate_additional_data(associated_data)
        try:
            return dec.update(data[:-_TAG]) + dec.finalize()
        except InvalidTag as exc:
            raise DecryptionError("SM4-GCM authentication failed") from exc

    def __repr__(self) -> str:
        return "SM4GCM(<key hidden>)"


def seal(key: bytes, plaintext: bytes, associated_data: bytes | None = None) -> bytes:
    """Encrypt and authenticate with a fresh random nonce; output is self-describing."""
    nonce = os.urandom(_NONCE)
    return bytes([SEAL_VERSION]) + nonce + SM4GCM(key).encrypt(nonce, plaintext, associated_data)


def open_sealed(key: bytes, sealed: bytes, associated_data: bytes | None = None) -> bytes:
    """Inverse of :func:`seal`; raises :class:`DecryptionError` on any tampering."""
    if len(sealed) < 1 + _NONCE + _TAG or sealed[0] != SEAL_VERSION:
        raise DecryptionError("not an SM4 sealed payload of a supported version")
    return SM4GCM(key).decrypt(sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :], associated_data)
