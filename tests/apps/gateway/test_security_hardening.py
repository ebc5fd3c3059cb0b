"""The gateway's lower holes, each tried as the attack against a real gateway (a real solo node, a real SQLite store):
a session cookie kept after sign-out, a revoked SM2 request key registered again, responses a browser may sniff or
frame, API docs that load a CDN, two organisations' gateways on one host sharing a cookie, and an outsider growing
the audit log with unauthenticated requests."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from shancheng.apps.gateway.limits import SourceBuckets
from shancheng.apps.gateway.routes.ui import static_file
from shancheng.apps.gateway.security import CSP
from shancheng.apps.gateway.sessions import session_cookie_name
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.testing.gateway import GatewayWorld

pytestmark = [pytest.mark.network, pytest.mark.slow]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signed_in(world: GatewayWorld, role: str = "doctor") -> tuple[TestClient, str]:
    browser = world.client()
    assert browser.post("/auth/token-login", json={"token": world.token(role)}).status_code == 200
    return browser, browser.get("/api/v1/csrf").json()["csrf_token"]


# -- sessions end on the server --------------------------------------------------------------------------------------

def test_a_session_cookie_copied_before_sign_out_no_longer_works(world: GatewayWorld) -> None:
    browser, csrf = signed_in(world)
    name = session_cookie_name(world.settings.org)
    stolen = browser.cookies.get(name)
    assert stolen and browser.get("/api/v1/me").status_code == 200
    assert browser.post("/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    thief = world.client()
    thief.cookies.set(name, stolen)
    r = thief.get("/api/v1/me")
    assert r.status_code == 401 and r.json()["type"].endswith("/unauthenticated")


def test_signing_in_again_ends_the_previous_session(world: GatewayWorld) -> None:
    browser, _ = signed_in(world)
    name = session_cookie_name(world.settings.org)
    first = browser.cookies.get(name)
    assert browser.post("/auth/token-login", json={"token": world.token("pharmacist")}).status_code == 200
    assert browser.get("/api/v1/me").json()["role"] == "pharmacist"
    replay = world.client()
    replay.cookies.set(name, first or "")
    assert replay.get("/api/v1/me").status_code == 401


def test_the_session_cookie_carries_no_principal(world: GatewayWorld) -> None:
    """The signed cookie holds a random id and the CSRF token only: what it grants is decided on the server."""
    import base64
    import json

    browser, _ = signed_in(world, "admin")
    value = browser.cookies.get(session_cookie_name(world.settings.org)) or ""
    payload = json.loads(base64.b64decode(value.split(".")[0] + "=="))
    assert set(payload) == {"sid", "csrf"}


def test_each_organisations_gateway_has_its_own_session_cookie(world: GatewayWorld, tmp_path: Path) -> None:
    """Cookies ignore ports: on one host, the pharmacy's gateway must neither receive the hospital's session under
    its own name nor overwrite it."""
    with GatewayWorld.start(tmp_path, org="pharmacy", node=world.node) as pharmacy:
        hospital_url, pharmacy_url = world.serve(), pharmacy.serve()
        with httpx.Client(timeout=60) as browser:  # one browser, one cookie jar, one host, two ports
            r = browser.post(hospital_url + "/auth/token-login", json={"token": world.token("doctor")})
            assert r.status_code == 200
            r = browser.post(pharmacy_url + "/auth/token-login", json={"token": pharmacy.token("pharmacist")})
            assert r.status_code == 200
            names = {cookie.name for cookie in browser.cookies.jar}
            assert names == {session_cookie_name("hospital"), session_cookie_name("pharmacy")}
            assert browser.get(hospital_url + "/api/v1/me").json()["org"] == "hospital"  # not signed out by the other
            assert browser.get(pharmacy_url + "/api/v1/me").json()["org"] == "pharmacy"
    assert session_cookie_name("hospital") != session_cookie_name("Hospital")


# -- SM2 request keys: listed, revoked, and revoked for good ---------------------------------------------------------

def test_a_revoked_sm2_key_stays_revoked(world: GatewayWorld) -> None:
    http = world.client()
    admin = bearer(world.token("admin"))
    key = SM2PrivateKey.generate()
    body = {"subject": "lis-system", "role": "doctor", "public_key": key.public_key().to_bytes().hex()}
    made = http.post("/api/v1/sm2-keys", json=body, headers=admin)
    assert made.status_code == 201
    key_id = made.json()["key_id"]
    assert http.get("/api/v1/me", headers=world.signed(key, "GET", "/api/v1/me")).status_code == 200

    listed = http.get("/api/v1/sm2-keys", params={"limit": 100}, headers=admin).json()["items"]
    mine = [k for k in listed if k["key_id"] == key_id]
    assert mine and mine[0]["active"] is True and mine[0]["subject"] == "lis-system"
    assert http.get("/api/v1/sm2-keys", headers=bearer(world.token("doctor"))).status_code == 403
    assert http.delete(f"/api/v1/sm2-keys/{key_id}", headers=bearer(world.token("doctor"))).status_code == 403

    revoked = http.delete(f"/api/v1/sm2-keys/{key_id}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["active"] is False and revoked.json()["revoked_at"]
    r = http.get("/api/v1/me", headers=world.signed(key, "GET", "/api/v1/me"))
    assert r.status_code == 401
    # the attack: registering the revoked key again (by the API, or by a role change) must not bring it back
    again = http.post("/api/v1/sm2-keys", json=body | {"role": "admin"}, headers=admin)
    assert again.status_code == 409 and again.json()["type"].endswith("/key-revoked")
    assert http.get("/api/v1/me", headers=world.signed(key, "GET", "/api/v1/me")).status_code == 401
    listed = http.get("/api/v1/sm2-keys", params={"limit": 100}, headers=admin).json()["items"]
    assert [k["active"] for k in listed if k["key_id"] == key_id] == [False]
    assert http.delete("/api/v1/sm2-keys/" + "0" * 40, headers=admin).status_code == 404


# -- security headers on every response, Swagger UI from the gateway's own files -------------------------------------

def test_every_kind_of_response_carries_nosniff_and_the_csp(world: GatewayWorld) -> None:
    http = world.client()
    doctor = bearer(world.token("doctor"))
    responses = {
        "api": http.get("/api/v1/me", headers=doctor),
        "401 problem": http.get("/api/v1/me"),
        "404 problem": http.get("/api/v1/nowhere", headers=doctor),
        "422 problem": http.post("/api/v1/evidence/records", json={"kind": "note"}, headers=doctor),
        "schema": http.get("/openapi.json"),
        "docs": http.get("/docs"),
        "page": http.get("/"),
        "static": http.get("/static/js/app.js"),
        "auth": http.post("/auth/token-login", json={"token": "sc_nonsense"}),
    }
    for what, r in responses.items():
        assert r.headers.get("x-content-type-options") == "nosniff", what
        assert r.headers.get("content-security-policy") == CSP, what
        assert r.headers.get("x-frame-options") == "DENY", what


def test_an_unexpected_error_is_a_500_problem_with_the_headers() -> None:
    """An error no handler answers still leaves through the security headers, as a problem without a traceback."""
    from fastapi import FastAPI

    from shancheng.apps.gateway import problems
    from shancheng.apps.gateway.security import SecurityHeaders

    app = FastAPI()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret detail")

    problems.install(app)
    app.add_middleware(SecurityHeaders)
    r = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
    assert r.headers["x-content-type-options"] == "nosniff" and "secret detail" not in r.text


def test_the_api_docs_load_nothing_from_outside_the_gateway(world: GatewayWorld) -> None:
    http = world.client()
    page = http.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    sources = [s for s in re.findall(r'(?:src|href)="([^"]+)"', page.text) if s != "data:,"]  # data:, no favicon
    assert sources and all(s.startswith("/") and not s.startswith("//") for s in sources), sources
    assert "<script>" not in page.text  # no inline script: the CSP would refuse it
    if static_file("vendor/swagger-ui/swagger-ui-bundle.js") is None:
        pytest.skip("Swagger UI is not bundled (make web)")
    for source in sources:
        r = http.get(source)
        assert r.status_code == 200 and r.content, source
    assert http.get("/redoc").status_code == 404  # FastAPI's ReDoc page loads a CDN: not served


# -- unauthenticated requests are limited before the audit log -------------------------------------------------------

def test_an_outsider_cannot_grow_the_audit_log_at_will(world: GatewayWorld) -> None:
    burst = world.settings.unauthenticated_burst
    outsider = TestClient(world.app, raise_server_exceptions=False, client=("198.51.100.7", 40000))
    before = (world.services.audit.head() or (0, ""))[0]
    started = time.monotonic()
    statuses = [outsider.get("/api/v1/me", headers={"Authorization": "Bearer sc_forged"}).status_code
                for _ in range(burst + 40)]
    # the bucket refills at unauthenticated_rate a second while the loop runs (seconds on a loaded machine)
    allowed = burst + 2 + int(world.settings.unauthenticated_rate * (time.monotonic() - started))
    grown = (world.services.audit.head() or (0, ""))[0] - before
    assert statuses.count(401) <= allowed and statuses.count(429) >= burst + 40 - allowed
    assert grown <= allowed  # the refused ones never reached the audit log
    refused = outsider.get("/api/v1/network")
    assert refused.status_code == 429 and refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1 and refused.json()["type"].endswith("/rate-limited")
    # another source is not held back, and an authenticated caller never spends the budget
    insider = TestClient(world.app, raise_server_exceptions=False, client=("198.51.100.8", 40000))
    token = bearer(world.token("regulator"))
    assert all(insider.get("/api/v1/me", headers=token).status_code == 200 for _ in range(burst + 5))
    assert insider.get("/api/v1/me").status_code == 401
    # the web UI's files are never limited
    assert outsider.get("/static/js/app.js").status_code == 200
    outsider.close()
    insider.close()


def test_the_limiter_remembers_a_bounded_number_of_sources() -> None:
    now = [0.0]
    buckets = SourceBuckets(rate=1.0, burst=3, max_sources=100, clock=lambda: now[0])
    for i in range(10_000):  # an attacker rotating addresses
        buckets.take(f"10.0.{i // 256}.{i % 256}")
        assert len(buckets) <= 100
    for _ in range(3):
        buckets.take("192.0.2.1")
    assert not buckets.allowed("192.0.2.1") and buckets.allowed("192.0.2.2")
    now[0] = 10.0  # every bucket has refilled: forgetting them loses nothing, so they go first
    buckets.take("192.0.2.3")
    assert len(buckets) == 1 and buckets.allowed("192.0.2.1")
