"""What the JSON-RPC server needs from a node: the ``NodeBackend`` protocol.

The server (``shancheng.nodes.rpc.server``) only formats and validates; every fact comes from a
backend. The node (``shancheng.nodes``) implements this protocol over its chain; tests implement it over
a bare py-evm chain. Every synchronous method is called from ONE dedicated worker thread of the server
(never from the event loop, never concurrently), so a backend only has to be safe against its own
block producer; ``wait_for_block`` is the one coroutine and is awaited on the server's event loop.

Block selectors reach the backend already resolved to a block number (``int``): the server turns
"latest"/"safe"/"finalized" into ``latest_number()``, "earliest" into 0, ``{"blockHash": ...}`` into that
block's number, and "pending" into ``None`` (the backend then answers for the pending state: for
``nonce`` that is ``pending_nonce``; for state reads the latest state is an acceptable answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from eth.abc import BlockAPI, ReceiptAPI, SignedTransactionAPI

from shancheng.chain.calls import ExecutionReverted
from shancheng.chain.log_index import LogRecord  # one log shape from the index to the wire
from shancheng.nodes.mempool import AdmissionError
from shancheng.nodes.rpc.errors import ExecutionFailed

# The errors a backend raises on purpose, each defined once where it arises (the server maps them to
# JSON-RPC errors through the one table, ``shancheng.nodes.rpc.errors.RPC_ERRORS``):
# - ``AdmissionError`` (the mempool's): a transaction refused, with its JSON-RPC ``code`` (-32000 for nonce
#   too low / known transaction / insufficient funds..., -32003 sender not a member, -32010 pool limits) and
#   ``message``;
# - ``ExecutionReverted`` (the ledger's): ``call``/``estimate_gas`` hit REVERT; ``data`` is the revert data;
# - ``ExecutionFailed``: ``call``/``estimate_gas`` failed without revert data (out of gas, invalid opcode, ...).
__all__ = ["AdmissionError", "ExecutionFailed", "ExecutionReverted", "LogRecord", "NodeBackend"]



@runtime_checkable
class NodeBackend(Protocol):
    """The node as the JSON-RPC server sees it. ``block`` arguments: an int height or ``None`` = pending."""

    chain_id: int
    client_version: str

    # -- blocks ---------------------------------------------------------------------------------
    def latest_number(self) -> int: ...
    def block_by_number(self, number: int) -> BlockAPI | None: ...
    def block_by_hash(self, block_hash: bytes) -> BlockAPI | None: ...
    def transaction_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        """(block number, index in block) of a committed transaction, or None."""
        ...
    def receipts(self, block_number: int) -> Sequence[ReceiptAPI]:
        """The py-evm receipts of that block, in transaction order."""
        ...

    # -- mempool --------------------------------------------------------------------------------
    def send_raw_transaction(self, raw: bytes) -> bytes:
        """Admit a signed transaction (typed envelope or legacy RLP); returns its hash.

        Raises ``AdmissionError`` when refused, ``ValueError`` when ``raw`` does not decode."""
        ...
    def pending_transactions(self) -> Sequence[SignedTransactionAPI]: ...
    def pending_nonce(self, address: bytes) -> int: ...

    # -- state (block: int height, or None for pending) ------------------------------------------
    def nonce(self, address: bytes, block: int | None) -> int: ...
    def balance(self, address: bytes, block: int | None) -> int: ...
    def code(self, address: bytes, block: int | None) -> bytes: ...
    def storage_at(self, address: bytes, slot: int, block: int | None) -> int: ...
    def call(self, tx: dict[str, Any], block: int | None) -> bytes:
        """Execute without committing; ``tx`` has bytes/int values under keys from, to, gas, gasPrice,
        value, data, accessList (missing keys absent). Raises ExecutionReverted / ExecutionFailed."""
        ...
    def estimate_gas(self, tx: dict[str, Any], block: int | None) -> int: ...
    def create_access_list(self, tx: dict[str, Any], block: int | None) -> dict[str, Any]:
        """eth_createAccessList: ``{"accessList": [(address, [slot int, ...])], "gasUsed": int}`` and ``"error"``
        (a message) when the transaction fails (``shancheng.chain.calls.create_access_list``)."""
        ...
    def state_proof(self, address: bytes, slots: Sequence[bytes], block: int) -> dict[str, Any]:
        """The ``eth_getProof`` (EIP-1186) answer for ``address`` and the 32-byte ``slots`` at block ``block``
        (geth's JSON form; see ``shancheng.chain.state_proofs``)."""
        ...

    # -- logs and heads ---------------------------------------------------------------------------
    def logs(
        self, from_block: int, to_block: int, addresses: Sequence[bytes], topics: Sequence[Sequence[bytes] | None]
    ) -> Sequence[LogRecord]:
        """Logs in blocks ``from_block..to_block`` (inclusive, both <= latest) matching the filter:
        any of ``addresses`` (empty = all); ``topics[i]`` None = any, else one of the listed values."""
        ...
    async def wait_for_block(self, after: int, timeout: float) -> int:
        """Return the latest block number as soon as it is > ``after``, or after ``timeout`` seconds
        (then it may still equal ``after``). Must be awaitable on the server's event loop."""
        ...

    # -- shancheng namespace ----------------------------------------------------------------------
    def commit_certificate(self, height: int) -> dict[str, Any] | None: ...
    def validators(self, height: int) -> list[dict[str, Any]]: ...
    def receipt_proof(self, tx_hash: bytes) -> dict[str, Any] | None: ...
    def transaction_proof(self, tx_hash: bytes) -> dict[str, Any] | None:
        """The transaction proof (``docs/chain-formats.md``) of a committed transaction, or None."""
        ...
    def node_info(self) -> dict[str, Any]: ...
    def syncing(self) -> bool: ...
    def peer_count(self) -> int: ...
    def coinbase(self) -> bytes:
        """The address in the ``miner`` field of the blocks this node produces (``eth_coinbase``)."""
        ...
    def mining(self) -> bool:
        """True while this node produces blocks (``eth_mining``)."""
        ...
