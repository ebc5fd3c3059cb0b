"""Request limits: the body size (``max_body_bytes``, 413 problem), JSON parsing with size and depth limits, and
the budget of unauthenticated requests per source address (:class:`UnauthenticatedLimit`, 429 problem).

>>> parse_json(b'{"a": [1]}', max_bytes=100)
{'a': [1]}
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shancheng.sdk import strict_json

from .problems import Problem, problem_response

__all__ = ["MAX_JSON_DEPTH", "SourceBuckets", "UnauthenticatedLimit", "parse_json", "source_of", "too_large"]

MAX_JSON_DEPTH = 32


def too_large(limit: int) -> Problem:
    return Problem(status=413, detail=f"the request body is larger than {limit} bytes", type_suffix="too-large")


class _JsonError(ValueError):
    pass


def parse_json(data: bytes | str, *, max_bytes: int, what: str = "body", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Strict JSON (no duplicate keys, NaN, huge numbers) within ``max_bytes`` and ``max_depth``; 413 or 422."""
    if len(data) > max_bytes:
        raise too_large(max_bytes)
    try:
        return strict_json.loads(data, what=what, error=_JsonError, max_size=max_bytes, max_depth=max_depth)
    except _JsonError as exc:
        raise Problem(status=422, detail=str(exc), type_suffix="bad-json") from None


def source_of(scope: Scope) -> str:
    """The source a request is counted against: its client address, an IPv6 address by its /64 (one host usually
    holds a whole /64, so counting single addresses would let it pick a fresh one per request).

    >>> source_of({"client": ("2001:db8::1", 1)}), source_of({"client": ("192.0.2.7", 1)})
    ('2001:db8::/64', '192.0.2.7')
    """
    client = scope.get("client")
    host = str(client[0]) if client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:100]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class SourceBuckets:
    """A token bucket per source (``burst`` tokens, refilled at ``rate`` a second) in bounded memory: at most
    ``max_sources`` buckets. When full, buckets that have refilled completely are dropped first (forgetting them
    loses nothing), then the least recently used.

    >>> now = [0.0]
    >>> buckets = SourceBuckets(rate=1.0, burst=2, max_sources=16, clock=lambda: now[0])
    >>> buckets.take("a"), buckets.take("a"), buckets.allowed("a"), buckets.retry_after("a")
    (None, None, False, 1.0)
    >>> now[0] = 1.0
    >>> buckets.allowed("a")
    True
    """

    def __init__(self, *, rate: float, burst: int, max_sources: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1 or max_sources < 1:
            raise ValueError("rate, burst and max_sources must be positive")
        self.rate = rate
        self.burst = float(burst)
        self.max_sources = max_sources
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # source -> (tokens, at)
        self._last_sweep = -math.inf

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, source: str, now: float) -> float:
        tokens, at = self._buckets.get(source, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate)

    def allowed(self, source: str) -> bool:
        """Whether ``source`` has a whole token left."""
        return self._level(source, self.clock()) >= 1.0

    def retry_after(self, source: str) -> float:
        """Seconds until ``source`` has a whole token again."""
        return max(0.0, (1.0 - self._level(source, self.clock())) / self.rate)

    def take(self, source: str) -> None:
        """Spend one token of ``source`` (its level may go below zero: requests in flight are all counted)."""
        now = self.clock()
        level = self._level(source, now) - 1.0
        if source not in self._buckets and len(self._buckets) >= self.max_sources:
            self._make_room(now)
        self._buckets[source] = (level, now)
        self._buckets.move_to_end(source)

    def _make_room(self, now: float) -> None:
        if now - self._last_sweep >= 1.0:  # a full sweep at most once a second: a flood of new sources stays cheap
            self._last_sweep = now
            for source in [s for s in self._buckets if self._level(s, now) >= self.burst]:
                del self._buckets[source]
        while len(self._buckets) >= self.max_sources:
            self._buckets.popitem(last=False)


#: the requests the budget covers: the API (audited) and the sign-in endpoints
LIMITED_PREFIXES = ("/api/", "/auth/")


class UnauthenticatedLimit:
    """Each API request that ends with no principal (no credential, or a refused one) spends a token of its
    source's bucket; a source with none left is answered ``429`` with ``Retry-After`` before its request reaches
    the audit log or authentication (so an outsider cannot grow the audit table at will, nor make the gateway check
    signatures for it). Requests that authenticate spend nothing. Sits outside the audit middleware; reads the
    principal that the gateway middleware leaves in the scope's state."""

    def __init__(self, app: ASGIApp, *, rate: float, burst: int, max_sources: int) -> None:
        self.app = app
        self.buckets = SourceBuckets(rate=rate, burst=burst, max_sources=max_sources)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(LIMITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        source = source_of(scope)
        if not self.buckets.allowed(source):
            wait = max(1, math.ceil(self.buckets.retry_after(source)))
            problem = Problem(status=429, type_suffix="rate-limited", headers={"Retry-After": str(wait)},
                              detail=f"too many unauthenticated requests from this address; retry in {wait} s")
            await problem_response(problem, instance=scope.get("path"))(scope, receive, send)
            return
        counted = False

        async def counting_send(message: Message) -> None:
            nonlocal counted
            if message["type"] == "http.response.start" and not counted:
                counted = True
                state = scope.get("state")
                principal = state.get("principal") if isinstance(state, dict) else None
                if principal is None:
                    self.buckets.take(source)
            await send(message)

        await self.app(scope, receive, counting_send)
