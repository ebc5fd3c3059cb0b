"""The batcher's store and subscriptions' checkpoints on any SQLAlchemy database (PostgreSQL, MySQL, SQLite...): the
optional extra ``pip install 'shancheng-sdk[sql]'``. Same tables and semantics as
:class:`~shancheng.sdk.client.sqlite_store.SqliteStore`; each write is one transaction, committed before it returns.

>>> store = SqlAlchemyStore("postgresql+psycopg://evidence@db/evidence")   # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from ..errors import ShanchengError
from .checkpoints import MAX_NAME_LENGTH, Position, SavedPosition, SubscriptionError, saved_position
from .loglock import FileLogLock, PostgresLogLock
from .sqlite_store import Purpose
from .store import BatchRow, RecordRow, StoreError, batch_row, record_row

__all__ = ["SqlAlchemyStore"]


def _sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError:
        raise ShanchengError("an SQLAlchemy store needs SQLAlchemy: pip install 'shancheng-sdk[sql]'") from None
    return sqlalchemy


class SqlAlchemyStore:
    """A batcher's store (``purpose="store"``, errors :class:`StoreError`) or subscriptions' checkpoints
    (``purpose="checkpoint"``, errors :class:`SubscriptionError`) over an SQLAlchemy engine (see the module
    docstring)."""

    def __init__(self, url: str, *, purpose: Purpose = "store") -> None:
        sa = _sqlalchemy()
        self._sa = sa
        self.purpose = purpose
        self._error: type[ShanchengError] = StoreError if purpose == "store" else SubscriptionError
        meta = sa.MetaData()
        blob, text = sa.LargeBinary, sa.Text
        self._logs = sa.Table("shancheng_logs", meta, sa.Column("origin", sa.String(255), primary_key=True),
                              sa.Column("org_key", blob, nullable=False))
        self._records = sa.Table(
            "shancheng_records", meta,
            sa.Column("origin", sa.String(255), primary_key=True), sa.Column("seq", sa.BigInteger, primary_key=True,
                                                                             autoincrement=False),
            sa.Column("kind", text, nullable=False), sa.Column("scheme", text, nullable=False),
            sa.Column("commitment", blob, nullable=False), sa.Column("salt", blob), sa.Column("author", blob,
                                                                                               nullable=False),
            sa.Column("uid", blob, nullable=False), sa.Column("signature", blob),
            sa.Column("leaf_hash", blob, nullable=False), sa.Column("added", sa.Float, nullable=False),
        )
        self._batches = sa.Table(
            "shancheng_batches", meta,
            sa.Column("origin", sa.String(255), primary_key=True),
            sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("tree_size", sa.BigInteger, nullable=False), sa.Column("root", blob, nullable=False),
            sa.Column("prev_root", blob, nullable=False), sa.Column("note", text, nullable=False),
            sa.Column("state", sa.String(16), nullable=False), sa.Column("sealed", sa.Float, nullable=False),
            sa.Column("tx_hash", blob), sa.Column("block_number", sa.BigInteger), sa.Column("anchored", sa.Float),
        )
        self._subscriptions = sa.Table(
            "shancheng_subscriptions", meta,
            sa.Column("name", sa.String(MAX_NAME_LENGTH), primary_key=True),
            sa.Column("filter_id", blob, nullable=False), sa.Column("block_number", sa.BigInteger, nullable=False),
            sa.Column("block_hash", blob, nullable=False), sa.Column("log_index", sa.BigInteger),
            sa.Column("updated", sa.Float, nullable=False),
        )
        tables = [self._logs, self._records, self._batches] if purpose == "store" else [self._subscriptions]
        try:
            self._engine = sa.create_engine(url)
            meta.create_all(self._engine, tables=tables)
        except sa.exc.SQLAlchemyError as exc:
            raise self._error(f"cannot open the {purpose} {self._safe(url)}: {str(exc).splitlines()[0][:300]}") \
                from None
        self.url = self._safe(url)
        self._lock = threading.Lock()
        self._log_locks: dict[str, FileLogLock | PostgresLogLock] = {}

    def lock_log(self, origin: str) -> None:
        """One batcher per log: a PostgreSQL advisory lock, or a lock file next to an SQLite database; other
        databases are refused (a log they hold could be written by two batchers at once)."""
        if origin in self._log_locks:
            return
        url = self._engine.url
        if url.get_backend_name() == "postgresql":
            self._log_locks[origin] = PostgresLogLock(self._engine, origin, sa=self._sa)
        elif url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            self._log_locks[origin] = FileLogLock(url.database, origin)
        elif url.get_backend_name() != "sqlite":
            raise StoreError(f"the store {self.url}: one batcher per log is enforced on PostgreSQL and SQLite only")

    def unlock_log(self, origin: str) -> None:
        lock = self._log_locks.pop(origin, None)
        if lock is not None:
            lock.release()

    @staticmethod
    def _safe(url: str) -> str:
        """The URL without its password."""
        head, sep, tail = url.partition("@")
        if not sep or "://" not in head:
            return url
        scheme, _, cred = head.partition("://")
        return f"{scheme}://{cred.split(':', 1)[0]}@{tail}"

    def _run(self, fn: Any, *, write: bool) -> Any:
        sa = self._sa
        try:
            with self._lock, (self._engine.begin() if write else self._engine.connect()) as conn:
                return fn(conn)
        except sa.exc.SQLAlchemyError as exc:
            raise self._error(f"the {self.purpose} {self.url} failed: {str(exc).splitlines()[0][:300]}") from None

    def open_log(self, origin: str, org_key: bytes) -> None:
        t = self._logs

        def go(conn: Any) -> None:
            row = conn.execute(self._sa.select(t.c.org_key).where(t.c.origin == origin)).first()
            if row is not None and bytes(row[0]) != org_key:
                raise StoreError(f"the log {origin!r} in this store belongs to another organisation key")
            if row is None:
                conn.execute(t.insert().values(origin=origin, org_key=org_key))

        self._run(go, write=True)

    def append_records(self, origin: str, rows: Sequence[RecordRow]) -> None:
        values = [{"origin": origin, **r._asdict()} for r in rows]
        self._run(lambda conn: conn.execute(self._records.insert(), values), write=True)

    def _record_cols(self) -> list[Any]:
        c = self._records.c
        return [c.seq, c.kind, c.scheme, c.commitment, c.salt, c.author, c.uid, c.signature, c.leaf_hash, c.added]

    def _batch_cols(self) -> list[Any]:
        c = self._batches.c
        return [c.sequence, c.tree_size, c.root, c.prev_root, c.note, c.state, c.sealed, c.tx_hash, c.block_number,
                c.anchored]

    def record(self, origin: str, seq: int) -> RecordRow | None:
        t = self._records
        q = self._sa.select(*self._record_cols()).where(t.c.origin == origin, t.c.seq == seq)
        row = self._run(lambda conn: conn.execute(q).first(), write=False)
        return None if row is None else record_row(tuple(row))

    def record_count(self, origin: str) -> int:
        t = self._records
        q = self._sa.select(self._sa.func.max(t.c.seq)).where(t.c.origin == origin)
        top = self._run(lambda conn: conn.execute(q).scalar(), write=False)
        return 0 if top is None else int(top) + 1

    def leaf_hashes(self, origin: str, start: int, end: int) -> list[bytes]:
        t = self._records
        q = (self._sa.select(t.c.seq, t.c.leaf_hash)
             .where(t.c.origin == origin, t.c.seq >= start, t.c.seq < end).order_by(t.c.seq))
        rows = self._run(lambda conn: conn.execute(q).all(), write=False)
        if len(rows) != end - start:
            raise StoreError(f"the store's log {origin!r} has a gap between records {start} and {end}")
        return [bytes(r[1]) for r in rows]

    def added_time(self, origin: str, seq: int) -> float | None:
        t = self._records
        q = self._sa.select(t.c.added).where(t.c.origin == origin, t.c.seq == seq)
        value = self._run(lambda conn: conn.execute(q).scalar(), write=False)
        return None if value is None else float(value)

    def add_batch(self, origin: str, batch: BatchRow) -> None:
        b = batch
        values = {"origin": origin, "sequence": b.sequence, "tree_size": b.tree_size, "root": b.root,
                  "prev_root": b.prev_root, "note": b.note, "state": b.state, "sealed": b.sealed, "tx_hash": b.tx_hash,
                  "block_number": b.block_number, "anchored": b.anchored}
        self._run(lambda conn: conn.execute(self._batches.insert().values(**values)), write=True)

    def set_batch_state(self, origin: str, sequence: int, state: str, *, tx_hash: bytes | None = None,
                        block_number: int | None = None, anchored: float | None = None) -> None:
        t = self._batches
        values: dict[str, Any] = {"state": state}
        if tx_hash is not None:
            values["tx_hash"] = tx_hash
        if block_number is not None:
            values["block_number"] = block_number
        if anchored is not None:
            values["anchored"] = anchored
        q = t.update().where(t.c.origin == origin, t.c.sequence == sequence).values(**values)
        self._run(lambda conn: conn.execute(q), write=True)

    def batches(self, origin: str) -> list[BatchRow]:
        t = self._batches
        q = self._sa.select(*self._batch_cols()).where(t.c.origin == origin).order_by(t.c.sequence)
        return [batch_row(tuple(r)) for r in self._run(lambda conn: conn.execute(q).all(), write=False)]

    def batch_of(self, origin: str, seq: int) -> BatchRow | None:
        t = self._batches
        q = (self._sa.select(*self._batch_cols()).where(t.c.origin == origin, t.c.tree_size > seq)
             .order_by(t.c.sequence).limit(1))
        row = self._run(lambda conn: conn.execute(q).first(), write=False)
        return None if row is None else batch_row(tuple(row))

    # -- the subscriptions' checkpoints (purpose "checkpoint") ------------------------------------------------
    def load(self, name: str) -> SavedPosition | None:
        t = self._subscriptions
        q = self._sa.select(t.c.filter_id, t.c.block_number, t.c.block_hash, t.c.log_index).where(t.c.name == name)
        row = self._run(lambda conn: conn.execute(q).first(), write=False)
        return None if row is None else saved_position(tuple(row))

    def save(self, name: str, position: Position, *, filter_id: bytes) -> None:
        t = self._subscriptions
        values = {"filter_id": filter_id, "block_number": position.block_number, "block_hash": position.block_hash,
                  "log_index": position.log_index, "updated": time.time()}

        def go(conn: Any) -> None:
            if conn.execute(t.update().where(t.c.name == name).values(**values)).rowcount == 0:
                conn.execute(t.insert().values(name=name, **values))

        self._run(go, write=True)

    def close(self) -> None:
        for origin in list(self._log_locks):
            self.unlock_log(origin)
        self._engine.dispose()
