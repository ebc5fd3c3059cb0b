"""A prescription through its lifecycle over HTTP, across the hospital's and the pharmacy's gateways on one real
solo node, each step signed with the acting staff member's enrolled key; refusals (role, organisation, the
contract's own rules) come back as problems; the timeline served from the indexer equals the on-chain history.
A repeat prescription is filled twice (the second fill from DISPENSED), says its fills used and allowed and when the
next may start, and refuses a third fill; one with a fill left is released to circulation from DISPENSED."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shancheng.sdk.domain.prescriptions import Prescriptions
from shancheng.testing.gateway import GatewayWorld
from shancheng.testing.lying_proxy import FORWARD, Forward, LyingProxy

_counter = itertools.count(1)
REVIEW = {"phar_prac_cert_no": "PHA2024001", "rx_chk_stas_codg": "1", "rx_chk_opnn": "合理"}


def document(**changes: Any) -> dict[str, Any]:
    return {
        "hosp_rxno": f"GW{time.time_ns() % 10**9}{next(_counter):04d}", "rx_type_code": "1",
        "prsc_time": "2024-06-15T09:00:00+08:00", "valid_days": 1,
        "drugs": [{"med_list_codg": "XJ01CAA040A001010100028", "drug_genname": "阿莫西林胶囊", "drug_dosform": "胶囊剂",
                   "drug_spec": "0.25g*24粒", "drug_cnt": "2", "drug_cnt_unit": "盒", "medc_days": 5}],
        **changes,
    }


#: a repeat prescription of two fills with no minimum interval (min_inrv_days may be 0: the document rules and the
#: contract only ask a repeat prescription for at least 2 fills)
REPEAT = {"rept_flag": True, "max_rept_cnt": 2, "min_inrv_days": 0}
#: rx id -> the pickup code the hospital gave the patient (the patient keeps it across fills)
CODES: dict[str, str] = {}


class Staff:
    """The staff of the two gateways, each with an API token and an enrolled, Governance-registered key."""

    def __init__(self, hospital: GatewayWorld, pharmacy: GatewayWorld) -> None:
        self.hospital, self.pharmacy = hospital, pharmacy
        self.tokens: dict[str, str] = {}
        for world, subject, role in ((hospital, "dr-li", "doctor"), (hospital, "ph-zhao", "pharmacist"),
                                     (pharmacy, "ph-sun", "pharmacist"), (pharmacy, "dp-qian", "dispenser")):
            world.staff(subject, role)
            self.tokens[subject] = world.token(role, subject=subject)

    def post(self, world: GatewayWorld, subject: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return world.client(token=self.tokens[subject]).post(path, json=body or {})


@pytest.fixture(scope="module")
def pharmacy(world: GatewayWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayWorld]:
    with GatewayWorld.start(tmp_path_factory.mktemp("gw-pharmacy"), org="pharmacy", node=world.node) as w:
        yield w


@pytest.fixture(scope="module")
def staff(world: GatewayWorld, pharmacy: GatewayWorld) -> Staff:
    return Staff(world, pharmacy)


def step(staff: Staff, world: GatewayWorld, subject: str, rx_id: str, transition: str,
         body: dict[str, Any] | None = None, status: int = 200) -> dict[str, Any]:
    reply = staff.post(world, subject, f"/api/v1/prescriptions/{rx_id}/{transition}", body)
    assert reply.status_code == status, reply.text
    result: dict[str, Any] = reply.json()
    return result


def test_a_prescription_walks_its_lifecycle_through_two_gateways(world: GatewayWorld, pharmacy: GatewayWorld,
                                                                  staff: Staff) -> None:
    reply = staff.post(world, "dr-li", "/api/v1/prescriptions", {"prescription": document()})
    assert reply.status_code == 201, reply.text
    issued = reply.json()
    rx = issued["rx_id"]
    assert issued["state"] == "SIGNED" and issued["transition"] == "issue" and len(issued["salt"]) == 66
    assert rx[2:18] == f"{world.services.org_id:016x}"  # in the hospital's namespace

    assert step(staff, world, "ph-zhao", rx, "approve", {"review": REVIEW})["state"] == "APPROVED"
    circulated = step(staff, world, "dr-li", rx, "circulate")
    assert circulated["state"] == "CIRCULATED" and len(circulated["pickup_code"]) == 19
    # the patient shows the code at the pharmacy they chose; without it the pharmacy cannot claim
    missing = step(staff, pharmacy, "ph-sun", rx, "claim", status=422)
    assert missing["type"].endswith("/missing-pickup-code"), missing
    assert step(staff, pharmacy, "ph-sun", rx, "claim", {"pickup_code": "12345"}, status=422)["type"].endswith(
        "/bad-pickup-code")
    assert step(staff, pharmacy, "ph-sun", rx, "claim",
                {"pickup_code": circulated["pickup_code"]})["state"] == "CLAIMED"
    assert step(staff, pharmacy, "dp-qian", rx, "dispense")["state"] == "DISPENSING"

    same = step(staff, pharmacy, "dp-qian", rx, "check", status=422)  # 四查十对: not by the dispenser
    assert same["type"].endswith("/domain-error") and "Rx:" in same["detail"]
    assert step(staff, pharmacy, "ph-sun", rx, "check")["state"] == "CHECKED"
    done = step(staff, pharmacy, "ph-sun", rx, "hand_over")
    assert done["state"] == "DISPENSED"

    reader = world.client(token=staff.tokens["dr-li"])
    deadline = time.monotonic() + 60
    while True:  # the indexer follows final blocks: poll until it holds the last step
        got = reader.get(f"/api/v1/prescriptions/{rx}")
        assert got.status_code == 200, got.text
        body = got.json()
        if body["source"] == "index":
            break
        assert body["source"] == "chain" and body["state"] == "DISPENSED"
        assert all(t["block_time"] for t in body["timeline"])  # read from the chain, with the blocks' times
        assert time.monotonic() < deadline, "the indexer did not catch up within 60 s"
        time.sleep(0.2)
    assert body["state"] == "DISPENSED" and body["hospital_org"] == world.services.org_id
    assert body["pharmacy_org"] == pharmacy.services.org_id
    # not a repeat prescription: its one fill is used, no other may start
    assert (body["fills_used"], body["fills_allowed"], body["next_fill_at"]) == (1, 1, None)

    history = Prescriptions(world.services.client).history(bytes.fromhex(rx[2:]))
    chain = [(e.kind, e.block_number, e.log_index, None if e.transition is None else e.transition.name.lower(),
              None if e.to_state is None else e.to_state.name, e.staff) for e in history]
    served = [(t["kind"], t["block_number"], t["log_index"], t["transition"], t["to_state"], t["staff"])
              for t in body["timeline"]]
    assert served == chain
    assert [t["transition"] for t in body["timeline"] if t["kind"] == "transition"] == [
        "issue", "approve", "circulate", "claim", "dispense", "check", "hand_over"]
    assert all(t["block_time"] for t in body["timeline"])

    # the pharmacy's gateway runs its own indexer: its list says how far it has indexed; once past the last
    # step's block the prescription must be listed
    lister = pharmacy.client(token=staff.tokens["ph-sun"])
    deadline = time.monotonic() + 60
    while True:
        listed = lister.get("/api/v1/prescriptions", params={"state": "DISPENSED"})
        assert listed.status_code == 200, listed.text
        page = listed.json()
        if page["indexed_block"] >= done["block_number"]:
            break
        assert time.monotonic() < deadline, "the pharmacy's indexer did not catch up within 60 s"
        time.sleep(0.2)
    assert rx in [i["rx_id"] for i in page["items"]]


def test_roles_and_organisations_are_refused(world: GatewayWorld, pharmacy: GatewayWorld, staff: Staff) -> None:
    issued = staff.post(world, "dr-li", "/api/v1/prescriptions", {"prescription": document()}).json()
    rx = issued["rx_id"]
    wrong_role = staff.post(world, "ph-zhao", "/api/v1/prescriptions", {"prescription": document()})
    assert wrong_role.status_code == 403 and wrong_role.json()["type"].endswith("/forbidden-role")
    assert step(staff, world, "dr-li", rx, "approve", {"review": REVIEW}, status=403)["status"] == 403
    other_org = world.token("doctor", subject="dr-li", org="pharmacy")
    assert world.client(token=other_org).post("/api/v1/prescriptions",
                                              json={"prescription": document()}).status_code in (401, 403)
    assert world.client().get(f"/api/v1/prescriptions/{rx}").status_code == 401
    # the pharmacy's gateway may not read a prescription that is neither circulating nor its own
    hidden = pharmacy.client(token=staff.tokens["ph-sun"]).get(f"/api/v1/prescriptions/{rx}")
    assert hidden.status_code == 404
    # the pharmacy's pharmacist may not approve at the pharmacy what it cannot claim yet: the contract says why
    early = step(staff, pharmacy, "ph-sun", rx, "claim", {"pickup_code": "0000-0000-0000-0000"}, status=422)
    assert "Rx:" in early["detail"]
    bad = staff.post(world, "ph-zhao", f"/api/v1/prescriptions/{rx}/approve", {"review": {"rx_chk_stas_codg": 1}})
    assert bad.status_code == 422 and bad.json()["type"].endswith("/validation")
    invalid = staff.post(world, "dr-li", "/api/v1/prescriptions", {"prescription": {**document(), "valid_days": 5}})
    assert invalid.status_code == 422
    unknown = world.client(token=staff.tokens["dr-li"]).get("/api/v1/prescriptions/0x" + "ab" * 32)
    assert unknown.status_code == 404
    assert world.client(token=staff.tokens["dr-li"]).get("/api/v1/prescriptions/0x12").status_code == 422


def test_an_idempotency_key_replays_the_step(world: GatewayWorld, staff: Staff) -> None:
    http = world.client(token=staff.tokens["dr-li"])
    body = {"prescription": document()}
    first = http.post("/api/v1/prescriptions", json=body, headers={"Idempotency-Key": "rx-issue-1"})
    again = http.post("/api/v1/prescriptions", json=body, headers={"Idempotency-Key": "rx-issue-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers.get("idempotent-replayed") == "true"


def test_a_write_whose_node_is_lost_after_the_send_is_not_sent_again_under_its_key(
        world: GatewayWorld, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The node takes the transaction, then the gateway loses it (503): a retry with the same Idempotency-Key gets
    that answer again and does not send a second transaction; the client checks the prescription instead."""
    sends: list[object] = []

    def lost_after_the_send(method: str, params: list[Any], forward: Forward) -> object:
        if sends:
            raise ConnectionAbortedError("the node is gone")  # the proxy drops the connection: no answer at all
        if method == "eth_sendRawTransaction":
            sends.append(params)
        return FORWARD

    with LyingProxy(world.node.url) as proxy, GatewayWorld.start(
            tmp_path_factory.mktemp("gw-lost"), node=world.node, node_urls=[proxy.url]) as lossy:
        lossy.staff("dr-lost", "doctor")
        http = lossy.client(token=lossy.token("doctor", subject="dr-lost"))
        body = {"prescription": document()}
        proxy.lie = lost_after_the_send
        first = http.post("/api/v1/prescriptions", json=body, headers={"Idempotency-Key": "rx-lost-1"})
        assert first.status_code == 503 and len(sends) == 1, first.text
        later: list[object] = []
        proxy.lie = lambda method, params, forward: (later.append(params) if method == "eth_sendRawTransaction"
                                                     else None) or FORWARD  # the node is back: every call reaches it
        again = http.post("/api/v1/prescriptions", json=body, headers={"Idempotency-Key": "rx-lost-1"})
        assert again.status_code == 503 and again.headers.get("idempotent-replayed") == "true", again.text
        assert again.content == first.content
        assert later == [] and len(sends) == 1, "the retry sent the prescription again"


def read(world: GatewayWorld, staff: Staff, subject: str, rx_id: str) -> dict[str, Any]:
    reply = world.client(token=staff.tokens[subject]).get(f"/api/v1/prescriptions/{rx_id}")
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


def fills(body: dict[str, Any]) -> tuple[str, int, int, int | None]:
    return body["state"], body["fills_used"], body["fills_allowed"], body["next_fill_at"]


def block_time(world: GatewayWorld, number: int) -> int:
    block = world.services.client.rpc.call("eth_getBlockByNumber", [hex(number), False])
    return int(block["timestamp"], 16)


def claimed_repeat(world: GatewayWorld, pharmacy: GatewayWorld, staff: Staff) -> str:
    """A new repeat prescription of two fills, approved, circulated and claimed by the pharmacy."""
    reply = staff.post(world, "dr-li", "/api/v1/prescriptions", {"prescription": document(**REPEAT)})
    assert reply.status_code == 201, reply.text
    rx: str = reply.json()["rx_id"]
    assert fills(read(world, staff, "dr-li", rx)) == ("SIGNED", 0, 2, 0)  # nothing holds the first fill back
    assert step(staff, world, "ph-zhao", rx, "approve", {"review": REVIEW})["state"] == "APPROVED"
    code = step(staff, world, "dr-li", rx, "circulate")["pickup_code"]
    assert step(staff, pharmacy, "ph-sun", rx, "claim", {"pickup_code": code})["state"] == "CLAIMED"
    CODES[rx] = code
    return rx


def fill(staff: Staff, pharmacy: GatewayWorld, rx: str) -> int:
    """One fill at the pharmacy (dispense, check by another, hand over): the block of its dispense."""
    started = step(staff, pharmacy, "dp-qian", rx, "dispense")
    assert started["state"] == "DISPENSING"
    assert step(staff, pharmacy, "ph-sun", rx, "check")["state"] == "CHECKED"
    assert step(staff, pharmacy, "ph-sun", rx, "hand_over")["state"] == "DISPENSED"
    return int(started["block_number"])


def test_a_repeat_prescription_is_filled_twice_and_refuses_a_third_fill(world: GatewayWorld, pharmacy: GatewayWorld,
                                                                        staff: Staff) -> None:
    rx = claimed_repeat(world, pharmacy, staff)
    assert fills(read(world, staff, "dr-li", rx)) == ("CLAIMED", 0, 2, 0)

    first = fill(staff, pharmacy, rx)
    # one fill used, one left: the next may start once the minimum interval (0) from the first's start has passed
    after_one = read(pharmacy, staff, "ph-sun", rx)
    assert fills(after_one) == ("DISPENSED", 1, 2, block_time(world, first))
    assert fills(read(world, staff, "dr-li", rx)) == fills(after_one)  # the hospital's gateway says the same

    # the second fill starts from DISPENSED (no new claim): a new dispensing cycle at the same pharmacy
    second = fill(staff, pharmacy, rx)
    assert second > first
    done = read(pharmacy, staff, "ph-sun", rx)
    assert fills(done) == ("DISPENSED", 2, 2, None)
    assert done["pharmacy_org"] == pharmacy.services.org_id

    third = step(staff, pharmacy, "dp-qian", rx, "dispense", status=422)
    assert third["type"].endswith("/domain-error") and "Rx: already dispensed" in third["detail"], third
    gone = step(staff, pharmacy, "ph-sun", rx, "release", status=422)  # no fill left: nothing to release for
    assert "Rx: not claimed" in gone["detail"], gone
    assert fills(read(pharmacy, staff, "ph-sun", rx)) == ("DISPENSED", 2, 2, None)
    history = Prescriptions(world.services.client).history(bytes.fromhex(rx[2:]))
    assert [(e.transition.name.lower(), e.from_state.name, e.to_state.name) for e in history  # type: ignore[union-attr]
            if e.kind == "transition"][4:] == [
        ("dispense", "CLAIMED", "DISPENSING"), ("check", "DISPENSING", "CHECKED"), ("hand_over", "CHECKED", "DISPENSED"),
        ("dispense", "DISPENSED", "DISPENSING"), ("check", "DISPENSING", "CHECKED"),
        ("hand_over", "CHECKED", "DISPENSED")]


def test_a_repeat_prescription_with_a_fill_left_is_released_to_circulation(world: GatewayWorld,
                                                                           pharmacy: GatewayWorld,
                                                                           staff: Staff) -> None:
    rx = claimed_repeat(world, pharmacy, staff)
    first = fill(staff, pharmacy, rx)
    # the doctor extends validity while it waits for its second fill; the state stays DISPENSED
    extended = step(staff, world, "dr-li", rx, "extend", {"valid_days": 2})
    assert extended["state"] == "DISPENSED"

    released = step(staff, pharmacy, "ph-sun", rx, "release")
    assert released["state"] == "CIRCULATED"
    body = read(world, staff, "dr-li", rx)
    assert fills(body) == ("CIRCULATED", 1, 2, block_time(world, first))
    assert body["pharmacy_org"] == 0  # any pharmacy may claim the second fill
    # a fill was dispensed: the doctor can no longer revoke it, though it circulates again
    late = step(staff, world, "dr-li", rx, "revoke", status=422)
    assert "Rx: cannot revoke after dispensing" in late["detail"], late

    assert step(staff, pharmacy, "ph-sun", rx, "claim", {"pickup_code": CODES[rx]})["state"] == "CLAIMED"
    fill(staff, pharmacy, rx)
    assert fills(read(world, staff, "dr-li", rx)) == ("DISPENSED", 2, 2, None)


def test_the_hospital_recalls_a_claim_and_only_the_new_code_claims(world: GatewayWorld, pharmacy: GatewayWorld,
                                                                     staff: Staff) -> None:
    rx = claimed_repeat(world, pharmacy, staff)
    old = CODES[rx]
    refused = step(staff, pharmacy, "ph-sun", rx, "recall", status=422)  # only the issuing hospital recalls
    assert "Rx: org is not a hospital" in refused["detail"], refused
    recalled = step(staff, world, "dr-li", rx, "recall")
    assert recalled["state"] == "CIRCULATED" and recalled["pickup_code"] not in (None, old)
    assert read(world, staff, "dr-li", rx)["pharmacy_org"] == 0
    stale = step(staff, pharmacy, "ph-sun", rx, "claim", {"pickup_code": old}, status=422)
    assert "Rx: wrong pickup code" in stale["detail"], stale
    assert step(staff, pharmacy, "ph-sun", rx, "claim",
                {"pickup_code": recalled["pickup_code"].lower()})["state"] == "CLAIMED"
