"""DrugTrace on both EVMs: units bound to their maker, custody moves with acceptance, exactly-once dispensing,
aggregation, returns, recall, sampling and supervised destruction; refused codes are reported by events (or
revert when strict).
"""

from __future__ import annotations

import pytest
from _env_sharing_support import change_roles
from _rx_trace_support import TraceDriver

from shancheng.sdk.domain.drugtrace import (
    Refusal,
    UnitState,
    gtin_check_digit_ok,
    is_special_management,
    normalise_trace_code,
    trace_code_commitment,
    trace_unit_key,
)

ZERO = b"\x00" * 32
ORG_MANUFACTURER = 1 << 2
ORG_DISTRIBUTOR = 1 << 3


@pytest.fixture
def trace(system) -> TraceDriver:
    return TraceDriver(system)


def _refusals(trace: TraceDriver, receipt) -> list[tuple[bytes, int, Refusal]]:
    return [(ev["code"], ev["billType"], Refusal(ev["reason"])) for ev in trace.events(receipt, "CodeRefused")]


def _batch(trace: TraceDriver, receipt) -> dict:
    (ev,) = trace.events(receipt, "TraceBatch")
    return ev


# ------------------------------------------------------------------------------ codes (off chain)


def test_trace_code_shapes_are_validated_before_committing() -> None:
    assert normalise_trace_code(" 81234567890123456789 ") == "81234567890123456789"
    gs1 = "(01)06901234567892(17)271231(10)B240501(21)A1B2C3D4E5"
    assert normalise_trace_code(gs1) == gs1
    assert gtin_check_digit_ok("06901234567892") and not gtin_check_digit_ok("06901234567893")
    for bad in ("8123456789012345678", "8123456789012345678X", "(01)06901234567893(21)A1", "(01)0690123456789(21)A"):
        with pytest.raises(ValueError):
            normalise_trace_code(bad)
    assert is_special_management("89123456789012345678") and not is_special_management("81234567890123456789")
    assert trace_code_commitment("81234567890123456789") != trace_code_commitment("81234567890123456788")
    assert len(trace_code_commitment(gs1)) == 32


# ------------------------------------------------------------------------------ hole 7: codes bound to their maker


def test_another_maker_cannot_squat_a_makers_future_codes(system, trace: TraceDriver) -> None:
    """Issue 8, hole 7: a second manufacturer registered the first maker's future serials and the real maker's
    registration then failed. Units are now keyed by (maker, code), derived on chain from the sender's org."""
    change_roles(system, "distributor", ORG_DISTRIBUTOR | ORG_MANUFACTURER)  # a second manufacturer
    mfr, squatter = system.org("manufacturer").id, system.org("distributor").id
    real = trace.codes(3, first=700)  # the manufacturer's future serials
    squatted = trace.codes(3, first=700, maker="distributor")  # the very same codes
    commitments = [trace.commitment(k) for k in real]
    assert [trace.commitment(k) for k in squatted] == commitments and set(real).isdisjoint(squatted)
    # the squatter registers the codes first, sending the same commitments the real maker will
    receipt = trace.register(squatted, sender="distributor")
    assert [ev["code"] for ev in trace.events(receipt, "UnitEvent")] == squatted
    # ... and cannot block the real maker
    receipt = trace.register(real)
    assert [ev["code"] for ev in trace.events(receipt, "UnitEvent")] == real
    assert (_batch(trace, receipt)["accepted"], _batch(trace, receipt)["refused"]) == (3, 0)
    with system.expect_revert("Trace: code already registered"):  # one maker, one unit per code
        trace.register(real[:1])
    # lookups stay unambiguous: a code and its maker (from the drug identifier) name one unit, of that maker
    fns = trace.contract.functions
    for key, fake, commitment in zip(real, squatted, commitments, strict=True):
        assert fns.unitKey(mfr, commitment).call() == key == trace_unit_key(mfr, commitment)
        assert fns.unitOfCode(mfr, commitment).call()[2] == mfr == trace.unit(key)[2]
        assert fns.unitOfCode(squatter, commitment).call()[2] == squatter == trace.unit(fake)[2]
    # the squatter ships its copies to a pharmacy; scanning the packs gives the real maker's units, which were
    # never shipped there: the copies are refused and reported, never received
    trace.ship(squatted, "distributor", "pharmacy")
    receipt = trace.receive(real, "pharmacy", strict=False)
    assert _refusals(trace, receipt) == [(k, 102, Refusal.NOT_IN_TRANSIT) for k in real]
    trace.move(real, "manufacturer", "pharmacy")
    assert trace.custody(real[0]) == (UnitState.RECEIVED, UnitState.RECEIVED, system.org("pharmacy").id)


# ------------------------------------------------------------------------------ batch moves


def test_200_code_batch_moves_from_manufacturer_to_pharmacy_with_acceptance(system, trace: TraceDriver) -> None:
    codes = trace.codes(200)
    receipt = trace.register(codes)
    assert _batch(trace, receipt)["accepted"] == 200
    mfr, dist, pharm = (system.org(n).id for n in ("manufacturer", "distributor", "pharmacy"))
    receipt = trace.ship(codes, "manufacturer", "distributor", bill=201)
    moved = trace.events(receipt, "UnitEvent")
    assert [ev["code"] for ev in moved] == codes
    assert {(ev["billType"], ev["actingOrg"], ev["counterparty"]) for ev in moved} == {(201, mfr, dist)}
    assert receipt["gasUsed"] < 2_500_000  # ~9.5k gas per code
    # custody stays with the sender until the receiver accepts
    assert trace.unit(codes[0])[:4] == (mfr, dist, mfr, UnitState.SHIPPED)
    receipt = trace.receive(codes, "distributor", bill=102)
    assert {(ev["billType"], ev["counterparty"]) for ev in trace.events(receipt, "UnitEvent")} == {(102, mfr)}
    assert all(trace.unit(c)[0] == dist and trace.unit(c)[3] == UnitState.RECEIVED for c in codes[::37])
    trace.ship(codes, "distributor", "pharmacy", bill=203)
    receipt = trace.receive(codes, "pharmacy", bill=104)
    batch = _batch(trace, receipt)
    assert (batch["actingOrg"], batch["billType"], batch["accepted"], batch["refused"]) == (pharm, 104, 200, 0)
    assert trace.custody(codes[199]) == (UnitState.RECEIVED, UnitState.RECEIVED, pharm)


def test_only_the_named_receiver_can_receive(system, trace: TraceDriver) -> None:
    codes = trace.codes(3)
    trace.register(codes)
    trace.ship(codes, "manufacturer", "distributor")
    receipt = trace.receive(codes, "pharmacy", strict=False)
    assert _refusals(trace, receipt) == [(c, 102, Refusal.NOT_RECEIVER) for c in codes]
    assert _batch(trace, receipt)["accepted"] == 0
    with system.expect_revert("Trace: sender org is not the named receiver"):
        trace.receive(codes, "pharmacy", strict=True)
    with system.expect_revert("Trace: unit in transit"):
        trace.ship(codes, "manufacturer", "pharmacy")
    trace.receive(codes, "distributor")
    with system.expect_revert("Trace: unit not in transit"):
        trace.receive(codes, "distributor")


def test_unknown_code_in_a_batch_is_refused_and_reported_not_silently_passed(system, trace: TraceDriver) -> None:
    good, counterfeit = trace.codes(3), trace.codes(1, first=999)[0]
    trace.register(good)
    batch = [good[0], counterfeit, good[1], good[2]]
    with system.expect_revert("Trace: unknown code"):
        trace.ship(batch, "manufacturer", "distributor", strict=True)
    assert trace.unit(good[0])[3] == UnitState.GENERATED  # strict: nothing moved
    receipt = trace.ship(batch, "manufacturer", "distributor", strict=False)
    assert _refusals(trace, receipt) == [(counterfeit, 201, Refusal.UNKNOWN_CODE)]
    summary = _batch(trace, receipt)
    assert (summary["accepted"], summary["refused"]) == (3, 1)
    assert [ev["code"] for ev in trace.events(receipt, "UnitEvent")] == good


def test_a_unit_is_dispensed_exactly_once(system, trace: TraceDriver) -> None:
    codes = trace.codes(4)
    trace.register(codes)
    trace.move(codes, "manufacturer", "distributor")
    trace.move(codes, "distributor", "pharmacy")
    receipt = trace.send("dispense", "pharmacy", codes[:2], ZERO, True)
    assert {ev["billType"] for ev in trace.events(receipt, "UnitEvent")} == {201}
    # a second sale (回流药) of code 0 in a mixed batch: refused and reported, code 2 still sold
    receipt = trace.send("dispense", "pharmacy", [codes[0], codes[2]], ZERO, False)
    assert _refusals(trace, receipt) == [(codes[0], 201, Refusal.ALREADY_DISPENSED)]
    assert trace.unit(codes[2])[3] == UnitState.DISPENSED
    with system.expect_revert("Trace: already dispensed"):
        trace.send("dispense", "pharmacy", [codes[3], codes[1]], ZERO, True)
    assert trace.unit(codes[3])[3] == UnitState.RECEIVED
    for function, args in (
        ("ship", (codes[:1], system.org("pharmacy2").id, 201, ZERO, True)),
        ("recall", (codes[:1], ZERO, True)),
        ("sample", (codes[:1], ZERO, True)),
    ):
        with system.expect_revert("Trace: already dispensed"):
            trace.send(function, "pharmacy", *args)


def test_dispense_needs_a_pharmacy_or_hospital_holding_the_unit(system, trace: TraceDriver) -> None:
    codes = trace.codes(2)
    trace.register(codes)
    with system.expect_revert("Trace: org is not a pharmacy or hospital"):
        trace.send("dispense", "manufacturer", codes, ZERO, True)
    with system.expect_revert("Trace: sender org is not the holder"):
        trace.send("dispense", "pharmacy", codes, ZERO, True)
    trace.move(codes, "manufacturer", "hospital")
    trace.send("dispense", "hospital", codes, ZERO, True)
    assert trace.unit(codes[1])[3] == UnitState.DISPENSED


def test_batch_level_rules_always_revert(system, trace: TraceDriver) -> None:
    codes = trace.codes(2)
    with system.expect_revert("Trace: org is not a manufacturer"):
        trace.register(codes, sender="distributor")
    with system.expect_revert("Trace: sender is not a member account"):
        trace.register(codes, sender=system.outsider)
    with system.expect_revert("Trace: level must be 1 to 3"):
        trace.register(codes, level=4)
    with system.expect_revert("Trace: empty batch"):
        trace.register([])
    with system.expect_revert("Trace: code is zero"):
        trace.register([ZERO])
    trace.register(codes)
    with system.expect_revert("Trace: code already registered"):
        trace.register(codes[1:])
    with system.expect_revert("Trace: ship bill must be 201, 203 or 207"):
        trace.ship(codes, "manufacturer", "distributor", bill=202)
    with system.expect_revert("Trace: counterparty is the sender org"):
        trace.ship(codes, "manufacturer", "manufacturer")
    with system.expect_revert("Trace: counterparty is not an active supply-chain org"):
        trace.ship(codes, "manufacturer", "monitoring")
    with system.expect_revert("Trace: org takes no part in the supply chain"):
        trace.ship(codes, "auditor", "distributor")
    with system.expect_revert("Trace: sender org is not the holder"):
        trace.ship(codes, "distributor", "pharmacy")
    trace.ship(codes, "manufacturer", "distributor", bill=207)
    with system.expect_revert("Trace: receive bill must be 102 or 104"):
        trace.receive(codes, "distributor", bill=101)


# ------------------------------------------------------------------------------ aggregation


def test_case_moves_with_its_children_and_cannot_ship_after_a_child_was_sold(system, trace: TraceDriver) -> None:
    units, (case,) = trace.codes(4), trace.codes(1, first=500)
    trace.register(units, level=1)
    trace.register([case], level=3)
    receipt = trace.send("aggregate", "manufacturer", case, units, ZERO, True)
    assert [(ev["child"], ev["added"]) for ev in trace.events(receipt, "Aggregation")] == [(u, True) for u in units]
    assert trace.unit(case)[6] == 4  # childCount
    with system.expect_revert("Trace: unit packed in a parent"):
        trace.ship(units[:1], "manufacturer", "distributor")
    trace.move([case], "manufacturer", "pharmacy")
    with system.expect_revert("Trace: unit has children; disaggregate first"):
        trace.send("dispense", "pharmacy", [case], ZERO, True)
    # the case is now at the pharmacy: its children follow without a write of their own
    assert trace.custody(units[0]) == (UnitState.AGGREGATED, UnitState.RECEIVED, system.org("pharmacy").id)
    trace.send("dispense", "pharmacy", units[:1], ZERO, True)  # sold out of the case
    assert trace.unit(case)[5] == 1  # removedInside
    with system.expect_revert("Trace: sold or removed child inside; disaggregate first"):
        trace.ship([case], "pharmacy", "pharmacy2")
    with system.expect_revert("Trace: sold or removed child inside; disaggregate first"):
        trace.send("returnOut", "pharmacy", [case], system.org("distributor").id, ZERO, True)
    with system.expect_revert("Trace: unknown code"):
        trace.send("disaggregate", "pharmacy", case, trace.codes(1, first=999), ZERO, True)
    stray = trace.codes(1, first=900)
    trace.register(stray)
    with system.expect_revert("Trace: not a child of this parent"):
        trace.send("disaggregate", "pharmacy", case, stray, ZERO, True)
    receipt = trace.send("disaggregate", "pharmacy", case, units[:1], ZERO, True)
    assert [(ev["child"], ev["added"]) for ev in trace.events(receipt, "Aggregation")] == [(units[0], False)]
    assert trace.unit(case)[5:7] == (0, 3)
    trace.ship([case], "pharmacy", "pharmacy2")
    trace.receive([case], "pharmacy2")
    assert trace.custody(units[3])[2] == system.org("pharmacy2").id
    # unpacking gives the children their own custody again
    trace.send("disaggregate", "pharmacy2", case, units[1:], ZERO, True)
    assert trace.unit(units[1])[0] == system.org("pharmacy2").id and trace.unit(units[1])[3] == UnitState.RECEIVED
    trace.send("dispense", "pharmacy2", units[1:], ZERO, True)


def test_aggregation_rules(system, trace: TraceDriver) -> None:
    units, packs, (case,) = trace.codes(3), trace.codes(2, first=100), trace.codes(1, first=500)
    trace.register(units, level=1)
    trace.register(packs, level=2)
    trace.register([case], level=3)
    with system.expect_revert("Trace: sender org is not the holder"):
        trace.send("aggregate", "distributor", case, units, ZERO, True)
    with system.expect_revert("Trace: child level must be below parent level"):
        trace.send("aggregate", "manufacturer", packs[0], [case], ZERO, True)
    receipt = trace.send("aggregate", "manufacturer", packs[0], [units[0], packs[1], units[1]], ZERO, False)
    assert _refusals(trace, receipt) == [(packs[1], 0, Refusal.LEVEL_NOT_BELOW_PARENT)]
    trace.send("aggregate", "manufacturer", case, [packs[0]], ZERO, True)  # three levels
    receipt = trace.send("aggregate", "manufacturer", case, [units[0]], ZERO, False)
    assert _refusals(trace, receipt) == [(units[0], 0, Refusal.PACKED_IN_PARENT)]
    with system.expect_revert("Trace: unit packed in a parent"):
        trace.send("aggregate", "manufacturer", packs[0], [units[2]], ZERO, True)  # the pack is inside the case
    trace.move([case], "manufacturer", "pharmacy")
    # a unit two levels down is sold: both the pack and the case count it
    trace.send("dispense", "pharmacy", [units[0]], ZERO, True)
    assert (trace.unit(packs[0])[5], trace.unit(case)[5]) == (1, 1)
    with system.expect_revert("Trace: parent has no children"):
        trace.send("disaggregate", "pharmacy", units[2], [units[0]], ZERO, True)
    with system.expect_revert("Trace: sender org is not the holder"):
        trace.send("disaggregate", "pharmacy2", packs[0], [units[0]], ZERO, True)
    trace.send("disaggregate", "pharmacy", packs[0], [units[0]], ZERO, True)
    assert (trace.unit(packs[0])[5], trace.unit(case)[5]) == (0, 0)
    trace.ship([case], "pharmacy", "pharmacy2")


# ------------------------------------------------------------------------------ returns


def test_refused_shipment_returns_to_its_sender_who_accepts_it(system, trace: TraceDriver) -> None:
    codes = trace.codes(2)
    trace.register(codes)
    trace.ship(codes, "manufacturer", "distributor")
    mfr, dist = system.org("manufacturer").id, system.org("distributor").id
    with system.expect_revert("Trace: a refused shipment returns to its sender"):
        trace.send("returnOut", "distributor", codes, system.org("pharmacy").id, ZERO, True)
    receipt = trace.send("returnOut", "distributor", codes, mfr, ZERO, True)
    assert {(ev["billType"], ev["counterparty"]) for ev in trace.events(receipt, "UnitEvent")} == {(202, mfr)}
    assert trace.unit(codes[0])[:4] == (mfr, mfr, mfr, UnitState.RETURNED)
    with system.expect_revert("Trace: sender org is not the named receiver"):
        trace.send("acceptReturn", "distributor", codes, ZERO, True)
    with system.expect_revert("Trace: unit in transit"):
        trace.ship(codes, "manufacturer", "pharmacy")
    receipt = trace.send("acceptReturn", "manufacturer", codes, ZERO, True)
    assert {ev["billType"] for ev in trace.events(receipt, "UnitEvent")} == {103}
    assert trace.unit(codes[0])[3] == UnitState.RECEIVED
    # received goods go back to the supplier the same way (202 out, 103 in)
    trace.move(codes, "manufacturer", "distributor")
    trace.send("returnOut", "distributor", codes, mfr, ZERO, True)
    with system.expect_revert("Trace: unit not in transit"):  # a return is accepted with acceptReturn (103)
        trace.receive(codes, "manufacturer")
    trace.send("acceptReturn", "manufacturer", codes, ZERO, True)
    assert trace.unit(codes[1])[:2] == (mfr, 0)
    assert trace.unit(codes[1])[3] == UnitState.RECEIVED and mfr != dist


# ------------------------------------------------------------------------------ recall, sampling, destruction


def test_recall_by_holder_manufacturer_or_regulator_only(system, trace: TraceDriver) -> None:
    codes = trace.codes(4)
    trace.register(codes)
    trace.move(codes, "manufacturer", "distributor")
    receipt = trace.send("recall", "pharmacy", codes[:1], ZERO, False)
    assert _refusals(trace, receipt) == [(codes[0], 211, Refusal.NOT_AUTHORISED)]
    with system.expect_revert("Trace: not holder, manufacturer or regulator"):
        trace.send("recall", "pharmacy", codes[:1], ZERO, True)
    with system.expect_revert("Trace: org cannot recall"):
        trace.send("recall", "auditor", codes[:1], ZERO, True)
    trace.send("recall", "distributor", codes[0:1], ZERO, True)  # holder
    trace.send("recall", "manufacturer", codes[1:2], ZERO, True)  # marketing-authorisation holder
    trace.send("recall", "regulator", codes[2:3], ZERO, True)  # regulator
    assert [trace.unit(c)[3] for c in codes] == [UnitState.RECALLED] * 3 + [UnitState.RECEIVED]
    with system.expect_revert("Trace: unit recalled, sampled or destroyed"):
        trace.ship(codes[:1], "distributor", "pharmacy")
    with system.expect_revert("Trace: unit recalled, sampled or destroyed"):
        trace.send("recall", "regulator", codes[:1], ZERO, True)


def test_recalled_case_freezes_its_contents(system, trace: TraceDriver) -> None:
    units, (case,) = trace.codes(2), trace.codes(1, first=500)
    trace.register(units)
    trace.register([case], level=3)
    trace.send("aggregate", "manufacturer", case, units, ZERO, True)
    trace.move([case], "manufacturer", "pharmacy")
    trace.send("recall", "regulator", [case], ZERO, True)
    assert trace.custody(units[0])[1] == UnitState.RECALLED
    with system.expect_revert("Trace: unit recalled, sampled or destroyed"):
        trace.send("dispense", "pharmacy", units[:1], ZERO, True)


def test_sampling_by_holder_or_regulator(system, trace: TraceDriver) -> None:
    codes = trace.codes(3)
    trace.register(codes)
    trace.move(codes, "manufacturer", "distributor")
    with system.expect_revert("Trace: sender org is not the holder"):
        trace.send("sample", "pharmacy", codes[:1], ZERO, True)
    receipt = trace.send("sample", "regulator", codes[:1], ZERO, True)
    assert [(ev["billType"], ev["actingOrg"]) for ev in trace.events(receipt, "UnitEvent")] == [
        (206, system.org("regulator").id)
    ]
    trace.send("sample", "distributor", codes[1:2], ZERO, True)
    assert [trace.unit(c)[3] for c in codes] == [UnitState.SAMPLED, UnitState.SAMPLED, UnitState.RECEIVED]
    with system.expect_revert("Trace: unit recalled, sampled or destroyed"):
        trace.send("sample", "regulator", codes[:1], ZERO, True)


def test_destruction_records_executor_and_supervising_regulator(system, trace: TraceDriver) -> None:
    codes = trace.codes(3)
    trace.register(codes)
    trace.move(codes, "manufacturer", "distributor")
    dist, reg = system.org("distributor").id, system.org("regulator").id
    with system.expect_revert("Trace: supervisor is not an active regulator"):
        trace.send("requestDestruction", "distributor", codes, system.org("auditor").id, ZERO, True)
    with system.expect_revert("Trace: sender org is not the holder"):
        trace.send("requestDestruction", "pharmacy", codes, reg, ZERO, True)
    receipt = trace.send("requestDestruction", "distributor", codes[:2], reg, ZERO, True)
    assert {(ev["billType"], ev["actingOrg"], ev["counterparty"]) for ev in trace.events(receipt, "UnitEvent")} == {
        (205, dist, reg)
    }
    with system.expect_revert("Trace: unit in transit"):
        trace.ship(codes[:1], "distributor", "pharmacy")
    with system.expect_revert("Trace: org is not a regulator"):
        trace.send("confirmDestruction", "distributor", codes[:2], ZERO, True)
    receipt = trace.send("confirmDestruction", "regulator", codes, ZERO, False)
    assert _refusals(trace, receipt) == [(codes[2], 205, Refusal.NOT_IN_TRANSIT)]
    assert {(ev["actingOrg"], ev["counterparty"]) for ev in trace.events(receipt, "UnitEvent")} == {(reg, dist)}
    assert [trace.unit(c)[3] for c in codes] == [UnitState.DESTROYED, UnitState.DESTROYED, UnitState.RECEIVED]
    with system.expect_revert("Trace: unit recalled, sampled or destroyed"):
        trace.send("dispense", "pharmacy", codes[:1], ZERO, True)


def test_batch_size_is_bounded_and_suspended_orgs_cannot_move_codes(system, trace: TraceDriver) -> None:
    too_many = trace.codes(1001)
    with system.expect_revert("Trace: batch larger than 1000 codes"):
        system.transact(trace.contract.functions.register(too_many, 1, ZERO, True), "manufacturer")
    codes = trace.codes(2)
    trace.register(codes)
    gov = system.governance
    target = system.org("manufacturer").id
    receipt = system.transact(gov.functions.proposeSuspendOrg(target), "regulator")
    (created,) = system.events(receipt, gov, "ProposalCreated")
    for name in (n for n in system.orgs if n not in ("regulator", "manufacturer")):
        if not system.call(gov.functions.orgActive(target)):
            break
        system.transact(gov.functions.vote(created["id"], True), name)
    assert system.call(gov.functions.orgActive(target)) is False
    with system.expect_revert("Trace: sender org is not active"):
        trace.ship(codes, "manufacturer", "distributor")
    with system.expect_revert("Trace: counterparty is not an active supply-chain org"):
        trace.ship(codes, "distributor", "manufacturer")


def test_refusal_texts_match_the_enum(system, trace: TraceDriver) -> None:
    texts = [trace.contract.functions.refusalText(int(r)).call() for r in Refusal]
    assert texts[0] == "" and all(t.startswith("Trace: ") for t in texts[1:])
    assert len(set(texts)) == len(texts)
