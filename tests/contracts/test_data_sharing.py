"""DataSharingLog on both EVMs: datasets, authorisations (plans), lifecycle activities and their PROV trail."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from _data_sharing_support import (
    ANALYZE,
    AUTH,
    AUTH2,
    COLLECT,
    DESTROY,
    DS,
    DS2,
    EXCHANGE,
    MANAGE,
    OPEN,
    PROCESS,
    PRODUCT,
    PUBLIC_AUTH,
    SETTLE,
    SHARE,
    STORE,
    TRANSMIT,
    ZERO,
    bit,
    collect,
    dsl,
    grant,
    log,
    nid,
    record,
    share,
)
from _env_sharing_support import activity_preimage, sign_preimage, suspend_org, verify_preimage

from shancheng.sdk.client import Contract
from shancheng.sdk.crypto import InvalidSignature, sm3
from shancheng.sdk.domain.events import ChainEvent, receipt_events
from shancheng.sdk.domain.prov import DATA_SHARING_EVENTS, Provenance
from shancheng.testing import STAFF_COURIER, STAFF_OPERATOR, System


@pytest.fixture
def collected(system: System) -> System:
    collect(system)
    return system


@pytest.fixture
def shared(collected: System) -> bytes:
    """DS collected, AUTH (share + analyze) granted to department2 and shared; returns the share's id."""
    grant(collected)
    receipt = share(collected)
    (ev,) = collected.events(receipt, dsl(collected), "ActivityLogged")
    return ev["activityId"]


# ---------------------------------------------------------------------------------- collect
def test_collect_creates_an_attributed_signed_dataset(system: System) -> None:
    contract = dsl(system)
    rec = record(system, COLLECT, ZERO, 0, generated=DS, commitment=sm3(b"content"))
    preimage = activity_preimage(system.chain_id, contract.address, rec)
    assert contract.functions.activityPreimage(rec).call() == preimage
    receipt = log(system, rec)
    dept = system.org("department").id
    staff = system.staff("department_operator").address
    assert contract.functions.dataset(DS).call()[:2] == (dept, 1)
    version = contract.functions.datasetVersion(DS, 1).call()
    assert (version[0], version[1], version[2], version[3]) == (sm3(b"content"), rec[0], ZERO, 0)
    (logged,) = system.events(receipt, contract, "ActivityLogged")
    assert (logged["activityId"], logged["step"], logged["org"]) == (rec[0], COLLECT, dept)
    assert logged["signatureVerified"] is system.gm
    verify_preimage(system.staff("department_operator").public_key, preimage, logged["r"], logged["s"])
    assert system.events(receipt, contract, "DatasetCreated") == [{"datasetId": DS, "ownerOrg": dept, "activityId": rec[0]}]
    assert system.events(receipt, contract, "WasGeneratedBy") == [
        {"datasetId": DS, "version": 1, "activityId": rec[0], "commitment": sm3(b"content")}]
    assert system.events(receipt, contract, "WasAttributedTo") == [{"datasetId": DS, "version": 1, "orgId": dept}]
    assert system.events(receipt, contract, "WasAssociatedWith") == [{"activityId": rec[0], "staff": staff, "plan": ZERO}]
    assert system.events(receipt, contract, "ActedOnBehalfOf") == [{"staff": staff, "orgId": dept, "activityId": rec[0]}]
    assert system.events(receipt, contract, "Used") == []
    assert contract.functions.activity(rec[0]).call()[:3] == (COLLECT, dept, 0)


def test_only_departments_with_their_own_operators_log(system: System) -> None:
    with system.expect_revert("DSL: caller is not a member account"):
        collect(system, sender=system.outsider)
    with system.expect_revert("DSL: caller org is not a department"):
        collect(system, sender="hospital", staff="hospital_operator")
    with system.expect_revert("DSL: staff is not of the caller org"):
        collect(system, staff="department2_operator")
    system.register_staff("dept_courier", "department", STAFF_COURIER)
    with system.expect_revert("DSL: staff is not an operator"):
        collect(system, staff="dept_courier")
    clerk = system.register_staff("dept_clerk", "department", STAFF_OPERATOR)
    system.transact(system.governance.functions.deactivateStaff(clerk.address), "department")
    with system.expect_revert("DSL: staff inactive"):
        collect(system, staff="dept_clerk")
    suspend_org(system, "department2")
    with system.expect_revert("DSL: caller org inactive"):
        collect(system, DS2, sender="department2", staff="department2_operator")


def test_bad_staff_signature_is_refused_on_chain_or_flagged_off_chain(system: System) -> None:
    contract = dsl(system)
    rec = record(system, COLLECT, ZERO, 0, generated=DS, commitment=sm3(b"content"))
    if system.gm:
        with system.expect_revert("DSL: invalid staff signature"):
            log(system, rec, signer="department2_operator")
        tampered = rec[:12] + (sm3(b"other content"),)
        sig = sign_preimage(system.staff("department_operator").key, activity_preimage(system.chain_id, contract.address, rec))
        with system.expect_revert("DSL: invalid staff signature"):
            log(system, tampered, sig=sig)
    else:
        (ev,) = system.events(log(system, rec, signer="department2_operator"), contract, "ActivityLogged")
        assert ev["signatureVerified"] is False
        with pytest.raises(InvalidSignature):
            verify_preimage(system.staff("department_operator").public_key,
                            activity_preimage(system.chain_id, contract.address, rec), ev["r"], ev["s"])
    with system.expect_revert("DSL: missing staff signature"):
        log(system, record(system, COLLECT, ZERO, 0, generated=DS2, commitment=sm3(b"x")), sig=(b"\x01" * 32, ZERO))


@pytest.mark.parametrize(
    "over,reason",
    [
        ({"step": 0}, "DSL: unknown lifecycle step"),
        ({"step": 12}, "DSL: unknown lifecycle step"),
        ({"id": ZERO}, "DSL: activity id is zero"),
        ({"started": 10**10}, "DSL: bad activity time range"),
        ({"ended": 10**10, "started": 0}, "DSL: bad activity time range"),
        ({"informed_by": sm3(b"nothing")}, "DSL: unknown informing activity"),
        ({"dataset": DS2}, "DSL: collect uses no dataset"),
        ({"version": 1}, "DSL: collect uses no dataset"),
        ({"plan": AUTH}, "DSL: step takes no authorisation"),
        ({"recipient": 12}, "DSL: step has no recipient"),
        ({"generated": ZERO}, "DSL: collect must generate a dataset"),
        ({"commitment": ZERO}, "DSL: empty commitment"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_malformed_collect_is_refused(system: System, over: dict, reason: str) -> None:
    fields = {"generated": DS, "commitment": sm3(b"c")}
    fields.update(over)
    dataset, version = fields.pop("dataset", ZERO), fields.pop("version", 0)
    step = fields.pop("step", COLLECT)
    with system.expect_revert(reason):
        log(system, record(system, step, dataset, version, **fields))


def test_dataset_and_activity_ids_are_unique(collected: System) -> None:
    system = collected
    with system.expect_revert("DSL: dataset already exists"):
        collect(system)
    rec = record(system, STORE)
    log(system, rec)
    with system.expect_revert("DSL: activity id already used"):
        log(system, rec)


# ---------------------------------------------------------------------------------- owner steps
@pytest.mark.parametrize("step", [TRANSMIT, STORE, MANAGE])
def test_owner_steps(collected: System, step: int) -> None:
    system = collected
    rec = record(system, step)
    receipt = log(system, rec)
    assert system.events(receipt, dsl(system), "Used") == [{"activityId": rec[0], "datasetId": DS, "version": 1}]
    with system.expect_revert("DSL: caller org is not the dataset owner"):
        log(system, record(system, step, staff="department2_operator"), "department2")
    with system.expect_revert("DSL: step takes no authorisation"):
        log(system, record(system, step, plan=AUTH))
    with system.expect_revert("DSL: step has no recipient"):
        log(system, record(system, step, recipient=system.org("department2").id))
    with system.expect_revert("DSL: step generates no dataset"):
        log(system, record(system, step, generated=DS2, commitment=sm3(b"c")))


def test_use_needs_a_known_dataset_version(collected: System) -> None:
    system = collected
    with system.expect_revert("DSL: unknown dataset"):
        log(system, record(system, STORE, DS2))
    for version in (0, 2):
        with system.expect_revert("DSL: unknown dataset version"):
            log(system, record(system, STORE, version=version))


def test_owner_processes_a_new_version(collected: System) -> None:
    system = collected
    contract = dsl(system)
    rec = record(system, PROCESS, generated=DS, commitment=sm3(b"cleaned content"))
    receipt = log(system, rec)
    assert contract.functions.dataset(DS).call()[1] == 2
    assert contract.functions.datasetVersion(DS, 2).call()[:4] == (sm3(b"cleaned content"), rec[0], DS, 1)
    assert system.events(receipt, contract, "WasDerivedFrom") == [
        {"datasetId": DS, "version": 2, "sourceDatasetId": DS, "sourceVersion": 1}]
    log(system, record(system, STORE, version=2))
    with system.expect_revert("DSL: step takes no authorisation"):
        log(system, record(system, ANALYZE, plan=AUTH))
    with system.expect_revert("DSL: empty commitment"):
        log(system, record(system, PROCESS, generated=DS))


# ---------------------------------------------------------------------------------- authorisations
def test_owner_grants_and_auditors_list_authorisations(collected: System) -> None:
    system = collected
    contract = dsl(system)
    receipt = grant(system)
    (ev,) = system.events(receipt, contract, "AuthorisationGranted")
    dept2 = system.org("department2").id
    assert (ev["authorisationId"], ev["datasetId"], ev["recipientOrg"], ev["allowedSteps"]) == (AUTH, DS, dept2,
                                                                                                 bit(SHARE, ANALYZE))
    grant(system, AUTH2, recipient=0, steps=bit(OPEN))
    assert contract.functions.authorisationsOf(DS).call() == [AUTH, AUTH2]
    au = contract.functions.authorisation(AUTH).call()
    assert (au[0], au[1], au[2], au[3], au[6]) == (DS, dept2, 7, bit(SHARE, ANALYZE), 0)
    assert au[5] == ev["expiresAt"] and au[4] > 0
    assert contract.functions.authorisationValid(AUTH).call() is True


def test_grant_refusals(collected: System) -> None:
    system = collected
    with system.expect_revert("DSL: caller org is not the dataset owner"):
        grant(system, sender="department2")
    with system.expect_revert("DSL: caller is not a member account"):
        grant(system, sender=system.outsider)
    with system.expect_revert("DSL: unknown dataset"):
        grant(system, dataset=DS2)
    with system.expect_revert("DSL: authorisation id is zero"):
        grant(system, auth=ZERO)
    for steps in (0, bit(STORE), bit(SHARE, DESTROY), 1):
        with system.expect_revert("DSL: bad authorisation step scope"):
            grant(system, steps=steps)
    with system.expect_revert("DSL: a public authorisation may only open"):
        grant(system, recipient=0, steps=bit(SHARE, OPEN))
    with system.expect_revert("DSL: recipient is the owner"):
        grant(system, recipient="department")
    with system.expect_revert("DSL: recipient org inactive"):
        grant(system, recipient=99)
    with system.expect_revert("DSL: expiry not in the future"):
        grant(system, expires_in=-1)
    grant(system)
    with system.expect_revert("DSL: authorisation id already used"):
        grant(system, recipient="hospital")


def test_owner_revokes(collected: System) -> None:
    system = collected
    grant(system)
    with system.expect_revert("DSL: caller org is not the dataset owner"):
        system.transact(dsl(system).functions.revokeAuthorisation(AUTH), "department2")
    with system.expect_revert("DSL: unknown authorisation"):
        system.transact(dsl(system).functions.revokeAuthorisation(AUTH2), "department")
    receipt = system.transact(dsl(system).functions.revokeAuthorisation(AUTH), "department")
    (ev,) = system.events(receipt, dsl(system), "AuthorisationRevoked")
    assert (ev["authorisationId"], ev["datasetId"]) == (AUTH, DS)
    assert dsl(system).functions.authorisation(AUTH).call()[6] == ev["at"] > 0
    assert dsl(system).functions.authorisationValid(AUTH).call() is False
    with system.expect_revert("DSL: authorisation already revoked"):
        system.transact(dsl(system).functions.revokeAuthorisation(AUTH), "department")
    with system.expect_revert("DSL: authorisation revoked"):
        share(system)


# ---------------------------------------------------------------------------------- share / open / exchange
def test_authorised_share_exchange_and_open_record_recipients(collected: System) -> None:
    system = collected
    contract = dsl(system)
    grant(system)
    receipt = share(system)
    (ev,) = system.events(receipt, contract, "ActivityLogged")
    assert system.events(receipt, contract, "WasAssociatedWith")[0]["plan"] == AUTH
    assert ev["record"]["recipientOrg"] == system.org("department2").id
    grant(system, AUTH2, recipient="hospital", steps=bit(EXCHANGE, OPEN))
    share(system, EXCHANGE, AUTH2, "hospital")
    share(system, OPEN, AUTH2, "hospital")
    grant(system, PUBLIC_AUTH, recipient=0, steps=bit(OPEN))
    share(system, OPEN, PUBLIC_AUTH, 0)
    share(system)  # a second share to the same recipient lists it once
    assert contract.functions.recipientsOf(DS).call() == [system.org("department2").id, system.org("hospital").id, 0]


def test_share_without_a_valid_authorisation_is_refused(collected: System) -> None:
    system = collected
    grant(system)  # share + analyze to department2
    grant(system, AUTH2, recipient="hospital", steps=bit(ANALYZE))
    collect(system, DS2)
    grant(system, nid("department", b"ds2"), dataset=DS2)
    with system.expect_revert("DSL: authorisation required"):
        share(system, plan=ZERO)
    with system.expect_revert("DSL: unknown authorisation"):
        share(system, plan=sm3(b"forged"))
    with system.expect_revert("DSL: authorisation is for another dataset"):
        share(system, plan=nid("department", b"ds2"))
    with system.expect_revert("DSL: authorisation is for another recipient"):
        share(system, recipient="hospital")
    with system.expect_revert("DSL: authorisation does not cover this step"):
        share(system, plan=AUTH2, recipient="hospital")
    with system.expect_revert("DSL: authorisation does not cover this step"):
        share(system, EXCHANGE)
    with system.expect_revert("DSL: share needs a recipient org"):
        share(system, recipient=0)
    with system.expect_revert("DSL: caller org is not the dataset owner"):
        log(system, record(system, SHARE, plan=AUTH, recipient=system.org("department2").id,
                           staff="department2_operator"), "department2")
    with system.expect_revert("DSL: authorisation is for another recipient"):
        share(system, OPEN, recipient=0)
    assert dsl(system).functions.recipientsOf(DS).call() == []


def test_share_to_a_suspended_org_is_refused(collected: System) -> None:
    """Issue 8: a suspended organisation receives nothing: SHARE, EXCHANGE and OPEN to it revert, even under
    authorisations granted while it was active."""
    system = collected
    grant(system)  # share + analyze to department2
    grant(system, AUTH2, steps=bit(EXCHANGE, OPEN))
    share(system)  # while department2 is active
    suspend_org(system, "department2")
    for step, plan in ((SHARE, AUTH), (EXCHANGE, AUTH2), (OPEN, AUTH2)):
        with system.expect_revert("DSL: recipient org inactive"):
            share(system, step, plan)
    assert dsl(system).functions.recipientsOf(DS).call() == [system.org("department2").id]
    grant(system, PUBLIC_AUTH, recipient=0, steps=bit(OPEN))
    share(system, OPEN, PUBLIC_AUTH, 0)  # opening to the public is not a share to an org


def test_expired_authorisation_is_refused_after_time_travel(collected: System) -> None:
    system = collected
    grant(system, expires_in=3600)
    share(system)
    expires_at = dsl(system).functions.authorisation(AUTH).call()[5]
    system.advance_time(expires_at - 30 - system.now())
    assert dsl(system).functions.authorisationValid(AUTH).call() is True
    share(system)
    system.advance_time(expires_at - system.now())
    assert dsl(system).functions.authorisationValid(AUTH).call() is False
    with system.expect_revert("DSL: authorisation expired"):
        share(system)
    with system.expect_revert("DSL: authorisation expired"):
        log(system, record(system, ANALYZE, plan=AUTH, staff="department2_operator"), "department2")


# ---------------------------------------------------------------------------------- derive / settle
def test_recipient_derives_a_product_under_the_plan(shared: bytes, system: System) -> None:
    contract = dsl(system)
    dept2 = system.org("department2").id
    rec = record(system, ANALYZE, plan=AUTH, staff="department2_operator", generated=PRODUCT,
                 commitment=sm3(b"correlation table"), informed_by=shared)
    receipt = log(system, rec, "department2")
    assert contract.functions.dataset(PRODUCT).call()[:2] == (dept2, 1)
    assert system.events(receipt, contract, "WasDerivedFrom") == [
        {"datasetId": PRODUCT, "version": 1, "sourceDatasetId": DS, "sourceVersion": 1}]
    assert system.events(receipt, contract, "WasInformedBy") == [{"activityId": rec[0], "informant": shared}]
    assert system.events(receipt, contract, "WasAttributedTo") == [{"datasetId": PRODUCT, "version": 1, "orgId": dept2}]
    with system.expect_revert("DSL: authorisation required"):
        log(system, record(system, ANALYZE, staff="department2_operator"), "department2")
    with system.expect_revert("DSL: authorisation does not cover this step"):
        log(system, record(system, PROCESS, plan=AUTH, staff="department2_operator"), "department2")
    with system.expect_revert("DSL: only the owner versions a dataset"):
        log(system, record(system, ANALYZE, plan=AUTH, staff="department2_operator", generated=DS,
                           commitment=sm3(b"x")), "department2")
    with system.expect_revert("DSL: caller org is not the dataset owner"):
        log(system, record(system, STORE, staff="department2_operator"), "department2")


def test_settlement_follows_a_share_between_its_parties(shared: bytes, system: System) -> None:
    rec = record(system, SETTLE, staff="department2_operator", informed_by=shared)
    receipt = log(system, rec, "department2")
    assert system.events(receipt, dsl(system), "WasInformedBy") == [{"activityId": rec[0], "informant": shared}]
    log(system, record(system, SETTLE, informed_by=shared))  # the owner settles too
    with system.expect_revert("DSL: settle must follow a share of this dataset"):
        log(system, record(system, SETTLE))
    store = record(system, STORE)
    log(system, store)
    with system.expect_revert("DSL: settle must follow a share of this dataset"):
        log(system, record(system, SETTLE, informed_by=store[0]))
    with system.expect_revert("DSL: step takes no authorisation"):
        log(system, record(system, SETTLE, informed_by=shared, plan=AUTH))
    grant(system, AUTH2, recipient="hospital", steps=bit(SHARE))
    (to_hospital,) = system.events(share(system, plan=AUTH2, recipient="hospital"), dsl(system), "ActivityLogged")
    with system.expect_revert("DSL: caller org is not a party to the share"):
        log(system, record(system, SETTLE, staff="department2_operator", informed_by=to_hospital["activityId"]),
            "department2")
    collect(system, DS2)
    with system.expect_revert("DSL: settle must follow a share of this dataset"):
        log(system, record(system, SETTLE, DS2, informed_by=shared))


# ---------------------------------------------------------------------------------- destroy
def test_destruction_invalidates_every_later_use(shared: bytes, system: System) -> None:
    contract = dsl(system)
    with system.expect_revert("DSL: caller org is not the dataset owner"):
        log(system, record(system, DESTROY, staff="department2_operator"), "department2")
    rec = record(system, DESTROY)
    receipt = log(system, rec)
    (inv,) = system.events(receipt, contract, "WasInvalidatedBy")
    assert (inv["datasetId"], inv["activityId"]) == (DS, rec[0])
    assert contract.functions.destruction(DS).call() == [True, inv["at"], rec[0]]
    assert contract.functions.destruction(DS2).call() == [False, 0, ZERO]
    assert contract.functions.authorisationValid(AUTH).call() is False
    for step, sender, staff, extra in (
        (STORE, "department", "department_operator", {}),
        (SHARE, "department", "department_operator", {"plan": AUTH, "recipient": system.org("department2").id}),
        (ANALYZE, "department2", "department2_operator", {"plan": AUTH}),
        (SETTLE, "department2", "department2_operator", {"informed_by": shared}),
        (DESTROY, "department", "department_operator", {}),
    ):
        with system.expect_revert("DSL: dataset destroyed"):
            log(system, record(system, step, staff=staff, **extra), sender)
    with system.expect_revert("DSL: dataset destroyed"):
        grant(system, AUTH2)


# ---------------------------------------------------------------------------------- PROV trail
def chain_events(system: System, receipts: list[Any]) -> list[ChainEvent]:
    """The DataSharingLog events of ``receipts``, decoded by the SDK as the provenance fold takes them."""
    contract = Contract.load("DataSharingLog", address=dsl(system).address)
    events = []
    for receipt in receipts:
        logs = [{"address": log["address"], "topics": ["0x" + bytes(t).hex() for t in log["topics"]],
                 "data": "0x" + bytes(log["data"]).hex(), "blockNumber": hex(log["blockNumber"]),
                 "logIndex": hex(log["logIndex"]), "transactionHash": "0x" + bytes(log["transactionHash"]).hex()}
                for log in receipt["logs"]]
        events += receipt_events(contract, SimpleNamespace(logs=logs), DATA_SHARING_EVENTS)
    return events


def test_a_lifecycle_reads_back_as_a_prov_trail(system: System) -> None:
    """The contract's events carry a whole PROV trail: the SDK's fold (shancheng.sdk.domain.prov) reads it back."""
    d1, d2 = system.org("department").id, system.org("department2").id
    op1, op2 = system.staff("department_operator").address, system.staff("department2_operator").address
    receipts = [collect(system), log(system, record(system, STORE)), grant(system)]
    receipts.append(share(system))
    share_id = system.events(receipts[-1], dsl(system), "ActivityLogged")[0]["activityId"]
    analysis = record(system, ANALYZE, plan=AUTH, staff="department2_operator", generated=PRODUCT,
                      commitment=sm3(b"result"), informed_by=share_id)
    receipts.append(log(system, analysis, "department2"))
    receipts.append(log(system, record(system, SETTLE, staff="department2_operator", informed_by=share_id),
                        "department2"))
    destroy = record(system, DESTROY)
    receipts.append(log(system, destroy))
    doc = json.loads(Provenance.from_events(DS, chain_events(system, receipts)).to_prov_json())

    def ent(ds: bytes) -> str:
        return f"sc:dataset/{ds.hex()}/v1"

    def val(literal: Any) -> Any:  # PROV-JSON writes typed literals as {"$": text, "type": ...}
        return literal["$"] if isinstance(literal, dict) else literal

    activities = sorted(doc["activity"].items(), key=lambda kv: int(val(kv[1]["sc:block"])))
    assert [val(a["prov:type"]) for _, a in activities] == [
        "sc:collect", "sc:store", "sc:share", "sc:analyze", "sc:settle", "sc:destroy"]
    assert all(a["sc:signatureVerifiedOnChain"] is system.gm for _, a in activities)
    assert {e for e in doc["entity"] if e.startswith("sc:dataset/")} == {ent(DS), ent(PRODUCT)}
    assert f"sc:authorisation/{AUTH.hex()}" in doc["entity"]
    assert [(d["prov:generatedEntity"], d["prov:usedEntity"]) for d in doc["wasDerivedFrom"].values()] == [
        (ent(PRODUCT), ent(DS))]
    assert sorted(t["prov:agent"] for t in doc["wasAttributedTo"].values()) == sorted([f"sc:org/{d1}", f"sc:org/{d2}"])
    plans = sorted(a.get("prov:plan", "") for a in doc["wasAssociatedWith"].values())
    assert plans == [""] * 4 + [f"sc:authorisation/{AUTH.hex()}"] * 2
    delegations = sorted((b["prov:delegate"], b["prov:responsible"]) for b in doc["actedOnBehalfOf"].values())
    assert delegations == sorted([(f"sc:staff/{op1}", f"sc:org/{d1}")] * 4 + [(f"sc:staff/{op2}", f"sc:org/{d2}")] * 2)
    assert len(doc["used"]) == 5 and len(doc["wasInformedBy"]) == 2
    (invalidation,) = doc["wasInvalidatedBy"].values()
    assert invalidation["prov:activity"] == f"sc:activity/{destroy[0].hex()}"
    assert {val(a["prov:type"]) for a in doc["agent"].values()} == {"prov:Person", "prov:Organization"}