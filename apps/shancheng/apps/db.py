"""The gateway's off-chain store: one SQLAlchemy ``MetaData`` that every table of ``shancheng.apps`` is declared on,
migrated with Alembic (``shancheng/apps/migrations``). SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

from sqlalchemy import MetaData

#: every table of the apps; names of constraints follow this convention so Alembic migrations are stable
metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})
