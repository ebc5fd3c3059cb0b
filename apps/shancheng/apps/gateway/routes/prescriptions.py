"""The prescription API: issue, every transition of the state machine signed with the acting staff member's key,
the state with its timeline (from the indexer; from the chain when the indexer lags), and lists.

Who may do what (the gateway role; the contract checks the staff key's role and the organisation again):
issue, reissue, extend, revoke — doctor; approve, reject — pharmacist; circulate, recall — doctor or pharmacist (the
issuing hospital); claim, release — pharmacist or pharmacy; dispense, check, hand_over, consign — pharmacist or
dispenser (check by a different person than dispense); pick_up, deliver — courier; expire — any signed-in principal.

The patient's choice binds the claim: circulate (and recall, which takes a claim back with a new code) answers with a
``pickup_code`` for the patient — the gateway keeps no copy; the chain holds only a key derived from it. The pharmacy
the patient shows it to claims with it (``claim`` needs ``pickup_code``); nobody else can.

A repeat prescription (rept_flag, max_rept_cnt fills, min_inrv_days between the starts of two fills) is dispensed
again, or released to circulation, from DISPENSED or DELIVERED while fills are left: the same transitions, which the
contract allows there; GET says how many fills are used and allowed and when the next may start.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from eth_utils.address import to_checksum_address
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from shancheng.sdk.domain.prescriptions import (
    FLAG_REPEAT,
    Prescription,
    Prescriptions,
    Review,
    RxEvent,
    RxRecord,
    RxState,
    RxStep,
    Transition,
)
from shancheng.sdk.domain.prescriptions.pickup import InvalidPickupCode, normalise_pickup_code
from shancheng.sdk.strict_json import to_hex

from ..deps import Principal, ServicesDep, current_principal, require
from ..indexer import IndexedEvent
from ..pagination import Cursor, IndexedPage, Limit, decode_cursor, encode_cursor
from ..problems import Problem
from ..services import Services

router = APIRouter(prefix="/api/v1/prescriptions", tags=["prescriptions"])

TransitionName = Literal["approve", "reject", "reissue", "extend", "revoke", "circulate", "recall", "claim", "release",
                         "dispense", "check", "hand_over", "consign", "pick_up", "deliver", "expire"]
#: gateway roles allowed per transition (the contract checks the staff key's Governance role as well)
ROLES_OF: dict[str, tuple[str, ...]] = {
    "issue": ("doctor",), "reissue": ("doctor",), "extend": ("doctor",), "revoke": ("doctor",),
    "approve": ("pharmacist",), "reject": ("pharmacist",), "circulate": ("doctor", "pharmacist"),
    "recall": ("doctor", "pharmacist"),
    "claim": ("pharmacist", "pharmacy"), "release": ("pharmacist", "pharmacy"),
    "dispense": ("pharmacist", "dispenser"), "check": ("pharmacist", "dispenser"),
    "hand_over": ("pharmacist", "dispenser"), "consign": ("pharmacist", "dispenser"),
    "pick_up": ("courier",), "deliver": ("courier",),
}
READ_ALL = ("regulator", "auditor")
StateName = Literal["SIGNED", "APPROVED", "REJECTED", "CIRCULATED", "CLAIMED", "DISPENSING", "CHECKED", "DISPENSED",
                    "DELIVERING", "DELIVERED", "REVOKED", "EXPIRED"]
HEX32 = r"^0x[0-9a-fA-F]{64}$"
Doctor = Annotated[Principal, Depends(require("doctor"))]
Anyone = Annotated[Principal, Depends(current_principal)]
RxId = Annotated[str, Path(pattern=HEX32, description="the prescription id (0x and 64 hex digits)")]


class IssueIn(BaseModel):
    """A new prescription (national field names); ``rx_id`` defaults to a fresh random id in the hospital's
    namespace (an id given must start with the hospital's organisation id, as 16 hex digits)."""

    prescription: Prescription
    rx_id: str | None = Field(default=None, pattern=HEX32)


class TransitionIn(BaseModel):
    """What a transition needs besides the acting staff member: a review (approve, reject), the re-issued
    prescription (reissue), the new validity (extend), the logistics organisation (consign), an off-chain record
    whose commitment the signature covers (optional, any step), the patient's pickup code (claim)."""

    review: Review | None = None
    pickup_code: str | None = Field(default=None, max_length=40,
                                    description="the code the patient was given at circulation (claim)")
    prescription: Prescription | None = None
    valid_days: int | None = Field(default=None, ge=1, le=3)
    logistics_org: int | None = Field(default=None, ge=1, le=2**63)
    record: dict[str, Any] | None = None


class StepOut(BaseModel):
    """The outcome of a step: the new state, the final transaction, the document commitment and its salt (keep the
    salt with the document off chain; it opens the commitment)."""

    rx_id: str
    transition: str
    state: str
    staff: str | None
    doc_commitment: str
    salt: str | None
    tx_hash: str
    block_number: int
    pickup_code: str | None = Field(default=None, description="circulate and recall: the code for the patient, "
                                                               "shown once (only a key derived from it is on chain)")


class TimelineItem(BaseModel):
    """One event of the prescription's history, in chain order."""

    kind: Literal["transition", "terms", "extended"]
    block_number: int
    log_index: int
    tx_hash: str
    block_time: int | None = None
    transition: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    acting_org: int | None = None
    staff: str | None = None
    doc_commitment: str | None = None
    version: int | None = None
    valid_end: int | None = None
    valid_days: int | None = None


class PrescriptionOut(BaseModel):
    """The on-chain record of a prescription and its timeline; ``source`` says where the timeline came from.

    ``fills_used`` is the number of fills started (the contract's reptdCnt), ``fills_allowed`` max_rept_cnt for a
    repeat prescription, else 1. ``next_fill_at`` is the Unix second from which the next fill may start: the last
    fill's start plus the minimum interval, 0 before the first fill (no interval applies), null when no fill is left
    (all used, revoked or expired). The validity (``valid_end``) and the state bound it too: a fill starts only
    while valid, from CLAIMED or, with fills left, from DISPENSED or DELIVERED."""

    rx_id: str
    state: str
    hospital_org: int
    pharmacy_org: int
    delivery_org: int
    version: int
    valid_end: int
    doctor: str
    dispenser: str
    doc_commitment: str
    fills_used: int
    fills_allowed: int
    next_fill_at: int | None
    timeline: list[TimelineItem]
    source: Literal["index", "chain"]
    as_of_block: int


class PrescriptionSummary(BaseModel):
    rx_id: str
    state: str
    last_block: int


def _flow(services: Services) -> Prescriptions:
    return Prescriptions(services.client)


def _step_out(step: RxStep) -> StepOut:
    return StepOut(rx_id=to_hex(step.rx_id), transition=step.transition.name.lower(), state=step.state.name,
                   staff=step.staff, doc_commitment=to_hex(step.doc_commitment),
                   salt=None if step.salt is None else to_hex(step.salt), tx_hash=to_hex(step.receipt.transaction_hash),
                   block_number=step.receipt.block_number, pickup_code=step.pickup_code)


def _allowed(principal: Principal, transition: str) -> None:
    roles = ROLES_OF.get(transition)
    if roles is not None and principal.role not in roles:
        raise Problem(status=403, detail=f"role {principal.role} may not {transition} a prescription (needs "
                                         f"{', '.join(roles)})", type_suffix="forbidden-role")


@router.post("", response_model=StepOut, status_code=201, summary="issue a prescription (doctor)")
def issue(who: Doctor, services: ServicesDep, body: IssueIn) -> StepOut:
    signer = services.staff_keys.signer_for(who)
    rx_id = None if body.rx_id is None else bytes.fromhex(body.rx_id[2:])
    return _step_out(_flow(services).issue(body.prescription, doctor=signer, rx_id=rx_id))


@router.post("/{rx_id}/{transition}", response_model=StepOut, summary="a transition, signed by the acting staff")
def step(who: Anyone, services: ServicesDep, rx_id: RxId, transition: TransitionName,
         body: TransitionIn | None = None) -> StepOut:
    _allowed(who, transition)
    body = body or TransitionIn()
    flow = _flow(services)
    rid = bytes.fromhex(rx_id[2:])
    if transition == "expire":
        return _step_out(flow.expire(rid))
    signer = services.staff_keys.signer_for(who)
    record = body.record
    if transition in ("approve", "reject"):
        if body.review is None:
            raise Problem(status=422, detail=f"{transition} needs a review", type_suffix="missing-review")
        method = flow.approve if transition == "approve" else flow.reject
        return _step_out(method(rid, body.review, pharmacist=signer))
    if transition == "reissue":
        if body.prescription is None:
            raise Problem(status=422, detail="reissue needs the prescription", type_suffix="missing-prescription")
        return _step_out(flow.reissue(rid, body.prescription, doctor=signer))
    if transition == "extend":
        if body.valid_days is None:
            raise Problem(status=422, detail="extend needs valid_days", type_suffix="missing-valid-days")
        return _step_out(flow.extend_validity(rid, body.valid_days, doctor=signer, record=record))
    if transition == "claim":
        if not body.pickup_code:
            raise Problem(status=422, detail="claim needs the patient's pickup_code", type_suffix="missing-pickup-code")
        try:
            code = normalise_pickup_code(body.pickup_code)
        except InvalidPickupCode as exc:
            raise Problem(status=422, detail=str(exc), type_suffix="bad-pickup-code") from None
        return _step_out(flow.claim(rid, code, staff=signer, record=record))
    if transition == "consign":
        if body.logistics_org is None:
            raise Problem(status=422, detail="consign needs logistics_org", type_suffix="missing-logistics-org")
        return _step_out(flow.consign(rid, body.logistics_org, staff=signer, record=record))
    steps = {
        "revoke": lambda: flow.revoke(rid, doctor=signer, record=record),
        "circulate": lambda: flow.circulate(rid, staff=signer, record=record),
        "recall": lambda: flow.recall(rid, staff=signer, record=record),
        "release": lambda: flow.release(rid, staff=signer, record=record),
        "dispense": lambda: flow.dispense(rid, dispenser=signer, record=record),
        "check": lambda: flow.check(rid, checker=signer, record=record),
        "hand_over": lambda: flow.hand_over(rid, staff=signer, record=record),
        "pick_up": lambda: flow.pick_up(rid, courier=signer, record=record),
        "deliver": lambda: flow.deliver(rid, courier=signer, record=record),
    }
    return _step_out(steps[transition]())


def _block_times(client: Any, numbers: set[int]) -> dict[int, int]:
    """The timestamps of blocks ``numbers`` (a prescription's history spans a few dozen at most)."""
    times: dict[int, int] = {}
    for number in sorted(numbers):
        block = client.rpc.call("eth_getBlockByNumber", [hex(number), False])
        if isinstance(block, dict) and isinstance(block.get("timestamp"), str):
            times[number] = int(block["timestamp"], 16)
    return times


def _from_chain(event: RxEvent, block_time: int | None) -> TimelineItem:
    return TimelineItem(
        kind=event.kind, block_number=event.block_number, log_index=event.log_index,  # type: ignore[arg-type]
        tx_hash=to_hex(event.transaction_hash), block_time=block_time,
        transition=None if event.transition is None else event.transition.name.lower(),
        from_state=None if event.from_state is None else event.from_state.name,
        to_state=None if event.to_state is None else event.to_state.name, acting_org=event.acting_org,
        staff=event.staff, doc_commitment=None if event.doc_commitment is None else to_hex(event.doc_commitment),
        version=event.version, valid_end=event.valid_end, valid_days=event.valid_days)


def _from_index(event: IndexedEvent) -> TimelineItem:
    a = event.args
    where: dict[str, Any] = {"block_number": event.block_number, "log_index": event.log_index, "tx_hash": event.tx_hash,
             "block_time": event.block_time}
    if event.event == "RxTransition":
        return TimelineItem(kind="transition", transition=Transition(a["transition"]).name.lower(),
                            from_state=RxState(a["from"]).name, to_state=RxState(a["to"]).name,
                            acting_org=a["actingOrg"], staff=_checksum(a["staff"]),
                            doc_commitment=a["docCommitment"], **where)
    if event.event == "RxTerms":
        return TimelineItem(kind="terms", version=a["version"], valid_end=a["validEnd"],
                            staff=None, **where)
    return TimelineItem(kind="extended", valid_days=a["validDays"], valid_end=a["validEnd"], **where)


def _checksum(address: str) -> str:
    return str(to_checksum_address(address))


def _fills(record: RxRecord) -> tuple[int, int, int | None]:
    """(fills used, fills allowed, when the next may start) as the contract counts them (_maxFills, dispense)."""
    allowed = record.max_rept_cnt if record.flags & FLAG_REPEAT else 1
    used = record.reptd_cnt
    if used >= allowed or record.state in (RxState.REVOKED, RxState.EXPIRED):
        return used, allowed, None
    return used, allowed, record.last_fill_at + record.min_interval_seconds if used else 0


def _visible(who: Principal, record: RxRecord) -> bool:
    """A prescription is visible to its hospital, the pharmacy that claimed it, its delivery organisation, any
    pharmacy while it circulates (the patient chose where to take it), regulators and auditors."""
    if who.role in READ_ALL:
        return True
    if who.org_id in (record.hospital_org, record.pharmacy_org, record.delivery_org):
        return True
    return record.state == RxState.CIRCULATED and who.role in ("pharmacist", "pharmacy", "dispenser")


@router.get("/{rx_id}", response_model=PrescriptionOut, summary="state and timeline of a prescription")
def get_prescription(who: Anyone, services: ServicesDep, rx_id: RxId) -> PrescriptionOut:
    flow = _flow(services)
    rid = bytes.fromhex(rx_id[2:])
    block = services.client.block_number()
    (struct,) = services.client.view(flow.contract, "getPrescription", rid, block=block)
    record = RxRecord.from_struct(struct)
    if record.state == RxState.NONE or not _visible(who, record):
        raise Problem(status=404, detail=f"no prescription {rx_id.lower()} visible to {who.org}",
                      type_suffix="not-found")
    indexer = services.indexer
    items: list[TimelineItem]
    if indexer is not None and indexer.caught_up(block):
        items, source = [], "index"
        after = None
        while True:  # a prescription has a few dozen events at most
            page = indexer.timeline(rx_id, after=after, limit=500)
            items += [_from_index(e) for e in page]
            if len(page) < 500:
                break
            after = (page[-1].block_number, page[-1].log_index)
    else:
        events = flow.history(rid)
        times = _block_times(services.client, {e.block_number for e in events})
        items, source = [_from_chain(e, times.get(e.block_number)) for e in events], "chain"
    fills_used, fills_allowed, next_fill_at = _fills(record)
    return PrescriptionOut(
        rx_id=rx_id.lower(), state=record.state.name, hospital_org=record.hospital_org,
        pharmacy_org=record.pharmacy_org, delivery_org=record.delivery_org, version=record.version,
        valid_end=record.valid_end, doctor=record.doctor, dispenser=record.dispenser,
        doc_commitment=to_hex(record.doc_commitment), fills_used=fills_used, fills_allowed=fills_allowed,
        next_fill_at=next_fill_at, timeline=items, source=source,  # type: ignore[arg-type]
        as_of_block=block)


@router.get("", response_model=IndexedPage[PrescriptionSummary],
            summary="prescriptions this organisation acted on (all for regulators and auditors), from the indexer")
def list_prescriptions(
    who: Anyone, services: ServicesDep,
    state: Annotated[StateName | None,
                     Query(description="only those whose latest transition led to this state")] = None,
    limit: Limit = 50, cursor: Cursor = None,
) -> IndexedPage[PrescriptionSummary]:
    indexer = services.indexer
    if indexer is None:
        raise Problem(status=503, detail="the indexer is not running", type_suffix="indexer-unavailable")
    after = None
    if cursor:
        key = decode_cursor(cursor)
        if not isinstance(key, str) or len(key) != 66:
            raise Problem(status=400, detail="the cursor is not one this gateway made", type_suffix="bad-cursor")
        after = key
    org = None if who.role in READ_ALL else who.org_id
    indexed = indexer.indexed_block  # read before the rows: the page holds at least every event up to it
    rows = indexer.rx_ids(org=org, state=None if state is None else int(RxState[state]), after=after,
                          limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return IndexedPage[PrescriptionSummary](
        items=[PrescriptionSummary(rx_id=r, state=RxState(s).name, last_block=b) for r, s, b in rows],
        next_cursor=encode_cursor(rows[-1][0]) if more and rows else None, indexed_block=indexed)
