"""Organisations API: the member organisations as Governance holds them (id, name, roles, active), so that pages
name an organisation rather than show its number.

Read from the Governance contract through the SDK's client (``orgCount``, then ``orgName``, ``orgRoles`` and
``orgActive`` of each id) and kept for :data:`CACHE_SECONDS`: organisations are admitted or suspended by a vote, a
rare event, while every page asks. Any signed-in reader may list them (names and roles are public on the chain).

    GET /api/v1/orgs  ->  [{"id": 1, "name": "hospital", "roles": ["hospital"], "active": true}, ...]
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from shancheng.sdk import Client
from shancheng.sdk.domain import OrgRole

from ..deps import ROLES, Principal, ServicesDep, require
from .auth import PROBLEMS

__all__ = ["CACHE_SECONDS", "OrgOut", "member_orgs", "router"]

router = APIRouter(tags=["network"])

Reader = Annotated[Principal, Depends(require(*ROLES))]
#: how long a read of the organisations is served before Governance is asked again
CACHE_SECONDS = 30.0
#: at most this many organisations are read (Governance has no limit; a page does)
MAX_ORGS = 1000


class OrgOut(BaseModel):
    id: int = Field(description="the organisation id in Governance")
    name: str
    roles: list[str] = Field(description="its Governance organisation roles (Roles.sol ORG_*), lower case")
    active: bool = Field(description="false when suspended by a vote")


def _role_names(flags: int) -> list[str]:
    return [str(role.name).lower() for role in OrgRole if flags & role]


def _read(client: Client) -> list[OrgOut]:
    governance = client.governance
    (count,) = client.view(governance, "orgCount")
    orgs = []
    for org_id in range(1, min(int(count), MAX_ORGS) + 1):
        (name,) = client.view(governance, "orgName", org_id)
        (roles,) = client.view(governance, "orgRoles", org_id)
        (active,) = client.view(governance, "orgActive", org_id)
        orgs.append(OrgOut(id=org_id, name=str(name), roles=_role_names(int(roles)), active=bool(active)))
    return orgs


_cache: weakref.WeakKeyDictionary[Client, tuple[float, list[OrgOut]]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def member_orgs(client: Client, *, max_age: float = CACHE_SECONDS) -> list[OrgOut]:
    """The member organisations, read through ``client`` at most once per ``max_age`` seconds."""
    with _lock:
        cached = _cache.get(client)
        if cached is not None and time.monotonic() - cached[0] < max_age:
            return cached[1]
        orgs = _read(client)  # under the lock: concurrent pages wait for one read instead of making their own
        _cache[client] = (time.monotonic(), orgs)
        return orgs


@router.get("/api/v1/orgs", response_model=list[OrgOut], responses=PROBLEMS,
            summary="the member organisations: id, name, roles (from Governance)")
def orgs(_: Reader, services: ServicesDep) -> list[OrgOut]:
    return member_orgs(services.client)
