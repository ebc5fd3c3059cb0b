"""Signing and anchoring helpers of the EvidenceRegistry contract tests (single records, supersede, revoke)."""

from __future__ import annotations

from typing import Any

from shancheng.sdk.crypto import sm3
from shancheng.testing import Staff, System

ZERO = b"\x00" * 32
ACTIVE, SUPERSEDED, REVOKED = 1, 2, 3
KIND = sm3(b"kind:medical-record")
HOSPITAL = 1  # the hospital's org id in the harness genesis


def h(label: str) -> bytes:
    return sm3(label.encode())


def tag(system: System, name: str) -> bytes:
    return getattr(system.evidence.functions, name)().call()


def sign_anchor(system: System, author: Staff, id_: bytes, commitment: bytes, kind: bytes = KIND) -> tuple[bytes, bytes]:
    ev = system.evidence
    return system.sign(author, ["bytes32", "uint256", "address", "bytes32", "bytes32", "bytes32"],
                       [tag(system, "EVIDENCE_TAG"), system.chain_id, ev.address, id_, commitment, kind])


def anchor(system: System, id_: bytes, commitment: bytes, *, author: str = "hospital_operator", sender: str = "hospital",
           metadata: str = "", signature: tuple[bytes, bytes] | None = None, kind: bytes = KIND) -> Any:
    member = system.staff(author)
    r, s = signature or sign_anchor(system, member, id_, commitment, kind)
    return system.transact(system.evidence.functions.evidence(id_, commitment, kind, metadata, member.address, r, s),
                           sender)


def item(system: System, id_: bytes, commitment: bytes, author: str = "hospital_operator", metadata: str = "",
         kind: bytes = KIND) -> tuple:
    member = system.staff(author)
    r, s = sign_anchor(system, member, id_, commitment, kind)
    return (id_, commitment, kind, metadata, member.address, r, s)


def supersede_item(system: System, old: bytes, new: bytes, commitment: bytes, author: str = "hospital_operator",
                   metadata: str = "v2", kind: bytes = KIND) -> tuple:
    member = system.staff(author)
    r, s = system.sign(member, ["bytes32", "uint256", "address", "bytes32", "bytes32", "bytes32", "bytes32"],
                       [tag(system, "SUPERSEDE_TAG"), system.chain_id, system.evidence.address, old, new, commitment,
                        kind])
    return (new, commitment, kind, metadata, member.address, r, s)


def revoke_fn(system: System, old: bytes, rid: bytes, reason: bytes, author: str = "hospital_operator") -> Any:
    member = system.staff(author)
    r, s = system.sign(member, ["bytes32", "uint256", "address", "bytes32", "bytes32", "bytes32"],
                       [tag(system, "REVOKE_TAG"), system.chain_id, system.evidence.address, old, rid, reason])
    return system.evidence.functions.revoke(old, rid, reason, member.address, r, s)
