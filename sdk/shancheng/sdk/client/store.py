"""What a batcher keeps to anchor every accepted record exactly once and to cut its evidence package later: the
records (statement parts, salt, author key and signature, leaf hash) and the batches (checkpoint, anchoring state),
as rows, and the :class:`Store` protocol its database implements (writes are transactions that are durable when they
return). The databases: :mod:`~shancheng.sdk.client.sqlite_store` and :mod:`~shancheng.sdk.client.sqlstore`,
opened by :func:`~shancheng.sdk.client.stores.open_store`.

>>> record_row((0, "rx", "sm3-salted/v1", b"c", None, b"a", b"u", None, b"l", 1.5)).added
1.5
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from ..errors import ShanchengError

__all__ = ["ANCHORED", "SEALED", "SENT", "BatchRow", "RecordRow", "Store", "StoreError", "batch_row", "record_row"]

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


def record_row(row: Sequence[Any]) -> RecordRow:
    seq, kind, scheme, commitment, salt, author, uid, signature, leaf, added = row
    return RecordRow(int(seq), str(kind), str(scheme), bytes(commitment), None if salt is None else bytes(salt),
                     bytes(author), bytes(uid), None if signature is None else bytes(signature), bytes(leaf),
                     float(added))


def batch_row(row: Sequence[Any]) -> BatchRow:
    sequence, size, root, prev, note, state, sealed, tx, block, anchored = row
    return BatchRow(int(sequence), int(size), bytes(root), bytes(prev), str(note), str(state), float(sealed),
                    None if tx is None else bytes(tx), None if block is None else int(block),
                    None if anchored is None else float(anchored))
