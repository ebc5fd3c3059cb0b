"""The audit log under attack, against the real gateway and solo node: a writer role forging an anchored export, a
database insider deleting anchored entries, an operator keeping two audit chains, withheld recent heads, and an
administrator acting as a doctor with a token minted in the doctor's name."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, insert, select

from shancheng.apps.db import make_engine, migrate
from shancheng.apps.gateway.audit import (
    EXPORT_FORMAT,
    HEAD_KIND,
    ZERO_HASH,
    AuditChainBroken,
    AuditEntry,
    AuditLog,
    audit_entries,
    audit_heads,
    head_record,
    verify_export,
)
from shancheng.apps.gateway.deps import Principal
from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.testing.gateway import GatewayWorld


@pytest.fixture(scope="module")
def genesis(world: GatewayWorld) -> GenesisFile:
    return GenesisFile.load(world.node.genesis_path)


class Insider:
    """Someone with write access to the gateway's database; :meth:`snapshot` before the edits, undone after the
    test."""

    def __init__(self, world: GatewayWorld) -> None:
        self.engine = world.services.engine
        self.saved: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None

    def snapshot(self) -> None:
        with self.engine.connect() as conn:
            self.saved = ([dict(r) for r in conn.execute(select(audit_entries)).mappings()],
                          [dict(r) for r in conn.execute(select(audit_heads)).mappings()])

    def undo(self) -> None:
        if self.saved is None:
            return
        entries, heads = self.saved
        with self.engine.begin() as conn:
            conn.execute(delete(audit_entries))
            conn.execute(delete(audit_heads))
            if entries:
                conn.execute(insert(audit_entries), entries)
            if heads:
                conn.execute(insert(audit_heads), heads)


@pytest.fixture
def insider(world: GatewayWorld) -> Iterator[Insider]:
    who = Insider(world)
    yield who
    who.undo()


def fabricated_entries(count: int) -> list[AuditEntry]:
    """Entries nobody made ("the inspector read prescription X"), correctly chained."""
    out: list[AuditEntry] = []
    prev = ZERO_HASH
    for seq in range(1, count + 1):
        entry = AuditEntry(seq=seq, ts_ms=1_700_000_000_000, org="hospital", org_id=1, subject="inspector-zhao",
                           role="regulator", via="token", remote=None, action="GET /api/v1/prescriptions/{rx_id}",
                           target=f"rx_id=0x{seq:064x}", outcome="ok", status=200, detail=None, prev_hash=prev,
                           hash="", credential="token:00000000000000ff")
        entry = AuditEntry(**{**entry.__dict__, "hash": entry.computed_hash()})
        out.append(entry)
        prev = entry.hash
    return out


def export_lines(entries: list[AuditEntry], anchors: list[dict[str, Any]]) -> list[str]:
    header = {"type": "header", "format": EXPORT_FORMAT, "org": "hospital", "first_seq": 1, "prev_hash": ZERO_HASH,
              "exported_ms": 0}
    end = {"type": "end", "entries": len(entries), "last_seq": entries[-1].seq}
    return [json.dumps(x) for x in (header, *(e.to_json() for e in entries), *anchors, end)]


def test_a_writer_role_cannot_anchor_a_forged_audit_export(world: GatewayWorld, genesis: GenesisFile) -> None:
    doctor = world.client(token=world.token("doctor", subject="dr-forger"))
    forged = fabricated_entries(2)
    record = head_record("hospital", 0, 2, forged[-1].hash)
    refused = doctor.post("/api/v1/evidence/records", json={"record": record, "kind": HEAD_KIND})
    assert refused.status_code == 422 and refused.json()["type"].endswith("/reserved-kind")
    # every other kind the records API takes lands in the general evidence log, as would a head posted by any other
    # writer of that log: none of them is a head of the audit-heads log
    batcher = world.services.batcher
    posted = doctor.post("/api/v1/evidence/records", json={"record": record, "kind": "audit-heads"})
    assert posted.status_code == 201
    direct = batcher.add(record, kind=HEAD_KIND)
    batcher.flush(timeout=60)
    for record_id in (posted.json()["id"], direct):
        anchor = {"type": "anchor", "n": 0, "seq": 2, "hash": forged[-1].hash, "record": record,
                  "salt": (batcher.salt(record_id) or b"").hex(),
                  "package": batcher.evidence_package(record_id).to_json()}
        with pytest.raises(AuditChainBroken) as info:
            verify_export(export_lines(forged, [anchor]), genesis=genesis)
        assert info.value.kind == "anchor" and "audit-heads log" in str(info.value)


def rechain_without(world: GatewayWorld, removed: int) -> None:
    """The insider's edit: delete entry ``removed``, renumber and re-hash every later entry."""
    audit = world.services.audit
    kept = [e for e in audit.entries(limit=100_000) if e.seq != removed]
    prev = ZERO_HASH
    rows = []
    for seq, entry in enumerate(kept, 1):
        moved = AuditEntry(**{**entry.__dict__, "seq": seq, "prev_hash": prev, "hash": ""})
        moved = AuditEntry(**{**moved.__dict__, "hash": moved.computed_hash()})
        rows.append(moved.__dict__)
        prev = moved.hash
    with world.services.engine.begin() as conn:
        conn.execute(delete(audit_entries))
        conn.execute(insert(audit_entries), rows)


def anchored_now(world: GatewayWorld) -> int:
    auditor = world.client(token=world.token("auditor", subject="au-li"))
    for _ in range(3):
        assert auditor.get("/api/v1/audit").status_code == 200
    head = world.services.audit.anchor(wait=True, timeout=60)
    assert head is not None and head.package is not None
    return head.seq


@pytest.mark.parametrize("side_tables", ["kept", "deleted"])
def test_deleting_an_anchored_entry_shows_even_when_the_local_anchor_rows_go_too(
        world: GatewayWorld, insider: Insider, side_tables: str) -> None:
    anchored = anchored_now(world)
    auditor = world.client(token=world.token("auditor", subject="au-zhou"))
    assert auditor.get("/api/v1/audit/verify").json()["ok"] is True
    insider.snapshot()
    rechain_without(world, anchored - 1)  # the links hold again: only the chain can tell
    if side_tables == "deleted":
        with world.services.engine.begin() as conn:
            conn.execute(delete(audit_heads))
    reply = auditor.get("/api/v1/audit/verify").json()
    assert reply["ok"] is False and reply["kind"] in ("anchor", "truncated"), reply


def test_two_audit_chains_of_one_gateway_show_as_equivocation(tmp_path: Any) -> None:
    with GatewayWorld.start(tmp_path / "gw") as world:  # its own gateway: the second chain's head stays on chain
        two_chains(world, GenesisFile.load(world.node.genesis_path), tmp_path)


def two_chains(world: GatewayWorld, genesis: GenesisFile, tmp_path: Any) -> None:
    audit = world.services.audit
    anchored_now(world)
    assert audit.heads is not None
    # the operator's second chain, in another database, its heads put into the same (the only accepted) heads log
    other = AuditLog(make_engine(f"sqlite:///{tmp_path / 'second.db'}"), org="hospital")
    migrate(other.engine)
    who = Principal(subject="dr-li", org="hospital", org_id=world.services.org_id, role="doctor", via="token")
    while (other.head() or (0, ""))[0] < (audit.head() or (0, ""))[0] + 2:
        other.record(who, "GET /api/v1/audit", None, "ok", status=200)
    seq, head_hash = other.head() or (0, "")
    n = audit.heads.size
    salt = os.urandom(32)
    assert audit.heads.add(head_record("hospital", n, seq, head_hash), kind=HEAD_KIND, salt=salt) == n
    audit.heads.flush(timeout=60)
    second = {"type": "anchor", "n": n, "seq": seq, "hash": head_hash, "record": head_record("hospital", n, seq,
              head_hash), "salt": salt.hex(), "package": audit.heads.evidence_package(n).to_json()}

    # the first chain's own check sees a head of the heads log that it does not hold
    reply = world.client(token=world.token("auditor", subject="au-qian")).get("/api/v1/audit/verify").json()
    assert reply["ok"] is False and reply["kind"] == "anchor", reply
    # an export of the first chain must carry every head from its range on: the other chain's head contradicts it
    for _ in range(3):
        audit.record(who, "GET /api/v1/audit", None, "ok", status=200)
    lines = list(audit.export())
    end = lines.pop()
    with pytest.raises(AuditChainBroken) as info:
        verify_export([*lines, json.dumps(second), end], genesis=genesis)
    assert (info.value.kind, info.value.sequence) == ("equivocation", seq)
    with pytest.raises(AuditChainBroken) as info:  # leaving it out breaks the heads' numbering instead
        verify_export([*lines, json.dumps({**second, "n": n + 1}), end], genesis=genesis)
    assert info.value.kind == "anchor"


def test_an_export_whose_newest_head_is_too_old_is_refused(world: GatewayWorld, genesis: GenesisFile) -> None:
    anchored_now(world)
    lines = list(world.services.audit.export())
    result = verify_export(lines, genesis=genesis)
    assert result.anchor_time is not None
    assert verify_export(lines, genesis=genesis, max_anchor_age=3900, now=result.anchor_time + 3800).anchored_seq
    with pytest.raises(AuditChainBroken) as info:  # the heads of the last hours withheld: the newest one is stale
        verify_export(lines, genesis=genesis, max_anchor_age=3900, now=result.anchor_time + 4000)
    assert info.value.kind == "stale"


def test_an_administrator_cannot_act_as_a_doctor_unnoticed(world: GatewayWorld) -> None:
    world.staff("dr-li", "doctor")
    admin = world.client(token=world.token("admin", subject="ops"))
    minted = admin.post("/api/v1/tokens", json={"subject": "dr-li", "role": "doctor"}).json()
    as_doctor = world.client(token=minted["token"])
    body = {"record": {"rx": "by-admin"}, "kind": "prescription", "author_signed": True}
    refused = as_doctor.post("/api/v1/evidence/records", json=body)
    assert refused.status_code == 403 and refused.json()["type"].endswith("/delegated-credential")
    assert "created by ops" in refused.json()["detail"]
    key = SM2PrivateKey.generate()  # an SM2 request key the admin registers in dr-li's name signs nothing either
    registered = admin.post("/api/v1/sm2-keys", json={"subject": "dr-li", "role": "doctor",
                                                      "public_key": key.public_key().to_bytes().hex()})
    assert registered.status_code == 201
    payload = json.dumps(body).encode()
    signed = world.client().post("/api/v1/evidence/records", content=payload, headers={
        "content-type": "application/json", **world.signed(key, "POST", "/api/v1/evidence/records", payload)})
    assert signed.status_code == 403 and signed.json()["type"].endswith("/delegated-credential")
    own = world.client(token=world.token("doctor", subject="dr-li"))  # provisioned on the host: dr-li's own
    assert own.post("/api/v1/evidence/records", json=body).status_code == 201

    entries = world.services.audit.entries(limit=100_000)
    creation = next(e for e in reversed(entries) if e.action == "POST /api/v1/tokens" and e.status == 201)
    assert creation.subject == "ops" and f"minted token {minted['id']} for subject 'dr-li' role doctor" in (
        creation.detail or "")
    registration = next(e for e in reversed(entries) if e.action == "POST /api/v1/sm2-keys" and e.status == 201)
    assert registration.detail == f"registered SM2 key {registered.json()['key_id']} for subject 'dr-li' role doctor"
    writes = [e for e in entries if e.action == "POST /api/v1/evidence/records" and e.subject == "dr-li"]
    credentials = [e.credential for e in writes[-3:]]
    assert credentials[0] == f"token:{minted['id']}" and credentials[1] == f"sm2:{registered.json()['key_id']}"
    assert credentials[2] is not None and credentials[2].startswith("token:") and credentials[2] != credentials[0]
