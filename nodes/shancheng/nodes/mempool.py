"""The mempool: admission of raw transactions and selection of the next block's transactions.

The node owns the chain state and calls the pool from one thread (or one asyncio task); the pool is not
locked. It reads the head state through :class:`StateView` and never executes transactions.

>>> pool = Mempool(chain_id=20251124, state=head_state)          # doctest: +SKIP
>>> tx_hash = pool.add(raw)                                      # doctest: +SKIP
>>> block_txs = pool.select(gas_limit=30_000_000)                 # doctest: +SKIP
>>> pool.remove_included(block_txs); pool.on_new_head()          # doctest: +SKIP

Admission (:meth:`Mempool.add`) checks, in this order, each with its own message and JSON-RPC code
(messages start like go-ethereum's so Ethereum tools recognise them). The checks that need no state (size
to gas limit, and the signature) are :func:`shancheng.chain.validity.check_transaction`'s, the rules every
block producer and validator applies too:

====================================================== ========== ==========================
check                                                  code       reason
====================================================== ========== ==========================
raw size <= ``max_tx_bytes``                           -32000     ``oversized``
type: legacy, EIP-2930 or EIP-1559 (not 3, 4, other)   -32000     ``unsupported_type``
RLP decoding, canonical encoding                       -32000     ``malformed``
already in the pool (same hash)                        -32000     ``already_known``
chain id; legacy must be EIP-155 protected             -32000     ``wrong_chain`` / ``unprotected``
nonce < 2^64 - 1 (EIP-2681)                            -32000     ``nonce_max``
field ranges, signature, sender recovery               -32000     ``invalid_sender``
init code size (EIP-3860) for contract creation        -32000     ``initcode_too_large``
gas >= intrinsic gas (incl. EIP-3860 init code words)  -32000     ``intrinsic_gas``
gas <= block gas limit                                 -32000     ``gas_limit``
nonce >= state nonce                                   -32000     ``nonce_too_low``
nonce < state nonce + ``per_sender``                   -32010     ``nonce_too_high``
sender is an allowed member (Governance)               -32003     ``not_allowed``
balance >= value + gas * max fee                       -32000     ``insufficient_funds``
replacement: fee bump, or free after a minimum age   -32000     ``replacement_too_early`` /
(see below)                                                       ``replacement_limit``
capacity (see below)                                   -32010     ``pool_full``
====================================================== ========== ==========================

Decisions:

* **Future nonces are queued.** A tx whose nonce leaves a gap is kept (within ``per_sender`` of the state
  nonce, which also bounds each sender's share of the pool) but never selected until the gap is filled.
* **Replacement** (same sender, same nonce; the new tx passes every other check) is accepted in two ways:

  1. *fee bump*, as go-ethereum: both its ``maxPriorityFeePerGas`` and its ``maxFeePerGas`` (``gasPrice``
     for legacy and EIP-2930) are strictly higher *and* at least 10 % higher — always accepted;
  2. *free replacement*, for this zero-fee chain where nobody can pay a bump: any fees, accepted when the
     pooled tx has been pending at least ``ReplacementPolicy.min_age`` seconds (default 1 s) and the slot
     (sender, nonce) has had fewer than ``ReplacementPolicy.max_free`` free replacements (default 3). A
     *cancel* is such a replacement by a 0-value transfer to oneself. Refusals keep go-ethereum's prefix
     ``replacement transaction underpriced`` (tools recognise it) and say which bound applies.

  Abuse bound: a free replacement costs the node one admission (decode, one ECDSA recovery, three state
  reads) and the replaced tx is never executed, so each pooled slot costs at most ``1 + max_free``
  admissions, spread over at least ``max_free * min_age`` seconds; a sender holds at most ``per_sender``
  slots, so a member can cause at most ``per_sender * (1 + max_free)`` admissions (1,024 by default) per
  lifetime of its pooled txs, and at most ``per_sender / min_age`` (256) free replacements a second —
  no more than sending that many new txs, which a zero-fee chain allows anyway. The count stays with the
  slot while it is pooled; a fee bump does not reset it.
* **Stuck transactions expire** (as go-ethereum's ``--txpool.lifetime``): a tx that is not executable
  (behind a nonce gap) is dropped once ``ReplacementPolicy.lifetime`` seconds (default 600) have passed
  since its slot was first filled (replacements do not extend it). Expiry is checked at every selection
  (the node selects every block interval while txs are pending) and after every block.
* **Capacity.** When the pool holds ``capacity`` txs, a new tx evicts the highest-nonce tx of the sender
  that holds the most, if that sender holds at least two more than the newcomer's sender would; otherwise
  the newcomer is refused with ``txpool is full``. One member cannot lock the others out, and evicting a
  sender's newest tx leaves its queue gap-free. Replacements never need room.
* **Selection** (:meth:`Mempool.select`) takes, among every sender's next executable tx, the one with the
  highest effective tip (base fee is 0, so ``min(tip, fee cap)``), ties by arrival (first come, first
  served — with zero fees that is the whole order). Per sender, txs come in nonce order from the state
  nonce with no gaps; a sender stops at the first tx that does not fit the remaining gas or whose
  cumulative cost exceeds the balance. Every sender is re-checked with ``is_account_allowed``; the txs
  of a sender no longer allowed are dropped from the pool.
* **After a block** (:meth:`Mempool.remove_included` then :meth:`Mempool.on_new_head`): included txs and
  txs whose nonce is now below the state nonce are dropped, as are all txs of senders no longer allowed
  and txs whose own cost exceeds the sender's balance.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from eth.abc import SignedTransactionAPI
from eth_utils.address import to_checksum_address

from shancheng.chain import validity
from shancheng.chain.validity import MAX_TX_BYTES, TransactionInvalid, check_signed, decode_transaction
from shancheng.sdk.errors import InvalidInput, ShanchengError

__all__ = [
    "CODE_POOL_LIMIT",
    "CODE_TX_INVALID",
    "CODE_TX_REJECTED",
    "AdmissionError",
    "Mempool",
    "ReplacementPolicy",
    "StateView",
    "check_nonce_limit",
]

#: go-ethereum's code for an invalid transaction (the message says which rule)
CODE_TX_INVALID = -32000
#: EIP-1474 "transaction rejected": a well-formed tx the chain's policy refuses (sender not a member)
CODE_TX_REJECTED = -32003
#: a pool limit was hit (OpenEthereum/Nethermind use -32010 for "transaction pool full" and similar)
CODE_POOL_LIMIT = -32010

REPLACEMENT_BUMP_PERCENT = 10


class StateView(Protocol):
    """Read access to the head state, provided by the node."""

    def nonce(self, address: bytes) -> int: ...

    def balance(self, address: bytes) -> int: ...

    def is_account_allowed(self, address: bytes) -> bool:
        """``Governance.isAccountAllowed(address)`` at the head."""
        ...


class AdmissionError(ShanchengError):
    """A transaction the pool refuses; ``code`` and ``message`` go into the JSON-RPC error as they are."""

    def __init__(self, code: int, message: str, *, reason: str) -> None:
        self.code = code
        self.message = message
        self.reason = reason  # short machine-readable slug (metrics, tests)
        super().__init__(message)

    def diagnostics(self) -> dict[str, Any]:
        return {"code": self.code, "reason": self.reason}


@dataclass(frozen=True)
class ReplacementPolicy:
    """Free replacement and expiry of pooled transactions (see the module docstring; ``[mempool]`` in config.toml).

    ``min_age``: seconds a pooled tx must have been pending before a replacement without a fee bump;
    ``max_free``: free replacements per (sender, nonce) while that slot is pooled (0 = none: geth's rule only);
    ``lifetime``: seconds after which a tx stuck behind a nonce gap is dropped.
    """

    min_age: float = 1.0
    max_free: int = 3
    lifetime: float = 600.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_age) and 0 <= self.min_age <= 3600):
            raise InvalidInput("replace_min_age must be between 0 and 3600 seconds")
        if isinstance(self.max_free, bool) or not isinstance(self.max_free, int) or not 0 <= self.max_free <= 100:
            raise InvalidInput("free_replacements must be an integer between 0 and 100")
        if not (math.isfinite(self.lifetime) and 0 < self.lifetime <= 30 * 86400):
            raise InvalidInput("lifetime must be between 0 and 30 days (in seconds)")

    @classmethod
    def from_config(cls, section: Any) -> ReplacementPolicy:
        """From config.toml's ``[mempool]``: ``replace_min_age``, ``free_replacements``, ``lifetime`` (seconds)."""
        if not isinstance(section, dict):
            raise InvalidInput("config.toml [mempool] must be a table")
        unknown = set(section) - {"replace_min_age", "free_replacements", "lifetime"}
        if unknown:
            raise InvalidInput(f"config.toml [mempool]: unknown setting {min(unknown)!r}; known: replace_min_age, "
                               "free_replacements, lifetime")
        try:
            return cls(min_age=float(section.get("replace_min_age", cls.min_age)),
                       max_free=int(section.get("free_replacements", cls.max_free)),
                       lifetime=float(section.get("lifetime", cls.lifetime)))
        except (TypeError, ValueError, OverflowError) as exc:
            if isinstance(exc, InvalidInput):
                raise InvalidInput(f"config.toml [mempool]: {exc}") from exc
            raise InvalidInput(f"config.toml [mempool]: replace_min_age, free_replacements and lifetime must be "
                               f"numbers ({exc})") from exc


def _refused(exc: TransactionInvalid) -> AdmissionError:
    """A state-free validity failure (:mod:`shancheng.chain.validity`) as the pool's refusal."""
    return AdmissionError(CODE_TX_INVALID, str(exc), reason=exc.reason)


def check_nonce_limit(tx: SignedTransactionAPI) -> None:
    """Refuse a nonce of 2^64 - 1 or more (EIP-2681) with go-ethereum's message, not as a bad signature."""
    try:
        validity.check_nonce_limit(tx)
    except TransactionInvalid as exc:
        raise _refused(exc) from exc


@dataclass(eq=False)
class _Entry:
    tx: SignedTransactionAPI
    sender: bytes
    hash: bytes
    raw: bytes
    arrival: int
    cost: int  # value + gas * max fee: what the balance must cover
    added: float = 0.0  # monotonic time this tx entered the pool: the age a free replacement needs
    first_seen: float = 0.0  # monotonic time its slot (sender, nonce) was first filled: the lifetime's start
    free_replacements: int = 0  # free replacements this slot has had

    @property
    def nonce(self) -> int:
        return int(self.tx.nonce)

    @property
    def tip(self) -> int:
        return min(int(self.tx.max_priority_fee_per_gas), int(self.tx.max_fee_per_gas))


@dataclass
class _SenderQueue:
    by_nonce: dict[int, _Entry] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.by_nonce)

    def executable(self, start: int) -> Iterator[_Entry]:
        """Entries from nonce ``start`` on, stopping at the first gap."""
        for n in itertools.count(start):
            entry = self.by_nonce.get(n)
            if entry is None:
                return
            yield entry


def _address(addr: bytes) -> str:
    return to_checksum_address(addr)


class Mempool:
    """Pending transactions, admitted against the head state and handed out per block."""

    def __init__(
        self,
        *,
        chain_id: int,
        state: StateView,
        capacity: int = 10_000,
        per_sender: int = 256,
        max_tx_bytes: int = MAX_TX_BYTES,
        block_gas_limit: int = 30_000_000,
        policy: ReplacementPolicy = ReplacementPolicy(),
        clock: Callable[[], float] = time.monotonic,
        check: Callable[[bytes], tuple[Any, bytes]] | None = None,
    ) -> None:
        """``check``: the static check of a raw transaction, returning (transaction, sender) (a node passes its
        ledger's :meth:`~shancheng.chain.ledger.Ledger.check_transaction`, native on the native engine); by
        default :func:`~shancheng.chain.validity.check_signed` of the decoded transaction."""
        if capacity < 1 or per_sender < 1 or max_tx_bytes < 1 or block_gas_limit < 1:
            raise InvalidInput("capacity, per_sender, max_tx_bytes and block_gas_limit must be positive")
        self.chain_id = chain_id
        self.state = state
        self.capacity = capacity
        self.per_sender = per_sender
        self.max_tx_bytes = max_tx_bytes
        self.block_gas_limit = block_gas_limit
        self.policy = policy
        self._clock = clock
        self._check = check
        self._by_hash: dict[bytes, _Entry] = {}
        self._senders: dict[bytes, _SenderQueue] = {}
        self._arrivals = itertools.count()
        self._gas = 0  # declared gas of every pooled tx: lets the node start a block as soon as one is full

    # ------------------------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self._by_hash)

    @property
    def pending_gas(self) -> int:
        """The declared gas of every pooled transaction (executable or queued)."""
        return self._gas

    def __contains__(self, tx_hash: object) -> bool:
        return isinstance(tx_hash, bytes) and tx_hash in self._by_hash

    def get(self, tx_hash: bytes) -> SignedTransactionAPI | None:
        entry = self._by_hash.get(tx_hash)
        return entry.tx if entry else None

    def get_raw(self, tx_hash: bytes) -> bytes | None:
        entry = self._by_hash.get(tx_hash)
        return entry.raw if entry else None

    def pending(self) -> list[SignedTransactionAPI]:
        """Every pooled tx (executable and queued), by sender then nonce."""
        return [q.by_nonce[n].tx for q in self._senders.values() for n in sorted(q.by_nonce)]

    def pending_nonce(self, address: bytes) -> int:
        """The next nonce ``address`` should use: state nonce plus its gap-free run of pooled txs."""
        start = self.state.nonce(address)
        queue = self._senders.get(address)
        if queue is None:
            return start
        return start + sum(1 for _ in queue.executable(start))

    # ------------------------------------------------------------------------------------ admission
    def add(self, raw: bytes) -> bytes:
        """Admit ``raw`` (a signed, encoded transaction); returns its hash or raises :class:`AdmissionError`."""
        raw = bytes(raw)
        tx = self._decode(raw)
        tx_hash = bytes(tx.hash)
        if tx_hash in self._by_hash:
            raise AdmissionError(CODE_TX_INVALID, f"already known: transaction 0x{tx_hash.hex()} is already pending",
                                 reason="already_known")
        sender = self._check_static(tx, raw)
        now = self._clock()
        entry = _Entry(tx, sender, tx_hash, raw, next(self._arrivals),
                       int(tx.value) + int(tx.gas) * int(tx.max_fee_per_gas), added=now, first_seen=now)
        self._check_against_state(entry)
        queue = self._senders.get(sender)
        old = queue.by_nonce.get(entry.nonce) if queue else None
        if old is not None:
            self._check_replacement(old, entry, now)
            self._drop(old)
        elif len(self._by_hash) >= self.capacity:
            self._make_room(sender)
        self._insert(entry)
        return tx_hash

    def _decode(self, raw: bytes) -> SignedTransactionAPI:
        try:
            return decode_transaction(raw, max_tx_bytes=self.max_tx_bytes)
        except TransactionInvalid as exc:
            raise _refused(exc) from exc

    def _check_static(self, tx: SignedTransactionAPI, raw: bytes) -> bytes:
        """Checks that need no state (:func:`shancheng.chain.validity.check_signed`); returns the sender."""
        try:
            if self._check is not None:
                return self._check(raw)[1]
            return check_signed(tx, chain_id=self.chain_id, block_gas_limit=self.block_gas_limit)
        except TransactionInvalid as exc:
            raise _refused(exc) from exc

    def _check_against_state(self, entry: _Entry) -> None:
        sender, nonce = entry.sender, entry.nonce
        state_nonce = self.state.nonce(sender)
        if nonce < state_nonce:
            raise AdmissionError(CODE_TX_INVALID, f"nonce too low: next nonce {state_nonce}, tx nonce {nonce}",
                                 reason="nonce_too_low")
        if nonce >= state_nonce + self.per_sender:
            raise AdmissionError(CODE_POOL_LIMIT, f"nonce too high: tx nonce {nonce}, the pool holds nonces "
                                 f"{state_nonce}..{state_nonce + self.per_sender - 1} for this sender",
                                 reason="nonce_too_high")
        if not self.state.is_account_allowed(sender):
            raise AdmissionError(CODE_TX_REJECTED, f"sender not allowed: {_address(sender)} is not an account of an "
                                 "active member organisation (Governance.isAccountAllowed)", reason="not_allowed")
        balance = self.state.balance(sender)
        if balance < entry.cost:
            raise AdmissionError(CODE_TX_INVALID, f"insufficient funds for gas * price + value: balance {balance}, "
                                 f"tx cost {entry.cost}", reason="insufficient_funds")

    def _check_replacement(self, old: _Entry, new: _Entry, now: float) -> None:
        """A fee bump (geth's rule) or a free replacement (minimum age, bounded count); sets ``new``'s slot data."""
        def bumped(before: int, after: int) -> bool:
            return after > before and after * 100 >= before * (100 + REPLACEMENT_BUMP_PERCENT)

        new.first_seen = old.first_seen
        new.free_replacements = old.free_replacements
        old_tip, old_cap = int(old.tx.max_priority_fee_per_gas), int(old.tx.max_fee_per_gas)
        new_tip, new_cap = int(new.tx.max_priority_fee_per_gas), int(new.tx.max_fee_per_gas)
        if bumped(old_tip, new_tip) and bumped(old_cap, new_cap):
            return
        taken = f"replacement transaction underpriced: nonce {new.nonce} is taken by 0x{old.hash.hex()}"
        bump = (f"or raise tip and fee cap both by {REPLACEMENT_BUMP_PERCENT}% (and above 0) over "
                f"{old_tip}/{old_cap}, got {new_tip}/{new_cap}")
        limit = self.policy.max_free
        if old.free_replacements >= limit:
            raise AdmissionError(CODE_TX_INVALID, f"{taken}, which has had {old.free_replacements} free "
                                 f"replacements, the limit ({limit}); wait for it to be mined or to expire, {bump}",
                                 reason="replacement_limit")
        age = now - old.added
        if age < self.policy.min_age:
            raise AdmissionError(CODE_TX_INVALID, f"{taken}, pending for {age:.2f} s; a free replacement is "
                                 f"accepted once it is {self.policy.min_age:g} s old, {bump}",
                                 reason="replacement_too_early")
        new.free_replacements += 1

    def _make_room(self, sender: bytes) -> None:
        own = len(self._senders.get(sender, ()))
        # the sender holding the most; on a tie, the one that added a tx most recently
        victim, queue = max(self._senders.items(),
                            key=lambda item: (len(item[1]), max(e.arrival for e in item[1].by_nonce.values())))
        if victim == sender or len(queue) < own + 2:
            raise AdmissionError(CODE_POOL_LIMIT, f"txpool is full: {len(self._by_hash)} transactions pending "
                                 "(no sender holds more than its share); retry after the next block",
                                 reason="pool_full")
        self._drop(queue.by_nonce[max(queue.by_nonce)])

    # ------------------------------------------------------------------------------------ blocks
    def select(self, *, gas_limit: int) -> list[SignedTransactionAPI]:
        """Executable txs for the next block, within ``gas_limit`` (by declared gas); does not remove them
        (but drops expired stuck txs and the txs of senders no longer allowed)."""
        self.evict_expired()
        heads: dict[bytes, Iterator[_Entry]] = {}
        budget: dict[bytes, int] = {}
        for sender in list(self._senders):
            if not self.state.is_account_allowed(sender):
                self._drop_sender(sender)
                continue
            heads[sender] = self._senders[sender].executable(self.state.nonce(sender))
            budget[sender] = self.state.balance(sender)
        ready: dict[bytes, _Entry] = {}
        for sender, it in heads.items():
            entry = next(it, None)
            if entry is not None:
                ready[sender] = entry
        chosen: list[SignedTransactionAPI] = []
        remaining = gas_limit
        while ready:
            sender, entry = max(ready.items(), key=lambda item: (item[1].tip, -item[1].arrival))
            if entry.tx.gas > remaining or entry.cost > budget[sender]:
                del ready[sender]  # later nonces of this sender depend on this one
                continue
            chosen.append(entry.tx)
            remaining -= int(entry.tx.gas)
            budget[sender] -= entry.cost
            following = next(heads[sender], None)
            if following is None:
                del ready[sender]
            else:
                ready[sender] = following
        return chosen

    def remove_included(self, txs: Iterable[SignedTransactionAPI]) -> None:
        """Drop txs that a committed block included (and any pooled tx of the same sender and nonce)."""
        for tx in txs:
            entry = self._by_hash.get(bytes(tx.hash))
            if entry is not None:
                self._drop(entry)
                continue
            queue = self._senders.get(bytes(tx.sender))  # an included tx always has a valid sender
            other = queue.by_nonce.get(int(tx.nonce)) if queue else None
            if other is not None:
                self._drop(other)

    def evict_expired(self) -> int:
        """Drop every tx stuck behind a nonce gap for ``policy.lifetime`` seconds or more; returns how many."""
        deadline = self._clock() - self.policy.lifetime
        expired: list[_Entry] = []
        for sender, queue in self._senders.items():
            if min(e.first_seen for e in queue.by_nonce.values()) > deadline:
                continue  # nothing old enough: skip the state read
            executable = {e.nonce for e in queue.executable(self.state.nonce(sender))}
            expired.extend(e for e in queue.by_nonce.values() if e.nonce not in executable and e.first_seen <= deadline)
        for entry in expired:
            self._drop(entry)
        return len(expired)

    def on_new_head(self) -> None:
        """Re-check every pooled tx against the new head: stale nonces, suspended senders, unaffordable txs,
        expired stuck txs."""
        for sender in list(self._senders):
            if not self.state.is_account_allowed(sender):
                self._drop_sender(sender)
                continue
            state_nonce = self.state.nonce(sender)
            balance = self.state.balance(sender)
            for entry in list(self._senders[sender].by_nonce.values()):
                if entry.nonce < state_nonce or entry.cost > balance:
                    self._drop(entry)
        self.evict_expired()

    # ------------------------------------------------------------------------------------ internals
    def _insert(self, entry: _Entry) -> None:
        self._gas += int(entry.tx.gas)
        self._by_hash[entry.hash] = entry
        self._senders.setdefault(entry.sender, _SenderQueue()).by_nonce[entry.nonce] = entry

    def _drop(self, entry: _Entry) -> None:
        self._gas -= int(entry.tx.gas)
        del self._by_hash[entry.hash]
        queue = self._senders[entry.sender]
        del queue.by_nonce[entry.nonce]
        if not queue.by_nonce:
            del self._senders[entry.sender]

    def _drop_sender(self, sender: bytes) -> None:
        for entry in list(self._senders[sender].by_nonce.values()):
            self._drop(entry)
