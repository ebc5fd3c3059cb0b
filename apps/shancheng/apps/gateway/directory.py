"""The member organisations as Governance holds them (id, name, roles, active), read for one gateway: pages name an
organisation rather than show its number.

:class:`OrgDirectory` reads Governance through the gateway's SDK client — ``orgCount``, then ``orgName``,
``orgRoles`` and ``orgActive`` of every id in one JSON-RPC batch of ``eth_call`` requests (2 round trips; the calls
a busy node refuses are sent again by the SDK's :meth:`~shancheng.sdk.client.RpcClient.batch`) — and keeps the
answer for :data:`CACHE_SECONDS`:
organisations are admitted or suspended by a vote, a rare event, while every page asks. The composition root builds
one directory per gateway (:class:`~.services.Services` ``.orgs``); concurrent readers of one directory wait for
one read instead of making their own, and nothing is shared between gateways.

>>> directory = OrgDirectory(services.client)       # doctest: +SKIP
>>> directory.name(2)                                 # doctest: +SKIP
'pharmacy'
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shancheng.sdk import Client
from shancheng.sdk.client import MalformedReply
from shancheng.sdk.domain import OrgRole
from shancheng.sdk.strict_json import hexbytes, to_hex

__all__ = ["CACHE_SECONDS", "MAX_ORGS", "Org", "OrgDirectory"]

#: how long a read of the organisations is served before Governance is asked again
CACHE_SECONDS = 30.0
#: at most this many organisations are read (Governance has no limit; a page does)
MAX_ORGS = 1000

_FIELDS = ("orgName", "orgRoles", "orgActive")
#: the largest output of one of these calls (a name of at most a few hundred bytes, ABI-encoded)
MAX_REPLY = 64 * 1024


@dataclass(frozen=True)
class Org:
    """One member organisation: its Governance id, name, roles (Roles.sol ``ORG_*``, lower case) and whether it is
    active (false when suspended by a vote)."""

    id: int
    name: str
    roles: list[str]
    active: bool


def role_names(flags: int) -> list[str]:
    """
    >>> role_names(1 | 2)
    ['hospital', 'pharmacy']
    """
    return [str(role.name).lower() for role in OrgRole if flags & role]


class OrgDirectory:
    """See the module docstring; ``clock`` is the cache's (monotonic seconds)."""

    def __init__(self, client: Client, *, max_age: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()  # this directory's: one read at a time, other gateways' are not held up
        self._cached: tuple[float, list[Org]] | None = None
        #: reads of Governance made (each one: orgCount, then one batch of 3N eth_calls)
        self.reads = 0

    def all(self) -> list[Org]:
        """The member organisations by id, read at most once per ``max_age`` seconds."""
        with self._lock:
            cached = self._cached
            if cached is not None and self._clock() - cached[0] < self.max_age:
                return cached[1]
            orgs = self._read()
            self._cached = (self._clock(), orgs)
            return orgs

    def name(self, org_id: int) -> str | None:
        """The name of organisation ``org_id``, None when Governance has no such organisation."""
        return next((org.name for org in self.all() if org.id == org_id), None)

    def _read(self) -> list[Org]:
        client, governance = self.client, self.client.governance
        self.reads += 1
        (count,) = client.view(governance, "orgCount")
        ids = range(1, min(int(count), MAX_ORGS) + 1)
        reads = [(fn, org_id) for org_id in ids for fn in _FIELDS]
        replies = client.rpc.batch([("eth_call", [{"from": client.identity.address, "to": governance.address_hex,
                                                   "data": to_hex(governance.encode(fn, org_id))}, "latest"])
                                    for fn, org_id in reads])
        values: list[Any] = [governance.decode(fn, hexbytes(reply, f"Governance.{fn}({org_id})", error=MalformedReply,
                                                            limit=MAX_REPLY))[0]
                             for (fn, org_id), reply in zip(reads, replies, strict=True)]
        return [Org(id=org_id, name=str(values[3 * i]), roles=role_names(int(values[3 * i + 1])),
                    active=bool(values[3 * i + 2])) for i, org_id in enumerate(ids)]

