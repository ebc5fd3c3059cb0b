"""Data-sharing provenance as W3C PROV: a fold over ``DataSharingLog``'s PROV-shaped events.

:class:`Provenance` is built from the contract's events (``DatasetCreated``, ``ActivityLogged``, ``Used``,
``WasGeneratedBy``, ``WasDerivedFrom``, ``WasAttributedTo``, ``WasAssociatedWith``, ``ActedOnBehalfOf``,
``WasInformedBy``, ``WasInvalidatedBy``, ``AuthorisationGranted``/``Revoked``) around one dataset, and answers
the auditor's questions: :meth:`Provenance.where_from` (the derivation ancestry back to collection, with
activities and agents), :meth:`Provenance.recipients` (who received copies of the dataset or of products
derived from it, under which authorisation); it exports PROV-JSON (:meth:`Provenance.to_prov_json`, through the
``prov`` library) and a plain node/edge graph for the web UI (:meth:`Provenance.to_graph`).

Identifiers live in the namespace ``sc`` = :data:`NAMESPACE`:

=================================  =====================================================================
``sc:dataset/<id hex>/v<n>``       entity: version n of a dataset (``sc:commitment`` = content commitment)
``sc:activity/<id hex>``           activity, ``prov:type`` ``sc:<step>`` (``sc:collect``, ``sc:share``...)
``sc:org/<org id>``                agent, ``prov:Organization``
``sc:staff/<SM3 address>``         agent, ``prov:Person`` (acting on behalf of an organisation)
``sc:authorisation/<id hex>``      entity, ``prov:Plan``: the sharing authorisation an activity followed
=================================  =====================================================================

>>> events = []          # DataSharing(client).events() gives the chain's; here: an empty trail
>>> Provenance.from_events(bytes(32), events).where_from()
()
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from eth_utils.address import to_checksum_address
from prov.constants import PROV
from prov.model import Namespace, ProvDocument

from ..errors import InvalidInput
from ..strict_json import to_hex
from .events import ChainEvent

__all__ = [
    "DATA_SHARING_EVENTS",
    "NAMESPACE",
    "CopyReceived",
    "DatasetEntity",
    "Derivation",
    "LoggedActivity",
    "Plan",
    "Provenance",
    "Step",
]

#: the URI bound to the ``sc`` prefix of every exported identifier
NAMESPACE = "https://shancheng.example/ns/prov#"
_SC = Namespace("sc", NAMESPACE)

#: the DataSharingLog events a provenance fold reads
DATA_SHARING_EVENTS = (
    "DatasetCreated", "ActivityLogged", "Used", "WasGeneratedBy", "WasDerivedFrom", "WasAttributedTo",
    "WasAssociatedWith", "ActedOnBehalfOf", "WasInformedBy", "WasInvalidatedBy", "AuthorisationGranted",
    "AuthorisationRevoked",
)

_NODES = frozenset({"ActivityLogged", "AuthorisationGranted", "DatasetCreated"})
EntityKey = tuple[bytes, int]  # (dataset id, version)
_ZERO = bytes(32)


class Step(IntEnum):
    """Lifecycle steps of DataSharingLog (district plan + GB/T 37988-2019); the PROV activity types."""

    COLLECT = 1
    TRANSMIT = 2
    STORE = 3
    PROCESS = 4
    MANAGE = 5
    EXCHANGE = 6
    SHARE = 7
    OPEN = 8
    ANALYZE = 9
    SETTLE = 10
    DESTROY = 11

    @property
    def label(self) -> str:
        return self.name.lower()


#: steps that hand a copy to another organisation (or the public, org 0)
SHARING_STEPS = frozenset({Step.EXCHANGE, Step.SHARE, Step.OPEN})


@dataclass(frozen=True)
class LoggedActivity:
    """One logged activity: step, acting organisation and staff member, the entity it used and generated, the
    plan (authorisation) it followed, its recipient (sharing steps) and its signature status."""

    activity_id: bytes
    step: Step
    org: int
    staff: str
    started_at: int
    ended_at: int
    detail: bytes
    signature_verified: bool
    block_number: int
    transaction_hash: bytes
    plan: bytes | None = None
    recipient_org: int | None = None
    used: EntityKey | None = None
    generated: EntityKey | None = None
    informed_by: bytes | None = None


@dataclass(frozen=True)
class DatasetEntity:
    """A dataset version: its content commitment, the activity that generated it, the organisation it is
    attributed to, the version it was derived from, and the activity that invalidated (destroyed) it."""

    dataset_id: bytes
    version: int
    commitment: bytes
    generated_by: bytes
    attributed_to: int
    derived_from: EntityKey | None = None
    invalidated_by: bytes | None = None
    invalidated_at: int | None = None


@dataclass(frozen=True)
class Plan:
    """A sharing authorisation: who may do which steps on which dataset, until when."""

    authorisation_id: bytes
    dataset_id: bytes
    recipient_org: int
    purpose_code: int
    purpose_commitment: bytes
    allowed_steps: frozenset[Step]
    expires_at: int
    block_number: int
    revoked_at: int | None = None


@dataclass(frozen=True)
class Derivation:
    """One link of an ancestry: ``entity`` was generated by ``activity`` (its staff acting for its org) from
    ``source`` (None for a collection)."""

    entity: DatasetEntity
    activity: LoggedActivity
    source: EntityKey | None


@dataclass(frozen=True)
class CopyReceived:
    """Organisation ``org`` (0: the public) received version ``version`` of ``dataset_id`` through ``activity``
    under ``authorisation``."""

    org: int
    dataset_id: bytes
    version: int
    activity: LoggedActivity
    authorisation: Plan | None


@dataclass
class _Fold:
    """The mutable state of the fold (kept apart so that :class:`Provenance` is read-only)."""

    owners: dict[bytes, int] = field(default_factory=dict)
    activities: dict[bytes, dict[str, Any]] = field(default_factory=dict)
    entities: dict[EntityKey, dict[str, Any]] = field(default_factory=dict)
    plans: dict[bytes, dict[str, Any]] = field(default_factory=dict)
    delegations: dict[bytes, tuple[str, int]] = field(default_factory=dict)

    def add(self, ev: ChainEvent) -> None:
        a = ev.args
        if ev.name == "DatasetCreated":
            self.owners[bytes(a["datasetId"])] = int(a["ownerOrg"])
        elif ev.name == "ActivityLogged":
            rec = a["record"]
            r = list(rec.values()) if isinstance(rec, dict) else list(rec)
            step = Step(int(a["step"]))
            self.activities[bytes(a["activityId"])] = {
                "activity_id": bytes(a["activityId"]), "step": step, "org": int(a["org"]),
                "staff": to_checksum_address(r[10]), "started_at": int(r[4]), "ended_at": int(r[5]),
                "detail": bytes(r[9]), "signature_verified": bool(a["signatureVerified"]),
                "block_number": ev.block_number, "transaction_hash": ev.transaction_hash,
                "recipient_org": int(r[7]) if step in SHARING_STEPS else None,
            }
        elif ev.name == "Used":
            self._activity(a["activityId"])["used"] = (bytes(a["datasetId"]), int(a["version"]))
        elif ev.name == "WasGeneratedBy":
            key = (bytes(a["datasetId"]), int(a["version"]))
            self.entities.setdefault(key, {}).update(
                dataset_id=key[0], version=key[1], commitment=bytes(a["commitment"]),
                generated_by=bytes(a["activityId"]))
            self._activity(a["activityId"])["generated"] = key
        elif ev.name == "WasDerivedFrom":
            self.entities.setdefault((bytes(a["datasetId"]), int(a["version"])), {})["derived_from"] = (
                bytes(a["sourceDatasetId"]), int(a["sourceVersion"]))
        elif ev.name == "WasAttributedTo":
            self.entities.setdefault((bytes(a["datasetId"]), int(a["version"])), {})["attributed_to"] = int(a["orgId"])
        elif ev.name == "WasAssociatedWith":
            plan = bytes(a["plan"])
            activity = self._activity(a["activityId"])
            activity["staff"] = to_checksum_address(a["staff"])
            activity["plan"] = plan if plan != _ZERO else None
        elif ev.name == "ActedOnBehalfOf":
            self.delegations[bytes(a["activityId"])] = (to_checksum_address(a["staff"]), int(a["orgId"]))
        elif ev.name == "WasInformedBy":
            self._activity(a["activityId"])["informed_by"] = bytes(a["informant"])
        elif ev.name == "WasInvalidatedBy":
            dataset = bytes(a["datasetId"])
            for key, entity in self.entities.items():
                if key[0] == dataset:
                    entity.update(invalidated_by=bytes(a["activityId"]), invalidated_at=int(a["at"]))
        elif ev.name == "AuthorisationGranted":
            mask = int(a["allowedSteps"])
            self.plans[bytes(a["authorisationId"])] = {
                "authorisation_id": bytes(a["authorisationId"]), "dataset_id": bytes(a["datasetId"]),
                "recipient_org": int(a["recipientOrg"]), "purpose_code": int(a["purposeCode"]),
                "purpose_commitment": bytes(a["purposeCommitment"]),
                "allowed_steps": frozenset(s for s in Step if mask & (1 << s)), "expires_at": int(a["expiresAt"]),
                "block_number": ev.block_number,
            }
        elif ev.name == "AuthorisationRevoked" and bytes(a["authorisationId"]) in self.plans:
            self.plans[bytes(a["authorisationId"])]["revoked_at"] = int(a["at"])

    def _activity(self, activity_id: bytes) -> dict[str, Any]:
        try:
            return self.activities[bytes(activity_id)]
        except KeyError:
            raise InvalidInput(f"a relation names activity 0x{bytes(activity_id).hex()} that was never logged "
                               "(the events are incomplete or out of order)") from None


class Provenance:
    """The provenance of one dataset (see the module docstring); build it with :meth:`from_events`."""

    def __init__(self, *, dataset_id: bytes, activities: dict[bytes, LoggedActivity],
                 entities: dict[EntityKey, DatasetEntity], plans: dict[bytes, Plan], owners: dict[bytes, int]) -> None:
        self.dataset_id = dataset_id
        self.activities = activities
        self.entities = entities
        self.plans = plans
        self.owners = owners

    @classmethod
    def from_events(cls, dataset_id: bytes, events: Iterable[ChainEvent]) -> Provenance:
        """Fold DataSharingLog events (in chain order) into the provenance of ``dataset_id``."""
        if len(dataset_id) != 32:
            raise InvalidInput("a dataset id is 32 bytes")
        fold = _Fold()
        ordered = sorted((e for e in events if e.name in DATA_SHARING_EVENTS), key=lambda e: e.position)
        # the contract emits an activity's relations (Used, WasGeneratedBy...) before its ActivityLogged: the
        # activities and plans are read first, the relations then in chain order
        for ev in ordered:
            if ev.name in _NODES:
                fold.add(ev)
        for ev in ordered:
            if ev.name not in _NODES:
                fold.add(ev)
        activities = {k: LoggedActivity(**v) for k, v in fold.activities.items()}
        entities = {k: DatasetEntity(**v) for k, v in fold.entities.items() if "generated_by" in v}
        plans = {k: Plan(**v) for k, v in fold.plans.items()}
        return cls(dataset_id=bytes(dataset_id), activities=activities, entities=entities, plans=plans,
                   owners=fold.owners)

    # -- questions ---------------------------------------------------------------------------------
    def versions(self, dataset_id: bytes | None = None) -> list[DatasetEntity]:
        """The versions of ``dataset_id`` (default: this provenance's dataset), oldest first."""
        ds = self.dataset_id if dataset_id is None else dataset_id
        return sorted((e for k, e in self.entities.items() if k[0] == ds), key=lambda e: e.version)

    def where_from(self, version: int | None = None) -> tuple[Derivation, ...]:
        """Where this dataset (``version``, default the latest) came from: each entity with the activity that
        generated it and the entity it was derived from, back to its collection (the last element)."""
        versions = self.versions()
        if not versions:
            return ()
        key: EntityKey = (self.dataset_id, versions[-1].version if version is None else version)
        if key not in self.entities:
            raise InvalidInput(f"dataset 0x{self.dataset_id.hex()} has no version {version}")
        return tuple(self._ancestry(key))

    def derived_datasets(self) -> list[bytes]:
        """Datasets other than this one whose ancestry reaches it (data products derived from it), in order of
        creation."""
        out: list[bytes] = []
        for key, _entity in sorted(self.entities.items(), key=lambda kv: self._order(kv[1].generated_by)):
            if key[0] != self.dataset_id and key[0] not in out and self._descends(key):
                out.append(key[0])
        return out

    def _descends(self, key: EntityKey) -> bool:
        seen: set[EntityKey] = set()
        current: EntityKey | None = key
        while current is not None and current in self.entities and current not in seen:
            if current[0] == self.dataset_id:
                return True
            seen.add(current)
            current = self.entities[current].derived_from
        return False

    def recipients(self) -> tuple[CopyReceived, ...]:
        """Who received copies of this dataset or of products derived from it: every SHARE, EXCHANGE or OPEN
        of them, with the authorisation it was made under, in chain order."""
        scope = {self.dataset_id, *self.derived_datasets()}
        out = []
        for act in sorted(self.activities.values(), key=lambda a: a.block_number):
            if act.step in SHARING_STEPS and act.used is not None and act.used[0] in scope:
                plan = self.plans.get(act.plan) if act.plan is not None else None
                out.append(CopyReceived(act.recipient_org or 0, act.used[0], act.used[1], act, plan))
        return tuple(out)

    # -- scope of the exports ----------------------------------------------------------------------
    def _scope(self) -> tuple[list[DatasetEntity], list[LoggedActivity], list[Plan]]:
        datasets = {self.dataset_id, *self.derived_datasets()}
        keys = {k for k in self.entities if k[0] in datasets}
        for key in list(keys):
            keys.update((d.entity.dataset_id, d.entity.version) for d in self._ancestry(key))
        acts = {a.activity_id: a for a in self.activities.values()
                if a.used in keys or a.generated in keys}
        for act in list(acts.values()):  # the activities they were informed by (a settlement's share...)
            if act.informed_by is not None and act.informed_by in self.activities:
                acts.setdefault(act.informed_by, self.activities[act.informed_by])
        for act in list(acts.values()):  # a generating activity whose input fell outside the scope
            if act.used is not None and act.used in self.entities:
                keys.add(act.used)
        plan_ids = {a.plan for a in acts.values() if a.plan is not None}
        plan_ids |= {p.authorisation_id for p in self.plans.values() if p.dataset_id in {k[0] for k in keys}}
        entities = sorted((self.entities[k] for k in keys), key=lambda e: (self._order(e.generated_by), e.version))
        activities = sorted(acts.values(), key=lambda a: (a.block_number, a.activity_id))
        plans = sorted((self.plans[p] for p in plan_ids if p in self.plans), key=lambda p: p.block_number)
        return entities, activities, plans

    def _ancestry(self, key: EntityKey) -> list[Derivation]:
        out = []
        seen: set[EntityKey] = set()
        current: EntityKey | None = key
        while current is not None and current in self.entities and current not in seen:
            seen.add(current)
            entity = self.entities[current]
            out.append(Derivation(entity, self.activities[entity.generated_by], entity.derived_from))
            current = entity.derived_from
        return out

    def _order(self, activity_id: bytes) -> int:
        act = self.activities.get(activity_id)
        return act.block_number if act is not None else 0

    # -- exports -----------------------------------------------------------------------------------
    def to_prov_document(self) -> ProvDocument:
        """The scope of this provenance (the dataset, its ancestry, its derivatives, the activities on them,
        their agents and plans) as a ``prov.model.ProvDocument``."""
        entities, activities, plans = self._scope()
        doc = ProvDocument()
        doc.add_namespace(_SC)
        orgs: set[int] = set()
        staff: set[str] = set()
        for plan in plans:
            plan_attrs: dict[str, Any] = {
                "prov:type": PROV["Plan"], "sc:dataset": _dataset_ref(plan.dataset_id),
                "sc:recipientOrg": plan.recipient_org, "sc:purposeCode": plan.purpose_code,
                "sc:purposeCommitment": plan.purpose_commitment.hex(),
                "sc:allowedSteps": " ".join(s.label for s in sorted(plan.allowed_steps)),
                "sc:expiresAt": _time(plan.expires_at),
            }
            if plan.revoked_at is not None:
                plan_attrs["sc:revokedAt"] = _time(plan.revoked_at)
            doc.entity(_plan_id(plan.authorisation_id), plan_attrs)
        for entity in entities:
            doc.entity(_entity_id((entity.dataset_id, entity.version)), {
                "sc:commitment": entity.commitment.hex(), "sc:version": entity.version,
                "sc:dataset": _dataset_ref(entity.dataset_id)})
        for act in activities:
            attrs: dict[str, Any] = {"prov:type": _SC[act.step.label], "sc:detail": act.detail.hex(),
                                     "sc:signatureVerifiedOnChain": act.signature_verified,
                                     "sc:block": act.block_number, "sc:transaction": to_hex(act.transaction_hash)}
            if act.recipient_org is not None:
                attrs["sc:recipientOrg"] = act.recipient_org
            doc.activity(_activity_id(act.activity_id), _time(act.started_at), _time(act.ended_at), attrs)
            staff.add(act.staff)
            orgs.add(act.org)
        for entity in entities:
            orgs.add(entity.attributed_to)
        for org in sorted(orgs):
            doc.agent(_org_id(org), {"prov:type": PROV["Organization"]})
        for person in sorted(staff):
            doc.agent(_staff_id(person), {"prov:type": PROV["Person"]})
        keys = {(e.dataset_id, e.version) for e in entities}
        for act in activities:
            aid = _activity_id(act.activity_id)
            if act.used is not None and act.used in keys:
                doc.usage(aid, _entity_id(act.used), _time(act.started_at))
            if act.generated is not None and act.generated in keys:
                doc.generation(_entity_id(act.generated), aid, _time(act.ended_at))
            plan_ref = _plan_id(act.plan) if act.plan is not None and act.plan in self.plans else None
            doc.association(aid, _staff_id(act.staff), plan_ref)
            doc.delegation(_staff_id(act.staff), _org_id(act.org), aid)
            if act.informed_by is not None and act.informed_by in {a.activity_id for a in activities}:
                doc.communication(aid, _activity_id(act.informed_by))
        for entity in entities:
            eid = _entity_id((entity.dataset_id, entity.version))
            doc.attribution(eid, _org_id(entity.attributed_to))
            if entity.derived_from is not None and entity.derived_from in keys:
                doc.derivation(eid, _entity_id(entity.derived_from), _activity_id(entity.generated_by))
            if entity.invalidated_by is not None:
                doc.invalidation(eid, _activity_id(entity.invalidated_by), _time(entity.invalidated_at or 0))
        return doc

    def to_prov_json(self) -> str:
        """PROV-JSON (W3C member submission) text of :meth:`to_prov_document`."""
        text = self.to_prov_document().serialize(format="json")
        assert isinstance(text, str)
        return text

    def to_graph(self) -> dict[str, list[dict[str, Any]]]:
        """A plain graph for drawing: ``{"nodes": [{id, kind, label, ...}], "edges": [{source, target,
        relation}]}``; kinds are entity, activity, organisation, person, plan; relations are the PROV names
        (``used``, ``wasGeneratedBy``...) plus ``sc:recipient`` from a sharing activity to its recipient."""
        entities, activities, plans = self._scope()
        nodes: dict[str, dict[str, Any]] = {}
        edges: list[dict[str, Any]] = []

        def edge(source: str, target: str, relation: str) -> None:
            edges.append({"source": source, "target": target, "relation": relation})

        def org(o: int) -> str:
            nodes.setdefault(_org_id(o), {"id": _org_id(o), "kind": "organisation", "label": f"org {o}" if o
                                          else "public", "org": o})
            return _org_id(o)

        keys = {(e.dataset_id, e.version) for e in entities}
        for entity in entities:
            eid = _entity_id((entity.dataset_id, entity.version))
            nodes[eid] = {"id": eid, "kind": "entity", "label": f"{entity.dataset_id.hex()[:8]} v{entity.version}",
                          "dataset": to_hex(entity.dataset_id), "version": entity.version,
                          "commitment": to_hex(entity.commitment), "destroyed": entity.invalidated_by is not None}
            edge(eid, org(entity.attributed_to), "wasAttributedTo")
            if entity.derived_from is not None and entity.derived_from in keys:
                edge(eid, _entity_id(entity.derived_from), "wasDerivedFrom")
            if entity.invalidated_by is not None:
                edge(eid, _activity_id(entity.invalidated_by), "wasInvalidatedBy")
        for plan in plans:
            pid = _plan_id(plan.authorisation_id)
            nodes[pid] = {"id": pid, "kind": "plan", "label": f"authorisation {plan.authorisation_id.hex()[:8]}",
                          "recipient_org": plan.recipient_org, "expires_at": plan.expires_at,
                          "revoked": plan.revoked_at is not None}
        for act in activities:
            aid = _activity_id(act.activity_id)
            nodes[aid] = {"id": aid, "kind": "activity", "label": act.step.label, "step": act.step.label,
                          "started_at": act.started_at, "ended_at": act.ended_at, "block": act.block_number}
            sid = _staff_id(act.staff)
            nodes.setdefault(sid, {"id": sid, "kind": "person", "label": act.staff[:10], "address": act.staff})
            if act.used is not None and act.used in keys:
                edge(aid, _entity_id(act.used), "used")
            if act.generated is not None and act.generated in keys:
                edge(_entity_id(act.generated), aid, "wasGeneratedBy")
            edge(aid, sid, "wasAssociatedWith")
            edge(sid, org(act.org), "actedOnBehalfOf")
            if act.plan is not None and _plan_id(act.plan) in nodes:
                edge(aid, _plan_id(act.plan), "hadPlan")
            if act.informed_by is not None and _activity_id(act.informed_by) in {_activity_id(a.activity_id)
                                                                               for a in activities}:
                edge(aid, _activity_id(act.informed_by), "wasInformedBy")
            if act.recipient_org is not None:
                edge(aid, org(act.recipient_org), "sc:recipient")
        return {"nodes": list(nodes.values()), "edges": edges}


def _entity_id(key: EntityKey) -> str:
    return f"sc:dataset/{key[0].hex()}/v{key[1]}"


def _dataset_ref(dataset_id: bytes) -> str:
    return to_hex(dataset_id)


def _activity_id(activity_id: bytes) -> str:
    return f"sc:activity/{activity_id.hex()}"


def _plan_id(authorisation_id: bytes) -> str:
    return f"sc:authorisation/{authorisation_id.hex()}"


def _org_id(org: int) -> str:
    return f"sc:org/{org}"


def _staff_id(address: str) -> str:
    return f"sc:staff/{address}"


def _time(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)
