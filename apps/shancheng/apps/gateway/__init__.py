"""The gateway of a member organisation: a FastAPI app over the organisation's keys, its node connections and its
database.

Where things are: :mod:`.app` is the composition root (:func:`start_services` builds :class:`Services`, defined in
:mod:`.services`; :func:`create_app` assembles the app); :mod:`.settings` (the TOML configuration); :mod:`.deps`
(the routers' dependencies: principal, roles, :data:`~.deps.ServicesDep`) and :mod:`.principal`; authentication in
:mod:`.auth` (API tokens, SM2-signed requests), :mod:`.sessions` (browser sessions, CSRF) and :mod:`.oidc`;
:mod:`.middleware` (body limit, authentication, CSRF, idempotency), :mod:`.idempotency`, :mod:`.limits`,
:mod:`.security`, :mod:`.problems` (RFC 9457 errors), :mod:`.pagination`; :mod:`.staffkeys` (staff signing keys);
:mod:`.indexer` (the domain events' query tables); :mod:`.directory` (the member organisations, from Governance);
:mod:`.blockproof`; :mod:`.audit` (the hash-chained audit log);
:mod:`.routes` (one router a domain) and :mod:`.cli` (``shancheng gateway ...``).

>>> from shancheng.apps.gateway import GatewaySettings, create_app
>>> settings = GatewaySettings.load("gateway.toml")           # doctest: +SKIP
>>> app = create_app(settings)                                # doctest: +SKIP  (services start in its lifespan)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app, start_services
    from .services import Services
    from .settings import GatewaySettings

__all__ = ["GatewaySettings", "Services", "create_app", "start_services"]


def __getattr__(name: str) -> Any:
    # loaded on first use: the offline audit verifier (python -m shancheng.apps.gateway.audit) stays light
    if name in ("create_app", "start_services"):
        from . import app

        return getattr(app, name)
    if name == "Services":
        from .services import Services

        return Services
    if name == "GatewaySettings":
        from .settings import GatewaySettings

        return GatewaySettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
