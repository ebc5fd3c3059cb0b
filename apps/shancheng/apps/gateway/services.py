"""What a running gateway holds: :class:`Services`, the connections, stores and background jobs of one
organisation's gateway. :func:`shancheng.apps.gateway.app.start_services` builds it; the routers receive it through
:data:`shancheng.apps.gateway.deps.ServicesDep`.

>>> services = start_services(GatewaySettings.load("gateway.toml"))   # doctest: +SKIP
>>> services.org_id, services.indexer is not None                       # doctest: +SKIP
(2, True)
>>> services.close()                                                     # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.engine import Engine

from shancheng.sdk import Client
from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.client import Batcher, GmTlsClientConfig, Identity, RpcClient
from shancheng.sdk.client.gmtls_http import GM_SCHEME

from ..hj212.listener import ListenerHandle
from .audit import AuditLog
from .auth import ApiTokens, Authenticator, Sm2Keys
from .directory import OrgDirectory
from .idempotency import IdempotencyStore
from .indexer import Indexer
from .oidc import OidcClient
from .sessions import BrowserSessions
from .settings import GatewaySettings
from .staffkeys import StaffKeys

__all__ = ["Job", "Services", "connect_nodes"]

_log = logging.getLogger("shancheng.apps.gateway")


def connect_nodes(settings: GatewaySettings, *, identity: Identity,
                  genesis: GenesisFile) -> tuple[Client, GmTlsClientConfig | None]:
    """The SDK client of the gateway's ``node_urls`` (``https+gm://`` ones over GM TLS with ``[node_tls]``), and
    the GM TLS settings it was given (made once: the keys are decrypted here), None without ``[node_tls]``."""
    tls = settings.node_tls_config()
    return Client.connect(settings.node_urls, identity=identity, genesis=genesis, tls=tls), tls


class Job(Protocol):
    """A background job of the gateway (audit anchoring, the indexer, the HJ 212 listener)."""

    def stop(self) -> None: ...


@dataclass
class Services:
    """See the module docstring; :meth:`close` stops the jobs and closes the connections."""

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
    #: the member organisations' names and roles (Governance, cached)
    orgs: OrgDirectory
    #: OpenID Connect sign-in, None when the settings configure none
    oidc: OidcClient | None = None
    #: the domain events' index, None until the jobs are started
    indexer: Indexer | None = None
    #: the HJ 212 station listener, None when the settings configure none
    hj212: ListenerHandle | None = None
    jobs: list[Job] = field(default_factory=list)
    #: how ``https+gm://`` node URLs are reached, None when the settings have no ``[node_tls]``
    node_tls: GmTlsClientConfig | None = None

    def node_rpc(self, url: str, *, timeout: float) -> RpcClient:
        """A JSON-RPC client of one node URL (GM TLS for an ``https+gm://`` one), for per-node probes."""
        gm = url.startswith(f"{GM_SCHEME}://")
        return RpcClient(url, timeout=timeout, tls=self.node_tls if gm else None)

    def stop_jobs(self) -> None:
        """Stop the background jobs, newest first (the routes keep working on what the jobs left)."""
        while self.jobs:
            job = self.jobs.pop()
            try:
                job.stop()
            except Exception:  # noqa: BLE001 - keep stopping the rest
                _log.exception("stopping %r failed", job)

    def close(self) -> None:
        """Stop the background jobs (newest first), the batcher, the client and the engine."""
        self.stop_jobs()
        for close in (self.audit.close, self.batcher.close, self.client.close, self.engine.dispose):
            try:
                close()
            except Exception:  # noqa: BLE001 - keep closing the rest
                _log.exception("closing %r failed", close)
