"""The drug-trace client against a real solo node: custody moves with acceptance, exactly-once dispensing,
recall, lenient batches that report each refused code, and GS1 EPCIS 2.0 import and export (the export validated
against the EPCIS 2.0 JSON Schema of the GS1 repository)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from shancheng.sdk.domain import DomainRefused, DrugTrace, Refusal, UnitState
from shancheng.sdk.domain.drugtrace import (
    EPCIS_CONTEXT,
    BillType,
    code_from_epc,
    epc_of,
    nmpa_codes,
    normalise_trace_code,
    trace_code_commitment,
    trace_unit_key,
)
from shancheng.sdk.epcis import EPCISError
from shancheng.sdk.errors import InvalidInput

SCHEMA = Path("/work/shared/data/epcis/EPCIS-JSON-Schema.json")
if not SCHEMA.exists():
    SCHEMA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "epcis" / "EPCIS-JSON-Schema.json"

_serial = iter(range(1, 10**6))


def codes(n: int, drug_id: str = "8612345") -> list[str]:
    """``n`` fresh NMPA-shaped codes (one session node serves every test)."""
    first = next(_serial) * 1000
    return nmpa_codes(drug_id, first, n)


def gs1(serial: str, gtin: str = "06901234567892") -> str:
    return f"(01){gtin}(17)271231(10)B240501(21){serial}"


class World:
    def __init__(self, domain_node: Any) -> None:
        self.orgs = {name: domain_node.client(name).org_id
                     for name in ("manufacturer", "distributor", "pharmacy", "regulator", "logistics")}
        makers = {"8612345": self.orgs["manufacturer"], "06901234567892": self.orgs["manufacturer"],
                  "16901234567899": self.orgs["manufacturer"]}
        self.trace = {name: DrugTrace(domain_node.client(name), makers=makers) for name in self.orgs}

    def __getattr__(self, name: str) -> DrugTrace:
        return self.__dict__["trace"][name]


@pytest.fixture(scope="module")
def world(domain_node: Any) -> World:
    return World(domain_node)


pytestmark = pytest.mark.network


# ------------------------------------------------------------------------------------------ lifecycle


def test_register_aggregate_ship_receive_dispense(world: World) -> None:
    units = codes(3)
    (case,) = codes(1, drug_id="8612346")
    mfr, dist, pharmacy = world.manufacturer, world.distributor, world.pharmacy
    maker = world.orgs["manufacturer"]
    registered = mfr.register(units, document={"bill": "PROD-1", "lot": "B240501"})
    assert registered.ok and len(registered.accepted) == 3 and registered.salt is not None
    assert registered.accepted[0] == trace_unit_key(maker, trace_code_commitment(units[0]))
    assert mfr.register([case], level=3).ok
    assert mfr.aggregate(case, units, maker_org=maker).ok
    assert mfr.custody(units[0], maker).own is UnitState.AGGREGATED
    assert mfr.ship([case], world.orgs["distributor"], maker_org=maker).ok
    assert dist.custody(units[1], maker).effective is UnitState.SHIPPED
    assert dist.receive([case], maker_org=maker).ok
    assert dist.custody(units[1], maker).holder == world.orgs["distributor"]
    dist.ship([case], world.orgs["pharmacy"], maker_org=maker)
    pharmacy.receive([case], maker_org=maker)
    sold = pharmacy.dispense([units[0]], maker_org=maker)
    assert sold.ok and pharmacy.custody(units[0], maker).own is UnitState.DISPENSED
    again = pharmacy.dispense([units[0]], maker_org=maker, strict=False)
    assert [(r.code, r.reason) for r in again.refused] == [(units[0], Refusal.ALREADY_DISPENSED)], "回流药 reported"
    with pytest.raises(DomainRefused, match="Trace: sold or removed child inside; disaggregate first"):
        pharmacy.ship([case], world.orgs["distributor"], maker_org=maker)
    trail = pharmacy.trail(units[0], maker)
    kinds = [(e.kind, e.bill_type) for e in trail if e.kind in ("unit", "aggregation", "refused")]
    assert kinds == [("unit", BillType.PRODUCTION_IN), ("aggregation", None), ("unit", BillType.SALES_OUT),
                     ("refused", BillType.SALES_OUT)]
    positions = [(e.block_number, e.log_index) for e in trail]
    assert positions == sorted(positions)
    assert any(e.kind == "batch" and e.doc_ref == registered.doc_ref for e in trail), "the batch's docRef is there"


def test_a_recall_by_the_manufacturer_reaches_units_held_downstream(world: World) -> None:
    units = codes(2)
    maker = world.orgs["manufacturer"]
    world.manufacturer.register(units)
    world.manufacturer.ship(units, world.orgs["distributor"])
    world.distributor.receive(units)
    recalled = world.manufacturer.recall(units[:1], maker_org=maker)
    assert recalled.ok and recalled.bill_type is BillType.RECALL_OUT
    assert world.distributor.custody(units[0]).own is UnitState.RECALLED
    assert world.distributor.custody(units[1]).own is UnitState.RECEIVED
    with pytest.raises(DomainRefused, match="Trace: unit recalled, sampled or destroyed"):
        world.distributor.ship(units[:1], world.orgs["pharmacy"])


def test_a_lenient_batch_reports_exactly_the_bad_code(world: World) -> None:
    units = codes(3)
    (counterfeit,) = codes(1)  # never registered
    world.manufacturer.register(units)
    result = world.manufacturer.ship([*units, counterfeit], world.orgs["distributor"], strict=False)
    assert len(result.accepted) == 3 and not result.ok
    assert [(r.code, r.reason, r.text) for r in result.refused] == [
        (counterfeit, Refusal.UNKNOWN_CODE, "unknown code")]
    with pytest.raises(DomainRefused, match="Trace: unknown code"):
        world.distributor.receive([*units, counterfeit])  # strict: all or nothing
    assert world.distributor.custody(units[0]).own is UnitState.SHIPPED
    assert world.distributor.receive(units).ok


def test_sampling_and_supervised_destruction(world: World) -> None:
    units = codes(2)
    world.manufacturer.register(units)
    assert world.regulator.sample(units[:1]).ok
    assert world.manufacturer.custody(units[0]).own is UnitState.SAMPLED
    world.manufacturer.request_destruction(units[1:], world.orgs["regulator"])
    assert world.manufacturer.custody(units[1]).own is UnitState.DESTRUCTION_PENDING
    assert world.regulator.confirm_destruction(units[1:]).ok
    assert world.manufacturer.custody(units[1]).own is UnitState.DESTROYED


def test_batches_are_checked_before_sending(world: World) -> None:
    with pytest.raises(InvalidInput, match="1 to 1000 codes"):
        world.manufacturer.register([])
    with pytest.raises(InvalidInput, match="not a 20-digit NMPA trace code"):
        world.manufacturer.register(["12345"])
    with pytest.raises(InvalidInput, match="level must be"):
        world.manufacturer.register(codes(1), level=4)
    with pytest.raises(InvalidInput, match="bill type is 201"):
        world.manufacturer.ship(codes(1), world.orgs["distributor"], bill=BillType.PURCHASE_IN)


# ------------------------------------------------------------------------------------------ EPCIS


def _event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "eventTime": "2024-06-15T09:12:00+08:00", "eventTimeZoneOffset": "+08:00", **fields}


def _document(events: list[dict[str, Any]]) -> str:
    return json.dumps({"@context": [EPCIS_CONTEXT, {"shancheng": "https://shancheng.example/epcis/"}],
                       "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2024-06-15T10:00:00Z",
                       "epcisBody": {"eventList": events}})


def test_epcis_import_drives_the_chain_and_export_validates_against_the_schema(world: World) -> None:
    serials = [f"A{next(_serial):08d}" for _ in range(2)]
    units = [gs1(s) for s in serials]
    case = f"(01)16901234567899(21)C{next(_serial):08d}"
    distributor = world.orgs["distributor"]
    pgln = "urn:epc:id:pgln:6909876.00000"
    shipped = _document([
        _event("ObjectEvent", action="ADD", bizStep="commissioning", epcList=[epc_of(u) for u in units]),
        _event("ObjectEvent", action="ADD", bizStep="commissioning", epcList=[epc_of(case)],
               **{"shancheng:packagingLevel": 3}),
        _event("AggregationEvent", action="ADD", bizStep="packing", parentID=epc_of(case),
               childEPCs=[epc_of(u) for u in units]),
        _event("ObjectEvent", action="OBSERVE", bizStep="shipping", disposition="in_transit",
               epcList=[epc_of(case)], destinationList=[{"type": "owning_party", "destination": pgln}]),
    ])
    done = world.manufacturer.import_epcis(shipped, parties={pgln: distributor})
    assert [s.operation for s in done.steps] == ["register", "register", "aggregate", "ship"]
    assert all(s.result.ok for s in done.steps) and not done.refused
    received = world.distributor.import_epcis(_document([
        _event("ObjectEvent", action="OBSERVE", bizStep="receiving", epcList=[epc_of(case)])]))
    assert [s.operation for s in received.steps] == ["receive"]
    assert world.distributor.custody(units[0]).holder == distributor
    assert world.distributor.unit(case).level == 3

    exported = world.distributor.export_epcis(units[0], known_codes=[case])
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(exported, schema)
    events = exported["epcisBody"]["eventList"]
    assert [(e["type"], e.get("bizStep")) for e in events] == [
        ("ObjectEvent", "commissioning"), ("AggregationEvent", "packing")]
    assert events[0]["epcList"] == [epc_of(units[0])] and events[1]["parentID"] == epc_of(case)
    case_doc = world.distributor.export_epcis(case, known_codes=units)
    jsonschema.validate(case_doc, schema)
    steps = [e.get("bizStep") for e in case_doc["epcisBody"]["eventList"]]
    assert steps == ["commissioning", "packing", "packing", "shipping", "receiving"]
    ship = case_doc["epcisBody"]["eventList"][3]
    assert ship["destinationList"] == [{"type": "owning_party", "destination": f"urn:shancheng:org:{distributor}"}]


def test_an_unknown_biz_step_refuses_the_whole_document_before_anything_is_sent(world: World) -> None:
    client = world.manufacturer.client
    unit = gs1(f"R{next(_serial):08d}")
    nonce = client.rpc.call("eth_getTransactionCount", [client.identity.address, "latest"])
    document = _document([
        _event("ObjectEvent", action="ADD", bizStep="commissioning", epcList=[epc_of(unit)]),
        _event("ObjectEvent", action="OBSERVE", bizStep="repairing", epcList=[epc_of(unit)]),
    ])
    with pytest.raises(EPCISError, match="event 1 .*'repairing'.*no drug-trace operation"):
        world.manufacturer.import_epcis(document)
    assert client.rpc.call("eth_getTransactionCount", [client.identity.address, "latest"]) == nonce
    assert world.manufacturer.custody(unit).own is UnitState.NONE


# ------------------------------------------------------------------------------------------ code recipes


def test_code_shapes_and_epc_spellings() -> None:
    assert normalise_trace_code(" 81234567890123456789 ") == "81234567890123456789"
    with pytest.raises(InvalidInput, match="GTIN check digit"):
        normalise_trace_code("(01)06901234567891(21)X")
    code = gs1("A1B2C3D4E5")
    assert code_from_epc(epc_of(code)) == code
    assert code_from_epc(epc_of("81234567890123456789")) == "81234567890123456789"
    assert code_from_epc("urn:epc:id:sgtin:6901234.012345.A1") == "(01)06901234123456(21)A1"
    with pytest.raises(InvalidInput, match="Digital Link"):
        code_from_epc("https://id.gs1.org/00/106141412345678908")
