"""Keys and X.509 certificates as the TLS library's C objects: parse, serialise, build and SM2-sign.

Private module.  The C objects are owned by :class:`Owned` handles, freed exactly once.  A certificate is
signed with SM3 and SM2 over the distinguishing ID ``1234567812345678`` (GM/T 0009), the ID Tongsuo verifies
with, so our certificates verify in Tongsuo, in ``tjfoc/gmsm`` and in OpenSSL 3 given ``-vfyopt distid:...``.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import functools
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..crypto.sm2 import DEFAULT_UID
from . import _binding as b
from .errors import TlsLibraryError

__all__ = [
    "CertificateSpec",
    "Owned",
    "certificate_der",
    "load_certificate",
    "load_crl",
    "load_private_key",
    "load_public_key",
    "sign_certificate",
    "sign_crl",
]


class Owned:
    """A C object we own, freed by ``free`` exactly once: on :meth:`close` or when collected."""

    __slots__ = ("__weakref__", "_finalizer", "ptr")

    def __init__(self, ptr: int, free: Callable[[int], None]) -> None:
        self.ptr = ptr
        self._finalizer = weakref.finalize(self, free, ptr)

    def close(self) -> None:
        self._finalizer()


def _fail(lib: b.Library, what: str) -> TlsLibraryError:
    reasons = b.error_reasons(lib)
    return TlsLibraryError(f"{what}: {'; '.join(reasons) if reasons else 'refused by the TLS library'}")


def _d2i(lib: b.Library, parse: Any, free: Callable[[int], None], der: bytes, what: str) -> Owned:
    buf = ctypes.create_string_buffer(der, len(der))
    cursor = ctypes.c_void_p(ctypes.addressof(buf))
    ptr = parse(None, ctypes.byref(cursor), len(der))
    if not ptr:
        raise _fail(lib, f"cannot parse the {what}")
    owned = Owned(int(ptr), free)
    if cursor.value != ctypes.addressof(buf) + len(der):
        owned.close()
        raise TlsLibraryError(f"the {what} has trailing bytes after its DER")
    return owned


def load_certificate(lib: b.Library, der: bytes) -> Owned:
    return _d2i(lib, lib.d2i_X509, lib.X509_free, der, "certificate")


def load_crl(lib: b.Library, der: bytes) -> Owned:
    return _d2i(lib, lib.d2i_X509_CRL, lib.X509_CRL_free, der, "certificate revocation list")


def _as_sm2(lib: b.Library, owned: Owned, what: str) -> Owned:
    pkey = owned.ptr
    if lib.EVP_PKEY_is_sm2(pkey) != 1:
        owned.close()
        raise TlsLibraryError(f"the {what} is not on the SM2 curve")
    if lib.EVP_PKEY_id(pkey) != b.EVP_PKEY_SM2 and lib.EVP_PKEY_set_alias_type(pkey, b.EVP_PKEY_SM2) != 1:
        owned.close()
        raise _fail(lib, f"cannot use the {what} as an SM2 key")
    return owned


def load_private_key(lib: b.Library, pkcs8_der: bytes) -> Owned:
    return _as_sm2(lib, _d2i(lib, lib.d2i_AutoPrivateKey, lib.EVP_PKEY_free, pkcs8_der, "private key"), "private key")


def load_public_key(lib: b.Library, spki_der: bytes) -> Owned:
    return _as_sm2(lib, _d2i(lib, lib.d2i_PUBKEY, lib.EVP_PKEY_free, spki_der, "public key"), "public key")


def _i2d(lib: b.Library, serialise: Any, obj: int, what: str) -> bytes:
    size = serialise(obj, None)
    if size <= 0:
        raise _fail(lib, f"cannot serialise the {what}")
    buf = ctypes.create_string_buffer(size)
    cursor = ctypes.c_void_p(ctypes.addressof(buf))
    if serialise(obj, ctypes.byref(cursor)) != size:
        raise _fail(lib, f"cannot serialise the {what}")
    return buf.raw


def certificate_der(lib: b.Library, x509: int) -> bytes:
    return _i2d(lib, lib.i2d_X509, x509, "certificate")


@dataclass(frozen=True)
class CertificateSpec:
    """What goes into one certificate besides its keys (names as (attribute, value) pairs, e.g. ("CN", "node0"))."""

    subject: Sequence[tuple[str, str]]
    serial: bytes
    not_before: dt.datetime
    not_after: dt.datetime
    extensions: Sequence[tuple[int, str]]


def _name(lib: b.Library, parts: Sequence[tuple[str, str]]) -> Owned:
    name = Owned(lib.X509_NAME_new(), lib.X509_NAME_free)
    for field, value in parts:
        data = value.encode("utf-8")
        added = lib.X509_NAME_add_entry_by_txt(name.ptr, field.encode("ascii"), b.MBSTRING_UTF8, data, len(data), -1, 0)
        if added != 1:
            raise _fail(lib, f"cannot put {field}={value!r} into a certificate name")
    return name


def _check(lib: b.Library, ok: bool, what: str) -> None:
    if not ok:
        raise _fail(lib, what)


def _set_time(lib: b.Library, setter: Any, obj: int, when: dt.datetime) -> None:
    t = lib.ASN1_TIME_set(None, int(when.timestamp()))
    _check(lib, bool(t), "cannot encode a time")
    try:
        _check(lib, setter(obj, t) == 1, "cannot set a time")
    finally:
        lib.ASN1_TIME_free(t)


def _set_integer(lib: b.Library, setter: Callable[[int], int], value: bytes) -> None:
    """``setter(asn1_integer)`` with ``value`` (big-endian) as an ASN1_INTEGER it copies."""
    bn = lib.BN_bin2bn(value, len(value), None)
    _check(lib, bool(bn), "cannot encode an integer")
    try:
        asn1 = lib.BN_to_ASN1_INTEGER(bn, None)
        _check(lib, bool(asn1), "cannot encode an integer")
        try:
            _check(lib, setter(asn1) == 1, "cannot set an integer")
        finally:
            lib.ASN1_INTEGER_free(asn1)
    finally:
        lib.BN_free(bn)


def _add_extensions(
    lib: b.Library, add: Callable[[int], int], extensions: Sequence[tuple[int, str]], *, issuer: int,
    subject: int | None = None, crl: int | None = None,
) -> None:
    v3ctx = ctypes.create_string_buffer(128)  # struct v3_ext_ctx: an int and six pointers (56 bytes) in 8.3.2
    lib.X509V3_set_ctx(ctypes.addressof(v3ctx), issuer, subject, None, crl, 0)
    for nid, value in extensions:
        ext = lib.X509V3_EXT_conf_nid(None, ctypes.addressof(v3ctx), nid, value.encode("ascii"))
        _check(lib, bool(ext), f"cannot make the extension {value!r}")
        try:
            _check(lib, add(ext) == 1, f"cannot add the extension {value!r}")
        finally:
            lib.X509_EXTENSION_free(ext)


def _sm2_sign(lib: b.Library, sign_ctx: Callable[[int, int], int], obj: int, issuer_key: Owned) -> None:
    pctx = lib.EVP_PKEY_CTX_new(issuer_key.ptr, None)
    _check(lib, bool(pctx), "cannot start an SM2 signature")
    mctx = lib.EVP_MD_CTX_new()
    try:
        _check(lib, bool(mctx), "cannot start an SM2 signature")
        _check(
            lib, lib.EVP_PKEY_CTX_ctrl(pctx, -1, -1, b.EVP_PKEY_CTRL_SET1_ID, len(DEFAULT_UID), DEFAULT_UID) > 0,
            "cannot set the SM2 distinguishing ID",
        )
        lib.EVP_MD_CTX_set_pkey_ctx(mctx, pctx)
        _check(lib, lib.EVP_DigestSignInit(mctx, None, lib.EVP_sm3(), None, issuer_key.ptr) == 1,
               "cannot start an SM2 signature")
        _check(lib, sign_ctx(obj, mctx) > 0, "cannot SM2-sign")
    finally:
        lib.EVP_MD_CTX_free(mctx)  # does not free pctx: set_pkey_ctx leaves it ours
        lib.EVP_PKEY_CTX_free(pctx)


def sign_certificate(
    lib: b.Library, spec: CertificateSpec, *, subject_public_key: Owned, issuer_key: Owned, issuer: Owned | None,
) -> bytes:
    """A DER X.509 v3 certificate for ``subject_public_key``; ``issuer`` None makes it self-signed."""
    x509 = Owned(lib.X509_new(), lib.X509_free)
    try:
        _check(lib, bool(x509.ptr) and lib.X509_set_version(x509.ptr, 2) == 1, "cannot make a certificate")
        _set_integer(lib, lambda asn1: int(lib.X509_set_serialNumber(x509.ptr, asn1)), spec.serial)
        subject = _name(lib, spec.subject)
        _check(lib, lib.X509_set_subject_name(x509.ptr, subject.ptr) == 1, "cannot set the subject name")
        issuer_name = lib.X509_get_subject_name(issuer.ptr) if issuer is not None else subject.ptr
        _check(lib, lib.X509_set_issuer_name(x509.ptr, issuer_name) == 1, "cannot set the issuer name")
        _set_time(lib, lib.X509_set1_notBefore, x509.ptr, spec.not_before)
        _set_time(lib, lib.X509_set1_notAfter, x509.ptr, spec.not_after)
        _check(lib, lib.X509_set_pubkey(x509.ptr, subject_public_key.ptr) == 1, "cannot set the public key")
        _add_extensions(lib, lambda ext: int(lib.X509_add_ext(x509.ptr, ext, -1)), spec.extensions,
                        issuer=issuer.ptr if issuer is not None else x509.ptr, subject=x509.ptr)
        _sm2_sign(lib, lib.X509_sign_ctx, x509.ptr, issuer_key)
        return certificate_der(lib, x509.ptr)
    finally:
        x509.close()


def sign_crl(
    lib: b.Library, *, issuer: Owned, issuer_key: Owned, number: int, this_update: dt.datetime,
    next_update: dt.datetime, revoked: Sequence[tuple[int, dt.datetime]],
) -> bytes:
    """A DER X.509 v2 CRL of ``issuer`` listing ``revoked`` (serial, revocation time), with its number."""
    crl = Owned(lib.X509_CRL_new(), lib.X509_CRL_free)
    try:
        _check(lib, bool(crl.ptr) and lib.X509_CRL_set_version(crl.ptr, 1) == 1, "cannot make a CRL")
        _check(lib, lib.X509_CRL_set_issuer_name(crl.ptr, lib.X509_get_subject_name(issuer.ptr)) == 1,
               "cannot set the CRL issuer")
        _set_time(lib, lib.X509_CRL_set1_lastUpdate, crl.ptr, this_update)
        _set_time(lib, lib.X509_CRL_set1_nextUpdate, crl.ptr, next_update)
        for serial, when in revoked:
            entry = lib.X509_REVOKED_new()
            _check(lib, bool(entry), "cannot make a CRL entry")
            try:
                _set_integer(lib, functools.partial(lib.X509_REVOKED_set_serialNumber, entry),
                             serial.to_bytes((serial.bit_length() + 7) // 8 or 1, "big"))
                _set_time(lib, lib.X509_REVOKED_set_revocationDate, entry, when)
                _check(lib, lib.X509_CRL_add0_revoked(crl.ptr, entry) == 1, "cannot add a CRL entry")
            except BaseException:
                lib.X509_REVOKED_free(entry)
                raise
        _set_integer(lib, lambda asn1: int(lib.X509_CRL_add1_ext_i2d(crl.ptr, b.NID_crl_number, asn1, 0, 0)),
                     number.to_bytes((number.bit_length() + 7) // 8 or 1, "big"))
        _add_extensions(lib, lambda ext: int(lib.X509_CRL_add_ext(crl.ptr, ext, -1)),
                        [(b.NID_authority_key_identifier, "keyid:always")], issuer=issuer.ptr, crl=crl.ptr)
        _check(lib, lib.X509_CRL_sort(crl.ptr) == 1, "cannot sort the CRL")
        _sm2_sign(lib, lib.X509_CRL_sign_ctx, crl.ptr, issuer_key)
        return _i2d(lib, lib.i2d_X509_CRL, crl.ptr, "CRL")
    finally:
        crl.close()
