"""Pickup codes: the patient's choice of pharmacy binds the claim of a circulating prescription.

When the issuing hospital circulates a prescription it draws a pickup code (80 random bits, 16 Crockford base32
characters) and gives it to the patient; the chain holds only the *pickup key*, the SM2 public key derived from
the code and the prescription id. The pharmacy the patient gives the code to derives the private key and signs

``P = SM3(abi.encode(PICKUP_TAG, chain_id, contract, rx_id, uint64 pharmacy_org, uint16 nonce))``

so the code itself never appears on chain or in the mempool, and a claim signed for one pharmacy and one nonce
can be neither replayed nor taken over by another pharmacy. 80 bits keep the code out of reach of an offline
search against the public key.

>>> code = normalise_pickup_code("k7q2-m9xd-a1b3-c4e5")
>>> code, format_pickup_code(code)
('K7Q2M9XDA1B3C4E5', 'K7Q2-M9XD-A1B3-C4E5')
>>> rx = bytes(8) + bytes(range(24))
>>> pickup_public_key(rx, "K7Q2-M9XD-A1B3-C4E5") == pickup_public_key(rx, "k7q2 m9xd a1b3 c4e5")
True
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from eth_abi.abi import encode
from eth_hash.auto import keccak

from ...crypto import SM2PrivateKey, SM2PublicKey, signature_from_raw, sm3
from ...crypto.sm2 import SM2_CURVE_ORDER
from ...errors import InvalidInput
from ..staff import sign_staff_message

__all__ = [
    "PICKUP_CODE_CHARS",
    "PICKUP_TAG",
    "InvalidPickupCode",
    "format_pickup_code",
    "new_pickup_code",
    "normalise_pickup_code",
    "pickup_key_hash",
    "pickup_preimage",
    "pickup_private_key",
    "pickup_public_key",
    "sign_pickup",
    "verify_claim_proof",
]

PICKUP_TAG = keccak(b"shancheng.rx.pickup.v1")
_KEY_TAG = b"shancheng.rx.pickup-key.v1"
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_ALIASES = str.maketrans({"I": "1", "L": "1", "O": "0"})
PICKUP_CODE_CHARS = 16  # 80 bits


class InvalidPickupCode(InvalidInput):
    """A pickup code that is not 16 Crockford base32 characters."""


def new_pickup_code() -> str:
    """A fresh pickup code from the CSPRNG, grouped for reading out (``XXXX-XXXX-XXXX-XXXX``)."""
    return format_pickup_code("".join(secrets.choice(_ALPHABET) for _ in range(PICKUP_CODE_CHARS)))


def normalise_pickup_code(code: str) -> str:
    """The 16 characters of ``code``: case, spaces and dashes ignored, I/L read as 1 and O as 0."""
    if not isinstance(code, str):
        raise InvalidPickupCode("a pickup code is text")
    text = code.upper().replace("-", "").replace(" ", "").translate(_ALIASES)
    if len(text) != PICKUP_CODE_CHARS or any(c not in _ALPHABET for c in text):
        raise InvalidPickupCode(f"a pickup code is {PICKUP_CODE_CHARS} letters and digits (e.g. K7Q2-M9XD-A1B3-C4E5)")
    return text


def format_pickup_code(code: str) -> str:
    """``code`` in groups of four, as the patient's slip shows it."""
    text = normalise_pickup_code(code)
    return "-".join(text[i : i + 4] for i in range(0, PICKUP_CODE_CHARS, 4))


def pickup_private_key(rx_id: bytes, code: str) -> SM2PrivateKey:
    """The SM2 key of ``code`` for prescription ``rx_id``: d = 1 + SM3(tag || rx_id || code) mod (n - 2)."""
    if not isinstance(rx_id, bytes) or len(rx_id) != 32:
        raise InvalidInput("a prescription id is 32 bytes")
    digest = sm3(_KEY_TAG + rx_id + normalise_pickup_code(code).encode("ascii"))
    return SM2PrivateKey.from_int(1 + int.from_bytes(digest, "big") % (SM2_CURVE_ORDER - 2))


def pickup_public_key(rx_id: bytes, code: str) -> bytes:
    """The pickup key the hospital puts on chain: 64 bytes x || y."""
    return pickup_private_key(rx_id, code).public_key().to_bytes()[1:]


def pickup_key_hash(public_key: bytes) -> bytes:
    """keccak256 of a pickup key, as the transition Context carries it (zero bytes when there is none)."""
    return keccak(public_key) if public_key else bytes(32)


def pickup_preimage(chain_id: int, contract: str | bytes, rx_id: bytes, pharmacy_org: int, nonce: int) -> bytes:
    """The SM3 preimage of the pickup message P (``PrescriptionFlow.pickupPreimage``)."""
    return encode(["bytes32", "uint256", "address", "bytes32", "uint64", "uint16"],
                  [PICKUP_TAG, chain_id, contract, rx_id, pharmacy_org, nonce])


def sign_pickup(rx_id: bytes, code: str, *, chain_id: int, contract: str | bytes, pharmacy_org: int,
                nonce: int) -> tuple[bytes, bytes]:
    """The PickupProof (r, s) of ``code`` for ``pharmacy_org``'s claim at the prescription's ``nonce``."""
    message = sm3(pickup_preimage(chain_id, contract, rx_id, pharmacy_org, nonce))
    _, r, s = sign_staff_message(pickup_private_key(rx_id, code), message)
    return r, s


def verify_claim_proof(chain_id: int, contract: str | bytes, event_args: Mapping[str, Any]) -> None:
    """Check an RxClaimProof event off chain (the stock-EVM path, where the contract only records the proof):
    the pickup key's signature over the pickup message of that pharmacy and nonce. Raises
    :class:`~shancheng.sdk.errors.InvalidSignature`."""
    message = sm3(pickup_preimage(chain_id, contract, event_args["rxId"], int(event_args["pharmacyOrg"]),
                                  int(event_args["nonce"])))
    key = SM2PublicKey.from_bytes(b"\x04" + bytes(event_args["pickupKey"]))
    key.verify(signature_from_raw(bytes(event_args["r"]) + bytes(event_args["s"])), message)
