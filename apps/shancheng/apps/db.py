"""The gateway's off-chain store: one SQLAlchemy ``MetaData`` that every table of ``shancheng.apps`` is declared on,
migrated with Alembic (``shancheng/apps/migrations``). SQLite by default, PostgreSQL by URL.

>>> engine = make_engine("sqlite:///gateway.db")   # doctest: +SKIP
>>> migrate(engine)                                # doctest: +SKIP
"""

from __future__ import annotations

import importlib.resources
from typing import Any

from sqlalchemy import MetaData, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url

from shancheng.sdk.errors import InvalidInput

__all__ = ["HEAD", "make_engine", "metadata", "migrate"]

#: every table of the apps; names of constraints follow this convention so Alembic migrations are stable
metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

#: the tables of other stores sharing the database (the SDK batcher's); Alembic leaves them alone
FOREIGN_TABLE_PREFIXES = ("shancheng_",)
HEAD = "heads"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``: SQLite (WAL, foreign keys, ``synchronous=FULL``, a busy timeout) or PostgreSQL
    (``postgresql://`` is read as ``postgresql+psycopg://``).

    >>> make_engine("sqlite:///:memory:").dialect.name
    'sqlite'
    """
    if not isinstance(url, str) or "://" not in url or len(url) > 4096:
        raise InvalidInput("the database URL must look like sqlite:///path or postgresql://user@host/db")
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        memory = parsed.database in (None, "", ":memory:")
        options: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if not memory:
            # a pool: opening SQLite and setting its pragmas cost more than a request's own statements; a pooled
            # connection holds no snapshot between uses (the pool rolls back on return)
            options.update(pool_size=8, max_overflow=32, pool_timeout=30)
        engine = _sqlite_engine(parsed, {**options, **kwargs})
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise InvalidInput(f"the gateway's store is SQLite or PostgreSQL, not {parsed.get_backend_name()!r}")
    from sqlalchemy import create_engine

    return create_engine(parsed, pool_pre_ping=True, **kwargs)


def upsert_if_newer(engine: Engine, table: Table, key: str, values: dict[str, Any], *, newer: Any) -> Any:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` every other column of ``values`` where ``newer(excluded)`` holds
    (a SQL condition on the proposed row, e.g. a later position): a row moves forward only, so replaying an older
    value after a crash changes nothing."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(**values)
    return statement.on_conflict_do_update(
        index_elements=[key], set_={c: statement.excluded[c] for c in values if c != key},
        where=newer(statement.excluded))


def insert_ignoring_duplicates(engine: Engine, table: Table, *index_elements: str) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` into ``table`` for the engine's dialect (:func:`make_engine` admits
    SQLite and PostgreSQL only); ``index_elements`` name the unique columns when the conflict target must be given."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=list(index_elements) or None)


def _sqlite_engine(url: Any, options: dict[str, Any]) -> Engine:
    from sqlalchemy import create_engine

    engine = create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def alembic_config(engine: Engine) -> Any:
    """The Alembic configuration of the apps' migrations, bound to ``engine`` (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    location = importlib.resources.files("shancheng.apps") / "migrations"
    config.set_main_option("script_location", str(location))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine, revision: str = HEAD) -> None:
    """``alembic upgrade head`` on ``engine``: creates or updates every table of the apps.

    >>> migrate(make_engine("sqlite:///:memory:"))   # doctest: +SKIP
    """
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def include_name(name: str | None, type_: str, _parent: Any) -> bool:
    """Alembic's filter: tables of other stores in the same database (the SDK batcher's) are not ours."""
    return not (type_ == "table" and name is not None and name.startswith(FOREIGN_TABLE_PREFIXES))


def store_url(database_url: str) -> str:
    """The SDK batcher's store URL for the gateway database (``postgresql://`` means psycopg 3)."""
    if database_url.startswith("postgresql://"):
        return "postgresql+psycopg://" + database_url[len("postgresql://"):]
    return database_url
