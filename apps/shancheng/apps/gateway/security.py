"""Security headers on every response of the gateway: the API's JSON, problem details, the docs, the web UI's
page and static files, and the 500 of an unexpected error.

The Content-Security-Policy lets a page run scripts from this origin only (no inline scripts, no CDN), so an
injected ``<script>`` or ``on*`` handler never runs; ``X-Content-Type-Options: nosniff`` stops a browser from
reading a JSON answer (which may echo what a caller sent) as HTML or script. :class:`SecurityHeaders` is the
gateway's outermost middleware, so nothing reaches the browser without them.

>>> SECURITY_HEADERS["X-Content-Type-Options"]
'nosniff'
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .problems import from_error, problem_response

__all__ = ["CSP", "SECURITY_HEADERS", "SecurityHeaders"]

_log = logging.getLogger("shancheng.apps.gateway")

# style-src allows inline styles only because ECharts positions its tooltip (and Swagger UI its panels) with style
# attributes; scripts are this origin's files only
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
_RAW = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in SECURITY_HEADERS.items()]


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response that does not set them itself; an error no inner
    handler answered becomes a logged 500 problem (with the headers) instead of reaching the server bare."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in _RAW if name not in present)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if started:
                raise
            _log.error("unexpected error on %s %s: %s", scope.get("method"), scope.get("path"), type(exc).__name__,
                       exc_info=exc)
            await problem_response(from_error(exc), instance=scope.get("path"))(scope, receive, send_with_headers)
