"""DataSharing domain client on a real solo node: a dataset's lifecycle, its authorisations and its provenance."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from prov.model import ProvDocument

from shancheng.sdk.client import Client
from shancheng.sdk.crypto import SM2PrivateKey, sm3
from shancheng.sdk.domain import DomainRefused, StaffRole, doc_commitment, new_salt, register_staff, staff_address
from shancheng.sdk.domain.datasharing import PUBLIC, DataSharing, Step, namespaced_id
from shancheng.sdk.domain.prov import NAMESPACE
from shancheng.sdk.errors import InvalidInput, InvalidSignature

DAY = 86400


@dataclass
class Parties:
    sharing: DataSharing  # the department's client
    operator: SM2PrivateKey  # a registered operator of the department
    department: int
    hospital: int
    regulator: int
    auditor: int

    def now(self) -> int:
        return self.sharing._block_time()


@pytest.fixture(scope="module")
def parties(domain_node: Any) -> Parties:
    department: Client = domain_node.client("department")
    operator = SM2PrivateKey.generate()
    register_staff(department, operator, StaffRole.OPERATOR)
    return Parties(DataSharing(department), operator, department.org_id, domain_node.client("hospital").org_id,
                   domain_node.client("regulator").org_id, domain_node.client("auditor").org_id)


@dataclass
class Lifecycle:
    dataset: bytes
    product: bytes
    auth: bytes
    auth2: bytes
    collect: bytes
    share: bytes
    derive: bytes
    share2: bytes
    destroy: bytes


@pytest.fixture(scope="module")
def lifecycle(parties: Parties) -> Lifecycle:
    """collect -> grant -> share to the hospital -> derive a product -> grant + share it to the regulator ->
    destroy the source dataset."""
    p = parties
    s = p.sharing
    purpose = doc_commitment({"purpose": "air quality and clinic visits study"}, new_salt())
    collected = s.collect(commitment=sm3(b"district air quality readings 2024"), staff=p.operator,
                          detail=doc_commitment({"source": "station network"}, new_salt()))
    assert collected.generated is not None and collected.signature_verified is True
    dataset = collected.generated[0]
    auth = s.grant_authorisation(dataset, recipient_org=p.hospital, steps={Step.SHARE, Step.ANALYZE},
                                 expires_at=p.now() + DAY, purpose_code=7, purpose_commitment=purpose)
    shared = s.share(dataset, recipient_org=p.hospital, plan=auth.authorisation_id, staff=p.operator)
    derived = s.derive(dataset, commitment=sm3(b"PM2.5 vs visits correlation"), staff=p.operator,
                       step=Step.ANALYZE, informed_by=shared.activity_id)
    assert derived.generated is not None
    product = derived.generated[0]
    auth2 = s.grant_authorisation(product, recipient_org=p.regulator, steps={Step.SHARE}, expires_at=p.now() + DAY,
                                  purpose_code=9, purpose_commitment=purpose)
    shared2 = s.share(product, recipient_org=p.regulator, plan=auth2.authorisation_id, staff=p.operator)
    destroyed = s.destroy(dataset, staff=p.operator)
    return Lifecycle(dataset, product, auth.authorisation_id, auth2.authorisation_id, collected.activity_id,
                     shared.activity_id, derived.activity_id, shared2.activity_id, destroyed.activity_id)


def test_the_lifecycle_reads_back_from_the_contract(parties: Parties, lifecycle: Lifecycle) -> None:
    s, lc = parties.sharing, lifecycle
    ds = s.dataset(lc.dataset)
    assert ds is not None and (ds.owner_org, ds.latest_version) == (parties.department, 1)
    assert ds.destroyed_by == lc.destroy and ds.destroyed_at
    product = s.dataset_version(lc.product, 1)
    assert product is not None
    assert (product.commitment, product.generated_by, product.derived_from_dataset, product.derived_from_version) == (
        sm3(b"PM2.5 vs visits correlation"), lc.derive, lc.dataset, 1)
    source = s.dataset_version(lc.dataset, 1)
    assert source is not None and source.derived_from_dataset is None and source.generated_by == lc.collect
    assert s.dataset_version(lc.dataset, 2) is None and s.dataset(sm3(b"nothing")) is None
    assert s.authorisations_of(lc.dataset) == [lc.auth]
    auth = s.authorisation(lc.auth)
    assert auth is not None
    assert (auth.recipient_org, auth.allowed_steps, auth.purpose_code, auth.revoked_at) == (
        parties.hospital, frozenset({Step.SHARE, Step.ANALYZE}), 7, None)
    assert auth.valid is False  # its dataset was destroyed
    assert s.recipients_of(lc.dataset) == [parties.hospital]
    assert s.recipients_of(lc.product) == [parties.regulator]
    destruction = s.destruction(lc.dataset)
    assert destruction is not None and destruction.activity_id == lc.destroy
    assert s.destruction(lc.product) is None
    info = s.activity(lc.share)
    assert info is not None and (info.step, info.org, info.recipient_org, info.dataset_id) == (
        Step.SHARE, parties.department, parties.hospital, lc.dataset)
    assert s.activity(sm3(b"no such activity")) is None


def test_provenance_answers_where_from_and_who_received(parties: Parties, lifecycle: Lifecycle) -> None:
    lc = lifecycle
    operator = staff_address(parties.operator)
    prov = parties.sharing.provenance(lc.product)
    chain = prov.where_from()
    assert [(d.entity.dataset_id, d.entity.version, d.activity.step, d.source) for d in chain] == [
        (lc.product, 1, Step.ANALYZE, (lc.dataset, 1)), (lc.dataset, 1, Step.COLLECT, None)]
    assert {(d.activity.staff, d.activity.org) for d in chain} == {(operator, parties.department)}
    assert chain[0].activity.informed_by == lc.share
    assert chain[1].entity.invalidated_by == lc.destroy  # the source was destroyed later
    # who received copies of the source dataset, or of products derived from it, and under which authorisation
    received = parties.sharing.provenance(lc.dataset).recipients()
    assert [(r.org, r.dataset_id, r.version, r.activity.activity_id, r.authorisation.authorisation_id
             if r.authorisation else None) for r in received] == [
        (parties.hospital, lc.dataset, 1, lc.share, lc.auth), (parties.regulator, lc.product, 1, lc.share2, lc.auth2)]
    assert parties.sharing.provenance(lc.dataset).derived_datasets() == [lc.product]
    # the product's own recipients exclude the source's
    assert [r.org for r in prov.recipients()] == [parties.regulator]


def test_prov_json_round_trips_through_the_prov_library(parties: Parties, lifecycle: Lifecycle) -> None:
    lc = lifecycle
    text = parties.sharing.provenance(lc.dataset).to_prov_json()
    doc = ProvDocument.deserialize(content=text, format="json")
    raw = json.loads(text)
    assert raw["prefix"]["sc"] == NAMESPACE

    def ent(ds: bytes) -> str:
        return f"sc:dataset/{ds.hex()}/v1"

    def act(a: bytes) -> str:
        return f"sc:activity/{a.hex()}"

    plans = {f"sc:authorisation/{lc.auth.hex()}", f"sc:authorisation/{lc.auth2.hex()}"}
    assert set(raw["entity"]) == {ent(lc.dataset), ent(lc.product)} | plans
    assert [raw["activity"][act(a)]["prov:type"]["$"] for a in (lc.collect, lc.share, lc.derive, lc.destroy)] == [
        "sc:collect", "sc:share", "sc:analyze", "sc:destroy"]
    assert set(raw["activity"]) == {act(a) for a in (lc.collect, lc.share, lc.derive, lc.share2, lc.destroy)}
    assert [(d["prov:generatedEntity"], d["prov:usedEntity"], d["prov:activity"])
            for d in raw["wasDerivedFrom"].values()] == [(ent(lc.product), ent(lc.dataset), act(lc.derive))]
    assert [(i["prov:entity"], i["prov:activity"]) for i in raw["wasInvalidatedBy"].values()] == [
        (ent(lc.dataset), act(lc.destroy))]
    with_plan = {(a["prov:activity"], a.get("prov:plan")) for a in raw["wasAssociatedWith"].values()}
    assert (act(lc.share), f"sc:authorisation/{lc.auth.hex()}") in with_plan
    assert (act(lc.collect), None) in with_plan
    staff = f"sc:staff/{staff_address(parties.operator)}"
    assert {(d["prov:delegate"], d["prov:responsible"]) for d in raw["actedOnBehalfOf"].values()} == {
        (staff, f"sc:org/{parties.department}")}
    assert {(u["prov:activity"], u["prov:entity"]) for u in raw["used"].values()} == {
        (act(lc.share), ent(lc.dataset)), (act(lc.derive), ent(lc.dataset)), (act(lc.share2), ent(lc.product)),
        (act(lc.destroy), ent(lc.dataset))}
    assert [(i["prov:informed"], i["prov:informant"]) for i in raw["wasInformedBy"].values()] == [
        (act(lc.derive), act(lc.share))]
    # the prov library read back the same records
    assert len(doc.get_records()) == len(ProvDocument.deserialize(content=doc.serialize(format="json"),
                                                                    format="json").get_records())
    assert {str(r.identifier) for r in doc.get_records() if r.is_element()} >= {ent(lc.dataset), ent(lc.product),
                                                                                staff}


def test_graph_for_the_web_ui(parties: Parties, lifecycle: Lifecycle) -> None:
    lc = lifecycle
    graph = parties.sharing.provenance(lc.product).to_graph()
    kinds = {n["id"]: n["kind"] for n in graph["nodes"]}
    assert kinds[f"sc:dataset/{lc.product.hex()}/v1"] == "entity"
    assert kinds[f"sc:activity/{lc.derive.hex()}"] == "activity"
    assert kinds[f"sc:org/{parties.regulator}"] == "organisation"
    edges = {(e["source"], e["relation"], e["target"]) for e in graph["edges"]}
    assert (f"sc:dataset/{lc.product.hex()}/v1", "wasDerivedFrom", f"sc:dataset/{lc.dataset.hex()}/v1") in edges
    assert (f"sc:activity/{lc.share2.hex()}", "sc:recipient", f"sc:org/{parties.regulator}") in edges
    assert all(e["source"] in kinds and e["target"] in kinds for e in graph["edges"])
    json.dumps(graph)  # plain data


def test_unauthorised_and_late_uses_are_refused_readably(parties: Parties, lifecycle: Lifecycle,
                                                         domain_node: Any) -> None:
    p, s, lc = parties, parties.sharing, lifecycle
    with pytest.raises(DomainRefused) as refused:  # a share with no authorisation at all
        s.log_activity(Step.SHARE, staff=p.operator, dataset_id=lc.product, recipient_org=p.auditor)
    assert refused.value.reason == "DSL: authorisation required"
    assert str(refused.value).count("\n") == 0 and "DSL: authorisation required" in str(refused.value)
    with pytest.raises(DomainRefused, match="DSL: authorisation is for another recipient"):
        s.share(lc.product, recipient_org=p.auditor, plan=lc.auth2, staff=p.operator)
    with pytest.raises(DomainRefused, match="DSL: dataset destroyed"):
        s.share(lc.dataset, recipient_org=p.hospital, plan=lc.auth, staff=p.operator)
    with pytest.raises(DomainRefused, match="DSL: caller org is not a department"):
        DataSharing(domain_node.client("hospital")).collect(commitment=sm3(b"x"), staff=p.operator)
    stranger = SM2PrivateKey.generate()  # never registered with Governance
    with pytest.raises(DomainRefused, match="DSL: staff is not of the caller org"):
        s.collect(commitment=sm3(b"y"), staff=stranger)
    with pytest.raises(InvalidInput, match="cannot cover store"):
        s.grant_authorisation(lc.product, recipient_org=p.auditor, steps={Step.STORE}, expires_at=p.now() + DAY,
                              purpose_code=1, purpose_commitment=sm3(b"p"))
    assert s.recipients_of(lc.product) == [p.regulator]  # nothing refused left a trace


def test_revocation_public_open_and_settlement(parties: Parties) -> None:
    p, s = parties, parties.sharing
    collected = s.collect(commitment=sm3(b"open data"), staff=p.operator)
    assert collected.generated is not None
    ds = collected.generated[0]
    auth = s.grant_authorisation(ds, recipient_org=p.auditor, steps={Step.SHARE}, expires_at=p.now() + DAY,
                                 purpose_code=2, purpose_commitment=sm3(b"audit"))
    shared = s.share(ds, recipient_org=p.auditor, plan=auth.authorisation_id, staff=p.operator)
    s.settle(ds, share_activity=shared.activity_id, staff=p.operator)
    s.revoke_authorisation(auth.authorisation_id)
    revoked = s.authorisation(auth.authorisation_id)
    assert revoked is not None and revoked.revoked_at and revoked.valid is False
    with pytest.raises(DomainRefused, match="DSL: authorisation revoked"):
        s.share(ds, recipient_org=p.auditor, plan=auth.authorisation_id, staff=p.operator)
    public = s.grant_authorisation(ds, recipient_org=PUBLIC, steps={Step.OPEN}, expires_at=p.now() + DAY,
                                   purpose_code=3, purpose_commitment=sm3(b"open data portal"))
    s.share(ds, recipient_org=PUBLIC, plan=public.authorisation_id, staff=p.operator, step=Step.OPEN)
    assert s.recipients_of(ds) == [p.auditor, PUBLIC]
    prov = s.provenance(ds)
    assert [(r.org, r.activity.step) for r in prov.recipients()] == [(p.auditor, Step.SHARE), (PUBLIC, Step.OPEN)]
    assert prov.plans[auth.authorisation_id].revoked_at == revoked.revoked_at
    settle = [a for a in prov.activities.values() if a.step is Step.SETTLE]
    assert [a.informed_by for a in settle] == [shared.activity_id]


def test_a_recorded_staff_signature_verifies_off_chain(parties: Parties) -> None:
    s = parties.sharing
    result = s.collect(commitment=sm3(b"signed"), staff=parties.operator)
    s.verify_activity(result.record, result.r, result.s)
    tampered = result.record.model_copy(update={"generated_commitment": sm3(b"other")})
    with pytest.raises(InvalidSignature):
        s.verify_activity(tampered, result.r, result.s)


def test_ids_are_made_and_checked_in_the_organisations_namespace(parties: Parties, lifecycle: Lifecycle) -> None:
    p, s, lc = parties, parties.sharing, lifecycle
    prefix = p.department.to_bytes(8, "big")
    assert all(i[:8] == prefix for i in (lc.dataset, lc.product, lc.auth, lc.collect, lc.share, lc.derive))
    assert namespaced_id(p.department, sm3(b"x")) == prefix + sm3(b"x")[:24]
    foreign = namespaced_id(p.hospital)
    with pytest.raises(InvalidInput, match="namespace"):
        s.collect(commitment=sm3(b"z"), staff=p.operator, dataset_id=foreign)
    with pytest.raises(InvalidInput, match="namespace"):
        s.grant_authorisation(lc.product, recipient_org=p.auditor, steps={Step.SHARE}, expires_at=p.now() + DAY,
                              purpose_code=1, purpose_commitment=sm3(b"p"), authorisation_id=foreign)
    with pytest.raises(InvalidInput, match="namespace"):
        s.log_activity(Step.STORE, staff=p.operator, dataset_id=lc.product, activity_id=foreign)
    assert s.dataset(foreign) is None


def test_an_owners_own_product_records_its_source_and_is_under_no_one_elses_control(parties: Parties,
                                                                                      lifecycle: Lifecycle) -> None:
    s, lc = parties.sharing, lifecycle
    product = s.dataset(lifecycle.product)
    assert product is not None
    assert (product.derived_from, product.source_plan, product.control_plan) == (lc.dataset, None, None)
    source = s.dataset(lc.dataset)
    assert source is not None and source.derived_from is None
    assert s.frozen(lc.product) is False  # the owner's own product: destroying its source does not freeze it
    with pytest.raises(DomainRefused, match="DSL: derived commitment equals the source's"):
        s.derive(lc.product, commitment=sm3(b"PM2.5 vs visits correlation"), staff=parties.operator)
