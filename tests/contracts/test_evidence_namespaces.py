"""EvidenceRegistry records live in each organisation's namespace, written as the attacks they stop: a rival that
anchors a hospital's commitment (or id) first — from the mempool, or once published — neither blocks the
hospital's anchor nor becomes the answer to "who anchored this"; a plain anchor cannot pass for a revocation."""

from __future__ import annotations

from _evidence_support import ACTIVE, KIND, REVOKED, anchor, h, item, revoke_fn, supersede_item

from shancheng.testing import System


def test_a_rival_anchoring_the_same_commitment_first_blocks_nothing_and_owns_nothing(system: System) -> None:
    ev = system.evidence
    hospital, rival = system.org("hospital").id, system.org("hospital2").id
    c = h("the hospital's record commitment, seen in the mempool")
    anchor(system, h("rival-id"), c, author="hospital2_operator", sender="hospital2")  # front-runs the hospital
    receipt = anchor(system, h("hospital-id"), c)  # reverted "commitment exists" before
    (event,) = system.events(receipt, ev, "EvidenceAnchored")
    assert (event["orgId"], event["commitment"]) == (hospital, c)
    assert ev.functions.ownersOfHash(c).call() == [rival, hospital]  # every owner, earliest first
    by_hash = ev.functions.findByHash(c).call()
    assert [(r[0], r[3], r[4]) for r in by_hash] == [
        (h("rival-id"), system.staff("hospital2_operator").address, rival),
        (h("hospital-id"), system.staff("hospital_operator").address, hospital),
    ]
    own = ev.functions.findByHashOf(hospital, c).call()
    assert (own[0], own[3], own[4], own[5]) == (h("hospital-id"), system.staff("hospital_operator").address,
                                                hospital, ACTIVE)


def test_a_rival_taking_an_id_first_does_not_take_the_hospitals_record(system: System) -> None:
    ev = system.evidence
    hospital, rival = system.org("hospital").id, system.org("hospital2").id
    id_ = h("the hospital's next record id")
    anchor(system, id_, h("rival content"), author="hospital2_operator", sender="hospital2")
    anchor(system, id_, h("hospital content"))  # reverted "id exists" before
    assert ev.functions.findById(hospital, id_).call()[1] == h("hospital content")
    assert ev.functions.findById(rival, id_).call()[1] == h("rival content")
    # each correction touches the sender's own record only
    system.transact(revoke_fn(system, id_, h("rival revocation"), h("why"), author="hospital2_operator"), "hospital2")
    assert ev.functions.findById(rival, id_).call()[5] == REVOKED
    assert ev.functions.findById(hospital, id_).call()[5] == ACTIVE


def test_an_organisation_still_anchors_an_id_or_a_commitment_once(system: System) -> None:
    anchor(system, h("once"), h("once-c"))
    with system.expect_revert("Evidence: id exists"):
        anchor(system, h("once"), h("other-c"))
    with system.expect_revert("Evidence: commitment exists"):
        anchor(system, h("other"), h("once-c"))
    anchor(system, h("other"), h("once-c"), author="hospital2_operator", sender="hospital2")


def test_only_revoke_writes_the_revocation_kind(system: System) -> None:
    ev = system.evidence
    revocation = ev.functions.REVOCATION_KIND().call()
    with system.expect_revert("Evidence: revocation kind is reserved for revoke"):
        anchor(system, h("fake"), h("fake-c"), kind=revocation)  # looked like a revocation and could never be undone
    batch = [item(system, h("b1"), h("b1-c")), item(system, h("b2"), h("b2-c"), kind=revocation)]
    with system.expect_revert("Evidence: revocation kind is reserved for revoke"):
        system.transact(ev.functions.evidenceBatch(batch), "hospital")
    anchor(system, h("r1"), h("r1-c"))
    with system.expect_revert("Evidence: revocation kind is reserved for revoke"):
        system.transact(ev.functions.supersede(h("r1"), supersede_item(system, h("r1"), h("r2"), h("r2-c"),
                                                                       kind=revocation)), "hospital")
    assert ev.functions.existsOfId(system.org("hospital").id, h("fake")).call() is False
    system.transact(revoke_fn(system, h("r1"), h("rev"), h("reason")), "hospital")
    rec = ev.functions.findById(system.org("hospital").id, h("rev")).call()
    assert (rec[2], rec[8]) == (revocation, h("r1"))
    assert KIND != revocation
