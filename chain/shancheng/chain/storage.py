"""Node storage: LevelDB (plyvel) behind py-evm's database interface.

Every write that matters happens inside :meth:`LevelDB.atomic_batch` (or
:meth:`LevelDB.block_transaction` for a whole block): reads inside the batch
see its own writes, and on success the batch reaches disk as **one** LevelDB
``WriteBatch`` written with ``sync=True``; on an exception nothing is
written.  LevelDB applies a write batch atomically and its log replays on the
next open, so a ``kill -9`` at any instant leaves either the whole block or
none of it.  A batch cannot be used after its context ends (py-evm's
``AtomicDBWriteBatch`` enforces that).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import plyvel  # type: ignore[import-untyped]
from eth.abc import AtomicDatabaseAPI, AtomicWriteBatchAPI
from eth.db.atomic import AtomicDB, AtomicDBWriteBatch
from eth.db.backends.base import BaseAtomicDB, BaseDB

from shancheng.sdk.errors import ShanchengError

__all__ = ["LevelDB", "StorageError"]


class StorageError(ShanchengError):
    """The node's database cannot be opened or written."""


class _PendingWriteBatch(BaseDB):
    """Write target for a committing batch: reads fall through, writes go to one plyvel WriteBatch."""

    def __init__(self, owner: LevelDB) -> None:
        self._owner = owner
        self._batch = owner._db.write_batch(sync=owner.sync)

    def __getitem__(self, key: bytes) -> bytes:
        return self._owner[key]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._batch.put(key, value)

    def __delitem__(self, key: bytes) -> None:
        self._batch.delete(key)

    def _exists(self, key: bytes) -> bool:
        return key in self._owner

    def write(self) -> None:
        self._batch.write()


class LevelDB(BaseAtomicDB):
    """A py-evm ``AtomicDatabaseAPI`` over LevelDB with fsynced atomic batches."""

    def __init__(self, path: str | Path, *, create: bool = True, sync: bool = True) -> None:
        self.path = Path(path)
        self.sync = sync
        try:
            self._db = plyvel.DB(str(self.path), create_if_missing=create)
        except plyvel.IOError as exc:
            raise StorageError(f"cannot open the database at {self.path}: {exc}") from exc
        except plyvel.Error as exc:
            raise StorageError(f"the database at {self.path} is damaged or not LevelDB: {exc}") from exc

    # -- single keys (outside batches; not used on the block path) -----------------
    def __getitem__(self, key: bytes) -> bytes:
        value = self._db.get(key)
        if value is None:
            raise KeyError(key)
        return bytes(value)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._db.put(key, value, sync=self.sync)

    def __delitem__(self, key: bytes) -> None:
        if self._db.get(key) is None:
            raise KeyError(key)
        self._db.delete(key, sync=self.sync)

    def _exists(self, key: bytes) -> bool:
        return self._db.get(key) is not None

    # -- atomic writes ---------------------------------------------------------------
    @contextmanager
    def atomic_batch(self) -> Iterator[AtomicWriteBatchAPI]:
        """All writes in the context reach disk together (one fsynced batch) or not at all."""
        target = _PendingWriteBatch(self)
        with AtomicDBWriteBatch._commit_unless_raises(target) as batch:
            yield batch
        target.write()

    @contextmanager
    def block_transaction(self) -> Iterator[AtomicDatabaseAPI]:
        """An atomic database for building or importing one block with py-evm.

        py-evm opens nested ``atomic_batch`` contexts of its own while it
        persists state, headers and receipts; they all land in this one
        outer batch, which is written to disk when the context ends.
        """
        with self.atomic_batch() as batch:
            yield AtomicDB(batch)

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs whose key starts with ``prefix``, in key order."""
        with self._db.iterator(prefix=prefix) as it:
            for key, value in it:
                yield bytes(key), bytes(value)

    def iterate_range(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs with start <= key < stop, in key order."""
        with self._db.iterator(start=start, stop=stop) as it:
            for key, value in it:
                yield bytes(key), bytes(value)

    def close(self) -> None:
        if not self._db.closed:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
