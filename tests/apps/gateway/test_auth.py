"""Authentication and the core's HTTP behaviour: tokens, SM2-signed requests (the attacker's cases), sessions and
CSRF, problems, size limits, idempotency and pagination — against a real solo node and a real SQLite store."""

from __future__ import annotations

import json
import time

import pytest

from shancheng.apps.gateway.auth import sign_request
from shancheng.apps.gateway.sessions import session_cookie_name
from shancheng.testing.gateway import GatewayWorld

pytestmark = [pytest.mark.network, pytest.mark.slow]
PROBLEM = "application/problem+json"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_me_with_a_token_names_the_principal(world: GatewayWorld) -> None:
    r = world.client().get("/api/v1/me", headers=bearer(world.token("doctor", subject="dr.li")))
    assert r.status_code == 200
    assert r.json() == {"subject": "dr.li", "org": "hospital", "org_id": world.services.org_id, "role": "doctor",
                        "via": "token"}


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic dXNlcjpwdw=="},
    {"Authorization": "Bearer sc_0123456789abcdef_" + "0" * 64},
])
def test_missing_or_bad_credentials_are_401_problems(world: GatewayWorld, headers: dict[str, str]) -> None:
    r = world.client().get("/api/v1/me", headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == 401 and body["type"].endswith("/unauthenticated") and "Traceback" not in r.text


def test_a_token_with_a_wrong_secret_is_refused(world: GatewayWorld) -> None:
    token = world.token("doctor")
    forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
    assert world.client().get("/api/v1/me", headers=bearer(forged)).status_code == 401


def test_another_organisations_token_is_403(world: GatewayWorld) -> None:
    r = world.client().get("/api/v1/me", headers=bearer(world.token("pharmacist", org="pharmacy")))
    assert r.status_code == 403
    assert r.json()["type"].endswith("/another-organisation")


def test_expired_and_revoked_tokens_are_refused(world: GatewayWorld) -> None:
    short = world.token("doctor", expires_in=1)
    http = world.client()
    assert http.get("/api/v1/me", headers=bearer(short)).status_code == 200
    deadline = time.monotonic() + 10
    while http.get("/api/v1/me", headers=bearer(short)).status_code == 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert "expired" in http.get("/api/v1/me", headers=bearer(short)).json()["detail"]
    admin = world.token("admin", subject="root")
    token = world.token("doctor")
    token_id = token.split("_")[1]
    r = http.delete(f"/api/v1/tokens/{token_id}", headers=bearer(admin))
    assert r.status_code == 200 and r.json()["active"] is False
    assert "revoked" in http.get("/api/v1/me", headers=bearer(token)).json()["detail"]


def test_token_administration_needs_admin_and_pages(world: GatewayWorld) -> None:
    http = world.client()
    admin = bearer(world.token("admin", subject="root"))
    doctor = bearer(world.token("doctor"))
    assert http.post("/api/v1/tokens", json={"subject": "x", "role": "doctor"}, headers=doctor).status_code == 403
    assert http.get("/api/v1/tokens", headers=doctor).status_code == 403
    assert http.post("/api/v1/tokens", json={"subject": "x", "role": "king"}, headers=admin).status_code == 422
    r = http.post("/api/v1/tokens", json={"subject": "nurse.wu", "role": "dispenser", "label": "ward 3"},
                  headers=admin)
    assert r.status_code == 201
    made = r.json()
    assert made["token"].startswith("sc_") and made["created_by"] == "root"
    assert http.get("/api/v1/me", headers=bearer(made["token"])).json()["role"] == "dispenser"
    for i in range(5):
        http.post("/api/v1/tokens", json={"subject": f"bulk-{i}", "role": "courier"}, headers=admin)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = http.get("/api/v1/tokens", params=params, headers=admin).json()
        assert len(page["items"]) <= 2
        assert all("token" not in t and "secret_hash" not in t for t in page["items"])
        seen += [t["id"] for t in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    everything = http.get("/api/v1/tokens", params={"limit": 500}, headers=admin).json()
    assert seen == [t["id"] for t in everything["items"]] and len(seen) == len(set(seen)) >= 7 and pages >= 4
    assert http.get("/api/v1/tokens", params={"cursor": "bm90LWEtY3Vyc29y"}, headers=admin).status_code == 400
    assert http.get("/api/v1/tokens", params={"limit": 0}, headers=admin).status_code == 422
    assert http.delete("/api/v1/tokens/00000000000000ff", headers=admin).status_code == 404


# -- SM2-signed requests: the attacker's cases --------------------------------------------------------------------

def test_sm2_signed_request_is_accepted_once(world: GatewayWorld) -> None:
    key = world.sm2_client("doctor", subject="his-system")
    http = world.client()
    headers = world.signed(key, "GET", "/api/v1/me")
    r = http.get("/api/v1/me", headers=headers)
    assert r.status_code == 200 and r.json()["via"] == "sm2" and r.json()["subject"] == "his-system"
    replay = http.get("/api/v1/me", headers=headers)
    assert replay.status_code == 401 and "replayed" in replay.json()["detail"]


def test_sm2_signature_covers_body_path_and_query(world: GatewayWorld) -> None:
    key = world.sm2_client("doctor")
    http = world.client()
    body = json.dumps({"record": {"a": 1}, "kind": "note"}).encode()
    swapped_body = json.dumps({"record": {"a": 2}, "kind": "note"}).encode()
    headers = world.signed(key, "POST", "/api/v1/evidence/records", body) | {"Content-Type": "application/json"}
    r = http.post("/api/v1/evidence/records", content=swapped_body, headers=headers)
    assert r.status_code == 401 and "does not verify" in r.json()["detail"]
    headers = world.signed(key, "GET", "/api/v1/me")
    assert http.get("/api/v1/network", headers=headers).status_code == 401  # path swapped
    headers = world.signed(key, "GET", "/api/v1/network/blocks?limit=1")
    assert http.get("/api/v1/network/blocks?limit=50", headers=headers).status_code == 401  # query swapped
    headers = world.signed(key, "POST", "/api/v1/me")
    assert http.get("/api/v1/me", headers=headers).status_code == 401  # method swapped


def test_sm2_expired_timestamp_unknown_key_and_another_org(world: GatewayWorld) -> None:
    from shancheng.sdk.crypto import SM2PrivateKey

    http = world.client()
    key = world.sm2_client("doctor")
    old = world.signed(key, "GET", "/api/v1/me", ts=int(time.time()) - 3600)
    assert "timestamp" in http.get("/api/v1/me", headers=old).json()["detail"]
    future = world.signed(key, "GET", "/api/v1/me", ts=int(time.time()) + 3600)
    assert http.get("/api/v1/me", headers=future).status_code == 401
    stranger = SM2PrivateKey.generate()
    r = http.get("/api/v1/me", headers=world.signed(stranger, "GET", "/api/v1/me"))
    assert r.status_code == 401 and "not registered" in r.json()["detail"]
    # a registered key id, signed by another key
    forged = sign_request(stranger, key_id=sign_request(key, method="GET", path="/").split("=")[1].split(",")[0],
                          method="GET", path="/api/v1/me")
    assert http.get("/api/v1/me", headers={"Authorization": forged}).status_code == 401
    other = world.sm2_client("pharmacist", org="pharmacy")
    r = http.get("/api/v1/me", headers=world.signed(other, "GET", "/api/v1/me"))
    assert r.status_code == 403 and r.json()["type"].endswith("/another-organisation")
    malformed = {"Authorization": "SM2 keyId=zz,ts=1,nonce=short,sig=00"}
    assert http.get("/api/v1/me", headers=malformed).status_code == 401


def test_admin_registers_an_sm2_key(world: GatewayWorld) -> None:
    from shancheng.sdk.crypto import SM2PrivateKey

    key = SM2PrivateKey.generate()
    http = world.client()
    admin = bearer(world.token("admin"))
    body = {"subject": "lab-system", "role": "data_steward", "public_key": key.public_key().to_bytes().hex()}
    assert http.post("/api/v1/sm2-keys", json=body, headers=bearer(world.token("doctor"))).status_code == 403
    assert http.post("/api/v1/sm2-keys", json=body | {"public_key": "04" + "11" * 64},
                     headers=admin).status_code == 422
    assert http.post("/api/v1/sm2-keys", json=body, headers=admin).status_code == 201
    r = http.get("/api/v1/me", headers=world.signed(key, "GET", "/api/v1/me"))
    assert r.json()["role"] == "data_steward"


# -- browser sessions and CSRF --------------------------------------------------------------------------------------

def test_token_login_session_and_csrf(world: GatewayWorld) -> None:
    token = world.token("doctor", subject="dr.session")
    browser = world.client()
    r = browser.post("/auth/token-login", json={"token": token})
    assert r.status_code == 200 and r.json()["via"] == "session"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    assert browser.get("/api/v1/me").json()["subject"] == "dr.session"
    record = {"record": {"note": "session write"}, "kind": "note"}
    missing = browser.post("/api/v1/evidence/records", json=record)
    assert missing.status_code == 403 and missing.json()["type"].endswith("/csrf")
    wrong = browser.post("/api/v1/evidence/records", json=record, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    csrf = browser.get("/api/v1/csrf").json()["csrf_token"]
    ok = browser.post("/api/v1/evidence/records", json=record, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201
    # API tokens carry no cookie and need no CSRF token
    assert world.client().post("/api/v1/evidence/records", json=record, headers=bearer(token)).status_code == 201
    assert browser.post("/auth/logout").status_code == 403  # logout is a write too
    assert browser.post("/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert browser.get("/api/v1/me").status_code == 401


def test_session_ends_when_its_token_is_revoked(world: GatewayWorld) -> None:
    token = world.token("pharmacist")
    browser = world.client()
    assert browser.post("/auth/token-login", json={"token": token}).status_code == 200
    assert browser.get("/api/v1/me").status_code == 200
    world.services.tokens.revoke(token.split("_")[1])
    assert browser.get("/api/v1/me").status_code == 401
    assert world.client().post("/auth/token-login", json={"token": token}).status_code == 401
    foreign = world.token("pharmacist", org="pharmacy")
    assert world.client().post("/auth/token-login", json={"token": foreign}).status_code == 403


def test_a_tampered_session_cookie_is_no_session(world: GatewayWorld) -> None:
    browser = world.client()
    browser.post("/auth/token-login", json={"token": world.token("admin")})
    name = session_cookie_name(world.settings.org)
    value = browser.cookies.get(name)
    assert value
    browser.cookies.set(name, value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"))
    assert browser.get("/api/v1/me").status_code == 401


# -- problems, limits, idempotency -----------------------------------------------------------------------------------

def test_oversized_body_is_413_problem(world: GatewayWorld) -> None:
    http = world.client(token=world.token("doctor"))
    big = {"record": {"blob": "x" * (world.settings.max_body_bytes + 10)}, "kind": "note"}
    r = http.post("/api/v1/evidence/records", json=big)
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM
    chunks = (b"x" * 65536 for _ in range(world.settings.max_body_bytes // 65536 + 2))  # no Content-Length
    r = http.post("/api/v1/evidence/verify", content=chunks, headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_bad_input_is_a_4xx_problem_never_500(world: GatewayWorld) -> None:
    http = world.client(token=world.token("doctor"))
    for body in ({"kind": "note"}, {"record": 1, "kind": "NOT A KIND"}, {"record": 1, "kind": "x", "more": 1}):
        r = http.post("/api/v1/evidence/records", json=body)
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM and r.json()["errors"]
    r = http.post("/api/v1/evidence/records", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    deep = "[" * 200 + "]" * 200
    r = http.post("/api/v1/evidence/verify", content=deep.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "deeper" in r.json()["detail"]
    assert http.get("/api/v1/nowhere").status_code == 404
    assert http.get("/api/v1/nowhere").headers["content-type"] == PROBLEM
    assert http.put("/api/v1/me").status_code == 405


def test_idempotency_replay_and_conflict(world: GatewayWorld) -> None:
    token = world.token("doctor", subject="dr.idem")
    http = world.client(token=token)
    body = {"record": {"rx": "RX-IDEM-1"}, "kind": "prescription"}
    first = http.post("/api/v1/evidence/records", json=body, headers={"Idempotency-Key": "rx-1"})
    again = http.post("/api/v1/evidence/records", json=body, headers={"Idempotency-Key": "rx-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    other = http.post("/api/v1/evidence/records", json=body | {"kind": "note"}, headers={"Idempotency-Key": "rx-1"})
    assert other.status_code == 422 and other.json()["type"].endswith("/idempotency-key-reused")
    fresh = http.post("/api/v1/evidence/records", json=body, headers={"Idempotency-Key": "rx-2"})
    assert fresh.json()["id"] != first.json()["id"]
    # keys are per principal: another principal's same key is its own request
    someone = world.client(token=world.token("doctor", subject="dr.other"))
    theirs = someone.post("/api/v1/evidence/records", json=body, headers={"Idempotency-Key": "rx-1"})
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
    assert http.post("/api/v1/evidence/records", json=body, headers={"Idempotency-Key": " bad key"}).status_code == 400
    # a refused request is stored too: its retry gets the same refusal
    auditor = world.client(token=world.token("auditor"))
    a = auditor.post("/api/v1/evidence/records", json=body, headers={"Idempotency-Key": "k"})
    b = auditor.post("/api/v1/evidence/records", json=body, headers={"Idempotency-Key": "k"})
    assert a.status_code == b.status_code == 403 and b.headers["idempotent-replayed"] == "true"
