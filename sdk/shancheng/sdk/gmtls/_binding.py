"""The TLS library behind GM TLS, through ctypes: Tongsuo 8.3 as the ``tongsuopy`` wheel bundles it.

Private module: everything that names a C function lives here, so a system Tongsuo (its ``libssl`` and
``libcrypto``) can take the bundled one's place by :func:`use_library` without touching the rest of the
package.  Every function is declared with its C types below; a library that lacks one (an OpenSSL without
NTLS, a Tongsuo built with ``no-ntls``) is refused when it is loaded, with the missing names.

The bundled library is the same file ``tongsuopy`` already loaded for the SDK's SM2, so ``dlopen`` hands back
the one copy in memory.  ctypes releases the GIL around each call, so handshakes in threads run in parallel.
The constants are the values of Tongsuo 8.3.2's headers (OpenSSL 1.1.1 ABI); they are macros, so no library
exports them (``tests/sdk/gmtls/test_binding.py`` holds them to the values ``tongsuopy``'s compiled headers
give).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import TlsLibraryError

__all__ = ["Library", "error_reasons", "library", "use_library"]

_P = ctypes.c_void_p
_I = ctypes.c_int
_L = ctypes.c_long
_S = ctypes.c_char_p
_Z = ctypes.c_size_t
_U = ctypes.c_ulong
_B = ctypes.c_char_p  # byte buffers passed in (ctypes passes bytes objects as char *)
_Out = ctypes.c_void_p  # a buffer we own (ctypes.create_string_buffer) passed by address
_PZ = ctypes.POINTER(ctypes.c_size_t)
_PP = ctypes.POINTER(ctypes.c_void_p)
_VOID = None

# name -> (result type, argument types), as in Tongsuo 8.3.2's include/openssl/*.h
_PROTOTYPES: dict[str, tuple[Any, tuple[Any, ...]]] = {
    # errors
    "ERR_get_error": (_U, ()),
    "ERR_clear_error": (_VOID, ()),
    "ERR_reason_error_string": (_S, (_U,)),
    "ERR_lib_error_string": (_S, (_U,)),
    "X509_verify_cert_error_string": (_S, (_L,)),
    # memory BIOs
    "BIO_s_mem": (_P, ()),
    "BIO_new": (_P, (_P,)),
    "BIO_new_mem_buf": (_P, (_B, _I)),
    "BIO_free": (_I, (_P,)),
    "BIO_read": (_I, (_P, _Out, _I)),
    "BIO_write": (_I, (_P, _B, _I)),
    "BIO_ctrl": (_L, (_P, _I, _L, _P)),
    "BIO_ctrl_pending": (_Z, (_P,)),
    # contexts
    "TLS_method": (_P, ()),
    "NTLS_method": (_P, ()),
    "SSL_CTX_new": (_P, (_P,)),
    "SSL_CTX_free": (_VOID, (_P,)),
    "SSL_CTX_ctrl": (_L, (_P, _I, _L, _P)),
    "SSL_CTX_set_options": (_U, (_P, _U)),
    "SSL_CTX_set_cipher_list": (_I, (_P, _S)),
    "SSL_CTX_set_ciphersuites": (_I, (_P, _S)),
    "SSL_CTX_set_verify": (_VOID, (_P, _I, _P)),
    "SSL_CTX_set_verify_depth": (_VOID, (_P, _I)),
    "SSL_CTX_get_cert_store": (_P, (_P,)),
    "X509_STORE_add_cert": (_I, (_P, _P)),
    "X509_STORE_add_crl": (_I, (_P, _P)),
    "X509_STORE_set_flags": (_I, (_P, _U)),
    "SSL_CTX_use_certificate": (_I, (_P, _P)),
    "SSL_CTX_use_PrivateKey": (_I, (_P, _P)),
    "SSL_CTX_check_private_key": (_I, (_P,)),
    "SSL_CTX_enable_ntls": (_VOID, (_P,)),
    "SSL_CTX_use_sign_certificate": (_I, (_P, _P)),
    "SSL_CTX_use_sign_PrivateKey": (_I, (_P, _P)),
    "SSL_CTX_use_enc_certificate": (_I, (_P, _P)),
    "SSL_CTX_use_enc_PrivateKey": (_I, (_P, _P)),
    "SSL_CTX_enable_sm_tls13_strict": (_VOID, (_P,)),
    # connections
    "SSL_new": (_P, (_P,)),
    "SSL_free": (_VOID, (_P,)),
    "SSL_ctrl": (_L, (_P, _I, _L, _P)),
    "SSL_set_bio": (_VOID, (_P, _P, _P)),
    "SSL_set_connect_state": (_VOID, (_P,)),
    "SSL_set_accept_state": (_VOID, (_P,)),
    "SSL_set1_host": (_I, (_P, _S)),
    "SSL_get0_param": (_P, (_P,)),
    "X509_VERIFY_PARAM_set1_ip_asc": (_I, (_P, _S)),
    "SSL_do_handshake": (_I, (_P,)),
    "SSL_read_ex": (_I, (_P, _Out, _Z, _PZ)),
    "SSL_write_ex": (_I, (_P, _B, _Z, _PZ)),
    "SSL_shutdown": (_I, (_P,)),
    "SSL_get_error": (_I, (_P, _I)),
    "SSL_get_verify_result": (_L, (_P,)),
    "SSL_get_version": (_S, (_P,)),
    "SSL_get_current_cipher": (_P, (_P,)),
    "SSL_CIPHER_get_name": (_S, (_P,)),
    "SSL_get_peer_certificate": (_P, (_P,)),
    # keys and certificates
    "d2i_AutoPrivateKey": (_P, (_P, _PP, _L)),
    "d2i_PUBKEY": (_P, (_P, _PP, _L)),
    "EVP_PKEY_free": (_VOID, (_P,)),
    "EVP_PKEY_is_sm2": (_I, (_P,)),
    "EVP_PKEY_id": (_I, (_P,)),
    "EVP_PKEY_set_alias_type": (_I, (_P, _I)),
    "d2i_X509": (_P, (_P, _PP, _L)),
    "i2d_X509": (_I, (_P, _PP)),
    "X509_new": (_P, ()),
    "X509_free": (_VOID, (_P,)),
    "X509_check_private_key": (_I, (_P, _P)),
    "X509_set_version": (_I, (_P, _L)),
    "X509_set_serialNumber": (_I, (_P, _P)),
    "X509_set_subject_name": (_I, (_P, _P)),
    "X509_set_issuer_name": (_I, (_P, _P)),
    "X509_get_subject_name": (_P, (_P,)),
    "X509_set1_notBefore": (_I, (_P, _P)),
    "X509_set1_notAfter": (_I, (_P, _P)),
    "X509_set_pubkey": (_I, (_P, _P)),
    "X509_add_ext": (_I, (_P, _P, _I)),
    "X509_sign_ctx": (_I, (_P, _P)),
    "X509_NAME_new": (_P, ()),
    "X509_NAME_free": (_VOID, (_P,)),
    "X509_NAME_add_entry_by_txt": (_I, (_P, _S, _I, _B, _I, _I, _I)),
    "d2i_X509_CRL": (_P, (_P, _PP, _L)),
    "i2d_X509_CRL": (_I, (_P, _PP)),
    "X509_CRL_new": (_P, ()),
    "X509_CRL_free": (_VOID, (_P,)),
    "X509_CRL_set_version": (_I, (_P, _L)),
    "X509_CRL_set_issuer_name": (_I, (_P, _P)),
    "X509_CRL_set1_lastUpdate": (_I, (_P, _P)),
    "X509_CRL_set1_nextUpdate": (_I, (_P, _P)),
    "X509_CRL_add0_revoked": (_I, (_P, _P)),
    "X509_CRL_add_ext": (_I, (_P, _P, _I)),
    "X509_CRL_add1_ext_i2d": (_I, (_P, _I, _P, _I, _U)),
    "X509_CRL_sort": (_I, (_P,)),
    "X509_CRL_sign_ctx": (_I, (_P, _P)),
    "X509_REVOKED_new": (_P, ()),
    "X509_REVOKED_free": (_VOID, (_P,)),
    "X509_REVOKED_set_serialNumber": (_I, (_P, _P)),
    "X509_REVOKED_set_revocationDate": (_I, (_P, _P)),
    "X509V3_set_ctx": (_VOID, (_P, _P, _P, _P, _P, _I)),
    "X509V3_EXT_conf_nid": (_P, (_P, _P, _I, _S)),
    "X509_EXTENSION_free": (_VOID, (_P,)),
    "ASN1_TIME_set": (_P, (_P, ctypes.c_int64)),
    "ASN1_TIME_free": (_VOID, (_P,)),
    "BN_bin2bn": (_P, (_B, _I, _P)),
    "BN_free": (_VOID, (_P,)),
    "BN_to_ASN1_INTEGER": (_P, (_P, _P)),
    "ASN1_INTEGER_free": (_VOID, (_P,)),
    "EVP_sm3": (_P, ()),
    "EVP_MD_CTX_new": (_P, ()),
    "EVP_MD_CTX_free": (_VOID, (_P,)),
    "EVP_MD_CTX_set_pkey_ctx": (_VOID, (_P, _P)),
    "EVP_PKEY_CTX_new": (_P, (_P, _P)),
    "EVP_PKEY_CTX_free": (_VOID, (_P,)),
    "EVP_PKEY_CTX_ctrl": (_I, (_P, _I, _I, _I, _I, _P)),
    "EVP_DigestSignInit": (_I, (_P, _PP, _P, _P, _P)),
    "CRYPTO_free": (_VOID, (_P, _S, _I)),
}

# Constants (macros in the headers; see the module docstring).
SSL_ERROR_SSL = 1
SSL_ERROR_WANT_READ = 2
SSL_ERROR_WANT_WRITE = 3
SSL_ERROR_SYSCALL = 5
SSL_ERROR_ZERO_RETURN = 6
SSL_VERIFY_NONE = 0
SSL_VERIFY_PEER = 1
SSL_VERIFY_FAIL_IF_NO_PEER_CERT = 2
SSL_OP_NO_COMPRESSION = 0x00020000
SSL_OP_NO_RENEGOTIATION = 0x40000000
SSL_OP_CIPHER_SERVER_PREFERENCE = 0x00400000
SSL_OP_NO_TICKET = 0x00004000
SSL_CTRL_MODE = 33
SSL_MODE_NO_AUTO_CHAIN = 0x00000008
SSL_CTRL_SET_TLSEXT_HOSTNAME = 55
SSL_CTRL_SET_GROUPS_LIST = 92
SSL_CTRL_SET_SIGALGS_LIST = 98
SSL_CTRL_SET_MIN_PROTO_VERSION = 123
SSL_CTRL_SET_MAX_PROTO_VERSION = 124
TLSEXT_NAMETYPE_host_name = 0
TLS1_3_VERSION = 0x0304
BIO_CTRL_EOF = 2
EVP_PKEY_SM2 = 1172
EVP_PKEY_CTRL_SET1_ID = 0x1000 + 11
MBSTRING_UTF8 = 0x1000
X509_V_OK = 0
NID_subject_key_identifier = 82
NID_key_usage = 83
NID_subject_alt_name = 85
NID_basic_constraints = 87
NID_authority_key_identifier = 90
NID_ext_key_usage = 126
NID_crl_number = 88
X509_V_FLAG_CRL_CHECK = 0x4


class Library:
    """The loaded TLS library: ``lib.SSL_new(ctx)`` calls the C function declared in ``_PROTOTYPES``."""

    def __init__(self, paths: Sequence[Path]) -> None:
        handles = []
        for path in paths:
            try:
                handles.append(ctypes.CDLL(str(path)))
            except OSError as exc:
                raise TlsLibraryError(f"cannot load the TLS library {path}: {exc}") from exc
        missing = []
        for name, (restype, argtypes) in _PROTOTYPES.items():
            for handle in handles:
                try:
                    fn = getattr(handle, name)
                except AttributeError:
                    continue
                fn.restype = restype
                fn.argtypes = argtypes
                setattr(self, name, fn)
                break
            else:
                missing.append(name)
        if missing:
            shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
            raise TlsLibraryError(
                f"the TLS library ({', '.join(map(str, paths))}) lacks {shown}: GM TLS needs Tongsuo 8.3 with NTLS"
            )
        self.paths = tuple(paths)

    def __getattr__(self, name: str) -> Any:  # only reached for names not declared above
        raise TlsLibraryError(f"{name} is not declared in the GM TLS binding")


def _bundled_paths() -> list[Path]:
    import tongsuopy.backends

    found = sorted(Path(tongsuopy.backends.__file__).parent.glob("_tongsuo*.so"))
    if not found:
        raise TlsLibraryError("the tongsuopy wheel holds no _tongsuo*.so: reinstall tongsuopy==1.0.1")
    return found[:1]


_lock = threading.Lock()
_loaded: Library | None = None


def library() -> Library:
    """The TLS library in use: the bundled Tongsuo unless :func:`use_library` chose another."""
    global _loaded
    with _lock:
        if _loaded is None:
            _loaded = Library(_bundled_paths())
        return _loaded


def use_library(paths: Sequence[str | Path]) -> Library:
    """Use the TLS library in ``paths`` (a system Tongsuo: its ``libssl.so`` then ``libcrypto.so``) from now on.

    Contexts made before keep the library they were made with.
    """
    global _loaded
    loaded = Library([Path(p) for p in paths])
    with _lock:
        _loaded = loaded
    return loaded


def error_reasons(lib: Library) -> list[str]:
    """Drain this thread's error queue: the reasons, oldest first, without repeats."""
    reasons: list[str] = []
    while code := lib.ERR_get_error():
        raw = lib.ERR_reason_error_string(code)
        text = raw.decode("ascii", "replace") if raw else f"error {code:#x}"
        if text not in reasons:
            reasons.append(text)
    return reasons
