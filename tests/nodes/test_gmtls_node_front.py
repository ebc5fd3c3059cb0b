"""A dev node's JSON-RPC behind its GM TLS front ([tls] in config.toml), with certificates from `shancheng pki`.

The SDK anchors a record and verifies it over TLCP with mutual authentication; a client without a certificate, one
of another CA, and an international-only (OpenSSL) client are refused; a member certificate revoked with
`shancheng pki revoke` is refused on its next connection (the front reloads the CRL when the file changes); a
plain listener off loopback is refused at start-up while [tls] is set.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from shancheng.sdk import Client
from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.client import GmTlsClientConfig, NodeUnavailable, RpcClient
from shancheng.sdk.evidence import verify_package
from shancheng.sdk.gmtls import CertifiedKey, ConsortiumCA
from shancheng.testing import free_port
from shancheng.testing.cli import shancheng_ok
from shancheng.testing.solo import SoloNode

pytestmark = pytest.mark.network

CA_PASSWORD = b"consortium ca password"




class Pki:
    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "pki"
        self.password_file = tmp / "ca.password"
        self.password_file.write_bytes(CA_PASSWORD + b"\n")
        self.common = ("--dir", str(self.dir), "--password-file", str(self.password_file))
        shancheng_ok("pki", "init-ca", "--org", "Shancheng test", *self.common)
        shancheng_ok("pki", "issue", "--role", "node", "--name", "node0", "--ip", "127.0.0.1", *self.common)
        self.serials: dict[str, list[str]] = {}
        for name in ("member-a", "member-b"):
            out = shancheng_ok("pki", "issue", "--role", "member", "--name", name, *self.common)
            self.serials[name] = [line.split()[1] for line in out.splitlines()]

    def pair(self, name: str) -> tuple[CertifiedKey, CertifiedKey]:
        issued = self.dir / "issued"
        sign, enc = (CertifiedKey.from_files(issued / f"{name}-{u}.crt", issued / f"{name}-{u}.key", CA_PASSWORD)
                     for u in ("sign", "enc"))
        return sign, enc

    def client(self, name: str | None) -> GmTlsClientConfig:
        return GmTlsClientConfig(ca=self.dir / "ca.crt", mode="tlcp",
                                 certificate=self.pair(name) if name else None)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gmtls-node")
    authority = Pki(tmp)
    node = SoloNode.init_dev(tmp / "node")
    tls_port, ws_tls_port = free_port(), free_port()
    issued = authority.dir / "issued"
    with open(node.home / "config.toml", "a") as config:
        config.write(f"""
[tls]
mode = "tlcp"
port = {tls_port}
ws_port = {ws_tls_port}
host = "127.0.0.1"
ca = "{authority.dir / 'ca.crt'}"
crl = "{authority.dir / 'ca.crl'}"
sign_cert = "{issued / 'node0-sign.crt'}"
sign_key = "{issued / 'node0-sign.key'}"
enc_cert = "{issued / 'node0-enc.crt'}"
enc_key = "{issued / 'node0-enc.key'}"
password_file = "{authority.password_file}"
require_client_certificate = true
""")
    node.start()
    try:
        node.ws_tls_port = ws_tls_port  # type: ignore[attr-defined]
        yield node, authority, f"https+gm://127.0.0.1:{tls_port}", tls_port, tmp
    finally:
        node.stop()


def test_the_sdk_anchors_and_verifies_a_record_over_tlcp_with_mutual_authentication(world):
    node, authority, url, _, tmp = world
    identity = node.identity("hospital", tmp / "keys")
    client = Client.connect(url, identity=identity, genesis=node.genesis_path, tls=authority.client("member-a"))
    with client.batcher(store=f"sqlite:///{tmp / 'evidence.db'}", origin="hospital.example/log/tls",
                        max_age=0.1) as batcher:
        record = {"hosp_rxno": "RX-TLS-1", "drug": "阿莫西林胶囊"}
        rid = batcher.add(record, kind="prescription")
        batcher.flush(timeout=60)
        package = batcher.evidence_package(rid)
    result = verify_package(package.dumps(), genesis=GenesisFile.load(node.genesis_path), record=record,
                            salt=batcher.salt(rid))
    assert result.record_checked and result.anchor is not None and result.anchor.org.name == "hospital"
    connection = client.rpc._connection(0)  # the connection the calls went over: GM TLS, TLCP
    assert connection.peer is not None and connection.peer.protocol == "NTLSv1.1"
    assert connection.peer.peer_subject == "CN=node0,OU=node,O=Shancheng test"


def test_the_websocket_api_answers_through_its_own_gm_tls_port(world):
    node, authority, _, _, _ = world
    context = authority.client("member-a").context
    with context.wrap(socket.create_connection(("127.0.0.1", node.ws_tls_port), timeout=30),
                      server_name="127.0.0.1") as tls:
        key = base64.b64encode(os.urandom(16)).decode()
        tls.sendall(f"GET / HTTP/1.1\r\nHost: node\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += tls.recv(4096)
        head, data = data.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101")
        payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
        mask = os.urandom(4)
        tls.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        while len(data) < 2 or len(data) < 2 + (data[1] & 0x7F):
            data += tls.recv(4096)
        assert data[0] == 0x81 and data[1] & 0x7F < 126
        reply = json.loads(data[2 : 2 + data[1]])
        assert reply["id"] == 1 and int(reply["result"], 16) > 0


def test_a_client_without_a_certificate_is_refused_where_one_is_required(world):
    _, authority, url, _, _ = world
    with pytest.raises(NodeUnavailable, match="handshake failed"):
        RpcClient(url, timeout=10, tls=authority.client(None)).call("eth_blockNumber")


def test_a_server_certificate_of_another_ca_is_refused_by_the_sdk(world, tmp_path):
    _, authority, url, _, _ = world
    other = tmp_path / "other-ca.crt"
    other.write_bytes(ConsortiumCA.create(organisation="Elsewhere").certificate_pem)
    tls = GmTlsClientConfig(ca=other, mode="tlcp", certificate=authority.pair("member-a"))
    with pytest.raises(NodeUnavailable, match="certificate verify failed"):
        RpcClient(url, timeout=10, tls=tls).call("eth_blockNumber")


def test_an_international_only_tls_client_is_refused(world):
    _, _, _, port, _ = world
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, \
            pytest.raises((ssl.SSLError, ConnectionResetError)), \
            context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        tls.recv(100)


def test_a_revoked_member_certificate_is_refused_once_the_crl_file_changes(world):
    _, authority, url, _, _ = world
    rpc = RpcClient(url, timeout=10, tls=authority.client("member-b"))
    assert int(rpc.call("eth_chainId"), 16) > 0
    rpc.close()
    shancheng_ok("pki", "revoke", *authority.serials["member-b"], *authority.common)
    listed = json.loads(shancheng_ok("pki", "list", "--json", "--dir", str(authority.dir)))["certificates"]
    assert {c["serial"] for c in listed if c["state"] == "revoked"} == set(authority.serials["member-b"])
    with pytest.raises(NodeUnavailable, match="handshake failed"):
        RpcClient(url, timeout=10, tls=authority.client("member-b")).call("eth_chainId")
    # another member is still served under the new list
    assert int(RpcClient(url, timeout=10, tls=authority.client("member-a")).call("eth_chainId"), 16) > 0


def test_tls_options_with_a_plain_url_are_refused_so_nothing_goes_out_in_the_clear(world):
    node, authority, _, _, _ = world
    with pytest.raises(ValueError, match="no node URL is https\\+gm"):
        RpcClient(node.url, tls=authority.client(None))
    with pytest.raises(ValueError, match="pass tls="):
        RpcClient("https+gm://127.0.0.1:1")


def test_a_plain_listener_off_loopback_is_refused_while_tls_is_set(world, tmp_path):
    node, _, _, _, _ = world
    home = tmp_path / "home"
    subprocess.run([sys.executable, "-m", "shancheng.sdk.cli", "node", "init", "--dev", "--home", str(home)],
                   check=True, capture_output=True, timeout=120)
    text = (node.home / "config.toml").read_text()
    tls = text[text.index("\n[tls]"):]
    (home / "config.toml").write_text((home / "config.toml").read_text().replace('host = "127.0.0.1"',
                                                                                 'host = "0.0.0.0"', 1) + tls)
    out = subprocess.run([sys.executable, "-m", "shancheng.sdk.cli", "node", "start", "--home", str(home),
                          "--rpc-port", str(free_port()), "--ws-port", str(free_port())],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr  # a configuration error
    assert "must be loopback" in out.stderr
