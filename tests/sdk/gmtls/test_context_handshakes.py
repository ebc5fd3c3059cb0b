"""TLCP and RFC 8998 handshakes on loopback TCP through the bundled Tongsuo, and the handshakes it must refuse.

Each handshake runs a real server thread and a real client over a socket; the client sends a payload and
reads it back through the server, so both directions of the record layer are exercised.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl

import pytest
from _gmtls_loopback import Side, exchange, gm_client

from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.gmtls import (
    RFC8998_SUITES,
    TLCP_SUITES,
    ClientContext,
    HandshakeError,
    ServerContext,
    load_revocations,
)


def _tlcp_server(pki, *, mutual: bool, sign=None, enc=None) -> ServerContext:
    return ServerContext(mode="tlcp", ca=pki.ca.certificate_pem, sign=sign or pki.gateway_sign,
                         enc=enc or pki.gateway_enc, require_client_certificate=mutual)


def _tls13_server(pki, *, mutual: bool, certificate=None) -> ServerContext:
    return ServerContext(mode="rfc8998", ca=pki.ca.certificate_pem, certificate=certificate or pki.gateway_tls13,
                         require_client_certificate=mutual)


def _server(pki, mode: str, *, who: str = "gateway", mutual: bool = False) -> ServerContext:
    """A server of ``mode`` presenting the certificates of ``who`` (gateway, stranger, expired)."""
    if mode == "tlcp":
        return _tlcp_server(pki, mutual=mutual, sign=getattr(pki, f"{who}_sign"), enc=getattr(pki, f"{who}_enc"))
    return _tls13_server(pki, mutual=mutual, certificate=getattr(pki, f"{who}_tls13"))


def _client(pki, mode: str, *, who: str | None = None) -> ClientContext:
    """A client of ``mode`` trusting the consortium CA, presenting the certificates of ``who`` if given."""
    if who is None:
        return ClientContext(mode=mode, ca=pki.ca.certificate_pem)
    if mode == "tlcp":
        return ClientContext(mode=mode, ca=pki.ca.certificate_pem, sign=getattr(pki, f"{who}_sign"),
                             enc=getattr(pki, f"{who}_enc"))
    return ClientContext(mode=mode, ca=pki.ca.certificate_pem, certificate=getattr(pki, f"{who}_tls13"))


TLCP_CASES = [(suite, mutual) for suite in TLCP_SUITES for mutual in (False, True)
              if mutual or not suite.startswith("ECDHE")]


@pytest.mark.parametrize(("suite", "mutual"), TLCP_CASES, ids=[f"{s}-{'mutual' if m else 'server-auth'}"
                                                              for s, m in TLCP_CASES])
def test_a_tlcp_handshake_negotiates_the_suite_asked_for_and_carries_data_both_ways(pki, suite, mutual):
    client = ClientContext(mode="tlcp", ca=pki.ca.certificate_pem, suites=[suite],
                           **({"sign": pki.member_sign, "enc": pki.member_enc} if mutual else {}))
    payload = os.urandom(3000)
    server, seen = exchange(_tlcp_server(pki, mutual=mutual), gm_client(client, payload), len(payload))
    assert server.error is None and seen.error is None, (server.error, seen.error)
    assert (seen.protocol, seen.cipher) == ("NTLSv1.1", suite)
    assert (server.protocol, server.cipher) == ("NTLSv1.1", suite)
    assert seen.data == payload and server.data == payload
    assert seen.peer_subject == "CN=gateway,OU=gateway,O=Shancheng test"
    assert server.peer_subject == ("CN=member-a,OU=member,O=Shancheng test" if mutual else None)


@pytest.mark.parametrize("suite", RFC8998_SUITES)
@pytest.mark.parametrize("mutual", [False, True], ids=["server-auth", "mutual"])
def test_an_rfc8998_handshake_is_tls13_with_the_sm4_suite_asked_for(pki, suite, mutual):
    client = ClientContext(mode="rfc8998", ca=pki.ca.certificate_pem, suites=[suite],
                           **({"certificate": pki.member_tls13} if mutual else {}))
    payload = b"record over TLS 1.3 " * 100
    server, seen = exchange(_tls13_server(pki, mutual=mutual), gm_client(client, payload), len(payload))
    assert server.error is None and seen.error is None, (server.error, seen.error)
    assert (seen.protocol, seen.cipher) == ("TLSv1.3", suite)
    assert (server.protocol, server.cipher) == ("TLSv1.3", suite)
    assert seen.data == payload
    assert server.peer_subject == ("CN=member-a,OU=member,O=Shancheng test" if mutual else None)


def test_the_server_prefers_its_first_suite_when_the_client_offers_all(pki):
    client = ClientContext(mode="tlcp", ca=pki.ca.certificate_pem, sign=pki.member_sign, enc=pki.member_enc)
    server, seen = exchange(_tlcp_server(pki, mutual=True), gm_client(client, b"x"))
    assert seen.error is None and server.error is None
    assert server.cipher == TLCP_SUITES[0]
    assert seen.cipher == TLCP_SUITES[0]


def test_the_tlcp_peer_certificate_is_the_sign_certificate(pki):
    client = ClientContext(mode="tlcp", ca=pki.ca.certificate_pem)
    seen = {}

    def run(sock: socket.socket) -> Side:
        tls = client.wrap(sock, server_name="gateway")
        seen["certificate"] = tls.peer_certificate()
        tls.sendall(b"x")
        tls.recv(10)
        tls.close()
        return Side()

    server, _ = exchange(_tlcp_server(pki, mutual=False), run)
    assert server.error is None
    assert seen["certificate"] == pki.gateway_sign.certificate


def test_a_client_that_names_no_server_accepts_any_consortium_server(pki):
    """``server_name=None`` is an explicit choice: the chain is still checked against the consortium CA."""
    client = ClientContext(mode="rfc8998", ca=pki.ca.certificate_pem)
    server, seen = exchange(_tls13_server(pki, mutual=False), gm_client(client, b"hi", server_name=None))
    assert seen.error is None and server.error is None
    assert seen.peer_subject == "CN=gateway,OU=gateway,O=Shancheng test"


# -- refusals ---------------------------------------------------------------------------------------------------

def _assert_refused(server: Side, client: Side, *, server_reason: str | None = None, client_reason: str | None = None):
    assert isinstance(client.error, (HandshakeError, ssl.SSLError, ConnectionError)), client.error
    assert isinstance(server.error, HandshakeError), server.error
    assert "\n" not in str(server.error)
    if server_reason:
        assert server_reason in server.error.reason
    if client_reason:
        assert isinstance(client.error, HandshakeError)
        assert client_reason in client.error.reason
        assert client.error.side == "client" and "\n" not in str(client.error)


@pytest.mark.parametrize("mode", ["tlcp", "rfc8998"])
def test_a_server_certificate_from_another_ca_is_refused_by_the_client(pki, mode):
    server, seen = exchange(_server(pki, mode, who="stranger"), gm_client(_client(pki, mode), b"secret"))
    _assert_refused(server, seen, client_reason="unable to get local issuer certificate")
    assert "certificate verify failed" in seen.error.reason


@pytest.mark.parametrize("mode", ["tlcp", "rfc8998"])
def test_a_client_certificate_from_another_ca_is_refused_by_the_server(pki, mode):
    client = _client(pki, mode, who="stranger")
    server, seen = exchange(_server(pki, mode, mutual=True), gm_client(client, b"secret"))
    _assert_refused(server, seen, server_reason="unable to get local issuer certificate")


@pytest.mark.parametrize("mode", ["tlcp", "rfc8998"])
def test_a_missing_client_certificate_is_refused_where_one_is_required(pki, mode):
    server, seen = exchange(_server(pki, mode, mutual=True), gm_client(_client(pki, mode), b"secret"))
    _assert_refused(server, seen, server_reason="peer did not return a certificate")


@pytest.mark.parametrize("mode", ["tlcp", "rfc8998"])
def test_an_expired_server_certificate_is_refused_by_the_client(pki, mode):
    server, seen = exchange(_server(pki, mode, who="expired"), gm_client(_client(pki, mode), b"secret"))
    _assert_refused(server, seen, client_reason="certificate has expired")


def test_an_expired_client_certificate_is_refused_by_the_server(pki):
    client = ClientContext(mode="rfc8998", ca=pki.ca.certificate_pem, certificate=pki.expired_member_tls13)
    server, seen = exchange(_tls13_server(pki, mutual=True), gm_client(client, b"secret"))
    _assert_refused(server, seen, server_reason="certificate has expired")


def test_a_member_systems_certificate_cannot_serve_as_a_server(pki):
    """Member certificates carry clientAuth only: one member cannot pose as the gateway to another."""
    server_ctx = ServerContext(mode="rfc8998", ca=pki.ca.certificate_pem, certificate=pki.member_tls13)
    client = ClientContext(mode="rfc8998", ca=pki.ca.certificate_pem)
    server, seen = exchange(server_ctx, gm_client(client, b"secret", server_name=None))
    _assert_refused(server, seen, client_reason="unsupported certificate purpose")


def test_a_server_whose_certificate_names_another_host_is_refused(pki):
    client = ClientContext(mode="tlcp", ca=pki.ca.certificate_pem)
    server, seen = exchange(_tlcp_server(pki, mutual=False), gm_client(client, b"x", server_name="node7"))
    _assert_refused(server, seen, client_reason="Hostname mismatch")


def _international_client(**options):
    """Python's ssl module (OpenSSL 3): international suites only, the client a GM-only server must turn away."""
    def run(sock: socket.socket) -> Side:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        for name, value in options.items():
            setattr(ctx, name, value)
        with ctx.wrap_socket(sock, server_hostname="gateway") as tls:
            tls.sendall(b"hello")
            return Side(protocol=tls.version(), cipher=tls.cipher()[0], data=tls.recv(100))
    return run


def test_an_international_only_client_is_refused_by_a_tlcp_server(pki):
    server, seen = exchange(_tlcp_server(pki, mutual=False), _international_client())
    _assert_refused(server, seen)
    assert isinstance(seen.error, (ssl.SSLError, ConnectionError))
    assert server.error.reason  # the library's words, e.g. "unsupported protocol"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_an_international_only_client_is_refused_by_an_rfc8998_server(pki, version):
    server, seen = exchange(_tls13_server(pki, mutual=False),
                            _international_client(minimum_version=version, maximum_version=version))
    _assert_refused(server, seen)
    assert isinstance(seen.error, (ssl.SSLError, ConnectionError))


def test_a_peer_that_closes_mid_handshake_gives_a_handshake_error_not_a_hang(pki):
    def hang_up(sock: socket.socket) -> Side:
        sock.sendall(b"\x16\x01\x01\x00\x05")  # the start of a record, then nothing
        sock.shutdown(socket.SHUT_WR)
        return Side(data=sock.recv(100))
    server, seen = exchange(_tlcp_server(pki, mutual=False), hang_up)
    assert isinstance(server.error, HandshakeError)
    assert seen.data == b""  # the server closed without a word: it had nothing to say to half a record
    assert "closed the connection" in server.error.reason


# -- configuration errors ------------------------------------------------------------------------------------------

def test_ecdhe_is_refused_at_configuration_without_client_certificates(pki):
    with pytest.raises(InvalidInput, match="ECDHE needs client certificates"):
        ClientContext(mode="tlcp", ca=pki.ca.certificate_pem, suites=["ECDHE-SM2-SM4-GCM-SM3"])
    with pytest.raises(InvalidInput, match="ECDHE needs client certificates"):
        ServerContext(mode="tlcp", ca=pki.ca.certificate_pem, sign=pki.gateway_sign, enc=pki.gateway_enc,
                      suites=["ECDHE-SM2-SM4-CBC-SM3"])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "tls12"}, "mode must be one of"),
    ({"mode": "tlcp", "suites": ["TLS_AES_128_GCM_SHA256"]}, "suites must be"),
    ({"mode": "tlcp", "suites": []}, "suites must be"),
    ({"mode": "rfc8998", "suites": ["ECC-SM2-SM4-GCM-SM3"]}, "suites must be"),
    ({"mode": "tlcp", "ca": b""}, "holds no CERTIFICATE"),
])
def test_bad_client_configuration_is_refused_with_a_clear_error(pki, kwargs, message):
    options = {"ca": pki.ca.certificate_pem, **kwargs}
    with pytest.raises(InvalidInput, match=message):
        ClientContext(**options)


def test_a_tlcp_server_needs_both_certificates_and_an_rfc8998_server_one(pki):
    with pytest.raises(InvalidInput, match="sign pair and its enc pair"):
        ServerContext(mode="tlcp", ca=pki.ca.certificate_pem, sign=pki.gateway_sign)
    with pytest.raises(InvalidInput, match="certificate pair"):
        ServerContext(mode="rfc8998", ca=pki.ca.certificate_pem)
    with pytest.raises(InvalidInput, match="not sign= / enc="):
        ServerContext(mode="rfc8998", ca=pki.ca.certificate_pem, certificate=pki.gateway_tls13, sign=pki.gateway_sign)


def test_a_server_named_by_ip_address_is_checked_against_the_certificates_ip_entries(pki):
    node_sign, node_enc = pki.ca.issue_pair("node0", role="node", dns_names=["node0"], ip_addresses=["127.0.0.1"])
    server_ctx = ServerContext(mode="tlcp", ca=pki.ca.certificate_pem, sign=node_sign, enc=node_enc)
    client = ClientContext(mode="tlcp", ca=pki.ca.certificate_pem)
    server, seen = exchange(server_ctx, gm_client(client, b"by address", server_name="127.0.0.1"), 10)
    assert server.error is None and seen.error is None
    assert seen.data == b"by address"
    server, seen = exchange(server_ctx, gm_client(client, b"x", server_name="127.0.0.2"))
    _assert_refused(server, seen, client_reason="IP address mismatch")


def test_a_server_name_that_is_not_a_host_name_is_refused(pki):
    client = ClientContext(mode="tlcp", ca=pki.ca.certificate_pem)
    with pytest.raises(InvalidInput, match="server_name"):
        client.session(server_name="bad\nname")


# -- revocation ----------------------------------------------------------------------------------------------------

def _revoke(pki, *pairs, **options) -> bytes:
    now = dt.datetime.now(dt.UTC)
    return pki.ca.revocation_list([(pair.serial, now) for pair in pairs], number=options.pop("number", 1), **options)


@pytest.mark.parametrize("mode", ["tlcp", "rfc8998"])
def test_a_revoked_server_certificate_is_refused_by_a_client_holding_the_crl(pki, mode):
    revoked = pki.gateway_sign if mode == "tlcp" else pki.gateway_tls13
    client = ClientContext(mode=mode, ca=pki.ca.certificate_pem, crl=_revoke(pki, revoked))
    server, seen = exchange(_server(pki, mode), gm_client(client, b"secret"))
    _assert_refused(server, seen, client_reason="certificate revoked")


def test_a_revoked_member_is_refused_by_a_server_holding_the_crl(pki):
    server_ctx = ServerContext(mode="tlcp", ca=pki.ca.certificate_pem, sign=pki.gateway_sign, enc=pki.gateway_enc,
                               require_client_certificate=True, crl=_revoke(pki, pki.member_sign))
    client = ClientContext(mode="tlcp", ca=pki.ca.certificate_pem, sign=pki.member_sign, enc=pki.member_enc)
    server, seen = exchange(server_ctx, gm_client(client, b"secret"))
    _assert_refused(server, seen, server_reason="certificate revoked")


def test_a_crl_that_lists_someone_else_lets_the_peer_through(pki):
    client = ClientContext(mode="tlcp", ca=pki.ca.certificate_pem, crl=_revoke(pki, pki.member_sign))
    server, seen = exchange(_tlcp_server(pki, mutual=False), gm_client(client, b"fine"), 4)
    assert server.error is None and seen.error is None
    assert seen.data == b"fine"


def test_an_outdated_crl_refuses_every_peer_until_a_newer_one_is_loaded(pki):
    stale = _revoke(pki, pki.member_sign, this_update=dt.datetime.now(dt.UTC) - dt.timedelta(days=10), days=3)
    client = ClientContext(mode="rfc8998", ca=pki.ca.certificate_pem, crl=stale)
    server, seen = exchange(_tls13_server(pki, mutual=False), gm_client(client, b"secret"))
    _assert_refused(server, seen, client_reason="CRL has expired")


def test_a_crl_signed_by_another_ca_does_not_count(pki):
    foreign = pki.other_ca.revocation_list([], number=1)
    client = ClientContext(mode="rfc8998", ca=pki.ca.certificate_pem, crl=foreign)
    server, seen = exchange(_tls13_server(pki, mutual=False), gm_client(client, b"secret"))
    _assert_refused(server, seen, client_reason="unable to get certificate CRL")


def test_a_crl_with_a_broken_signature_does_not_count(pki):
    """Tongsuo checks the CRL's SM2 signature (with the distinguishing ID): one flipped bit and it is refused."""
    (der,) = load_revocations(_revoke(pki, pki.member_sign))
    tampered = der[:-1] + bytes([der[-1] ^ 1])  # the last byte of the signature's s
    client = ClientContext(mode="rfc8998", ca=pki.ca.certificate_pem, crl=tampered)
    server, seen = exchange(_tls13_server(pki, mutual=False), gm_client(client, b"secret"))
    _assert_refused(server, seen, client_reason="CRL signature failure")


def test_a_client_that_connects_and_says_nothing_cannot_hold_the_server(pki):
    """The accepted socket has no timeout of its own: the handshake's bounds it, and the server gives up."""
    server_ctx = _tlcp_server(pki, mutual=False)
    listener = socket.create_server(("127.0.0.1", 0))
    with listener, socket.create_connection(listener.getsockname(), timeout=30) as silent:
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.gettimeout() is None
            with pytest.raises(HandshakeError, match="timed out waiting for the peer"):
                server_ctx.wrap(accepted, handshake_timeout=0.2)
            assert accepted.gettimeout() is None  # given back as it was
        assert silent.recv(10) == b""  # the server hung up


def test_a_payload_larger_than_many_records_arrives_whole(pki):
    client = ClientContext(mode="tlcp", ca=pki.ca.certificate_pem, suites=["ECC-SM2-SM4-CBC-SM3"])
    payload = os.urandom(300_000)
    server, seen = exchange(_tlcp_server(pki, mutual=False), gm_client(client, payload), len(payload))
    assert server.error is None and seen.error is None
    assert server.data == payload and seen.data == payload
