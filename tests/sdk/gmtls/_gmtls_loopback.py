"""A GM TLS server on a loopback TCP socket in a thread, for one connection: it echoes one message back.

``exchange(server_context, connect)`` returns what each side saw: the negotiated protocol, suite, peer subject and
the echoed bytes, or the exception it raised.  Every wait is bounded by socket timeouts, none by a sleep.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TIMEOUT = 20.0


@dataclass
class Side:
    protocol: str | None = None
    cipher: str | None = None
    peer_subject: str | None = None
    data: bytes | None = None
    error: BaseException | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _serve(listener: socket.socket, server_context: Any, out: Side, expect: int) -> None:
    try:
        conn, _ = listener.accept()
    except OSError as exc:
        out.error = exc
        return
    with conn:
        conn.settimeout(TIMEOUT)
        try:
            tls = server_context.wrap(conn)
            out.protocol, out.cipher, out.peer_subject = tls.protocol, tls.cipher, tls.peer_subject
            out.data = b""
            while len(out.data) < expect:  # a peer may split a message into records (gmsm sends 1 byte, then n-1)
                chunk = tls.recv(4096)
                if not chunk:
                    break
                out.data += chunk
            tls.sendall(out.data)
            tls.close()
        except Exception as exc:  # noqa: BLE001  (recorded for the test to assert on)
            out.error = exc


def serve_one(server_context: Any, expect: int = 1) -> tuple[tuple[str, int], Callable[[], Side]]:
    """Start a server for one connection that echoes the first ``expect`` bytes or more it receives: (its address,
    a function that waits for the server to finish and returns what it saw)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    server = Side()
    thread = threading.Thread(target=_serve, args=(listener, server_context, server, expect),
                              daemon=True)
    thread.start()

    def finish() -> Side:
        thread.join(TIMEOUT * 2)
        listener.close()
        assert not thread.is_alive(), "the server thread did not finish"
        return server

    return listener.getsockname(), finish


def exchange(server_context: Any, connect: Callable[[socket.socket], Side], expect: int = 1) -> tuple[Side, Side]:
    """(server side, client side) of one connection; ``connect`` runs the client on a connected socket."""
    address, finish = serve_one(server_context, expect)
    try:
        with socket.create_connection(address, timeout=TIMEOUT) as sock:
            try:
                client = connect(sock)
            except Exception as exc:  # noqa: BLE001  (recorded for the test to assert on)
                client = Side(error=exc)
    finally:
        server = finish()
    return server, client


def gm_client(
    client_context: Any, payload: bytes, server_name: str | None = "gateway"
) -> Callable[[socket.socket], Side]:
    """A client that completes the handshake, sends ``payload`` and reads the echo."""

    def run(sock: socket.socket) -> Side:
        tls = client_context.wrap(sock, server_name=server_name)
        tls.sendall(payload)
        echoed = b""
        while len(echoed) < len(payload):
            chunk = tls.recv(4096)
            if not chunk:
                break
            echoed += chunk
        side = Side(protocol=tls.protocol, cipher=tls.cipher, peer_subject=tls.peer_subject, data=echoed)
        tls.close()
        return side

    return run
