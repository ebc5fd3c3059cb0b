"""Staff and organisations on Governance: roles, staff signers and their addresses, the staff signatures domain
contracts check, and staff registration with its proof of possession.

>>> from shancheng.sdk.crypto import SM2PrivateKey
>>> doctor = SM2PrivateKey.generate()
>>> len(staff_address(doctor)) == 42 and staff_address(doctor).startswith("0x")
True
"""

from __future__ import annotations

from enum import IntFlag
from typing import Protocol, runtime_checkable

from eth_abi.abi import encode
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

from ..client import Client, Receipt
from ..crypto import DEFAULT_UID, SM2PublicKey, signature_from_raw, signature_to_raw, sm3
from ..errors import InvalidInput, InvalidSignature
from .transactions import send_checked

__all__ = [
    "STAFF_POP_TAG",
    "OrgRole",
    "StaffRole",
    "StaffSigner",
    "checksum_address",
    "register_staff",
    "sign_staff_message",
    "staff_address",
    "verify_preimage_signature",
]

#: the domain tag of a staff key's proof of possession (Governance.STAFF_POP_TAG)
STAFF_POP_TAG = keccak(b"shancheng.governance.staff-key-possession.v1")

class OrgRole(IntFlag):
    """Organisation roles (contracts/src/lib/Roles.sol ``ORG_*``)."""

    HOSPITAL = 1 << 0
    PHARMACY = 1 << 1
    MANUFACTURER = 1 << 2
    DISTRIBUTOR = 1 << 3
    LOGISTICS = 1 << 4
    MONITORING_OPERATOR = 1 << 5
    REGULATOR = 1 << 6
    AUDITOR = 1 << 7
    DEPARTMENT = 1 << 8


class StaffRole(IntFlag):
    """Staff roles (contracts/src/lib/Roles.sol ``STAFF_*``)."""

    DOCTOR = 1 << 0
    PHARMACIST = 1 << 1
    DISPENSER = 1 << 2
    CHECKER = 1 << 3
    COURIER = 1 << 4
    OPERATOR = 1 << 5


@runtime_checkable
class StaffSigner(Protocol):
    """A staff member's SM2 signer: an :class:`~shancheng.sdk.crypto.SM2PrivateKey`, or anything (a hardware
    token, a signing service) with ``public_key()`` and a DER SM2 ``sign(data, *, uid)``."""

    def public_key(self) -> SM2PublicKey: ...

    def sign(self, data: bytes, *, uid: bytes = DEFAULT_UID) -> bytes: ...


def _public_key(signer: StaffSigner | SM2PublicKey) -> SM2PublicKey:
    if isinstance(signer, SM2PublicKey):
        return signer
    if not isinstance(signer, StaffSigner):
        raise InvalidInput("a staff signer needs public_key() and sign(data, *, uid) (e.g. an SM2PrivateKey)")
    pub = signer.public_key()
    if not isinstance(pub, SM2PublicKey):
        raise InvalidInput("a staff signer's public_key() must return an SM2PublicKey")
    return pub


def checksum_address(address: str | bytes) -> str:
    """The EIP-55 checksummed spelling of an address (eth-abi decodes addresses in lower case)."""
    return str(to_checksum_address(address))


def staff_address(signer: StaffSigner | SM2PublicKey) -> str:
    """The checksummed address of a staff member: the last 20 bytes of SM3(x || y) of their SM2 public key
    (``SM2PublicKey.sm3_address()``, what the GM precompile returns)."""
    return str(to_checksum_address(_public_key(signer).sm3_address()))


def sign_staff_message(signer: StaffSigner, message: bytes) -> tuple[str, bytes, bytes]:
    """The ``StaffSignature`` tuple (staff address, r, s) of ``signer``'s SM2 signature (default user ID) over
    ``message`` (the 32-byte M a domain contract rebuilds)."""
    raw = signature_to_raw(signer.sign(message, uid=DEFAULT_UID))
    return staff_address(signer), raw[:32], raw[32:]


def register_staff(client: Client, key: StaffSigner, roles: StaffRole | int, *, timeout: float = 120.0) -> Receipt:
    """Register ``key`` as a staff member of the client's organisation with ``roles``
    (``Governance.registerStaff``), signing the proof of possession the contract checks:
    SM2 over M = SM3(abi.encode(STAFF_POP_TAG, chain_id, governance, org_id, staff, roles, publicKey)).

    >>> register_staff(client, doctor_key, StaffRole.DOCTOR)   # doctest: +SKIP
    """
    roles = int(roles)
    if not 0 < roles < 1 << 6:
        raise InvalidInput("staff roles must be a non-empty combination of StaffRole flags")
    pub = _public_key(key)
    staff = staff_address(pub)
    point = pub.to_bytes()[1:]
    gov = client.governance
    message = sm3(encode(["bytes32", "uint256", "address", "uint64", "address", "uint256", "bytes"],
                         [STAFF_POP_TAG, client.chain_id, gov.address, client.org_id, staff, roles, point]))
    _, r, s = sign_staff_message(key, message)
    return send_checked(client, gov.call("registerStaff", staff, point, roles, r, s), timeout=timeout)


def verify_preimage_signature(public_key: bytes, preimage: bytes, r: bytes, s: bytes) -> None:
    """The auditor's off-chain check of an (r, s) a contract recorded: SM2 (default user ID) over
    M = SM3(``preimage``) by ``public_key`` (64 or 65 bytes). Raises :class:`InvalidSignature`."""
    if len(r) != 32 or len(s) != 32:
        raise InvalidSignature("r and s must be 32 bytes each")
    SM2PublicKey.from_bytes(public_key if len(public_key) != 64 else b"\x04" + public_key).verify(
        signature_from_raw(bytes(r) + bytes(s)), sm3(preimage))
