"""A real PostgreSQL server for tests: Debian's binaries, a throw-away cluster in a temp folder, a free loopback port.

>>> with PostgresServer.start() as pg:                     # doctest: +SKIP
...     url = pg.create_database("evidence")              # postgresql+psycopg://postgres@127.0.0.1:PORT/evidence
...     engine = sqlalchemy.create_engine(url)

In a test module (or a conftest), one server per module and a fresh database per test:

>>> postgres = postgres_fixture(scope="module")           # doctest: +SKIP
>>> def test_store(postgres: PostgresServer) -> None:     # doctest: +SKIP
...     url = postgres.create_database()                  # a new, uniquely named database

The cluster trusts connections on 127.0.0.1 and on its unix socket (in the temp folder): it holds test data only
and listens on loopback only. Running as root, the cluster is created and run as the ``postgres`` user
(``initdb`` refuses root), with ``runuser``. ``fsync`` stays on: durability tests rely on it.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import pytest

from shancheng.sdk.errors import ShanchengError

from . import free_port

__all__ = ["PostgresServer", "PostgresUnavailable", "find_bin_dir", "postgres_fixture"]

SUPERUSER = "postgres"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresUnavailable(ShanchengError):
    """PostgreSQL's server binaries are not installed, or the server did not start."""


def find_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` that has ``initdb`` and ``pg_ctl`` (``$PG_BIN`` overrides)."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")
             if (Path(p).parent / "pg_ctl").exists()]
    if not found:
        raise PostgresUnavailable("PostgreSQL's server binaries are missing: `make test` installs them "
                                  "(apt-get install postgresql)")
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


class PostgresServer:
    """One running cluster; made by :meth:`start`, stopped by :meth:`stop` (or the ``with`` block)."""

    def __init__(self, *, folder: Path, port: int, bin_dir: Path, owns_folder: bool) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.socket_dir = folder
        self.port = port
        self.host = "127.0.0.1"
        self.bin_dir = bin_dir
        self._owns_folder = owns_folder
        self._running = False

    @classmethod
    def start(cls, folder: Path | None = None, *, bin_dir: Path | None = None) -> PostgresServer:
        """initdb a new cluster in ``folder`` (default: a new temp folder, removed at stop) and start it."""
        bins = bin_dir or find_bin_dir()
        owns = folder is None
        where = Path(tempfile.mkdtemp(prefix="shancheng-pg-")) if folder is None else Path(folder)
        where.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(where, user=SUPERUSER, group=SUPERUSER)
        errors = ""
        for _attempt in range(5):
            server = cls(folder=where, port=free_port(), bin_dir=bins, owns_folder=owns)
            try:
                if not server.data.exists():
                    server._run("initdb", "-D", str(server.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                                "--locale=C.UTF-8", "--no-instructions")
                server._start()
                return server
            except PostgresUnavailable as exc:  # most often: the port was taken between picking and binding
                errors = str(exc)
        if owns:
            shutil.rmtree(where, ignore_errors=True)
        raise PostgresUnavailable(f"PostgreSQL did not start: {errors}")

    def _run(self, tool: str, *args: str, timeout: float = 120) -> str:
        command = [str(self.bin_dir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.folder)
        if done.returncode != 0:
            raise PostgresUnavailable(f"{tool} failed: {(done.stderr or done.stdout).strip()[-1500:]}")
        return done.stdout

    def _start(self) -> None:
        log = self.folder / "server.log"
        options = f"-c listen_addresses={self.host} -p {self.port} -k {self.socket_dir} -c max_connections=200"
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(log), "-o", options, "-w", "-t", "60")
        self._running = True
        deadline = time.monotonic() + 30
        while True:  # pg_ctl -w waits for the socket; check that a connection works too
            try:
                self.execute("SELECT 1")
                return
            except Exception as exc:  # noqa: BLE001 - not accepting connections yet
                if time.monotonic() > deadline:
                    self.stop()
                    raise PostgresUnavailable(f"the server does not accept connections: {exc}") from None
                time.sleep(0.05)

    def url(self, dbname: str = "postgres", *, driver: str = "psycopg") -> str:
        """An SQLAlchemy URL of database ``dbname`` (``driver=""`` gives a plain ``postgresql://`` libpq URL)."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def execute(self, sql: str, dbname: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement in autocommit mode (CREATE DATABASE cannot run in a transaction); its rows, if any."""
        import psycopg

        with psycopg.connect(self.url(dbname, driver=""), autocommit=True, connect_timeout=10) as conn:
            cur = conn.execute(sql.encode())
            return list(cur.fetchall()) if cur.description else []

    def create_database(self, name: str | None = None) -> str:
        """Create database ``name`` (default: a fresh random name) and return its SQLAlchemy URL."""
        name = name or f"t_{secrets.token_hex(6)}"
        if not _NAME.fullmatch(name):
            raise ValueError(f"database name {name!r}: use lower-case letters, digits and _ (at most 63)")
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def restart(self, *, mode: str = "fast") -> None:
        """Stop (``mode="immediate"`` is a crash: no checkpoint, WAL replay at start) and start on the same port."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError("mode is smart, fast or immediate")
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60")
        self._running = False
        self._start()

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended) and remove the temp folder it made."""
        if self._running:
            self._running = False
            try:
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60")
            except (PostgresUnavailable, subprocess.TimeoutExpired):
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30")
        if self._owns_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def postgres_fixture(*, scope: Any = "module", name: str = "postgres") -> Callable[..., Iterator[PostgresServer]]:
    """A pytest fixture named ``name`` giving one running :class:`PostgresServer` per ``scope``; assign it to a
    module (or conftest) global: ``postgres = postgres_fixture(scope="session")``."""

    @pytest.fixture(scope=scope, name=name)
    def _postgres() -> Iterator[PostgresServer]:
        with PostgresServer.start() as server:
            yield server

    return _postgres
