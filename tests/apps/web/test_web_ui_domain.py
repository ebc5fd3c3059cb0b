"""The web UI's evidence, prescription, drug-trace and provenance pages in real headless Chromium against real
gateways (hospital, pharmacy, manufacturer, distributor, department) on one real solo node, with the data made
through the gateways' own API: a good evidence package is verified and a tampered one names its failing check; a
prescription walks its lifecycle by clicking as four staff members at two gateways; a drug's custody trail and its
EPCIS export; the provenance graph and its PROV-JSON. Screenshots of each page; no request leaves loopback; no
console errors."""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _web_support import (
    Desk,
    artifacts_dir,
    canvas_is_drawn,
    chart_option,
    on_node,
    prescription_document,
    signed_in,
    starts_with,
    url_of,
)
from playwright.sync_api import expect
from prov.model import ProvDocument

from shancheng.sdk.domain.drugtrace import nmpa_codes
from shancheng.testing.gateway import GatewayWorld

pytestmark = [pytest.mark.network, pytest.mark.slow]
DEADLINE = 60.0
REVIEW = {"phar_prac_cert_no": "PHA2024001", "rx_chk_stas_codg": "1", "rx_chk_opnn": "用法用量合理"}
_serial = itertools.count(int(time.time()) % 100_000 * 1000)


@pytest.fixture(scope="module")
def manufacturer(hospital: GatewayWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayWorld]:
    yield from on_node(hospital, tmp_path_factory, "manufacturer")


@pytest.fixture(scope="module")
def distributor(hospital: GatewayWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayWorld]:
    yield from on_node(hospital, tmp_path_factory, "distributor")


@pytest.fixture(scope="module")
def department(hospital: GatewayWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayWorld]:
    yield from on_node(hospital, tmp_path_factory, "department")


def ok(reply: Any, status: int = 200) -> Any:
    assert reply.status_code == status, reply.text
    return reply.json()


def until(what: str, probe: Any) -> Any:
    """Poll ``probe()`` until it returns something truthy, for at most DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE} s"
        time.sleep(0.2)


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(artifacts_dir() / f"{name}.png"), full_page=True)


# -- evidence ---------------------------------------------------------------------------------------------------

def _anchored_record(hospital: GatewayWorld, record: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
    """A record added through the API, once anchored: its id, salt and evidence package."""
    http = hospital.client(token=hospital.token("doctor", subject="dr-evidence"))
    made = ok(http.post("/api/v1/evidence/records", json={"record": record, "kind": "lab.report"}), 201)
    rid = made["id"]
    status = until("the record is anchored",
                   lambda: (s := ok(http.get(f"/api/v1/evidence/records/{rid}")))["status"] == "anchored" and s)
    package = ok(http.get(f"/api/v1/evidence/records/{rid}/package"))
    return rid, status["salt"], package


def _verify(page: Any) -> None:
    page.locator("#verify-button").click()
    expect(page.locator("#verify-result")).to_be_visible()


def test_evidence_page_verifies_a_good_package_and_names_the_failing_check(hospital, urls, launch, tmp_path):
    record = {"patient": "P-0001", "test": "血常规", "wbc": 6.1}
    rid, salt, package = _anchored_record(hospital, record)
    url = url_of(urls, "hospital", hospital)
    page, guard = signed_in(launch, url, hospital.token("auditor", subject="auditor.wang"), "/ui/evidence")
    expect(page.locator("#main h2")).to_have_text("存证包验证")

    # fetched from this gateway's log by record id (with its salt), and the original record: every check passes
    page.locator("#record-id").fill(str(rid))
    page.locator("#record-load").click()
    expect(page.locator("#record-loaded")).to_be_visible()
    expect(page.locator("#salt")).to_have_value(salt)
    loaded = json.loads(page.locator("#pkg-text").input_value())
    # an org-attested record's statement is signed (SM2, randomised) each time its package is made
    assert {**loaded, "author": None} == {**package, "author": None}
    assert loaded["author"]["public_key"] == package["author"]["public_key"]
    page.locator("#record-text").fill(json.dumps(record, ensure_ascii=False))
    _verify(page)
    result = page.locator("#verify-result")
    expect(result).to_have_attribute("data-verified", "true")
    expect(result.locator(".verdict")).to_have_text("已验证")
    expect(page.locator("#verify-summary")).not_to_be_empty()
    checks = page.locator("#verify-checks li")
    expect(checks).to_have_count(6)
    assert [checks.nth(i).get_attribute("data-check") for i in range(6)] == [
        "package", "record signature", "checkpoint signature", "inclusion proof", "chain anchor", "record content"]
    expect(checks.last).to_have_text("✓ 记录内容")
    shot(page, "evidence-verified")

    # the same package with another record: the content check fails, the earlier ones passed
    page.locator("#record-text").fill(json.dumps({**record, "wbc": 9.9}, ensure_ascii=False))
    _verify(page)
    expect(result).to_have_attribute("data-verified", "false")
    expect(page.locator("#failed-check")).to_have_attribute("data-check", "record content")
    expect(page.locator("#verify-checks li.bad")).to_have_text("✗ 记录内容")
    expect(page.locator("#verify-checks li.good")).to_have_count(5)

    # a tampered package uploaded as a file (its author's signature altered): the record signature check fails
    tampered = copy.deepcopy(package)
    signature = bytearray(base64.b64decode(tampered["author"]["signature"]))
    signature[len(signature) // 2] ^= 0x01
    tampered["author"]["signature"] = base64.b64encode(bytes(signature)).decode()
    upload = tmp_path / "tampered.json"
    upload.write_text(json.dumps(tampered), encoding="utf-8")
    page.locator("#record-text").fill("")
    page.locator("#salt").fill("")
    page.locator("#pkg-file").set_input_files(str(upload))
    expect(page.locator("#pkg-text")).to_have_value(upload.read_text(encoding="utf-8"))
    _verify(page)
    expect(result).to_have_attribute("data-verified", "false")
    expect(result.locator(".verdict")).to_have_text("验证失败")
    expect(page.locator("#failed-check")).to_have_attribute("data-check", "record signature")
    expect(page.locator("#failed-check")).to_have_text("记录签名")
    expect(page.locator("#failed-reason")).not_to_have_text("—")
    expect(page.locator("#verify-checks li")).to_have_count(2)  # package passed, record signature failed
    shot(page, "evidence-tampered")
    guard.assert_clean()


# -- prescriptions ----------------------------------------------------------------------------------------------

def test_a_prescription_walks_its_lifecycle_by_clicking_as_four_staff(hospital, pharmacy, urls, launch):
    hospital_url = url_of(urls, "hospital", hospital)
    pharmacy_url = url_of(urls, "pharmacy", pharmacy)
    doctor = Desk(launch, hospital_url, hospital, "dr-li", "doctor")
    reviewer = Desk(launch, hospital_url, hospital, "ph-zhao", "pharmacist")
    pharmacist = Desk(launch, pharmacy_url, pharmacy, "ph-sun", "pharmacist")
    dispenser = Desk(launch, pharmacy_url, pharmacy, "dp-qian", "dispenser")

    # the doctor issues through the page's form; the page opens the new prescription, with the salt to keep
    page = doctor.page
    page.locator("#rx-new summary").click()
    page.locator("#rx-new-doc").fill(json.dumps(prescription_document(), ensure_ascii=False))
    page.locator("#rx-issue").click()
    expect(page.locator("#rx-state")).to_have_attribute("data-state", "SIGNED", timeout=30_000)
    expect(page.locator("#rx-last-step .salt")).to_have_text(starts_with("0x"))
    rx = page.locator("#rx-shown-id").inner_text()
    assert len(rx) == 66 and rx.startswith("0x")
    # a doctor is offered extend and revoke only; the pharmacist's review buttons are not on the doctor's page
    expect(page.locator("#rx-actions button")).to_have_text(["延长有效期", "撤销"])

    reviewer.open(rx)
    expect(reviewer.page.locator("#rx-actions button")).to_have_text(["审核通过", "驳回"])
    reviewer.press("approve", "APPROVED", **REVIEW)
    doctor.open(rx)
    doctor.press("circulate", "CIRCULATED")
    code = doctor.page.locator("#rx-pickup-code").inner_text()  # for the patient, shown once
    assert re.fullmatch(r"([0-9A-Z]{4}-){3}[0-9A-Z]{4}", code), code
    pharmacist.open(rx)  # a circulating prescription is visible to any pharmacy
    pharmacist.press("claim", "CLAIMED", pickup_code=code)  # the code the patient showed
    dispenser.open(rx)
    dispenser.press("dispense", "DISPENSING")
    # 四查十对: the dispenser may not check their own dispensing; the contract's reason is shown, state unchanged
    dispenser.guard.allowed_statuses.add(422)
    dispenser.page.locator("#rx-actions button[data-transition=check]").click()
    expect(dispenser.page.locator("#rx-action-status")).to_have_class("error")
    expect(dispenser.page.locator("#rx-action-status")).to_contain_text("Rx:")
    expect(dispenser.page.locator("#rx-state")).to_have_attribute("data-state", "DISPENSING")
    pharmacist.open(rx)
    pharmacist.press("check", "CHECKED")
    pharmacist.press("hand_over", "DISPENSED")
    expect(pharmacist.page.locator("#rx-actions")).to_have_count(0)  # nothing more to do
    expect(pharmacist.page.locator("#rx-pharmacy")).to_contain_text("pharmacy")

    # the timeline, at both gateways: every transition in order, each by a staff key, with the acting organisation
    expected = ["issue", "approve", "circulate", "claim", "dispense", "check", "hand_over"]
    for desk, name in ((pharmacist, "prescription-pharmacy"), (doctor, "prescription-hospital")):
        desk.open(rx)
        events = desk.page.locator("#rx-timeline li[data-kind=transition]")
        expect(events).to_have_count(len(expected))
        assert [events.nth(i).get_attribute("data-transition") for i in range(len(expected))] == expected
        assert events.last.get_attribute("data-state") == "DISPENSED"
        expect(events.first).to_contain_text("签发处方")
        expect(events.last).to_contain_text("已发药")
        for i in range(len(expected)):
            expect(events.nth(i).locator(".meta code").first).to_have_text(starts_with("0x"))
        expect(desk.page.locator("#rx-timeline li[data-kind=terms]")).to_have_count(1)
        assert "⟦" not in desk.page.content()
        shot(desk.page, name)
    served = ok(hospital.client(token=hospital.token("auditor")).get(f"/api/v1/prescriptions/{rx}"))
    assert [t["transition"] for t in served["timeline"] if t["kind"] == "transition"] == expected
    for desk in (doctor, reviewer, pharmacist, dispenser):
        desk.guard.assert_clean()


# -- drug trace -------------------------------------------------------------------------------------------------

def test_the_drug_custody_trail_and_its_epcis_export(hospital, manufacturer, distributor, pharmacy, urls, launch,
                                                     tmp_path):
    code = nmpa_codes("8623456", next(_serial) * 10, 1)[0]
    maker, dist, shop = (w.services.org_id for w in (manufacturer, distributor, pharmacy))
    made = manufacturer.client(token=manufacturer.token("manufacturer"))
    middle = distributor.client(token=distributor.token("distributor"))
    seller = pharmacy.client(token=pharmacy.token("pharmacist", subject="ph-trail"))
    ok(made.post("/api/v1/trace/register", json={"codes": [code]}))
    ok(made.post("/api/v1/trace/ship", json={"codes": [code], "to": dist}))
    ok(middle.post("/api/v1/trace/receive", json={"codes": [code], "maker_org": maker}))
    ok(middle.post("/api/v1/trace/ship", json={"codes": [code], "to": shop, "maker_org": maker}))
    ok(seller.post("/api/v1/trace/receive", json={"codes": [code], "maker_org": maker}))
    ok(seller.post("/api/v1/trace/dispense", json={"codes": [code], "maker_org": maker}))

    url = url_of(urls, "pharmacy", pharmacy)
    page, guard = signed_in(launch, url, pharmacy.token("pharmacist", subject="ph-trail"), "/ui/trace")
    page.locator("#trace-code").fill(code)
    page.locator("#trace-maker").fill(str(maker))
    page.locator("#trace-search button[type=submit]").click()
    expect(page.locator("#trace-state")).to_have_attribute("data-state", "DISPENSED")
    expect(page.locator("#trace-state")).to_have_text("已售出")
    expect(page.locator("#trace-holder")).to_have_attribute("data-org", str(shop))
    expect(page.locator("#trace-holder")).to_contain_text("pharmacy")
    assert page.url.endswith(f"/ui/trace?code={code}&maker={maker}")
    rows = page.locator("#trace-events tbody tr")
    expect(rows).to_have_count(6)
    bills = [rows.nth(i).locator("[data-kind=unit]").get_attribute("data-bill") for i in range(6)]
    assert bills == ["101", "201", "102", "201", "102", "201"]
    expect(rows.nth(0)).to_contain_text("生产入库")
    expect(rows.nth(5)).to_contain_text("pharmacy")  # the pharmacy sold it
    shipped = rows.nth(3).locator("td")  # the distributor (another organisation) shipped to this pharmacy
    expect(shipped.nth(2)).to_have_text(f"distributor (#{dist})")  # another organisation, named from the chain
    expect(rows.nth(0).locator("td").nth(2)).to_have_text(f"manufacturer (#{maker})")
    expect(shipped.nth(3)).to_have_text(f"pharmacy (#{shop})")
    expect(page.locator("#trace-more")).to_be_hidden()  # one page holds the whole trail
    shot(page, "trace")

    with page.expect_download() as caught:
        page.locator("#trace-epcis").click()
    saved = tmp_path / "epcis.json"
    caught.value.save_as(saved)
    assert caught.value.suggested_filename == f"epcis-{code}.json"
    document = json.loads(saved.read_text(encoding="utf-8"))
    assert document["type"] == "EPCISDocument"
    assert len(document["epcisBody"]["eventList"]) >= 6
    guard.assert_clean()


# -- organisations ----------------------------------------------------------------------------------------------

def test_the_organisations_api_names_every_member_from_governance(hospital, pharmacy):
    reader = hospital.client(token=hospital.token("auditor"))
    orgs = ok(reader.get("/api/v1/orgs"))
    by_name = {o["name"]: o for o in orgs}
    assert [o["id"] for o in orgs] == list(range(1, len(orgs) + 1))
    assert {"hospital", "pharmacy", "manufacturer", "distributor", "department"} <= set(by_name)
    assert by_name["hospital"]["id"] == hospital.services.org_id and by_name["hospital"]["roles"] == ["hospital"]
    assert by_name["pharmacy"]["id"] == pharmacy.services.org_id and by_name["pharmacy"]["active"] is True
    assert by_name["department"]["roles"] == ["department"]
    assert hospital.client().get("/api/v1/orgs").status_code == 401  # signed-in readers only


# -- provenance -------------------------------------------------------------------------------------------------

def _shared_and_derived(department: GatewayWorld, hospital: GatewayWorld) -> dict[str, Any]:
    """Collect a dataset, authorise the hospital, share a copy, derive a product, destroy the source."""
    department.staff("steward-he", "data_steward")  # registered in Governance as an OPERATOR staff member
    steward = department.client(token=department.token("data_steward", subject="steward-he"))
    collected = ok(steward.post("/api/v1/datasets", json={"content": {"record": {"station": "S1", "hour": 10}}}), 201)
    dataset = collected["generated"]["dataset_id"]
    now = int(department.services.client.rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
    auth = ok(steward.post("/api/v1/authorisations", json={
        "dataset_id": dataset, "recipient_org": hospital.services.org_id, "steps": ["share", "analyze"],
        "expires_at": now + 86_400, "purpose_code": 7, "purpose": {"record": {"study": "PM2.5 与就诊量"}}}), 201)
    shared = ok(steward.post(f"/api/v1/datasets/{dataset}/activities", json={
        "step": "share", "recipient_org": hospital.services.org_id, "plan": auth["authorisation_id"]}), 201)
    ok(steward.post(f"/api/v1/datasets/{dataset}/activities", json={
        "step": "analyze", "content": {"commitment": "0x" + "22" * 32}, "informed_by": shared["activity_id"]}), 201)
    ok(steward.post(f"/api/v1/datasets/{dataset}/activities", json={"step": "destroy"}), 201)
    graph = ok(steward.get(f"/api/v1/datasets/{dataset}/provenance"))
    return {"dataset": dataset, "graph": graph, "share": shared["activity_id"]}


def test_the_provenance_graph_and_its_prov_json(hospital, department, urls, launch, tmp_path):
    made = _shared_and_derived(department, hospital)
    dataset, graph = made["dataset"], made["graph"]
    kinds = {n["kind"] for n in graph["nodes"]}
    assert kinds == {"entity", "activity", "organisation", "person", "plan"}
    activities = sorted(n["label"] for n in graph["nodes"] if n["kind"] == "activity")
    assert activities == ["analyze", "collect", "destroy", "share"]

    url = url_of(urls, "department", department)
    page, guard = signed_in(launch, url, department.token("auditor", subject="auditor.liu"),
                            f"/ui/provenance?dataset={dataset}")
    page.wait_for_selector("#prov-chart canvas")
    option = chart_option(page, "#prov-chart")
    (series,) = option["series"]
    assert series["type"] == "graph"
    assert len(series["data"]) == len(graph["nodes"]) and len(series["links"]) == len(graph["edges"])
    assert {d["id"] for d in series["data"]} == {n["id"] for n in graph["nodes"]}
    categories = [c["name"] for c in series["categories"]]
    assert categories == ["实体", "活动", "机构", "人员", "授权"]
    by_id = {n["id"]: n["kind"] for n in graph["nodes"]}
    kinds_en = ["entity", "activity", "organisation", "person", "plan"]
    assert all(kinds_en[d["category"]] == by_id[d["id"]] for d in series["data"])
    assert canvas_is_drawn(page, "#prov-chart")
    expect(page.locator("#prov-counts")).to_contain_text(f"{len(graph['nodes'])} 个节点")
    expect(page.locator("#prov-nodes tbody tr")).to_have_count(len(graph["nodes"]))
    # the organisations by their Governance names: this one (the owner) and the recipient, another organisation
    organisations = page.locator("#prov-nodes tbody tr", has_text="机构")
    assert {n["org"] for n in graph["nodes"] if n["kind"] == "organisation"} == {
        department.services.org_id, hospital.services.org_id}
    expect(organisations).to_have_count(2)
    expect(organisations.filter(has_text=f"department (#{department.services.org_id})")).to_have_count(1)
    expect(organisations.filter(has_text=f"hospital (#{hospital.services.org_id})")).to_have_count(1)
    shot(page, "provenance")

    with page.expect_download() as caught:
        page.locator("#prov-download").click()
    saved: Path = tmp_path / "prov.json"
    caught.value.save_as(saved)
    assert caught.value.suggested_filename == f"provenance-{dataset[2:18]}.json"
    document = ProvDocument.deserialize(content=saved.read_text(encoding="utf-8"), format="json")
    ids = {str(r.identifier) for r in document.get_records() if r.identifier is not None}
    assert any(dataset[2:] in i for i in ids) and any(made["share"][2:] in i for i in ids)

    # English labels for the same graph
    page.select_option("#lang", "en")
    page.wait_for_function("""() => { const box = document.querySelector('#prov-chart');
        const c = box && window.echarts.getInstanceByDom(box);
        return Boolean(c) && c.getOption().series[0].categories[0].name === 'Entity'; }""")
    assert [c["name"] for c in chart_option(page, "#prov-chart")["series"][0]["categories"]] == [
        "Entity", "Activity", "Organisation", "Staff member", "Authorisation"]
    expect(page.locator("#prov-counts")).to_contain_text(f"{len(graph['nodes'])} nodes")
    guard.assert_clean()
