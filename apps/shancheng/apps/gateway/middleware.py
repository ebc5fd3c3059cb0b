"""The gateway's ASGI middleware: body size limit, authentication (once per request), CSRF for browser sessions and
idempotency keys, one step each and in that order. Starlette's ``SessionMiddleware`` runs outside it (so the
session is decoded first); the audit middleware and the routers run inside it and read
``request.state.principal``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shancheng.sdk.client import recording_submissions

from . import idempotency
from .auth import Authenticator
from .deps import running_services
from .limits import too_large
from .principal import Principal
from .problems import Problem, from_error, problem_response
from .sessions import CSRF_HEADER, check_csrf

__all__ = ["GatewayMiddleware"]

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: signing in again replaces the session (and a cross-site form post carries no SameSite=Lax cookie)
CSRF_EXEMPT = frozenset({"/auth/token-login"})


@dataclass(frozen=True)
class _Request:
    """What the steps read of a request: its method, path (raw, with the query) and headers (lower-case names)."""

    method: str
    path: str
    headers: dict[str, str]

    @classmethod
    def of(cls, scope: Scope) -> _Request:
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        return cls(method=scope["method"],
                   path=raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else ""),
                   headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]})


class GatewayMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services = running_services(scope["app"])
        if services is None:
            await self.app(scope, receive, send)
            return
        request = _Request.of(scope)
        try:
            body = await _read_limited(request, receive, services.settings.max_body_bytes)
            principal = await _authenticate(services.authenticator, scope, request, body)
            _check_csrf(scope, request, principal)
            await self._idempotent(services.idempotency, principal, scope, request, body, _replay(body, receive),
                                   send)
        except Problem as problem:
            await problem_response(problem, instance=scope["path"])(scope, receive, send)

    async def _idempotent(self, store: idempotency.IdempotencyStore, principal: Principal | None, scope: Scope,
                          request: _Request, body: bytes, receive: Receive, send: Send) -> None:
        """Run the request; an authenticated API write with an Idempotency-Key is answered with the stored response
        when the key was used before, and its response is stored otherwise."""
        key = request.headers.get(idempotency.HEADER)
        if key is None or request.method not in UNSAFE or not scope["path"].startswith("/api/") or principal is None:
            await self.app(scope, receive, send)
            return
        idempotency.check_key(key)
        digest = idempotency.request_hash(request.method, request.path, body)
        stored = await anyio.to_thread.run_sync(store.begin, principal.key, key, digest)
        if stored is not None:
            response_headers = [(b"idempotent-replayed", b"true"), (b"content-length", str(len(stored.body)).encode())]
            if stored.content_type:
                response_headers.append((b"content-type", stored.content_type.encode("latin-1")))
            await send({"type": "http.response.start", "status": stored.status_code, "headers": response_headers})
            await send({"type": "http.response.body", "body": stored.body})
            return
        status = 500
        content_type: str | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        with recording_submissions() as sent:
            try:
                await self.app(scope, receive, capture)
            finally:
                await anyio.to_thread.run_sync(lambda: store.finish(
                    principal.key, key, status_code=status, content_type=content_type, body=b"".join(chunks),
                    submitted=bool(sent)))


async def _read_limited(request: _Request, receive: Receive, limit: int) -> bytes:
    """The request's body; 413 problem over ``limit`` bytes (declared or sent), 400 for a bad Content-Length."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise too_large(limit) if length.isdigit() else Problem(status=400, detail="bad Content-Length")
    chunks: list[bytes] = []
    size = 0
    while True:
        message: dict[str, Any] = dict(await receive())
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _authenticate(authenticator: Authenticator, scope: Scope, request: _Request,
                        body: bytes) -> Principal | None:
    """Authenticate once and leave the principal (or None) in the request state; a refused credential is left there
    too, for the endpoints that need one to answer with."""
    session = scope.get("session")
    state = scope.setdefault("state", {})
    state["principal"] = None
    try:
        principal = await anyio.to_thread.run_sync(lambda: authenticator.authenticate(
            method=request.method, path=request.path, authorization=request.headers.get("authorization"), body=body,
            session=session))
    except Exception as exc:  # noqa: BLE001 - a refused credential: the endpoints that need one answer with it
        state["auth_problem"] = from_error(exc)
        principal = None
    state["principal"] = principal
    return principal


def _check_csrf(scope: Scope, request: _Request, principal: Principal | None) -> None:
    """A browser session's write must carry the session's CSRF token (403 problem otherwise)."""
    session = scope.get("session")
    if (principal is not None and principal.via == "session" and request.method in UNSAFE and session is not None
            and scope["path"] not in CSRF_EXEMPT and not check_csrf(session, request.headers.get(CSRF_HEADER))):
        raise Problem(status=403, detail="a browser write needs the session's CSRF token in X-CSRF-Token",
                      type_suffix="csrf")


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body already read, then what the client sends next (a disconnect)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
