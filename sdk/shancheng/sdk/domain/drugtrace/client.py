"""The drug-trace client: one organisation's operations on the DrugTrace contract (:class:`DrugTrace`), with
EPCIS 2.0 import and export.

Batches take up to 1000 codes. ``strict=True`` (the default) makes the whole batch revert on the first code that
breaks a rule (:class:`~shancheng.sdk.domain.DomainRefused` with the rule); ``strict=False`` lets the rest go
ahead and reports each refused code in :attr:`BatchResult.refused` (unknown code = possible counterfeit, second
sale = 回流药, ...)::

    trace = DrugTrace(maker_client, makers={"86901234": maker_org})
    trace.register(nmpa_codes("86901234", 1, 10))
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from ...client import Client, Contract
from ...epcis import AggregationEvent, EPCISDocument, EPCISError, EPCISEvent, load_document
from ...errors import InvalidInput
from ...strict_json import to_hex
from ..documents import doc_commitment, new_salt
from ..events import ChainEvent, decode_log, fetch_events, receipt_events
from ..transactions import DomainError, send_checked
from .codes import (
    EPCIS_CONTEXT,
    MAX_BATCH,
    MAX_LEVEL,
    checked_org,
    code_from_epc,
    drug_identifier,
    epc_of,
    trace_code_commitment,
    trace_unit_key,
)
from .epcis import epcis_event_of, epcs_of, offset_zone, operation_of, party_of
from .models import (
    BatchResult,
    BillType,
    CodeRefusal,
    Custody,
    EpcisImport,
    EpcisStep,
    Refusal,
    TraceEvent,
    UnitInfo,
    UnitState,
)

__all__ = [
    "Code",
    "DrugTrace",
]



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
        reply = self.client.rpc.call("eth_getTransactionReceipt", [to_hex(tx_hash)])
        if not isinstance(reply, dict):
            raise DomainError(f"the node has no receipt of {tx_hash.hex()}")
        by_topic = {self.contract.event_topic("TraceBatch"): "TraceBatch"}
        out = [decode_log(self.contract, log, by_topic) for log in reply.get("logs") or [] if isinstance(log, dict)]
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
        return self._op("ship", codes, maker_org, bill, document, salt, checked_org(to), int(bill), strict=strict)

    def receive(self, codes: Sequence[Code], *, bill: BillType = BillType.PURCHASE_IN, maker_org: int | None = None,
                strict: bool = True, document: _Document | None = None, salt: bytes | None = None) -> BatchResult:
        """Accept units shipped to the client's organisation (102 purchase in or 104 transfer in)."""
        if bill not in (BillType.PURCHASE_IN, BillType.TRANSFER_IN):
            raise InvalidInput("a receipt's bill type is 102 (purchase in) or 104 (transfer in)")
        return self._op("receiveShipment", codes, maker_org, bill, document, salt, int(bill), strict=strict)

    def return_out(self, codes: Sequence[Code], to: int, *, maker_org: int | None = None, strict: bool = True,
                   document: _Document | None = None, salt: bytes | None = None) -> BatchResult:
        """Return units to ``to`` (202): received units to a named org, or a refused shipment to its sender."""
        return self._op("returnOut", codes, maker_org, BillType.RETURN_OUT, document, salt, checked_org(to), strict=strict)

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
                        checked_org(supervisor), strict=strict)

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
        doc = document if isinstance(document, EPCISDocument) else load_document(document)
        if len(doc.events) > MAX_BATCH:
            raise InvalidInput(f"an EPCIS document to import holds at most {MAX_BATCH} events")
        plan = [self._plan(i, event, parties or {}) for i, event in enumerate(doc.events)]
        steps = []
        for index, operation, run in plan:
            steps.append(EpcisStep(index=index, operation=operation, result=run(strict)))
        return EpcisImport(steps=tuple(steps))

    def _plan(self, index: int, event: EPCISEvent, parties: Mapping[str, int]) -> tuple[int, str, Any]:
        where = f"event {index} ({event.type}, bizStep {event.biz_step!r})"
        operation = operation_of(event)
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
        codes = [code_from_epc(e) for e in epcs_of(event)]
        if not codes:
            raise EPCISError(f"{where}: names no serialised trace codes (epcList, or parentID/childEPCs)")
        if operation == "register":
            level = event.extensions.get("shancheng:packagingLevel", 1)
            return index, operation, lambda strict: self.register(codes, level=level, strict=strict, document=record)
        if operation in ("ship", "return"):
            to = party_of(event.destination_list, parties, where)
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
        tz = offset_zone(time_zone)
        times: dict[int, str] = {}
        events = []
        for ev in self.trail(code, maker):
            if ev.kind not in ("unit", "aggregation"):
                continue
            if ev.block_number not in times:
                times[ev.block_number] = self._block_time(ev.block_number, tz)
            events.append(epcis_event_of(ev, names, parties or {}, times[ev.block_number], time_zone))
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




def _batch(codes: Sequence[Code]) -> list[Code]:
    if isinstance(codes, (str, bytes)) or not isinstance(codes, Sequence):
        raise InvalidInput("codes must be a list of trace codes or unit keys")
    if not 0 < len(codes) <= MAX_BATCH:
        raise InvalidInput(f"a batch holds 1 to {MAX_BATCH} codes, not {len(codes)}")
    return list(codes)



def _doc_ref(document: _Document | None, salt: bytes | None) -> tuple[bytes, bytes | None]:
    if document is None:
        return _ZERO32, None
    salt = new_salt() if salt is None else salt
    return doc_commitment(document, salt), salt
