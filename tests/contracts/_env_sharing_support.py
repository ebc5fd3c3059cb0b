"""Messages, keys and governance steps for the EnvMonitoring and DataSharingLog contract tests.

The message a signer signs is M = SM3(preimage) with preimage = abi.encode(tag, chain id, contract, ...);
the contracts sign nothing themselves, so the preimage is built here independently with eth_abi
(and the tests compare it once with the contract's own ``...Preimage`` view).
"""

from __future__ import annotations

from typing import Any

from eth_abi import encode
from eth_utils import keccak

from shancheng.sdk.crypto import SM2PrivateKey, SM2PublicKey, signature_from_raw, sm3
from shancheng.testing import System
from shancheng.testing import deterministic_sm2_key as fixed_key  # noqa: F401 - re-exported for the tests

POLLUTANT_TYPE = "(bytes8,int64,int64,int64,uint16)"
HOURLY_BATCH_TYPE = f"(uint64,bytes32,uint32,uint64,uint64,uint8,{POLLUTANT_TYPE}[])"
ACTIVITY_RECORD_TYPE = (
    "(bytes32,uint8,bytes32,uint32,uint64,uint64,bytes32,uint64,bytes32,bytes32,address,bytes32,bytes32)"
)
ANCHOR_TAG = keccak(text="shancheng.env.HourlyBatch.v1")
KEY_ROTATION_TAG = keccak(text="shancheng.env.station-key-rotation.v1")
ACTIVITY_TAG = keccak(text="shancheng.datasharing.Activity.v1")


def mn_id(mn: str) -> bytes:
    """The bytes24 station key of an HJ 212 MN (ASCII, zero-padded on the right)."""
    raw = mn.encode("ascii")
    assert len(raw) <= 24
    return raw.ljust(24, b"\0")


def code8(code: str) -> bytes:
    """The bytes8 form of an HJ 212 pollutant code such as ``a34004``."""
    return code.encode("ascii").ljust(8, b"\0")


def sign_preimage(key: SM2PrivateKey, preimage: bytes) -> tuple[bytes, bytes]:
    """(r, s) of the SM2 signature (default user ID) over M = SM3(preimage)."""
    return System.sign_message(key, sm3(preimage))


def verify_preimage(public_key: bytes, preimage: bytes, r: bytes, s: bytes) -> None:
    """The off-chain check a stock-EVM auditor runs on a recorded (r, s); raises InvalidSignature."""
    SM2PublicKey.from_bytes(public_key).verify(signature_from_raw(r + s), sm3(preimage))


def anchor_preimage(chain_id: int, contract: str, mn: bytes, batch: tuple) -> bytes:
    return encode(
        ["bytes32", "uint256", "address", "bytes24", HOURLY_BATCH_TYPE], [ANCHOR_TAG, chain_id, contract, mn, batch]
    )


def key_rotation_preimage(chain_id: int, contract: str, mn: bytes, old_public_key: bytes) -> bytes:
    """What a new station key signs to replace ``old_public_key`` (its proof of possession)."""
    return encode(
        ["bytes32", "uint256", "address", "bytes24", "bytes"], [KEY_ROTATION_TAG, chain_id, contract, mn, old_public_key]
    )


def activity_preimage(chain_id: int, contract: str, record: tuple) -> bytes:
    return encode(["bytes32", "uint256", "address", ACTIVITY_RECORD_TYPE], [ACTIVITY_TAG, chain_id, contract, record])


def public64(key: SM2PrivateKey) -> bytes:
    return key.public_key().to_bytes()[1:]


def suspend_org(system: Any, name: str, proposer: str = "regulator") -> None:
    """Suspend organisation ``name`` through a governance vote (>= 2/3 of the active members say yes)."""
    gov = system.governance
    receipt = system.transact(gov.functions.proposeSuspendOrg(system.org(name).id), proposer)
    (created,) = system.events(receipt, gov, "ProposalCreated")
    voters = [o for o in system.orgs if o not in (name, proposer)]
    for voter in voters:
        if not gov.functions.orgActive(system.org(name).id).call():
            break
        system.transact(gov.functions.vote(created["id"], True), voter)
    assert gov.functions.orgActive(system.org(name).id).call() is False


def change_roles(system: Any, name: str, roles: int, proposer: str = "regulator") -> None:
    """Give organisation ``name`` the role mask ``roles`` through a governance vote."""
    gov = system.governance
    org_id = system.org(name).id
    receipt = system.transact(gov.functions.proposeChangeRoles(org_id, roles), proposer)
    (created,) = system.events(receipt, gov, "ProposalCreated")
    for voter in (o for o in system.orgs if o != proposer):
        if gov.functions.orgRoles(org_id).call() == roles:
            break
        system.transact(gov.functions.vote(created["id"], True), voter)
    assert gov.functions.orgRoles(org_id).call() == roles
