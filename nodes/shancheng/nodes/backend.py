"""The read half of the RPC server's ``NodeBackend``, over a :class:`~shancheng.chain.ledger.Ledger`.

Shared by both kinds of node: the solo producer (``shancheng.nodes.node.Node``) and the consortium node
behind CometBFT. Everything here reads the committed head, which a block changes in one atomic LevelDB
batch, so reads never wait for the writer and never see half a block. ``eth_call``, ``eth_estimateGas`` and
``eth_createAccessList`` run in worker processes (:mod:`shancheng.nodes.callpool`) while the pool runs, never in the node's process.

A node adds what depends on how it orders transactions: ``send_raw_transaction``, ``pending_transactions``,
``pending_nonce`` (here: the head nonce), ``node_info``, ``syncing``, ``peer_count``, ``coinbase``, ``mining``,
and calls :meth:`ReadBackend.announce_block` (on its event loop) after each committed block.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI
from eth_utils.address import to_checksum_address

from shancheng.chain.calls import RPC_GAS_CAP
from shancheng.chain.ledger import Ledger
from shancheng.chain.receipt_proofs import receipt_proof
from shancheng.chain.state_proofs import state_proof
from shancheng.chain.transaction_proofs import transaction_proof

from . import __version__
from .callpool import CallAborted, CallPool
from .rpc.backend import ExecutionFailed, ExecutionReverted, LogRecord

__all__ = ["ReadBackend"]

T = TypeVar("T")


class ReadBackend:
    """Every read-only ``NodeBackend`` method, answered from ``ledger``.

    ``call_workers`` worker processes run calls (0: in this process, without a time limit) with at most
    ``gas_cap`` gas and ``evm_timeout`` seconds each, ``call_nice`` below the node's CPU priority; :meth:`start_calls` / :meth:`close_calls` start and
    stop them with the node.
    """

    concurrent_reads = True  # reads may run beside admission and block execution
    isolated_calls = True  # call/estimate_gas may run on the server's call threads, beside everything else

    def __init__(self, ledger: Ledger, *, gas_cap: int = RPC_GAS_CAP, evm_timeout: float = 5.0,
                 call_workers: int = 2, call_nice: int = 10) -> None:
        self.ledger = ledger
        self.chain_id = ledger.chain_id
        self.client_version = f"shancheng/{__version__}/python"
        self.gas_cap = gas_cap
        self._calls = CallPool(ledger.db, self.chain_id, workers=call_workers, timeout=evm_timeout,
                               gas_cap=gas_cap, nice=call_nice, engine=ledger.engine) if call_workers > 0 else None
        self._new_block: asyncio.Condition | None = None  # set by start_block_notifications on the loop

    # -- lifecycle --------------------------------------------------------------------------------
    def start_calls(self) -> None:
        if self._calls is not None:
            self._calls.start()

    def close_calls(self) -> None:
        if self._calls is not None:
            self._calls.close()

    def start_block_notifications(self) -> None:
        """Make :meth:`wait_for_block` wake on :meth:`announce_block`; call on the node's event loop."""
        self._new_block = asyncio.Condition()

    async def announce_block(self) -> None:
        """Wake every :meth:`wait_for_block` waiter: a block was committed."""
        if self._new_block is not None:
            async with self._new_block:
                self._new_block.notify_all()

    # -- blocks ---------------------------------------------------------------------------------------
    def latest_number(self) -> int:
        return self.ledger.latest_number()

    def block_by_number(self, number: int) -> BlockAPI | None:
        return self.ledger.block_by_number(number)

    def block_by_hash(self, block_hash: bytes) -> BlockAPI | None:
        return self.ledger.block_by_hash(block_hash)

    def transaction_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        return self.ledger.transaction_location(tx_hash)

    def receipts(self, block_number: int) -> Sequence[ReceiptAPI]:
        return self.ledger.receipts(block_number)

    # -- state --------------------------------------------------------------------------------------
    def pending_nonce(self, address: bytes) -> int:
        """The next nonce of ``address``: here the head's; a node with a pool counts its pending ones."""
        return self.ledger.nonce(address)

    def _header(self, block: int | None) -> BlockHeaderAPI:
        if block is None:
            return self.ledger.head
        header = self.ledger.header_by_number(block)
        if header is None:
            raise ValueError(f"block {block} does not exist")
        return header

    def nonce(self, address: bytes, block: int | None) -> int:
        if block is None:
            return self.pending_nonce(address)
        return self.ledger.nonce(address, self._header(block))

    def balance(self, address: bytes, block: int | None) -> int:
        return self.ledger.balance(address, self._header(block))

    def code(self, address: bytes, block: int | None) -> bytes:
        return self.ledger.code(address, self._header(block))

    def storage_at(self, address: bytes, slot: int, block: int | None) -> int:
        return self.ledger.storage_at(address, slot, self._header(block))

    def state_proof(self, address: bytes, slots: Sequence[bytes], block: int) -> dict[str, Any]:
        # trie nodes are content-addressed and never deleted: the committed database serves every block's state
        return state_proof(self.ledger.db, bytes(self._header(block).state_root), address, slots)

    def call(self, tx: dict[str, Any], block: int | None) -> bytes:
        header = self._header(block)
        if self._calls is not None and self._calls.running:
            calls = self._calls
            return self._execute(lambda: calls.call(tx, bytes(header.hash)))
        return self._execute(lambda: self.ledger.call(tx, header, gas_cap=self.gas_cap))

    def estimate_gas(self, tx: dict[str, Any], block: int | None) -> int:
        header = self._header(block)
        if self._calls is not None and self._calls.running:
            calls = self._calls
            return self._execute(lambda: calls.estimate_gas(tx, bytes(header.hash)))
        return self._execute(lambda: self.ledger.estimate_gas(tx, header, gas_cap=self.gas_cap))

    def create_access_list(self, tx: dict[str, Any], block: int | None) -> dict[str, Any]:
        header = self._header(block)
        if self._calls is not None and self._calls.running:
            calls = self._calls
            return self._execute(lambda: calls.create_access_list(tx, bytes(header.hash)))
        return self._execute(lambda: self.ledger.create_access_list(tx, header, gas_cap=self.gas_cap))

    @staticmethod
    def _execute(run: Callable[[], T]) -> T:
        """Run ``call``/``estimate_gas``, mapping VM outcomes to the RPC backend's errors."""
        try:
            return run()
        except (ExecutionReverted, ExecutionFailed):
            raise  # the ledger's own errors (ExecutionFailed is CallFailed): RPC_ERRORS maps them
        except CallAborted as exc:  # the time limit
            raise ExecutionFailed(str(exc)) from exc
        except ValueError:
            raise  # an unknown block: the server reports invalid params
        except Exception as exc:  # any other VM error
            raise ExecutionFailed(str(exc) or type(exc).__name__) from exc

    # -- logs and heads ---------------------------------------------------------------------------
    def logs(
        self, from_block: int, to_block: int, addresses: Sequence[bytes], topics: Sequence[Sequence[bytes] | None]
    ) -> Sequence[LogRecord]:
        return self.ledger.logs(from_block, to_block, addresses, topics)

    async def wait_for_block(self, after: int, timeout: float) -> int:
        if self._new_block is None:
            await asyncio.sleep(min(timeout, 0.05))
            return self.latest_number()
        deadline = time.monotonic() + timeout
        async with self._new_block:
            while self.latest_number() <= after:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(self._new_block.wait(), timeout=remaining)
                except TimeoutError:
                    break
        return self.latest_number()

    # -- shancheng namespace ----------------------------------------------------------------------
    def commit_certificate(self, height: int) -> dict[str, Any] | None:
        cert = self.ledger.commit_certificate(height)
        return None if cert is None else cert.to_json()

    def validators(self, height: int) -> list[dict[str, Any]]:
        """The validator set that certifies block ``height`` (changes by governance apply two blocks after the
        block that made them; docs/chain-formats.md), in certificate-index order."""
        return [
            {
                "index": i,
                "name": v.name,
                "public_key": v.sm2_key.to_bytes().hex(),
                "consensus_key": "0x" + bytes(v.consensus_key).hex(),
                "power": int(v.power),
                "address": to_checksum_address(v.sm2_key.sm3_address()),
            }
            for i, v in enumerate(self.ledger.validator_set(max(height, 1)).validators)
        ]

    def receipt_proof(self, tx_hash: bytes) -> dict[str, Any] | None:
        where = self.ledger.transaction_location(tx_hash)
        if where is None:
            return None
        number, index = where
        block = self.ledger.block_by_number(number)
        if block is None:
            return None
        return receipt_proof(block, list(self.ledger.receipts(number)), index)

    def transaction_proof(self, tx_hash: bytes) -> dict[str, Any] | None:
        where = self.ledger.transaction_location(tx_hash)
        block = None if where is None else self.ledger.block_by_number(where[0])
        if where is None or block is None:
            return None
        return transaction_proof(block, where[1])
