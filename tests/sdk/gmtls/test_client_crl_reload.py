"""The SDK's GM TLS client follows its CRL file as the fronts do: a gateway or relayer runs for months while the CA
re-signs its list every few days (``shancheng pki crl``) and revokes servers (``pki revoke``).  A client that kept
the list it started with would refuse every server once that list expired, and would never learn of a revocation.

Real handshakes on loopback (a server thread, as in test_context_handshakes.py); the CRL file is replaced the way
``shancheng pki`` writes it (a new file moved over the old one).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from _gmtls_loopback import exchange, gm_client

from shancheng.sdk.client import GmTlsClientConfig
from shancheng.sdk.gmtls import HandshakeError, ServerContext


def _server(pki) -> ServerContext:
    return ServerContext(mode="rfc8998", ca=pki.ca.certificate_pem, certificate=pki.gateway_tls13)


def _publish(path: Path, crl: bytes) -> None:
    staged = path.with_suffix(".new")
    staged.write_bytes(crl)
    os.replace(staged, path)


def _handshake_error(pki, config: GmTlsClientConfig) -> str | None:
    """None when the client completed a handshake with the gateway and got its echo, else the client's reason."""
    server, seen = exchange(_server(pki), gm_client(config.context, b"ping"), 4)
    if seen.error is None:
        assert seen.data == b"ping" and server.error is None, server.error
        return None
    assert isinstance(seen.error, HandshakeError), seen.error
    return seen.error.reason


def test_a_client_refuses_a_server_revoked_after_it_started(pki, tmp_path):
    crl = tmp_path / "ca.crl"
    _publish(crl, pki.ca.revocation_list([], number=1))
    config = GmTlsClientConfig(ca=pki.ca.certificate_pem, mode="rfc8998", crl=crl)
    assert _handshake_error(pki, config) is None
    _publish(crl, pki.ca.revocation_list([(pki.gateway_tls13.serial, dt.datetime.now(dt.UTC))], number=2))
    assert "certificate revoked" in (_handshake_error(pki, config) or "")


def test_a_client_whose_crl_expired_reaches_servers_again_once_the_ca_re_signs_it(pki, tmp_path):
    crl = tmp_path / "ca.crl"
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    _publish(crl, pki.ca.revocation_list([], number=1, this_update=past, days=7))
    config = GmTlsClientConfig(ca=pki.ca.certificate_pem, mode="rfc8998", crl=crl)
    assert "CRL has expired" in (_handshake_error(pki, config) or "")
    _publish(crl, pki.ca.revocation_list([], number=2))
    assert _handshake_error(pki, config) is None


def test_an_unreadable_crl_update_keeps_the_list_the_client_had(pki, tmp_path):
    crl = tmp_path / "ca.crl"
    _publish(crl, pki.ca.revocation_list([(pki.gateway_tls13.serial, dt.datetime.now(dt.UTC))], number=1))
    config = GmTlsClientConfig(ca=pki.ca.certificate_pem, mode="rfc8998", crl=crl)
    assert "certificate revoked" in (_handshake_error(pki, config) or "")
    _publish(crl, b"-----BEGIN X509 CRL-----\nbroken\n-----END X509 CRL-----\n")
    assert "certificate revoked" in (_handshake_error(pki, config) or "")  # not "no CRL": still the revoked list
