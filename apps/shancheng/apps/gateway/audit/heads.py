"""The audit heads' own log: a dedicated evidence log of each organisation that holds only the heads of its audit
chain, and nothing else can write.

Head ``n`` (0, 1, 2, …) is record ``n`` of the log whose origin is :func:`heads_origin` of the organisation: the
record ``{"type": "shancheng/audit-head/v2", "org", "n", "seq", "hash"}``, committed with a salt and anchored by the
organisation's key like any evidence record. The registry derives a log's source id from the anchoring organisation
and the origin, so only the holder of the organisation's key (the gateway) can anchor into it; no API route takes an
origin, the general log's origin may never be this one, and the records API refuses the head kind. A verifier
requires heads from this log only, with consecutive ``n`` and strictly increasing ``seq``: two audit chains of one
gateway anchored into it contradict each other on chain.

>>> heads_origin("hospital")
'shancheng/audit-heads/hospital'
>>> head_record("hospital", 0, 7, "ab" * 32)["n"]
0
"""

from __future__ import annotations

from typing import Any

from shancheng.sdk.crypto import DEFAULT_UID, SM2PublicKey
from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.evidence.package import leaf_data
from shancheng.sdk.merkle import leaf_hash
from shancheng.sdk.records import RecordStatement, SignedRecord, commit_salted

__all__ = [
    "HEADS_ORIGIN_PREFIX",
    "HEAD_KIND",
    "HEAD_RECORD_TYPE",
    "check_general_origin",
    "head_leaf_hash",
    "head_record",
    "heads_origin",
]

#: the record kind of a head (refused by the records API, and only accepted from the heads' own log)
HEAD_KIND = "audit-head"
HEAD_RECORD_TYPE = "shancheng/audit-head/v2"
HEADS_ORIGIN_PREFIX = "shancheng/audit-heads/"


def heads_origin(org: str) -> str:
    """The origin of ``org``'s audit-heads log (its source id on chain is derived from the organisation too)."""
    return HEADS_ORIGIN_PREFIX + org


def check_general_origin(origin: str) -> str:
    """``origin`` when a general evidence log may use it: never an audit-heads origin."""
    if origin.startswith(HEADS_ORIGIN_PREFIX):
        raise InvalidInput(f"the evidence origin {origin!r} is reserved for audit heads: choose another "
                           "evidence_origin")
    return origin


def head_record(org: str, n: int, seq: int, head_hash: str) -> dict[str, Any]:
    """The record of head ``n``: the audit entry ``seq`` whose hash is ``head_hash``."""
    return {"type": HEAD_RECORD_TYPE, "org": org, "n": n, "seq": seq, "hash": head_hash}


def head_leaf_hash(org: str, n: int, seq: int, head_hash: str, *, salt: bytes, org_key: SM2PublicKey) -> bytes:
    """The Merkle leaf hash that head ``n`` has in the heads' log (org-attested, default user ID): what the chain's
    checkpoint of that log commits to."""
    commitment, _ = commit_salted(head_record(org, n, seq, head_hash), salt=salt)
    statement = RecordStatement(HEAD_KIND, heads_origin(org), n, commitment)
    return leaf_hash(leaf_data(SignedRecord(statement, org_key, b"", DEFAULT_UID)))
