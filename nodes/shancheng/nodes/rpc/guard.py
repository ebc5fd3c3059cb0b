"""The RPC server's defences against abusive clients: connection caps and timeouts, per-client rate and
concurrency limits, bearer-token authentication, CORS, and a quiet log (issue 10, points 1, 2, 3, 5, 6, 8).

* :class:`RpcPolicy` holds every limit (``[rpc]`` in config.toml; defaults in the README's "RPC limits" table).
* :class:`ConnectionGate` wraps each accepted connection's aiohttp protocol in a :class:`GuardedProtocol`: a
  connection beyond the cap for its address, or in all, is answered ``503`` and closed before anything is read;
  a connection must send a request's headers within ``header_timeout``, its body within ``body_timeout``, and
  an idle keep-alive connection is closed after ``idle_timeout``.
* :class:`RateLimiter` is a token bucket per client (its address, or its token when authenticated).
* Behind the node's own GM TLS fronts (``[tls]``) every client arrives from loopback: with the fronts' per-process
  ``relay_token`` (never in config.toml) a request is counted under the client address the front names
  (:func:`relayed_client`), and loopback connections are counted only in all, since the fronts bound each GM TLS
  client's connections themselves. Without it one GM TLS client would spend every other's rate and connections.
* :func:`listening_socket` binds with ``SO_REUSEADDR``: a node killed in any way starts again at once on its
  ports, whatever connections of the previous process linger in ``TIME_WAIT``.
* :func:`quiet_logs` turns ordinary client behaviour (resets, malformed HTTP) into one log line without a
  traceback, and rate-limits ``accept()`` errors (out of file descriptors).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import resource
import socket
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shancheng.sdk.crypto import sm3
from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.gmtls.front import PEER_HEADER, TOKEN_HEADER
from shancheng.sdk.netaddr import is_loopback

__all__ = [
    "ConnectionGate",
    "GuardedProtocol",
    "RateLimiter",
    "RpcPolicy",
    "TokenCheck",
    "listening_socket",
    "quiet_logs",
    "raise_fd_limit",
    "relayed_client",
]

log = logging.getLogger("shancheng.nodes.rpc")

LIMIT_EXCEEDED = -32005  # geth's and Infura's "limit exceeded"
UNAUTHORIZED = -32001


@dataclass(frozen=True)
class RpcPolicy:
    """Limits on clients of the JSON-RPC server; 0 turns a rate or cap off. Defaults suit one operator's node."""

    header_timeout: float = 10.0  # seconds to send a request's line and headers (also a new connection's first)
    body_timeout: float = 30.0  # seconds to send its body
    idle_timeout: float = 60.0  # seconds a keep-alive connection may wait between requests
    max_connections: int = 1024  # HTTP connections in all
    max_connections_per_client: int = 64  # HTTP connections per client address
    max_ws_connections: int = 512  # WebSocket connections in all
    max_ws_connections_per_client: int = 32
    max_subscriptions: int = 8192  # eth_subscribe in all (per connection: Limits.max_subscriptions_per_connection)
    requests_per_second: float = 2000.0  # per client; each request of a batch counts
    burst: int = 4000  # requests a client may send at once before the rate applies
    max_heavy_per_client: int = 4  # concurrent eth_call/eth_estimateGas/eth_getLogs/proofs per client
    max_heavy: int = 64  # the same in all (queued for the backend)
    auth_tokens: tuple[str, ...] = ()  # "sha256:HEX" or "sm3:HEX" digests of accepted bearer tokens; () = no auth
    cors_origins: tuple[str, ...] = ()  # origins browsers may call from ("*" = any); () = none
    #: the node's GM TLS fronts' token (``node start`` makes one per process when [tls] is set; never configured)
    relay_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout", "idle_timeout"):
            if not getattr(self, name) > 0:
                raise InvalidInput(f"rpc.{name} must be a positive number of seconds")
        for name in ("max_connections", "max_connections_per_client", "max_ws_connections",
                     "max_ws_connections_per_client", "max_subscriptions", "burst", "max_heavy_per_client",
                     "max_heavy"):
            if getattr(self, name) < 0:
                raise InvalidInput(f"rpc.{name} must not be negative")
        if self.requests_per_second < 0:
            raise InvalidInput("rpc.requests_per_second must not be negative")
        TokenCheck(self.auth_tokens)  # refuses malformed digests at start, not at the first request

    @classmethod
    def from_config(cls, rpc: dict[str, Any]) -> RpcPolicy:
        """The policy from config.toml's ``[rpc]`` table (unknown keys are left to the caller)."""
        kwargs: dict[str, Any] = {}
        for name, kind in (("header_timeout", float), ("body_timeout", float), ("idle_timeout", float),
                           ("requests_per_second", float), ("max_connections", int),
                           ("max_connections_per_client", int), ("max_ws_connections", int),
                           ("max_ws_connections_per_client", int), ("max_subscriptions", int), ("burst", int),
                           ("max_heavy_per_client", int), ("max_heavy", int)):
            if name in rpc:
                value = rpc[name]
                if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and
                                                                                       not isinstance(value, int)):
                    raise InvalidInput(f"rpc.{name} in config.toml must be a{'n integer' if kind is int else ' number'}")
                kwargs[name] = kind(value)
        for name in ("auth_tokens", "cors_origins"):
            if name in rpc:
                value = rpc[name]
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise InvalidInput(f"rpc.{name} in config.toml must be a list of strings")
                kwargs[name] = tuple(value)
        return cls(**kwargs)


def relayed_client(policy: RpcPolicy, remote: str | None, headers: Any) -> str | None:
    """The client address the node's own GM TLS front names for a request from ``remote`` (None unless the
    request came from loopback with exactly one token header equal to ``policy.relay_token`` and one address)."""
    if policy.relay_token is None or not remote or not is_loopback(remote):
        return None
    tokens, peers = headers.getall(TOKEN_HEADER, []), headers.getall(PEER_HEADER, [])
    if len(tokens) != 1 or len(peers) != 1 or not hmac.compare_digest(tokens[0].encode(), policy.relay_token.encode()):
        return None
    peer = urllib.parse.unquote(peers[0])
    return peer if 0 < len(peer) <= 64 else None


# -- authentication --------------------------------------------------------------------------------------
_DIGESTS: dict[str, Callable[[bytes], bytes]] = {"sha256": lambda b: hashlib.sha256(b).digest(), "sm3": sm3}


class TokenCheck:
    """Bearer tokens, configured only as their SHA-256 or SM3 digests and compared in constant time."""

    def __init__(self, configured: tuple[str, ...]) -> None:
        self._digests: list[tuple[str, bytes]] = []
        for entry in configured:
            algorithm, _, digest = entry.rpartition(":")
            algorithm = algorithm.lower() or "sha256"
            try:
                raw = bytes.fromhex(digest)
            except ValueError:
                raw = b""
            if algorithm not in _DIGESTS or len(raw) != 32:
                raise InvalidInput(f"rpc.auth_tokens: {entry[:80]!r} is not 'sha256:<64 hex>' or 'sm3:<64 hex>'")
            self._digests.append((algorithm, raw))

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def client(self, authorization: str | None) -> str | None:
        """The client name for an ``Authorization`` header ("token:" + digest prefix), None if refused."""
        if authorization is None:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or len(token) > 1024:
            return None
        presented = token.strip().encode()
        hashed = {name: _DIGESTS[name](presented) for name in {a for a, _ in self._digests}}  # once per algorithm
        found = None
        for algorithm, expected in self._digests:  # every entry is compared: the time does not tell which matched
            if hmac.compare_digest(hashed[algorithm], expected) and found is None:
                found = f"token:{algorithm}:{expected[:8].hex()}"
        return found


# -- CORS ------------------------------------------------------------------------------------------------
def cors_allows(origins: tuple[str, ...], origin: str | None) -> bool:
    return origin is not None and bool(origins) and ("*" in origins or origin in origins)


# -- per-client rate and concurrency ---------------------------------------------------------------------
class RateLimiter:
    """A token bucket per client: ``rate`` tokens a second up to ``burst``; 0 rate = unlimited.

    Full buckets are forgotten (a client that stopped costs nothing), so the table is bounded by the
    clients active in the last ``burst / rate`` seconds.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, max(1, burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)
        self._last_prune = clock()

    def take(self, client: str, n: int = 1) -> int:
        """Take up to ``n`` tokens for ``client``; returns how many it got."""
        if self.rate <= 0:
            return n
        now = self._clock()
        tokens, at = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        got = min(n, int(tokens))
        self._buckets[client] = (tokens - got, now)
        if now - self._last_prune > 10.0:
            self._prune(now)
        return got

    def _prune(self, now: float) -> None:
        self._last_prune = now
        refill = self.burst / self.rate
        for client, (_tokens, at) in list(self._buckets.items()):
            if now - at >= refill:
                del self._buckets[client]

    def __len__(self) -> int:
        return len(self._buckets)


# -- connections -----------------------------------------------------------------------------------------
_IDLE, _HEADERS, _BODY, _BUSY = "idle", "headers", "body", "busy"


def _refusal(status: str, code: int, message: str) -> bytes:
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}).encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\nRetry-After: 1\r\n\r\n").encode() + body


_LINGER = 1.0  # seconds a refused connection may take to close
_MAX_LINGERING = 256
_TIMEOUT_408 = _refusal("408 Request Timeout", -32600, "invalid request: not sent in time")


class ConnectionGate:
    """Counts one listening socket's connections per address and in all, and refuses those beyond the caps."""

    def __init__(self, what: str, policy: RpcPolicy, *, total: int, per_client: int) -> None:
        self.what, self.policy, self.total, self.per_client = what, policy, total, per_client
        self.per_address: dict[str, int] = {}
        self.guards: dict[asyncio.BaseTransport, GuardedProtocol] = {}
        self.refused = 0
        self.lingering = 0  # refused connections waiting for the client's FIN (at most _MAX_LINGERING)
        self._last_refusal_log = 0.0

    def __len__(self) -> int:
        return len(self.guards)

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], GuardedProtocol]:
        return lambda: GuardedProtocol(self, inner)

    def guard_of(self, transport: asyncio.BaseTransport | None) -> GuardedProtocol | None:
        return None if transport is None else self.guards.get(transport)

    def _admit(self, address: str) -> str | None:
        if self.total and len(self.guards) >= self.total:
            return f"too many {self.what} connections (at most {self.total})"
        if self.policy.relay_token is not None and is_loopback(address):
            return None  # the node's GM TLS fronts: each counts its own clients' connections (see the docstring)
        if self.per_client and self.per_address.get(address, 0) >= self.per_client:
            return f"too many {self.what} connections from {address} (at most {self.per_client})"
        return None

    def _note_refusal(self, reason: str) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._last_refusal_log >= 10.0:  # one line per 10 s, however many are refused
            self._last_refusal_log = now
            log.warning("refusing connections: %s (%d refused so far)", reason, self.refused)


class GuardedProtocol(asyncio.Protocol):
    """Wraps aiohttp's per-connection protocol: admission at accept, then header, body and idle timeouts.

    The server's handlers report where a request is: :meth:`busy` (headers parsed, the handler runs),
    :meth:`reading_body`, and :meth:`done` (the answer is on its way; the connection is idle).
    """

    def __init__(self, gate: ConnectionGate, inner: Callable[[], asyncio.Protocol]) -> None:
        self._gate, self._make_inner = gate, inner
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._address = ""
        self._state = _HEADERS
        self._timer: asyncio.TimerHandle | None = None
        self._lingering: asyncio.Transport | None = None
        self._refusal = b""

    # -- asyncio.Protocol ---------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        self._address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        refusal = self._gate._admit(self._address)
        if refusal is not None:  # refused without parsing anything: one small answer, then close
            self._gate._note_refusal(refusal)
            answer = _refusal("503 Service Unavailable", LIMIT_EXCEEDED, "limit exceeded: " + refusal)
            if self._gate.lingering >= _MAX_LINGERING or not transport.can_write_eof():
                transport.write(answer)
                transport.close()
                return
            # Answered before the client has sent its request, a client may fail writing it instead of reading
            # the answer; closed with the request unread, the connection is reset and the answer may be lost.
            # So: answer when the request's first bytes arrive, send FIN, discard the rest, abort within 1 s.
            self._gate.lingering += 1
            self._lingering, self._refusal = transport, answer
            asyncio.get_running_loop().call_later(_LINGER, transport.abort)
            return
        self._transport = transport
        self._gate.guards[transport] = self
        self._gate.per_address[self._address] = self._gate.per_address.get(self._address, 0) + 1
        self._arm(self._gate.policy.header_timeout)
        self._inner = self._make_inner()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:  # a refused connection: its request is discarded unread
            if self._lingering is not None and self._refusal:
                self._lingering.write(self._refusal)
                self._lingering.write_eof()
                self._refusal = b""
            return
        if self._state == _IDLE:  # a new request begins: its headers must arrive in time
            self._state = _HEADERS
            self._arm(self._gate.policy.header_timeout)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._inner is None else self._inner.eof_received()  # None: the transport closes

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lingering is not None:
            self._lingering = None
            self._gate.lingering -= 1
        if self._inner is None:
            return
        self._cancel_timer()
        transport = self._transport
        if transport is not None and self._gate.guards.pop(transport, None) is not None:
            left = self._gate.per_address.get(self._address, 1) - 1
            if left > 0:
                self._gate.per_address[self._address] = left
            else:
                self._gate.per_address.pop(self._address, None)
        inner, self._inner, self._transport = self._inner, None, None
        inner.connection_lost(exc)

    # -- where the request is ------------------------------------------------------------------------------
    def busy(self) -> None:
        self._state = _BUSY
        self._cancel_timer()

    def reading_body(self) -> None:
        self._state = _BODY
        self._arm(self._gate.policy.body_timeout)

    def done(self) -> None:
        self._state = _IDLE
        self._arm(self._gate.policy.idle_timeout)

    # -- timers -------------------------------------------------------------------------------------------
    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, seconds: float) -> None:
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expire)

    def _expire(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._state in (_HEADERS, _BODY):
            log.debug("closing a %s connection from %s: its request %s were not sent in time", self._gate.what,
                      self._address, "headers" if self._state == _HEADERS else "body")
            transport.write(_TIMEOUT_408)
        transport.close()
        # a client that does not read our answer must not keep the connection: abort once the grace is over
        asyncio.get_running_loop().call_later(1.0, transport.abort)


def listening_socket(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket with ``SO_REUSEADDR`` (a restarted node binds again while old connections are in
    ``TIME_WAIT``; a port another process listens on is still refused)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def raise_fd_limit(needed: int) -> int:
    """Raise the soft limit on open files towards ``needed`` (within the hard limit); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return int(soft)


# -- the log ----------------------------------------------------------------------------------------------
_ORDINARY = (ConnectionError, TimeoutError, asyncio.IncompleteReadError)


class _QuietFilter(logging.Filter):
    """Ordinary client behaviour in one line without a traceback, and at most one such line per ``period``
    seconds per kind (with a count of the lines left out); other records pass unchanged."""

    def __init__(self, period: float = 10.0) -> None:
        super().__init__()
        self.period = period
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def _kind(self, record: logging.LogRecord) -> str | None:
        message = record.getMessage()
        if message.startswith("socket.accept() out of system resource"):
            return "accept"
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            exc = getattr(record, "exception", None)  # asyncio's handler puts it in the context
        if isinstance(exc, _ORDINARY):
            return "disconnect"
        if record.name.startswith("aiohttp") and exc is not None and type(exc).__module__.startswith("aiohttp"):
            return "bad-http"  # malformed requests, payload errors: the client's doing
        return None

    def filter(self, record: logging.LogRecord) -> bool:
        kind = self._kind(record)
        if kind is None:
            return True
        now = time.monotonic()
        if now - self._last.get(kind, -1e9) < self.period:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return False
        self._last[kind] = now
        exc = record.exc_info[1] if record.exc_info else None
        detail = f": {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}" if exc else ""
        more = self._suppressed.pop(kind, 0)
        suffix = f" ({more} similar lines left out in the last {self.period:.0f} s)" if more else ""
        first_line = record.getMessage().splitlines()[0] if record.getMessage() else ""
        record.msg, record.args = f"{first_line}{detail}{suffix}", None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


_FILTER = _QuietFilter()


def quiet_logs() -> None:
    """Install the one-line, rate-limited filter on the loggers client behaviour reaches (idempotent)."""
    for name in ("asyncio", "aiohttp.server", "aiohttp.web", "aiohttp.websocket", "aiohttp.access"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
