"""OIDC sign-in end to end against the real npm ``oidc-provider`` (started here on a loopback port): the login form
of the provider's development interactions, the code exchange with PKCE, the session on the gateway; and the ID
tokens the gateway must refuse (forged, expired, another audience, another nonce, another issuer)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from shancheng.apps.gateway.oidc import OidcClient
from shancheng.apps.gateway.problems import Problem
from shancheng.apps.gateway.settings import OidcSettings
from shancheng.testing import free_port
from shancheng.testing.gateway import GatewayWorld

pytestmark = [pytest.mark.network, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]
PROVIDER = REPO / "tests" / "support" / "oidc" / "provider.mjs"
CLIENT_ID, CLIENT_SECRET = "gateway-hospital", "s3cret-of-the-gateway-client"
ACCOUNTS = {"dr.oidc": {"shancheng_role": "doctor", "shancheng_org": "hospital"},
            "outsider": {"shancheng_role": "doctor", "shancheng_org": "pharmacy"},
            "janitor": {"shancheng_role": "janitor", "shancheng_org": "hospital"}}


@pytest.fixture(scope="module")
def signing_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "test-key-1", "alg": "RS256", "use": "sig"}, private=True)


@pytest.fixture(scope="module")
def issuer(signing_key: RSAKey, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = {"issuer": url, "port": port, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
              "redirect_uris": ["http://testserver/auth/callback"], "accounts": ACCOUNTS,
              "jwks": {"keys": [signing_key.as_dict(private=True)]}}
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(["node", str(PROVIDER)], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "OIDC_CONFIG": json.dumps(config)})
    try:
        deadline = time.monotonic() + 30
        while b"ready" not in log.read_bytes():
            assert proc.poll() is None, f"the OIDC provider exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the OIDC provider did not start"
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, issuer: str) -> Iterator[GatewayWorld]:
    folder = tmp_path_factory.mktemp("gw-oidc")
    secret = folder / "oidc-client-secret"
    secret.write_text(CLIENT_SECRET + "\n")
    oidc = OidcSettings(issuer=issuer, client_id=CLIENT_ID, client_secret_file=secret)
    with GatewayWorld.start(folder, oidc=oidc) as w:
        yield w


def sign_in(world: GatewayWorld, login: str) -> tuple[Any, httpx.Response]:
    """The browser's sign-in: the gateway's redirect, the provider's login and consent forms, the callback."""
    browser = world.client()
    start = browser.get("/auth/login", follow_redirects=False)
    assert start.status_code == 302
    location = start.headers["location"]
    query = parse_qs(urlsplit(location).query)
    assert query["code_challenge_method"] == ["S256"] and query["state"] and query["nonce"]
    provider = httpx.Client(timeout=30)
    response = provider.get(location)
    for _ in range(10):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if location.startswith("http://testserver/"):
                break
            response = provider.get(location)
            continue
        assert response.status_code == 200, response.text[:500]
        action = urljoin(str(response.url), response.text.split('action="', 1)[1].split('"', 1)[0])
        if 'name="login"' in response.text:
            response = provider.post(action, data={"prompt": "login", "login": login, "password": "any"})
        else:
            response = provider.post(action, data={"prompt": "consent"})
    else:
        raise AssertionError("the provider never redirected back to the gateway")
    provider.close()
    callback = urlsplit(location)
    return browser, browser.get(f"{callback.path}?{callback.query}", follow_redirects=False)


def test_oidc_sign_in_creates_a_session(world: GatewayWorld) -> None:
    browser, done = sign_in(world, "dr.oidc")
    assert done.status_code == 302 and done.headers["location"] == "http://testserver/"
    me = browser.get("/api/v1/me").json()
    assert me == {"subject": "dr.oidc", "org": "hospital", "org_id": world.services.org_id, "role": "doctor",
                  "via": "session"}
    record = {"record": {"rx": "OIDC-1"}, "kind": "prescription"}
    assert browser.post("/api/v1/evidence/records", json=record).status_code == 403  # no CSRF token
    csrf = browser.get("/api/v1/csrf").json()["csrf_token"]
    assert browser.post("/api/v1/evidence/records", json=record, headers={"X-CSRF-Token": csrf}).status_code == 201


def test_oidc_sign_out_ends_the_session_on_the_gateway(world: GatewayWorld) -> None:
    from shancheng.apps.gateway.sessions import session_cookie_name

    browser, done = sign_in(world, "dr.oidc")
    assert done.status_code == 302 and browser.get("/api/v1/me").status_code == 200
    name = session_cookie_name(world.settings.org)
    copied = browser.cookies.get(name)
    csrf = browser.get("/api/v1/csrf").json()["csrf_token"]
    assert browser.post("/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert browser.get("/api/v1/me").status_code == 401
    replay = world.client()
    replay.cookies.set(name, copied or "")
    assert replay.get("/api/v1/me").status_code == 401  # the copy taken before sign-out is no session either


def test_another_organisation_or_an_unknown_role_is_refused(world: GatewayWorld) -> None:
    browser, done = sign_in(world, "outsider")
    assert done.status_code == 403 and done.json()["type"].endswith("/another-organisation")
    assert browser.get("/api/v1/me").status_code == 401
    browser, done = sign_in(world, "janitor")
    assert done.status_code == 403 and done.json()["type"].endswith("/oidc-unknown-role")


def test_callback_without_the_login_state_is_refused(world: GatewayWorld) -> None:
    r = world.client().get("/auth/callback", params={"code": "x", "state": "forged"})
    assert r.status_code == 401 and "state" in r.json()["detail"]


def mint(key: RSAKey, **claims: Any) -> str:
    now = int(time.time())
    base = {"iss": "", "aud": CLIENT_ID, "sub": "dr.oidc", "iat": now, "exp": now + 300, "nonce": "n-1"}
    return jwt.encode({"alg": "RS256", "kid": str(key.kid)}, base | claims, key)


def test_id_token_validation_refuses_bad_tokens(world: GatewayWorld, issuer: str, signing_key: RSAKey) -> None:
    settings = world.settings.oidc
    assert settings is not None
    client = OidcClient(settings, redirect_uri="http://testserver/auth/callback")
    good = mint(signing_key, iss=issuer)
    assert client.validate(good, nonce="n-1")["sub"] == "dr.oidc"
    forger = RSAKey.generate_key(2048, parameters={"kid": "test-key-1"}, private=True)
    cases = {
        "signature": mint(forger, iss=issuer),
        "expired": mint(signing_key, iss=issuer, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
        "another client": mint(signing_key, iss=issuer, aud="someone-else"),
        "nonce": mint(signing_key, iss=issuer, nonce="n-2"),
        "another issuer": mint(signing_key, iss="http://127.0.0.1:1/"),
    }
    for what, token in cases.items():
        with pytest.raises(Problem) as refused:
            client.validate(token, nonce="n-1")
        assert refused.value.status == 401, what
    unsigned = good.split(".")
    with pytest.raises(Problem):
        client.validate(".".join([unsigned[0], unsigned[1], ""]), nonce="n-1")


def test_an_oidc_sign_in_is_audited_as_the_issuer_and_subject_and_signs_with_the_own_staff_key(
        world: GatewayWorld, issuer: str) -> None:
    world.staff("dr.oidc", "doctor")
    browser, _ = sign_in(world, "dr.oidc")
    csrf = browser.get("/api/v1/csrf").json()["csrf_token"]
    body = {"record": {"rx": "OIDC-own-key"}, "kind": "prescription", "author_signed": True}
    assert browser.post("/api/v1/evidence/records", json=body, headers={"X-CSRF-Token": csrf}).status_code == 201
    entry = world.services.audit.entries(after=(world.services.audit.head() or (1, ""))[0] - 1)[-1]
    assert (entry.subject, entry.action, entry.credential) == ("dr.oidc", "POST /api/v1/evidence/records",
                                                                f"oidc:{issuer} dr.oidc")
