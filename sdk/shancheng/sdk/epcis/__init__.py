"""GS1 EPCIS 2.0 JSON / JSON-LD import and export, and the drug-trace view of an event.

:func:`loads` parses an ``EPCISDocument``, an ``EPCISQueryDocument`` or a single event (with its own
``@context``) through the SDK's strict JSON parser (size and depth limits, duplicate keys refused) into
frozen dataclasses per event type; :meth:`EPCISDocument.to_json` / :meth:`EPCISEvent.to_json` give the
document back, equal to the input (the JSON-LD ``@context`` and every extension field kept verbatim).
Every refusal is an :class:`EPCISError` naming the JSON path of the problem.

>>> doc = loads('{"@context": "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",'
...             ' "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2024-06-15T09:00:00Z",'
...             ' "epcisBody": {"eventList": [{"type": "ObjectEvent", "action": "OBSERVE",'
...             ' "eventTime": "2024-06-15T09:12:00+08:00", "eventTimeZoneOffset": "+08:00",'
...             ' "epcList": ["https://id.gs1.org/01/06901234567892/21/A1B2C3D4E5"], "bizStep": "shipping"}]}}')
>>> event = doc.events[0]
>>> event.trace_codes, event.biz_step, drug_trace_operation(event)
(('https://id.gs1.org/01/06901234567892/21/A1B2C3D4E5',), 'shipping', 'ship')

Modules: :mod:`.events` (the event types), :mod:`.documents` (documents, :func:`loads`, :func:`dumps`) and
:mod:`.trace` (the drug-trace reading of an event).
"""

from shancheng.sdk.epcis.documents import MAX_DEPTH, MAX_DOCUMENT_SIZE, EPCISDocument, dumps, load_document, loads
from shancheng.sdk.epcis.events import (
    EVENT_TYPES,
    AggregationEvent,
    AssociationEvent,
    EPCISError,
    EPCISEvent,
    ObjectEvent,
    TransactionEvent,
    TransformationEvent,
    event_from_json,
)
from shancheng.sdk.epcis.trace import DRUG_TRACE_OPERATIONS, cbv_term, drug_trace_operation

__all__ = [
    "DRUG_TRACE_OPERATIONS",
    "EVENT_TYPES",
    "MAX_DEPTH",
    "MAX_DOCUMENT_SIZE",
    "AggregationEvent",
    "AssociationEvent",
    "EPCISDocument",
    "EPCISError",
    "EPCISEvent",
    "ObjectEvent",
    "TransactionEvent",
    "TransformationEvent",
    "cbv_term",
    "drug_trace_operation",
    "dumps",
    "event_from_json",
    "load_document",
    "loads",
]
