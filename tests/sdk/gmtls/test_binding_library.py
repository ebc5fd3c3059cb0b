"""The ctypes binding: it finds the Tongsuo bundled in tongsuopy, refuses a library without NTLS by name, and its
constants (header macros) are the values Tongsuo's headers give, as tongsuopy's compiled binding reports them."""

from __future__ import annotations

import ctypes.util
from pathlib import Path

import pytest
import tongsuopy.backends
from tongsuopy.backends.tongsuo.backend import backend as tongsuopy_backend

from shancheng.sdk.gmtls import TlsLibraryError, _binding, use_library


def test_the_bundled_library_is_the_one_tongsuopy_ships():
    lib = _binding.library()
    assert len(lib.paths) == 1
    assert lib.paths[0].parent == Path(tongsuopy.backends.__file__).parent
    assert lib.paths[0].name.startswith("_tongsuo")
    assert callable(lib.NTLS_method) and callable(lib.SSL_CTX_use_enc_certificate)


def test_a_library_without_ntls_is_refused_naming_what_it_lacks():
    """The system OpenSSL 3 has TLS but no TLCP: loading it as the GM TLS library says so."""
    names = [ctypes.util.find_library("ssl"), ctypes.util.find_library("crypto")]
    assert all(names), "the system libssl/libcrypto are needed for this test"
    with pytest.raises(TlsLibraryError) as caught:
        _binding.Library([Path(name) for name in names])
    message = str(caught.value)
    assert "NTLS_method" in message and "SSL_CTX_enable_ntls" in message and "Tongsuo 8.3" in message
    assert "\n" not in message


def test_a_library_that_cannot_be_loaded_is_a_clear_error(tmp_path):
    with pytest.raises(TlsLibraryError, match="cannot load the TLS library"):
        _binding.Library([tmp_path / "libssl-missing.so"])


def test_an_undeclared_function_is_a_clear_error():
    with pytest.raises(TlsLibraryError, match="not declared"):
        _binding.library().SSL_CTX_set_session_id_context  # noqa: B018


CONSTANTS = [
    "SSL_ERROR_SSL", "SSL_ERROR_WANT_READ", "SSL_ERROR_WANT_WRITE", "SSL_ERROR_SYSCALL", "SSL_ERROR_ZERO_RETURN",
    "SSL_VERIFY_NONE", "SSL_VERIFY_PEER", "SSL_VERIFY_FAIL_IF_NO_PEER_CERT", "SSL_OP_NO_COMPRESSION",
    "SSL_OP_NO_RENEGOTIATION", "SSL_OP_CIPHER_SERVER_PREFERENCE", "SSL_OP_NO_TICKET", "TLSEXT_NAMETYPE_host_name",
    "TLS1_3_VERSION", "MBSTRING_UTF8", "X509_V_OK", "NID_subject_alt_name",
]


@pytest.mark.parametrize("name", CONSTANTS)
def test_a_constant_has_the_value_of_the_compiled_headers(name):
    compiled = tongsuopy_backend._lib
    if not hasattr(compiled, name):
        pytest.skip(f"tongsuopy's binding does not export {name}")
    assert getattr(_binding, name) == getattr(compiled, name)


def test_the_error_queue_is_drained_oldest_first_without_repeats():
    lib = _binding.library()
    lib.ERR_clear_error()
    bad = b"\x30\x03\x02\x01"  # a truncated SEQUENCE
    for _ in range(2):
        buf = ctypes.create_string_buffer(bad, len(bad))
        cursor = ctypes.c_void_p(ctypes.addressof(buf))
        assert not lib.d2i_X509(None, ctypes.byref(cursor), len(bad))
    reasons = _binding.error_reasons(lib)
    assert reasons and len(reasons) == len(set(reasons))
    assert _binding.error_reasons(lib) == []


def test_another_library_can_take_the_bundled_ones_place():
    """``use_library`` with a library file (here the bundled one, under its own path) serves contexts made after."""
    before = _binding.library()
    try:
        swapped = use_library(list(before.paths))
        assert _binding.library() is swapped and swapped is not before
        assert swapped.paths == before.paths
    finally:
        _binding._loaded = before
    assert _binding.library() is before
