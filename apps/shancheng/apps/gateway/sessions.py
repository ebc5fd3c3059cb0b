"""Browser sessions (Starlette's signed-cookie ``SessionMiddleware``) and their CSRF tokens.

A session holds the signed-in principal (subject, role, organisation, expiry, and the API token it was exchanged
for, re-checked on every request so revoking the token ends the session) and a CSRF token. Browser writes send the
CSRF token in ``X-CSRF-Token`` (compared in constant time); API calls with a token or an SM2 signature carry no
cookies and are not subject to CSRF.

>>> session: dict[str, object] = {}
>>> token = csrf_token(session)
>>> check_csrf(session, token), check_csrf(session, "x" * len(token)), check_csrf(session, None)
(True, False, False)
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from shancheng.sdk.errors import InvalidInput

from .deps import ROLES, Principal

__all__ = ["CSRF_HEADER", "SessionPrincipals", "check_csrf", "csrf_token", "ensure_secret", "sign_in", "sign_out"]

CSRF_HEADER = "x-csrf-token"
SESSION_COOKIE = "shancheng_session"


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


def sign_in(session: MutableMapping[str, Any], *, subject: str, role: str, org: str, lifetime: float,
            token_id: str | None = None, clock: Callable[[], float] = time.time) -> None:
    """Replace the session's content with a signed-in principal and a fresh CSRF token."""
    session.clear()
    session["principal"] = {"subject": subject, "role": role, "org": org, "token_id": token_id,
                            "exp": clock() + lifetime}
    csrf_token(session)


def sign_out(session: MutableMapping[str, Any]) -> None:
    session.clear()


class SessionPrincipals:
    """Reads the principal of a session: expired, malformed or another organisation's sessions are no principal;
    a session made from an API token ends when the token is revoked or expires."""

    def __init__(self, *, org: str, org_id: int, token_active: Callable[[str], bool],
                 clock: Callable[[], float] = time.time) -> None:
        self.org = org
        self.org_id = org_id
        self._token_active = token_active
        self.clock = clock

    def __call__(self, session: dict[str, Any]) -> Principal | None:
        data = session.get("principal")
        if not isinstance(data, dict):
            return None
        subject, role, org, exp = data.get("subject"), data.get("role"), data.get("org"), data.get("exp")
        token_id = data.get("token_id")
        if not (isinstance(subject, str) and role in ROLES and org == self.org and isinstance(exp, int | float)):
            return None
        if exp <= self.clock():
            return None
        if token_id is not None and (not isinstance(token_id, str) or not self._token_active(token_id)):
            return None
        assert isinstance(role, str)
        return Principal(subject=subject, org=self.org, org_id=self.org_id, role=role, via="session",
                         token_id=token_id)
