"""Opening a database from a URL: the batcher's store (:func:`open_store`) and subscriptions' checkpoints
(:func:`open_checkpoint`) are the same two implementations, SQLite (standard library) and SQLAlchemy (the optional
extra ``shancheng-sdk[sql]``).

- ``sqlite:///path/to/evidence.db`` (``sqlite:////abs`` also works; ``sqlite:///:memory:`` for a test): WAL
  journal, ``synchronous=FULL`` — a commit is on disk (fsync) before it returns.
- any other SQLAlchemy URL (``postgresql+psycopg://…``).

>>> store = open_store("sqlite:///:memory:")
>>> store.record_count("district.example/log/rx")
0
>>> open_checkpoint("sqlite:///:memory:").load("anchors") is None
True
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInput
from .checkpoints import Checkpoint
from .sqlite_store import SqliteStore
from .sqlstore import SqlAlchemyStore
from .store import Store

__all__ = ["open_checkpoint", "open_store"]

_SQLITE = "sqlite:///"


def open_store(url: str) -> Store:
    """A batcher's store from a URL: ``sqlite:///relative/or/absolute/path`` or ``sqlite:///:memory:`` uses the
    standard library; any other URL goes to SQLAlchemy (extra ``sql``)."""
    if not isinstance(url, str) or len(url) > 4096:
        raise InvalidInput("the store must be a URL string such as sqlite:///evidence.db")
    if url.startswith(_SQLITE):
        return SqliteStore(url[len(_SQLITE):])
    if "://" not in url:
        raise InvalidInput(f"the store {url!r} is not a URL (sqlite:///path or an SQLAlchemy URL)")
    return SqlAlchemyStore(url)


def open_checkpoint(target: str | Path | Checkpoint) -> Checkpoint:
    """Subscriptions' checkpoints from a file path, a ``sqlite:///path`` URL, any SQLAlchemy URL, or a
    :class:`~shancheng.sdk.client.checkpoints.Checkpoint` object (returned as it is)."""
    if isinstance(target, Path):
        return SqliteStore(target, purpose="checkpoint")
    if not isinstance(target, str):
        if all(callable(getattr(target, m, None)) for m in ("load", "save", "close")):
            return target
        raise InvalidInput("checkpoint must be a path, a database URL or an object with load/save/close")
    if not target or len(target) > 4096:
        raise InvalidInput("checkpoint must be a path or URL of 1 to 4096 characters")
    if target.startswith(_SQLITE):
        return SqliteStore(target[len(_SQLITE):], purpose="checkpoint")
    if "://" not in target:
        return SqliteStore(target, purpose="checkpoint")
    return SqlAlchemyStore(target, purpose="checkpoint")
