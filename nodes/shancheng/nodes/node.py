"""The solo producer: a one-validator Shancheng node (ledger + mempool + block producer + JSON-RPC).

The embedded default for ``shancheng dev``, the demo and fast tests, producing the same formats as the
consortium network: the node builds a block whenever transactions are pending (checked every
``block_interval`` seconds), or every ``heartbeat`` seconds if configured, through the ledger's
execution seam (``apply_block``), signs its commit certificate and commits both in one atomic write
(:class:`shancheng.nodes.producer.SoloProducer`). Its
validator set is the genesis set (Governance's validator votes execute, but a one-validator development
chain does not follow them). The reads are :class:`shancheng.nodes.backend.ReadBackend`'s.

Threads: the asyncio loop runs the RPC server and the block timer; RPC calls run
on the server's backend thread and blocks are built on another. ``eth_call`` and
``eth_estimateGas`` run in worker processes (``callpool.py``), awaited on the server's call threads. There is one
writer (``_build_lock``: one block at a time). Readers never wait for it: they
read the committed head, which a block changes in one atomic LevelDB batch, so
they see the block before or after, never half of it. On py-evm, admission waits for a
block being built (both are CPU work on one interpreter; interleaving them cost
throughput); the native engine executes with the GIL released, so admission runs beside it. The mempool and
its view of the head state have their own lock (``_pool_lock``) for the short reads of pending state.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth.abc import SignedTransactionAPI
from eth_utils.address import to_checksum_address

from shancheng.chain.calls import RPC_GAS_CAP
from shancheng.chain.ledger import Ledger
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import InvalidInput

from .backend import ReadBackend
from .mempool import Mempool, ReplacementPolicy
from .producer import BuiltBlock, SoloProducer
from .rpc.server import RpcPolicy, RpcServer

__all__ = ["Node", "NodeConfig"]

log = logging.getLogger("shancheng.node")


@dataclass(frozen=True)
class NodeConfig:
    rpc_host: str = "127.0.0.1"
    rpc_port: int = 8545
    ws_port: int = 8546
    block_interval: float = 1.0
    heartbeat: float | None = None  # seconds between empty blocks; None = only when transactions wait
    mempool_capacity: int = 10_000
    rpc_gas_cap: int = RPC_GAS_CAP  # geth's --rpc.gascap: the most gas one eth_call / eth_estimateGas may use
    rpc_evm_timeout: float = 5.0  # geth's --rpc.evmtimeout, in CPU seconds a call may use (and wall seconds it may wait for a worker)
    call_workers: int = 2  # worker processes for calls (callpool.py); 0 = in the node's process, no time limit
    call_nice: int = 10  # the call workers' CPU priority below the node's (0 to 19)
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


class Node(ReadBackend):
    """A single-validator Shancheng node.  Implements the RPC server's ``NodeBackend``."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        validator_key: SM2PrivateKey,
        config: NodeConfig = NodeConfig(),
    ) -> None:
        validators = [v.public_key for v in ledger.genesis.validators]
        if validator_key.public_key() not in validators:
            raise InvalidInput("this node's key is not a validator in the genesis file")
        # eth_call / eth_estimateGas run in worker processes while the node runs (see callpool.py)
        super().__init__(ledger, gas_cap=config.rpc_gas_cap, evm_timeout=config.rpc_evm_timeout,
                         call_workers=config.call_workers, call_nice=config.call_nice)
        # one validator signs every certificate: the set stays the genesis set whatever Governance votes
        ledger.follow_validator_updates = False
        self.config = config
        self._key = validator_key
        self._validator_index = validators.index(validator_key.public_key())
        self.producer = SoloProducer(ledger, validator_key, validator_index=self._validator_index)
        self._build_lock = threading.Lock()
        self._admission_lock: contextlib.AbstractContextManager[Any] = (
            self._build_lock if ledger.executor.holds_interpreter else contextlib.nullcontext())
        self._pool_lock = threading.RLock()
        self._head_state = _HeadState(ledger)
        self.mempool = Mempool(
            chain_id=self.chain_id,
            state=self._head_state,
            capacity=config.mempool_capacity,
            block_gas_limit=ledger.genesis.gas_limit,
            policy=config.mempool_policy,
            check=ledger.check_transaction,
        )
        self._stop: asyncio.Event | None = None
        self._last_block_time = time.monotonic()
        self.server: RpcServer | None = None

    # -- block production -------------------------------------------------------------------
    def produce_block(self, *, force: bool = False) -> BuiltBlock | None:
        """Build, certify and commit the next block from the mempool; None when there is nothing to do."""
        with self._build_lock:
            with self._pool_lock:
                txs = self.mempool.select(gas_limit=self.ledger.genesis.gas_limit)
            if not txs and not force:
                return None
            built = self.producer.build_block(txs)
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
        assert self._stop is not None
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
                await self.announce_block()

    # -- lifecycle ----------------------------------------------------------------------------
    async def run(self, *, install_signal_handlers: bool = True, ready: asyncio.Event | None = None) -> None:
        """Serve until SIGINT/SIGTERM (or :meth:`stop`); then finish the current block and close."""
        self._stop = asyncio.Event()
        self.start_block_notifications()
        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._stop.set)
        self.server = RpcServer(backend=self, host=self.config.rpc_host, http_port=self.config.rpc_port,
                                ws_port=self.config.ws_port, policy=self.config.rpc_policy)
        self.start_calls()
        try:
            await self.server.start()
        except BaseException:
            self.close_calls()
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
            self.close_calls()
            with self._build_lock, self._pool_lock:
                head = self.ledger.latest_number()
                self.ledger.close()
            log.info("stopped cleanly at block %d", head)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    # -- NodeBackend: mempool -------------------------------------------------------------------
    def send_raw_transaction(self, raw: bytes) -> bytes:
        # Admission waits for a block being built by an engine that holds the GIL (py-evm): running it alongside
        # only shares one core between the two, and cost a fifth of the throughput in bench/node_tps.py. The native
        # engine executes a block with the GIL released, so admission runs beside it. Reads never wait.
        with self._admission_lock, self._pool_lock:
            return self.mempool.add(raw)  # a refusal raises the mempool's AdmissionError, mapped by the RPC server

    def pending_transactions(self) -> Sequence[SignedTransactionAPI]:
        with self._pool_lock:
            return self.mempool.pending()

    def pending_nonce(self, address: bytes) -> int:
        with self._pool_lock:
            return self.mempool.pending_nonce(address)

    # -- NodeBackend: node ---------------------------------------------------------------------------
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
        return self.producer.coinbase

    def mining(self) -> bool:
        return self._stop is not None and not self._stop.is_set()  # the block producer runs until stop

