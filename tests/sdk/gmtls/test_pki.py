"""The consortium PKI: an SM2 CA and sign / enc certificates, checked by OpenSSL 3 as an independent reader."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.gmtls import CertifiedKey, ConsortiumCA


def _parsed(pair: CertifiedKey) -> x509.Certificate:
    return x509.load_der_x509_certificate(pair.certificate)


def test_the_ca_is_a_self_signed_sm2_ca_that_only_signs_certificates(pki):
    cert = _parsed(pki.ca.certified)
    assert cert.issuer == cert.subject
    assert cert.subject.rfc4514_string() == "CN=Shancheng consortium CA,O=Shancheng test"
    assert cert.signature_algorithm_oid.dotted_string == "1.2.156.10197.1.501"  # SM2-with-SM3
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature


def test_sign_and_enc_certificates_carry_the_key_usage_tlcp_expects(pki):
    sign = _parsed(pki.gateway_sign).extensions
    enc = _parsed(pki.gateway_enc).extensions
    sign_usage = sign.get_extension_for_class(x509.KeyUsage)
    enc_usage = enc.get_extension_for_class(x509.KeyUsage)
    assert sign_usage.critical and enc_usage.critical
    assert sign_usage.value.digital_signature and not sign_usage.value.key_encipherment
    assert not sign_usage.value.key_agreement
    assert enc_usage.value.key_encipherment and enc_usage.value.key_agreement and enc_usage.value.data_encipherment
    assert not enc_usage.value.digital_signature
    for extensions in (sign, enc):
        assert not extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}  # a gateway: both
        assert extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName) == ["gateway"]
    assert pki.gateway_sign.key.public_key() != pki.gateway_enc.key.public_key()  # two keys, as TLCP means


def test_a_member_systems_certificates_are_for_clients_only(pki):
    for pair in (pki.member_sign, pki.member_enc):
        eku = _parsed(pair).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_the_subject_names_the_role_and_the_organisation(pki):
    assert pki.member_sign.subject == "CN=member-a,OU=member,O=Shancheng test"
    assert _parsed(pki.member_sign).issuer == _parsed(pki.ca.certified).subject


def test_openssl_verifies_our_certificates_only_with_the_sm2_distinguishing_id(pki, openssl, tmp_path):
    """The signature is SM2 over Z_A with ID 1234567812345678: OpenSSL 3 agrees given that ID, and not without."""
    (tmp_path / "ca.pem").write_bytes(pki.ca.certificate_pem)
    (tmp_path / "leaf.pem").write_bytes(pki.gateway_enc.certificate_pem())
    args = ["verify", "-CAfile", str(tmp_path / "ca.pem")]
    good = openssl(*args[:1], "-vfyopt", "distid:1234567812345678", *args[1:], str(tmp_path / "leaf.pem"))
    assert good.returncode == 0, good.stderr
    assert b"OK" in good.stdout
    bad = openssl(*args, str(tmp_path / "leaf.pem"))
    assert bad.returncode != 0 and b"signature failure" in bad.stdout + bad.stderr


def test_a_certificate_openssl_signed_with_the_distinguishing_id_is_accepted_as_ours(pki, openssl, tmp_path):
    """The other way round: OpenSSL 3 signs a leaf under our CA (``-sigopt distid:...``) and it loads and pairs."""
    key = SM2PrivateKey.generate()
    (tmp_path / "ca.pem").write_bytes(pki.ca.certificate_pem)
    (tmp_path / "ca.key").write_bytes(pki.ca.certified.key.to_pem_unsafe_unencrypted())
    (tmp_path / "leaf.key").write_bytes(key.to_pem_unsafe_unencrypted())
    csr = openssl("req", "-new", "-key", str(tmp_path / "leaf.key"), "-subj", "/O=Shancheng test/CN=from-openssl",
                  "-sigopt", "distid:1234567812345678", "-out", str(tmp_path / "leaf.csr"))
    assert csr.returncode == 0, csr.stderr
    (tmp_path / "ext.cnf").write_text("keyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n")
    signed = openssl("x509", "-req", "-in", str(tmp_path / "leaf.csr"), "-CA", str(tmp_path / "ca.pem"),
                     "-CAkey", str(tmp_path / "ca.key"), "-sm3", "-sigopt", "distid:1234567812345678",
                     "-vfyopt", "distid:1234567812345678", "-days", "2", "-extfile", str(tmp_path / "ext.cnf"),
                     "-out", str(tmp_path / "leaf.pem"))
    assert signed.returncode == 0, signed.stderr
    pair = CertifiedKey.from_pem((tmp_path / "leaf.pem").read_bytes(), (tmp_path / "leaf.key").read_bytes(), None)
    assert pair.subject == "CN=from-openssl,O=Shancheng test"


def test_a_renewal_may_keep_the_key(pki):
    renewed = pki.ca.issue("member-a", role="member", usage="sign", key=pki.member_sign.key)
    assert renewed.key is pki.member_sign.key and renewed.certificate != pki.member_sign.certificate


def test_validity_follows_the_dates_asked_for(pki):
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    pair = pki.ca.issue("node0", role="node", usage="enc", not_before=start, not_after=start + dt.timedelta(days=9))
    cert = _parsed(pair)
    assert cert.not_valid_before_utc == start and cert.not_valid_after_utc == start + dt.timedelta(days=9)
    assert pair.not_after == start + dt.timedelta(days=9)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"role": "admin", "usage": "sign"}, "role must be one of"),
    ({"role": "node", "usage": "both"}, "usage must be"),
    ({"role": "node", "usage": "sign", "dns_names": ["bad name!"]}, "not a DNS name"),
    ({"role": "node", "usage": "sign", "dns_names": "node0"}, "lists of names"),
    ({"role": "node", "usage": "sign", "ip_addresses": ["300.1.1.1"]}, "not an IP address"),
    ({"role": "node", "usage": "sign", "days": 0}, "days must be"),
    ({"role": "node", "usage": "sign", "not_before": dt.datetime(2026, 1, 1)}, "timezone-aware"),
])
def test_bad_certificate_requests_are_refused_with_a_clear_error(pki, kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        pki.ca.issue("node0", **kwargs)


def test_a_subject_name_with_markup_is_refused(pki):
    with pytest.raises(InvalidInput, match="name must be"):
        pki.ca.issue("node0/CN=admin", role="node", usage="sign")


def test_a_leaf_certificate_cannot_serve_as_the_ca(pki):
    with pytest.raises(InvalidInput, match="not a CA certificate"):
        ConsortiumCA(pki.member_sign)


def test_a_revocation_list_is_a_signed_v2_crl_of_the_ca_with_its_number(pki):
    revoked_at = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    start = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    pem = pki.ca.revocation_list([(pki.member_sign.serial, revoked_at)], number=42, days=5, this_update=start)
    crl = x509.load_pem_x509_crl(pem)
    assert crl.issuer == _parsed(pki.ca.certified).subject
    assert crl.signature_algorithm_oid.dotted_string == "1.2.156.10197.1.501"
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 42
    assert (crl.last_update_utc, crl.next_update_utc) == (start, start + dt.timedelta(days=5))
    entry = crl.get_revoked_certificate_by_serial_number(pki.member_sign.serial)
    assert entry is not None and entry.revocation_date_utc == revoked_at
    assert crl.get_revoked_certificate_by_serial_number(pki.member_enc.serial) is None
    assert len(crl) == 1


@pytest.mark.parametrize(("revoked", "number", "message"), [
    ([(0, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))], 1, "positive serial"),
    ([(5, dt.datetime(2026, 1, 1))], 1, "aware datetime"),
    ([], -1, "CRL number"),
])
def test_bad_revocations_are_refused_with_a_clear_error(pki, revoked, number, message):
    with pytest.raises(InvalidInput, match=message):
        pki.ca.revocation_list(revoked, number=number)


def test_no_certificate_outlives_its_ca(pki):
    ca_until = pki.ca.certified.not_after
    with pytest.raises(InvalidInput, match="outlive its CA"):
        pki.ca.issue("node0", role="node", usage="sign", not_after=ca_until + dt.timedelta(seconds=1))


def test_the_ca_reads_back_from_its_files(pki, tmp_path):
    pki.ca.certified.write(tmp_path / "ca.crt", tmp_path / "ca.key", b"ca password!")
    again = ConsortiumCA.from_files(tmp_path / "ca.crt", tmp_path / "ca.key", b"ca password!")
    assert again.certificate_pem == pki.ca.certificate_pem
    issued = again.issue("node1", role="node", usage="enc")
    assert _parsed(issued).issuer == _parsed(pki.ca.certified).subject
