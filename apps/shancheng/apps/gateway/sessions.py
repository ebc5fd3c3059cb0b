"""Browser sessions and their CSRF tokens.

The session cookie (Starlette's signed-cookie ``SessionMiddleware``) carries only a random session id and the CSRF
token; the signed-in principal (subject, role, organisation, expiry, the API token it was exchanged for or the OIDC
issuer) is kept by the gateway (table ``browser_sessions``, under the SM3 of the id). So signing out ends the
session on the server at once: a copy of the cookie taken before is no session. A session made from an API token
also ends when the token is revoked or expires (re-checked on every request).

Browser writes send the CSRF token in ``X-CSRF-Token`` (compared in constant time); API calls with a token or an SM2
signature carry no cookies and are not subject to CSRF. Each organisation's gateway has its own cookie name
(:func:`session_cookie_name`): cookies ignore ports, and the district serves several gateways on one host.

>>> session: dict[str, object] = {}
>>> token = csrf_token(session)
>>> check_csrf(session, token), check_csrf(session, "x" * len(token)), check_csrf(session, None)
(True, False, False)
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.engine import Engine

from shancheng.sdk.crypto import sm3
from shancheng.sdk.errors import InvalidInput

from .principal import ROLES, Principal
from .tables import browser_sessions

__all__ = ["CSRF_HEADER", "BrowserSessions", "check_csrf", "csrf_token", "ensure_secret", "session_cookie_name"]

CSRF_HEADER = "x-csrf-token"
_SID = re.compile(r"[A-Za-z0-9_-]{43}")
#: expired sessions are deleted at most this often (seconds), by the next sign-in
PURGE_INTERVAL = 600.0


def session_cookie_name(org: str) -> str:
    """The session cookie's name on ``org``'s gateway: the organisation's name (letters and digits) and a short
    hash of it, so no two organisations' gateways on one host share a cookie.

    >>> session_cookie_name("hospital")
    'shancheng_session_hospital_d9728c6a'
    """
    slug = re.sub(r"[^a-z0-9]+", "_", org.lower()).strip("_")[:40]
    return f"shancheng_session_{slug}_{sm3(org.encode()).hex()[:8]}"


def ensure_secret(path: Path, *, size: int = 32) -> bytes:
    """The secret in ``path``, created (mode 0600, from the CSPRNG) when missing; refuses a file others may read."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(size) + "\n")
    if path.stat().st_mode & 0o077:
        raise InvalidInput(f"{path} may be read by other users: chmod 600 it")
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise InvalidInput(f"{path} holds a secret shorter than 32 characters")
    return secret.encode()


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's CSRF token (made on first use)."""
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def check_csrf(session: MutableMapping[str, Any], header: str | None) -> bool:
    """Whether ``header`` is the session's CSRF token (constant-time)."""
    token = session.get("csrf")
    if not isinstance(token, str) or not header:
        return False
    return hmac.compare_digest(token.encode(), header.encode())


class BrowserSessions:
    """The gateway's browser sessions (see the module docstring): :meth:`start` at sign-in, :meth:`end` at sign-out,
    and the principal of a request's session by calling the object."""

    def __init__(self, engine: Engine, *, org: str, org_id: int, token_active: Callable[[str], bool],
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.org = org
        self.org_id = org_id
        self._token_active = token_active
        self.clock = clock
        self._last_purge = 0.0

    @staticmethod
    def _id_hash(sid: str) -> str:
        return sm3(b"shancheng-browser-session/v1\n" + sid.encode()).hex()

    def start(self, session: MutableMapping[str, Any], *, subject: str, role: str, lifetime: float,
              token_id: str | None = None, issuer: str | None = None) -> None:
        """Sign in: end the session the cookie had, keep a new one for ``lifetime`` seconds and put its id and a
        fresh CSRF token in the cookie."""
        self.end(session)
        sid = secrets.token_urlsafe(32)
        now = self.clock()
        with self.engine.begin() as conn:
            if now - self._last_purge > PURGE_INTERVAL:
                conn.execute(delete(browser_sessions).where(browser_sessions.c.expires_at <= now))
                self._last_purge = now
            conn.execute(insert(browser_sessions).values(
                id_hash=self._id_hash(sid), subject=subject, org=self.org, role=role, token_id=token_id,
                issuer=issuer, created_at=now, expires_at=now + lifetime))
        session["sid"] = sid
        csrf_token(session)

    def end(self, session: MutableMapping[str, Any]) -> bool:
        """Sign out: forget the session on the server (its cookie, and every copy of it, stops working at once) and
        empty the cookie; False when there was no session."""
        sid = session.get("sid")
        session.clear()
        if not isinstance(sid, str) or not _SID.fullmatch(sid):
            return False
        with self.engine.begin() as conn:
            result = conn.execute(delete(browser_sessions).where(browser_sessions.c.id_hash == self._id_hash(sid)))
        return bool(result.rowcount)

    def _row(self, session: MutableMapping[str, Any]) -> Any:
        sid = session.get("sid")
        if not isinstance(sid, str) or not _SID.fullmatch(sid):
            return None
        with self.engine.connect() as conn:
            return conn.execute(_SESSION_BY_ID, {"id_hash": self._id_hash(sid)}).mappings().first()

    def __call__(self, session: MutableMapping[str, Any]) -> Principal | None:
        """The principal of a request's session: None when the cookie names no live session of this gateway's
        organisation (signed out, expired, another organisation's, or made from a token since revoked)."""
        row = self._row(session)
        if row is None or row["org"] != self.org or row["role"] not in ROLES or row["expires_at"] <= self.clock():
            return None
        token_id = row["token_id"]
        if token_id is not None and not self._token_active(token_id):
            return None
        return Principal(subject=row["subject"], org=self.org, org_id=self.org_id, role=row["role"], via="session",
                         token_id=token_id)


#: built once: every request with a session cookie runs it
_SESSION_BY_ID = select(browser_sessions).where(browser_sessions.c.id_hash == bindparam("id_hash"))
