"""Where a durable subscription keeps its position: the :class:`Position` of a subscription, as saved with its
filter, and the :class:`Checkpoint` protocol (per subscription name; ``save`` durable when it returns). The same
databases as the batcher's store implement it (:func:`~shancheng.sdk.client.stores.open_checkpoint`), or your own
object does.

>>> Position(7, b"\\x01" * 32, None).covers(7, 3)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import ShanchengError

__all__ = ["MAX_NAME_LENGTH", "Checkpoint", "Position", "SavedPosition", "SubscriptionError", "saved_position"]

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


def saved_position(row: Sequence[Any]) -> SavedPosition:
    filter_id, number, block_hash, log_index = row
    return SavedPosition(Position(int(number), bytes(block_hash), None if log_index is None else int(log_index)),
                         bytes(filter_id))
