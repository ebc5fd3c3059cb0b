"""What PrescriptionFlow holds and says: the on-chain record, the outcome of a step and the history events
(see :mod:`shancheng.sdk.domain.prescriptions`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from ...client import Receipt
from ..events import ChainEvent
from ..staff import checksum_address
from .messages import RxContext, RxState, Transition, terms6

__all__ = ["RxEvent", "RxRecord", "RxStep"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)


class RxRecord(_Out):
    """The on-chain PrescriptionFlow.Prescription struct of one id."""

    hospital_org: int
    pharmacy_org: int
    version: int
    nonce: int
    state: RxState
    flags: int
    valid_days: int
    max_rept_cnt: int
    reptd_cnt: int
    long_supply_reason: int
    supply_days: int
    min_interval_seconds: int
    doctor: str
    valid_end: int  # first second (Unix time) at which it is no longer valid
    last_fill_at: int
    dispenser: str
    delivery_org: int
    doc_commitment: bytes

    @field_validator("doctor", "dispenser", mode="before")
    @classmethod
    def _checksum(cls, value: Any) -> Any:
        return checksum_address(value) if isinstance(value, str) else value

    @property
    def terms(self) -> tuple[int, int, int, int, int, int]:
        return (self.valid_days, self.supply_days, self.flags, self.long_supply_reason, self.max_rept_cnt,
                self.min_interval_seconds)

    @classmethod
    def from_struct(cls, value: Sequence[Any]) -> RxRecord:
        names = ("hospital_org", "pharmacy_org", "version", "nonce", "state", "flags", "valid_days", "max_rept_cnt",
                 "reptd_cnt", "long_supply_reason", "supply_days", "min_interval_seconds", "doctor", "valid_end",
                 "last_fill_at", "dispenser", "delivery_org", "doc_commitment")
        return cls.model_validate(dict(zip(names, value, strict=True)))


class RxStep(_Out):
    """The outcome of one transition: the final receipt, the prescription's new state, the document
    commitment the signature covered and the salt behind it (keep it with the document; None when the caller
    gave the commitment or no document)."""

    rx_id: bytes
    transition: Transition
    state: RxState
    doc_commitment: bytes
    salt: bytes | None
    staff: str | None
    receipt: Receipt
    pickup_code: str | None = None  # set by circulate and recall: give it to the patient


class RxEvent(_Out):
    """One event of a prescription's history, in chain order: ``kind`` is ``"transition"`` (RxTransition),
    ``"terms"`` (RxTerms, on issue and re-issue) or ``"extended"`` (RxValidityExtended)."""

    kind: str
    rx_id: bytes
    block_number: int
    log_index: int
    transaction_hash: bytes
    transition: Transition | None = None
    from_state: RxState | None = None
    to_state: RxState | None = None
    acting_org: int | None = None
    staff: str | None = None
    doc_commitment: bytes | None = None
    signed: RxContext | None = None
    r: bytes | None = None
    s: bytes | None = None
    sm2_verified: bool | None = None
    version: int | None = None
    doctor: str | None = None
    valid_end: int | None = None
    terms: tuple[int, int, int, int, int, int] | None = None
    valid_days: int | None = None

    @field_validator("staff", "doctor", mode="before")
    @classmethod
    def _checksum(cls, value: Any) -> Any:
        return checksum_address(value) if isinstance(value, str) else value

    @classmethod
    def from_chain(cls, event: ChainEvent) -> RxEvent:
        a = event.args
        where = {"rx_id": a["rxId"], "block_number": event.block_number, "log_index": event.log_index,
                 "transaction_hash": event.transaction_hash}
        if event.name == "RxTransition":
            return cls(kind="transition", transition=Transition(a["transition"]), from_state=RxState(a["from"]),
                       to_state=RxState(a["to"]), acting_org=a["actingOrg"], staff=a["staff"],
                       doc_commitment=a["docCommitment"], signed=RxContext.from_event(a["signed"]), r=a["r"],
                       s=a["s"], sm2_verified=a["sm2Verified"], **where)
        if event.name == "RxTerms":
            return cls(kind="terms", version=a["version"], doctor=a["doctor"], valid_end=a["validEnd"],
                       terms=terms6(a["terms"]), **where)
        return cls(kind="extended", valid_days=a["validDays"], valid_end=a["validEnd"], **where)
