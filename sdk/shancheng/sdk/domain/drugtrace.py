"""Drug traceability (药品追溯) on the DrugTrace contract, with GS1 EPCIS 2.0 import and export.

A trace code (20-digit NMPA code, or a GS1 ``(01)GTIN(17)expiry(10)batch(21)serial`` element string) never goes
on chain as such: a manufacturer registers its commitment (:func:`trace_code_commitment`, SM3 over a domain tag
and the normalised code), and the contract keys the unit by its maker:
``trace_unit_key(maker_org, commitment) = keccak256(abi.encode(TRACE_UNIT_TAG, maker_org, commitment))``.
Scanning a pack gives the code; its drug identifier (NMPA drug id or GTIN) gives the marketing-authorisation
holder (``makers=``), and the two give the one unit key. Trace codes have little entropy: the commitment binds
them but does not hide them.

Batches take up to 1000 codes. ``strict=True`` (the default) makes the whole batch revert on the first code that
breaks a rule (:class:`~shancheng.sdk.domain.DomainRefused` with the rule); ``strict=False`` lets the rest go
ahead and reports each refused code in :attr:`BatchResult.refused` (unknown code = possible counterfeit, second
sale = 回流药, ...).

>>> normalise_trace_code(" 81234567890123456789 ")
'81234567890123456789'
>>> code_from_epc("https://id.gs1.org/01/06901234567892/10/B240501/21/A1B2C3D4E5?17=271231")
'(01)06901234567892(17)271231(10)B240501(21)A1B2C3D4E5'
>>> epc_of("(01)06901234567892(21)A1B2C3D4E5")
'https://id.gs1.org/01/06901234567892/21/A1B2C3D4E5'
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from enum import IntEnum
from typing import Any

from eth_abi.abi import encode
from eth_hash.auto import keccak
from pydantic import BaseModel, ConfigDict

from ..client import Client, Contract, Receipt
from ..crypto import sm3
from ..epcis import AggregationEvent, EPCISDocument, EPCISError, EPCISEvent, ObjectEvent, cbv_term, load_document
from ..epcis import drug_trace_operation as _epcis_operation
from ..errors import InvalidInput
from ._common import (
    ChainEvent,
    DomainError,
    _decode_log,
    doc_commitment,
    fetch_events,
    new_salt,
    receipt_events,
    send_checked,
)

__all__ = [
    "EPCIS_CONTEXT",
    "MAX_BATCH",
    "NMPA_EPC_PREFIX",
    "ORG_URI_PREFIX",
    "TRACE_CODE_TAG",
    "TRACE_UNIT_TAG",
    "BatchResult",
    "BillType",
    "CodeRefusal",
    "Custody",
    "DrugTrace",
    "EpcisImport",
    "EpcisStep",
    "Refusal",
    "TraceEvent",
    "UnitInfo",
    "UnitState",
    "code_from_epc",
    "epc_of",
    "gtin_check_digit_ok",
    "is_special_management",
    "nmpa_codes",
    "normalise_trace_code",
    "trace_code_commitment",
    "trace_unit_key",
]

TRACE_CODE_TAG = b"shancheng.trace.code.v1\x00"
TRACE_UNIT_TAG = keccak(b"shancheng.trace.unit.v1")
MAX_BATCH = 1000
MAX_LEVEL = 3
EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
#: EPC URI of a 20-digit NMPA code (not a GS1 key): ``urn:shancheng:nmpa:<code>``
NMPA_EPC_PREFIX = "urn:shancheng:nmpa:"
#: party URI of an organisation id in EPCIS source/destination lists, unless the caller maps its own (PGLN...)
ORG_URI_PREFIX = "urn:shancheng:org:"
#: EPC URI of a unit known only by its key (the code behind it was not given to the export)
UNIT_KEY_PREFIX = "urn:shancheng:unit:"


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


# ------------------------------------------------------------------------------------------ code recipes

_NMPA_CODE = re.compile(r"\d{20}")
_GS1_CODE = re.compile(r"\(01\)(\d{14})(?:\(17\)(\d{6}))?(?:\(10\)([!-~]{1,20}))?\(21\)([!-~]{1,20})")
_MAX_CODE_LEN = 128


def gtin_check_digit_ok(gtin: str) -> bool:
    """GS1 mod-10 check digit of a GTIN-14."""
    digits = [int(c) for c in gtin]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(digits[:-1]))
    return (10 - total % 10) % 10 == digits[-1]


def normalise_trace_code(code: str) -> str:
    """Validate the shape of a trace code and return it normalised (surrounding blanks removed).

    NMPA 20-digit codes (7-digit drug id + 9-digit serial + 4 opaque check digits: only the shape is checked) or
    GS1 element strings ``(01)GTIN-14[(17)YYMMDD][(10)batch](21)serial`` whose GTIN check digit must be right.
    Raises :class:`~shancheng.sdk.errors.InvalidInput` (a ValueError) otherwise."""
    if not isinstance(code, str) or len(code) > _MAX_CODE_LEN:
        raise InvalidInput(f"a trace code is a string of at most {_MAX_CODE_LEN} characters")
    code = code.strip()
    if _NMPA_CODE.fullmatch(code):
        return code
    match = _GS1_CODE.fullmatch(code)
    if match:
        if not gtin_check_digit_ok(match.group(1)):
            raise InvalidInput(f"GTIN check digit is wrong in {code!r}")
        return code
    raise InvalidInput(f"not a 20-digit NMPA trace code or a GS1 (01)...(21) element string: {code!r}")


def drug_identifier(code: str) -> str:
    """The drug identifier of a code: the 7-digit NMPA drug id, or the GTIN-14 of a GS1 code."""
    code = normalise_trace_code(code)
    if _NMPA_CODE.fullmatch(code):
        return code[:7]
    return code[4:18]


def is_special_management(code: str) -> bool:
    """NMPA codes starting with 89 are special-management drugs."""
    return bool(_NMPA_CODE.fullmatch(code)) and code.startswith("89")


def trace_code_commitment(code: str) -> bytes:
    """The commitment of a trace code: what a manufacturer registers."""
    return sm3(TRACE_CODE_TAG + normalise_trace_code(code).encode("ascii"))


def trace_unit_key(maker_org: int, code_commitment: bytes) -> bytes:
    """The bytes32 key of the unit that manufacturer ``maker_org`` registered under ``code_commitment``."""
    return keccak(encode(["bytes32", "uint64", "bytes32"], [TRACE_UNIT_TAG, maker_org, code_commitment]))


def nmpa_codes(drug_id: str, first_serial: int, count: int) -> list[str]:
    """``count`` consecutive NMPA-shaped codes of one drug (check digits are opaque, here 0000)."""
    if not (isinstance(drug_id, str) and len(drug_id) == 7 and drug_id.isdigit()):
        raise InvalidInput("an NMPA drug id is 7 digits")
    if first_serial < 0 or count < 0 or first_serial + count > 10**9:
        raise InvalidInput("NMPA serials are 9 digits")
    return [f"{drug_id}{serial:09d}0000" for serial in range(first_serial, first_serial + count)]


_DL = re.compile(r"/01/(\d{14})(?:/22/[^/]+)?(?:/10/([^/]+))?/21/([^/]+)/?")
_SGTIN = re.compile(r"urn:epc:id:sgtin:(\d+)\.(\d+)\.(.+)")


def code_from_epc(epc: str) -> str:
    """The trace code an EPCIS EPC names: a GS1 Digital Link URI (``https://id.gs1.org/01/<gtin>[/10/<batch>]/21/
    <serial>[?17=YYMMDD]``), an SGTIN URN, :data:`NMPA_EPC_PREFIX` + an NMPA code, or a bare code."""
    if not isinstance(epc, str) or len(epc) > 512:
        raise InvalidInput("an EPC is a string of at most 512 characters")
    if epc.startswith(NMPA_EPC_PREFIX):
        return normalise_trace_code(epc[len(NMPA_EPC_PREFIX):])
    if epc.startswith(("https://", "http://")):
        parts = urllib.parse.urlsplit(epc)
        match = _DL.search(parts.path)
        if match is None or not parts.path.endswith(match.group(0)):
            raise InvalidInput(f"not a GS1 Digital Link of a serialised item: {epc!r}")
        gtin, batch, serial = match.group(1), match.group(2), match.group(3)
        expiry = urllib.parse.parse_qs(parts.query).get("17", [None])[0]
        code = f"(01){gtin}" + (f"(17){expiry}" if expiry else "") + (
            f"(10){urllib.parse.unquote(batch)}" if batch else "") + f"(21){urllib.parse.unquote(serial)}"
        return normalise_trace_code(code)
    sgtin = _SGTIN.fullmatch(epc)
    if sgtin:
        prefix, item, serial = sgtin.groups()
        body = item[:1] + prefix + item[1:]
        if len(body) != 13:
            raise InvalidInput(f"an SGTIN's company prefix and item reference must make 13 digits: {epc!r}")
        check = (10 - sum(int(c) * (3 if i % 2 == 0 else 1) for i, c in enumerate(body)) % 10) % 10
        return normalise_trace_code(f"(01){body}{check}(21){urllib.parse.unquote(serial)}")
    return normalise_trace_code(epc)


def epc_of(code: str) -> str:
    """The EPC URI of a trace code (inverse of :func:`code_from_epc`): GS1 Digital Link, or
    :data:`NMPA_EPC_PREFIX` + the NMPA code."""
    code = normalise_trace_code(code)
    if _NMPA_CODE.fullmatch(code):
        return NMPA_EPC_PREFIX + code
    match = _GS1_CODE.fullmatch(code)
    assert match is not None
    gtin, expiry, batch, serial = match.groups()
    path = f"/01/{gtin}" + (f"/10/{urllib.parse.quote(batch, safe='')}" if batch else "") + \
        f"/21/{urllib.parse.quote(serial, safe='')}"
    return "https://id.gs1.org" + path + (f"?17={expiry}" if expiry else "")


# ------------------------------------------------------------------------------------------ results

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


# ------------------------------------------------------------------------------------------ the client

_TEXTS = {
    Refusal.UNKNOWN_CODE: "unknown code", Refusal.ALREADY_REGISTERED: "code already registered",
    Refusal.ALREADY_DISPENSED: "already dispensed", Refusal.TERMINAL: "unit recalled, sampled or destroyed",
    Refusal.IN_TRANSIT: "unit in transit", Refusal.PACKED_IN_PARENT: "unit packed in a parent",
    Refusal.NOT_HOLDER: "sender org is not the holder",
    Refusal.REMOVED_CHILD_INSIDE: "sold or removed child inside; disaggregate first",
    Refusal.NOT_RECEIVER: "sender org is not the named receiver", Refusal.NOT_IN_TRANSIT: "unit not in transit",
    Refusal.HAS_CHILDREN: "unit has children; disaggregate first",
    Refusal.LEVEL_NOT_BELOW_PARENT: "child level must be below parent level",
    Refusal.NOT_A_CHILD: "not a child of this parent",
    Refusal.RETURN_TO_SENDER_ONLY: "a refused shipment returns to its sender",
    Refusal.NOT_AUTHORISED: "not holder, manufacturer or regulator", Refusal.TOO_MANY_CHILDREN: "too many children",
    Refusal.ZERO_CODE: "code is zero",
}
_BATCH_EVENTS = ("UnitEvent", "CodeRefused", "Aggregation", "TraceBatch")
_ZERO32 = bytes(32)
Code = str | bytes  # a trace code, or a 32-byte unit key
_Document = BaseModel | Mapping[str, Any]


class DrugTrace:
    """Drug-trace operations of one organisation's :class:`~shancheng.sdk.client.Client` on DrugTrace.

    Codes are given as trace-code strings (or as 32-byte unit keys). A code's unit key needs its maker: the
    ``maker_org`` argument, else ``makers`` (drug identifier -> organisation id: the 7-digit NMPA drug id or the
    GTIN-14), else the client's own organisation for a manufacturer's own codes. No SM2 staff signature is
    involved: every operation works on any EVM chain.

    >>> trace = DrugTrace(client, makers={"8612345": manufacturer_org})          # doctest: +SKIP
    >>> trace.register(codes).accepted                                            # doctest: +SKIP
    """

    def __init__(self, client: Client, *, makers: Mapping[str, int] | None = None, timeout: float = 120.0) -> None:
        if not isinstance(client, Client):
            raise InvalidInput("DrugTrace needs a connected shancheng.sdk.Client")
        self.client = client
        self.contract: Contract = client.contract("DrugTrace")
        self.makers = dict(makers or {})
        self.timeout = timeout

    # -- keys --------------------------------------------------------------------------------------
    def maker_of(self, code: str) -> int:
        """The maker organisation of ``code``: from ``makers`` by drug identifier, else the client's org."""
        return self.makers.get(drug_identifier(code)) or self.client.org_id

    def unit_key(self, code: Code, maker_org: int | None = None) -> bytes:
        """The on-chain key of ``code`` (a 32-byte unit key passes through)."""
        if isinstance(code, bytes):
            if len(code) != 32:
                raise InvalidInput("a unit key is 32 bytes")
            return code
        maker = self.maker_of(code) if maker_org is None else maker_org
        return trace_unit_key(maker, trace_code_commitment(code))

    # -- reads -------------------------------------------------------------------------------------
    def unit(self, code: Code, maker_org: int | None = None) -> UnitInfo:
        key = self.unit_key(code, maker_org)
        (u,) = self.client.view(self.contract, "unitOf", key)
        holder, pending, owner, state, level, removed, children, parent = u
        return UnitInfo(unit_key=key, holder=holder, pending=pending, owner=owner, state=UnitState(state),
                        level=level, removed_inside=removed, child_count=children, parent=parent)

    def custody(self, code: Code, maker_org: int | None = None) -> Custody:
        own, effective, holder = self.client.view(self.contract, "custodyOf", self.unit_key(code, maker_org))
        return Custody(own=UnitState(own), effective=UnitState(effective), holder=holder)

    def trail(self, code: Code, maker_org: int | None = None, *, from_block: int = 0) -> list[TraceEvent]:
        """Every event of the unit in chain order: its UnitEvents and CodeRefused, the Aggregations it was parent
        or child of, and the TraceBatch of each transaction that touched it."""
        key = self.unit_key(code, maker_org)
        c, kw = self.contract, {"from_block": from_block}
        events = fetch_events(self.client, c, ("UnitEvent", "CodeRefused"), topics=[key], **kw)
        events += fetch_events(self.client, c, ("Aggregation",), topics=[key], **kw)
        events += fetch_events(self.client, c, ("Aggregation",), topics=[None, key], **kw)
        for tx_hash in dict.fromkeys(e.transaction_hash for e in events):
            events += [e for e in self._receipt_logs(tx_hash) if e.name == "TraceBatch"]
        unique = {e.position: e for e in events}
        return [TraceEvent.from_chain(unique[p]) for p in sorted(unique)]

    def _receipt_logs(self, tx_hash: bytes) -> list[ChainEvent]:
        reply = self.client.rpc.call("eth_getTransactionReceipt", ["0x" + tx_hash.hex()])
        if not isinstance(reply, dict):
            raise DomainError(f"the node has no receipt of {tx_hash.hex()}")
        by_topic = {self.contract.event_topic("TraceBatch"): "TraceBatch"}
        out = [_decode_log(self.contract, log, by_topic) for log in reply.get("logs") or [] if isinstance(log, dict)]
        return [e for e in out if e is not None]

    # -- batch operations --------------------------------------------------------------------------
    def register(self, codes: Sequence[str], *, level: int = 1, strict: bool = True,
                 document: _Document | None = None, salt: bytes | None = None) -> BatchResult:
        """The manufacturer (the client's organisation) registers produced units of packaging ``level``
        (1 sale unit, 2 middle pack, 3 case): 101 production in."""
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= MAX_LEVEL:
            raise InvalidInput("level must be 1 (sale unit), 2 (middle pack) or 3 (case)")
        batch = _batch(codes)
        if not all(isinstance(c, str) for c in batch):
            raise InvalidInput("register takes trace codes (strings), not unit keys")
        org = self.client.org_id
        commitments = [trace_code_commitment(str(c)) for c in batch]
        keys: dict[bytes, str | None] = {trace_unit_key(org, cm): str(c) for cm, c in zip(commitments, batch, strict=True)}
        doc, salt = _doc_ref(document, salt)
        call = self.contract.call("register", commitments, level, doc, strict)
        return self._send("register", call, keys, BillType.PRODUCTION_IN, doc, salt)

    def aggregate(self, parent: Code, children: Sequence[Code], *, maker_org: int | None = None, strict: bool = True,
                  document: _Document | None = None, salt: bytes | None = None) -> BatchResult:
        """Pack ``children`` into ``parent`` (both held by the client's organisation, child level below)."""
        keys = self._keys(children, maker_org)
        doc, salt = _doc_ref(document, salt)
        call = self.contract.call("aggregate", self.unit_key(parent, maker_org), list(keys), doc, strict)
        return self._send("aggregate", call, keys, BillType.NONE, doc, salt)

    def disaggregate(self, parent: Code, children: Sequence[Code], *, maker_org: int | None = None,
                     strict: bool = True, document: _Document | None = None, salt: bytes | None = None) -> BatchResult:
        """Unpack ``children`` from ``parent`` (sold or removed children too, which clears the parent to ship)."""
        keys = self._keys(children, maker_org)
        doc, salt = _doc_ref(document, salt)
        call = self.contract.call("disaggregate", self.unit_key(parent, maker_org), list(keys), doc, strict)
        return self._send("disaggregate", call, keys, BillType.NONE, doc, salt)

    def ship(self, codes: Sequence[Code], to: int, *, bill: BillType = BillType.SALES_OUT,
             maker_org: int | None = None, strict: bool = True, document: _Document | None = None,
             salt: bytes | None = None) -> BatchResult:
        """Ship held units to organisation ``to`` (201 sales, 203 transfer or 207 direct shipment)."""
        if bill not in (BillType.SALES_OUT, BillType.TRANSFER_OUT, BillType.DIRECT_SHIPMENT):
            raise InvalidInput("a shipment's bill type is 201 (sales out), 203 (transfer out) or 207 (direct)")
        return self._op("ship", codes, maker_org, bill, document, salt, _org(to), int(bill), strict=strict)

    def receive(self, codes: Sequence[Code], *, bill: BillType = BillType.PURCHASE_IN, maker_org: int | None = None,
                strict: bool = True, document: _Document | None = None, salt: bytes | None = None) -> BatchResult:
        """Accept units shipped to the client's organisation (102 purchase in or 104 transfer in)."""
        if bill not in (BillType.PURCHASE_IN, BillType.TRANSFER_IN):
            raise InvalidInput("a receipt's bill type is 102 (purchase in) or 104 (transfer in)")
        return self._op("receiveShipment", codes, maker_org, bill, document, salt, int(bill), strict=strict)

    def return_out(self, codes: Sequence[Code], to: int, *, maker_org: int | None = None, strict: bool = True,
                   document: _Document | None = None, salt: bytes | None = None) -> BatchResult:
        """Return units to ``to`` (202): received units to a named org, or a refused shipment to its sender."""
        return self._op("returnOut", codes, maker_org, BillType.RETURN_OUT, document, salt, _org(to), strict=strict)

    def accept_return(self, codes: Sequence[Code], *, maker_org: int | None = None, strict: bool = True,
                      document: _Document | None = None, salt: bytes | None = None) -> BatchResult:
        """Accept units returned to the client's organisation (103)."""
        return self._op("acceptReturn", codes, maker_org, BillType.RETURN_IN, document, salt, strict=strict)

    def dispense(self, codes: Sequence[Code], *, maker_org: int | None = None, strict: bool = True,
                 document: _Document | None = None, salt: bytes | None = None) -> BatchResult:
        """A pharmacy or hospital dispenses units to patients: exactly once per unit."""
        return self._op("dispense", codes, maker_org, BillType.SALES_OUT, document, salt, strict=strict)

    def recall(self, codes: Sequence[Code], *, maker_org: int | None = None, strict: bool = True,
               document: _Document | None = None, salt: bytes | None = None) -> BatchResult:
        """Recall (211) by the holder, the registering manufacturer or a regulator."""
        return self._op("recall", codes, maker_org, BillType.RECALL_OUT, document, salt, strict=strict)

    def sample(self, codes: Sequence[Code], *, maker_org: int | None = None, strict: bool = True,
               document: _Document | None = None, salt: bytes | None = None) -> BatchResult:
        """Sampling (206, 抽检) by the holder or a regulator."""
        return self._op("sample", codes, maker_org, BillType.SAMPLING, document, salt, strict=strict)

    def request_destruction(self, codes: Sequence[Code], supervisor: int, *, maker_org: int | None = None,
                            strict: bool = True, document: _Document | None = None,
                            salt: bytes | None = None) -> BatchResult:
        """The holder (executor) asks regulator ``supervisor`` to witness the destruction of units (205)."""
        return self._op("requestDestruction", codes, maker_org, BillType.DESTRUCTION, document, salt,
                        _org(supervisor), strict=strict)

    def confirm_destruction(self, codes: Sequence[Code], *, maker_org: int | None = None, strict: bool = True,
                            document: _Document | None = None, salt: bytes | None = None) -> BatchResult:
        """The supervising regulator confirms the destruction it witnessed (205)."""
        return self._op("confirmDestruction", codes, maker_org, BillType.DESTRUCTION, document, salt, strict=strict)

    # -- internals ---------------------------------------------------------------------------------
    def _keys(self, codes: Sequence[Code], maker_org: int | None) -> dict[bytes, str | None]:
        out: dict[bytes, str | None] = {}
        for code in _batch(codes):
            out[self.unit_key(code, maker_org)] = code if isinstance(code, str) else None
        return out

    def _op(self, fn: str, codes: Sequence[Code], maker_org: int | None, bill: BillType, document: _Document | None,
            salt: bytes | None, *args: Any, strict: bool) -> BatchResult:
        keys = self._keys(codes, maker_org)
        doc, salt = _doc_ref(document, salt)
        call = self.contract.call(fn, list(keys), *args, doc, strict)
        return self._send(fn, call, keys, bill, doc, salt)

    def _send(self, operation: str, call: Any, keys: Mapping[bytes, str | None], bill: BillType, doc: bytes,
              salt: bytes | None) -> BatchResult:
        receipt = send_checked(self.client, call, timeout=self.timeout)
        accepted: list[bytes] = []
        refused: list[CodeRefusal] = []
        for event in receipt_events(self.contract, receipt, _BATCH_EVENTS):
            if event.name == "UnitEvent":
                accepted.append(event.args["code"])
            elif event.name == "Aggregation":
                accepted.append(event.args["child"])
            elif event.name == "CodeRefused":
                key, reason = event.args["code"], Refusal(event.args["reason"])
                refused.append(CodeRefusal(code=keys.get(key), unit_key=key, reason=reason, text=_TEXTS[reason]))
        return BatchResult(operation=operation, bill_type=bill, accepted=tuple(accepted), refused=tuple(refused),
                           doc_ref=doc, salt=salt, receipt=receipt)

    # -- EPCIS -------------------------------------------------------------------------------------
    def import_epcis(self, document: str | bytes | EPCISDocument, *, parties: Mapping[str, int] | None = None,
                     strict: bool = True) -> EpcisImport:
        """Drive the chain from a GS1 EPCIS 2.0 JSON document of the client's organisation's own events.

        ObjectEvent ADD commissioning -> :meth:`register` (packaging level from the ``shancheng:packagingLevel``
        extension, default 1); AggregationEvent ADD (packing) -> :meth:`aggregate`, DELETE (unpacking) ->
        :meth:`disaggregate`; shipping -> :meth:`ship` to the ``owning_party`` destination; receiving ->
        :meth:`receive`; dispensing / retail_selling -> :meth:`dispense`; disposition recalled -> :meth:`recall`,
        returned -> :meth:`return_out`; sampling -> :meth:`sample`. ``parties`` maps party URIs (PGLN...) to
        organisation ids; ``urn:shancheng:org:<id>`` needs no mapping. Every event is read and mapped before
        anything is sent: an event with another business step refuses the whole document. Each event's docRef is
        the salted commitment of its JSON."""
        doc = document if isinstance(document, EPCISDocument) else _load(document)
        if len(doc.events) > MAX_BATCH:
            raise InvalidInput(f"an EPCIS document to import holds at most {MAX_BATCH} events")
        plan = [self._plan(i, event, parties or {}) for i, event in enumerate(doc.events)]
        steps = []
        for index, operation, run in plan:
            steps.append(EpcisStep(index=index, operation=operation, result=run(strict)))
        return EpcisImport(steps=tuple(steps))

    def _plan(self, index: int, event: EPCISEvent, parties: Mapping[str, int]) -> tuple[int, str, Any]:
        where = f"event {index} ({event.type}, bizStep {event.biz_step!r})"
        operation = _operation(event)
        if operation is None:
            raise EPCISError(f"{where}: no drug-trace operation for it (known: commissioning, packing, unpacking, "
                             "shipping, receiving, dispensing, retail_selling, sampling; dispositions recalled, "
                             "returned)")
        record = event.to_json()
        if isinstance(event, AggregationEvent) and operation in ("aggregate", "disaggregate"):
            if not event.parent_id or not event.child_epcs:
                raise EPCISError(f"{where}: an aggregation needs parentID and childEPCs")
            parent = code_from_epc(event.parent_id)
            children = [code_from_epc(e) for e in event.child_epcs]
            fn = self.aggregate if operation == "aggregate" else self.disaggregate
            return index, operation, lambda strict: fn(parent, children, strict=strict, document=record)
        codes = [code_from_epc(e) for e in _epcs(event)]
        if not codes:
            raise EPCISError(f"{where}: names no serialised trace codes (epcList, or parentID/childEPCs)")
        if operation == "register":
            level = event.extensions.get("shancheng:packagingLevel", 1)
            return index, operation, lambda strict: self.register(codes, level=level, strict=strict, document=record)
        if operation in ("ship", "return"):
            to = _party(event.destination_list, parties, where)
            fn2 = self.ship if operation == "ship" else self.return_out
            return index, operation, lambda strict: fn2(codes, to, strict=strict, document=record)
        simple = {"receive": self.receive, "dispense": self.dispense, "recall": self.recall, "sample": self.sample}
        fn3 = simple[operation]
        return index, operation, lambda strict: fn3(codes, strict=strict, document=record)

    def export_epcis(self, code: str, maker_org: int | None = None, *, known_codes: Iterable[str] = (),
                     parties: Mapping[int, str] | None = None, time_zone: str = "+08:00") -> dict[str, Any]:
        """A GS1 EPCIS 2.0 JSON document of ``code``'s trail: one event per UnitEvent and Aggregation, in chain
        order, at its block's time. Other units of aggregations (parent or children) are named by their code when
        it is in ``known_codes`` (same maker), else by ``urn:shancheng:unit:<key>``; organisations by
        ``parties`` (org id -> PGLN or other URI), else ``urn:shancheng:org:<id>``."""
        maker = self.maker_of(code) if maker_org is None else maker_org
        names = {self.unit_key(code, maker): epc_of(code)}
        names.update({self.unit_key(c, maker): epc_of(c) for c in known_codes})
        tz = _tz(time_zone)
        times: dict[int, str] = {}
        events = []
        for ev in self.trail(code, maker):
            if ev.kind not in ("unit", "aggregation"):
                continue
            if ev.block_number not in times:
                times[ev.block_number] = self._block_time(ev.block_number, tz)
            events.append(_epcis_event(ev, names, parties or {}, times[ev.block_number], time_zone))
        created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        out = {"@context": [EPCIS_CONTEXT], "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": created,
               "epcisBody": {"eventList": events}}
        load_document(json.dumps(out))  # the SDK's own EPCIS reader accepts what it writes
        return out

    def _block_time(self, number: int, tz: dt.tzinfo) -> str:
        block = self.client.rpc.call("eth_getBlockByNumber", [hex(number), False])
        if not isinstance(block, dict) or not isinstance(block.get("timestamp"), str):
            raise DomainError(f"the node has no block {number}")
        ts = int(block["timestamp"], 16)
        return dt.datetime.fromtimestamp(ts, tz).isoformat()


def _load(document: str | bytes) -> EPCISDocument:
    return load_document(document)


def _operation(event: EPCISEvent) -> str | None:
    """The drug-trace operation of an event: the SDK's EPCIS reading, plus unpacking and sampling."""
    if type(event) is AggregationEvent and event.action == "DELETE":
        return "disaggregate"
    if type(event) is ObjectEvent and event.action == "OBSERVE" and cbv_term(event.biz_step) == "sampling":
        return "sample"
    return _epcis_operation(event)


def _epcs(event: EPCISEvent) -> list[str]:
    if isinstance(event, AggregationEvent):
        return ([event.parent_id] if event.parent_id else []) + list(event.child_epcs or ())
    return list(event.trace_codes)


def _party(destinations: Sequence[Mapping[str, Any]] | None, parties: Mapping[str, int], where: str) -> int:
    for entry in destinations or ():
        if cbv_term(str(entry.get("type", ""))) in ("owning_party", "possessing_party"):
            uri = str(entry.get("destination", ""))
            if uri in parties:
                return _org(parties[uri])
            if uri.startswith(ORG_URI_PREFIX) and uri[len(ORG_URI_PREFIX):].isdigit():
                return _org(int(uri[len(ORG_URI_PREFIX):]))
            raise EPCISError(f"{where}: destination {uri!r} is no known organisation (pass parties={{uri: org_id}})")
    raise EPCISError(f"{where}: needs an owning_party destination (the receiving organisation)")


_BILL_STEP = {  # bill type -> (bizStep, disposition) of the exported ObjectEvent
    BillType.PRODUCTION_IN: ("commissioning", "active"),
    BillType.PURCHASE_IN: ("receiving", "in_progress"),
    BillType.TRANSFER_IN: ("receiving", "in_progress"),
    BillType.RETURN_IN: ("receiving", "in_progress"),
    BillType.RETURN_OUT: ("shipping", "returned"),
    BillType.TRANSFER_OUT: ("shipping", "in_transit"),
    BillType.DIRECT_SHIPMENT: ("shipping", "in_transit"),
    BillType.RECALL_OUT: ("holding", "recalled"),
    BillType.SAMPLING: ("sampling", "inactive"),
    BillType.DESTRUCTION: ("destroying", "destroyed"),
}


def _epcis_event(ev: TraceEvent, names: Mapping[bytes, str], parties: Mapping[int, str], when: str,
                 offset: str) -> dict[str, Any]:
    def epc(key: bytes | None) -> str:
        assert key is not None
        return names.get(key) or UNIT_KEY_PREFIX + key.hex()

    def party(org: int | None) -> str:
        return parties.get(org or 0) or f"{ORG_URI_PREFIX}{org}"

    base: dict[str, Any] = {"eventTime": when, "eventTimeZoneOffset": offset,
                            "eventID": f"urn:shancheng:event:{ev.transaction_hash.hex()}:{ev.log_index}"}
    if ev.kind == "aggregation":
        return {"type": "AggregationEvent", **base, "parentID": epc(ev.parent), "childEPCs": [epc(ev.child)],
                "action": "ADD" if ev.added else "DELETE", "bizStep": "packing" if ev.added else "unpacking"}
    bill = ev.bill_type or BillType.NONE
    if bill is BillType.SALES_OUT:
        step, disposition = ("shipping", "in_transit") if ev.counterparty else ("dispensing", "dispensed")
    else:
        step, disposition = _BILL_STEP.get(bill, ("other", "active"))
    out: dict[str, Any] = {"type": "ObjectEvent", **base, "epcList": [epc(ev.unit_key)],
                           "action": "ADD" if bill is BillType.PRODUCTION_IN else "OBSERVE",
                           "bizStep": step, "disposition": disposition,
                           "readPoint": {"id": party(ev.acting_org)}}
    if step == "shipping" and ev.counterparty:
        out["sourceList"] = [{"type": "owning_party", "source": party(ev.acting_org)}]
        out["destinationList"] = [{"type": "owning_party", "destination": party(ev.counterparty)}]
    return out


def _tz(offset: str) -> dt.tzinfo:
    match = re.fullmatch(r"([+-])(\d{2}):(\d{2})", offset)
    if match is None:
        raise InvalidInput("time_zone is an offset such as +08:00")
    minutes = int(match.group(2)) * 60 + int(match.group(3))
    return dt.timezone(dt.timedelta(minutes=minutes if match.group(1) == "+" else -minutes))


def _batch(codes: Sequence[Code]) -> list[Code]:
    if isinstance(codes, (str, bytes)) or not isinstance(codes, Sequence):
        raise InvalidInput("codes must be a list of trace codes or unit keys")
    if not 0 < len(codes) <= MAX_BATCH:
        raise InvalidInput(f"a batch holds 1 to {MAX_BATCH} codes, not {len(codes)}")
    return list(codes)


def _org(org: int) -> int:
    if isinstance(org, bool) or not isinstance(org, int) or not 0 < org < 2**64:
        raise InvalidInput("an organisation id is an integer from 1 to 2**64 - 1")
    return org


def _doc_ref(document: _Document | None, salt: bytes | None) -> tuple[bytes, bytes | None]:
    if document is None:
        return _ZERO32, None
    salt = new_salt() if salt is None else salt
    return doc_commitment(document, salt), salt
