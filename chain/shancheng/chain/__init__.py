"""shancheng.chain: the ledger protocol — genesis, block execution, the committed chain and its proofs.

What a node runs to keep the chain, without keys, clocks or networking (those are ``shancheng.nodes``'):

* :class:`Ledger` (``ledger``): the small face composing the parts below over one LevelDB;
* ``committed``: reads of the committed head and the one atomic commit;
* ``execution``: the execution seam, :class:`BlockExecutor` (raw transactions + :class:`BlockContext` in,
  :class:`BlockOutcome` out), with py-evm's engine in ``pyevm_execution``;
* ``calls``: ``eth_call`` / ``eth_estimateGas``; ``log_index``: ``eth_getLogs``' index and filter rules;
* ``validator_history``: the validator set of every height and the header's commitment to it;
* ``permissions``: Governance's account and peer allow-lists;
* ``genesis``, ``validity`` (stateless transaction checks), ``vm`` and ``precompiles`` (the EVM rules),
  ``storage`` (LevelDB), ``trie`` / ``storage_trie`` and the ``*_proofs`` modules (Merkle proofs).

>>> from shancheng.chain import Genesis, Ledger
>>> ledger = Ledger.open("node/db", Genesis.load("genesis.json"))            # doctest: +SKIP
>>> outcome = ledger.apply_block(raw_txs, height=ledger.latest_number() + 1,  # doctest: +SKIP
...                              timestamp=bft_time, proposer=coinbase)
>>> ledger.commit(outcome)                                                    # doctest: +SKIP
>>> ledger.latest_number()                                                    # doctest: +SKIP
1
"""

from .calls import RPC_GAS_CAP, CallFailed, ExecutionReverted
from .execution import (
    CODE_BAD_NONCE,
    CODE_INVALID,
    CODE_NO_ROOM,
    CODE_NOT_MEMBER,
    CODE_OK,
    CODE_REFUSED,
    BlockContext,
    BlockExecutor,
    BlockOutcome,
    LedgerConflict,
    TxOutcome,
)
from .genesis import Genesis, GenesisError, GenesisOrganisation, GenesisValidator
from .ledger import Ledger
from .log_index import LogRecord
from .storage import LevelDB, StorageError
from .validator_history import VALIDATOR_CHANGE_DELAY
from .validity import TransactionInvalid, check_transaction

__all__ = [
    "CODE_BAD_NONCE",
    "CODE_INVALID",
    "CODE_NOT_MEMBER",
    "CODE_NO_ROOM",
    "CODE_OK",
    "CODE_REFUSED",
    "RPC_GAS_CAP",
    "VALIDATOR_CHANGE_DELAY",
    "BlockContext",
    "BlockExecutor",
    "BlockOutcome",
    "CallFailed",
    "ExecutionReverted",
    "Genesis",
    "GenesisError",
    "GenesisOrganisation",
    "GenesisValidator",
    "Ledger",
    "LedgerConflict",
    "LevelDB",
    "LogRecord",
    "StorageError",
    "TransactionInvalid",
    "TxOutcome",
    "check_transaction",
]
