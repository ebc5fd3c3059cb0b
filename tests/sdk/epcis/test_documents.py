"""GS1 EPCIS 2.0 JSON import and export in the SDK (issue 12, drug trace).

Every GS1 example imports into typed events and re-exports to an equal document (JSON-LD @context and
extension fields kept); every example and every re-export validates against the GS1 JSON Schema. Malformed
input -- missing eventTime, wrong types, duplicate keys, deep nesting, oversized text -- is refused with
one line naming the JSON path, through the SDK's strict parser.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import rfc8785

from shancheng.sdk import epcis
from shancheng.sdk.epcis import (
    AggregationEvent,
    EPCISDocument,
    EPCISError,
    ObjectEvent,
    TransformationEvent,
    drug_trace_operation,
)
from shancheng.sdk.errors import InvalidInput, ShanchengError

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT.parent / "shared" / "data" / "epcis"
EXAMPLES = sorted((DATA / "examples").glob("*.jsonld"))
SCHEMA = json.loads((DATA / "EPCIS-JSON-Schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)

SHIP = {
    "type": "ObjectEvent", "eventTime": "2024-06-15T09:12:00+08:00", "eventTimeZoneOffset": "+08:00",
    "epcList": ["https://id.gs1.org/01/06901234567892/21/A1B2C3D4E5"], "action": "OBSERVE",
    "bizStep": "shipping", "disposition": "in_transit", "readPoint": {"id": "urn:epc:id:sgln:6901234.00000.0"},
    "bizTransactionList": [{"type": "desadv", "bizTransaction": "urn:epcglobal:cbv:bt:6901234000009:DA20240615001"}],
    "sourceList": [{"type": "owning_party", "source": "urn:epc:id:pgln:6901234.00000"}],
    "destinationList": [{"type": "owning_party", "destination": "urn:epc:id:pgln:6909876.00000"}],
}
WITHOUT_EPCS = {k: v for k, v in SHIP.items() if k != "epcList"}
CONTEXT = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"ex": "http://ns.example.com/epcis/"}]


def document(*events: dict[str, object]) -> dict[str, object]:
    return {"@context": CONTEXT, "type": "EPCISDocument", "schemaVersion": "2.0",
            "creationDate": "2024-06-15T10:00:00+08:00", "epcisBody": {"eventList": list(events)}}


def refused(data: str | bytes) -> EPCISError:
    with pytest.raises(EPCISError) as info:
        epcis.loads(data)
    message = str(info.value)
    assert "\n" not in message and message.startswith("EPCIS ")
    assert isinstance(info.value, InvalidInput) and isinstance(info.value, ShanchengError)
    return info.value


def test_the_gs1_examples_are_all_here():
    assert len(EXAMPLES) == 12
    kinds = {event["type"] for path in EXAMPLES
             for event in json.loads(path.read_text(encoding="utf-8"))["epcisBody"]["eventList"]}
    assert kinds == set(epcis.EVENT_TYPES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_gs1_example_imports_and_reexports_equal_with_its_context(path):
    raw = path.read_bytes()
    original = json.loads(raw)
    doc = epcis.load_document(raw)
    assert isinstance(doc, EPCISDocument)
    exported = doc.to_json()
    assert exported == original
    assert json.dumps(exported["@context"]) == json.dumps(original["@context"])  # order inside @context kept
    assert json.loads(epcis.dumps(doc)) == original
    assert epcis.load_document(epcis.dumps(doc)) == doc  # and the re-export imports to the same objects
    for event, source in zip(doc.events, original["epcisBody"]["eventList"], strict=True):
        assert type(event) is epcis.EVENT_TYPES[source["type"]]
        assert event.event_time == source["eventTime"]
        assert event.to_json() == source


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_and_its_reexport_validate_against_the_gs1_schema(path):
    original = json.loads(path.read_bytes())
    assert not list(VALIDATOR.iter_errors(original))
    doc = epcis.load_document(path.read_bytes())
    assert not list(VALIDATOR.iter_errors(doc.to_json()))
    for event in doc.events:  # each event alone, as a JSON-LD event with the document's context
        alone = doc.standalone(event).to_json()
        assert alone["@context"] == original["@context"]
        assert not list(VALIDATOR.iter_errors(alone))
        assert epcis.loads(json.dumps(alone)) == doc.standalone(event)


def test_the_schema_itself_refuses_what_the_parser_refuses():
    """The schema is a real check here: an event without eventTime fails it, as it fails the parser."""
    bad = document({k: v for k, v in SHIP.items() if k != "eventTime"})
    assert list(VALIDATOR.iter_errors(bad))


def test_extension_fields_and_event_context_are_kept_verbatim():
    event = dict(SHIP, **{"@context": {"ex": "http://ns.example.com/epcis/"}, "ex:batch": {"ex:lot": ["B240501", 1]}})
    doc = epcis.load_document(json.dumps(document(event)))
    assert doc.events[0].extensions == {"ex:batch": {"ex:lot": ["B240501", 1]}}
    assert doc.events[0].context == {"ex": "http://ns.example.com/epcis/"}
    assert doc.to_json() == document(event)


def test_export_is_a_copy_the_caller_cannot_use_to_change_the_event():
    doc = epcis.load_document(json.dumps(document(SHIP)))
    out = doc.events[0].to_json()
    out["readPoint"]["id"] = "urn:epc:id:sgln:0000000.00000.0"
    out["epcList"].append("urn:epc:id:sgtin:0.0.0")
    assert doc.events[0].read_point == "urn:epc:id:sgln:6901234.00000.0"
    assert doc.events[0].to_json() == SHIP


def test_query_document_round_trips():
    query = {"@context": CONTEXT, "type": "EPCISQueryDocument", "schemaVersion": "2.0",
             "creationDate": "2024-06-15T10:00:00Z",
             "epcisBody": {"queryResults": {"queryName": "SimpleEventQuery", "subscriptionID": "sub-1",
                                            "resultsBody": {"eventList": [SHIP]}}}}
    assert not list(VALIDATOR.iter_errors(query))
    doc = epcis.load_document(json.dumps(query))
    assert doc.type == "EPCISQueryDocument" and doc.query_name == "SimpleEventQuery"
    assert doc.to_json() == query


# --- drug trace view --------------------------------------------------------------------------------------


def test_trace_codes_biz_step_and_read_point_of_the_gs1_object_events():
    doc = epcis.load_document((DATA / "examples" / "Example_9.6.1-ObjectEvent.jsonld").read_bytes())
    shipped, received = doc.events
    assert isinstance(shipped, ObjectEvent) and isinstance(received, ObjectEvent)
    assert shipped.trace_codes == ("urn:epc:id:sgtin:0614141.107346.2017", "urn:epc:id:sgtin:0614141.107346.2018")
    assert (shipped.biz_step, shipped.disposition, shipped.action) == ("shipping", "in_transit", "OBSERVE")
    assert shipped.read_point == "urn:epc:id:sgln:0614141.07346.1234" and shipped.biz_location is None
    assert drug_trace_operation(shipped) == "ship"
    assert received.trace_codes == ("urn:epc:id:sgtin:0614141.107346.2018",)
    assert received.biz_location == "urn:epc:id:sgln:0012345.11111.0"
    assert received.extensions == {"example:myField": "Example of a vendor/user extension"}
    assert drug_trace_operation(received) == "receive"

    by_class = epcis.load_document((DATA / "examples" / "Example_9.6.2-ObjectEvent.jsonld").read_bytes()).events[0]
    assert isinstance(by_class, ObjectEvent)
    assert by_class.trace_codes == ()  # a quantity of a class is not a traceable unit
    assert by_class.quantity_list and by_class.quantity_list[0]["epcClass"].startswith("urn:epc:class:")

    sensor = epcis.load_document((DATA / "examples" / "SensorDataExample1.jsonld").read_bytes()).events[0]
    assert sensor.biz_step == "inspecting" and drug_trace_operation(sensor) is None


def test_digital_link_trace_code_and_the_domain_example_ship():
    doc = epcis.load_document(json.dumps(document(SHIP)))
    event = doc.events[0]
    assert event.trace_codes == ("https://id.gs1.org/01/06901234567892/21/A1B2C3D4E5",)
    assert drug_trace_operation(event) == "ship"


@pytest.mark.parametrize(("changes", "operation"), [
    ({"action": "ADD", "bizStep": "commissioning", "disposition": "active"}, "register"),
    ({"action": "OBSERVE", "bizStep": "commissioning"}, None),  # commissioning without ADD generates nothing
    ({"bizStep": "urn:epcglobal:cbv:bizstep:receiving", "disposition": "in_progress"}, "receive"),
    ({"bizStep": "https://ref.gs1.org/cbv/BizStep-dispensing", "disposition": "dispensed"}, "dispense"),
    ({"bizStep": "retail_selling", "disposition": "retail_sold"}, "dispense"),
    ({"bizStep": "shipping", "disposition": "returned"}, "return"),
    ({"bizStep": "holding", "disposition": "recalled"}, "recall"),
    ({"bizStep": "inspecting", "disposition": "active"}, None),
    ({"action": "DELETE", "bizStep": "shipping"}, None),
])
def test_drug_trace_operation_follows_the_domain_lifecycle(changes, operation):
    event = epcis.loads(json.dumps(dict(SHIP, **{"@context": CONTEXT}, **changes)))
    assert drug_trace_operation(event) == operation


def test_aggregation_add_is_aggregate_and_transformation_is_nothing():
    packed = dict(SHIP, type="AggregationEvent", action="ADD", bizStep="packing", parentID="urn:epc:id:sscc:6901234.0000000001",
                  childEPCs=SHIP["epcList"])
    del packed["epcList"]
    event = epcis.load_document(json.dumps(document(packed))).events[0]
    assert isinstance(event, AggregationEvent) and drug_trace_operation(event) == "aggregate"
    assert event.trace_codes == ("urn:epc:id:sscc:6901234.0000000001", *SHIP["epcList"])
    made = epcis.load_document((DATA / "examples" / "Example_9.6.4-TransformationEvent.jsonld").read_bytes()).events[0]
    assert isinstance(made, TransformationEvent) and drug_trace_operation(made) is None


def test_canonical_bytes_are_rfc8785_of_the_export_and_ignore_key_order():
    doc = epcis.load_document(json.dumps(document(SHIP)))
    shuffled = epcis.load_document(json.dumps(document(dict(reversed(list(SHIP.items()))))))
    assert doc.events[0].canonical_bytes() == rfc8785.dumps(SHIP) == shuffled.events[0].canonical_bytes()
    other = epcis.load_document(json.dumps(document(dict(SHIP, bizStep="receiving"))))
    assert other.events[0].canonical_bytes() != doc.events[0].canonical_bytes()


# --- refusals ---------------------------------------------------------------------------------------------


def test_event_without_event_time_is_refused_with_its_path():
    event = {k: v for k, v in SHIP.items() if k != "eventTime"}
    err = refused(json.dumps(document(SHIP, event)))
    assert err.path == "$.epcisBody.eventList[1]" and "'eventTime'" in str(err)


@pytest.mark.parametrize(("event", "path", "words"), [
    ({k: v for k, v in SHIP.items() if k != "eventTimeZoneOffset"}, "$.epcisBody.eventList[0]", "eventTimeZoneOffset"),
    ({k: v for k, v in SHIP.items() if k != "action"}, "$.epcisBody.eventList[0]", "'action'"),
    (dict(SHIP, eventTime=20240615), "$.epcisBody.eventList[0].eventTime", "string"),
    (dict(SHIP, eventTime="2024-13-45T09:12:00+08:00"), "$.epcisBody.eventList[0].eventTime", "valid date"),
    (dict(SHIP, eventTime="yesterday"), "$.epcisBody.eventList[0].eventTime", "RFC 3339"),
    (dict(SHIP, eventTimeZoneOffset="+15:00"), "$.epcisBody.eventList[0].eventTimeZoneOffset", "offset"),
    (dict(SHIP, action="MOVE"), "$.epcisBody.eventList[0].action", "ADD, OBSERVE, DELETE"),
    (dict(SHIP, epcList="urn:epc:id:sgtin:0614141.107346.2017"), "$.epcisBody.eventList[0].epcList", "array"),
    (dict(SHIP, epcList=["ok:1", 7]), "$.epcisBody.eventList[0].epcList[1]", "string"),
    (dict(SHIP, readPoint={"name": "dock"}), "$.epcisBody.eventList[0].readPoint", "'id'"),
    (dict(SHIP, bizTransactionList=[{"type": "po"}]), "$.epcisBody.eventList[0].bizTransactionList[0]",
     "'bizTransaction'"),
    (dict(SHIP, eventtime="2024-06-15T09:12:00+08:00"), "$.epcisBody.eventList[0]", "unknown field 'eventtime'"),
    (dict(SHIP, type="DrugEvent"), "$.epcisBody.eventList[0].type", "unsupported event type"),
    (dict(WITHOUT_EPCS, type="TransactionEvent"), "$.epcisBody.eventList[0]", "needs epcList or quantityList"),
    (dict(SHIP, type="TransactionEvent", bizTransactionList=[]), "$.epcisBody.eventList[0].bizTransactionList",
     "at least one"),
    (WITHOUT_EPCS, "$.epcisBody.eventList[0]", "needs epcList"),
    (dict(WITHOUT_EPCS, type="AssociationEvent", childEPCs=["urn:epc:id:giai:4000001.1"]), "$.epcisBody.eventList[0]",
     "'parentID'"),
    (dict(WITHOUT_EPCS, type="AggregationEvent", action="ADD"), "$.epcisBody.eventList[0]", "needs childEPCs"),
])
def test_malformed_events_are_refused_with_the_json_path(event, path, words):
    err = refused(json.dumps(document(event)))
    assert err.path == path and words in str(err), str(err)
    assert err.diagnostics() == {"path": path}


def test_document_missing_context_or_event_list_is_refused():
    no_context = document(SHIP)
    del no_context["@context"]
    assert "'@context'" in str(refused(json.dumps(no_context)))
    no_list = dict(document(SHIP), epcisBody={})
    assert refused(json.dumps(no_list)).path == "$.epcisBody"
    single = dict(SHIP)
    assert "'@context'" in str(refused(json.dumps(single)))
    with pytest.raises(EPCISError, match="not a single ObjectEvent"):
        epcis.load_document(json.dumps(dict(SHIP, **{"@context": CONTEXT})))


def test_duplicate_keys_are_refused_not_last_one_wins():
    """A second "bizStep" would silently replace the first under json.loads: a shipped unit read as received."""
    text = json.dumps(document(SHIP)).replace('"bizStep": "shipping"', '"bizStep": "shipping", "bizStep": "receiving"')
    assert "duplicate key 'bizStep'" in str(refused(text))


def test_deep_nesting_is_refused_before_parsing():
    deep = dict(SHIP, **{"ex:deep": json.loads("[" * 40 + "]" * 40)})
    assert "nested deeper than" in str(refused(json.dumps(document(deep))))
    bomb = '{"type": "EPCISDocument", "ex:x": ' + "[" * 200_000 + "]" * 200_000 + "}"
    assert "nested deeper than" in str(refused(bomb))


def test_oversized_document_is_refused():
    big = dict(SHIP, **{"ex:pad": "x" * epcis.MAX_DOCUMENT_SIZE})
    assert "larger than" in str(refused(json.dumps(document(big)).encode()))


@pytest.mark.parametrize("text", [b"", b"[]", b'"EPCISDocument"', b"\xff\xfe", b'{"type": NaN}', b"{}"])
def test_garbage_is_refused_with_one_line(text):
    refused(text)
