"""What an evidence package proves about ``Governance`` from a state proof: an organisation's name, SM2 key and
status, and whether an author key is an active staff key of that organisation, at the anchoring block.

The values come from ``Governance``'s storage, proven against the block header's ``stateRoot`` with an
EIP-1186 proof (``eth_getProof``).  The storage layout below is the contract's (solc's ``storageLayout``;
``tests/contracts/test_governance.py::test_org_and_staff_storage_layout_is_what_offline_verifiers_read`` and the
evidence tests fail if the contract changes it)::

    slot 2  mapping(uint64 => Org)     _orgs    Org   {string name; uint256 roles; bytes publicKey; bool active; ...}
    slot 4  mapping(address => Staff)  _staff   Staff {uint64 orgId; uint256 roles; bool active; bytes publicKey}

A struct in a mapping starts at ``keccak256(key ‖ slot)``; its fields take one slot each here.  A ``bytes`` or
``string`` field of 32 bytes or more stores ``2·len + 1`` in its slot and the data from ``keccak256(slot)`` on;
a shorter one stores the data left-aligned with ``2·len`` in the lowest byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..chainproof.state import bytes_slots, mapping_slot, read_bytes
from ..crypto import SM2PublicKey
from ..errors import InvalidKey, VerificationError

__all__ = [
    "ORGS_SLOT",
    "STAFF_SLOT",
    "GovernanceStateError",
    "ProvenOrg",
    "ProvenStaff",
    "org_name_slot",
    "org_slots",
    "package_state_slots",
    "read_org",
    "read_staff",
    "staff_slots",
]

ORGS_SLOT = 2
STAFF_SLOT = 4
_ORG_NAME, _ORG_KEY, _ORG_ACTIVE = 0, 2, 3
_STAFF_ORG, _STAFF_ACTIVE, _STAFF_KEY = 0, 2, 3
_SM2_KEY_LEN = 64  # Governance stores x ‖ y (Sm2Key.isValid), without the 04 prefix


class GovernanceStateError(VerificationError):
    """The state proof does not establish what the package claims about an organisation or an author."""


@dataclass(frozen=True)
class ProvenOrg:
    org_id: int
    name: str
    public_key: SM2PublicKey
    active: bool


@dataclass(frozen=True)
class ProvenStaff:
    address: bytes
    org_id: int
    active: bool
    public_key: bytes  # as stored (x ‖ y), empty when the address is not registered


def _word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def _struct_base(key: bytes, slot: int) -> int:
    return int.from_bytes(mapping_slot(key.rjust(32, b"\0"), slot), "big")


def _bytes_slots(slot: int, length_word: int | None) -> list[int]:
    """The slots holding a bytes/string field whose slot value is ``length_word`` (None: not read yet)."""
    return [slot] if length_word is None else [slot, *bytes_slots(slot, length_word)]


def _read_bytes(values: Mapping[int, int], slot: int, what: str) -> bytes:
    _get(values, slot, what)
    data = read_bytes(values, slot)
    if data is None:
        raise GovernanceStateError(f"the state proof does not cover all the storage slots of {what}")
    return data


def _get(values: Mapping[int, int], slot: int, what: str) -> int:
    try:
        return values[slot]
    except KeyError:
        raise GovernanceStateError(f"the state proof does not cover {what} (storage slot 0x{slot:064x})") from None


def org_slots(org_id: int, *, name_word: int | None = None) -> list[int]:
    """Storage slots a package must prove for organisation ``org_id`` (the name's data slots once its length
    word is known)."""
    base = _struct_base(_word(org_id), ORGS_SLOT)
    return [
        *_bytes_slots(base + _ORG_NAME, name_word),
        *_bytes_slots(base + _ORG_KEY, 2 * _SM2_KEY_LEN + 1),
        base + _ORG_ACTIVE,
    ]


def staff_slots(author: SM2PublicKey) -> list[int]:
    """Storage slots a package must prove for an author key that is a staff key (address = SM3(x‖y)[12:])."""
    base = _struct_base(author.sm3_address(), STAFF_SLOT)
    return [base + _STAFF_ORG, base + _STAFF_ACTIVE, *_bytes_slots(base + _STAFF_KEY, 2 * _SM2_KEY_LEN + 1)]


def org_name_slot(org_id: int) -> int:
    return _struct_base(_word(org_id), ORGS_SLOT) + _ORG_NAME


def read_org(values: Mapping[int, int], org_id: int) -> ProvenOrg:
    """The organisation as Governance's proven storage holds it; refuses an unknown org or a malformed key."""
    base = _struct_base(_word(org_id), ORGS_SLOT)
    what = f"organisation {org_id}"
    key = _read_bytes(values, base + _ORG_KEY, f"{what}'s SM2 key")
    if len(key) != _SM2_KEY_LEN:
        raise GovernanceStateError(f"{what} has no SM2 key in Governance at the anchoring block")
    try:
        public_key = SM2PublicKey.from_bytes(b"\x04" + key)
    except InvalidKey as exc:
        raise GovernanceStateError(f"{what}'s stored SM2 key is not a valid point") from exc
    raw_name = _read_bytes(values, base + _ORG_NAME, f"{what}'s name")
    try:
        name = raw_name.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GovernanceStateError(f"{what}'s stored name is not UTF-8") from exc
    active = _get(values, base + _ORG_ACTIVE, f"{what}'s status") & 0xFF == 1
    return ProvenOrg(org_id=org_id, name=name, public_key=public_key, active=active)


def read_staff(values: Mapping[int, int], author: SM2PublicKey) -> ProvenStaff:
    """The staff entry of ``author``'s address as Governance's proven storage holds it."""
    address = author.sm3_address()
    base = _struct_base(address, STAFF_SLOT)
    what = f"staff 0x{address.hex()}"
    org_id = _get(values, base + _STAFF_ORG, f"{what}'s organisation") & ((1 << 64) - 1)
    active = _get(values, base + _STAFF_ACTIVE, f"{what}'s status") & 0xFF == 1
    key = _read_bytes(values, base + _STAFF_KEY, f"{what}'s key") if org_id else b""
    return ProvenStaff(address=address, org_id=org_id, active=active, public_key=key)


def package_state_slots(org_id: int, author: SM2PublicKey, *, org_key: SM2PublicKey, name_word: int) -> list[int]:
    """Every Governance slot an evidence package must prove for ``org_id`` and ``author``; ``name_word`` is the
    value of :func:`org_name_slot` (it tells how many slots the name takes)."""
    slots = org_slots(org_id, name_word=name_word)
    if author != org_key:
        slots += staff_slots(author)
    return slots
