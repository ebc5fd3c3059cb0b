"""The `shancheng` command line, run as a user runs it: a subprocess, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.evidence import EvidenceBatch
from shancheng.sdk.merkle import NoteSigner
from shancheng.sdk.records import RecordStatement, commit_salted

ENV = {k: v for k, v in os.environ.items() if k not in ("SHANCHENG_KEY_PASSWORD", "SHANCHENG_DEBUG")}


def shancheng(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", "shancheng.sdk.cli", *args],
        capture_output=True, text=True, input=input, timeout=120, env=ENV, check=False,
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out


@pytest.fixture(scope="module")
def package_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pkg")
    signer = NoteSigner("district.example/gw-1", SM2PrivateKey.generate())
    batch = EvidenceBatch(origin="district.example/log/hosp-001", signer=signer)
    record = {"hosp_rxno": "RX0001", "drugs": [{"drug_genname": "阿莫西林胶囊"}]}
    commitment, salt = commit_salted(record)
    batch.add(RecordStatement("prescription", batch.origin, 0, commitment).sign(SM2PrivateKey.generate()))
    batch.add(RecordStatement("prescription", batch.origin, 1, commit_salted({"x": 1})[0]).sign(SM2PrivateKey.generate()))
    (d / "pkg.json").write_text(batch.package(0).dumps())
    (d / "record.json").write_text(json.dumps(record, ensure_ascii=False))
    return d, salt.hex(), signer.verifier.to_vkey()


def test_keys_new_writes_an_encrypted_key_openssl_reads(tmp_path, openssl):
    (tmp_path / "pw").write_text("a long enough password\n")
    out = shancheng("keys", "new", "--out", str(tmp_path / "org.pem"), "--password-file", str(tmp_path / "pw"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "org.pem").stat().st_mode & 0o777 == 0o600
    text = (tmp_path / "org.pem").read_text()
    assert "ENCRYPTED PRIVATE KEY" in text and "\nMIG" not in text.split("ENCRYPTED")[0]
    (tmp_path / "pw-plain").write_text("a long enough password")
    pub = openssl("pkey", "-in", str(tmp_path / "org.pem"), "-passin", f"file:{tmp_path / 'pw-plain'}", "-pubout")
    assert pub.returncode == 0, pub.stderr
    show = shancheng("keys", "show", str(tmp_path / "org.pem"), "--json")
    info = json.loads(show.stdout)
    assert info["encrypted"] and not info["private_key_checked"]
    assert info["public_key_pem"] == pub.stdout.decode()
    checked = shancheng("keys", "show", str(tmp_path / "org.pem"), "--password-file", str(tmp_path / "pw"), "--json")
    assert json.loads(checked.stdout)["private_key_checked"] is True


def test_keys_new_refuses_to_overwrite_or_go_unencrypted(tmp_path):
    (tmp_path / "pw").write_text("another good password\n")
    args = ["keys", "new", "--out", str(tmp_path / "k.pem"), "--password-file", str(tmp_path / "pw")]
    assert shancheng(*args).returncode == 0
    again = shancheng(*args)
    assert again.returncode == 2 and "already exists" in again.stderr
    nopw = shancheng("keys", "new", "--out", str(tmp_path / "k2.pem"))
    assert nopw.returncode == 2 and "password" in nopw.stderr and not (tmp_path / "k2.pem").exists()
    (tmp_path / "short").write_text("short\n")
    weak = shancheng("keys", "new", "--out", str(tmp_path / "k3.pem"), "--password-file", str(tmp_path / "short"))
    assert weak.returncode != 0 and "at least" in weak.stderr


def test_keys_show_with_the_wrong_password_fails_cleanly(tmp_path):
    (tmp_path / "pw").write_text("the right password\n")
    (tmp_path / "bad").write_text("the wrong password\n")
    shancheng("keys", "new", "--out", str(tmp_path / "k.pem"), "--password-file", str(tmp_path / "pw"))
    out = shancheng("keys", "show", str(tmp_path / "k.pem"), "--password-file", str(tmp_path / "bad"))
    assert out.returncode == 1 and out.stderr.strip() == "error: wrong password for the encrypted private key"
    missing = shancheng("keys", "show", str(tmp_path / "nope.pem"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_evidence_verify_exit_codes(package_files, tmp_path):
    d, salt, vkey = package_files
    pkg = str(d / "pkg.json")
    pin = ["--checkpoint-key", vkey]
    ok = shancheng("evidence", "verify", pkg, "--record", str(d / "record.json"), "--salt", salt, *pin)
    assert ok.returncode == 0 and ok.stdout.startswith("OK prescription district.example/log/hosp-001#0"), ok.stderr
    wrong_salt = shancheng("evidence", "verify", pkg, "--record", str(d / "record.json"), "--salt", "00" * 32, *pin)
    assert wrong_salt.returncode == 1
    assert wrong_salt.stderr.strip() == "INVALID: record does not match the commitment (wrong record, salt or key)"
    as_json = json.loads(shancheng("evidence", "verify", pkg, "--json", *pin).stdout)
    assert as_json["valid"] is True and as_json["trust_root"] == "checkpoint-key" and as_json["unsafe"] is False

    doc = json.loads((d / "pkg.json").read_text())
    doc["inclusion"]["hashes"][0] = "00" * 32
    (tmp_path / "tampered.json").write_text(json.dumps(doc))
    bad = shancheng("evidence", "verify", str(tmp_path / "tampered.json"), *pin)
    assert bad.returncode == 1 and bad.stderr.startswith("INVALID: inclusion proof: root mismatch")
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\xff\xfe garbage", b"[1,2,3]", b'{"format": "shancheng-evidence-package"}', b"{" * 5000],
)
def test_evidence_verify_garbage_is_one_line_exit_1(tmp_path, content):
    (tmp_path / "junk.json").write_bytes(content)
    vkey = NoteSigner("gw", SM2PrivateKey.generate()).verifier.to_vkey()
    out = shancheng("evidence", "verify", str(tmp_path / "junk.json"), "--checkpoint-key", vkey)
    assert out.returncode == 1 and out.stderr.startswith("INVALID: ")
    assert len(out.stderr.strip().splitlines()) == 1


def test_evidence_verify_usage_errors_exit_2(package_files, tmp_path):
    d, salt, _ = package_files
    pkg = str(d / "pkg.json")
    cases = [
        ["evidence", "verify"],
        ["evidence", "verify", str(tmp_path / "missing.json")],
        ["evidence", "verify", pkg, "--salt", salt],
        ["evidence", "verify", pkg, "--record", str(d / "record.json")],
        ["evidence", "verify", pkg, "--record", str(d / "record.json"), "--salt", "zz"],
        ["evidence", "verify", pkg, "--checkpoint-key", "not-a-vkey"],
        ["evidence", "verify", str(tmp_path)],
        ["evidence", "verify", pkg],  # no trust root
        ["evidence", "verify", pkg, "--genesis-fingerprint", "00" * 32],
    ]
    for args in cases:
        out = shancheng(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (2 << 20))
    out = shancheng("evidence", "verify", str(big), "--unsafe-trust-package-checkpoint-key")
    assert out.returncode == 2 and "larger than" in out.stderr


def test_top_level_help_lists_the_commands():
    out = shancheng("--help")
    assert out.returncode == 0
    for command in ("keys", "evidence", "demo"):
        assert command in out.stdout
