"""The SDK's JSON-RPC over GM TLS (TLCP or RFC 8998): ``https+gm://`` node URLs and the client's TLS settings.

The rule is the URL's scheme: an ``https+gm://host:port/`` URL is reached over GM TLS, and needs
:class:`GmTlsClientConfig` (the consortium CA, the mode, and for mutual authentication the member's certificate);
``http://`` and ``https://`` URLs are reached as before.  A config given with no ``https+gm://`` URL is refused, so a
caller who meant GM TLS never talks plain HTTP by mistake.  The server's certificate must name the URL's host (a DNS
name or an IP address entry) unless ``server_name`` says otherwise.

>>> from shancheng.sdk import Client
>>> from shancheng.sdk.gmtls import CertifiedKey
>>> tls = GmTlsClientConfig(ca=Path("ca.crt"), mode="tlcp",                        # doctest: +SKIP
...                         certificate=(CertifiedKey.from_files("m-sign.crt", "m-sign.key", pw),
...                                      CertifiedKey.from_files("m-enc.crt", "m-enc.key", pw)))
>>> client = Client.connect("https+gm://node0:8443", identity=identity, tls=tls)   # doctest: +SKIP
"""

from __future__ import annotations

import http.client
import io
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..gmtls import MODES, CertifiedKey, ClientContext, GmTlsError, GmTlsSocket
from ..gmtls.listener import ReloadingContext
from ..gmtls.session import MAX_RECORD_READ

__all__ = ["GM_SCHEME", "GmTlsClientConfig", "GmTlsHTTPConnection"]

#: the URL scheme of a node (or gateway) reached over GM TLS
GM_SCHEME = "https+gm"
DEFAULT_PORT = 443


@dataclass(frozen=True)
class GmTlsClientConfig:
    """How the SDK reaches ``https+gm://`` URLs.

    ``ca``: the consortium CA (PEM bytes or a file).  ``mode``: ``"tlcp"`` or ``"rfc8998"``.  ``certificate``: for
    mutual authentication, the member's (sign, enc) pairs in TLCP or its one pair in RFC 8998.  ``crl``: the CA's
    revocation list, to refuse a revoked server; given as a file, it is read again when the file changes (as the
    fronts do), so a long-running client follows ``shancheng pki crl`` / ``revoke`` instead of refusing every
    server once the list it started with expires.  ``server_name``: the name the server's certificate must carry
    (default: each URL's host).
    """

    ca: bytes | Path
    mode: str = "tlcp"
    certificate: tuple[CertifiedKey, CertifiedKey] | CertifiedKey | None = None
    crl: bytes | Path | None = None
    server_name: str | None = None
    _context: list[ReloadingContext[ClientContext]] = field(default_factory=list, init=False, repr=False,
                                                            compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidInput(f"the GM TLS mode must be one of {', '.join(MODES)}, not {str(self.mode)[:40]!r}")
        cert = self.certificate
        if self.mode == "tlcp" and cert is not None and not (
                isinstance(cert, tuple) and len(cert) == 2 and all(isinstance(c, CertifiedKey) for c in cert)):
            raise InvalidInput("a TLCP client certificate is a (sign pair, enc pair) tuple of CertifiedKey")
        if self.mode == "rfc8998" and cert is not None and not isinstance(cert, CertifiedKey):
            raise InvalidInput("an RFC 8998 client certificate is one CertifiedKey")
        crl_file = self.crl if isinstance(self.crl, Path) else None
        # made now: bad files fail here, not at the first call; made again when the CRL file changes
        self._context.append(ReloadingContext(self._make_context, crl_file, what="GM TLS client"))

    def _make_context(self) -> ClientContext:
        cert = self.certificate
        if isinstance(cert, tuple):
            return ClientContext(mode=self.mode, ca=self.ca, sign=cert[0], enc=cert[1], crl=self.crl)
        return ClientContext(mode=self.mode, ca=self.ca, certificate=cert, crl=self.crl)

    @property
    def context(self) -> ClientContext:
        """The context for the next connection (remade first if the CRL file changed)."""
        return self._context[0].current()

    def connection(self, host: str, port: int, *, timeout: float) -> GmTlsHTTPConnection:
        """An HTTP/1.1 connection to ``host:port`` over GM TLS (the handshake runs on its first request)."""
        return GmTlsHTTPConnection(host, port, timeout=timeout, context=self.context,
                                   server_name=self.server_name or host)


class _PlainFile(io.RawIOBase):
    """The plaintext side of a GM TLS connection as a raw file, for ``http.client``'s response reader."""

    def __init__(self, conn: GmTlsSocket) -> None:
        self._conn = conn

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._conn.recv(min(len(view), MAX_RECORD_READ))
        except GmTlsError as exc:
            raise ConnectionError(str(exc)) from exc
        view[: len(data)] = data
        return len(data)


class _SocketFace:
    """What ``http.client`` uses of a socket (sendall, makefile, close), on a GM TLS connection."""

    def __init__(self, conn: GmTlsSocket) -> None:
        self.conn = conn

    def sendall(self, data: bytes) -> None:
        try:
            self.conn.sendall(data)
        except GmTlsError as exc:
            raise ConnectionError(str(exc)) from exc

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        if mode != "rb":
            raise InvalidInput("a GM TLS connection is read as binary")
        return io.BufferedReader(_PlainFile(self.conn))

    def close(self) -> None:
        self.conn.close()


class GmTlsHTTPConnection(http.client.HTTPConnection):
    """``http.client.HTTPConnection`` whose socket speaks TLCP or RFC 8998 (a failed handshake is a
    ``ConnectionError`` carrying the library's one-line reason, so the RPC client fails over as for any other)."""

    default_port = DEFAULT_PORT

    def __init__(self, host: str, port: int, *, timeout: float, context: ClientContext, server_name: str) -> None:
        super().__init__(host, port, timeout=timeout)
        self._tls_context = context
        self._server_name = server_name
        self.peer: GmTlsSocket | None = None

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.peer = self._tls_context.wrap(sock, server_name=self._server_name)
        except GmTlsError as exc:
            sock.close()
            raise ConnectionError(str(exc)) from exc
        except BaseException:
            sock.close()
            raise
        self.sock = _SocketFace(self.peer)
