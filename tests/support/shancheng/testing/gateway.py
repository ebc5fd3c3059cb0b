"""A running gateway for tests: a real solo node, the gateway's services for one demo organisation, the FastAPI app,
an in-process client (``TestClient``) and a real uvicorn server on a free port.

>>> with GatewayWorld.start(tmp_path) as world:                      # doctest: +SKIP
...     token = world.token("doctor", subject="dr.li")
...     http = world.client()
...     http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()["role"]
'doctor'
>>> url = world.serve()                                               # doctest: +SKIP  (http://127.0.0.1:PORT)

One node may serve several worlds (``node=``): each world gets its own evidence origin and data folder. In pytest:

>>> @pytest.fixture(scope="module")                                   # doctest: +SKIP
... def world(tmp_path_factory):
...     with GatewayWorld.start(tmp_path_factory.mktemp("gw")) as w:
...         yield w
"""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path
from typing import Any, Self

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shancheng.apps.gateway.app import create_app, start_services
from shancheng.apps.gateway.auth import sign_request
from shancheng.apps.gateway.services import Services
from shancheng.apps.gateway.settings import GatewaySettings
from shancheng.sdk.crypto import SM2PrivateKey

from . import free_port
from .solo import PASSWORD, SoloNode

__all__ = ["STAFF_ROLE_FLAGS", "GatewayWorld"]

#: gateway roles that are staff roles in Governance (StaffRole flags)
STAFF_ROLE_FLAGS = {"doctor": 1 << 0, "pharmacist": 1 << 1, "dispenser": 1 << 2, "courier": 1 << 4,
                    "station_operator": 1 << 5, "data_steward": 1 << 5}  # data stewards act as OPERATOR staff


class GatewayWorld:
    """See the module docstring. Build it with :meth:`start`; :meth:`close` stops what it started."""

    def __init__(self, *, node: SoloNode, own_node: bool, settings: GatewaySettings, services: Services,
                 app: FastAPI) -> None:
        self.node = node
        self.own_node = own_node
        self.settings = settings
        self.services = services
        self.app = app
        self._servers: list[tuple[uvicorn.Server, threading.Thread]] = []
        self._clients: list[TestClient] = []

    @classmethod
    def settings_for(cls, folder: Path, node: SoloNode, *, org: str = "hospital", database_url: str = "",
                     **overrides: Any) -> GatewaySettings:
        """Settings of a gateway for demo organisation ``org`` on ``node``: key files (encrypted) and the password
        file in ``folder``/keys, data in ``folder``/data."""
        keys = folder / "keys"
        node.identity(org, keys)
        password_file = keys / "password"
        password_file.write_bytes(PASSWORD + b"\n")
        password_file.chmod(0o600)
        values: dict[str, Any] = {
            "data_dir": folder / "data", "database_url": database_url, "node_urls": [node.url],
            "genesis": node.genesis_path, "org": org, "sm2_key": keys / f"{org}-sm2.pem",
            "eth_key": keys / f"{org}-eth.json", "password_file": password_file,
            "evidence_origin": f"gateway.test/{org}/{secrets.token_hex(4)}", "public_url": "http://testserver",
            "batch_max_age": 0.2,
        }
        values.update(overrides)
        return GatewaySettings(**values)

    @classmethod
    def start(cls, folder: Path, *, org: str = "hospital", node: SoloNode | None = None, database_url: str = "",
              **overrides: Any) -> GatewayWorld:
        """A world in ``folder``: a new solo node unless ``node`` is given, settings for ``org`` (``overrides`` go
        to :class:`GatewaySettings`), started services and the app."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        own_node = node is None
        if node is None:
            node = SoloNode.init_dev(folder / "node")
            node.start()
        try:
            settings = cls.settings_for(folder / f"gateway-{org}", node, org=org, database_url=database_url,
                                        **overrides)
            services = start_services(settings)
        except BaseException:
            if own_node:
                node.stop()
            raise
        return cls(node=node, own_node=own_node, settings=settings, services=services,
                   app=create_app(settings, services=services))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for client in self._clients:
            client.close()
        for server, thread in self._servers:
            server.should_exit = True
            thread.join(timeout=30)
        self.services.close()
        if self.own_node:
            self.node.stop()

    # -- HTTP ---------------------------------------------------------------------------------------
    def client(self, *, token: str | None = None) -> TestClient:
        """An in-process HTTP client of the app (server errors come back as 500 problems, not exceptions);
        ``token`` is sent as ``Authorization: Bearer``."""
        client = TestClient(self.app, raise_server_exceptions=False, base_url="http://testserver")
        if token is not None:
            client.headers["Authorization"] = f"Bearer {token}"
        self._clients.append(client)
        return client

    def serve(self) -> str:
        """Serve the app with uvicorn on a free loopback port in a thread; returns its base URL."""
        port = free_port()
        config = uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        self._servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    def http(self, base_url: str, *, token: str | None = None) -> httpx.Client:
        """An httpx client of a served gateway (see :meth:`serve`)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=base_url, headers=headers, timeout=60)

    # -- principals ---------------------------------------------------------------------------------
    def token(self, role: str, *, subject: str | None = None, org: str | None = None,
              expires_in: float | None = None) -> str:
        """A new API token, made directly in the store (``org`` other than the world's: a token the gateway must
        refuse)."""
        token, _ = self.services.tokens.create(subject=subject or f"{role}-{secrets.token_hex(3)}", role=role,
                                               org=org, expires_in=expires_in, label="test")
        return token

    def sm2_client(self, role: str, *, subject: str | None = None, org: str | None = None) -> SM2PrivateKey:
        """A new SM2 key allowed to sign API requests as ``subject`` with ``role`` (see :meth:`signed`)."""
        key = SM2PrivateKey.generate()
        self.services.sm2_keys.register(subject=subject or f"{role}-{secrets.token_hex(3)}", role=role,
                                        public_key=key.public_key(), org=org)
        return key

    @staticmethod
    def signed(key: SM2PrivateKey, method: str, path: str, body: bytes = b"", **kwargs: Any) -> dict[str, str]:
        """Headers of an SM2-signed request (``path`` with its query string)."""
        return {"Authorization": sign_request(key, method=method, path=path, body=body, **kwargs)}

    def staff(self, subject: str, role: str, *, key: SM2PrivateKey | None = None) -> SM2PrivateKey:
        """A staff member: a new SM2 key registered in Governance for the world's organisation (staff roles only:
        doctor, pharmacist, dispenser, courier, station_operator) and enrolled in the gateway's staff key store."""
        from shancheng.sdk.domain import register_staff

        key = key or SM2PrivateKey.generate()
        flags = STAFF_ROLE_FLAGS.get(role)
        if flags is not None:
            register_staff(self.services.client, key, flags)
        self.services.staff_keys.enrol(subject, key, replace=True)
        return key
