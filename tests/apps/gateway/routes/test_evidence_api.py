"""The evidence and network APIs against a real solo node: records anchored on chain, packages verified by the
gateway (and refused when tampered with), author-signed records with an enrolled staff key, and the network view."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from shancheng.testing.gateway import GatewayWorld

pytestmark = [pytest.mark.network, pytest.mark.slow]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def anchored(http: Any, record_id: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = http.get(f"/api/v1/evidence/records/{record_id}").json()
        if status["status"] == "anchored":
            return dict(status)
        assert time.monotonic() < deadline, f"record {record_id} not anchored in {timeout} s"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def doctor(world: GatewayWorld) -> Any:
    return world.client(token=world.token("doctor", subject="dr.zhang"))


@pytest.fixture(scope="module")
def package(world: GatewayWorld, doctor: Any) -> dict[str, Any]:
    record = {"hosp_rxno": "RX-0001", "drug": "amoxicillin"}
    r = doctor.post("/api/v1/evidence/records", json={"record": record, "kind": "prescription"})
    assert r.status_code == 201
    made = r.json()
    assert made["status"] == "pending" and made["origin"] == world.settings.evidence_origin
    status = anchored(doctor, made["id"])
    assert status["anchor"]["block_number"] > 0 and status["salt"]
    pkg = doctor.get(f"/api/v1/evidence/records/{made['id']}/package")
    assert pkg.status_code == 200
    return {"package": pkg.json(), "record": record, "salt": status["salt"], "id": made["id"]}


def test_package_verifies_with_record_and_salt(world: GatewayWorld, package: dict[str, Any]) -> None:
    auditor = world.client(token=world.token("auditor"))
    r = auditor.post("/api/v1/evidence/verify", json={"package": package["package"], "record": package["record"],
                                                      "salt": package["salt"]})
    assert r.status_code == 200
    out = r.json()
    assert out["verified"] is True and out["failed_check"] is None
    assert out["checks"] == ["package", "record signature", "checkpoint signature", "inclusion proof", "chain anchor",
                             "record content"]
    assert "record content matches" in out["summary"]


def test_tampered_packages_fail_the_right_check(world: GatewayWorld, package: dict[str, Any]) -> None:
    http = world.client(token=world.token("regulator"))
    other = {"package": package["package"], "record": {"hosp_rxno": "RX-0002", "drug": "amoxicillin"},
             "salt": package["salt"]}
    out = http.post("/api/v1/evidence/verify", json=other).json()
    assert out["verified"] is False and out["failed_check"] == "record content" and out["reason"]
    pkg = json.loads(json.dumps(package["package"]))
    pkg["inclusion"]["tree_size"] = pkg["inclusion"]["tree_size"] + 5
    out = http.post("/api/v1/evidence/verify", json={"package": pkg}).json()
    assert out["verified"] is False and out["failed_check"] == "inclusion proof"  # the size the checkpoint signed
    assert out["checks"] == ["package", "record signature", "checkpoint signature"]
    out = http.post("/api/v1/evidence/verify", json={"package": {"format": "nonsense"}}).json()
    assert out == {"verified": False, "summary": None, "checks": [], "failed_check": "package",
                   "reason": out["reason"]}
    assert out["reason"]


def test_verify_accepts_a_multipart_upload(world: GatewayWorld, package: dict[str, Any]) -> None:
    http = world.client(token=world.token("auditor"))
    files = {"package": ("package.json", json.dumps(package["package"]).encode(), "application/json")}
    data = {"record": json.dumps(package["record"]), "salt": package["salt"]}
    out = http.post("/api/v1/evidence/verify", files=files, data=data).json()
    assert out["verified"] is True and out["checks"][-1] == "record content"
    r = http.post("/api/v1/evidence/verify", content=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_record_reads_and_writes_by_role(world: GatewayWorld, package: dict[str, Any]) -> None:
    anyone = world.client()
    assert anyone.get(f"/api/v1/evidence/records/{package['id']}").status_code == 401
    assert anyone.get(f"/api/v1/evidence/records/{package['id']}/package").status_code == 401
    foreign = world.client(token=world.token("doctor", org="pharmacy"))
    assert foreign.get(f"/api/v1/evidence/records/{package['id']}").status_code == 403
    auditor = world.client(token=world.token("auditor"))
    assert auditor.get(f"/api/v1/evidence/records/{package['id']}").status_code == 200
    assert auditor.post("/api/v1/evidence/records", json={"record": 1, "kind": "note"}).status_code == 403
    assert auditor.get("/api/v1/evidence/records/999999").status_code == 404
    assert auditor.get("/api/v1/evidence/records/-1").status_code == 422


def test_author_signed_record_uses_the_principals_staff_key(world: GatewayWorld) -> None:
    key = world.staff("dr.wang", "doctor")
    wang = world.client(token=world.token("doctor", subject="dr.wang"))
    r = wang.post("/api/v1/evidence/records", json={"record": {"rx": 7}, "kind": "prescription",
                                                     "author_signed": True})
    assert r.status_code == 201 and r.json()["author"] == key.public_key().to_bytes().hex()
    status = anchored(wang, r.json()["id"])
    pkg = wang.get(f"/api/v1/evidence/records/{status['id']}/package").json()
    out = wang.post("/api/v1/evidence/verify", json={"package": pkg, "record": {"rx": 7},
                                                     "salt": status["salt"]}).json()
    assert out["verified"] is True
    nobody = world.client(token=world.token("doctor", subject="dr.no-key"))
    r = nobody.post("/api/v1/evidence/records", json={"record": 1, "kind": "note", "author_signed": True})
    assert r.status_code == 403 and r.json()["type"].endswith("/no-staff-key")


def test_network_view(world: GatewayWorld) -> None:
    http = world.client(token=world.token("regulator"))
    assert world.client().get("/api/v1/network").status_code == 401
    net = http.get("/api/v1/network", params={"blocks": 3}).json()
    assert net["org"] == "hospital" and net["height"] >= 1 and net["chain_id"] > 0
    assert net["nodes"] == [{"url": world.node.url, "reachable": True, "height": net["nodes"][0]["height"],
                             "error": None}]
    assert [v["name"] for v in net["validators"]] and all(v["power"] >= 1 for v in net["validators"])
    assert len(net["blocks"]) == 3
    for block in net["blocks"]:
        assert block["certified"] is True and block["certificate_error"] is None  # the solo node certifies at once
        assert block["header_verified"] is True and block["header_error"] is None  # an honest node's header
        assert block["signers"] and block["signed_power"] * 3 > block["total_power"] * 2
        assert block["signer_names"][0] == net["validators"][block["signers"][0]]["name"]
    heights = [b["height"] for b in net["blocks"]]
    assert heights == sorted(heights, reverse=True)
    older = http.get("/api/v1/network/blocks", params={"limit": 2, "before": heights[0]}).json()
    assert [b["height"] for b in older] == [heights[0] - 1, heights[0] - 2]
    assert http.get("/api/v1/network/blocks", params={"limit": 0}).status_code == 422
