"""Authentication endpoints: API tokens and SM2 request keys (admins: create or register, list, revoke),
``/api/v1/me``, the CSRF token, the demo sign-in (an API token exchanged for a browser session), OIDC sign-in
(``/auth/login``, ``/auth/callback``) and sign-out (ends the session on the gateway, whichever way it began)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from shancheng.sdk.crypto import SM2PublicKey
from shancheng.sdk.errors import ShanchengError

from ..audit import AUDIT_DETAIL
from ..auth import TokenInfo
from ..deps import ROLES, Principal, ServicesDep, current_principal, optional_principal, require
from ..oidc import begin_login, finish_login
from ..pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from ..problems import Problem
from ..sessions import csrf_token

router = APIRouter()

_ROLE_PATTERN = "^(" + "|".join(ROLES) + ")$"
Subject = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Role = Annotated[str, Field(pattern=_ROLE_PATTERN)]
PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "content": {"application/problem+json": {}}}
    for code, text in ((400, "bad input"), (401, "not authenticated"), (403, "forbidden"), (413, "too large"),
                       (422, "invalid request"))}


class MeOut(BaseModel):
    subject: str
    org: str
    org_id: int
    role: str
    via: str


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: Subject
    role: Role
    expires_in: float | None = Field(default=None, gt=0, le=5 * 365 * 86400)
    label: str | None = Field(default=None, max_length=200)


@dataclass(frozen=True)
class TokenCreated(TokenInfo):
    """A new API token as listed, and its secret."""

    token: Annotated[str, Field(description="the token: shown once, never stored by the gateway")]


class Sm2KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: Subject
    role: Role
    public_key: str = Field(pattern=r"^(0x)?04[0-9a-fA-F]{128}$", description="uncompressed SM2 point, hex")


class Sm2KeyOut(BaseModel):
    key_id: str
    subject: str
    role: str


class Sm2KeyInfo(Sm2KeyOut):
    public_key: str = Field(description="uncompressed SM2 point, hex")
    created_at: float
    revoked_at: float | None
    active: bool


KeyId = Annotated[str, Field(pattern=r"^[0-9a-f]{8,64}$")]


class TokenLoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200)


class CsrfOut(BaseModel):
    csrf_token: str


Admin = Annotated[Principal, Depends(require("admin"))]


@router.get("/api/v1/me", response_model=MeOut, tags=["auth"], responses=PROBLEMS)
def me(who: Annotated[Principal, Depends(current_principal)]) -> MeOut:
    """The signed-in principal."""
    return MeOut(subject=who.subject, org=who.org, org_id=who.org_id, role=who.role, via=who.via)


@router.post("/api/v1/tokens", response_model=TokenCreated, status_code=201, tags=["auth"], responses=PROBLEMS)
def create_token(body: TokenIn, who: Admin, services: ServicesDep, request: Request) -> TokenCreated:
    """Create an API token for a subject of this organisation (admin). A token made for another subject never signs
    with that subject's staff key."""
    token, info = services.tokens.create(subject=body.subject, role=body.role, expires_in=body.expires_in,
                                         label=body.label, created_by=who.subject, issued_via="api")
    setattr(request.state, AUDIT_DETAIL, f"minted token {info.id} for subject {info.subject!r} role {info.role}")
    return TokenCreated(**asdict(info), token=token)


@router.get("/api/v1/tokens", response_model=Page[TokenInfo], tags=["auth"], responses=PROBLEMS)
def list_tokens(_: Admin, services: ServicesDep, limit: Limit = 50, cursor: Cursor = None) -> Page[TokenInfo]:
    """The organisation's API tokens (admin), without their secrets."""
    after = decode_cursor(cursor) if cursor else None
    if after is not None and not (isinstance(after, str) and re.fullmatch(r"[0-9a-f]{16}", after)):
        raise Problem(status=400, detail="the cursor is not one this gateway made", type_suffix="bad-cursor")
    rows = services.tokens.list(limit=limit + 1, after=after)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[TokenInfo](items=rows, next_cursor=encode_cursor(rows[-1].id) if more else None)


@router.delete("/api/v1/tokens/{token_id}", response_model=TokenInfo, tags=["auth"], responses=PROBLEMS)
def revoke_token(token_id: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")], _: Admin,
                 services: ServicesDep) -> TokenInfo:
    """Revoke an API token (admin); sessions made from it end too."""
    info = services.tokens.get(token_id)
    if info is None or info.org != services.settings.org:
        raise Problem(status=404, detail=f"no token {token_id}", type_suffix="no-such-token")
    services.tokens.revoke(token_id)
    revoked = services.tokens.get(token_id)
    assert revoked is not None
    return revoked


@router.post("/api/v1/sm2-keys", response_model=Sm2KeyOut, status_code=201, tags=["auth"], responses=PROBLEMS)
def register_sm2_key(body: Sm2KeyIn, who: Admin, services: ServicesDep, request: Request) -> Sm2KeyOut:
    """Allow an SM2 public key to sign API requests as a subject with a role (admin)."""
    try:
        key = SM2PublicKey.from_bytes(bytes.fromhex(body.public_key.removeprefix("0x")))
    except (ShanchengError, ValueError):
        raise Problem(status=422, detail="public_key is not a point of the SM2 curve", type_suffix="bad-key") from None
    key_id = services.sm2_keys.register(subject=body.subject, role=body.role, public_key=key, created_by=who.subject,
                                        issued_via="api")
    setattr(request.state, AUDIT_DETAIL, f"registered SM2 key {key_id} for subject {body.subject!r} role {body.role}")
    return Sm2KeyOut(key_id=key_id, subject=body.subject, role=body.role)


@router.get("/api/v1/sm2-keys", response_model=Page[Sm2KeyInfo], tags=["auth"], responses=PROBLEMS)
def list_sm2_keys(_: Admin, services: ServicesDep, limit: Limit = 50, cursor: Cursor = None) -> Page[Sm2KeyInfo]:
    """The organisation's SM2 request keys (admin), revoked ones too."""
    after = decode_cursor(cursor) if cursor else None
    if after is not None and not (isinstance(after, str) and re.fullmatch(r"[0-9a-f]{8,64}", after)):
        raise Problem(status=400, detail="the cursor is not one this gateway made", type_suffix="bad-cursor")
    rows = services.sm2_keys.list(limit=limit + 1, after=after)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[Sm2KeyInfo](items=[Sm2KeyInfo(**row) for row in rows],
                            next_cursor=encode_cursor(rows[-1]["key_id"]) if more else None)


@router.delete("/api/v1/sm2-keys/{key_id}", response_model=Sm2KeyInfo, tags=["auth"], responses=PROBLEMS)
def revoke_sm2_key(key_id: KeyId, _: Admin, services: ServicesDep) -> Sm2KeyInfo:
    """Revoke an SM2 request key (admin): its signatures are refused at once, and it can never be registered
    again."""
    if not services.sm2_keys.revoke(key_id):
        raise Problem(status=404, detail=f"no SM2 key {key_id}", type_suffix="no-such-key")
    info = services.sm2_keys.get(key_id)
    assert info is not None
    return Sm2KeyInfo(**info)


@router.get("/api/v1/csrf", response_model=CsrfOut, tags=["auth"], responses=PROBLEMS)
def csrf(request: Request, who: Annotated[Principal, Depends(current_principal)]) -> CsrfOut:
    """The browser session's CSRF token (send it as ``X-CSRF-Token`` with every write)."""
    if who.via != "session":
        raise Problem(status=400, detail="CSRF tokens belong to browser sessions; API calls need none",
                      type_suffix="no-session")
    return CsrfOut(csrf_token=csrf_token(request.session))


@router.post("/auth/token-login", response_model=MeOut, tags=["auth"], responses=PROBLEMS)
def token_login(body: TokenLoginIn, request: Request, services: ServicesDep) -> MeOut:
    """Exchange an API token for a browser session (the demo sign-in); the session ends when the token is
    revoked."""
    who = services.tokens.authenticate(body.token)
    lifetime = services.settings.oidc.session_lifetime if services.settings.oidc else 8 * 3600
    services.sessions.start(request.session, subject=who.subject, role=who.role, lifetime=lifetime,
                            token_id=who.token_id)
    return MeOut(subject=who.subject, org=who.org, org_id=who.org_id, role=who.role, via="session")


@router.post("/auth/logout", status_code=204, tags=["auth"], responses=PROBLEMS)
def logout(request: Request, who: Annotated[Principal | None, Depends(optional_principal)],
           services: ServicesDep) -> Response:
    """End the browser session on the gateway, whether it began with a token or with OIDC: the cookie, and any
    copy of it, stops working at once (a session write: needs the CSRF token)."""
    if who is not None and who.via != "session":
        raise Problem(status=400, detail="only browser sessions sign out; revoke a token instead",
                      type_suffix="no-session")
    services.sessions.end(request.session)
    return Response(status_code=204)


@router.get("/auth/login", tags=["auth"], responses=PROBLEMS, response_class=RedirectResponse, status_code=302)
async def login(request: Request, services: ServicesDep) -> RedirectResponse:
    """Start the OpenID Connect sign-in (redirect to the identity provider with state, nonce and PKCE)."""
    return await begin_login(request, services.oidc)


@router.get("/auth/callback", tags=["auth"], responses=PROBLEMS, response_class=RedirectResponse, status_code=302)
async def callback(request: Request, services: ServicesDep) -> RedirectResponse:
    """The identity provider's redirect back: validates the ID token and creates the session."""
    return await finish_login(request, services.oidc, org=services.settings.org, sessions=services.sessions,
                              home=services.settings.public_url + "/")
