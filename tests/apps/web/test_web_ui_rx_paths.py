"""The prescription page's other paths, clicked in real headless Chromium against real gateways (hospital, pharmacy,
logistics) on one real solo node: a pharmacist rejects and the doctor re-issues; the prescribing doctor revokes a
claimed prescription (after the pharmacy released and claimed it again); the doctor extends validity; a checked
prescription is consigned to the logistics organisation, whose courier picks it up and delivers it; a repeat
prescription is dispensed twice (the second fill from DISPENSED), and one with a fill left is released to circulation,
recalled by the hospital with a new pickup code and claimed with it. Every claim types the pickup code the doctor's
page showed after circulating (the patient carries it to the pharmacy they chose).
Each path: the buttons each role is offered, the state and the timeline after each click, one refusal by the
contract (shown as an error, the state unchanged), a screenshot of its end state and no console errors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from _web_support import Desk, on_node, prescription_document, shot, signed_in, url_of
from playwright.sync_api import expect

from shancheng.testing.gateway import GatewayWorld

pytestmark = [pytest.mark.network, pytest.mark.slow]
REVIEW = {"phar_prac_cert_no": "PHA2024001", "rx_chk_stas_codg": "1", "rx_chk_opnn": "用法用量合理"}
REFUSAL = {"phar_prac_cert_no": "PHA2024002", "rx_chk_stas_codg": "2", "rx_chk_opnn": "单次剂量超出说明书推荐"}
DAY = 86_400
#: a repeat prescription of two fills; the minimum interval may be 0 days (the document rules and the contract ask a
#: repeat prescription only for at least 2 fills), so the second fill can start at once: no waiting in these tests
REPEAT = {"rept_flag": True, "max_rept_cnt": 2, "min_inrv_days": 0}


@pytest.fixture(scope="module")
def logistics(hospital: GatewayWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayWorld]:
    yield from on_node(hospital, tmp_path_factory, "logistics")


def served(world: GatewayWorld, rx: str) -> dict[str, Any]:
    """The prescription as an auditor reads it through ``world``'s API."""
    reply = world.client(token=world.token("auditor")).get(f"/api/v1/prescriptions/{rx}")
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def issue(doctor: Desk, **changes: Any) -> tuple[str, dict[str, Any]]:
    """The doctor issues a new prescription through the page's form: its id and document."""
    document = prescription_document(**changes)
    page = doctor.page
    page.goto(f"{doctor.url}/ui/prescriptions")
    page.locator("#rx-new summary").click()
    page.locator("#rx-new-doc").fill(json.dumps(document, ensure_ascii=False))
    page.locator("#rx-issue").click()
    expect(page.locator("#rx-state")).to_have_attribute("data-state", "SIGNED", timeout=30_000)
    rx = page.locator("#rx-shown-id").inner_text()
    assert len(rx) == 66 and rx.startswith("0x")
    return rx, document


def timeline(desk: Desk) -> list[tuple[str | None, str | None]]:
    """(transition, state it led to) of every transition on the desk's timeline."""
    events = desk.transitions()
    return [(events.nth(i).get_attribute("data-transition"), events.nth(i).get_attribute("data-state"))
            for i in range(events.count())]


def no_actions(desk: Desk) -> None:
    expect(desk.page.locator("#rx-actions")).to_have_count(0)


def pickup_code(desk: Desk) -> str:
    """The pickup code the page showed after a circulate or recall (XXXX-XXXX-XXXX-XXXX)."""
    shown = desk.page.locator("#rx-pickup-code")
    expect(shown).to_have_text(re.compile(r"^([0-9A-Z]{4}-){3}[0-9A-Z]{4}$"))
    return shown.inner_text()


# -- reject, then re-issue ----------------------------------------------------------------------------------------

def test_a_pharmacist_rejects_and_the_doctor_reissues_a_new_version(hospital, urls, launch):
    url = url_of(urls, "hospital", hospital)
    doctor = Desk(launch, url, hospital, "dr-chen", "doctor")
    first = Desk(launch, url, hospital, "ph-rej-a", "pharmacist")
    second = Desk(launch, url, hospital, "ph-rej-b", "pharmacist")
    rx, document = issue(doctor)
    expect(doctor.buttons()).to_have_text(["延长有效期", "撤销"])  # the review is not the doctor's
    for desk in (first, second):
        desk.open(rx)
        expect(desk.buttons()).to_have_text(["审核通过", "驳回"])
    expect(first.page.locator("#rx-reject-rx_chk_opnn")).to_have_attribute("placeholder", "审核意见")

    first.step("reject", "REJECTED", **REFUSAL)
    expect(first.page.locator("#rx-state")).to_have_text("审核不通过")
    expect(first.transitions().last).to_contain_text("驳回")
    no_actions(first)  # a rejected prescription goes back to its doctor: nothing for pharmacists
    # the second pharmacist's page still shows it awaiting review: the contract refuses a second review
    expect(second.page.locator("#rx-state")).to_have_attribute("data-state", "SIGNED")
    second.refused("approve", "Rx: not awaiting review", **REVIEW)
    second.open(rx)
    expect(second.page.locator("#rx-state")).to_have_attribute("data-state", "REJECTED")
    no_actions(second)

    doctor.open(rx)
    expect(doctor.buttons()).to_have_text(["重新签发", "延长有效期", "撤销"])
    assert timeline(doctor) == [("issue", "SIGNED"), ("reject", "REJECTED")]
    shot(doctor.page, "prescription-rejected")

    # the doctor re-issues a revised prescription (same hosp_rxno, one box instead of two): version 2, SIGNED again
    revised = {**document, "drugs": [{**document["drugs"][0], "drug_cnt": "1"}]}
    doctor.step("reissue", "SIGNED", prescription=json.dumps(revised, ensure_ascii=False))
    expect(doctor.page.locator("#rx-last-step .salt")).to_have_text(re.compile(r"^0x[0-9a-f]{64}$"))
    terms = doctor.page.locator("#rx-timeline li[data-kind=terms]")
    expect(terms).to_have_count(2)
    expect(terms.last).to_contain_text("第 2 版")
    expect(doctor.buttons()).to_have_text(["延长有效期", "撤销"])

    second.open(rx)
    expect(second.buttons()).to_have_text(["审核通过", "驳回"])
    second.step("approve", "APPROVED", **REVIEW)
    expected = [("issue", "SIGNED"), ("reject", "REJECTED"), ("reissue", "SIGNED"), ("approve", "APPROVED")]
    assert timeline(second) == expected
    assert "⟦" not in second.page.content()
    shot(second.page, "prescription-reissued-approved")
    api = served(hospital, rx)
    assert api["version"] == 2 and api["state"] == "APPROVED"
    assert [(t["transition"], t["to_state"]) for t in api["timeline"] if t["kind"] == "transition"] == expected
    for desk in (doctor, first, second):
        desk.guard.assert_clean()


# -- revoke (after a release and a second claim) ------------------------------------------------------------------

def test_the_prescribing_doctor_revokes_a_claimed_prescription_and_no_other_doctor_may(hospital, pharmacy, urls,
                                                                                         launch):
    hospital_url, pharmacy_url = url_of(urls, "hospital", hospital), url_of(urls, "pharmacy", pharmacy)
    doctor = Desk(launch, hospital_url, hospital, "dr-wang", "doctor")
    colleague = Desk(launch, hospital_url, hospital, "dr-zhou", "doctor")
    reviewer = Desk(launch, hospital_url, hospital, "ph-rev-hu", "pharmacist")
    pharmacist = Desk(launch, pharmacy_url, pharmacy, "ph-rev-ma", "pharmacist")
    dispenser = Desk(launch, pharmacy_url, pharmacy, "dp-rev-lu", "dispenser")
    rx, _ = issue(doctor)
    reviewer.open(rx)
    reviewer.step("approve", "APPROVED", **REVIEW)
    expect(reviewer.buttons()).to_have_text(["流转"])
    doctor.open(rx)
    expect(doctor.buttons()).to_have_text(["流转", "延长有效期", "撤销"])
    doctor.step("circulate", "CIRCULATED")
    code = pickup_code(doctor)  # the hospital gives it to the patient, who shows it at the pharmacy they chose
    expect(doctor.buttons()).to_have_text(["收回换码", "延长有效期", "撤销"])

    pharmacist.open(rx)
    expect(pharmacist.buttons()).to_have_text(["认领"])
    pharmacist.step("claim", "CLAIMED", pickup_code=code)
    expect(pharmacist.page.locator("#rx-pharmacy")).to_contain_text("pharmacy")
    expect(pharmacist.buttons()).to_have_text(["开始调配", "释放"])
    # the pharmacy gives it back to circulation, then claims it again
    pharmacist.step("release", "CIRCULATED")
    expect(pharmacist.page.locator("#rx-pharmacy")).to_have_text("无")
    expect(pharmacist.buttons()).to_have_text(["认领"])
    pharmacist.step("claim", "CLAIMED", pickup_code=code)
    dispenser.open(rx)
    expect(dispenser.buttons()).to_have_text(["开始调配"])  # releasing is the pharmacist's

    # another doctor of the same hospital is offered revoke (by role) but the contract refuses them
    colleague.open(rx)
    expect(colleague.buttons()).to_have_text(["收回换码", "延长有效期", "撤销"])
    colleague.refused("revoke", "Rx: only the prescribing doctor")
    doctor.open(rx)
    doctor.step("revoke", "REVOKED")
    expect(doctor.page.locator("#rx-state")).to_have_text("已撤销")
    no_actions(doctor)
    # the dispenser's page still shows it claimed: the contract refuses to start a fill of a revoked prescription
    dispenser.refused("dispense", "Rx: not claimed")
    dispenser.open(rx)
    expect(dispenser.page.locator("#rx-state")).to_have_attribute("data-state", "REVOKED")
    no_actions(dispenser)

    expected = [("issue", "SIGNED"), ("approve", "APPROVED"), ("circulate", "CIRCULATED"), ("claim", "CLAIMED"),
                ("release", "CIRCULATED"), ("claim", "CLAIMED"), ("revoke", "REVOKED")]
    for desk, name in ((dispenser, "prescription-revoked-pharmacy"), (doctor, "prescription-revoked")):
        desk.open(rx)
        assert timeline(desk) == expected
        expect(desk.transitions().last).to_contain_text("撤销")
        assert "⟦" not in desk.page.content()
        shot(desk.page, name)
    assert [(t["transition"], t["to_state"]) for t in served(hospital, rx)["timeline"]
            if t["kind"] == "transition"] == expected
    for desk in (doctor, colleague, reviewer, pharmacist, dispenser):
        desk.guard.assert_clean()


# -- extend validity ----------------------------------------------------------------------------------------------

def test_the_prescribing_doctor_extends_validity_and_the_timeline_shows_it(hospital, urls, launch):
    url = url_of(urls, "hospital", hospital)
    doctor = Desk(launch, url, hospital, "dr-sun", "doctor")
    colleague = Desk(launch, url, hospital, "dr-he", "doctor")
    reviewer = Desk(launch, url, hospital, "ph-ext-xu", "pharmacist")
    rx, _ = issue(doctor)  # valid on its day of issue only (valid_days 1)
    issued = served(hospital, rx)
    expect(doctor.buttons()).to_have_text(["延长有效期", "撤销"])
    expect(doctor.page.locator("#rx-extend-valid_days")).to_have_attribute("placeholder", "有效天数（2 或 3）")
    reviewer.open(rx)
    expect(reviewer.buttons()).to_have_text(["审核通过", "驳回"])  # extending is the doctor's

    colleague.open(rx)
    colleague.refused("extend", "Rx: only the prescribing doctor", valid_days="2")
    assert served(hospital, rx)["valid_end"] == issued["valid_end"]

    valid_end = doctor.page.locator("#rx-detail dl.summary dd").nth(2)
    shown_before = valid_end.inner_text()
    doctor.step("extend", "SIGNED", valid_days="2")
    expect(valid_end).not_to_have_text(shown_before)
    extended = doctor.page.locator("#rx-timeline li[data-kind=extended]")
    expect(extended).to_have_count(1)
    expect(extended).to_contain_text("有效期延长至 2 天")
    expect(doctor.transitions().last).to_contain_text("延长有效期")
    assert served(hospital, rx)["valid_end"] == issued["valid_end"] + DAY

    # once approved it may be extended again, to 3 days; the state stays APPROVED
    reviewer.open(rx)
    reviewer.step("approve", "APPROVED", **REVIEW)
    doctor.open(rx)
    expect(doctor.buttons()).to_have_text(["流转", "延长有效期", "撤销"])
    doctor.step("extend", "APPROVED", valid_days="3")
    expect(extended).to_have_count(2)
    expect(extended.last).to_contain_text("有效期延长至 3 天")
    expected = [("issue", "SIGNED"), ("extend", "SIGNED"), ("approve", "APPROVED"), ("extend", "APPROVED")]
    assert timeline(doctor) == expected
    assert "⟦" not in doctor.page.content()
    shot(doctor.page, "prescription-extended")
    api = served(hospital, rx)
    assert api["valid_end"] == issued["valid_end"] + 2 * DAY and api["state"] == "APPROVED"
    assert [(t["transition"], t["to_state"]) for t in api["timeline"] if t["kind"] == "transition"] == expected
    assert [t["valid_days"] for t in api["timeline"] if t["kind"] == "extended"] == [2, 3]
    for desk in (doctor, colleague, reviewer):
        desk.guard.assert_clean()


# -- delivery: consign, pick up, deliver --------------------------------------------------------------------------

def test_a_checked_prescription_is_consigned_and_delivered_by_the_logistics_courier(hospital, pharmacy, logistics,
                                                                                     urls, launch):
    hospital_url, pharmacy_url = url_of(urls, "hospital", hospital), url_of(urls, "pharmacy", pharmacy)
    logistics_url = url_of(urls, "logistics", logistics)
    doctor = Desk(launch, hospital_url, hospital, "dr-guo", "doctor")
    reviewer = Desk(launch, hospital_url, hospital, "ph-dlv-lin", "pharmacist")
    pharmacist = Desk(launch, pharmacy_url, pharmacy, "ph-dlv-tang", "pharmacist")
    dispenser = Desk(launch, pharmacy_url, pharmacy, "dp-dlv-yu", "dispenser")
    courier = Desk(launch, logistics_url, logistics, "cr-liu", "courier")
    rx, _ = issue(doctor)
    reviewer.open(rx)
    reviewer.step("approve", "APPROVED", **REVIEW)
    doctor.open(rx)
    doctor.step("circulate", "CIRCULATED")
    code = pickup_code(doctor)  # the hospital gives it to the patient, who shows it at the pharmacy they chose
    pharmacist.open(rx)
    pharmacist.step("claim", "CLAIMED", pickup_code=code)
    dispenser.open(rx)
    dispenser.step("dispense", "DISPENSING")
    pharmacist.open(rx)
    pharmacist.step("check", "CHECKED")
    expect(pharmacist.buttons()).to_have_text(["发药交付", "委托配送"])
    dispenser.open(rx)
    expect(dispenser.buttons()).to_have_text(["发药交付", "委托配送"])

    # not consigned yet: the logistics organisation does not see it
    courier.guard.allowed_statuses.add(404)
    courier.page.goto(f"{logistics_url}/ui/prescriptions?rx={rx}")
    expect(courier.page.locator("#rx-detail .error")).to_contain_text("no prescription")
    expect(courier.page.locator("#rx-actions")).to_have_count(0)

    # the hospital is no logistics organisation: the contract refuses to consign to it
    pharmacist.refused("consign", "Rx: not an active logistics org", logistics_org=str(hospital.services.org_id))
    pharmacist.step("consign", "CHECKED", logistics_org=str(logistics.services.org_id))
    expect(pharmacist.buttons()).to_have_text(["发药交付", "委托配送"])  # it may still hand over, or name another

    courier.open(rx)
    expect(courier.page.locator("#rx-state")).to_have_attribute("data-state", "CHECKED")
    expect(courier.buttons()).to_have_text(["取件配送"])
    courier.step("pick_up", "DELIVERING")
    expect(courier.page.locator("#rx-state")).to_have_text("配送中")
    expect(courier.buttons()).to_have_text(["确认送达"])
    pharmacist.open(rx)
    expect(pharmacist.page.locator("#rx-state")).to_have_attribute("data-state", "DELIVERING")
    no_actions(pharmacist)  # out of the pharmacy's hands
    courier.step("deliver", "DELIVERED")
    expect(courier.page.locator("#rx-state")).to_have_text("已送达")
    no_actions(courier)

    expected = [("issue", "SIGNED"), ("approve", "APPROVED"), ("circulate", "CIRCULATED"), ("claim", "CLAIMED"),
                ("dispense", "DISPENSING"), ("check", "CHECKED"), ("consign", "CHECKED"), ("pick_up", "DELIVERING"),
                ("deliver", "DELIVERED")]
    assert timeline(courier) == expected
    last = courier.transitions()
    for i in (7, 8):  # picked up and delivered by the logistics organisation itself, each by the courier's key
        expect(last.nth(i).locator(".meta")).to_contain_text(f"logistics (#{logistics.services.org_id})")
    expect(last.nth(6)).to_contain_text("委托配送")
    assert "⟦" not in courier.page.content()
    shot(courier.page, "prescription-delivered")
    for desk in (pharmacist, doctor):
        desk.open(rx)
        assert timeline(desk) == expected
        no_actions(desk)
    shot(pharmacist.page, "prescription-delivered-pharmacy")
    api = served(hospital, rx)
    assert api["state"] == "DELIVERED" and api["delivery_org"] == logistics.services.org_id
    assert [(t["transition"], t["to_state"]) for t in api["timeline"] if t["kind"] == "transition"] == expected
    for desk in (doctor, reviewer, pharmacist, dispenser, courier):
        desk.guard.assert_clean()


# -- a repeat prescription: two fills, then nothing -----------------------------------------------------------------

def fills_shown(desk: Desk, used: int, allowed: int, text: str) -> None:
    shown = desk.page.locator("#rx-fills")
    expect(shown).to_have_text(text)
    expect(shown).to_have_attribute("data-used", str(used))
    expect(shown).to_have_attribute("data-allowed", str(allowed))


def fill_once(dispenser: Desk, pharmacist: Desk, rx: str, fill: int, from_state: str) -> None:
    """The dispenser starts fill ``fill`` of 2 (from ``from_state``); the pharmacist checks it and hands it over."""
    dispenser.open(rx)
    expect(dispenser.page.locator("#rx-state")).to_have_attribute("data-state", from_state)
    dispenser.step("dispense", "DISPENSING")
    fills_shown(dispenser, fill, 2, f"第 {fill}/2 次")  # a fill counts from its start
    pharmacist.open(rx)
    pharmacist.step("check", "CHECKED")
    pharmacist.step("hand_over", "DISPENSED")
    fills_shown(pharmacist, fill, 2, f"第 {fill}/2 次")


def test_a_repeat_prescription_is_dispensed_twice_and_then_offers_nothing(hospital, pharmacy, urls, launch):
    hospital_url, pharmacy_url = url_of(urls, "hospital", hospital), url_of(urls, "pharmacy", pharmacy)
    doctor = Desk(launch, hospital_url, hospital, "dr-rep-fang", "doctor")
    reviewer = Desk(launch, hospital_url, hospital, "ph-rep-mo", "pharmacist")
    pharmacist = Desk(launch, pharmacy_url, pharmacy, "ph-rep-jia", "pharmacist")
    dispenser = Desk(launch, pharmacy_url, pharmacy, "dp-rep-ren", "dispenser")
    late = Desk(launch, pharmacy_url, pharmacy, "dp-rep-cai", "dispenser")  # keeps a page open between the fills
    rx, _ = issue(doctor, **REPEAT)
    fills_shown(doctor, 0, 2, "尚未调配（共 2 次）")
    expect(doctor.page.locator("#rx-next-fill")).to_have_count(0)
    reviewer.open(rx)
    reviewer.step("approve", "APPROVED", **REVIEW)
    doctor.open(rx)
    doctor.step("circulate", "CIRCULATED")
    code = pickup_code(doctor)  # the hospital gives it to the patient, who shows it at the pharmacy they chose
    pharmacist.open(rx)
    pharmacist.step("claim", "CLAIMED", pickup_code=code)
    fill_once(dispenser, pharmacist, rx, 1, "CLAIMED")

    # between the fills (DISPENSED, one fill left): the pharmacy may start the next fill or release it, the doctor
    # may extend validity (no revoke after a fill): exactly the gateway's roles of each
    expect(pharmacist.buttons()).to_have_text(["开始调配", "释放"])
    expect(pharmacist.page.locator("#rx-next-fill")).to_be_visible()
    late.open(rx)
    expect(late.buttons()).to_have_text(["开始调配"])
    doctor.open(rx)
    expect(doctor.buttons()).to_have_text(["收回换码", "延长有效期"])
    fills_shown(doctor, 1, 2, "第 1/2 次")
    shot(pharmacist.page, "prescription-repeat-between-fills")

    fill_once(dispenser, pharmacist, rx, 2, "DISPENSED")
    expect(pharmacist.page.locator("#rx-next-fill")).to_have_count(0)  # no fill left
    no_actions(pharmacist)
    # the other dispenser's page still shows one fill left: the contract refuses a third fill
    late.refused("dispense", "Rx: already dispensed")
    fills_shown(late, 1, 2, "第 1/2 次")  # the stale page is left as it was
    for desk in (late, dispenser, doctor):
        desk.open(rx)
        expect(desk.page.locator("#rx-state")).to_have_attribute("data-state", "DISPENSED")
        fills_shown(desk, 2, 2, "第 2/2 次")
        no_actions(desk)

    cycle = [("dispense", "DISPENSING"), ("check", "CHECKED"), ("hand_over", "DISPENSED")]
    expected = [("issue", "SIGNED"), ("approve", "APPROVED"), ("circulate", "CIRCULATED"), ("claim", "CLAIMED"),
                *cycle, *cycle]
    assert timeline(doctor) == expected
    assert "⟦" not in doctor.page.content()
    shot(doctor.page, "prescription-repeat-filled")
    doctor.page.select_option("#lang", "en")
    expect(doctor.page.locator("#rx-fills")).to_have_text("fill 2 of 2")
    api = served(hospital, rx)
    assert (api["state"], api["fills_used"], api["fills_allowed"], api["next_fill_at"]) == ("DISPENSED", 2, 2, None)
    assert [(t["transition"], t["to_state"]) for t in api["timeline"] if t["kind"] == "transition"] == expected
    for desk in (doctor, reviewer, pharmacist, dispenser, late):
        desk.guard.assert_clean()


def test_a_repeat_prescription_with_a_fill_left_is_released_recalled_and_claimed_with_the_new_code(
        hospital, pharmacy, urls, launch):
    hospital_url, pharmacy_url = url_of(urls, "hospital", hospital), url_of(urls, "pharmacy", pharmacy)
    doctor = Desk(launch, hospital_url, hospital, "dr-rel-du", "doctor")
    reviewer = Desk(launch, hospital_url, hospital, "ph-rel-kong", "pharmacist")
    pharmacist = Desk(launch, pharmacy_url, pharmacy, "ph-rel-shi", "pharmacist")
    dispenser = Desk(launch, pharmacy_url, pharmacy, "dp-rel-pan", "dispenser")
    rx, _ = issue(doctor, **REPEAT)
    reviewer.open(rx)
    reviewer.step("approve", "APPROVED", **REVIEW)
    doctor.open(rx)
    doctor.step("circulate", "CIRCULATED")
    code = pickup_code(doctor)  # the hospital gives it to the patient, who shows it at the pharmacy they chose
    expect(doctor.buttons()).to_have_text(["收回换码", "延长有效期", "撤销"])  # before any fill the doctor may revoke
    pharmacist.open(rx)
    pharmacist.step("claim", "CLAIMED", pickup_code=code)
    fill_once(dispenser, pharmacist, rx, 1, "CLAIMED")

    # the patient takes the second fill elsewhere: the pharmacy releases it from DISPENSED
    pharmacist.step("release", "CIRCULATED")
    expect(pharmacist.page.locator("#rx-pharmacy")).to_have_text("无")
    fills_shown(pharmacist, 1, 2, "第 1/2 次")
    expect(pharmacist.buttons()).to_have_text(["认领"])
    # circulating again after a fill: the doctor may extend it but not revoke it (the contract refuses that)
    doctor.open(rx)
    expect(doctor.buttons()).to_have_text(["收回换码", "延长有效期"])
    doctor.step("extend", "CIRCULATED", valid_days="2")
    # the patient lost the slip: the hospital recalls it with a new code, and the old one stops working
    doctor.step("recall", "CIRCULATED")
    new_code = pickup_code(doctor)
    assert new_code != code

    pharmacist.open(rx)
    pharmacist.refused("claim", "Rx: wrong pickup code", pickup_code=code)
    pharmacist.step("claim", "CLAIMED", pickup_code=new_code.lower())
    expect(pharmacist.buttons()).to_have_text(["开始调配", "释放"])
    fill_once(dispenser, pharmacist, rx, 2, "CLAIMED")
    no_actions(pharmacist)
    cycle = [("dispense", "DISPENSING"), ("check", "CHECKED"), ("hand_over", "DISPENSED")]
    expected = [("issue", "SIGNED"), ("approve", "APPROVED"), ("circulate", "CIRCULATED"), ("claim", "CLAIMED"),
                *cycle, ("release", "CIRCULATED"), ("extend", "CIRCULATED"), ("recall", "CIRCULATED"), ("claim", "CLAIMED"),
                *cycle]
    assert timeline(pharmacist) == expected
    assert "⟦" not in pharmacist.page.content()
    shot(pharmacist.page, "prescription-repeat-released-refilled")
    for desk in (doctor, reviewer, pharmacist, dispenser):
        desk.guard.assert_clean()


def test_the_page_offers_no_transition_to_an_auditor(hospital, urls, launch):
    """Read-all roles see every prescription but act on none (the buttons follow the gateway's roles)."""
    url = url_of(urls, "hospital", hospital)
    doctor = Desk(launch, url, hospital, "dr-ye", "doctor")
    rx, _ = issue(doctor)
    page, guard = signed_in(launch, url, hospital.token("auditor", subject="auditor.qin"), f"/ui/prescriptions?rx={rx}")
    expect(page.locator("#rx-state")).to_have_attribute("data-state", "SIGNED")
    expect(page.locator("#rx-actions")).to_have_count(0)
    expect(page.locator("#rx-new")).to_have_count(0)  # nor the doctor's issue form
    guard.assert_clean()
    doctor.guard.assert_clean()
