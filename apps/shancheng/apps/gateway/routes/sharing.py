"""The data-sharing API: datasets collected by this department, lifecycle activities signed by the acting data
steward, authorisations (the PROV plans) granted and revoked by the owner, and provenance (a graph for the UI, or
W3C PROV-JSON).

Writes need the data_steward role and the steward's staff key (an OPERATOR of the organisation in Governance);
reads are open to the dataset's owner, the organisations that received it, regulators and auditors. Ids given by
the caller (dataset, new dataset, authorisation) must be in this organisation's namespace (first 8 bytes: its org
id); left out, the gateway makes them. A dataset derived from another organisation's data stays under that owner's
control: the dataset view says what it was derived from, under which plan, and whether it is frozen.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field, model_validator

from shancheng.sdk.domain import doc_commitment, new_salt
from shancheng.sdk.domain.datasharing import ActivityResult, Authorisation, DataSharing, Step
from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.strict_json import hexbytes, to_hex

from ..deps import Principal, ServicesDep, current_principal, require
from ..indexer import IndexedEvent
from ..problems import Problem

router = APIRouter(prefix="/api/v1", tags=["sharing"])

HEX32 = r"^0x[0-9a-fA-F]{64}$"
READ_ALL = ("regulator", "auditor")
Steward = Annotated[Principal, Depends(require("data_steward"))]
Anyone = Annotated[Principal, Depends(current_principal)]
DatasetId = Annotated[str, Path(pattern=HEX32, description="the dataset id (0x and 64 hex digits)")]
Hex32 = Annotated[str, Field(pattern=HEX32)]
StepName = Literal["transmit", "store", "process", "manage", "exchange", "share", "open", "analyze", "settle",
                   "destroy"]


class Content(BaseModel):
    """The content a step commits to: its ``commitment`` (32 bytes, made off chain), or the ``record`` itself (a
    JSON object; the gateway commits it with a fresh salt and returns the salt — keep both off chain)."""

    commitment: Hex32 | None = None
    record: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one(self) -> Content:
        if (self.commitment is None) == (self.record is None):
            raise ValueError("give exactly one of commitment and record")
        return self


class DatasetIn(BaseModel):
    """Collect a new dataset (version 1, owned by this organisation)."""

    content: Content
    dataset_id: Hex32 | None = None
    detail: Content | None = None


class ActivityIn(BaseModel):
    """A lifecycle step on the dataset: ``recipient_org`` and ``plan`` (the authorisation) for exchange, share and
    open (recipient 0 = the public); ``content`` of the new data product for process and analyze (with ``plan``
    when a recipient derives); ``informed_by`` (the share activity) for settle; ``detail`` the off-chain activity
    record's content."""

    step: StepName
    version: int | None = Field(default=None, ge=1, le=2**32 - 1)
    recipient_org: int = Field(default=0, ge=0, le=2**63)
    plan: Hex32 | None = None
    content: Content | None = None
    new_dataset_id: Hex32 | None = None
    informed_by: Hex32 | None = None
    detail: Content | None = None


class AuthorisationIn(BaseModel):
    """The owner authorises ``recipient_org`` (0: the public, open only) to do ``steps`` on the dataset until
    ``expires_at`` (unix seconds), for ``purpose_code``; ``purpose`` is the off-chain agreement's content."""

    dataset_id: Hex32
    recipient_org: int = Field(ge=0, le=2**63)
    steps: list[Literal["process", "exchange", "share", "open", "analyze"]] = Field(min_length=1, max_length=5)
    expires_at: int = Field(ge=1, le=2**63)
    purpose_code: int = Field(ge=0, le=2**32 - 1)
    purpose: Content
    authorisation_id: Hex32 | None = None


class ActivityOut(BaseModel):
    activity_id: str
    step: str
    dataset_id: str
    version: int
    generated: dict[str, Any] | None
    signature_verified: bool
    tx_hash: str
    block_number: int
    salts: dict[str, str]


class AuthorisationOut(BaseModel):
    authorisation_id: str
    dataset_id: str
    recipient_org: int
    purpose_code: int
    steps: list[str]
    granted_at: int
    expires_at: int
    revoked_at: int | None
    purpose_commitment: str
    valid: bool
    salt: str | None = None


class DatasetOut(BaseModel):
    """A dataset as the chain holds it, its authorisations and recipients, and its indexed events."""

    dataset_id: str
    owner_org: int
    latest_version: int
    created_at: int
    destroyed_at: int | None
    derived_from: str | None = Field(description="the dataset it was derived from (null: collected)")
    source_plan: str | None = Field(description="the source owner's authorisation it was derived under (null: "
                                                "derived by the source's owner, or collected)")
    frozen: bool = Field(description="an authorisation governing it was revoked or expired, or its source "
                                     "destroyed: only destroy is left")
    recipients: list[int]
    authorisations: list[str]
    events: list[IndexedEvent]
    indexed_block: int = Field(description="the events are complete up to this block (-1: no indexer yet)")


def _optional_id(value: str | None) -> bytes | None:
    """A 32-byte id the request may give (0x and 64 hex digits, as its model checked), None when it gives none."""
    return None if value is None else hexbytes(value, "id", error=InvalidInput, size=32)


def _commit(content: Content | None, salts: dict[str, str], name: str) -> bytes | None:
    if content is None:
        return None
    if content.commitment is not None:
        return bytes.fromhex(content.commitment[2:])
    assert content.record is not None
    salt = new_salt()
    salts[name] = to_hex(salt)
    return doc_commitment(content.record, salt)


def _activity_out(result: ActivityResult, salts: dict[str, str]) -> ActivityOut:
    rec = result.record
    generated = None if result.generated is None else {"dataset_id": to_hex(result.generated[0]),
                                                       "version": result.generated[1]}
    return ActivityOut(activity_id=to_hex(rec.activity_id), step=rec.step.label, dataset_id=to_hex(rec.dataset_id),
                       version=rec.version, generated=generated, signature_verified=result.signature_verified,
                       tx_hash=to_hex(result.receipt.transaction_hash), block_number=result.receipt.block_number,
                       salts=salts)


def _auth_out(auth: Authorisation, salt: str | None = None) -> AuthorisationOut:
    return AuthorisationOut(authorisation_id=to_hex(auth.authorisation_id), dataset_id=to_hex(auth.dataset_id),
                            recipient_org=auth.recipient_org, purpose_code=auth.purpose_code,
                            steps=sorted(s.label for s in auth.allowed_steps), granted_at=auth.granted_at,
                            expires_at=auth.expires_at, revoked_at=auth.revoked_at,
                            purpose_commitment=to_hex(auth.purpose_commitment), valid=auth.valid, salt=salt)


@router.post("/datasets", response_model=ActivityOut, status_code=201, tags=["sharing"],
             summary="collect a new dataset (data steward)")
def collect(who: Steward, services: ServicesDep, body: DatasetIn) -> ActivityOut:
    signer = services.staff_keys.signer_for(who)
    salts: dict[str, str] = {}
    commitment = _commit(body.content, salts, "content")
    assert commitment is not None
    result = DataSharing(services.client).collect(commitment=commitment, staff=signer,
                                                  dataset_id=_optional_id(body.dataset_id),
                                                  detail=_commit(body.detail, salts, "detail"))
    return _activity_out(result, salts)


@router.post("/datasets/{dataset_id}/activities", response_model=ActivityOut, status_code=201,
             summary="log a lifecycle step of a dataset, signed by the data steward")
def log_activity(who: Steward, services: ServicesDep, dataset_id: DatasetId, body: ActivityIn) -> ActivityOut:
    signer = services.staff_keys.signer_for(who)
    sharing = DataSharing(services.client)
    ds = bytes.fromhex(dataset_id[2:])
    salts: dict[str, str] = {}
    detail = _commit(body.detail, salts, "detail")
    step = Step[body.step.upper()]
    if step in (Step.PROCESS, Step.ANALYZE):
        content = _commit(body.content, salts, "content")
        if content is None:
            raise Problem(status=422, detail=f"{body.step} needs the content of the data product it generates",
                          type_suffix="missing-content")
        result = sharing.derive(ds, commitment=content, staff=signer, step=step, plan=_optional_id(body.plan),
                                new_dataset_id=_optional_id(body.new_dataset_id), version=body.version,
                                informed_by=_optional_id(body.informed_by), detail=detail)
    elif step in (Step.EXCHANGE, Step.SHARE, Step.OPEN):
        if body.plan is None:
            raise Problem(status=422, detail=f"{body.step} needs the authorisation (plan) it is made under",
                          type_suffix="missing-plan")
        result = sharing.share(ds, recipient_org=body.recipient_org, plan=bytes.fromhex(body.plan[2:]),
                               staff=signer, step=step, version=body.version, detail=detail)
    elif step is Step.SETTLE:
        if body.informed_by is None:
            raise Problem(status=422, detail="settle needs the share activity (informed_by)",
                          type_suffix="missing-informed-by")
        result = sharing.settle(ds, share_activity=bytes.fromhex(body.informed_by[2:]), staff=signer, detail=detail)
    elif step is Step.DESTROY:
        result = sharing.destroy(ds, staff=signer, detail=detail)
    else:
        result = sharing.log_activity(step, staff=signer, dataset_id=ds, version=body.version, detail=detail,
                                      informed_by=_optional_id(body.informed_by))
    return _activity_out(result, salts)


@router.post("/authorisations", response_model=AuthorisationOut, status_code=201,
             summary="authorise an organisation to use a dataset (the owner's data steward)")
def grant(who: Steward, services: ServicesDep, body: AuthorisationIn) -> AuthorisationOut:
    salts: dict[str, str] = {}
    purpose = _commit(body.purpose, salts, "purpose")
    assert purpose is not None
    auth = DataSharing(services.client).grant_authorisation(
        bytes.fromhex(body.dataset_id[2:]), recipient_org=body.recipient_org,
        steps=[Step[s.upper()] for s in body.steps], expires_at=body.expires_at, purpose_code=body.purpose_code,
        purpose_commitment=purpose, authorisation_id=_optional_id(body.authorisation_id))
    return _auth_out(auth, salts.get("purpose"))


@router.delete("/authorisations/{authorisation_id}", response_model=AuthorisationOut,
               summary="revoke an authorisation (the owner's data steward)")
def revoke(who: Steward, services: ServicesDep,
           authorisation_id: Annotated[str, Path(pattern=HEX32)]) -> AuthorisationOut:
    sharing = DataSharing(services.client)
    auth_id = bytes.fromhex(authorisation_id[2:])
    if sharing.authorisation(auth_id) is None:
        raise Problem(status=404, detail=f"no authorisation {authorisation_id.lower()}", type_suffix="not-found")
    sharing.revoke_authorisation(auth_id)
    auth = sharing.authorisation(auth_id)
    assert auth is not None
    return _auth_out(auth)


def _readable(who: Principal, sharing: DataSharing, ds: bytes, dataset_id: str) -> tuple[Any, list[int]]:
    dataset = sharing.dataset(ds)
    recipients = sharing.recipients_of(ds) if dataset is not None else []
    if dataset is None or (who.role not in READ_ALL and who.org_id != dataset.owner_org
                           and who.org_id not in recipients and 0 not in recipients):
        raise Problem(status=404, detail=f"no dataset {dataset_id.lower()} visible to {who.org}",
                      type_suffix="not-found")
    return dataset, recipients


@router.get("/datasets/{dataset_id}", response_model=DatasetOut, summary="a dataset and its indexed events")
def get_dataset(who: Anyone, services: ServicesDep, dataset_id: DatasetId,
                limit: Annotated[int, Query(ge=1, le=500)] = 100) -> DatasetOut:
    sharing = DataSharing(services.client)
    ds = bytes.fromhex(dataset_id[2:])
    dataset, recipients = _readable(who, sharing, ds, dataset_id)
    indexer = services.indexer
    indexed = indexer.indexed_block if indexer is not None else -1  # before the events: a lower bound
    events = indexer.sharing(dataset_id, limit=limit) if indexer is not None else []
    return DatasetOut(dataset_id=to_hex(ds), owner_org=dataset.owner_org, latest_version=dataset.latest_version,
                      created_at=dataset.created_at, destroyed_at=dataset.destroyed_at,
                      derived_from=None if dataset.derived_from is None else to_hex(dataset.derived_from),
                      source_plan=None if dataset.source_plan is None else to_hex(dataset.source_plan),
                      frozen=sharing.frozen(ds), recipients=recipients,
                      authorisations=[to_hex(a) for a in sharing.authorisations_of(ds)],
                      events=events, indexed_block=indexed)


@router.get("/datasets/{dataset_id}/provenance", summary="the dataset's provenance: a graph, or W3C PROV-JSON",
            responses={200: {"content": {"application/json": {}}}})
def provenance(who: Anyone, services: ServicesDep, dataset_id: DatasetId,
               format: Annotated[Literal["graph", "prov-json"], Query()] = "graph") -> Response:
    sharing = DataSharing(services.client)
    ds = bytes.fromhex(dataset_id[2:])
    _readable(who, sharing, ds, dataset_id)
    prov = sharing.provenance(ds)
    if format == "prov-json":
        name = f"provenance-{dataset_id[2:18]}.json"
        return Response(prov.to_prov_json(), media_type="application/json",
                        headers={"Content-Disposition": f'inline; filename="{name}"'})
    return Response(json.dumps({"dataset_id": to_hex(ds), **prov.to_graph()}), media_type="application/json")
