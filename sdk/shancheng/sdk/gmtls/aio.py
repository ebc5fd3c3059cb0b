"""GM TLS for asyncio: a :class:`~shancheng.sdk.gmtls.session.TlsSession` over an asyncio stream pair.

The handshake's SM2 work (a few milliseconds) runs in a worker thread so the event loop keeps serving other
connections; records are sealed and opened on the loop.  :func:`start_server` accepts connections, completes the
handshake within ``handshake_timeout`` and hands each connection to the handler as a :class:`GmTlsStream`; a failed
handshake is logged in one line and the connection closed, the handler never sees it.

>>> server = await start_server(ctx, handle, "0.0.0.0", 8443)  # doctest: +SKIP
>>> stream = await open_connection(client_ctx, "gateway", 8443, server_name="gateway")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..errors import InvalidInput
from .connection import HANDSHAKE_TIMEOUT
from .errors import GmTlsError, HandshakeError
from .session import MAX_RECORD_READ, Negotiated, TlsSession

__all__ = ["GmTlsStream", "open_connection", "start_server"]

log = logging.getLogger("shancheng.gmtls")

_CHUNK = 32 * 1024


class _SessionMaker(Protocol):
    def session(self, *, server_name: str | None = None) -> TlsSession: ...


class GmTlsStream(Negotiated):
    """One GM TLS connection on asyncio streams, after a completed handshake."""

    def __init__(self, session: TlsSession, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not session.handshake_done:
            raise GmTlsError("GmTlsStream needs a session whose handshake completed")
        self.session = session
        self._reader = reader
        self._writer = writer

    @classmethod
    async def handshake(
        cls, session: TlsSession, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, timeout: float
    ) -> GmTlsStream:
        """Run ``session``'s handshake over the streams; :class:`HandshakeError` on any failure or timeout."""
        side = "server" if session.server_side else "client"
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        done = await asyncio.to_thread(session.do_handshake)
                    finally:
                        await _flush(session, writer)
                    if done:
                        return cls(session, reader, writer)
                    data = await reader.read(_CHUNK)
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

    async def read(self, max_bytes: int = 16 * 1024) -> bytes:
        """Up to ``max_bytes`` of plaintext, waiting for some; b"" once the peer has closed."""
        if not isinstance(max_bytes, int) or not 0 < max_bytes <= MAX_RECORD_READ:
            raise InvalidInput(f"read size must be 1 to {MAX_RECORD_READ} bytes")
        while True:
            got = self.session.read(max_bytes)
            await self._send_pending()
            if got is not None:
                return got
            try:
                data = await self._reader.read(_CHUNK)
            except OSError as exc:
                raise GmTlsError(f"GM TLS connection error: {exc.strerror or exc}") from exc
            if data:
                self.session.receive(data)
            else:
                self.session.receive_eof()

    async def write(self, data: bytes) -> None:
        """Encrypt and send ``data``, waiting until the transport has taken it."""
        view = memoryview(bytes(data))
        for start in range(0, len(view), _CHUNK):
            self.session.write(view[start : start + _CHUNK].tobytes())
            await self._send_pending()

    async def close(self) -> None:
        """Send close_notify (best effort) and close the connection."""
        try:
            self.session.close()
            await self._send_pending()
        except (GmTlsError, OSError):
            pass
        finally:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass

    def peer_address(self) -> Any:
        return self._writer.get_extra_info("peername")

    async def _send_pending(self) -> None:
        try:
            await _flush(self.session, self._writer, strict=True)
        except OSError as exc:
            raise GmTlsError(f"GM TLS connection error: {exc.strerror or exc}") from exc


async def _flush(session: TlsSession, writer: asyncio.StreamWriter, *, strict: bool = False) -> None:
    data = session.outgoing()
    if not data:
        return
    try:
        writer.write(data)
        await writer.drain()
    except OSError:
        if strict:
            raise
        # during a handshake the peer may already be gone; the handshake's own error says why


async def open_connection(
    context: _SessionMaker, host: str, port: int, *, server_name: str | None,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
) -> GmTlsStream:
    """Connect to ``host:port`` and complete the client handshake (see ``ClientContext.wrap`` on ``server_name``)."""
    session = context.session(server_name=server_name)
    try:
        async with asyncio.timeout(handshake_timeout):
            reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        raise HandshakeError(f"cannot connect to {host}:{port}: {exc}", side="client") from exc
    try:
        return await GmTlsStream.handshake(session, reader, writer, timeout=handshake_timeout)
    except BaseException:
        writer.close()
        raise


async def start_server(
    context: _SessionMaker, handler: Callable[[GmTlsStream], Awaitable[None]], host: str | None, port: int, *,
    handshake_timeout: float = HANDSHAKE_TIMEOUT, **server_options: Any,
) -> asyncio.Server:
    """An asyncio server whose ``handler`` receives each connection once its GM TLS handshake has completed.

    The handler owns the stream (it should close it); failed handshakes are logged at INFO with the peer's address
    and the library's reason, and closed.
    """
    if isinstance(handshake_timeout, bool) or not isinstance(handshake_timeout, (int, float)) \
            or not 0 < handshake_timeout <= 3600:
        raise InvalidInput("the handshake timeout must be 0 to 3600 seconds")

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            stream = await GmTlsStream.handshake(context.session(), reader, writer, timeout=handshake_timeout)
        except HandshakeError as exc:
            log.info("GM TLS handshake from %s refused: %s", writer.get_extra_info("peername"), exc.reason)
            writer.close()
            return
        await handler(stream)

    return await asyncio.start_server(accept, host, port, **server_options)
