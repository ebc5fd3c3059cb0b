"""The gateway application: :class:`Services` (the connections and background jobs of one organisation's gateway)
and :func:`create_app` (the FastAPI app with every router, problem handlers, limits, authentication, CSRF and
idempotency).

>>> settings = GatewaySettings.load("gateway.toml")            # doctest: +SKIP
>>> app = create_app(settings)                                 # Services start in the app's lifespan
>>> uvicorn.run(app, host="127.0.0.1", port=8080)              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from sqlalchemy.engine import Engine
from starlette.middleware.sessions import SessionMiddleware

from shancheng.sdk import Client
from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.client import Batcher, Identity
from shancheng.sdk.errors import InvalidInput

from ..db import make_engine, migrate, store_url
from ..hj212.listener import start as start_listener
from . import problems
from .audit import AuditLog, check_general_origin
from .audit import install as install_audit
from .auth import ApiTokens, Authenticator, Sm2Keys
from .idempotency import IdempotencyStore
from .indexer import start as start_indexer
from .limits import UnauthenticatedLimit
from .middleware import GatewayMiddleware
from .security import SecurityHeaders
from .sessions import BrowserSessions, ensure_secret, session_cookie_name
from .settings import GatewaySettings
from .staffkeys import StaffKeys

__all__ = ["Services", "create_app"]

_log = logging.getLogger("shancheng.apps.gateway")
ROUTERS = ("auth", "evidence", "network", "audit", "prescriptions", "trace", "sharing", "env", "ui")


@dataclass
class Services:
    """What a running gateway holds (see the module docstring); build it with :meth:`start`."""

    settings: GatewaySettings
    client: Client
    engine: Engine
    batcher: Batcher
    audit: AuditLog
    org_id: int
    genesis: GenesisFile
    tokens: ApiTokens
    sm2_keys: Sm2Keys
    sessions: BrowserSessions
    authenticator: Authenticator
    idempotency: IdempotencyStore
    staff_keys: StaffKeys
    session_secret: bytes
    extras: dict[str, Any] = field(default_factory=dict)
    jobs: list[Any] = field(default_factory=list)  # background jobs: each has .stop()

    @classmethod
    def start(cls, settings: GatewaySettings) -> Services:
        """Connect to the nodes, migrate the store, open the batcher and the audit log, start the background jobs
        (audit anchoring, the indexer, the HJ 212 listener when configured)."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        secret = ensure_secret(settings.session_secret_file)
        password = settings.password()
        identity = Identity.from_key_files(sm2_key=settings.sm2_key, eth_key=settings.eth_key, password=password)
        genesis = GenesisFile.load(settings.genesis)
        client = Client.connect(settings.node_urls, identity=identity, genesis=genesis)
        closers: list[Callable[[], None]] = [client.close]
        try:
            org_id = client.org_id
            (name,) = client.view(client.governance, "orgName", org_id)
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
            services = cls(
                settings=settings, client=client, engine=engine, batcher=batcher, audit=audit, org_id=org_id,
                genesis=genesis, tokens=tokens, sm2_keys=sm2, sessions=sessions,
                authenticator=Authenticator(tokens=tokens, sm2=sm2, session_principal=sessions,
                                            oidc_issuer=settings.oidc.issuer if settings.oidc else None),
                idempotency=IdempotencyStore(engine), staff_keys=StaffKeys(directory=settings.staff_keys_dir,
                                                                           password=password),
                session_secret=secret,
            )
        except BaseException:
            for close in closers:
                with contextlib.suppress(Exception):
                    close()
            raise
        try:
            services._start_jobs()
        except BaseException:
            services.close()
            raise
        return services

    def _start_jobs(self) -> None:
        self.jobs.append(self.audit.start_anchoring(self.settings.audit_anchor_interval))
        self.jobs.append(start_indexer(self))
        if self.settings.hj212 is not None:
            handle = start_listener(self)
            self.extras["hj212"] = handle
            self.jobs.append(handle)

    def close(self) -> None:
        """Stop the background jobs (newest first), the batcher, the client and the engine."""
        while self.jobs:
            job = self.jobs.pop()
            try:
                job.stop()
            except Exception:  # noqa: BLE001 - keep closing the rest
                _log.exception("stopping %r failed", job)
        for close in (self.audit.close, self.batcher.close, self.client.close, self.engine.dispose):
            try:
                close()
            except Exception:  # noqa: BLE001 - keep closing the rest
                _log.exception("closing %r failed", close)


def create_app(settings: GatewaySettings, *, services: Services | None = None) -> FastAPI:
    """The gateway's FastAPI app. Services are started by the app's lifespan unless given (then the caller closes
    them)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = services is None
        if own:
            import anyio.to_thread

            app.state.services = await anyio.to_thread.run_sync(Services.start, settings)
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
    for name in ROUTERS:
        router = importlib.import_module(f"shancheng.apps.gateway.routes.{name}").router
        app.include_router(router)
    problems.install(app)
    app.add_middleware(GatewayMiddleware)
    # outside GatewayMiddleware, so CSRF refusals, 413s and idempotent replays are recorded too; it reads
    # request.state.principal (set inside) when the response starts
    install_audit(app)
    # outside the audit middleware: a source that keeps sending unauthenticated requests is answered 429 before
    # they reach the audit log
    app.add_middleware(UnauthenticatedLimit, rate=settings.unauthenticated_rate,
                       burst=settings.unauthenticated_burst, max_sources=settings.unauthenticated_sources)
    secret = ensure_secret(settings.session_secret_file) if services is None else services.session_secret
    app.add_middleware(SessionMiddleware, secret_key=secret.decode(), session_cookie=session_cookie_name(settings.org),
                       max_age=int(settings.oidc.session_lifetime if settings.oidc else 8 * 3600), same_site="lax",
                       https_only=settings.secure_cookies)
    app.add_middleware(SecurityHeaders)  # outermost: every response carries the security headers
    return app
