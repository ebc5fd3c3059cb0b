"""A lying JSON-RPC proxy: a real HTTP server (a thread) in front of a real node, forwarding every call except those
its ``lie`` hook answers itself — what any member's node, or anyone on the path of plain HTTP, could do.

>>> with LyingProxy(node.url) as proxy:                                   # doctest: +SKIP
...     proxy.lie = lambda method, params, forward: ...                    # return FORWARD to pass the call on
...     client = Client.connect([proxy.url, node.url], ...)
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from shancheng.sdk.errors import ShanchengError
from shancheng.testing import free_port

FORWARD = object()  # the hook's answer for "pass this call on to the node"

Forward = Callable[[str, list[Any]], Any]
Lie = Callable[[str, list[Any], Forward], Any]


class LyingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.lie: Lie = lambda method, params, forward: FORWARD
        self.calls: list[str] = []  # methods asked, in order
        self.requests = 0  # HTTP requests received (a JSON-RPC batch is one)
        self.lies_told = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                proxy.requests += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                replies = [proxy._answer(r) for r in body] if isinstance(body, list) else proxy._answer(body)
                raw = json.dumps(replies).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def forward(self, method: str, params: list[Any]) -> Any:
        """The node's answer (the ``result``; an error reply is raised as RuntimeError carrying the reply)."""
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        try:
            conn.request("POST", self.upstream.path or "/", body=json.dumps(
                {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode(),
                headers={"Content-Type": "application/json"})
            reply = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        if "error" in reply:
            raise UpstreamError(reply["error"])
        return reply["result"]

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        method, params, id_ = request["method"], request.get("params", []), request.get("id")
        self.calls.append(method)
        try:
            result = self.lie(method, params, self.forward)
            if result is FORWARD:
                result = self.forward(method, params)
            else:
                self.lies_told += 1
        except UpstreamError as exc:
            return {"jsonrpc": "2.0", "id": id_, "error": exc.error}
        return {"jsonrpc": "2.0", "id": id_, "result": result}

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class UpstreamError(ShanchengError):
    """The node's JSON-RPC error reply (``error``), passed on to the client as it is."""

    def __init__(self, error: Any) -> None:
        super().__init__(str(error))
        self.error = error
