"""PrescriptionFlow on both EVMs: every transition by the right actor, and refused with its reason otherwise.

On py-evm (GM precompile) the staff SM2 signatures are checked on chain; on anvil they are only recorded,
and the tests check them off chain from the events.
"""

from __future__ import annotations

import pytest
from _domain_messages import (
    FLAG_CONTROLLED,
    FLAG_EMERGENCY,
    FLAG_ONLINE,
    FLAG_REPEAT,
    RxState,
    Transition,
    rx_transition_preimage,
    sign_rx_transition,
    staff_address,
    verify_rx_transition,
)
from _rx_trace_support import DAY, RxDriver, cst_day_start, move_to_morning

from shancheng.sdk.crypto import SM2PrivateKey, sm3
from shancheng.sdk.errors import InvalidSignature

STAFF_PHARMACIST = 1 << 1
STAFF_CHECKER = 1 << 3
REPEAT_TERMS = (3, 7, FLAG_REPEAT, 0, 2, 3600)  # 3 days, 2 fills, 1 hour apart


def rx_id(label: str) -> bytes:
    return sm3(b"test-rx:" + label.encode())


@pytest.fixture
def rx(system) -> RxDriver:
    move_to_morning(system)
    return RxDriver(system)


def _staff_public_key(system, address: str) -> bytes:
    for member in system.staff_members.values():
        if member.address == address:
            return member.public_key
    raise KeyError(address)


# ------------------------------------------------------------------------------ happy paths


def test_in_store_flow_walks_the_state_machine_and_every_event_verifies(system, rx: RxDriver) -> None:
    rid = rx_id("in-store")
    receipts = rx.to_state(rid, RxState.DISPENSED)
    events = [ev for receipt in receipts for ev in rx.events(receipt)]
    assert [(ev["from"], ev["to"]) for ev in events] == [
        (RxState.NONE, RxState.SIGNED),
        (RxState.SIGNED, RxState.APPROVED),
        (RxState.APPROVED, RxState.CIRCULATED),
        (RxState.CIRCULATED, RxState.CLAIMED),
        (RxState.CLAIMED, RxState.DISPENSING),
        (RxState.DISPENSING, RxState.CHECKED),
        (RxState.CHECKED, RxState.DISPENSED),
    ]
    assert rx.state(rid) == RxState.DISPENSED
    for ev in events:
        assert ev["rxId"] == rid and ev["version"] == 1
        assert ev["sm2Verified"] is system.gm  # checked on chain only where the precompile exists
        # the off-chain auditor's check, from the event alone (the anvil path's only check)
        verify_rx_transition(_staff_public_key(system, ev["staff"]), system.chain_id, rx.contract.address, ev)
    acting = [ev["actingOrg"] for ev in events]
    hospital, pharmacy = system.org("hospital").id, system.org("pharmacy").id
    assert acting == [hospital, pharmacy, hospital, pharmacy, pharmacy, pharmacy, pharmacy]
    record = rx.record(rid)
    assert record["pharmacyOrg"] == pharmacy  # locked to the claiming pharmacy
    assert record["reptdCnt"] == 1  # one fill used


def test_delivery_flow_by_a_logistics_courier(system, rx: RxDriver) -> None:
    rid = rx_id("delivery")
    rx.to_state(rid, RxState.CHECKED)
    with system.expect_revert("Rx: org is not a logistics provider"):
        rx.call("pickUp", "pharmacy", "pharmacist", rid)
    with system.expect_revert("Rx: staff lacks the role"):
        rx.call("pickUp", "logistics", "logistics_operator", rid)
    with system.expect_revert("Rx: not delivering"):
        rx.call("deliver", "logistics", "courier", rid)
    rx.call("pickUp", "logistics", "courier", rid)
    assert rx.state(rid) == RxState.DELIVERING
    with system.expect_revert("Rx: not checked"):
        rx.call("handOver", "pharmacy", "pharmacist", rid)
    with system.expect_revert("Rx: org is not a logistics provider"):
        rx.call("deliver", "pharmacy", "pharmacist", rid)
    receipt = rx.call("deliver", "logistics", "courier", rid)
    assert rx.events(receipt)[0]["to"] == RxState.DELIVERED
    assert rx.state(rid) == RxState.DELIVERED
    with system.expect_revert("Rx: already dispensed"):
        rx.call("dispense", "pharmacy", "dispenser", rid)


def test_contract_builds_the_same_message_preimage_as_the_signers(system, rx: RxDriver) -> None:
    rid, doc = rx_id("preimage"), rx.doc("x")
    on_chain = bytes(rx.contract.functions.transitionPreimage(rid, 7, int(Transition.CHECK), doc).call())
    assert on_chain == rx_transition_preimage(system.chain_id, rx.contract.address, rid, 7, Transition.CHECK, doc)
    assert rx.contract.functions.sm2OnChain().call() is system.gm
    if system.gm:
        m = bytes(rx.contract.functions.transitionMessage(rid, 7, int(Transition.CHECK), doc).call())
        assert m == rx.message(rid, 7, Transition.CHECK, doc)
    else:
        with system.expect_revert("GmCrypto: no precompile"):
            rx.contract.functions.transitionMessage(rid, 7, int(Transition.CHECK), doc).call()


# ------------------------------------------------------------------------------ SM2 signatures


def test_bad_staff_signature_reverts_on_chain_or_is_recorded_for_off_chain_rejection(system, rx: RxDriver) -> None:
    rid, doc = rx_id("bad-sig"), rx.doc("issue")
    doctor = system.staff("doctor")
    # signed over the right fields but by a key that is not the doctor's registered key
    impostor = SM2PrivateKey.generate()
    _, r, s = sign_rx_transition(impostor, system.chain_id, rx.contract.address, rid, 1, Transition.ISSUE, doc)
    forged = (doctor.address, r, s)
    if system.gm:
        with system.expect_revert("Rx: bad staff signature"):
            rx.call("issue", "hospital", "doctor", rid, doc=doc, sig=forged)
        assert rx.state(rid) == RxState.NONE
    else:
        receipt = rx.call("issue", "hospital", "doctor", rid, doc=doc, sig=forged)
        ev = rx.events(receipt)[0]
        assert ev["sm2Verified"] is False and ev["r"] == r and ev["s"] == s
        with pytest.raises(InvalidSignature):
            verify_rx_transition(doctor.public_key, system.chain_id, rx.contract.address, ev)


def test_signature_is_bound_to_transition_version_and_document(system, rx: RxDriver) -> None:
    rid = rx_id("binding")
    rx.call("issue", "hospital", "doctor", rid)
    doc = rx.doc("review")
    wrong = {
        "transition": rx.signature("pharmacist", rid, Transition.REJECT, doc, 1),
        "version": rx.signature("pharmacist", rid, Transition.APPROVE, doc, 2),
        "document": rx.signature("pharmacist", rid, Transition.APPROVE, rx.doc("other"), 1),
    }
    for label, sig in wrong.items():
        if system.gm:
            with system.expect_revert("Rx: bad staff signature"):
                rx.call("approve", "pharmacy", "pharmacist", rid, doc=doc, sig=sig)
        else:
            snap = system.snapshot()
            ev = rx.events(rx.call("approve", "pharmacy", "pharmacist", rid, doc=doc, sig=sig))[0]
            with pytest.raises(InvalidSignature):
                verify_rx_transition(system.staff("pharmacist").public_key, system.chain_id, rx.contract.address, ev)
            system.revert(snap)
        assert rx.state(rid) == RxState.SIGNED, label
    rx.call("approve", "pharmacy", "pharmacist", rid, doc=doc)
    assert rx.state(rid) == RxState.APPROVED


# ------------------------------------------------------------------------------ issue


def test_issue_is_refused_for_every_wrong_actor(system, rx: RxDriver) -> None:
    rid = rx_id("issue-actors")
    stranger = SM2PrivateKey.generate()
    doc = rx.doc("issue")
    unknown = sign_rx_transition(stranger, system.chain_id, rx.contract.address, rid, 1, Transition.ISSUE, doc)
    assert staff_address(stranger.public_key()) == unknown[0]
    cases = [
        ("pharmacy", "doctor", None, "Rx: org is not a hospital"),
        (system.outsider, "doctor", None, "Rx: sender is not a member account"),
        ("hospital2", "doctor", None, "Rx: staff not of the acting org"),
        ("hospital", "doctor2", None, "Rx: staff not of the acting org"),
        ("hospital", "hospital_operator", None, "Rx: staff lacks the role"),
        ("hospital", "doctor", unknown, "Rx: unknown staff"),
    ]
    for sender, staff, sig, reason in cases:
        with system.expect_revert(reason):
            rx.call("issue", sender, staff, rid, doc=doc, sig=sig)
    system.transact(system.governance.functions.deactivateStaff(system.staff("doctor_b").address), "hospital")
    with system.expect_revert("Rx: staff not active"):
        rx.call("issue", "hospital", "doctor_b", rid, doc=doc)
    with system.expect_revert("Rx: id is zero"):
        rx.call("issue", "hospital", "doctor", b"\x00" * 32, doc=doc)
    rx.call("issue", "hospital", "doctor", rid, doc=doc)
    with system.expect_revert("Rx: already exists"):
        rx.call("issue", "hospital", "doctor", rid, doc=doc)


@pytest.mark.parametrize(
    ("terms", "reason"),
    [
        ((1, 5, FLAG_ONLINE | FLAG_CONTROLLED, 0, 0, 0), "Rx: narcotics and psychotropics cannot be prescribed online"),
        ((1, 8, 0, 0, 0, 0), "Rx: supply days over the limit without a reason"),
        ((1, 4, FLAG_EMERGENCY, 0, 0, 0), "Rx: supply days over the limit without a reason"),
        ((1, 0, 0, 0, 0, 0), "Rx: supply days is zero"),
        ((0, 5, 0, 0, 0, 0), "Rx: validity must be 1 to 3 days"),
        ((4, 5, 0, 0, 0, 0), "Rx: validity must be 1 to 3 days"),
        ((1, 5, 1 << 4, 0, 0, 0), "Rx: unknown flag"),
        ((1, 5, FLAG_REPEAT, 0, 1, 0), "Rx: repeat needs at least 2 fills"),
        ((1, 5, 0, 0, 2, 0), "Rx: repeat terms without repeat flag"),
        ((1, 5, 0, 0, 0, 60), "Rx: repeat terms without repeat flag"),
    ],
)
def test_issue_terms_are_refused_when_they_break_a_rule(system, rx: RxDriver, terms, reason) -> None:
    with system.expect_revert(reason):
        rx.call("issue", "hospital", "doctor", rx_id("terms"), terms=terms)


def test_issue_terms_within_the_rules_are_accepted(system, rx: RxDriver) -> None:
    allowed = [
        (1, 7, 0, 0, 0, 0),  # ordinary: up to 7 days
        (1, 3, FLAG_EMERGENCY, 0, 0, 0),  # emergency: up to 3 days
        (3, 30, 0, 1, 0, 0),  # chronic disease: longer with a reason code
        (1, 5, FLAG_CONTROLLED, 0, 0, 0),  # controlled drugs offline
        (1, 5, FLAG_ONLINE, 0, 0, 0),  # online without controlled drugs
        REPEAT_TERMS,
    ]
    for i, terms in enumerate(allowed):
        rid = rx_id(f"terms-ok-{i}")
        receipt = rx.call("issue", "hospital", "doctor", rid, terms=terms)
        (ev,) = rx.events(receipt, "RxTerms")
        got = ev["terms"]
        assert (tuple(got.values()) if hasattr(got, "values") else tuple(got)) == terms
        assert rx.state(rid) == RxState.SIGNED


def test_no_personal_data_only_commitments_on_chain(system, rx: RxDriver) -> None:
    rid = rx_id("privacy")
    doc = sm3(b"salt" + "张三 110101199001011234 高血压".encode())
    receipt = rx.call("issue", "hospital", "doctor", rid, doc=doc)
    tx = system.w3.eth.get_transaction(receipt["transactionHash"])
    assert "张三".encode() not in bytes(tx["input"]) and b"110101199001011234" not in bytes(tx["input"])
    assert rx.record(rid)["docCommitment"] == doc


# ------------------------------------------------------------------------------ review and re-issue


def test_review_is_refused_for_every_wrong_actor(system, rx: RxDriver) -> None:
    rid = rx_id("review-actors")
    with system.expect_revert("Rx: unknown prescription"):
        rx.call("approve", "pharmacy", "pharmacist", rid)
    rx.call("issue", "hospital", "doctor", rid)
    for function in ("approve", "reject"):
        with system.expect_revert("Rx: org is not a hospital or pharmacy"):
            rx.call(function, "logistics", "courier", rid)
        with system.expect_revert("Rx: another hospital cannot review"):
            rx.call(function, "hospital2", "doctor2", rid)
        with system.expect_revert("Rx: staff lacks the role"):
            rx.call(function, "pharmacy", "dispenser", rid)
        with system.expect_revert("Rx: staff lacks the role"):
            rx.call(function, "hospital", "doctor", rid)
        with system.expect_revert("Rx: review commitment is zero"):
            rx.call(function, "pharmacy", "pharmacist", rid, doc=b"\x00" * 32)
    # the issuing hospital's own pharmacist may review
    system.register_staff("hospital_pharmacist", "hospital", STAFF_PHARMACIST)
    rx.call("approve", "hospital", "hospital_pharmacist", rid)
    assert rx.state(rid) == RxState.APPROVED
    for function in ("approve", "reject"):
        with system.expect_revert("Rx: not awaiting review"):
            rx.call(function, "pharmacy", "pharmacist", rid)


def test_rejected_prescription_is_reissued_as_a_new_version_and_reviewed_again(system, rx: RxDriver) -> None:
    rid = rx_id("reissue")
    rx.call("issue", "hospital", "doctor", rid)
    with system.expect_revert("Rx: not rejected"):
        rx.call("reissue", "hospital", "doctor", rid)
    rx.call("reject", "pharmacy", "pharmacist", rid)
    assert rx.state(rid) == RxState.REJECTED
    with system.expect_revert("Rx: not approved"):
        rx.call("circulate", "hospital", "doctor", rid)
    with system.expect_revert("Rx: only the prescribing doctor"):
        rx.call("reissue", "hospital", "doctor_b", rid)
    with system.expect_revert("Rx: not the issuing hospital"):
        rx.call("reissue", "hospital2", "doctor2", rid)
    with system.expect_revert("Rx: org is not a hospital"):
        rx.call("reissue", "pharmacy", "pharmacist", rid)
    new_doc = rx.doc("version-2")
    receipt = rx.call("reissue", "hospital", "doctor", rid, doc=new_doc, terms=(2, 3, 0, 0, 0, 0))
    (ev,) = rx.events(receipt)
    assert (ev["transition"], ev["version"], ev["from"], ev["to"]) == (
        Transition.REISSUE,
        2,
        RxState.REJECTED,
        RxState.SIGNED,
    )
    record = rx.record(rid)
    assert record["version"] == 2 and record["docCommitment"] == new_doc
    # a review signed for version 1 no longer fits
    stale = rx.signature("pharmacist", rid, Transition.APPROVE, rx.doc("r"), 1)
    if system.gm:
        with system.expect_revert("Rx: bad staff signature"):
            rx.call("approve", "pharmacy", "pharmacist", rid, doc=rx.doc("r"), sig=stale)
    rx.call("approve", "pharmacy", "pharmacist", rid)
    assert rx.state(rid) == RxState.APPROVED


# ------------------------------------------------------------------------------ circulation


def test_circulate_only_by_the_issuing_hospital(system, rx: RxDriver) -> None:
    rid = rx_id("circulate")
    rx.call("issue", "hospital", "doctor", rid)
    with system.expect_revert("Rx: not approved"):
        rx.call("circulate", "hospital", "doctor", rid)
    rx.call("approve", "pharmacy", "pharmacist", rid)
    with system.expect_revert("Rx: org is not a hospital"):
        rx.call("circulate", "pharmacy", "pharmacist", rid)
    with system.expect_revert("Rx: not the issuing hospital"):
        rx.call("circulate", "hospital2", "doctor2", rid)
    rx.call("circulate", "hospital", "hospital_operator", rid)  # the hospital system's operator
    assert rx.state(rid) == RxState.CIRCULATED


def test_claim_locks_to_the_pharmacy_until_it_releases(system, rx: RxDriver) -> None:
    rid = rx_id("claim")
    rx.to_state(rid, RxState.APPROVED)
    with system.expect_revert("Rx: not circulating"):
        rx.call("claim", "pharmacy", "pharmacist", rid)
    rx.call("circulate", "hospital", "doctor", rid)
    with system.expect_revert("Rx: org is not a pharmacy"):
        rx.call("claim", "hospital", "doctor", rid)
    with system.expect_revert("Rx: staff lacks the role"):
        rx.call("claim", "pharmacy", "dispenser", rid)
    with system.expect_revert("Rx: not claimed"):
        rx.call("release", "pharmacy", "pharmacist", rid)
    rx.call("claim", "pharmacy", "pharmacist", rid)
    with system.expect_revert("Rx: not circulating"):
        rx.call("claim", "pharmacy2", "pharmacist2", rid)
    for function, staff in (("release", "pharmacist2"), ("dispense", "pharmacist2")):
        with system.expect_revert("Rx: not the claiming pharmacy"):
            rx.call(function, "pharmacy2", staff, rid)
    rx.call("release", "pharmacy", "pharmacy_operator", rid)
    assert rx.state(rid) == RxState.CIRCULATED
    assert rx.record(rid)["pharmacyOrg"] == 0
    rx.call("claim", "pharmacy2", "pharmacist2", rid)
    assert rx.record(rid)["pharmacyOrg"] == system.org("pharmacy2").id
    with system.expect_revert("Rx: not the claiming pharmacy"):
        rx.call("dispense", "pharmacy", "dispenser", rid)
    rx.call("dispense", "pharmacy2", "pharmacist2", rid)
    assert rx.state(rid) == RxState.DISPENSING


# ------------------------------------------------------------------------------ dispensing


def test_dispensing_and_checking_need_different_people(system, rx: RxDriver) -> None:
    rid = rx_id("four-checks")
    rx.to_state(rid, RxState.CLAIMED)
    with system.expect_revert("Rx: not dispensing"):
        rx.call("check", "pharmacy", "checker", rid)
    with system.expect_revert("Rx: staff lacks the role"):
        rx.call("dispense", "pharmacy", "checker", rid)
    with system.expect_revert("Rx: org is not a pharmacy"):
        rx.call("dispense", "hospital", "doctor", rid)
    rx.call("dispense", "pharmacy", "dispenser_checker", rid)
    with system.expect_revert("Rx: not claimed"):
        rx.call("dispense", "pharmacy", "dispenser", rid)
    with system.expect_revert("Rx: checker must differ from dispenser"):
        rx.call("check", "pharmacy", "dispenser_checker", rid)
    with system.expect_revert("Rx: staff lacks the role"):
        rx.call("check", "pharmacy", "dispenser", rid)
    with system.expect_revert("Rx: not the claiming pharmacy"):
        rx.call("check", "pharmacy2", "pharmacist2", rid)
    with system.expect_revert("Rx: not checked"):
        rx.call("handOver", "pharmacy", "pharmacist", rid)
    rx.call("check", "pharmacy", "checker", rid)
    with system.expect_revert("Rx: org is not a pharmacy"):
        rx.call("handOver", "logistics", "courier", rid)
    with system.expect_revert("Rx: not the claiming pharmacy"):
        rx.call("handOver", "pharmacy2", "pharmacist2", rid)
    with system.expect_revert("Rx: staff lacks the role"):
        rx.call("handOver", "pharmacy", "pharmacy_operator", rid)
    rx.call("handOver", "pharmacy", "checker", rid)
    assert rx.state(rid) == RxState.DISPENSED


def test_single_use_prescription_cannot_be_dispensed_twice(system, rx: RxDriver) -> None:
    rid = rx_id("single-use")
    rx.to_state(rid, RxState.DISPENSED)
    with system.expect_revert("Rx: already dispensed"):
        rx.call("dispense", "pharmacy", "dispenser", rid)
    with system.expect_revert("Rx: not claimed"):
        rx.call("release", "pharmacy", "pharmacist", rid)
    system.advance_time(3 * DAY)
    with system.expect_revert("Rx: cannot expire in this state"):
        rx.contract.functions.expire(rid).call()


def test_repeat_prescription_fills_up_to_its_count_with_the_minimum_interval(system, rx: RxDriver) -> None:
    rid = rx_id("repeat")
    rx.to_state(rid, RxState.DISPENSED, terms=REPEAT_TERMS)
    first_fill = rx.record(rid)["lastFillAt"]
    with system.expect_revert("Rx: repeat interval not reached"):
        rx.call("dispense", "pharmacy", "dispenser", rid)
    with system.expect_revert("Rx: cannot revoke after dispensing"):
        rx.call("revoke", "hospital", "doctor", rid)
    # the patient takes the second fill elsewhere: the pharmacy releases it
    rx.call("release", "pharmacy", "pharmacist", rid)
    rx.call("claim", "pharmacy2", "pharmacist2", rid)
    system.advance_time(3600 - (system.now() - first_fill) - 5)
    with system.expect_revert("Rx: repeat interval not reached"):
        rx.call("dispense", "pharmacy2", "pharmacist2", rid)
    system.advance_time(10)
    receipt = rx.call("dispense", "pharmacy2", "pharmacist2", rid)
    assert rx.events(receipt)[0]["from"] == RxState.CLAIMED
    assert rx.record(rid)["reptdCnt"] == 2
    system.register_staff("checker2", "pharmacy2", STAFF_CHECKER)
    rx.call("check", "pharmacy2", "checker2", rid)
    rx.call("handOver", "pharmacy2", "pharmacist2", rid)
    system.advance_time(3600)
    with system.expect_revert("Rx: already dispensed"):
        rx.call("dispense", "pharmacy2", "pharmacist2", rid)


def test_repeat_fill_continues_at_the_same_pharmacy(system, rx: RxDriver) -> None:
    rid = rx_id("repeat-same")
    rx.to_state(rid, RxState.DISPENSED, terms=REPEAT_TERMS)
    system.advance_time(3600)
    with system.expect_revert("Rx: not the claiming pharmacy"):
        rx.call("dispense", "pharmacy2", "pharmacist2", rid)
    receipt = rx.call("dispense", "pharmacy", "dispenser", rid)
    (ev,) = rx.events(receipt)
    assert (ev["from"], ev["to"]) == (RxState.DISPENSED, RxState.DISPENSING)
    assert rx.record(rid)["reptdCnt"] == 2


# ------------------------------------------------------------------------------ revocation


@pytest.mark.parametrize("state", [RxState.SIGNED, RxState.APPROVED, RxState.CIRCULATED, RxState.CLAIMED])
def test_prescribing_doctor_revokes_before_dispensing(system, rx: RxDriver, state: RxState) -> None:
    rid = rx_id(f"revoke-{state.name}")
    rx.to_state(rid, state)
    with system.expect_revert("Rx: only the prescribing doctor"):
        rx.call("revoke", "hospital", "doctor_b", rid)
    with system.expect_revert("Rx: not the issuing hospital"):
        rx.call("revoke", "hospital2", "doctor2", rid)
    with system.expect_revert("Rx: org is not a hospital"):
        rx.call("revoke", "pharmacy", "pharmacist", rid)
    receipt = rx.call("revoke", "hospital", "doctor", rid)
    assert rx.events(receipt)[0]["from"] == state
    assert rx.state(rid) == RxState.REVOKED
    with system.expect_revert("Rx: cannot revoke after dispensing"):
        rx.call("revoke", "hospital", "doctor", rid)
    system.advance_time(4 * DAY)
    with system.expect_revert("Rx: cannot expire in this state"):
        rx.contract.functions.expire(rid).call()


def test_revoke_is_refused_once_dispensing_started(system, rx: RxDriver) -> None:
    rid = rx_id("revoke-late")
    rx.to_state(rid, RxState.DISPENSING)
    with system.expect_revert("Rx: cannot revoke after dispensing"):
        rx.call("revoke", "hospital", "doctor", rid)


# ------------------------------------------------------------------------------ validity


def test_validity_ends_at_midnight_of_the_issue_day_and_anyone_may_expire(system, rx: RxDriver) -> None:
    rid = rx_id("expiry")
    receipt = rx.call("issue", "hospital", "doctor", rid)
    issued_at = system.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    (terms,) = rx.events(receipt, "RxTerms")
    valid_end = cst_day_start(issued_at) + DAY
    assert terms["validEnd"] == valid_end
    with system.expect_revert("Rx: still valid"):
        rx.contract.functions.expire(rid).call()
    system.advance_time(valid_end - system.now() - 120)
    rx.call("approve", "pharmacy", "pharmacist", rid)  # still valid two minutes before midnight
    system.advance_time(valid_end - system.now())
    with system.expect_revert("Rx: validity ended"):
        rx.call("circulate", "hospital", "doctor", rid)
    receipt = system.transact(rx.contract.functions.expire(rid), system.outsider)  # anyone, even a non-member
    (ev,) = rx.events(receipt)
    assert (ev["transition"], ev["from"], ev["to"], ev["actingOrg"]) == (
        Transition.EXPIRE,
        RxState.APPROVED,
        RxState.EXPIRED,
        0,
    )
    with system.expect_revert("Rx: not approved"):
        rx.call("circulate", "hospital", "doctor", rid)
    with system.expect_revert("Rx: cannot revoke after dispensing"):
        rx.call("revoke", "hospital", "doctor", rid)
    with system.expect_revert("Rx: cannot expire in this state"):
        rx.contract.functions.expire(rid).call()


def test_doctor_extends_validity_to_at_most_three_days(system, rx: RxDriver) -> None:
    rid = rx_id("extend")
    receipt = rx.call("issue", "hospital", "doctor", rid)
    (terms,) = rx.events(receipt, "RxTerms")
    end_1 = terms["validEnd"]
    with system.expect_revert("Rx: validity longer than 3 days"):
        rx.call("extendValidity", "hospital", "doctor", rid, valid_days=4)
    with system.expect_revert("Rx: validity can only be extended"):
        rx.call("extendValidity", "hospital", "doctor", rid, valid_days=1)
    with system.expect_revert("Rx: only the prescribing doctor"):
        rx.call("extendValidity", "hospital", "doctor_b", rid, valid_days=3)
    with system.expect_revert("Rx: not the issuing hospital"):
        rx.call("extendValidity", "hospital2", "doctor2", rid, valid_days=3)
    receipt = rx.call("extendValidity", "hospital", "doctor", rid, valid_days=3)
    (ev,) = rx.events(receipt, "RxValidityExtended")
    assert ev["validEnd"] == end_1 + 2 * DAY and ev["validDays"] == 3
    assert rx.state(rid) == RxState.SIGNED
    system.advance_time(end_1 + DAY - system.now())
    rx.call("approve", "pharmacy", "pharmacist", rid)  # day 2: still valid
    system.advance_time(end_1 + 2 * DAY - system.now())
    with system.expect_revert("Rx: validity ended"):
        rx.call("extendValidity", "hospital", "doctor", rid, valid_days=3)
    system.transact(rx.contract.functions.expire(rid), "pharmacy")
    assert rx.state(rid) == RxState.EXPIRED


def test_a_fill_under_way_completes_after_validity_but_cannot_be_expired(system, rx: RxDriver) -> None:
    rid = rx_id("in-flight")
    rx.to_state(rid, RxState.DISPENSING)
    system.advance_time(2 * DAY)
    with system.expect_revert("Rx: cannot expire in this state"):
        rx.contract.functions.expire(rid).call()
    rx.call("check", "pharmacy", "checker", rid)
    rx.call("handOver", "pharmacy", "pharmacist", rid)
    assert rx.state(rid) == RxState.DISPENSED


def test_repeat_prescription_with_fills_left_expires_after_validity(system, rx: RxDriver) -> None:
    rid = rx_id("repeat-expiry")
    rx.to_state(rid, RxState.DISPENSED, terms=REPEAT_TERMS)
    system.advance_time(3 * DAY)
    with system.expect_revert("Rx: validity ended"):
        rx.call("dispense", "pharmacy", "dispenser", rid)
    system.transact(rx.contract.functions.expire(rid), "hospital")
    assert rx.state(rid) == RxState.EXPIRED


def test_suspended_pharmacy_cannot_act(system, rx: RxDriver) -> None:
    rid = rx_id("suspended")
    rx.to_state(rid, RxState.CIRCULATED)
    gov = system.governance
    target = system.org("pharmacy2").id
    receipt = system.transact(gov.functions.proposeSuspendOrg(target), "hospital")
    (created,) = system.events(receipt, gov, "ProposalCreated")
    voters = [name for name in system.orgs if name not in ("hospital", "pharmacy2")]
    for name in voters:
        if system.call(gov.functions.orgActive(target)) is False:
            break
        system.transact(gov.functions.vote(created["id"], True), name)
    assert system.call(gov.functions.orgActive(target)) is False
    with system.expect_revert("Rx: sender org is not active"):
        rx.call("claim", "pharmacy2", "pharmacist2", rid)
