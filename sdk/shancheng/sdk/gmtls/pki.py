"""The consortium's SM2 PKI: one CA, and sign and enc certificates for gateways, nodes and member systems.

Every certificate is X.509 v3, SM2 key, SM3-with-SM2 signature over the distinguishing ID ``1234567812345678``,
a random positive 16-byte serial, subject and authority key identifiers; no certificate outlives its CA.  Key
usage follows GB/T 38636 (TLCP):

========  ===========================================  =====================================
kind      keyUsage (critical)                          use
========  ===========================================  =====================================
ca        keyCertSign, cRLSign (CA:TRUE, pathlen 0)    signs the certificates below
sign      digitalSignature                             TLCP sign certificate; RFC 8998's one
enc       keyEncipherment, dataEncipherment,           TLCP enc certificate (ECC key transport,
          keyAgreement                                 ECDHE key agreement)
========  ===========================================  =====================================

End-entity certificates carry extendedKeyUsage serverAuth + clientAuth for gateways and nodes (a node is both) and
clientAuth alone for member systems (a member's certificate cannot pass as a server), and a subjectAltName with the
DNS names and IP addresses given (clients that pass ``server_name`` check it).

>>> ca = ConsortiumCA.create(organisation="Shancheng district")  # doctest: +SKIP
>>> sign, enc = ca.issue_pair("node0", role="node", dns_names=["node0"])  # doctest: +SKIP
>>> sign.write("node0-sign.crt", "node0-sign.key", password)  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.x509.oid import NameOID

from ..crypto import SM2PrivateKey
from ..crypto.pem import pem_encode
from ..errors import InvalidInput
from . import _binding as b
from . import _x509
from .credentials import CertifiedKey, certificate_info

__all__ = ["ROLES", "ConsortiumCA"]

ROLES: Final = ("gateway", "node", "member")
#: extendedKeyUsage by role: a member system is only ever a client, so its certificate cannot serve as a server
_EXTENDED_USAGE: Final = {"gateway": "serverAuth,clientAuth", "node": "serverAuth,clientAuth", "member": "clientAuth"}
_KEY_USAGE: Final = {
    "ca": "critical,keyCertSign,cRLSign",
    "sign": "critical,digitalSignature",
    "enc": "critical,keyEncipherment,dataEncipherment,keyAgreement",
}
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_RE = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
MAX_DAYS: Final = 3650 * 3
MAX_ALT_NAMES: Final = 32


def _check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise InvalidInput(f"{what} must be 1 to 63 letters, digits, spaces, '.', '_' or '-' (got {str(value)[:40]!r})")
    return value


def _alt_names(dns_names: Sequence[str], ip_addresses: Sequence[str]) -> str | None:
    if isinstance(dns_names, str) or isinstance(ip_addresses, str):
        raise InvalidInput("dns_names and ip_addresses are lists of names")
    if len(dns_names) + len(ip_addresses) > MAX_ALT_NAMES:
        raise InvalidInput(f"at most {MAX_ALT_NAMES} DNS names and IP addresses")
    parts = []
    for name in dns_names:
        if not isinstance(name, str) or not _DNS_RE.fullmatch(name):
            raise InvalidInput(f"not a DNS name: {str(name)[:60]!r}")
        parts.append(f"DNS:{name}")
    for ip in ip_addresses:
        try:
            parts.append(f"IP:{ipaddress.ip_address(ip)}")
        except ValueError as exc:
            raise InvalidInput(f"not an IP address: {str(ip)[:60]!r}") from exc
    return ",".join(parts) or None


def _validity(
    not_before: dt.datetime | None, not_after: dt.datetime | None, days: int
) -> tuple[dt.datetime, dt.datetime]:
    if type(days) is not int or not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be 1 to {MAX_DAYS}")
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # a peer's clock a little behind
    end = not_after or start + dt.timedelta(days=days)
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("not_before and not_after must be timezone-aware")
    if end <= start:
        raise InvalidInput("not_after must be later than not_before")
    return start, end


def _serial() -> bytes:
    serial = bytearray(os.urandom(16))
    serial[0] = (serial[0] & 0x7F) | 0x40  # positive (RFC 5280) and never shortened by leading zeros
    return bytes(serial)


class ConsortiumCA:
    """The consortium's certificate authority: its certificate and key, which sign every TLS certificate."""

    def __init__(self, certified: CertifiedKey) -> None:
        info = certificate_info(certified.certificate)
        try:
            constraints = info.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise InvalidInput(f"{certified.subject} is not a CA certificate (basicConstraints CA:TRUE)")
        self.certified = certified

    @classmethod
    def create(
        cls, *, organisation: str, name: str = "Shancheng consortium CA", days: int = 3650,
        not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
    ) -> ConsortiumCA:
        """A new CA with a fresh SM2 key, self-signed."""
        subject = (("O", _check_name(organisation, "organisation")), ("CN", _check_name(name, "CA name")))
        start, end = _validity(not_before, not_after, days)
        key = SM2PrivateKey.generate()
        lib = b.library()
        spec = _x509.CertificateSpec(
            subject=subject, serial=_serial(), not_before=start, not_after=end,
            extensions=((b.NID_basic_constraints, "critical,CA:TRUE,pathlen:0"),
                        (b.NID_key_usage, _KEY_USAGE["ca"]),
                        (b.NID_subject_key_identifier, "hash")),
        )
        private = _x509.load_private_key(lib, key.to_der())
        public = _x509.load_public_key(lib, key.public_key().to_der())
        der = _x509.sign_certificate(lib, spec, subject_public_key=public, issuer_key=private, issuer=None)
        return cls(CertifiedKey(certificate=der, key=key))

    @classmethod
    def from_files(cls, certificate: str | Path, key: str | Path, password: bytes | None) -> ConsortiumCA:
        """The CA as :meth:`CertifiedKey.write` stored it (its key file encrypted with ``password``)."""
        return cls(CertifiedKey.from_files(certificate, key, password))

    @property
    def certificate_pem(self) -> bytes:
        """The trust anchor every endpoint is given as ``ca=``."""
        return self.certified.certificate_pem()

    @property
    def organisation(self) -> str:
        found = certificate_info(self.certified.certificate).subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return str(found[0].value) if found else ""

    def issue(
        self, name: str, *, role: str, usage: str, dns_names: Sequence[str] = (), ip_addresses: Sequence[str] = (),
        days: int = 825, not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
        key: SM2PrivateKey | None = None,
    ) -> CertifiedKey:
        """A certificate for ``name`` (CN) of ``role`` (OU: gateway, node or member) and ``usage`` (sign or enc).

        A fresh SM2 key is made unless ``key`` is given (a renewal that keeps the key).
        """
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
        if usage not in ("sign", "enc"):
            raise InvalidInput("usage must be 'sign' or 'enc'")
        if key is not None and not isinstance(key, SM2PrivateKey):
            raise InvalidInput("key must be an SM2PrivateKey")
        subject = [("OU", role), ("CN", _check_name(name, "name"))]
        if self.organisation:
            subject.insert(0, ("O", self.organisation))
        extensions = [
            (b.NID_basic_constraints, "critical,CA:FALSE"),
            (b.NID_key_usage, _KEY_USAGE[usage]),
            (b.NID_ext_key_usage, _EXTENDED_USAGE[role]),
            (b.NID_subject_key_identifier, "hash"),
            (b.NID_authority_key_identifier, "keyid:always"),
        ]
        alt = _alt_names(dns_names, ip_addresses)
        if alt:
            extensions.append((b.NID_subject_alt_name, alt))
        start, end = _validity(not_before, not_after, days)
        if end > self.certified.not_after:
            until = f"{self.certified.not_after:%Y-%m-%d}"
            raise InvalidInput(f"the certificate would outlive its CA (valid until {until})")
        key = key or SM2PrivateKey.generate()
        lib = b.library()
        spec = _x509.CertificateSpec(subject=subject, serial=_serial(), not_before=start, not_after=end,
                                     extensions=extensions)
        issuer = _x509.load_certificate(lib, self.certified.certificate)
        try:
            der = _x509.sign_certificate(
                lib, spec, subject_public_key=_x509.load_public_key(lib, key.public_key().to_der()),
                issuer_key=_x509.load_private_key(lib, self.certified.key.to_der()), issuer=issuer,
            )
        finally:
            issuer.close()
        return CertifiedKey(certificate=der, key=key)

    def revocation_list(
        self, revoked: Sequence[tuple[int, dt.datetime]], *, number: int, days: int = 7,
        this_update: dt.datetime | None = None,
    ) -> bytes:
        """A signed CRL (PEM) listing ``revoked`` as (certificate serial, when revoked); ``number`` must grow
        with every list the CA issues.  Endpoints given it as ``crl=`` refuse those certificates until
        ``this_update + days``, after which they refuse every peer until a newer list is loaded."""
        if type(number) is not int or not 0 <= number < 1 << 64:
            raise InvalidInput("the CRL number must be an integer from 0 to 2**64 - 1")
        if isinstance(revoked, (str, bytes)) or len(revoked) > 100_000:
            raise InvalidInput("revoked is a list of (serial, revocation time), at most 100 000")
        entries = []
        for item in revoked:
            serial, when = item
            if type(serial) is not int or not 0 < serial < 1 << 160 or not isinstance(when, dt.datetime) \
                    or when.tzinfo is None:
                raise InvalidInput("each revocation is (a positive serial of at most 20 bytes, an aware datetime)")
            entries.append((serial, when))
        start, end = _validity(this_update or dt.datetime.now(dt.UTC), None, days)
        lib = b.library()
        issuer = _x509.load_certificate(lib, self.certified.certificate)
        try:
            key = _x509.load_private_key(lib, self.certified.key.to_der())
            der = _x509.sign_crl(lib, issuer=issuer, issuer_key=key, number=number, this_update=start,
                                 next_update=end, revoked=entries)
        finally:
            issuer.close()
        return pem_encode(der, "X509 CRL")

    def issue_pair(
        self, name: str, *, role: str, dns_names: Sequence[str] = (), ip_addresses: Sequence[str] = (),
        days: int = 825, not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
    ) -> tuple[CertifiedKey, CertifiedKey]:
        """The TLCP double certificate of ``name``: (sign pair, enc pair), two fresh keys, one subject."""
        sign, enc = (
            self.issue(name, role=role, usage=usage, dns_names=dns_names, ip_addresses=ip_addresses, days=days,
                       not_before=not_before, not_after=not_after)
            for usage in ("sign", "enc")
        )
        return sign, enc
