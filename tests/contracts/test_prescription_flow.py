"""PrescriptionFlow on both EVMs: every transition by the right actor, and refused with its reason otherwise.

On py-evm (GM precompile) the staff SM2 signatures are checked on chain; on anvil they are only recorded,
and the tests check them off chain from the events. Every signature covers what it authorises (terms, fill,
extension, named logistics org) and a nonce: the hole-6 tests replay and stretch signatures as an attacker would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _env_sharing_support import change_roles
from _rx_trace_support import DAY, FUNCTION_TRANSITION, ORDINARY_TERMS, RxDriver, cst_day_start, move_to_morning

from shancheng.sdk.crypto import SM2PrivateKey, sm3
from shancheng.sdk.domain.prescriptions import (
    FLAG_CONTROLLED,
    FLAG_EMERGENCY,
    FLAG_ONLINE,
    FLAG_REPEAT,
    RxContext,
    RxState,
    Transition,
    rx_transition_preimage,
    sign_rx_transition,
    staff_address,
    verify_rx_transition,
)
from shancheng.sdk.domain.prescriptions.pickup import pickup_key_hash, pickup_public_key
from shancheng.sdk.errors import InvalidSignature

STAFF_PHARMACIST = 1 << 1
STAFF_CHECKER = 1 << 3
STAFF_COURIER = 1 << 4
ORG_DISTRIBUTOR = 1 << 3
ORG_LOGISTICS = 1 << 4
REPEAT_TERMS = (3, 7, FLAG_REPEAT, 0, 2, 3600)  # 3 days, 2 fills, 1 hour apart


@pytest.fixture
def rx(system) -> RxDriver:
    move_to_morning(system)
    return RxDriver(system)


def _staff_public_key(system, address: str) -> bytes:
    for member in system.staff_members.values():
        if member.address == address:
            return member.public_key
    raise KeyError(address)


def assert_forged_refused(system, rx: RxDriver, send: Callable[[], Any], staff: str) -> None:
    """``send`` carries a staff signature that does not cover what it sends. Where SM2 is checked on chain
    it reverts; on a stock EVM it is recorded (then undone here) and the auditor's check of the event fails."""
    if system.gm:
        with system.expect_revert("Rx: bad staff signature"):
            send()
        return
    snap = system.snapshot()
    try:
        (ev,) = rx.events(send())
        assert ev["sm2Verified"] is False
        with pytest.raises(InvalidSignature):
            verify_rx_transition(system.staff(staff).public_key, system.chain_id, rx.contract.address, ev)
    finally:
        system.revert(snap)


# ------------------------------------------------------------------------------ happy paths


def test_in_store_flow_walks_the_state_machine_and_every_event_verifies(system, rx: RxDriver) -> None:
    rid = rx.id("in-store")
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
    assert [ev["signed"]["nonce"] for ev in events] == list(range(7))  # every signed step advances the nonce
    assert [ev["signed"]["fill"] for ev in events] == [0, 0, 0, 0, 1, 1, 1]
    for ev in events:
        assert ev["rxId"] == rid and ev["signed"]["version"] == 1
        assert tuple(ev["signed"]["terms"].values()) == ORDINARY_TERMS
        assert ev["sm2Verified"] is system.gm  # checked on chain only where the precompile exists
        # the off-chain auditor's check, from the event alone (the anvil path's only check)
        verify_rx_transition(_staff_public_key(system, ev["staff"]), system.chain_id, rx.contract.address, ev)
    acting = [ev["actingOrg"] for ev in events]
    hospital, pharmacy = system.org("hospital").id, system.org("pharmacy").id
    assert acting == [hospital, pharmacy, hospital, pharmacy, pharmacy, pharmacy, pharmacy]
    record = rx.record(rid)
    assert record["pharmacyOrg"] == pharmacy  # locked to the claiming pharmacy
    assert record["reptdCnt"] == 1  # one fill used
    assert record["nonce"] == 7


def test_delivery_flow_by_a_logistics_courier(system, rx: RxDriver) -> None:
    rid = rx.id("delivery")
    rx.to_state(rid, RxState.CHECKED)
    with system.expect_revert("Rx: org is not a logistics provider"):
        rx.call("pickUp", "pharmacy", "pharmacist", rid)
    with system.expect_revert("Rx: no logistics org named"):
        rx.call("pickUp", "logistics", "courier", rid)
    with system.expect_revert("Rx: org is not a pharmacy"):
        rx.call("consign", "logistics", "courier", rid)
    with system.expect_revert("Rx: staff not of the acting org"):
        rx.call("consign", "pharmacy", "courier", rid)
    receipt = rx.call("consign", "pharmacy", "checker", rid)
    (ev,) = rx.events(receipt)
    logistics = system.org("logistics").id
    assert (ev["from"], ev["to"], ev["signed"]["deliveryOrg"]) == (RxState.CHECKED, RxState.CHECKED, logistics)
    assert rx.record(rid)["deliveryOrg"] == logistics
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
    rid, doc = rx.id("preimage"), rx.doc("x")
    ctx = RxContext(7, 12, 2, system.org("logistics").id, (3, 30, FLAG_REPEAT, 1, 3, 3600))
    fns = rx.contract.functions
    on_chain = bytes(fns.transitionPreimage(rid, int(Transition.CHECK), doc, ctx.as_tuple()).call())
    assert on_chain == rx_transition_preimage(system.chain_id, rx.contract.address, rid, Transition.CHECK, doc, ctx)
    assert rx.contract.functions.sm2OnChain().call() is system.gm
    if system.gm:
        m = bytes(fns.transitionMessage(rid, int(Transition.CHECK), doc, ctx.as_tuple()).call())
        assert m == rx.message(rid, Transition.CHECK, doc, ctx)
    else:
        with system.expect_revert("GmCrypto: no precompile"):
            fns.transitionMessage(rid, int(Transition.CHECK), doc, ctx.as_tuple()).call()
    # the contract's view of the next context agrees with the one the signers build from the record
    rx.to_state(rid, RxState.CLAIMED, terms=REPEAT_TERMS)
    on_chain_ctx = RxContext.from_event(dict(zip(("version", "nonce", "fill", "deliveryOrg", "terms", "pickupKey"),
                                                 fns.contextOf(rid).call(), strict=True)))
    pickup_key = pickup_key_hash(pickup_public_key(rid, rx.codes[rid]))
    assert on_chain_ctx == rx.context("release", rid) == RxContext(1, 4, 0, 0, REPEAT_TERMS, pickup_key)


# ------------------------------------------------------------------------------ SM2 signatures


def test_bad_staff_signature_reverts_on_chain_or_is_recorded_for_off_chain_rejection(system, rx: RxDriver) -> None:
    rid, doc = rx.id("bad-sig"), rx.doc("issue")
    doctor = system.staff("doctor")
    # signed over the right fields but by a key that is not the doctor's registered key
    impostor = SM2PrivateKey.generate()
    ctx = rx.context("issue", rid)
    _, r, s = sign_rx_transition(impostor, system.chain_id, rx.contract.address, rid, Transition.ISSUE, doc, ctx)
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


def test_signature_is_bound_to_transition_context_and_document(system, rx: RxDriver) -> None:
    rid = rx.id("binding")
    rx.call("issue", "hospital", "doctor", rid)
    doc = rx.doc("review")
    ctx = rx.context("approve", rid)
    assert ctx == RxContext(1, 1, 0, 0, ORDINARY_TERMS)
    wrong = {
        "transition": rx.signature("pharmacist", rid, Transition.REJECT, doc, ctx),
        "version": rx.signature("pharmacist", rid, Transition.APPROVE, doc, RxContext(2, 1, 0, 0, ORDINARY_TERMS)),
        "nonce": rx.signature("pharmacist", rid, Transition.APPROVE, doc, RxContext(1, 0, 0, 0, ORDINARY_TERMS)),
        "fill": rx.signature("pharmacist", rid, Transition.APPROVE, doc, RxContext(1, 1, 1, 0, ORDINARY_TERMS)),
        "terms": rx.signature("pharmacist", rid, Transition.APPROVE, doc, RxContext(1, 1, 0, 0, (1, 6, 0, 0, 0, 0))),
        "document": rx.signature("pharmacist", rid, Transition.APPROVE, rx.doc("other"), ctx),
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
    rid = rx.id("issue-actors")
    stranger = SM2PrivateKey.generate()
    doc = rx.doc("issue")
    unknown = sign_rx_transition(
        stranger, system.chain_id, rx.contract.address, rid, Transition.ISSUE, doc, rx.context("issue", rid)
    )
    assert staff_address(stranger.public_key()) == unknown[0]
    cases = [
        ("pharmacy", "doctor", None, "Rx: org is not a hospital"),
        (system.outsider, "doctor", None, "Rx: sender is not a member account"),
        ("hospital2", "doctor2", None, "Rx: id not in the hospital's namespace"),
        ("hospital", "doctor2", None, "Rx: staff not of the acting org"),
        ("hospital", "hospital_operator", None, "Rx: staff lacks the role"),
        ("hospital", "doctor", unknown, "Rx: unknown staff"),
    ]
    for sender, staff, sig, reason in cases:
        with system.expect_revert(reason):
            rx.call("issue", sender, staff, rid, doc=doc, sig=sig)
    with system.expect_revert("Rx: staff not of the acting org"):
        rx.call("issue", "hospital2", "doctor", rx.id("issue-actors", "hospital2"), doc=doc)
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
        rx.call("issue", "hospital", "doctor", rx.id("terms"), terms=terms)


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
        rid = rx.id(f"terms-ok-{i}")
        receipt = rx.call("issue", "hospital", "doctor", rid, terms=terms)
        (ev,) = rx.events(receipt, "RxTerms")
        got = ev["terms"]
        assert (tuple(got.values()) if hasattr(got, "values") else tuple(got)) == terms
        assert rx.state(rid) == RxState.SIGNED


def test_no_personal_data_only_commitments_on_chain(system, rx: RxDriver) -> None:
    rid = rx.id("privacy")
    doc = sm3(b"salt" + "张三 110101199001011234 高血压".encode())
    receipt = rx.call("issue", "hospital", "doctor", rid, doc=doc)
    tx = system.w3.eth.get_transaction(receipt["transactionHash"])
    assert "张三".encode() not in bytes(tx["input"]) and b"110101199001011234" not in bytes(tx["input"])
    assert rx.record(rid)["docCommitment"] == doc


# ------------------------------------------------------------------------------ review and re-issue


def test_review_is_refused_for_every_wrong_actor(system, rx: RxDriver) -> None:
    rid = rx.id("review-actors")
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
    rid = rx.id("reissue")
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
    assert (ev["transition"], ev["signed"]["version"], ev["from"], ev["to"]) == (
        Transition.REISSUE,
        2,
        RxState.REJECTED,
        RxState.SIGNED,
    )
    record = rx.record(rid)
    assert record["version"] == 2 and record["docCommitment"] == new_doc
    # a review signed for version 1 no longer fits
    stale = rx.signature("pharmacist", rid, Transition.APPROVE, rx.doc("r"), RxContext(1, 3, 0, 0, (2, 3, 0, 0, 0, 0)))
    if system.gm:
        with system.expect_revert("Rx: bad staff signature"):
            rx.call("approve", "pharmacy", "pharmacist", rid, doc=rx.doc("r"), sig=stale)
    rx.call("approve", "pharmacy", "pharmacist", rid)
    assert rx.state(rid) == RxState.APPROVED


# ------------------------------------------------------------------------------ circulation


def test_circulate_only_by_the_issuing_hospital(system, rx: RxDriver) -> None:
    rid = rx.id("circulate")
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
    rid = rx.id("claim")
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
    rid = rx.id("four-checks")
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
    rid = rx.id("single-use")
    rx.to_state(rid, RxState.DISPENSED)
    with system.expect_revert("Rx: already dispensed"):
        rx.call("dispense", "pharmacy", "dispenser", rid)
    with system.expect_revert("Rx: not claimed"):
        rx.call("release", "pharmacy", "pharmacist", rid)
    system.advance_time(3 * DAY)
    with system.expect_revert("Rx: cannot expire in this state"):
        rx.contract.functions.expire(rid).call()


def test_repeat_prescription_fills_up_to_its_count_with_the_minimum_interval(system, rx: RxDriver) -> None:
    rid = rx.id("repeat")
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
    rid = rx.id("repeat-same")
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
    rid = rx.id(f"revoke-{state.name}")
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
    rid = rx.id("revoke-late")
    rx.to_state(rid, RxState.DISPENSING)
    with system.expect_revert("Rx: cannot revoke after dispensing"):
        rx.call("revoke", "hospital", "doctor", rid)


# ------------------------------------------------------------------------------ validity


def test_validity_ends_at_midnight_of_the_issue_day_and_anyone_may_expire(system, rx: RxDriver) -> None:
    rid = rx.id("expiry")
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
    rid = rx.id("extend")
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
    rid = rx.id("in-flight")
    rx.to_state(rid, RxState.DISPENSING)
    system.advance_time(2 * DAY)
    with system.expect_revert("Rx: cannot expire in this state"):
        rx.contract.functions.expire(rid).call()
    rx.call("check", "pharmacy", "checker", rid)
    rx.call("handOver", "pharmacy", "pharmacist", rid)
    assert rx.state(rid) == RxState.DISPENSED


def test_repeat_prescription_with_fills_left_expires_after_validity(system, rx: RxDriver) -> None:
    rid = rx.id("repeat-expiry")
    rx.to_state(rid, RxState.DISPENSED, terms=REPEAT_TERMS)
    system.advance_time(3 * DAY)
    with system.expect_revert("Rx: validity ended"):
        rx.call("dispense", "pharmacy", "dispenser", rid)
    system.transact(rx.contract.functions.expire(rid), "hospital")
    assert rx.state(rid) == RxState.EXPIRED


def test_suspended_pharmacy_cannot_act(system, rx: RxDriver) -> None:
    rid = rx.id("suspended")
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


# ------------------------------------------------------------------------------ hole 6: what a signature authorises


def test_doctor_signature_cannot_extend_validity_twice(system, rx: RxDriver) -> None:
    """Issue 8, hole 6: one extension signature extended validity twice. It now covers the new validity and
    the nonce: it extends once, to the length the doctor chose."""
    rid = rx.id("hole6-extend")
    rx.call("issue", "hospital", "doctor", rid)  # valid 1 day
    doc = rx.doc("extend")
    to_two = rx.signature("doctor", rid, Transition.EXTEND, doc, rx.context("extendValidity", rid, valid_days=2))
    # the hospital account stretches the doctor's 2-day signature to 3 days
    assert_forged_refused(
        system, rx, lambda: rx.call("extendValidity", "hospital", "doctor", rid, doc=doc, valid_days=3, sig=to_two),
        "doctor",
    )
    receipt = rx.call("extendValidity", "hospital", "doctor", rid, doc=doc, valid_days=2, sig=to_two)
    (ev,) = rx.events(receipt, "RxValidityExtended")
    assert ev["validDays"] == 2
    # ... and replays it for a second extension
    with system.expect_revert("Rx: validity can only be extended"):
        rx.call("extendValidity", "hospital", "doctor", rid, doc=doc, valid_days=2, sig=to_two)
    assert_forged_refused(
        system, rx, lambda: rx.call("extendValidity", "hospital", "doctor", rid, doc=doc, valid_days=3, sig=to_two),
        "doctor",
    )
    assert rx.record(rid)["validDays"] == 2
    rx.call("extendValidity", "hospital", "doctor", rid, valid_days=3)  # the doctor's own second decision
    assert rx.record(rid)["validDays"] == 3


def test_fill_signatures_cannot_be_replayed_for_later_fills(system, rx: RxDriver) -> None:
    """Issue 8, hole 6: fills 2 and 3 of a 3-fill prescription were recorded by the pharmacy account alone,
    replaying fill 1's signatures (bypassing checker != dispenser). Signatures now cover the fill and the nonce."""
    rid = rx.id("hole6-fills")
    rx.to_state(rid, RxState.CLAIMED, terms=(3, 7, FLAG_REPEAT, 0, 3, 3600))
    fill_1 = {}
    for function, staff in (("dispense", "dispenser"), ("check", "checker"), ("handOver", "pharmacist")):
        doc = rx.doc(f"fill-1:{function}")
        sig = rx.signature(staff, rid, FUNCTION_TRANSITION[function], doc, rx.context(function, rid))
        receipt = rx.call(function, "pharmacy", staff, rid, doc=doc, sig=sig)
        assert rx.events(receipt)[0]["signed"]["fill"] == 1
        fill_1[function] = (staff, doc, sig)
    system.advance_time(3600)

    def replay(function: str) -> Callable[[], Any]:
        staff, doc, sig = fill_1[function]
        return lambda: rx.call(function, "pharmacy", staff, rid, doc=doc, sig=sig)

    assert_forged_refused(system, rx, replay("dispense"), "dispenser")
    assert rx.record(rid)["reptdCnt"] == 1
    receipt = rx.call("dispense", "pharmacy", "dispenser", rid)  # the dispenser really starts fill 2
    assert rx.events(receipt)[0]["signed"]["fill"] == 2
    assert_forged_refused(system, rx, replay("check"), "checker")  # no checker looked at fill 2
    with system.expect_revert("Rx: checker must differ from dispenser"):
        rx.call("check", "pharmacy", "dispenser", rid)
    rx.call("check", "pharmacy", "checker", rid)
    assert_forged_refused(system, rx, replay("handOver"), "pharmacist")
    rx.call("handOver", "pharmacy", "pharmacist", rid)
    assert rx.record(rid)["reptdCnt"] == 2 and rx.state(rid) == RxState.DISPENSED


def test_no_signature_is_accepted_twice(system, rx: RxDriver) -> None:
    """Issue 8, hole 6: a claim signed once cannot claim again after a release (the nonce moved on)."""
    rid = rx.id("hole6-nonce")
    rx.to_state(rid, RxState.CIRCULATED)
    doc = rx.doc("claim")
    sig = rx.signature("pharmacist", rid, Transition.CLAIM, doc, rx.context("claim", rid))
    rx.call("claim", "pharmacy", "pharmacist", rid, doc=doc, sig=sig)
    rx.call("release", "pharmacy", "pharmacist", rid)
    assert_forged_refused(system, rx, lambda: rx.call("claim", "pharmacy", "pharmacist", rid, doc=doc, sig=sig),
                          "pharmacist")
    assert rx.state(rid) == RxState.CIRCULATED


def test_issue_terms_the_doctor_did_not_sign_are_refused(system, rx: RxDriver) -> None:
    """Issue 8, hole 6: issue accepted maxReptCnt 255 and supplyDays 200 that the doctor never signed; the
    signature now covers every term (and a re-issue's new terms)."""
    rid = rx.id("hole6-terms")
    doc = rx.doc("issue")
    signed = rx.signature("doctor", rid, Transition.ISSUE, doc, rx.context("issue", rid, terms=ORDINARY_TERMS))
    inflated = (1, 200, FLAG_REPEAT, 1, 255, 0)  # within the rules, with a long-supply reason: only the signature stops it
    assert_forged_refused(
        system, rx, lambda: rx.call("issue", "hospital", "doctor", rid, doc=doc, terms=inflated, sig=signed), "doctor"
    )
    assert rx.state(rid) == RxState.NONE
    receipt = rx.call("issue", "hospital", "doctor", rid, doc=doc, terms=ORDINARY_TERMS, sig=signed)
    assert tuple(rx.events(receipt)[0]["signed"]["terms"].values()) == ORDINARY_TERMS
    record = rx.record(rid)
    assert (record["supplyDays"], record["maxReptCnt"], record["flags"]) == (5, 0, 0)
    # a re-issue likewise: the doctor signs version 2 with 3 days' supply, the hospital sends 7
    rx.call("reject", "pharmacy", "pharmacist", rid)
    doc2, v2_terms = rx.doc("issue-v2"), (1, 3, 0, 0, 0, 0)
    signed = rx.signature("doctor", rid, Transition.REISSUE, doc2, rx.context("reissue", rid, terms=v2_terms))
    assert_forged_refused(
        system, rx, lambda: rx.call("reissue", "hospital", "doctor", rid, doc=doc2, terms=(1, 7, 0, 0, 0, 0), sig=signed),
        "doctor",
    )
    rx.call("reissue", "hospital", "doctor", rid, doc=doc2, terms=v2_terms, sig=signed)
    assert rx.record(rid)["supplyDays"] == 3


def test_only_the_logistics_org_the_pharmacy_named_picks_up(system, rx: RxDriver) -> None:
    """Issue 8, hole 6: a logistics org the pharmacy never named picked up a checked prescription. The claiming
    pharmacy now names the org in a signed transition (consign) and only that org picks up and delivers."""
    change_roles(system, "distributor", ORG_DISTRIBUTOR | ORG_LOGISTICS)  # a second logistics provider
    system.register_staff("courier_b", "distributor", STAFF_COURIER)
    rid = rx.id("hole6-logistics")
    rx.to_state(rid, RxState.CHECKED)
    with system.expect_revert("Rx: no logistics org named"):
        rx.call("pickUp", "distributor", "courier_b", rid)
    with system.expect_revert("Rx: not an active logistics org"):
        rx.call("consign", "pharmacy", "pharmacist", rid, logistics="hospital")
    with system.expect_revert("Rx: not the claiming pharmacy"):
        rx.call("consign", "pharmacy2", "pharmacist2", rid)
    doc = rx.doc("consign")
    named = rx.signature(
        "pharmacist", rid, Transition.CONSIGN, doc,
        rx.context("consign", rid, delivery_org=system.org("logistics").id),
    )
    # the pharmacy account cannot turn the pharmacist's choice into another org
    assert_forged_refused(
        system, rx, lambda: rx.call("consign", "pharmacy", "pharmacist", rid, doc=doc, logistics="distributor", sig=named),
        "pharmacist",
    )
    rx.call("consign", "pharmacy", "pharmacist", rid, doc=doc, sig=named)
    assert rx.record(rid)["deliveryOrg"] == system.org("logistics").id
    with system.expect_revert("Rx: not the named logistics org"):
        rx.call("pickUp", "distributor", "courier_b", rid)
    receipt = rx.call("pickUp", "logistics", "courier", rid)
    assert rx.events(receipt)[0]["signed"]["deliveryOrg"] == system.org("logistics").id
    with system.expect_revert("Rx: not the delivering org"):
        rx.call("deliver", "distributor", "courier_b", rid)
    rx.call("deliver", "logistics", "courier", rid)
    assert rx.state(rid) == RxState.DELIVERED
