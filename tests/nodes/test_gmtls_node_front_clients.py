"""Clients behind a node's GM TLS front are told apart: the front relays every one of them from loopback, and the
node counts each under the address the front names with its per-process token, not all under 127.0.0.1.

The attack: one GM TLS client spends the rate every other GM TLS client shares, or holds the loopback address's
connection cap. Clients here come from distinct loopback addresses (127.0.0.2, .3, ...: Linux routes all of
127/8 to lo), so the front sees distinct sources; the node has a small rate (burst 10, 1 request/s) and a
per-address connection cap of 2. A loopback client forging the front's headers is still counted as itself.
"""

from __future__ import annotations

import json
import socket
from contextlib import closing

import pytest

from shancheng.sdk.gmtls import ClientContext, GmTlsSocket, HandshakeError
from shancheng.sdk.gmtls.front import PEER_HEADER, TOKEN_HEADER
from shancheng.testing import free_port
from shancheng.testing.cli import shancheng_ok
from shancheng.testing.solo import SoloNode

pytestmark = pytest.mark.network

BURST = 10
PER_ADDRESS = 2
LIMIT_EXCEEDED = -32005


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gmtls-clients")
    pki, password = tmp / "pki", tmp / "ca.password"
    password.write_bytes(b"consortium ca password\n")
    common = ("--dir", str(pki), "--password-file", str(password))
    shancheng_ok("pki", "init-ca", "--org", "Shancheng test", *common)
    shancheng_ok("pki", "issue", "--role", "node", "--name", "node0", "--ip", "127.0.0.1", *common)
    node = SoloNode.init_dev(tmp / "node")
    config = node.home / "config.toml"
    limits = f"requests_per_second = 1.0\nburst = {BURST}\nmax_connections_per_client = {PER_ADDRESS}\n"
    text = config.read_text().replace("[rpc]\n", "[rpc]\n" + limits, 1)
    tls_port, issued = free_port(), pki / "issued"
    config.write_text(text + "\n".join([
        "", "[tls]", 'mode = "tlcp"', f"port = {tls_port}", 'host = "127.0.0.1"', f"ca = {str(pki / 'ca.crt')!r}",
        *(f"{u}_{kind} = {str(issued / f'node0-{u}.{ext}')!r}"
          for u in ("sign", "enc") for kind, ext in (("cert", "crt"), ("key", "key"))),
        f"password_file = {str(password)!r}", ""]))
    node.start()
    try:
        yield node, ClientContext(mode="tlcp", ca=pki / "ca.crt"), tls_port
    finally:
        node.stop()


def _connect(context: ClientContext, port: int, source: str) -> GmTlsSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    return context.wrap(sock, server_name="127.0.0.1")


def _post(conn: GmTlsSocket | socket.socket, headers: str = "") -> tuple[int, dict]:
    """One JSON-RPC eth_chainId on a kept-alive connection: (HTTP status, JSON answer)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    conn.sendall(f"POST / HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n{headers}"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        assert chunk, "the connection closed before an answer"
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(rest) < length:
        rest += conn.recv(4096)
    return int(head.split()[1]), json.loads(rest[:length])


def _limited(answer: dict) -> bool:
    return answer.get("error", {}).get("code") == LIMIT_EXCEEDED


def test_a_gm_tls_client_that_spends_its_rate_leaves_other_gm_tls_clients_theirs(world):
    _, context, port = world
    with closing(_connect(context, port, "127.0.0.2")) as greedy:
        answers = [_post(greedy)[1] for _ in range(BURST + 5)]
    assert sum(map(_limited, answers)) >= 4  # the greedy client met its own limit
    with closing(_connect(context, port, "127.0.0.3")) as other:
        status, answer = _post(other)
    assert status == 200 and "result" in answer, answer  # not "limit exceeded": another client's rate is its own


def test_gm_tls_clients_are_not_held_to_one_loopback_addresss_connection_cap(world):
    _, context, port = world
    sources = [f"127.0.1.{n}" for n in range(1, PER_ADDRESS + 3)]
    conns = [_connect(context, port, source) for source in sources]  # all open at once, one per client
    try:
        answers = [_post(conn) for conn in conns]
    finally:
        for conn in conns:
            conn.close()
    assert [status for status, _ in answers] == [200] * len(sources), answers
    assert all("result" in answer for _, answer in answers), answers


def test_a_loopback_client_forging_the_fronts_headers_is_counted_as_itself(world):
    node, _, _ = world
    host, _, rpc_port = node.url.removeprefix("http://").partition(":")
    with closing(socket.create_connection((host, int(rpc_port)), timeout=30, source_address=("127.0.2.1", 0))) as sock:
        answers = [_post(sock, f"{TOKEN_HEADER}: {'x' * 43}\r\n{PEER_HEADER}: 10.9.9.{n}\r\n")[1]
                   for n in range(BURST + 5)]
    assert sum(map(_limited, answers)) >= 4  # each forged address did not get a bucket of its own


def test_the_front_still_bounds_one_clients_connections(world):
    """The node counts its front's loopback connections only in all; the front's own per-client cap (64 by
    default) still applies to each GM TLS client."""
    _, context, port = world
    conns: list[GmTlsSocket] = []
    try:
        with pytest.raises(HandshakeError):  # the 65th is closed before its handshake
            for _ in range(65):
                conns.append(_connect(context, port, "127.0.3.1"))
        assert len(conns) == 64
    finally:
        for conn in conns:
            conn.close()
