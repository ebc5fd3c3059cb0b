"""A certificate and its SM2 private key, and the consortium's trusted CA certificates.

A :class:`CertifiedKey` is what a TLS endpoint presents: TLCP takes two (a *sign* pair and an *enc* pair), RFC 8998
takes one.  On disk the certificate is PEM (mode 0644) and the key is the SDK's key file format, PKCS#8 encrypted
with scrypt + SM4-CBC (mode 0600), the same as ``shancheng keys new`` writes, so OpenSSL 3 reads both.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from ..crypto import SM2PrivateKey
from ..crypto.pem import MAX_PEM_LEN, pem_blocks, pem_encode
from ..errors import InvalidInput, InvalidKey
from ..files import read_small_file, write_private_file
from . import _binding, _x509

__all__ = ["CertifiedKey", "certificate_info", "load_revocations", "load_trust"]

MAX_CERTIFICATE_LEN = 16 * 1024
MAX_TRUSTED = 32
MAX_CRL_LEN = MAX_PEM_LEN  # 64 KiB: some 1 500 revoked certificates, for a consortium of dozens of members


def _one_certificate(data: bytes) -> bytes:
    """DER of the single certificate in ``data`` (PEM or DER)."""
    if data.lstrip().startswith(b"-----BEGIN"):
        ders = [der for label, der in pem_blocks(data) if label == "CERTIFICATE"]
        if len(ders) != 1:
            raise InvalidInput(f"expected one PEM CERTIFICATE block, found {len(ders)}")
        data = ders[0]
    if not data or len(data) > MAX_CERTIFICATE_LEN:
        raise InvalidInput(f"a certificate must be 1 to {MAX_CERTIFICATE_LEN} bytes of DER")
    try:
        x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise InvalidInput(f"not an X.509 certificate: {str(exc).splitlines()[0][:120]}") from exc
    return data


def certificate_info(der: bytes) -> x509.Certificate:
    """The parsed certificate (subject, validity, extensions; its SM2 key is not parsed here)."""
    return x509.load_der_x509_certificate(_one_certificate(der))


def load_trust(ca: bytes | Path) -> tuple[bytes, ...]:
    """The DER certificates of a trust PEM (bytes or a file): 1 to 32 ``CERTIFICATE`` blocks, never none."""
    data = read_small_file(str(ca), limit=MAX_PEM_LEN, what="CA file") if isinstance(ca, Path) else ca
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidInput("the CA must be PEM bytes or a path")
    ders = [der for label, der in pem_blocks(bytes(data)) if label == "CERTIFICATE"]
    if not ders:
        raise InvalidInput("the CA PEM holds no CERTIFICATE block: a TLS peer cannot be checked against nothing")
    if len(ders) > MAX_TRUSTED:
        raise InvalidInput(f"the CA PEM holds more than {MAX_TRUSTED} certificates")
    return tuple(_one_certificate(der) for der in ders)


def load_revocations(crl: bytes | Path) -> tuple[bytes, ...]:
    """The DER CRLs of a PEM (bytes or a file) with 1 to 32 ``X509 CRL`` blocks, or of one DER CRL."""
    data = read_small_file(str(crl), limit=MAX_CRL_LEN, what="CRL file") if isinstance(crl, Path) else crl
    if not isinstance(data, (bytes, bytearray)) or len(data) > MAX_CRL_LEN:
        raise InvalidInput(f"the CRL must be PEM or DER bytes (at most {MAX_CRL_LEN}) or a path")
    data = bytes(data)
    if data.lstrip().startswith(b"-----BEGIN"):
        ders = [der for label, der in pem_blocks(data) if label == "X509 CRL"]
    else:
        ders = [data]
    if not ders or len(ders) > MAX_TRUSTED:
        raise InvalidInput(f"the CRL PEM must hold 1 to {MAX_TRUSTED} X509 CRL blocks")
    for der in ders:
        try:
            x509.load_der_x509_crl(der)
        except ValueError as exc:
            raise InvalidInput(f"not an X.509 CRL: {str(exc).splitlines()[0][:120]}") from exc
    return tuple(ders)


@dataclass(frozen=True, repr=False)
class CertifiedKey:
    """An X.509 certificate (DER) and the SM2 private key of its subject; the two are checked to match."""

    certificate: bytes
    key: SM2PrivateKey

    def __post_init__(self) -> None:
        if not isinstance(self.key, SM2PrivateKey):
            raise InvalidInput("key must be an SM2PrivateKey")
        object.__setattr__(self, "certificate", _one_certificate(bytes(self.certificate)))
        lib = _binding.library()
        cert = _x509.load_certificate(lib, self.certificate)
        pkey = _x509.load_private_key(lib, self.key.to_der())
        try:
            if lib.X509_check_private_key(cert.ptr, pkey.ptr) != 1:
                _binding.error_reasons(lib)
                raise InvalidKey(f"the private key does not belong to the certificate of {self.subject}")
        finally:
            cert.close()
            pkey.close()

    @property
    def subject(self) -> str:
        """The certificate's subject, RFC 4514 (``CN=node0,OU=node,O=Shancheng``)."""
        return certificate_info(self.certificate).subject.rfc4514_string()

    @property
    def serial(self) -> int:
        """The certificate's serial number (what a CRL lists)."""
        return int(certificate_info(self.certificate).serial_number)

    @property
    def not_after(self) -> dt.datetime:
        return certificate_info(self.certificate).not_valid_after_utc

    def certificate_pem(self) -> bytes:
        return pem_encode(self.certificate, "CERTIFICATE")

    @classmethod
    def from_pem(cls, certificate: bytes, key: bytes, password: bytes | None) -> CertifiedKey:
        return cls(certificate=_one_certificate(certificate), key=SM2PrivateKey.from_pem(key, password))

    @classmethod
    def from_files(cls, certificate: str | Path, key: str | Path, password: bytes | None) -> CertifiedKey:
        """Read a certificate file (PEM or DER) and a key file (encrypted unless made for development)."""
        return cls.from_pem(
            read_small_file(str(certificate), limit=MAX_CERTIFICATE_LEN * 2, what="certificate file"),
            read_small_file(str(key), limit=MAX_PEM_LEN, what="key file"),
            password,
        )

    def write(self, certificate: str | Path, key: str | Path, password: bytes, *, force: bool = False) -> None:
        """Write the certificate (PEM, 0644) and the key (encrypted with ``password``, 0600, never via a symlink).

        Without ``force`` nothing is written if either file exists.
        """
        if not force:
            for path in (certificate, key):
                if os.path.lexists(path):
                    raise InvalidInput(f"{path} already exists; refusing to overwrite it (use --force)")
        write_private_file(Path(key), self.key.to_pem(password) + self.key.public_key().to_pem(), force=force)
        write_private_file(Path(certificate), self.certificate_pem(), force=force)
        os.chmod(certificate, 0o644)  # a certificate is public; the folder stays as the caller made it

    def __repr__(self) -> str:
        return f"CertifiedKey({self.subject})"
