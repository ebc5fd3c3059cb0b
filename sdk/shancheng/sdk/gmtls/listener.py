"""What every GM TLS listener of ours shares: connection counts per source, and contexts remade when the CRL changes.

The JSON-RPC / gateway front (:mod:`.front`) and the node-to-node tunnel (:mod:`.tunnel`) admit a connection only
under ``max_connections`` in all and ``max_connections_per_client`` per source address, counted *before* the
handshake (a connection over a limit is closed at once, logged at most once every 10 s); and they take their
contexts from a :class:`ReloadingContext`, which makes a fresh one when the CRL file changes (inode, size or time,
checked as each connection arrives), so ``shancheng pki revoke`` takes effect on the next connection with no
signal.  A CRL that cannot be read keeps the previous context (logged as an error).  The SDK's GM TLS client
(:class:`shancheng.sdk.client.GmTlsClientConfig`) takes its context from one too, checked as each connection opens.

>>> limits = ConnectionLimits(max_connections=2, max_connections_per_client=1, what="test")
>>> limits.admit("10.0.0.1"), limits.admit("10.0.0.1"), limits.admit("10.0.0.2")
(True, False, True)
>>> limits.release("10.0.0.1"); limits.open
1
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Generic, TypeVar

from ..errors import ShanchengError

__all__ = ["ConnectionLimits", "ReloadingContext"]

log = logging.getLogger("shancheng.gmtls.listener")

C = TypeVar("C")

#: at most one "refused at the limit" line per this many seconds, however many are refused
REFUSAL_LOG_INTERVAL = 10.0


class ConnectionLimits:
    """Open connections in all and per source address; ``admit`` before the handshake, ``release`` after."""

    def __init__(self, *, max_connections: int, max_connections_per_client: int, what: str) -> None:
        self.max_connections = max_connections
        self.max_connections_per_client = max_connections_per_client
        self.what = what
        self.open = 0
        self.refused = 0  # connections closed at a limit
        self._per_client: dict[str, int] = {}
        self._last_refusal_log = -REFUSAL_LOG_INTERVAL

    def admit(self, address: str) -> bool:
        """Count a new connection from ``address``; False (and counted as refused) when over a limit."""
        if self.open >= self.max_connections or \
                self._per_client.get(address, 0) >= self.max_connections_per_client:
            self.refused += 1
            now = time.monotonic()
            if now - self._last_refusal_log >= REFUSAL_LOG_INTERVAL:
                self._last_refusal_log = now
                log.warning("%s: connections refused at the limit (%d so far; latest from %s)", self.what,
                            self.refused, address)
            return False
        self.open += 1
        self._per_client[address] = self._per_client.get(address, 0) + 1
        return True

    async def serve(self, writer: asyncio.StreamWriter, handler: Callable[[str], Awaitable[None]]) -> None:
        """Run ``handler(source address)`` for a new connection if admitted (closed at once if not), counted while
        it runs."""
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else "?"
        if not self.admit(address):
            writer.close()
            return
        try:
            await handler(address)
        finally:
            self.release(address)

    def release(self, address: str) -> None:
        """The end of a connection ``admit`` let in."""
        self.open -= 1
        left = self._per_client[address] - 1
        if left:
            self._per_client[address] = left
        else:
            del self._per_client[address]


class ReloadingContext(Generic[C]):
    """A context made by ``make``; made again when the file ``crl`` changes (see the module docstring)."""

    def __init__(self, make: Callable[[], C], crl: Path | None, *, what: str) -> None:
        self._make = make
        self.crl = crl
        self.what = what
        self._stamp = self._read_stamp()
        self.context = make()
        self.reloads = 0

    def _read_stamp(self) -> tuple[int, int, int] | None:
        if self.crl is None:
            return None
        try:
            st = os.stat(self.crl)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def current(self) -> C:
        stamp = self._read_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self.context = self._make()
                self.reloads += 1
                log.info("%s: CRL %s reloaded", self.what, self.crl)
            except ShanchengError as exc:
                log.error("%s: CRL %s not reloaded, keeping the previous one: %s", self.what, self.crl, exc)
        return self.context
