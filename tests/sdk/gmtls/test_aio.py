"""GM TLS on asyncio streams: a server that hands completed connections to its handler, clients that connect
concurrently, and handshakes refused without the handler ever seeing them."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shancheng.sdk.gmtls import (
    ClientContext,
    GmTlsStream,
    HandshakeError,
    ServerContext,
    open_connection,
    start_server,
)


def _server_context(pki, **options) -> ServerContext:
    return ServerContext(mode="tlcp", ca=pki.ca.certificate_pem, sign=pki.gateway_sign, enc=pki.gateway_enc,
                         **options)


async def _echo_server(context, seen: list):
    async def handle(stream: GmTlsStream) -> None:
        seen.append((stream.protocol, stream.cipher, stream.peer_subject))
        data = await stream.read()
        await stream.write(data.upper())
        await stream.close()

    return await start_server(context, handle, "127.0.0.1", 0, handshake_timeout=20)


async def _ask(client, port: int, message: bytes) -> tuple[str, str, bytes]:
    stream = await open_connection(client, "127.0.0.1", port, server_name="gateway", handshake_timeout=20)
    await stream.write(message)
    reply = b""
    while len(reply) < len(message):
        chunk = await stream.read()
        if not chunk:
            break
        reply += chunk
    await stream.close()
    return stream.protocol, stream.cipher, reply


def test_concurrent_clients_each_complete_a_handshake_and_get_their_answer(pki):
    client = ClientContext(mode="tlcp", ca=pki.ca.certificate_pem, sign=pki.member_sign, enc=pki.member_enc)
    seen: list = []

    async def main():
        server = await _echo_server(_server_context(pki, require_client_certificate=True), seen)
        async with server:
            port = server.sockets[0].getsockname()[1]
            return await asyncio.gather(*(_ask(client, port, f"record {i}".encode()) for i in range(8)))

    answers = asyncio.run(main())
    assert sorted(reply for *_, reply in answers) == sorted(f"RECORD {i}".encode() for i in range(8))
    assert {(protocol, cipher) for protocol, cipher, _ in answers} == {("NTLSv1.1", "ECC-SM2-SM4-GCM-SM3")}
    assert len(seen) == 8 and {subject for *_, subject in seen} == {"CN=member-a,OU=member,O=Shancheng test"}


def test_an_rfc8998_connection_works_the_same_way(pki):
    server_ctx = ServerContext(mode="rfc8998", ca=pki.ca.certificate_pem, certificate=pki.gateway_tls13)
    client = ClientContext(mode="rfc8998", ca=pki.ca.certificate_pem)
    seen: list = []

    async def main():
        async with await _echo_server(server_ctx, seen) as server:
            return await _ask(client, server.sockets[0].getsockname()[1], b"tls 1.3")

    assert asyncio.run(main()) == ("TLSv1.3", "TLS_SM4_GCM_SM3", b"TLS 1.3")


def test_a_refused_handshake_is_logged_and_never_reaches_the_handler(pki, caplog):
    client = ClientContext(mode="tlcp", ca=pki.ca.certificate_pem)  # no certificate, but the server requires one
    seen: list = []

    async def main():
        async with await _echo_server(_server_context(pki, require_client_certificate=True), seen) as server:
            with pytest.raises(HandshakeError) as caught:
                await _ask(client, server.sockets[0].getsockname()[1], b"let me in")
            return caught.value

    with caplog.at_level(logging.INFO, logger="shancheng.gmtls"):
        error = asyncio.run(main())
    assert error.side == "client"
    assert seen == []
    assert any("peer did not return a certificate" in r.getMessage() for r in caplog.records), caplog.text


def test_a_client_that_cannot_connect_gets_a_handshake_error(pki):
    client = ClientContext(mode="tlcp", ca=pki.ca.certificate_pem)

    async def main():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        await open_connection(client, "127.0.0.1", port, server_name="gateway")

    with pytest.raises(HandshakeError, match="cannot connect"):
        asyncio.run(main())
