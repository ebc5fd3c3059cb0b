"""The audit middleware: every /api/ request (but :data:`UNAUDITED`) becomes an entry before its response starts."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from anyio import to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shancheng.sdk.errors import ShanchengError

from ..tlsfront import TLS_SUBJECT
from .entries import outcome_of
from .log import AuditLog

__all__ = ["AUDIT_DETAIL", "UNAUDITED", "AuditMiddleware"]

_log = logging.getLogger("shancheng.apps.audit")

#: /api/ paths not recorded: they read nothing of an organisation's evidence or domain data
UNAUDITED = frozenset({"/api/v1/csrf", "/api/v1/me", "/api/v1/network", "/api/v1/network/blocks"})
#: the request state key a route sets to put what it did (e.g. the subject and role of a minted token) in the entry
AUDIT_DETAIL = "audit_detail"


class AuditMiddleware:
    """Records every /api/ request (except :data:`UNAUDITED`) before its response starts: who (the principal the
    auth dependency left in ``request.state.principal``, with the credential it used, or nobody), method and route
    template, target (path parameters), the route's detail (``request.state.audit_detail``, after ``tls client:
    <subject>`` when the request came through the GM TLS front with a client certificate), status and outcome. If
    the entry cannot be written the response becomes a 503 problem (fail closed: nothing is answered that the audit
    log does not hold)."""

    def __init__(self, app: ASGIApp, *, audit: Callable[[Scope], AuditLog | None]) -> None:
        self.app = app
        self.audit_of = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/api/") or path in UNAUDITED or scope.get("method") in ("OPTIONS", "HEAD"):
            await self.app(scope, receive, send)
            return
        done = False

        async def record(status: int) -> bool:
            nonlocal done
            done = True
            try:
                log = self.audit_of(scope)
                if log is None:
                    raise ShanchengError("the audit log is not running")
                principal, action, target, remote, detail = _describe(scope)
                await to_thread.run_sync(lambda: log.record(principal, action, target, outcome_of(status),
                                                            status=status, remote=remote, detail=detail))
                return True
            except Exception as exc:  # noqa: BLE001 - fail closed, and say why in the log
                _log.error("audit entry not written (%s: %s): the response is refused", type(exc).__name__, exc)
                return False

        async def audited_send(message: Message) -> None:
            if (message["type"] == "http.response.start" and not done
                    and not await record(int(message["status"]))):
                await _unavailable(send)
                raise _AuditFailed
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except _AuditFailed:
            return
        except Exception:
            if not done:
                await record(500)
            raise


class _AuditFailed(Exception):
    pass


async def _unavailable(send: Send) -> None:
    body = json.dumps({"type": "about:blank", "title": "Service Unavailable", "status": 503,
                       "detail": "the audit log is unavailable; the request was not answered"}).encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _state(scope: Scope, name: str) -> Any:
    state = scope.get("state") or {}
    return state.get(name) if isinstance(state, dict) else getattr(state, name, None)


def _describe(scope: Scope) -> tuple[Any, str, str | None, str | None, str | None]:
    principal = _state(scope, "principal")
    route = scope.get("route")
    template = getattr(route, "path", None) or "(no route)"
    action = f"{scope.get('method', '?')} {template}"
    params = scope.get("path_params") or {}
    target = ",".join(f"{k}={v}" for k, v in sorted(params.items())) or None
    client = scope.get("client")
    remote = client[0] if client else None
    detail = _state(scope, AUDIT_DETAIL)
    detail = detail if isinstance(detail, str) else None
    tls_subject = _state(scope, TLS_SUBJECT)  # set only for requests through the gateway's own GM TLS front
    if isinstance(tls_subject, str):
        detail = f"tls client: {tls_subject}" + (f"; {detail}" if detail else "")
    return principal, action, target, remote, detail
