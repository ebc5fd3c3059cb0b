"""The mapping between GS1 EPCIS 2.0 events and drug-trace operations, both ways: which operation an event asks for,
its codes and receiving party (import), and the EPCIS event of a trace event read back from the chain (export)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ...epcis import AggregationEvent, EPCISError, EPCISEvent, ObjectEvent, cbv_term, drug_trace_operation
from ...errors import InvalidInput
from .codes import ORG_URI_PREFIX, UNIT_KEY_PREFIX, checked_org
from .models import BillType, TraceEvent

__all__ = [
    "epcis_event_of",
    "epcs_of",
    "offset_zone",
    "operation_of",
    "party_of",
]



def operation_of(event: EPCISEvent) -> str | None:
    """The drug-trace operation of an event: the SDK's EPCIS reading, plus unpacking and sampling."""
    if type(event) is AggregationEvent and event.action == "DELETE":
        return "disaggregate"
    if type(event) is ObjectEvent and event.action == "OBSERVE" and cbv_term(event.biz_step) == "sampling":
        return "sample"
    return drug_trace_operation(event)


def epcs_of(event: EPCISEvent) -> list[str]:
    """The EPCs an event names: an aggregation's parent and children, else its trace codes."""
    if isinstance(event, AggregationEvent):
        return ([event.parent_id] if event.parent_id else []) + list(event.child_epcs or ())
    return list(event.trace_codes)


def party_of(destinations: Sequence[Mapping[str, Any]] | None, parties: Mapping[str, int], where: str) -> int:
    """The receiving organisation of an event: its owning (or possessing) party, by ``parties`` or its org URI."""
    for entry in destinations or ():
        if cbv_term(str(entry.get("type", ""))) in ("owning_party", "possessing_party"):
            uri = str(entry.get("destination", ""))
            if uri in parties:
                return checked_org(parties[uri])
            if uri.startswith(ORG_URI_PREFIX) and uri[len(ORG_URI_PREFIX):].isdigit():
                return checked_org(int(uri[len(ORG_URI_PREFIX):]))
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


def epcis_event_of(ev: TraceEvent, names: Mapping[bytes, str], parties: Mapping[int, str], when: str,
                   offset: str) -> dict[str, Any]:
    """The EPCIS 2.0 event (JSON-LD) of a trace event read back from the chain."""
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


def offset_zone(offset: str) -> dt.tzinfo:
    """The fixed time zone of an offset such as ``+08:00``."""
    match = re.fullmatch(r"([+-])(\d{2}):(\d{2})", offset)
    if match is None:
        raise InvalidInput("time_zone is an offset such as +08:00")
    minutes = int(match.group(2)) * 60 + int(match.group(3))
    return dt.timezone(dt.timedelta(minutes=minutes if match.group(1) == "+" else -minutes))
