"""Organisations API: the member organisations as Governance holds them (id, name, roles, active), so that pages
name an organisation rather than show its number.

Served from the gateway's :class:`~shancheng.apps.gateway.directory.OrgDirectory` (``services.orgs``: read from
Governance in JSON-RPC batches, kept for :data:`~shancheng.apps.gateway.directory.CACHE_SECONDS`). Any signed-in
reader may list them (names and roles are public on the chain).

    GET /api/v1/orgs  ->  [{"id": 1, "name": "hospital", "roles": ["hospital"], "active": true}, ...]
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ..deps import ROLES, Principal, ServicesDep, require
from .auth import PROBLEMS

__all__ = ["OrgOut", "router"]

router = APIRouter(tags=["network"])

Reader = Annotated[Principal, Depends(require(*ROLES))]


class OrgOut(BaseModel):
    id: int = Field(description="the organisation id in Governance")
    name: str
    roles: list[str] = Field(description="its Governance organisation roles (Roles.sol ORG_*), lower case")
    active: bool = Field(description="false when suspended by a vote")


@router.get("/api/v1/orgs", response_model=list[OrgOut], responses=PROBLEMS,
            summary="the member organisations: id, name, roles (from Governance)")
def orgs(_: Reader, services: ServicesDep) -> list[OrgOut]:
    return [OrgOut(**asdict(org)) for org in services.orgs.all()]
