"""JSON-RPC 2.0 over HTTP with failover between endpoints, timeouts and size limits (standard library only).

>>> rpc = RpcClient(["http://10.0.0.1:8545", "http://10.0.0.2:8545"], timeout=10)   # doctest: +SKIP
>>> int(rpc.call("eth_blockNumber"), 16)                                             # doctest: +SKIP
42

A call goes to the endpoint that answered last; on a connection error, a timeout or an HTTP 5xx status it moves on
to the next one, so each call tries every endpoint once before :class:`NodeUnavailable` is raised. An error
*reply* (the node answered with a JSON-RPC error) is not a failover reason: it raises :class:`JsonRpcError`.
An endpoint whose answer failed a proof is marked bad (:meth:`RpcClient.mark_bad`: a one-line warning, a count in
:attr:`RpcClient.lies`) and is no longer tried; :meth:`RpcClient.pinned` sends a group of calls to one endpoint
only, so a failed proof names the node that served it. Replies
are parsed by :func:`shancheng.sdk.strict_json.loads` with a size and a depth limit, so a hostile endpoint cannot
exhaust the caller. Connections are kept alive per thread and endpoint. ``https+gm://`` URLs are reached over GM
TLS (TLCP or RFC 8998) with the ``tls=`` settings (see :mod:`shancheng.sdk.client.gmtls_http`).
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import logging
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any

from .. import strict_json
from ..errors import InvalidInput, ShanchengError
from .gmtls_http import GM_SCHEME, GmTlsClientConfig

__all__ = [
    "DEFAULT_MAX_REPLY_BYTES",
    "JsonRpcError",
    "MalformedReply",
    "NodeUnavailable",
    "RpcClient",
    "quantity",
]

DEFAULT_MAX_REPLY_BYTES = 64 * 1024 * 1024
MAX_REPLY_DEPTH = 64
MAX_ENDPOINTS = 64
METHOD_NOT_FOUND = -32601
LIMIT_EXCEEDED = -32005  # "limit exceeded" (geth, Infura, the Shancheng node)
_log = logging.getLogger("shancheng.sdk.rpc")


_QUANTITY = re.compile(r"0x[0-9a-fA-F]+")


def quantity(value: Any, what: str, *, error: type[Exception] | None = None, digits: int = 64) -> int:
    """A JSON-RPC hex quantity (``0x`` and 1 to ``digits`` hex digits) as an integer; anything else raises
    ``error`` (:class:`MalformedReply` by default).

    >>> quantity("0x1a", "eth_blockNumber")
    26
    """
    if not isinstance(value, str) or len(value) > 2 + digits or not _QUANTITY.fullmatch(value):
        raise (error or MalformedReply)(f"{what}: expected a hex quantity, got {str(value)[:40]!r}")
    return int(value, 16)


class JsonRpcError(ShanchengError):
    """The node answered a call with a JSON-RPC error (``code``, ``message``, ``data``)."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        self.method = method
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"{method} failed: {message} (code {code})")

    def diagnostics(self) -> dict[str, Any]:
        return {"method": self.method, "code": self.code, "message": self.message, "data": self.data}


def _busy(exc: JsonRpcError) -> bool:
    """A refusal that passes: the node's per-client limit of calls in flight (not a query too large to answer)."""
    return exc.code == LIMIT_EXCEEDED and exc.message.startswith("limit exceeded")


class NodeUnavailable(ShanchengError):
    """No endpoint answered (connection refused, timeout, HTTP 5xx) on any of the client's URLs."""


class MalformedReply(ShanchengError):
    """An endpoint's reply is not a bounded, well-formed JSON-RPC 2.0 response."""


def _check_url(url: str) -> tuple[str, str, int, str]:
    if not isinstance(url, str) or len(url) > 2048:
        raise InvalidInput("a node URL must be a string of at most 2048 characters")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https", GM_SCHEME) or not parts.hostname:
        raise InvalidInput(f"node URL {url!r} must be http://, https:// or {GM_SCHEME}:// with a host")
    try:
        port = parts.port or (80 if parts.scheme == "http" else 443)
    except ValueError as exc:
        raise InvalidInput(f"node URL {url!r} has a bad port") from exc
    return parts.scheme, parts.hostname, port, (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class _Endpoint:
    def __init__(self, url: str, tls: GmTlsClientConfig | None) -> None:
        self.url = url
        self.scheme, self.host, self.port, self.path = _check_url(url)
        self.tls = tls
        if self.scheme == GM_SCHEME and tls is None:
            raise InvalidInput(f"node URL {url!r} is GM TLS: pass tls=GmTlsClientConfig(ca=..., mode=...)")

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == GM_SCHEME and self.tls is not None:
            return self.tls.connection(self.host, self.port, timeout=timeout)
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


class RpcClient:
    """A thread-safe JSON-RPC client over one or several endpoints (see the module docstring)."""

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        timeout: float = 30.0,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        busy_wait: float = 10.0,
        tls: GmTlsClientConfig | None = None,
    ) -> None:
        url_list = [urls] if isinstance(urls, str) else list(urls)
        if not url_list or len(url_list) > MAX_ENDPOINTS:
            raise InvalidInput(f"give 1 to {MAX_ENDPOINTS} node URLs")
        if tls is not None and not isinstance(tls, GmTlsClientConfig):
            raise InvalidInput("tls must be a GmTlsClientConfig")
        if not timeout > 0:
            raise InvalidInput("the RPC timeout must be positive")
        self._endpoints = [_Endpoint(u, tls) for u in url_list]
        if tls is not None and not any(e.scheme == GM_SCHEME for e in self._endpoints):
            raise InvalidInput(f"tls= was given but no node URL is {GM_SCHEME}://: refusing to call plain HTTP")
        self.timeout = float(timeout)
        self.max_reply_bytes = int(max_reply_bytes)
        if not 0 <= busy_wait <= 600:
            raise InvalidInput("busy_wait must be 0 to 600 seconds")
        self.busy_wait = float(busy_wait)
        self._current = 0
        self._bad: dict[int, str] = {}  # endpoint index -> why its answers are no longer believed
        self.lies = 0  # answers that failed a proof (a metric: mark_bad calls)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._ids = itertools.count(1)

    @property
    def urls(self) -> list[str]:
        return [e.url for e in self._endpoints]

    @property
    def current_url(self) -> str:
        pinned = self._local.__dict__.get("pinned")
        return self._endpoints[self._current if pinned is None else pinned].url

    @property
    def bad_nodes(self) -> dict[str, str]:
        """URL -> the proof its answer failed, for each endpoint dropped from the failover set."""
        with self._lock:
            return {self._endpoints[i].url: why for i, why in self._bad.items()}

    def mark_bad(self, url: str, reason: str) -> None:
        """Drop ``url`` from the failover set: one of its answers failed a proof (it lied, or serves another chain).
        Logs one warning line and counts it in :attr:`lies`; later calls go to the other endpoints."""
        reason = " ".join(str(reason).split())[:300]
        with self._lock:
            index = next((i for i, e in enumerate(self._endpoints) if e.url == url), None)
            if index is None:
                return
            self.lies += 1
            first = index not in self._bad
            self._bad[index] = reason
            if self._current == index:
                good = [i for i in range(len(self._endpoints)) if i not in self._bad]
                if good:
                    self._current = good[0]
        if first:
            _log.warning("node %s dropped from the failover set: its answer failed a proof: %s", url, reason)

    @contextlib.contextmanager
    def pinned(self) -> Iterator[str]:
        """Within the block, this thread's calls go to one endpoint only (the current one; no failover: a connection
        error raises :class:`NodeUnavailable`), so everything a proof is built from comes from the node it names.
        Yields that endpoint's URL."""
        if self._local.__dict__.get("pinned") is not None:
            yield self.current_url
            return
        with self._lock:
            if not self._good_indices():
                raise NodeUnavailable("every node's answers failed a proof: " + "; ".join(
                    f"{self._endpoints[i].url}: {why}" for i, why in self._bad.items()))
            index = self._current
        self._local.pinned = index
        try:
            yield self._endpoints[index].url
        finally:
            self._local.pinned = None

    def _good_indices(self) -> list[int]:
        return [i for i in range(len(self._endpoints)) if i not in self._bad]

    def rotate(self) -> None:
        """Ask the next good endpoint from now on (a node that withholds what others may have)."""
        with self._lock:
            good = self._good_indices()
            later = [i for i in good if i > self._current]
            if good:
                self._current = (later or good)[0]

    def broadcast(self, method: str, params: Sequence[Any] = ()) -> list[tuple[str, Any]]:
        """``method(params)`` on every good endpoint (a transaction one node may swallow): (url, result or the
        :class:`ShanchengError` it raised) for each."""
        out: list[tuple[str, Any]] = []
        before = self._local.__dict__.get("pinned")
        with self._lock:
            indices = self._good_indices()
        for index in indices:
            url = self._endpoints[index].url
            self._local.pinned = index
            try:
                out.append((url, self.call(method, params)))
            except ShanchengError as exc:
                out.append((url, exc))
            finally:
                self._local.pinned = before
        return out

    # -- transport -------------------------------------------------------------------------------
    def _connection(self, index: int) -> http.client.HTTPConnection:
        conns: dict[int, http.client.HTTPConnection] = self._local.__dict__.setdefault("conns", {})
        conn = conns.get(index)
        if conn is None:
            conn = conns[index] = self._endpoints[index].connect(self.timeout)
        return conn

    def _drop(self, index: int) -> None:
        conns: dict[int, http.client.HTTPConnection] = self._local.__dict__.setdefault("conns", {})
        conn = conns.pop(index, None)
        if conn is not None:
            conn.close()

    def _post_once(self, index: int, body: bytes) -> bytes:
        endpoint = self._endpoints[index]
        for attempt in range(2):  # a kept-alive connection the server closed meanwhile is retried once, fresh
            conn = self._connection(index)
            try:
                conn.request("POST", endpoint.path, body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                raw = resp.read(self.max_reply_bytes + 1)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop(index)
                if attempt == 0:
                    continue
                raise
            except BaseException:
                self._drop(index)
                raise
            if resp.status >= 500:
                self._drop(index)
                raise ConnectionError(f"HTTP {resp.status}")
            if resp.status != 200:
                self._drop(index)
                raise MalformedReply(f"{endpoint.url} answered HTTP {resp.status}")
            if len(raw) > self.max_reply_bytes:
                self._drop(index)
                raise MalformedReply(f"the reply from {endpoint.url} is larger than {self.max_reply_bytes} bytes")
            if resp.getheader("Connection", "").lower() == "close":
                self._drop(index)
            return raw
        raise ConnectionError("connection closed twice")  # pragma: no cover - the loop returns or raises

    def _post(self, body: bytes, what: str) -> tuple[str, Any]:
        """POST ``body`` to the current endpoint, failing over; returns (url, parsed reply)."""
        n = len(self._endpoints)
        pinned = self._local.__dict__.get("pinned")
        with self._lock:
            order = [(self._current + k) % n for k in range(n)] if pinned is None else [pinned]
            order = [i for i in order if i not in self._bad or i == pinned]
        if not order:
            raise NodeUnavailable(f"no node is left to ask {what}: every node's answers failed a proof")
        reasons = []
        for index in order:
            try:
                raw = self._post_once(index, body)
            except (TimeoutError, OSError, http.client.HTTPException) as exc:
                reasons.append(f"{self._endpoints[index].url}: {type(exc).__name__}: {exc}".rstrip(": "))
                continue
            if index != self._current and pinned is None:
                with self._lock:
                    self._current = index
            url = self._endpoints[index].url
            return url, strict_json.loads(raw, what=f"the reply from {url} to {what}", error=MalformedReply,
                                          max_size=self.max_reply_bytes, max_depth=MAX_REPLY_DEPTH)
        raise NodeUnavailable(f"no node answered {what}: " + "; ".join(reasons))

    # -- calls -----------------------------------------------------------------------------------
    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """The ``result`` of ``method(params)``; raises :class:`JsonRpcError`, :class:`NodeUnavailable` or
        :class:`MalformedReply`. A node's "limit exceeded" refusal (code -32005: too many calls of this client in
        flight) is transient: the call is tried again with a jittered backoff for up to ``busy_wait`` seconds."""
        delay, deadline = 0.02, time.monotonic() + self.busy_wait
        while True:
            id_ = next(self._ids)
            body = json.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": list(params)}).encode()
            url, reply = self._post(body, method)
            try:
                return self._result(reply, method, id_, url)
            except JsonRpcError as exc:
                if not _busy(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay * (0.5 + random.random()))  # jitter (not a secret)
            delay = min(delay * 2, 0.5)

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several calls in one HTTP request; results in order; the first error reply raises :class:`JsonRpcError`.

        A node refuses calls of a batch one by one when this client has too many in flight ("limit exceeded", as
        for :meth:`call`): only the refused calls are sent again, in a smaller batch, with the same jittered
        backoff for up to ``busy_wait`` seconds — the calls it answered are not repeated."""
        if not calls:
            return []
        results: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        delay, deadline = 0.02, time.monotonic() + self.busy_wait
        while True:
            refused = self._batch_once([(i, calls[i]) for i in pending], results)
            if refused is None:
                return results
            if time.monotonic() + delay > deadline:
                raise refused[1]
            pending = refused[0]
            time.sleep(delay * (0.5 + random.random()))  # jitter (not a secret)
            delay = min(delay * 2, 0.5)

    def _batch_once(self, calls: list[tuple[int, tuple[str, Sequence[Any]]]],
                    results: list[Any]) -> tuple[list[int], JsonRpcError] | None:
        """Send ``calls`` (position, (method, params)) as one batch and put their results in ``results``; the
        positions refused as busy (and the first such refusal) when there are any; any other error raises."""
        ids = [next(self._ids) for _ in calls]
        body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
                           for i, (_, (m, p)) in zip(ids, calls, strict=True)]).encode()
        url, reply = self._post(body, f"a batch of {len(calls)} calls")
        if not isinstance(reply, list) or len(reply) != len(calls):
            raise MalformedReply(f"{url} did not answer the batch with {len(calls)} replies")
        by_id = {r.get("id"): r for r in reply if isinstance(r, dict)}
        busy: list[int] = []
        first: JsonRpcError | None = None
        for id_, (position, (method, _)) in zip(ids, calls, strict=True):
            if id_ not in by_id:
                raise MalformedReply(f"{url} left call {method} of a batch unanswered")
            try:
                results[position] = self._result(by_id[id_], method, id_, url)
            except JsonRpcError as exc:
                if not _busy(exc):
                    raise
                busy.append(position)
                first = first or exc
        return (busy, first) if first is not None else None

    @staticmethod
    def _result(reply: Any, method: str, id_: int, url: str) -> Any:
        if not isinstance(reply, dict) or reply.get("jsonrpc") != "2.0" or reply.get("id") != id_:
            raise MalformedReply(f"{url} answered {method} with something that is not its JSON-RPC 2.0 response")
        if "error" in reply:
            err = reply["error"]
            if not isinstance(err, dict) or not isinstance(err.get("code"), int):
                raise MalformedReply(f"{url} answered {method} with a malformed error")
            message = str(err.get("message", ""))[:500].replace("\n", " ")
            raise JsonRpcError(method, err["code"], message, err.get("data"))
        if "result" not in reply:
            raise MalformedReply(f"{url} answered {method} with neither result nor error")
        return reply["result"]

    def close(self) -> None:
        """Close this thread's kept-alive connections."""
        for index in list(self._local.__dict__.get("conns", {})):
            self._drop(index)
