"""FastAPI dependencies of the gateway's routers: the acting principal, role checks, the services
(:data:`ServicesDep`, the one way a router gets the running gateway's :class:`~.services.Services`).

The gateway's middleware authenticates every request once (API token, SM2-signed request or browser session; see
:mod:`shancheng.apps.gateway.auth`) and leaves the result in ``request.state.principal`` (a :class:`Principal` or
None); the dependencies below read it.

>>> from fastapi import APIRouter, Depends
>>> router = APIRouter()
>>> @router.get("/api/v1/example")
... def example(services: ServicesDep, who: Principal = Depends(require("doctor", "admin"))) -> dict[str, str]:
...     return {"subject": who.subject, "org": services.settings.org}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from .principal import ROLES, Principal
from .problems import Problem
from .services import Services

__all__ = ["ROLES", "Principal", "ServicesDep", "current_principal", "get_services", "optional_principal",
           "require", "running_services"]


def running_services(app: Any) -> Services | None:
    """The services of the gateway ``app`` (an ASGI app built by :func:`~.app.create_app`), None before it starts."""
    services = getattr(getattr(app, "state", None), "services", None)
    return services if isinstance(services, Services) else None


def get_services(request: Request) -> Services:
    """The running gateway's :class:`~shancheng.apps.gateway.services.Services` (503 problem before it starts)."""
    services = running_services(request.app)
    if services is None:
        raise Problem(status=503, title="Starting", detail="the gateway is not started", type_suffix="starting")
    return services


#: the running gateway's services, as a router's parameter: ``def route(services: ServicesDep) -> ...``
ServicesDep = Annotated[Services, Depends(get_services)]


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
