"""Where a batcher keeps what it needs to anchor every accepted record exactly once and to cut its evidence package
later: the records (statement parts, salt, author key and signature, leaf hash) and the batches (checkpoint,
anchoring state). Writes are transactions that are durable when they return.

- ``sqlite:///path/to/evidence.db`` (the default, standard library): WAL journal, ``synchronous=FULL`` — a
  commit is on disk (fsync) before it returns.
- any other SQLAlchemy URL (``postgresql+psycopg://…``), with the optional extra ``shancheng-sdk[sql]``.

>>> store = open_store("sqlite:///:memory:")
>>> store.open_log("district.example/log/rx", b"\\x04" + b"\\x01" * 64)
>>> store.record_count("district.example/log/rx")
0
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from ..errors import InvalidInput, ShanchengError
from .loglock import FileLogLock

__all__ = [
    "BatchRow",
    "RecordRow",
    "SqliteStore",
    "Store",
    "StoreError",
    "open_store",
]

SEALED, SENT, ANCHORED = "sealed", "sent", "anchored"


class StoreError(ShanchengError):
    """The batcher's store cannot be opened, read or written."""


class RecordRow(NamedTuple):
    """One accepted record: its statement parts, its leaf's author (key and uid), the author's signature
    (None for an org-attested record), the salt of a salted commitment and the leaf hash. A tuple in the column
    order of the records table (made once per record: a named tuple costs a quarter of a frozen dataclass)."""

    seq: int
    kind: str
    scheme: str
    commitment: bytes
    salt: bytes | None
    author: bytes  # 65-byte uncompressed SM2 key
    uid: bytes
    signature: bytes | None
    leaf_hash: bytes
    added: float  # unix time of add()


@dataclass(frozen=True)
class BatchRow:
    """One sealed checkpoint of the log and its anchoring."""

    sequence: int
    tree_size: int
    root: bytes
    prev_root: bytes
    note: str
    state: str  # sealed, sent, anchored
    sealed: float
    tx_hash: bytes | None = None
    block_number: int | None = None
    anchored: float | None = None


class Store(Protocol):
    def lock_log(self, origin: str) -> None: ...  # one batcher per log: LogLocked for the second
    def unlock_log(self, origin: str) -> None: ...
    def open_log(self, origin: str, org_key: bytes) -> None: ...
    def append_records(self, origin: str, rows: Sequence[RecordRow]) -> None: ...
    def record(self, origin: str, seq: int) -> RecordRow | None: ...
    def record_count(self, origin: str) -> int: ...
    def leaf_hashes(self, origin: str, start: int, end: int) -> list[bytes]: ...
    def added_time(self, origin: str, seq: int) -> float | None: ...
    def add_batch(self, origin: str, batch: BatchRow) -> None: ...
    def set_batch_state(self, origin: str, sequence: int, state: str, *, tx_hash: bytes | None = None,
                        block_number: int | None = None, anchored: float | None = None) -> None: ...
    def batches(self, origin: str) -> list[BatchRow]: ...
    def batch_of(self, origin: str, seq: int) -> BatchRow | None: ...
    def close(self) -> None: ...


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


def _record(row: Sequence[Any]) -> RecordRow:
    seq, kind, scheme, commitment, salt, author, uid, signature, leaf, added = row
    return RecordRow(int(seq), str(kind), str(scheme), bytes(commitment), None if salt is None else bytes(salt),
                     bytes(author), bytes(uid), None if signature is None else bytes(signature), bytes(leaf),
                     float(added))


def _batch(row: Sequence[Any]) -> BatchRow:
    sequence, size, root, prev, note, state, sealed, tx, block, anchored = row
    return BatchRow(int(sequence), int(size), bytes(root), bytes(prev), str(note), str(state), float(sealed),
                    None if tx is None else bytes(tx), None if block is None else int(block),
                    None if anchored is None else float(anchored))


class SqliteStore:
    """The default store: one SQLite file, WAL, ``synchronous=FULL``; one connection shared under a lock."""

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            folder = Path(path).parent
            if not folder.is_dir():
                raise StoreError(f"the store's folder {folder} does not exist")
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            for statement in _SCHEMA:
                self._db.execute(statement)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the SQLite store {path}: {exc}") from None
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
                raise StoreError(f"writing the store {self.path} failed: {exc}") from None

    def _read(self, sql: str, args: Sequence[Any]) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"reading the store {self.path} failed: {exc}") from None

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
        return _record(rows[0]) if rows else None

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
        return [_batch(r) for r in rows]

    def batch_of(self, origin: str, seq: int) -> BatchRow | None:
        rows = self._read(f"SELECT {_BATCH_COLS} FROM shancheng_batches WHERE origin = ? AND tree_size > ? "
                          "ORDER BY sequence LIMIT 1", (origin, seq))
        return _batch(rows[0]) if rows else None

    def close(self) -> None:
        for origin in list(self._log_locks):
            self.unlock_log(origin)
        with self._lock:
            self._db.close()


def open_store(url: str) -> Store:
    """A store from a URL: ``sqlite:///relative/or/absolute/path`` (``sqlite:////abs`` also works) or
    ``sqlite:///:memory:`` uses the standard library; any other URL goes to SQLAlchemy (extra ``sql``)."""
    if not isinstance(url, str) or len(url) > 4096:
        raise InvalidInput("the store must be a URL string such as sqlite:///evidence.db")
    if url.startswith("sqlite:///"):
        return SqliteStore(url[len("sqlite:///"):])
    if "://" not in url:
        raise InvalidInput(f"the store {url!r} is not a URL (sqlite:///path or an SQLAlchemy URL)")
    from .sqlstore import SqlAlchemyStore

    store: Store = SqlAlchemyStore(url)
    return store
