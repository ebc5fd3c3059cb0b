"""The ledger: blocks, receipts, commit certificates and indexes in one LevelDB.

One writer builds blocks (:meth:`Ledger.build_block`); everything a block
changes — py-evm's state, header, body, receipts and transaction index, the
commit certificate and the log index — is written by **one** fsynced LevelDB
batch, so a crash leaves either the whole block or none of it.

Reads (:meth:`block_by_number`, :meth:`call`, :meth:`logs`, ...) use the
committed head only; nothing uncommitted is ever visible, and they may run on
other threads while a block is being built.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI, SignedTransactionAPI
from eth.db.atomic import AtomicDB
from eth.db.backends.memory import MemoryDB
from eth.exceptions import BlockNotFound, HeaderNotFound, OutOfGas, Revert, TransactionNotFound
from eth.vm.forks.cancun.transactions import CancunTransactionBuilder
from eth.vm.spoof import SpoofTransaction
from eth_abi.abi import decode, encode
from eth_typing import Address, BlockNumber, Hash32
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.exceptions import ValidationError

from shancheng.sdk.chainproof.commit import CommitCertificate
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import ShanchengError

from .genesis import Genesis, GenesisError
from .storage import LevelDB
from .vm import chain_class

__all__ = [
    "RPC_GAS_CAP",
    "BuiltBlock",
    "CallFailed",
    "ExecutionReverted",
    "Ledger",
    "LogRecord",
    "call_gas",
    "estimate_gas",
    "execute_call",
    "log_matches",
    "log_record",
    "logs_of_block",
    "spoof_transaction",
]

_COMMIT = b"sc:commit:"  # + u64 height -> commit certificate JSON
_META_GENESIS = b"sc:meta:genesis-hash"
_META_FINGERPRINT = b"sc:meta:genesis-fingerprint"  # the genesis file's fingerprint (the chain identity)
_LOG_ADDRESS = b"sc:log:a:"  # + address(20) + u64 block + u32 log index -> b""
_LOG_TOPIC = b"sc:log:t:"  # + u8 position + topic(32) + u64 block + u32 log index -> b""
_ALLOWED_SELECTOR = function_signature_to_4byte_selector("isAccountAllowed(address)")
_CALL_GAS = 50_000_000
RPC_GAS_CAP = 50_000_000  # geth's default --rpc.gascap: the most gas one eth_call / eth_estimateGas may burn
_TX_GAS = 21_000  # a plain transfer
_CALL_STIPEND = 2_300
_ALLOWED_CACHE = 10_000  # senders remembered; non-members can make up any number of senders
_NOT_MEMBER = "sender is not an account of an active member organisation"

# py-evm logs every abandoned write batch in full at ERROR level; an abandoned fast path is expected here
# (the block is then rebuilt transaction by transaction), so keep those dumps out of the node's log.
logging.getLogger("eth.db.AtomicDBWriteBatch").setLevel(logging.CRITICAL)


class ExecutionReverted(ShanchengError):
    """An eth_call / estimate hit REVERT; ``data`` is the revert data (e.g. Error(string))."""

    def __init__(self, data: bytes, message: str = "execution reverted") -> None:
        super().__init__(message)
        self.data = bytes(data)

    def diagnostics(self) -> dict[str, Any]:
        return {"data": self.data}


class CallFailed(ShanchengError):
    """An eth_call / estimate failed without revert data: out of gas, an invalid opcode, a value the sender
    cannot pay, or no gas limit up to the cap with which it succeeds."""


@dataclass(frozen=True)
class LogRecord:
    address: bytes
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    block_hash: bytes
    transaction_hash: bytes
    transaction_index: int
    log_index: int


@dataclass(frozen=True)
class BuiltBlock:
    block: BlockAPI
    receipts: tuple[ReceiptAPI, ...]
    commit: CommitCertificate
    dropped: tuple[tuple[SignedTransactionAPI, str], ...]  # refused at build time, with the reason
    deferred: tuple[SignedTransactionAPI, ...]  # valid but did not fit; stay pending


def _u64(n: int) -> bytes:
    return struct.pack(">Q", n)


class Ledger:
    """The node's chain: py-evm over LevelDB plus commit certificates and a log index."""

    def __init__(self, db: LevelDB, genesis: Genesis) -> None:
        self.db = db
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self._chain_class = chain_class(genesis.chain_id)
        self._governance = genesis.system_contracts["Governance"]
        self.fingerprint = genesis.fingerprint  # the chain identity commit certificates sign
        stored = db.get(_META_GENESIS)
        if stored is None:  # a fresh database: initialize() refuses a file whose contents imply another state
            with db.block_transaction() as atomic:
                genesis.initialize(atomic)
                atomic[_META_GENESIS] = genesis.genesis_hash
                atomic[_META_FINGERPRINT] = self.fingerprint
        elif stored != genesis.genesis_hash:
            raise GenesisError(
                f"the database at {db.path} belongs to genesis 0x{stored.hex()}, not 0x{genesis.genesis_hash.hex()}"
            )
        else:
            stored_fingerprint = db.get(_META_FINGERPRINT)
            if stored_fingerprint is None:
                # a database initialised before fingerprints were stored: check the file against the state
                # it implies (in memory) before pinning its fingerprint
                genesis.initialize(AtomicDB(MemoryDB()))
                db[_META_FINGERPRINT] = self.fingerprint
            elif stored_fingerprint != self.fingerprint:
                raise GenesisError(
                    "this node's database was initialised from another genesis file "
                    f"(fingerprint 0x{stored_fingerprint.hex()} ≠ 0x{self.fingerprint.hex()})"
                )
        self._chain = self._chain_class(db)
        self._allowed: dict[bytes, bool] = {}  # isAccountAllowed answers while Governance's storage
        self._allowed_root: bytes | None = None  # root is this one (see _allowed_at)
        self._allowed_lock = threading.Lock()  # admission and the block builder ask from two threads

    @classmethod
    def open(cls, path: str | Path, genesis: Genesis) -> Ledger:
        db = LevelDB(path)
        try:
            return cls(db, genesis)
        except BaseException:
            db.close()
            raise

    def close(self) -> None:
        self.db.close()

    # -- reads ---------------------------------------------------------------------------
    @property
    def head(self) -> BlockHeaderAPI:
        return self._chain.get_canonical_head()

    def latest_number(self) -> int:
        return int(self.head.block_number)

    def header_by_number(self, number: int) -> BlockHeaderAPI | None:
        try:
            return self._chain.get_canonical_block_header_by_number(BlockNumber(number))
        except HeaderNotFound:
            return None

    def block_by_number(self, number: int) -> BlockAPI | None:
        if not 0 <= number <= self.latest_number():
            return None
        try:
            return self._chain.get_canonical_block_by_number(BlockNumber(number))
        except (BlockNotFound, HeaderNotFound):
            return None

    def block_by_hash(self, block_hash: bytes) -> BlockAPI | None:
        try:
            block = self._chain.get_block_by_hash(Hash32(block_hash))
        except (BlockNotFound, HeaderNotFound):
            return None
        canonical = self.header_by_number(block.number)
        return block if canonical is not None and canonical.hash == block.hash else None

    def transaction_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        try:
            number, index = self._chain.chaindb.get_transaction_index(Hash32(tx_hash))
        except TransactionNotFound:
            return None
        return int(number), int(index)

    def receipts(self, block_number: int) -> tuple[ReceiptAPI, ...]:
        """The receipts of a committed block, read through its header alone (not its transactions)."""
        header = self.header_by_number(block_number) if 0 <= block_number <= self.latest_number() else None
        if header is None:
            return ()
        builder = self._chain.get_vm_class(header).get_block_class().get_receipt_builder()
        return tuple(self._chain.chaindb.get_receipts(header, builder))

    def commit_certificate(self, height: int) -> CommitCertificate | None:
        raw = self.db.get(_COMMIT + _u64(height))
        return None if raw is None else CommitCertificate.from_json(json.loads(raw))

    def state_at(self, header: BlockHeaderAPI | None = None) -> Any:
        return self._chain.get_vm(header or self.head).state

    def nonce(self, address: bytes, header: BlockHeaderAPI | None = None) -> int:
        return int(self.state_at(header).get_nonce(address))

    def balance(self, address: bytes, header: BlockHeaderAPI | None = None) -> int:
        return int(self.state_at(header).get_balance(address))

    def code(self, address: bytes, header: BlockHeaderAPI | None = None) -> bytes:
        return bytes(self.state_at(header).get_code(address))

    def storage_at(self, address: bytes, slot: int, header: BlockHeaderAPI | None = None) -> int:
        return int(self.state_at(header).get_storage(address, slot))

    # -- execution without a transaction ---------------------------------------------------------
    def call(self, tx: dict[str, Any], header: BlockHeaderAPI | None = None, *, gas_cap: int = RPC_GAS_CAP) -> bytes:
        """eth_call: execute against ``header``'s state and discard; raises :class:`ExecutionReverted`."""
        return execute_call(self._chain, tx, header or self.head, gas_cap=gas_cap)

    def estimate_gas(self, tx: dict[str, Any], header: BlockHeaderAPI | None = None, *,
                     gas_cap: int = RPC_GAS_CAP) -> int:
        """eth_estimateGas: the smallest gas limit with which ``tx`` succeeds (:func:`estimate_gas`)."""
        return estimate_gas(self._chain, tx, header or self.head, gas_cap=gas_cap)

    def is_account_allowed(self, address: bytes, header: BlockHeaderAPI | None = None, *, state: Any = None) -> bool:
        """Governance.isAccountAllowed(address) at ``header`` (default: the head); ``state`` is the state at
        ``header`` when the caller already holds it (admission asks for every transaction)."""
        header = header or self.head
        return self._allowed_at(self._chain, self.state_at(header) if state is None else state, address,
                                lambda: self._chain.create_header_from_parent(header))

    # -- the log index --------------------------------------------------------------------------
    def logs(
        self,
        from_block: int,
        to_block: int,
        addresses: Sequence[bytes] = (),
        topics: Sequence[Sequence[bytes] | None] = (),
    ) -> list[LogRecord]:
        """Logs in [from_block, to_block] matching the Ethereum filter rules, using the index."""
        to_block = min(to_block, self.latest_number())
        if from_block > to_block:
            return []
        candidates = self._candidate_blocks(from_block, to_block, addresses, topics)
        out: list[LogRecord] = []
        for number in candidates:
            out.extend(record for record in self._block_logs(number) if log_matches(record, addresses, topics))
        return out

    def _candidate_blocks(
        self, lo: int, hi: int, addresses: Sequence[bytes], topics: Sequence[Sequence[bytes] | None]
    ) -> Iterator[int]:
        # choose the most selective indexed constraint; fall back to every block with a non-empty bloom
        keysets: list[list[bytes]] = []
        if addresses:
            keysets.append([_LOG_ADDRESS + a for a in addresses])
        for pos, alternatives in enumerate(topics[:4]):
            if alternatives:
                keysets.append([_LOG_TOPIC + bytes([pos]) + t for t in alternatives])
        if not keysets:
            for number in range(lo, hi + 1):
                header = self.header_by_number(number)
                if header is not None and header.bloom:
                    yield number
            return
        best: set[int] | None = None
        for prefixes in keysets:
            blocks: set[int] = set()
            for prefix in prefixes:
                for key, _ in self.db.iterate_range(prefix + _u64(lo), prefix + _u64(hi + 1)):
                    blocks.add(struct.unpack(">Q", key[len(prefix) : len(prefix) + 8])[0])
            best = blocks if best is None else best & blocks
            if not best:
                return
        yield from sorted(best or ())

    def _block_logs(self, number: int) -> list[LogRecord]:
        block = self.block_by_number(number)
        if block is None:
            return []
        return logs_of_block(block, block.get_receipts(self._chain.chaindb))

    # -- the one writer -------------------------------------------------------------------------
    def build_block(
        self,
        transactions: Sequence[SignedTransactionAPI],
        *,
        validator_key: SM2PrivateKey,
        validator_index: int = 0,
        timestamp: int | None = None,
    ) -> BuiltBlock:
        """Execute ``transactions`` into the next block, certify it, and commit everything atomically.

        Each sender is re-checked with Governance.isAccountAllowed against the state
        *inside* the block (a suspension earlier in the block applies at once); invalid
        transactions are dropped with their reason, ones that do not fit are deferred.
        """
        parent = self.head
        now = int(time.time()) if timestamp is None else timestamp
        ts = max(now, int(parent.timestamp) + 1)
        proposer = validator_key.public_key().sm3_address()
        dropped: list[tuple[SignedTransactionAPI, str]] = []
        deferred: list[SignedTransactionAPI] = []
        with self.db.block_transaction() as atomic:
            chain = self._chain_class(atomic)
            chain.header = chain.create_header_from_parent(
                parent, timestamp=ts, coinbase=proposer, gas_limit=self.genesis.gas_limit, extra_data=b""
            )
            plan = self._plan(chain, transactions, dropped, deferred)
            block = None
            receipts: tuple[ReceiptAPI, ...] = ()
            if plan is not None:
                try:
                    result, mined_receipts, _ = chain.mine_all(plan, timestamp=ts, coinbase=proposer)
                    block, receipts = result.imported_block, tuple(mined_receipts)
                except ValidationError:
                    # Something the cheap checks missed: redo the block one transaction at a time. The
                    # abandoned attempt may have left trie nodes in this batch; they are content-addressed,
                    # so harmless, and nothing it wrote is referenced by a header.
                    block = None
            if block is None:
                chain = self._chain_class(atomic)
                chain.header = chain.create_header_from_parent(
                    parent, timestamp=ts, coinbase=proposer, gas_limit=self.genesis.gas_limit, extra_data=b""
                )
                dropped.clear()
                deferred.clear()
                block = self._apply_one_by_one(chain, transactions, ts, proposer, dropped, deferred)
                receipts = tuple(block.get_receipts(chain.chaindb))
            commit = CommitCertificate.sign(
                chain_identity=self.fingerprint,
                chain_id=self.chain_id,
                height=block.number,
                round_=0,
                block_hash=block.hash,
                signers=[(validator_index, validator_key)],
                timestamp_ms=int(time.time() * 1000),
            )
            atomic[_COMMIT + _u64(block.number)] = json.dumps(commit.to_json()).encode()
            self._index_logs(atomic, block, receipts)
        self._chain = self._chain_class(self.db)
        return BuiltBlock(block, receipts, commit, tuple(dropped), tuple(deferred))

    def _plan(
        self,
        chain: Any,
        transactions: Sequence[SignedTransactionAPI],
        dropped: list[tuple[SignedTransactionAPI, str]],
        deferred: list[SignedTransactionAPI],
    ) -> list[SignedTransactionAPI] | None:
        """The transactions to execute in one pass, after the cheap checks; None when a governance
        transaction is in the block (membership could change mid-block: take the careful path)."""
        if any(tx.to == self._governance for tx in transactions):
            return None
        state = chain.get_vm(chain.header).state
        allowed: dict[bytes, bool] = {}
        next_nonce: dict[bytes, int] = {}
        gas_left = chain.header.gas_limit
        plan = []
        for tx in transactions:
            sender = tx.sender
            if sender not in allowed:
                allowed[sender] = self._allowed_at(chain, state, sender, lambda: chain.header)
                next_nonce[sender] = state.get_nonce(sender)
            if not allowed[sender]:
                dropped.append((tx, _NOT_MEMBER))
            elif tx.nonce != next_nonce[sender]:
                dropped.append((tx, f"nonce {tx.nonce} is not the sender's next nonce {next_nonce[sender]}"))
            elif tx.gas > gas_left:
                deferred.append(tx)
            else:
                plan.append(tx)
                next_nonce[sender] += 1
                gas_left -= tx.gas
        return plan

    def _apply_one_by_one(
        self,
        chain: Any,
        transactions: Sequence[SignedTransactionAPI],
        ts: int,
        proposer: bytes,
        dropped: list[tuple[SignedTransactionAPI, str]],
        deferred: list[SignedTransactionAPI],
    ) -> BlockAPI:
        allowed_cache: dict[bytes, bool] = {}
        for tx in transactions:
            sender = tx.sender
            if sender not in allowed_cache:
                allowed_cache[sender] = self._allowed_in(chain, sender, chain.header)
            if not allowed_cache[sender]:
                dropped.append((tx, _NOT_MEMBER))
                continue
            if tx.gas > chain.header.gas_limit - chain.header.gas_used:
                deferred.append(tx)
                continue
            try:
                chain.apply_transaction(tx)
            except ValidationError as exc:
                dropped.append((tx, str(exc)))
                continue
            if tx.to == self._governance:
                allowed_cache.clear()  # membership may have changed
        block: BlockAPI = chain.mine_block(timestamp=ts, coinbase=proposer)
        return block

    def _allowed_at(self, chain: Any, state: Any, sender: bytes, at_header: Callable[[], BlockHeaderAPI]) -> bool:
        """:meth:`_allowed_in` for a committed ``state``, memoised while Governance's storage root is the
        same: the answer is a function of Governance's storage alone, and the probe is an EVM call."""
        root = state.storage_root(self._governance)
        with self._allowed_lock:
            if root != self._allowed_root or len(self._allowed) >= _ALLOWED_CACHE:
                self._allowed.clear()
                self._allowed_root = root
            if sender not in self._allowed:
                self._allowed[sender] = self._allowed_in(chain, sender, at_header())
            return self._allowed[sender]

    def _allowed_in(self, chain: Any, sender: bytes, at_header: BlockHeaderAPI) -> bool:
        """Governance.isAccountAllowed(sender), executed on ``chain`` as of ``at_header``."""
        data = _ALLOWED_SELECTOR + encode(["address"], [sender])
        probe = CancunTransactionBuilder.create_unsigned_transaction(
            nonce=0, gas_price=0, gas=_CALL_GAS, to=Address(self._governance), value=0, data=data
        )
        try:
            out = chain.get_transaction_result(SpoofTransaction(probe, from_=b"\0" * 20), at_header)
        except Revert:
            return False
        return len(out) == 32 and bool(decode(["bool"], out)[0])

    @staticmethod
    def _index_logs(atomic: Any, block: BlockAPI, receipts: Sequence[ReceiptAPI]) -> None:
        number = _u64(block.number)
        log_index = 0
        for receipt in receipts:
            for log in receipt.logs:
                suffix = number + struct.pack(">I", log_index)
                atomic[_LOG_ADDRESS + bytes(log.address) + suffix] = b""
                for pos, topic in enumerate(log.topics[:4]):
                    atomic[_LOG_TOPIC + bytes([pos]) + topic.to_bytes(32, "big") + suffix] = b""
                log_index += 1


def log_record(block: BlockAPI, tx_index: int, log: Any, log_index: int) -> LogRecord:
    """The :class:`LogRecord` of ``log``, emitted by transaction ``tx_index`` of ``block``."""
    return LogRecord(
        address=bytes(log.address),
        topics=tuple(int(t).to_bytes(32, "big") for t in log.topics),
        data=bytes(log.data),
        block_number=int(block.number),
        block_hash=bytes(block.hash),
        transaction_hash=bytes(block.transactions[tx_index].hash),
        transaction_index=tx_index,
        log_index=log_index,
    )


def logs_of_block(block: BlockAPI, receipts: Sequence[ReceiptAPI]) -> list[LogRecord]:
    """Every log of a block, with ``log_index`` counted across the block."""
    out: list[LogRecord] = []
    for tx_index, receipt in enumerate(receipts):
        for log in receipt.logs:
            out.append(log_record(block, tx_index, log, len(out)))
    return out


def log_matches(log: LogRecord, addresses: Sequence[bytes], topics: Sequence[Sequence[bytes] | None]) -> bool:
    """The Ethereum filter rules (go-ethereum's): an address among ``addresses`` (if any), and at each
    position ``i`` one of ``topics[i]`` (None or empty: anything), with no more positions than topics."""
    if addresses and log.address not in addresses:
        return False
    if len(topics) > len(log.topics):
        return False
    return all(not wanted or log.topics[i] in wanted for i, wanted in enumerate(topics))


# -- eth_call and eth_estimateGas on any py-evm chain of this VM (the node's, or a call worker's) -------------
def call_gas(tx: dict[str, Any], gas_cap: int) -> int:
    """The gas an eth_call runs with: the request's, or the cap when absent, never more than the cap
    (geth's ``--rpc.gascap``)."""
    return min(int(tx.get("gas") or gas_cap), gas_cap)


def spoof_transaction(state: Any, tx: dict[str, Any], gas: int) -> SpoofTransaction:
    """``tx`` (bytes/int values under from, to, value, data) as an unsigned transaction from its sender,
    with the sender's nonce in ``state`` and no fee."""
    sender = tx.get("from") or b"\0" * 20
    unsigned = CancunTransactionBuilder.create_unsigned_transaction(
        nonce=state.get_nonce(sender),
        gas_price=0,
        gas=gas,
        to=Address(tx.get("to") or b""),
        value=int(tx.get("value") or 0),
        data=tx.get("data") or b"",
    )
    return SpoofTransaction(unsigned, from_=sender)


def _failure(computation: Any) -> ShanchengError:
    """The error of a failed computation: the REVERT with its data, or what stopped it."""
    error = computation.error
    if isinstance(error, Revert):
        return ExecutionReverted(error.args[0] if error.args and isinstance(error.args[0], bytes) else b"")
    if isinstance(error, OutOfGas):
        return CallFailed("out of gas")
    return CallFailed(str(error) or type(error).__name__)


def execute_call(chain: Any, tx: dict[str, Any], header: BlockHeaderAPI, *, gas_cap: int = RPC_GAS_CAP) -> bytes:
    """eth_call on ``header``'s state, executed as the next block would; nothing is written.

    Raises :class:`ExecutionReverted` on REVERT and :class:`CallFailed` on any other failure."""
    vm = chain.get_vm(chain.create_header_from_parent(header))
    with vm.in_costless_state() as state:
        try:
            computation = state.costless_execute_transaction(spoof_transaction(state, tx, call_gas(tx, gas_cap)))
        except ValidationError as exc:  # e.g. a value the sender cannot pay
            raise CallFailed(str(exc)) from exc
    if computation.is_error:
        raise _failure(computation)
    return bytes(computation.output)


def estimate_gas(chain: Any, tx: dict[str, Any], header: BlockHeaderAPI, *, gas_cap: int = RPC_GAS_CAP) -> int:
    """eth_estimateGas: the smallest gas limit with which ``tx`` succeeds on ``header``'s state.

    go-ethereum's ``eth/gasestimator`` without its error ratio (exact, as anvil): the upper bound is the
    request's gas (when at least 21,000) or else the block gas limit, never above ``gas_cap``; a plain
    transfer to an account without code tries 21,000 first; a failure at the upper bound is final (its
    REVERT, or "gas required exceeds allowance"); the gas that run used (less one) is the lower bound; the
    optimistic limit (gas used + refund + call stipend) × 64/63 is tried next; then a binary search skewed
    to the low side.
    """
    at = chain.create_header_from_parent(header)
    with chain.get_vm(at).in_costless_state() as state:
        given = int(tx.get("gas") or 0)
        hi = min(given if given >= _TX_GAS else int(at.gas_limit), gas_cap)
        base = spoof_transaction(state, tx, hi)

        def attempt(gas: int) -> tuple[Any, str]:
            """(the computation, "") at this gas limit, or (None, why) when the transaction is invalid."""
            snapshot = state.snapshot()
            try:
                return state.costless_execute_transaction(SpoofTransaction(base, gas=gas)), ""  # type: ignore[arg-type]
            except ValidationError as exc:  # below the intrinsic gas, a value the sender cannot pay, ...
                return None, str(exc)
            finally:
                state.revert(snapshot)

        def succeeds(gas: int) -> bool:
            computation, _ = attempt(gas)
            return computation is not None and not computation.is_error

        if not base.data and base.to and not state.get_code(base.to) and succeeds(_TX_GAS):
            return _TX_GAS
        computation, invalid = attempt(hi)
        if computation is None:
            raise CallFailed(invalid)
        if computation.is_error:
            if isinstance(computation.error, OutOfGas):
                raise CallFailed(f"gas required exceeds allowance ({hi})")
            raise _failure(computation)
        consumed = hi - int(computation.get_gas_remaining())  # before the refund
        refund = min(int(computation.get_gas_refund()), consumed // 5)  # EIP-3529's cap
        lo = consumed - refund - 1  # it failed with less than it used
        optimistic = (consumed + _CALL_STIPEND) * 64 // 63
        if optimistic < hi and succeeds(optimistic):
            hi = optimistic
        while lo + 1 < hi:
            mid = min((hi + lo) // 2, lo * 2)  # most transactions need little more than they use
            if succeeds(mid):
                hi = mid
            else:
                lo = mid
        return hi
