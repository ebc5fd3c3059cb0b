"""Derived data stays under its source owner's control, and data-sharing ids are their creator's: each test is an
attack that worked before — a recipient allowed only to process launders the data through a "derived" dataset it
owns (the source's own content commitment, a public open plan it grants itself, still open after the owner revoked
the plan and destroyed the source), or a member claims the id another organisation is about to use."""

from __future__ import annotations

from _data_sharing_support import (
    AUTH,
    DS,
    OPEN,
    PROCESS,
    SHARE,
    STORE,
    ZERO,
    bit,
    collect,
    derive,
    dsl,
    grant,
    log,
    nid,
    record,
    share,
)
from _env_sharing_support import change_roles

from shancheng.sdk.crypto import sm3
from shancheng.testing import ORG_DEPARTMENT, System

P = nid("department2", b"derived by the recipient")
P2 = nid("department2", b"derived again by the recipient")


def public_open(system: System, dataset: bytes, auth: bytes, org: str = "department2") -> None:
    """``org`` grants the public an OPEN plan on ``dataset`` and opens it."""
    grant(system, auth, dataset, recipient=0, steps=bit(OPEN), sender=org)
    share(system, OPEN, auth, 0, dataset, sender=org)


def test_a_derived_copy_of_the_source_commitment_is_refused(system: System) -> None:
    collect(system)
    grant(system, steps=bit(PROCESS))
    source = dsl(system).functions.datasetVersion(DS, 1).call()[0]
    with system.expect_revert("DSL: derived commitment equals the source's"):
        derive(system, DS, P, plan=AUTH, commitment=source)
    with system.expect_revert("DSL: derived commitment equals the source's"):  # the owner's own versions too
        log(system, record(system, PROCESS, generated=DS, commitment=source))


def test_a_recipient_cannot_open_a_derivative_beyond_its_plan(system: System) -> None:
    contract = dsl(system)
    collect(system)
    grant(system, steps=bit(PROCESS))  # the recipient may process, nothing else
    derive(system, DS, P, plan=AUTH)
    ds = contract.functions.dataset(P).call()
    assert (ds[0], ds[5], ds[6], ds[7], ds[8]) == (system.org("department2").id, DS, AUTH, AUTH, 1)
    with system.expect_revert("DSL: source authorisation does not cover this step"):
        public_open(system, P, nid("department2", b"public"))
    with system.expect_revert("DSL: source authorisation does not cover this step"):
        grant(system, nid("department2", b"to a hospital"), P, recipient="hospital", steps=bit(SHARE),
              sender="department2")
    # what the recipient derives from its derivative answers to the same plan
    derive(system, P, P2)
    assert contract.functions.dataset(P2).call()[5:9] == (P, ZERO, AUTH, 1)
    with system.expect_revert("DSL: source authorisation does not cover this step"):
        public_open(system, P2, nid("department2", b"public 2"))
    assert contract.functions.recipientsOf(P).call() == [] and contract.functions.recipientsOf(P2).call() == []


def test_revoking_the_plan_freezes_the_derivative(system: System) -> None:
    contract = dsl(system)
    collect(system)
    grant(system, steps=bit(PROCESS, OPEN))
    derive(system, DS, P, plan=AUTH)
    public = nid("department2", b"public")
    public_open(system, P, public)  # allowed while the source owner's plan covers opening
    assert contract.functions.frozen(P).call() is False
    system.transact(contract.functions.revokeAuthorisation(AUTH), "department")
    assert contract.functions.frozen(P).call() is True
    with system.expect_revert("DSL: source authorisation revoked"):
        share(system, OPEN, public, 0, P, sender="department2")
    with system.expect_revert("DSL: source authorisation revoked"):
        log(system, record(system, STORE, P, staff="department2_operator"), "department2")
    with system.expect_revert("DSL: source authorisation revoked"):
        grant(system, nid("department2", b"public again"), P, recipient=0, steps=bit(OPEN), sender="department2")
    log(system, record(system, 11, P, staff="department2_operator"), "department2")  # destroying it stays possible
    assert contract.functions.destruction(P).call()[0] is True


def test_destroying_the_source_freezes_every_derivative(system: System) -> None:
    contract = dsl(system)
    collect(system)
    grant(system, steps=bit(PROCESS, SHARE))
    derive(system, DS, P, plan=AUTH)
    derive(system, P, P2)  # the recipient's own derivative of the derivative
    to_hospital = nid("department2", b"to a hospital")
    grant(system, to_hospital, P2, recipient="hospital", steps=bit(SHARE), sender="department2")
    share(system, SHARE, to_hospital, "hospital", P2, sender="department2")
    log(system, record(system, 11, DS))  # the source owner destroys the source
    assert contract.functions.frozen(P).call() is True and contract.functions.frozen(P2).call() is True
    for dataset in (P, P2):
        with system.expect_revert("DSL: source dataset destroyed"):
            log(system, record(system, STORE, dataset, staff="department2_operator"), "department2")
    with system.expect_revert("DSL: source dataset destroyed"):
        share(system, SHARE, to_hospital, "hospital", P2, sender="department2")
    assert contract.functions.recipientsOf(P2).call() == [system.org("hospital").id]


def test_an_expired_plan_freezes_the_derivative(system: System) -> None:
    contract = dsl(system)
    collect(system)
    grant(system, steps=bit(PROCESS, OPEN), expires_in=3600)
    derive(system, DS, P, plan=AUTH)
    system.advance_time(3600)
    assert contract.functions.frozen(P).call() is True
    with system.expect_revert("DSL: source authorisation expired"):
        public_open(system, P, nid("department2", b"public"))


def test_a_third_party_derivative_answers_to_every_source_owner(system: System) -> None:
    """department -> department2 (plan AUTH) -> hospital2 (plan of department2): the third party is held to both."""
    contract = dsl(system)
    change_roles(system, "hospital2", ORG_DEPARTMENT)
    collect(system)
    grant(system, steps=bit(PROCESS, SHARE))
    derive(system, DS, P, plan=AUTH)
    onward = nid("department2", b"onward plan")
    with system.expect_revert("DSL: source authorisation does not cover this step"):
        grant(system, onward, P, recipient="hospital2", steps=bit(PROCESS, OPEN), sender="department2")
    grant(system, onward, P, recipient="hospital2", steps=bit(PROCESS), sender="department2")
    q = nid("hospital2", b"third-party product")
    derive(system, P, q, by="hospital2", plan=onward)
    assert contract.functions.dataset(q).call()[5:9] == (P, onward, onward, 2)
    with system.expect_revert("DSL: source authorisation does not cover this step"):
        public_open(system, q, nid("hospital2", b"public"), org="hospital2")
    system.transact(contract.functions.revokeAuthorisation(AUTH), "department")  # the first owner's plan
    assert contract.functions.frozen(q).call() is True
    with system.expect_revert("DSL: source authorisation revoked"):
        log(system, record(system, STORE, q, staff="hospital2_operator"), "hospital2")


def test_a_derivation_chain_is_bounded(system: System) -> None:
    contract = dsl(system)
    depth = contract.functions.MAX_CONTROL_DEPTH().call()
    collect(system)
    orgs, current = ("department", "department2"), DS
    for level in range(depth + 1):  # the two departments derive from each other's derivative, in turn
        owner, deriver = orgs[level % 2], orgs[(level + 1) % 2]
        plan = nid(owner, b"plan %d" % level)
        grant(system, plan, current, recipient=deriver, steps=bit(PROCESS), sender=owner)
        new = nid(deriver, b"level %d" % (level + 1))
        if level == depth:
            with system.expect_revert("DSL: derivation chain too deep"):
                derive(system, current, new, by=deriver, plan=plan)
            break
        derive(system, current, new, by=deriver, plan=plan)
        current = new
    assert contract.functions.dataset(current).call()[8] == depth


def test_ids_are_in_the_creating_organisations_namespace(system: System) -> None:
    """A member saw another's dataset, activity or authorisation id in the mempool and used it first, so the
    owner's own transaction reverted; ids now carry their creator's org id in their first 8 bytes."""
    contract = dsl(system)
    with system.expect_revert("DSL: id not in the caller org's namespace"):
        collect(system, DS, sender="department2", staff="department2_operator")  # DS is the department's
    with system.expect_revert("DSL: id not in the caller org's namespace"):  # an activity id of another org
        log(system, record(system, 1, ZERO, 0, staff="department2_operator", org="department",
                           generated=nid("department2", b"own"), commitment=sm3(b"c")), "department2")
    collect(system)  # the department's own id, untouched
    assert contract.functions.dataset(DS).call()[0] == system.org("department").id
    with system.expect_revert("DSL: id not in the caller org's namespace"):
        grant(system, nid("department2", b"a plan id of department2"))
    grant(system)
    assert contract.functions.namespaceOf(DS).call() == system.org("department").id
