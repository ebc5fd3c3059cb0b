"""Evidence API: records into the organisation's log (org-attested, or author-signed with the principal's staff key),
their anchoring status, their evidence packages, and verification of any package against the gateway's genesis."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from shancheng.sdk.client import NotAnchoredYet
from shancheng.sdk.errors import ShanchengError
from shancheng.sdk.evidence import CHECKS, EvidencePackage, verify_package
from shancheng.sdk.strict_json import to_hex

from ..audit import HEAD_KIND
from ..deps import ROLES, Principal, ServicesDep, require
from ..limits import parse_json
from ..problems import Problem
from ..services import Services
from .auth import PROBLEMS

router = APIRouter(tags=["evidence"])

WRITERS = tuple(r for r in ROLES if r not in ("regulator", "auditor"))
RecordId = Annotated[int, Path(ge=0, le=(1 << 62))]
Reader = Annotated[Principal, Depends(require(*ROLES))]
Writer = Annotated[Principal, Depends(require(*WRITERS))]


class RecordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record: JsonValue = Field(description="any JSON value; committed with a fresh salt, never put on chain")
    kind: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")
    author_signed: bool = Field(default=False, description="sign with the principal's enrolled staff key")


class AnchorOut(BaseModel):
    sequence: int
    tree_size: int
    root: str
    block_number: int
    transaction_hash: str


class RecordOut(BaseModel):
    id: int
    origin: str
    kind: str
    status: str = Field(description="pending or anchored")
    author: str = Field(description="hex SM2 public key of the statement's author")
    salt: str | None = Field(description="hex salt of the commitment (to prove the content later)")
    anchor: AnchorOut | None = None


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    package: dict[str, JsonValue]
    record: JsonValue = None
    salt: str | None = Field(default=None, pattern=r"^(0x)?([0-9a-fA-F]{2}){1,64}$")


class VerifyOut(BaseModel):
    verified: bool
    summary: str | None
    checks: list[str] = Field(description="the checks that passed, in order")
    failed_check: str | None
    reason: str | None


def _status(services: Services, record_id: int) -> RecordOut:
    batcher = services.batcher
    row = batcher.store.record(batcher.origin, record_id)
    if row is None:
        raise Problem(status=404, detail=f"the log has no record {record_id}", type_suffix="no-such-record")
    anchor: AnchorOut | None = None
    try:
        a = batcher.anchor_of(record_id)
        anchor = AnchorOut(sequence=a.sequence, tree_size=a.tree_size, root=to_hex(a.root),
                           block_number=a.block_number, transaction_hash=to_hex(a.transaction_hash))
    except NotAnchoredYet:
        pass
    return RecordOut(id=record_id, origin=batcher.origin, kind=row.kind, status="anchored" if anchor else "pending",
                     author=row.author.hex(), salt=row.salt.hex() if row.salt else None, anchor=anchor)


@router.post("/api/v1/evidence/records", response_model=RecordOut, status_code=201, responses=PROBLEMS)
def add_record(body: RecordIn, who: Writer, services: ServicesDep) -> RecordOut:
    """Add a record to the organisation's evidence log (durable when this returns; anchored within seconds). The
    audit-head kind is refused: audit heads live in their own log, which no route writes."""
    if body.kind == HEAD_KIND:
        raise Problem(status=422, detail=f"the kind {HEAD_KIND!r} is reserved for the gateway's audit heads",
                      type_suffix="reserved-kind")
    author = services.staff_keys.signer_for(who) if body.author_signed else None
    record_id = services.batcher.add(body.record, kind=body.kind, author=author)
    return _status(services, record_id)


@router.get("/api/v1/evidence/records/{record_id}", response_model=RecordOut, responses=PROBLEMS)
def record_status(record_id: RecordId, _: Reader, services: ServicesDep) -> RecordOut:
    """A record's status: pending, or anchored with its anchor."""
    return _status(services, record_id)


@router.get("/api/v1/evidence/records/{record_id}/package", responses={
    **PROBLEMS, 200: {"description": "an evidence package (v2 JSON)", "content": {"application/json": {}}},
    409: {"description": "not anchored yet", "content": {"application/problem+json": {}}}})
def record_package(record_id: RecordId, _: Reader, services: ServicesDep) -> dict[str, Any]:
    """The record's evidence package (verifiable offline with the chain's genesis file)."""
    _status(services, record_id)
    return services.batcher.evidence_package(record_id).to_json()


_VERIFY_BODY = {
    "content": {
        "application/json": {"schema": VerifyIn.model_json_schema()},
        "multipart/form-data": {"schema": {"type": "object", "required": ["package"], "properties": {
            "package": {"type": "string", "format": "binary"}, "record": {"type": "string"},
            "salt": {"type": "string"}}}},
    },
    "required": True,
}


@router.post("/api/v1/evidence/verify", response_model=VerifyOut, openapi_extra={"requestBody": _VERIFY_BODY},
             responses={**PROBLEMS, 413: {"description": "too large", "content": {"application/problem+json": {}}}})
async def verify(request: Request, _: Reader, services: ServicesDep) -> VerifyOut:
    """Verify an evidence package (JSON body ``{package, record?, salt?}`` or a multipart upload) against this
    gateway's genesis file; always 200 with ``verified`` false and the failing check for a bad package."""
    import anyio.to_thread

    limit = services.settings.max_body_bytes
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=4, max_part_size=limit)
        upload = form.get("package")
        if upload is None or isinstance(upload, str):
            raise Problem(status=422, detail="package: a file is needed", type_suffix="validation")
        package_text = await upload.read(limit + 1)
        record_text, salt_text = form.get("record"), form.get("salt")
        doc = {"package": parse_json(package_text, max_bytes=limit, what="package")}
        if isinstance(record_text, str) and record_text:
            doc["record"] = parse_json(record_text.encode(), max_bytes=limit, what="record")
        if isinstance(salt_text, str) and salt_text:
            doc["salt"] = salt_text
    elif content_type.split(";")[0].strip() in ("application/json", ""):
        doc = parse_json(await request.body(), max_bytes=limit)
    else:
        raise Problem(status=415, detail="send application/json or multipart/form-data", type_suffix="media-type")
    try:
        body = VerifyIn.model_validate(doc)
    except ValueError as exc:
        raise Problem(status=422, detail=f"body: {str(exc).splitlines()[0][:200]}", type_suffix="validation") from None
    salt = bytes.fromhex(body.salt.removeprefix("0x")) if body.salt else None
    package_json = json.dumps(body.package)

    def run() -> VerifyOut:
        try:
            package = EvidencePackage.loads(package_json)
            result = verify_package(package, record=body.record, salt=salt, genesis=services.genesis)
        except (ShanchengError, ValueError) as exc:  # every refusal is an answer, not an error
            failed = exc.check if isinstance(exc, ShanchengError) and exc.check in CHECKS else "package"
            done = list(CHECKS[: CHECKS.index(failed)])
            return VerifyOut(verified=False, summary=None, checks=done, failed_check=failed,
                             reason=" ".join(str(exc).split())[:500])
        checks = [c for c in CHECKS if c != "record content" or result.record_checked]
        return VerifyOut(verified=True, summary=result.summary(), checks=checks, failed_check=None, reason=None)

    return await anyio.to_thread.run_sync(run)
