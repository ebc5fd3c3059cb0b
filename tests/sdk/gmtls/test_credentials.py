"""A certificate with its key, on disk and in memory: key files encrypted at rest and private, pairs that must
match, trust lists that are never empty."""

from __future__ import annotations

import stat

import pytest

from shancheng.sdk.errors import InvalidInput, InvalidKey, WrongPassword
from shancheng.sdk.gmtls import CertifiedKey, load_revocations, load_trust

PASSWORD = b"correct horse battery"


def test_key_files_are_encrypted_at_rest_and_private_and_read_back(pki, tmp_path):
    pki.member_sign.write(tmp_path / "tls" / "member.crt", tmp_path / "tls" / "member.key", PASSWORD)
    key_file = tmp_path / "tls" / "member.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tls" / "member.crt").stat().st_mode) == 0o644
    text = key_file.read_bytes()
    assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in text and b"-----BEGIN PRIVATE KEY-----" not in text
    again = CertifiedKey.from_files(tmp_path / "tls" / "member.crt", key_file, PASSWORD)
    assert again.certificate == pki.member_sign.certificate
    assert again.key.to_int() == pki.member_sign.key.to_int()
    with pytest.raises(WrongPassword):
        CertifiedKey.from_files(tmp_path / "tls" / "member.crt", key_file, b"not the password")
    with pytest.raises(InvalidInput, match="already exists"):
        pki.member_sign.write(tmp_path / "tls" / "member.crt", key_file, PASSWORD)


def test_a_key_that_does_not_belong_to_the_certificate_is_refused(pki):
    with pytest.raises(InvalidKey, match="does not belong to the certificate"):
        CertifiedKey(certificate=pki.gateway_sign.certificate, key=pki.gateway_enc.key)


def test_a_certificate_file_with_two_certificates_is_not_one_pair(pki, tmp_path):
    (tmp_path / "two.crt").write_bytes(pki.member_sign.certificate_pem() + pki.member_enc.certificate_pem())
    (tmp_path / "member.key").write_bytes(pki.member_sign.key.to_pem(PASSWORD))
    with pytest.raises(InvalidInput, match="expected one PEM CERTIFICATE block, found 2"):
        CertifiedKey.from_files(tmp_path / "two.crt", tmp_path / "member.key", PASSWORD)


def test_garbage_is_not_a_certificate(pki):
    with pytest.raises(InvalidInput, match="not an X.509 certificate"):
        CertifiedKey(certificate=b"\x30\x03\x02\x01\x01", key=pki.member_sign.key)


def test_trust_needs_at_least_one_certificate_and_reads_several(pki):
    both = pki.ca.certificate_pem + pki.other_ca.certificate_pem
    assert len(load_trust(both)) == 2
    with pytest.raises(InvalidInput, match="no CERTIFICATE"):
        load_trust(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_revocation_lists_load_from_pem_or_der_and_nothing_else(pki):
    pem = pki.ca.revocation_list([], number=1) + pki.other_ca.revocation_list([], number=1)
    ders = load_revocations(pem)
    assert len(ders) == 2
    assert load_revocations(ders[0]) == ders[:1]
    with pytest.raises(InvalidInput, match="X509 CRL blocks"):
        load_revocations(pki.ca.certificate_pem)
    with pytest.raises(InvalidInput, match="not an X.509 CRL"):
        load_revocations(b"\x30\x00")


def test_an_existing_certificate_file_stops_the_key_being_written_too(pki, tmp_path):
    (tmp_path / "member.crt").write_bytes(b"someone else's")
    with pytest.raises(InvalidInput, match="already exists"):
        pki.member_sign.write(tmp_path / "member.crt", tmp_path / "member.key", PASSWORD)
    assert not (tmp_path / "member.key").exists()
