"""E-prescription circulation (电子处方流转) on the PrescriptionFlow contract.

The prescription itself (:class:`Prescription`, national interface field names) stays off chain; the chain holds
its commitment, its terms and the state machine of the domain notes (``domain/prescriptions.md``, see ``docs/sdk-domain.md``). Every step but
``expire`` is SM2-signed by the acting staff member (doctor, pharmacist, dispenser, checker, courier) over

``M = SM3(abi.encode(RX_TRANSITION_TAG, chain_id, contract, rx_id, transition, doc_commitment, context))``

with ``context = (version, nonce, fill, delivery_org, terms, pickup_key)`` as it stands once the transition is
applied (:class:`RxContext`): every term the signature authorises, and a nonce every signed transition advances.

Ids live in the issuing hospital's namespace (the first 8 bytes are its organisation id; :func:`new_rx_id` draws
the rest at random), and a claim needs the patient's pickup code (:mod:`~shancheng.sdk.domain.rx_pickup`):
:meth:`Prescriptions.circulate` returns the code for the patient, :meth:`Prescriptions.claim` takes it.

>>> rx = Prescription.parse({"hosp_rxno": "RX0001", "rx_type_code": "1", "prsc_time": "2024-06-15T09:00:00+08:00",
...     "valid_days": 1, "drugs": [{"med_list_codg": "XA01", "drug_genname": "amoxicillin", "drug_dosform": "capsule",
...     "drug_spec": "0.25 g", "drug_cnt": "24", "drug_cnt_unit": "capsule", "medc_days": 4}]})
>>> rx.terms().as_tuple()
(1, 4, 0, 0, 0, 0)
>>> Prescription.parse({**rx.model_dump(mode="json"), "valid_days": 5})
Traceback (most recent call last):
...
shancheng.sdk.domain.prescriptions.InvalidPrescription: invalid prescription: valid_days: must be 1 to 3 days \
(a prescription is valid on its day of issue; the doctor may extend it to at most 3 days)

On a chain (``client`` a connected :class:`~shancheng.sdk.client.Client` of a hospital)::

    flow = Prescriptions(client)
    step = flow.issue(rx, doctor=doctor_key)            # -> RxStep(state=SIGNED, rx_id=..., salt=...)
    pharmacy_flow.approve(step.rx_id, Review(...), pharmacist=pharmacist_key)
    code = flow.circulate(step.rx_id, staff=doctor_key).pickup_code   # give it to the patient
    pharmacy_flow.claim(step.rx_id, code, staff=pharmacist_key)        # the pharmacy the patient chose
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..client import Client, Contract, Receipt
from ..errors import InvalidInput
from ._common import (
    DomainError,
    StaffSigner,
    doc_commitment,
    fetch_events,
    new_salt,
    receipt_events,
    require_gm,
    send_checked,
    staff_address,
)
from .rx_messages import (
    CONTEXT_TYPE,
    FUNCTION_OF,
    RX_ID_TAG,
    RX_TRANSITION_TAG,
    TERMS_TYPE,
    RxContext,
    RxState,
    Transition,
    new_rx_id,
    next_context,
    rx_id_of,
    rx_transition_message,
    rx_transition_preimage,
    sign_rx_transition,
    verify_rx_transition,
)
from .rx_pickup import format_pickup_code, new_pickup_code, pickup_public_key, sign_pickup
from .rx_records import RxEvent, RxRecord, RxStep

__all__ = [
    "CONTEXT_TYPE",
    "FLAG_CONTROLLED",
    "FLAG_EMERGENCY",
    "FLAG_ONLINE",
    "FLAG_REPEAT",
    "FUNCTION_OF",
    "RX_ID_TAG",
    "RX_TRANSITION_TAG",
    "TERMS_TYPE",
    "DrugLine",
    "InvalidPrescription",
    "Prescription",
    "Prescriptions",
    "Review",
    "RxContext",
    "RxEvent",
    "RxRecord",
    "RxState",
    "RxStep",
    "RxTerms",
    "Transition",
    "new_rx_id",
    "next_context",
    "rx_id_of",
    "rx_transition_message",
    "rx_transition_preimage",
    "sign_rx_transition",
    "staff_address",
    "verify_rx_transition",
]


FLAG_ONLINE = 1  # issued through the internet-diagnosis channel
FLAG_EMERGENCY = 2  # emergency prescription: supply at most 3 days
FLAG_CONTROLLED = 4  # contains narcotics or psychotropics
FLAG_REPEAT = 8  # [rept_flag]

MAX_VALID_DAYS = 3
MAX_SUPPLY_DAYS = 7
MAX_EMERGENCY_SUPPLY_DAYS = 3
MAX_INTERVAL_DAYS = (2**32 - 1) // 86_400  # minIntervalSeconds is a uint32
MAX_DRUG_LINES = 20
_ZERO32 = bytes(32)
_M = TypeVar("_M", bound=BaseModel)


class InvalidPrescription(InvalidInput):
    """A prescription document or term that breaks a rule; refused before any transaction."""


# ------------------------------------------------------------------------------------------ documents

_FROZEN = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
_CODE = r"^[!-~]+$"  # printable ASCII without spaces


class RxTerms(BaseModel):
    """PrescriptionFlow.Terms: what the doctor's signature sets (national names in brackets)."""

    model_config = _FROZEN

    valid_days: int = Field(ge=1, le=MAX_VALID_DAYS)  # [valid_days]
    supply_days: int = Field(ge=1, lt=2**16)  # [medc_days], the longest among the drug lines
    flags: int = Field(ge=0, lt=16)
    long_supply_reason: int = Field(default=0, ge=0, lt=256)
    max_rept_cnt: int = Field(default=0, ge=0, lt=256)  # [max_rept_cnt]
    min_interval_seconds: int = Field(default=0, ge=0, lt=2**32)  # [min_inrv_days] in seconds

    def as_tuple(self) -> tuple[int, int, int, int, int, int]:
        return (self.valid_days, self.supply_days, self.flags, self.long_supply_reason, self.max_rept_cnt,
                self.min_interval_seconds)

    @model_validator(mode="after")
    def _rules(self) -> Self:
        _check_terms(self.flags, self.supply_days, self.long_supply_reason, self.max_rept_cnt,
                     self.min_interval_seconds)
        return self


def _check_terms(flags: int, supply_days: int, long_reason: int, max_rept: int, interval: int) -> None:
    """The contract's term rules (PrescriptionFlow._writeTerms), checked before any transaction."""
    if flags & (FLAG_ONLINE | FLAG_CONTROLLED) == FLAG_ONLINE | FLAG_CONTROLLED:
        raise ValueError("narcotics and psychotropics cannot be prescribed online")
    limit = MAX_EMERGENCY_SUPPLY_DAYS if flags & FLAG_EMERGENCY else MAX_SUPPLY_DAYS
    if supply_days > limit and long_reason == 0:
        kind = "an emergency" if flags & FLAG_EMERGENCY else "a"
        raise ValueError(f"a supply of {supply_days} days is over the {limit}-day limit of {kind} prescription: "
                         "state a long-supply reason (chronic disease, elderly patient)")
    if flags & FLAG_REPEAT:
        if max_rept < 2:
            raise ValueError("a repeat prescription needs max_rept_cnt of at least 2 fills")
    elif max_rept > 1 or interval != 0:
        raise ValueError("max_rept_cnt and min_inrv_days need rept_flag (a repeat prescription)")


class DrugLine(BaseModel):
    """One drug of a prescription (national interface names)."""

    model_config = _FROZEN

    med_list_codg: str = Field(min_length=1, max_length=64, pattern=_CODE)  # medical-insurance drug code
    drug_genname: str = Field(min_length=1, max_length=128)  # generic name
    drug_dosform: str = Field(min_length=1, max_length=64)  # dosage form
    drug_spec: str = Field(min_length=1, max_length=128)  # specification
    drug_cnt: Decimal = Field(gt=0, max_digits=12, decimal_places=4)  # quantity
    drug_cnt_unit: str = Field(min_length=1, max_length=16)
    medc_days: int = Field(ge=1, le=366)  # days of supply


class Prescription(BaseModel):
    """An e-prescription as the hospital keeps it off chain (national medical-insurance interface names).

    Patient data appears only as ``patient_commitment`` (hex of a :func:`~shancheng.sdk.domain.doc_commitment`
    of the patient record, whose salt the hospital keeps). Build it with :meth:`parse` for one-line errors."""

    model_config = _FROZEN

    hosp_rxno: str = Field(min_length=1, max_length=40, pattern=_CODE)  # the hospital's prescription number
    init_rxno: str | None = Field(default=None, min_length=1, max_length=40, pattern=_CODE)  # of a re-issue
    rx_type_code: str = Field(min_length=1, max_length=8, pattern=_CODE)
    prsc_time: dt.datetime  # time of prescribing, with its UTC offset
    valid_days: int = 1  # 1 = valid on the day of issue only; at most 3
    rept_flag: bool = False  # a repeat prescription
    max_rept_cnt: int = Field(default=0, ge=0, lt=256)  # fills of a repeat prescription (>= 2)
    min_inrv_days: int = Field(default=0, ge=0, le=MAX_INTERVAL_DAYS)  # days between the starts of two fills
    online: bool = False  # issued through the internet-diagnosis channel
    emergency: bool = False  # supply at most 3 days
    controlled: bool = False  # contains narcotics or psychotropics (never online)
    long_supply_reason: int = Field(default=0, ge=0, lt=256)  # reason code for supply over the limit; 0 none
    patient_commitment: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    drugs: tuple[DrugLine, ...] = Field(min_length=1, max_length=MAX_DRUG_LINES)

    @field_validator("valid_days")
    @classmethod
    def _valid_days(cls, value: int) -> int:
        if not 1 <= value <= MAX_VALID_DAYS:
            raise ValueError("must be 1 to 3 days (a prescription is valid on its day of issue; the doctor may "
                             "extend it to at most 3 days)")
        return value

    @field_validator("prsc_time")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("must carry its UTC offset (e.g. +08:00)")
        return value

    @model_validator(mode="after")
    def _rules(self) -> Self:
        _check_terms(self.flags, self.supply_days, self.long_supply_reason, self.max_rept_cnt,
                     self.min_inrv_days * 86_400)
        if self.rept_flag and (self.max_rept_cnt - 1) * self.min_inrv_days >= MAX_VALID_DAYS:
            # every fill starts while the prescription is valid, and validity ends at most 3 days after the day of
            # issue (extensions included): later fills could never start (the contract would accept the terms)
            raise ValueError(
                f"a repeat prescription's fills must start within its validity (at most {MAX_VALID_DAYS} days): "
                f"{self.max_rept_cnt} fills {self.min_inrv_days} day(s) apart need "
                f"{(self.max_rept_cnt - 1) * self.min_inrv_days} days")
        return self

    @property
    def supply_days(self) -> int:
        return max(line.medc_days for line in self.drugs)

    @property
    def flags(self) -> int:
        return ((FLAG_ONLINE if self.online else 0) | (FLAG_EMERGENCY if self.emergency else 0)
                | (FLAG_CONTROLLED if self.controlled else 0) | (FLAG_REPEAT if self.rept_flag else 0))

    def terms(self) -> RxTerms:
        """The on-chain terms this prescription sets."""
        return RxTerms(valid_days=self.valid_days, supply_days=self.supply_days, flags=self.flags,
                       long_supply_reason=self.long_supply_reason,
                       max_rept_cnt=self.max_rept_cnt if self.rept_flag else 0,
                       min_interval_seconds=self.min_inrv_days * 86_400)

    @classmethod
    def parse(cls, data: Prescription | Mapping[str, Any]) -> Prescription:
        """A validated prescription from a mapping (or itself); every problem is an :class:`InvalidPrescription`
        naming the field."""
        if isinstance(data, Prescription):
            return data
        return _parse(cls, data, "prescription")


class Review(BaseModel):
    """A pharmacist's review of a prescription (national names): certificate number, result code, opinion."""

    model_config = _FROZEN

    phar_prac_cert_no: str = Field(min_length=1, max_length=64, pattern=_CODE)
    rx_chk_stas_codg: str = Field(min_length=1, max_length=8, pattern=_CODE)  # review result code
    rx_chk_opnn: str | None = Field(default=None, max_length=1000)  # opinion
    chk_time: dt.datetime | None = None

    @classmethod
    def parse(cls, data: Review | Mapping[str, Any]) -> Review:
        if isinstance(data, Review):
            return data
        return _parse(cls, data, "review")


def _parse(cls: type[_M], data: Mapping[str, Any], what: str) -> _M:
    if not isinstance(data, Mapping):
        raise InvalidPrescription(f"a {what} must be a JSON object")
    try:
        return cls.model_validate(dict(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or what
        message = str(err["msg"]).removeprefix("Value error, ")
        raise InvalidPrescription(f"invalid {what}: {where}: {message}") from None



# ------------------------------------------------------------------------------------------ the client

_HISTORY_EVENTS = ("RxTransition", "RxTerms", "RxValidityExtended")
_Document = BaseModel | Mapping[str, Any]


class Prescriptions:
    """Prescription steps of one organisation's :class:`~shancheng.sdk.client.Client` on PrescriptionFlow.

    Each step takes the acting staff member's signer (an SM2 private key, or any :class:`StaffSigner`), builds
    the signature the contract checks, sends the transaction from the client's organisation account and
    returns an :class:`RxStep`. Refusals raise :class:`~shancheng.sdk.domain.DomainRefused` with the contract's
    reason; invalid documents raise :class:`InvalidPrescription` before anything is sent. Signed steps need the
    GM precompile (the contract checks SM2 there): elsewhere they raise
    :class:`~shancheng.sdk.domain.UnsupportedOnChain`.
    """

    def __init__(self, client: Client, *, timeout: float = 120.0) -> None:
        if not isinstance(client, Client):
            raise InvalidInput("Prescriptions needs a connected shancheng.sdk.Client")
        self.client = client
        self.contract: Contract = client.contract("PrescriptionFlow")
        self.timeout = timeout

    # -- reads -------------------------------------------------------------------------------------
    def rx_id(self, hosp_rxno: str, *, hospital_org: int | None = None) -> bytes:
        """The deterministic id of ``hosp_rxno`` of ``hospital_org`` (default: the client's organisation),
        :func:`rx_id_of`."""
        return rx_id_of(self.client.org_id if hospital_org is None else hospital_org, hosp_rxno)

    def context(self, rx_id: bytes) -> RxContext:
        """The Context as the record stands on chain (before the next transition)."""
        (ctx,) = self.client.view(self.contract, "contextOf", _id(rx_id))
        return RxContext.from_event(ctx)

    def get(self, rx_id: bytes) -> RxRecord:
        """The on-chain record of ``rx_id`` (state NONE when unknown)."""
        (struct,) = self.client.view(self.contract, "getPrescription", _id(rx_id))
        return RxRecord.from_struct(struct)

    def state(self, rx_id: bytes) -> RxState:
        (value,) = self.client.view(self.contract, "stateOf", _id(rx_id))
        return RxState(value)

    def history(self, rx_id: bytes, *, from_block: int = 0) -> list[RxEvent]:
        """Every RxTransition, RxTerms and RxValidityExtended event of ``rx_id``, in chain order."""
        events = fetch_events(self.client, self.contract, _HISTORY_EVENTS, topics=[_id(rx_id)], from_block=from_block)
        return [RxEvent.from_chain(e) for e in events]

    # -- the doctor --------------------------------------------------------------------------------
    def issue(self, prescription: Prescription | Mapping[str, Any], *, doctor: StaffSigner,
              rx_id: bytes | None = None, salt: bytes | None = None) -> RxStep:
        """Issue (sign) a new prescription: (none) -> SIGNED. ``rx_id`` defaults to a fresh :func:`new_rx_id` of
        the client's organisation; the step's salt is fresh unless given."""
        rx = Prescription.parse(prescription)
        rid = new_rx_id(self.client.org_id) if rx_id is None else _id(rx_id)
        terms = rx.terms().as_tuple()
        salt = new_salt() if salt is None else salt
        doc = doc_commitment(rx, salt)
        ctx = next_context(Transition.ISSUE, RxContext(0, 0, 0, 0, terms), terms=terms)
        return self._step(Transition.ISSUE, rid, doctor, doc, salt, ctx, (rid, doc, terms))

    def reissue(self, rx_id: bytes, prescription: Prescription | Mapping[str, Any], *, doctor: StaffSigner,
                salt: bytes | None = None) -> RxStep:
        """The prescribing doctor re-issues a rejected prescription as a new version: REJECTED -> SIGNED."""
        rx = Prescription.parse(prescription)
        rid = _id(rx_id)
        terms = rx.terms().as_tuple()
        salt = new_salt() if salt is None else salt
        doc = doc_commitment(rx, salt)
        ctx = next_context(Transition.REISSUE, self.context(rid), terms=terms)
        return self._step(Transition.REISSUE, rid, doctor, doc, salt, ctx, (rid, doc, terms))

    def extend_validity(self, rx_id: bytes, valid_days: int, *, doctor: StaffSigner, record: _Document | None = None,
                        salt: bytes | None = None) -> RxStep:
        """The prescribing doctor extends validity to ``valid_days`` (more than now, at most 3)."""
        if isinstance(valid_days, bool) or not isinstance(valid_days, int) or not 1 <= valid_days <= MAX_VALID_DAYS:
            raise InvalidPrescription("valid_days must be 1 to 3 days")
        rid = _id(rx_id)
        current = self.context(rid)
        if valid_days <= current.terms[0]:
            raise InvalidPrescription(f"validity can only be extended: it is {current.terms[0]} day(s) already")
        doc, salt = _commit(record, salt)
        ctx = next_context(Transition.EXTEND, current, valid_days=valid_days)
        return self._step(Transition.EXTEND, rid, doctor, doc, salt, ctx, (rid, valid_days, doc))

    def revoke(self, rx_id: bytes, *, doctor: StaffSigner, record: _Document | None = None,
               salt: bytes | None = None) -> RxStep:
        """The prescribing doctor revokes before any dispensing (``record``: e.g. undo_rea, undo_time)."""
        return self._simple(Transition.REVOKE, rx_id, doctor, record, salt)

    # -- review ------------------------------------------------------------------------------------
    def approve(self, rx_id: bytes, review: Review | Mapping[str, Any], *, pharmacist: StaffSigner,
                salt: bytes | None = None) -> RxStep:
        """A pharmacist approves the signed prescription: SIGNED -> APPROVED."""
        return self._simple(Transition.APPROVE, rx_id, pharmacist, Review.parse(review), salt)

    def reject(self, rx_id: bytes, review: Review | Mapping[str, Any], *, pharmacist: StaffSigner,
               salt: bytes | None = None) -> RxStep:
        """A pharmacist sends it back to the doctor: SIGNED -> REJECTED."""
        return self._simple(Transition.REJECT, rx_id, pharmacist, Review.parse(review), salt)

    # -- circulation and dispensing ----------------------------------------------------------------
    def circulate(self, rx_id: bytes, *, staff: StaffSigner, pickup_code: str | None = None,
                  record: _Document | None = None, salt: bytes | None = None) -> RxStep:
        """The issuing hospital releases it for circulation: APPROVED -> CIRCULATED. The step's
        ``pickup_code`` (fresh unless given) is for the patient: only a pharmacy holding it can claim."""
        return self._keyed(Transition.CIRCULATE, rx_id, staff, pickup_code, record, salt)

    def recall(self, rx_id: bytes, *, staff: StaffSigner, pickup_code: str | None = None,
               record: _Document | None = None, salt: bytes | None = None) -> RxStep:
        """The issuing hospital takes back a claim no fill is under way for (or a circulating prescription whose
        code leaked) with a new pickup code: CIRCULATED, CLAIMED -> CIRCULATED."""
        return self._keyed(Transition.RECALL, rx_id, staff, pickup_code, record, salt)

    def claim(self, rx_id: bytes, pickup_code: str, *, staff: StaffSigner, record: _Document | None = None,
              salt: bytes | None = None) -> RxStep:
        """The pharmacy the patient chose (and gave ``pickup_code`` to) claims it: CIRCULATED -> CLAIMED."""
        rid = _id(rx_id)
        doc, salt = _commit(record, salt)
        ctx = next_context(Transition.CLAIM, self.context(rid))
        proof = sign_pickup(rid, pickup_code, chain_id=self.client.chain_id, contract=self.contract.address,
                            pharmacy_org=self.client.org_id, nonce=ctx.nonce)
        return self._step(Transition.CLAIM, rid, staff, doc, salt, ctx, (rid, doc, proof))

    def release(self, rx_id: bytes, *, staff: StaffSigner, record: _Document | None = None,
                salt: bytes | None = None) -> RxStep:
        """The claiming pharmacy gives it back: CLAIMED -> CIRCULATED (the pickup code stays the same)."""
        return self._simple(Transition.RELEASE, rx_id, staff, record, salt)

    def dispense(self, rx_id: bytes, *, dispenser: StaffSigner, record: _Document | None = None,
                 salt: bytes | None = None) -> RxStep:
        """The claiming pharmacy starts a fill (调配): CLAIMED -> DISPENSING."""
        return self._simple(Transition.DISPENSE, rx_id, dispenser, record, salt)

    def check(self, rx_id: bytes, *, checker: StaffSigner, record: _Document | None = None,
              salt: bytes | None = None) -> RxStep:
        """Checking (核对) by someone other than the dispenser: DISPENSING -> CHECKED."""
        return self._simple(Transition.CHECK, rx_id, checker, record, salt)

    def hand_over(self, rx_id: bytes, *, staff: StaffSigner, record: _Document | None = None,
                  salt: bytes | None = None) -> RxStep:
        """The pharmacy hands the checked drugs to the patient: CHECKED -> DISPENSED."""
        return self._simple(Transition.HAND_OVER, rx_id, staff, record, salt)

    def consign(self, rx_id: bytes, logistics_org: int, *, staff: StaffSigner, record: _Document | None = None,
                salt: bytes | None = None) -> RxStep:
        """The claiming pharmacy names the logistics organisation that delivers: CHECKED -> CHECKED."""
        if isinstance(logistics_org, bool) or not isinstance(logistics_org, int) or not 0 < logistics_org < 2**64:
            raise InvalidInput("logistics_org must be an organisation id")
        rid = _id(rx_id)
        doc, salt = _commit(record, salt)
        ctx = next_context(Transition.CONSIGN, self.context(rid), delivery_org=logistics_org)
        return self._step(Transition.CONSIGN, rid, staff, doc, salt, ctx, (rid, logistics_org, doc))

    def pick_up(self, rx_id: bytes, *, courier: StaffSigner, record: _Document | None = None,
                salt: bytes | None = None) -> RxStep:
        """A courier of the named logistics organisation picks up: CHECKED -> DELIVERING."""
        return self._simple(Transition.PICK_UP, rx_id, courier, record, salt)

    def deliver(self, rx_id: bytes, *, courier: StaffSigner, record: _Document | None = None,
                salt: bytes | None = None) -> RxStep:
        """The same logistics organisation delivers to the patient: DELIVERING -> DELIVERED."""
        return self._simple(Transition.DELIVER, rx_id, courier, record, salt)

    def expire(self, rx_id: bytes) -> RxStep:
        """Anyone expires a prescription waiting for a fill once its validity has ended (no signature)."""
        rid = _id(rx_id)
        receipt = send_checked(self.client, self.contract.call("expire", rid), timeout=self.timeout)
        return RxStep(rx_id=rid, transition=Transition.EXPIRE, state=self._state_after(receipt, rid),
                      doc_commitment=_ZERO32, salt=None, staff=None, receipt=receipt)

    # -- internals ---------------------------------------------------------------------------------
    def _simple(self, transition: Transition, rx_id: bytes, signer: StaffSigner, record: _Document | None,
                salt: bytes | None) -> RxStep:
        rid = _id(rx_id)
        doc, salt = _commit(record, salt)
        ctx = next_context(transition, self.context(rid))
        return self._step(transition, rid, signer, doc, salt, ctx, (rid, doc))

    def _keyed(self, transition: Transition, rx_id: bytes, signer: StaffSigner, pickup_code: str | None,
               record: _Document | None, salt: bytes | None) -> RxStep:
        rid = _id(rx_id)
        code = format_pickup_code(new_pickup_code() if pickup_code is None else pickup_code)
        key = pickup_public_key(rid, code)
        doc, salt = _commit(record, salt)
        ctx = next_context(transition, self.context(rid), pickup_key=key)
        step = self._step(transition, rid, signer, doc, salt, ctx, (rid, doc, key))
        return step.model_copy(update={"pickup_code": code})

    def _step(self, transition: Transition, rx_id: bytes, signer: StaffSigner, doc: bytes, salt: bytes | None,
              ctx: RxContext, args: tuple[Any, ...]) -> RxStep:
        require_gm(self.client, f"PrescriptionFlow.{FUNCTION_OF[transition]}")
        sig = sign_rx_transition(signer, self.client.chain_id, self.contract.address, rx_id, transition, doc, ctx)
        call = self.contract.call(FUNCTION_OF[transition], *args, sig)
        receipt = send_checked(self.client, call, timeout=self.timeout)
        return RxStep(rx_id=rx_id, transition=transition, state=self._state_after(receipt, rx_id),
                      doc_commitment=doc, salt=salt, staff=sig[0], receipt=receipt)

    def _state_after(self, receipt: Receipt, rx_id: bytes) -> RxState:
        for event in receipt_events(self.contract, receipt, ("RxTransition",)):
            if event.args["rxId"] == rx_id:
                return RxState(event.args["to"])
        raise DomainError(f"the receipt of {receipt.transaction_hash.hex()} has no RxTransition of this prescription")


def _id(rx_id: bytes) -> bytes:
    if not isinstance(rx_id, bytes) or len(rx_id) != 32 or rx_id == _ZERO32:
        raise InvalidInput("a prescription id is 32 bytes, not zero (see new_rx_id)")
    return rx_id


def _commit(record: _Document | None, salt: bytes | None) -> tuple[bytes, bytes | None]:
    """The commitment of a step's off-chain record (zero when there is none) and its salt."""
    if record is None:
        return _ZERO32, None
    salt = new_salt() if salt is None else salt
    return doc_commitment(record, salt), salt
