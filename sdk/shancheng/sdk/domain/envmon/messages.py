"""The signed messages of EnvMonitoring: station MNs, the anchor, registration and key-rotation preimages.

- **Stations** live in their operator organisation's namespace: the chain keys them by (operator org, MN), so no
  member can take an MN another operator uses. Reads default to the client's own organisation.
- **Registration**: the station key proves possession by signing M = SM3(``station_pop_preimage``) =
  SM3(abi.encode(STATION_POP_TAG, chain id, contract, operator org, mn, key)).
- **Anchor message**: the station's SM2 key (default user ID) signs M = SM3(``anchor_preimage``) with
  ``anchor_preimage = abi.encode(ANCHOR_TAG, chain id, contract, operator org, mn, batch)``, ``ANCHOR_TAG =
  keccak256("shancheng.env.HourlyBatch.v2")`` (as the contract's ``anchorPreimage`` view).
- **Key rotation**: M = SM3(abi.encode(KEY_ROTATION_TAG, chain id, contract, operator org, mn, old key, new key)),
  signed by the new key and, when the operator rotates, by the old key too; a regulator replaces a lost key with
  the new key's signature alone.
"""

from __future__ import annotations

from typing import Any

from eth_abi.abi import encode
from eth_hash.auto import keccak

from ...client.contracts import contract_address
from ...crypto import SM2PublicKey
from ...errors import InvalidInput
from ..staff import StaffSigner

__all__ = [
    "ANCHOR_TAG",
    "HOURLY_BATCH_TYPE",
    "KEY_ROTATION_TAG",
    "POLLUTANT_TYPE",
    "STATION_POP_TAG",
    "anchor_preimage",
    "code8",
    "key_rotation_preimage",
    "mn_bytes",
    "mn_text",
    "public_key64",
    "station_pop_preimage",
]

ANCHOR_TAG = keccak(b"shancheng.env.HourlyBatch.v2")
KEY_ROTATION_TAG = keccak(b"shancheng.env.station-key-rotation.v2")
STATION_POP_TAG = keccak(b"shancheng.env.station-key-possession.v1")
POLLUTANT_TYPE = "(bytes8,int64,int64,int64,uint16)"
HOURLY_BATCH_TYPE = f"(uint64,bytes32,uint32,uint64,uint64,uint8,{POLLUTANT_TYPE}[])"


def mn_bytes(mn: str) -> bytes:
    """The ``bytes24`` station key of an HJ 212 MN: 1-24 ASCII letters/digits, zero-padded on the right."""
    if not isinstance(mn, str) or not 1 <= len(mn) <= 24 or not mn.isascii() or not mn.isalnum():
        raise InvalidInput(f"MN {str(mn)[:40]!r} is not 1-24 ASCII letters or digits (HJ 212)")
    return mn.encode("ascii").ljust(24, b"\0")


def mn_text(raw: bytes) -> str:
    """The MN of a ``bytes24`` station key."""
    return bytes(raw).rstrip(b"\0").decode("ascii", "replace")


def code8(code: str) -> bytes:
    """The ``bytes8`` form of an HJ 212 pollutant code such as ``a34004`` (ASCII, zero-padded)."""
    if not isinstance(code, str) or not 1 <= len(code) <= 8 or not code.isascii() or not code.isprintable():
        raise InvalidInput(f"pollutant code {str(code)[:20]!r} is not 1-8 printable ASCII characters")
    return code.encode("ascii").ljust(8, b"\0")


def anchor_preimage(chain_id: int, contract: bytes | str, operator_org: int, mn: bytes,
                    batch: tuple[Any, ...]) -> bytes:
    """abi.encode(ANCHOR_TAG, chain id, contract, operator org, mn, batch): the station signs M = SM3 of these."""
    return encode(["bytes32", "uint256", "address", "uint64", "bytes24", HOURLY_BATCH_TYPE],
                  [ANCHOR_TAG, chain_id, contract_address(contract), operator_org, mn, batch])


def station_pop_preimage(chain_id: int, contract: bytes | str, operator_org: int, mn: bytes,
                         public_key: bytes) -> bytes:
    """What a station key signs (M = SM3 of these bytes) to prove possession when it is registered."""
    return encode(["bytes32", "uint256", "address", "uint64", "bytes24", "bytes"],
                  [STATION_POP_TAG, chain_id, contract_address(contract), operator_org, mn, public_key])


def key_rotation_preimage(chain_id: int, contract: bytes | str, operator_org: int, mn: bytes,
                          old_public_key: bytes, new_public_key: bytes) -> bytes:
    """What the new key (and, for the operator's rotation, the old key) signs (M = SM3 of these bytes) to replace
    ``old_public_key`` by ``new_public_key`` (64 bytes x||y each)."""
    return encode(["bytes32", "uint256", "address", "uint64", "bytes24", "bytes", "bytes"],
                  [KEY_ROTATION_TAG, chain_id, contract_address(contract), operator_org, mn, old_public_key, new_public_key])


def public_key64(key: StaffSigner | SM2PublicKey | bytes) -> bytes:
    """A station key as the contract stores it: 64 bytes x||y (from a signer, a public key, or 64/65 bytes)."""
    if isinstance(key, bytes | bytearray):
        return SM2PublicKey.from_bytes(bytes(key) if len(key) != 64 else b"\x04" + bytes(key)).to_bytes()[1:]
    pub = key if isinstance(key, SM2PublicKey) else key.public_key()
    return pub.to_bytes()[1:]
