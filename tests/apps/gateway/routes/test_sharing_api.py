"""Data sharing over HTTP at the department's gateway on a real solo node: a dataset is collected, an authorisation
granted, a copy shared to the hospital, a product derived, the source destroyed; the provenance graph and W3C
PROV-JSON; refusals (no authorisation, wrong role, another organisation's reader)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from prov.model import ProvDocument

from shancheng.testing.gateway import GatewayWorld

DAY = 86_400


@pytest.fixture(scope="module")
def department(world: GatewayWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayWorld]:
    with GatewayWorld.start(tmp_path_factory.mktemp("gw-department"), org="department", node=world.node) as w:
        w.staff("steward-he", "data_steward")  # registered in Governance as OPERATOR staff (STAFF_ROLE_FLAGS)
        yield w


@pytest.fixture(scope="module")
def steward(department: GatewayWorld) -> Any:
    return department.client(token=department.token("data_steward", subject="steward-he"))


def ok(reply: Any, status: int = 201) -> Any:
    assert reply.status_code == status, reply.text
    return reply.json()


def now(world: GatewayWorld) -> int:
    block = world.services.client.rpc.call("eth_getBlockByNumber", ["latest", False])
    return int(block["timestamp"], 16)


def test_collect_share_derive_destroy_and_provenance(world: GatewayWorld, department: GatewayWorld,
                                                    steward: Any) -> None:
    hospital = world.services.org_id
    collected = ok(steward.post("/api/v1/datasets", json={"content": {"record": {"station": "S1", "hour": 10}},
                                                          "detail": {"record": {"source": "stations"}}}))
    assert collected["step"] == "collect" and collected["generated"]["version"] == 1
    assert set(collected["salts"]) == {"content", "detail"} and collected["signature_verified"] is True
    dataset = collected["generated"]["dataset_id"]

    refused = steward.post(f"/api/v1/datasets/{dataset}/activities",
                           json={"step": "share", "recipient_org": hospital, "plan": "0x" + "11" * 32})
    assert refused.status_code == 422 and refused.json()["type"].endswith("/domain-error")

    auth = ok(steward.post("/api/v1/authorisations", json={
        "dataset_id": dataset, "recipient_org": hospital, "steps": ["share", "analyze"],
        "expires_at": now(department) + DAY, "purpose_code": 7, "purpose": {"record": {"study": "PM2.5 vs visits"}}}))
    assert auth["valid"] is True and auth["steps"] == ["analyze", "share"] and auth["salt"]
    shared = ok(steward.post(f"/api/v1/datasets/{dataset}/activities", json={
        "step": "share", "recipient_org": hospital, "plan": auth["authorisation_id"]}))
    derived = ok(steward.post(f"/api/v1/datasets/{dataset}/activities", json={
        "step": "analyze", "content": {"commitment": "0x" + "22" * 32}, "informed_by": shared["activity_id"]}))
    product = derived["generated"]["dataset_id"]
    destroyed = ok(steward.post(f"/api/v1/datasets/{dataset}/activities", json={"step": "destroy"}))

    product_view = ok(steward.get(f"/api/v1/datasets/{product}"), 200)
    assert (product_view["derived_from"], product_view["source_plan"]) == (dataset, None)  # the owner's own product
    graph = ok(steward.get(f"/api/v1/datasets/{product}/provenance"), 200)
    kinds = {n["id"]: n["kind"] for n in graph["nodes"]}
    assert kinds[f"sc:dataset/{product[2:]}/v1"] == "entity"
    assert kinds[f"sc:activity/{derived['activity_id'][2:]}"] == "activity"
    edges = {(e["source"], e["relation"], e["target"]) for e in graph["edges"]}
    assert (f"sc:dataset/{product[2:]}/v1", "wasDerivedFrom", f"sc:dataset/{dataset[2:]}/v1") in edges

    reply = steward.get(f"/api/v1/datasets/{dataset}/provenance", params={"format": "prov-json"})
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("application/json")
    document = ProvDocument.deserialize(content=reply.text, format="json")
    ids = {str(r.identifier) for r in document.get_records() if r.identifier is not None}
    assert any(dataset[2:] in i for i in ids) and any(shared["activity_id"][2:] in i for i in ids)
    assert "wasInvalidatedBy" in reply.text and "wasAssociatedWith" in reply.text

    # the hospital received a copy: it may read the provenance; a pharmacy may not
    doctor = world.client(token=world.token("doctor"))
    assert doctor.get(f"/api/v1/datasets/{dataset}/provenance").status_code == 200
    deadline = time.monotonic() + 60
    while True:  # the dataset view says when its events are complete up to the destroying block
        info = ok(steward.get(f"/api/v1/datasets/{dataset}"), 200)
        if info["indexed_block"] >= destroyed["block_number"]:
            break
        assert time.monotonic() < deadline, "the indexer did not catch up within 60 s"
        time.sleep(0.2)
    assert info["recipients"] == [hospital] and info["destroyed_at"] is not None
    assert info["derived_from"] is None and info["frozen"] is False
    assert any(e["event"] == "WasInvalidatedBy" and e["block_number"] == destroyed["block_number"]
               for e in info["events"]), info["events"]
    assert info["authorisations"] == [auth["authorisation_id"]]
    events = [e["event"] for e in info["events"]]
    assert "DatasetCreated" in events and "AuthorisationGranted" in events and "Used" in events

    revoked = ok(steward.delete(f"/api/v1/authorisations/{auth['authorisation_id']}"), 200)
    assert revoked["valid"] is False and revoked["revoked_at"] is not None


def test_roles_and_readers_are_checked(world: GatewayWorld, department: GatewayWorld, steward: Any) -> None:
    collected = ok(steward.post("/api/v1/datasets", json={"content": {"commitment": "0x" + "33" * 32}}))
    dataset = collected["generated"]["dataset_id"]
    auditor = department.client(token=department.token("auditor"))
    assert auditor.post("/api/v1/datasets", json={"content": {"commitment": "0x" + "44" * 32}}).status_code == 403
    assert auditor.get(f"/api/v1/datasets/{dataset}/provenance").status_code == 200
    stranger = world.client(token=world.token("doctor"))
    assert stranger.get(f"/api/v1/datasets/{dataset}/provenance").status_code == 404
    assert stranger.get(f"/api/v1/datasets/{dataset}").status_code == 404
    both = steward.post("/api/v1/datasets", json={"content": {"commitment": "0x" + "55" * 32, "record": {"a": 1}}})
    assert both.status_code == 422
    assert steward.get("/api/v1/datasets/0x1234/provenance").status_code == 422
    assert steward.delete("/api/v1/authorisations/0x" + "66" * 32).status_code == 404


def test_ids_outside_the_organisations_namespace_are_refused(world: GatewayWorld, department: GatewayWorld,
                                                             steward: Any) -> None:
    """A steward cannot claim an id in another organisation's namespace (its first 8 bytes are the org id)."""
    foreign = "0x" + world.services.org_id.to_bytes(8, "big").hex() + "77" * 24
    refused = steward.post("/api/v1/datasets", json={"content": {"commitment": "0x" + "88" * 32},
                                                     "dataset_id": foreign})
    assert refused.status_code == 400 and "namespace" in refused.text
    own = "0x" + department.services.org_id.to_bytes(8, "big").hex() + "77" * 24
    collected = ok(steward.post("/api/v1/datasets", json={"content": {"commitment": "0x" + "88" * 32},
                                                          "dataset_id": own}))
    assert collected["generated"]["dataset_id"] == own
    refused = steward.post("/api/v1/authorisations", json={
        "dataset_id": own, "recipient_org": world.services.org_id, "steps": ["share"],
        "expires_at": now(department) + DAY, "purpose_code": 1, "purpose": {"commitment": "0x" + "99" * 32},
        "authorisation_id": foreign})
    assert refused.status_code == 400 and "namespace" in refused.text
