"""Records, signatures and calls of the DataSharingLog contract tests (ids in each organisation's namespace)."""

from __future__ import annotations

from typing import Any

from _env_sharing_support import activity_preimage, sign_preimage

from shancheng.sdk.crypto import sm3
from shancheng.sdk.domain.datasharing import namespaced_id
from shancheng.testing import GENESIS_ORGS, System

COLLECT, TRANSMIT, STORE, PROCESS, MANAGE, EXCHANGE, SHARE, OPEN, ANALYZE, SETTLE, DESTROY = range(1, 12)
STEP_NAMES = {1: "collect", 2: "transmit", 3: "store", 4: "process", 5: "manage", 6: "exchange", 7: "share",
              8: "open", 9: "analyze", 10: "settle", 11: "destroy"}
ZERO = b"\0" * 32
ORG_ID = {name: i for i, (name, _) in enumerate(GENESIS_ORGS, start=1)}  # the harness genesis' org ids


def nid(org: str, label: bytes) -> bytes:
    """A data-sharing id in ``org``'s namespace (the contract refuses ids outside the creating org's)."""
    return namespaced_id(ORG_ID[org], sm3(label))


DS = nid("department", b"dataset: district air quality readings 2024")
DS2 = nid("department", b"dataset: clinic visits 2024")
PRODUCT = nid("department2", b"data product: PM2.5 vs visits correlation")
AUTH = nid("department", b"authorisation 1")
AUTH2 = nid("department", b"authorisation 2")
PUBLIC_AUTH = nid("department", b"public")
DAY = 86400


def bit(*steps: int) -> int:
    mask = 0
    for step in steps:
        mask |= 1 << step
    return mask


def dsl(system: System) -> Any:
    return system.contract("DataSharingLog")


_counter = iter(range(1, 1_000_000))


def record(system: System, step: int, dataset: bytes = DS, version: int = 1, *, staff: str = "department_operator",
           org: str | None = None, **over: Any) -> tuple:
    """An activity record; its id is in the namespace of ``org`` (default: the staff member's org)."""
    now = system.now()
    fields = {
        "id": nid(org or system.staff(staff).org, b"activity %d" % next(_counter)),
        "step": step,
        "dataset": dataset,
        "version": version,
        "started": now - 120,
        "ended": now,
        "plan": ZERO,
        "recipient": 0,
        "informed_by": ZERO,
        "detail": sm3(b"off-chain record of the activity"),
        "staff": system.staff(staff).address,
        "generated": ZERO,
        "commitment": ZERO,
    }
    fields.update(over)
    return tuple(fields.values())


def log(system: System, rec: tuple, sender: str = "department", *, signer: str | None = None,
        sig: tuple[bytes, bytes] | None = None) -> Any:
    contract = dsl(system)
    staff = next(m for m in system.staff_members.values() if m.address == rec[10]) if signer is None else system.staff(signer)
    r, s = sig or sign_preimage(staff.key, activity_preimage(system.chain_id, contract.address, rec))
    return system.transact(contract.functions.logActivity(rec, r, s), sender)


def collect(system: System, dataset: bytes = DS, sender: str = "department", staff: str = "department_operator") -> Any:
    org = sender if sender in system.orgs else None
    rec = record(system, COLLECT, ZERO, 0, staff=staff, org=org, generated=dataset,
                 commitment=sm3(b"content of " + dataset))
    return log(system, rec, sender)


def grant(system: System, auth: bytes = AUTH, dataset: bytes = DS, recipient: str | int = "department2",
          steps: int = bit(SHARE, ANALYZE), expires_in: int = 30 * DAY, sender: str = "department") -> Any:
    recipient_id = system.org(recipient).id if isinstance(recipient, str) else recipient
    g = (auth, dataset, recipient_id, 7, sm3(b"purpose: air quality / health study"), steps, system.now() + expires_in)
    return system.transact(dsl(system).functions.grantAuthorisation(g), sender)


def share(system: System, step: int = SHARE, plan: bytes = AUTH, recipient: str | int = "department2",
          dataset: bytes = DS, sender: str = "department") -> Any:
    """SHARE, EXCHANGE or OPEN ``dataset`` to ``recipient`` under ``plan``, logged by ``sender``'s operator."""
    recipient_id = system.org(recipient).id if isinstance(recipient, str) else recipient
    return log(system, record(system, step, dataset, plan=plan, recipient=recipient_id, staff=f"{sender}_operator"),
               sender)


def derive(system: System, source: bytes, new: bytes, *, by: str = "department2", plan: bytes = ZERO,
           step: int = PROCESS, commitment: bytes | None = None) -> Any:
    """``by`` processes ``source`` (version 1) into the new dataset ``new`` (a recipient passes its ``plan``)."""
    rec = record(system, step, source, staff=f"{by}_operator", plan=plan, generated=new,
                 commitment=commitment or sm3(b"derived content of " + new))
    return log(system, rec, by)
