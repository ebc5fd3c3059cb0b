"""EvidenceRegistry: CMEVI single anchors, supersede/revoke, batch anchors with sequence and root chaining
(records in each organisation's namespace: test_evidence_namespaces.py)."""

from __future__ import annotations

from typing import Any

import pytest
from _evidence_support import (
    ACTIVE,
    HOSPITAL,
    KIND,
    REVOKED,
    SUPERSEDED,
    ZERO,
    anchor,
    h,
    item,
    revoke_fn,
    sign_anchor,
    supersede_item,
    tag,
)
from eth_abi import encode
from eth_utils.crypto import keccak

from shancheng.testing import GENESIS_ORGS, System

SOURCE_TAG = keccak(b"shancheng.evidence.source.v1")


def origin_hash(origin: str) -> bytes:
    """keccak256 of a checkpoint's C2SP origin line (UTF-8), as anchorBatch takes it."""
    return keccak(origin.encode())


def source_id(system: System, org: str, origin: str) -> bytes:
    """The source id of ``org``'s log ``origin``, computed off chain: keccak256(abi.encode(SOURCE_TAG, org, originHash))."""
    return keccak(encode(["bytes32", "uint64", "bytes32"], [SOURCE_TAG, system.org(org).id, origin_hash(origin)]))


def checkpoint_sig(system: System, org: str, source: bytes, seq: int, size: int, root: bytes, prev: bytes):
    """The org's checkpoint signature over the derived ``source`` id."""
    return system.sign(system.org(org), ["bytes32", "uint256", "address", "bytes32", "uint64", "uint64", "bytes32",
                                         "bytes32"],
                       [tag(system, "CHECKPOINT_TAG"), system.chain_id, system.evidence.address, source, seq, size,
                        root, prev])


def anchor_batch(system: System, origin: str, seq: int, size: int, root: bytes, prev: bytes, org: str = "hospital",
                 signer: str | None = None) -> Any:
    """anchorBatch of ``org``'s log ``origin``, the checkpoint signed by ``signer`` (default: ``org``)."""
    r, s = checkpoint_sig(system, signer or org, source_id(system, org, origin), seq, size, root, prev)
    return system.transact(system.evidence.functions.anchorBatch(origin_hash(origin), seq, root, size, prev, r, s), org)


def suspend(system: System, org: str) -> None:
    gov = system.governance
    proposer = "regulator" if org != "regulator" else "auditor"
    system.transact(gov.functions.proposeSuspendOrg(system.org(org).id), proposer)
    pid = gov.functions.proposalCount().call()
    for name, _ in GENESIS_ORGS:
        if name in (proposer, org):
            continue
        if gov.functions.proposal(pid).call()[1] != 1:
            break
        system.transact(gov.functions.vote(pid, True), name)
    assert gov.functions.orgActive(system.org(org).id).call() is False


# --------------------------------------------------------------------------------------------- single anchors
def test_anchor_and_cmevi_lookups(system: System) -> None:
    ev = system.evidence
    id_, c = h("record-1"), h("commitment-1")
    receipt = anchor(system, id_, c, metadata='{"dept":"ER"}')
    author = system.staff("hospital_operator")
    (event,) = system.events(receipt, ev, "EvidenceAnchored")
    r, s = sign_anchor(system, author, id_, c)  # a fresh signature differs (random nonce) but has the same shape
    assert (event["id"], event["commitment"], event["author"], event["orgId"]) == (id_, c, author.address, 1)
    assert len(event["r"]) == len(r) == 32 and len(event["s"]) == len(s) == 32
    assert ev.functions.existsOfId(HOSPITAL, id_).call() is True
    assert ev.functions.existsOfHash(c).call() is True
    assert ev.functions.existsOfId(HOSPITAL, h("nope")).call() is False
    assert ev.functions.existsOfHash(h("nope")).call() is False
    rec = ev.functions.findById(HOSPITAL, id_).call()
    assert [rec] == ev.functions.findByHash(c).call()
    assert rec == ev.functions.findByHashOf(HOSPITAL, c).call()
    assert ev.functions.ownersOfHash(c).call() == [HOSPITAL]
    block = system.w3.eth.get_block(receipt["blockNumber"])
    assert rec == (id_, c, KIND, author.address, 1, ACTIVE, receipt["blockNumber"], block["timestamp"], ZERO, ZERO,
                   '{"dept":"ER"}')
    assert ev.functions.recordCount().call() == 1


def test_lookups_of_unknown_records_revert(system: System) -> None:
    with system.expect_revert("Evidence: unknown id"):
        system.evidence.functions.findById(HOSPITAL, h("nope")).call()
    with system.expect_revert("Evidence: unknown hash"):
        system.evidence.functions.findByHash(h("nope")).call()
    with system.expect_revert("Evidence: unknown hash"):
        system.evidence.functions.findByHashOf(HOSPITAL, h("nope")).call()
    assert system.evidence.functions.ownersOfHash(h("nope")).call() == []


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("zero-id", "Evidence: zero id"),
        ("zero-commitment", "Evidence: zero commitment"),
        ("same-id", "Evidence: id exists"),
        ("same-commitment", "Evidence: commitment exists"),
        ("outsider", "Evidence: not a member account"),
        ("unknown-author", "Evidence: unknown author"),
        ("foreign-author", "Evidence: author not in sender's org"),
    ],
)
def test_anchor_refusals(system: System, case: str, reason: str) -> None:
    anchor(system, h("first"), h("first-c"))
    id_, c, author, sender = h("second"), h("second-c"), "hospital_operator", "hospital"
    if case == "zero-id":
        id_ = ZERO
    elif case == "zero-commitment":
        c = ZERO
    elif case == "same-id":
        id_ = h("first")
    elif case == "same-commitment":
        c = h("first-c")
    elif case == "outsider":
        sender = system.outsider
    elif case == "foreign-author":
        author = "pharmacy_operator"
    if case == "unknown-author":
        ghost = system.spare_accounts[0]
        fn = system.evidence.functions.evidence(id_, c, KIND, "", ghost, b"\x01" * 32, b"\x01" * 32)
        with system.expect_revert(reason):
            system.transact(fn, sender)
        return
    with system.expect_revert(reason):
        anchor(system, id_, c, author=author, sender=sender)


def test_inactive_author_and_suspended_org_are_refused(system: System) -> None:
    gov = system.governance
    system.transact(gov.functions.deactivateStaff(system.staff("hospital_operator").address), "hospital")
    with system.expect_revert("Evidence: author inactive"):
        anchor(system, h("a"), h("a-c"))
    suspend(system, "pharmacy")
    with system.expect_revert("Evidence: org not active"):
        anchor(system, h("b"), h("b-c"), author="pharmacy_operator", sender="pharmacy")


def test_author_signature_is_checked_where_the_precompile_exists(system: System) -> None:
    id_, c = h("signed"), h("signed-c")
    other = system.staff("doctor")  # valid staff of the same org, but not the declared author
    forged = sign_anchor(system, other, id_, c)
    wrong_fields = sign_anchor(system, system.staff("hospital_operator"), id_, h("other-c"))
    if system.gm:
        for sig in (forged, wrong_fields):
            with system.expect_revert("Evidence: bad author signature"):
                anchor(system, id_, c, signature=sig)
        anchor(system, id_, c)
    else:  # stock EVM: recorded for off-chain verification
        receipt = anchor(system, id_, c, signature=forged)
        (event,) = system.events(receipt, system.evidence, "EvidenceAnchored")
        assert (event["r"], event["s"]) == forged
    assert system.evidence.functions.existsOfId(HOSPITAL, id_).call() is True


def test_evidence_batch(system: System) -> None:
    ev = system.evidence
    items = [item(system, h(f"b{i}"), h(f"b{i}-c"), metadata=f"m{i}") for i in range(3)]
    receipt = system.transact(ev.functions.evidenceBatch(items), "hospital")
    assert [e["id"] for e in system.events(receipt, ev, "EvidenceAnchored")] == [h(f"b{i}") for i in range(3)]
    assert ev.functions.recordCount().call() == 3
    assert ev.functions.findById(HOSPITAL, h("b2")).call()[10] == "m2"
    with system.expect_revert("Evidence: empty batch"):
        system.transact(ev.functions.evidenceBatch([]), "hospital")
    dup = [item(system, h("c0"), h("c0-c")), item(system, h("c0"), h("c1-c"))]
    with system.expect_revert("Evidence: id exists"):
        system.transact(ev.functions.evidenceBatch(dup), "hospital")
    assert ev.functions.existsOfId(HOSPITAL, h("c0")).call() is False  # all or nothing
    with system.expect_revert("Evidence: not a member account"):
        system.transact(ev.functions.evidenceBatch(items), system.outsider)


# --------------------------------------------------------------------------------------------- supersede / revoke
def test_supersede_appends_a_linked_record(system: System) -> None:
    ev = system.evidence
    anchor(system, h("v1"), h("v1-c"))
    receipt = system.transact(ev.functions.supersede(h("v1"), supersede_item(system, h("v1"), h("v2"), h("v2-c"))),
                              "hospital")
    assert system.events(receipt, ev, "EvidenceSuperseded") == [{"orgId": HOSPITAL, "oldId": h("v1"),
                                                                  "newId": h("v2")}]
    old, new = ev.functions.findById(HOSPITAL, h("v1")).call(), ev.functions.findById(HOSPITAL, h("v2")).call()
    assert (old[1], old[5], old[9]) == (h("v1-c"), SUPERSEDED, h("v2"))  # the old content is unchanged
    assert (new[1], new[5], new[8], new[10]) == (h("v2-c"), ACTIVE, h("v1"), "v2")
    assert ev.functions.findByHash(h("v1-c")).call()[0][0] == h("v1")
    with system.expect_revert("Evidence: record superseded"):
        system.transact(ev.functions.supersede(h("v1"), supersede_item(system, h("v1"), h("v3"), h("v3-c"))),
                        "hospital")
    with system.expect_revert("Evidence: record superseded"):
        system.transact(revoke_fn(system, h("v1"), h("rv"), h("why")), "hospital")


def test_revoke_appends_a_revocation_record(system: System) -> None:
    ev = system.evidence
    anchor(system, h("r1"), h("r1-c"))
    receipt = system.transact(revoke_fn(system, h("r1"), h("rev1"), h("reason")), "hospital")
    assert system.events(receipt, ev, "EvidenceRevoked") == [{"orgId": HOSPITAL, "id": h("r1"),
                                                               "revocationId": h("rev1")}]
    old, rev = ev.functions.findById(HOSPITAL, h("r1")).call(), ev.functions.findById(HOSPITAL, h("rev1")).call()
    assert (old[5], old[9]) == (REVOKED, h("rev1"))
    assert (rev[1], rev[2], rev[5], rev[8]) == (h("reason"), ev.functions.REVOCATION_KIND().call(), ACTIVE, h("r1"))
    with system.expect_revert("Evidence: record revoked"):
        system.transact(revoke_fn(system, h("r1"), h("rev2"), h("reason2")), "hospital")
    with system.expect_revert("Evidence: record revoked"):
        system.transact(ev.functions.supersede(h("r1"), supersede_item(system, h("r1"), h("r2"), h("r2-c"))),
                        "hospital")
    with system.expect_revert("Evidence: revocation is final"):
        system.transact(revoke_fn(system, h("rev1"), h("rev3"), h("reason3")), "hospital")


def test_supersede_and_revoke_refusals(system: System) -> None:
    ev = system.evidence
    anchor(system, h("o1"), h("o1-c"))
    with system.expect_revert("Evidence: unknown id"):
        system.transact(ev.functions.supersede(h("zz"), supersede_item(system, h("zz"), h("n"), h("n-c"))), "hospital")
    with system.expect_revert("Evidence: unknown id"):
        system.transact(revoke_fn(system, h("zz"), h("n"), h("n-c")), "hospital")
    # another organisation's id is not in the sender's namespace: unknown there
    with system.expect_revert("Evidence: unknown id"):
        system.transact(ev.functions.supersede(h("o1"), supersede_item(system, h("o1"), h("n"), h("n-c"),
                                                                       author="hospital2_operator")), "hospital2")
    with system.expect_revert("Evidence: unknown id"):
        system.transact(revoke_fn(system, h("o1"), h("n"), h("n-c"), author="hospital2_operator"), "hospital2")
    assert system.evidence.functions.findById(HOSPITAL, h("o1")).call()[5] == ACTIVE
    with system.expect_revert("Evidence: not a member account"):
        system.transact(revoke_fn(system, h("o1"), h("n"), h("n-c")), system.outsider)
    with system.expect_revert("Evidence: id exists"):
        system.transact(ev.functions.supersede(h("o1"), supersede_item(system, h("o1"), h("o1"), h("n-c"))), "hospital")
    with system.expect_revert("Evidence: commitment exists"):
        system.transact(revoke_fn(system, h("o1"), h("n"), h("o1-c")), "hospital")
    with system.expect_revert("Evidence: author not in sender's org"):
        system.transact(revoke_fn(system, h("o1"), h("n"), h("n-c"), author="pharmacy_operator"), "hospital")
    if system.gm:
        bad = supersede_item(system, h("o1"), h("n"), h("n-c"))
        bad = (*bad[:5], bad[6], bad[5])  # r and s swapped
        with system.expect_revert("Evidence: bad author signature"):
            system.transact(ev.functions.supersede(h("o1"), bad), "hospital")
        member = system.staff("hospital_operator")
        r, s = sign_anchor(system, member, h("n"), h("n-c"))  # signed as an anchor, not as a revocation
        with system.expect_revert("Evidence: bad author signature"):
            system.transact(ev.functions.revoke(h("o1"), h("n"), h("n-c"), member.address, r, s), "hospital")


# --------------------------------------------------------------------------------------------- batch anchors
def test_batch_anchors_chain_per_source(system: System) -> None:
    ev = system.evidence
    origin = "district.example/log/gateway-1"
    src = source_id(system, "hospital", origin)
    roots = [h(f"root{i}") for i in range(1, 4)]
    receipts = [
        anchor_batch(system, origin, 1, 10, roots[0], ZERO),
        anchor_batch(system, origin, 2, 25, roots[1], roots[0]),
        anchor_batch(system, origin, 3, 26, roots[2], roots[1]),
    ]
    (event,) = system.events(receipts[1], ev, "BatchAnchored")
    assert (event["sourceId"], event["sequence"], event["root"], event["treeSize"], event["prevRoot"], event["orgId"]) \
        == (src, 2, roots[1], 25, roots[0], 1)
    assert list(ev.functions.sourceHead(src).call()) == [1, 3, 26, roots[2]]
    got = ev.functions.batchAnchor(src, 2).call()
    block = system.w3.eth.get_block(receipts[1]["blockNumber"])
    assert list(got) == [roots[1], 25, roots[0], 1, receipts[1]["blockNumber"], block["timestamp"]]
    assert list(ev.functions.batchAnchor(src, 1).call())[2] == ZERO
    with system.expect_revert("Evidence: unknown batch"):
        ev.functions.batchAnchor(src, 4).call()
    # another source of another org runs its own sequence
    anchor_batch(system, "district.example/log/station-7", 1, 1, h("s-root"), ZERO, org="monitoring")
    station = source_id(system, "monitoring", "district.example/log/station-7")
    assert list(ev.functions.sourceHead(station).call())[:2] == [system.org("monitoring").id, 1]
    assert list(ev.functions.sourceHead(h("unknown")).call()) == [0, 0, 0, ZERO]


def test_source_id_is_derived_from_the_org_and_the_origin(system: System) -> None:
    """sourceIdOf matches the off-chain keccak256(abi.encode(SOURCE_TAG, orgId, keccak256(origin)))."""
    ev = system.evidence
    assert ev.functions.SOURCE_TAG().call() == SOURCE_TAG
    origin = "district.example/log/hosp-001"
    for org in ("hospital", "hospital2", "monitoring"):
        assert ev.functions.sourceIdOf(system.org(org).id, origin_hash(origin)).call() == source_id(system, org, origin)
    assert source_id(system, "hospital", origin) != source_id(system, "hospital2", origin)
    receipt = anchor_batch(system, origin, 1, 4, h("r1"), ZERO)
    (event,) = system.events(receipt, ev, "BatchAnchored")
    assert (event["sourceId"], event["orgId"]) == (source_id(system, "hospital", origin), 1)


def test_an_org_cannot_squat_another_orgs_source(system: System) -> None:
    """Hole 2: any member could claim an unclaimed sourceId first (here: org B anchoring under org A's origin
    string before A), after which A's anchors reverted "not source owner". The source id is now derived from
    the sending org: B gets its own source and A's log keeps working."""
    ev = system.evidence
    origin = "district.example/log/hosp-001"
    squat = anchor_batch(system, origin, 1, 5, h("b-root1"), ZERO, org="hospital2")  # B first, A's origin
    (b_event,) = system.events(squat, ev, "BatchAnchored")
    a_src, b_src = source_id(system, "hospital", origin), source_id(system, "hospital2", origin)
    assert b_event["sourceId"] == b_src != a_src
    assert list(ev.functions.sourceHead(a_src).call()) == [0, 0, 0, ZERO]  # A's source is untouched
    anchor_batch(system, origin, 1, 10, h("a-root1"), ZERO, org="hospital")
    anchor_batch(system, origin, 2, 12, h("a-root2"), h("a-root1"), org="hospital")
    anchor_batch(system, origin, 2, 6, h("b-root2"), h("b-root1"), org="hospital2")
    assert list(ev.functions.sourceHead(a_src).call()) == [1, 2, 12, h("a-root2")]
    assert list(ev.functions.sourceHead(b_src).call()) == [system.org("hospital2").id, 2, 6, h("b-root2")]
    # B continuing A's log (A's next sequence and prevRoot) lands in B's own source, whose head differs
    with system.expect_revert("Evidence: previous root mismatch"):
        anchor_batch(system, origin, 3, 20, h("x"), h("a-root2"), org="hospital2")
    assert list(ev.functions.sourceHead(a_src).call())[1] == 2


@pytest.mark.parametrize(
    ("seq", "size", "root", "prev", "org", "reason"),
    [
        (4, 30, "r3", "r2", "hospital", "Evidence: sequence gap"),
        (2, 30, "r3", "r1", "hospital", "Evidence: sequence replay"),
        (1, 30, "r3", "", "hospital", "Evidence: sequence replay"),
        (3, 30, "r3", "r2", "pharmacy", "Evidence: first sequence must be 1"),  # another org: its own source
    ],
    ids=["gap", "replay", "restart", "foreign-org"],
)
def test_batch_sequence_rules(system: System, seq, size, root, prev, org, reason) -> None:
    anchor_batch(system, "src", 1, 10, h("r1"), ZERO)
    anchor_batch(system, "src", 2, 20, h("r2"), h("r1"))
    prev_root = h(prev) if prev else ZERO
    with system.expect_revert(reason):
        anchor_batch(system, "src", seq, size, h(root), prev_root, org=org)


@pytest.mark.parametrize(
    ("source", "seq", "size", "root", "prev", "reason"),
    [
        ("new", 2, 5, "x", "", "Evidence: first sequence must be 1"),
        ("new", 0, 5, "x", "", "Evidence: first sequence must be 1"),
        ("new", 1, 5, "x", "r1", "Evidence: previous root mismatch"),
        ("new", 1, 0, "x", "", "Evidence: tree must grow"),
        ("src", 3, 30, "x", "r1", "Evidence: previous root mismatch"),
        ("src", 3, 20, "x", "r2", "Evidence: tree must grow"),
        ("src", 3, 19, "x", "r2", "Evidence: tree must grow"),
        ("src", 3, 30, "", "r2", "Evidence: zero root"),
        ("", 1, 5, "x", "", "Evidence: zero origin"),
    ],
    ids=["first-not-1", "first-0", "first-with-prev", "empty-tree", "prev-mismatch", "same-size", "shrunk",
         "zero-root", "zero-origin"],
)
def test_batch_content_rules(system: System, source, seq, size, root, prev, reason) -> None:
    anchor_batch(system, "src", 1, 10, h("r1"), ZERO)
    anchor_batch(system, "src", 2, 20, h("r2"), h("r1"))
    root_ = h(root) if root else ZERO
    prev_ = h(prev) if prev else ZERO
    if not source:  # a zero origin hash (no origin line hashes to zero)
        r, s = checkpoint_sig(system, "hospital", h("any"), seq, size, root_, prev_)
        with system.expect_revert(reason):
            system.transact(system.evidence.functions.anchorBatch(ZERO, seq, root_, size, prev_, r, s), "hospital")
        return
    with system.expect_revert(reason):
        anchor_batch(system, source, seq, size, root_, prev_)


def test_batch_anchor_needs_a_member(system: System) -> None:
    r, s = checkpoint_sig(system, "hospital", source_id(system, "hospital", "src"), 1, 1, h("r"), ZERO)
    fn = system.evidence.functions.anchorBatch(origin_hash("src"), 1, h("r"), 1, ZERO, r, s)
    with system.expect_revert("Evidence: not a member account"):
        system.transact(fn, system.outsider)
    suspend(system, "hospital")
    with system.expect_revert("Evidence: org not active"):
        system.transact(fn, "hospital")


def test_checkpoint_signature_is_the_orgs_where_the_precompile_exists(system: System) -> None:
    ev = system.evidence
    src = source_id(system, "hospital", "src")
    if system.gm:
        with system.expect_revert("Evidence: bad checkpoint signature"):
            anchor_batch(system, "src", 1, 10, h("r1"), ZERO, signer="pharmacy")  # signed by another org's key
        wrong = [
            checkpoint_sig(system, "hospital", src, 1, 11, h("r1"), ZERO),  # signed a different tree size
            checkpoint_sig(system, "hospital", origin_hash("src"), 1, 10, h("r1"), ZERO),  # the origin, not the id
            checkpoint_sig(system, "hospital", source_id(system, "hospital2", "src"), 1, 10, h("r1"), ZERO),
        ]
        for r, s in wrong:
            with system.expect_revert("Evidence: bad checkpoint signature"):
                system.transact(ev.functions.anchorBatch(origin_hash("src"), 1, h("r1"), 10, ZERO, r, s), "hospital")
        anchor_batch(system, "src", 1, 10, h("r1"), ZERO)
    else:
        receipt = anchor_batch(system, "src", 1, 10, h("r1"), ZERO, signer="pharmacy")
        (event,) = system.events(receipt, ev, "BatchAnchored")
        assert len(event["r"]) == 32 and event["r"] != ZERO
    assert list(ev.functions.sourceHead(src).call())[1] == 1


def test_registry_requires_a_governance(system: System) -> None:
    with system.expect_revert("Evidence: zero governance"):
        system.deploy_contract("EvidenceRegistry", "0x" + "00" * 20)
