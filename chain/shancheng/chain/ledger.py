"""The ledger: the node's chain, composed of its parts behind one small face.

:class:`Ledger` composes, over one LevelDB:

* the committed chain — reads of the committed head and the one atomic commit
  (:mod:`shancheng.chain.committed`);
* block execution behind one interface (:mod:`shancheng.chain.execution`), by the engine chosen with
  ``engine``: ``"native"`` (the default; revm, :mod:`shancheng.chain.native_execution`) or ``"py-evm"`` (the
  reference, :mod:`shancheng.chain.pyevm_execution`), which build the same blocks and write the same
  database, so a chain written by one continues on the other: :meth:`Ledger.apply_block` executes raw
  transactions as the next block and returns a :class:`~shancheng.chain.execution.BlockOutcome` without
  writing anything;
  :meth:`Ledger.apply_checked_block` is the same for a mempool's already-checked transactions;
  :meth:`Ledger.commit` persists one outcome and the commit certificates given in **one** fsynced batch;
* ``eth_call`` / ``eth_estimateGas`` (:mod:`shancheng.chain.calls`);
* the log index (:mod:`shancheng.chain.log_index`);
* the validator-set history and header sealing (:mod:`shancheng.chain.validator_history`);
* Governance's permission views (:mod:`shancheng.chain.permissions`).

Reads use the committed head only; nothing uncommitted is ever visible, and they may run on other threads
while a block is being executed. The ledger holds no key and reads no clock: producing and certifying blocks
is a node's job (the ABCI application, or the solo producer :mod:`shancheng.nodes.producer`).

>>> ledger = Ledger.open(home / "db", genesis)                                  # doctest: +SKIP
>>> outcome = ledger.apply_block(raw_txs, height=ledger.latest_number() + 1,    # doctest: +SKIP
...                              timestamp=bft_time, proposer=coinbase)
>>> ledger.commit(outcome, certificates={outcome.height: certificate})          # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI, SignedTransactionAPI

from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.chainproof.commit import CommitCertificate
from shancheng.sdk.chainproof.validators import ValidatorSet
from shancheng.sdk.errors import InvalidInput

from . import native
from .calls import RPC_GAS_CAP, create_access_list, estimate_gas, execute_call
from .committed import CommittedChain
from .execution import BlockContext, BlockOutcome
from .genesis import Genesis
from .log_index import LogIndex, LogRecord
from .native import calls as native_calls
from .native_execution import NativeExecutor
from .permissions import GovernanceViews
from .pyevm_execution import PyEvmExecutor
from .storage import LevelDB
from .validator_history import ValidatorHistory
from .validity import check_transaction

__all__ = ["DEFAULT_ENGINE", "ENGINES", "Ledger"]

_NO_CERTIFICATES: Mapping[int, CommitCertificate] = {}
#: the execution engines (``[execution] engine`` in a node's configuration)
ENGINES = ("native", "py-evm")
DEFAULT_ENGINE = "native"


class Ledger:
    """The node's chain: py-evm's database over LevelDB plus commit certificates, validator sets and a log index.

    ``follow_validator_updates=False`` (the solo producer, a one-validator development chain): Governance
    still executes validator votes, but the set that certifies blocks stays the genesis set. ``engine`` is
    one of :data:`ENGINES`; "native" raises :class:`~shancheng.chain.native.NativeEngineUnavailable` (saying how
    to build it) when the extension is not built."""

    def __init__(self, db: LevelDB, genesis: Genesis, *, follow_validator_updates: bool = True,
                 engine: str = DEFAULT_ENGINE) -> None:
        self.db = db
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self._store = CommittedChain(db, genesis)
        self.fingerprint = self._store.fingerprint  # the chain identity commit certificates sign
        self.genesis_validators = ValidatorSet.from_genesis(GenesisFile.from_json(genesis.to_json()))
        governance = genesis.system_contracts["Governance"]
        self._validators = ValidatorHistory(db, self.genesis_validators, governance=governance,
                                            follow_updates=follow_validator_updates)
        self._log_index = LogIndex(db, self._store)
        self._views = GovernanceViews(self._store, governance=governance)
        self.engine = engine
        #: the execution engine (a :class:`~shancheng.chain.execution.BlockExecutor`)
        self.executor = self.executor_of(engine)

    def executor_of(self, engine: str) -> NativeExecutor | PyEvmExecutor:
        """A new executor of ``engine`` (one of :data:`ENGINES`) on this ledger (the differential tests and
        the benchmark run both engines on one chain)."""
        if engine == "native":
            return NativeExecutor(self._store, self._validators)
        if engine == "py-evm":
            return PyEvmExecutor(self._store, self._views, self._validators)
        raise InvalidInput(f"unknown execution engine {engine!r}: use one of {', '.join(ENGINES)}")

    @classmethod
    def open(cls, path: str | Path, genesis: Genesis, *, follow_validator_updates: bool = True,
             engine: str = DEFAULT_ENGINE) -> Ledger:
        db = LevelDB(path)
        try:
            return cls(db, genesis, follow_validator_updates=follow_validator_updates, engine=engine)
        except BaseException:
            db.close()
            raise

    def close(self) -> None:
        self.db.close()

    @property
    def follow_validator_updates(self) -> bool:
        return self._validators.follow_updates

    @follow_validator_updates.setter
    def follow_validator_updates(self, follow: bool) -> None:
        self._validators.follow_updates = follow

    # -- reads (CommittedChain) -----------------------------------------------------------------
    @property
    def head(self) -> BlockHeaderAPI:
        return self._store.head

    def latest_number(self) -> int:
        return self._store.latest_number()

    def header_by_number(self, number: int) -> BlockHeaderAPI | None:
        return self._store.header_by_number(number)

    def block_by_number(self, number: int) -> BlockAPI | None:
        return self._store.block_by_number(number)

    def block_by_hash(self, block_hash: bytes) -> BlockAPI | None:
        return self._store.block_by_hash(block_hash)

    def transaction_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        return self._store.transaction_location(tx_hash)

    def receipts(self, block_number: int) -> tuple[ReceiptAPI, ...]:
        """The receipts of a committed block, read through its header alone (not its transactions)."""
        return self._store.receipts(block_number)

    def commit_certificate(self, height: int) -> CommitCertificate | None:
        return self._store.commit_certificate(height)

    def uncertified_heights(self, limit: int) -> list[int]:
        """:meth:`shancheng.chain.committed.CommittedChain.uncertified_heights`."""
        return self._store.uncertified_heights(limit)

    def state_at(self, header: BlockHeaderAPI | None = None) -> Any:
        return self._store.state_at(header)

    def nonce(self, address: bytes, header: BlockHeaderAPI | None = None) -> int:
        return int(self.state_at(header).get_nonce(address))

    def balance(self, address: bytes, header: BlockHeaderAPI | None = None) -> int:
        return int(self.state_at(header).get_balance(address))

    def code(self, address: bytes, header: BlockHeaderAPI | None = None) -> bytes:
        return bytes(self.state_at(header).get_code(address))

    def storage_at(self, address: bytes, slot: int, header: BlockHeaderAPI | None = None) -> int:
        return int(self.state_at(header).get_storage(address, slot))

    # -- admission -------------------------------------------------------------------------------
    def check_transaction(self, raw: bytes) -> tuple[Any, bytes]:
        """:func:`shancheng.chain.validity.check_transaction` for this chain, on this ledger's engine (natively on
        the native engine, :func:`shancheng.chain.native.decode_transaction`: a sixth of py-evm's time): (the
        transaction, whose nonce, gas, max_fee_per_gas, value and hash admission reads; its sender)."""
        if self.engine == "native":
            checked = native.decode_transaction(raw, chain_id=self.chain_id, block_gas_limit=self.genesis.gas_limit)
            return checked, checked.sender
        return check_transaction(raw, chain_id=self.chain_id, block_gas_limit=self.genesis.gas_limit)

    # -- calls and estimates ---------------------------------------------------------------------
    def call(self, tx: dict[str, Any], header: BlockHeaderAPI | None = None, *, gas_cap: int = RPC_GAS_CAP) -> bytes:
        """eth_call: execute against ``header``'s state and discard; raises
        :class:`~shancheng.chain.calls.ExecutionReverted`."""
        if self.engine == "native":
            return native_calls.execute_call(self._store.chain, tx, header or self.head, gas_cap=gas_cap)
        return execute_call(self._store.chain, tx, header or self.head, gas_cap=gas_cap)

    def estimate_gas(self, tx: dict[str, Any], header: BlockHeaderAPI | None = None, *,
                     gas_cap: int = RPC_GAS_CAP) -> int:
        """eth_estimateGas: the smallest gas limit with which ``tx`` succeeds
        (:func:`shancheng.chain.calls.estimate_gas`)."""
        if self.engine == "native":
            return native_calls.estimate_gas(self._store.chain, tx, header or self.head, gas_cap=gas_cap)
        return estimate_gas(self._store.chain, tx, header or self.head, gas_cap=gas_cap)

    def create_access_list(self, tx: dict[str, Any], header: BlockHeaderAPI | None = None, *,
                           gas_cap: int = RPC_GAS_CAP) -> dict[str, Any]:
        """eth_createAccessList (:func:`shancheng.chain.calls.create_access_list`)."""
        return create_access_list(self._store.chain, tx, header or self.head, gas_cap=gas_cap)

    # -- permission views --------------------------------------------------------------------------
    def is_account_allowed(self, address: bytes, header: BlockHeaderAPI | None = None, *, state: Any = None) -> bool:
        """:meth:`shancheng.chain.permissions.GovernanceViews.is_account_allowed`."""
        return self._views.is_account_allowed(address, header, state=state)

    def is_peer_allowed(self, node_id: bytes) -> bool:
        """:meth:`shancheng.chain.permissions.GovernanceViews.is_peer_allowed`."""
        return self._views.is_peer_allowed(node_id)

    # -- the log index ---------------------------------------------------------------------------
    def logs(
        self,
        from_block: int,
        to_block: int,
        addresses: Sequence[bytes] = (),
        topics: Sequence[Sequence[bytes] | None] = (),
    ) -> list[LogRecord]:
        """Logs in [from_block, to_block] matching the Ethereum filter rules, using the index."""
        return self._log_index.logs(from_block, to_block, addresses, topics)

    # -- the validator-set history ---------------------------------------------------------------
    def validator_set(self, height: int) -> ValidatorSet:
        """The set that certifies block ``height`` (>= 1); known up to head + 2."""
        return self._validators.validator_set(height)

    def validator_changes(self, up_to: int) -> list[tuple[int, ValidatorSet]]:
        """(h, the set from h + 2 on) for every block h <= ``up_to`` whose validator updates changed the set."""
        return self._validators.validator_changes(up_to)

    # -- execution and commit ----------------------------------------------------------------------
    def apply_block(self, raw_txs: Sequence[bytes], *, height: int, timestamp: int, proposer: bytes) -> BlockOutcome:
        """Execute ``raw_txs`` as block ``height`` (the head + 1) on the committed head; nothing is written.

        No key and no clock: the result is a function of the committed chain and the arguments
        (:meth:`shancheng.chain.execution.BlockExecutor.execute`). ``timestamp`` (unix seconds; CometBFT's BFT
        time) becomes max(timestamp, parent timestamp + 1); ``proposer`` (20 bytes) is the coinbase. Outcomes
        of one height are independent; :meth:`commit` persists one of them.
        """
        context = BlockContext(height=height, timestamp=timestamp, proposer=bytes(proposer), parent=self.head)
        return self.executor.execute(raw_txs, context)

    def apply_checked_block(self, transactions: Sequence[SignedTransactionAPI], *, height: int, timestamp: int,
                            proposer: bytes) -> BlockOutcome:
        """:meth:`apply_block` for transactions a mempool already checked
        (:func:`shancheng.chain.validity.check_transaction`'s rules, senders recovered): the same outcome as
        :meth:`apply_block` on their encodings, without checking them again (the solo producer's path)."""
        context = BlockContext(height=height, timestamp=timestamp, proposer=bytes(proposer), parent=self.head)
        return self.executor.execute_checked(transactions, context)

    def commit(self, outcome: BlockOutcome, *, certificates: Mapping[int, CommitCertificate] = _NO_CERTIFICATES) -> None:
        """Persist ``outcome`` and ``certificates`` (height -> certificate of that block) in **one** fsynced
        batch (:meth:`shancheng.chain.committed.CommittedChain.commit`)."""
        self._store.commit(outcome, log_index=self._log_index, validators=self._validators, certificates=certificates)

    def store_certificate(self, height: int, certificate: CommitCertificate) -> None:
        """Store the commit certificate of committed block ``height`` (its own fsynced write)."""
        self._store.store_certificate(height, certificate)
