"""Where a durable subscription keeps its position: per subscription name, in SQLite (WAL, ``synchronous=FULL``) or
any SQLAlchemy database, or your own :class:`Checkpoint`. Moved out of :mod:`~shancheng.sdk.client.subscribe`, which
re-exports every name.

>>> cp = open_checkpoint("sqlite:///:memory:")
>>> cp.load("anchors") is None
True
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import InvalidInput, ShanchengError
from .sqlstore import SqlAlchemyStore, _sqlalchemy

__all__ = [
    "MAX_NAME_LENGTH",
    "Checkpoint",
    "Position",
    "SavedPosition",
    "SqlAlchemyCheckpoint",
    "SqliteCheckpoint",
    "SubscriptionError",
    "open_checkpoint",
]

MAX_NAME_LENGTH = 200


class SubscriptionError(ShanchengError):
    """A subscription cannot go on (bad checkpoint, undecodable log, a block the node cannot list)."""


@dataclass(frozen=True)
class Position:
    """How far a subscription got: every matching log up to ``(block_number, log_index)`` is processed;
    ``log_index`` None means the whole block is."""

    block_number: int
    block_hash: bytes
    log_index: int | None = None

    def covers(self, block_number: int, log_index: int) -> bool:
        """True when the log at ``(block_number, log_index)`` is at or before this position."""
        if block_number != self.block_number:
            return block_number < self.block_number
        return self.log_index is None or log_index <= self.log_index


@dataclass(frozen=True)
class SavedPosition:
    """A checkpoint row: the position and the fingerprint of the filter it was written for."""

    position: Position
    filter_id: bytes


class Checkpoint(Protocol):
    """Where a subscription keeps its position, per subscription name; ``save`` is durable when it returns."""

    def load(self, name: str) -> SavedPosition | None: ...
    def save(self, name: str, position: Position, *, filter_id: bytes) -> None: ...
    def close(self) -> None: ...


_TABLE = """CREATE TABLE IF NOT EXISTS shancheng_subscriptions (
    name TEXT PRIMARY KEY, filter_id BLOB NOT NULL, block_number INTEGER NOT NULL, block_hash BLOB NOT NULL,
    log_index INTEGER, updated REAL NOT NULL)"""


class SqliteCheckpoint:
    """Positions in one SQLite file (WAL journal, ``synchronous=FULL``: a save is on disk when it returns)."""

    def __init__(self, path: str | Path) -> None:
        path = str(path)
        if path != ":memory:" and not Path(path).parent.is_dir():
            raise SubscriptionError(f"the checkpoint's folder {Path(path).parent} does not exist")
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_TABLE)
        except sqlite3.Error as exc:
            raise SubscriptionError(f"cannot open the checkpoint {path}: {exc}") from None
        self.path = path
        self._lock = threading.Lock()

    def load(self, name: str) -> SavedPosition | None:
        with self._lock:
            try:
                row = self._db.execute("SELECT filter_id, block_number, block_hash, log_index FROM "
                                       "shancheng_subscriptions WHERE name = ?", (name,)).fetchone()
            except sqlite3.Error as exc:
                raise SubscriptionError(f"reading the checkpoint {self.path} failed: {exc}") from None
        return None if row is None else _saved(row)

    def save(self, name: str, position: Position, *, filter_id: bytes) -> None:
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO shancheng_subscriptions (name, filter_id, block_number, block_hash, log_index, "
                    "updated) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET filter_id = excluded.filter_id, "
                    "block_number = excluded.block_number, block_hash = excluded.block_hash, "
                    "log_index = excluded.log_index, updated = excluded.updated",
                    (name, filter_id, position.block_number, position.block_hash, position.log_index, time.time()))
            except sqlite3.Error as exc:
                raise SubscriptionError(f"writing the checkpoint {self.path} failed: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()


class SqlAlchemyCheckpoint:
    """Positions in any SQLAlchemy database (``postgresql+psycopg://…``; the extra ``shancheng-sdk[sql]``); each
    save is one committed transaction."""

    def __init__(self, url: str) -> None:
        sa = self._sa = _sqlalchemy()
        self._table = sa.Table(
            "shancheng_subscriptions", sa.MetaData(),
            sa.Column("name", sa.String(MAX_NAME_LENGTH), primary_key=True),
            sa.Column("filter_id", sa.LargeBinary, nullable=False),
            sa.Column("block_number", sa.BigInteger, nullable=False),
            sa.Column("block_hash", sa.LargeBinary, nullable=False), sa.Column("log_index", sa.BigInteger),
            sa.Column("updated", sa.Float, nullable=False),
        )
        self.url = SqlAlchemyStore._safe(url)
        try:
            self._engine = sa.create_engine(url)
            self._table.metadata.create_all(self._engine)
        except sa.exc.SQLAlchemyError as exc:
            raise SubscriptionError(f"cannot open the checkpoint {self.url}: {str(exc).splitlines()[0][:300]}") \
                from None

    def _run(self, fn: Callable[[Any], Any]) -> Any:
        try:
            with self._engine.begin() as conn:
                return fn(conn)
        except self._sa.exc.SQLAlchemyError as exc:
            raise SubscriptionError(f"the checkpoint {self.url} failed: {str(exc).splitlines()[0][:300]}") from None

    def load(self, name: str) -> SavedPosition | None:
        t = self._table
        q = self._sa.select(t.c.filter_id, t.c.block_number, t.c.block_hash, t.c.log_index).where(t.c.name == name)
        row = self._run(lambda conn: conn.execute(q).first())
        return None if row is None else _saved(tuple(row))

    def save(self, name: str, position: Position, *, filter_id: bytes) -> None:
        t = self._table
        values = {"filter_id": filter_id, "block_number": position.block_number, "block_hash": position.block_hash,
                  "log_index": position.log_index, "updated": time.time()}

        def go(conn: Any) -> None:
            if conn.execute(t.update().where(t.c.name == name).values(**values)).rowcount == 0:
                conn.execute(t.insert().values(name=name, **values))

        self._run(go)

    def close(self) -> None:
        self._engine.dispose()


def _saved(row: Sequence[Any]) -> SavedPosition:
    filter_id, number, block_hash, log_index = row
    return SavedPosition(Position(int(number), bytes(block_hash), None if log_index is None else int(log_index)),
                         bytes(filter_id))


def open_checkpoint(target: str | Path | Checkpoint) -> Checkpoint:
    """A checkpoint from a file path, a ``sqlite:///path`` URL, any SQLAlchemy URL, or a :class:`Checkpoint`
    object (returned as it is).

    >>> cp = open_checkpoint("sqlite:///:memory:")
    >>> cp.load("anchors") is None
    True
    """
    if isinstance(target, Path):
        return SqliteCheckpoint(target)
    if not isinstance(target, str):
        if all(callable(getattr(target, m, None)) for m in ("load", "save", "close")):
            return target
        raise InvalidInput("checkpoint must be a path, a database URL or an object with load/save/close")
    if not target or len(target) > 4096:
        raise InvalidInput("checkpoint must be a path or URL of 1 to 4096 characters")
    if target.startswith("sqlite:///"):
        return SqliteCheckpoint(target[len("sqlite:///"):])
    if "://" not in target:
        return SqliteCheckpoint(target)
    return SqlAlchemyCheckpoint(target)
