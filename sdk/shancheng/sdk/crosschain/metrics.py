"""The relayer's metrics over HTTP, in Prometheus' plain text exposition format (version 0.0.4), as a node serves
its own (``GET /metrics``; anything else is 404).

A small threaded responder from the standard library (no dependency), for a process that is not an asyncio
application: requests are read with a timeout and a size limit, and each answer is made by ``render`` at the
time of the request.

>>> endpoint = MetricsEndpoint(lambda: "up 1\\n", host="127.0.0.1", port=0).start()
>>> endpoint.port > 0
True
>>> endpoint.close()
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..prometheus import CONTENT_TYPE

__all__ = ["MetricsEndpoint"]
REQUEST_TIMEOUT = 5.0
MAX_REQUEST_LINE = 8 * 1024


class MetricsEndpoint:
    """``GET /metrics`` on ``host:port`` (port 0: any free one, then :attr:`port`) in a daemon thread."""

    def __init__(self, render: Callable[[], str], *, host: str = "127.0.0.1", port: int) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            timeout = REQUEST_TIMEOUT

            def do_GET(self) -> None:
                endpoint._answer(self, body=True)

            def do_HEAD(self) -> None:
                endpoint._answer(self, body=False)

            def log_message(self, format: str, *args: Any) -> None:  # a scrape is not worth a log line
                return

        self._render = render
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def _answer(self, request: BaseHTTPRequestHandler, *, body: bool) -> None:
        if len(request.requestline) > MAX_REQUEST_LINE or request.path.split("?", 1)[0] != "/metrics":
            status, ctype, text = 404, "text/plain", b"not found\n"
        else:
            status, ctype, text = 200, CONTENT_TYPE, self._render().encode()
        request.send_response(status)
        request.send_header("Content-Type", ctype)
        request.send_header("Content-Length", str(len(text)))
        request.send_header("Connection", "close")
        request.end_headers()
        if body:
            request.wfile.write(text)

    def start(self) -> MetricsEndpoint:
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics endpoint", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(REQUEST_TIMEOUT)
        self._server.server_close()
