"""Interoperability with an independent TLCP implementation: ``github.com/tjfoc/gmsm`` v1.4.1 ``gmtls`` (Go, GM/T
0024, CBC suites, double certificates), fetched from the Go module proxy and built here.

Both directions: a gmsm client completes a handshake with our server and gets an answer, and our client completes
one with a gmsm server.  gmsm has no GCM suites, so a GCM-only server must turn it away.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from _gmtls_loopback import TIMEOUT, serve_one

from shancheng.sdk.gmtls import CertifiedKey, ClientContext, HandshakeError, ServerContext

pytestmark = [pytest.mark.network, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
GMSM = "github.com/tjfoc/gmsm v1.4.1"
MESSAGE = b"ping from gmsm"


@pytest.fixture(scope="module")
def gmsm_peer(tmp_path_factory) -> Path:
    """The Go peer (``gmsm_peer.go``) built against gmsm v1.4.1 in a temporary module."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("the Go toolchain is not installed")
    folder = tmp_path_factory.mktemp("gmsm-peer")
    (folder / "go.mod").write_text(f"module gmsmpeer\n\ngo 1.21\n\nrequire {GMSM}\n")
    shutil.copy(HERE / "gmsm_peer.go", folder / "main.go")
    for step in (["mod", "tidy"], ["build", "-o", "gmsm_peer", "."]):
        done = subprocess.run([go, *step], cwd=folder, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, f"go {' '.join(step)} failed: {done.stderr[-2000:]}"
    return folder / "gmsm_peer"


@pytest.fixture(scope="module")
def files(pki, tmp_path_factory) -> dict[str, str]:
    """The CA and the certificates as files for the Go peer (keys unencrypted: gmsm reads no scrypt key files)."""
    folder = tmp_path_factory.mktemp("gmsm-pki")
    out = {"ca": folder / "ca.pem", "other-ca": folder / "other-ca.pem"}
    out["ca"].write_bytes(pki.ca.certificate_pem)
    out["other-ca"].write_bytes(pki.other_ca.certificate_pem)
    for name in ("gateway_sign", "gateway_enc", "member_sign", "member_enc"):
        pair: CertifiedKey = getattr(pki, name)
        out[f"{name}.crt"] = folder / f"{name}.crt"
        out[f"{name}.key"] = folder / f"{name}.key"
        out[f"{name}.crt"].write_bytes(pair.certificate_pem())
        out[f"{name}.key"].write_bytes(pair.key.to_pem_unsafe_unencrypted())
    return {key: str(path) for key, path in out.items()}


def _member_files(files: dict[str, str]) -> list[str]:
    return [files["member_sign.crt"], files["member_sign.key"], files["member_enc.crt"], files["member_enc.key"]]


def _run_client(peer: Path, address: tuple[str, int], ca: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(peer), "client", f"{address[0]}:{address[1]}", ca, "gateway", *extra],
                          capture_output=True, text=True, timeout=TIMEOUT * 2, check=False)


def _server(pki, *, suites=None, mutual=False) -> ServerContext:
    return ServerContext(mode="tlcp", ca=pki.ca.certificate_pem, sign=pki.gateway_sign, enc=pki.gateway_enc,
                         suites=suites, require_client_certificate=mutual)


def test_a_gmsm_client_completes_a_tlcp_handshake_with_our_server_and_gets_an_answer(pki, gmsm_peer, files):
    address, finish = serve_one(_server(pki), len(MESSAGE))
    done = _run_client(gmsm_peer, address, files["ca"])
    server = finish()
    assert server.error is None, server.error
    assert (server.protocol, server.cipher) == ("NTLSv1.1", "ECC-SM2-SM4-CBC-SM3")
    assert server.data == b"ping from gmsm"
    assert done.stdout.strip() == "OK version=0x0101 suite=0xe013 reply=ping from gmsm", done.stdout


def test_a_gmsm_client_with_double_certificates_passes_our_mutual_authentication(pki, gmsm_peer, files):
    """ECC only: gmsm v1.4.1's ECDHE suite signs and derives differently from GB/T 38636 (Tongsuo answers its
    ServerKeyExchange check with "SM2 verification failure"), so no ECDHE interop is claimed."""
    suite, code = "ECC-SM2-SM4-CBC-SM3", "0xe013"
    address, finish = serve_one(_server(pki, suites=[suite], mutual=True), len(MESSAGE))
    done = _run_client(gmsm_peer, address, files["ca"], *_member_files(files))
    server = finish()
    assert server.error is None, (server.error, done.stdout)
    assert (server.cipher, server.peer_subject) == (suite, "CN=member-a,OU=member,O=Shancheng test")
    assert done.stdout.strip() == f"OK version=0x0101 suite={code} reply=ping from gmsm", done.stdout


def test_a_gmsm_client_is_refused_by_a_gcm_only_server(pki, gmsm_peer, files):
    address, finish = serve_one(_server(pki, suites=["ECC-SM2-SM4-GCM-SM3"]))
    done = _run_client(gmsm_peer, address, files["ca"])
    server = finish()
    assert isinstance(server.error, HandshakeError) and server.error.reason == "no shared cipher"
    assert done.returncode == 1 and "ERR remote error: tls: handshake failure" in done.stdout


def test_a_gmsm_client_that_trusts_another_ca_refuses_our_server(pki, gmsm_peer, files):
    address, finish = serve_one(_server(pki), len(MESSAGE))
    done = _run_client(gmsm_peer, address, files["other-ca"])
    server = finish()
    assert "unknown authority" in done.stdout
    assert isinstance(server.error, HandshakeError) and "bad certificate" in server.error.reason


@pytest.mark.parametrize("mutual", [False, True], ids=["server-auth", "mutual"])
def test_our_client_completes_a_tlcp_handshake_with_a_gmsm_server(pki, gmsm_peer, files, mutual):
    args = [str(gmsm_peer), "server", files["ca"], files["gateway_sign.crt"], files["gateway_sign.key"],
            files["gateway_enc.crt"], files["gateway_enc.key"], *(["require-client-cert"] if mutual else [])]
    with subprocess.Popen(args, stdout=subprocess.PIPE, text=True) as go:
        assert go.stdout is not None
        first = go.stdout.readline().split()
        assert first[:1] == ["LISTEN"], first
        host, port = first[1].rsplit(":", 1)
        client = ClientContext(mode="tlcp", ca=pki.ca.certificate_pem, suites=["ECC-SM2-SM4-CBC-SM3"],
                               **({"sign": pki.member_sign, "enc": pki.member_enc} if mutual else {}))
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
            tls = client.wrap(sock, server_name="gateway")
            assert (tls.protocol, tls.cipher) == ("NTLSv1.1", "ECC-SM2-SM4-CBC-SM3")
            assert tls.peer_subject == "CN=gateway,OU=gateway,O=Shancheng test"
            tls.sendall(b"anchor 42")
            reply = b""
            while len(reply) < len(b"anchor 42"):
                chunk = tls.recv(100)
                assert chunk, "the gmsm server closed before answering"
                reply += chunk
            tls.close()
        out, _ = go.communicate(timeout=TIMEOUT)
    assert reply == b"ANCHOR 42"
    assert go.returncode == 0
    assert out.strip() == f"OK version=0x0101 suite=0xe013 got=anchor 42 peer={'member-a' if mutual else ''}"
