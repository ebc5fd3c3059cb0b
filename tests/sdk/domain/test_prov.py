"""The provenance fold and its PROV-JSON / graph exports, on event trails shaped as DataSharingLog emits them
(relations before ActivityLogged, as the contract does); the on-chain trail is covered in test_datasharing.py."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from prov.model import ProvDocument

from shancheng.sdk.crypto import sm3
from shancheng.sdk.domain import ChainEvent
from shancheng.sdk.domain.prov import NAMESPACE, Provenance, Step
from shancheng.sdk.errors import InvalidInput

ZERO = bytes(32)
STAFF_X = "0x" + "11" * 20
STAFF_Y = "0x" + "22" * 20
A, B, C, Z = (sm3(name.encode()) for name in ("dataset A", "dataset B", "product C", "unrelated Z"))
P1, P2, P3 = (sm3(name.encode()) for name in ("plan 1", "plan 2", "plan 3"))


@dataclass
class Trail:
    """Builds events in DataSharingLog's emission order, one block per call."""

    events: list[ChainEvent] = field(default_factory=list)
    block: int = 10

    def _emit(self, name: str, **args: Any) -> None:
        index = sum(1 for e in self.events if e.block_number == self.block)
        self.events.append(ChainEvent(name, args, self.block, index, sm3(b"tx %d" % self.block)))

    def grant(self, plan: bytes, dataset: bytes, recipient: int, *steps: Step) -> None:
        self.block += 1
        mask = sum(1 << s for s in steps)
        self._emit("AuthorisationGranted", authorisationId=plan, datasetId=dataset, recipientOrg=recipient,
                   purposeCode=1, purposeCommitment=sm3(b"purpose"), allowedSteps=mask, expiresAt=2_000_000_000)

    def revoke(self, plan: bytes, dataset: bytes) -> None:
        self.block += 1
        self._emit("AuthorisationRevoked", authorisationId=plan, datasetId=dataset, at=1_700_000_500)

    def activity(self, name: str, step: Step, org: int, staff: str, *, used: tuple[bytes, int] | None = None,
                 generated: tuple[bytes, int] | None = None, new_dataset: bool = False, plan: bytes = ZERO,
                 recipient: int = 0, informed_by: bytes = ZERO) -> bytes:
        self.block += 1
        aid = sm3(name.encode())
        if used is not None:
            self._emit("Used", activityId=aid, datasetId=used[0], version=used[1])
        if generated is not None:
            self._emit("WasGeneratedBy", datasetId=generated[0], version=generated[1], activityId=aid,
                       commitment=sm3(b"content " + generated[0] + bytes([generated[1]])))
            if used is not None:
                self._emit("WasDerivedFrom", datasetId=generated[0], version=generated[1], sourceDatasetId=used[0],
                           sourceVersion=used[1])
            if new_dataset:
                self._emit("DatasetCreated", datasetId=generated[0], ownerOrg=org, activityId=aid)
            self._emit("WasAttributedTo", datasetId=generated[0], version=generated[1], orgId=org)
        if step is Step.DESTROY and used is not None:
            self._emit("WasInvalidatedBy", datasetId=used[0], activityId=aid, at=1_700_000_000 + self.block)
        record = (aid, int(step), used[0] if used else ZERO, used[1] if used else 0, 1_700_000_000, 1_700_000_010,
                  plan, recipient, informed_by, sm3(b"detail"), staff, generated[0] if generated else ZERO,
                  ZERO if generated is None else sm3(b"c"))
        self._emit("ActivityLogged", activityId=aid, step=int(step), org=org, record=record, r=b"\1" * 32,
                   s=b"\2" * 32, signatureVerified=True)
        self._emit("WasAssociatedWith", activityId=aid, staff=staff, plan=plan)
        self._emit("ActedOnBehalfOf", staff=staff, orgId=org, activityId=aid)
        if informed_by != ZERO:
            self._emit("WasInformedBy", activityId=aid, informant=informed_by)
        return aid


@pytest.fixture(scope="module")
def trail() -> tuple[Trail, dict[str, bytes]]:
    """A collected (org 10), versioned, shared (to org 20, a department), analysed into B by org 20, B shared to
    org 30 and processed into C, C opened to the public, A destroyed; Z is an unrelated dataset."""
    t = Trail()
    ids = {"collect": t.activity("collect", Step.COLLECT, 10, STAFF_X, generated=(A, 1), new_dataset=True)}
    ids["version"] = t.activity("version", Step.PROCESS, 10, STAFF_X, used=(A, 1), generated=(A, 2))
    t.grant(P1, A, 20, Step.SHARE, Step.ANALYZE)
    ids["share"] = t.activity("share", Step.SHARE, 10, STAFF_X, used=(A, 2), plan=P1, recipient=20)
    ids["analyze"] = t.activity("analyze", Step.ANALYZE, 20, STAFF_Y, used=(A, 2), generated=(B, 1),
                                new_dataset=True, plan=P1, informed_by=ids["share"])
    t.grant(P2, B, 30, Step.SHARE)
    ids["share2"] = t.activity("share2", Step.SHARE, 20, STAFF_Y, used=(B, 1), plan=P2, recipient=30)
    ids["process"] = t.activity("process", Step.PROCESS, 20, STAFF_Y, used=(B, 1), generated=(C, 1),
                                new_dataset=True)
    t.grant(P3, C, 0, Step.OPEN)
    ids["open"] = t.activity("open", Step.OPEN, 20, STAFF_Y, used=(C, 1), plan=P3, recipient=0)
    ids["settle"] = t.activity("settle", Step.SETTLE, 30, STAFF_X, used=(B, 1), informed_by=ids["share2"])
    ids["unrelated"] = t.activity("unrelated", Step.COLLECT, 10, STAFF_X, generated=(Z, 1), new_dataset=True)
    t.revoke(P1, A)
    ids["destroy"] = t.activity("destroy", Step.DESTROY, 10, STAFF_X, used=(A, 2))
    return t, ids


def test_where_from_walks_back_to_the_collection(trail: tuple[Trail, dict[str, bytes]]) -> None:
    t, ids = trail
    chain = Provenance.from_events(C, t.events).where_from()
    assert [(d.entity.dataset_id, d.entity.version, d.activity.activity_id, d.source) for d in chain] == [
        (C, 1, ids["process"], (B, 1)), (B, 1, ids["analyze"], (A, 2)), (A, 2, ids["version"], (A, 1)),
        (A, 1, ids["collect"], None)]
    assert [(d.activity.staff, d.activity.org) for d in chain] == [(STAFF_Y, 20), (STAFF_Y, 20), (STAFF_X, 10),
                                                                   (STAFF_X, 10)]
    assert chain[1].activity.plan == P1 and chain[1].activity.informed_by == ids["share"]
    a = Provenance.from_events(A, t.events)
    assert [d.entity.version for d in a.where_from()] == [2, 1]  # latest version by default
    assert [d.entity.version for d in a.where_from(version=1)] == [1]
    with pytest.raises(InvalidInput, match="no version 3"):
        a.where_from(version=3)
    assert all(v.invalidated_by == ids["destroy"] for v in a.versions())
    assert Provenance.from_events(sm3(b"never"), t.events).where_from() == ()


def test_recipients_cover_the_dataset_and_everything_derived_from_it(trail: tuple[Trail, dict[str, bytes]]) -> None:
    t, ids = trail
    a = Provenance.from_events(A, t.events)
    assert a.derived_datasets() == [B, C]
    assert [(r.org, r.dataset_id, r.version, r.activity.activity_id, r.authorisation and r.authorisation
             .authorisation_id) for r in a.recipients()] == [
        (20, A, 2, ids["share"], P1), (30, B, 1, ids["share2"], P2), (0, C, 1, ids["open"], P3)]
    assert a.plans[P1].revoked_at == 1_700_000_500 and a.plans[P2].revoked_at is None
    b = Provenance.from_events(B, t.events)
    assert [r.org for r in b.recipients()] == [30, 0]  # not the share of its source A
    assert Provenance.from_events(Z, t.events).recipients() == ()


def test_the_fold_does_not_depend_on_the_order_events_arrive_in(trail: tuple[Trail, dict[str, bytes]]) -> None:
    t, _ = trail
    shuffled = list(t.events)
    random.Random(7).shuffle(shuffled)
    assert Provenance.from_events(A, shuffled).to_prov_json() == Provenance.from_events(A, t.events).to_prov_json()


def test_a_relation_without_its_activity_is_refused(trail: tuple[Trail, dict[str, bytes]]) -> None:
    t, ids = trail
    missing = [e for e in t.events if not (e.name == "ActivityLogged" and e.args["activityId"] == ids["share"])]
    with pytest.raises(InvalidInput, match="never logged"):
        Provenance.from_events(A, missing)
    with pytest.raises(InvalidInput, match="32 bytes"):
        Provenance.from_events(b"short", t.events)


def test_prov_json_export_round_trips_and_keeps_unrelated_data_out(trail: tuple[Trail, dict[str, bytes]]) -> None:
    t, ids = trail
    text = Provenance.from_events(A, t.events).to_prov_json()
    doc = ProvDocument.deserialize(content=text, format="json")
    again = ProvDocument.deserialize(content=doc.serialize(format="json"), format="json")
    assert doc == again
    raw = json.loads(text)
    assert raw["prefix"] == {"sc": NAMESPACE}
    versions = {f"sc:dataset/{d.hex()}/v{v}" for d, v in ((A, 1), (A, 2), (B, 1), (C, 1))}
    plans = {f"sc:authorisation/{p.hex()}" for p in (P1, P2, P3)}
    assert set(raw["entity"]) == versions | plans
    assert all(raw["entity"][p]["prov:type"] == {"$": "prov:Plan", "type": "xsd:QName"} for p in plans)
    assert f"sc:activity/{ids['unrelated'].hex()}" not in raw["activity"]
    assert set(raw["activity"]) == {f"sc:activity/{ids[k].hex()}" for k in ids if k != "unrelated"}
    assert len(raw["wasDerivedFrom"]) == 3 and len(raw["wasInvalidatedBy"]) == 2
    assert {a["prov:type"]["$"] for a in raw["agent"].values()} == {"prov:Organization", "prov:Person"}
    assert set(raw["agent"]) == {"sc:org/10", "sc:org/20", "sc:org/30", f"sc:staff/{STAFF_X}",
                                 f"sc:staff/{STAFF_Y}"}
    assert {(d["prov:delegate"], d["prov:responsible"]) for d in raw["actedOnBehalfOf"].values()} == {
        (f"sc:staff/{STAFF_X}", "sc:org/10"), (f"sc:staff/{STAFF_Y}", "sc:org/20"),
        (f"sc:staff/{STAFF_X}", "sc:org/30")}
    share = raw["activity"][f"sc:activity/{ids['share'].hex()}"]
    assert share["sc:recipientOrg"] == {"$": "20", "type": "xsd:int"} and share["prov:startTime"].startswith("2023-11-14T22:13:20")


def test_graph_has_every_edge_end_as_a_node(trail: tuple[Trail, dict[str, bytes]]) -> None:
    t, _ = trail
    graph = Provenance.from_events(B, t.events).to_graph()
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert all(e["source"] in nodes and e["target"] in nodes for e in graph["edges"])
    relations = {e["relation"] for e in graph["edges"]}
    assert relations >= {"used", "wasGeneratedBy", "wasDerivedFrom", "wasAttributedTo", "wasAssociatedWith",
                         "actedOnBehalfOf", "hadPlan", "wasInformedBy", "sc:recipient"}
    assert nodes["sc:org/0"]["label"] == "public"
    assert nodes[f"sc:dataset/{A.hex()}/v2"]["destroyed"] is True
    assert f"sc:dataset/{Z.hex()}/v1" not in nodes
