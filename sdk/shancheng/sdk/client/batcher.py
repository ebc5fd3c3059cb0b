"""The durable evidence batcher: records from many threads (or asyncio tasks) become leaves of the organisation's
RFC 9162 log; a checkpoint is sealed at ``max_records`` records or ``max_age`` seconds, signed with the
organisation's SM2 key and anchored with ``EvidenceRegistry.anchorBatch``.

>>> with client.batcher(store="sqlite:///evidence.db", origin="district.example/log/rx") as batcher:  # doctest: +SKIP
...     rid = batcher.add({"hosp_rxno": "RX0001"}, kind="prescription")           # durable when it returns
...     staff = batcher.add({"hosp_rxno": "RX0002"}, kind="prescription", author=doctor_key)
...     batcher.flush()                                                            # sealed, anchored, final
...     package = batcher.evidence_package(rid)                                    # verify_package(..., genesis=)

Durability: :meth:`Batcher.add` returns once the record is committed to the store (SQLite WAL with
``synchronous=FULL``; concurrent adds share one commit). After a crash, a new batcher on the same store seals the
records that were not sealed yet and anchors every sealed checkpoint exactly once: before sending, it looks the
``(source, sequence)`` up on chain, and the registry refuses a sequence twice.

Nothing is final until it is proven: on Shancheng a checkpoint is stored as anchored only once the transaction the
batcher signed and its receipt, with the ``BatchAnchored`` log, are proven under a block whose commit certificate
verifies against the genesis file (:mod:`~shancheng.sdk.client.proofs`); a node whose answers fail is dropped and
the transaction re-sent to the others. One batcher per log: a second one is refused (:class:`LogLocked`); after an
:class:`AnchorConflict` (another writer anchored this log's sequence) :meth:`Batcher.add` fails at once.

Two kinds of record:

- **org-attested** (no ``author``): the leaf names the organisation's key as the author; the checkpoint signature
  covers it. The statement signature a package carries is made with the organisation's key when the package is
  cut (the leaf does not include the signature, so any valid one fits).
- **author-signed** (``author=`` an SM2 key, or any object with ``public_key()`` and ``sign(data, *, uid)``): the
  author signs the statement in :meth:`Batcher.add`, which verifies the signature and checks once per key that it
  is the organisation's key or an active staff key of the organisation in Governance.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self

from ..crypto import DEFAULT_UID, SM2PrivateKey, SM2PublicKey
from ..errors import InvalidInput, InvalidSignature, ShanchengError
from ..evidence import EvidencePackage, InclusionProof
from ..evidence.package import LEAF_PREFIX
from ..merkle import Checkpoint, MerkleTree, leaf_hash
from ..records import STATEMENT_PREFIX, Commitment, RecordStatement, SignedRecord, commit_salted
from .anchors import Anchor, AnchorConflict
from .chain_client import ChainClient
from .loglock import LogLocked
from .proofs import poll_proven
from .store import ANCHORED, SEALED, SENT, BatchRow, RecordRow, Store
from .stores import open_store
from .transactions import PendingTransaction

__all__ = ["Batcher", "BatcherClosed", "LogLocked", "NotAnchoredYet", "StatementSigner"]

_log = logging.getLogger("shancheng.sdk.batcher")
ZERO_ROOT = b"\0" * 32
MAX_IN_FLIGHT = 16
MAX_RECORDS_LIMIT = 1 << 20


class BatcherClosed(ShanchengError):
    """The batcher was closed, or its store failed: it accepts no more records."""


class NotAnchoredYet(ShanchengError):
    """The record is durable but its checkpoint is not anchored and final yet (call flush() or wait)."""


#: threads that sign one large author-signed batch (SM2 signing releases the GIL); each takes at least this many
_SIGNING_THREADS = max(1, min(8, os.cpu_count() or 1))
_MIN_PER_SIGNING_THREAD = 16


class StatementSigner(Protocol):
    """An author: an :class:`~shancheng.sdk.crypto.SM2PrivateKey`, or a signer (HSM, remote) of the same shape."""

    def public_key(self) -> SM2PublicKey: ...
    def sign(self, data: bytes, *, uid: bytes = ...) -> bytes: ...


@dataclass
class _Batch:
    row: BatchRow
    pending: PendingTransaction | None = None
    checked_chain: bool = False  # the chain was searched for this (source, sequence) since this process began
    failures: int = 0


class Batcher:
    """See the module docstring. Made by :meth:`shancheng.sdk.Client.batcher`."""

    def __init__(self, client: ChainClient, *, store: str | Store, origin: str, max_records: int = 4096,
                 max_age: float = 1.0, start: bool = True) -> None:
        if isinstance(max_records, bool) or not isinstance(max_records, int) or not 1 <= max_records <= MAX_RECORDS_LIMIT:
            raise InvalidInput(f"max_records must be an integer from 1 to {MAX_RECORDS_LIMIT}")
        if not 0 < max_age <= 86400:
            raise InvalidInput("max_age must be between 0 and 86400 seconds")
        Checkpoint(origin=origin, size=0, root=ZERO_ROOT)  # a valid origin line
        RecordStatement("x", origin, 0, Commitment("sm3-salted/v1", ZERO_ROOT))  # a valid statement source
        self.client = client
        self.origin = origin
        self.max_records = max_records
        self.max_age = float(max_age)
        self._org_key = client.identity.sm2_public_key
        self._org_key_bytes = self._org_key.to_bytes()
        self._signer = client.identity.note_signer
        self._source_json = json.dumps(origin, ensure_ascii=False)
        self._kinds: set[str] = set()
        self._authors: set[bytes] = {self._org_key_bytes}
        self.store: Store = open_store(store) if isinstance(store, str) else store
        try:
            self.store.lock_log(origin)  # one batcher per log: the second is refused here
        except BaseException:
            if isinstance(store, str):
                self.store.close()
            raise
        self._conflict: AnchorConflict | None = None  # another writer anchored this log: no more records
        self.store.open_log(origin, self._org_key_bytes)

        # recovery: the durable log, its sealed checkpoints and their anchoring
        count = self.store.record_count(origin)
        self._tree = MerkleTree.from_leaf_hashes(self.store.leaf_hashes(origin, 0, count))
        rows = self.store.batches(origin)
        self._batches: list[_Batch] = [_Batch(r) for r in rows if r.state != ANCHORED]
        self._last_sequence = rows[-1].sequence if rows else 0
        self._last_root = rows[-1].root if rows else ZERO_ROOT
        self._sealed_size = rows[-1].tree_size if rows else 0
        # anchored_size covers the longest run of anchored checkpoints from sequence 1 (one may become final before
        # an earlier one is seen final; the registry anchors them in order, but this process learns of them in any)
        self._done: dict[int, int] = {r.sequence: r.tree_size for r in rows if r.state == ANCHORED}
        self._anchored_seq = 0
        self._anchored_size = 0
        self._advance_anchored_prefix()
        self._next_seq = count
        self._durable = count
        self._oldest_unsealed = self.store.added_time(origin, self._sealed_size) if count > self._sealed_size else None

        self._seq_lock = threading.Lock()  # record ids, handed out in order
        self._pool_lock = threading.Lock()
        self._sign_pool: ThreadPoolExecutor | None = None  # made on the first large author-signed batch
        self._cv = threading.Condition()  # the write queue and durable progress
        self._queue: list[RecordRow] = []
        self._tree_lock = threading.Lock()
        self._state = threading.Condition()  # durable / sealed / anchored progress
        self._closed = False
        self._failure: BaseException | None = None
        self._flush_requested = False
        self.last_error: str | None = None
        self._threads: list[threading.Thread] = []
        if start:
            self.start()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._threads:
            return
        for target, name in ((self._write_loop, "writer"), (self._anchor_loop, "anchorer")):
            t = threading.Thread(target=target, name=f"shancheng-batcher-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def close(self, *, flush: bool = False, timeout: float = 120.0) -> None:
        """Stop accepting records; with ``flush`` first seal and anchor everything accepted."""
        if flush and not self._closed:
            self.flush(timeout=timeout)
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        with self._state:
            self._state.notify_all()
        for t in self._threads:
            t.join(timeout=timeout)
        self._threads = []
        with self._seq_lock, self._pool_lock:  # an add signing now (it holds the sequence lock) finishes first
            if self._sign_pool is not None:
                self._sign_pool.shutdown(wait=True)
                self._sign_pool = None
        self.store.unlock_log(self.origin)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- adding ----------------------------------------------------------------------------------
    def _statement_bytes(self, kind: str, seq: int, commitment: Commitment) -> bytes:
        # RFC 8785 of {"commitment": {"scheme", "value"}, "kind", "sequence", "source"}: keys are in order, the
        # kind and scheme are plain ASCII; the source's serialisation was checked against rfc8785 once (start-up)
        return STATEMENT_PREFIX + (
            f'{{"commitment":{{"scheme":"{commitment.scheme}","value":"{commitment.value.hex()}"}},'
            f'"kind":"{kind}","sequence":{seq},"source":{self._source_json}}}'
        ).encode()

    def _check_kind(self, kind: str, commitment: Commitment) -> None:
        if kind not in self._kinds:
            statement = RecordStatement(kind, self.origin, 0, commitment)  # validates the kind
            if statement.to_bytes() != self._statement_bytes(kind, 0, commitment):
                raise InvalidInput(f"the statement of log {self.origin!r} does not canonicalise as expected")
            self._kinds.add(kind)

    def _check_author(self, author: StatementSigner) -> tuple[SM2PublicKey, bytes]:
        public = author.public_key()
        key = public.to_bytes()
        if key not in self._authors:
            gov = self.client.governance
            org_id, _roles, active, registered = self.client.view(gov, "staffInfo", public.sm3_address())
            if int(org_id) != self.client.org_id or not active or bytes(registered) != key[1:]:
                raise InvalidInput(
                    f"the author key (address 0x{public.sm3_address().hex()}) is neither the organisation's key nor "
                    "an active staff key of the organisation: its packages would not verify"
                )
            self._authors.add(key)
        return public, key

    def _prepare(self, record: Any, kind: str, salt: bytes | None) -> tuple[Commitment, bytes | None]:
        if isinstance(record, Commitment):
            if salt is not None:
                raise InvalidInput("a precomputed commitment takes no salt")
            return record, None
        commitment, used = commit_salted(record, salt=salt)
        return commitment, used

    def add(self, record: Any, *, kind: str, salt: bytes | None = None, author: StatementSigner | None = None,
            uid: bytes = DEFAULT_UID) -> int:
        """Accept ``record`` (any JSON value, committed with a fresh salt; or a :class:`Commitment`) and return its
        record id (its leaf index in the log) once it is durable. ``author`` makes it author-signed."""
        return self.add_many([record], kind=kind, salts=None if salt is None else [salt], author=author, uid=uid)[0]

    def add_many(self, records: Iterable[Any], *, kind: str, salts: Sequence[bytes] | None = None,
                 author: StatementSigner | None = None, uid: bytes = DEFAULT_UID) -> list[int]:
        """Accept several records of one kind in one durable commit; returns their ids in order."""
        items = list(records)
        if salts is not None and len(salts) != len(items):
            raise InvalidInput("give one salt per record")
        prepared = [self._prepare(r, kind, None if salts is None else salts[i]) for i, r in enumerate(items)]
        if not prepared:
            return []
        self._check_kind(kind, prepared[0][0])
        if author is not None:
            public, author_key = self._check_author(author)
        else:
            public, author_key = self._org_key, self._org_key_bytes
        uid = bytes(uid)
        head = LEAF_PREFIX + author_key + struct.pack(">H", len(uid)) + uid
        now = time.time()
        # the sequence lock hands out record ids in order and is held while the statements (which name their ids)
        # are made and signed, so a failing signature leaves no gap; the write queue has its own lock, so the
        # group commit of earlier records goes on meanwhile
        with self._seq_lock:
            self._check_open()
            first = self._next_seq
            rows = []
            statements = [self._statement_bytes(kind, first + i, c) for i, (c, _) in enumerate(prepared)]
            signatures: list[bytes | None] = ([None] * len(statements) if author is None
                                              else self._sign_all(author, public, statements, uid))
            for i, ((commitment, salt), statement) in enumerate(zip(prepared, statements, strict=True)):
                rows.append(RecordRow(first + i, kind, commitment.scheme, commitment.value, salt, author_key, uid,
                                      signatures[i], leaf_hash(head + statement), now))
            last = first + len(rows)
            with self._cv:
                self._check_open()
                self._next_seq = last
                self._queue.extend(rows)
                self._cv.notify_all()
        with self._cv:
            while self._durable < last and self._failure is None:
                self._cv.wait()
            if self._durable < last:
                raise BatcherClosed(f"the store failed; records from {first} are not durable: {self._failure}")
        return list(range(first, last))

    def _sign_all(self, author: StatementSigner, public: SM2PublicKey, statements: list[bytes],
                  uid: bytes) -> list[bytes | None]:
        """The author's signatures over ``statements``, each verified (all or an error). An SM2 key signs and
        verifies without holding the GIL, so a large batch is split across the cores; another signer (an HSM
        session, a remote service) is called from this thread only."""
        def sign(part: list[bytes]) -> list[bytes | None]:
            out: list[bytes | None] = []
            for statement in part:
                signature = author.sign(statement, uid=uid)
                try:
                    public.verify(signature, statement, uid=uid)
                except InvalidSignature:
                    raise InvalidSignature("the author's signature over the record statement does not verify"
                                           ) from None
                out.append(signature)
            return out

        workers = min(_SIGNING_THREADS, len(statements) // _MIN_PER_SIGNING_THREAD)
        if workers < 2 or not isinstance(author, SM2PrivateKey):
            return sign(statements)
        with self._pool_lock:
            if self._sign_pool is None:
                self._sign_pool = ThreadPoolExecutor(max_workers=_SIGNING_THREADS,
                                                     thread_name_prefix="shancheng-batcher-sign")
            pool = self._sign_pool
        step = -(-len(statements) // workers)
        parts = [statements[i:i + step] for i in range(0, len(statements), step)]
        return [signature for done in pool.map(sign, parts) for signature in done]

    async def add_async(self, record: Any, *, kind: str, salt: bytes | None = None,
                        author: StatementSigner | None = None, uid: bytes = DEFAULT_UID) -> int:
        """:meth:`add` for asyncio: the durable commit is awaited in a worker thread."""
        return await asyncio.to_thread(self.add, record, kind=kind, salt=salt, author=author, uid=uid)

    def _check_open(self) -> None:
        if self._conflict is not None:
            raise AnchorConflict(f"{self._conflict} (no more records are accepted)")
        if self._closed:
            raise BatcherClosed("the batcher is closed")
        if self._failure is not None:
            raise BatcherClosed(f"the batcher's store failed: {self._failure}")

    def _write_loop(self) -> None:
        """Group commit: every record queued meanwhile goes into the next transaction."""
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if not self._queue:
                    return
                rows, self._queue = self._queue, []
            try:
                self.store.append_records(self.origin, rows)
            except BaseException as exc:  # noqa: BLE001 - reported to every waiting add()
                with self._cv:
                    self._failure = exc
                    self._cv.notify_all()
                return
            with self._tree_lock:
                self._tree._add_leaf_hashes([r.leaf_hash for r in rows])
            with self._cv:
                self._durable = rows[-1].seq + 1
                self._cv.notify_all()
            with self._state:
                if self._oldest_unsealed is None:
                    self._oldest_unsealed = rows[0].added
                self._state.notify_all()

    # -- sealing and anchoring ----------------------------------------------------------------------
    def _seal(self, size: int) -> None:
        with self._tree_lock:
            root = self._tree.root(size)
        note = Checkpoint(origin=self.origin, size=size, root=root).sign(self._signer)
        row = BatchRow(self._last_sequence + 1, size, root, self._last_root, note, SEALED, time.time())
        self.store.add_batch(self.origin, row)
        with self._state:
            self._batches.append(_Batch(row, checked_chain=True))
            self._last_sequence, self._last_root, self._sealed_size = row.sequence, root, size
            self._oldest_unsealed = self.store.added_time(self.origin, size) if self._durable > size else None
            self._state.notify_all()

    def _seal_due(self) -> int:
        """The tree size to seal now, or 0."""
        durable = self._durable
        unsealed = durable - self._sealed_size
        if unsealed <= 0:
            return 0
        if unsealed >= self.max_records or self._flush_requested:
            return self._sealed_size + min(unsealed, self.max_records)
        oldest = self._oldest_unsealed
        if oldest is not None and time.time() - oldest >= self.max_age:
            return self._sealed_size + min(unsealed, self.max_records)
        return 0

    def _anchor_loop(self) -> None:
        backoff = 0.0
        while not self._closed:
            try:
                size = self._seal_due()
                while size:
                    self._seal(size)
                    size = self._seal_due()
                self._advance_anchors()
                backoff = 0.0
                self.last_error = None
            except AnchorConflict as exc:
                self._conflict = exc
                self.last_error = str(exc)
                _log.error("anchoring %s stopped: %s", self.origin, exc)
                with self._state:
                    self._state.notify_all()
                return
            except ShanchengError as exc:
                self.last_error = str(exc)
                _log.warning("anchoring %s: %s (retrying)", self.origin, exc)
                backoff = min(max(backoff * 2, 0.2), 5.0)
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any single failure
                self.last_error = f"{type(exc).__name__}: {exc}"
                _log.exception("anchoring %s failed unexpectedly (retrying)", self.origin)
                backoff = min(max(backoff * 2, 0.2), 5.0)
            with self._state:
                if not self._closed:
                    self._state.wait(timeout=max(backoff, self.client.poll_interval))

    def _mark_anchored(self, batch: _Batch, anchor: Anchor) -> None:
        self.client.check_anchor(anchor, tree_size=batch.row.tree_size, root=batch.row.root)
        now = time.time()
        self.store.set_batch_state(self.origin, batch.row.sequence, ANCHORED, tx_hash=anchor.transaction_hash,
                                   block_number=anchor.block_number, anchored=now)
        with self._state:
            batch.row = BatchRow(batch.row.sequence, batch.row.tree_size, batch.row.root, batch.row.prev_root,
                                 batch.row.note, ANCHORED, batch.row.sealed, anchor.transaction_hash,
                                 anchor.block_number, now)
            self._batches.remove(batch)
            self._done[batch.row.sequence] = batch.row.tree_size
            self._advance_anchored_prefix()
            self._state.notify_all()

    def _advance_anchored_prefix(self) -> None:
        while self._anchored_seq + 1 in self._done:
            self._anchored_seq += 1
            self._anchored_size = self._done.pop(self._anchored_seq)

    def _advance_anchors(self) -> None:
        client = self.client
        with self._state:
            batches = list(self._batches)
        blocked = False
        for batch in batches[:MAX_IN_FLIGHT]:
            if batch.pending is None and not blocked:
                if not batch.checked_chain:  # recovered from the store: it may be on chain already
                    existing = client.find_anchor(self.origin, batch.row.sequence)
                    if existing is not None:
                        client.wait_final_block(existing.block_number)
                        self._mark_anchored(batch, existing)
                        continue
                    batch.checked_chain = True
                call = client.anchor_call(self.origin, sequence=batch.row.sequence, tree_size=batch.row.tree_size,
                                          root=batch.row.root, prev_root=batch.row.prev_root)
                try:
                    batch.pending = client.submit(call)
                except ShanchengError:
                    blocked = True  # later batches would fail behind this one: try again next round
                    raise
                self.store.set_batch_state(self.origin, batch.row.sequence, SENT, tx_hash=batch.pending.transaction_hash)
            if batch.pending is None:
                continue
            done = self._final(batch.pending, batch.row.sequence)
            if isinstance(done, Anchor):
                self._mark_anchored(batch, done)
            if done is not False:
                continue
            # reverted: anchored meanwhile by an earlier send (recovery), or behind a failed predecessor
            batch.pending = None
            existing = client.find_anchor(self.origin, batch.row.sequence)
            if existing is not None:
                self._mark_anchored(batch, existing)
                continue
            batch.failures += 1
            if batch.failures >= 5:
                raise AnchorConflict(f"anchorBatch of {self.origin!r} sequence {batch.row.sequence} reverted "
                                     f"{batch.failures} times; the registry's head is {client.source_head(self.origin)}")

    def _final(self, pending: PendingTransaction, sequence: int) -> Anchor | Literal[False] | None:
        """The anchor of ``pending`` once final (proven on Shancheng), False if it reverted, None while not final."""
        client = self.client
        if client.capabilities.chain_proofs:
            proven = poll_proven(client, pending)
            if proven is None or proven.status != 1:
                return None if proven is None else False
            return client.proven_anchor(self.origin, sequence, proven, url=client.rpc.current_url)
        receipt = client.poll(pending)
        if receipt is None or receipt.status != 1:
            return None if receipt is None else False
        return client.anchor_from_receipt(self.origin, receipt, sequence)

    def flush(self, *, timeout: float = 120.0) -> None:
        """Seal every durable record now and return once every sealed checkpoint is anchored and final."""
        deadline = time.monotonic() + timeout
        with self._cv:
            target = self._next_seq
            while self._durable < target and self._failure is None:
                self._cv.wait(timeout=max(0.0, deadline - time.monotonic()))
                if time.monotonic() >= deadline:
                    break
        with self._state:
            self._flush_requested = True
            self._state.notify_all()
            try:
                while self._anchored_size < target:
                    if self._failure is not None:
                        raise BatcherClosed(f"the batcher's store failed: {self._failure}")
                    if self._conflict is not None:
                        raise self._conflict
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise NotAnchoredYet(
                            f"records up to {target} were not anchored within {timeout:.0f} s"
                            + (f" (last error: {self.last_error})" if self.last_error else "")
                        )
                    self._state.wait(timeout=min(left, 0.5))
            finally:
                self._flush_requested = False

    # -- reading ---------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Records durable in the log."""
        return self._durable

    @property
    def anchored_size(self) -> int:
        """Records whose checkpoint is anchored and final."""
        return self._anchored_size

    def salt(self, record_id: int) -> bytes | None:
        """The salt of a salted commitment made by :meth:`add` (None for a precomputed commitment)."""
        row = self._row(record_id)
        return row.salt

    def _row(self, record_id: int) -> RecordRow:
        if isinstance(record_id, bool) or not isinstance(record_id, int) or record_id < 0:
            raise InvalidInput("a record id is a non-negative integer")
        row = self.store.record(self.origin, record_id)
        if row is None:
            raise InvalidInput(f"log {self.origin!r} has no record {record_id}")
        return row

    def anchor_of(self, record_id: int) -> Anchor:
        """The anchor of the checkpoint that first includes ``record_id``."""
        batch = self.store.batch_of(self.origin, record_id)
        if batch is None or batch.state != ANCHORED or batch.tx_hash is None or batch.block_number is None:
            raise NotAnchoredYet(f"record {record_id} of {self.origin!r} is not anchored yet")
        return Anchor(self.origin, self.client.source_id(self.origin), batch.sequence, batch.root, batch.tree_size,
                      batch.prev_root, self.client.org_id, batch.block_number, batch.tx_hash)

    def evidence_package(self, record_id: int) -> EvidencePackage:
        """The v2 evidence package of ``record_id``: the signed statement, its inclusion proof under the checkpoint
        that first includes it, and (on Shancheng) the chain part with proofs of the anchor and its finality."""
        row = self._row(record_id)
        anchor = self.anchor_of(record_id)
        batch = self.store.batch_of(self.origin, record_id)
        assert batch is not None
        statement = RecordStatement(row.kind, self.origin, row.seq, Commitment(row.scheme, row.commitment))
        author = SM2PublicKey.from_bytes(row.author)
        signature = row.signature
        if signature is None:  # org-attested: the leaf names the organisation's key; sign the statement with it
            if row.author != self._org_key_bytes:
                raise InvalidInput(f"record {record_id} was attested by another organisation key")
            signature = self.client.identity.sm2_key.sign(statement.to_bytes(), uid=row.uid)
        with self._tree_lock:
            if self._tree.size < batch.tree_size:
                raise NotAnchoredYet(f"record {record_id}'s checkpoint is not in this batcher's tree")
            hashes = self._tree.inclusion_proof(row.seq, batch.tree_size)
        package = EvidencePackage(
            record=SignedRecord(statement, author, signature, row.uid),
            inclusion=InclusionProof(leaf_index=row.seq, tree_size=batch.tree_size, hashes=tuple(hashes)),
            checkpoint_note=batch.note,
            checkpoint_signer=self._signer.verifier.to_vkey(),
        )
        return self.client.attach_chain_proof(package, anchor)
