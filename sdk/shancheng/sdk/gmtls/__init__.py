"""GM TLS: TLCP (GB/T 38636-2020) and RFC 8998 (TLS 1.3 with SM2/SM3/SM4) on a real TLS library.

The library is Tongsuo 8.3 as the ``tongsuopy`` wheel bundles it (see ``docs/gm-tls.md`` for putting a system
Tongsuo in its place); no protocol is written here.  The consortium's SM2 PKI issues the certificates.

>>> from shancheng.sdk.gmtls import ConsortiumCA, ServerContext, ClientContext
>>> ca = ConsortiumCA.create(organisation="Shancheng")
>>> sign, enc = ca.issue_pair("gateway", role="gateway", dns_names=["gateway"])
>>> server = ServerContext(mode="tlcp", ca=ca.certificate_pem, sign=sign, enc=enc)
>>> client = ClientContext(mode="tlcp", ca=ca.certificate_pem)
>>> # sock = socket.create_connection(("gateway", 8443))
>>> conn = client.wrap(sock, server_name="gateway")  # doctest: +SKIP
>>> conn.protocol, conn.cipher  # doctest: +SKIP
('NTLSv1.1', 'ECC-SM2-SM4-GCM-SM3')

Every failed handshake raises :class:`HandshakeError` with the library's reason in one line.  Blocking sockets use
a context's ``wrap``; asyncio uses :func:`start_server` and :func:`open_connection`; anything else drives a
context's ``session()`` (memory buffers).
"""

from __future__ import annotations

from ._binding import use_library
from .aio import GmTlsStream, open_connection, start_server
from .connection import GmTlsSocket
from .context import MODES, RFC8998_SUITES, TLCP_SUITES, ClientContext, ServerContext
from .credentials import CertifiedKey, load_revocations, load_trust
from .errors import GmTlsError, HandshakeError, TlsLibraryError
from .pki import ROLES, ConsortiumCA
from .session import TlsSession

__all__ = [
    "MODES",
    "RFC8998_SUITES",
    "ROLES",
    "TLCP_SUITES",
    "CertifiedKey",
    "ClientContext",
    "ConsortiumCA",
    "GmTlsError",
    "GmTlsSocket",
    "GmTlsStream",
    "HandshakeError",
    "ServerContext",
    "TlsLibraryError",
    "TlsSession",
    "load_revocations",
    "load_trust",
    "open_connection",
    "start_server",
    "use_library",
]
