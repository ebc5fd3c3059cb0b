"""A GM TLS connection on a blocking socket: a :class:`~shancheng.sdk.gmtls.session.TlsSession` driven by
``send``/``recv``.  The socket's own timeout bounds every wait; a socket without one gets
:data:`HANDSHAKE_TIMEOUT` for the handshake, so a peer that connects and says nothing cannot hold a server's
thread.  A handshake that times out, is reset or is refused raises :class:`~shancheng.sdk.gmtls.errors.HandshakeError`.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Self, TypeVar

from ..errors import InvalidInput
from .errors import GmTlsError, HandshakeError
from .session import MAX_RECORD_READ, Negotiated, TlsSession

__all__ = ["HANDSHAKE_TIMEOUT", "GmTlsSocket"]

HANDSHAKE_TIMEOUT = 30.0  # seconds, for sockets that have no timeout of their own

_T = TypeVar("_T")
_CHUNK = 32 * 1024  # bytes taken from the socket at a time (two full TLS records)


class GmTlsSocket(Negotiated):
    """A connected socket speaking TLCP or RFC 8998 after a completed handshake (see a context's ``wrap``)."""

    def __init__(self, session: TlsSession, sock: socket.socket) -> None:
        if not session.handshake_done:
            raise GmTlsError("GmTlsSocket needs a session whose handshake completed (use a context's wrap)")
        self.session = session
        self.socket = sock
        self._closed = False

    @classmethod
    def handshake(
        cls, session: TlsSession, sock: socket.socket, *, timeout: float = HANDSHAKE_TIMEOUT
    ) -> GmTlsSocket:
        """Run ``session``'s handshake over ``sock`` (which stays the caller's to close if this raises).

        ``timeout`` bounds each wait of the handshake when the socket has no timeout of its own.
        """
        if not isinstance(sock, socket.socket):
            raise InvalidInput("wrap takes a connected socket.socket")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
            raise InvalidInput("the handshake timeout must be 0 to 3600 seconds")
        own_timeout = sock.gettimeout()
        if own_timeout is None:
            sock.settimeout(timeout)
        try:
            return cls._drive(session, sock)
        finally:
            if own_timeout is None:
                sock.settimeout(None)

    @classmethod
    def _drive(cls, session: TlsSession, sock: socket.socket) -> GmTlsSocket:
        side = "server" if session.server_side else "client"
        try:
            while True:
                try:
                    done = session.do_handshake()
                finally:
                    _flush(session, sock)  # our flight, or the alert that tells the peer why we stopped
                if done:
                    return cls(session, sock)
                data = sock.recv(_CHUNK)
                if data:
                    session.receive(data)
                else:
                    session.receive_eof()
        except HandshakeError:
            raise
        except TimeoutError as exc:
            raise HandshakeError("timed out waiting for the peer", side=side) from exc
        except OSError as exc:
            raise HandshakeError(f"connection error: {exc.strerror or exc}", side=side) from exc

    # -- data ----------------------------------------------------------------------------------------------
    def sendall(self, data: bytes) -> None:
        """Encrypt and send all of ``data`` (a piece at a time, so a large payload is never held twice)."""
        self._check_open()
        view = memoryview(bytes(data))
        for start in range(0, len(view), _CHUNK):
            self.session.write(view[start : start + _CHUNK].tobytes())
            self._send_pending()

    def send(self, data: bytes) -> int:
        """As :meth:`sendall`; returns ``len(data)`` (a partial send never happens)."""
        self.sendall(data)
        return len(data)

    def recv(self, max_bytes: int = 16 * 1024) -> bytes:
        """Up to ``max_bytes`` of plaintext, waiting for some; b"" once the peer has closed."""
        self._check_open()
        if not isinstance(max_bytes, int) or not 0 < max_bytes <= MAX_RECORD_READ:
            raise InvalidInput(f"recv size must be 1 to {MAX_RECORD_READ} bytes")
        while True:
            got = self.session.read(max_bytes)
            self._send_pending()  # a TLS 1.3 key update or alert may want an answer
            if got is not None:
                return got
            data = self._io(lambda: self.socket.recv(_CHUNK))
            if data:
                self.session.receive(data)
            else:
                self.session.receive_eof()

    def close(self) -> None:
        """Send close_notify (best effort) and close the socket."""
        if self._closed:
            return
        self._closed = True
        try:
            self.session.close()
            self._send_pending()
        except (GmTlsError, OSError):
            pass
        finally:
            self.socket.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what was negotiated ----------------------------------------------------------------------------
    def peer_certificate(self) -> bytes | None:
        return self.session.peer_certificate()

    # -- plumbing --------------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise GmTlsError("the GM TLS connection is closed")

    def _send_pending(self) -> None:
        data = self.session.outgoing()
        if data:
            self._io(lambda: self.socket.sendall(data))

    def _io(self, op: Callable[[], _T]) -> _T:
        try:
            return op()
        except TimeoutError as exc:
            raise GmTlsError("GM TLS connection timed out") from exc
        except OSError as exc:
            raise GmTlsError(f"GM TLS connection error: {exc.strerror or exc}") from exc


def _flush(session: TlsSession, sock: socket.socket) -> None:
    data = session.outgoing()
    if data:
        try:
            sock.sendall(data)
        except OSError:
            if session.handshake_done:
                raise
            # the peer is gone; the handshake's own error (or the next recv's) says why
