"""The errors of GM TLS: one class for every failed handshake, one for a missing or unfit TLS library."""

from __future__ import annotations

from typing import Any

from ..errors import ShanchengError

__all__ = ["GmTlsError", "HandshakeError", "TlsLibraryError"]


class GmTlsError(ShanchengError):
    """A GM TLS connection failed (after its handshake: a bad record, a reset, a closed peer)."""


class HandshakeError(GmTlsError):
    """A TLCP or RFC 8998 handshake failed; ``reason`` is the TLS library's own words, one line.

    Raised on both sides, whatever went wrong: no shared suite, a certificate from another CA, an expired one, a
    missing client certificate, a peer that closed the connection or spoke something other than TLS.
    """

    def __init__(self, reason: str, *, side: str) -> None:
        self.reason = reason
        self.side = side
        super().__init__(f"GM TLS handshake failed ({side}): {reason}")

    def diagnostics(self) -> dict[str, Any]:
        return {"reason": self.reason, "side": self.side}


class TlsLibraryError(GmTlsError):
    """The TLS library could not be loaded, lacks a function GM TLS needs, or refused a configuration."""
