"""The gateway's central audit log: every /api/ request that reads or writes evidence or domain data, in an
append-only SM3 hash chain whose heads are anchored in the organisation's own audit-heads log on chain, exportable
for auditors who verify it offline.

>>> audit = AuditLog.open(engine, org="hospital", client=client, store=store_url)      # doctest: +SKIP
>>> entry = audit.record(principal, "POST /api/v1/prescriptions", "rx_id=0x12…", "ok", status=201)
>>> audit.verify()                # the links, then the heads the chain holds; raises AuditChainBroken otherwise
AuditVerified(entries=1, head_seq=1, ...)
>>> head = audit.anchor(wait=True)                # the head (seq, hash) becomes the next record of the heads' log
>>> lines = list(audit.export())                  # JSON lines: header, entries, heads (with evidence packages), end
>>> verify_export(lines, genesis=GenesisFile.load("genesis.json"), max_anchor_age=3900).summary()  # offline
'OK 1 entries of hospital (seq 1..1); anchored through seq 1 in block 7 ...'

The parts: :mod:`.entries` (an entry and the hash chain), :mod:`.heads` (the audit-heads log), :mod:`.log` (the
table, its verification and anchoring), :mod:`.export` (the offline verifier and its command), :mod:`.middleware`.
docs/audit.md says what an export proves and against whom.
"""

from __future__ import annotations

from .entries import (
    ENTRY_VERSION,
    ZERO_HASH,
    Actor,
    AuditChainBroken,
    AuditEntry,
    audit_anchors,
    audit_entries,
    audit_heads,
    outcome_of,
)
from .export import ExportVerified, add_cli, main, verify_export
from .heads import HEAD_KIND, check_general_origin, head_record, heads_origin
from .log import EXPORT_FORMAT, AnchoringJob, AuditHead, AuditLog, AuditVerified
from .middleware import AUDIT_DETAIL, UNAUDITED, AuditMiddleware

__all__ = [
    "AUDIT_DETAIL",
    "ENTRY_VERSION",
    "EXPORT_FORMAT",
    "HEAD_KIND",
    "UNAUDITED",
    "ZERO_HASH",
    "Actor",
    "AnchoringJob",
    "AuditChainBroken",
    "AuditEntry",
    "AuditHead",
    "AuditLog",
    "AuditMiddleware",
    "AuditVerified",
    "ExportVerified",
    "add_cli",
    "audit_anchors",
    "audit_entries",
    "audit_heads",
    "check_general_origin",
    "head_record",
    "heads_origin",
    "main",
    "outcome_of",
    "verify_export",
]
