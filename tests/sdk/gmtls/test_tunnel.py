"""The node-to-node GM TLS byte tunnel on loopback: two tunnels (node A and node B, mutual TLCP, node certificates of
one CA), a real asyncio "CometBFT" behind A that echoes bytes, and real GM TLS clients for the refusals: a foreign
CA's node certificate, a member (not node) certificate, a revoked node certificate, and a peer whose certificate
does not name it."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.gmtls import (
    CertifiedKey,
    ClientContext,
    ConsortiumCA,
    HandshakeError,
    ServerContext,
    open_connection,
    start_server,
)
from shancheng.sdk.gmtls.tunnel import P2pTlsSettings, P2pTunnel
from shancheng.testing import free_port

PASSWORD = b"tunnel test password"
TIMEOUT = 30


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    folder = tmp_path_factory.mktemp("tunnel-pki")
    ca = ConsortiumCA.create(organisation="Shancheng test")
    (folder / "ca.crt").write_bytes(ca.certificate_pem)
    (folder / "password").write_bytes(PASSWORD + b"\n")
    for name in ("node-a", "node-b"):
        sign, enc = ca.issue_pair(name, role="node", dns_names=[name])
        sign.write(folder / f"{name}-sign.crt", folder / f"{name}-sign.key", PASSWORD)
        enc.write(folder / f"{name}-enc.crt", folder / f"{name}-enc.key", PASSWORD)
    (folder / "ca.crl").write_bytes(ca.revocation_list([], number=1))
    other = ConsortiumCA.create(organisation="Elsewhere")
    return SimpleNamespace(folder=folder, ca=ca, foreign=other.issue_pair("node-c", role="node", dns_names=["node-c"]),
                           member=ca.issue_pair("member-a", role="member"),
                           intruder=ca.issue_pair("node-c", role="node", dns_names=["node-c"]))


def table(name: str, cometbft_port: int, peers: list[dict[str, str]], **overrides: Any) -> dict[str, Any]:
    return {"name": name, "mode": "tlcp", "host": "127.0.0.1", "port": 1, "cometbft": f"127.0.0.1:{cometbft_port}",
            "ca": "ca.crt", "crl": "ca.crl", "sign_cert": f"{name}-sign.crt", "sign_key": f"{name}-sign.key",
            "enc_cert": f"{name}-enc.crt", "enc_key": f"{name}-enc.key", "password_file": "password",
            "handshake_timeout": 5.0, "peers": peers, **overrides}


async def echo_server(seen: list[int]) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(1)
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@dataclass
class Pair:
    """Node A's and node B's tunnels, each before an echo "CometBFT", each the other's one peer."""

    a: P2pTunnel
    b: P2pTunnel
    a_local: int  # where A's CometBFT dials B
    b_local: int  # where B's CometBFT dials A
    seen_by_a: list[int]  # connections A's "CometBFT" received
    seen_by_b: list[int]


def run(pki: SimpleNamespace, test: Callable[[Pair], Awaitable[None]], *, b_peer_name: str = "node-a") -> None:
    async def main() -> None:
        seen_a: list[int] = []
        seen_b: list[int] = []
        echo_a, echo_a_port = await echo_server(seen_a)
        echo_b, echo_b_port = await echo_server(seen_b)
        a_port, b_port, a_local, b_local = (free_port() for _ in range(4))
        a = P2pTunnel(P2pTlsSettings.from_toml(table("node-a", echo_a_port, [
            {"name": "node-b", "address": f"127.0.0.1:{b_port}", "local": f"127.0.0.1:{a_local}"}],
            port=a_port), pki.folder), password=PASSWORD)
        b = P2pTunnel(P2pTlsSettings.from_toml(table("node-b", echo_b_port, [
            {"name": b_peer_name, "address": f"127.0.0.1:{a_port}", "local": f"127.0.0.1:{b_local}"}],
            port=b_port), pki.folder), password=PASSWORD)
        await a.start()
        await b.start()
        try:
            async with asyncio.timeout(TIMEOUT):
                await test(Pair(a, b, a_local, b_local, seen_a, seen_b))
        finally:
            await b.close()
            await a.close()
            echo_a.close()
            echo_b.close()

    asyncio.run(main())


async def echoes(port: int, payload: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A "CometBFT" connection to the loopback port ``port``, checked to carry ``payload`` there and back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    assert await reader.readexactly(len(payload)) == payload
    return reader, writer


def client(pki: SimpleNamespace, pair: tuple[Any, Any]) -> ClientContext:
    return ClientContext(mode="tlcp", ca=pki.ca.certificate_pem, sign=pair[0], enc=pair[1])


def test_bytes_from_cometbft_reach_the_peer_and_back_inside_mutual_tlcp(pki, caplog):
    async def test(t: Pair) -> None:
        _, writer = await echoes(t.b_local, bytes(range(256)) * 1000)  # several records
        writer.close()
        assert t.seen_by_a == [1] and t.seen_by_b == [] and t.a.relayed == 1 and t.b.relayed == 1

    with caplog.at_level(logging.INFO, logger="shancheng.gmtls"):
        run(pki, test)
    text = caplog.text
    assert "outbound to node-a" in text and "NTLSv1.1" in text
    assert "inbound from 127.0.0.1 (CN=node-b,OU=node,O=Shancheng test)" in text


def test_a_peer_is_not_dialled_while_its_connection_to_this_node_is_open(pki):
    async def test(t: Pair) -> None:
        reader, writer = await echoes(t.b_local, b"B dialled A")  # B -> A open
        a_reader, a_writer = await asyncio.open_connection("127.0.0.1", t.a_local)  # A's CometBFT dials B
        assert await a_reader.read() == b""  # closed at once: B's connection to A is open
        a_writer.close()
        assert t.a.crossed == 1 and t.seen_by_b == []
        writer.close()
        await reader.read()

    run(pki, test)


def test_crossed_dials_leave_the_connection_dialled_by_the_node_whose_name_sorts_first(pki):
    async def test(t: Pair) -> None:
        _, a_writer = await echoes(t.a_local, b"A dialled B")  # A -> B open ("node-a" < "node-b")
        b_reader, b_writer = await asyncio.open_connection("127.0.0.1", t.b_local)  # B's CometBFT dials A
        assert await b_reader.read() == b""  # B does not dial: A's connection to it is open
        b_writer.close()
        assert t.b.crossed == 1
        # B's dial had started before A's reached it: A refuses it after the handshake, its own connection wins
        folder = pki.folder
        b_pair = tuple(CertifiedKey.from_files(folder / f"node-b-{u}.crt", folder / f"node-b-{u}.key", PASSWORD)
                       for u in ("sign", "enc"))
        crossed = await open_connection(client(pki, b_pair), "127.0.0.1", t.a.port, server_name="node-a",
                                        handshake_timeout=5)
        assert await crossed.read() == b""
        await crossed.close()
        assert t.a.crossed == 1 and t.seen_by_a == [] and t.seen_by_b == [1]
        a_writer.close()

    run(pki, test)


@pytest.mark.parametrize("who, reason", [
    ("foreign", "certificate verify failed"),
    ("member", "is not a node certificate"),
])
def test_a_peer_without_a_node_certificate_of_the_consortium_is_refused(pki, caplog, who, reason):
    async def test(t: Pair) -> None:
        context = client(pki, getattr(pki, who)) if who == "member" else ClientContext(
            mode="tlcp", ca=pki.ca.certificate_pem, sign=pki.foreign[0], enc=pki.foreign[1])
        try:
            stream = await open_connection(context, "127.0.0.1", t.a.port, server_name="node-a",
                                           handshake_timeout=5)
        except HandshakeError:
            return  # refused in the handshake itself
        assert await stream.read() == b""  # or closed at once after it
        await stream.close()

    with caplog.at_level(logging.INFO, logger="shancheng.gmtls"):
        run(pki, test)
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and "handshake from 127.0.0.1 refused" in refusals[0] and reason in refusals[0]


def test_a_node_certificate_of_the_consortium_that_is_not_a_peer_is_not_relayed(pki, caplog):
    """node-c holds a valid, unrevoked node certificate of the same CA, but A is not configured to meet it: the
    handshake completes (the CA vouches for it) and A closes the connection before CometBFT sees a byte."""
    async def test(t: Pair) -> None:
        stream = await open_connection(client(pki, pki.intruder), "127.0.0.1", t.a.port, server_name="node-a",
                                       handshake_timeout=5)
        assert await stream.read() == b""
        await stream.close()
        assert t.a.relayed == 0 and t.seen_by_a == []

    with caplog.at_level(logging.INFO, logger="shancheng.gmtls"):
        run(pki, test)
    assert "CN=node-c" in caplog.text and "is not one of this node's peers" in caplog.text


def test_a_revoked_node_certificate_is_refused_on_its_next_connection(pki, caplog):
    async def test(t: Pair) -> None:
        context = client(pki, pki.intruder)
        stream = await open_connection(context, "127.0.0.1", t.a.port, server_name="node-a", handshake_timeout=5)
        await stream.close()
        crl = pki.folder / "ca.crl"
        crl.write_bytes(pki.ca.revocation_list([(c.serial, dt.datetime.now(dt.UTC)) for c in pki.intruder], number=2))
        with pytest.raises(HandshakeError):
            again = await open_connection(context, "127.0.0.1", t.a.port, server_name="node-a",
                                          handshake_timeout=5)
            await again.read()
        assert t.a.server_contexts.reloads == 1

    try:
        with caplog.at_level(logging.INFO, logger="shancheng.gmtls"):
            run(pki, test)
    finally:
        (pki.folder / "ca.crl").write_bytes(pki.ca.revocation_list([], number=3))
    assert "certificate revoked" in caplog.text


def test_a_peer_whose_certificate_names_another_node_is_not_relayed_to(pki, caplog):
    async def test(t: Pair) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", t.b_local)
        assert await reader.read() == b""  # B closes CometBFT's connection: A's certificate names node-a
        writer.close()
        assert t.b.relayed == 0 and t.seen_by_a == []

    with caplog.at_level(logging.INFO, logger="shancheng.gmtls"):
        run(pki, test, b_peer_name="node-x")
    assert "handshake with node-x at 127.0.0.1" in caplog.text and "refused" in caplog.text


@pytest.mark.parametrize("role, cn", [("gateway", "node-b"), ("node", "node-c")],
                         ids=["a-gateway-certificate-named-node-b", "node-c-with-node-b-as-a-dns-name"])
def test_a_dialled_peer_whose_certificate_is_not_that_nodes_node_certificate_gets_no_bytes(pki, caplog, role, cn):
    """Outbound, the certificate's DNS name passes the TLS name check, but it is not node-b's node certificate
    (OU=node, CN=node-b): a gateway's, or another node's carrying node-b as a DNS name. A closes CometBFT's
    connection and relays nothing to the impostor."""
    impostor = pki.ca.issue_pair(cn, role=role, dns_names=["node-b"])

    async def main() -> None:
        received: list[bytes] = []

        async def handler(stream: Any) -> None:
            received.append(await stream.read())
            await stream.close()

        server = await start_server(ServerContext(mode="tlcp", ca=pki.ca.certificate_pem, sign=impostor[0],
                                                  enc=impostor[1], require_client_certificate=True),
                                    handler, "127.0.0.1", 0)
        echo, echo_port = await echo_server([])
        local = free_port()
        a = P2pTunnel(P2pTlsSettings.from_toml(table("node-a", echo_port, [
            {"name": "node-b", "address": f"127.0.0.1:{server.sockets[0].getsockname()[1]}",
             "local": f"127.0.0.1:{local}"}], port=free_port()), pki.folder), password=PASSWORD)
        await a.start()
        try:
            async with asyncio.timeout(TIMEOUT):
                reader, writer = await asyncio.open_connection("127.0.0.1", local)
                writer.write(b"cometbft secret connection hello")
                await writer.drain()
                assert await reader.read() == b""  # A closed CometBFT's connection
                writer.close()
                while not received:  # the impostor's end: closed by A after the handshake, no byte relayed
                    await asyncio.sleep(0.05)
                assert received == [b""] and a.relayed == 0
        finally:
            await a.close()
            server.close()
            echo.close()

    with caplog.at_level(logging.INFO, logger="shancheng.gmtls"):
        asyncio.run(main())
    assert "handshake with node-b refused" in caplog.text and "is not its node certificate" in caplog.text


@pytest.mark.parametrize("change, message", [
    ({"cometbft": "10.0.0.1:26656"}, "cometbft must be a loopback address"),
    ({"idle_timeout": 5.0}, "does not take idle_timeout"),
    ({"peers": [{"name": "n", "address": "10.0.0.2:1", "local": "10.0.0.3:2"}]}, "local must be a loopback"),
    ({"peers": [{"name": "n", "address": "nowhere", "local": "127.0.0.1:2"}]}, "must be \"host:port\""),
    ({"mode": "tls12"}, "[p2p_tls] mode must be one of"),
    ({"name": "node-z"}, "[p2p_tls] name 'node-z' is not the CN of this node's certificate"),
])
def test_bad_p2p_tls_tables_are_refused_with_a_clear_message(pki, change, message):
    with pytest.raises(InvalidInput, match=None) as caught:
        P2pTlsSettings.from_toml({**table("node-a", 1, []), **change}, Path(pki.folder))
    assert message in str(caught.value)
