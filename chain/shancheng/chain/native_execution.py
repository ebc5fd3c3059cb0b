"""Block execution with the native engine (revm, :mod:`shancheng.chain.native`): a
:class:`~shancheng.chain.execution.BlockExecutor` whose outcomes are py-evm's.

For the same committed chain and inputs, :class:`NativeExecutor` returns the
:class:`~shancheng.chain.execution.BlockOutcome` :class:`~shancheng.chain.pyevm_execution.PyEvmExecutor` returns:
the same block (every header field, the extra data sealed from the receipts), py-evm receipt objects, one
:class:`~shancheng.chain.execution.TxOutcome` per input with py-evm's codes and words, the same validator updates,
and an overlay that leaves the same database once committed (the two differ only in rewriting, with the same
value, some keys the database already holds) — the trie nodes and code py-evm's engine writes (the
native engine computes the tries step by step where py-evm's careful path persists every transaction's),
then the header, canonical index, block body and transaction lookups written by py-evm's own
``ChainDB.persist_block``. The transactions execute natively with the GIL released; what stays in Python is
building py-evm's objects for the block and its receipts.

>>> executor = NativeExecutor(store, validators)                          # doctest: +SKIP
>>> executor.execute([raw], BlockContext(1, now, coinbase, store.head))  # doctest: +SKIP
BlockOutcome(height=1, ...)
"""

from __future__ import annotations

from collections.abc import Sequence

from eth.abc import BlockAPI, ReceiptAPI, SignedTransactionAPI
from eth.db.atomic import AtomicDB
from eth.db.batch import BatchDB
from eth.rlp.logs import Log
from eth.rlp.receipts import Receipt
from eth.vm.forks.berlin.transactions import TypedTransaction
from eth_typing import BlockNumber

from . import native
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
from .native.block import NativeBlock, NativeExecutionFailed, NativeTx, execute_block
from .validator_history import ValidatorHistory
from .validity import TransactionInvalid, check_transaction, decode_transaction

__all__ = ["NativeExecutor"]

_CODES = {"not_member": CODE_NOT_MEMBER, "bad_nonce": CODE_BAD_NONCE, "no_room": CODE_NO_ROOM,
          "refused": CODE_REFUSED}
_SUCCESS, _FAILURE = b"\x01", b""  # EIP-658 receipt status


class NativeExecutor:
    """Executes blocks on ``store``'s committed head natively; membership is Governance's (asked natively),
    the header's validator-set commitment ``validators``'. Raises
    :class:`~shancheng.chain.native.NativeEngineUnavailable` when the extension is not built."""

    holds_interpreter = False  # the extension releases the GIL while revm executes the block

    def __init__(self, store: CommittedChain, validators: ValidatorHistory) -> None:
        native.require()
        self._store = store
        self._validators = validators
        self._gas_limit = store.genesis.gas_limit
        self._governance = store.genesis.system_contracts["Governance"]

    def execute(self, transactions: Sequence[bytes], context: BlockContext) -> BlockOutcome:
        """:meth:`shancheng.chain.execution.BlockExecutor.execute`, natively."""
        raws = [bytes(t) for t in transactions]
        return self._execute(raws, None, context, self._senders(raws))

    def _senders(self, raws: list[bytes]) -> list[bytes] | None:
        """The senders of ``raws`` as admission checks them (:func:`shancheng.chain.native.decode_transaction`:
        remembered from CheckTx, else recovered by libsecp256k1 in a third of the time of the extension's pure-Rust
        k256), or None when one is invalid: the engine then recovers them all and leaves out what is invalid."""
        try:
            return [native.decode_transaction(raw, chain_id=self._store.chain_id, block_gas_limit=self._gas_limit)
                    .sender for raw in raws]
        except TransactionInvalid:
            return None

    def execute_checked(self, transactions: Sequence[SignedTransactionAPI], context: BlockContext) -> BlockOutcome:
        """:meth:`execute` for transactions that already passed :func:`~shancheng.chain.validity.check_transaction`
        (a mempool's, their senders recovered): the same outcome as :meth:`execute` on their encodings; the
        native engine decodes them again but does not recover their senders (most of a transaction's check)."""
        checked = list(transactions)
        raws = [tx.encode() for tx in checked]
        return self._execute(raws, checked, context, self._senders(raws))

    def _execute(self, raws: list[bytes], checked: list[SignedTransactionAPI] | None, context: BlockContext,
                 senders: list[bytes] | None) -> BlockOutcome:
        executed = execute_block(self._store.db, raws, context, chain_id=self._store.chain_id,
                                 gas_limit=self._gas_limit, governance=self._governance, senders=senders)
        vm_class = self._store.chain_class.get_vm_class_for_block_number(BlockNumber(context.height))
        block_class = vm_class.get_block_class()
        results: list[TxOutcome] = []
        txs: list[SignedTransactionAPI] = []
        receipts: list[ReceiptAPI] = []
        for position, (raw, outcome) in enumerate(zip(raws, executed.txs, strict=True)):
            if outcome.kind == "invalid":
                results.append(self._invalid(raw, checked is not None, context))
                continue
            assert outcome.tx_hash is not None
            if outcome.kind != "included":
                results.append(TxOutcome(False, outcome.tx_hash, _CODES[outcome.kind], outcome.reason, 0,
                                         outcome.gas_limit))
                continue
            tx = checked[position] if checked is not None else decode_transaction(raw)  # remembered across proposals
            txs.append(tx)
            receipts.append(_receipt(tx, outcome))
            results.append(TxOutcome(True, outcome.tx_hash, CODE_OK, "", outcome.gas_used, outcome.gas_limit))
        sealer = self._validators.sealer(context.height)
        extra_data = sealer.seal(receipts)
        header = vm_class.create_header_from_parent(
            context.parent, timestamp=context.block_timestamp, coinbase=context.proposer, gas_limit=self._gas_limit,
            extra_data=b"",
        ).copy(state_root=executed.state_root, transaction_root=executed.transactions_root,
               receipt_root=executed.receipts_root, bloom=int.from_bytes(executed.bloom, "big"),
               gas_used=executed.gas_used, extra_data=extra_data)
        block: BlockAPI = block_class(header, transactions=txs, uncles=[], withdrawals=[])
        overlay = self._overlay(executed, block)
        return BlockOutcome(context.height, block, tuple(receipts), tuple(results), sealer.updates, _overlay=overlay,
                            _after_next=sealer.after_next)

    def _overlay(self, executed: NativeBlock, block: BlockAPI) -> BatchDB:
        """The block's database writes over the committed database: its trie nodes and code, then what py-evm's
        ``ChainDB.persist_block`` writes for it."""
        overlay = BatchDB(self._store.db)
        for key, value in executed.nodes.items():
            overlay[key] = value
        self._store.chain_class.get_chaindb_class()(AtomicDB(overlay)).persist_block(block)
        return overlay

    def _invalid(self, raw: bytes, checked: bool, context: BlockContext) -> TxOutcome:
        """py-evm's outcome for bytes the native decoder refused: invalid, in the words of
        :func:`~shancheng.chain.validity.check_transaction` (which must refuse them too)."""
        try:
            if not checked:
                check_transaction(raw, chain_id=self._store.chain_id, block_gas_limit=self._gas_limit)
        except TransactionInvalid as exc:
            return TxOutcome(False, None, CODE_INVALID, str(exc), 0, 0)
        raise NativeExecutionFailed(f"block {context.height} could not be executed natively: the native decoder "
                                    "refused a transaction py-evm's check accepts (0x" + raw[:64].hex() + "...)")


def _receipt(tx: SignedTransactionAPI, outcome: NativeTx) -> ReceiptAPI:
    """``tx.make_receipt`` of the outcome, with the bloom the engine computed: py-evm's receipt hashes every log's
    address and topics in Python to make it (a quarter of a native block's Python time in bench/node_tps.py)."""
    receipt = Receipt(state_root=_SUCCESS if outcome.success else _FAILURE, gas_used=outcome.cumulative_gas_used,
                      logs=[Log(address, tuple(int.from_bytes(t, "big") for t in topics), data)
                            for address, topics, data in outcome.logs],
                      bloom=int.from_bytes(outcome.bloom, "big"))
    if isinstance(tx, TypedTransaction):  # as its make_receipt wraps the legacy-shaped receipt
        assert tx.type_id is not None  # a typed transaction's is its envelope's first byte
        return tx.receipt_builder.typed_receipt_class(tx.type_id, receipt)
    return receipt
