"""A 4-validator network made by `shancheng network init --gm-tls`, every node a real `shancheng node start` process
with its CometBFT child: the nodes reach each other only through their GM TLS (TLCP) p2p tunnels, commit blocks,
survive a restart; a node holding a certificate of another CA, or a revoked one, cannot join while the others go
on."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shancheng.sdk import Client
from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.cli.keys import write_key_file
from shancheng.sdk.client import GmTlsClientConfig, Identity, write_eth_keystore
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.evidence import verify_package
from shancheng.sdk.gmtls import CertifiedKey, ConsortiumCA
from shancheng.testing.network import (
    CLI,
    TEST_TIMEOUT_PROPOSE_MS,
    Network,
    comet_processes,
    free_base_port,
    load_network,
    poll_until,
)

pytestmark = [pytest.mark.network, pytest.mark.slow]

PASSWORD = b"gm tls network test password"
TLS_FILES = [f"node3-{usage}.{ext}" for usage in ("sign", "enc") for ext in ("crt", "key")]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    root = tmp_path_factory.mktemp("gmtls") / "n"
    proc = subprocess.run(
        [*CLI, "network", "init", "--validators", "4", "--out", str(root), "--gm-tls",
         "--base-port", str(free_base_port(4)), "--empty-blocks-interval", "1",
         "--timeout-propose", str(TEST_TIMEOUT_PROPOSE_MS)],
        capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    network = load_network(root)
    try:
        network.start_all()
        yield network
    finally:
        network.close()


def tcp_listeners(pid: int) -> list[tuple[str, int]]:
    """The (address, port) of every TCP socket process ``pid`` listens on (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            if table == "tcp":
                host = socket.inet_ntop(socket.AF_INET, raw[::-1])
            else:
                host = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
            found.append((host, int(port, 16)))
    return found


def peers(net: Network, name: str) -> list[dict[str, object]]:
    return list(net.comet(name, "/net_info")["peers"])


def others_advance(net: Network, names: list[str], blocks: int) -> None:
    target = max(net.height(n) for n in names) + blocks
    net.wait_height(target, names, timeout=120)


def log_since_last_start(net: Network, name: str) -> str:
    return net.nodes[name].log().split("=== start ")[-1]


def test_the_validators_commit_blocks_talking_only_through_gm_tls_tunnels(net: Network) -> None:
    net.wait_height(3, timeout=120)
    inbound = 0
    for k, node in enumerate(net.validators()):
        (pid,) = comet_processes(node.home / "cometbft")
        listening = tcp_listeners(pid)
        comet_p2p = net.summary["nodes"][k]["cometbft_p2p_port"]
        assert ("127.0.0.1", comet_p2p) in listening
        assert all(host == "127.0.0.1" for host, _ in listening), listening  # CometBFT: loopback only
        assert node.p2p_port not in [port for _, port in listening]  # the public p2p port is the tunnel's
        assert ("127.0.0.1", node.p2p_port) in tcp_listeners(node.proc.pid)  # type: ignore[union-attr]
        connected = poll_until(lambda node=node: len(peers(net, node.name)) == 3 and peers(net, node.name),
                               timeout=60, what=f"{node.name} to have 3 peers")
        for peer in connected:
            # dialled: through this node's own loopback tunnel port; accepted: from its inbound tunnel
            assert peer["remote_ip"] == (f"127.1.0.{k + 1}" if peer["is_outbound"] else "127.0.0.1"), peer
        # one tunnel per pair of nodes, dialled by one of the two (a node may have dialled all three, or none):
        # every other validator is either accepted by this node's inbound tunnel or dialled through it, over TLCP
        log = node.log()
        assert "over NTLSv1.1 ECC-SM2-SM4" in log
        others = {p.name for p in net.validators() if p is not node}
        for other in others:
            assert f"(CN={other},OU=node," in log or f"outbound to {other} at" in log
        inbound += len(re.findall(r"GM TLS p2p: inbound from \S+ \(CN=node\d,OU=node,[^)]*\) over NTLSv1\.1", log))
    assert inbound >= 6, "each of the 6 pairs of the 4 validators has a tunnel, accepted by one side of it"


def test_a_plain_connection_to_the_p2p_port_is_refused_in_one_line(net: Network) -> None:
    node = net.nodes["node0"]
    with socket.create_connection(("127.0.0.1", node.p2p_port), timeout=10) as sock:
        sock.sendall(b"\x00" * 64)  # not a TLCP ClientHello (what CometBFT itself would send)
        sock.settimeout(20)
        received = b""
        while chunk := sock.recv(4096):  # at most a TLS alert, then the tunnel closes the connection
            received += chunk
        assert len(received) < 64
    poll_until(lambda: "GM TLS p2p: handshake from 127.0.0.1 refused" in node.log(), timeout=20,
               what="the refusal in node0's log")
    refusal = next(line for line in node.log().splitlines() if "GM TLS p2p: handshake from" in line)
    assert "Traceback" not in node.log() and refusal.count("\n") == 0


def test_the_sdk_anchors_and_verifies_a_record_over_gm_tls_end_to_end(net: Network, tmp_path: Path) -> None:
    account = next(a for a in net.dev_accounts() if a["name"] == "hospital")
    write_key_file(tmp_path / "sm2.pem", SM2PrivateKey.from_int(int(account["sm2_private_key"], 16)), PASSWORD)
    write_eth_keystore(tmp_path / "eth.json", account["private_key"], PASSWORD)
    identity = Identity.from_key_files(sm2_key=tmp_path / "sm2.pem", eth_key=tmp_path / "eth.json", password=PASSWORD)
    client_folder = net.root / "client"
    key_password = (client_folder / "password").read_bytes().split(b"\n")[0]
    pair = tuple(CertifiedKey.from_files(client_folder / f"sdk-client-{u}.crt", client_folder / f"sdk-client-{u}.key",
                                         key_password) for u in ("sign", "enc"))
    tls = GmTlsClientConfig(ca=client_folder / "ca.crt", mode="tlcp", certificate=pair)
    urls = [f"https+gm://127.0.0.1:{net.summary['nodes'][k]['tls_port']}" for k in (0, 1)]
    client = Client.connect(urls, identity=identity, genesis=net.genesis_path, tls=tls)
    with client.batcher(store=f"sqlite:///{tmp_path / 'evidence.db'}", origin="hospital.example/log/gm-tls",
                        max_age=0.1) as batcher:
        record = {"hosp_rxno": "RX-GMTLS-1", "drug": "阿莫西林胶囊"}
        rid = batcher.add(record, kind="prescription")
        batcher.flush(timeout=120)
        package = batcher.evidence_package(rid)
    result = verify_package(package.dumps(), genesis=GenesisFile.load(net.genesis_path), record=record,
                            salt=batcher.salt(rid))
    assert result.record_checked and result.anchor is not None and result.anchor.org.name == "hospital"
    certificate = json.loads(package.dumps())["chain"]["commit_certificate"]
    assert len(certificate["signatures"]) >= 3  # > 2/3 of the 4 validators, who reached each other over GM TLS
    connection = client.rpc._connection(0)  # the calls went over TLCP to node0's front
    assert connection.peer is not None and connection.peer.protocol == "NTLSv1.1"
    assert connection.peer.peer_subject is not None and connection.peer.peer_subject.startswith("CN=node0,OU=node")


def test_a_restarted_validator_reconnects_through_the_tunnels_and_catches_up(net: Network) -> None:
    assert net.stop("node2") == 0
    others = ["node0", "node1", "node3"]
    others_advance(net, others, 2)
    net.start("node2")
    net.wait_height(max(net.height(n) for n in others), ["node2"], timeout=120)
    poll_until(lambda: len(peers(net, "node2")) == 3, timeout=60, what="node2 to reconnect to its 3 peers")
    log = log_since_last_start(net, "node2")
    assert "GM TLS p2p (tlcp) on 127.0.0.1" in log and "GM TLS p2p: outbound to" in log


def _refused_node3(net: Network, reason: str) -> None:
    """node3 (restarted with what the test gave it) gets no peer while the three others go on committing."""
    node3 = net.start("node3")
    stuck_at = net.height("node3")
    others = ["node0", "node1", "node2"]
    others_advance(net, others, 3)
    poll_until(lambda: reason in log_since_last_start(net, "node0"), timeout=60,
               what=f"node0 to refuse node3 ({reason})")
    assert net.comet("node3", "/net_info")["n_peers"] == "0"
    assert net.height("node3") <= stuck_at + 1 < net.height("node0")
    assert "GM TLS p2p: handshake with node" in log_since_last_start(net, "node3")
    assert node3.running()


def test_a_node_with_a_certificate_of_another_ca_cannot_join_while_the_others_go_on(net: Network) -> None:
    tls = net.nodes["node3"].home / "tls"
    keep = tls.parent / "tls-kept"
    assert net.stop("node3") == 0
    shutil.copytree(tls, keep)
    password = (tls.parent / "node-key.password").read_bytes().split(b"\n")[0]
    foreign = ConsortiumCA.create(organisation="Elsewhere")
    for pair, usage in zip(foreign.issue_pair("node3", role="node", dns_names=["node3"], ip_addresses=["127.0.0.1"]),
                           ("sign", "enc"), strict=True):
        (tls / f"node3-{usage}.crt").unlink()
        (tls / f"node3-{usage}.key").unlink()
        pair.write(tls / f"node3-{usage}.crt", tls / f"node3-{usage}.key", password)
    try:
        _refused_node3(net, "certificate verify failed")
    finally:
        net.stop("node3")
        for name in TLS_FILES:
            shutil.copy2(keep / name, tls / name)
    net.start("node3")  # its own certificates again: it joins and catches up
    net.wait_height(max(net.height(n) for n in ("node0", "node1", "node2")), ["node3"], timeout=120)


def test_a_node_whose_certificates_were_revoked_cannot_join_while_the_others_go_on(net: Network) -> None:
    register = json.loads((net.root / "pki" / "register.json").read_text())
    serials = [c["serial"] for c in register["certificates"] if c["name"] == "node3"]
    assert len(serials) == 2
    assert net.stop("node3") == 0
    revoke = subprocess.run([*CLI, "pki", "revoke", "--dir", str(net.root / "pki"), *serials,
                             "--password-file", str(net.root / "pki" / "ca.password")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert revoke.returncode == 0, revoke.stderr
    for node in net.nodes.values():  # the operator publishes the new CRL to every node
        shutil.copyfile(net.root / "pki" / "ca.crl", node.home / "tls" / "ca.crl")
    _refused_node3(net, "certificate revoked")


def test_network_init_writes_every_gm_tls_key_encrypted_and_private(net: Network) -> None:
    keys = [*(net.root / "pki").glob("*.key"), *(net.root / "client").glob("*.key"),
            *(k for node in net.nodes.values() for k in (node.home / "tls").glob("*.key"))]
    assert len(keys) == 1 + 2 + 2 * 4
    for key in keys:
        assert key.stat().st_mode & 0o077 == 0, key
        assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"), key
