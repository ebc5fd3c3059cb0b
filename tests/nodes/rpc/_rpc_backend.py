"""A small in-process ``NodeBackend`` on a real py-evm chain (the GM Cancun VM), for the RPC tests.

It mines one block per transaction (like anvil's automine) and keeps indexes of transactions and logs in
memory. It is not the node: no consensus, no permissions, no persistence — just real blocks, receipts
and state, so the server's formatting and framing are tested against py-evm objects, not mocks. Also
``ServerThread`` runs an ``RpcServer`` on its own event loop in a thread for synchronous clients (web3.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from eth.abc import BlockAPI, ReceiptAPI, SignedTransactionAPI
from eth_tester import PyEVMBackend

from shancheng.chain.calls import CallFailed, create_access_list, estimate_gas, execute_call
from shancheng.chain.precompiles import gm_cancun_vm
from shancheng.chain.state_proofs import state_proof
from shancheng.chain.transaction_proofs import transaction_proof
from shancheng.nodes.rpc.backend import AdmissionError, ExecutionFailed, LogRecord
from shancheng.nodes.rpc.formatting import logs_of_block
from shancheng.nodes.rpc.methods import Limits, log_matches
from shancheng.nodes.rpc.server import RpcServer
from shancheng.testing import CHAIN_ID, GAS_LIMIT, HD_PATH, MNEMONIC, N_ACCOUNTS

ZERO_ADDRESS = b"\x00" * 20


class PyEvmBackend:
    """NodeBackend over eth-tester's py-evm chain (same mnemonic, chain id and gas limit as anvil)."""

    client_version = "shancheng-test/pyevm"

    def __init__(self) -> None:
        params = dict(PyEVMBackend.generate_genesis_params(overrides={"gas_limit": GAS_LIMIT}), base_fee_per_gas=0)
        state = PyEVMBackend.generate_genesis_state(mnemonic=MNEMONIC, num_accounts=N_ACCOUNTS, hd_path=HD_PATH)
        tester = PyEVMBackend(genesis_parameters=params, genesis_state=state,
                              vm_configuration=((0, gm_cancun_vm()),), mnemonic=MNEMONIC, hd_path=HD_PATH)
        self.chain = tester.chain
        self.chain_id = CHAIN_ID
        self._tx_index: dict[bytes, tuple[int, int]] = {}
        self._logs: dict[int, list[LogRecord]] = {}
        self._latest = self.chain.get_canonical_head().block_number
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._waiters_lock = threading.Lock()

    # -- blocks ----------------------------------------------------------------------------------
    def latest_number(self) -> int:
        return self._latest

    def block_by_number(self, number: int) -> BlockAPI | None:
        if number > self._latest or number < 0:
            return None
        return self.chain.get_canonical_block_by_number(number)

    def block_by_hash(self, block_hash: bytes) -> BlockAPI | None:
        try:
            block = self.chain.get_block_by_hash(block_hash)
        except Exception:  # noqa: BLE001 - py-evm raises HeaderNotFound / BlockNotFound
            return None
        if block.number > self._latest or self.chain.get_canonical_block_hash(block.number) != block.hash:
            return None
        return block

    def transaction_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        return self._tx_index.get(bytes(tx_hash))

    def receipts(self, block_number: int) -> Sequence[ReceiptAPI]:
        block = self.block_by_number(block_number)
        return () if block is None else block.get_receipts(self.chain.chaindb)

    # -- mempool: every admitted transaction is mined into its own block at once -------------------
    def send_raw_transaction(self, raw: bytes) -> bytes:
        tx = self.chain.get_vm().get_transaction_builder().decode(raw)
        expected = self.pending_nonce(tx.sender)
        if tx.nonce < expected:
            raise AdmissionError(-32000, f"nonce too low: next nonce {expected}, transaction nonce {tx.nonce}",
                                 reason="nonce_too_low")
        if tx.nonce > expected:
            raise AdmissionError(-32000, f"nonce too high: next nonce {expected}, transaction nonce {tx.nonce}",
                                 reason="nonce_too_high")
        try:
            self.chain.apply_transaction(tx)
        except Exception as exc:
            raise AdmissionError(-32000, f"transaction rejected: {exc}", reason="rejected") from exc
        block = self.chain.mine_block(mix_hash=os.urandom(32))
        self._index(block)
        return bytes(tx.hash)

    def mine_empty(self) -> int:
        block = self.chain.mine_block(mix_hash=os.urandom(32))
        self._index(block)
        return int(block.number)

    def _index(self, block: BlockAPI) -> None:
        for i, tx in enumerate(block.transactions):
            self._tx_index[bytes(tx.hash)] = (block.number, i)
        self._logs[block.number] = logs_of_block(block, block.get_receipts(self.chain.chaindb))
        self._latest = block.number
        with self._waiters_lock:
            for loop, event in self._waiters:
                with contextlib.suppress(RuntimeError):  # that loop is closed
                    loop.call_soon_threadsafe(event.set)

    def pending_transactions(self) -> Sequence[SignedTransactionAPI]:
        return ()

    def pending_nonce(self, address: bytes) -> int:
        return self.nonce(address, self._latest)

    # -- state ----------------------------------------------------------------------------------
    def _state(self, block: int | None) -> Any:
        header = self.chain.get_canonical_block_header_by_number(self._latest if block is None else block)
        return self.chain.get_vm(at_header=header).state

    def nonce(self, address: bytes, block: int | None) -> int:
        return int(self._state(block).get_nonce(address))

    def balance(self, address: bytes, block: int | None) -> int:
        return int(self._state(block).get_balance(address))

    def code(self, address: bytes, block: int | None) -> bytes:
        return bytes(self._state(block).get_code(address))

    def storage_at(self, address: bytes, slot: int, block: int | None) -> int:
        return int(self._state(block).get_storage(address, slot))

    def state_proof(self, address: bytes, slots: Sequence[bytes], block: int) -> dict[str, Any]:
        header = self.chain.get_canonical_block_header_by_number(block)
        return state_proof(self.chain.chaindb.db, header.state_root, address, slots)

    def call(self, tx: dict[str, Any], block: int | None) -> bytes:
        """The node's eth_call (access lists, geth's wording for a value the sender cannot pay) on this chain."""
        header = self.chain.get_canonical_block_header_by_number(self._latest if block is None else block)
        return execute_call(self.chain, tx, header)

    def create_access_list(self, tx: dict[str, Any], block: int | None) -> dict[str, Any]:
        header = self.chain.get_canonical_block_header_by_number(self._latest if block is None else block)
        return create_access_list(self.chain, tx, header)

    def estimate_gas(self, tx: dict[str, Any], block: int | None) -> int:
        """The node's estimator (geth's search, exact: the smallest gas limit that succeeds) on this chain."""
        header = self.chain.get_canonical_block_header_by_number(self._latest if block is None else block)
        try:
            return estimate_gas(self.chain, tx, header)
        except CallFailed as exc:
            raise ExecutionFailed(str(exc)) from exc

    # -- logs and heads ---------------------------------------------------------------------------
    def logs(self, from_block: int, to_block: int, addresses: Sequence[bytes],
             topics: Sequence[Sequence[bytes] | None]) -> Sequence[LogRecord]:
        out: list[LogRecord] = []
        for n in range(from_block, to_block + 1):
            out.extend(log for log in self._logs.get(n, ()) if log_matches(log, addresses, topics))
        return out

    async def wait_for_block(self, after: int, timeout: float) -> int:
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._waiters_lock:
            self._waiters.append(entry)
        try:
            if self._latest <= after:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout)
            return self._latest
        finally:
            with self._waiters_lock:
                self._waiters.remove(entry)

    # -- shancheng namespace ------------------------------------------------------------------------
    def commit_certificate(self, height: int) -> dict[str, Any] | None:
        block = self.block_by_number(height)
        if block is None:
            return None
        return {"version": 2, "chain_identity": "0x" + "00" * 32, "chain_id": self.chain_id, "height": height,
                "round": 0, "block_hash": "0x" + block.hash.hex(), "signatures": []}

    def validators(self, height: int) -> list[dict[str, Any]]:
        return [{"index": 0, "name": "test", "public_key": "04" + "00" * 64}]

    def receipt_proof(self, tx_hash: bytes) -> dict[str, Any] | None:
        return None

    def transaction_proof(self, tx_hash: bytes) -> dict[str, Any] | None:
        where = self._tx_index.get(bytes(tx_hash))
        block = None if where is None else self.block_by_number(where[0])
        return None if where is None or block is None else transaction_proof(block, where[1])

    def node_info(self) -> dict[str, Any]:
        return {"client": self.client_version, "chain_id": self.chain_id, "latest": self._latest}

    def syncing(self) -> bool:
        return False

    def peer_count(self) -> int:
        return 0

    def coinbase(self) -> bytes:
        return bytes(self.chain.get_canonical_head().coinbase)  # eth-tester mines with its default coinbase

    def mining(self) -> bool:
        return True  # every admitted transaction is mined at once (automine)


class ServerThread:
    """Run an RpcServer on free loopback ports on its own event loop in a daemon thread."""

    def __init__(self, backend: Any, limits: Limits | None = None) -> None:
        self.backend = backend
        self.server = RpcServer(backend=backend, http_port=0, ws_port=0, limits=limits)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="rpc-test-loop", daemon=True)

    def __enter__(self) -> RpcServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(timeout=30)
        return self.server

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=30)
            self.loop.close()


@contextlib.contextmanager
def pyevm_rpc(limits: Limits | None = None) -> Iterator[tuple[RpcServer, PyEvmBackend]]:
    backend = PyEvmBackend()
    with ServerThread(backend, limits) as server:
        yield server, backend
