"""Authentication of API callers: API tokens, SM2-signed requests and browser sessions.

**API tokens** look like ``sc_<id>_<secret>`` (sent as ``Authorization: Bearer sc_...``). The gateway keeps only
``HMAC-SM3(pepper, secret)``; the pepper is derived from the session secret file, so a copy of the database alone
does not let anyone test guessed secrets. Tokens name a subject, an organisation and one role; they may expire and
may be revoked.

**SM2-signed requests** carry ``Authorization: SM2 keyId=<hex>,ts=<unix seconds>,nonce=<16-64 url-safe
chars>,sig=<hex DER>``; the signature (SM2 with the default user ID) covers :func:`signing_string`: the method,
path and query, timestamp, nonce and the SM3 of the body. The timestamp must be within ``signature_window``
seconds of the gateway's clock and a nonce is accepted once per key (the nonces of the window are kept in the
database).

>>> key = SM2PrivateKey.generate()
>>> header = sign_request(key, key_id="ab" * 10, method="POST", path="/api/v1/x?y=1", body=b"{}", ts=1700000000,
...                       nonce="n" * 16)
>>> header.startswith("SM2 keyId=" + "ab" * 10 + ",ts=1700000000,nonce=nnnnnnnnnnnnnnnn,sig=")
True
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from pydantic import computed_field
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from shancheng.sdk.crypto import SM2PrivateKey, SM2PublicKey, hmac_sm3, sm3
from shancheng.sdk.errors import InvalidInput, InvalidSignature, ShanchengError

from .principal import ROLES, Principal
from .problems import Problem
from .tables import api_tokens, sm2_keys, sm2_nonces

__all__ = ["ApiTokens", "Authenticator", "Sm2Keys", "TokenInfo", "delegated_by", "sign_request", "signing_string"]

_TOKEN = re.compile(r"sc_([0-9a-f]{16})_([0-9a-f]{64})")
_SM2_HEADER = re.compile(
    r"SM2 keyId=([0-9a-f]{8,64}),ts=([0-9]{1,12}),nonce=([A-Za-z0-9_-]{16,64}),sig=([0-9a-f]{16,300})")
_SUBJECT = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
MAX_TOKEN_LIFETIME = 5 * 365 * 86400


def _unauthenticated(detail: str) -> Problem:
    return Problem(status=401, detail=detail, type_suffix="unauthenticated",
                   headers={"WWW-Authenticate": 'Bearer realm="shancheng"'})


def check_subject(subject: str) -> str:
    if not isinstance(subject, str) or not _SUBJECT.fullmatch(subject):
        raise InvalidInput("a subject is 1 to 200 printable characters")
    return subject


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {str(role)[:40]!r} (one of {', '.join(ROLES)})")
    return role


@dataclass(frozen=True)
class TokenInfo:
    """An API token as listed by admins (never its secret)."""

    id: str
    subject: str
    org: str
    role: str
    label: str | None
    created_by: str | None
    created_at: float
    expires_at: float | None
    revoked_at: float | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def active(self) -> bool:
        """Neither revoked nor expired."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > time.time())

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "active": self.active}


class ApiTokens:
    """The API tokens of one gateway (table ``api_tokens``)."""

    def __init__(self, engine: Engine, *, pepper: bytes, org: str, org_id: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self._pepper = pepper
        self.org = org
        self.org_id = org_id
        self.clock = clock

    def _hash(self, secret: str) -> bytes:
        return hmac_sm3(self._pepper, b"shancheng-api-token/v1\n" + secret.encode())

    def create(self, *, subject: str, role: str, org: str | None = None, expires_in: float | None = None,
               label: str | None = None, created_by: str | None = None,
               issued_via: str = "host") -> tuple[str, TokenInfo]:
        """A new token: ``(the token, shown once; its info)``. ``org`` other than the gateway's is only for tests
        of refusal (such a token never authenticates). ``issued_via``: ``api`` when the API user ``created_by`` made
        it, ``host`` when it was provisioned on the gateway's host (see :func:`delegated_by`)."""
        check_subject(subject)
        _check_issued_via(issued_via)
        check_role(role)
        if expires_in is not None and not 0 < expires_in <= MAX_TOKEN_LIFETIME:
            raise InvalidInput(f"expires_in must be between 1 and {MAX_TOKEN_LIFETIME} seconds")
        if label is not None and len(label) > 200:
            raise InvalidInput("a label is at most 200 characters")
        token_id, secret = secrets.token_hex(8), secrets.token_hex(32)
        now = self.clock()
        info = TokenInfo(token_id, subject, org or self.org, role, label, created_by, now,
                         None if expires_in is None else now + expires_in, None)
        with self.engine.begin() as conn:
            conn.execute(insert(api_tokens).values(
                id=token_id, secret_hash=self._hash(secret), subject=subject, org=info.org, role=role, label=label,
                created_by=created_by, created_at=now, expires_at=info.expires_at, issued_via=issued_via))
        return f"sc_{token_id}_{secret}", info

    def delegated_by(self, token_id: str) -> str | None:
        """Who created the token ``token_id`` in its subject's name through the API (see :func:`delegated_by`)."""
        with self.engine.connect() as conn:
            row = conn.execute(_TOKEN_BY_ID, {"token_id": token_id}).mappings().first()
        return None if row is None else delegated_by(row)

    def list(self, *, limit: int = 50, after: str | None = None) -> list[TokenInfo]:
        """The gateway organisation's tokens in id order (after the id ``after``)."""
        query = select(api_tokens).where(api_tokens.c.org == self.org).order_by(api_tokens.c.id).limit(limit)
        if after is not None:
            query = query.where(api_tokens.c.id > after)
        with self.engine.connect() as conn:
            return [_info(row) for row in conn.execute(query).mappings()]

    def get(self, token_id: str) -> TokenInfo | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).mappings().first()
        return None if row is None else _info(row)

    def revoke(self, token_id: str) -> bool:
        """Revoke a token; False when there is no such token (revoking twice is not an error)."""
        with self.engine.begin() as conn:
            result = conn.execute(update(api_tokens).where(api_tokens.c.id == token_id)
                                  .values(revoked_at=self.clock()).execution_options(synchronize_session=False))
        return bool(result.rowcount)

    def authenticate(self, token: str) -> Principal:
        """The principal of a bearer token, or a 401/403 problem (unknown, wrong secret, revoked, expired, another
        organisation)."""
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise _unauthenticated("the bearer token is not a Shancheng API token (sc_<id>_<secret>)")
        token_id, secret = match.groups()
        with self.engine.connect() as conn:
            row = conn.execute(_TOKEN_BY_ID, {"token_id": token_id}).mappings().first()
        expected = row["secret_hash"] if row is not None else b"\0" * 32
        if not hmac.compare_digest(self._hash(secret), bytes(expected)) or row is None:
            raise _unauthenticated("the API token is not valid")
        if row["revoked_at"] is not None:
            raise _unauthenticated("the API token was revoked")
        if row["expires_at"] is not None and row["expires_at"] <= self.clock():
            raise _unauthenticated("the API token has expired")
        if row["org"] != self.org:
            raise Problem(status=403, detail=f"this gateway serves {self.org}; the token is of another organisation",
                          type_suffix="another-organisation")
        return Principal(subject=row["subject"], org=row["org"], org_id=self.org_id, role=row["role"], via="token",
                         token_id=token_id, credential=f"token:{token_id}", delegated_by=delegated_by(row))


#: built once: every authenticated request runs it (building a statement costs more than running it)
_TOKEN_BY_ID = select(api_tokens).where(api_tokens.c.id == bindparam("token_id"))


def _check_issued_via(issued_via: str) -> None:
    if issued_via not in ("api", "host"):
        raise InvalidInput("a credential is issued via 'api' or 'host'")


def delegated_by(row: Any) -> str | None:
    """The API user who created a credential (an ``api_tokens`` or ``sm2_keys`` row) in another subject's name, or
    None when the subject created it or it was provisioned on the gateway's host (whose operator holds the staff
    keys anyway). A delegated credential acts with the subject's role but never signs with the subject's staff key."""
    creator = row["created_by"]
    if row["issued_via"] != "api" or creator is None or creator == row["subject"]:
        return None
    return str(creator)


def _info(row: Any) -> TokenInfo:
    return TokenInfo(row["id"], row["subject"], row["org"], row["role"], row["label"], row["created_by"],
                     row["created_at"], row["expires_at"], row["revoked_at"])


def signing_string(*, method: str, path: str, ts: int, nonce: str, body: bytes) -> bytes:
    """What an SM2-signed request signs: ``SHANCHENG-SM2-REQUEST/v1``, method, path with query, timestamp, nonce and
    the hex SM3 of the body, one per line."""
    return "\n".join(["SHANCHENG-SM2-REQUEST/v1", method.upper(), path, str(ts), nonce, sm3(body).hex()]).encode()


def key_id_of(public_key: SM2PublicKey) -> str:
    """The key id of an SM2 public key: the hex of its 20-byte SM3 address."""
    return public_key.sm3_address().hex()


def sign_request(key: SM2PrivateKey, *, key_id: str | None = None, method: str, path: str, body: bytes = b"",
                 ts: int | None = None, nonce: str | None = None) -> str:
    """The ``Authorization`` header value of an SM2-signed request (``path`` includes the query string)."""
    ts = int(time.time()) if ts is None else ts
    nonce = secrets.token_urlsafe(18) if nonce is None else nonce
    key_id = key_id_of(key.public_key()) if key_id is None else key_id
    sig = key.sign(signing_string(method=method, path=path, ts=ts, nonce=nonce, body=body))
    return f"SM2 keyId={key_id},ts={ts},nonce={nonce},sig={sig.hex()}"


class Sm2Keys:
    """SM2 public keys allowed to sign requests (table ``sm2_keys``) and the nonce replay cache."""

    def __init__(self, engine: Engine, *, org: str, org_id: int, window: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.org = org
        self.org_id = org_id
        self.window = window
        self.clock = clock
        self._last_purge = 0.0

    def register(self, *, subject: str, role: str, public_key: SM2PublicKey, org: str | None = None,
                 created_by: str | None = None, issued_via: str = "host") -> str:
        """Allow ``public_key`` to sign requests as ``subject`` with ``role`` (registering an active key again
        replaces its subject and role); returns its key id. A revoked key stays revoked: registering it again is a
        409 problem (a revoked key may be in an attacker's hands; make a new one)."""
        check_subject(subject)
        check_role(role)
        _check_issued_via(issued_via)
        key_id = key_id_of(public_key)
        with self.engine.begin() as conn:
            old = conn.execute(select(sm2_keys.c.revoked_at).where(sm2_keys.c.key_id == key_id)).first()
            if old is not None and old.revoked_at is not None:
                raise Problem(status=409, detail=f"the SM2 key {key_id} was revoked and stays revoked: register a new "
                                                 "key", type_suffix="key-revoked")
            conn.execute(delete(sm2_keys).where(sm2_keys.c.key_id == key_id))
            conn.execute(insert(sm2_keys).values(key_id=key_id, public_key=public_key.to_bytes(), subject=subject,
                                                 org=org or self.org, role=role, created_at=self.clock(),
                                                 created_by=created_by, issued_via=issued_via))
        return key_id

    def list(self, *, limit: int = 50, after: str | None = None) -> list[dict[str, Any]]:
        """The gateway organisation's SM2 request keys in key id order (after the id ``after``), revoked ones
        too: ``key_id, public_key (hex), subject, role, created_at, revoked_at, active``."""
        query = select(sm2_keys).where(sm2_keys.c.org == self.org).order_by(sm2_keys.c.key_id).limit(limit)
        if after is not None:
            query = query.where(sm2_keys.c.key_id > after)
        with self.engine.connect() as conn:
            return [_key_info(row) for row in conn.execute(query).mappings()]

    def get(self, key_id: str) -> dict[str, Any] | None:
        """This organisation's key ``key_id`` as :meth:`list` shows it, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(sm2_keys).where(sm2_keys.c.key_id == key_id, sm2_keys.c.org == self.org)
                               ).mappings().first()
        return None if row is None else _key_info(row)

    def revoke(self, key_id: str) -> bool:
        """Revoke this organisation's key ``key_id`` for good; False when it has no such key (revoking twice keeps
        the first revocation's time)."""
        with self.engine.begin() as conn:
            result = conn.execute(update(sm2_keys).where(sm2_keys.c.key_id == key_id, sm2_keys.c.org == self.org)
                                  .values(revoked_at=func.coalesce(sm2_keys.c.revoked_at, self.clock())))
        return bool(result.rowcount)

    def authenticate(self, header: str, *, method: str, path: str, body: bytes) -> Principal:
        """The principal of an SM2-signed request, or a 401/403 problem for every mismatch."""
        match = _SM2_HEADER.fullmatch(header)
        if match is None:
            raise _unauthenticated("malformed SM2 authorization (SM2 keyId=..,ts=..,nonce=..,sig=<hex>)")
        key_id, ts_text, nonce, sig_hex = match.groups()
        now = self.clock()
        if abs(now - int(ts_text)) > self.window:
            raise _unauthenticated(f"the SM2 signature's timestamp is more than {self.window:g} s from the gateway's "
                                   "clock")
        with self.engine.connect() as conn:
            row = conn.execute(select(sm2_keys).where(sm2_keys.c.key_id == key_id)).mappings().first()
        if row is None or row["revoked_at"] is not None:
            raise _unauthenticated("the SM2 key is not registered with this gateway")
        try:
            SM2PublicKey.from_bytes(bytes(row["public_key"])).verify(
                bytes.fromhex(sig_hex), signing_string(method=method, path=path, ts=int(ts_text), nonce=nonce,
                                                       body=body))
        except (InvalidSignature, ShanchengError, ValueError):
            raise _unauthenticated("the SM2 signature does not verify for this request") from None
        if row["org"] != self.org:
            raise Problem(status=403, detail=f"this gateway serves {self.org}; the key is of another organisation",
                          type_suffix="another-organisation")
        self._use_nonce(key_id, nonce, now)
        return Principal(subject=row["subject"], org=row["org"], org_id=self.org_id, role=row["role"], via="sm2",
                         token_id=None, credential=f"sm2:{key_id}", delegated_by=delegated_by(row))

    def _use_nonce(self, key_id: str, nonce: str, now: float) -> None:
        try:
            with self.engine.begin() as conn:
                if now - self._last_purge > self.window / 4:
                    conn.execute(delete(sm2_nonces).where(sm2_nonces.c.seen_at < now - 2 * self.window))
                    self._last_purge = now
                conn.execute(insert(sm2_nonces).values(key_id=key_id, nonce=nonce, seen_at=now))
        except IntegrityError:
            raise _unauthenticated("the SM2 request was replayed (its nonce was seen before)") from None


def _key_info(row: Any) -> dict[str, Any]:
    return {"key_id": row["key_id"], "public_key": bytes(row["public_key"]).hex(), "subject": row["subject"],
            "role": row["role"], "created_at": row["created_at"], "revoked_at": row["revoked_at"],
            "active": row["revoked_at"] is None}


class Authenticator:
    """The gateway's authentication: picks the scheme from the request and returns the principal (or None)."""

    def __init__(self, *, tokens: ApiTokens, sm2: Sm2Keys, session_principal: Callable[[dict[str, Any]],
                 Principal | None], oidc_issuer: str | None = None) -> None:
        self.tokens = tokens
        self.sm2 = sm2
        self._session_principal = session_principal
        self.oidc_issuer = oidc_issuer

    def authenticate(self, *, method: str, path: str, authorization: str | None, body: bytes,
                     session: dict[str, Any] | None) -> Principal | None:
        if authorization:
            if len(authorization) > 1000:
                raise _unauthenticated("the Authorization header is too long")
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer":
                return self.tokens.authenticate(value.strip())
            if scheme == "SM2":
                return self.sm2.authenticate(authorization, method=method, path=path, body=body)
            raise _unauthenticated(f"unsupported authorization scheme {scheme[:20]!r} (Bearer or SM2)")
        if session:
            return self._with_session_credential(self._session_principal(session))
        return None

    def _with_session_credential(self, principal: Principal | None) -> Principal | None:
        """A session's principal with its credential: the token it was exchanged for (and that token's delegation),
        or the OIDC sign-in (the only other way to start a session)."""
        if principal is None:
            return None
        if principal.token_id is not None:
            return replace(principal, credential=f"session:token:{principal.token_id}",
                           delegated_by=self.tokens.delegated_by(principal.token_id))
        return replace(principal, credential=f"oidc:{self.oidc_issuer or '?'} {principal.subject}")
