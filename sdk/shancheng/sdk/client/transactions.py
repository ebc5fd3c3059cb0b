"""A transaction the client sent, its final receipt, and the ways sending fails (a leaf module: the client, the
batcher and the proofs share it).

>>> issubclass(TransactionReverted, ShanchengError)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..chainproof import CommitCertificate
from ..errors import ShanchengError
from .contracts import Call

__all__ = ["PendingTransaction", "Receipt", "TransactionRefused", "TransactionReverted"]


class TransactionRefused(ShanchengError):
    """The node refused a transaction at admission (the message is the node's)."""


class TransactionReverted(ShanchengError):
    """A transaction was included but its execution failed (receipt status 0)."""


@dataclass(frozen=True)
class Receipt:
    """A final receipt."""

    transaction_hash: bytes
    block_number: int
    block_hash: bytes
    transaction_index: int
    status: int
    gas_used: int
    logs: tuple[dict[str, Any], ...]
    certificate: CommitCertificate | None  # on Shancheng: the block's commit certificate


@dataclass
class PendingTransaction:
    """A signed transaction the client keeps (and re-sends) until its receipt is final."""

    call: Call
    sender: str
    nonce: int
    raw: bytes
    transaction_hash: bytes
    first_sent: float
    last_sent: float
    #: when a re-send first met "nonce too low" with no node showing this transaction's receipt: a node that lags
    #: behind (or one between executing and indexing a block) shows that too, so "replaced" is concluded only when
    #: it is still so a re-send interval later
    nonce_used_since: float | None = None
