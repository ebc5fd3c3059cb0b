"""`shancheng gateway serve` with a [tls] section: the API over TLCP (mutual authentication), the client
certificate's subject in the audit log, and no belief in the front's headers from anyone but the front.

The gateway runs as its own process (as deployed), certificates come from `shancheng pki`, and a member system is
the SDK's GM TLS HTTP connection with the member's double certificate.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from shancheng.sdk.client import GmTlsClientConfig
from shancheng.sdk.gmtls import CertifiedKey
from shancheng.testing import free_port
from shancheng.testing.cli import shancheng_ok
from shancheng.testing.gateway import GatewayWorld
from shancheng.testing.solo import PASSWORD, SoloNode

pytestmark = pytest.mark.network

MEMBER = "CN=member-a,OU=member,O=Shancheng test"




class Gateway:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.node = SoloNode.init_dev(tmp / "node")
        self.proc: subprocess.Popen[bytes] | None = None
        self.plain = httpx.Client(timeout=60)

    def start(self) -> None:
        tmp = self.tmp
        self.node.start()
        folder = tmp / "gateway"
        settings = GatewayWorld.settings_for(folder, self.node)  # the organisation's key files and password file
        self.pki = tmp / "pki"
        common = ("--dir", str(self.pki), "--password-file", str(settings.password_file))
        shancheng_ok("pki", "init-ca", "--org", "Shancheng test", *common)
        shancheng_ok("pki", "issue", "--role", "gateway", "--name", "gateway", "--ip", "127.0.0.1", *common)
        shancheng_ok("pki", "issue", "--role", "member", "--name", "member-a", *common)
        issued = self.pki / "issued"
        self.port, self.tls_port = free_port(), free_port()
        self.config = folder / "gateway.toml"
        self.log = folder / "gateway.log"
        self.config.write_text("\n".join([
            f"data_dir = {str(folder / 'data')!r}", f"node_urls = [{self.node.url!r}]",
            f"genesis = {str(self.node.genesis_path)!r}", 'org = "hospital"',
            f"sm2_key = {str(settings.sm2_key)!r}", f"eth_key = {str(settings.eth_key)!r}",
            f"password_file = {str(settings.password_file)!r}", f"evidence_origin = {settings.evidence_origin!r}",
            "batch_max_age = 0.2", "", "[tls]", 'mode = "tlcp"', 'host = "127.0.0.1"', f"port = {self.tls_port}",
            f"ca = {str(self.pki / 'ca.crt')!r}", f"crl = {str(self.pki / 'ca.crl')!r}",
            *(f"{u}_{kind} = {str(issued / f'gateway-{u}.{ext}')!r}"
              for u in ("sign", "enc") for kind, ext in (("cert", "crt"), ("key", "key"))),
            "require_client_certificate = true", "",
        ]))
        self.token = json.loads(shancheng_ok("gateway", "token", "create", "--config", str(self.config), "--subject",
                                    "au-wang", "--role", "auditor", "--json"))["token"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shancheng.sdk.cli", "gateway", "serve", "--config", str(self.config),
             "--port", str(self.port)], stdout=subprocess.DEVNULL, stderr=self.log.open("wb"))
        self.plain = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60,
                                  headers={"Authorization": f"Bearer {self.token}"})
        deadline = time.monotonic() + 120
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if self.plain.get("/api/v1/me").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the gateway did not start within 120 s"
            time.sleep(0.1)

    def member_tls(self) -> GmTlsClientConfig:
        issued = self.pki / "issued"
        sign, enc = (CertifiedKey.from_files(issued / f"member-a-{u}.crt", issued / f"member-a-{u}.key", PASSWORD)
                     for u in ("sign", "enc"))
        return GmTlsClientConfig(ca=self.pki / "ca.crt", mode="tlcp", certificate=(sign, enc))

    def over_tls(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        conn = self.member_tls().connection("127.0.0.1", self.tls_port, timeout=60)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {self.token}", **(headers or {})})
            reply = conn.getresponse()
            status, body = reply.status, reply.read()
            assert conn.peer is not None and conn.peer.protocol == "NTLSv1.1"
            return status, body
        finally:
            conn.close()

    def entry(self, target: str) -> dict[str, Any]:
        reply = self.plain.get("/api/v1/audit", params={"limit": "200"})
        assert reply.status_code == 200, reply.text
        found = [e for e in reply.json()["items"] if e["target"] == target]
        assert len(found) == 1, found
        return found[0]

    def close(self) -> None:
        self.plain.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.node.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    gw = Gateway(tmp_path_factory.mktemp("gmtls-gateway"))
    try:
        gw.start()
        yield gw
    finally:
        gw.close()


def test_an_api_call_over_tlcp_is_answered_and_audited_with_the_client_certificate_subject(gateway):
    status, body = gateway.over_tls("/api/v1/evidence/records/900001")
    assert status in (403, 404), body  # an answer of the API itself (the auditor may not read records)
    entry = gateway.entry("record_id=900001")
    assert entry["subject"] == "au-wang" and entry["status"] == status
    assert entry["detail"] == f"tls client: {MEMBER}"


def test_a_subject_header_sent_through_the_front_is_replaced_by_the_real_one(gateway):
    gateway.over_tls("/api/v1/evidence/records/900002",
                     headers={"X-Shancheng-Tls-Subject": "CN=mallory", "X-Shancheng-Relay-Token": "guess"})
    assert gateway.entry("record_id=900002")["detail"] == f"tls client: {MEMBER}"


def test_a_spoofed_subject_header_over_plain_http_is_not_believed(gateway):
    reply = gateway.plain.get("/api/v1/evidence/records/900003", headers={
        "X-Shancheng-Tls-Subject": "CN=mallory,OU=member,O=Shancheng test", "X-Shancheng-Relay-Token": "guess",
        "X-Shancheng-Tls-Peer": "10.9.9.9"})
    assert reply.status_code in (403, 404)
    entry = gateway.entry("record_id=900003")
    assert entry["detail"] is None and entry["remote"] == "127.0.0.1"


def test_an_international_only_client_is_refused_by_the_gateway(gateway):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", gateway.tls_port), timeout=10) as sock, \
            pytest.raises((ssl.SSLError, ConnectionResetError)), \
            context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"GET /api/v1/csrf HTTP/1.1\r\nHost: x\r\n\r\n")
        tls.recv(100)


def test_the_gateway_refuses_a_public_plain_listener_while_tls_is_set(gateway):
    out = subprocess.run([sys.executable, "-m", "shancheng.sdk.cli", "gateway", "serve", "--config",
                          str(gateway.config), "--host", "0.0.0.0", "--port", str(free_port())],
                         capture_output=True, text=True, timeout=120, check=False, env={**os.environ})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "must be on loopback" in out.stderr
