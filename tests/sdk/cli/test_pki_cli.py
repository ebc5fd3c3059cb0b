"""`shancheng pki`: the CA, issued pairs, the register, revocation and the CRL, through the console script's main."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography import x509

from shancheng.sdk.cli.main import main
from shancheng.sdk.gmtls import CertifiedKey, ConsortiumCA

PASSWORD = b"ca password 123"


@pytest.fixture()
def ca(tmp_path: Path) -> tuple[Path, Path]:
    password = tmp_path / "password"
    password.write_bytes(PASSWORD + b"\n")
    folder = tmp_path / "ca"
    assert main(["pki", "init-ca", "--dir", str(folder), "--org", "Shancheng test", "--password-file",
                 str(password)]) == 0
    return folder, password


def listing(folder: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert main(["pki", "list", "--dir", str(folder), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_issued_pairs_are_in_the_register_and_their_keys_are_encrypted(ca, capsys):
    folder, password = ca
    assert main(["pki", "issue", "--dir", str(folder), "--role", "gateway", "--name", "gw", "--dns", "gw.example",
                 "--ip", "127.0.0.1", "--password-file", str(password)]) == 0
    issued = folder / "issued"
    sign = CertifiedKey.from_files(issued / "gw-sign.crt", issued / "gw-sign.key", PASSWORD)
    enc = CertifiedKey.from_files(issued / "gw-enc.crt", issued / "gw-enc.key", PASSWORD)
    assert sign.subject == enc.subject == "CN=gw,OU=gateway,O=Shancheng test"
    assert stat.S_IMODE((issued / "gw-sign.key").stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in (issued / "gw-enc.key").read_bytes()
    with pytest.raises(Exception, match="password|decrypt"):
        CertifiedKey.from_files(issued / "gw-sign.crt", issued / "gw-sign.key", b"wrong password")
    rows = listing(folder, capsys)["certificates"]
    assert [(r["serial"], r["usage"], r["state"]) for r in rows] == [
        (f"{sign.serial:X}", "sign", "valid"), (f"{enc.serial:X}", "enc", "valid")]
    ConsortiumCA.from_files(folder / "ca.crt", folder / "ca.key", PASSWORD)  # the CA key is encrypted too


def test_revoke_lists_the_serials_in_a_new_signed_crl(ca, capsys):
    folder, password = ca
    assert main(["pki", "issue", "--dir", str(folder), "--role", "member", "--name", "m1", "--password-file",
                 str(password)]) == 0
    rows = listing(folder, capsys)["certificates"]
    serials = [r["serial"] for r in rows]
    number = listing(folder, capsys)["crl_number"]
    assert main(["pki", "revoke", "--dir", str(folder), f"0x{serials[0].lower()}", "--password-file",
                 str(password)]) == 0
    after = listing(folder, capsys)
    assert after["crl_number"] == number + 1
    assert [r["state"] for r in after["certificates"]] == ["revoked", "valid"]
    crl = x509.load_pem_x509_crl((folder / "ca.crl").read_bytes())
    assert [f"{r.serial_number:X}" for r in crl] == [serials[0]]
    assert main(["pki", "crl", "--dir", str(folder), "--password-file", str(password), "--days", "2"]) == 0
    refreshed = x509.load_pem_x509_crl((folder / "ca.crl").read_bytes())
    assert [f"{r.serial_number:X}" for r in refreshed] == [serials[0]]
    assert listing(folder, capsys)["crl_number"] == number + 2


@pytest.mark.parametrize(("args", "message"), [
    (["revoke", "ABCDEF"], "not in the register"),
    (["revoke", "not-hex"], "not a serial number"),
    (["issue", "--role", "member", "--name", "bad/name"], "name must be"),
    (["init-ca", "--org", "again"], "already holds a CA"),
])
def test_mistakes_get_one_line_errors(ca, capsys, args, message):
    folder, password = ca
    capsys.readouterr()
    status = main(["pki", args[0], "--dir", str(folder), *args[1:], "--password-file", str(password)])
    err = capsys.readouterr().err
    assert status != 0 and message in err and "Traceback" not in err


def test_a_folder_without_a_ca_is_named_in_the_error(tmp_path, capsys):
    status = main(["pki", "list", "--dir", str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert status != 0 and "no certificate register" in err
