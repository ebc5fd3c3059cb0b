"""One batcher per log: an exclusive lock taken when a batcher opens a log and held until it closes.

Two batchers on one log would hand out the same record ids and sequences; the second one is refused at once with
:class:`LogLocked` instead. The lock dies with its holder (a process killed with SIGKILL releases it), so a restarted
batcher takes over.

- SQLite: ``flock`` (POSIX; ``msvcrt.locking`` on Windows) on a lock file next to the database, one per log
  (``evidence.db.<sha256(origin)[:16]>.lock``).
- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) keyed by the log's origin, held on a connection of
  its own.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import IO, Any

from ..errors import ShanchengError

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
else:
    import fcntl

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

__all__ = ["FileLogLock", "LogLockError", "LogLocked", "PostgresLogLock", "advisory_key"]


class LogLockError(ShanchengError):
    """The log's lock cannot be taken (the lock file or the database cannot be reached)."""


class LogLocked(LogLockError):
    """Another batcher has this log open: one batcher per log."""


def _origin_digest(origin: str) -> bytes:
    return hashlib.sha256(b"shancheng.batcher.log\0" + origin.encode("utf-8")).digest()


def advisory_key(origin: str) -> int:
    """The signed 64-bit key of ``origin``'s PostgreSQL advisory lock."""
    return int.from_bytes(_origin_digest(origin)[:8], "big", signed=True)


def _refusal(origin: str, where: str) -> LogLocked:
    return LogLocked(f"the log {origin!r} is open in another batcher ({where}): run one batcher per log, or close "
                     "the other one first")


class FileLogLock:
    """An exclusive lock file per (SQLite database, log)."""

    def __init__(self, database: str, origin: str) -> None:
        self.path = f"{database}.{_origin_digest(origin).hex()[:16]}.lock"
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise LogLockError(f"cannot open the lock file {self.path}: {exc.strerror}") from None
        self._handle: IO[bytes] | None = os.fdopen(fd, "r+b")
        if not _try_lock(self._handle):
            self._handle.close()
            self._handle = None
            raise _refusal(origin, f"lock file {self.path}")

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file releases the lock
            self._handle = None


class PostgresLogLock:
    """A session advisory lock on a connection of its own (``engine`` is an SQLAlchemy engine)."""

    def __init__(self, engine: Any, origin: str, *, sa: Any) -> None:
        self._conn: Any = None
        self._sa = sa
        self._key = advisory_key(origin)
        try:
            conn = engine.connect()
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}).scalar()
            conn.commit()
        except sa.exc.SQLAlchemyError as exc:
            raise LogLockError(f"cannot take the log's advisory lock: {str(exc).splitlines()[0][:300]}") from None
        if not got:
            conn.invalidate()
            raise _refusal(origin, "PostgreSQL advisory lock")
        self._conn = conn

    def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.execute(self._sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
                conn.commit()
            except self._sa.exc.SQLAlchemyError:
                pass  # the session is gone, and its lock with it
            conn.invalidate()  # never back to the pool: the session (and any lock left) ends here
