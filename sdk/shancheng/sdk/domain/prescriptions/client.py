"""The prescription client: one organisation's steps on the PrescriptionFlow contract (:class:`Prescriptions`).

On a chain (``client`` a connected :class:`~shancheng.sdk.client.Client` of a hospital)::

    flow = Prescriptions(client)
    step = flow.issue(rx, doctor=doctor_key)            # -> RxStep(state=SIGNED, rx_id=..., salt=...)
    pharmacy_flow.approve(step.rx_id, Review(...), pharmacist=pharmacist_key)
    code = flow.circulate(step.rx_id, staff=doctor_key).pickup_code   # give it to the patient
    pharmacy_flow.claim(step.rx_id, code, staff=pharmacist_key)        # the pharmacy the patient chose
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from ...client import Client, Contract, Receipt
from ...errors import InvalidInput
from ..documents import doc_commitment, new_salt
from ..events import fetch_events, receipt_events
from ..staff import StaffSigner
from ..transactions import DomainError, require_gm, send_checked
from .messages import (
    FUNCTION_OF,
    RxContext,
    RxState,
    Transition,
    new_rx_id,
    next_context,
    rx_id_of,
    sign_rx_transition,
)
from .models import (
    MAX_VALID_DAYS,
    InvalidPrescription,
    Prescription,
    Review,
)
from .pickup import format_pickup_code, new_pickup_code, pickup_public_key, sign_pickup
from .records import RxEvent, RxRecord, RxStep

__all__ = ["Prescriptions"]

_ZERO32 = bytes(32)
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
