"""Loopback ports for the servers tests start (nodes, CometBFT, anvil, gateways, PostgreSQL), chosen so that test
processes running side by side never hand out the same port.

A port is picked, probed and closed here, then bound later by another process: in between, someone else may take
it. Two rules keep that from happening:

* every pick is below the kernel's ephemeral range (``/proc/sys/net/ipv4/ip_local_port_range``), so no outgoing
  connection and no ``bind(0)`` ever lands on it;
* each pytest-xdist worker (``PYTEST_XDIST_WORKER=gw<i>`` of ``PYTEST_XDIST_WORKER_COUNT``) draws from its own
  slice of that space, and within a process the picks go round the slice, so a port is handed out again only
  after the whole slice has been.

>>> port = free_port()
>>> port in worker_ports()
True
>>> base = free_port_block(40)          # e.g. a 4-node network: 10 consecutive ports per node
>>> base % 10 == 0 and base + 39 in worker_ports()
True
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import threading
from pathlib import Path

__all__ = ["free_port", "free_port_block", "worker_ports"]

#: test servers listen from here up to the ephemeral range (ports below are often taken by system services)
LOWEST = 10_000
_EPHEMERAL_DEFAULT = 32_768  # Linux's default start of ip_local_port_range


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _EPHEMERAL_DEFAULT


def worker_ports() -> range:
    """The ports this process may hand out: its xdist worker's slice of ``LOWEST`` .. the ephemeral range."""
    top = min(_ephemeral_start(), 65_536)
    if top - LOWEST < 1_000:  # an unusual ephemeral range: stay above it instead
        top = 65_536
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    span = (top - LOWEST) // workers // 10 * 10
    start = LOWEST + (index % workers) * span
    return range(start, start + span)


class _Cursor:
    """The next candidate of this process's slice (random start, so consecutive runs do not begin on the ports
    the last one left in TIME_WAIT)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: int | None = None

    def take(self, count: int, align: int) -> int:
        ports = worker_ports()
        with self._lock:
            if self._next is None:
                self._next = random.randrange(len(ports))
            offset = -(-self._next // align) * align  # rounded up to ``align``
            if offset + count > len(ports):
                offset = 0
            self._next = offset + count
            return ports.start + offset


_CURSOR = _Cursor()


def free_port_block(count: int, *, align: int = 10) -> int:
    """A base port P (a multiple of ``align``) such that P .. P + count - 1 are all free on 127.0.0.1 now."""
    ports = worker_ports()
    if count > len(ports):
        raise RuntimeError(f"{count} consecutive ports do not fit in this worker's {len(ports)}")
    for _ in range(max(1, len(ports) // max(count, align))):
        base = _CURSOR.take(count, align)
        with contextlib.ExitStack() as held:  # the whole block bound at once, released before return
            try:
                for port in range(base, base + count):
                    probe = held.enter_context(socket.socket())
                    probe.bind(("127.0.0.1", port))  # no SO_REUSEADDR: a port in TIME_WAIT is passed over too
            except OSError:
                continue
        return base
    raise RuntimeError(f"no {count} free consecutive ports left in {ports}")


def free_port() -> int:
    """A free TCP port on 127.0.0.1 that no other test process is handed (for anvil, nodes and RPC servers
    started by tests and benchmarks)."""
    return free_port_block(1, align=1)
