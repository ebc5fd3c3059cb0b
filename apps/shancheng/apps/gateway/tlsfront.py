"""What the gateway takes from its own GM TLS front: the client certificate's subject and the client's address.

The front (:mod:`shancheng.sdk.gmtls.front`, in the gateway's process) strips the headers
:data:`~shancheng.sdk.gmtls.front.SUBJECT_HEADER`, ``PEER_HEADER`` and ``TOKEN_HEADER`` from every request and adds
its own, with a token made fresh for each process.  :class:`RelayHeaders`, the outermost middleware, believes the
subject and address only when the token matches (constant time), and removes all three headers from every request
whatever it decides, so no route, log or audit entry ever sees a header a client wrote: a request to the plain
listener that carries them is treated as an ordinary plain request.  The subject lands in the request state
(``tls_subject``), where the audit middleware reads it; the address replaces the front's loopback address as the
request's client, so per-source limits and the audit's ``remote`` see the real client.
"""

from __future__ import annotations

import hmac
import urllib.parse

from starlette.types import ASGIApp, Receive, Scope, Send

from shancheng.sdk.gmtls.front import PEER_HEADER, SUBJECT_HEADER, TOKEN_HEADER

__all__ = ["TLS_SUBJECT", "RelayHeaders"]

#: the request state key of the client certificate's subject (RFC 4514), set only for requests through the front
TLS_SUBJECT = "tls_subject"
_NAMES = {SUBJECT_HEADER.lower().encode(): "subject", PEER_HEADER.lower().encode(): "peer",
          TOKEN_HEADER.lower().encode(): "token"}
_MAX_SUBJECT = 1024


class RelayHeaders:
    """See the module docstring; ``token`` is the front's per-process token, None when no front runs."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        found: dict[str, bytes] = {}
        kept = []
        for name, value in scope.get("headers") or []:
            which = _NAMES.get(name.lower())
            if which is None:
                kept.append((name, value))
            elif which in found:
                found[which] = b""  # a repeated header is never believed
            else:
                found[which] = value
        scope = dict(scope, headers=kept)
        if self.token is not None and hmac.compare_digest(found.get("token", b""), self.token):
            state = dict(scope.get("state") or {})  # this request's own, never a dict shared with others
            scope["state"] = state
            subject = urllib.parse.unquote(found.get("subject", b"").decode("ascii", "replace"))
            if subject and len(subject) <= _MAX_SUBJECT:
                state[TLS_SUBJECT] = subject
            peer = urllib.parse.unquote(found.get("peer", b"").decode("ascii", "replace"))
            if peer and len(peer) <= 64:
                scope["client"] = (peer, 0)
        await self.app(scope, receive, send)
