"""The audit log behind the real gateway and solo node: requests (refused ones too) become entries; the head is
anchored through the organisation's evidence batcher; the export verifies offline with the genesis file alone, and
every kind of tampering with the export or the table is named with its first broken sequence."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from shancheng.apps.gateway.audit import AuditChainBroken, audit_entries, verify_export
from shancheng.sdk.chainproof import GenesisFile
from shancheng.testing.gateway import GatewayWorld


def entries(world: GatewayWorld, token: str, **params: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    cursor = None
    http = world.client(token=token)
    while True:
        reply = http.get("/api/v1/audit", params={**params, "limit": "7", **({"cursor": cursor} if cursor else {})})
        assert reply.status_code == 200, reply.text
        page = reply.json()
        out += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return out


@pytest.fixture(scope="module")
def session(world: GatewayWorld) -> dict[str, str]:
    """A session of API calls: anonymous, wrong role, auditor reads, admin anchoring."""
    tokens = {"auditor": world.token("auditor", subject="au-wang"), "doctor": world.token("doctor", subject="dr-li"),
              "admin": world.token("admin", subject="ops")}
    assert world.client().get("/api/v1/audit").status_code == 401
    assert world.client(token=tokens["doctor"]).get("/api/v1/audit/verify").status_code == 403
    assert world.client(token=tokens["auditor"]).get("/api/v1/audit/verify").json()["ok"] is True
    assert world.client(token=tokens["auditor"]).post("/api/v1/audit/anchor").status_code == 403
    return tokens


def test_requests_are_recorded_with_who_what_and_result(world: GatewayWorld, session: dict[str, str]) -> None:
    items = entries(world, session["auditor"])
    actions = [(e["action"], e["subject"], e["role"], e["status"], e["outcome"]) for e in items]
    assert ("GET /api/v1/audit", None, None, 401, "refused") in actions
    assert ("GET /api/v1/audit/verify", "dr-li", "doctor", 403, "refused") in actions
    assert ("GET /api/v1/audit/verify", "au-wang", "auditor", 200, "ok") in actions
    assert ("POST /api/v1/audit/anchor", "au-wang", "auditor", 403, "refused") in actions
    assert [e["seq"] for e in items] == list(range(1, len(items) + 1))
    assert all(e["org"] in ("hospital", None) for e in items)
    refused = entries(world, session["auditor"], outcome="refused")
    assert {e["status"] for e in refused} == {401, 403} and len(refused) == 3


def test_export_of_an_anchored_head_verifies_offline(world: GatewayWorld, session: dict[str, str],
                                                     tmp_path: Path) -> None:
    audit = world.services.audit
    anchor = audit.anchor(wait=True, timeout=60)
    assert anchor is not None and anchor.package is not None
    world.client(token=session["auditor"]).get("/api/v1/audit")  # one more entry, after the anchored head
    reply = world.client(token=session["auditor"]).get("/api/v1/audit/export")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("application/jsonl")
    lines = reply.text.splitlines()
    genesis = GenesisFile.load(world.node.genesis_path)
    result = verify_export(lines, genesis=genesis)
    assert result.anchored_seq == anchor.seq and result.org == "hospital"
    assert result.last_seq is not None and result.last_seq > anchor.seq and result.unanchored >= 1
    assert "anchored through seq" in result.summary()

    export = tmp_path / "audit.jsonl"
    export.write_text(reply.text)
    run = subprocess.run([sys.executable, "-m", "shancheng.apps.gateway.audit", "verify", str(export), "--genesis",
                          str(world.node.genesis_path)], check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("OK ")

    def broken(mutated: list[str]) -> AuditChainBroken:
        with pytest.raises(AuditChainBroken) as info:
            verify_export(mutated, genesis=genesis)
        return info.value

    index = {json.loads(line).get("seq"): i for i, line in enumerate(lines) if json.loads(line)["type"] == "entry"}
    edited = list(lines)
    obj = json.loads(edited[index[2]])
    obj["subject"] = "nobody"
    edited[index[2]] = json.dumps(obj)
    assert (broken(edited).kind, broken(edited).sequence) == ("edited", 2)

    deleted = [line for i, line in enumerate(lines) if i != index[3]]
    assert (broken(deleted).kind, broken(deleted).sequence) == ("deleted", 3)

    reordered = list(lines)
    reordered[index[2]], reordered[index[3]] = reordered[index[3]], reordered[index[2]]
    assert (broken(reordered).kind, broken(reordered).sequence) == ("reordered", 2)

    cut = anchor.seq - 1  # entries from the anchored head on removed (the end line rewritten to match)
    truncated = [line for line in lines if json.loads(line)["type"] != "entry" or json.loads(line)["seq"] <= cut]
    end = json.loads(truncated[-1])
    end["entries"], end["last_seq"] = cut, cut
    truncated[-1] = json.dumps(end)
    assert (broken(truncated).kind, broken(truncated).sequence) == ("truncated", cut + 1)

    forged = list(lines)
    i = next(i for i, line in enumerate(lines) if json.loads(line)["type"] == "anchor")
    obj = json.loads(forged[i])
    obj["salt"] = "00" * 32  # the record no longer opens the anchored commitment
    forged[i] = json.dumps(obj)
    assert broken(forged).kind == "anchor"
    export.write_text("\n".join(forged))
    run = subprocess.run([sys.executable, "-m", "shancheng.apps.gateway.audit", "verify", str(export), "--genesis",
                          str(world.node.genesis_path)], check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and run.stderr.startswith("INVALID: the anchor of sequence")


def test_tampering_behind_the_gateway_is_reported_by_the_verify_endpoint(world: GatewayWorld,
                                                                         session: dict[str, str]) -> None:
    http = world.client(token=session["auditor"])
    assert http.get("/api/v1/audit/verify").json()["ok"] is True
    with world.services.engine.begin() as conn:
        conn.execute(update(audit_entries).where(audit_entries.c.seq == 4).values(status=200))
    try:
        reply = http.get("/api/v1/audit/verify").json()
        assert reply == {**reply, "ok": False, "sequence": 4, "kind": "edited"}
        assert "entry 4" in reply["reason"]
    finally:
        with world.services.engine.begin() as conn:
            conn.execute(update(audit_entries).where(audit_entries.c.seq == 4).values(status=403))
    assert http.get("/api/v1/audit/verify").json()["ok"] is True


def test_a_request_the_log_cannot_record_is_not_answered(world: GatewayWorld, session: dict[str, str],
                                                         tmp_path: Path) -> None:
    """Fault injected on purpose: the audit log points at a database without its tables."""
    from shancheng.apps.db import make_engine
    from shancheng.apps.gateway.audit import AuditLog

    real = world.services.audit
    world.services.audit = AuditLog(make_engine(f"sqlite:///{tmp_path / 'empty.db'}"), org="hospital")
    try:
        reply = world.client(token=session["auditor"]).get("/api/v1/prescriptions/0x" + "ab" * 32)
    finally:
        world.services.audit = real
    assert reply.status_code == 503 and reply.headers["content-type"] == "application/problem+json"
    assert "audit log is unavailable" in reply.json()["detail"]
    assert world.client(token=session["auditor"]).get("/api/v1/prescriptions/0x" + "ab" * 32).status_code == 404


def test_the_background_job_anchors_the_moving_head(world: GatewayWorld, session: dict[str, str]) -> None:
    audit = world.services.audit
    world.client(token=session["auditor"]).get("/api/v1/audit/verify")
    head = audit.head()
    assert head is not None
    job = audit.start_anchoring(0.2)
    try:
        deadline = time.monotonic() + 60
        while not any(a.seq >= head[0] and a.package is not None for a in audit.anchored_heads()):
            assert time.monotonic() < deadline, f"no final anchor of seq {head[0]} within 60 s ({job.last_error})"
            time.sleep(0.1)
    finally:
        job.stop()
    anchored = [a.seq for a in audit.anchored_heads()]
    assert anchored == sorted(set(anchored))  # one anchor per head, never the same head twice


def test_a_ranged_export_starts_from_the_hash_before_it(world: GatewayWorld, session: dict[str, str]) -> None:
    http = world.client(token=session["auditor"])
    last_anchor = world.services.audit.anchored_heads()[-1].seq
    reply = http.get("/api/v1/audit/export", params={"since": 3, "until": last_anchor})
    lines = reply.text.splitlines()
    header = json.loads(lines[0])
    assert header["first_seq"] == 3 and header["prev_hash"] == world.services.audit.entries(after=1, limit=1)[0].hash
    result = verify_export(lines, genesis=GenesisFile.load(world.node.genesis_path))
    assert (result.first_seq, result.last_seq, result.anchored_seq) == (3, last_anchor, last_anchor)
    assert http.get("/api/v1/audit/export", params={"since": 5, "until": 4}).status_code == 400
    assert http.get("/api/v1/audit/export", params={"since": 10**9}).status_code == 400
