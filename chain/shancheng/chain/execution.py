"""The block-execution seam: raw transactions and a block context in, a :class:`BlockOutcome` out.

:class:`BlockExecutor` is the one interface an execution engine implements
(:class:`shancheng.chain.pyevm_execution.PyEvmExecutor` today; a native engine later). It is narrow on
purpose: the engine gets the block's raw transactions (in proposal order) and a :class:`BlockContext` — the
height, the timestamp, the proposer (coinbase) and the parent header, which is the committed head — and
returns what became of every input plus the block and the writes that commit it. It reads the committed
database only, writes nothing, holds no key and reads no clock, so the outcome is a function of the
committed chain and its arguments (every node computes the same block). Persisting an outcome is not the
engine's job: :meth:`shancheng.chain.ledger.Ledger.commit` does it in one atomic batch. (py-evm's engine
also takes a mempool's already-checked transactions, ``execute_checked``: an optimisation of the solo
producer, not part of the seam.)

>>> from shancheng.chain.execution import CODE_OK, BlockContext, BlockExecutor, BlockOutcome
>>> outcome = ledger.apply_block([raw], height=ledger.latest_number() + 1, timestamp=now,  # doctest: +SKIP
...                              proposer=coinbase)
>>> [r.code == CODE_OK for r in outcome.results]                                            # doctest: +SKIP
[True]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI
from eth.db.backends.memory import MemoryDB
from eth.db.batch import BatchDB

from shancheng.sdk.chainproof.validators import ValidatorSet, ValidatorUpdate
from shancheng.sdk.errors import InvalidInput, ShanchengError

__all__ = [
    "CODE_BAD_NONCE",
    "CODE_INVALID",
    "CODE_NOT_MEMBER",
    "CODE_NO_ROOM",
    "CODE_OK",
    "CODE_REFUSED",
    "BlockContext",
    "BlockExecutor",
    "BlockOutcome",
    "LedgerConflict",
    "TxOutcome",
]

#: TxOutcome.code values: 0 included; 1 invalid whatever the state (shancheng.chain.validity); 2 the sender is
#: not an account of an active member; 3 not the sender's next nonce; 4 does not fit the block's remaining gas;
#: 5 refused by the EVM before execution (e.g. a value the sender cannot pay)
CODE_OK, CODE_INVALID, CODE_NOT_MEMBER, CODE_BAD_NONCE, CODE_NO_ROOM, CODE_REFUSED = range(6)


class LedgerConflict(ShanchengError):
    """A block that does not extend the committed head: executed for another height, or committed after
    another block of its height."""


@dataclass(frozen=True)
class BlockContext:
    """What a block is executed in, besides its transactions.

    ``height`` is ``parent``'s number + 1; ``timestamp`` is unix seconds (CometBFT's BFT time; the block gets
    max(timestamp, parent timestamp + 1)); ``proposer`` is the 20-byte coinbase; ``parent`` the committed head.
    """

    height: int
    timestamp: int
    proposer: bytes
    parent: BlockHeaderAPI

    def __post_init__(self) -> None:
        head = int(self.parent.block_number)
        if self.height != head + 1:
            raise LedgerConflict(f"cannot execute block {self.height}: the head is block {head}, so the next block "
                                 f"is {head + 1}")
        if len(self.proposer) != 20:
            raise InvalidInput("the proposer (coinbase) must be a 20-byte address")

    @property
    def block_timestamp(self) -> int:
        """The block's timestamp: never at or before its parent's."""
        return max(int(self.timestamp), int(self.parent.timestamp) + 1)


@dataclass(frozen=True)
class TxOutcome:
    """What became of one input transaction of a block."""

    included: bool  # in the Ethereum block (a reverted execution is included, with receipt status 0)
    tx_hash: bytes | None  # the Ethereum hash; None when the bytes are not a valid transaction
    code: int  # CODE_OK when included, else why not (CODE_INVALID ... CODE_REFUSED)
    reason: str  # "" when included, else one line
    gas_used: int  # 0 when not included
    gas_wanted: int  # the transaction's gas limit (0 when invalid)


@dataclass(frozen=True)
class BlockOutcome:
    """One executed block, not yet committed (:meth:`shancheng.chain.ledger.Ledger.commit` persists it)."""

    height: int
    block: BlockAPI  # the Ethereum block; its hash is keccak(RLP(header))
    receipts: tuple[ReceiptAPI, ...]  # of the included transactions, in block order
    results: tuple[TxOutcome, ...]  # one per input transaction, in input order
    validator_updates: tuple[ValidatorUpdate, ...]  # the change of the set from height + 2 on (power 0 removes)
    #: the database writes of the block (state, header, body, receipts, transaction index) over the committed
    #: database; the commit applies them in its batch
    _overlay: BatchDB = field(repr=False, compare=False, default_factory=lambda: BatchDB(MemoryDB()))
    _after_next: ValidatorSet | None = field(repr=False, compare=False, default=None)  # set(height + 2) if changed

    @property
    def app_hash(self) -> bytes:
        """The state root after the block (CometBFT's app hash); an empty block leaves it unchanged."""
        return bytes(self.block.header.state_root)

    @property
    def included(self) -> tuple[int, ...]:
        """The input positions that are in the Ethereum block."""
        return tuple(i for i, r in enumerate(self.results) if r.included)


class BlockExecutor(Protocol):
    """An execution engine: executes one block on the committed chain without writing anything."""

    #: whether executing a block holds the Python interpreter (the GIL) throughout: then other Python work of the
    #: node only shares its core (the solo node's admission waits for the block instead)
    holds_interpreter: bool

    def execute(self, transactions: Sequence[bytes], context: BlockContext) -> BlockOutcome:
        """Execute ``transactions`` (raw, in proposal order) as block ``context.height`` on ``context.parent``.

        Every input gets a :class:`TxOutcome`, in input order: bytes that are not a valid transaction
        (:func:`shancheng.chain.validity.check_transaction`), a sender that is not an account of an active
        member (asked of Governance *inside* the block: a vote earlier in the block applies at once), a nonce
        that is not the sender's next, a gas limit that does not fit the block's remaining gas, or a refusal
        by the EVM before execution leave it out; the block holds the others in input order. The header's
        extra data commits to the validator sets (:class:`shancheng.chain.validator_history.Sealer`).
        Outcomes of one height are independent of each other.
        """
        ...
