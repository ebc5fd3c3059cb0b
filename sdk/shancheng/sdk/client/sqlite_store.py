"""The default database of the batcher's store and of subscriptions' checkpoints: one SQLite file (standard
library), WAL journal, ``synchronous=FULL`` — a commit is on disk (fsync) before it returns.

>>> store = SqliteStore(":memory:")
>>> store.open_log("district.example/log/rx", b"\\x04" + b"\\x01" * 64)
>>> store.record_count("district.example/log/rx")
0
>>> SqliteStore(":memory:", purpose="checkpoint").load("anchors") is None
True
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from ..errors import ShanchengError
from .checkpoints import Position, SavedPosition, SubscriptionError, saved_position
from .loglock import FileLogLock
from .store import BatchRow, RecordRow, StoreError, batch_row, record_row

__all__ = ["Purpose", "SqliteStore"]

#: what a database is opened as: a batcher's store or subscriptions' checkpoints
Purpose = Literal["store", "checkpoint"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS shancheng_logs (
        origin TEXT PRIMARY KEY, org_key BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS shancheng_records (
        origin TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, scheme TEXT NOT NULL,
        commitment BLOB NOT NULL, salt BLOB, author BLOB NOT NULL, uid BLOB NOT NULL, signature BLOB,
        leaf_hash BLOB NOT NULL, added REAL NOT NULL, PRIMARY KEY (origin, seq))""",
    """CREATE TABLE IF NOT EXISTS shancheng_batches (
        origin TEXT NOT NULL, sequence INTEGER NOT NULL, tree_size INTEGER NOT NULL, root BLOB NOT NULL,
        prev_root BLOB NOT NULL, note TEXT NOT NULL, state TEXT NOT NULL, sealed REAL NOT NULL, tx_hash BLOB,
        block_number INTEGER, anchored REAL, PRIMARY KEY (origin, sequence))""",
)
_RECORD_COLS = "seq, kind, scheme, commitment, salt, author, uid, signature, leaf_hash, added"
_BATCH_COLS = "sequence, tree_size, root, prev_root, note, state, sealed, tx_hash, block_number, anchored"
_CHECKPOINTS = """CREATE TABLE IF NOT EXISTS shancheng_subscriptions (
    name TEXT PRIMARY KEY, filter_id BLOB NOT NULL, block_number INTEGER NOT NULL, block_hash BLOB NOT NULL,
    log_index INTEGER, updated REAL NOT NULL)"""


class SqliteStore:
    """One SQLite file, WAL, ``synchronous=FULL``; one connection shared under a lock. ``purpose`` is what it is
    opened as: a batcher's ``"store"`` (its errors :class:`StoreError`) or a subscriptions' ``"checkpoint"`` (its
    errors :class:`SubscriptionError`)."""

    def __init__(self, path: str | Path, *, purpose: Purpose = "store") -> None:
        path = str(path)
        self.purpose = purpose
        self._error: type[ShanchengError] = StoreError if purpose == "store" else SubscriptionError
        if path != ":memory:":
            folder = Path(path).parent
            if not folder.is_dir():
                raise self._error(f"the {purpose}'s folder {folder} does not exist")
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            for statement in _SCHEMA if purpose == "store" else (_CHECKPOINTS,):
                self._db.execute(statement)
        except sqlite3.Error as exc:
            raise self._error(f"cannot open the SQLite {purpose} {path}: {exc}") from None
        self.path = path
        self._lock = threading.Lock()
        self._log_locks: dict[str, FileLogLock] = {}

    def lock_log(self, origin: str) -> None:
        """Take the log's lock file (a store in memory is this process's alone: nothing to lock)."""
        if self.path != ":memory:" and origin not in self._log_locks:
            self._log_locks[origin] = FileLogLock(self.path, origin)

    def unlock_log(self, origin: str) -> None:
        lock = self._log_locks.pop(origin, None)
        if lock is not None:
            lock.release()

    def _write(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(sql, rows)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._error(f"writing the {self.purpose} {self.path} failed: {exc}") from None

    def _read(self, sql: str, args: Sequence[Any]) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise self._error(f"reading the {self.purpose} {self.path} failed: {exc}") from None

    def open_log(self, origin: str, org_key: bytes) -> None:
        rows = self._read("SELECT org_key FROM shancheng_logs WHERE origin = ?", (origin,))
        if rows and bytes(rows[0][0]) != org_key:
            raise StoreError(f"the log {origin!r} in this store belongs to another organisation key")
        if not rows:
            self._write("INSERT INTO shancheng_logs (origin, org_key) VALUES (?, ?)", [(origin, org_key)])

    def append_records(self, origin: str, rows: Sequence[RecordRow]) -> None:
        self._write(
            f"INSERT INTO shancheng_records (origin, {_RECORD_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(origin, *r) for r in rows],
        )

    def record(self, origin: str, seq: int) -> RecordRow | None:
        rows = self._read(f"SELECT {_RECORD_COLS} FROM shancheng_records WHERE origin = ? AND seq = ?", (origin, seq))
        return record_row(rows[0]) if rows else None

    def record_count(self, origin: str) -> int:
        rows = self._read("SELECT MAX(seq) FROM shancheng_records WHERE origin = ?", (origin,))
        return 0 if rows[0][0] is None else int(rows[0][0]) + 1

    def leaf_hashes(self, origin: str, start: int, end: int) -> list[bytes]:
        rows = self._read("SELECT seq, leaf_hash FROM shancheng_records WHERE origin = ? AND seq >= ? AND seq < ? "
                          "ORDER BY seq", (origin, start, end))
        if len(rows) != end - start or (rows and (rows[0][0] != start or rows[-1][0] != end - 1)):
            raise StoreError(f"the store's log {origin!r} has a gap between records {start} and {end}")
        return [bytes(r[1]) for r in rows]

    def added_time(self, origin: str, seq: int) -> float | None:
        rows = self._read("SELECT added FROM shancheng_records WHERE origin = ? AND seq = ?", (origin, seq))
        return float(rows[0][0]) if rows else None

    def add_batch(self, origin: str, batch: BatchRow) -> None:
        b = batch
        self._write(
            f"INSERT INTO shancheng_batches (origin, {_BATCH_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(origin, b.sequence, b.tree_size, b.root, b.prev_root, b.note, b.state, b.sealed, b.tx_hash,
              b.block_number, b.anchored)],
        )

    def set_batch_state(self, origin: str, sequence: int, state: str, *, tx_hash: bytes | None = None,
                        block_number: int | None = None, anchored: float | None = None) -> None:
        self._write(
            "UPDATE shancheng_batches SET state = ?, tx_hash = COALESCE(?, tx_hash), "
            "block_number = COALESCE(?, block_number), anchored = COALESCE(?, anchored) "
            "WHERE origin = ? AND sequence = ?",
            [(state, tx_hash, block_number, anchored, origin, sequence)],
        )

    def batches(self, origin: str) -> list[BatchRow]:
        rows = self._read(f"SELECT {_BATCH_COLS} FROM shancheng_batches WHERE origin = ? ORDER BY sequence", (origin,))
        return [batch_row(r) for r in rows]

    def batch_of(self, origin: str, seq: int) -> BatchRow | None:
        rows = self._read(f"SELECT {_BATCH_COLS} FROM shancheng_batches WHERE origin = ? AND tree_size > ? "
                          "ORDER BY sequence LIMIT 1", (origin, seq))
        return batch_row(rows[0]) if rows else None

    # -- the subscriptions' checkpoints (purpose "checkpoint") ------------------------------------------------
    def load(self, name: str) -> SavedPosition | None:
        rows = self._read("SELECT filter_id, block_number, block_hash, log_index FROM shancheng_subscriptions "
                          "WHERE name = ?", (name,))
        return saved_position(rows[0]) if rows else None

    def save(self, name: str, position: Position, *, filter_id: bytes) -> None:
        self._write(
            "INSERT INTO shancheng_subscriptions (name, filter_id, block_number, block_hash, log_index, updated) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET filter_id = excluded.filter_id, "
            "block_number = excluded.block_number, block_hash = excluded.block_hash, "
            "log_index = excluded.log_index, updated = excluded.updated",
            [(name, filter_id, position.block_number, position.block_hash, position.log_index, time.time())])

    def close(self) -> None:
        for origin in list(self._log_locks):
            self.unlock_log(origin)
        with self._lock:
            self._db.close()
