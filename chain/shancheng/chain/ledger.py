"""The ledger: blocks, receipts, commit certificates, validator sets and indexes in one LevelDB.

The block-execution seam: :meth:`Ledger.apply_block` executes raw transactions as the next block on the
committed head and returns a :class:`BlockOutcome` (the Ethereum block, receipts, one :class:`TxOutcome` per
input, the app hash, validator updates) without writing anything; :meth:`Ledger.commit` persists one outcome
— py-evm's state, header, body, receipts and transaction index, the log index, the validator-set history and
the commit certificates given — in **one** fsynced LevelDB batch, so a crash leaves either the whole block or
none of it. The solo producer (:meth:`Ledger.build_block`) and the ABCI application both go through them.

Every block h >= 1 carries in its header's extra data the commitment to the validator sets that certify it
and block h + 2 (:func:`shancheng.sdk.chainproof.header_commitment`); a change made by block h (Governance's
ValidatorAdded / ValidatorRemoved events) takes effect at h + 2.

Reads (:meth:`block_by_number`, :meth:`call`, :meth:`logs`, ...) use the committed head only; nothing
uncommitted is ever visible, and they may run on other threads while a block is being executed.
"""

from __future__ import annotations

import bisect
import functools
import json
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI, SignedTransactionAPI
from eth.db.atomic import AtomicDB
from eth.db.backends.memory import MemoryDB
from eth.db.batch import BatchDB
from eth.exceptions import BlockNotFound, HeaderNotFound, OutOfGas, Revert, TransactionNotFound
from eth.vm.forks.cancun.transactions import CancunTransactionBuilder
from eth.vm.spoof import SpoofTransaction
from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_typing import Address, BlockNumber, Hash32
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.crypto import keccak
from eth_utils.exceptions import ValidationError

from shancheng.contracts.artifacts import load
from shancheng.contracts.deploy import GOVERNANCE
from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.chainproof.commit import CommitCertificate
from shancheng.sdk.chainproof.validators import Validator, ValidatorSet, ValidatorUpdate, header_commitment
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import InvalidInput, ShanchengError

from .genesis import Genesis, GenesisError
from .storage import LevelDB, StorageError
from .validity import TransactionInvalid, check_transaction
from .vm import chain_class

__all__ = [
    "CODE_BAD_NONCE",
    "CODE_INVALID",
    "CODE_NOT_MEMBER",
    "CODE_NO_ROOM",
    "CODE_OK",
    "CODE_REFUSED",
    "RPC_GAS_CAP",
    "VALIDATOR_CHANGE_DELAY",
    "BlockOutcome",
    "BuiltBlock",
    "CallFailed",
    "ExecutionReverted",
    "Ledger",
    "LedgerConflict",
    "LogRecord",
    "TxOutcome",
    "call_gas",
    "estimate_gas",
    "execute_call",
    "log_matches",
    "log_record",
    "logs_of_block",
    "spoof_transaction",
]

_COMMIT = b"sc:commit:"  # + u64 height -> commit certificate JSON
_UNCERTIFIED = b"sc:uncertified:"  # + u64 height -> b"": a committed block whose certificate is not stored yet
_VSET = b"sc:vset:"  # + u64 first height it certifies -> validator set JSON (changes only; genesis is implied)
_META_GENESIS = b"sc:meta:genesis-hash"
_META_FINGERPRINT = b"sc:meta:genesis-fingerprint"  # the genesis file's fingerprint (the chain identity)
_LOG_ADDRESS = b"sc:log:a:"  # + address(20) + u64 block + u32 log index -> b""
_LOG_TOPIC = b"sc:log:t:"  # + u8 position + topic(32) + u64 block + u32 log index -> b""
_ALLOWED_SELECTOR = function_signature_to_4byte_selector("isAccountAllowed(address)")
_PEER_SELECTOR = function_signature_to_4byte_selector("isPeerAllowed(bytes20)")
_CALL_GAS = 50_000_000
RPC_GAS_CAP = 50_000_000  # geth's default --rpc.gascap: the most gas one eth_call / eth_estimateGas may burn
_TX_GAS = 21_000  # a plain transfer
_CALL_STIPEND = 2_300
_ALLOWED_CACHE = 10_000  # senders remembered; non-members can make up any number of senders
_NOT_MEMBER = "sender is not an account of an active member organisation"
_NO_CERTIFICATES: Mapping[int, CommitCertificate] = {}
#: the validator updates of block h apply from block h + 2 (CometBFT's rule; Governance.VALIDATOR_CHANGE_DELAY)
VALIDATOR_CHANGE_DELAY = 2

logger = logging.getLogger("shancheng.ledger")

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


class LedgerConflict(ShanchengError):
    """A block that does not extend the committed head: executed for another height, or committed after
    another block of its height."""


#: TxOutcome.code values: 0 included; 1 invalid whatever the state (shancheng.chain.validity); 2 the sender is
#: not an account of an active member; 3 not the sender's next nonce; 4 does not fit the block's remaining gas;
#: 5 refused by the EVM before execution (e.g. a value the sender cannot pay)
CODE_OK, CODE_INVALID, CODE_NOT_MEMBER, CODE_BAD_NONCE, CODE_NO_ROOM, CODE_REFUSED = range(6)


@dataclass(frozen=True)
class TxOutcome:
    """What became of one input transaction of :meth:`Ledger.apply_block`."""

    included: bool  # in the Ethereum block (a reverted execution is included, with receipt status 0)
    tx_hash: bytes | None  # the Ethereum hash; None when the bytes are not a valid transaction
    code: int  # CODE_OK when included, else why not (CODE_INVALID ... CODE_REFUSED)
    reason: str  # "" when included, else one line
    gas_used: int  # 0 when not included
    gas_wanted: int  # the transaction's gas limit (0 when invalid)


@dataclass(frozen=True)
class BlockOutcome:
    """One executed block, not yet committed (:meth:`Ledger.commit` persists it)."""

    height: int
    block: BlockAPI  # the Ethereum block; its hash is keccak(RLP(header))
    receipts: tuple[ReceiptAPI, ...]  # of the included transactions, in block order
    results: tuple[TxOutcome, ...]  # one per input transaction, in input order
    validator_updates: tuple[ValidatorUpdate, ...]  # the change of the set from height + 2 on (power 0 removes)
    _overlay: BatchDB = field(repr=False, compare=False, default_factory=lambda: BatchDB(MemoryDB()))
    _after_next: ValidatorSet | None = field(repr=False, compare=False, default=None)  # set(height + 2) if changed

    @property
    def app_hash(self) -> bytes:
        """The state root after the block (CometBFT's app hash); an empty block leaves it unchanged."""
        return bytes(self.block.header.state_root)

    @property
    def included(self) -> tuple[int, ...]:
        """The input positions that are in the Ethereum block."""
        return tuple(i for i, r in enumerate(self.results) if r.included)


@dataclass(frozen=True)
class _Candidate:
    position: int  # in the input
    tx: SignedTransactionAPI
    sender: bytes


def _left_out(tx: SignedTransactionAPI, code: int, reason: str) -> TxOutcome:
    return TxOutcome(False, bytes(tx.hash), code, reason, 0, int(tx.gas))


def _no_room(tx: SignedTransactionAPI, gas_left: int) -> str:
    return f"gas {tx.gas} does not fit the block's remaining gas {gas_left}"


@dataclass(frozen=True)
class _Event:
    topic: int
    types: list[str]


@functools.cache
def _validator_events() -> tuple[_Event, _Event]:
    """Governance's ValidatorAdded and ValidatorRemoved events (topic 0 and data types), from its ABI."""
    found: dict[str, _Event] = {}
    for item in load(GOVERNANCE).abi:
        if item.get("type") == "event" and item.get("name") in ("ValidatorAdded", "ValidatorRemoved"):
            types = [str(i["type"]) for i in item["inputs"]]
            signature = f"{item['name']}({','.join(types)})"
            data_types = [str(i["type"]) for i in item["inputs"] if not i.get("indexed")]
            found[item["name"]] = _Event(int.from_bytes(keccak(signature.encode()), "big"), data_types)
    if set(found) != {"ValidatorAdded", "ValidatorRemoved"}:
        raise ShanchengError("the Governance artifact has no ValidatorAdded/ValidatorRemoved events; run "
                             "'shancheng contracts build'")
    return found["ValidatorAdded"], found["ValidatorRemoved"]


def _sm2_key_bytes(validator: Validator) -> bytes:
    return bytes(validator.sm2_key.to_bytes())[-64:]  # x || y


def _net_updates(before: ValidatorSet, after: ValidatorSet) -> tuple[ValidatorUpdate, ...]:
    """The updates that turn ``before`` into ``after``: new and re-weighted validators in ``after``'s order,
    then removals (power 0) in ``before``'s order; one per validator."""
    old = {_sm2_key_bytes(v): v for v in before.validators}
    new = {_sm2_key_bytes(v): v for v in after.validators}
    out = [ValidatorUpdate(key, bytes(v.consensus_key), int(v.power)) for key, v in new.items()
           if key not in old or old[key].power != v.power]
    out += [ValidatorUpdate(key, bytes(v.consensus_key), 0) for key, v in old.items() if key not in new]
    return tuple(out)


class _Sealer:
    """The extra data of block ``height``: header_commitment(set(height), set(height + 2)), where set(height + 2)
    is set(height + 1) after the block's validator updates (when the ledger follows them)."""

    def __init__(self, ledger: Ledger, height: int) -> None:
        self._ledger = ledger
        self._current = ledger.validator_set(height)
        self._next = ledger.validator_set(height + 1)
        self.updates: tuple[ValidatorUpdate, ...] = ()
        self.after_next: ValidatorSet | None = None

    def seal(self, receipts: Sequence[ReceiptAPI]) -> bytes:
        """The extra data for a block with ``receipts``; sets :attr:`updates` and :attr:`after_next`."""
        after = self._next
        if self._ledger.follow_validator_updates:
            for update in self._ledger._validator_updates(receipts):
                try:
                    after = after.apply([update])
                except ShanchengError as exc:  # Governance checks the same rules; never expected
                    logger.warning("ignored a validator update the set refuses: %s", exc)
        changed = after.hash() != self._next.hash()
        self.updates = _net_updates(self._next, after) if changed else ()
        self.after_next = after if changed else None
        return header_commitment(self._current, after)


class Ledger:
    """The node's chain: py-evm over LevelDB plus commit certificates, validator sets and a log index.

    ``follow_validator_updates=False`` (the solo producer, a one-validator development chain): Governance
    still executes validator votes, but the set that certifies blocks stays the genesis set."""

    def __init__(self, db: LevelDB, genesis: Genesis, *, follow_validator_updates: bool = True) -> None:
        self.db = db
        self.genesis = genesis
        self.follow_validator_updates = follow_validator_updates
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
        self._allowed: dict[bytes, bool] = {}  # Governance view answers (by call data) while its storage
        self._allowed_root: bytes | None = None  # root is this one (see _memoised)
        self._allowed_lock = threading.Lock()  # admission and the block builder ask from two threads
        self._commit_lock = threading.Lock()
        self.genesis_validators = ValidatorSet.from_genesis(GenesisFile.from_json(genesis.to_json()))
        self._history: tuple[tuple[int, ...], tuple[ValidatorSet, ...]] = ((1,), (self.genesis_validators,))
        self._load_validator_history()

    @classmethod
    def open(cls, path: str | Path, genesis: Genesis, *, follow_validator_updates: bool = True) -> Ledger:
        db = LevelDB(path)
        try:
            return cls(db, genesis, follow_validator_updates=follow_validator_updates)
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

    def uncertified_heights(self, limit: int) -> list[int]:
        """The lowest ``limit`` committed heights whose commit certificate is not stored yet, ascending (under
        CometBFT the head's comes with the next block; a height whose next block could not carry it waits for a
        later one)."""
        found: list[int] = []
        if limit <= 0:
            return found
        for key, _ in self.db.iterate(_UNCERTIFIED):
            found.append(struct.unpack(">Q", key[len(_UNCERTIFIED) :])[0])
            if len(found) >= limit:
                break
        return found

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

    def is_peer_allowed(self, node_id: bytes) -> bool:
        """Governance.isPeerAllowed(node_id) at the committed head: whether the CometBFT node id (20 bytes) is on
        the peer allow-list. Memoised while Governance's storage root is the same."""
        if len(node_id) != 20:
            raise InvalidInput("a CometBFT node id is 20 bytes")
        header = self.head
        return self._memoised(self.state_at(header), _PEER_SELECTOR + encode(["bytes20"], [node_id]),
                              lambda data: self._governance_says(self._chain, data,
                                                                 self._chain.create_header_from_parent(header)))

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

    # -- the validator-set history ---------------------------------------------------------------
    def validator_set(self, height: int) -> ValidatorSet:
        """The set that certifies block ``height`` (>= 1). Changes made by block h take effect at h + 2, so
        the answer is known up to head + 2; above that it is the latest known set."""
        if height < 1:
            raise InvalidInput(f"block {height} is not certified by a validator set (heights start at 1)")
        heights, sets = self._history  # one attribute, replaced whole by commit: readers never see half of it
        return sets[bisect.bisect_right(heights, height) - 1]

    def validator_changes(self, up_to: int) -> list[tuple[int, ValidatorSet]]:
        """(h, the set from h + 2 on) for every block h <= ``up_to`` whose validator updates changed the set,
        in ascending order."""
        heights, sets = self._history
        return [(effective - VALIDATOR_CHANGE_DELAY, vset) for effective, vset in zip(heights[1:], sets[1:], strict=True)
                if effective - VALIDATOR_CHANGE_DELAY <= up_to]

    def _load_validator_history(self) -> None:
        history = [(1, self.genesis_validators)]
        for key, raw in self.db.iterate(_VSET):
            try:
                history.append((struct.unpack(">Q", key[len(_VSET):])[0], ValidatorSet.from_json(json.loads(raw))))
            except (ValueError, struct.error) as exc:
                raise StorageError(f"the database at {self.db.path} holds a damaged validator set ({exc})") from exc
        self._history = (tuple(h for h, _ in history), tuple(v for _, v in history))

    # -- the block-execution seam ------------------------------------------------------------------
    def apply_block(self, raw_txs: Sequence[bytes], *, height: int, timestamp: int, proposer: bytes) -> BlockOutcome:
        """Execute ``raw_txs`` as block ``height`` (the head + 1) on the committed head; nothing is written.

        No key and no clock: the result is a function of the committed chain and the arguments. Each input
        gets a :class:`TxOutcome`: invalid bytes (:func:`shancheng.chain.validity.check_transaction`), a sender
        who is not a member (checked against the state *inside* the block: a governance vote earlier in the
        block applies at once), a nonce that is not the sender's next, a gas limit that does not fit the
        block's remaining gas, or a refusal by the EVM (a value the sender cannot pay) leave it out; the
        Ethereum block holds the others, in input order. ``timestamp`` (unix seconds; CometBFT's BFT time)
        becomes max(timestamp, parent timestamp + 1); ``proposer`` (20 bytes) is the coinbase. Outcomes of
        one height are independent; :meth:`commit` persists one of them.
        """
        self._check_height(height)
        gas_limit = self.genesis.gas_limit
        results: list[TxOutcome | None] = [None] * len(raw_txs)
        candidates: list[_Candidate] = []
        for position, raw in enumerate(raw_txs):
            try:
                tx, sender = check_transaction(bytes(raw), chain_id=self.chain_id, block_gas_limit=gas_limit)
            except TransactionInvalid as exc:
                results[position] = TxOutcome(False, None, CODE_INVALID, str(exc), 0, 0)
                continue
            candidates.append(_Candidate(position, tx, sender))
        return self._execute(candidates, results, height=height, timestamp=timestamp, proposer=proposer)

    def commit(self, outcome: BlockOutcome, *, certificates: Mapping[int, CommitCertificate] = _NO_CERTIFICATES) -> None:
        """Persist ``outcome`` (state, block, receipts, transaction and log indexes, head, validator-set history)
        and ``certificates`` (height -> certificate of that block) in **one** fsynced LevelDB batch.

        Refuses an outcome whose parent is no longer the head (another outcome of that height was committed),
        and a certificate for another block than the one at its height."""
        with self._commit_lock:
            head = self.head
            if outcome.block.header.parent_hash != head.hash:
                raise LedgerConflict(
                    f"block {outcome.height} (0x{outcome.block.hash.hex()}) was executed on a parent that is no "
                    f"longer the head (the head is block {head.block_number}, 0x{head.hash.hex()})"
                )
            encoded = {h: self._certificate_record(h, c, outcome) for h, c in certificates.items()}
            heights, sets = self._history
            with self.db.atomic_batch() as batch:
                outcome._overlay.diff().apply_to(batch, apply_deletes=True)
                self._index_logs(batch, outcome.block, outcome.receipts)
                for h, record in encoded.items():
                    batch[_COMMIT + _u64(h)] = record
                    if _UNCERTIFIED + _u64(h) in batch:
                        del batch[_UNCERTIFIED + _u64(h)]
                if outcome.height not in encoded:
                    batch[_UNCERTIFIED + _u64(outcome.height)] = b""
                if outcome._after_next is not None:
                    effective = outcome.height + VALIDATOR_CHANGE_DELAY
                    batch[_VSET + _u64(effective)] = json.dumps(outcome._after_next.to_json()).encode()
                    heights, sets = (*heights, effective), (*sets, outcome._after_next)
            self._chain = self._chain_class(self.db)
            self._history = (heights, sets)

    def store_certificate(self, height: int, certificate: CommitCertificate) -> None:
        """Store the commit certificate of committed block ``height`` (its own fsynced write)."""
        record = self._certificate_record(height, certificate, None)
        with self.db.atomic_batch() as batch:
            batch[_COMMIT + _u64(height)] = record
            if _UNCERTIFIED + _u64(height) in batch:
                del batch[_UNCERTIFIED + _u64(height)]

    def _certificate_record(self, height: int, certificate: CommitCertificate, outcome: BlockOutcome | None) -> bytes:
        if certificate.height != height:
            raise InvalidInput(f"the certificate is for block {certificate.height}, not {height}")
        if outcome is not None and height == outcome.height:
            block_hash = bytes(outcome.block.hash)
        else:
            header = self.header_by_number(height) if 0 <= height <= self.latest_number() else None
            if header is None:
                raise InvalidInput(f"no certificate can be stored for block {height}: it is not committed")
            block_hash = bytes(header.hash)
        if certificate.block_hash != block_hash:
            raise InvalidInput(f"the certificate of block {height} is for block 0x{certificate.block_hash.hex()}, "
                               f"not 0x{block_hash.hex()}")
        if certificate.chain_identity != self.fingerprint or certificate.chain_id != self.chain_id:
            raise InvalidInput(f"the certificate of block {height} is for another chain")
        return json.dumps(certificate.to_json()).encode()

    def _check_height(self, height: int) -> None:
        head = self.latest_number()
        if height != head + 1:
            raise LedgerConflict(f"cannot execute block {height}: the head is block {head}, so the next block is "
                                 f"{head + 1}")

    # -- the solo producer ----------------------------------------------------------------------
    def build_block(
        self,
        transactions: Sequence[SignedTransactionAPI],
        *,
        validator_key: SM2PrivateKey,
        validator_index: int = 0,
        timestamp: int | None = None,
    ) -> BuiltBlock:
        """The solo producer's block: :meth:`apply_block` on ``transactions`` (admitted by the mempool, so
        :func:`shancheng.chain.validity.check_transaction` already passed), the commit certificate signed by
        ``validator_key`` alone, and :meth:`commit` of both at once.

        Refused transactions come back in ``dropped`` with their reason; ones that did not fit the block's
        gas in ``deferred`` (they stay pending).
        """
        height = self.latest_number() + 1
        self._check_height(height)
        candidates = [_Candidate(i, tx, bytes(tx.sender)) for i, tx in enumerate(transactions)]
        results: list[TxOutcome | None] = [None] * len(candidates)
        outcome = self._execute(candidates, results, height=height,
                                timestamp=int(time.time()) if timestamp is None else timestamp,
                                proposer=validator_key.public_key().sm3_address())
        commit = CommitCertificate.sign(
            chain_identity=self.fingerprint,
            chain_id=self.chain_id,
            height=height,
            round_=0,
            block_hash=outcome.block.hash,
            signers=[(validator_index, validator_key)],
            timestamp_ms=int(time.time() * 1000),
        )
        self.commit(outcome, certificates={height: commit})
        dropped = tuple((tx, r.reason) for tx, r in zip(transactions, outcome.results, strict=True)
                        if not r.included and r.code != CODE_NO_ROOM)
        deferred = tuple(tx for tx, r in zip(transactions, outcome.results, strict=True) if r.code == CODE_NO_ROOM)
        return BuiltBlock(outcome.block, outcome.receipts, commit, dropped, deferred)

    # -- execution ----------------------------------------------------------------------------------
    def _execute(self, candidates: list[_Candidate], results: list[TxOutcome | None], *, height: int, timestamp: int,
                 proposer: bytes) -> BlockOutcome:
        """Execute the candidates (checked, decoded transactions) as block ``height`` on a private overlay of
        the committed database: the fast path first (cheap checks, then every transaction in one pass), and
        one transaction at a time when a governance transaction is among them (membership may change inside
        the block) or when the fast path meets something the cheap checks missed."""
        parent = self.head
        if int(parent.block_number) + 1 != height:
            raise LedgerConflict(f"cannot execute block {height}: the head moved to block {parent.block_number}")
        if len(proposer) != 20:
            raise InvalidInput("the proposer (coinbase) must be a 20-byte address")
        ts = max(int(timestamp), int(parent.timestamp) + 1)
        sealer = _Sealer(self, height)
        mined: tuple[BlockAPI, tuple[ReceiptAPI, ...], list[_Candidate]] | None = None
        overlay = BatchDB(self.db)
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
            overlay = BatchDB(self.db)  # the abandoned attempt's writes are dropped with its overlay
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
        return BlockOutcome(height, block, receipts, final, sealer.updates, _overlay=overlay,
                            _after_next=sealer.after_next)

    def _building_chain(self, overlay: BatchDB, parent: BlockHeaderAPI, ts: int, proposer: bytes) -> Any:
        chain = self._chain_class(AtomicDB(overlay))
        chain.header = chain.create_header_from_parent(
            parent, timestamp=ts, coinbase=proposer, gas_limit=self.genesis.gas_limit, extra_data=b""
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
                allowed[sender] = self._allowed_at(chain, state, sender, lambda: chain.header)
                next_nonce[sender] = state.get_nonce(sender)
            if not allowed[sender]:
                results[candidate.position] = _left_out(tx, CODE_NOT_MEMBER, _NOT_MEMBER)
            elif tx.nonce != next_nonce[sender]:
                results[candidate.position] = _left_out(
                    tx, CODE_BAD_NONCE, f"nonce {tx.nonce} is not the sender's next nonce {next_nonce[sender]}")
            elif tx.gas > gas_left:
                results[candidate.position] = _left_out(tx, CODE_NO_ROOM, _no_room(tx, gas_left))
            else:
                plan.append(candidate)
                next_nonce[sender] += 1
                gas_left -= tx.gas
        return plan

    @staticmethod
    def _mine_planned(chain: Any, plan: list[_Candidate], ts: int, proposer: bytes,
                      sealer: _Sealer) -> tuple[BlockAPI, tuple[ReceiptAPI, ...], list[_Candidate]]:
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
                         proposer: bytes, sealer: _Sealer) -> tuple[BlockAPI, tuple[ReceiptAPI, ...], list[_Candidate]]:
        allowed: dict[bytes, bool] = {}
        next_nonce: dict[bytes, int] = {}
        receipts: list[ReceiptAPI] = []
        included: list[_Candidate] = []
        for candidate in candidates:
            tx, sender = candidate.tx, candidate.sender
            if sender not in allowed:
                allowed[sender] = self._allowed_in(chain, sender, chain.header)
            if not allowed[sender]:
                results[candidate.position] = _left_out(tx, CODE_NOT_MEMBER, _NOT_MEMBER)
                continue
            if sender not in next_nonce:  # only the sender's own transactions change its nonce
                next_nonce[sender] = int(chain.get_vm(chain.header).state.get_nonce(sender))
            if tx.nonce != next_nonce[sender]:
                results[candidate.position] = _left_out(
                    tx, CODE_BAD_NONCE, f"nonce {tx.nonce} is not the sender's next nonce {next_nonce[sender]}")
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

    def _validator_updates(self, receipts: Sequence[ReceiptAPI]) -> list[ValidatorUpdate]:
        """Governance's ValidatorAdded / ValidatorRemoved logs in ``receipts``, in log order."""
        added, removed = _validator_events()
        updates: list[ValidatorUpdate] = []
        for receipt in receipts:
            for log in receipt.logs:
                if bytes(log.address) != self._governance or not log.topics:
                    continue
                topic = int(log.topics[0])
                try:
                    if topic == added.topic:
                        key, consensus_key, power, _ = decode(added.types, bytes(log.data))
                        updates.append(ValidatorUpdate(bytes(key), bytes(consensus_key), int(power)))
                    elif topic == removed.topic:
                        key, consensus_key, _ = decode(removed.types, bytes(log.data))
                        updates.append(ValidatorUpdate(bytes(key), bytes(consensus_key), 0))
                except (DecodingError, ValueError, ShanchengError) as exc:
                    logger.warning("ignored a malformed validator event of Governance: %s", exc)
        return updates

    def _allowed_at(self, chain: Any, state: Any, sender: bytes, at_header: Callable[[], BlockHeaderAPI]) -> bool:
        """:meth:`_allowed_in` for a committed ``state``, memoised (:meth:`_memoised`)."""
        return self._memoised(state, _ALLOWED_SELECTOR + encode(["address"], [sender]),
                              lambda data: self._governance_says(chain, data, at_header()))

    def _memoised(self, state: Any, data: bytes, ask: Callable[[bytes], bool]) -> bool:
        """The answer of a Governance view for call ``data`` on a committed ``state``, remembered while
        Governance's storage root is the same: the answer is a function of that storage alone, and asking is an
        EVM call (admission and the peer filter ask for every transaction and every connection)."""
        root = state.storage_root(self._governance)
        with self._allowed_lock:
            if root != self._allowed_root or len(self._allowed) >= _ALLOWED_CACHE:
                self._allowed.clear()
                self._allowed_root = root
            if data not in self._allowed:
                self._allowed[data] = ask(data)
            return self._allowed[data]

    def _allowed_in(self, chain: Any, sender: bytes, at_header: BlockHeaderAPI) -> bool:
        """Governance.isAccountAllowed(sender), executed on ``chain`` as of ``at_header``."""
        return self._governance_says(chain, _ALLOWED_SELECTOR + encode(["address"], [sender]), at_header)

    def _governance_says(self, chain: Any, data: bytes, at_header: BlockHeaderAPI) -> bool:
        """The bool a Governance view returns for the call ``data``, executed on ``chain`` as of ``at_header``
        (False when it reverts)."""
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
