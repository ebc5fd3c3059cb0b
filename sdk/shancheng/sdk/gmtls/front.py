"""A GM TLS front: terminates TLCP or RFC 8998 and relays HTTP/1.1 (and WebSocket upgrades) to a loopback listener.

The node's JSON-RPC and the gateway serve GM TLS through it; both keep their plain HTTP server on loopback, and the
front is the only thing listening outside.  Per connection it:

- counts the connection against ``max_connections`` and ``max_connections_per_client`` (the source address) *before*
  the handshake, and gives the handshake ``handshake_timeout`` seconds; over a limit the connection is closed at once;
- relays each request's head and ``Content-Length`` body to one upstream connection (kept for the TLS connection's
  life), stripping the headers :data:`SUBJECT_HEADER`, :data:`PEER_HEADER` and :data:`TOKEN_HEADER` whatever the
  client sent, and, when the front was given a ``relay_token``, adding them: the client certificate's subject
  (RFC 4514, percent-encoded; absent without a client certificate), the client's address, and the token, by which
  the upstream (the gateway, in the same process) knows the headers come from its own front;
- refuses chunked request bodies (411: JSON-RPC and the gateway's API send a length) and heads over
  ``max_header_bytes`` (431); after an ``Upgrade`` request (a WebSocket) it relays bytes both ways;
- relays the upstream's answers back unchanged.

Revocation: the server context is remade when the CRL file changes (its size, time or inode, checked as each
connection arrives), so ``shancheng pki revoke`` and ``pki crl`` take effect on the next connection with no signal;
connections already open are not cut.  A CRL file that cannot be read keeps the previous context (logged as an
error).

>>> front = GmTlsFront(settings, upstream=("127.0.0.1", 8545), password=pw)   # doctest: +SKIP
>>> await front.start(); ...; await front.close()                           # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, ShanchengError
from ..files import read_password
from ..netaddr import is_loopback
from .aio import GmTlsStream
from .context import MODES, ClientContext, ServerContext
from .credentials import CertifiedKey
from .errors import GmTlsError, HandshakeError
from .listener import ConnectionLimits, ReloadingContext

__all__ = ["CERTIFICATE_FILES", "FILE_SETTINGS", "PEER_HEADER", "SUBJECT_HEADER", "TOKEN_HEADER", "GmTlsFront",
           "TlsFrontSettings", "run_with_fronts"]

log = logging.getLogger("shancheng.gmtls.front")

SUBJECT_HEADER = "X-Shancheng-Tls-Subject"
PEER_HEADER = "X-Shancheng-Tls-Peer"
TOKEN_HEADER = "X-Shancheng-Relay-Token"
_STRIPPED = frozenset(h.lower().encode() for h in (SUBJECT_HEADER, PEER_HEADER, TOKEN_HEADER))
_CHUNK = 64 * 1024


#: the certificate and key files of each mode (TLCP: the sign and the enc pair; RFC 8998: one pair)
CERTIFICATE_FILES = {"tlcp": ("sign_cert", "sign_key", "enc_cert", "enc_key"), "rfc8998": ("cert", "key")}
#: every file setting of a ``[tls]`` table (taken relative to the configuration file's folder)
FILE_SETTINGS = ("ca", *CERTIFICATE_FILES["tlcp"], *CERTIFICATE_FILES["rfc8998"], "crl", "password_file")


@dataclass(frozen=True)
class TlsFrontSettings:
    """A ``[tls]`` section (node.toml / config.toml / gateway.toml); file paths relative to the file's folder.

    TLCP takes ``sign_cert``/``sign_key`` and ``enc_cert``/``enc_key``; RFC 8998 takes ``cert``/``key``.  ``port``
    is the GM TLS port of the HTTP API, ``ws_port`` (nodes) that of the WebSocket API.  ``allow_plain_http``: the
    plain listener may bind to a non-loopback address too (off: it must be loopback).
    """

    mode: str
    ca: Path
    port: int
    host: str = "0.0.0.0"
    ws_port: int | None = None
    sign_cert: Path | None = None
    sign_key: Path | None = None
    enc_cert: Path | None = None
    enc_key: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    crl: Path | None = None
    password_file: Path | None = None
    require_client_certificate: bool = False
    allow_plain_http: bool = False
    handshake_timeout: float = 10.0
    idle_timeout: float = 120.0
    max_connections: int = 1024
    max_connections_per_client: int = 64
    max_header_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidInput(f"[tls] mode must be one of {', '.join(MODES)}, not {str(self.mode)[:40]!r}")
        missing = [n for n in CERTIFICATE_FILES[self.mode] if getattr(self, n) is None]
        if missing:
            raise InvalidInput(f"[tls] mode {self.mode} needs {', '.join(missing)}")
        for name, low, high in (("port", 1, 65535), ("max_connections", 1, 1_000_000),
                                ("max_connections_per_client", 1, 1_000_000), ("max_header_bytes", 1024, 1 << 20)):
            value = getattr(self, name)
            if type(value) is not int or not low <= value <= high:
                raise InvalidInput(f"[tls] {name} must be an integer from {low} to {high}")
        if self.ws_port is not None and (type(self.ws_port) is not int or not 1 <= self.ws_port <= 65535):
            raise InvalidInput("[tls] ws_port must be an integer from 1 to 65535")
        for name in ("handshake_timeout", "idle_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
                raise InvalidInput(f"[tls] {name} must be 0 to 3600 seconds")
        for name in ("require_client_certificate", "allow_plain_http"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInput(f"[tls] {name} must be true or false")

    @classmethod
    def from_toml(cls, section: Mapping[str, Any], base: Path) -> TlsFrontSettings:
        """The settings of a parsed ``[tls]`` table; relative paths are taken from ``base``."""
        if not isinstance(section, Mapping):
            raise InvalidInput("[tls] must be a table")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(section) - set(known))
        if unknown:
            raise InvalidInput(f"[tls] has unknown settings: {', '.join(str(u)[:40] for u in unknown[:5])}")
        values: dict[str, Any] = {}
        for name, value in section.items():
            if name in FILE_SETTINGS:
                if not isinstance(value, str) or not value or len(value) > 4096:
                    raise InvalidInput(f"[tls] {name} must be a file path")
                value = base / os.path.expanduser(value)
            values[name] = value
        missing = [name for name in ("mode", "port", "ca") if name not in values]
        if missing:
            raise InvalidInput(f"[tls] needs {', '.join(missing)}")
        try:
            return cls(**values)
        except TypeError as exc:
            raise InvalidInput(f"[tls] is incomplete: {exc}") from exc

    def server_context(self, certificates: dict[str, Any]) -> ServerContext:
        """A server context presenting ``certificates`` (from :meth:`certificates`), with the CA and the CRL read
        from their files now."""
        common: dict[str, Any] = {"ca": self.ca, "crl": self.crl,
                                  "require_client_certificate": self.require_client_certificate}
        return ServerContext(mode=self.mode, **certificates, **common)

    def client_context(self, certificates: dict[str, Any]) -> ClientContext:
        """A client context presenting the same certificates (a node dialling its peers), with the CRL if set."""
        return ClientContext(mode=self.mode, ca=self.ca, crl=self.crl, **certificates)

    def certificates(self, password: bytes | None) -> dict[str, CertifiedKey]:
        """The certificates and keys of the files, the keys decrypted with ``password`` (a KDF each: done once at
        start, never again when a CRL change remakes the contexts on the event loop): the keyword arguments of a
        context of this mode."""
        def pair(cert: Path | None, key: Path | None) -> CertifiedKey:
            assert cert is not None and key is not None
            return CertifiedKey.from_files(cert, key, password)

        if self.mode == "tlcp":
            return {"sign": pair(self.sign_cert, self.sign_key), "enc": pair(self.enc_cert, self.enc_key)}
        return {"certificate": pair(self.cert, self.key)}

    def read_password(self, default_file: str | None) -> bytes | None:
        """The key files' password: ``password_file``, else ``default_file``, else $SHANCHENG_KEY_PASSWORD."""
        chosen = str(self.password_file) if self.password_file is not None else default_file
        return read_password(chosen, required=False)


class GmTlsFront:
    """One GM TLS listener relaying to ``upstream`` (a loopback ``(host, port)``); see the module docstring."""

    def __init__(self, settings: TlsFrontSettings, *, upstream: tuple[str, int], password: bytes | None,
                 port: int | None = None, relay_token: str | None = None) -> None:
        if not is_loopback(upstream[0]):
            raise InvalidInput(f"a GM TLS front relays to loopback only, not {upstream[0]!r}")
        self.settings = settings
        self.upstream = upstream
        self.port = settings.port if port is None else port
        self.relay_token = relay_token
        certificates = settings.certificates(password)
        self.contexts = ReloadingContext(lambda: settings.server_context(certificates), settings.crl,
                                         what="GM TLS front")
        self.limits = ConnectionLimits(max_connections=settings.max_connections,
                                       max_connections_per_client=settings.max_connections_per_client,
                                       what="GM TLS front")
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind the listener (``self.port`` is then the bound port, also when 0 was asked for)."""
        try:
            self._server = await asyncio.start_server(self._accept, self.settings.host, self.port,
                                                      limit=self.settings.max_header_bytes)
        except OSError as exc:
            raise ShanchengError(f"the GM TLS front cannot listen on {self.settings.host}:{self.port}: "
                                 f"{exc.strerror or exc}") from exc
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("GM TLS front (%s) on %s:%d -> %s:%d", self.settings.mode, self.settings.host, self.port,
                 *self.upstream)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self.limits.serve(writer, lambda address: self._serve(reader, writer, address))
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str) -> None:
        try:
            stream = await GmTlsStream.handshake(self.contexts.current().session(), reader, writer,
                                                 timeout=self.settings.handshake_timeout)
        except HandshakeError as exc:
            log.info("GM TLS handshake from %s refused: %s", address, exc.reason)
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError as exc:
            log.error("GM TLS front: upstream %s:%d unreachable: %s", *self.upstream, exc)
            await stream.write(_answer(502, "the service behind the GM TLS front is unavailable"))
            await stream.close()
            return
        relay = _Relay(self, stream, up_reader, up_writer, address)
        try:
            await relay.run()
        finally:
            up_writer.close()
            await stream.close()


class _Relay:
    """One TLS connection and its upstream connection."""

    def __init__(self, front: GmTlsFront, stream: GmTlsStream, up_reader: asyncio.StreamReader,
                 up_writer: asyncio.StreamWriter, address: str) -> None:
        self.front = front
        self.settings = front.settings
        self.stream = stream
        self.up_reader = up_reader
        self.up_writer = up_writer
        self.address = address
        self.buffer = bytearray()
        self.refused = False  # a request was refused: the connection closes at once

    async def run(self) -> None:
        requests = asyncio.create_task(self._requests())
        answers = asyncio.create_task(self._answers())
        try:
            await asyncio.wait({requests, answers}, return_when=asyncio.FIRST_COMPLETED)
            if requests.done() and not answers.done() and not self.refused:  # the client is done: answers finish
                await asyncio.wait({answers}, timeout=self.settings.idle_timeout)
        finally:
            for task in (requests, answers):
                task.cancel()
            for task in (requests, answers):
                with contextlib.suppress(asyncio.CancelledError, GmTlsError, OSError):
                    await task

    async def _answers(self) -> None:
        while data := await self.up_reader.read(_CHUNK):
            await self.stream.write(data)

    async def _read_client(self) -> bool:
        """More bytes from the client into the buffer; False at its end."""
        try:
            async with asyncio.timeout(self.settings.idle_timeout):
                data = await self.stream.read(_CHUNK)
        except TimeoutError:
            self.refused = True  # idle too long: close now
            return False
        self.buffer += data
        return bool(data)

    async def _requests(self) -> None:
        while True:
            while (end := self.buffer.find(b"\r\n\r\n")) < 0:
                if len(self.buffer) > self.settings.max_header_bytes:
                    await self._refuse(431, "request header too large")
                    return
                if not await self._read_client():
                    if self.up_writer.can_write_eof():
                        self.up_writer.write_eof()
                    return
            head, self.buffer = bytes(self.buffer[:end]), self.buffer[end + 4:]
            if len(head) > self.settings.max_header_bytes:
                await self._refuse(431, "request header too large")
                return
            rewritten, length, upgrade = self._rewrite(head)
            if rewritten is None:
                await self._refuse(length, "chunked request bodies are not accepted: send a length"
                                   if length == 411 else "malformed request")
                return
            self.up_writer.write(rewritten)
            while length > 0:
                if not self.buffer and not await self._read_client():
                    return
                part = bytes(self.buffer[:length])
                del self.buffer[:length]
                length -= len(part)
                self.up_writer.write(part)
                await self.up_writer.drain()
            await self.up_writer.drain()
            if upgrade:  # a WebSocket from here on: bytes both ways
                if self.buffer:
                    self.up_writer.write(bytes(self.buffer))
                    self.buffer.clear()
                while data := await self.stream.read(_CHUNK):
                    self.up_writer.write(data)
                    await self.up_writer.drain()
                return

    async def _refuse(self, status: int, detail: str) -> None:
        self.refused = True
        await self.stream.write(_answer(status, detail))

    def _rewrite(self, head: bytes) -> tuple[bytes | None, int, bool]:
        """(the head to send upstream, the body's length, an upgrade?); (None, status, False) when refused."""
        lines = head.split(b"\r\n")
        if len(lines[0].split(b" ")) != 3 or any(b"\n" in line or b"\r" in line for line in lines):
            return None, 400, False
        kept = [lines[0]]
        length = 0
        upgrade = False
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                return None, 400, False
            lowered = name.lower()
            if lowered in _STRIPPED:
                continue
            if lowered == b"transfer-encoding":
                return None, 411, False
            if lowered == b"content-length":
                text = value.strip()
                if not text.isdigit() or len(text) > 15:
                    return None, 400, False
                length = int(text)
            if lowered == b"upgrade":
                upgrade = True
            kept.append(line)
        token = self.front.relay_token
        if token is not None:
            kept.append(f"{TOKEN_HEADER}: {token}".encode())
            kept.append(f"{PEER_HEADER}: {urllib.parse.quote(self.address, safe='.:')}".encode())
            subject = self.stream.peer_subject
            if subject is not None:
                kept.append(f"{SUBJECT_HEADER}: {urllib.parse.quote(subject, safe=' =,+-.')}".encode())
        return b"\r\n".join(kept) + b"\r\n\r\n", length, upgrade


def _answer(status: int, detail: str) -> bytes:
    reasons = {400: "Bad Request", 411: "Length Required", 431: "Request Header Fields Too Large",
               502: "Bad Gateway"}
    body = detail.encode()
    return (f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


async def run_with_fronts(main: Any, fronts: list[GmTlsFront]) -> None:
    """Start ``fronts``, then run the coroutine ``main`` (a node or a server); the fronts close when it ends."""
    try:
        for front in fronts:
            await front.start()
    except BaseException:
        main.close()  # never started
        for front in fronts:
            await front.close()
        raise
    try:
        await main
    finally:
        for front in fronts:
            await front.close()
