"""The committed chain: reads of the committed head, commit certificates, and the one atomic commit.

:meth:`CommittedChain.commit` persists one executed block (:class:`shancheng.chain.execution.BlockOutcome`) —
py-evm's state, header, body, receipts and transaction index, the log index, the validator-set history and the
commit certificates given — in **one** fsynced LevelDB batch, so a crash leaves either the whole block or none
of it. Reads use the committed head only; nothing uncommitted is ever visible, and they may run on other
threads while a block is being executed. Opening pins the database to its genesis (hash and the genesis file's
fingerprint, the chain identity).

>>> store = CommittedChain(LevelDB(path), genesis)        # doctest: +SKIP
>>> store.latest_number()                                 # doctest: +SKIP
0
"""

from __future__ import annotations

import json
import struct
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI
from eth.db.atomic import AtomicDB
from eth.db.backends.memory import MemoryDB
from eth.exceptions import BlockNotFound, HeaderNotFound, TransactionNotFound
from eth_typing import BlockNumber, Hash32

from shancheng.sdk.chainproof.commit import CommitCertificate
from shancheng.sdk.errors import InvalidInput

from .execution import BlockOutcome, LedgerConflict
from .genesis import Genesis, GenesisError
from .log_index import LogIndex
from .storage import LevelDB
from .validator_history import ValidatorHistory
from .vm import chain_class

__all__ = ["CommittedChain"]

_COMMIT = b"sc:commit:"  # + u64 height -> commit certificate JSON
_UNCERTIFIED = b"sc:uncertified:"  # + u64 height -> b"": a committed block whose certificate is not stored yet
_META_GENESIS = b"sc:meta:genesis-hash"
_META_FINGERPRINT = b"sc:meta:genesis-fingerprint"  # the genesis file's fingerprint (the chain identity)
#: committed blocks (with their receipts) kept decoded for reads, the latest first
RECENT_BLOCKS = 8
_NO_CERTIFICATES: Mapping[int, CommitCertificate] = {}


def _u64(n: int) -> bytes:
    return struct.pack(">Q", n)


def _pin_genesis(db: LevelDB, genesis: Genesis) -> None:
    """Initialise a fresh ``db`` from ``genesis``, or refuse a database that belongs to another genesis."""
    stored = db.get(_META_GENESIS)
    if stored is None:  # a fresh database: initialize() refuses a file whose contents imply another state
        with db.block_transaction() as atomic:
            genesis.initialize(atomic)
            atomic[_META_GENESIS] = genesis.genesis_hash
            atomic[_META_FINGERPRINT] = genesis.fingerprint
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
            db[_META_FINGERPRINT] = genesis.fingerprint
        elif stored_fingerprint != genesis.fingerprint:
            raise GenesisError(
                "this node's database was initialised from another genesis file "
                f"(fingerprint 0x{stored_fingerprint.hex()} ≠ 0x{genesis.fingerprint.hex()})"
            )


class CommittedChain:
    """py-evm over LevelDB as committed, plus the commit certificates; :attr:`chain` is py-evm's chain object
    of the committed head (replaced whole by each commit)."""

    def __init__(self, db: LevelDB, genesis: Genesis) -> None:
        _pin_genesis(db, genesis)
        self.db = db
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.fingerprint = genesis.fingerprint  # the chain identity commit certificates sign
        self.chain_class = chain_class(genesis.chain_id)
        self.chain: Any = self.chain_class(db)
        self._commit_lock = threading.Lock()
        # the latest committed blocks and their receipts by block hash (immutable once committed), as the commit
        # had them: a client polling for a receipt otherwise has the whole block's transactions and receipts
        # decoded from the database for each poll
        self._recent = _Recent(RECENT_BLOCKS)

    # -- reads ---------------------------------------------------------------------------
    @property
    def head(self) -> BlockHeaderAPI:
        head: BlockHeaderAPI = self.chain.get_canonical_head()
        return head

    def latest_number(self) -> int:
        return int(self.head.block_number)

    def header_by_number(self, number: int) -> BlockHeaderAPI | None:
        try:
            header: BlockHeaderAPI = self.chain.get_canonical_block_header_by_number(BlockNumber(number))
        except HeaderNotFound:
            return None
        return header

    def block_by_number(self, number: int) -> BlockAPI | None:
        header = self.header_by_number(number) if 0 <= number <= self.latest_number() else None
        return None if header is None else self._block(header.hash)

    def _block(self, block_hash: bytes) -> BlockAPI | None:
        recent = self._recent.get(bytes(block_hash))
        if recent is not None:
            return recent[0]
        try:
            block: BlockAPI = self.chain.get_block_by_hash(Hash32(block_hash))
        except (BlockNotFound, HeaderNotFound):
            return None
        return block

    def block_by_hash(self, block_hash: bytes) -> BlockAPI | None:
        block = self._block(block_hash)
        if block is None:
            return None
        canonical = self.header_by_number(block.number)
        return block if canonical is not None and canonical.hash == block.hash else None

    def transaction_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        try:
            number, index = self.chain.chaindb.get_transaction_index(Hash32(tx_hash))
        except TransactionNotFound:
            return None
        return int(number), int(index)

    def receipts(self, block_number: int) -> tuple[ReceiptAPI, ...]:
        """The receipts of a committed block, read through its header alone (not its transactions)."""
        header = self.header_by_number(block_number) if 0 <= block_number <= self.latest_number() else None
        if header is None:
            return ()
        recent = self._recent.get(bytes(header.hash))
        if recent is not None:
            return recent[1]
        builder = self.chain.get_vm_class(header).get_block_class().get_receipt_builder()
        return tuple(self.chain.chaindb.get_receipts(header, builder))

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
        return self.chain.get_vm(header or self.head).state

    # -- the atomic commit ------------------------------------------------------------------
    def commit(self, outcome: BlockOutcome, *, log_index: LogIndex, validators: ValidatorHistory,
               certificates: Mapping[int, CommitCertificate] = _NO_CERTIFICATES) -> None:
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
            with self.db.atomic_batch() as batch:
                outcome._overlay.diff().apply_to(batch, apply_deletes=True)
                log_index.write(batch, outcome.block, outcome.receipts)
                for h, record in encoded.items():
                    batch[_COMMIT + _u64(h)] = record
                    if _UNCERTIFIED + _u64(h) in batch:
                        del batch[_UNCERTIFIED + _u64(h)]
                if outcome.height not in encoded:
                    batch[_UNCERTIFIED + _u64(outcome.height)] = b""
                history = validators.stage(batch, outcome.height, outcome._after_next)
            self.chain = self.chain_class(self.db)
            validators.adopt(history)
            self._recent.put(bytes(outcome.block.hash), (outcome.block, tuple(outcome.receipts)))

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


class _Recent:
    """The last ``size`` committed blocks with their receipts, by block hash; shared by the reading threads."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[bytes, tuple[BlockAPI, tuple[ReceiptAPI, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, block_hash: bytes) -> tuple[BlockAPI, tuple[ReceiptAPI, ...]] | None:
        with self._lock:
            found = self._items.get(block_hash)
            if found is not None:
                self._items.move_to_end(block_hash)
            return found

    def put(self, block_hash: bytes, value: tuple[BlockAPI, tuple[ReceiptAPI, ...]]) -> None:
        with self._lock:
            self._items[block_hash] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
