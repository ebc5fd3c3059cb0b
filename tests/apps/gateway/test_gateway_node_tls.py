"""A gateway whose node URL is a node's GM TLS JSON-RPC front (``https+gm://`` with a ``[node_tls]`` table): a
record written through the gateway is anchored and read back, every call to the node going over TLCP with the
member's double certificate; the network view reaches the node the same way; a gateway without a client
certificate is refused by the node; and the table's one-line refusals at load.

The node is a real dev node with ``[tls]`` in its config.toml (as in tests/nodes/test_gmtls_node_front.py), the
certificates come from ``shancheng pki``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shancheng.apps.gateway.app import start_services
from shancheng.apps.gateway.settings import GatewaySettings, NodeTlsSettings, SettingsError
from shancheng.sdk.client import NodeUnavailable
from shancheng.testing import free_port
from shancheng.testing.cli import shancheng_ok
from shancheng.testing.gateway import GatewayWorld
from shancheng.testing.solo import SoloNode

pytestmark = pytest.mark.network

MEMBER_PASSWORD = b"member key password"




class Front:
    """A dev node behind its GM TLS front (client certificates required) and a member pair of the same CA."""

    def __init__(self, tmp: Path) -> None:
        self.pki = tmp / "pki"
        ca_password = tmp / "ca.password"
        ca_password.write_bytes(b"consortium ca password\n")
        self.member_password = tmp / "member.password"
        self.member_password.write_bytes(MEMBER_PASSWORD + b"\n")
        common = ("--dir", str(self.pki), "--password-file", str(ca_password))
        shancheng_ok("pki", "init-ca", "--org", "Shancheng test", *common)
        shancheng_ok("pki", "issue", "--role", "node", "--name", "node0", "--ip", "127.0.0.1", *common)
        shancheng_ok("pki", "issue", "--role", "member", "--name", "gw-hospital", "--key-password-file", str(self.member_password),
            *common)
        issued = self.pki / "issued"
        self.node = SoloNode.init_dev(tmp / "node")
        self.port = free_port()
        with open(self.node.home / "config.toml", "a") as config:
            config.write("\n".join([
                "", "[tls]", 'mode = "tlcp"', f"port = {self.port}", 'host = "127.0.0.1"',
                f"ca = {str(self.pki / 'ca.crt')!r}", f"crl = {str(self.pki / 'ca.crl')!r}",
                *(f"{u}_{kind} = {str(issued / f'node0-{u}.{ext}')!r}"
                  for u in ("sign", "enc") for kind, ext in (("cert", "crt"), ("key", "key"))),
                f"password_file = {str(ca_password)!r}", "require_client_certificate = true", ""]))
        self.url = f"https+gm://127.0.0.1:{self.port}"

    def node_tls(self, *, with_certificate: bool = True) -> NodeTlsSettings:
        issued = self.pki / "issued"
        pair: dict[str, Any] = {f"{u}_{kind}": issued / f"gw-hospital-{u}.{ext}"
                                for u in ("sign", "enc") for kind, ext in (("cert", "crt"), ("key", "key"))}
        return NodeTlsSettings(mode="tlcp", ca=self.pki / "ca.crt", crl=self.pki / "ca.crl",
                               password_file=self.member_password, **(pair if with_certificate else {}))


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    made = Front(tmp_path_factory.mktemp("node-front"))
    made.node.start()
    try:
        yield made
    finally:
        made.node.stop()


@pytest.fixture(scope="module")
def gm_world(front: Front, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayWorld]:
    with GatewayWorld.start(tmp_path_factory.mktemp("gw-gm"), node=front.node, node_urls=[front.url],
                            node_tls=front.node_tls()) as world:
        yield world


def test_a_record_written_through_the_gateway_is_anchored_over_gm_tls_and_read_back(gm_world: GatewayWorld,
                                                                                     front: Front) -> None:
    doctor = gm_world.client(token=gm_world.token("doctor", subject="dr.tls"))
    made = doctor.post("/api/v1/evidence/records", json={"record": {"hosp_rxno": "RX-GM-1"}, "kind": "prescription"})
    assert made.status_code == 201, made.text
    record_id = made.json()["id"]
    deadline = time.monotonic() + 120
    while (status := doctor.get(f"/api/v1/evidence/records/{record_id}").json())["status"] != "anchored":
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert status["anchor"]["block_number"] > 0
    package = doctor.get(f"/api/v1/evidence/records/{record_id}/package").json()
    checked = doctor.post("/api/v1/evidence/verify", json={"package": package, "record": {"hosp_rxno": "RX-GM-1"},
                                                           "salt": status["salt"]}).json()
    assert checked["verified"] is True
    rpc = gm_world.services.client.rpc
    assert rpc.urls == [front.url]  # the node's only URL the gateway knows: its GM TLS front
    connection = rpc._connection(0)  # the connection the gateway's calls went over: TLCP, to the node's certificate
    assert connection.peer is not None and connection.peer.protocol == "NTLSv1.1"
    assert connection.peer.peer_subject == "CN=node0,OU=node,O=Shancheng test"


def test_the_network_view_reaches_the_node_over_gm_tls(gm_world: GatewayWorld, front: Front) -> None:
    view = gm_world.client(token=gm_world.token("regulator")).get("/api/v1/network", params={"blocks": 1}).json()
    assert [(n["url"], n["reachable"], n["error"]) for n in view["nodes"]] == [(front.url, True, None)]
    assert view["nodes"][0]["height"] >= 1


def test_a_gateway_without_a_client_certificate_is_refused_by_the_node(front: Front, tmp_path: Path) -> None:
    settings = GatewayWorld.settings_for(tmp_path / "gw", front.node, node_urls=[front.url],
                                         node_tls=front.node_tls(with_certificate=False))
    with pytest.raises(NodeUnavailable, match="handshake failed"):
        start_services(settings)


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text("\n".join([
        f"data_dir = {str(tmp_path / 'data')!r}", 'genesis = "genesis.json"', 'org = "hospital"',
        'sm2_key = "k.pem"', 'eth_key = "k.json"', 'password_file = "pw"', 'evidence_origin = "gw.test/h"', body]))
    return path


def test_a_gm_tls_node_url_without_node_tls_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as refused:
        GatewaySettings.load(_config(tmp_path, 'node_urls = ["https+gm://127.0.0.1:8443"]'))
    assert "https+gm://127.0.0.1:8443" in str(refused.value) and "[node_tls]" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_node_tls_without_a_gm_tls_node_url_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("not read at load")
    with pytest.raises(SettingsError, match="no node URL is https\\+gm://"):
        GatewaySettings.load(_config(tmp_path, 'node_urls = ["http://127.0.0.1:8545"]\n[node_tls]\nca = "ca.crt"'))


def test_a_missing_node_tls_file_is_named_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as refused:
        GatewaySettings.load(_config(tmp_path, 'node_urls = ["https+gm://127.0.0.1:8443"]\n'
                                               '[node_tls]\nca = "absent-ca.crt"'))
    message = str(refused.value)
    assert f"node_tls: Value error, ca: no such file {tmp_path / 'absent-ca.crt'}" in message and "\n" not in message


def test_half_a_client_pair_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("x")
    (tmp_path / "s.crt").write_text("x")
    with pytest.raises(SettingsError, match="needs all of sign_cert, sign_key, enc_cert, enc_key"):
        GatewaySettings.load(_config(tmp_path, 'node_urls = ["https+gm://127.0.0.1:8443"]\n'
                                               '[node_tls]\nca = "ca.crt"\nsign_cert = "s.crt"'))
