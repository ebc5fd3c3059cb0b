"""Network addresses: whether a host is this machine's loopback (where a plain listener may stay beside a GM TLS
front, an unauthenticated JSON-RPC may serve, or an ABCI socket may listen).

A light module on purpose (the standard library only): the gateway's settings, the node's JSON-RPC guard, the
ABCI server and the GM TLS front and tunnels all ask it, and none of them should load the EVM or Tongsuo for it.

>>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost"), is_loopback("10.0.0.1")
(True, True, True, False)
>>> is_loopback("example.org")
False
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback"]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and the loopback addresses (127.0.0.0/8, ::1); a name other than ``localhost`` is not
    resolved (it could resolve elsewhere later) and counts as not loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
