"""FastAPI dependencies of the gateway's routers: the acting principal, role checks, the services.

The gateway's middleware authenticates every request once (API token, SM2-signed request or browser session; see
:mod:`shancheng.apps.gateway.auth`) and leaves the result in ``request.state.principal`` (a :class:`Principal` or
None); the dependencies below read it.

>>> from fastapi import APIRouter, Depends
>>> router = APIRouter()
>>> @router.get("/api/v1/example")
... def example(who: Principal = Depends(require("doctor", "admin"))) -> dict[str, str]:
...     return {"subject": who.subject}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from fastapi import Request

from .problems import Problem

if TYPE_CHECKING:
    from .app import Services

__all__ = ["ROLES", "Principal", "current_principal", "get_services", "optional_principal", "require"]

ROLES = ("admin", "doctor", "pharmacist", "dispenser", "courier", "manufacturer", "distributor", "pharmacy",
         "station_operator", "data_steward", "regulator", "auditor")

Via = Literal["token", "sm2", "session"]


@dataclass(frozen=True)
class Principal:
    """Who acts: a subject of the gateway's organisation with one role, and how it authenticated."""

    subject: str
    org: str
    org_id: int
    role: str
    via: Via
    token_id: str | None = None
    #: the credential used, as the audit log records it: ``token:<id>``, ``sm2:<key id>``, ``session:token:<id>``
    #: (a browser session made from a token) or ``oidc:<issuer> <subject>``
    credential: str | None = None
    #: who created this credential in the subject's name through the API (an administrator), None when the subject
    #: created it or it was provisioned on the gateway's host: a delegated credential never signs with the subject's
    #: staff key
    delegated_by: str | None = None

    @property
    def key(self) -> str:
        """A stable name of this principal (idempotency keys and audit entries are scoped by it)."""
        return f"{self.org}/{self.subject}/{self.role}"


def get_services(request: Request) -> Services:
    """The running gateway's :class:`~shancheng.apps.gateway.app.Services`."""
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        raise Problem(status=503, title="Starting", detail="the gateway is not started", type_suffix="starting")
    return services


def optional_principal(request: Request) -> Principal | None:
    """The authenticated principal, or None for an anonymous request; a failed authentication still raises."""
    problem: Problem | None = getattr(request.state, "auth_problem", None)
    if problem is not None:
        raise problem
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal


def current_principal(request: Request) -> Principal:
    """The authenticated principal (401 problem when the request carries no valid credentials)."""
    principal = optional_principal(request)
    if principal is None:
        raise Problem(status=401, detail="authentication needed: an API token, an SM2 signature or a session",
                      type_suffix="unauthenticated", headers={"WWW-Authenticate": 'Bearer realm="shancheng"'})
    return principal


def require(*roles: str) -> Callable[[Request], Principal]:
    """A dependency returning the principal when its role is one of ``roles`` (403 problem otherwise)."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles: {sorted(unknown)}")
    allowed = frozenset(roles)

    def dependency(request: Request) -> Principal:
        principal = current_principal(request)
        if principal.role not in allowed:
            raise Problem(status=403, detail=f"role {principal.role} may not do this (needs {', '.join(roles)})",
                          type_suffix="forbidden-role")
        return principal

    dependency.__name__ = "require_" + "_".join(roles)
    return dependency
