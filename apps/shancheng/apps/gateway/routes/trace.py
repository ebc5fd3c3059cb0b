"""The drug-trace API: batch operations of this organisation on DrugTrace (register, aggregate, ship, receive,
dispense, return, recall), GS1 EPCIS 2.0 JSON import, a code's custody trail (from the indexer; from the chain when
the indexer lags) and its EPCIS export.

Who may do what (gateway roles; the contract checks the organisation's role and custody again): register, aggregate
— manufacturer; ship — manufacturer, distributor; receive, return — distributor, pharmacy, pharmacist; dispense —
pharmacy, pharmacist, dispenser; recall — manufacturer, regulator; EPCIS import — manufacturer, distributor,
pharmacy. Reads: the organisations on the unit's trail (holder, sender, receiver), regulators and auditors.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from shancheng.sdk.domain.drugtrace import (
    BatchResult,
    BillType,
    DrugTrace,
    TraceEvent,
    UnitState,
    normalise_trace_code,
)
from shancheng.sdk.strict_json import to_hex

from ..deps import Principal, ServicesDep, current_principal, require
from ..indexer import IndexedEvent, Indexer, indexed_event, trace_events
from ..pagination import Cursor, Limit, decode_cursor, encode_cursor
from ..problems import Problem
from ..services import Services

router = APIRouter(prefix="/api/v1/trace", tags=["trace"])

Operation = Literal["register", "aggregate", "ship", "receive", "dispense", "return", "recall"]
ROLES_OF: dict[str, tuple[str, ...]] = {
    "register": ("manufacturer",), "aggregate": ("manufacturer", "distributor"),
    "ship": ("manufacturer", "distributor"), "receive": ("distributor", "pharmacy", "pharmacist"),
    "return": ("distributor", "pharmacy", "pharmacist"), "dispense": ("pharmacy", "pharmacist", "dispenser"),
    "recall": ("manufacturer", "regulator"),
}
READ_ALL = ("regulator", "auditor")
MAX_EPCIS_BYTES = 1 << 20
Anyone = Annotated[Principal, Depends(current_principal)]
Importer = Annotated[Principal, Depends(require("manufacturer", "distributor", "pharmacy"))]
Code = Annotated[str, Field(min_length=1, max_length=128)]


class TraceBatchIn(BaseModel):
    """Codes (20-digit NMPA codes or GS1 element strings; 1 to 1000) and what the operation needs: ``level``
    (register: 1 sale unit, 2 middle pack, 3 case), ``parent`` (aggregate), ``to`` (ship, return: the receiving
    organisation id), ``bill`` (ship: 201, 203 or 207; receive: 102 or 104). ``strict``: refuse the whole batch on
    the first bad code; otherwise the refused codes are reported. ``maker_org``: the codes' manufacturer (default:
    this organisation). ``document``: the off-chain bill, committed (salted) as the batch's docRef."""

    codes: list[Code] = Field(min_length=1, max_length=1000)
    maker_org: int | None = Field(default=None, ge=1, le=2**63)
    strict: bool = True
    level: int = Field(default=1, ge=1, le=3)
    parent: Code | None = None
    to: int | None = Field(default=None, ge=1, le=2**63)
    bill: int | None = Field(default=None, ge=100, le=299)
    document: dict[str, Any] | None = None


class RefusedOut(BaseModel):
    code: str | None
    unit_key: str
    reason: str
    text: str


class BatchOut(BaseModel):
    """What a batch did: accepted unit keys, refused codes (lenient batches), the docRef and its salt."""

    operation: str
    bill_type: int
    accepted: list[str]
    refused: list[RefusedOut]
    doc_ref: str
    salt: str | None
    tx_hash: str
    block_number: int


class EpcisOut(BaseModel):
    steps: list[BatchOut]
    refused: int


class TrailItem(BaseModel):
    """One event of a unit's trail in chain order: ``unit`` (accepted by a batch), ``refused``, ``aggregation``
    (packed into / unpacked from a parent) or ``batch`` (the TraceBatch of a transaction that touched the unit)."""

    kind: Literal["unit", "refused", "aggregation", "batch"]
    block_number: int
    log_index: int
    tx_hash: str
    block_time: int | None = None
    unit_key: str | None = None
    bill_type: int | None = None
    acting_org: int | None = None
    counterparty: int | None = None
    reason: int | None = None
    parent: str | None = None
    child: str | None = None
    added: bool | None = None
    doc_ref: str | None = None
    accepted: int | None = None
    refused_count: int | None = None


class CustodyOut(BaseModel):
    own: str
    effective: str
    holder: int


class TrailOut(BaseModel):
    """A code's custody now and its trail (paged when served from the indexer)."""

    code: str
    unit_key: str
    maker_org: int
    owner: int
    custody: CustodyOut
    trail: list[TrailItem]
    next_cursor: str | None = None
    source: Literal["index", "chain"]
    as_of_block: int


class _MakerTrace(DrugTrace):
    """DrugTrace whose codes are all of one maker (an EPCIS document received from a manufacturer)."""

    def __init__(self, client: Any, *, maker: int) -> None:
        super().__init__(client)
        self.maker = maker

    def maker_of(self, code: str) -> int:
        return self.maker


def _trace(services: Services, maker: int | None = None) -> DrugTrace:
    return DrugTrace(services.client) if maker is None else _MakerTrace(services.client, maker=maker)


def _batch_out(result: BatchResult) -> BatchOut:
    return BatchOut(operation=result.operation, bill_type=int(result.bill_type),
                    accepted=[to_hex(k) for k in result.accepted],
                    refused=[RefusedOut(code=r.code, unit_key=to_hex(r.unit_key), reason=r.reason.name, text=r.text)
                             for r in result.refused],
                    doc_ref=to_hex(result.doc_ref), salt=None if result.salt is None else to_hex(result.salt),
                    tx_hash=to_hex(result.receipt.transaction_hash), block_number=result.receipt.block_number)


@router.post("/epcis", response_model=EpcisOut, summary="import a GS1 EPCIS 2.0 JSON document of this organisation",
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"type": "object", "description": "an EPCISDocument (GS1 EPCIS 2.0 JSON/JSON-LD)"}}}}})
async def import_epcis(request: Request, who: Importer, services: ServicesDep,
                       strict: Annotated[bool, Query()] = True,
                       maker: Annotated[int | None, Query(ge=1, le=2**63, description="the codes' manufacturer org id "
                                                          "(default: this organisation)")] = None) -> EpcisOut:
    body = await request.body()
    if len(body) > MAX_EPCIS_BYTES:
        raise Problem(status=413, detail=f"an EPCIS document is at most {MAX_EPCIS_BYTES} bytes")
    if not body:
        raise Problem(status=400, detail="the body must be an EPCIS 2.0 JSON document", type_suffix="invalid-input")
    result = await anyio.to_thread.run_sync(lambda: _trace(services, maker).import_epcis(body, strict=strict))
    steps = [_batch_out(s.result) for s in result.steps]
    return EpcisOut(steps=steps, refused=len(result.refused))


@router.post("/{operation}", response_model=BatchOut, summary="a batch operation of this organisation")
def operate(who: Anyone, services: ServicesDep, operation: Operation, body: TraceBatchIn) -> BatchOut:
    roles = ROLES_OF[operation]
    if who.role not in roles:
        raise Problem(status=403, detail=f"role {who.role} may not {operation} (needs {', '.join(roles)})",
                      type_suffix="forbidden-role")
    trace = _trace(services)
    common: dict[str, Any] = {"strict": body.strict, "document": body.document}
    codes: list[Any] = list(body.codes)
    if operation == "register":
        return _batch_out(trace.register(codes, level=body.level, **common))
    common["maker_org"] = body.maker_org
    if operation == "aggregate":
        if body.parent is None:
            raise Problem(status=422, detail="aggregate needs the parent code", type_suffix="missing-parent")
        return _batch_out(trace.aggregate(body.parent, codes, **common))
    if operation in ("ship", "return"):
        if body.to is None:
            raise Problem(status=422, detail=f"{operation} needs the receiving organisation (to)",
                          type_suffix="missing-to")
        if operation == "return":
            return _batch_out(trace.return_out(codes, body.to, **common))
        bill = BillType.SALES_OUT if body.bill is None else _bill(body.bill)
        return _batch_out(trace.ship(codes, body.to, bill=bill, **common))
    if operation == "receive":
        bill = BillType.PURCHASE_IN if body.bill is None else _bill(body.bill)
        return _batch_out(trace.receive(codes, bill=bill, **common))
    methods = {"dispense": trace.dispense, "recall": trace.recall}
    return _batch_out(methods[operation](codes, **common))


def _bill(value: int) -> BillType:
    try:
        return BillType(value)
    except ValueError:
        raise Problem(status=422, detail=f"unknown bill type {value}", type_suffix="bad-bill-type") from None


def _from_chain(ev: TraceEvent) -> TrailItem:
    return TrailItem(kind=ev.kind, block_number=ev.block_number, log_index=ev.log_index,  # type: ignore[arg-type]
                     tx_hash=to_hex(ev.transaction_hash), unit_key=None if ev.unit_key is None else to_hex(ev.unit_key),
                     bill_type=None if ev.bill_type is None else int(ev.bill_type), acting_org=ev.acting_org,
                     counterparty=ev.counterparty, reason=None if ev.reason is None else int(ev.reason),
                     parent=None if ev.parent is None else to_hex(ev.parent),
                     child=None if ev.child is None else to_hex(ev.child), added=ev.added,
                     doc_ref=None if ev.doc_ref is None else to_hex(ev.doc_ref), accepted=ev.accepted,
                     refused_count=ev.refused_count)


def _from_index(ev: IndexedEvent) -> TrailItem:
    a = ev.args
    where: dict[str, Any] = {"block_number": ev.block_number, "log_index": ev.log_index, "tx_hash": ev.tx_hash,
                             "block_time": ev.block_time}
    if ev.event == "UnitEvent":
        return TrailItem(kind="unit", unit_key=a["code"], bill_type=a["billType"], acting_org=a["actingOrg"],
                         counterparty=a["counterparty"], **where)
    if ev.event == "CodeRefused":
        return TrailItem(kind="refused", unit_key=a["code"], bill_type=a["billType"], reason=a["reason"], **where)
    if ev.event == "Aggregation":
        return TrailItem(kind="aggregation", parent=a["parent"], child=a["child"], added=a["added"], **where)
    return TrailItem(kind="batch", acting_org=a["actingOrg"], bill_type=a["billType"],
                     counterparty=a["counterparty"], doc_ref=a["docRef"], accepted=a["accepted"],
                     refused_count=a["refused"], **where)


def _index_trail(indexer: Indexer, key: str, after: tuple[int, int] | None, limit: int) -> list[IndexedEvent]:
    """The unit's events from the index, with the TraceBatch of each transaction among them, in chain order."""
    events = indexer.trail(key, after=after, limit=limit)
    hashes = sorted({e.tx_hash for e in events})
    if not hashes:
        return events
    t = trace_events
    with indexer.engine.connect() as conn:
        rows = conn.execute(select(t).where(t.c.event == "TraceBatch", t.c.tx_hash.in_(hashes))).mappings().all()
    batches = [indexed_event(r) for r in rows]
    return sorted(events + batches, key=lambda e: (e.block_number, e.log_index))


def _resolve(services: Services, code: str, maker: int | None) -> tuple[DrugTrace, str, bytes, int]:
    trace = _trace(services)
    try:
        normal = normalise_trace_code(code)
    except ValueError as exc:
        raise Problem(status=400, detail=str(exc), type_suffix="invalid-input") from None
    maker_org = maker if maker is not None else trace.maker_of(normal)
    return trace, normal, trace.unit_key(normal, maker_org), maker_org


@router.get("/codes/{code}", response_model=TrailOut, summary="a code's custody and trail")
def trail(who: Anyone, services: ServicesDep, code: Annotated[str, Path(min_length=1, max_length=128)],
          maker: Annotated[int | None, Query(ge=1, le=2**63, description="the code's manufacturer org id")] = None,
          limit: Limit = 100, cursor: Cursor = None) -> TrailOut:
    trace, normal, key, maker_org = _resolve(services, code, maker)
    block = services.client.block_number()
    unit = trace.unit(key)
    if unit.state == UnitState.NONE:
        raise Problem(status=404, detail=f"no unit of code {normal} by organisation {maker_org}",
                      type_suffix="not-found")
    (own, effective, holder) = services.client.view(trace.contract, "custodyOf", key, block=block)
    indexer = services.indexer
    items: list[TrailItem]
    next_cursor = None
    if indexer is not None and indexer.caught_up(block):
        after = _after(cursor)
        events = _index_trail(indexer, to_hex(key), after, limit)
        unit_events = [e for e in events if e.event != "TraceBatch"]
        items, source = [_from_index(e) for e in events], "index"
        if len(unit_events) == limit:
            last = unit_events[-1]
            next_cursor = encode_cursor(f"{last.block_number}.{last.log_index}")
        everything = items if after is None and next_cursor is None else [
            _from_index(e) for e in indexer.trail(to_hex(key), limit=500)]
    else:
        items, source = [_from_chain(e) for e in trace.trail(key)], "chain"
        everything = items
    unit_items = [i for i in everything if i.kind == "unit"]  # a batch's counterparty field is not always an org
    parties = {unit.holder, unit.owner, unit.pending} | {i.acting_org for i in unit_items} | {
        i.counterparty for i in unit_items}
    if who.role not in READ_ALL and who.org_id not in parties:
        raise Problem(status=404, detail=f"no unit of code {normal} visible to {who.org}", type_suffix="not-found")
    return TrailOut(code=normal, unit_key=to_hex(key), maker_org=maker_org, owner=unit.owner,
                    custody=CustodyOut(own=UnitState(own).name, effective=UnitState(effective).name, holder=holder),
                    trail=items, next_cursor=next_cursor, source=source,  # type: ignore[arg-type]
                    as_of_block=block)


def _after(cursor: str | None) -> tuple[int, int] | None:
    if not cursor:
        return None
    key = decode_cursor(cursor)
    try:
        block, index = str(key).split(".")
        return int(block), int(index)
    except ValueError:
        raise Problem(status=400, detail="the cursor is not one this gateway made", type_suffix="bad-cursor") from None


@router.get("/codes/{code}/epcis", summary="a code's trail as a GS1 EPCIS 2.0 JSON document")
def export_epcis(who: Anyone, services: ServicesDep, code: Annotated[str, Path(min_length=1, max_length=128)],
                 maker: Annotated[int | None, Query(ge=1, le=2**63)] = None) -> dict[str, Any]:
    trace, normal, key, maker_org = _resolve(services, code, maker)
    unit = trace.unit(key)
    if unit.state == UnitState.NONE:
        raise Problem(status=404, detail=f"no unit of code {normal} by organisation {maker_org}",
                      type_suffix="not-found")
    events = [e for e in trace.trail(key) if e.kind == "unit"]
    parties = {unit.holder, unit.owner, unit.pending} | {e.acting_org for e in events} | {
        e.counterparty for e in events}
    if who.role not in READ_ALL and who.org_id not in parties:
        raise Problem(status=404, detail=f"no unit of code {normal} visible to {who.org}", type_suffix="not-found")
    return trace.export_epcis(normal, maker_org)
