"""The relayer: follows a Shancheng network and submits to a light client on another chain every validator-set change
in order, and a certified checkpoint every ``every_blocks`` blocks or ``every_seconds`` seconds.

It trusts nothing it relays (the light client verifies every certificate, commitment and set) and is itself
checked: the changes come from the source node's ``shancheng_validatorChanges`` verified from the genesis file, the
Governance ``ValidatorAdded`` / ``ValidatorRemoved`` events that announce them from a durable, proven subscription
(:mod:`shancheng.sdk.client.subscribe`), and each checkpoint's header must hash to the block its verified commit
certificate signs. Anyone may run one, several at once (every submission is idempotent: what the light client
already holds counts as done).

Schedule: the subscription reads the source in ranges of at most ``every_blocks`` blocks; at the end of a range (every
change up to it followed) a checkpoint is relayed when ``every_blocks`` blocks or ``every_seconds`` seconds passed
since the last one, so relayed checkpoints are less than 2 × ``every_blocks`` blocks apart. A new relayer starts
its checkpoints at the source's head (it follows every change from the light client's last one, or genesis).

Durability: the subscription's position and the last checkpoint relayed are kept in one SQLite file (``store``);
after a crash the relayer resumes from there and relays every range it had not finished, so no change is skipped
and the spacing above holds across the crash (while the target accepts the submissions).

Lag: :attr:`Relayer.status` holds the source's final head, the highest height the light client holds and their
difference in blocks and in seconds of source block time; :meth:`Relayer.metrics` renders them for Prometheus
(``shancheng crosschain relay --metrics-port``). While the target is more than ``warn_lag_blocks`` blocks or
``warn_lag_seconds`` seconds behind, one warning line is logged at most once a minute.

>>> relayer = Relayer(source, target, light_client="0x…", store="relayer.db", every_blocks=100)  # doctest: +SKIP
>>> relayer.start(); relayer.relay_height(1234); relayer.lag                                      # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from eth_hash.auto import keccak

from ..chainproof import GenesisFile
from ..chainproof.receipt import decode_header
from ..client.chain_client import ChainClient
from ..client.checkpoints import Position
from ..client.client import Client
from ..client.final_logs import Event
from ..client.log_filter import LogFilter
from ..client.proofs import ProofFailed, certified_block
from ..client.proven_events import header_rlp
from ..client.rpc import JsonRpcError, MalformedReply, NodeUnavailable
from ..client.stores import open_checkpoint
from ..client.subscribe import Subscription
from ..client.transactions import TransactionRefused
from ..client.validator_history import fetch_validator_changes
from ..errors import InvalidInput, VerificationError
from ..evidence.chain import ValidatorChange, parse_validator_changes
from ..prometheus import exposition
from .light_client import LightClient, LightClientError, StoredCheckpoint

__all__ = ["RelayStatus", "Relayer"]

_log = logging.getLogger("shancheng.crosschain.relayer")
_CHECKPOINTS_FILTER = keccak(b"shancheng/relayer/checkpoints/v1")
#: errors of the source or the target that pass (a node down, behind, or failing a proof): retried with backoff
TRANSIENT = (NodeUnavailable, JsonRpcError, MalformedReply, ProofFailed, TransactionRefused, TimeoutError)


@dataclass(frozen=True)
class RelayStatus:
    """What a relayer reports: the source's final head, the highest height the light client holds (a checkpoint or
    a change, relayed by anyone), their difference in blocks and in seconds (the head's block time minus the
    relayed block's, as of the last check), and the last change followed."""

    source_head: int
    relayed_height: int
    lag_blocks: int
    last_change_height: int
    lag_seconds: float = 0.0


class Relayer:
    """See the module docstring. ``source`` must pin its genesis file (``Client.connect(..., genesis=...)``)."""

    def __init__(self, source: Client, target: ChainClient, light_client: bytes | str, *, store: str | Path,
                 every_blocks: int = 100, every_seconds: float = 60.0, name: str | None = None,
                 warn_lag_blocks: int | None = None, warn_lag_seconds: float | None = None,
                 poll_interval: float = 0.5) -> None:
        genesis = source.genesis
        if not isinstance(genesis, GenesisFile):
            raise InvalidInput("the relayer's source client must pin the source genesis file (genesis=...)")
        if not source.capabilities.chain_proofs:
            raise InvalidInput("the relayer's source must be a Shancheng node (it serves proofs and certificates)")
        if isinstance(every_blocks, bool) or not isinstance(every_blocks, int) or not 1 <= every_blocks <= 10_000:
            raise InvalidInput("every_blocks must be an integer from 1 to 10000")
        if isinstance(every_seconds, bool) or not isinstance(every_seconds, int | float) or not (
                0.1 <= every_seconds <= 86_400):
            raise InvalidInput("every_seconds must be a number from 0.1 to 86400")
        if warn_lag_blocks is not None and (isinstance(warn_lag_blocks, bool) or not isinstance(
                warn_lag_blocks, int) or warn_lag_blocks < 1):
            raise InvalidInput("warn_lag_blocks must be a positive integer")
        if warn_lag_seconds is not None and (isinstance(warn_lag_seconds, bool) or not isinstance(
                warn_lag_seconds, int | float) or not 1 <= warn_lag_seconds <= 30 * 86_400):
            raise InvalidInput("warn_lag_seconds must be a number from 1 to 2592000 (30 days)")
        self.source = source
        self.genesis = genesis
        self.light = LightClient(target, light_client)
        self.light.check_tracks(genesis)  # WrongSourceChain
        self.every_blocks = every_blocks
        self.every_seconds = float(every_seconds)
        self.warn_lag_blocks = warn_lag_blocks if warn_lag_blocks is not None else 4 * every_blocks
        self.warn_lag_seconds = float(warn_lag_seconds) if warn_lag_seconds is not None else max(
            300.0, 4 * self.every_seconds)
        self.name = name or f"relayer/{target.chain_id}/{self.light.contract.address_hex}"
        self._checkpoints_name = f"{self.name}/checkpoints"
        self._store = open_checkpoint(store if isinstance(store, Path) else str(store))
        self._lock = threading.RLock()  # one writer to the light client at a time (ordering and nonces)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        try:
            saved = self._store.load(self._checkpoints_name)
            if saved is None:  # a new relayer: checkpoints from the source's head on
                self._relayed = max(0, source.block_number() - every_blocks)
            else:
                self._relayed = saved.position.block_number
            # every change up to the light client's last one is followed (each pins the ones before it)
            first = self.light.last_change_height() + 1
            log_filter = LogFilter.for_event(source.governance, "ValidatorAdded", "ValidatorRemoved")
            self._subscription = Subscription(
                source, log_filter, self._on_change, checkpoint=self._store, name=self.name,
                from_block=first if first > 1 else 0, batch_blocks=every_blocks, poll_interval=poll_interval,
                on_error="retry")
        except BaseException:
            self._store.close()
            raise
        self._relayed_at = time.monotonic()
        self._followed = self._relayed
        self._last_change = 0
        self._warned_at = 0.0
        self._lag_seconds = 0.0
        self._block_times: dict[int, int] = {}
        self.warnings = 0  # lag warnings logged

    # -- observability -------------------------------------------------------------------------------------------
    @property
    def status(self) -> RelayStatus:
        head = self._subscription.lag.blocks + self._done_block()
        relayed = max(self._relayed, self._followed)
        return RelayStatus(head, relayed, max(0, head - relayed), self._last_change, self._lag_seconds)

    @property
    def lag(self) -> int:
        """Source final head minus the highest height the light client holds, in blocks."""
        return self.status.lag_blocks

    def metrics(self) -> str:
        """The status in Prometheus' text format, labelled with the relayer's name."""
        status, label = self.status, '{relayer="' + self.name.replace("\\", "\\\\").replace('"', '\\"') + '"}'
        return exposition([
            ("shancheng_relayer_source_head", "gauge", "The source chain's final head.",
             [(label, status.source_head)]),
            ("shancheng_relayer_relayed_height", "gauge", "The highest source height the light client holds.",
             [(label, status.relayed_height)]),
            ("shancheng_relayer_lag_blocks", "gauge", "Source head minus the light client's highest height.",
             [(label, status.lag_blocks)]),
            ("shancheng_relayer_lag_seconds", "gauge",
             "Block time of the source head minus that of the light client's highest height.",
             [(label, status.lag_seconds)]),
            ("shancheng_relayer_last_change_height", "gauge", "The last validator-set change followed.",
             [(label, status.last_change_height)]),
            ("shancheng_relayer_warn_lag_blocks", "gauge", "The lag in blocks above which the relayer warns.",
             [(label, self.warn_lag_blocks)]),
            ("shancheng_relayer_lag_warnings_total", "counter", "Lag warnings logged.", [(label, self.warnings)]),
        ])

    def _done_block(self) -> int:
        p = self._subscription.position
        return 0 if p is None else (p.block_number if p.log_index is None else p.block_number - 1)

    # -- running -----------------------------------------------------------------------------------------------
    def run(self) -> None:
        """Relay in the calling thread until :meth:`stop` (a failure is raised)."""
        self._subscription.run(until=self._tick)

    def start(self) -> Relayer:
        """Relay in a daemon thread; :meth:`close` stops it."""
        def main() -> None:
            try:
                self.run()
            except BaseException as exc:  # noqa: BLE001 - surfaced by join()
                self.error = exc
        self._thread = threading.Thread(target=main, name=f"relayer {self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._subscription.stop()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
        if self.error is not None:
            raise self.error
        return True

    def close(self, timeout: float = 15.0) -> None:
        """Stop and wait up to ``timeout`` seconds for the relaying thread. A thread still inside a submission (a
        transaction waiting for its block on a slow target) is left to the process's exit: every submission is
        idempotent and the next start resumes from the store, as after a crash."""
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                _log.warning("relayer %s: stopped with a submission in flight (idempotent: the next start resumes)",
                             self.name)
                return
        self._subscription.close()  # closes the store too

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- relaying ----------------------------------------------------------------------------------------------
    def relay_height(self, height: int, *, timeout: float = 120.0) -> StoredCheckpoint:
        """Store the checkpoint of source block ``height`` now (say, the block of a record's anchor), after every
        validator-set change up to it; waits until the block is final on the source."""
        if isinstance(height, bool) or not isinstance(height, int) or height < 1:
            raise InvalidInput("the height to relay must be a block number of at least 1")
        self.source.wait_final_block(height, timeout=timeout)
        with self._lock:
            self._follow_changes(height)
            return self._store_checkpoint(height)

    def _on_change(self, event: Event) -> None:
        """A Governance validator event in block h: follow every change up to h (the event's own included)."""
        try:
            with self._lock:
                followed = self._follow_changes(event.block_number)
        except (*TRANSIENT, LightClientError, VerificationError) as exc:
            _log.warning("relaying the validator change of block %d failed (retried): %s", event.block_number, exc)
            raise
        if followed < event.block_number:
            _log.warning("block %d holds a validator event but the source lists no validator change there (retried)",
                         event.block_number)
            raise VerificationError(f"block {event.block_number} holds a validator event but the source node lists "
                                    "no validator change there")

    def _follow_changes(self, up_to: int) -> int:
        """Submit every change of a block at most ``up_to`` the light client has not followed, in order; returns
        the height of the last change up to ``up_to``."""
        last = self.light.last_change_height()
        changes: list[ValidatorChange] = []
        if last < up_to:
            changes = [c for c in parse_validator_changes(fetch_validator_changes(
                self.source.rpc.call, up_to, genesis=self.genesis)) if c.height > last]
        for change in changes:
            h = change.height
            if h > 1 and self.light.last_change_height() != h - 1 and self.light.checkpoint(h - 1) is None:
                self._store_checkpoint(h - 1)  # header h - 1 pins set(h + 1): the contract wants it first
            self.light.submit_change(change)
            _log.info("followed the validator-set change of block %d (%d validators from height %d)", h,
                      len(change.validators.validators), h + 2)
            last = h
        self._last_change = max(self._last_change, last)
        return last

    def _store_checkpoint(self, height: int) -> StoredCheckpoint:
        certificate = certified_block(self.source, height)
        if certificate is None:
            raise NodeUnavailable(f"the source has no commit certificate of block {height} yet")
        block = self.source.rpc.call("eth_getBlockByNumber", [hex(height), False])
        if not isinstance(block, dict):
            raise MalformedReply(f"eth_getBlockByNumber({height}): not a block")
        raw = header_rlp(block)
        if keccak(raw) != certificate.block_hash or decode_header(raw).number != height:
            url = self.source.rpc.current_url
            self.source.rpc.mark_bad(url, f"the header of block {height} is not the certified block")
            raise ProofFailed(f"{url} served a header of block {height} that its certificate does not sign", url=url)
        stored = self.light.store_checkpoint(raw, certificate)
        _log.info("relayed the checkpoint of block %d", height)
        return stored

    def _tick(self, _subscription: Subscription) -> bool:
        """Called by the subscription after each event and each range: at the end of a range (every change up to
        it followed), relay a checkpoint there if one is due. True stops the relayer."""
        p = self._subscription.position
        if self._stop.is_set():
            return True
        if p is None or p.log_index is not None:
            return False
        done = p.block_number
        due = done >= self._relayed + self.every_blocks or (
            done > self._relayed and time.monotonic() - self._relayed_at >= self.every_seconds)
        attempt = 0
        while due and not self._stop.is_set():
            try:
                with self._lock:
                    self._follow_changes(done)
                    stored = self._store_checkpoint(done)
                self._store.save(self._checkpoints_name, Position(done, stored.block_hash),
                                 filter_id=_CHECKPOINTS_FILTER)
                self._relayed, self._relayed_at = done, time.monotonic()
                self._followed = max(self._followed, done)
                break
            except (*TRANSIENT, LightClientError) as exc:
                attempt += 1
                _log.warning("relaying the checkpoint of block %d failed (attempt %d, retried): %s", done, attempt,
                             exc)
                self._stop.wait(min(30.0, 0.2 * 2 ** min(attempt, 8)))
        self._watch_lag()
        return self._stop.is_set()

    def _block_time(self, height: int) -> int:
        """The source block's timestamp (kept while it is the head's or the relayed height's)."""
        if height not in self._block_times:
            block = self.source.rpc.call("eth_getBlockByNumber", [hex(height), False])
            if not isinstance(block, dict) or not isinstance(block.get("timestamp"), str):
                raise MalformedReply(f"eth_getBlockByNumber({height}): not a block")
            self._block_times[height] = int(block["timestamp"], 16)
        return self._block_times[height]

    def _watch_lag(self) -> None:
        try:
            self._followed = self.light.followed_height()
        except TRANSIENT as exc:
            _log.warning("the target does not answer: %s", exc)
            return
        status = self.status
        try:
            self._lag_seconds = float(max(0, self._block_time(status.source_head)
                                          - self._block_time(status.relayed_height)))
        except TRANSIENT as exc:
            _log.warning("the source does not answer: %s", exc)
        kept = (status.source_head, status.relayed_height)
        self._block_times = {h: t for h, t in self._block_times.items() if h in kept}
        status = self.status
        now = time.monotonic()
        behind = status.lag_blocks > self.warn_lag_blocks or status.lag_seconds > self.warn_lag_seconds
        if behind and now - self._warned_at >= 60:
            self._warned_at = now
            self.warnings += 1
            _log.warning("the target's light client is %d blocks (%.0f s) behind the source (head %d, relayed %d)",
                         status.lag_blocks, status.lag_seconds, status.source_head, status.relayed_height)

