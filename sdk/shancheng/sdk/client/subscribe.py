"""Durable log subscriptions: every matching log of every *final* block, in chain order, handed to your handler at
least once and never skipped — across crashes of your process, node restarts and failover between nodes.

>>> from shancheng.sdk.client import LogFilter
>>> registry = client.registry                                                                 # doctest: +SKIP
>>> def on_anchor(event):                                                                      # doctest: +SKIP
...     print(event.block_number, event.decoded["sequence"])
>>> with client.subscribe(LogFilter.for_event(registry, "BatchAnchored"), on_anchor,          # doctest: +SKIP
...                       checkpoint="sqlite:///anchors.db", name="anchors") as sub:
...     sub.join(60)

How it works:

- **Final blocks only.** On Shancheng a block is final once its SM2 commit certificate exists
  (``shancheng_getCommit``; verified against the genesis validators when the client was given the genesis file);
  on another chain once it is ``confirmations`` deep.
- **Proven events (Shancheng).** Events come from receipts proven under certified blocks, and each block's matching
  events are proven complete (:mod:`~shancheng.sdk.client.proven_events`): a node can neither add an event nor hide
  one. A node whose answer fails a proof is dropped from the failover set and the subscription goes on with another.
- **Bounded reads (other chains).** Logs are read with ``eth_getLogs`` over at most ``batch_blocks`` blocks at a time; a range the
  node refuses as too large (or that returns more than ``MAX_LOGS_PER_REPLY`` logs) is split in halves.
- **Checkpoint after the handler.** After ``handler(event)`` returns, the position ``(block_number, block_hash,
  log_index)`` is written durably (SQLite WAL with ``synchronous=FULL``, or any SQLAlchemy database, or your own
  :class:`Checkpoint`). A crash between the handler and that write delivers that one event again on restart
  (``event.maybe_duplicate`` is True for it); nothing is ever skipped.
- **Same chain or an error.** On resume (and after every failover to another node) the stored block hash is
  compared with the chain's: another chain or a rewritten history raises :class:`CheckpointMismatch`.
- **Errors.** Node errors back off exponentially with jitter up to ``max_backoff`` (the client's RPC fails over
  between its URLs); a handler exception stops the subscription (``on_error="stop"``, the default: ``state`` is
  ``"failed"``, ``join()`` raises :class:`HandlerFailed`) or retries the same event (``on_error="retry"``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import astuple, dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from eth_abi.abi import encode

from ..chainproof import CommitCertificate
from ..errors import InvalidInput, ShanchengError, VerificationError
from .checkpoints import (
    MAX_NAME_LENGTH,
    Checkpoint,
    Position,
    SavedPosition,
    SubscriptionError,
    open_checkpoint,
)
from .contracts import Contract, _events
from .proofs import ProofFailed
from .proven_events import read_proven_range
from .rpc import JsonRpcError, MalformedReply, NodeUnavailable

if TYPE_CHECKING:
    from .client import Client

__all__ = [
    "Checkpoint",
    "CheckpointMismatch",
    "Event",
    "HandlerFailed",
    "Lag",
    "LogFilter",
    "Position",
    "SavedPosition",
    "Subscription",
    "SubscriptionError",
    "open_checkpoint",
]

MAX_ADDRESSES = 256  # the node's own limits on one filter (eth_getLogs)
MAX_TOPIC_POSITIONS = 4
MAX_TOPIC_ALTERNATIVES = 64
MAX_BATCH_BLOCKS = 10_000
MAX_LOGS_PER_REPLY = 10_000
State = Literal["running", "backing-off", "stopped", "failed"]
OnError = Literal["stop", "retry"]


class CheckpointMismatch(SubscriptionError, VerificationError):
    """The checkpoint's block hash is not the chain's: another chain, or a rewritten history."""


class HandlerFailed(SubscriptionError):
    """The handler raised; the subscription stopped before that event (its checkpoint is before it)."""

    def __init__(self, message: str, *, position: Position) -> None:
        super().__init__(message)
        self.position = position

    def diagnostics(self) -> dict[str, Any]:
        return {"block_number": self.position.block_number, "log_index": self.position.log_index}


class _Transient(ShanchengError):
    """A node answered with something that may change on another try or another node (it is behind)."""


# -- filters and events ------------------------------------------------------------------------------------------


def _address(value: Any) -> bytes:
    if isinstance(value, Contract):
        return value.address
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    if isinstance(value, bytes) and len(value) == 20:
        return value
    raise InvalidInput(f"a filter address must be 20 bytes, 0x and 40 hex digits, or a Contract: {str(value)[:50]!r}")


def _topic(value: Any) -> bytes:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 66:
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    if isinstance(value, bytes) and len(value) == 32:
        return value
    raise InvalidInput(f"a filter topic must be 32 bytes or 0x and 64 hex digits: {str(value)[:70]!r}")


class LogFilter:
    """Which logs to follow, as ``eth_getLogs`` takes them: one or several addresses (none: any contract) and up to
    four topic positions, each None (any), one topic or a list of alternatives.

    >>> f = LogFilter(address="0x" + "00" * 19 + "02", topics=[None, "0x" + "11" * 32])
    >>> f.to_rpc()["topics"]
    [None, '0x1111111111111111111111111111111111111111111111111111111111111111']
    """

    def __init__(self, *, address: Any = None, topics: Sequence[Any] = (),
                 events: Sequence[tuple[Contract, str]] = ()) -> None:
        if address is None:
            addresses: tuple[bytes, ...] = ()
        elif isinstance(address, (str, bytes, Contract)):
            addresses = (_address(address),)
        elif isinstance(address, Sequence) and 0 < len(address) <= MAX_ADDRESSES:
            addresses = tuple(_address(a) for a in address)
        else:
            raise InvalidInput(f"a filter takes one address or a list of 1 to {MAX_ADDRESSES}")
        if isinstance(topics, (str, bytes)) or not isinstance(topics, Sequence) \
                or len(topics) > MAX_TOPIC_POSITIONS:
            raise InvalidInput(f"filter topics must be a list of at most {MAX_TOPIC_POSITIONS} positions")
        positions: list[tuple[bytes, ...] | None] = []
        for item in topics:
            if item is None:
                positions.append(None)
            elif isinstance(item, (str, bytes)):
                positions.append((_topic(item),))
            elif isinstance(item, Sequence) and 0 < len(item) <= MAX_TOPIC_ALTERNATIVES:
                positions.append(tuple(_topic(t) for t in item))
            else:
                raise InvalidInput(f"a topic position is None, a topic or a list of 1 to {MAX_TOPIC_ALTERNATIVES}")
        while positions and positions[-1] is None:
            positions.pop()
        self.addresses = addresses
        self.topics: tuple[tuple[bytes, ...] | None, ...] = tuple(positions)
        self._decoders = {contract.event_topic(name): (contract, name) for contract, name in events}

    @classmethod
    def for_event(cls, contract: Contract, *events: str, indexed: Sequence[Any] = ()) -> LogFilter:
        """Logs of ``contract``'s event(s) ``events`` (several: any of them), decoded into ``event.decoded``;
        ``indexed`` pins the first indexed arguments (None: any) of a single event.

        >>> registry = Contract.load("EvidenceRegistry", address="0x" + "00" * 19 + "02")
        >>> len(LogFilter.for_event(registry, "BatchAnchored", indexed=[b"\\x01" * 32]).topics)
        2
        """
        if not events or len(events) > MAX_TOPIC_ALTERNATIVES:
            raise InvalidInput(f"name 1 to {MAX_TOPIC_ALTERNATIVES} events of {contract.name}")
        known = _events(contract.name)
        for name in events:
            if name not in known:
                raise InvalidInput(f"{contract.name} has no event {name!r} in the SDK's ABI")
        topics: list[Any] = [[known[name].topic for name in events]]
        if indexed:
            if len(events) != 1:
                raise InvalidInput("indexed arguments pin a single event")
            types = known[events[0]].indexed
            if len(indexed) > len(types):
                raise InvalidInput(f"{contract.name}.{events[0]} has {len(types)} indexed arguments")
            topics += [None if v is None else encode([typ], [v]) for (_, typ), v in zip(types, indexed, strict=False)]
        return cls(address=contract, topics=topics, events=[(contract, name) for name in events])

    def to_rpc(self) -> dict[str, Any]:
        """The filter object of ``eth_getLogs`` (without the block range)."""
        out: dict[str, Any] = {}
        if self.addresses:
            out["address"] = ["0x" + a.hex() for a in self.addresses]
        if self.topics:
            out["topics"] = [None if p is None else ("0x" + p[0].hex() if len(p) == 1 else ["0x" + t.hex() for t in p])
                             for p in self.topics]
        return out

    @property
    def fingerprint(self) -> bytes:
        """SHA-256 of the canonical filter: a checkpoint is only resumed with the filter it was written for."""
        canonical = {"address": sorted(a.hex() for a in self.addresses),
                     "topics": [None if p is None else sorted(t.hex() for t in p) for p in self.topics]}
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).digest()

    def decode(self, topics: Sequence[bytes], data: bytes) -> tuple[str | None, dict[str, Any] | None]:
        """``(event name, arguments)`` when the log is one of the filter's events, else ``(None, None)``."""
        if not topics or topics[0] not in self._decoders:
            return None, None
        contract, name = self._decoders[topics[0]]
        return name, contract.decode_event(name, list(topics), data)

    def __repr__(self) -> str:
        return f"LogFilter(address={[('0x' + a.hex()) for a in self.addresses]}, topics={len(self.topics)} positions)"


@dataclass(frozen=True)
class Event:
    """One log of a final block. ``decoded`` holds the event's arguments when the filter was built with
    :meth:`LogFilter.for_event`; ``maybe_duplicate`` is True for the first event after a resume, which the handler
    may have seen before the crash (an idempotent handler stores ``position`` with its effect)."""

    block_number: int
    block_hash: bytes
    tx_hash: bytes
    tx_index: int
    log_index: int
    address: bytes
    topics: tuple[bytes, ...]
    data: bytes
    event: str | None = None
    decoded: dict[str, Any] | None = None
    maybe_duplicate: bool = False

    @property
    def position(self) -> Position:
        return Position(self.block_number, self.block_hash, self.log_index)


@dataclass(frozen=True)
class Lag:
    """How far behind the final head the subscription is: in blocks, and seconds since it was last caught up."""

    blocks: int
    seconds: float


def _q(value: Any, what: str) -> int:
    if not isinstance(value, str) or not value.startswith("0x") or not 2 < len(value) <= 18:
        raise MalformedReply(f"{what}: expected a hex quantity, got {str(value)[:40]!r}")
    try:
        return int(value, 16)
    except ValueError:
        raise MalformedReply(f"{what}: expected a hex quantity, got {value[:40]!r}") from None


def _b(value: Any, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) % 2:
        raise MalformedReply(f"{what}: expected 0x-prefixed hex")
    try:
        data = bytes.fromhex(value[2:])
    except ValueError:
        raise MalformedReply(f"{what}: expected 0x-prefixed hex") from None
    if size is not None and len(data) != size:
        raise MalformedReply(f"{what}: expected {size} bytes, got {len(data)}")
    return data


_TOO_LARGE = ("more than", "too many", "too large", "spans", "block range", "response size", "results")


def _is_too_large(exc: JsonRpcError) -> bool:
    """True when a node refused a log query for its size (block range or result count). Not for a rate limit or a
    busy node (same code -32005 on many nodes): those are backed off from, not split."""
    text = exc.message.lower()
    return any(w in text for w in _TOO_LARGE) and "concurrent" not in text and "busy" not in text


# -- the subscription ---------------------------------------------------------------------------------------------


class Subscription:
    """A durable subscription; build it with :meth:`shancheng.sdk.Client.subscribe` (see the module docstring)."""

    def __init__(self, client: Client, log_filter: LogFilter, handler: Callable[[Event], Any] | None, *,
                 checkpoint: str | Path | Checkpoint, name: str, from_block: int | str = 0, batch_blocks: int = 1000,
                 poll_interval: float = 0.5, max_backoff: float = 30.0, on_error: OnError = "stop",
                 confirmations: int | None = None) -> None:
        if not isinstance(log_filter, LogFilter):
            raise InvalidInput("filter must be a LogFilter (LogFilter(address=..., topics=[...]) or "
                               "LogFilter.for_event(contract, 'Event'))")
        if handler is not None and not callable(handler):
            raise InvalidInput("handler must be callable: handler(event)")
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_LENGTH or not name.isprintable():
            raise InvalidInput(f"a subscription name is 1 to {MAX_NAME_LENGTH} printable characters")
        if from_block not in ("earliest", "latest") and (isinstance(from_block, bool) or not isinstance(
                from_block, int) or from_block < 0):
            raise InvalidInput("from_block must be a block number, 'earliest' or 'latest'")
        _bounded(batch_blocks, 1, MAX_BATCH_BLOCKS, "batch_blocks", integer=True)
        _bounded(poll_interval, 0.01, 3600, "poll_interval")
        _bounded(max_backoff, 0.05, 3600, "max_backoff")
        if on_error not in ("stop", "retry"):
            raise InvalidInput("on_error must be 'stop' or 'retry'")
        if confirmations is not None:
            _bounded(confirmations, 1, 1000, "confirmations", integer=True)
        self.client = client
        self.filter = log_filter
        self.name = name
        self.handler = handler
        self.batch_blocks = int(batch_blocks)
        self.poll_interval = float(poll_interval)
        self.max_backoff = float(max_backoff)
        self.on_error: OnError = on_error
        self._confirmations = confirmations if confirmations is not None else client.confirmations
        self._from_block = from_block
        self._store = open_checkpoint(checkpoint)
        self._filter_id = log_filter.fingerprint
        try:
            saved = self._store.load(name)
            if saved is not None and saved.filter_id != self._filter_id:
                raise SubscriptionError(f"the checkpoint of subscription {name!r} was written for another filter: "
                                        "give this filter another name")
        except BaseException:
            self._store.close()
            raise
        self._position: Position | None = None if saved is None else saved.position
        self._resumed = saved is not None
        self._verified_url: str | None = None
        self._head: int | None = None
        self._head_hash: bytes | None = None  # the block hash the final head's certificate signs (Shancheng)
        self._caught_up_at = time.monotonic()
        self._start_block: int | None = None
        self.delivered = 0
        self.state: State = "stopped"  # until it runs
        self.error: BaseException | None = None  # why it failed (state "failed")
        self.last_error: BaseException | None = None  # the latest node error it is backing off from
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random()
        self._failures = 0
        if self._position is not None:
            try:  # refuse another chain's checkpoint now when a node answers; otherwise on the first poll
                self._verify_position()
            except (NodeUnavailable, _Transient, JsonRpcError, MalformedReply):
                pass
            except BaseException:
                self._store.close()
                raise

    # -- observability -------------------------------------------------------------------------------------------
    @property
    def position(self) -> Position | None:
        """The last position written to the checkpoint (None before the first)."""
        return self._position

    @property
    def lag(self) -> Lag:
        """Final head minus the last processed block; seconds since the subscription was last caught up."""
        if self._head is None:
            return Lag(0, 0.0)
        done = self._done_block()
        blocks = max(0, self._head - done)
        return Lag(blocks, 0.0 if blocks == 0 else time.monotonic() - self._caught_up_at)

    def _done_block(self) -> int:
        """The last block all of whose logs are processed (-1: none)."""
        p = self._position
        if p is None:
            return (self._start_block if self._start_block is not None else 0) - 1
        return p.block_number if p.log_index is None else p.block_number - 1

    # -- running -----------------------------------------------------------------------------------------------
    def start(self) -> Subscription:
        """Run in a daemon thread (what :meth:`Client.subscribe` does when given a handler)."""
        if self.handler is None:
            raise InvalidInput("a subscription without a handler is read with `async for event in subscription`")
        if self._thread is not None:
            raise InvalidInput("the subscription is already started")
        self._thread = threading.Thread(target=self._main, name=f"subscription {self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask it to stop after the current event (the handler is not interrupted)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until it ended (True) or ``timeout`` passed (False); a failure is raised (:class:`HandlerFailed`,
        :class:`CheckpointMismatch`, ...)."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
        if self.error is not None:
            raise self.error
        return True

    def run(self, until: int | Callable[[Subscription], bool] | None = None) -> None:
        """Run in the calling thread until :meth:`stop`, until block ``until`` is processed, or until
        ``until(subscription)`` is true (checked after each event and each poll); a failure is raised."""
        if self.handler is None:
            raise InvalidInput("run() needs a handler")
        if self._thread is not None:
            raise InvalidInput("the subscription already runs in its thread")
        self._main(until)
        if self.error is not None:
            raise self.error

    def __enter__(self) -> Self:
        return self

    def close(self) -> None:
        """Stop, wait for the current event to finish and close the checkpoint (a failure is not raised)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._store.close()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
        if exc is None and self.error is not None:
            raise self.error

    async def __aiter__(self) -> AsyncIterator[Event]:
        """``async for event in subscription``: the position of an event is saved when the loop asks for the next
        one (at-least-once, as with a handler); node calls run in a worker thread."""
        if self.handler is not None or self._thread is not None:
            raise InvalidInput("iterate a subscription built without a handler")
        self.state = "running"
        try:
            while not self._stop.is_set():
                try:
                    batch = await asyncio.to_thread(self._next_batch)
                except (NodeUnavailable, JsonRpcError, MalformedReply, _Transient, ProofFailed) as exc:
                    await asyncio.sleep(self._backing_off(exc))
                    continue
                self._recovered()
                if batch is None:
                    await asyncio.sleep(self.poll_interval)
                    continue
                events, end = batch
                for event in events:
                    yield event
                    self._save(event.position)
                    self.delivered += 1
                    if self._stop.is_set():
                        return
                self._save(end)
        except Exception as exc:
            self.state, self.error = "failed", exc
            raise
        finally:
            if self.state != "failed":
                self.state = "stopped"

    # -- the loop ----------------------------------------------------------------------------------------------
    def _main(self, until: int | Callable[[Subscription], bool] | None = None) -> None:
        self.state = "running"
        try:
            while not self._stop.is_set():
                if self._until(until):
                    break
                try:
                    batch = self._next_batch()
                except (NodeUnavailable, JsonRpcError, MalformedReply, _Transient, ProofFailed) as exc:
                    self._stop.wait(self._backing_off(exc))
                    continue
                self._recovered()
                if batch is None:
                    self._stop.wait(self.poll_interval)
                    continue
                events, end = batch
                for event in events:
                    if not self._deliver(event) or self._until(until):
                        return
                self._save(end)
        except Exception as exc:  # noqa: BLE001 - the thread's failure is surfaced by join() / run()
            self.error = exc if isinstance(exc, ShanchengError) else SubscriptionError(
                f"the subscription {self.name!r} failed: {type(exc).__name__}: {exc}")
            if self.error is not exc:
                self.error.__cause__ = exc
            self.state = "failed"
            return
        finally:
            if self.state != "failed":
                self.state = "stopped"

    def _until(self, until: int | Callable[[Subscription], bool] | None) -> bool:
        if until is None:
            return False
        if callable(until):
            return bool(until(self))
        return self._done_block() >= until

    def _deliver(self, event: Event) -> bool:
        """Hand ``event`` to the handler and checkpoint it; False when the subscription must stop."""
        attempt = 0
        assert self.handler is not None
        while True:
            try:
                self.handler(event)
                break
            except Exception as exc:
                if self.on_error == "stop":
                    raise HandlerFailed(f"the handler of subscription {self.name!r} raised {type(exc).__name__}: "
                                        f"{str(exc)[:300]} on the log at block {event.block_number} index "
                                        f"{event.log_index}; stopped before it", position=event.position) from exc
                self.last_error = exc
                self.state = "backing-off"
                attempt += 1
                if self._stop.wait(self._delay(attempt)):
                    return False
                event = _replace_duplicate(event)
        self.state = "running"
        self._save(event.position)
        self.delivered += 1
        return True

    def _save(self, position: Position) -> None:
        self._store.save(self.name, position, filter_id=self._filter_id)
        self._position = position
        if self._head is not None and self._done_block() >= self._head:
            self._caught_up_at = time.monotonic()

    def _backing_off(self, exc: BaseException) -> float:
        self.last_error = exc
        self.state = "backing-off"
        self._failures += 1
        return self._delay(self._failures)

    def _recovered(self) -> None:
        self._failures = 0
        self.state = "running"

    def _delay(self, attempt: int) -> float:
        """Exponential backoff from poll_interval (at least 0.1 s) up to max_backoff, with 50-100 % jitter."""
        base = max(0.1, self.poll_interval) * 2 ** min(attempt - 1, 30)
        return float(min(self.max_backoff, base) * (0.5 + self._rng.random() / 2))

    # -- reading the chain ---------------------------------------------------------------------------------------
    def _final_head(self) -> int | None:
        """The newest final block (None: none yet)."""
        latest = _q(self.client.rpc.call("eth_blockNumber"), "eth_blockNumber")
        if not self.client.capabilities.commit_certificates:
            head = latest - self._confirmations + 1
            return head if head >= 0 else None
        for number in (latest, latest - 1):  # the certificate of a block travels in the next one
            if number < 0:
                return None
            reply = self.client.rpc.call("shancheng_getCommit", [hex(number)])
            if reply is None:
                continue
            certificate = CommitCertificate.from_json(reply)
            if certificate.height != number:
                raise VerificationError(f"the commit certificate of block {number} is of block {certificate.height}")
            self._head_hash = certificate.block_hash
            if self.client.verifies_certificates and number != self._head:
                self.client.verify_certificate(certificate)
            return number
        return None

    def _block_hash(self, number: int) -> bytes:
        block = self.client.rpc.call("eth_getBlockByNumber", [hex(number), False])
        if block is None:
            raise _Transient(f"{self.client.rpc.current_url} does not have block {number} yet")
        if not isinstance(block, dict):
            raise MalformedReply("eth_getBlockByNumber: the reply is not an object")
        return _b(block.get("hash"), "block hash", 32)

    def _verify_position(self) -> None:
        """The checkpoint's block hash must be the chain's (checked on resume and after a failover)."""
        p = self._position
        reorgs = not self.client.capabilities.commit_certificates  # elsewhere checked before every range
        if p is None or (self._verified_url == self.client.rpc.current_url and not reorgs):
            return
        actual = self._block_hash(p.block_number)
        url = self.client.rpc.current_url  # the node that answered (the call may have failed over)
        if actual != p.block_hash:
            raise CheckpointMismatch(
                f"the checkpoint of subscription {self.name!r} is at block {p.block_number} with hash "
                f"0x{p.block_hash.hex()[:16]}…, but {url} has 0x{actual.hex()[:16]}… there: another chain or a "
                "rewritten history; use another checkpoint or name")
        self._verified_url = url

    def _next_block(self) -> int:
        p = self._position
        if p is not None:
            return p.block_number + (1 if p.log_index is None else 0)
        if self._start_block is None:
            if self._from_block == "latest":
                head = self._final_head()
                self._start_block = 0 if head is None else head + 1
            else:
                self._start_block = 0 if self._from_block == "earliest" else int(self._from_block)
        return self._start_block

    def _next_batch(self) -> tuple[list[Event], Position] | None:
        """The undelivered events of the next range of final blocks and the position at its end; None when there
        is no new final block."""
        self._verify_position()
        first = self._next_block()
        head = self._head
        if head is None or first > head:  # the final head is looked up again only once it is reached
            head = self._head = self._final_head()
        if head is None or first > head:
            self._caught_up_at = time.monotonic()
            return None
        last = min(head, first + self.batch_blocks - 1)
        if self.client.capabilities.chain_proofs:  # Shancheng: every event proven, the range proven complete
            proven = read_proven_range(self.client, first, last, addresses=self.filter.addresses,
                                       topics=self.filter.topics, up_to=head)
            if proven is None:
                raise _Transient(f"{self.client.rpc.current_url} has no certificate of block {last} yet")
            logs, end, end_hash = proven
            return self._new_events([self._decoded(*astuple(log)) for log in logs]), Position(end, end_hash)
        events = self._new_events([self._event(log, first, last) for log in self._logs(first, last)])
        end_hash = events[-1].block_hash if events and events[-1].block_number == last else self._block_hash(last)
        if last == head and self._head_hash is not None and end_hash != self._head_hash:
            raise VerificationError(f"block {last} from {self.client.rpc.current_url} is not the block its commit "
                                    "certificate signs")
        return events, Position(last, end_hash, None)

    def _new_events(self, candidates: list[Event]) -> list[Event]:
        """The events not covered by the checkpoint, in chain order; the first after a resume may be a duplicate."""
        events: list[Event] = []
        for event in candidates:
            if self._position is not None and self._position.covers(event.block_number, event.log_index):
                continue
            if events and (event.block_number, event.log_index) <= (events[-1].block_number, events[-1].log_index):
                raise MalformedReply(f"{self.client.rpc.current_url} returned logs out of chain order")
            if self._resumed:
                event = _replace_duplicate(event)
                self._resumed = False
            events.append(event)
        return events

    def _logs(self, first: int, last: int) -> list[dict[str, Any]]:
        """``eth_getLogs`` over [first, last], split in halves while the node says the answer is too large."""
        out: list[dict[str, Any]] = []
        ranges = [(first, last)]
        while ranges:
            lo, hi = ranges.pop()
            try:
                reply = self.client.rpc.call("eth_getLogs", [{**self.filter.to_rpc(), "fromBlock": hex(lo),
                                                              "toBlock": hex(hi)}])
                if not isinstance(reply, list):
                    raise MalformedReply("eth_getLogs: the reply is not a list")
                too_large = len(reply) > MAX_LOGS_PER_REPLY
            except JsonRpcError as exc:
                if not _is_too_large(exc):
                    raise
                too_large, reply = True, []
            if too_large:
                if lo == hi:
                    raise SubscriptionError(f"block {lo} holds more logs of this filter than the node returns in one "
                                            "reply: narrow the filter")
                mid = (lo + hi) // 2
                ranges += [(mid + 1, hi), (lo, mid)]  # popped lo half first: chain order
                continue
            out += reply
        return out

    def _event(self, log: Any, first: int, last: int) -> Event:
        if not isinstance(log, dict):
            raise MalformedReply("eth_getLogs: a log is not an object")
        if log.get("removed"):
            raise MalformedReply("eth_getLogs returned a removed log for a final block")
        number = _q(log.get("blockNumber"), "log blockNumber")
        if not first <= number <= last:
            raise MalformedReply(f"eth_getLogs returned a log of block {number}, outside {first}..{last}")
        topics_raw = log.get("topics")
        if not isinstance(topics_raw, list) or len(topics_raw) > 4:
            raise MalformedReply("log topics must be a list of at most 4")
        return self._decoded(number, _b(log.get("blockHash"), "log blockHash", 32),
                             _b(log.get("transactionHash"), "log transactionHash", 32),
                             _q(log.get("transactionIndex"), "log transactionIndex"), _q(log.get("logIndex"), "log logIndex"),
                             _b(log.get("address"), "log address", 20), tuple(_b(t, "log topic", 32) for t in topics_raw),
                             _b(log.get("data"), "log data"))

    def _decoded(self, number: int, block_hash: bytes, tx_hash: bytes, tx_index: int, log_index: int, address: bytes,
                 topics: tuple[bytes, ...], data: bytes) -> Event:
        try:
            name, decoded = self.filter.decode(topics, data)
        except Exception as exc:  # noqa: BLE001 - eth-abi raises many kinds for data that is not the event
            raise SubscriptionError(f"the log at block {number} does not decode as the filter's event: {exc}") \
                from None
        return Event(block_number=number, block_hash=block_hash, tx_hash=tx_hash, tx_index=tx_index,
                     log_index=log_index, address=address, topics=topics, data=data, event=name, decoded=decoded)


def _replace_duplicate(event: Event) -> Event:
    return replace(event, maybe_duplicate=True)


def _bounded(value: Any, low: float, high: float, what: str, *, integer: bool = False) -> None:
    ok = isinstance(value, int) or (not integer and isinstance(value, float))
    if isinstance(value, bool) or not ok or not low <= value <= high:
        raise InvalidInput(f"{what} must be {'an integer' if integer else 'a number'} from {low:g} to {high:g}")
