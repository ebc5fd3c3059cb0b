"""The audit API: the hash-chained audit log, paged (auditor, regulator, admin); its export for offline verification
(``shancheng gateway audit verify EXPORT --genesis genesis.json``); its verification; anchoring its head now (admin).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from shancheng.sdk.errors import ShanchengError

from ..audit import AuditChainBroken, AuditEntry, audit_entries, heads_origin
from ..deps import Principal, ServicesDep, require
from ..pagination import Cursor, Limit, Page, paginate_query
from ..problems import Problem

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

READERS = ("auditor", "regulator", "admin")
Reader = Annotated[Principal, Depends(require(*READERS))]
Admin = Annotated[Principal, Depends(require("admin"))]


class AuditVerifyOut(BaseModel):
    """The result of walking the chain: ok, or the first broken sequence and what happened to it."""

    ok: bool
    entries: int | None = None
    head_seq: int | None = None
    head_hash: str | None = None
    anchored_seq: int | None = Field(default=None, description="the newest head the chain holds, found intact")
    anchored_heads: int | None = Field(default=None, description="heads the chain's checkpoint of the audit-heads "
                                                                  "log covers, all reproduced from this log")
    sequence: int | None = None
    kind: Literal["edited", "deleted", "reordered", "truncated", "anchor", "equivocation", "stale",
                  "malformed"] | None = None
    reason: str | None = None


class AuditAnchorOut(BaseModel):
    """A head: record ``n`` of the organisation's audit-heads log, naming the entry ``seq`` and its hash, and
    whether its anchor is final."""

    n: int
    seq: int
    hash: str
    origin: str
    final: bool


@router.get("", response_model=Page[AuditEntry], summary="the audit log, in sequence order")
def list_entries(
    who: Reader, services: ServicesDep,
    limit: Limit = 50, cursor: Cursor = None,
    subject: Annotated[str | None, Query(max_length=256)] = None,
    outcome: Annotated[Literal["ok", "refused", "rejected", "error"] | None, Query()] = None,
    order: Annotated[Literal["asc", "desc"], Query()] = "asc",
) -> Page[AuditEntry]:
    audit = services.audit
    query = select(audit_entries)
    if subject is not None:
        query = query.where(audit_entries.c.subject == subject)
    if outcome is not None:
        query = query.where(audit_entries.c.outcome == outcome)
    return paginate_query(audit.engine, query, audit_entries.c.seq, limit=limit, cursor=cursor, item=AuditEntry.from_row,
                          descending=order == "desc")


@router.get("/export", summary="JSON lines of the audit log with the evidence packages of its anchored heads",
            response_class=StreamingResponse,
            responses={200: {"content": {"application/jsonl": {}}, "description": "header, entries, anchors, end"}})
def export(
    who: Reader, services: ServicesDep,
    since: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    until: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> StreamingResponse:
    audit = services.audit
    if since is not None and until is not None and until < since:
        raise Problem(status=400, detail="until is before since", type_suffix="bad-range")
    lines = audit.export(since=since, until=until)
    first = next(lines)  # the header: a bad start is refused before the answer starts

    def body() -> Iterator[bytes]:
        yield (first + "\n").encode()
        for line in lines:
            yield (line + "\n").encode()

    name = f"audit-{audit.org}-{since or 1}-{until or 'head'}.jsonl"
    return StreamingResponse(body(), media_type="application/jsonl",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/verify", response_model=AuditVerifyOut,
            summary="walk the hash chain and check it against the heads the chain holds")
def verify(who: Reader, services: ServicesDep) -> AuditVerifyOut:
    audit = services.audit
    try:
        result = audit.verify()
    except ShanchengError as exc:
        if not isinstance(exc, AuditChainBroken):
            raise Problem(status=503, detail=f"the audit log could not be checked against the chain: {exc}",
                          type_suffix="audit-unverifiable") from exc
        return AuditVerifyOut(ok=False, sequence=exc.sequence, kind=exc.kind,  # type: ignore[arg-type]
                              reason=str(exc))
    return AuditVerifyOut(ok=True, entries=result.entries, head_seq=result.head_seq, head_hash=result.head_hash,
                          anchored_seq=result.anchored_seq, anchored_heads=result.anchored_heads)


@router.post("/anchor", response_model=AuditAnchorOut | None, summary="anchor the current head now (admin)")
def anchor(
    who: Admin, services: ServicesDep,
    wait: Annotated[bool, Query(description="return once the anchor is final")] = False,
) -> AuditAnchorOut | None:
    audit = services.audit
    try:
        result = audit.anchor(wait=wait, timeout=60)
    except ShanchengError as exc:
        raise Problem(status=503, detail=f"the head could not be anchored: {exc}", type_suffix="anchor-failed") from exc
    if result is None:
        return None
    return AuditAnchorOut(n=result.n, seq=result.seq, hash=result.hash, origin=heads_origin(audit.org),
                          final=result.package is not None)
