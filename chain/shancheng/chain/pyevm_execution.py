"""Block execution with py-evm: the reference :class:`~shancheng.chain.execution.BlockExecutor`.

A block is executed on a private overlay of the committed database: the fast path first (cheap checks —
membership on the committed state, nonces, gas — then every transaction in one pass), and one transaction at
a time when a governance transaction is among them (membership may change inside the block) or when the fast
path meets something the cheap checks missed. The overlay becomes the outcome's writes.

>>> executor = PyEvmExecutor(store, views, validators)                    # doctest: +SKIP
>>> executor.execute([raw], BlockContext(1, now, coinbase, store.head))  # doctest: +SKIP
BlockOutcome(height=1, ...)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI, SignedTransactionAPI
from eth.db.atomic import AtomicDB
from eth.db.batch import BatchDB
from eth_utils.exceptions import ValidationError

from .committed import CommittedChain
from .execution import (
    CODE_BAD_NONCE,
    CODE_INVALID,
    CODE_NO_ROOM,
    CODE_NOT_MEMBER,
    CODE_OK,
    CODE_REFUSED,
    BlockContext,
    BlockOutcome,
    TxOutcome,
)
from .permissions import GovernanceViews
from .validator_history import Sealer, ValidatorHistory
from .validity import TransactionInvalid, check_transaction

__all__ = ["PyEvmExecutor"]

_NOT_MEMBER = "sender is not an account of an active member organisation"

# py-evm logs every abandoned write batch in full at ERROR level; an abandoned fast path is expected here
# (the block is then rebuilt transaction by transaction), so keep those dumps out of the node's log.
logging.getLogger("eth.db.AtomicDBWriteBatch").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class _Candidate:
    position: int  # in the input
    tx: SignedTransactionAPI
    sender: bytes


_Mined = tuple[BlockAPI, tuple[ReceiptAPI, ...], list[_Candidate]]


def _left_out(tx: SignedTransactionAPI, code: int, reason: str) -> TxOutcome:
    return TxOutcome(False, bytes(tx.hash), code, reason, 0, int(tx.gas))


def _no_room(tx: SignedTransactionAPI, gas_left: int) -> str:
    return f"gas {tx.gas} does not fit the block's remaining gas {gas_left}"


def _bad_nonce(tx: SignedTransactionAPI, expected: int) -> TxOutcome:
    return _left_out(tx, CODE_BAD_NONCE, f"nonce {tx.nonce} is not the sender's next nonce {expected}")


class PyEvmExecutor:
    """Executes blocks on ``store``'s committed head with py-evm; membership is ``views``', the header's
    validator-set commitment ``validators``'."""

    holds_interpreter = True  # py-evm is Python

    def __init__(self, store: CommittedChain, views: GovernanceViews, validators: ValidatorHistory) -> None:
        self._store = store
        self._views = views
        self._validators = validators
        self._gas_limit = store.genesis.gas_limit
        self._governance = store.genesis.system_contracts["Governance"]

    def execute(self, transactions: Sequence[bytes], context: BlockContext) -> BlockOutcome:
        """:meth:`shancheng.chain.execution.BlockExecutor.execute` with py-evm."""
        results: list[TxOutcome | None] = [None] * len(transactions)
        candidates: list[_Candidate] = []
        for position, raw in enumerate(transactions):
            try:
                tx, sender = check_transaction(bytes(raw), chain_id=self._store.chain_id,
                                               block_gas_limit=self._gas_limit)
            except TransactionInvalid as exc:
                results[position] = TxOutcome(False, None, CODE_INVALID, str(exc), 0, 0)
                continue
            candidates.append(_Candidate(position, tx, sender))
        return self._execute(candidates, results, context)

    def execute_checked(self, transactions: Sequence[SignedTransactionAPI], context: BlockContext) -> BlockOutcome:
        """:meth:`execute` for transactions that already passed :func:`~shancheng.chain.validity.check_transaction`
        (a mempool's, their senders recovered): the same outcome as :meth:`execute` on their encodings, without
        decoding them and recovering their senders again (most of a transaction's check)."""
        candidates = [_Candidate(i, tx, bytes(tx.sender)) for i, tx in enumerate(transactions)]
        results: list[TxOutcome | None] = [None] * len(candidates)
        return self._execute(candidates, results, context)

    def _execute(self, candidates: list[_Candidate], results: list[TxOutcome | None],
                 context: BlockContext) -> BlockOutcome:
        """Execute the candidates (checked, decoded transactions) on a private overlay of the committed
        database: the fast path, then the careful path when the fast path cannot be used."""
        parent, ts, proposer = context.parent, context.block_timestamp, context.proposer
        sealer = self._validators.sealer(context.height)
        mined: _Mined | None = None
        overlay = BatchDB(self._store.db)
        chain = self._building_chain(overlay, parent, ts, proposer)
        planned = list(results)
        plan = self._plan(chain, candidates, planned)
        if plan is not None:
            try:
                mined = self._mine_planned(chain, plan, ts, proposer, sealer)
                results[:] = planned
            except ValidationError:
                mined = None  # something the cheap checks missed: redo the block one transaction at a time
        if mined is None:
            overlay = BatchDB(self._store.db)  # the abandoned attempt's writes are dropped with its overlay
            chain = self._building_chain(overlay, parent, ts, proposer)
            mined = self._mine_one_by_one(chain, candidates, results, ts, proposer, sealer)
        block, receipts, included = mined
        previous_gas = 0
        for candidate, receipt in zip(included, receipts, strict=True):
            tx = candidate.tx
            results[candidate.position] = TxOutcome(True, bytes(tx.hash), CODE_OK, "", receipt.gas_used - previous_gas,
                                                    int(tx.gas))
            previous_gas = receipt.gas_used
        final = tuple(r for r in results if r is not None)
        assert len(final) == len(results), "every input has an outcome"
        return BlockOutcome(context.height, block, receipts, final, sealer.updates, _overlay=overlay,
                            _after_next=sealer.after_next)

    def _building_chain(self, overlay: BatchDB, parent: BlockHeaderAPI, ts: int, proposer: bytes) -> Any:
        chain = self._store.chain_class(AtomicDB(overlay))
        chain.header = chain.create_header_from_parent(
            parent, timestamp=ts, coinbase=proposer, gas_limit=self._gas_limit, extra_data=b""
        )
        return chain

    def _plan(self, chain: Any, candidates: list[_Candidate], results: list[TxOutcome | None]) -> list[_Candidate] | None:
        """The candidates to execute in one pass, after the cheap checks (refusals go into ``results``); None
        when a governance transaction is among them (membership could change mid-block: the careful path)."""
        if any(c.tx.to == self._governance for c in candidates):
            return None
        state = chain.get_vm(chain.header).state
        allowed: dict[bytes, bool] = {}
        next_nonce: dict[bytes, int] = {}
        gas_left = int(chain.header.gas_limit)
        plan = []
        for candidate in candidates:
            tx, sender = candidate.tx, candidate.sender
            if sender not in allowed:
                allowed[sender] = self._views.allowed_at(chain, state, sender, lambda: chain.header)
                next_nonce[sender] = state.get_nonce(sender)
            if not allowed[sender]:
                results[candidate.position] = _left_out(tx, CODE_NOT_MEMBER, _NOT_MEMBER)
            elif tx.nonce != next_nonce[sender]:
                results[candidate.position] = _bad_nonce(tx, next_nonce[sender])
            elif tx.gas > gas_left:
                results[candidate.position] = _left_out(tx, CODE_NO_ROOM, _no_room(tx, gas_left))
            else:
                plan.append(candidate)
                next_nonce[sender] += 1
                gas_left -= tx.gas
        return plan

    @staticmethod
    def _mine_planned(chain: Any, plan: list[_Candidate], ts: int, proposer: bytes, sealer: Sealer) -> _Mined:
        """py-evm's ``MiningChain.mine_all``, with the header's extra data computed from the receipts."""
        txs = [c.tx for c in plan]
        vm = chain.get_vm(chain.header)
        new_header, receipts, _ = vm.apply_all_transactions(txs, chain.header)
        extra_data = sealer.seal(receipts)
        filled = vm.set_block_transactions_and_withdrawals(vm.get_block(), new_header, txs, receipts)
        block: BlockAPI = vm.mine_block(filled, timestamp=ts, coinbase=proposer, extra_data=extra_data).block
        chain.persist_block(block)
        return block, tuple(receipts), plan

    def _mine_one_by_one(self, chain: Any, candidates: list[_Candidate], results: list[TxOutcome | None], ts: int,
                         proposer: bytes, sealer: Sealer) -> _Mined:
        allowed: dict[bytes, bool] = {}
        next_nonce: dict[bytes, int] = {}
        receipts: list[ReceiptAPI] = []
        included: list[_Candidate] = []
        for candidate in candidates:
            tx, sender = candidate.tx, candidate.sender
            if sender not in allowed:
                allowed[sender] = self._views.allowed_in(chain, sender, chain.header)
            if not allowed[sender]:
                results[candidate.position] = _left_out(tx, CODE_NOT_MEMBER, _NOT_MEMBER)
                continue
            if sender not in next_nonce:  # only the sender's own transactions change its nonce
                next_nonce[sender] = int(chain.get_vm(chain.header).state.get_nonce(sender))
            if tx.nonce != next_nonce[sender]:
                results[candidate.position] = _bad_nonce(tx, next_nonce[sender])
                continue
            gas_left = int(chain.header.gas_limit - chain.header.gas_used)
            if tx.gas > gas_left:
                results[candidate.position] = _left_out(tx, CODE_NO_ROOM, _no_room(tx, gas_left))
                continue
            try:
                _, receipt, _ = chain.apply_transaction(tx)
            except ValidationError as exc:
                results[candidate.position] = _left_out(tx, CODE_REFUSED, str(exc) or type(exc).__name__)
                continue
            next_nonce[sender] += 1
            receipts.append(receipt)
            included.append(candidate)
            if tx.to == self._governance:
                allowed.clear()  # membership may have changed
        block: BlockAPI = chain.mine_block(timestamp=ts, coinbase=proposer, extra_data=sealer.seal(receipts))
        return block, tuple(receipts), included
