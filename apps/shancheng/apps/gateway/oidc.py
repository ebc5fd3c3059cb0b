"""OpenID Connect sign-in (the district's unified identity, 统一身份认证): authorization code flow with ``state``,
``nonce`` and PKCE (S256); the ID token's signature is checked against the provider's JWKS, and its issuer,
audience, expiry and nonce against what the gateway expects. The role and organisation come from configurable
claims (``role_claim``, ``org_claim``); an unknown role or another organisation is refused. The session is kept by
the gateway (:class:`~shancheng.apps.gateway.sessions.BrowserSessions`): ``POST /auth/logout`` ends it on the server.

>>> pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")   # RFC 7636 appendix B
'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import anyio.to_thread
import httpx
from fastapi import Request
from fastapi.responses import RedirectResponse
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .principal import ROLES
from .problems import Problem
from .sessions import BrowserSessions
from .settings import OidcSettings

__all__ = ["IdTokenClaims", "OidcClient", "begin_login", "finish_login", "pkce_challenge"]

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
LOGIN_WINDOW = 600.0  # seconds between /auth/login and /auth/callback
CLOCK_SKEW = 60
MAX_DOCUMENT = 256 * 1024


def pkce_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


IdTokenClaims = dict[str, Any]


def _refused(detail: str) -> Problem:
    return Problem(status=401, title="Sign-In Refused", detail=detail, type_suffix="oidc-refused")


class OidcClient:
    """The gateway's client of one OpenID provider (discovery and JWKS fetched once, JWKS again on an unknown key)."""

    def __init__(self, config: OidcSettings, *, redirect_uri: str, timeout: float = 10.0) -> None:
        self.config = config
        self.redirect_uri = redirect_uri
        self.timeout = timeout
        self._metadata: dict[str, Any] | None = None
        self._jwks: KeySet | None = None

    def _get_json(self, url: str) -> Any:
        try:
            reply = httpx.get(url, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise Problem(status=503, detail=f"the identity provider is unreachable: {type(exc).__name__}",
                          type_suffix="oidc-unavailable") from None
        if reply.status_code != 200 or len(reply.content) > MAX_DOCUMENT:
            raise Problem(status=503, detail=f"the identity provider answered {reply.status_code} for {url}",
                          type_suffix="oidc-unavailable")
        return reply.json()

    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            meta = self._get_json(self.config.issuer.rstrip("/") + "/.well-known/openid-configuration")
            if not isinstance(meta, dict) or meta.get("issuer") != self.config.issuer:
                raise Problem(status=503, detail="the identity provider's discovery document names another issuer",
                              type_suffix="oidc-unavailable")
            self._metadata = meta
        return self._metadata

    def jwks(self, *, refresh: bool = False) -> KeySet:
        if self._jwks is None or refresh:
            try:
                self._jwks = KeySet.import_key_set(self._get_json(str(self.metadata()["jwks_uri"])))
            except (JoseError, ValueError, TypeError, KeyError):
                raise Problem(status=503, detail="the identity provider's JWKS cannot be read",
                              type_suffix="oidc-unavailable") from None
        return self._jwks

    def authorization_url(self, *, state: str, nonce: str, verifier: str) -> str:
        params = {"response_type": "code", "client_id": self.config.client_id, "redirect_uri": self.redirect_uri,
                  "scope": self.config.scope, "state": state, "nonce": nonce,
                  "code_challenge": pkce_challenge(verifier), "code_challenge_method": "S256"}
        return str(self.metadata()["authorization_endpoint"]) + "?" + urlencode(params)

    def exchange(self, code: str, verifier: str) -> str:
        """The ID token for an authorization code (client_secret_basic)."""
        try:
            reply = httpx.post(str(self.metadata()["token_endpoint"]), timeout=self.timeout,
                               auth=(self.config.client_id, self.config.client_secret()),
                               data={"grant_type": "authorization_code", "code": code,
                                     "redirect_uri": self.redirect_uri, "code_verifier": verifier})
        except httpx.HTTPError as exc:
            raise Problem(status=503, detail=f"the identity provider is unreachable: {type(exc).__name__}",
                          type_suffix="oidc-unavailable") from None
        body = reply.json() if reply.headers.get("content-type", "").startswith("application/json") else {}
        if reply.status_code != 200 or not isinstance(body.get("id_token"), str):
            raise _refused(f"the identity provider refused the code: {str(body.get('error', reply.status_code))[:80]}")
        return str(body["id_token"])

    def validate(self, id_token: str, *, nonce: str, now: float | None = None) -> IdTokenClaims:
        """The claims of ``id_token`` when its signature (provider's JWKS), issuer, audience, expiry and nonce are
        right; a 401 problem otherwise."""
        if len(id_token) > 16384:
            raise _refused("the ID token is too large")
        claims: dict[str, Any] = {}
        for refresh in (False, True):  # the provider may have rotated its keys: fetch the JWKS once more
            try:
                claims = dict(jwt.decode(id_token, self.jwks(refresh=refresh), algorithms=ALGORITHMS).claims)
                break
            except (JoseError, ValueError, TypeError) as exc:
                if refresh or not isinstance(exc, JoseError):
                    raise _refused("the ID token's signature does not verify with the provider's keys") from None
        now = time.time() if now is None else now
        if claims.get("iss") != self.config.issuer:
            raise _refused("the ID token is from another issuer")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self.config.client_id not in audiences or (len(audiences) > 1 and claims.get("azp") != self.config.client_id):
            raise _refused("the ID token is for another client")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int) or exp + CLOCK_SKEW < now:
            raise _refused("the ID token has expired")
        if not isinstance(iat, int) or iat - CLOCK_SKEW > now:
            raise _refused("the ID token is issued in the future")
        got = claims.get("nonce")
        if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
            raise _refused("the ID token's nonce is not this sign-in's")
        if not isinstance(claims.get("sub"), str) or not 0 < len(claims["sub"]) <= 200:
            raise _refused("the ID token has no subject")
        return claims


def _configured(client: OidcClient | None) -> OidcClient:
    if client is None:
        raise Problem(status=404, detail="this gateway has no OpenID Connect sign-in configured",
                      type_suffix="oidc-not-configured")
    return client


async def begin_login(request: Request, oidc: OidcClient | None) -> RedirectResponse:
    """Redirect to the identity provider with a new state, nonce and PKCE verifier (kept in the session)."""
    client = _configured(oidc)
    state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    url = await anyio.to_thread.run_sync(lambda: client.authorization_url(state=state, nonce=nonce,
                                                                          verifier=verifier))
    request.session["oidc"] = {"state": state, "nonce": nonce, "verifier": verifier, "at": time.time()}
    return RedirectResponse(url, status_code=302)


async def finish_login(request: Request, oidc: OidcClient | None, *, org: str, sessions: BrowserSessions,
                       home: str) -> RedirectResponse:
    """Check the provider's answer and the ID token, start the browser session of ``org``'s gateway, redirect to
    ``home``."""
    client = _configured(oidc)
    pending = request.session.pop("oidc", None)
    params = request.query_params
    if params.get("error"):
        raise _refused(f"the identity provider refused the sign-in: {params['error'][:80]}")
    state, code = params.get("state", ""), params.get("code", "")
    if (not isinstance(pending, dict) or not isinstance(pending.get("state"), str)
            or not hmac.compare_digest(pending["state"].encode(), state.encode())):
        raise _refused("the sign-in's state does not match (start again at /auth/login)")
    if time.time() - float(pending.get("at", 0)) > LOGIN_WINDOW:
        raise _refused("the sign-in took too long (start again at /auth/login)")
    if not code or len(code) > 2000:
        raise _refused("the identity provider sent no authorization code")
    id_token = await anyio.to_thread.run_sync(client.exchange, code, str(pending["verifier"]))
    claims = await anyio.to_thread.run_sync(lambda: client.validate(id_token, nonce=str(pending["nonce"])))
    config = client.config
    role = claims.get(config.role_claim)
    if role not in ROLES:
        raise Problem(status=403, detail=f"the identity provider gives no known role in {config.role_claim!r}",
                      type_suffix="oidc-unknown-role")
    if claims.get(config.org_claim) != org:
        raise Problem(status=403, detail=f"this gateway serves {org}; the account is of another "
                                         "organisation", type_suffix="another-organisation")
    await anyio.to_thread.run_sync(lambda: sessions.start(
        request.session, subject=str(claims["sub"]), role=str(role), lifetime=config.session_lifetime,
        issuer=config.issuer))
    return RedirectResponse(home, status_code=302)
