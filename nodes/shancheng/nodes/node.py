"""A running Shancheng node: ledger + mempool + block producer + JSON-RPC.

One validator (the development profile and the embedded default): the node
builds a block whenever transactions are pending (checked every
``block_interval`` seconds), or every ``heartbeat`` seconds if configured,
signs its commit certificate and commits everything in one atomic write.

Threads: the asyncio loop runs the RPC server and the block timer; RPC calls run
on the server's backend thread and blocks are built on another. ``eth_call`` and
``eth_estimateGas`` run in worker processes (``callpool.py``), awaited on the server's call threads. There is one
writer (``_build_lock``: one block at a time). Readers never wait for it: they
read the committed head, which a block changes in one atomic LevelDB batch, so
they see the block before or after, never half of it. Admission does wait for a
block being built (both are CPU work on one interpreter; interleaving them cost
throughput); the mempool and its view of the head state have their own lock
(``_pool_lock``) for the short reads of pending state.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from eth.abc import BlockAPI, ReceiptAPI, SignedTransactionAPI
from eth_utils.address import to_checksum_address

from shancheng.chain.ledger import RPC_GAS_CAP, BuiltBlock, Ledger
from shancheng.chain.receipt_proofs import receipt_proof
from shancheng.chain.state_proofs import state_proof
from shancheng.chain.transaction_proofs import transaction_proof
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import InvalidInput

from . import __version__
from .callpool import CallAborted, CallPool
from .mempool import Mempool, ReplacementPolicy
from .rpc.backend import ExecutionFailed, ExecutionReverted, LogRecord
from .rpc.server import RpcPolicy, RpcServer

__all__ = ["Node", "NodeConfig"]

log = logging.getLogger("shancheng.node")
T = TypeVar("T")


@dataclass(frozen=True)
class NodeConfig:
    rpc_host: str = "127.0.0.1"
    rpc_port: int = 8545
    ws_port: int = 8546
    block_interval: float = 1.0
    heartbeat: float | None = None  # seconds between empty blocks; None = only when transactions wait
    mempool_capacity: int = 10_000
    rpc_gas_cap: int = RPC_GAS_CAP  # geth's --rpc.gascap: the most gas one eth_call / eth_estimateGas may use
    rpc_evm_timeout: float = 5.0  # geth's --rpc.evmtimeout: seconds a call may run (and may wait for a worker)
    call_workers: int = 2  # worker processes for calls (callpool.py); 0 = in the node's process, no time limit
    rpc_policy: RpcPolicy = field(default_factory=RpcPolicy)  # client limits, auth, CORS ([rpc] in config.toml)
    mempool_policy: ReplacementPolicy = field(default_factory=ReplacementPolicy)  # free replacement, stuck-tx lifetime ([mempool])


class _HeadState:
    """The mempool's view of the head state (nonce, balance, membership).

    Admission asks these for every transaction, so the head's py-evm state is built once per head
    (:meth:`new_head`); membership answers are the ledger's, memoised there while Governance's
    storage is unchanged.
    """

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._head: Any = None
        self._state: Any = None

    def new_head(self) -> None:
        self._head = self._state = None

    def _head_state(self) -> Any:
        if self._state is None:
            self._head = self._ledger.head
            self._state = self._ledger.state_at(self._head)
        return self._state

    def nonce(self, address: bytes) -> int:
        return int(self._head_state().get_nonce(address))

    def balance(self, address: bytes) -> int:
        return int(self._head_state().get_balance(address))

    def is_account_allowed(self, address: bytes) -> bool:
        state = self._head_state()
        return self._ledger.is_account_allowed(address, self._head, state=state)


class Node:
    """A single-validator Shancheng node.  Implements the RPC server's ``NodeBackend``."""

    concurrent_reads = True  # reads may run beside admission (see the module docstring)

    def __init__(
        self,
        *,
        ledger: Ledger,
        validator_key: SM2PrivateKey,
        config: NodeConfig = NodeConfig(),
    ) -> None:
        self.ledger = ledger
        self.config = config
        self.chain_id = ledger.chain_id
        self.client_version = f"shancheng/{__version__}/python"
        self._key = validator_key
        validators = [v.public_key for v in ledger.genesis.validators]
        if validator_key.public_key() not in validators:
            raise InvalidInput("this node's key is not a validator in the genesis file")
        self._validator_index = validators.index(validator_key.public_key())
        self._build_lock = threading.Lock()
        self._pool_lock = threading.RLock()
        self._head_state = _HeadState(ledger)
        self.mempool = Mempool(
            chain_id=self.chain_id,
            state=self._head_state,
            capacity=config.mempool_capacity,
            block_gas_limit=ledger.genesis.gas_limit,
            policy=config.mempool_policy,
        )
        self._new_block: asyncio.Condition | None = None
        self._stop: asyncio.Event | None = None
        self._last_block_time = time.monotonic()
        self.server: RpcServer | None = None
        # eth_call / eth_estimateGas run in worker processes while the node runs (see callpool.py)
        self._calls = CallPool(ledger.db, self.chain_id, workers=config.call_workers, timeout=config.rpc_evm_timeout,
                               gas_cap=config.rpc_gas_cap) if config.call_workers > 0 else None

    # -- block production -------------------------------------------------------------------
    def produce_block(self, *, force: bool = False) -> BuiltBlock | None:
        """Build, certify and commit the next block from the mempool; None when there is nothing to do."""
        with self._build_lock:
            with self._pool_lock:
                txs = self.mempool.select(gas_limit=self.ledger.genesis.gas_limit)
            if not txs and not force:
                return None
            built = self.ledger.build_block(txs, validator_key=self._key, validator_index=self._validator_index)
            with self._pool_lock:
                self._head_state.new_head()
                self.mempool.remove_included(built.block.transactions)
                for tx, reason in built.dropped:
                    log.info("dropped transaction 0x%s at block %d: %s", tx.hash.hex(), built.block.number, reason)
                self.mempool.remove_included([tx for tx, _ in built.dropped])
                self.mempool.on_new_head()
        self._last_block_time = time.monotonic()
        log.info(
            "block %d 0x%s: %d transactions, gas %d",
            built.block.number,
            built.block.hash.hex(),
            len(built.block.transactions),
            built.block.header.gas_used,
        )
        return built

    async def _producer(self) -> None:
        """The block timer: a block starts when a full block's worth of gas is pending, when
        ``block_interval`` has passed with transactions pending, or when the heartbeat is due."""
        assert self._stop is not None and self._new_block is not None
        loop = asyncio.get_running_loop()
        tick = min(0.05, self.config.block_interval)
        gas_limit = self.ledger.genesis.gas_limit
        waiting_since = time.monotonic()
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=tick)
            except TimeoutError:
                pass
            if self._stop.is_set():
                break
            now = time.monotonic()
            heartbeat_due = self.config.heartbeat is not None and now - self._last_block_time >= self.config.heartbeat
            full = self.mempool.pending_gas >= gas_limit
            interval_due = now - waiting_since >= self.config.block_interval and len(self.mempool) > 0
            if not (full or interval_due or heartbeat_due):
                if not len(self.mempool):
                    waiting_since = now
                continue
            try:
                built = await loop.run_in_executor(None, functools.partial(self.produce_block, force=heartbeat_due))
            except Exception:  # a failed block must not stop the node: log it and try again next tick
                log.exception("block production failed; will retry")
                continue
            waiting_since = time.monotonic()
            if built is not None:
                async with self._new_block:
                    self._new_block.notify_all()

    # -- lifecycle ----------------------------------------------------------------------------
    async def run(self, *, install_signal_handlers: bool = True, ready: asyncio.Event | None = None) -> None:
        """Serve until SIGINT/SIGTERM (or :meth:`stop`); then finish the current block and close."""
        self._stop = asyncio.Event()
        self._new_block = asyncio.Condition()
        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._stop.set)
        self.server = RpcServer(backend=self, host=self.config.rpc_host, http_port=self.config.rpc_port,
                                ws_port=self.config.ws_port, policy=self.config.rpc_policy)
        if self._calls is not None:
            self._calls.start()
        try:
            await self.server.start()
        except BaseException:
            if self._calls is not None:
                self._calls.close()
            raise
        log.info("JSON-RPC on http://%s:%d and ws://%s:%d", self.config.rpc_host, self.server.http_port,
                 self.config.rpc_host, self.server.ws_port)
        producer = asyncio.create_task(self._producer())
        if ready is not None:
            ready.set()
        try:
            await self._stop.wait()
        finally:
            await producer
            await self.server.stop()
            if self._calls is not None:
                self._calls.close()
            with self._build_lock, self._pool_lock:
                head = self.ledger.latest_number()
                self.ledger.close()
            log.info("stopped cleanly at block %d", head)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    # -- NodeBackend: blocks ----------------------------------------------------------------------
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

    # -- NodeBackend: mempool -------------------------------------------------------------------
    def send_raw_transaction(self, raw: bytes) -> bytes:
        # Admission waits for a block being built: running it alongside only shares one core (the GIL)
        # between the two, and cost a fifth of the throughput in bench/node_tps.py. Reads do not wait.
        with self._build_lock, self._pool_lock:
            return self.mempool.add(raw)  # a refusal raises the mempool's AdmissionError, mapped by the RPC server

    def pending_transactions(self) -> Sequence[SignedTransactionAPI]:
        with self._pool_lock:
            return self.mempool.pending()

    def pending_nonce(self, address: bytes) -> int:
        with self._pool_lock:
            return self.mempool.pending_nonce(address)

    # -- NodeBackend: state ---------------------------------------------------------------------
    def _header(self, block: int | None) -> Any:
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

    isolated_calls = True  # call/estimate_gas may run on the server's call threads, beside everything else

    def call(self, tx: dict[str, Any], block: int | None) -> bytes:
        header = self._header(block)
        if self._calls is not None and self._calls.running:
            calls = self._calls
            return self._execute(lambda: calls.call(tx, bytes(header.hash)))
        return self._execute(lambda: self.ledger.call(tx, header, gas_cap=self.config.rpc_gas_cap))

    def estimate_gas(self, tx: dict[str, Any], block: int | None) -> int:
        header = self._header(block)
        if self._calls is not None and self._calls.running:
            calls = self._calls
            return self._execute(lambda: calls.estimate_gas(tx, bytes(header.hash)))
        return self._execute(lambda: self.ledger.estimate_gas(tx, header, gas_cap=self.config.rpc_gas_cap))

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

    # -- NodeBackend: logs and heads ------------------------------------------------------------
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

    # -- NodeBackend: shancheng namespace -----------------------------------------------------------
    def commit_certificate(self, height: int) -> dict[str, Any] | None:
        cert = self.ledger.commit_certificate(height)
        return None if cert is None else cert.to_json()

    def validators(self, height: int) -> list[dict[str, Any]]:
        # Validator-set changes by governance take effect at a fixed later height (docs/chain-formats.md);
        # a single-validator node keeps the genesis set.
        return [
            {
                "index": i,
                "name": v.name,
                "public_key": v.public_key.to_bytes().hex(),
                "address": to_checksum_address(v.public_key.sm3_address()),
            }
            for i, v in enumerate(self.ledger.genesis.validators)
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

    def node_info(self) -> dict[str, Any]:
        head = self.ledger.head
        with self._pool_lock:
            pending = len(self.mempool)
        return {
            "client_version": self.client_version,
            "chain_id": self.chain_id,
            "genesis_hash": "0x" + self.ledger.genesis.genesis_hash.hex(),
            "genesis_fingerprint": "0x" + self.ledger.fingerprint.hex(),  # the chain identity certificates sign
            "head": {"number": int(head.block_number), "hash": "0x" + head.hash.hex()},
            "validator": {
                "index": self._validator_index,
                "public_key": self._key.public_key().to_bytes().hex(),
                "address": to_checksum_address(self._key.public_key().sm3_address()),
            },
            "system_contracts": {k: to_checksum_address(v) for k, v in self.ledger.genesis.system_contracts.items()},
            "pending_transactions": pending,
            "peers": 0,
        }

    def syncing(self) -> bool:
        return False

    def peer_count(self) -> int:
        return 0

    def coinbase(self) -> bytes:
        return bytes(self._key.public_key().sm3_address())  # what build_block writes as the header's coinbase

    def mining(self) -> bool:
        return self._stop is not None and not self._stop.is_set()  # the block producer runs until stop

