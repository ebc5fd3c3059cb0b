"""Nonces for many concurrent senders: one lock per sender, the next nonce kept in memory, resynchronised from
the node's ``pending`` count when the node says a nonce is too low (another writer used the account, or the node
restarted and lost its pool).

>>> nonces = SenderNonces(lambda address: 7)
>>> with nonces.reserve("0xabc") as slot:
...     slot.nonce
7
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["NonceSlot", "SenderNonces"]


class NonceSlot:
    """A nonce reserved for one transaction; :meth:`use` marks it spent (else the next reservation reuses it)."""

    __slots__ = ("nonce", "used")

    def __init__(self, nonce: int) -> None:
        self.nonce = nonce
        self.used = False

    def use(self) -> None:
        self.used = True


class SenderNonces:
    """Hands out the next nonce of each sender, one transaction at a time per sender; ``pending_count(address)``
    reads the node's ``eth_getTransactionCount(pending)``."""

    def __init__(self, pending_count: Callable[[str], int]) -> None:
        self._pending_count = pending_count
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._next: dict[str, int] = {}

    def _lock(self, address: str) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(address)
            if lock is None:
                lock = self._locks[address] = threading.Lock()
            return lock

    @contextmanager
    def reserve(self, address: str) -> Iterator[NonceSlot]:
        """Hold ``address``'s lock while a transaction with the yielded nonce is signed and sent; the nonce is
        consumed only if the slot was marked used (a failed send leaves no gap)."""
        key = address.lower()
        with self._lock(key):
            if key not in self._next:
                self._next[key] = self._pending_count(address)
            slot = NonceSlot(self._next[key])
            yield slot
            if slot.used:
                self._next[key] = slot.nonce + 1

    def resync(self, address: str) -> None:
        """Forget the cached nonce of ``address``; the next reservation reads the node's pending count.
        Must not be called while holding a reservation of the same address (use :meth:`resync_locked`)."""
        key = address.lower()
        with self._lock(key):
            self._next.pop(key, None)

    def resync_locked(self, address: str, slot: NonceSlot) -> None:
        """Inside a reservation: re-read the pending count into ``slot``."""
        key = address.lower()
        slot.nonce = self._pending_count(address)
        self._next[key] = slot.nonce
