"""What a data-sharing staff member signs, and the ids in an organisation's namespace.

The staff member signs M = SM3(abi.encode(ACTIVITY_TAG, chain id, contract, record)) (:func:`activity_preimage`).
Identifiers (dataset, activity, authorisation) are 32 bytes whose first 8 are the creating organisation's id.

>>> namespaced_id(3, bytes(24))[:8].hex()
'0000000000000003'
"""

from __future__ import annotations

import secrets
from typing import Any

from eth_abi.abi import encode
from eth_hash.auto import keccak

from ...client.contracts import contract_address
from ...errors import InvalidInput

__all__ = [
    "ACTIVITY_RECORD_TYPE",
    "ACTIVITY_TAG",
    "ZERO32",
    "activity_preimage",
    "namespaced_id",
]

ACTIVITY_TAG = keccak(b"shancheng.datasharing.Activity.v1")
ACTIVITY_RECORD_TYPE = (
    "(bytes32,uint8,bytes32,uint32,uint64,uint64,bytes32,uint64,bytes32,bytes32,address,bytes32,bytes32)"
)
ZERO32 = bytes(32)
_UINT64 = 1 << 64
_NAMESPACE_BYTES = 8


def activity_preimage(chain_id: int, contract: bytes | str, record: tuple[Any, ...]) -> bytes:
    """abi.encode(ACTIVITY_TAG, chain id, contract, record): the staff member signs M = SM3 of these bytes."""
    return encode(["bytes32", "uint256", "address", ACTIVITY_RECORD_TYPE],
                  [ACTIVITY_TAG, chain_id, contract_address(contract), record])


def namespaced_id(org_id: int, entropy: bytes | None = None) -> bytes:
    """A 32-byte data-sharing id in organisation ``org_id``'s namespace: the org id (8 bytes, big-endian) and 24
    bytes of ``entropy`` (its first 24 bytes; e.g. a hash of an off-chain id) or, left out, of a CSPRNG."""
    if not 0 < org_id < _UINT64:
        raise InvalidInput("an organisation id is a positive 64-bit integer")
    tail = secrets.token_bytes(32 - _NAMESPACE_BYTES) if entropy is None else bytes(entropy[:32 - _NAMESPACE_BYTES])
    if len(tail) != 32 - _NAMESPACE_BYTES:
        raise InvalidInput(f"an id needs {32 - _NAMESPACE_BYTES} bytes of entropy")
    return org_id.to_bytes(_NAMESPACE_BYTES, "big") + tail


def _id32(value: bytes | None, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32 or value == ZERO32:
        raise InvalidInput(f"{what} must be 32 non-zero bytes")
    return value


def _new_id(value: bytes | None, what: str, org_id: int) -> bytes:
    """``value`` checked to be in ``org_id``'s namespace, or a fresh id there."""
    if value is None:
        return namespaced_id(org_id)
    _id32(value, what)
    if int.from_bytes(value[:_NAMESPACE_BYTES], "big") != org_id:
        raise InvalidInput(f"{what} must start with this organisation's id ({org_id}, 8 bytes big-endian): "
                           "ids are in their owner's namespace")
    return value
