"""One GM TLS connection over memory buffers: the caller moves the bytes, the TLS library keeps the state.

The shape of :class:`ssl.SSLObject`: :meth:`TlsSession.receive` hands in bytes that came from the peer,
:meth:`TlsSession.outgoing` takes the bytes to send, and :meth:`do_handshake`, :meth:`read`, :meth:`write`
and :meth:`close` never touch a socket.  So one implementation serves blocking sockets
(:class:`~shancheng.sdk.gmtls.connection.GmTlsSocket`) and asyncio protocols alike.  A session is used by one
thread at a time (the library's error queue is per thread).
"""

from __future__ import annotations

import ctypes
import ipaddress
import weakref

from ..errors import InvalidInput
from . import _binding as b
from . import _x509
from .credentials import certificate_info
from .errors import GmTlsError, HandshakeError

__all__ = ["MAX_RECORD_READ", "Negotiated", "TlsSession"]

MAX_RECORD_READ = 1 << 20
_BIO_C_SET_BUF_MEM_EOF_RETURN = 130


class TlsSession:
    """The TLS state of one connection; made by a context's ``session()``."""

    def __init__(
        self, lib: b.Library, ssl_ctx: int, owner: object, *, server_side: bool, server_name: str | None
    ) -> None:
        self._lib = lib
        self._owner = owner  # keeps the SSL_CTX alive as long as this session
        self.server_side = server_side
        self._side = "server" if server_side else "client"
        ssl = lib.SSL_new(ssl_ctx)
        if not ssl:
            raise GmTlsError(f"cannot start a TLS connection: {'; '.join(b.error_reasons(lib))}")
        self._ssl = ssl
        self._finalizer = weakref.finalize(self, lib.SSL_free, ssl)  # frees the two BIOs with it
        self._in = lib.BIO_new(lib.BIO_s_mem())
        self._out = lib.BIO_new(lib.BIO_s_mem())
        if not self._in or not self._out:
            raise GmTlsError("cannot allocate TLS buffers")
        lib.SSL_set_bio(ssl, self._in, self._out)
        if server_side:
            lib.SSL_set_accept_state(ssl)
        else:
            lib.SSL_set_connect_state(ssl)
            if server_name is not None:
                self._expect_name(server_name)
        self.handshake_done = False
        self._peer_closed = False
        self._data_seen = False

    def _expect_name(self, name: str) -> None:
        """The server's certificate must name ``name``: a DNS name (also sent as SNI) or an IP address."""
        if not isinstance(name, str) or not 0 < len(name) <= 253 or not name.isascii() or not name.isprintable():
            raise InvalidInput("server_name must be a printable ASCII host name of 1 to 253 characters")
        raw = name.encode("ascii")
        try:
            ipaddress.ip_address(name)
        except ValueError:
            ok = self._lib.SSL_set1_host(self._ssl, raw) == 1 and self._lib.SSL_ctrl(
                self._ssl, b.SSL_CTRL_SET_TLSEXT_HOSTNAME, b.TLSEXT_NAMETYPE_host_name, raw) == 1
        else:  # an address is matched against the certificate's IP entries and never sent as SNI (RFC 6066)
            ok = self._lib.X509_VERIFY_PARAM_set1_ip_asc(self._lib.SSL_get0_param(self._ssl), raw) == 1
        if not ok:
            b.error_reasons(self._lib)
            raise InvalidInput(f"server_name {name!r} was refused by the TLS library")

    # -- bytes in and out ---------------------------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        """Bytes the peer sent (at most :data:`MAX_RECORD_READ` at a time)."""
        if len(data) > MAX_RECORD_READ:
            raise InvalidInput(f"hand the peer's bytes over at most {MAX_RECORD_READ} at a time")
        if data and self._lib.BIO_write(self._in, bytes(data), len(data)) != len(data):
            raise GmTlsError("cannot buffer the peer's bytes")

    def receive_eof(self) -> None:
        """The peer closed its side: reads that need more bytes now fail instead of waiting."""
        self._lib.BIO_ctrl(self._in, _BIO_C_SET_BUF_MEM_EOF_RETURN, 0, None)
        self._peer_closed = True

    def outgoing(self) -> bytes:
        """The bytes to send to the peer now (empty when there are none)."""
        size = self._lib.BIO_ctrl_pending(self._out)
        if not size:
            return b""
        buf = ctypes.create_string_buffer(size)
        got = self._lib.BIO_read(self._out, ctypes.addressof(buf), size)
        return buf.raw[: max(got, 0)]

    # -- the connection -----------------------------------------------------------------------------------
    def _failure(self, result: int) -> tuple[int, str]:
        """(SSL error code, one-line reason) after a call returned ``result``."""
        lib = self._lib
        code = lib.SSL_get_error(self._ssl, result)
        reasons = [r for r in b.error_reasons(lib) if r != "internal error"]  # Tongsuo's NTLS adds it to others
        verify = lib.SSL_get_verify_result(self._ssl)
        if verify != b.X509_V_OK:
            text = lib.X509_verify_cert_error_string(verify)
            detail = text.decode("ascii", "replace") if text else f"error {verify}"
            if "certificate verify failed" in reasons:
                reasons[reasons.index("certificate verify failed")] = f"certificate verify failed: {detail}"
            else:
                reasons.append(f"peer certificate: {detail}")
        if not reasons and code in (b.SSL_ERROR_SYSCALL, b.SSL_ERROR_ZERO_RETURN):
            reasons.append("the peer closed the connection")
        return code, "; ".join(reasons) or f"TLS error {code}"

    def do_handshake(self) -> bool:
        """Advance the handshake: True once complete, False while it waits for the peer's bytes.

        Raises :class:`HandshakeError` with the library's reason; any alert for the peer is in :meth:`outgoing`.
        """
        if self.handshake_done:
            return True
        self._lib.ERR_clear_error()
        result = self._lib.SSL_do_handshake(self._ssl)
        if result == 1:
            self.handshake_done = True
            return True
        code, reason = self._failure(result)
        if code == b.SSL_ERROR_WANT_READ and not self._peer_closed:
            return False
        if code == b.SSL_ERROR_WANT_READ:
            reason = "the peer closed the connection during the handshake"
        raise HandshakeError(reason, side=self._side)

    def read(self, max_bytes: int) -> bytes | None:
        """Up to ``max_bytes`` of plaintext; None when more bytes from the peer are needed, b"" at its close."""
        if not isinstance(max_bytes, int) or not 0 < max_bytes <= MAX_RECORD_READ:
            raise InvalidInput(f"read size must be 1 to {MAX_RECORD_READ} bytes")
        self._require_handshake()
        buf = ctypes.create_string_buffer(max_bytes)
        got = ctypes.c_size_t(0)
        self._lib.ERR_clear_error()
        if self._lib.SSL_read_ex(self._ssl, ctypes.addressof(buf), max_bytes, ctypes.byref(got)) == 1:
            self._data_seen = True
            return buf.raw[: got.value]
        code, reason = self._failure(0)
        if code == b.SSL_ERROR_ZERO_RETURN:
            return b""
        if code == b.SSL_ERROR_WANT_READ:
            return b"" if self._peer_closed else None
        if code == b.SSL_ERROR_SSL and not self._data_seen:
            # TLS 1.3: the server judges a client certificate after the client's handshake is over, so its
            # refusal (an alert) reaches the client on the first read; it is the handshake's failure all the same
            raise HandshakeError(reason, side=self._side)
        raise GmTlsError(f"GM TLS read failed: {reason}")

    def write(self, data: bytes) -> None:
        """Encrypt ``data``; the records are then in :meth:`outgoing`."""
        self._require_handshake()
        if not data:
            return
        done = ctypes.c_size_t(0)
        self._lib.ERR_clear_error()
        if self._lib.SSL_write_ex(self._ssl, bytes(data), len(data), ctypes.byref(done)) != 1 or \
                done.value != len(data):
            raise GmTlsError(f"GM TLS write failed: {self._failure(0)[1]}")

    def close(self) -> None:
        """Send close_notify (into :meth:`outgoing`) if the handshake completed."""
        if self.handshake_done:
            self._lib.ERR_clear_error()
            self._lib.SSL_shutdown(self._ssl)
            b.error_reasons(self._lib)

    def _require_handshake(self) -> None:
        if not self.handshake_done:
            raise GmTlsError("the GM TLS handshake has not completed")

    # -- what was negotiated ----------------------------------------------------------------------------
    @property
    def protocol(self) -> str:
        """``NTLSv1.1`` (TLCP) or ``TLSv1.3``."""
        return str(self._lib.SSL_get_version(self._ssl).decode("ascii"))

    @property
    def cipher(self) -> str:
        """The suite in use, e.g. ``ECC-SM2-SM4-GCM-SM3`` or ``TLS_SM4_GCM_SM3``."""
        cipher = self._lib.SSL_get_current_cipher(self._ssl)
        return str(self._lib.SSL_CIPHER_get_name(cipher).decode("ascii")) if cipher else ""

    def peer_certificate(self) -> bytes | None:
        """The peer's (sign) certificate, DER, as verified in the handshake; None when it sent none."""
        x509 = self._lib.SSL_get_peer_certificate(self._ssl)
        if not x509:
            return None
        try:
            return _x509.certificate_der(self._lib, x509)
        finally:
            self._lib.X509_free(x509)

    @property
    def peer_subject(self) -> str | None:
        """The peer certificate's subject, RFC 4514 (``CN=member-a,OU=member,O=Shancheng``), or None."""
        der = self.peer_certificate()
        return None if der is None else certificate_info(der).subject.rfc4514_string()


class Negotiated:
    """What a connection over a :class:`TlsSession` negotiated (shared by the blocking and the asyncio wrappers)."""

    session: TlsSession

    @property
    def protocol(self) -> str:
        return self.session.protocol

    @property
    def cipher(self) -> str:
        return self.session.cipher

    @property
    def peer_subject(self) -> str | None:
        return self.session.peer_subject
