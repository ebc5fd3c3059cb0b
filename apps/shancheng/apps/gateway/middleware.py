"""The gateway's ASGI middleware: body size limit, authentication (once per request), CSRF for browser sessions and
idempotency keys. Starlette's ``SessionMiddleware`` runs outside it (so the session is decoded first); the audit
middleware and the routers run inside it and read ``request.state.principal``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import idempotency
from .limits import too_large
from .problems import Problem, from_error, problem_response
from .sessions import CSRF_HEADER, check_csrf

if TYPE_CHECKING:
    from .app import Services

__all__ = ["GatewayMiddleware"]

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: signing in again replaces the session (and a cross-site form post carries no SameSite=Lax cookie)
CSRF_EXEMPT = frozenset({"/auth/token-login"})


class GatewayMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services: Services | None = getattr(scope["app"].state, "services", None)
        if services is None:
            await self.app(scope, receive, send)
            return
        try:
            await self._handle(services, scope, receive, send)
        except Problem as problem:
            await problem_response(problem, instance=scope["path"])(scope, receive, send)

    async def _handle(self, services: Services, scope: Scope, receive: Receive, send: Send) -> None:
        limit = services.settings.max_body_bytes
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise too_large(limit) if length.isdigit() else Problem(status=400, detail="bad Content-Length")
        body = await _read_body(receive, limit)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        method = scope["method"]
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        path = raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        session = scope.get("session")
        state = scope.setdefault("state", {})
        state["principal"] = None
        try:
            principal = await anyio.to_thread.run_sync(lambda: services.authenticator.authenticate(
                method=method, path=path, authorization=headers.get("authorization"), body=body, session=session))
        except Exception as exc:  # noqa: BLE001 - a refused credential: the endpoints that need one answer with it
            state["auth_problem"] = from_error(exc)
            principal = None
        state["principal"] = principal
        if (principal is not None and principal.via == "session" and method in UNSAFE and session is not None
                and scope["path"] not in CSRF_EXEMPT and not check_csrf(session, headers.get(CSRF_HEADER))):
            raise Problem(status=403, detail="a browser write needs the session's CSRF token in X-CSRF-Token",
                          type_suffix="csrf")
        key = headers.get(idempotency.HEADER)
        if key is None or method not in UNSAFE or not scope["path"].startswith("/api/") or principal is None:
            await self.app(scope, replay, send)
            return
        idempotency.check_key(key)
        store = services.idempotency
        digest = idempotency.request_hash(method, path, body)
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

        try:
            await self.app(scope, replay, capture)
        finally:
            await anyio.to_thread.run_sync(lambda: store.finish(principal.key, key, status_code=status,
                                                                content_type=content_type, body=b"".join(chunks)))


async def _read_body(receive: Receive, limit: int) -> bytes:
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
