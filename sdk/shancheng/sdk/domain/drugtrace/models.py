"""What DrugTrace holds and says: unit states, refusal reasons, bill types, and the typed results of the client's
operations (batch results, units, custody, trace events, EPCIS imports)."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from ...client import Receipt
from ..events import ChainEvent

__all__ = [
    "BatchResult",
    "BillType",
    "CodeRefusal",
    "Custody",
    "EpcisImport",
    "EpcisStep",
    "Refusal",
    "TraceEvent",
    "UnitInfo",
    "UnitState",
]



class UnitState(IntEnum):
    """DrugTrace.UnitState."""

    NONE = 0
    GENERATED = 1
    AGGREGATED = 2
    SHIPPED = 3
    RECEIVED = 4
    RETURNED = 5
    DESTRUCTION_PENDING = 6
    DISPENSED = 7
    RECALLED = 8
    SAMPLED = 9
    DESTROYED = 10


class Refusal(IntEnum):
    """DrugTrace.Refusal: why a code was refused (CodeRefused events)."""

    NONE = 0
    UNKNOWN_CODE = 1
    ALREADY_REGISTERED = 2
    ALREADY_DISPENSED = 3
    TERMINAL = 4
    IN_TRANSIT = 5
    PACKED_IN_PARENT = 6
    NOT_HOLDER = 7
    REMOVED_CHILD_INSIDE = 8
    NOT_RECEIVER = 9
    NOT_IN_TRANSIT = 10
    HAS_CHILDREN = 11
    LEVEL_NOT_BELOW_PARENT = 12
    NOT_A_CHILD = 13
    RETURN_TO_SENDER_ONLY = 14
    NOT_AUTHORISED = 15
    TOO_MANY_CHILDREN = 16
    ZERO_CODE = 17


class BillType(IntEnum):
    """Bill (event) types of the national trace platforms (0: aggregation, not a bill)."""

    NONE = 0
    PRODUCTION_IN = 101
    PURCHASE_IN = 102
    RETURN_IN = 103
    TRANSFER_IN = 104
    SALES_OUT = 201
    RETURN_OUT = 202
    TRANSFER_OUT = 203
    DESTRUCTION = 205
    SAMPLING = 206
    DIRECT_SHIPMENT = 207
    RECALL_OUT = 211



class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)


class CodeRefusal(_Out):
    """A code a lenient batch refused: the code as given (None when only its unit key was), the unit key, the
    contract's reason and its text."""

    code: str | None
    unit_key: bytes
    reason: Refusal
    text: str


class BatchResult(_Out):
    """What a batch did: accepted unit keys, refused codes, the batch's docRef and the salt behind it."""

    operation: str
    bill_type: BillType
    accepted: tuple[bytes, ...]
    refused: tuple[CodeRefusal, ...]
    doc_ref: bytes
    salt: bytes | None
    receipt: Receipt

    @property
    def ok(self) -> bool:
        """True when no code was refused."""
        return not self.refused


class UnitInfo(_Out):
    """The DrugTrace.Unit struct of one key."""

    unit_key: bytes
    holder: int
    pending: int
    owner: int
    state: UnitState
    level: int
    removed_inside: int
    child_count: int
    parent: bytes


class Custody(_Out):
    """DrugTrace.custodyOf: the unit's own state, and the state and holder that govern it (its top parent's)."""

    own: UnitState
    effective: UnitState
    holder: int


class TraceEvent(_Out):
    """One event of a unit's trail, in chain order: ``kind`` is ``"unit"`` (UnitEvent: accepted by a batch),
    ``"refused"`` (CodeRefused), ``"aggregation"`` (Aggregation: packed into / unpacked from a parent) or
    ``"batch"`` (TraceBatch of a transaction that touched the unit: acting org, docRef, counts)."""

    kind: str
    block_number: int
    log_index: int
    transaction_hash: bytes
    unit_key: bytes | None = None
    bill_type: BillType | None = None
    acting_org: int | None = None
    counterparty: int | None = None
    reason: Refusal | None = None
    parent: bytes | None = None
    child: bytes | None = None
    added: bool | None = None
    doc_ref: bytes | None = None
    accepted: int | None = None
    refused_count: int | None = None

    @classmethod
    def from_chain(cls, event: ChainEvent) -> TraceEvent:
        a = event.args
        where: dict[str, Any] = {"block_number": event.block_number, "log_index": event.log_index,
                                 "transaction_hash": event.transaction_hash}
        if event.name == "UnitEvent":
            return cls(kind="unit", unit_key=a["code"], bill_type=BillType(a["billType"]), acting_org=a["actingOrg"],
                       counterparty=a["counterparty"], **where)
        if event.name == "CodeRefused":
            return cls(kind="refused", unit_key=a["code"], bill_type=BillType(a["billType"]),
                       reason=Refusal(a["reason"]), **where)
        if event.name == "Aggregation":
            return cls(kind="aggregation", parent=a["parent"], child=a["child"], added=a["added"], **where)
        return cls(kind="batch", acting_org=a["actingOrg"], bill_type=BillType(a["billType"]),
                   counterparty=a["counterparty"], doc_ref=a["docRef"], accepted=a["accepted"],
                   refused_count=a["refused"], **where)


class EpcisStep(_Out):
    """One EPCIS event imported: its index in the document, the operation and the batch it became."""

    index: int
    operation: str
    result: BatchResult


class EpcisImport(_Out):
    """What :meth:`DrugTrace.import_epcis` did, event by event."""

    steps: tuple[EpcisStep, ...]

    @property
    def refused(self) -> list[CodeRefusal]:
        return [r for s in self.steps for r in s.result.refused]
