"""PrescriptionFlow under attack: ids in the issuing hospital's namespace, and claims bound to the patient's choice.

Each test is an attack that worked before ids were namespaced and claims needed the pickup code: a rival hospital
pre-claiming the victim's next id, a pharmacy locking a prescription the patient never brought to it (without the
code, with a proof made for another pharmacy, with a proof already used), and a hospital unable to take back a
claim. On py-evm (GM precompile) the pickup proof is checked on chain; on anvil it is recorded and the auditor's
off-chain check (``verify_claim_proof``) fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _rx_trace_support import RxDriver, move_to_morning

from shancheng.sdk.domain.prescriptions import RxState, Transition, verify_rx_transition
from shancheng.sdk.domain.prescriptions.pickup import new_pickup_code, pickup_public_key, verify_claim_proof
from shancheng.sdk.errors import InvalidSignature


@pytest.fixture
def rx(system) -> RxDriver:
    move_to_morning(system)
    return RxDriver(system)


def assert_claim_refused(system, rx: RxDriver, send: Callable[[], Any]) -> None:
    """``send`` claims with a pickup proof that is not the patient's for this pharmacy and nonce: it reverts where
    SM2 is checked on chain; on a stock EVM the recorded proof fails the off-chain check (the claim is undone)."""
    if system.gm:
        with system.expect_revert("Rx: wrong pickup code"):
            send()
        return
    snap = system.snapshot()
    try:
        (proof,) = rx.events(send(), "RxClaimProof")
        assert proof["verified"] is False
        with pytest.raises(InvalidSignature):
            verify_claim_proof(system.chain_id, rx.contract.address, proof)
    finally:
        system.revert(snap)


# ------------------------------------------------------------------------------ ids


def test_a_rival_hospital_cannot_take_the_id_of_another_hospitals_prescription(system, rx: RxDriver) -> None:
    victim_next = rx.id("next-of-the-victim")
    with system.expect_revert("Rx: id not in the hospital's namespace"):
        rx.call("issue", "hospital2", "doctor2", victim_next)
    rx.call("issue", "hospital", "doctor", victim_next)
    assert rx.record(victim_next)["hospitalOrg"] == system.org("hospital").id
    # the rival issues freely in its own namespace, even with the same 24 bytes after the prefix
    own = rx.id("next-of-the-victim", "hospital2")
    rx.call("issue", "hospital2", "doctor2", own)
    assert rx.state(own) == RxState.SIGNED


# ------------------------------------------------------------------------------ claims


def test_a_pharmacy_without_the_pickup_code_cannot_claim(system, rx: RxDriver) -> None:
    rid = rx.id("no-code")
    rx.to_state(rid, RxState.CIRCULATED)
    guessed = new_pickup_code()
    assert_claim_refused(system, rx, lambda: rx.call("claim", "pharmacy2", "pharmacist2", rid, pickup_code=guessed))
    with system.expect_revert("Rx: missing pickup proof"):
        rx.call("claim", "pharmacy2", "pharmacist2", rid, pickup=(bytes(32), bytes(32)))
    # the pharmacy the patient gave the code to claims it
    receipt = rx.call("claim", "pharmacy", "pharmacist", rid)
    (proof,) = rx.events(receipt, "RxClaimProof")
    assert proof["pharmacyOrg"] == system.org("pharmacy").id and proof["verified"] is system.gm
    verify_claim_proof(system.chain_id, rx.contract.address, proof)
    assert rx.record(rid)["pharmacyOrg"] == system.org("pharmacy").id


def test_a_claim_proof_made_for_one_pharmacy_cannot_be_taken_over_by_another(system, rx: RxDriver) -> None:
    rid = rx.id("front-run")
    rx.to_state(rid, RxState.CIRCULATED)
    # pharmacy2 copies the chosen pharmacy's proof from the mempool and sends it first
    copied = rx.pickup_proof(rid, "pharmacy")
    assert_claim_refused(system, rx, lambda: rx.call("claim", "pharmacy2", "pharmacist2", rid, pickup=copied))
    rx.call("claim", "pharmacy", "pharmacist", rid, pickup=copied)
    assert rx.state(rid) == RxState.CLAIMED


def test_a_used_claim_proof_cannot_claim_again_after_a_release(system, rx: RxDriver) -> None:
    rid = rx.id("replay")
    rx.to_state(rid, RxState.CIRCULATED)
    used = rx.pickup_proof(rid, "pharmacy")
    rx.call("claim", "pharmacy", "pharmacist", rid, pickup=used)
    rx.call("release", "pharmacy", "pharmacist", rid)
    assert_claim_refused(system, rx, lambda: rx.call("claim", "pharmacy", "pharmacist", rid, pickup=used))
    # the same code signs afresh for the new nonce: the patient's code still works after a release
    rx.call("claim", "pharmacy", "pharmacist", rid)
    assert rx.state(rid) == RxState.CLAIMED


def test_the_issuing_hospital_recalls_a_claim_and_the_old_code_stops_working(system, rx: RxDriver) -> None:
    rid = rx.id("recall")
    rx.to_state(rid, RxState.CIRCULATED)
    leaked = rx.codes[rid]
    rx.call("claim", "pharmacy2", "pharmacist2", rid)  # the code reached a pharmacy the patient did not choose
    with system.expect_revert("Rx: org is not a hospital"):
        rx.call("recall", "pharmacy2", "pharmacist2", rid)
    with system.expect_revert("Rx: not the issuing hospital"):
        rx.call("recall", "hospital2", "doctor2", rid)
    with system.expect_revert("Rx: new pickup key is the current key"):
        rx.call("recall", "hospital", "doctor", rid, pickup_code=leaked)
    rx.call("recall", "hospital", "hospital_operator", rid)
    record = rx.record(rid)
    assert rx.state(rid) == RxState.CIRCULATED and record["pharmacyOrg"] == 0
    assert rx.codes[rid] != leaked
    assert_claim_refused(system, rx, lambda: rx.call("claim", "pharmacy2", "pharmacist2", rid, pickup_code=leaked))
    rx.call("claim", "pharmacy", "pharmacist", rid)  # the new code, given to the patient
    rx.call("dispense", "pharmacy", "dispenser", rid)
    with system.expect_revert("Rx: cannot recall in this state"):  # a fill under way completes
        rx.call("recall", "hospital", "doctor", rid)


def test_circulation_needs_a_pickup_key_on_the_curve_and_the_staff_signature_covers_it(system, rx: RxDriver) -> None:
    rid = rx.id("bad-key")
    rx.to_state(rid, RxState.APPROVED)
    key = pickup_public_key(rid, new_pickup_code())
    off_curve = key[:63] + bytes([key[63] ^ 1])
    doc = rx.doc("circulate")
    sig = rx.signature("doctor", rid, Transition.CIRCULATE, doc, rx.context("circulate", rid, pickup_key=key))
    fns = rx.contract.functions
    with system.expect_revert("Rx: bad pickup key"):
        system.transact(fns.circulate(rid, doc, off_curve, sig), "hospital")
    # a signature over one pickup key does not circulate another (the hospital's gateway cannot swap the code)
    other = pickup_public_key(rid, new_pickup_code())
    if system.gm:
        with system.expect_revert("Rx: bad staff signature"):
            system.transact(fns.circulate(rid, doc, other, sig), "hospital")
    else:  # recorded; the auditor's check of the event fails
        snap = system.snapshot()
        (ev,) = rx.events(system.transact(fns.circulate(rid, doc, other, sig), "hospital"))
        with pytest.raises(InvalidSignature):
            verify_rx_transition(system.staff("doctor").public_key, system.chain_id, rx.contract.address, ev)
        system.revert(snap)
    system.transact(fns.circulate(rid, doc, key, sig), "hospital")
    assert bytes(fns.pickupKeyOf(rid).call()) == key
