"""Alembic environment of the apps: run by :func:`shancheng.apps.db.migrate` with the engine in
``config.attributes["engine"]`` (online only; there is no alembic.ini). Importing it outside Alembic does nothing."""

from __future__ import annotations

from typing import Any

from alembic import context

from shancheng.apps.db import include_name, metadata


def run(config: Any) -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        raise SystemExit("run the migrations with shancheng.apps.db.migrate(engine) (or `shancheng gateway migrate`)")
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, include_name=include_name,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


_config = getattr(context, "config", None)  # None when imported outside an Alembic command
if _config is not None:
    run(_config)
