"""Drug trace over HTTP across the manufacturer's, the distributor's and the pharmacy's gateways on one real solo
node: register -> ship -> receive -> dispense through the batch API and through EPCIS 2.0 import; the custody trail
(from the indexer, equal to the chain's); the EPCIS export validates against the GS1 EPCIS 2.0 JSON Schema."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from shancheng.sdk.domain.drugtrace import EPCIS_CONTEXT, DrugTrace, epc_of, nmpa_codes
from shancheng.testing.gateway import GatewayWorld

SCHEMA = Path("/work/shared/data/epcis/EPCIS-JSON-Schema.json")
_serial = iter(range(int(time.time()) % 100_000 * 1000, 10**9))


def codes(n: int, drug_id: str = "8623456") -> list[str]:
    return nmpa_codes(drug_id, next(_serial) * 10, n)


@pytest.fixture(scope="module")
def gateways(world: GatewayWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, GatewayWorld]]:
    worlds = {org: GatewayWorld.start(tmp_path_factory.mktemp(f"gw-{org}"), org=org, node=world.node)
              for org in ("manufacturer", "distributor", "pharmacy")}
    try:
        yield {**worlds, "hospital": world}
    finally:
        for w in worlds.values():
            w.close()


class Http:
    def __init__(self, gateways: dict[str, GatewayWorld]) -> None:
        self.gateways = gateways
        self.tokens = {("manufacturer", "manufacturer"): gateways["manufacturer"].token("manufacturer"),
                       ("distributor", "distributor"): gateways["distributor"].token("distributor"),
                       ("pharmacy", "pharmacist"): gateways["pharmacy"].token("pharmacist"),
                       ("hospital", "doctor"): gateways["hospital"].token("doctor")}
        self.org = {name: w.services.org_id for name, w in gateways.items()}

    def call(self, org: str, role: str, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        client = self.gateways[org].client(token=self.tokens[(org, role)])
        reply = client.request(method, path, **kwargs)
        assert reply.status_code == status, reply.text
        return reply.json()


@pytest.fixture(scope="module")
def http(gateways: dict[str, GatewayWorld]) -> Http:
    return Http(gateways)


def trail_from_index(http: Http, org: str, role: str, code: str, maker: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        body: dict[str, Any] = http.call(org, role, "GET", f"/api/v1/trace/codes/{code}", params={"maker": maker})
        if body["source"] == "index":
            return body
        assert time.monotonic() < deadline, "the indexer did not catch up within 60 s"
        time.sleep(0.2)


def test_register_ship_receive_dispense_and_the_trail(gateways: dict[str, GatewayWorld], http: Http) -> None:
    units = codes(2)
    maker = http.org["manufacturer"]
    reg = http.call("manufacturer", "manufacturer", "POST", "/api/v1/trace/register",
                    json={"codes": units, "document": {"bill": "PROD-9"}})
    assert reg["operation"] == "register" and len(reg["accepted"]) == 2 and not reg["refused"] and reg["salt"]
    http.call("manufacturer", "manufacturer", "POST", "/api/v1/trace/ship",
              json={"codes": units, "to": http.org["distributor"]})
    http.call("distributor", "distributor", "POST", "/api/v1/trace/receive", json={"codes": units, "maker_org": maker})
    http.call("distributor", "distributor", "POST", "/api/v1/trace/ship",
              json={"codes": units, "to": http.org["pharmacy"], "maker_org": maker})
    http.call("pharmacy", "pharmacist", "POST", "/api/v1/trace/receive", json={"codes": units, "maker_org": maker})
    sold = http.call("pharmacy", "pharmacist", "POST", "/api/v1/trace/dispense",
                     json={"codes": [units[0]], "maker_org": maker})
    assert len(sold["accepted"]) == 1
    # 回流药: the same code sold again is reported in a lenient batch, not silently accepted
    again = http.call("pharmacy", "pharmacist", "POST", "/api/v1/trace/dispense",
                      json={"codes": units, "maker_org": maker, "strict": False})
    assert [(r["code"], r["reason"]) for r in again["refused"]] == [(units[0], "ALREADY_DISPENSED")]
    strict = http.call("pharmacy", "pharmacist", "POST", "/api/v1/trace/dispense", status=422,
                       json={"codes": [units[0]], "maker_org": maker})
    assert strict["type"].endswith("/domain-error")

    body = trail_from_index(http, "pharmacy", "pharmacist", units[0], maker)
    assert body["custody"] == {"own": "DISPENSED", "effective": "DISPENSED", "holder": http.org["pharmacy"]}
    chain = DrugTrace(gateways["pharmacy"].services.client).trail(units[0], maker)
    assert [(i["kind"], i["block_number"], i["log_index"]) for i in body["trail"]] == [
        (e.kind, e.block_number, e.log_index) for e in chain]
    units_events = [(i["bill_type"], i["acting_org"]) for i in body["trail"] if i["kind"] == "unit"]
    assert units_events == [(101, maker), (201, maker), (102, http.org["distributor"]),
                            (201, http.org["distributor"]), (102, http.org["pharmacy"]), (201, http.org["pharmacy"])]
    refused = [i for i in body["trail"] if i["kind"] == "refused"]
    assert len(refused) == 1 and refused[0]["reason"] == 3

    page = http.call("pharmacy", "pharmacist", "GET", f"/api/v1/trace/codes/{units[0]}",
                     params={"maker": maker, "limit": 2})
    assert page["next_cursor"] is not None
    rest = http.call("pharmacy", "pharmacist", "GET", f"/api/v1/trace/codes/{units[0]}",
                     params={"maker": maker, "limit": 500, "cursor": page["next_cursor"]})
    paged = [i for i in page["trail"] + rest["trail"] if i["kind"] != "batch"]
    assert [(i["block_number"], i["log_index"]) for i in paged] == [
        (i["block_number"], i["log_index"]) for i in body["trail"] if i["kind"] != "batch"]

    hidden = http.call("hospital", "doctor", "GET", f"/api/v1/trace/codes/{units[0]}", status=404,
                       params={"maker": maker})
    assert hidden["status"] == 404


def test_roles_are_checked(http: Http) -> None:
    refused = http.call("distributor", "distributor", "POST", "/api/v1/trace/register", status=403,
                        json={"codes": codes(1)})
    assert refused["type"].endswith("/forbidden-role")
    assert http.call("manufacturer", "manufacturer", "POST", "/api/v1/trace/ship", status=422,
                     json={"codes": codes(1)})["status"] == 422
    assert http.call("manufacturer", "manufacturer", "POST", "/api/v1/trace/register", status=422,
                     json={"codes": []})["status"] == 422
    assert http.call("manufacturer", "manufacturer", "POST", "/api/v1/trace/register", status=400,
                     json={"codes": ["12345"]})["status"] == 400


def _event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "eventTime": "2024-06-15T09:12:00+08:00", "eventTimeZoneOffset": "+08:00", **fields}


def _document(events: list[dict[str, Any]]) -> str:
    return json.dumps({"@context": [EPCIS_CONTEXT], "type": "EPCISDocument", "schemaVersion": "2.0",
                       "creationDate": "2024-06-15T10:00:00Z", "epcisBody": {"eventList": events}})


def test_epcis_import_drives_the_chain_and_the_export_validates(http: Http) -> None:
    serial = next(_serial)
    units = [f"(01)06901234567892(17)271231(10)B240501(21)H{serial}{i}" for i in range(2)]
    maker, distributor = http.org["manufacturer"], http.org["distributor"]
    shipped = _document([
        _event("ObjectEvent", action="ADD", bizStep="commissioning", epcList=[epc_of(u) for u in units]),
        _event("ObjectEvent", action="OBSERVE", bizStep="shipping", disposition="in_transit",
               epcList=[epc_of(u) for u in units],
               destinationList=[{"type": "owning_party", "destination": f"urn:shancheng:org:{distributor}"}]),
    ])
    done = http.call("manufacturer", "manufacturer", "POST", "/api/v1/trace/epcis", content=shipped,
                     headers={"content-type": "application/json"})
    assert [s["operation"] for s in done["steps"]] == ["register", "ship"] and done["refused"] == 0
    received = http.call("distributor", "distributor", "POST", "/api/v1/trace/epcis", params={"maker": maker},
                         content=_document([_event("ObjectEvent", action="OBSERVE", bizStep="receiving",
                                                   epcList=[epc_of(u) for u in units])]),
                         headers={"content-type": "application/json"})
    assert [s["operation"] for s in received["steps"]] == ["receiveShipment"]

    exported = http.call("distributor", "distributor", "GET", f"/api/v1/trace/codes/{units[0]}/epcis",
                         params={"maker": maker})
    jsonschema.validate(exported, json.loads(SCHEMA.read_text()))
    steps = [e.get("bizStep") for e in exported["epcisBody"]["eventList"]]
    assert steps == ["commissioning", "shipping", "receiving"]

    wrong = http.call("manufacturer", "manufacturer", "POST", "/api/v1/trace/epcis", status=400,
                      content=_document([_event("ObjectEvent", action="OBSERVE", bizStep="repairing",
                                                epcList=[epc_of(units[0])])]),
                      headers={"content-type": "application/json"})
    assert "repairing" in wrong["detail"]
    hidden = http.call("hospital", "doctor", "GET", f"/api/v1/trace/codes/{units[0]}/epcis", status=404,
                       params={"maker": maker})
    assert hidden["status"] == 404
