"""The GM TLS front's relay on loopback: a real asyncio HTTP upstream that answers with what it received, and GM TLS
clients (TLCP and RFC 8998) on real sockets.

Covers: requests kept alive over one connection with their bodies, the front's headers stripped from what clients
send and added (subject, address, token) only when the front has a token, chunked bodies and oversized heads
refused, WebSocket-style upgrades relayed both ways, the per-client connection bound, a silent peer dropped after
the handshake timeout, and a CRL change taking effect on the next connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.gmtls import ClientContext, ConsortiumCA, GmTlsStream, HandshakeError, open_connection
from shancheng.sdk.gmtls.front import GmTlsFront, TlsFrontSettings

PASSWORD = b"front test password"
TIMEOUT = 30


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    folder = tmp_path_factory.mktemp("front-pki")
    ca = ConsortiumCA.create(organisation="Shancheng test")
    (folder / "ca.crt").write_bytes(ca.certificate_pem)
    (folder / "password").write_bytes(PASSWORD + b"\n")
    sign, enc = ca.issue_pair("front", role="node", ip_addresses=["127.0.0.1"])
    sign.write(folder / "sign.crt", folder / "sign.key", PASSWORD)
    enc.write(folder / "enc.crt", folder / "enc.key", PASSWORD)
    member_sign, member_enc = ca.issue_pair("member-a", role="member")
    (folder / "ca.crl").write_bytes(ca.revocation_list([], number=1))
    return SimpleNamespace(folder=folder, ca=ca, member_sign=member_sign, member_enc=member_enc,
                           tls13=ca.issue("front", role="node", usage="sign", ip_addresses=["127.0.0.1"]))


def settings(pki: SimpleNamespace, **overrides: Any) -> TlsFrontSettings:
    f = pki.folder
    section = {"mode": "tlcp", "port": 1, "host": "127.0.0.1", "ca": "ca.crt", "crl": "ca.crl",
               "sign_cert": "sign.crt", "sign_key": "sign.key", "enc_cert": "enc.crt", "enc_key": "enc.key",
               "password_file": "password", **overrides}
    return TlsFrontSettings.from_toml(section, f)


async def upstream_server() -> tuple[asyncio.Server, int]:
    """HTTP/1.1 that answers each request with JSON of its request line, headers and body (kept alive); an
    ``Upgrade`` request gets 101 and then an echo of every byte."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")[:-2]
                headers = [line.split(": ", 1) for line in lines[1:]]
                length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
                body = await reader.readexactly(length)
                if any(k.lower() == "upgrade" for k, _ in headers):
                    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n\r\n")
                    while data := await reader.read(4096):
                        writer.write(data)
                    return
                answer = json.dumps({"line": lines[0], "headers": headers, "body": body.decode()}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(answer) + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def read_answer(stream: GmTlsStream) -> tuple[bytes, bytes]:
    """One HTTP answer (head, body by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.read()
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(
        b"content-length")), 0)
    while len(body) < length:
        body += await stream.read()
    return head, body


def run(pki: SimpleNamespace, test: Callable[[GmTlsFront, ClientContext], Awaitable[None]], *,
        token: str | None = None, **overrides: Any) -> None:
    async def main() -> None:
        upstream, port = await upstream_server()
        front = GmTlsFront(settings(pki, **overrides), upstream=("127.0.0.1", port), password=PASSWORD, port=0,
                           relay_token=token)
        await front.start()
        client = ClientContext(mode="tlcp", ca=pki.ca.certificate_pem, sign=pki.member_sign, enc=pki.member_enc)
        try:
            async with asyncio.timeout(TIMEOUT):
                await test(front, client)
        finally:
            await front.close()
            upstream.close()

    asyncio.run(main())


def connect(front: GmTlsFront, client: ClientContext) -> Awaitable[GmTlsStream]:
    return open_connection(client, "127.0.0.1", front.port, server_name="127.0.0.1")


def test_kept_alive_requests_reach_the_upstream_with_their_bodies_and_the_front_headers(pki):
    async def test(front: GmTlsFront, client: ClientContext) -> None:
        stream = await connect(front, client)
        for n in range(2):
            body = json.dumps({"n": n}).encode()
            await stream.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                               b"X-Shancheng-Tls-Subject: CN=mallory\r\nX-Shancheng-Relay-Token: guess\r\n\r\n"
                               % len(body) + body)
            head, answer = await read_answer(stream)
            seen = json.loads(answer)
            assert head.startswith(b"HTTP/1.1 200") and seen["body"] == body.decode()
            headers = {k: v for k, v in seen["headers"]}
            assert headers["X-Shancheng-Relay-Token"] == "the-token"
            assert headers["X-Shancheng-Tls-Subject"] == "CN=member-a,OU=member,O=Shancheng test"
            assert headers["X-Shancheng-Tls-Peer"] == "127.0.0.1"
            assert [k for k, _ in seen["headers"]].count("X-Shancheng-Tls-Subject") == 1
        await stream.close()

    run(pki, test, token="the-token", require_client_certificate=True)


def test_without_a_token_the_front_headers_are_only_stripped(pki):
    async def test(front: GmTlsFront, client: ClientContext) -> None:
        stream = await connect(front, client)
        await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\nx-shancheng-tls-subject: CN=mallory\r\n\r\n")
        _, answer = await read_answer(stream)
        assert not any(k.lower().startswith("x-shancheng") for k, _ in json.loads(answer)["headers"])
        await stream.close()

    run(pki, test)


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"411"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n", b"431"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", b"400"),
])
def test_chunked_bodies_oversized_heads_and_bad_lengths_are_refused(pki, request_bytes, status):
    async def test(front: GmTlsFront, client: ClientContext) -> None:
        stream = await connect(front, client)
        await stream.write(request_bytes)
        head, _ = await read_answer(stream)
        assert head.split(b" ")[1] == status
        assert await stream.read() == b""  # and the connection is closed
        await stream.close()

    run(pki, test, max_header_bytes=4096)


def test_an_upgraded_connection_is_relayed_both_ways(pki):
    async def test(front: GmTlsFront, client: ClientContext) -> None:
        stream = await connect(front, client)
        await stream.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.read()
        assert data.startswith(b"HTTP/1.1 101")
        rest = data.split(b"\r\n\r\n", 1)[1]
        await stream.write(b"\x81\x05hello")
        while len(rest) < 7:
            rest += await stream.read()
        assert rest == b"\x81\x05hello"
        await stream.close()

    run(pki, test)


def test_connections_beyond_the_per_client_bound_are_closed_before_a_handshake(pki):
    async def test(front: GmTlsFront, client: ClientContext) -> None:
        first = await connect(front, client)
        with pytest.raises(HandshakeError):
            await connect(front, client)
        await first.close()

    run(pki, test, max_connections_per_client=1)


def test_a_peer_that_says_nothing_is_dropped_after_the_handshake_timeout(pki):
    async def test(front: GmTlsFront, client: ClientContext) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", front.port)
        assert await reader.read() == b""  # the front closed it without a word
        writer.close()

    run(pki, test, handshake_timeout=0.5)


def test_a_crl_that_lists_the_client_refuses_its_next_connection(pki, tmp_path):
    crl = tmp_path / "ca.crl"
    crl.write_bytes(pki.ca.revocation_list([], number=1))

    async def test(front: GmTlsFront, client: ClientContext) -> None:
        stream = await connect(front, client)
        await stream.close()
        now = dt.datetime.now(dt.UTC)
        crl.write_bytes(pki.ca.revocation_list([(pki.member_sign.serial, now), (pki.member_enc.serial, now)],
                                               number=2))
        with pytest.raises(HandshakeError):
            stream = await connect(front, client)
            await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await read_answer(stream)
        assert front.contexts.reloads == 1

    run(pki, test, crl=str(crl), require_client_certificate=True)


def test_a_crl_change_remakes_the_context_from_the_keys_decrypted_at_start(pki, tmp_path):
    """The key files are read (and their KDF run) once: a CRL change remakes the context on the event loop without
    decrypting eight keys again, so it works even when the key files are gone by then (moved to a vault)."""
    keys = {}
    for use in ("sign", "enc"):
        keys[f"{use}_key"] = tmp_path / f"{use}.key"
        keys[f"{use}_key"].write_bytes((pki.folder / f"{use}.key").read_bytes())
    crl = tmp_path / "ca.crl"
    crl.write_bytes(pki.ca.revocation_list([], number=1))

    async def test(front: GmTlsFront, client: ClientContext) -> None:
        await (await connect(front, client)).close()
        for key in keys.values():
            key.unlink()
        now = dt.datetime.now(dt.UTC)
        crl.write_bytes(pki.ca.revocation_list([(pki.member_sign.serial, now)], number=2))
        with pytest.raises(HandshakeError):
            stream = await connect(front, client)
            await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await read_answer(stream)
        assert front.contexts.reloads == 1

    run(pki, test, crl=str(crl), require_client_certificate=True, **{k: str(v) for k, v in keys.items()})


def test_rfc8998_is_served_with_one_certificate(pki, tmp_path):
    pki.tls13.write(tmp_path / "tls13.crt", tmp_path / "tls13.key", PASSWORD)

    async def main() -> None:
        upstream, port = await upstream_server()
        front = GmTlsFront(settings(pki, mode="rfc8998", cert=str(tmp_path / "tls13.crt"),
                                    key=str(tmp_path / "tls13.key")),
                           upstream=("127.0.0.1", port), password=PASSWORD, port=0)
        await front.start()
        try:
            client = ClientContext(mode="rfc8998", ca=pki.ca.certificate_pem)
            stream = await open_connection(client, "127.0.0.1", front.port, server_name="127.0.0.1")
            assert stream.protocol == "TLSv1.3" and stream.cipher == "TLS_SM4_GCM_SM3"
            await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head, _ = await read_answer(stream)
            assert head.startswith(b"HTTP/1.1 200")
            await stream.close()
        finally:
            await front.close()
            upstream.close()

    asyncio.run(main())


@pytest.mark.parametrize(("section", "message"), [
    ({"mode": "tls12"}, "mode must be one of"),
    ({"sign_cert": None}, "needs sign_cert"),
    ({"port": 70000}, "port must be"),
    ({"colour": "blue"}, "unknown settings"),
    ({"handshake_timeout": 0}, "handshake_timeout"),
])
def test_bad_tls_sections_get_one_line_errors(pki, section, message):
    values: dict[str, Any] = {"mode": "tlcp", "port": 8443, "ca": "ca.crt", "sign_cert": "a", "sign_key": "b",
                              "enc_cert": "c", "enc_key": "d", **section}
    values = {k: v for k, v in values.items() if v is not None}
    with pytest.raises(InvalidInput, match=message):
        TlsFrontSettings.from_toml(values, Path("/"))


def test_a_front_never_relays_off_loopback(pki):
    with pytest.raises(InvalidInput, match="loopback"):
        GmTlsFront(settings(pki), upstream=("10.0.0.1", 80), password=PASSWORD)
