"""The prescriptions client against a real solo node (GM precompile: SM2 checked on chain) and anvil (none).

Staff are registered through Governance by their own organisations; every step is signed by the acting staff
member's SM2 key and the history read back from the node's logs.
"""

from __future__ import annotations

from typing import Any

import pytest

from shancheng.sdk import Client
from shancheng.sdk.client import Identity
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.domain import (
    DomainRefused,
    InvalidPrescription,
    Prescription,
    Prescriptions,
    RxState,
    StaffRole,
    Transition,
    UnsupportedOnChain,
    doc_commitment,
    register_staff,
    rx_id_of,
    staff_address,
    verify_rx_transition,
)
from shancheng.sdk.domain.prescriptions import new_rx_id
from shancheng.sdk.domain.prescriptions.pickup import InvalidPickupCode, new_pickup_code

pytestmark = pytest.mark.network

_counter = iter(range(1, 1_000_000))


def document(**changes: Any) -> dict[str, Any]:
    """A valid ordinary prescription with a fresh hosp_rxno."""
    base: dict[str, Any] = {
        "hosp_rxno": f"RX{next(_counter):06d}", "rx_type_code": "1", "prsc_time": "2024-06-15T09:00:00+08:00",
        "valid_days": 1,
        "patient_commitment": doc_commitment({"psn_name": "张三", "certno": "110101199001011234"}, b"s" * 32).hex(),
        "drugs": [{"med_list_codg": "XJ01CAA040A001010100028", "drug_genname": "阿莫西林胶囊",
                   "drug_dosform": "胶囊剂", "drug_spec": "0.25g*24粒", "drug_cnt": "2", "drug_cnt_unit": "盒",
                   "medc_days": 5}],
    }
    base.update(changes)
    return base


REVIEW = {"phar_prac_cert_no": "PHA2024001", "rx_chk_stas_codg": "1", "rx_chk_opnn": "合理"}


class World:
    """The demo organisations' prescription clients and their registered staff."""

    def __init__(self, domain_node: Any) -> None:
        self.hospital = Prescriptions(domain_node.client("hospital"))
        self.pharmacy = Prescriptions(domain_node.client("pharmacy"))
        self.logistics = Prescriptions(domain_node.client("logistics"))
        self.logistics_org = domain_node.client("logistics").org_id
        self.doctor, self.doctor_b = SM2PrivateKey.generate(), SM2PrivateKey.generate()
        self.pharmacist, self.dispenser, self.checker = (SM2PrivateKey.generate() for _ in range(3))
        self.dispenser_checker, self.courier = SM2PrivateKey.generate(), SM2PrivateKey.generate()
        for client, key, roles in (
            (self.hospital.client, self.doctor, StaffRole.DOCTOR),
            (self.hospital.client, self.doctor_b, StaffRole.DOCTOR),
            (self.pharmacy.client, self.pharmacist, StaffRole.PHARMACIST),
            (self.pharmacy.client, self.dispenser, StaffRole.DISPENSER),
            (self.pharmacy.client, self.checker, StaffRole.CHECKER),
            (self.pharmacy.client, self.dispenser_checker, StaffRole.DISPENSER | StaffRole.CHECKER),
            (self.logistics.client, self.courier, StaffRole.COURIER),
        ):
            receipt = register_staff(client, key, roles)
            assert receipt.status == 1

    def to_claimed(self, **changes: Any) -> bytes:
        rid = self.hospital.issue(document(**changes), doctor=self.doctor).rx_id
        self.pharmacy.approve(rid, REVIEW, pharmacist=self.pharmacist)
        code = self.hospital.circulate(rid, staff=self.doctor).pickup_code
        assert code is not None
        self.pharmacy.claim(rid, code, staff=self.pharmacist)
        return rid

    def to_checked(self, **changes: Any) -> bytes:
        rid = self.to_claimed(**changes)
        self.pharmacy.dispense(rid, dispenser=self.dispenser, record={"dispensed": "2 boxes"})
        self.pharmacy.check(rid, checker=self.checker)
        return rid


@pytest.fixture(scope="module")
def world(domain_node: Any) -> World:
    return World(domain_node)


def _transitions(flow: Prescriptions, rid: bytes) -> list[tuple[Transition, RxState, str | None]]:
    return [(e.transition, e.to_state, e.staff) for e in flow.history(rid) if e.kind == "transition"
            and e.transition is not None and e.to_state is not None]


# ------------------------------------------------------------------------------------------ lifecycles


def test_a_prescription_walks_issue_to_dispensed_and_history_names_every_actor(world: World) -> None:
    rx = Prescription.parse(document())
    issued = world.hospital.issue(rx, doctor=world.doctor)
    rid = issued.rx_id
    # the id is in the hospital's namespace and not derived from anything a rival could know
    assert rid[:8] == world.hospital.client.org_id.to_bytes(8, "big")
    assert rid != rx_id_of(world.hospital.client.org_id, rx.hosp_rxno)
    assert issued.state is RxState.SIGNED and issued.salt is not None
    assert issued.doc_commitment == doc_commitment(rx, issued.salt), "the chain holds the document's commitment"
    approved = world.pharmacy.approve(rid, REVIEW, pharmacist=world.pharmacist)
    circulated = world.hospital.circulate(rid, staff=world.doctor)
    assert circulated.pickup_code is not None and len(circulated.pickup_code) == 19  # XXXX-XXXX-XXXX-XXXX
    steps = [
        approved,
        circulated,
        world.pharmacy.claim(rid, circulated.pickup_code.lower(), staff=world.pharmacist),
        world.pharmacy.dispense(rid, dispenser=world.dispenser),
        world.pharmacy.check(rid, checker=world.checker),
        world.pharmacy.hand_over(rid, staff=world.pharmacist),
    ]
    assert [s.state for s in steps] == [RxState.APPROVED, RxState.CIRCULATED, RxState.CLAIMED, RxState.DISPENSING,
                                        RxState.CHECKED, RxState.DISPENSED]
    record = world.hospital.get(rid)
    assert record.state is RxState.DISPENSED and record.reptd_cnt == 1
    assert record.dispenser == staff_address(world.dispenser) and record.doctor == staff_address(world.doctor)
    assert record.pharmacy_org == world.pharmacy.client.org_id and record.hospital_org == world.hospital.client.org_id

    history = world.hospital.history(rid)
    assert history[0].kind == "terms" and history[0].terms == rx.terms().as_tuple() and history[0].version == 1
    assert _transitions(world.hospital, rid) == [
        (Transition.ISSUE, RxState.SIGNED, staff_address(world.doctor)),
        (Transition.APPROVE, RxState.APPROVED, staff_address(world.pharmacist)),
        (Transition.CIRCULATE, RxState.CIRCULATED, staff_address(world.doctor)),
        (Transition.CLAIM, RxState.CLAIMED, staff_address(world.pharmacist)),
        (Transition.DISPENSE, RxState.DISPENSING, staff_address(world.dispenser)),
        (Transition.CHECK, RxState.CHECKED, staff_address(world.checker)),
        (Transition.HAND_OVER, RxState.DISPENSED, staff_address(world.pharmacist)),
    ]
    positions = [(e.block_number, e.log_index) for e in history]
    assert positions == sorted(positions)
    keys = {staff_address(k): k.public_key() for k in (world.doctor, world.pharmacist, world.dispenser, world.checker)}
    client = world.hospital.client
    for event in history:
        if event.kind != "transition":
            continue
        assert event.sm2_verified, "the GM precompile checked the signature on chain"
        assert event.staff is not None and event.signed is not None
        verify_rx_transition(keys[event.staff], client.chain_id, world.hospital.contract.address,
                             {"rxId": rid, "transition": event.transition, "docCommitment": event.doc_commitment,
                              "signed": event.signed.as_tuple(), "r": event.r, "s": event.s})
    orgs = [e.acting_org for e in history if e.kind == "transition"]
    assert orgs == [client.org_id, world.pharmacy.client.org_id, client.org_id] + [world.pharmacy.client.org_id] * 4


def test_a_rejected_prescription_is_reissued_as_version_2_and_reviewed_again(world: World) -> None:
    doc = document()
    rid = world.hospital.issue(doc, doctor=world.doctor).rx_id
    rejected = world.pharmacy.reject(rid, {**REVIEW, "rx_chk_stas_codg": "2", "rx_chk_opnn": "剂量过大"},
                                     pharmacist=world.pharmacist)
    assert rejected.state is RxState.REJECTED
    fixed = {**doc, "drugs": [{**doc["drugs"][0], "drug_cnt": "1", "medc_days": 3}]}
    again = world.hospital.reissue(rid, fixed, doctor=world.doctor)
    assert again.state is RxState.SIGNED
    assert world.pharmacy.approve(rid, REVIEW, pharmacist=world.pharmacist).state is RxState.APPROVED
    record = world.hospital.get(rid)
    assert record.version == 2 and record.supply_days == 3 and record.doc_commitment == again.doc_commitment
    assert [t for t, _, _ in _transitions(world.hospital, rid)] == [
        Transition.ISSUE, Transition.REJECT, Transition.REISSUE, Transition.APPROVE]
    assert [e.version for e in world.hospital.history(rid) if e.kind == "terms"] == [1, 2]


def test_only_the_prescribing_doctor_reissues(world: World) -> None:
    rid = world.hospital.issue(document(), doctor=world.doctor).rx_id
    world.pharmacy.reject(rid, REVIEW, pharmacist=world.pharmacist)
    with pytest.raises(DomainRefused, match="only the prescribing doctor"):
        world.hospital.reissue(rid, document(), doctor=world.doctor_b)


def test_the_doctor_revokes_before_dispensing_and_not_twice(world: World) -> None:
    rid = world.to_claimed()
    revoked = world.hospital.revoke(rid, doctor=world.doctor, record={"undo_rea": "patient left"})
    assert revoked.state is RxState.REVOKED and revoked.salt is not None
    with pytest.raises(DomainRefused, match="Rx: cannot revoke after dispensing"):
        world.hospital.revoke(rid, doctor=world.doctor)
    with pytest.raises(DomainRefused, match="Rx: not claimed"):
        world.pharmacy.dispense(rid, dispenser=world.dispenser)


def test_delivery_by_the_named_logistics_org(world: World) -> None:
    rid = world.to_checked()
    consigned = world.pharmacy.consign(rid, world.logistics_org, staff=world.pharmacist)
    assert consigned.state is RxState.CHECKED and world.pharmacy.get(rid).delivery_org == world.logistics_org
    assert world.logistics.pick_up(rid, courier=world.courier).state is RxState.DELIVERING
    assert world.logistics.deliver(rid, courier=world.courier, record={"signed_by": "patient"}).state \
        is RxState.DELIVERED
    assert [t for t, _, _ in _transitions(world.logistics, rid)][-3:] == [
        Transition.CONSIGN, Transition.PICK_UP, Transition.DELIVER]


def test_a_repeat_prescription_allows_its_fills_and_no_more(world: World) -> None:
    rid = world.to_checked(rept_flag=True, max_rept_cnt=2, valid_days=3)
    world.pharmacy.hand_over(rid, staff=world.pharmacist)
    second = world.pharmacy.dispense(rid, dispenser=world.dispenser)
    assert second.state is RxState.DISPENSING and world.pharmacy.get(rid).reptd_cnt == 2
    world.pharmacy.check(rid, checker=world.checker)
    world.pharmacy.hand_over(rid, staff=world.pharmacist)
    with pytest.raises(DomainRefused, match="Rx: already dispensed"):
        world.pharmacy.dispense(rid, dispenser=world.dispenser)


def test_validity_is_extended_once_to_three_days_and_expiry_waits_for_its_end(world: World) -> None:
    rid = world.hospital.issue(document(valid_days=1), doctor=world.doctor).rx_id
    before = world.hospital.get(rid)
    extended = world.hospital.extend_validity(rid, 3, doctor=world.doctor)
    after = world.hospital.get(rid)
    assert extended.state is RxState.SIGNED and after.valid_days == 3
    assert after.valid_end == before.valid_end + 2 * 86_400
    ext = [e for e in world.hospital.history(rid) if e.kind == "extended"]
    assert len(ext) == 1 and ext[0].valid_days == 3 and ext[0].valid_end == after.valid_end
    with pytest.raises(InvalidPrescription, match="only be extended"):
        world.hospital.extend_validity(rid, 2, doctor=world.doctor)
    # the solo node's clock is the wall clock: the prescription is valid until the end of day 3 (UTC+8)
    with pytest.raises(DomainRefused, match="Rx: still valid"):
        world.pharmacy.expire(rid)
    assert world.hospital.state(rid) is RxState.SIGNED


# ------------------------------------------------------------------------------------------ refusals


def test_the_dispenser_cannot_check_their_own_fill(world: World) -> None:
    rid = world.to_claimed()
    world.pharmacy.dispense(rid, dispenser=world.dispenser_checker)
    with pytest.raises(DomainRefused, match="checker must differ from dispenser") as info:
        world.pharmacy.check(rid, checker=world.dispenser_checker)
    assert info.value.reason == "Rx: checker must differ from dispenser"
    assert "\n" not in str(info.value)
    assert world.pharmacy.check(rid, checker=world.checker).state is RxState.CHECKED


def test_a_staff_member_without_the_role_is_refused(world: World) -> None:
    rid = world.hospital.issue(document(), doctor=world.doctor).rx_id
    with pytest.raises(DomainRefused, match="Rx: staff lacks the role"):
        world.pharmacy.approve(rid, REVIEW, pharmacist=world.dispenser)


def test_the_wrong_organisation_is_refused(world: World) -> None:
    with pytest.raises(DomainRefused, match="Rx: org is not a hospital"):
        world.pharmacy.issue(document(), doctor=world.doctor)
    rid = world.hospital.issue(document(), doctor=world.doctor).rx_id
    with pytest.raises(DomainRefused, match="Rx: staff not of the acting org"):
        world.hospital.approve(rid, REVIEW, pharmacist=world.pharmacist)  # the pharmacy's pharmacist, hospital account


def test_a_signature_by_an_unregistered_key_is_refused(world: World) -> None:
    with pytest.raises(DomainRefused, match="Rx: unknown staff"):
        world.hospital.issue(document(), doctor=SM2PrivateKey.generate())


def test_a_transition_from_the_wrong_state_is_refused(world: World) -> None:
    rid = world.hospital.issue(document(), doctor=world.doctor).rx_id
    with pytest.raises(DomainRefused, match="Rx: not circulating"):
        world.pharmacy.claim(rid, new_pickup_code(), staff=world.pharmacist)
    with pytest.raises(DomainRefused, match="Rx: already exists"):
        world.hospital.issue(document(), doctor=world.doctor, rx_id=rid)


def test_an_invalid_document_is_refused_before_anything_is_sent(world: World) -> None:
    client = world.hospital.client
    nonce = client.rpc.call("eth_getTransactionCount", [client.identity.address, "latest"])
    with pytest.raises(InvalidPrescription, match="valid_days: must be 1 to 3 days"):
        world.hospital.issue(document(valid_days=5), doctor=world.doctor)
    assert client.rpc.call("eth_getTransactionCount", [client.identity.address, "latest"]) == nonce


@pytest.mark.parametrize(("changes", "message"), [
    ({"valid_days": 0}, "valid_days: must be 1 to 3 days"),
    ({"online": True, "controlled": True}, "cannot be prescribed online"),
    ({"emergency": True}, "over the 3-day limit of an emergency prescription"),
    ({"long_supply_reason": 0, "drugs": [{**document()["drugs"][0], "medc_days": 30}]}, "over the 7-day limit"),
    ({"rept_flag": True, "max_rept_cnt": 1}, "at least 2 fills"),
    ({"max_rept_cnt": 3}, "need rept_flag"),
    ({"min_inrv_days": 7}, "need rept_flag"),
    ({"rept_flag": True, "max_rept_cnt": 2, "min_inrv_days": 3}, "fills must start within its validity"),
    ({"rept_flag": True, "max_rept_cnt": 4, "min_inrv_days": 1}, r"4 fills 1 day\(s\) apart need 3 days"),
    ({"prsc_time": "2024-06-15T09:00:00"}, "prsc_time: .*UTC offset"),
    ({"drugs": []}, "drugs"),
    ({"patient_name": "张三"}, "patient_name: Extra inputs are not permitted"),
])
def test_document_rules(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidPrescription, match=message):
        Prescription.parse(document(**changes))


def test_a_repeat_prescription_whose_fills_fit_its_validity_is_accepted() -> None:
    rx = Prescription.parse(document(rept_flag=True, max_rept_cnt=3, min_inrv_days=1, valid_days=3))
    assert rx.terms().max_rept_cnt == 3 and rx.terms().min_interval_seconds == 86_400


def test_a_long_supply_with_a_reason_is_accepted() -> None:
    rx = Prescription.parse(document(long_supply_reason=1, drugs=[{**document()["drugs"][0], "medc_days": 30}]))
    assert rx.terms().supply_days == 30 and rx.terms().long_supply_reason == 1


# ------------------------------------------------------------------------------------------ anvil


def test_signed_steps_are_unsupported_on_a_chain_without_the_gm_precompile() -> None:
    from eth_account import Account

    from shancheng.testing import HD_PATH, MNEMONIC, build_system, deterministic_sm2_key, run_anvil

    with run_anvil() as w3:
        system = build_system("anvil", w3)
        Account.enable_unaudited_hdwallet_features()
        index = list(w3.eth.accounts).index(system.org("hospital").account)
        account = Account.from_mnemonic(MNEMONIC, account_path=f"{HD_PATH}/{index}")
        identity = Identity.from_keys(sm2_key=deterministic_sm2_key("org:hospital"), eth_key=account.key)
        names = ("EvidenceRegistry", "Governance", "PrescriptionFlow")
        client = Client.connect(w3.provider.endpoint_uri, identity=identity,
                                contracts={n: system.contract(n).address for n in names})
        try:
            assert not client.capabilities.gm_precompile
            flow = Prescriptions(client)
            rid = new_rx_id(client.org_id)
            assert flow.state(rid) is RxState.NONE, "reads work on any chain"
            height = client.block_number()
            with pytest.raises(UnsupportedOnChain, match="unsupported on this chain.*no GM precompile"):
                flow.issue(document(hosp_rxno="RX-ANVIL"), doctor=SM2PrivateKey.generate(), rx_id=rid)
            assert client.block_number() == height and flow.state(rid) is RxState.NONE
        finally:
            client.close()


def test_only_the_pharmacy_given_the_pickup_code_claims_and_the_hospital_may_recall(world: World) -> None:
    rid = world.hospital.issue(document(), doctor=world.doctor).rx_id
    world.pharmacy.approve(rid, REVIEW, pharmacist=world.pharmacist)
    code = world.hospital.circulate(rid, staff=world.doctor).pickup_code
    assert code is not None
    with pytest.raises(DomainRefused, match="Rx: wrong pickup code"):
        world.pharmacy.claim(rid, new_pickup_code(), staff=world.pharmacist)
    with pytest.raises(InvalidPickupCode):
        world.pharmacy.claim(rid, "12345", staff=world.pharmacist)
    world.pharmacy.claim(rid, code, staff=world.pharmacist)
    recalled = world.hospital.recall(rid, staff=world.doctor)
    assert recalled.state is RxState.CIRCULATED and recalled.pickup_code not in (None, code)
    assert world.hospital.get(rid).pharmacy_org == 0
    with pytest.raises(DomainRefused, match="Rx: wrong pickup code"):
        world.pharmacy.claim(rid, code, staff=world.pharmacist)  # the old code stopped working
    assert recalled.pickup_code is not None
    assert world.pharmacy.claim(rid, recalled.pickup_code, staff=world.pharmacist).state is RxState.CLAIMED


def test_a_hospital_issues_only_in_its_own_namespace(world: World) -> None:
    rival_id = new_rx_id(world.pharmacy.client.org_id)
    with pytest.raises(DomainRefused, match="Rx: id not in the hospital's namespace"):
        world.hospital.issue(document(), doctor=world.doctor, rx_id=rival_id)
