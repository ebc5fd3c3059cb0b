"""GM TLS contexts: what a server or a client presents, accepts and trusts, for TLCP or RFC 8998.

Two modes:

- ``"tlcp"``: GB/T 38636-2020 (TLCP, GM/T 0024's successor) with double certificates: a *sign* pair
  (digitalSignature) and an *enc* pair (keyEncipherment/keyAgreement); suites ``ECC-SM2-SM4-GCM-SM3``,
  ``ECC-SM2-SM4-CBC-SM3``, ``ECDHE-SM2-SM4-GCM-SM3``, ``ECDHE-SM2-SM4-CBC-SM3``.  ECDHE needs the client's
  enc pair too (its key exchange uses it), so a client offering only ECC suites may come without certificates.
- ``"rfc8998"``: TLS 1.3 with ``TLS_SM4_GCM_SM3`` (or ``TLS_SM4_CCM_SM3``), SM2 key share and sm2sig_sm3
  signatures only (Tongsuo's "sm_tls13_strict"), one SM2 certificate.

Peers are checked against the consortium CA given as ``ca`` (PEM) and nothing else, and against the CA's
revocation list when one is given as ``crl`` (then every CA in ``ca`` needs a current list); a server may require
a client certificate (``require_client_certificate=True``, mutual authentication of member systems).

A context is immutable once made and may be shared by threads (to load a newer CRL, make a new context and hand
new connections to it).  ``wrap(sock)`` runs the handshake on a connected socket; ``session()`` gives the same
connection over memory buffers, for event loops.
"""

from __future__ import annotations

import socket
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from ..errors import InvalidInput
from . import _binding as b
from . import _x509
from .connection import HANDSHAKE_TIMEOUT, GmTlsSocket
from .credentials import CertifiedKey, load_revocations, load_trust
from .errors import TlsLibraryError
from .session import TlsSession

__all__ = ["MODES", "RFC8998_SUITES", "TLCP_SUITES", "ClientContext", "ServerContext"]

TLCP_SUITES: Final = ("ECC-SM2-SM4-GCM-SM3", "ECC-SM2-SM4-CBC-SM3", "ECDHE-SM2-SM4-GCM-SM3", "ECDHE-SM2-SM4-CBC-SM3")
RFC8998_SUITES: Final = ("TLS_SM4_GCM_SM3", "TLS_SM4_CCM_SM3")
MODES: Final = ("tlcp", "rfc8998")
_OPTIONS = b.SSL_OP_NO_COMPRESSION | b.SSL_OP_NO_RENEGOTIATION | b.SSL_OP_NO_TICKET


def _suites(mode: str, suites: Sequence[str] | None, *, client_certified: bool) -> tuple[str, ...]:
    """The suites to offer.  TLCP's ECDHE suites need the client's enc certificate (GB/T 38636: the key
    agreement uses both sides' enc keys), so without mutual authentication only the ECC suites are offered."""
    if mode not in MODES:
        raise InvalidInput(f"GM TLS mode must be one of {', '.join(MODES)}, not {str(mode)[:40]!r}")
    allowed: tuple[str, ...] = TLCP_SUITES if mode == "tlcp" else RFC8998_SUITES
    if mode == "tlcp" and not client_certified:
        allowed = tuple(s for s in allowed if not s.startswith("ECDHE-"))
    chosen = allowed if suites is None else tuple(suites)
    if isinstance(suites, str) or not chosen or any(s not in allowed for s in chosen):
        why = " (ECDHE needs client certificates: mutual authentication)" if mode == "tlcp" and not client_certified \
            else ""
        raise InvalidInput(f"{mode} suites must be a non-empty list drawn from {', '.join(allowed)}{why}")
    return chosen


class _Context:
    """An ``SSL_CTX`` configured for one mode; freed with this object."""

    def __init__(
        self, *, mode: str, ca: bytes | Path, crl: bytes | Path | None, suites: Sequence[str] | None,
        server_side: bool, sign: CertifiedKey | None, enc: CertifiedKey | None, certificate: CertifiedKey | None,
        verify: int,
    ) -> None:
        self.mode = mode
        certified = verify & b.SSL_VERIFY_FAIL_IF_NO_PEER_CERT if server_side else sign is not None
        self.suites = _suites(mode, suites, client_certified=bool(certified))
        self.server_side = server_side
        trust = load_trust(ca)
        revocations = load_revocations(crl) if crl is not None else ()
        for name, value in (("sign", sign), ("enc", enc), ("certificate", certificate)):
            if value is not None and not isinstance(value, CertifiedKey):
                raise InvalidInput(f"{name} must be a CertifiedKey")
        if mode == "tlcp" and certificate is not None:
            raise InvalidInput("tlcp takes a sign and an enc pair (sign=, enc=), not certificate=")
        if mode == "rfc8998" and (sign is not None or enc is not None):
            raise InvalidInput("rfc8998 takes one pair (certificate=), not sign= / enc=")
        self.lib = lib = b.library()
        method = lib.NTLS_method() if mode == "tlcp" else lib.TLS_method()
        ctx = lib.SSL_CTX_new(method)
        if not ctx:
            raise TlsLibraryError(f"cannot make a TLS context: {'; '.join(b.error_reasons(lib))}")
        self._ctx = ctx
        self._finalizer = weakref.finalize(self, lib.SSL_CTX_free, ctx)
        lib.SSL_CTX_set_options(ctx, _OPTIONS | (b.SSL_OP_CIPHER_SERVER_PREFERENCE if server_side else 0))
        # send our certificates only, never the CA from the trust store: every peer holds the consortium CA, and
        # tjfoc/gmsm checks the host name against every certificate it is sent (the CA's too)
        lib.SSL_CTX_ctrl(ctx, b.SSL_CTRL_MODE, b.SSL_MODE_NO_AUTO_CHAIN, None)
        if mode == "tlcp":
            lib.SSL_CTX_enable_ntls(ctx)
            self._check(lib.SSL_CTX_set_cipher_list(ctx, ":".join(self.suites).encode()), "the TLCP suites")
            for pair, use_cert, use_key in (
                (sign, lib.SSL_CTX_use_sign_certificate, lib.SSL_CTX_use_sign_PrivateKey),
                (enc, lib.SSL_CTX_use_enc_certificate, lib.SSL_CTX_use_enc_PrivateKey),
            ):
                if pair is not None:
                    self._use(pair, use_cert, use_key)
        else:
            self._tls13_only()
            if certificate is not None:
                self._use(certificate, lib.SSL_CTX_use_certificate, lib.SSL_CTX_use_PrivateKey)
        self._trust(trust, revocations)
        lib.SSL_CTX_set_verify(ctx, verify, None)
        lib.SSL_CTX_set_verify_depth(ctx, 4)

    def _trust(self, trust: Sequence[bytes], revocations: Sequence[bytes]) -> None:
        lib = self.lib
        store = lib.SSL_CTX_get_cert_store(self._ctx)
        for der, load, add, what in (
            *((der, _x509.load_certificate, lib.X509_STORE_add_cert, "the CA certificate") for der in trust),
            *((der, _x509.load_crl, lib.X509_STORE_add_crl, "the CRL") for der in revocations),
        ):
            item = load(lib, der)
            try:
                self._check(add(store, item.ptr), what)
            finally:
                item.close()  # the store holds its own reference
        if revocations:  # the peer's certificate must then be covered by a current CRL of its CA
            self._check(lib.X509_STORE_set_flags(store, b.X509_V_FLAG_CRL_CHECK), "CRL checking")

    def _tls13_only(self) -> None:
        lib, ctx = self.lib, self._ctx
        for cmd, value in ((b.SSL_CTRL_SET_MIN_PROTO_VERSION, b.TLS1_3_VERSION),
                           (b.SSL_CTRL_SET_MAX_PROTO_VERSION, b.TLS1_3_VERSION)):
            self._check(lib.SSL_CTX_ctrl(ctx, cmd, value, None), "TLS 1.3 only")
        self._check(lib.SSL_CTX_set_ciphersuites(ctx, ":".join(self.suites).encode()), "the RFC 8998 suites")
        self._check(lib.SSL_CTX_ctrl(ctx, b.SSL_CTRL_SET_GROUPS_LIST, 0, b"SM2"), "the SM2 key share")
        self._check(lib.SSL_CTX_ctrl(ctx, b.SSL_CTRL_SET_SIGALGS_LIST, 0, b"sm2sig_sm3"), "SM2 signatures")
        lib.SSL_CTX_enable_sm_tls13_strict(ctx)

    def _use(self, pair: CertifiedKey, use_cert: Callable[[int, int], int], use_key: Callable[[int, int], int]) -> None:
        lib = self.lib
        cert = _x509.load_certificate(lib, pair.certificate)
        key = _x509.load_private_key(lib, pair.key.to_der())
        try:
            self._check(use_cert(self._ctx, cert.ptr), f"the certificate of {pair.subject}")
            self._check(use_key(self._ctx, key.ptr), f"the private key of {pair.subject}")
        finally:  # the context holds its own references
            cert.close()
            key.close()

    def _check(self, result: int, what: str) -> None:
        if result <= 0:
            reasons = b.error_reasons(self.lib)
            raise TlsLibraryError(f"the TLS library refused {what}: {'; '.join(reasons) or 'no reason given'}")

    def session(self, *, server_name: str | None = None) -> TlsSession:
        """One connection over memory buffers (for event loops); see :class:`TlsSession`."""
        return TlsSession(self.lib, self._ctx, self, server_side=self.server_side, server_name=server_name)


class ServerContext(_Context):
    """The server side: TLCP takes ``sign=`` and ``enc=`` pairs, RFC 8998 takes ``certificate=``.

    >>> ctx = ServerContext(mode="tlcp", ca=ca_pem, sign=sign_pair, enc=enc_pair)  # doctest: +SKIP
    >>> conn = ctx.wrap(accepted_socket)  # doctest: +SKIP
    """

    def __init__(
        self, *, mode: str, ca: bytes | Path, sign: CertifiedKey | None = None, enc: CertifiedKey | None = None,
        certificate: CertifiedKey | None = None, require_client_certificate: bool = False,
        suites: Sequence[str] | None = None, crl: bytes | Path | None = None,
    ) -> None:
        if mode == "tlcp" and (sign is None or enc is None):
            raise InvalidInput("a TLCP server needs both its sign pair and its enc pair")
        if mode == "rfc8998" and certificate is None:
            raise InvalidInput("an RFC 8998 server needs its certificate pair (certificate=)")
        verify = b.SSL_VERIFY_PEER | b.SSL_VERIFY_FAIL_IF_NO_PEER_CERT if require_client_certificate \
            else b.SSL_VERIFY_NONE
        self.require_client_certificate = bool(require_client_certificate)
        super().__init__(mode=mode, ca=ca, crl=crl, suites=suites, server_side=True, sign=sign, enc=enc,
                         certificate=certificate, verify=verify)

    def wrap(self, sock: socket.socket, *, handshake_timeout: float = HANDSHAKE_TIMEOUT) -> GmTlsSocket:
        """Run the server handshake on an accepted socket; raises :class:`HandshakeError` on any failure.

        ``handshake_timeout`` bounds each wait when the socket has no timeout of its own.
        """
        return GmTlsSocket.handshake(self.session(), sock, timeout=handshake_timeout)


class ClientContext(_Context):
    """The client side: it always checks the server's certificate chain against ``ca``.

    For mutual authentication a TLCP client gives ``sign=`` and ``enc=``, an RFC 8998 client ``certificate=``.

    >>> ctx = ClientContext(mode="rfc8998", ca=ca_pem)  # doctest: +SKIP
    >>> conn = ctx.wrap(socket.create_connection(("node0", 8545)), server_name="node0")  # doctest: +SKIP
    """

    def __init__(
        self, *, mode: str, ca: bytes | Path, sign: CertifiedKey | None = None, enc: CertifiedKey | None = None,
        certificate: CertifiedKey | None = None, suites: Sequence[str] | None = None,
        crl: bytes | Path | None = None,
    ) -> None:
        if (sign is None) != (enc is None):
            raise InvalidInput("a TLCP client certificate is a sign pair and an enc pair: give both or neither")
        super().__init__(mode=mode, ca=ca, crl=crl, suites=suites, server_side=False, sign=sign, enc=enc,
                         certificate=certificate, verify=b.SSL_VERIFY_PEER)

    def wrap(
        self, sock: socket.socket, *, server_name: str | None, handshake_timeout: float = HANDSHAKE_TIMEOUT
    ) -> GmTlsSocket:
        """Run the client handshake on a connected socket.

        ``server_name`` is required, and should be given: the server's certificate must then name it (a DNS
        name, also sent as SNI, or an IP address, matched against the certificate's IP entries).  None accepts any server certificate of the consortium
        CA with serverAuth (any gateway or node): only for a caller that checks ``peer_subject`` itself.
        ``handshake_timeout`` bounds each wait when the socket has no timeout of its own.  Raises
        :class:`HandshakeError` on any failure.
        """
        return GmTlsSocket.handshake(self.session(server_name=server_name), sock, timeout=handshake_timeout)
