"""The gateway's composition root: :func:`start_services` builds the :class:`~.services.Services` of one
organisation's gateway (connections, stores, background jobs) and :func:`create_app` assembles the FastAPI app
(every router, problem handlers, limits, authentication, CSRF, idempotency, audit).

>>> settings = GatewaySettings.load("gateway.toml")            # doctest: +SKIP
>>> app = create_app(settings)                                 # Services start in the app's lifespan
>>> uvicorn.run(app, host="127.0.0.1", port=8080)              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable

import anyio.to_thread
from fastapi import FastAPI
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import Scope

from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.client import Identity
from shancheng.sdk.errors import InvalidInput

from ..db import make_engine, migrate, store_url
from ..hj212.listener import start as start_listener
from . import problems
from .audit import AuditLog, AuditMiddleware, check_general_origin
from .auth import ApiTokens, Authenticator, Sm2Keys
from .deps import running_services
from .directory import OrgDirectory
from .idempotency import IdempotencyStore
from .indexer import start as start_indexer
from .limits import UnauthenticatedLimit
from .middleware import GatewayMiddleware
from .oidc import OidcClient
from .routes.audit import router as audit_router
from .routes.auth import router as auth_router
from .routes.env import router as env_router
from .routes.evidence import router as evidence_router
from .routes.network import router as network_router
from .routes.orgs import router as orgs_router
from .routes.prescriptions import router as prescriptions_router
from .routes.sharing import router as sharing_router
from .routes.trace import router as trace_router
from .routes.ui import router as ui_router
from .security import SecurityHeaders
from .services import Services, connect_nodes
from .sessions import BrowserSessions, ensure_secret, session_cookie_name
from .settings import GatewaySettings
from .staffkeys import StaffKeys
from .tlsfront import RelayHeaders

__all__ = ["ROUTERS", "create_app", "start_services"]

#: every router of the gateway, in the order they are included (the UI's pages last)
ROUTERS = (auth_router, evidence_router, network_router, orgs_router, audit_router, prescriptions_router,
           trace_router, sharing_router, env_router, ui_router)


def start_services(settings: GatewaySettings) -> Services:
    """Connect to the nodes, migrate the store, open the batcher and the audit log, start the background jobs
    (audit anchoring, the indexer, the HJ 212 listener when configured)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secret = ensure_secret(settings.session_secret_file)
    password = settings.password()
    identity = Identity.from_key_files(sm2_key=settings.sm2_key, eth_key=settings.eth_key, password=password)
    genesis = GenesisFile.load(settings.genesis)
    client, node_tls = connect_nodes(settings, identity=identity, genesis=genesis)
    closers: list[Callable[[], None]] = [client.close]
    try:
        org_id = client.org_id
        orgs = OrgDirectory(client)
        name = orgs.name(org_id)
        if name != settings.org:
            raise InvalidInput(f"the key files are of organisation {name!r}, the configuration names "
                               f"{settings.org!r}")
        engine = make_engine(settings.database_url)
        closers.append(engine.dispose)
        migrate(engine)
        batcher = client.batcher(store=store_url(settings.database_url),
                                 origin=check_general_origin(settings.evidence_origin),
                                 max_age=settings.batch_max_age)
        closers.insert(0, batcher.close)
        pepper = hashlib.sha256(b"shancheng-gateway/token-pepper\n" + secret).digest()
        tokens = ApiTokens(engine, pepper=pepper, org=settings.org, org_id=org_id)

        def token_active(token_id: str) -> bool:
            info = tokens.get(token_id)
            return info is not None and info.org == settings.org and info.active

        sessions = BrowserSessions(engine, org=settings.org, org_id=org_id, token_active=token_active)
        sm2 = Sm2Keys(engine, org=settings.org, org_id=org_id, window=settings.signature_window)
        # the audit heads go to their own log (origin shancheng/audit-heads/<org>), which nothing else writes
        audit = AuditLog.open(engine, org=settings.org, client=client, store=store_url(settings.database_url),
                              max_age=settings.batch_max_age)
        closers.insert(0, audit.close)
        oidc = settings.oidc
        services = Services(
            settings=settings, client=client, engine=engine, batcher=batcher, audit=audit, org_id=org_id,
            genesis=genesis, tokens=tokens, sm2_keys=sm2, sessions=sessions,
            authenticator=Authenticator(tokens=tokens, sm2=sm2, session_principal=sessions,
                                        oidc_issuer=oidc.issuer if oidc else None),
            idempotency=IdempotencyStore(engine, secret=secret),
            staff_keys=StaffKeys(directory=settings.staff_keys_dir, password=password), session_secret=secret, orgs=orgs,
            node_tls=node_tls,
            oidc=OidcClient(oidc, redirect_uri=settings.public_url + "/auth/callback") if oidc else None,
        )
    except BaseException:
        for close in closers:
            with contextlib.suppress(Exception):
                close()
        raise
    try:
        _start_jobs(services)
    except BaseException:
        services.close()
        raise
    return services


def _start_jobs(services: Services) -> None:
    settings = services.settings
    services.jobs.append(services.audit.start_anchoring(settings.audit_anchor_interval))
    services.indexer = start_indexer(engine=services.engine, client=services.client,
                                     checkpoint=store_url(settings.database_url))
    services.jobs.append(services.indexer)
    if settings.hj212 is not None:
        services.hj212 = start_listener(settings.hj212, engine=services.engine, client=services.client,
                                        data_dir=settings.data_dir, password_file=settings.password_file)
        services.jobs.append(services.hj212)


def create_app(settings: GatewaySettings, *, services: Services | None = None,
               relay_token: str | None = None) -> FastAPI:
    """The gateway's FastAPI app. Services are started by the app's lifespan unless given (then the caller closes
    them). ``relay_token``: the per-process token of the gateway's GM TLS front, by which the app believes the
    client subject and address the front passes (see :mod:`.tlsfront`)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = services is None
        if own:
            app.state.services = await anyio.to_thread.run_sync(start_services, settings)
        try:
            yield
        finally:
            if own:
                started: Services = app.state.services
                app.state.services = None
                await anyio.to_thread.run_sync(started.close)

    # /docs is served by routes/ui.py from the gateway's own Swagger UI files; FastAPI's pages load it from a CDN
    app = FastAPI(title="Shancheng gateway", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description=f"The gateway of {settings.org}: evidence, prescriptions, drug trace, data sharing, "
                              "environmental monitoring, audit. Errors are RFC 9457 problem details.")
    app.state.services = services
    app.state.settings = settings
    for router in ROUTERS:
        app.include_router(router)
    problems.install(app)
    app.add_middleware(GatewayMiddleware)
    # outside GatewayMiddleware, so CSRF refusals, 413s and idempotent replays are recorded too; it reads
    # request.state.principal (set inside) when the response starts
    app.add_middleware(AuditMiddleware, audit=_audit_log)
    # outside the audit middleware: a source that keeps sending unauthenticated requests is answered 429 before
    # they reach the audit log
    app.add_middleware(UnauthenticatedLimit, rate=settings.unauthenticated_rate,
                       burst=settings.unauthenticated_burst, max_sources=settings.unauthenticated_sources)
    secret = ensure_secret(settings.session_secret_file) if services is None else services.session_secret
    app.add_middleware(SessionMiddleware, secret_key=secret.decode(), session_cookie=session_cookie_name(settings.org),
                       max_age=int(settings.oidc.session_lifetime if settings.oidc else 8 * 3600), same_site="lax",
                       https_only=settings.secure_cookies)
    app.add_middleware(SecurityHeaders)  # every response carries the security headers
    # outermost: the GM TLS front's headers are taken (when its token matches) or dropped before anything reads them
    app.add_middleware(RelayHeaders, token=relay_token)
    return app


def _audit_log(scope: Scope) -> AuditLog | None:
    services = running_services(scope.get("app"))
    return None if services is None else services.audit
