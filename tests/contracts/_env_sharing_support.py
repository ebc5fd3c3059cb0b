"""Keys and governance steps for the EnvMonitoring and DataSharingLog contract tests; the message recipes
(what a station or a staff member signs) come from the SDK's domain clients
(:mod:`shancheng.sdk.domain.envmon`, :mod:`shancheng.sdk.domain.datasharing`).

The message a signer signs is M = SM3(preimage) with preimage = abi.encode(tag, chain id, contract, ...);
the tests compare the SDK's preimage once with the contract's own ``...Preimage`` view.
"""

from __future__ import annotations

from typing import Any

from shancheng.sdk.crypto import SM2PrivateKey, sm3
from shancheng.sdk.domain.datasharing import ACTIVITY_RECORD_TYPE, ACTIVITY_TAG, activity_preimage  # noqa: F401
from shancheng.sdk.domain.envmon.messages import (  # noqa: F401 - re-exported for the tests
    ANCHOR_TAG,
    HOURLY_BATCH_TYPE,
    KEY_ROTATION_TAG,
    POLLUTANT_TYPE,
    STATION_POP_TAG,
    anchor_preimage,
    code8,
    key_rotation_preimage,
    public_key64,
    station_pop_preimage,
)
from shancheng.sdk.domain.envmon.messages import mn_bytes as mn_id  # noqa: F401
from shancheng.sdk.domain.staff import sign_staff_message
from shancheng.sdk.domain.staff import verify_preimage_signature as verify_preimage  # noqa: F401
from shancheng.testing import deterministic_sm2_key as fixed_key  # noqa: F401 - re-exported for the tests


def sign_preimage(key: SM2PrivateKey, preimage: bytes) -> tuple[bytes, bytes]:
    """(r, s) of the SM2 signature (default user ID) over M = SM3(preimage)."""
    _, r, s = sign_staff_message(key, sm3(preimage))
    return r, s


def public64(key: SM2PrivateKey) -> bytes:
    return public_key64(key)


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
