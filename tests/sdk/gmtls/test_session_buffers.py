"""A TLS session over memory buffers (the shape an asyncio server needs): two sessions talk by handing bytes
across, with no socket at all."""

from __future__ import annotations

import pytest

from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.gmtls import ClientContext, GmTlsError, HandshakeError, ServerContext, TlsSession


def _pump(client: TlsSession, server: TlsSession) -> int:
    """Run both handshakes to the end by moving bytes; returns the number of flights."""
    flights = 0
    while not (client.do_handshake() & server.do_handshake()):
        moved = False
        for src, dst in ((client, server), (server, client)):
            data = src.outgoing()
            if data:
                dst.receive(data)
                moved = True
        flights += 1
        assert moved and flights < 20, "the handshake stalled"
    for src, dst in ((client, server), (server, client)):  # the last flight (e.g. Finished)
        dst.receive(src.outgoing())
    return flights


@pytest.mark.parametrize("mode", ["tlcp", "rfc8998"])
def test_two_sessions_complete_a_handshake_and_exchange_data_through_memory(pki, mode):
    if mode == "tlcp":
        server_ctx = ServerContext(mode="tlcp", ca=pki.ca.certificate_pem, sign=pki.gateway_sign, enc=pki.gateway_enc)
    else:
        server_ctx = ServerContext(mode="rfc8998", ca=pki.ca.certificate_pem, certificate=pki.gateway_tls13)
    client = ClientContext(mode=mode, ca=pki.ca.certificate_pem).session(server_name="gateway")
    server = server_ctx.session()
    _pump(client, server)
    assert client.protocol == server.protocol == ("NTLSv1.1" if mode == "tlcp" else "TLSv1.3")
    client.write(b"anchor this")
    server.receive(client.outgoing())
    assert server.read(100) == b"anchor this"
    assert server.read(100) is None  # nothing more yet: wait for the peer
    server.write(b"ok")
    client.receive(server.outgoing())
    assert client.read(100) == b"ok"
    client.close()
    server.receive(client.outgoing())
    assert server.read(100) == b""  # close_notify


def test_reading_or_writing_before_the_handshake_is_an_error(pki):
    session = ClientContext(mode="tlcp", ca=pki.ca.certificate_pem).session()
    with pytest.raises(GmTlsError, match="has not completed"):
        session.write(b"too early")
    with pytest.raises(GmTlsError, match="has not completed"):
        session.read(10)


def test_a_read_size_out_of_bounds_is_refused(pki):
    session = ClientContext(mode="tlcp", ca=pki.ca.certificate_pem).session()
    with pytest.raises(InvalidInput, match="read size"):
        session.read(0)


def _tlcp_server_session(pki) -> TlsSession:
    return ServerContext(mode="tlcp", ca=pki.ca.certificate_pem, sign=pki.gateway_sign, enc=pki.gateway_enc).session()


def test_plain_http_sent_to_a_gm_tls_port_fails_the_handshake_with_the_librarys_reason(pki):
    server = _tlcp_server_session(pki)
    server.receive(b"GET / HTTP/1.1\r\nHost: gateway\r\n\r\n")
    with pytest.raises(HandshakeError) as caught:
        server.do_handshake()
    assert caught.value.reason == "http request"
    assert caught.value.diagnostics() == {"reason": "http request", "side": "server"}
    assert str(caught.value) == "GM TLS handshake failed (server): http request"


def test_a_malformed_handshake_record_is_answered_with_an_alert(pki):
    server = _tlcp_server_session(pki)
    server.receive(b"\x16\x03\x01\x00\x05hello")
    with pytest.raises(HandshakeError, match="unexpected message"):
        server.do_handshake()
    alert = server.outgoing()
    assert alert[:1] == b"\x15" and alert[-2] == 2  # an alert record, level fatal
