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
- **Bounded reads (other chains).** Logs are read with ``eth_getLogs`` over at most ``batch_blocks`` blocks at a time; a range
  the node refuses as too large (or that returns more than ``MAX_LOGS_PER_REPLY`` logs) is split in halves.
- **Checkpoint after the handler.** After ``handler(event)`` returns, the position ``(block_number, block_hash,
  log_index)`` is written durably (SQLite WAL with ``synchronous=FULL``, or any SQLAlchemy database, or your own
  :class:`Checkpoint`). A crash between the handler and that write delivers that one event again on restart
  (``event.maybe_duplicate`` is True for it); nothing is ever skipped.
- **Same chain or an error.** On resume (and after every failover to another node) the stored block hash is
  compared with the chain's: another chain or a rewritten history raises :class:`CheckpointMismatch`.
- **Errors.** Node errors back off exponentially with jitter up to ``max_backoff`` (the client's RPC fails over
  between its URLs); a handler exception stops the subscription (``on_error="stop"``, the default: ``state`` is
  ``"failed"``, ``join()`` raises :class:`HandlerFailed`) or retries the same event (``on_error="retry"``).

This module runs the subscription; the reading of final blocks is :mod:`~shancheng.sdk.client.final_logs`, the
filter :mod:`~shancheng.sdk.client.log_filter`, and the checkpoint databases :mod:`~shancheng.sdk.client.stores`.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from ..errors import InvalidInput, ShanchengError
from .chain_client import ChainClient
from .checkpoints import MAX_NAME_LENGTH, Checkpoint, Position, SubscriptionError
from .final_logs import Event, FinalLogs, NodeBehind
from .log_filter import LogFilter
from .proofs import ProofFailed
from .rpc import JsonRpcError, MalformedReply, NodeUnavailable
from .stores import open_checkpoint

__all__ = ["MAX_BATCH_BLOCKS", "HandlerFailed", "Lag", "Subscription"]

MAX_BATCH_BLOCKS = 10_000
State = Literal["running", "backing-off", "stopped", "failed"]
OnError = Literal["stop", "retry"]


class HandlerFailed(SubscriptionError):
    """The handler raised; the subscription stopped before that event (its checkpoint is before it)."""

    def __init__(self, message: str, *, position: Position) -> None:
        super().__init__(message)
        self.position = position

    def diagnostics(self) -> dict[str, Any]:
        return {"block_number": self.position.block_number, "log_index": self.position.log_index}


@dataclass(frozen=True)
class Lag:
    """How far behind the final head the subscription is: in blocks, and seconds since it was last caught up."""

    blocks: int
    seconds: float


class Subscription:
    """A durable subscription; build it with :meth:`shancheng.sdk.Client.subscribe` (see the module docstring)."""

    def __init__(self, client: ChainClient, log_filter: LogFilter, handler: Callable[[Event], Any] | None, *,
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
        self._logs = FinalLogs(client, log_filter, confirmations=confirmations if confirmations is not None
                               else client.confirmations, from_block=from_block, batch_blocks=self.batch_blocks,
                               name=name)
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
        self._caught_up_at = time.monotonic()
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
                self._logs.verify_position(self._position)
            except (NodeUnavailable, NodeBehind, JsonRpcError, MalformedReply):
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
        head = self._logs.head
        if head is None:
            return Lag(0, 0.0)
        done = self._done_block()
        blocks = max(0, head - done)
        return Lag(blocks, 0.0 if blocks == 0 else time.monotonic() - self._caught_up_at)

    def _done_block(self) -> int:
        """The last block all of whose logs are processed (-1: none)."""
        p = self._position
        if p is None:
            start = self._logs.start_block
            return (start if start is not None else 0) - 1
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
                except (NodeUnavailable, JsonRpcError, MalformedReply, NodeBehind, ProofFailed) as exc:
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
                except (NodeUnavailable, JsonRpcError, MalformedReply, NodeBehind, ProofFailed) as exc:
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
        if self._logs.head is not None and self._done_block() >= self._logs.head:
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

    def _next_batch(self) -> tuple[list[Event], Position] | None:
        """The undelivered events of the next range of final blocks and the position at its end; None when there
        is no new final block."""
        batch = self._logs.next_range(self._position)
        if batch is None:
            self._caught_up_at = time.monotonic()
            return None
        candidates, end = batch
        return self._new_events(candidates), end

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


def _replace_duplicate(event: Event) -> Event:
    return replace(event, maybe_duplicate=True)


def _bounded(value: Any, low: float, high: float, what: str, *, integer: bool = False) -> None:
    ok = isinstance(value, int) or (not integer and isinstance(value, float))
    if isinstance(value, bool) or not ok or not low <= value <= high:
        raise InvalidInput(f"{what} must be {'an integer' if integer else 'a number'} from {low:g} to {high:g}")
